/* fm_rng: the engine's seeded random generator (xoshiro256**, seeded through splitmix64).
 *
 * The same seed gives the same stream on every machine: uniform numbers come from integer bit
 * operations only, and normal numbers from the Box-Muller transform in double precision. */
#ifndef FM_RNG_H
#define FM_RNG_H

#include <stdint.h>

typedef struct fm_rng {
  uint64_t s[4];
  double spare_normal;
  int has_spare;
} fm_rng;

void fm_rng_seed(fm_rng *r, uint64_t seed);
uint64_t fm_rng_next(fm_rng *r);
/* Uniform in [0, 1) with 24 random bits (every value exactly representable as a float). */
float fm_rng_uniform(fm_rng *r);
/* Standard normal. */
double fm_rng_normal(fm_rng *r);
/* Uniform integer in [0, n), without modulo bias; n > 0. */
uint64_t fm_rng_below(fm_rng *r, uint64_t n);
/* Fisher-Yates shuffle of an int32 array. */
void fm_rng_shuffle(fm_rng *r, int32_t *v, int64_t n);

#endif
