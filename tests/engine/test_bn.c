/* test_bn: the batch-norm kernels' AVX-512 versions give the bits of the plain loops (same
 * summation order per channel, same rounding steps), for channel counts below, at and past a
 * vector and past the 64 channels of one pass, with NaN, infinities and negative zeros. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fm_gemm.h"
#include "fm_layers.h"
#include "fm_rng.h"

static fm_rng rng;

static float *randvec(size_t n) {
  float *p = malloc(sizeof(float) * n + 64);
  for (size_t i = 0; i < n; i++) p[i] = (float)(4.0 * fm_rng_normal(&rng));
  return p;
}

/* Same bits, NaN included (memcmp, not ==). */
static int same_bits(const void *a, const void *b, size_t bytes) { return !memcmp(a, b, bytes); }

static void test_channels(int c) {
  const int64_t rows = 301;
  const size_t n = (size_t)rows * c;
  float *x = randvec(n), *dy = randvec(n), *a = randvec(c), *b = randvec(c), *p = randvec(c);
  float *q = randvec(c);
  /* specials the kernels must pass on as the loops do */
  x[3 % n] = NAN, x[(size_t)c * 5 % n] = INFINITY, x[7 % n] = -0.0f, dy[11 % n] = NAN;
  b[0] = 0.0f, a[0] = x[0] == 0 ? 1.0f : a[0];
  double *sums[2], *gsums[2];
  float *y[2][2], *dx[2];
  for (int v = 0; v < 2; v++) {
    fm_simd_allow(v); /* 0: plain loops, 1: AVX-512 */
    sums[v] = calloc(2 * (size_t)c, sizeof(double));
    gsums[v] = calloc(2 * (size_t)c, sizeof(double));
    sums[v][0] = 0.5, gsums[v][c] = -0.25; /* they add onto what is there */
    fm_bn_sums(rows, c, x, sums[v]);
    fm_bn_grad_sums(rows, c, x, dy, gsums[v]);
    for (int relu = 0; relu < 2; relu++) {
      y[v][relu] = malloc(sizeof(float) * n);
      fm_bn_apply(rows, c, x, a, b, y[v][relu], relu);
    }
    dx[v] = malloc(sizeof(float) * n);
    fm_bn_backward(rows, c, x, dy, a, p, q, dx[v]);
  }
  fm_simd_allow(1);
  CHECK(same_bits(sums[0], sums[1], sizeof(double) * 2 * c), "batch norm, %d channels: sums of "
        "x and x^2, the same bits with AVX-512", c);
  CHECK(same_bits(gsums[0], gsums[1], sizeof(double) * 2 * c), "batch norm, %d channels: sums of "
        "dy and dy x, the same bits", c);
  CHECK(same_bits(y[0][0], y[1][0], sizeof(float) * n) &&
        same_bits(y[0][1], y[1][1], sizeof(float) * n),
        "batch norm, %d channels: x a + b, with and without ReLU, the same bits", c);
  CHECK(same_bits(dx[0], dx[1], sizeof(float) * n), "batch norm, %d channels: backward, the same "
        "bits", c);
  for (int v = 0; v < 2; v++) {
    free(sums[v]), free(gsums[v]), free(y[v][0]), free(y[v][1]), free(dx[v]);
  }
  free(x), free(dy), free(a), free(b), free(p), free(q);
}

/* In place (y over x, dx over dy), as the network runs them. */
static void test_in_place(void) {
  const int c = 48, rows = 50;
  const size_t n = (size_t)rows * c;
  float *x = randvec(n), *dy = randvec(n), *a = randvec(c), *b = randvec(c), *p = randvec(c);
  float *q = randvec(c), *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
  float *xi = malloc(sizeof(float) * n), *dyi = malloc(sizeof(float) * n);
  memcpy(xi, x, sizeof(float) * n);
  memcpy(dyi, dy, sizeof(float) * n);
  fm_bn_apply(rows, c, x, a, b, y, 1);
  fm_bn_apply(rows, c, xi, a, b, xi, 1);
  fm_bn_backward(rows, c, x, dy, a, p, q, dx);
  fm_bn_backward(rows, c, x, dyi, a, p, q, dyi);
  CHECK(same_bits(y, xi, sizeof(float) * n) && same_bits(dx, dyi, sizeof(float) * n),
        "batch norm: apply and backward in place give the same bits");
  free(x), free(dy), free(a), free(b), free(p), free(q), free(y), free(dx), free(xi), free(dyi);
}

int main(void) {
  fm_rng_seed(&rng, 99);
  if (!fm_simd_avx512()) {
    printf("ok 1 - batch-norm kernels # SKIP no AVX-512 on this CPU\n1..1\n");
    return 0;
  }
  static const int channels[] = {1, 7, 8, 16, 24, 32, 64, 80, 200};
  for (size_t i = 0; i < sizeof channels / sizeof channels[0]; i++) test_channels(channels[i]);
  test_in_place();
  return check_done();
}
