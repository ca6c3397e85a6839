/* fm_gemm: single-threaded C = beta*C + op(A)*op(B) (+ bias, ReLU), with the engine's own AVX-512
 * kernel and OpenBLAS as the portable fallback.
 *
 * The own kernel is built for the shapes of small networks, where N (output channels, units) is
 * small and packing would cost as much as the product: A is never packed (the 12 rows of a tile are
 * broadcast straight from memory, whether A is stored row-major or transposed), B is read in place
 * when row-major and copied into scratch only when transposed. The register tile is 12 rows x 32
 * columns (24 zmm accumulators); edges use AVX-512 masks instead of separate code. The k dimension
 * is blocked so that a 32-column slab of B stays in L1 while every row tile of A streams past it. */
#include "fm_gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdint.h>

#define MR 12
#define NR 32
/* k block: a KC x 32 slab of B (24 KB) plus a 12-row tile of A (9 KB) fit in a 48 KB L1. */
#define KC 192
/* Columns of a transposed B packed at once: KC * NC_PACK floats must fit FM_GEMM_SCRATCH_FLOATS. */
#define NC_PACK 512

static fm_gemm_kernel current_kernel = FM_GEMM_AUTO;
static int simd_allowed = 1;

static int cpu_has_avx512(void) {
  static int cpu = -1;
  if (cpu < 0) {
    __builtin_cpu_init();
    cpu = __builtin_cpu_supports("avx512f") ? 1 : 0;
  }
  return cpu;
}

int fm_simd_avx512(void) { return simd_allowed && cpu_has_avx512(); }

void fm_simd_allow(int on) {
  simd_allowed = on != 0;
  fm_gemm_select(FM_GEMM_AUTO);
}

fm_gemm_kernel fm_gemm_select(fm_gemm_kernel k) {
  int avx512 = fm_simd_avx512();
  if (k == FM_GEMM_AUTO) k = avx512 ? FM_GEMM_AVX512 : FM_GEMM_BLAS;
  if (k == FM_GEMM_AVX512 && !avx512) k = FM_GEMM_BLAS;
  current_kernel = k;
  return k;
}

fm_gemm_kernel fm_gemm_current(void) {
  if (current_kernel == FM_GEMM_AUTO) fm_gemm_select(FM_GEMM_AUTO);
  return current_kernel;
}

const char *fm_gemm_name(fm_gemm_kernel k) {
  switch (k) {
    case FM_GEMM_BLAS: return "openblas";
    case FM_GEMM_AVX512: return "avx512";
    default: return "auto";
  }
}

int fm_blas_threads(void) { return openblas_get_num_threads(); }
void fm_blas_set_threads(int n) { openblas_set_num_threads(n); }

/* Bias and ReLU after a BLAS product (the own kernel applies them in registers instead). */
static void epilogue(int m, int n, float *c, int ldc, const float *bias, int relu) {
  for (int i = 0; i < m; i++) {
    float *row = c + (size_t)i * ldc;
    if (bias)
      for (int j = 0; j < n; j++) row[j] += bias[j];
    if (relu)
      for (int j = 0; j < n; j++) row[j] = row[j] < 0.0f ? 0.0f : row[j]; /* NaN stays NaN */
  }
}

static void gemm_blas(int ta, int tb, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc, const float *bias,
                      int relu) {
  if (k == 0) {
    /* BLAS leaves C alone when k is 0 and beta is 1, but scales it by beta otherwise. */
    if (beta == 0.0f)
      for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = 0.0f;
  } else {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  }
  if (bias || relu) epilogue(m, n, c, ldc, bias, relu);
}

/* ---- the AVX-512 kernel ---- */

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

typedef struct tile_args {
  int kc;            /* k steps */
  const float *a;    /* element (r, kk) of the tile at a[r * rsa + kk * csa] */
  ptrdiff_t rsa, csa;
  const float *b;    /* element (kk, j) at b[kk * ldb + j] */
  ptrdiff_t ldb;
  float *c;
  ptrdiff_t ldc;
  int mr, nr;        /* valid rows (<= 12) and columns (<= 32) of the tile */
  int load_c;        /* accumulate into C instead of overwriting it */
  const float *bias; /* added when not NULL (last k block only) */
  int relu;
} tile_args;

/* The 24 accumulators are named variables, not an array: an array whose address reaches the store
 * code is kept in memory by the compiler, which would cost a store per FMA. */
#define ACC_DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps()
#define ACC_FMA(r, av)                  \
  do {                                  \
    __m512 a_ = (av);                   \
    c##r##0 = _mm512_fmadd_ps(a_, b0, c##r##0); \
    c##r##1 = _mm512_fmadd_ps(a_, b1, c##r##1); \
  } while (0)
#define ACC_STORE(r)                                     \
  if (r < t->mr) store_row(t, r, c##r##0, c##r##1, m0, m1, bias0, bias1)

AVX512 static inline __attribute__((always_inline)) void store_row(const tile_args *t, int r,
                                                                   __m512 v0, __m512 v1,
                                                                   __mmask16 m0, __mmask16 m1,
                                                                   __m512 bias0, __m512 bias1) {
  float *row = t->c + r * t->ldc;
  if (t->load_c) {
    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
  }
  if (t->bias) {
    v0 = _mm512_add_ps(v0, bias0);
    v1 = _mm512_add_ps(v1, bias1);
  }
  if (t->relu) {
    /* max returns its second operand when either is NaN: a NaN must survive the ReLU so that a
     * diverging network shows up in its loss. */
    v0 = _mm512_max_ps(_mm512_setzero_ps(), v0);
    v1 = _mm512_max_ps(_mm512_setzero_ps(), v1);
  }
  _mm512_mask_storeu_ps(row, m0, v0);
  _mm512_mask_storeu_ps(row + 16, m1, v1);
}

/* One kernel body, instantiated for each way of reaching the 12 values A(0..11, kk):
 * LOAD_A(r) is an expression for A(r, kk) and STEP_A advances to kk + 1. */
#define TILE_KERNEL(name, SETUP_A, LOAD_A, STEP_A)                                           \
  AVX512 static void name(const tile_args *t) {                                            \
    __mmask16 m0 = t->nr >= 16 ? 0xFFFF : (__mmask16)((1u << t->nr) - 1);                   \
    __mmask16 m1 =                                                                          \
        t->nr >= 32 ? 0xFFFF : t->nr > 16 ? (__mmask16)((1u << (t->nr - 16)) - 1) : 0;     \
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3); ACC_DECL(4); ACC_DECL(5);           \
    ACC_DECL(6); ACC_DECL(7); ACC_DECL(8); ACC_DECL(9); ACC_DECL(10); ACC_DECL(11);         \
    SETUP_A;                                                                                \
    const float *b = t->b;                                                                  \
    for (int kk = 0; kk < t->kc; kk++) {                                                    \
      __m512 b0 = _mm512_maskz_loadu_ps(m0, b);                                             \
      __m512 b1 = _mm512_maskz_loadu_ps(m1, b + 16);                                        \
      b += t->ldb;                                                                          \
      ACC_FMA(0, LOAD_A(0)); ACC_FMA(1, LOAD_A(1)); ACC_FMA(2, LOAD_A(2));                  \
      ACC_FMA(3, LOAD_A(3)); ACC_FMA(4, LOAD_A(4)); ACC_FMA(5, LOAD_A(5));                  \
      ACC_FMA(6, LOAD_A(6)); ACC_FMA(7, LOAD_A(7)); ACC_FMA(8, LOAD_A(8));                  \
      ACC_FMA(9, LOAD_A(9)); ACC_FMA(10, LOAD_A(10)); ACC_FMA(11, LOAD_A(11));              \
      STEP_A;                                                                               \
    }                                                                                       \
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();                        \
    if (t->bias) {                                                                          \
      bias0 = _mm512_maskz_loadu_ps(m0, t->bias);                                           \
      bias1 = _mm512_maskz_loadu_ps(m1, t->bias + 16);                                      \
    }                                                                                       \
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3); ACC_STORE(4); ACC_STORE(5);     \
    ACC_STORE(6); ACC_STORE(7); ACC_STORE(8); ACC_STORE(9); ACC_STORE(10); ACC_STORE(11);   \
  }

/* A row-major (csa == 1): each row is its own stream, a + r * rsa. Rows past the edge repeat the
 * last valid row (valid memory; never stored). */
#define ROWS_SETUP                                                          \
  const float *a0 = t->a;                                                   \
  ptrdiff_t rs = t->rsa, last_ = t->mr - 1;                                 \
  ptrdiff_t off[MR];                                                        \
  for (int r = 0; r < MR; r++) off[r] = (r <= last_ ? r : last_) * rs
#define ROWS_LOAD(r) _mm512_set1_ps(a0[off[r]])
#define ROWS_STEP a0++
TILE_KERNEL(tile_rows, ROWS_SETUP, ROWS_LOAD, ROWS_STEP)

/* A stored transposed (rsa == 1) and a full tile: the 12 values of a k step are contiguous. */
#define COLS_SETUP const float *a0 = t->a; ptrdiff_t cs = t->csa
#define COLS_LOAD(r) _mm512_set1_ps(a0[r])
#define COLS_STEP a0 += cs
TILE_KERNEL(tile_cols, COLS_SETUP, COLS_LOAD, COLS_STEP)

/* Transposed A at the bottom edge (mr < 12): reading a0[r] for r >= mr could leave the matrix, so
 * rows past the edge repeat the last valid one. */
#define EDGE_SETUP                                                       \
  const float *a0 = t->a;                                                \
  ptrdiff_t cs = t->csa, off[MR];                                        \
  for (int r = 0; r < MR; r++) off[r] = r < t->mr ? r : t->mr - 1
#define EDGE_LOAD(r) _mm512_set1_ps(a0[off[r]])
#define EDGE_STEP a0 += cs
TILE_KERNEL(tile_cols_edge, EDGE_SETUP, EDGE_LOAD, EDGE_STEP)

/* Transposes the 16x16 block at src (row stride ss) into dst (row stride ds), in registers. */
AVX512 static void transpose16(const float *src, ptrdiff_t ss, float *dst, ptrdiff_t ds) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ss);
  /* 32-bit interleave of row pairs, then 64-bit interleave of pair pairs: each 128-bit lane of
   * u[4i+j] then holds rows 4i..4i+3 of column 4*lane + j. */
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
  /* Gather lane L of u[j], u[4+j], u[8+j], u[12+j] into output row 4L + j. */
  for (int j = 0; j < 4; j++) {
    __m512 x = _mm512_shuffle_f32x4(r[j], r[4 + j], _MM_SHUFFLE(2, 0, 2, 0));
    __m512 y = _mm512_shuffle_f32x4(r[j], r[4 + j], _MM_SHUFFLE(3, 1, 3, 1));
    __m512 x2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], _MM_SHUFFLE(2, 0, 2, 0));
    __m512 y2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], _MM_SHUFFLE(3, 1, 3, 1));
    _mm512_storeu_ps(dst + (0 + j) * ds, _mm512_shuffle_f32x4(x, x2, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (8 + j) * ds, _mm512_shuffle_f32x4(x, x2, _MM_SHUFFLE(3, 1, 3, 1)));
    _mm512_storeu_ps(dst + (4 + j) * ds, _mm512_shuffle_f32x4(y, y2, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm512_storeu_ps(dst + (12 + j) * ds, _mm512_shuffle_f32x4(y, y2, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

/* Copies op(B) = B^T rows [pc, pc+kc) and columns [jc, jc+nc) into a row-major kc x nc block:
 * dst[kk * nc + j] = b[(jc + j) * ldb + pc + kk]. Whole 16x16 blocks go through registers (a plain
 * loop writes or reads with a large stride and runs ten times slower). */
AVX512 static void pack_bt(const float *b, int ldb, int pc, int kc, int jc, int nc, float *dst) {
  int j16 = nc & ~15, k16 = kc & ~15;
  for (int j = 0; j < j16; j += 16)
    for (int kk = 0; kk < k16; kk += 16)
      transpose16(b + (size_t)(jc + j) * ldb + pc + kk, ldb, dst + (size_t)kk * nc + j, nc);
  for (int j = 0; j < nc; j++) {
    const float *src = b + (size_t)(jc + j) * ldb + pc;
    for (int kk = j < j16 ? k16 : 0; kk < kc; kk++) dst[(size_t)kk * nc + j] = src[kk];
  }
}

AVX512 static void transpose_avx512(int rows, int cols, const float *src, int lds, float *dst,
                                    int ldd) {
  int r16 = rows & ~15, c16 = cols & ~15;
  for (int r = 0; r < r16; r += 16)
    for (int c = 0; c < c16; c += 16)
      transpose16(src + (size_t)r * lds + c, lds, dst + (size_t)c * ldd + r, ldd);
  for (int r = 0; r < rows; r++)
    for (int c = r < r16 ? c16 : 0; c < cols; c++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

void fm_gemm_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd) {
  if (fm_simd_avx512()) {
    transpose_avx512(rows, cols, src, lds, dst, ldd);
    return;
  }
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

AVX512 static void gemm_avx512(int ta, int tb, int m, int n, int k, const float *a, int lda,
                               const float *b, int ldb, float beta, float *c, int ldc,
                               const float *bias, int relu, float *scratch) {
  /* A(i, kk): row-major a[i*lda + kk], transposed a[kk*lda + i]. */
  ptrdiff_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
  if (k == 0) {
    /* Nothing to add: C is beta*C, then the epilogue. */
    if (beta == 0.0f)
      for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] = 0.0f;
    if (bias || relu) epilogue(m, n, c, ldc, bias, relu);
    return;
  }
  for (int pc = 0; pc < k; pc += KC) {
    int kc = k - pc < KC ? k - pc : KC;
    int last = pc + kc == k;
    for (int jc = 0; jc < n; jc += (tb ? NC_PACK : n)) {
      int nc = tb ? (n - jc < NC_PACK ? n - jc : NC_PACK) : n;
      const float *bblock;
      ptrdiff_t ldbb;
      if (tb) {
        pack_bt(b, ldb, pc, kc, jc, nc, scratch);
        bblock = scratch;
        ldbb = nc;
      } else {
        bblock = b + (size_t)pc * ldb + jc;
        ldbb = ldb;
      }
      for (int j = 0; j < nc; j += NR) {
        tile_args t;
        t.kc = kc;
        t.rsa = rsa;
        t.csa = csa;
        t.b = bblock + j;
        t.ldb = ldbb;
        t.ldc = ldc;
        t.nr = nc - j < NR ? nc - j : NR;
        t.load_c = pc > 0 || beta != 0.0f;
        t.bias = last && bias ? bias + jc + j : NULL;
        t.relu = last && relu;
        for (int i = 0; i < m; i += MR) {
          t.a = a + i * rsa + pc * csa;
          t.c = c + (size_t)i * ldc + jc + j;
          t.mr = m - i < MR ? m - i : MR;
          if (!ta)
            tile_rows(&t);
          else if (t.mr == MR)
            tile_cols(&t);
          else
            tile_cols_edge(&t);
        }
      }
    }
  }
}

void fm_gemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
             int ldb, float beta, float *c, int ldc, const float *bias, int relu,
             float *scratch) {
  if (m <= 0 || n <= 0) return;
  if (fm_gemm_current() == FM_GEMM_AVX512)
    gemm_avx512(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, bias, relu, scratch);
  else
    gemm_blas(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, bias, relu);
}
