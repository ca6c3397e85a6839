/* fm_conv_direct: direct (no im2col) AVX-512 convolution kernels for inputs with one channel,
 * such as a network's first layer on grayscale images. There the patch matrix would have only
 * kh * kw columns, so building it costs as much as the product; a direct kernel keeps the taps
 * in registers instead. Each function returns 1 when it has done the work, 0 when the case is not
 * one it handles (no AVX-512, more than one input channel, a kernel over 7x7): the caller then
 * uses im2col + fm_gemm. */
#ifndef FM_CONV_DIRECT_H
#define FM_CONV_DIRECT_H

#include <stddef.h>

#include "fm_layers.h"

/* 0 turns the direct kernels off (to compare with im2col + GEMM in tests and benchmarks). */
extern int fm_conv_direct_enabled;

/* Scratch the functions need: one zero-padded image. */
size_t fm_conv_direct_scratch_floats(const fm_conv_geom *g);
int fm_conv_direct_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                           const float *bias, float *y, int relu, float *scratch);
/* dw (kh x kw x 1 x cout) and db (cout, may be NULL) = sums over the n images. */
int fm_conv_direct_weight_grad(const fm_conv_geom *g, int n, const float *x, const float *dy,
                               float *dw, float *db, float *scratch);

#endif
