/* fm_tensor: shapes, elementwise arithmetic, reductions and the matrix product (through CBLAS). */
#include "fm_tensor.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_error.h"

const char *fm_dims_str(int ndim, const int64_t *dims, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, i ? "x%lld" : "%lld", (long long)dims[i]);
  return buf;
}

int fm_shape_set(fm_tensor *t, int ndim, const int64_t *shape) {
  if (ndim < 1 || ndim > FM_MAX_DIMS)
    return fm_fail("a tensor has 1 to %d dimensions, not %d", FM_MAX_DIMS, ndim);
  char s[FM_SHAPE_STR];
  /* A zero anywhere makes the product 0, so every dimension is bounded on its own first. */
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return fm_fail("shape %s: dimension %d is negative (%lld)",
                     fm_dims_str(ndim, shape, s, sizeof s), i + 1, (long long)shape[i]);
    if (shape[i] > FM_MAX_NUMEL)
      return fm_fail("shape %s: a tensor of more than %lld elements is refused",
                     fm_dims_str(ndim, shape, s, sizeof s), (long long)FM_MAX_NUMEL);
  }
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] > 0 && numel > FM_MAX_NUMEL / shape[i])
      return fm_fail("shape %s: a tensor of more than %lld elements is refused",
                     fm_dims_str(ndim, shape, s, sizeof s), (long long)FM_MAX_NUMEL);
    numel *= shape[i];
  }
  t->ndim = ndim;
  for (int i = 0; i < FM_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
  t->numel = numel;
  return FM_OK;
}

const char *fm_shape_str(const fm_tensor *t, char *buf, size_t size) {
  return fm_dims_str(t->ndim, t->shape, buf, size);
}

int fm_reshape_shape(const fm_tensor *t, int ndim, const int64_t *want, fm_tensor *out) {
  char from[FM_SHAPE_STR], to[FM_SHAPE_STR];
  if (ndim < 1 || ndim > FM_MAX_DIMS)
    return fm_fail("a tensor has 1 to %d dimensions, not %d", FM_MAX_DIMS, ndim);
  fm_shape_str(t, from, sizeof from);
  fm_dims_str(ndim, want, to, sizeof to);
  int infer = -1;
  int64_t known = 1, shape[FM_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    shape[i] = want[i];
    if (want[i] == -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (want[i] == -1)
      return fm_fail("a %s tensor cannot become %s: only one dimension may be -1", from, to);
    if (want[i] < 0 || want[i] > FM_MAX_NUMEL)
      return fm_fail("a %s tensor cannot become %s: dimension %d is %lld", from, to, i + 1,
                     (long long)want[i]);
    /* Once the product passes the tensor's size it can never come back (all factors are >= 1
     * or a zero that is caught below), so it is clamped instead of overflowing. */
    known = known > FM_MAX_NUMEL / (want[i] ? want[i] : 1) ? FM_MAX_NUMEL + 1 : known * want[i];
    if (want[i] == 0) known = 0;
  }
  if (infer >= 0) {
    if (known == 0)
      return fm_fail("a %s tensor cannot become %s: -1 is ambiguous beside a zero dimension",
                     from, to);
    if (known > t->numel || t->numel % known != 0)
      return fm_fail("a %s tensor (%lld elements) cannot become %s", from, (long long)t->numel, to);
    shape[infer] = t->numel / known;
  } else if (known != t->numel) {
    return fm_fail("a %s tensor (%lld elements) cannot become %s", from, (long long)t->numel, to);
  }
  return fm_shape_set(out, ndim, shape);
}

int fm_arange_shape(double start, double stop, double step, fm_tensor *out) {
  if (!isfinite(start) || !isfinite(stop) || !isfinite(step) || step == 0)
    return fm_fail("start %g, stop %g, step %g: start and stop must be finite, and step finite "
                   "and non-zero", start, stop, step);
  double count = ceil((stop - start) / step); /* inf when stop - start overflows */
  if (!(count > 0)) count = 0;
  if (count > (double)FM_MAX_NUMEL)
    return fm_fail("start %g, stop %g, step %g would make %.0f elements, more than %lld", start,
                   stop, step, count, (long long)FM_MAX_NUMEL);
  int64_t shape[1] = {(int64_t)count};
  return fm_shape_set(out, 1, shape);
}

int fm_same_shape(const fm_tensor *a, const fm_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

void fm_fill(fm_tensor *t, float value) {
  for (int64_t i = 0; i < t->numel; i++) t->data[i] = value;
}

void fm_arange(fm_tensor *t, double start, double step) {
  for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)(start + step * (double)i);
}

void fm_copy(fm_tensor *dst, const fm_tensor *src) {
  if (dst->data != src->data) memmove(dst->data, src->data, (size_t)src->numel * sizeof(float));
}

/* ---- elementwise ---- */

/* Length of the row vector `v` when it can broadcast over the rows of `m`: a 1-D tensor or a 1xC
 * matrix whose length is m's last dimension. 0 when it cannot. */
static int64_t row_vector_len(const fm_tensor *v, const fm_tensor *m) {
  int64_t last = m->shape[m->ndim - 1];
  if (m->ndim < 2) return 0;
  if (v->ndim == 1 && v->shape[0] == last) return last;
  if (v->ndim == 2 && v->shape[0] == 1 && v->shape[1] == last) return last;
  return 0;
}

int fm_binop_shape(const fm_tensor *a, const fm_tensor *b, fm_tensor *out) {
  const fm_tensor *big = NULL;
  if (fm_same_shape(a, b))
    big = a;
  else if (row_vector_len(b, a))
    big = a;
  else if (row_vector_len(a, b))
    big = b;
  if (!big) {
    char sa[FM_SHAPE_STR], sb[FM_SHAPE_STR];
    return fm_fail("shapes %s and %s do not fit (same shape, or a row vector over rows)",
                   fm_shape_str(a, sa, sizeof sa), fm_shape_str(b, sb, sizeof sb));
  }
  return fm_shape_set(out, big->ndim, big->shape);
}

static inline float apply(fm_binop op, float x, float y) {
  switch (op) {
    case FM_ADD: return x + y;
    case FM_SUB: return x - y;
    case FM_MUL: return x * y;
    default: return x / y;
  }
}

#define BINOP_LOOP(expr)                                                                           \
  for (int64_t i = 0; i < n; i++) o[i] = (expr);

void fm_binop_tt(fm_binop op, const fm_tensor *a, const fm_tensor *b, fm_tensor *out) {
  float *o = out->data;
  const float *x = a->data, *y = b->data;
  int64_t n = out->numel;
  if (a->numel == b->numel) {
    switch (op) {
      case FM_ADD: BINOP_LOOP(x[i] + y[i]) break;
      case FM_SUB: BINOP_LOOP(x[i] - y[i]) break;
      case FM_MUL: BINOP_LOOP(x[i] * y[i]) break;
      case FM_DIV: BINOP_LOOP(x[i] / y[i]) break;
    }
    return;
  }
  /* One side is a row vector repeated over the rows of the other. */
  int a_is_row = a->numel < b->numel;
  int64_t cols = a_is_row ? a->numel : b->numel;
  for (int64_t i = 0; i < n; i++) {
    float xv = a_is_row ? x[i % cols] : x[i];
    float yv = a_is_row ? y[i] : y[i % cols];
    o[i] = apply(op, xv, yv);
  }
}

void fm_binop_ts(fm_binop op, const fm_tensor *a, float s, int scalar_first, fm_tensor *out) {
  float *o = out->data;
  const float *x = a->data;
  int64_t n = a->numel;
  if (scalar_first) {
    switch (op) {
      case FM_ADD: BINOP_LOOP(s + x[i]) break;
      case FM_SUB: BINOP_LOOP(s - x[i]) break;
      case FM_MUL: BINOP_LOOP(s * x[i]) break;
      case FM_DIV: BINOP_LOOP(s / x[i]) break;
    }
  } else {
    switch (op) {
      case FM_ADD: BINOP_LOOP(x[i] + s) break;
      case FM_SUB: BINOP_LOOP(x[i] - s) break;
      case FM_MUL: BINOP_LOOP(x[i] * s) break;
      case FM_DIV: BINOP_LOOP(x[i] / s) break;
    }
  }
}

void fm_unop_apply(fm_unop op, const fm_tensor *a, fm_tensor *out) {
  float *o = out->data;
  const float *x = a->data;
  int64_t n = a->numel;
  switch (op) {
    case FM_NEG: BINOP_LOOP(-x[i]) break;
    case FM_ABS: BINOP_LOOP(fabsf(x[i])) break;
    case FM_EXP: BINOP_LOOP(expf(x[i])) break;
    case FM_LOG: BINOP_LOOP(logf(x[i])) break;
    case FM_SQRT: BINOP_LOOP(sqrtf(x[i])) break;
  }
}

/* ---- matrix product ---- */

int fm_matmul_shape(const fm_tensor *a, const fm_tensor *b, fm_tensor *out) {
  char sa[FM_SHAPE_STR], sb[FM_SHAPE_STR];
  if (a->ndim != 2 || (b->ndim != 2 && b->ndim != 1) || a->shape[1] != b->shape[0])
    return fm_fail("%s and %s do not fit", fm_shape_str(a, sa, sizeof sa),
                   fm_shape_str(b, sb, sizeof sb));
  if (a->shape[0] > INT32_MAX || a->shape[1] > INT32_MAX || (b->ndim == 2 && b->shape[1] > INT32_MAX))
    return fm_fail("%s and %s are too large for BLAS", fm_shape_str(a, sa, sizeof sa),
                   fm_shape_str(b, sb, sizeof sb));
  int64_t shape[2] = {a->shape[0], b->ndim == 2 ? b->shape[1] : 1};
  return fm_shape_set(out, b->ndim, shape);
}

void fm_matmul(const fm_tensor *a, const fm_tensor *b, fm_tensor *out) {
  int n = (int)a->shape[0], k = (int)a->shape[1];
  int m = b->ndim == 2 ? (int)b->shape[1] : 1;
  if (n == 0 || m == 0) return;
  if (k == 0) {
    fm_fill(out, 0.0f);
    return;
  }
  if (m == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, a->data, k, b->data, 1, 0.0f, out->data,
                1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, k, 1.0f, a->data, k, b->data, m,
                0.0f, out->data, m);
}

void fm_transpose(const fm_tensor *a, fm_tensor *out) {
  int64_t rows = a->shape[0], cols = a->shape[1];
  /* Blocked so that both sides stay in cache for large matrices. */
  const int64_t B = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += B)
    for (int64_t j0 = 0; j0 < cols; j0 += B)
      for (int64_t i = i0; i < i0 + B && i < rows; i++)
        for (int64_t j = j0; j < j0 + B && j < cols; j++) out->data[j * rows + i] = a->data[i * cols + j];
}

/* ---- reductions ---- */

/* Reduces n values spaced `stride` apart. */
static double reduce_strided(fm_reduce op, const float *x, int64_t n, int64_t stride) {
  switch (op) {
    case FM_SUM:
    case FM_MEAN: {
      double s = 0.0;
      for (int64_t i = 0; i < n; i++) s += x[i * stride];
      return op == FM_SUM ? s : (n ? s / (double)n : NAN);
    }
    case FM_STD: {
      if (!n) return NAN;
      double mean = 0.0, m2 = 0.0;
      for (int64_t i = 0; i < n; i++) mean += x[i * stride];
      mean /= (double)n;
      for (int64_t i = 0; i < n; i++) {
        double d = x[i * stride] - mean;
        m2 += d * d;
      }
      return sqrt(m2 / (double)n);
    }
    case FM_MIN:
    case FM_MAX:
    case FM_ARGMAX: {
      int64_t best = 0;
      for (int64_t i = 1; i < n; i++) {
        float v = x[i * stride], b = x[best * stride];
        if (op == FM_MIN ? v < b : v > b) best = i;
      }
      return op == FM_ARGMAX ? (double)best : (double)x[best * stride];
    }
  }
  return NAN;
}

int fm_reduce_all(fm_reduce op, const fm_tensor *a, double *result) {
  if (a->numel == 0 && (op == FM_MIN || op == FM_MAX || op == FM_ARGMAX))
    return fm_fail("the tensor is empty");
  *result = reduce_strided(op, a->data, a->numel, 1);
  return FM_OK;
}

int fm_reduce_shape(const fm_tensor *a, int dim, fm_tensor *out) {
  if (dim < 0 || dim >= a->ndim)
    return fm_fail("dimension %d out of range (the tensor has %d)", dim + 1, a->ndim);
  int64_t shape[FM_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < a->ndim; i++)
    if (i != dim) shape[nd++] = a->shape[i];
  if (nd == 0) shape[nd++] = 1;
  return fm_shape_set(out, nd, shape);
}

int fm_reduce_dim(fm_reduce op, const fm_tensor *a, int dim, fm_tensor *out) {
  if (fm_reduce_shape(a, dim, out) != FM_OK) return FM_ERR;
  int64_t n = a->shape[dim];
  if (n == 0 && (op == FM_MIN || op == FM_MAX || op == FM_ARGMAX))
    return fm_fail("dimension %d is empty", dim + 1);
  int64_t inner = 1, outer = 1;
  for (int i = dim + 1; i < a->ndim; i++) inner *= a->shape[i];
  for (int i = 0; i < dim; i++) outer *= a->shape[i];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t in = 0; in < inner; in++)
      out->data[o * inner + in] = (float)reduce_strided(op, a->data + o * n * inner + in, n, inner);
  return FM_OK;
}

/* Smallest and largest finite values of a; FM_ERR when it has none. */
static int finite_range(const fm_tensor *a, double *lo, double *hi) {
  int any = 0;
  for (int64_t i = 0; i < a->numel; i++) {
    double v = a->data[i];
    if (!isfinite(v)) continue;
    if (!any || v < *lo) *lo = v;
    if (!any || v > *hi) *hi = v;
    any = 1;
  }
  return any ? FM_OK : FM_ERR;
}

int fm_histc(const fm_tensor *a, int64_t bins, double lo, double hi, fm_tensor *out) {
  if (bins < 1 || bins > FM_MAX_NUMEL)
    return fm_fail("bins must be from 1 to %lld, not %lld", (long long)FM_MAX_NUMEL,
                   (long long)bins);
  if (!isfinite(lo) || !isfinite(hi))
    return fm_fail("the range [%g, %g] must be finite", lo, hi);
  if (lo == hi) {
    /* The data's own range, over its finite values (NaN and infinities are not counted). */
    if (finite_range(a, &lo, &hi) != FM_OK) lo = hi = 0.0;
    if (lo == hi) hi = lo + 1.0;
    if (lo == hi) hi = nextafter(lo, INFINITY); /* |lo| so large that 1 is lost */
  }
  if (!(lo < hi)) return fm_fail("the range [%g, %g] is empty", lo, hi);
  double scale = (double)bins / (hi - lo);
  if (!isfinite(scale) || !isfinite(hi - lo))
    return fm_fail("the range [%g, %g] is too narrow or too wide for %lld bins", lo, hi,
                   (long long)bins);
  int64_t shape[1] = {bins};
  if (fm_shape_set(out, 1, shape) != FM_OK) return FM_ERR;
  /* Counted in integers: a float stops counting exactly past 2^24, and 60000 images hold 47M
   * pixels. */
  int64_t *counts = calloc((size_t)bins, sizeof *counts);
  if (!counts) return fm_fail("out of memory for %lld bins", (long long)bins);
  for (int64_t i = 0; i < a->numel; i++) {
    double v = a->data[i];
    if (!(v >= lo && v <= hi)) continue; /* also drops NaN */
    double pos = (v - lo) * scale;       /* in [0, bins] give or take rounding */
    int64_t b = pos < (double)bins ? (int64_t)pos : bins - 1;
    counts[b]++;
  }
  for (int64_t b = 0; b < bins; b++) out->data[b] = (float)counts[b];
  free(counts);
  return FM_OK;
}
