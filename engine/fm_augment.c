/* fm_augment: crop (pad and shift), flip and random erasing of training images (fm_augment.h). */
#include "fm_augment.h"

#include <math.h>
#include <string.h>

#include "fm_error.h"
#include "fm_rng.h"

int fm_augment_active(const fm_augment *a) {
  return a && (a->crop > 0 || a->flip || a->erase > 0.0f);
}

int fm_augment_check(const fm_augment *a, int h, int w) {
  int side = h < w ? h : w;
  if (a->crop < 0 || a->crop > side / 2)
    return fm_fail("augment: crop must be 0 to %d pixels for %dx%d images, got %d", side / 2, h,
                   w, a->crop);
  if (a->flip != 0 && a->flip != 1) return fm_fail("augment: flip must be true or false");
  if (!(a->erase >= 0.0f && a->erase <= 1.0f))
    return fm_fail("augment: erase must be a probability in [0, 1], got %g", (double)a->erase);
  return FM_OK;
}

/* A generator for one image: seed and key mixed so that neighbouring keys give unrelated streams. */
static void image_rng(fm_rng *r, uint64_t seed, uint64_t key) {
  uint64_t z = seed ^ (key + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  fm_rng_seed(r, z ^ (z >> 31));
}

void fm_augment_image(const fm_augment *a, uint64_t seed, uint64_t key, int h, int w, int c,
                      float *img, float *scratch) {
  fm_rng r;
  image_rng(&r, seed, key);
  const size_t row = (size_t)w * c;
  /* Always draw the same numbers in the same order, whichever changes are on. */
  int dy = a->crop ? (int)fm_rng_below(&r, 2 * (uint64_t)a->crop + 1) - a->crop : 0;
  int dx = a->crop ? (int)fm_rng_below(&r, 2 * (uint64_t)a->crop + 1) - a->crop : 0;
  int flip = a->flip && (fm_rng_next(&r) >> 63);
  if (dx || dy || flip) {
    memcpy(scratch, img, sizeof(float) * (size_t)h * row);
    for (int y = 0; y < h; y++) {
      float *out = img + (size_t)y * row;
      int sy = y + dy;
      if (sy < 0 || sy >= h) {
        memset(out, 0, sizeof(float) * row);
        continue;
      }
      for (int x = 0; x < w; x++) {
        int sx = (flip ? w - 1 - x : x) + dx;
        if (sx < 0 || sx >= w)
          memset(out + (size_t)x * c, 0, sizeof(float) * (size_t)c);
        else
          memcpy(out + (size_t)x * c, scratch + (size_t)sy * row + (size_t)sx * c,
                 sizeof(float) * (size_t)c);
      }
    }
  }
  if (a->erase > 0.0f && fm_rng_uniform(&r) < a->erase) {
    /* Up to ten tries for a rectangle that fits, as the original method does. */
    for (int attempt = 0; attempt < 10; attempt++) {
      double area = (0.02 + 0.38 * fm_rng_uniform(&r)) * h * w;
      double aspect = exp(log(0.3) + (log(1 / 0.3) - log(0.3)) * fm_rng_uniform(&r));
      int eh = (int)lround(sqrt(area * aspect)), ew = (int)lround(sqrt(area / aspect));
      if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
      int y0 = (int)fm_rng_below(&r, (uint64_t)(h - eh + 1));
      int x0 = (int)fm_rng_below(&r, (uint64_t)(w - ew + 1));
      for (int y = y0; y < y0 + eh; y++)
        for (int x = x0; x < x0 + ew; x++)
          for (int k = 0; k < c; k++) img[((size_t)y * w + x) * c + k] = fm_rng_uniform(&r);
      break;
    }
  }
}
