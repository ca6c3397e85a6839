/* fm_layers: dense, conv2d (im2col + fm_gemm), max-pool, ReLU, dropout, softmax cross-entropy
 * and weight initialisation, over NHWC float32 batches. See fm_layers.h for the layouts. */
#include "fm_layers.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fm_check.h"
#include "fm_conv_depthwise.h"
#include "fm_conv_direct.h"
#include "fm_conv_implicit.h"
#include "fm_error.h"
#include "fm_gemm.h"

/* Patch-matrix floats per im2col chunk: 256 KB, so that the chunk and the matrix product reading
 * it stay in L2. */
#define CONV_CHUNK_FLOATS ((size_t)1 << 16)

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* db[o] = sum over rows of dy, row by row so the order is fixed. */
static void column_sums(int64_t rows, int cols, const float *dy, float *db) {
  memset(db, 0, sizeof(float) * (size_t)cols);
  for (int64_t r = 0; r < rows; r++) {
    const float *row = dy + r * cols;
#pragma omp simd
    for (int o = 0; o < cols; o++) db[o] += row[o];
  }
}

/* ---- dense ---- */

/* The product's scratch, then room for a transposed input gradient. */
size_t fm_dense_scratch_floats(int n, int in) {
  return FM_GEMM_SCRATCH_FLOATS + round16((size_t)n * (size_t)in);
}

void fm_dense_forward(int n, int in, int out, const float *x, const float *w, const float *bias,
                      float *y, int relu, float *scratch) {
  FM_ASSERT(n >= 0 && in >= 1 && out >= 1);
  fm_gemm(0, 0, n, out, in, x, in, w, out, 0.0f, y, out, bias, relu, scratch);
}

void fm_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db, float *scratch) {
  FM_ASSERT(n >= 0 && in >= 1 && out >= 1); /* db may be NULL: a dense without bias */
  if (dw) {
    fm_gemm(1, 0, in, out, n, x, in, dy, out, 0.0f, dw, out, NULL, 0, scratch);
    if (db) column_sums(n, out, dy, db);
  }
  if (!dx) return;
  if ((int64_t)(in + out) * n < (int64_t)in * out) {
    /* dx = dy w^T would copy all of w transposed into the product's scratch; for a small batch
     * it is cheaper to form dx^T = w dy^T (copying only dy) and transpose that. */
    float *dxt = scratch + FM_GEMM_SCRATCH_FLOATS;
    fm_gemm(0, 1, in, n, out, w, out, dy, out, 0.0f, dxt, n, NULL, 0, scratch);
    fm_gemm_transpose(in, n, dxt, n, dx, in);
  } else {
    fm_gemm(0, 1, n, in, out, dy, out, w, out, 0.0f, dx, in, NULL, 0, scratch);
  }
}

/* ---- conv2d ---- */

/* Depthwise convolution (groups = cin = cout): every channel has its own kh x kw filter, so a
 * patch matrix would be mostly zeros. These loops run over output pixels with the channels as the
 * vector dimension (NHWC keeps them side by side), in a fixed order. */
static void depthwise_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                              const float *bias, float *y, int relu) {
  const int C = g->cin;
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * g->h * g->w * C;
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++) {
        float *out = y + (((size_t)i * g->oh + oy) * g->ow + ox) * C;
        if (bias)
          memcpy(out, bias, sizeof(float) * (size_t)C);
        else
          memset(out, 0, sizeof(float) * (size_t)C);
        for (int ky = 0; ky < g->kh; ky++) {
          int iy = oy * g->stride + ky - g->pad_top;
          if (iy < 0 || iy >= g->h) continue;
          for (int kx = 0; kx < g->kw; kx++) {
            int ix = ox * g->stride + kx - g->pad_left;
            if (ix < 0 || ix >= g->w) continue;
            const float *p = img + ((size_t)iy * g->w + ix) * C;
            const float *k = w + (size_t)(ky * g->kw + kx) * C;
#pragma omp simd
            for (int c = 0; c < C; c++) out[c] += p[c] * k[c];
          }
        }
        if (relu)
#pragma omp simd
          for (int c = 0; c < C; c++) out[c] = out[c] < 0.0f ? 0.0f : out[c];
      }
  }
}

/* dx = the adjoint of the forward pass (overwritten); dw, db = sums over the n images. */
static void depthwise_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db) {
  const int C = g->cin;
  if (dx) memset(dx, 0, sizeof(float) * (size_t)n * g->h * g->w * C);
  if (dw) memset(dw, 0, sizeof(float) * (size_t)g->kh * g->kw * C);
  if (db) memset(db, 0, sizeof(float) * (size_t)C);
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * g->h * g->w * C;
    float *dimg = dx ? dx + (size_t)i * g->h * g->w * C : NULL;
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++) {
        const float *d = dy + (((size_t)i * g->oh + oy) * g->ow + ox) * C;
        if (db)
#pragma omp simd
          for (int c = 0; c < C; c++) db[c] += d[c];
        for (int ky = 0; ky < g->kh; ky++) {
          int iy = oy * g->stride + ky - g->pad_top;
          if (iy < 0 || iy >= g->h) continue;
          for (int kx = 0; kx < g->kw; kx++) {
            int ix = ox * g->stride + kx - g->pad_left;
            if (ix < 0 || ix >= g->w) continue;
            size_t at = ((size_t)iy * g->w + ix) * C, tap = (size_t)(ky * g->kw + kx) * C;
            if (dw) {
              const float *p = img + at;
              float *q = dw + tap;
#pragma omp simd
              for (int c = 0; c < C; c++) q[c] += p[c] * d[c];
            }
            if (dimg) {
              const float *k = w + tap;
              float *q = dimg + at;
#pragma omp simd
              for (int c = 0; c < C; c++) q[c] += k[c] * d[c];
            }
          }
        }
      }
  }
}

int fm_conv_geom_init(fm_conv_geom *g, int h, int w, int cin, int kh, int kw, int cout, int same,
                      int stride, int groups) {
  memset(g, 0, sizeof *g);
  if (h <= 0 || w <= 0 || cin <= 0)
    return fm_fail("conv2d: input %dx%dx%d must have positive sizes", h, w, cin);
  if (kh <= 0 || kw <= 0 || cout <= 0)
    return fm_fail("conv2d: kernel %dx%d with %d filters must have positive sizes", kh, kw, cout);
  if (stride <= 0) return fm_fail("conv2d: stride %d must be positive", stride);
  if (groups != 1 && !(groups == cin && cout == cin))
    return fm_fail("conv2d: %d groups: only 1, or depthwise (groups = input channels = filters "
                   "= %d), are supported", groups, cin);
  if (!same && (kh > h || kw > w))
    return fm_fail("conv2d: kernel %dx%d is larger than the %dx%d input ('valid' padding)", kh,
                   kw, h, w);
  /* The patch length and one image's patch matrix are the product's int sizes. */
  int oh, ow;
  if (same) {
    oh = (h + stride - 1) / stride;
    ow = (w + stride - 1) / stride;
  } else {
    oh = (h - kh) / stride + 1;
    ow = (w - kw) / stride + 1;
  }
  int64_t k, pixels, patch;
  if (!fm_mul_within(kh, kw, FM_CONV_MAX_PATCH_FLOATS, &k) ||
      !fm_mul_within(k, cin / groups, FM_CONV_MAX_PATCH_FLOATS, &k))
    return fm_fail("conv2d: a patch of %dx%dx%d values (kernel x input channels) is over %d", kh,
                   kw, cin / groups, FM_CONV_MAX_PATCH_FLOATS);
  if (!fm_mul_within(oh, ow, FM_CONV_MAX_PATCH_FLOATS, &pixels) ||
      !fm_mul_within(pixels, k, FM_CONV_MAX_PATCH_FLOATS, &patch))
    return fm_fail("conv2d: the patch matrix of one image (%dx%d pixels x %lld values) is over %d "
                   "floats", oh, ow, (long long)k, FM_CONV_MAX_PATCH_FLOATS);
  g->h = h;
  g->w = w;
  g->cin = cin;
  g->kh = kh;
  g->kw = kw;
  g->cout = cout;
  g->stride = stride;
  g->groups = groups;
  g->oh = oh;
  g->ow = ow;
  if (same) {
    int pad_h = (oh - 1) * stride + kh - h, pad_w = (ow - 1) * stride + kw - w;
    g->pad_top = pad_h > 0 ? pad_h / 2 : 0;
    g->pad_left = pad_w > 0 ? pad_w / 2 : 0;
  }
  g->k = (int)k;
  FM_ASSERT(patch >= 1);
  g->chunk = patch >= (int64_t)CONV_CHUNK_FLOATS ? 1 : (int)(CONV_CHUNK_FLOATS / (size_t)patch);
  return FM_OK;
}

/* A 1x1 convolution with stride 1 needs no patch matrix: the NHWC input already is one. */
static int pointwise(const fm_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->groups == 1;
}

/* Which convolutions the implicit-GEMM kernels take (fm_conv_implicit.h; they decline shapes
 * they do not handle): those with "same" padding, whose output is ceil(input / stride), and a
 * kernel larger than 1x1. A 1x1 kernel needs no patch matrix at stride 1, and at stride 2 only a
 * strided copy of a quarter of the pixels: there the product's 12 x 32 tile over all pixels of
 * the batch at once measures as fast or faster (bench_nn convs: ResNet's 1x1 stride-2 projections
 * run 2x faster forward through im2col + GEMM). "valid" convolutions keep im2col + GEMM too: the
 * reference CNN's 32 -> 64 layer is one, and model files trained before retrain to the same bits
 * only on the path they were made with (tests/lua/test_model_compat.lua). */
static int implicit_path(const fm_conv_geom *g) {
  return g->oh == (g->h + g->stride - 1) / g->stride &&
         g->ow == (g->w + g->stride - 1) / g->stride && g->kh * g->kw > 1;
}

/* Two patch matrices (the forward one and its gradient), then the product's scratch; at least
 * what the direct and implicit-GEMM kernels need (depthwise: what its AVX-512 kernels need). */
size_t fm_conv_scratch_floats(const fm_conv_geom *g) {
  if (g->groups > 1) return fm_conv_depthwise_scratch_floats(g);
  size_t col = round16((size_t)g->chunk * g->oh * g->ow * g->k);
  size_t direct = fm_conv_direct_scratch_floats(g);
  size_t implicit = fm_conv_implicit_scratch_floats(g);
  size_t gemm = 2 * col + FM_GEMM_SCRATCH_FLOATS;
  size_t most = gemm > direct ? gemm : direct;
  return most > implicit ? most : implicit;
}

/* The patch matrix of cn images: row (i, oy, ox) holds the kh x kw x cin input window of that
 * output pixel, zero where it falls in the padding. Each kernel row is one contiguous run of the
 * NHWC input, so a row of the patch matrix is at most kh copies. */
static void im2col(const fm_conv_geom *g, int cn, const float *x, float *col) {
  const int c = g->cin, run = g->kw * c;
  float *dst = col;
  for (int i = 0; i < cn; i++) {
    const float *img = x + (size_t)i * g->h * g->w * c;
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++) {
        int ix0 = ox * g->stride - g->pad_left;
        int kx_lo = ix0 < 0 ? -ix0 : 0;
        int kx_hi = g->w - ix0 < g->kw ? g->w - ix0 : g->kw;
        for (int ky = 0; ky < g->kh; ky++, dst += run) {
          int iy = oy * g->stride + ky - g->pad_top;
          if (iy < 0 || iy >= g->h || kx_hi <= kx_lo) {
            memset(dst, 0, sizeof(float) * (size_t)run);
            continue;
          }
          if (kx_lo > 0) memset(dst, 0, sizeof(float) * (size_t)(kx_lo * c));
          memcpy(dst + kx_lo * c, img + ((size_t)iy * g->w + ix0 + kx_lo) * c,
                 sizeof(float) * (size_t)((kx_hi - kx_lo) * c));
          if (kx_hi < g->kw)
            memset(dst + kx_hi * c, 0, sizeof(float) * (size_t)((g->kw - kx_hi) * c));
        }
      }
  }
  FM_ASSERT(dst == col + (size_t)cn * g->oh * g->ow * g->k);
}

/* The adjoint of im2col: adds every patch-matrix entry back onto the input pixel it came from.
 * dx (cn images) is overwritten. */
static void col2im(const fm_conv_geom *g, int cn, const float *dcol, float *dx) {
  const int c = g->cin, run = g->kw * c;
  memset(dx, 0, sizeof(float) * (size_t)cn * g->h * g->w * c);
  const float *src = dcol;
  for (int i = 0; i < cn; i++) {
    float *img = dx + (size_t)i * g->h * g->w * c;
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++) {
        int ix0 = ox * g->stride - g->pad_left;
        int kx_lo = ix0 < 0 ? -ix0 : 0;
        int kx_hi = g->w - ix0 < g->kw ? g->w - ix0 : g->kw;
        for (int ky = 0; ky < g->kh; ky++, src += run) {
          int iy = oy * g->stride + ky - g->pad_top;
          if (iy < 0 || iy >= g->h || kx_hi <= kx_lo) continue;
          float *d = img + ((size_t)iy * g->w + ix0 + kx_lo) * c;
          const float *s = src + kx_lo * c;
          int len = (kx_hi - kx_lo) * c;
#pragma omp simd
          for (int j = 0; j < len; j++) d[j] += s[j];
        }
      }
  }
  FM_ASSERT(src == dcol + (size_t)cn * g->oh * g->ow * g->k);
}

void fm_conv_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                     const float *bias, float *y, int relu, float *scratch) {
  FM_ASSERT(n >= 0 && g->k == g->kh * g->kw * (g->cin / g->groups) && g->chunk >= 1);
  if (g->groups > 1) {
    if (!fm_conv_depthwise_forward(g, n, x, w, bias, y, relu, scratch))
      depthwise_forward(g, n, x, w, bias, y, relu);
    return;
  }
  if (fm_conv_direct_forward(g, n, x, w, bias, y, relu, scratch)) return;
  if (implicit_path(g) && fm_conv_implicit_forward(g, n, x, w, bias, y, relu, scratch)) return;
  const size_t in_img = (size_t)g->h * g->w * g->cin, pix = (size_t)g->oh * g->ow;
  if (pointwise(g)) {
    fm_gemm(0, 0, (int)(n * pix), g->cout, g->k, x, g->k, w, g->cout, 0.0f, y, g->cout, bias,
            relu, scratch);
    return;
  }
  float *col = scratch;
  float *gscratch = scratch + 2 * round16((size_t)g->chunk * pix * g->k);
  for (int i0 = 0; i0 < n; i0 += g->chunk) {
    int cn = n - i0 < g->chunk ? n - i0 : g->chunk;
    im2col(g, cn, x + i0 * in_img, col);
    fm_gemm(0, 0, (int)(cn * pix), g->cout, g->k, col, g->k, w, g->cout, 0.0f,
            y + i0 * pix * g->cout, g->cout, bias, relu, gscratch);
  }
}

void fm_conv_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                      const float *dy, float *dx, float *dw, float *db, float *scratch) {
  FM_ASSERT(n >= 0 && g->k == g->kh * g->kw * (g->cin / g->groups) && g->chunk >= 1);
  if (g->groups > 1) {
    if (!fm_conv_depthwise_backward(g, n, x, w, dy, dx, dw, dw ? db : NULL, scratch))
      depthwise_backward(g, n, x, w, dy, dx, dw, dw ? db : NULL);
    return;
  }
  const size_t in_img = (size_t)g->h * g->w * g->cin, pix = (size_t)g->oh * g->ow;
  if (dw && fm_conv_direct_weight_grad(g, n, x, dy, dw, db, scratch)) dw = NULL;
  else if (dw && db) column_sums((int64_t)n * (int64_t)pix, g->cout, dy, db);
  if ((dw || dx) && implicit_path(g)) {
    /* Both gradients in one pass over dy when the kernels take both; else the weight gradient
     * alone (it takes any channel count, the input gradient multiples of 16 only). */
    if (fm_conv_implicit_backward(g, n, x, w, dy, dx, dw, scratch)) return;
    if (dw && dx && fm_conv_implicit_backward(g, n, x, w, dy, NULL, dw, scratch)) dw = NULL;
  }
  if (!dw && !dx) return;
  if (pointwise(g)) {
    const int rows = (int)(n * pix);
    if (dw) fm_gemm(1, 0, g->k, g->cout, rows, x, g->k, dy, g->cout, 0.0f, dw, g->cout, NULL, 0, scratch);
    if (dx) fm_gemm(0, 1, rows, g->k, g->cout, dy, g->cout, w, g->cout, 0.0f, dx, g->k, NULL, 0, scratch);
    return;
  }
  size_t col_floats = round16((size_t)g->chunk * pix * g->k);
  float *col = scratch, *dcol = scratch + col_floats, *gscratch = scratch + 2 * col_floats;
  for (int i0 = 0; i0 < n; i0 += g->chunk) {
    int cn = n - i0 < g->chunk ? n - i0 : g->chunk;
    int rows = (int)(cn * pix);
    const float *dyc = dy + i0 * pix * g->cout;
    if (dw) {
      im2col(g, cn, x + i0 * in_img, col);
      /* dw += col^T dy over this chunk's pixels; chunks are added in order. */
      fm_gemm(1, 0, g->k, g->cout, rows, col, g->k, dyc, g->cout, i0 > 0 ? 1.0f : 0.0f, dw,
              g->cout, NULL, 0, gscratch);
    }
    if (dx) {
      fm_gemm(0, 1, rows, g->k, g->cout, dyc, g->cout, w, g->cout, 0.0f, dcol, g->k, NULL, 0,
              gscratch);
      col2im(g, cn, dcol, dx + i0 * in_img);
    }
  }
}

/* ---- max-pool ----
 * NHWC puts a pixel's channels side by side, so a 2x2 window is four vector loads per 16
 * channels: the AVX-512 path handles that case, the plain loops every other. */

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

/* max of four with NaN winning (vmaxps alone would drop a NaN in its first operand). */
AVX512 static inline __m512 max4(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m512 m = _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d));
  __mmask16 nan = _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(c, d, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(nan, m, _mm512_set1_ps(NAN));
}

AVX512 static void maxpool2_forward(int n, int h, int w, int c, const float *x, float *y) {
  const int oh = h / 2, ow = w / 2;
  const size_t row = (size_t)w * c;
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const float *p = x + (size_t)i * h * row + (size_t)(2 * oy) * row + (size_t)(2 * ox) * c;
        float *out = y + (((size_t)i * oh + oy) * ow + ox) * c;
        for (int k = 0; k < c; k += 16) {
          __mmask16 m = c - k >= 16 ? 0xFFFF : (__mmask16)((1u << (c - k)) - 1);
          __m512 a = _mm512_maskz_loadu_ps(m, p + k), b = _mm512_maskz_loadu_ps(m, p + c + k);
          __m512 e = _mm512_maskz_loadu_ps(m, p + row + k);
          __m512 f = _mm512_maskz_loadu_ps(m, p + row + c + k);
          _mm512_mask_storeu_ps(out + k, m, max4(a, b, e, f));
        }
      }
}

/* Writes every input position of every window (the gradient, or 0), so only the rows and columns
 * left over by an odd size need clearing. relu_mask: the input is a ReLU's output, and the ReLU's
 * backward pass is done here too (a window whose maximum is not positive passes nothing). */
AVX512 static void maxpool2_backward(int n, int h, int w, int c, const float *x, const float *dy,
                                     float *dx, int relu_mask) {
  const int oh = h / 2, ow = w / 2;
  const size_t row = (size_t)w * c;
  for (int i = 0; i < n; i++) {
    float *dimg = dx + (size_t)i * h * row;
    if (h % 2) memset(dimg + (size_t)(h - 1) * row, 0, sizeof(float) * row);
    for (int oy = 0; oy < oh; oy++) {
      if (w % 2) {
        memset(dimg + (size_t)(2 * oy) * row + (size_t)(w - 1) * c, 0, sizeof(float) * c);
        memset(dimg + (size_t)(2 * oy + 1) * row + (size_t)(w - 1) * c, 0, sizeof(float) * c);
      }
      for (int ox = 0; ox < ow; ox++) {
        size_t at = (size_t)(2 * oy) * row + (size_t)(2 * ox) * c;
        const float *p = x + (size_t)i * h * row + at;
        float *q = dimg + at;
        const float *g = dy + (((size_t)i * oh + oy) * ow + ox) * c;
        for (int k = 0; k < c; k += 16) {
          __mmask16 m = c - k >= 16 ? 0xFFFF : (__mmask16)((1u << (c - k)) - 1);
          __m512 a = _mm512_maskz_loadu_ps(m, p + k), b = _mm512_maskz_loadu_ps(m, p + c + k);
          __m512 e = _mm512_maskz_loadu_ps(m, p + row + k);
          __m512 f = _mm512_maskz_loadu_ps(m, p + row + c + k);
          __m512 mx = _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(e, f));
          __m512 gv = _mm512_maskz_loadu_ps(m, g + k);
          if (relu_mask) gv = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mx, _mm512_setzero_ps(), _CMP_GT_OQ), gv);
          /* The first maximum in row-major order takes the gradient. */
          __mmask16 ka = _mm512_cmp_ps_mask(a, mx, _CMP_EQ_OQ);
          __mmask16 kb = _mm512_cmp_ps_mask(b, mx, _CMP_EQ_OQ) & ~ka;
          __mmask16 ke = _mm512_cmp_ps_mask(e, mx, _CMP_EQ_OQ) & ~(ka | kb);
          __mmask16 kf = ~(ka | kb | ke);
          _mm512_mask_storeu_ps(q + k, m, _mm512_maskz_mov_ps(ka, gv));
          _mm512_mask_storeu_ps(q + c + k, m, _mm512_maskz_mov_ps(kb, gv));
          _mm512_mask_storeu_ps(q + row + k, m, _mm512_maskz_mov_ps(ke, gv));
          _mm512_mask_storeu_ps(q + row + c + k, m, _mm512_maskz_mov_ps(kf, gv));
        }
      }
    }
  }
}

void fm_maxpool_forward(int n, int h, int w, int c, int size, const float *x, float *y) {
  FM_ASSERT(n >= 0 && c >= 1 && size >= 1 && h >= size && w >= size);
  if (size == 2 && fm_simd_avx512()) {
    maxpool2_forward(n, h, w, c, x, y);
    return;
  }
  const int oh = h / size, ow = w / size;
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * h * w * c;
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        float *out = y + (((size_t)i * oh + oy) * ow + ox) * c;
        const float *first = img + ((size_t)oy * size * w + (size_t)ox * size) * c;
        memcpy(out, first, sizeof(float) * (size_t)c);
        for (int dy = 0; dy < size; dy++)
          for (int dx = 0; dx < size; dx++) {
            const float *p = first + ((size_t)dy * w + dx) * c;
            /* NaN wins, so that a diverging network shows it in its loss. */
#pragma omp simd
            for (int ch = 0; ch < c; ch++)
              out[ch] = p[ch] > out[ch] || p[ch] != p[ch] ? p[ch] : out[ch];
          }
      }
  }
}

void fm_maxpool_backward_relu(int n, int h, int w, int c, int size, const float *x,
                              const float *dy, float *dx, int relu_mask) {
  FM_ASSERT(n >= 0 && c >= 1 && size >= 1 && h >= size && w >= size);
  if (size == 2 && fm_simd_avx512()) {
    maxpool2_backward(n, h, w, c, x, dy, dx, relu_mask);
    return;
  }
  const int oh = h / size, ow = w / size;
  memset(dx, 0, sizeof(float) * (size_t)n * h * w * c);
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * h * w * c;
    float *dimg = dx + (size_t)i * h * w * c;
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const float *g = dy + (((size_t)i * oh + oy) * ow + ox) * c;
        size_t base = ((size_t)oy * size * w + (size_t)ox * size) * c;
        for (int ch = 0; ch < c; ch++) {
          size_t best = base + ch;
          for (int wy = 0; wy < size; wy++)
            for (int wx = 0; wx < size; wx++) {
              size_t at = base + ((size_t)wy * w + wx) * c + ch;
              if (img[at] > img[best]) best = at;
            }
          if (!relu_mask || img[best] > 0.0f) dimg[best] += g[ch];
        }
      }
  }
}

void fm_maxpool_backward(int n, int h, int w, int c, int size, const float *x, const float *dy,
                         float *dx) {
  fm_maxpool_backward_relu(n, h, w, c, size, x, dy, dx, 0);
}

/* ---- ReLU ---- */

static inline __mmask16 tail16(int64_t left) {
  return left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
}

AVX512 static void relu_forward_avx512(int64_t count, const float *x, float *y) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail16(count - i);
    /* max(0, x) keeps a NaN x (vmaxps returns its second operand on NaN). */
    _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

AVX512 static void relu_backward_avx512(int64_t count, const float *y, const float *dy, float *dx) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail16(count - i);
    __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + i), _mm512_setzero_ps(), _CMP_GT_OQ);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(pos & m, dy + i));
  }
}

AVX512 static void multiply_avx512(int64_t count, const float *x, const float *mask, float *y) {
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail16(count - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i),
                                                  _mm512_maskz_loadu_ps(m, mask + i)));
  }
}

void fm_relu_forward(int64_t count, const float *x, float *y) {
  if (fm_simd_avx512()) {
    relu_forward_avx512(count, x, y);
    return;
  }
  /* x < 0 rather than x > 0: a NaN passes through. */
#pragma omp simd
  for (int64_t i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void fm_relu_backward(int64_t count, const float *y, const float *dy, float *dx) {
  if (fm_simd_avx512()) {
    relu_backward_avx512(count, y, dy, dx);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < count; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* ---- dropout ---- */

/* Counter-based: unit i's draw is a hash of (key, i), so masks can be made 16 units at a time and
 * any part of a mask without the rest. The hash is two rounds of Wellons' "lowbias32" integer
 * mixer, keyed by both halves of the 64-bit key; its top 24 bits u give the uniform u / 2^24,
 * and the unit is dropped when u / 2^24 < rate, i.e. u < rate * 2^24 (compared exactly). */
static inline uint32_t lowbias32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

static uint32_t drop_limit(float rate) {
  double limit = ceil((double)rate * 16777216.0); /* u < rate * 2^24 <=> u < ceil(rate * 2^24) */
  return (uint32_t)limit;
}

AVX512 static inline __m512i lowbias32_x16(__m512i h) {
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
  h = _mm512_mullo_epi32(h, _mm512_set1_epi32(0x7feb352d));
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 15));
  h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0x846ca68bU));
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
  return h;
}

AVX512 static void dropout_mask_avx512(uint64_t key, int64_t first, int64_t count, float rate,
                                       float *mask) {
  const __m512i k0 = _mm512_set1_epi32((int)(uint32_t)key);
  const __m512i k1 = _mm512_set1_epi32((int)(uint32_t)(key >> 32));
  const __m512i lim = _mm512_set1_epi32((int)drop_limit(rate));
  const __m512 keep = _mm512_set1_ps(1.0f / (1.0f - rate));
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail16(count - i);
    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)(first + i)), lanes);
    __m512i h = lowbias32_x16(_mm512_xor_si512(idx, k0));
    h = lowbias32_x16(_mm512_add_epi32(h, k1));
    __m512i u = _mm512_srli_epi32(h, 8);
    __mmask16 kept = _mm512_cmp_epu32_mask(u, lim, _MM_CMPINT_NLT);
    _mm512_mask_storeu_ps(mask + i, m, _mm512_maskz_mov_ps(kept, keep));
  }
}

void fm_dropout_mask_at(uint64_t key, int64_t first, int64_t count, float rate, float *mask) {
  FM_ASSERT(rate >= 0.0f && rate < 1.0f && first >= 0 && count >= 0);
  if (fm_simd_avx512()) {
    dropout_mask_avx512(key, first, count, rate, mask);
    return;
  }
  const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32), limit = drop_limit(rate);
  const float keep = 1.0f / (1.0f - rate);
  for (int64_t i = 0; i < count; i++) {
    uint32_t h = lowbias32(lowbias32((uint32_t)(first + i) ^ k0) + k1);
    mask[i] = (h >> 8) < limit ? 0.0f : keep;
  }
}

void fm_dropout_mask(uint64_t key, int64_t count, float rate, float *mask) {
  fm_dropout_mask_at(key, 0, count, rate, mask);
}

void fm_dropout_apply(int64_t count, const float *x, const float *mask, float *y) {
  if (fm_simd_avx512()) {
    multiply_avx512(count, x, mask, y);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < count; i++) y[i] = x[i] * mask[i];
}

/* ---- softmax and cross-entropy ---- */

void fm_softmax(int n, int classes, const float *logits, float *probs) {
  for (int i = 0; i < n; i++) {
    const float *z = logits + (size_t)i * classes;
    float *p = probs + (size_t)i * classes;
    float m = z[0];
    for (int j = 1; j < classes; j++) m = z[j] > m ? z[j] : m;
    double sum = 0.0;
    for (int j = 0; j < classes; j++) {
      p[j] = expf(z[j] - m);
      sum += p[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < classes; j++) p[j] *= inv;
  }
}

double fm_softmax_xent(int n, int classes, const float *logits, const uint8_t *labels, float scale,
                       float *dlogits, int *correct) {
  return fm_softmax_xent_smoothed(n, classes, logits, labels, 0.0f, scale, dlogits, correct);
}

double fm_softmax_xent_smoothed(int n, int classes, const float *logits, const uint8_t *labels,
                                float smoothing, float scale, float *dlogits, int *correct) {
  double total = 0.0;
  int right = 0;
  const double off = (double)smoothing / classes, on = 1.0 - smoothing + off;
  for (int i = 0; i < n; i++) {
    const float *z = logits + (size_t)i * classes;
    int best = 0;
    for (int j = 1; j < classes; j++)
      if (z[j] > z[best]) best = j;
    float m = z[best];
    double sum = 0.0;
    for (int j = 0; j < classes; j++) sum += exp((double)z[j] - m);
    /* -log softmax[label] = log(sum exp(z - m)) - (z[label] - m): finite for any finite z. */
    double lse = log(sum);
    if (smoothing == 0.0f) {
      total += lse - ((double)z[labels[i]] - m);
    } else {
      double row = 0.0;
      for (int j = 0; j < classes; j++)
        row += (j == labels[i] ? on : off) * (lse - ((double)z[j] - m));
      total += row;
    }
    right += best == labels[i];
    if (dlogits) {
      float *d = dlogits + (size_t)i * classes;
      for (int j = 0; j < classes; j++) {
        double p = exp((double)z[j] - m) / sum;
        double target = smoothing == 0.0f ? (j == labels[i]) : (j == labels[i] ? on : off);
        d[j] = (float)((p - target) * scale);
      }
    }
  }
  if (correct) *correct = right;
  return total;
}

/* ---- initialisation ---- */

void fm_init_he(fm_rng *r, float *w, int64_t count, int fan_in) {
  double sd = sqrt(2.0 / (fan_in > 0 ? fan_in : 1));
  for (int64_t i = 0; i < count; i++) w[i] = (float)(sd * fm_rng_normal(r));
}

void fm_init_glorot(fm_rng *r, float *w, int64_t count, int fan_in, int fan_out) {
  double limit = sqrt(6.0 / (fan_in + fan_out > 0 ? fan_in + fan_out : 1));
  for (int64_t i = 0; i < count; i++)
    w[i] = (float)(limit * (2.0 * fm_rng_uniform(r) - 1.0));
}

/* ---- ReLU6 ---- */

/* Plain loads for whole vectors, a masked one only for the tail: a masked load that misses the
 * cache costs several times a plain one on some of these CPUs. */
AVX512 static void relu6_forward_avx512(int64_t count, const float *x, float *y) {
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    /* max(0, v) then min(6, .) keep a NaN v: each returns its second operand on NaN */
    _mm512_storeu_ps(y + i, _mm512_min_ps(six, _mm512_max_ps(zero, v)));
  }
  if (i < count) {
    __mmask16 m = tail16(count - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_min_ps(six, _mm512_max_ps(zero, v)));
  }
}

AVX512 static void relu6_backward_avx512(int64_t count, const float *y, const float *dy, float *dx) {
  const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail16(count - i);
    __m512 v = m == 0xFFFF ? _mm512_loadu_ps(y + i) : _mm512_maskz_loadu_ps(m, y + i);
    __mmask16 inside = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ) & _mm512_cmp_ps_mask(v, six, _CMP_LT_OQ);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_maskz_loadu_ps(inside & m, dy + i));
  }
}

void fm_relu6_forward(int64_t count, const float *x, float *y) {
  if (fm_simd_avx512()) {
    relu6_forward_avx512(count, x, y);
    return;
  }
  /* Written so that a NaN passes through, as ReLU's does. */
#pragma omp simd
  for (int64_t i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i] > 6.0f ? 6.0f : x[i];
}

void fm_relu6_backward(int64_t count, const float *y, const float *dy, float *dx) {
  if (fm_simd_avx512()) {
    relu6_backward_avx512(count, y, dy, dx);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < count; i++) dx[i] = y[i] > 0.0f && y[i] < 6.0f ? dy[i] : 0.0f;
}

/* ---- average pooling ---- */

void fm_avgpool_forward(int n, int h, int w, int c, int size, const float *x, float *y) {
  const int oh = h / size, ow = w / size;
  const float scale = 1.0f / (float)(size * size);
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * h * w * c;
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        float *out = y + (((size_t)i * oh + oy) * ow + ox) * c;
        memset(out, 0, sizeof(float) * (size_t)c);
        for (int wy = 0; wy < size; wy++)
          for (int wx = 0; wx < size; wx++) {
            const float *p = img + (((size_t)oy * size + wy) * w + (size_t)ox * size + wx) * c;
#pragma omp simd
            for (int ch = 0; ch < c; ch++) out[ch] += p[ch];
          }
#pragma omp simd
        for (int ch = 0; ch < c; ch++) out[ch] *= scale;
      }
  }
}

void fm_avgpool_backward(int n, int h, int w, int c, int size, const float *dy, float *dx) {
  const int oh = h / size, ow = w / size;
  const float scale = 1.0f / (float)(size * size);
  memset(dx, 0, sizeof(float) * (size_t)n * h * w * c);
  for (int i = 0; i < n; i++) {
    float *dimg = dx + (size_t)i * h * w * c;
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const float *g = dy + (((size_t)i * oh + oy) * ow + ox) * c;
        for (int wy = 0; wy < size; wy++)
          for (int wx = 0; wx < size; wx++) {
            float *q = dimg + (((size_t)oy * size + wy) * w + (size_t)ox * size + wx) * c;
#pragma omp simd
            for (int ch = 0; ch < c; ch++) q[ch] = g[ch] * scale;
          }
      }
  }
}

void fm_global_avgpool_forward(int n, int pixels, int c, const float *x, float *y) {
  const float scale = 1.0f / (float)pixels;
  for (int i = 0; i < n; i++) {
    const float *img = x + (size_t)i * pixels * c;
    float *out = y + (size_t)i * c;
    memset(out, 0, sizeof(float) * (size_t)c);
    for (int p = 0; p < pixels; p++) {
      const float *px = img + (size_t)p * c;
#pragma omp simd
      for (int ch = 0; ch < c; ch++) out[ch] += px[ch];
    }
#pragma omp simd
    for (int ch = 0; ch < c; ch++) out[ch] *= scale;
  }
}

void fm_global_avgpool_backward(int n, int pixels, int c, const float *dy, float *dx) {
  const float scale = 1.0f / (float)pixels;
  for (int i = 0; i < n; i++) {
    const float *g = dy + (size_t)i * c;
    float *dimg = dx + (size_t)i * pixels * c;
    for (int p = 0; p < pixels; p++) {
      float *q = dimg + (size_t)p * c;
#pragma omp simd
      for (int ch = 0; ch < c; ch++) q[ch] = g[ch] * scale;
    }
  }
}

/* ---- add ---- */

void fm_add_forward(int64_t count, int k, const float *const *x, float *y) {
  const float *a = x[0], *b = x[1];
#pragma omp simd
  for (int64_t i = 0; i < count; i++) y[i] = a[i] + b[i];
  for (int j = 2; j < k; j++) {
    const float *c = x[j];
#pragma omp simd
    for (int64_t i = 0; i < count; i++) y[i] += c[i];
  }
}

/* ---- batch normalisation ----
 * The AVX-512 versions run over the channels of a row as the plain loops do, channel c's sums
 * still added row after row in row order, so both give the same bits: the sums are doubles (8
 * channels per vector, 64 channels per pass over the rows), and x^2 and dy * x of floats are exact
 * in double (a multiply and an add, not a fused one: the add alone is the chain that carries from
 * row to row, and it is the shorter latency); apply and backward multiply and add in separate,
 * rounded steps, as the plain C does (it is compiled without contraction). */

static inline __mmask8 tail8(int n) { return n >= 8 ? 0xFF : n <= 0 ? 0 : (__mmask8)((1u << n) - 1); }

#define BN_GROUPS(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define BN_LOAD(k)                                                         \
  const __mmask8 m##k = tail8(nc - 8 * (k));                               \
  __m512d sa##k = _mm512_maskz_loadu_pd(m##k, s1 + 8 * (k));                \
  __m512d sb##k = _mm512_maskz_loadu_pd(m##k, s2 + 8 * (k));
#define BN_STORE(k)                                  \
  if ((k) < G) {                                     \
    _mm512_mask_storeu_pd(s1 + 8 * (k), m##k, sa##k); \
    _mm512_mask_storeu_pd(s2 + 8 * (k), m##k, sb##k); \
  }
/* 8 floats of channels [8k, 8k + 8) of a row, as doubles; masked only when the chunk ends
 * inside the group (a masked load measured 3x slower here when it misses the cache) */
#define BN_LOAD8(k, p) \
  _mm512_cvtps_pd(PARTIAL ? _mm256_maskz_loadu_ps(m##k, (p) + 8 * (k)) : _mm256_loadu_ps((p) + 8 * (k)))
/* x sums: s1 += v, s2 += v * v */
#define BN_SUMS(k)                                                              \
  if ((k) < G) {                                                               \
    __m512d v_ = BN_LOAD8(k, v);                                               \
    sa##k = _mm512_add_pd(sa##k, v_);                                            \
    sb##k = _mm512_add_pd(sb##k, _mm512_mul_pd(v_, v_));                         \
  }
/* gradient sums: s1 += g, s2 += g * v */
#define BN_GSUMS(k)                                                             \
  if ((k) < G) {                                                               \
    __m512d g_ = BN_LOAD8(k, g);                                               \
    __m512d v_ = BN_LOAD8(k, v);                                               \
    sa##k = _mm512_add_pd(sa##k, g_);                                            \
    sb##k = _mm512_add_pd(sb##k, _mm512_mul_pd(g_, v_));                         \
  }

/* Channels [c0, c0 + nc) of every row (nc <= 64, G = ceil(nc / 8) groups of 8); dy NULL: the
 * sums of x, else those of dy and dy * x. */
AVX512 static inline __attribute__((always_inline)) void bn_sums_chunk(
    int64_t rows, int c, int c0, int nc, const float *x, const float *dy, double *sums,
    const int G, const int PARTIAL) {
  double *s1 = sums + c0, *s2 = sums + c + c0;
  BN_GROUPS(BN_LOAD)
  if (!dy) {
    for (int64_t r = 0; r < rows; r++) {
      const float *v = x + r * c + c0;
      BN_GROUPS(BN_SUMS)
    }
  } else {
    for (int64_t r = 0; r < rows; r++) {
      const float *v = x + r * c + c0, *g = dy + r * c + c0;
      BN_GROUPS(BN_GSUMS)
    }
  }
  BN_GROUPS(BN_STORE)
}

#define BN_CHUNK_CASE(G)                                                \
  case G:                                                               \
    if (nc % 8)                                                         \
      bn_sums_chunk(rows, c, c0, nc, x, dy, sums, G, 1);                \
    else                                                                \
      bn_sums_chunk(rows, c, c0, nc, x, dy, sums, G, 0);                \
    break;

AVX512 static void bn_sums_avx512(int64_t rows, int c, const float *x, const float *dy,
                                  double *sums) {
  for (int c0 = 0; c0 < c; c0 += 64) {
    const int nc = c - c0 < 64 ? c - c0 : 64;
    switch ((nc + 7) / 8) {
      BN_CHUNK_CASE(1) BN_CHUNK_CASE(2) BN_CHUNK_CASE(3) BN_CHUNK_CASE(4)
      BN_CHUNK_CASE(5) BN_CHUNK_CASE(6) BN_CHUNK_CASE(7) BN_CHUNK_CASE(8)
    }
  }
}

/* Vectors of 16 channels; the loads are masked only for a last partial vector (see BN_LOAD8). */
#define BN_LOAD16(p, ch) (_mm512_maskz_loadu_ps(tail16(c - (ch)), (p) + (ch)))
#define BN_VEC(p, ch) (c % 16 ? BN_LOAD16(p, ch) : _mm512_loadu_ps((p) + (ch)))

AVX512 static inline __attribute__((always_inline)) void bn_apply_rows(
    int64_t rows, int c, const float *x, const float *a, const float *b, float *y, int relu) {
  for (int64_t r = 0; r < rows; r++) {
    const float *v = x + r * c;
    float *o = y + r * c;
    for (int ch = 0; ch < c; ch += 16) {
      __m512 t = _mm512_add_ps(_mm512_mul_ps(BN_VEC(v, ch), BN_VEC(a, ch)), BN_VEC(b, ch));
      /* max(0, t) keeps a NaN t, and -0, as the plain loop's t < 0 test does */
      if (relu) t = _mm512_max_ps(_mm512_setzero_ps(), t);
      _mm512_mask_storeu_ps(o + ch, tail16(c - ch), t);
    }
  }
}

AVX512 static void bn_apply_avx512(int64_t rows, int c, const float *x, const float *a,
                                   const float *b, float *y, int relu) {
  if (c == 16) /* one vector a row: the channel count a constant */
    bn_apply_rows(rows, 16, x, a, b, y, relu);
  else
    bn_apply_rows(rows, c, x, a, b, y, relu);
}

AVX512 static inline __attribute__((always_inline)) void bn_backward_rows(
    int64_t rows, int c, const float *x, const float *dy, const float *a, const float *p,
    const float *q, float *dx) {
  for (int64_t r = 0; r < rows; r++) {
    const float *v = x + r * c, *g = dy + r * c;
    float *o = dx + r * c;
    for (int ch = 0; ch < c; ch += 16) {
      __m512 ag = _mm512_mul_ps(BN_VEC(a, ch), BN_VEC(g, ch));
      __m512 pv = _mm512_mul_ps(BN_VEC(p, ch), BN_VEC(v, ch));
      _mm512_mask_storeu_ps(o + ch, tail16(c - ch), _mm512_add_ps(_mm512_add_ps(ag, pv), BN_VEC(q, ch)));
    }
  }
}

AVX512 static void bn_backward_avx512(int64_t rows, int c, const float *x, const float *dy,
                                      const float *a, const float *p, const float *q, float *dx) {
  if (c == 16)
    bn_backward_rows(rows, 16, x, dy, a, p, q, dx);
  else
    bn_backward_rows(rows, c, x, dy, a, p, q, dx);
}

void fm_bn_sums(int64_t rows, int c, const float *x, double *sums) {
  if (fm_simd_avx512()) {
    bn_sums_avx512(rows, c, x, NULL, sums);
    return;
  }
  double *s1 = sums, *s2 = sums + c;
  for (int64_t r = 0; r < rows; r++) {
    const float *v = x + r * c;
#pragma omp simd
    for (int ch = 0; ch < c; ch++) {
      double d = v[ch];
      s1[ch] += d;
      s2[ch] += d * d;
    }
  }
}

void fm_bn_grad_sums(int64_t rows, int c, const float *x, const float *dy, double *sums) {
  if (fm_simd_avx512()) {
    bn_sums_avx512(rows, c, x, dy, sums);
    return;
  }
  double *s1 = sums, *s2 = sums + c;
  for (int64_t r = 0; r < rows; r++) {
    const float *v = x + r * c, *g = dy + r * c;
#pragma omp simd
    for (int ch = 0; ch < c; ch++) {
      s1[ch] += g[ch];
      s2[ch] += (double)g[ch] * v[ch];
    }
  }
}

void fm_bn_apply(int64_t rows, int c, const float *x, const float *a, const float *b, float *y,
                 int relu) {
  if (fm_simd_avx512()) {
    bn_apply_avx512(rows, c, x, a, b, y, relu);
    return;
  }
  for (int64_t r = 0; r < rows; r++) {
    const float *v = x + r * c;
    float *o = y + r * c;
    if (relu) {
#pragma omp simd
      for (int ch = 0; ch < c; ch++) {
        float t = v[ch] * a[ch] + b[ch];
        o[ch] = t < 0.0f ? 0.0f : t;
      }
    } else {
#pragma omp simd
      for (int ch = 0; ch < c; ch++) o[ch] = v[ch] * a[ch] + b[ch];
    }
  }
}

void fm_bn_backward(int64_t rows, int c, const float *x, const float *dy, const float *a,
                    const float *p, const float *q, float *dx) {
  if (fm_simd_avx512()) {
    bn_backward_avx512(rows, c, x, dy, a, p, q, dx);
    return;
  }
  for (int64_t r = 0; r < rows; r++) {
    const float *v = x + r * c, *g = dy + r * c;
    float *o = dx + r * c;
#pragma omp simd
    for (int ch = 0; ch < c; ch++) o[ch] = a[ch] * g[ch] + p[ch] * v[ch] + q[ch];
  }
}
