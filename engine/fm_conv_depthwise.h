/* fm_conv_depthwise: AVX-512 depthwise convolution (groups = channels = filters: channel c has
 * its own kh x kw filter), as MobileNet uses it.
 *
 * NHWC puts a pixel's channels side by side, so the channels are the vector dimension: for each
 * image and block of 16 channels, the block goes into a zero-padded copy and several output
 * pixels are summed side by side over the taps. The sums run in a fixed order (taps in order;
 * the gradients of the weights over images, then pixels, in order), so results are deterministic;
 * they differ from the plain loops of fm_layers.c in the last bits (fused multiply-adds) and take
 * the padding's zeros into the sums as im2col does (a non-finite weight makes its whole channel
 * NaN). Each function returns 1 when it has done the work, 0 when the case is not one it handles
 * (no AVX-512, not depthwise, a kernel over 7x7, a stride over 2). */
#ifndef FM_CONV_DEPTHWISE_H
#define FM_CONV_DEPTHWISE_H

#include <stddef.h>

#include "fm_layers.h"

/* Scratch floats: one padded block of 16 channels of an image or of its output gradient. */
size_t fm_conv_depthwise_scratch_floats(const fm_conv_geom *g);
/* y = conv(x, w) (+ bias) (then ReLU, keeping NaN). */
int fm_conv_depthwise_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                              const float *bias, float *y, int relu, float *scratch);
/* dx, dw and db (each may be NULL) overwritten: dx the adjoint, dw and db the sums over the n
 * images. */
int fm_conv_depthwise_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db, float *scratch);

#endif
