/* fm_rng: xoshiro256** (Blackman and Vigna), seeded through splitmix64 so that any 64-bit seed,
 * 0 included, gives a well-mixed state. */
#include "fm_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void fm_rng_seed(fm_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
  r->has_spare = 0;
  r->spare_normal = 0.0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fm_rng_next(fm_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

float fm_rng_uniform(fm_rng *r) { return (float)(fm_rng_next(r) >> 40) * 0x1.0p-24f; }

double fm_rng_normal(fm_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare_normal;
  }
  /* u1 in (0, 1] so that log(u1) is finite. */
  double u1 = ((double)(fm_rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
  double u2 = (double)(fm_rng_next(r) >> 11) * 0x1.0p-53;
  double radius = sqrt(-2.0 * log(u1));
  double angle = 6.283185307179586 * u2;
  r->spare_normal = radius * sin(angle);
  r->has_spare = 1;
  return radius * cos(angle);
}

uint64_t fm_rng_below(fm_rng *r, uint64_t n) {
  /* Rejection sampling: drop the top partial range so every residue is equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = fm_rng_next(r);
  while (x >= limit);
  return x % n;
}

void fm_rng_shuffle(fm_rng *r, int32_t *v, int64_t n) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)fm_rng_below(r, (uint64_t)i + 1);
    int32_t t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
}
