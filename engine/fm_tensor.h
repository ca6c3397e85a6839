/* fm_tensor: dense float32 tensors of 1 to 4 dimensions, row-major and contiguous.
 *
 * A tensor is a header that points at memory the caller owns (THNN's rule: the caller owns every
 * buffer). Operations take their inputs and an output of the right shape; the *_shape helpers say
 * what that shape is, and fail with a message naming both shapes when the inputs do not fit.
 * Indices are 0-based here; the Lua binding adds one. */
#ifndef FM_TENSOR_H
#define FM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define FM_MAX_DIMS 4
/* Sizes beyond this are refused as absurd rather than risking overflow in size arithmetic. */
#define FM_MAX_NUMEL ((int64_t)1 << 34)

typedef struct fm_tensor {
  int ndim;
  int64_t shape[FM_MAX_DIMS];
  int64_t numel;
  float *data;
} fm_tensor;

/* Sets ndim, shape and numel (data is left alone). Fails on 0 or more than 4 dimensions, a
 * negative dimension, or a size over FM_MAX_NUMEL. Zero-length dimensions are allowed. */
int fm_shape_set(fm_tensor *t, int ndim, const int64_t *shape);
/* Room for any shape as text: 4 dimensions of up to 20 characters and 3 x's. */
#define FM_SHAPE_STR 96
/* "3x4" into buf; returns buf. */
const char *fm_shape_str(const fm_tensor *t, char *buf, size_t size);
/* The same for a shape that is not (yet) a tensor's: "2x-1". */
const char *fm_dims_str(int ndim, const int64_t *dims, char *buf, size_t size);
/* The shape of t reshaped to want (ndim dimensions, one of them may be -1: inferred). Fails with a
 * message naming both shapes when the sizes differ, a dimension is negative or absurd, more than
 * one is -1, or -1 sits beside a zero dimension (any size would do). */
int fm_reshape_shape(const fm_tensor *t, int ndim, const int64_t *want, fm_tensor *out);
/* The shape of numpy's arange(start, stop, step): ceil((stop - start) / step) elements, or none.
 * Fails on a non-finite start, stop or step, a zero step, or more than FM_MAX_NUMEL elements. */
int fm_arange_shape(double start, double stop, double step, fm_tensor *out);
int fm_same_shape(const fm_tensor *a, const fm_tensor *b);

void fm_fill(fm_tensor *t, float value);
void fm_arange(fm_tensor *t, double start, double step);
void fm_copy(fm_tensor *dst, const fm_tensor *src); /* same numel */

/* Elementwise arithmetic. */
typedef enum { FM_ADD, FM_SUB, FM_MUL, FM_DIV } fm_binop;
/* Shape of a (op) b: the same shape, or one side a row vector (1-D of the other's last dimension,
 * or 1xC) broadcast over the rows of the other. */
int fm_binop_shape(const fm_tensor *a, const fm_tensor *b, fm_tensor *out);
/* out = a (op) b; out has the shape from fm_binop_shape and may alias a or b. */
void fm_binop_tt(fm_binop op, const fm_tensor *a, const fm_tensor *b, fm_tensor *out);
/* out = a (op) s, or s (op) a when scalar_first; out may alias a. */
void fm_binop_ts(fm_binop op, const fm_tensor *a, float s, int scalar_first, fm_tensor *out);

typedef enum { FM_NEG, FM_ABS, FM_EXP, FM_LOG, FM_SQRT } fm_unop;
void fm_unop_apply(fm_unop op, const fm_tensor *a, fm_tensor *out); /* out may alias a */

/* Matrix product of 2-D a (n x k) and b (k x m), or of a and a 1-D b (k) giving a 1-D result. */
int fm_matmul_shape(const fm_tensor *a, const fm_tensor *b, fm_tensor *out);
void fm_matmul(const fm_tensor *a, const fm_tensor *b, fm_tensor *out);

/* 2-D transpose: out is cols x rows and must not alias a. */
void fm_transpose(const fm_tensor *a, fm_tensor *out);

/* Reductions. FM_STD is the population standard deviation (ddof = 0, as numpy). FM_ARGMAX gives
 * the 0-based index of the first maximum. Sums are accumulated in double. */
typedef enum { FM_SUM, FM_MEAN, FM_STD, FM_MIN, FM_MAX, FM_ARGMAX } fm_reduce;
/* Over all elements; FM_MIN/FM_MAX/FM_ARGMAX of an empty tensor fail. */
int fm_reduce_all(fm_reduce op, const fm_tensor *a, double *result);
/* Over dimension dim (0-based): out has a's shape without that dimension (a 1-D tensor of length 1
 * when a is 1-D). */
int fm_reduce_shape(const fm_tensor *a, int dim, fm_tensor *out);
int fm_reduce_dim(fm_reduce op, const fm_tensor *a, int dim, fm_tensor *out);

/* Histogram of a into bins equal-width bins over [lo, hi] (values equal to hi go in the last bin,
 * values outside and NaN are not counted). lo == hi means the min and max of the data's finite
 * values. Fails on a non-finite or empty range and on bins outside 1..FM_MAX_NUMEL. */
int fm_histc(const fm_tensor *a, int64_t bins, double lo, double hi, fm_tensor *out);

#endif
