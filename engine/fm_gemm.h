/* fm_gemm: the single-threaded matrix product under every dense and convolution layer.
 *
 * The network runs one call per thread on its own part of the batch, so this product never starts
 * threads of its own: that keeps the two levels of parallelism from fighting over the cores and
 * keeps every result independent of how many threads run the network.
 *
 * Two kernels compute it, picked at run time:
 *  - FM_GEMM_AVX512: the engine's own kernel for CPUs with AVX-512 (12x32 register tile, no packing
 *    of A, B read in place unless transposed), about twice as fast as OpenBLAS restricted to AVX2;
 *  - FM_GEMM_BLAS: OpenBLAS's cblas_sgemm, pinned to one thread by the caller (fm_blas_single).
 * Both are deterministic: the same inputs give the same bits on the same kernel. */
#ifndef FM_GEMM_H
#define FM_GEMM_H

#include <stddef.h>

typedef enum { FM_GEMM_AUTO = 0, FM_GEMM_BLAS = 1, FM_GEMM_AVX512 = 2 } fm_gemm_kernel;

/* Floats of scratch memory fm_gemm may need (for a transposed B). */
#define FM_GEMM_SCRATCH_FLOATS ((size_t)256 * 512)

/* Chooses the kernel for every later call in the process (FM_GEMM_AUTO: the fastest the CPU
 * supports). Returns the kernel now in use; asking for AVX-512 on a CPU without it gives BLAS. */
fm_gemm_kernel fm_gemm_select(fm_gemm_kernel k);
fm_gemm_kernel fm_gemm_current(void);
const char *fm_gemm_name(fm_gemm_kernel k);

/* C = beta * C + op(A) * op(B), then, when asked, + bias (one value per column of C) and ReLU.
 * Row-major: op(A) is m x k, op(B) is k x n, C is m x n with row stride ldc. ta/tb non-zero mean
 * A (k x m, stride lda) or B (n x k, stride ldb) are stored transposed. beta is 0 or 1.
 * bias may be NULL; scratch holds FM_GEMM_SCRATCH_FLOATS floats (64-byte aligned). */
void fm_gemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
             int ldb, float beta, float *c, int ldc, const float *bias, int relu, float *scratch);

/* dst (cols x rows, row stride ldd) = transpose of src (rows x cols, row stride lds). */
void fm_gemm_transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd);

/* 1 when the CPU has AVX-512 and the engine's own vector code is allowed (the default). After
 * fm_simd_allow(0) every layer and optimizer uses its plain C loops and the product goes to
 * OpenBLAS: for tests of those paths on a machine that has AVX-512, and for comparisons. */
int fm_simd_avx512(void);
void fm_simd_allow(int on);

/* OpenBLAS's own thread count, to pin it to 1 inside the network's parallel regions and restore
 * it afterwards (results of a multi-threaded sgemm may depend on its thread count). */
int fm_blas_threads(void);
void fm_blas_set_threads(int n);

#endif
