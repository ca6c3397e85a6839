/* fm_layers: forward and backward passes of the network layers over a batch of images.
 *
 * Layout: float32, NHWC ("channels last", as Keras): image i, row y, column x, channel c is at
 * ((i * h + y) * w + x) * c_count + c. A batch of n images of one channel is the same memory as an
 * n x 784 matrix, and flattening keeps Keras's order. Weights are stored [inputs][outputs]:
 * dense w[i * out + o]; conv2d w[((ky * kw + kx) * cin + ci) * cout + co] (Keras's HWIO).
 * NHWC lets a whole batch go through a convolution as one matrix product (rows = pixels of every
 * image, columns = output channels) and makes im2col copy runs of kw * cin contiguous floats.
 *
 * Each call works on the n images it is given and writes its outputs and gradients; parameter
 * gradients are overwritten (the sum over these n images), never accumulated. A scratch argument
 * is memory of the size the matching *_scratch_floats says, 64-byte aligned; the caller owns it.
 * The functions run on the calling thread only, and check nothing: fm_net validates shapes. */
#ifndef FM_LAYERS_H
#define FM_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "fm_rng.h"

/* ---- dense: y[b][o] = sum_i x[b][i] w[i][o] + bias[o], optionally followed by ReLU ---- */
size_t fm_dense_scratch_floats(int n, int in);
void fm_dense_forward(int n, int in, int out, const float *x, const float *w, const float *bias,
                      float *y, int relu, float *scratch);
/* dx (n x in), dw (in x out) and db (out) may each be NULL to skip them; bias may be NULL. */
void fm_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db, float *scratch);

/* ---- conv2d ---- */
typedef struct fm_conv_geom {
  int h, w, cin;          /* input image */
  int kh, kw, cout;       /* kernel and filters */
  int stride;             /* the same along both axes */
  int groups;             /* 1: every filter sees every input channel; cin (= cout): depthwise,
                             filter c sees channel c only */
  int pad_top, pad_left;  /* "same": half the padding that makes the output ceil(size / stride)
                             (the odd one goes at the bottom/right, as TensorFlow); "valid": 0 */
  int oh, ow;             /* output: (h + padding - kh) / stride + 1 */
  int k;                  /* kh * kw * cin / groups, the length of one patch */
  int chunk;              /* images per im2col chunk (keeps the patch matrix in L2) */
} fm_conv_geom;

/* The most floats of one patch (kh * kw * cin / groups) and of one image's patch matrix (oh * ow *
 * patch): they are the int sizes of the matrix product and of im2col's loops. */
#define FM_CONV_MAX_PATCH_FLOATS INT32_MAX

/* Fails (naming the shapes) when the kernel does not fit the image, a size is not positive, the
 * patch or one image's patch matrix would pass FM_CONV_MAX_PATCH_FLOATS, or groups is neither 1
 * nor a depthwise cin = cout. */
int fm_conv_geom_init(fm_conv_geom *g, int h, int w, int cin, int kh, int kw, int cout, int same,
                      int stride, int groups);
size_t fm_conv_scratch_floats(const fm_conv_geom *g);
void fm_conv_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                     const float *bias, float *y, int relu, float *scratch);
/* dx, and dw, may be NULL to skip them; db may be NULL (no bias). bias may be NULL in forward. */
void fm_conv_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                      const float *dy, float *dx, float *dw, float *db, float *scratch);

/* ---- max-pool, window size x size, stride size; the output is h/size x w/size (floor) ---- */
void fm_maxpool_forward(int n, int h, int w, int c, int size, const float *x, float *y);
/* Routes each output gradient to the first maximum of its window (ties go to the first in
 * row-major order); every other input gets 0. */
void fm_maxpool_backward(int n, int h, int w, int c, int size, const float *x, const float *dy,
                         float *dx);
/* The same when x is a ReLU's output, with the ReLU's backward pass folded in (relu_mask = 1): a
 * window whose maximum is not positive passes no gradient. Saves a pass over the larger tensor. */
void fm_maxpool_backward_relu(int n, int h, int w, int c, int size, const float *x,
                              const float *dy, float *dx, int relu_mask);

/* ---- ReLU (in place allowed); like max-pool it lets NaN through, so divergence reaches the loss ---- */
void fm_relu_forward(int64_t count, const float *x, float *y);
/* From the layer's output y: dx = dy where y > 0, else 0. dx may alias dy. */
void fm_relu_backward(int64_t count, const float *y, const float *dy, float *dx);

/* ---- inverted dropout: y = x * mask, mask 0 (probability rate) or 1 / (1 - rate) ----
 * mask[i] depends only on (key, i) (a counter-based hash), so any part of a mask can be made
 * alone and in any order, and the vector and plain versions give the same mask. */
void fm_dropout_mask(uint64_t key, int64_t count, float rate, float *mask);
/* Units [first, first + count) of the same mask. */
void fm_dropout_mask_at(uint64_t key, int64_t first, int64_t count, float rate, float *mask);
/* y = x * mask; also the backward pass (dx = dy * mask). y may alias x. */
void fm_dropout_apply(int64_t count, const float *x, const float *mask, float *y);

/* ---- ReLU6: min(max(x, 0), 6), in place allowed ---- */
void fm_relu6_forward(int64_t count, const float *x, float *y);
/* From the output y: dx = dy where 0 < y < 6, else 0. dx may alias dy. */
void fm_relu6_backward(int64_t count, const float *y, const float *dy, float *dx);

/* ---- average pooling, window size x size, stride size (floor, as max-pool) ---- */
void fm_avgpool_forward(int n, int h, int w, int c, int size, const float *x, float *y);
/* Every input of a window gets dy / size^2; rows and columns left over get 0. */
void fm_avgpool_backward(int n, int h, int w, int c, int size, const float *dy, float *dx);
/* ---- global average pooling: the mean of each channel over the h x w pixels ---- */
void fm_global_avgpool_forward(int n, int pixels, int c, const float *x, float *y);
void fm_global_avgpool_backward(int n, int pixels, int c, const float *dy, float *dx);

/* ---- batch normalisation over the channels of NHWC data (rows of c values) ----
 * Training normalises with the batch's mean and variance; the network combines the per-image sums
 * below in image order. With a = scale / std and b = shift - mean * a per channel, forward is
 * y = x * a + b; backward is dx = a * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m) with
 * xhat = (x - mean) / std and m the values per channel in the batch, which is dx = a * dy + p * x + q
 * for per-channel p and q (fm_bn_backward_coefs). */
/* sums[ch] += sum over the rows of x, sums[c + ch] += sum of x^2 (doubles, row order). */
void fm_bn_sums(int64_t rows, int c, const float *x, double *sums);
/* sums[ch] += sum of dy, sums[c + ch] += sum of dy * x. */
void fm_bn_grad_sums(int64_t rows, int c, const float *x, const float *dy, double *sums);
/* y = x * a + b, then ReLU when relu (y may alias x). */
void fm_bn_apply(int64_t rows, int c, const float *x, const float *a, const float *b, float *y,
                 int relu);
/* dx = a * dy + p * x + q (dx may alias dy). */
void fm_bn_backward(int64_t rows, int c, const float *x, const float *dy, const float *a,
                    const float *p, const float *q, float *dx);

/* ---- add: y = sum of k inputs of count floats (y may alias the first) ---- */
void fm_add_forward(int64_t count, int k, const float *const *x, float *y);

/* ---- softmax and cross-entropy ---- */
/* probs = softmax of each row of logits (n x classes); may alias. */
void fm_softmax(int n, int classes, const float *logits, float *probs);
/* Returns the sum over the n rows of -log softmax(logits)[label] (in double, computed stably from
 * max-shifted logits). dlogits (may be NULL) = (softmax - onehot(label)) * scale, with scale
 * 1 / (the whole batch) for a mean loss. *correct (may be NULL) counts rows whose first largest
 * logit is the label. Labels must be < classes. */
double fm_softmax_xent(int n, int classes, const float *logits, const uint8_t *labels, float scale,
                       float *dlogits, int *correct);
/* The same against smoothed targets (Szegedy et al.): 1 - smoothing + smoothing / classes on the
 * label and smoothing / classes on every other class; smoothing 0 is fm_softmax_xent exactly. */
double fm_softmax_xent_smoothed(int n, int classes, const float *logits, const uint8_t *labels,
                                float smoothing, float scale, float *dlogits, int *correct);

/* ---- initialisation ---- */
/* He: normal with standard deviation sqrt(2 / fan_in), for layers followed by ReLU. */
void fm_init_he(fm_rng *r, float *w, int64_t count, int fan_in);
/* Glorot (Xavier) uniform in +-sqrt(6 / (fan_in + fan_out)), for the others. */
void fm_init_glorot(fm_rng *r, float *w, int64_t count, int fan_in, int fan_out);

#endif
