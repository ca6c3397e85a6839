/* fm_conv_implicit: implicit-GEMM AVX-512 convolution kernels (see fm_conv_implicit.h).
 *
 * Forward and input gradient share one tile kernel. Its input is an image in "planar rows"
 * layout, zero-padded: for each padded row, the row's values channel by channel (rows x channels
 * x columns). There the values one input channel gives to consecutive output pixels lie side by
 * side, so a tile of P pixels reads them at constant offsets (4 bytes apart, 8 with stride 2) from
 * one pointer per tile row, and each tap of the kernel is a constant offset from the tile's
 * origin. A tile is R rows x P pixels x NV vectors of 16 output channels (R * P * NV <= 28 zmm
 * accumulators); for each tap and input channel it loads NV vectors of weights and broadcasts
 * R * P input values against them. The shapes are chosen per layer so that a tile covers whole
 * output rows where it can: 28 x 16 channels, 14 x 32, 7 x 64, 2 rows of 14 x 16, ...
 *
 * The weight gradient keeps 8 output channels x 3 (tap, 16 input channels) columns of the
 * gradient in 24 accumulators and streams every pixel of a block of images past them: per pixel it
 * loads 3 input vectors (from a zero-padded NHWC copy of the images) and broadcasts 8 output
 * gradients. The sums go through a scratch array, so the order of every sum is images, then
 * pixels, whatever the blocking. */
#include "fm_conv_implicit.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "fm_gemm.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#define INLINE static inline __attribute__((always_inline))

#define MAX_TAPS 49  /* kernels up to 7x7 */
#define TILE_ACC 28  /* accumulators of a forward tile; 4 zmm registers stay for weights */
/* Floats of padded images the weight gradient streams at once: about half of a 1 MB L2. */
#define WGRAD_BLOCK_FLOATS ((size_t)96 * 1024)

int fm_conv_implicit_enabled = 1;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int ceil_div(int a, int b) { return -floor_div(-a, b); }
static __mmask16 lanes(int n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* Shapes the kernels handle (the scratch size depends on these only), and whether to run. */
static int shape_ok(const fm_conv_geom *g) { return g->groups == 1 && g->kh * g->kw <= MAX_TAPS; }
static int enabled(void) { return fm_conv_implicit_enabled && fm_simd_avx512(); }

/* ---- layouts ---- */

/* The 16 x 16 block in r transposed in registers: r[i] lane j becomes r[j] lane i. */
AVX512 static void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    __m512d e0 = _mm512_castps_pd(t[4 * i]), e1 = _mm512_castps_pd(t[4 * i + 1]);
    __m512d e2 = _mm512_castps_pd(t[4 * i + 2]), e3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(e0, e2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(e0, e2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(e1, e3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(e1, e3));
  }
  /* Each 128-bit lane L of r[4i + j] now holds rows 4i..4i+3 of column 4L + j. */
  for (int j = 0; j < 4; j++) {
    __m512 x = _mm512_shuffle_f32x4(r[j], r[4 + j], _MM_SHUFFLE(2, 0, 2, 0));
    __m512 y = _mm512_shuffle_f32x4(r[j], r[4 + j], _MM_SHUFFLE(3, 1, 3, 1));
    __m512 x2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], _MM_SHUFFLE(2, 0, 2, 0));
    __m512 y2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], _MM_SHUFFLE(3, 1, 3, 1));
    t[0 + j] = _mm512_shuffle_f32x4(x, x2, _MM_SHUFFLE(2, 0, 2, 0));
    t[8 + j] = _mm512_shuffle_f32x4(x, x2, _MM_SHUFFLE(3, 1, 3, 1));
    t[4 + j] = _mm512_shuffle_f32x4(y, y2, _MM_SHUFFLE(2, 0, 2, 0));
    t[12 + j] = _mm512_shuffle_f32x4(y, y2, _MM_SHUFFLE(3, 1, 3, 1));
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* One image row of w pixels x c channels (NHWC) into c planes of a planar row: channel ch's
 * values go to dst[ch * plane + 0 .. w). 16 x 16 blocks go through registers. */
AVX512 static void row_to_planar(const float *src, int w, int c, float *dst, ptrdiff_t plane) {
  if (c == 1) {
    memcpy(dst, src, sizeof(float) * (size_t)w);
    return;
  }
  for (int x0 = 0; x0 < w; x0 += 16) {
    const int nx = imin(16, w - x0);
    const __mmask16 mx = lanes(nx);
    for (int c0 = 0; c0 < c; c0 += 16) {
      const int nc = imin(16, c - c0);
      const __mmask16 mc = lanes(nc);
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < nx ? _mm512_maskz_loadu_ps(mc, src + (size_t)(x0 + i) * c + c0)
                      : _mm512_setzero_ps();
      transpose16(r);
      for (int i = 0; i < nc; i++) _mm512_mask_storeu_ps(dst + (c0 + i) * plane + x0, mx, r[i]);
    }
  }
}

/* An h x w x c image into planar rows, padded: padded row yy, channel ch, column xx holds pixel
 * (yy - top, xx - left), or 0 outside the image; hp rows of c x wp values. Pixels that fall past
 * the padded extent (a "valid" convolution's unused last rows) are left out. */
static void image_to_planar(const float *img, int h, int w, int c, int top, int left, int hp,
                            int wp, float *dst) {
  const ptrdiff_t row = (ptrdiff_t)c * wp;
  const int x_end = imin(wp, left + w); /* columns [left, x_end) hold pixels */
  for (int yy = 0; yy < hp; yy++) {
    const int iy = yy - top;
    float *r = dst + yy * row;
    if (iy < 0 || iy >= h) {
      memset(r, 0, sizeof(float) * (size_t)row);
      continue;
    }
    for (int ch = 0; ch < c; ch++) {
      float *p = r + ch * wp;
      for (int xx = 0; xx < left; xx++) p[xx] = 0.0f;
      for (int xx = x_end; xx < wp; xx++) p[xx] = 0.0f;
    }
    row_to_planar(img + (size_t)iy * w * c, x_end - left, c, r + left, wp);
  }
}

/* The same padding in NHWC layout: hp x wp pixels of c channels. */
static void image_to_padded(const float *img, int h, int w, int c, int top, int left, int hp,
                            int wp, float *dst) {
  const size_t px = (size_t)c;
  const int x_end = imin(wp, left + w);
  for (int yy = 0; yy < hp; yy++) {
    const int iy = yy - top;
    float *r = dst + (size_t)yy * wp * px;
    if (iy < 0 || iy >= h) {
      memset(r, 0, sizeof(float) * wp * px);
      continue;
    }
    memset(r, 0, sizeof(float) * (size_t)left * px);
    memcpy(r + left * px, img + (size_t)iy * w * px, sizeof(float) * (size_t)(x_end - left) * px);
    memset(r + x_end * px, 0, sizeof(float) * (size_t)(wp - x_end) * px);
  }
}

/* ---- the tile kernel (forward and input gradient) ---- */

typedef struct tile_job {
  int ntaps;
  ptrdiff_t toff[MAX_TAPS];  /* tap t's input: this offset from the tile's origin */
  const float *tw[MAX_TAPS]; /* tap t's weights: cin rows of ldw output channels */
  int cin;                   /* input channels summed per tap */
  ptrdiff_t plane;           /* floats from one input channel to the next in a planar row */
  ptrdiff_t in_row;          /* floats from one tile row's input to the next's */
  ptrdiff_t ldw;             /* output channels: weights' row stride */
  ptrdiff_t out_px, out_row; /* floats from one output pixel, and one tile row, to the next */
  const float *bias;         /* added before the store (may be NULL) */
  int relu;
} tile_job;

typedef void (*tile_fn)(const tile_job *j, const float *in, int k0, float *out, int nrows);

/* The accumulators are named variables c0..c27 (an array would be kept in memory), each guarded
 * by a test on constants that the compiler resolves in every instantiation. Accumulator i is tile
 * row i / (P * NV), pixel (i / NV) % P, channel vector i % NV. */
#define FOR_ACC(M)                                                                             \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) \
  M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27)
#define T_DECL(i) __m512 c##i = _mm512_setzero_ps();
#define T_W(v) ((v) == 0 ? w0 : (v) == 1 ? w1 : (v) == 2 ? w2 : w3)
#define T_ROW(r) ((r) == 0 ? a0 : (r) == 1 ? a1 : (r) == 2 ? a2 : a3)
#define T_FMA(i)                                                                          \
  if ((i) < N)                                                                            \
    c##i = _mm512_fmadd_ps(_mm512_set1_ps(T_ROW((i) / (P * NV))[S * (((i) / NV) % P)]), \
                           T_W((i) % NV), c##i);
#define T_STORE(i)                                                                          \
  if ((i) < N && (i) / (P * NV) < nrows) {                                                 \
    float *o_ = out + ((i) / (P * NV)) * j->out_row + (((i) / NV) % P) * j->out_px +       \
                16 * ((i) % NV);                                                           \
    __m512 v_ = c##i;                                                                      \
    if (j->bias) v_ = _mm512_add_ps(v_, _mm512_loadu_ps(j->bias + k0 + 16 * ((i) % NV))); \
    if (j->relu) v_ = _mm512_max_ps(_mm512_setzero_ps(), v_); /* keeps NaN */             \
    _mm512_storeu_ps(o_, v_);                                                              \
  }

/* One tile: R rows (nrows of them stored; the others repeat the last and are dropped) x P pixels
 * x NV vectors of output channels k0 ... k0 + 16 NV - 1; S is the stride in the input. */
AVX512 INLINE void tile_body(const tile_job *j, const float *in, int k0, float *out, int nrows,
                             const int S, const int NV, const int R, const int P) {
  const int N = R * P * NV;
  FOR_ACC(T_DECL)
  const ptrdiff_t plane = j->plane, ldw = j->ldw;
  const ptrdiff_t r1 = (1 < nrows ? 1 : nrows - 1) * j->in_row;
  const ptrdiff_t r2 = (2 < nrows ? 2 : nrows - 1) * j->in_row;
  const ptrdiff_t r3 = (3 < nrows ? 3 : nrows - 1) * j->in_row;
  for (int t = 0; t < j->ntaps; t++) {
    const float *a0 = in + j->toff[t], *a1 = a0 + r1, *a2 = a0 + r2, *a3 = a0 + r3;
    const float *b = j->tw[t] + k0;
    for (int c = 0; c < j->cin; c++) {
      __m512 w0 = _mm512_loadu_ps(b), w1 = w0, w2 = w0, w3 = w0;
      if (NV > 1) w1 = _mm512_loadu_ps(b + 16);
      if (NV > 2) w2 = _mm512_loadu_ps(b + 32);
      if (NV > 3) w3 = _mm512_loadu_ps(b + 48);
      FOR_ACC(T_FMA)
      a0 += plane;
      if (R > 1) a1 += plane;
      if (R > 2) a2 += plane;
      if (R > 3) a3 += plane;
      b += ldw;
    }
  }
  FOR_ACC(T_STORE)
}

/* Tile rows for NV vectors and P pixels: as many as fit 28 accumulators, at most 4. */
#define TILE_ROWS(NV, P) ((TILE_ACC / (NV)) / (P) < 4 ? (TILE_ACC / (NV)) / (P) : 4)
#define TILE_DEF(S, NV, P)                                                                   \
  AVX512 static void tile_##S##_##NV##_##P(const tile_job *j, const float *in, int k0,       \
                                           float *out, int nrows) {                         \
    tile_body(j, in, k0, out, nrows, S, NV, TILE_ROWS(NV, P), P);                             \
  }
#define TILE_REF(S, NV, P) tile_##S##_##NV##_##P,
#define P7(M, S, NV) M(S, NV, 1) M(S, NV, 2) M(S, NV, 3) M(S, NV, 4) M(S, NV, 5) M(S, NV, 6) M(S, NV, 7)
#define P9(M, S, NV) P7(M, S, NV) M(S, NV, 8) M(S, NV, 9)
#define P14(M, S, NV) \
  P9(M, S, NV) M(S, NV, 10) M(S, NV, 11) M(S, NV, 12) M(S, NV, 13) M(S, NV, 14)
#define P28(M, S, NV)                                                                     \
  P14(M, S, NV) M(S, NV, 15) M(S, NV, 16) M(S, NV, 17) M(S, NV, 18) M(S, NV, 19)           \
  M(S, NV, 20) M(S, NV, 21) M(S, NV, 22) M(S, NV, 23) M(S, NV, 24) M(S, NV, 25) M(S, NV, 26) \
  M(S, NV, 27) M(S, NV, 28)
#define ALL_TILES(M, S) P28(M, S, 1) P14(M, S, 2) P9(M, S, 3) P7(M, S, 4)

ALL_TILES(TILE_DEF, 1)
ALL_TILES(TILE_DEF, 2)

/* tiles[S - 1][NV - 1][P - 1] */
static const tile_fn tiles[2][4][28] = {
    {{P28(TILE_REF, 1, 1)}, {P14(TILE_REF, 1, 2)}, {P9(TILE_REF, 1, 3)}, {P7(TILE_REF, 1, 4)}},
    {{P28(TILE_REF, 2, 1)}, {P14(TILE_REF, 2, 2)}, {P9(TILE_REF, 2, 3)}, {P7(TILE_REF, 2, 4)}}};

/* All outputs of a grid of rows x cols pixels and cout channels (a multiple of 16): grid pixel
 * (q, i) reads its input at in + q * j->in_row + i * S and is written at out + q * j->out_row +
 * i * j->out_px. The channels go in chunks of at most 4 vectors; each row of the grid is cut
 * into equal tiles (the last one moved back to end at the row's end, recomputing a few pixels),
 * and rows are taken in groups of the tile's rows. */
static void run_grid(const tile_job *j, int S, int rows, int cols, int cout, const float *in,
                     float *out) {
  const int vectors = cout / 16, chunks = (vectors + 3) / 4;
  for (int ch = 0, k0 = 0; ch < chunks; ch++) {
    const int nv = vectors / chunks + (ch < vectors % chunks);
    const int pmax = TILE_ACC / nv, per_row = (cols + pmax - 1) / pmax;
    const int p = (cols + per_row - 1) / per_row, r = TILE_ROWS(nv, p);
    const tile_fn fn = tiles[S - 1][nv - 1][p - 1];
    for (int q0 = 0; q0 < rows; q0 += r)
      for (int t = 0; t < per_row; t++) {
        const int i0 = imin(t * p, cols - p);
        fn(j, in + q0 * j->in_row + i0 * S, k0, out + q0 * j->out_row + i0 * j->out_px + k0,
           imin(r, rows - q0));
      }
    k0 += 16 * nv;
  }
}

/* ---- forward ---- */

/* The padded input extent a stride-s kernel of k taps covers for `out` outputs. */
static int span(int out, int k, int s) { return s * (out - 1) + k; }

static size_t forward_floats(const fm_conv_geom *g) {
  return round16((size_t)span(g->oh, g->kh, g->stride) * g->cin *
                 (size_t)span(g->ow, g->kw, g->stride));
}

static int forward_shape(const fm_conv_geom *g) {
  return shape_ok(g) && g->cout % 16 == 0 && (g->stride == 1 || g->stride == 2);
}

int fm_conv_implicit_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                             const float *bias, float *y, int relu, float *scratch) {
  if (!enabled() || !forward_shape(g)) return 0;
  const int S = g->stride, C = g->cin, K = g->cout;
  const int hp = span(g->oh, g->kh, S), wp = span(g->ow, g->kw, S);
  tile_job j = {.ntaps = g->kh * g->kw, .cin = C, .plane = wp, .in_row = (ptrdiff_t)S * C * wp,
                .ldw = K, .out_px = K, .out_row = (ptrdiff_t)g->ow * K, .bias = bias,
                .relu = relu};
  for (int t = 0; t < j.ntaps; t++) {
    j.toff[t] = (ptrdiff_t)(t / g->kw) * C * wp + t % g->kw;
    j.tw[t] = w + (size_t)t * C * K;
  }
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * K;
  for (int i = 0; i < n; i++) {
    image_to_planar(x + i * in_img, g->h, g->w, C, g->pad_top, g->pad_left, hp, wp, scratch);
    run_grid(&j, S, g->oh, g->ow, K, scratch, y + i * out_img);
  }
  return 1;
}

/* ---- input gradient ----
 * With u = iy + pad_top, output row oy takes input row iy through tap ky when s * oy + ky = u.
 * For the class of input rows with u % s = r and u = s * q + r, the taps are ky = r + s * m
 * (m = 0 .. M_r - 1, M_r = ceil((kh - r) / s)) and oy = q - m: a stride-1 convolution of the
 * output gradient with M_r taps, flipped. dy goes into planar rows with M - 1 zero rows on top
 * (M = ceil(kh / s), the most taps of any class), so that class r's tap m' = M_r - 1 - m reads
 * padded row q + m' + M - M_r. The same along columns. */

typedef struct grad_geom {
  int m_y, m_x; /* most taps of a class, per axis */
  int hd, wd;   /* the padded output gradient: hd rows x cout x wd */
} grad_geom;

static void input_grad_geom(const fm_conv_geom *g, grad_geom *d) {
  const int s = g->stride;
  d->m_y = (g->kh + s - 1) / s;
  d->m_x = (g->kw + s - 1) / s;
  /* Rows read: up to q_max + M - 1 with q_max = (h - 1 + pad_top) / s; rows written: oh of dy. */
  d->hd = imax((g->h - 1 + g->pad_top) / s + d->m_y, g->oh + d->m_y - 1);
  d->wd = imax((g->w - 1 + g->pad_left) / s + d->m_x, g->ow + d->m_x - 1);
}

static size_t input_grad_floats(const fm_conv_geom *g) {
  grad_geom d;
  input_grad_geom(g, &d);
  return round16((size_t)g->kh * g->kw * g->cin * g->cout) +
         round16((size_t)d.hd * g->cout * (size_t)d.wd);
}

/* Any stride: a class that no tap reaches (a 1x1 kernel with stride 2) gets zeros. */
static int input_grad_shape(const fm_conv_geom *g) { return shape_ok(g) && g->cin % 16 == 0; }

/* Input pixels of one parity class along an axis: u = s * q + r for q in [*lo, *hi]. */
static void class_range(int size, int pad, int s, int r, int *lo, int *hi) {
  *lo = imax(0, ceil_div(pad - r, s));
  *hi = floor_div(size - 1 + pad - r, s);
}

int fm_conv_implicit_input_grad(const fm_conv_geom *g, int n, const float *w, const float *dy,
                                float *dx, float *scratch) {
  if (!enabled() || !input_grad_shape(g)) return 0;
  const int s = g->stride, C = g->cin, K = g->cout, taps = g->kh * g->kw;
  grad_geom d;
  input_grad_geom(g, &d);
  /* Each tap's weights transposed: cout rows of cin. */
  float *wt = scratch, *planar = scratch + round16((size_t)taps * C * K);
  for (int t = 0; t < taps; t++)
    fm_gemm_transpose(C, K, w + (size_t)t * C * K, K, wt + (size_t)t * C * K, C);
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * K;
  for (int i = 0; i < n; i++) {
    float *dxi = dx + i * in_img;
    image_to_planar(dy + i * out_img, g->oh, g->ow, K, d.m_y - 1, d.m_x - 1, d.hd, d.wd, planar);
    for (int ry = 0; ry < s; ry++)
      for (int rx = 0; rx < s; rx++) {
        int q_lo, q_hi, p_lo, p_hi;
        class_range(g->h, g->pad_top, s, ry, &q_lo, &q_hi);
        class_range(g->w, g->pad_left, s, rx, &p_lo, &p_hi);
        if (q_hi < q_lo || p_hi < p_lo) continue;
        const int my = (g->kh - ry + s - 1) / s, mx = (g->kw - rx + s - 1) / s;
        /* The class's first input pixel, and the strides between its pixels. */
        float *out = dxi + ((size_t)(s * q_lo + ry - g->pad_top) * g->w +
                            (size_t)(s * p_lo + rx - g->pad_left)) * C;
        tile_job j = {.ntaps = my * mx, .cin = K, .plane = d.wd, .in_row = (ptrdiff_t)K * d.wd,
                      .ldw = C, .out_px = (ptrdiff_t)s * C, .out_row = (ptrdiff_t)s * g->w * C};
        for (int a = 0; a < my; a++)
          for (int b = 0; b < mx; b++) {
            const int ky = ry + s * (my - 1 - a), kx = rx + s * (mx - 1 - b), t = a * mx + b;
            j.toff[t] = (ptrdiff_t)(a + d.m_y - my) * K * d.wd + (b + d.m_x - mx);
            j.tw[t] = wt + (size_t)(ky * g->kw + kx) * C * K;
          }
        run_grid(&j, 1, q_hi - q_lo + 1, p_hi - p_lo + 1, C,
                 planar + (ptrdiff_t)q_lo * K * d.wd + p_lo, out);
      }
  }
  return 1;
}

/* ---- weight gradient ---- */

typedef struct wgrad_job {
  const float *x;                  /* padded NHWC images */
  ptrdiff_t x_img, x_row, x_px;    /* floats per image, per output row, per output pixel */
  const float *dy;                 /* NHWC output gradients of the same images */
  ptrdiff_t dy_img;
  int cout, oh, ow, n;
  const ptrdiff_t *coff;           /* column v's input vector: this offset from the pixel */
  float *acc;                      /* the partial sums: row k, column v at acc[k * ldacc + aoff[v]] */
  ptrdiff_t ldacc;
  const ptrdiff_t *aoff;
} wgrad_job;

typedef void (*wgrad_fn)(const wgrad_job *j, int k0);

#define FOR_WACC(M)                                                                            \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) \
  M(17) M(18) M(19) M(20) M(21) M(22) M(23)
#define W_LOAD(i) \
  __m512 c##i = (i) < N ? _mm512_loadu_ps(acc + ((i) / V) * ld + aoff[(i) % V]) : _mm512_setzero_ps();
#define W_X(v) ((v) == 0 ? x0 : (v) == 1 ? x1 : x2)
#define W_FMA(i) \
  if ((i) < N) c##i = _mm512_fmadd_ps(_mm512_set1_ps(d[(i) / V]), W_X((i) % V), c##i);
#define W_STORE(i) \
  if ((i) < N) _mm512_storeu_ps(acc + ((i) / V) * ld + aoff[(i) % V], c##i);

/* Output channels k0 .. k0 + R - 1 (broadcast from dy) x V columns (input vectors), summed over
 * every pixel of the job's images onto the partial sums. Accumulator i is channel k0 + i / V,
 * column i % V. */
AVX512 INLINE void wgrad_body(const wgrad_job *j, int k0, const int V, const int R) {
  const int N = R * V;
  float *acc = j->acc + (ptrdiff_t)k0 * j->ldacc;
  const ptrdiff_t ld = j->ldacc, *aoff = j->aoff;
  FOR_WACC(W_LOAD)
  const ptrdiff_t o0 = j->coff[0], o1 = V > 1 ? j->coff[1] : 0, o2 = V > 2 ? j->coff[2] : 0;
  const ptrdiff_t px = j->x_px, K = j->cout;
  for (int i = 0; i < j->n; i++) {
    const float *xi = j->x + i * j->x_img, *di = j->dy + i * j->dy_img + k0;
    for (int oy = 0; oy < j->oh; oy++) {
      const float *xr = xi + oy * j->x_row, *d = di + (ptrdiff_t)oy * j->ow * K;
      for (int ox = 0; ox < j->ow; ox++, xr += px, d += K) {
        __m512 x0 = _mm512_loadu_ps(xr + o0), x1 = x0, x2 = x0;
        if (V > 1) x1 = _mm512_loadu_ps(xr + o1);
        if (V > 2) x2 = _mm512_loadu_ps(xr + o2);
        FOR_WACC(W_FMA)
      }
    }
  }
  FOR_WACC(W_STORE)
}

#define WGRAD_DEF(V, R) \
  AVX512 static void wgrad_##V##_##R(const wgrad_job *j, int k0) { wgrad_body(j, k0, V, R); }
#define WGRAD_REF(V, R) wgrad_##V##_##R,
#define R8(M, V) M(V, 1) M(V, 2) M(V, 3) M(V, 4) M(V, 5) M(V, 6) M(V, 7) M(V, 8)
R8(WGRAD_DEF, 1)
R8(WGRAD_DEF, 2)
R8(WGRAD_DEF, 3)
/* wgrads[V - 1][R - 1] */
static const wgrad_fn wgrads[3][8] = {{R8(WGRAD_REF, 1)}, {R8(WGRAD_REF, 2)}, {R8(WGRAD_REF, 3)}};

static size_t padded_image_floats(const fm_conv_geom *g) {
  return (size_t)span(g->oh, g->kh, g->stride) * span(g->ow, g->kw, g->stride) * g->cin;
}

/* Images per block: as many padded images and their output gradients as fit the block size. */
static int wgrad_block(const fm_conv_geom *g) {
  size_t per = padded_image_floats(g) + (size_t)g->oh * g->ow * g->cout;
  size_t b = WGRAD_BLOCK_FLOATS / per;
  return b < 1 ? 1 : b > 64 ? 64 : (int)b;
}

static size_t weight_grad_floats(const fm_conv_geom *g) {
  return round16((size_t)g->kh * g->kw * g->cin * g->cout) +
         round16((size_t)wgrad_block(g) * padded_image_floats(g));
}

/* Columns (tap, 16 input channels): at most MAX_TAPS * 16, the size of the offset tables. */
static int weight_grad_shape(const fm_conv_geom *g) {
  return shape_ok(g) && g->cin % 16 == 0 && g->kh * g->kw * (g->cin / 16) <= MAX_TAPS * 16;
}

int fm_conv_implicit_weight_grad(const fm_conv_geom *g, int n, const float *x, const float *dy,
                                 float *dw, float *scratch) {
  if (!enabled() || !weight_grad_shape(g)) return 0;
  const int s = g->stride, C = g->cin, K = g->cout, taps = g->kh * g->kw;
  const int hp = span(g->oh, g->kh, s), wp = span(g->ow, g->kw, s);
  const int cols = taps * (C / 16), block = wgrad_block(g);
  /* The sums as [tap][cout][cin]: a column (tap, 16 input channels) is a vector of one row. */
  float *acc = scratch, *xpad = scratch + round16((size_t)taps * C * K);
  memset(acc, 0, sizeof(float) * (size_t)taps * C * K);
  ptrdiff_t coff[MAX_TAPS * 16], aoff[MAX_TAPS * 16];
  for (int v = 0; v < cols; v++) {
    const int t = v / (C / 16), cv = v % (C / 16);
    coff[v] = ((ptrdiff_t)(t / g->kw) * wp + t % g->kw) * C + 16 * cv;
    aoff[v] = (ptrdiff_t)t * K * C + 16 * cv;
  }
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * K;
  const size_t pad_img = padded_image_floats(g);
  for (int i0 = 0; i0 < n; i0 += block) {
    const int nb = imin(block, n - i0);
    for (int i = 0; i < nb; i++)
      image_to_padded(x + (i0 + i) * in_img, g->h, g->w, C, g->pad_top, g->pad_left, hp, wp,
                      xpad + i * pad_img);
    wgrad_job j = {.x = xpad, .x_img = (ptrdiff_t)pad_img, .x_row = (ptrdiff_t)s * wp * C,
                   .x_px = (ptrdiff_t)s * C, .dy = dy + i0 * out_img, .dy_img = (ptrdiff_t)out_img,
                   .cout = K, .oh = g->oh, .ow = g->ow, .n = nb, .acc = acc, .ldacc = C};
    for (int v0 = 0; v0 < cols; v0 += 3) {
      const int nv = imin(3, cols - v0);
      j.coff = coff + v0;
      j.aoff = aoff + v0;
      for (int k0 = 0; k0 < K; k0 += 8) wgrads[nv - 1][imin(8, K - k0) - 1](&j, k0);
    }
  }
  for (int t = 0; t < taps; t++)
    fm_gemm_transpose(K, C, acc + (size_t)t * K * C, C, dw + (size_t)t * C * K, K);
  return 1;
}

size_t fm_conv_implicit_scratch_floats(const fm_conv_geom *g) {
  size_t most = 0, f;
  if (forward_shape(g) && (f = forward_floats(g)) > most) most = f;
  if (input_grad_shape(g) && (f = input_grad_floats(g)) > most) most = f;
  if (weight_grad_shape(g) && (f = weight_grad_floats(g)) > most) most = f;
  return most;
}
