/* fm_conv_implicit: implicit-GEMM AVX-512 convolution kernels (see fm_conv_implicit.h).
 *
 * Forward and input gradient share one tile kernel: a tile is R rows x P pixels x NV vectors of
 * 16 output channels (R * P * NV <= 28 zmm accumulators); for each tap and input channel it loads
 * NV vectors of weights and broadcasts R * P input values against them. Its input is an image in
 * a zero-padded layout of 16 channels a pixel (below), where a tile's pixels and the kernel's taps
 * are constant offsets from one pointer per tile row. The shapes are chosen per layer so that a
 * tile covers whole output rows where it can: 28 x 16 channels, 14 x 32, 7 x 64, 2 rows of 14 x
 * 16, ...; a stride-s layer's input gradient is s x s stride-1 convolutions, one per parity class
 * of input pixels. For 3x3 stride-1 "same" layers whose row is one tile, a variant reads the NHWC
 * image itself (no copy), with zero rows and zero broadcasts where the padding would be.
 *
 * The weight gradient keeps 8 output channels x 3 (tap, 16 input channels) columns of the
 * gradient in 24 accumulators and streams every pixel of a block of images past them: per pixel it
 * loads 3 input vectors (from the padded layout, or in place for 3x3 stride-1 "same" layers) and
 * broadcasts 8 output gradients. The sums go through a scratch array, so the order of every sum is
 * images, then pixels, whatever the blocking. Both gradients go a block of images at a time, the
 * block's output gradients still in L2 for the second. */
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
int fm_conv_implicit_rows = 1;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int ceil_div(int a, int b) { return -floor_div(-a, b); }
static __mmask16 lanes(int n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* Shapes the kernels handle (the scratch size depends on these only), and whether to run. */
static int shape_ok(const fm_conv_geom *g) { return g->groups == 1 && g->kh * g->kw <= MAX_TAPS; }
static int enabled(void) { return fm_conv_implicit_enabled && fm_simd_avx512(); }

/* ---- the layout the kernels read ----
 * An image padded with zeros and cut into blocks of 16 channels: block b (channels 16b .. 16b+15)
 * is hp x wp pixels of 16 floats, so that padded pixel (yy, xx), channel ch is at
 * ((ch / 16) * hp * wp + yy * wp + xx) * 16 + ch % 16. A pixel's values for one channel are
 * 16 floats apart whatever the channel count: a tile's pixels are constant offsets from one
 * pointer, and so is each tap of the kernel. Channels past the last (c not a multiple of 16) are
 * zeros. With 16 channels this is the padded NHWC image itself. */

/* floats of one image in that layout */
static size_t blocked_floats(int hp, int wp, int c) {
  return (size_t)((c + 15) / 16) * (size_t)hp * (size_t)wp * 16;
}

/* An h x w x c NHWC image into the blocked layout, its pixel (iy, ix) at padded (iy + top,
 * ix + left); pixels that fall past the padded extent (a "valid" convolution's unused last rows
 * or columns) are left out. */
AVX512 static void image_to_blocked(const float *img, int h, int w, int c, int top, int left,
                                    int hp, int wp, float *dst) {
  const int nb = (c + 15) / 16, x_end = imin(wp, left + w);
  const size_t bs = (size_t)hp * wp * 16, row = (size_t)wp * 16;
  const __m512 zero = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const __mmask16 m = lanes(c - 16 * b);
    for (int yy = 0; yy < hp; yy++) {
      float *r = dst + b * bs + yy * row;
      const int iy = yy - top;
      if (iy < 0 || iy >= h) {
        memset(r, 0, sizeof(float) * row);
        continue;
      }
      const float *src = img + (size_t)iy * w * c + 16 * b - (ptrdiff_t)left * c;
      int xx = 0;
      for (; xx < left; xx++) _mm512_storeu_ps(r + xx * 16, zero);
      if (c == 16) {
        memcpy(r + left * 16, src + left * 16, sizeof(float) * 16 * (size_t)(x_end - left));
        xx = x_end;
      }
      /* A masked load that misses the cache is several times slower than a plain one here:
       * masks only for a last block of fewer than 16 channels. */
      if (c - 16 * b >= 16)
        for (; xx < x_end; xx++) _mm512_storeu_ps(r + xx * 16, _mm512_loadu_ps(src + (ptrdiff_t)xx * c));
      for (; xx < x_end; xx++)
        _mm512_storeu_ps(r + xx * 16, _mm512_maskz_loadu_ps(m, src + (ptrdiff_t)xx * c));
      for (; xx < wp; xx++) _mm512_storeu_ps(r + xx * 16, zero);
    }
  }
}

/* ---- prefetching ----
 * Each image (or block of images) comes from memory shared by the cores (the layer's tensor for
 * a whole shard is megabytes); while the kernels work on one, the next is fetched into L2 a slice
 * at a time, so its copy into the blocked layout does not wait for it. */
typedef struct prefetcher {
  const char *at, *end;
  size_t step; /* bytes per call of prefetch_some */
} prefetcher;

/* Fetch [p, p + bytes) over `calls` calls of prefetch_some. */
static void prefetch_plan(prefetcher *pf, const void *p, size_t bytes, size_t calls) {
  pf->at = p;
  pf->end = p ? pf->at + bytes : NULL;
  pf->step = calls ? (bytes + calls - 1) / calls : bytes;
}

static void prefetch_some(prefetcher *pf) {
  if (!pf->at) return; /* nothing planned: no arithmetic on a null pointer */
  const char *stop = pf->at + pf->step < pf->end ? pf->at + pf->step : pf->end;
  for (; pf->at < stop; pf->at += 64) __builtin_prefetch(pf->at, 0, 2);
}

/* ---- the tile kernel (forward and input gradient) ---- */

typedef struct tile_job {
  int ntaps;
  ptrdiff_t toff[MAX_TAPS];  /* tap t's input: this offset from the tile's origin */
  const float *tw[MAX_TAPS]; /* tap t's weights: cin rows of ldw output channels */
  int cin;                   /* input channels summed per tap */
  ptrdiff_t bs;              /* floats from one block of 16 input channels to the next */
  ptrdiff_t in_row;          /* floats from one tile row's input to the next's */
  ptrdiff_t ldw;             /* output channels: weights' row stride */
  ptrdiff_t out_px, out_row; /* floats from one output pixel, and one tile row, to the next */
  const float *bias;         /* added before the store (may be NULL) */
  int relu;
} tile_job;

typedef void (*tile_fn)(const tile_job *j, const float *in, int k0, float *out, int nrows);

/* The accumulators are named variables c0..c27 (an array would be kept in memory), each guarded
 * by a test on constants that the compiler resolves in every instantiation. Accumulator i is tile
 * row i / (P * NV), pixel (i / NV) % P, channel vector i % NV; pixel p's input is 16 S p floats
 * from its row's pointer. */
#define FOR_ACC(M)                                                                             \
  M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15) M(16) \
  M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27)
#define T_DECL(i) __m512 c##i = _mm512_setzero_ps();
#define T_W(v) ((v) == 0 ? w0 : (v) == 1 ? w1 : (v) == 2 ? w2 : w3)
#define T_ROW(r) ((r) == 0 ? a0 : (r) == 1 ? a1 : (r) == 2 ? a2 : a3)
#define T_FMA(i)                                                                               \
  if ((i) < N)                                                                                 \
    c##i = _mm512_fmadd_ps(_mm512_set1_ps(T_ROW((i) / (P * NV))[16 * S * (((i) / NV) % P)]), \
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
 * x NV vectors of output channels k0 ... k0 + 16 NV - 1; S is the stride in the input. The sum
 * runs over taps, then input channels in order. */
AVX512 INLINE void tile_body(const tile_job *j, const float *in, int k0, float *out, int nrows,
                             const int S, const int NV, const int R, const int P) {
  const int N = R * P * NV;
  FOR_ACC(T_DECL)
  const ptrdiff_t ldw = j->ldw;
  const ptrdiff_t r1 = (1 < nrows ? 1 : nrows - 1) * j->in_row;
  const ptrdiff_t r2 = (2 < nrows ? 2 : nrows - 1) * j->in_row;
  const ptrdiff_t r3 = (3 < nrows ? 3 : nrows - 1) * j->in_row;
  for (int t = 0; t < j->ntaps; t++) {
    for (int first = 0; first < j->cin; first += 16) {
      const float *a0 = in + j->toff[t] + (first / 16) * j->bs, *a1 = a0 + r1, *a2 = a0 + r2;
      const float *a3 = a0 + r3, *b = j->tw[t] + (ptrdiff_t)first * ldw + k0;
      const int nc = imin(16, j->cin - first);
      for (int c = 0; c < nc; c++) {
        __m512 w0 = _mm512_loadu_ps(b), w1 = w0, w2 = w0, w3 = w0;
        if (NV > 1) w1 = _mm512_loadu_ps(b + 16);
        if (NV > 2) w2 = _mm512_loadu_ps(b + 32);
        if (NV > 3) w3 = _mm512_loadu_ps(b + 48);
        FOR_ACC(T_FMA)
        a0++;
        if (R > 1) a1++;
        if (R > 2) a2++;
        if (R > 3) a3++;
        b += ldw;
      }
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
 * (q, i) reads its input at in + q * j->in_row + 16 S i and is written at out + q * j->out_row +
 * i * j->out_px. The channels go in chunks of at most 4 vectors; each row of the grid is cut
 * into equal tiles (the last one moved back to end at the row's end, recomputing a few pixels),
 * and rows are taken in groups of the tile's rows. */
static int grid_calls(int rows, int cols, int cout) {
  const int vectors = cout / 16, chunks = (vectors + 3) / 4;
  int calls = 0;
  for (int ch = 0; ch < chunks; ch++) {
    const int nv = vectors / chunks + (ch < vectors % chunks);
    const int pmax = TILE_ACC / nv, per_row = (cols + pmax - 1) / pmax;
    const int p = (cols + per_row - 1) / per_row, r = TILE_ROWS(nv, p);
    calls += per_row * ((rows + r - 1) / r);
  }
  return calls;
}

static void run_grid(const tile_job *j, int S, int rows, int cols, int cout, const float *in,
                     float *out, prefetcher *pf) {
  const int vectors = cout / 16, chunks = (vectors + 3) / 4;
  for (int ch = 0, k0 = 0; ch < chunks; ch++) {
    const int nv = vectors / chunks + (ch < vectors % chunks);
    const int pmax = TILE_ACC / nv, per_row = (cols + pmax - 1) / pmax;
    const int p = (cols + per_row - 1) / per_row, r = TILE_ROWS(nv, p);
    const tile_fn fn = tiles[S - 1][nv - 1][p - 1];
    for (int q0 = 0; q0 < rows; q0 += r)
      for (int t = 0; t < per_row; t++) {
        const int i0 = imin(t * p, cols - p);
        if (pf) prefetch_some(pf);
        fn(j, in + q0 * j->in_row + (ptrdiff_t)16 * S * i0, k0,
           out + q0 * j->out_row + i0 * j->out_px + k0, imin(r, rows - q0));
      }
    k0 += 16 * nv;
  }
}

/* ---- whole rows of a 3x3 "same" convolution, straight from the NHWC images ----
 * The commonest layers (ResNet's 3x3 stride-1 convolutions at 28 x 16, 14 x 32 and 7 x 64) fit a
 * tile that is one whole output row: then the image needs no copy. A tile reads the three input
 * rows around its own from the NHWC image (a row of zeros above the first and below the last),
 * each pixel its left, own and right neighbours, with a zero in place of the neighbour past either
 * edge: the same products, zeros included, in the same order (taps, then channels) as the
 * blocked-layout kernel, so both give the same bits. The channel count C (the pixel stride) is a
 * constant of each instantiation. */

typedef struct row3_job {
  const float *tw[9]; /* tap (ky, kx)'s weights, C rows of ldw output channels */
  ptrdiff_t ldw;      /* output channels: the weights' row stride and the output pixel stride */
  const float *bias;
  int relu;
} row3_job;

typedef void (*row3_fn)(const row3_job *j, const float *const *rows, int k0, float *out);

/* Pixel p's input through tap column KX (0, 1, 2 = left, own, right), broadcast; zero past the
 * row's ends. */
#define R3_IN(p) \
  ((KX == 0 && (p) == 0) || (KX == 2 && (p) == P - 1) ? _mm512_setzero_ps() : _mm512_set1_ps(a0[(p) * C]))
#define R3_FMA(i) \
  if ((i) < N) c##i = _mm512_fmadd_ps(R3_IN((i) / NV), T_W((i) % NV), c##i);
#define R3_TAP(kx)                                                     \
  {                                                                    \
    enum { KX = kx };                                                  \
    const float *a0 = r + (KX - 1) * C, *b = j->tw[3 * ky + KX] + k0;   \
    for (int c = 0; c < C; c++, a0++, b += ldw) {                      \
      __m512 w0 = _mm512_loadu_ps(b), w1 = w0, w2 = w0, w3 = w0;       \
      if (NV > 1) w1 = _mm512_loadu_ps(b + 16);                        \
      if (NV > 2) w2 = _mm512_loadu_ps(b + 32);                        \
      if (NV > 3) w3 = _mm512_loadu_ps(b + 48);                        \
      FOR_ACC(R3_FMA)                                                  \
    }                                                                  \
  }
#define R3_STORE(i)                                                                         \
  if ((i) < N) {                                                                           \
    __m512 v_ = c##i;                                                                      \
    if (j->bias) v_ = _mm512_add_ps(v_, _mm512_loadu_ps(j->bias + k0 + 16 * ((i) % NV))); \
    if (j->relu) v_ = _mm512_max_ps(_mm512_setzero_ps(), v_);                             \
    _mm512_storeu_ps(out + ((i) / NV) * ldw + 16 * ((i) % NV), v_);                        \
  }

AVX512 INLINE void row3_body(const row3_job *j, const float *const *rows, int k0, float *out,
                             const int C, const int NV, const int P) {
  const int N = P * NV;
  const ptrdiff_t ldw = j->ldw;
  FOR_ACC(T_DECL)
  for (int ky = 0; ky < 3; ky++) {
    const float *r = rows[ky];
    R3_TAP(0) R3_TAP(1) R3_TAP(2)
  }
  FOR_ACC(R3_STORE)
}

#define ROW3_DEF(C, NV, P)                                                                    \
  AVX512 static void row3_##C##_##NV##_##P(const row3_job *j, const float *const *rows,       \
                                           int k0, float *out) {                             \
    row3_body(j, rows, k0, out, C, NV, P);                                                    \
  }
#define ROW3_SHAPES(M, C) M(C, 1, 28) M(C, 1, 14) M(C, 1, 7) M(C, 2, 14) M(C, 2, 7) M(C, 4, 7)
ROW3_SHAPES(ROW3_DEF, 16)
ROW3_SHAPES(ROW3_DEF, 32)
ROW3_SHAPES(ROW3_DEF, 64)

/* The instantiation for C input channels, nv vectors of outputs and rows of p pixels, or NULL. */
static row3_fn row3_kernel(int C, int nv, int p) {
#define ROW3_PICK(c_, nv_, p_) \
  if (C == (c_) && nv == (nv_) && p == (p_)) return row3_##c_##_##nv_##_##p_;
  ROW3_SHAPES(ROW3_PICK, 16)
  ROW3_SHAPES(ROW3_PICK, 32)
  ROW3_SHAPES(ROW3_PICK, 64)
  return NULL;
}

/* The vectors of output channels per tile for rows of w pixels and cout channels: the most that
 * fit 28 accumulators and divide the channels; 0 when no row kernel fits. */
static int row3_vectors(int C, int cout, int w) {
  for (int nv = 4; nv >= 1; nv--)
    if ((cout / 16) % nv == 0 && row3_kernel(C, nv, w)) return nv;
  return 0;
}

/* Whether a layer's forward (reduction over cin, outputs cout) or input gradient (over cout,
 * outputs cin) can go through whole rows: 3x3, stride 1, one pixel of padding on every side. */
static int row3_shape(const fm_conv_geom *g, int reduce, int outputs) {
  return fm_conv_implicit_rows && g->kh == 3 && g->kw == 3 && g->stride == 1 &&
         g->pad_top == 1 && g->pad_left == 1 && g->oh == g->h && g->ow == g->w &&
         outputs % 16 == 0 && row3_vectors(reduce, outputs, g->w) > 0;
}

/* One image: rows of h x w pixels of C channels (NHWC) in, w pixels x cout channels out; zero: w
 * x C zeros. */
static void row3_image(const row3_job *j, int h, int w, int C, int cout, const float *img,
                       const float *zero, float *out, prefetcher *pf) {
  const int nv = row3_vectors(C, cout, w);
  const row3_fn fn = row3_kernel(C, nv, w);
  const size_t row = (size_t)w * C;
  for (int y = 0; y < h; y++) {
    const float *rows[3] = {y > 0 ? img + (y - 1) * row : zero, img + y * row,
                            y + 1 < h ? img + (y + 1) * row : zero};
    for (int k0 = 0; k0 < cout; k0 += 16 * nv) {
      if (pf) prefetch_some(pf);
      fn(j, rows, k0, out + (size_t)y * w * cout + k0);
    }
  }
}

/* ---- forward ---- */

/* The padded input extent a stride-s kernel of k taps covers for `out` outputs. */
static int span(int out, int k, int s) { return s * (out - 1) + k; }

static int forward_shape(const fm_conv_geom *g) {
  return shape_ok(g) && g->cout % 16 == 0 && (g->stride == 1 || g->stride == 2);
}

/* The blocked copy of one image (or, through whole rows, a row of zeros: less). */
static size_t forward_floats(const fm_conv_geom *g) {
  return round16(blocked_floats(span(g->oh, g->kh, g->stride), span(g->ow, g->kw, g->stride),
                                g->cin));
}

int fm_conv_implicit_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                             const float *bias, float *y, int relu, float *scratch) {
  if (!enabled() || !forward_shape(g)) return 0;
  const int S = g->stride, C = g->cin, K = g->cout;
  if (row3_shape(g, C, K)) {
    row3_job j = {.ldw = K, .bias = bias, .relu = relu};
    for (int t = 0; t < 9; t++) j.tw[t] = w + (size_t)t * C * K;
    const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * K;
    memset(scratch, 0, sizeof(float) * g->w * C);
    for (int i = 0; i < n; i++) {
      prefetcher pf;
      prefetch_plan(&pf, i + 1 < n ? x + (i + 1) * in_img : NULL, sizeof(float) * in_img,
                    (size_t)g->h * (K / 16 / row3_vectors(C, K, g->w)));
      row3_image(&j, g->h, g->w, C, K, x + i * in_img, scratch, y + i * out_img, &pf);
    }
    return 1;
  }
  const int hp = span(g->oh, g->kh, S), wp = span(g->ow, g->kw, S);
  tile_job j = {.ntaps = g->kh * g->kw, .cin = C, .bs = (ptrdiff_t)hp * wp * 16,
                .in_row = (ptrdiff_t)S * wp * 16, .ldw = K, .out_px = K,
                .out_row = (ptrdiff_t)g->ow * K, .bias = bias, .relu = relu};
  for (int t = 0; t < j.ntaps; t++) {
    j.toff[t] = ((ptrdiff_t)(t / g->kw) * wp + t % g->kw) * 16;
    j.tw[t] = w + (size_t)t * C * K;
  }
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * K;
  const int calls = grid_calls(g->oh, g->ow, K);
  for (int i = 0; i < n; i++) {
    prefetcher pf;
    prefetch_plan(&pf, i + 1 < n ? x + (i + 1) * in_img : NULL, sizeof(float) * in_img, calls);
    image_to_blocked(x + i * in_img, g->h, g->w, C, g->pad_top, g->pad_left, hp, wp, scratch);
    run_grid(&j, S, g->oh, g->ow, K, scratch, y + i * out_img, &pf);
  }
  return 1;
}

/* ---- input gradient ----
 * With u = iy + pad_top, output row oy takes input row iy through tap ky when s * oy + ky = u.
 * For the class of input rows with u % s = r and u = s * q + r, the taps are ky = r + s * m
 * (m = 0 .. M_r - 1, M_r = ceil((kh - r) / s)) and oy = q - m: a stride-1 convolution of the
 * output gradient with M_r taps, flipped. dy goes into the blocked layout with M - 1 zero rows on
 * top (M = ceil(kh / s), the most taps of any class), so that class r's tap m' = M_r - 1 - m
 * reads padded row q + m' + M - M_r. The same along columns. A class that no tap reaches (a 1x1
 * kernel with stride 2) runs with no taps: zeros. */

typedef struct grad_geom {
  int m_y, m_x; /* most taps of a class, per axis */
  int hd, wd;   /* the padded output gradient's extent */
} grad_geom;

static void input_grad_geom(const fm_conv_geom *g, grad_geom *d) {
  const int s = g->stride;
  d->m_y = (g->kh + s - 1) / s;
  d->m_x = (g->kw + s - 1) / s;
  /* Rows read: up to q_max + M - 1 with q_max = (h - 1 + pad_top) / s; rows written: oh of dy. */
  d->hd = imax((g->h - 1 + g->pad_top) / s + d->m_y, g->oh + d->m_y - 1);
  d->wd = imax((g->w - 1 + g->pad_left) / s + d->m_x, g->ow + d->m_x - 1);
}

static int input_grad_shape(const fm_conv_geom *g) { return shape_ok(g) && g->cin % 16 == 0; }

/* Input pixels of one parity class along an axis: u = s * q + r for q in [*lo, *hi]. */
static void class_range(int size, int pad, int s, int r, int *lo, int *hi) {
  *lo = imax(0, ceil_div(pad - r, s));
  *hi = floor_div(size - 1 + pad - r, s);
}

/* dx of one image from its output gradient in the blocked layout (d) and the transposed weights
 * wt (each tap's cout x cin). */
static void input_grad_image(const fm_conv_geom *g, const grad_geom *d, const float *wt,
                             const float *dyb, float *dxi) {
  const int s = g->stride, C = g->cin, K = g->cout;
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
      tile_job j = {.ntaps = my * mx, .cin = K, .bs = (ptrdiff_t)d->hd * d->wd * 16,
                    .in_row = (ptrdiff_t)d->wd * 16, .ldw = C, .out_px = (ptrdiff_t)s * C,
                    .out_row = (ptrdiff_t)s * g->w * C};
      for (int a = 0; a < my; a++)
        for (int b = 0; b < mx; b++) {
          const int ky = ry + s * (my - 1 - a), kx = rx + s * (mx - 1 - b), t = a * mx + b;
          j.toff[t] = ((ptrdiff_t)(a + d->m_y - my) * d->wd + (b + d->m_x - mx)) * 16;
          j.tw[t] = wt + (size_t)(ky * g->kw + kx) * C * K;
        }
      run_grid(&j, 1, q_hi - q_lo + 1, p_hi - p_lo + 1, C,
               dyb + ((ptrdiff_t)q_lo * d->wd + p_lo) * 16, out, NULL);
    }
}

/* ---- weight gradient ---- */

typedef struct wgrad_job {
  const float *x;                  /* padded blocked images */
  ptrdiff_t x_img, x_row, x_px;    /* floats per image, per output row, per output pixel */
  const float *dy;                 /* NHWC output gradients of the same images */
  ptrdiff_t dy_img;
  int cout, oh, ow, n;
  const ptrdiff_t *coff;           /* column v's input vector: this offset from the pixel */
  float *acc;                      /* the partial sums: row k, column v at acc[k * ldacc + aoff[v]] */
  ptrdiff_t ldacc;
  const ptrdiff_t *aoff;
  prefetcher *pf_x, *pf_dy;        /* the next block's images, a slice per row of pixels */
  /* In place (3x3, stride 1, one pixel of padding, NHWC images): column v reads input row
   * oy + ky[v] - 1 (or the zero row) at pixel ox + kx[v] - 1 (a zero vector past the edges);
   * coff[v] is then (kx[v] - 1) * cin + 16 * block. */
  const int *ky, *kx;
  int h;
  const float *zero;               /* cin x (ow + 2) zeros, from its second pixel */
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
      prefetch_some(j->pf_x);
      prefetch_some(j->pf_dy);
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

/* The same sums read from the NHWC images in place (see wgrad_job): the padded copy's zeros are
 * zero rows and zero vectors here, in the same places, so the bits are those of wgrad_body. */
#define WP_X(v, o) \
  (edge && ((ox == 0 && j->kx[v] == 0) || (ox == last && j->kx[v] == 2)) ? _mm512_setzero_ps() \
                                                                        : _mm512_loadu_ps((o) + ox * px))
AVX512 INLINE void wgrad_place_body(const wgrad_job *j, int k0, const int V, const int R) {
  const int N = R * V;
  float *acc = j->acc + (ptrdiff_t)k0 * j->ldacc;
  const ptrdiff_t ld = j->ldacc, *aoff = j->aoff;
  FOR_WACC(W_LOAD)
  const ptrdiff_t px = j->x_px, K = j->cout, row = (ptrdiff_t)j->ow * px;
  const int last = j->ow - 1;
  for (int i = 0; i < j->n; i++) {
    const float *xi = j->x + i * j->x_img, *di = j->dy + i * j->dy_img + k0;
    for (int oy = 0; oy < j->oh; oy++) {
      const float *base[3];
      for (int v = 0; v < V; v++) {
        const int iy = oy + j->ky[v] - 1;
        base[v] = (iy >= 0 && iy < j->h ? xi + iy * row : j->zero) + j->coff[v];
      }
      const float *b0 = base[0], *b1 = V > 1 ? base[1] : b0, *b2 = V > 2 ? base[2] : b0;
      const float *d = di + (ptrdiff_t)oy * j->ow * K;
      prefetch_some(j->pf_x);
      prefetch_some(j->pf_dy);
      for (int ox = 0; ox <= last; ox++, d += K) {
        /* the first and last pixels of a row: zeros for the neighbours past the edge */
        const int edge = ox == 0 || ox == last;
        __m512 x0 = WP_X(0, b0), x1 = x0, x2 = x0;
        if (V > 1) x1 = WP_X(1, b1);
        if (V > 2) x2 = WP_X(2, b2);
        FOR_WACC(W_FMA)
      }
    }
  }
  FOR_WACC(W_STORE)
}

#define WGRAD_DEF(V, R)                                                                       \
  AVX512 static void wgrad_##V##_##R(const wgrad_job *j, int k0) { wgrad_body(j, k0, V, R); } \
  AVX512 static void wgrad_place_##V##_##R(const wgrad_job *j, int k0) {                     \
    wgrad_place_body(j, k0, V, R);                                                          \
  }
#define WGRAD_REF(V, R) wgrad_##V##_##R,
#define WGRAD_PLACE_REF(V, R) wgrad_place_##V##_##R,
#define R8(M, V) M(V, 1) M(V, 2) M(V, 3) M(V, 4) M(V, 5) M(V, 6) M(V, 7) M(V, 8)
R8(WGRAD_DEF, 1)
R8(WGRAD_DEF, 2)
R8(WGRAD_DEF, 3)
/* wgrads[place][V - 1][R - 1] */
static const wgrad_fn wgrads[2][3][8] = {
    {{R8(WGRAD_REF, 1)}, {R8(WGRAD_REF, 2)}, {R8(WGRAD_REF, 3)}},
    {{R8(WGRAD_PLACE_REF, 1)}, {R8(WGRAD_PLACE_REF, 2)}, {R8(WGRAD_PLACE_REF, 3)}}};

/* Columns (tap, 16 input channels): at most MAX_TAPS * 16, the size of the offset tables. Any
 * channel count: a last block of fewer than 16 channels holds zeros past them. */
static int weight_grad_shape(const fm_conv_geom *g) {
  return shape_ok(g) && g->kh * g->kw * ((g->cin + 15) / 16) <= MAX_TAPS * 16;
}

/* ---- backward: both gradients, a block of images at a time ---- */

/* The weight gradient's images and their output gradients, about half of a 1 MB L2: the input
 * gradient then finds the output gradients of the block still there. */
static int backward_block(const fm_conv_geom *g) {
  const size_t per = blocked_floats(span(g->oh, g->kh, g->stride), span(g->ow, g->kw, g->stride),
                                    g->cin) + (size_t)g->oh * g->ow * g->cout;
  const size_t b = WGRAD_BLOCK_FLOATS / per;
  return b < 1 ? 1 : b > 64 ? 64 : (int)b;
}

/* Scratch: [transposed weights][the weight gradient's sums][a block of padded images][one padded
 * output gradient]. */
typedef struct backward_layout {
  size_t wt, acc, xblk, dyb, total;
} backward_layout;

static void backward_plan(const fm_conv_geom *g, backward_layout *l) {
  grad_geom d;
  input_grad_geom(g, &d);
  const size_t taps = (size_t)g->kh * g->kw, cb = (size_t)(g->cin + 15) / 16 * 16;
  l->wt = 0;
  l->acc = l->wt + round16(taps * g->cin * g->cout);
  l->xblk = l->acc + round16(taps * g->cout * cb);
  l->dyb = l->xblk + round16((size_t)backward_block(g) *
                             blocked_floats(span(g->oh, g->kh, g->stride),
                                            span(g->ow, g->kw, g->stride), g->cin));
  l->total = l->dyb + round16(blocked_floats(d.hd, d.wd, g->cout));
}

int fm_conv_implicit_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *scratch) {
  if (!enabled() || (dx && !input_grad_shape(g)) || (dw && !weight_grad_shape(g))) return 0;
  const int s = g->stride, C = g->cin, K = g->cout, taps = g->kh * g->kw, nb = (C + 15) / 16;
  const int hp = span(g->oh, g->kh, s), wp = span(g->ow, g->kw, s), block = backward_block(g);
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * K;
  const size_t pad_img = blocked_floats(hp, wp, C);
  backward_layout l;
  backward_plan(g, &l);
  grad_geom d;
  input_grad_geom(g, &d);
  float *wt = scratch + l.wt, *acc = scratch + l.acc, *xblk = scratch + l.xblk;
  float *dyb = scratch + l.dyb;
  /* Each tap's weights transposed (cout rows of cin) for the input gradient. */
  if (dx)
    for (int t = 0; t < taps; t++)
      fm_gemm_transpose(C, K, w + (size_t)t * C * K, K, wt + (size_t)t * C * K, C);
  /* Through whole rows: the taps flipped, and a row of zeros where the padded dy would go. */
  const int rows3 = dx && row3_shape(g, K, C);
  row3_job jt = {.ldw = C};
  if (rows3) {
    for (int t = 0; t < 9; t++) jt.tw[t] = wt + (size_t)(8 - t) * C * K;
    memset(dyb, 0, sizeof(float) * g->w * K);
  }
  /* The weight gradient's sums as [tap][cout][16 nb]: a column (tap, block of 16 input channels)
   * is one vector of a row. */
  const ptrdiff_t ldacc = (ptrdiff_t)nb * 16, cols = (ptrdiff_t)taps * nb;
  ptrdiff_t coff[MAX_TAPS * 16], aoff[MAX_TAPS * 16];
  int cky[MAX_TAPS * 16], ckx[MAX_TAPS * 16];
  /* 3x3 stride-1 layers with one pixel of padding and whole blocks of 16 channels read x in
   * place: no padded copy. */
  const int place = dw && fm_conv_implicit_rows && g->kh == 3 && g->kw == 3 && s == 1 &&
                    g->pad_top == 1 && g->pad_left == 1 && g->oh == g->h && g->ow == g->w &&
                    C % 16 == 0;
  if (dw) {
    memset(acc, 0, sizeof(float) * (size_t)taps * K * ldacc);
    for (int v = 0; v < cols; v++) {
      const int t = v / nb, b = v % nb;
      cky[v] = t / g->kw, ckx[v] = t % g->kw;
      coff[v] = place ? (ptrdiff_t)(ckx[v] - 1) * C + 16 * b
                      : (ptrdiff_t)b * hp * wp * 16 + ((ptrdiff_t)cky[v] * wp + ckx[v]) * 16;
      aoff[v] = (ptrdiff_t)t * K * ldacc + 16 * b;
    }
    /* the zero row of the in-place reads: (w + 2) pixels, so that the neighbours of its ends
     * are zeros too */
    if (place) memset(xblk, 0, sizeof(float) * (size_t)(g->w + 2) * C);
  }
  for (int i0 = 0; i0 < n; i0 += block) {
    const int cnt = imin(block, n - i0), next = imin(block, n - i0 - cnt);
    /* The next block's x and dy, while the weight gradient streams this one (all of it, as
     * many rows as the passes below make). */
    prefetcher pf_x, pf_dy;
    const size_t rows = (size_t)((cols + 2) / 3) * ((K + 7) / 8) * cnt * g->oh;
    prefetch_plan(&pf_x, next ? x + (i0 + cnt) * in_img : NULL, sizeof(float) * next * in_img,
                  rows);
    prefetch_plan(&pf_dy, next ? dy + (i0 + cnt) * out_img : NULL,
                  sizeof(float) * next * out_img, rows);
    if (dw) {
      wgrad_job j = {.x = xblk, .x_img = (ptrdiff_t)pad_img, .x_row = (ptrdiff_t)s * wp * 16,
                     .x_px = (ptrdiff_t)s * 16, .dy = dy + i0 * out_img,
                     .dy_img = (ptrdiff_t)out_img, .cout = K, .oh = g->oh, .ow = g->ow,
                     .n = cnt, .acc = acc, .ldacc = ldacc, .pf_x = &pf_x, .pf_dy = &pf_dy,
                     .h = g->h, .zero = xblk + C};
      if (place) {
        j.x = x + i0 * in_img;
        j.x_img = (ptrdiff_t)in_img;
        j.x_px = C;
      } else {
        for (int i = 0; i < cnt; i++)
          image_to_blocked(x + (i0 + i) * in_img, g->h, g->w, C, g->pad_top, g->pad_left, hp,
                           wp, xblk + i * pad_img);
      }
      for (int v0 = 0; v0 < cols; v0 += 3) {
        const int nv = (int)(cols - v0 < 3 ? cols - v0 : 3);
        j.coff = coff + v0;
        j.aoff = aoff + v0;
        j.ky = cky + v0;
        j.kx = ckx + v0;
        for (int k0 = 0; k0 < K; k0 += 8) wgrads[place][nv - 1][imin(8, K - k0) - 1](&j, k0);
      }
    }
    if (dx && rows3)
      for (int i = i0; i < i0 + cnt; i++)
        row3_image(&jt, g->h, g->w, K, C, dy + i * out_img, dyb, dx + i * in_img, NULL);
    else if (dx)
      for (int i = i0; i < i0 + cnt; i++) {
        image_to_blocked(dy + i * out_img, g->oh, g->ow, K, d.m_y - 1, d.m_x - 1, d.hd, d.wd, dyb);
        input_grad_image(g, &d, wt, dyb, dx + i * in_img);
      }
  }
  if (dw)
    for (int t = 0; t < taps; t++)
      fm_gemm_transpose(K, C, acc + (size_t)t * K * ldacc, (int)ldacc, dw + (size_t)t * C * K, K);
  return 1;
}

size_t fm_conv_implicit_scratch_floats(const fm_conv_geom *g) {
  size_t most = forward_shape(g) ? forward_floats(g) : 0;
  if (input_grad_shape(g) || weight_grad_shape(g)) {
    backward_layout l;
    backward_plan(g, &l);
    if (l.total > most) most = l.total;
  }
  return most;
}
