/* fm_augment: random changes to training images, made where the threads gather their batches.
 *
 * Each image's changes come from a generator keyed by (seed, image key) alone — the training loop
 * passes a seed per epoch and batch and the image's row in the dataset — so they do not depend on
 * the thread count or on which thread gathers the image. The label never changes.
 *   crop:  pad by `crop` pixels of 0 on every side and take a random window of the original size
 *          (a shift of up to `crop` pixels in each direction);
 *   flip:  mirror left-right with probability 1/2;
 *   erase: with probability `erase`, replace a random rectangle (2% to 40% of the area, aspect
 *          ratio 0.3 to 3.3, as Zhong et al.'s random erasing) with uniform noise in [0, 1].
 * Images are h x w x c floats, HWC. */
#ifndef FM_AUGMENT_H
#define FM_AUGMENT_H

#include <stdint.h>

typedef struct fm_augment {
  int crop;     /* 0: none */
  int flip;     /* 0 or 1 */
  float erase;  /* probability, 0: none */
} fm_augment;

/* 1 when the augmentation changes anything. */
int fm_augment_active(const fm_augment *a);
/* Fails naming the field on a value out of range (crop 0..h/2 of an image of h x w, erase [0, 1]). */
int fm_augment_check(const fm_augment *a, int h, int w);
/* Changes one image in place; scratch holds h * w * c floats. */
void fm_augment_image(const fm_augment *a, uint64_t seed, uint64_t key, int h, int w, int c,
                      float *img, float *scratch);

#endif
