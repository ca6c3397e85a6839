/* fm_conv_implicit: AVX-512 convolution kernels that read the images in place of a patch matrix
 * ("implicit GEMM"), for convolutions over 16, 32, 64, ... channels such as ResNet's 3x3 layers.
 *
 * im2col copies every input value kh * kw times into the patch matrix and col2im adds the patch
 * gradients back one by one; at these sizes that copying costs about as much as the arithmetic.
 * These kernels instead keep a tile of outputs in AVX-512 registers (28 vectors: one row of 28
 * pixels x 16 channels, 14 x 32, 7 x 64, ...) and walk the taps of the kernel over a zero-padded
 * copy of one image (or, for 3x3 stride-1 "same" layers, the image itself), so each input value
 * is read from L1 or L2 where it lies:
 *  - forward: y = conv(x, w) (+ bias) (then ReLU), any stride 1 or 2, any padding;
 *  - input gradient: the transposed convolution, the same kernel run over the padded output
 *    gradient with each tap's weights transposed (a stride-s layer splits into s x s such
 *    convolutions, one per parity class of input pixels), overwriting dx;
 *  - weight gradient: dw (kh x kw x cin x cout) = for each tap, the sum over every output pixel
 *    of every image of x(shifted)^T dy, overwriting dw.
 * Each function returns 1 when it has done the work, 0 when the case is not one it handles (no
 * AVX-512, grouped, a kernel over 7x7, a stride over 2 in forward, channel counts that are not
 * multiples of 16: output channels for forward, input channels for the input gradient): the
 * caller then uses im2col + fm_gemm. Which convolutions go here is the caller's choice
 * (fm_layers.c).
 *
 * Results are deterministic: every sum runs in a fixed order that depends on the geometry only
 * (forward: taps in order, input channels in order within a tap; weight gradient: images in
 * order, pixels in row-major order), never on the number of images per call or on timing. They
 * differ from im2col + fm_gemm in the last bits (another summation order). NaN and infinities
 * propagate as in the product: the padding is zeros that take part in the sums. */
#ifndef FM_CONV_IMPLICIT_H
#define FM_CONV_IMPLICIT_H

#include <stddef.h>

#include "fm_layers.h"

/* 0 turns these kernels off (to compare with im2col + GEMM in tests and benchmarks). */
extern int fm_conv_implicit_enabled;
/* 0 sends 3x3 stride-1 "same" layers whose output row fits one tile (28 x 16 channels, 14 x 32,
 * 7 x 64, ...) through the blocked-copy kernel too, instead of reading the NHWC images in place;
 * both give the same bits (for tests and benchmarks). */
extern int fm_conv_implicit_rows;

/* Scratch floats the functions need for g (independent of the number of images): one padded
 * image, the transposed weights, the weight gradient's partial sums and a block of padded images. */
size_t fm_conv_implicit_scratch_floats(const fm_conv_geom *g);

int fm_conv_implicit_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                             const float *bias, float *y, int relu, float *scratch);
/* dx (n images, h x w x cin, overwritten) and dw (kh x kw x cin x cout, overwritten: the sum
 * over the n images) from dy (oh x ow x cout); either may be NULL to skip it. No bias gradient
 * (the caller sums dy). Declines (0, nothing written) when a gradient asked for is not one it
 * handles: dx needs cin a multiple of 16; dw takes any channel counts. Both gradients go a block
 * of images at a time, so the block's dy is read from memory once for the two. */
int fm_conv_implicit_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *scratch);

#endif
