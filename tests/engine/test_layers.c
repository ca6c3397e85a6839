/* test_layers: every layer's forward pass against a plain double-precision reference, and its
 * backward pass against central finite differences (input and parameter gradients), with both
 * matrix kernels when the CPU has AVX-512. Plus the matrix product itself on awkward shapes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fm_conv_direct.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_layers.h"
#include "fm_rng.h"

static fm_rng rng;

static float *vec(int64_t n) {
  float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64 + 64));
  memset(p, 0, (size_t)n * 4);
  return p;
}
static float *randvec(int64_t n, float scale) {
  float *p = vec(n);
  for (int64_t i = 0; i < n; i++) p[i] = scale * (2.0f * fm_rng_uniform(&rng) - 1.0f);
  return p;
}
static double dot(const float *a, const float *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}
static double max_abs_diff(const float *a, const double *b, int64_t n) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]));
  return e;
}

/* ---- gradient checking ----
 * Each check uses the scalar L = sum(y * r) for a fixed random r: backward with dy = r gives dL/dv,
 * compared with (L(v + h) - L(v - h)) / 2h for every entry v of an input or parameter. */
typedef double (*loss_fn)(void *ctx);

static double numeric_grad(loss_fn f, void *ctx, float *v, float h) {
  float keep = *v;
  *v = keep + h;
  double up = f(ctx);
  *v = keep - h;
  double down = f(ctx);
  *v = keep;
  return (up - down) / (2.0 * h);
}

/* Largest |analytic - numeric| over all entries of v, relative to max(1, |numeric|). */
static double grad_error(loss_fn f, void *ctx, float *v, const float *analytic, int64_t n,
                         float h) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double num = numeric_grad(f, ctx, &v[i], h);
    double e = fabs(num - analytic[i]) / fmax(1.0, fabs(num));
    worst = fmax(worst, e);
  }
  return worst;
}

/* ---- matrix product ---- */

static void test_gemm(const char *kname) {
  static const int sizes[] = {1, 3, 12, 13, 16, 31, 33, 47, 64, 100, 257};
  float *scratch = vec((int64_t)FM_GEMM_SCRATCH_FLOATS);
  double worst = 0;
  for (int t = 0; t < 120; t++) {
    int m = sizes[fm_rng_below(&rng, 11)], n = sizes[fm_rng_below(&rng, 11)];
    int k = sizes[fm_rng_below(&rng, 11)];
    int ta = t & 1, tb = (t >> 1) & 1, bias_on = (t >> 2) & 1, relu = (t % 5) == 0;
    float beta = (t % 3) == 0 ? 1.0f : 0.0f;
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
    float *a = randvec((int64_t)(ta ? k : m) * lda, 1), *b = randvec((int64_t)(tb ? n : k) * ldb, 1);
    float *c = randvec((int64_t)m * ldc, 1), *bias = randvec(n, 1);
    double *ref = malloc(sizeof(double) * m * ldc);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < ldc; j++) {
        double s = c[i * ldc + j];
        if (j < n) {
          s = beta ? s : 0;
          for (int p = 0; p < k; p++)
            s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
          if (bias_on) s += bias[j];
          if (relu && s < 0) s = 0;
        }
        ref[i * ldc + j] = s;
      }
    fm_gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc, bias_on ? bias : NULL, relu, scratch);
    worst = fmax(worst, max_abs_diff(c, ref, (int64_t)m * ldc) / sqrt(k + 1.0));
    free(a), free(b), free(c), free(bias), free(ref);
  }
  CHECK(worst < 1e-5, "gemm (%s): 120 random shapes, transposes, beta, bias, relu match (err %.2g)",
        kname, worst);
  /* A NaN must survive the fused ReLU (divergence has to reach the loss). */
  float an[2] = {NAN, 1.0f}, bn[1] = {1.0f}, cn[2];
  fm_gemm(0, 0, 2, 1, 1, an, 1, bn, 1, 0.0f, cn, 1, NULL, 1, scratch);
  CHECK(isnan(cn[0]) && cn[1] == 1.0f, "gemm (%s): NaN passes the fused ReLU", kname);
  free(scratch);
}

/* ---- dense ---- */

typedef struct dense_ctx {
  int n, in, out;
  float *x, *w, *b, *y, *r, *scratch;
} dense_ctx;

static double dense_loss(void *p) {
  dense_ctx *c = p;
  fm_dense_forward(c->n, c->in, c->out, c->x, c->w, c->b, c->y, 0, c->scratch);
  return dot(c->y, c->r, (int64_t)c->n * c->out);
}

static void test_dense(const char *kname, int n, int in, int out) {
  dense_ctx c = {.n = n, .in = in, .out = out};
  c.x = randvec(c.n * c.in, 1), c.w = randvec(c.in * c.out, 0.5f), c.b = randvec(c.out, 0.5f);
  c.y = vec(c.n * c.out), c.r = randvec(c.n * c.out, 1), c.scratch = vec((int64_t)fm_dense_scratch_floats(c.n, c.in));
  double *ref = malloc(sizeof(double) * c.n * c.out);
  for (int i = 0; i < c.n; i++)
    for (int o = 0; o < c.out; o++) {
      double s = c.b[o];
      for (int k = 0; k < c.in; k++) s += (double)c.x[i * c.in + k] * c.w[k * c.out + o];
      ref[i * c.out + o] = s;
    }
  fm_dense_forward(c.n, c.in, c.out, c.x, c.w, c.b, c.y, 0, c.scratch);
  CHECK(max_abs_diff(c.y, ref, c.n * c.out) < 1e-5, "dense (%s) %dx%d, %d images: forward matches "
        "the reference", kname, in, out, n);
  fm_dense_forward(c.n, c.in, c.out, c.x, c.w, c.b, c.y, 1, c.scratch);
  int relu_ok = 1;
  for (int i = 0; i < c.n * c.out; i++)
    relu_ok &= fabs(c.y[i] - fmax(ref[i], 0.0)) < 1e-5;
  CHECK(relu_ok, "dense (%s): fused ReLU", kname);
  float *dx = vec(c.n * c.in), *dw = vec(c.in * c.out), *db = vec(c.out);
  fm_dense_backward(c.n, c.in, c.out, c.x, c.w, c.r, dx, dw, db, c.scratch);
  CHECK(grad_error(dense_loss, &c, c.x, dx, c.n * c.in, 1e-2f) < 1e-3,
        "dense (%s): input gradient matches finite differences", kname);
  CHECK(grad_error(dense_loss, &c, c.w, dw, c.in * c.out, 1e-2f) < 1e-3,
        "dense (%s): weight gradient matches finite differences", kname);
  CHECK(grad_error(dense_loss, &c, c.b, db, c.out, 1e-2f) < 1e-3,
        "dense (%s): bias gradient matches finite differences", kname);
  free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(c.scratch), free(ref);
  free(dx), free(dw), free(db);
}

/* ---- conv2d ---- */

/* Plain NHWC convolution in double. */
static void conv_ref(const fm_conv_geom *g, int n, const float *x, const float *w, const float *b,
                     double *y) {
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++)
        for (int co = 0; co < g->cout; co++) {
          double s = b[co];
          for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
              int iy = oy + ky - g->pad_top, ix = ox + kx - g->pad_left;
              if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
              for (int ci = 0; ci < g->cin; ci++)
                s += (double)x[((i * g->h + iy) * g->w + ix) * g->cin + ci] *
                     w[((ky * g->kw + kx) * g->cin + ci) * g->cout + co];
            }
          y[((i * g->oh + oy) * g->ow + ox) * g->cout + co] = s;
        }
}

typedef struct conv_ctx {
  fm_conv_geom g;
  int n;
  float *x, *w, *b, *y, *r, *scratch;
} conv_ctx;

static double conv_loss(void *p) {
  conv_ctx *c = p;
  fm_conv_forward(&c->g, c->n, c->x, c->w, c->b, c->y, 0, c->scratch);
  return dot(c->y, c->r, (int64_t)c->n * c->g.oh * c->g.ow * c->g.cout);
}

static void test_conv(const char *kname, int h, int w, int cin, int kh, int kw, int cout, int same,
                      int n) {
  conv_ctx c = {.n = n};
  int rc = fm_conv_geom_init(&c.g, h, w, cin, kh, kw, cout, same, 1, 1);
  char what[128];
  snprintf(what, sizeof what, "conv2d (%s) %dx%dx%d, kernel %dx%dx%d %s, %d images", kname, h, w,
           cin, kh, kw, cout, same ? "same" : "valid", n);
  CHECK(rc == FM_OK && c.g.oh == (same ? h : h - kh + 1) && c.g.ow == (same ? w : w - kw + 1),
        "%s: output shape %dx%d", what, c.g.oh, c.g.ow);
  int64_t nx = (int64_t)n * h * w * cin, ny = (int64_t)n * c.g.oh * c.g.ow * cout;
  int64_t nw = (int64_t)c.g.k * cout;
  c.x = randvec(nx, 1), c.w = randvec(nw, 0.5f), c.b = randvec(cout, 0.5f), c.y = vec(ny);
  c.r = randvec(ny, 1), c.scratch = vec((int64_t)fm_conv_scratch_floats(&c.g));
  double *ref = malloc(sizeof(double) * ny);
  conv_ref(&c.g, n, c.x, c.w, c.b, ref);
  fm_conv_forward(&c.g, n, c.x, c.w, c.b, c.y, 0, c.scratch);
  CHECK(max_abs_diff(c.y, ref, ny) < 1e-4, "%s: forward matches the reference", what);
  fm_conv_forward(&c.g, n, c.x, c.w, c.b, c.y, 1, c.scratch);
  int relu_ok = 1;
  for (int64_t i = 0; i < ny; i++) relu_ok &= fabs(c.y[i] - fmax(ref[i], 0.0)) < 1e-4;
  CHECK(relu_ok, "%s: fused ReLU", what);
  float *dx = vec(nx), *dw = vec(nw), *db = vec(cout);
  fm_conv_backward(&c.g, n, c.x, c.w, c.r, dx, dw, db, c.scratch);
  if (nx * nw < 4000000) {
    CHECK(grad_error(conv_loss, &c, c.x, dx, nx, 1e-2f) < 2e-3,
          "%s: input gradient matches finite differences", what);
    CHECK(grad_error(conv_loss, &c, c.w, dw, nw, 1e-2f) < 2e-3,
          "%s: weight gradient matches finite differences", what);
    CHECK(grad_error(conv_loss, &c, c.b, db, cout, 1e-2f) < 2e-3,
          "%s: bias gradient matches finite differences", what);
  } else {
    /* Too many entries for finite differences: check the adjoint identities instead, which pin
     * down dx and dw exactly for a linear layer: <dy, conv(x')> = <dx, x'>, and the same for w. */
    float *zero = vec(cout), *xp = randvec(nx, 1), *wp = randvec(nw, 1), *yp = vec(ny);
    fm_conv_forward(&c.g, n, xp, c.w, zero, yp, 0, c.scratch);
    double lhs = dot(c.r, yp, ny), rhs = dot(dx, xp, nx);
    CHECK(fabs(lhs - rhs) < 1e-4 * fmax(1, fabs(lhs)), "%s: input gradient is the adjoint (%g %g)",
          what, lhs, rhs);
    fm_conv_forward(&c.g, n, c.x, wp, zero, yp, 0, c.scratch);
    lhs = dot(c.r, yp, ny), rhs = dot(dw, wp, nw);
    CHECK(fabs(lhs - rhs) < 1e-4 * fmax(1, fabs(lhs)), "%s: weight gradient is the adjoint (%g %g)",
          what, lhs, rhs);
    double sum = 0;
    int ok = 1;
    for (int co = 0; co < cout; co++) {
      sum = 0;
      for (int64_t p = 0; p < ny / cout; p++) sum += c.r[p * cout + co];
      ok &= fabs(sum - db[co]) < 1e-3 * fmax(1, fabs(sum));
    }
    CHECK(ok, "%s: bias gradient is the sum of output gradients", what);
    free(zero), free(xp), free(wp), free(yp);
  }
  /* Skipping parts of the backward pass leaves the others as they were. */
  float *dx2 = vec(nx);
  fm_conv_backward(&c.g, n, c.x, c.w, c.r, dx2, NULL, NULL, c.scratch);
  CHECK(memcmp(dx, dx2, sizeof(float) * nx) == 0, "%s: input gradient alone is the same", what);
  free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(c.scratch), free(ref);
  free(dx), free(dw), free(db), free(dx2);
}

static void test_conv_errors(void) {
  fm_conv_geom g;
  CHECK_FAILS(fm_conv_geom_init(&g, 4, 4, 1, 5, 5, 8, 0, 1, 1), "larger than the 4x4 input",
              "conv2d: a 5x5 kernel on a 4x4 image with 'valid' padding is refused");
  CHECK(fm_conv_geom_init(&g, 4, 4, 1, 5, 5, 8, 1, 1, 1) == FM_OK && g.oh == 4 && g.ow == 4,
        "conv2d: the same kernel with 'same' padding gives 4x4");
  CHECK_FAILS(fm_conv_geom_init(&g, 4, 4, 1, 3, 3, 0, 0, 1, 1), "filters",
              "conv2d: zero filters are refused");
  /* 65536 x 65536 x 1 is 2^32: in int it wrapped to a patch of 0 values and a division by zero */
  CHECK_FAILS(fm_conv_geom_init(&g, 28, 28, 1, 65536, 65536, 8, 1, 1, 1),
              "a patch of 65536x65536x1 values (kernel x input channels) is over 2147483647",
              "conv2d: a 'same' kernel whose patch overflows int is refused, not divided by");
  CHECK_FAILS(fm_conv_geom_init(&g, 28, 28, 4, 32768, 32768, 8, 1, 1, 1), "is over 2147483647",
              "conv2d: a patch of 2^32 values (kernel x channels) is refused");
  CHECK_FAILS(fm_conv_geom_init(&g, 4096, 4096, 1, 20, 20, 8, 1, 1, 1),
              "the patch matrix of one image (4096x4096 pixels x 400 values) is over 2147483647",
              "conv2d: one image's patch matrix over the product's int sizes is refused");
  CHECK(fm_conv_geom_init(&g, 28, 28, 1, 2047, 1, 8, 1, 1, 1) == FM_OK && g.k == 2047 && g.chunk == 1 &&
            g.pad_top == 1023 && g.oh == 28,
        "conv2d: a tall 'same' kernel within the limits gives a consistent geometry");
}

/* ---- max-pool ---- */

typedef struct pool_ctx {
  int n, h, w, c, size;
  float *x, *y, *r;
} pool_ctx;

static double pool_loss(void *p) {
  pool_ctx *c = p;
  fm_maxpool_forward(c->n, c->h, c->w, c->c, c->size, c->x, c->y);
  return dot(c->y, c->r, (int64_t)c->n * (c->h / c->size) * (c->w / c->size) * c->c);
}

static void test_maxpool(const char *kname, int h, int w, int ch, int size) {
  pool_ctx c = {.n = 2, .h = h, .w = w, .c = ch, .size = size};
  int64_t nx = (int64_t)c.n * h * w * ch, ny = (int64_t)c.n * (h / size) * (w / size) * ch;
  /* Distinct values at least 0.01 apart, so that a step of 1e-3 never changes a window's max. */
  c.x = vec(nx);
  for (int64_t i = 0; i < nx; i++) c.x[i] = (float)i * 0.01f - 1.0f;
  for (int64_t i = nx - 1; i > 0; i--) {
    int64_t j = (int64_t)fm_rng_below(&rng, (uint64_t)i + 1);
    float t = c.x[i];
    c.x[i] = c.x[j], c.x[j] = t;
  }
  c.y = vec(ny), c.r = randvec(ny, 1);
  fm_maxpool_forward(c.n, h, w, ch, size, c.x, c.y);
  int ok = 1;
  for (int i = 0; i < c.n; i++)
    for (int oy = 0; oy < h / size; oy++)
      for (int ox = 0; ox < w / size; ox++)
        for (int k = 0; k < ch; k++) {
          float m = -INFINITY;
          for (int dy = 0; dy < size; dy++)
            for (int dx = 0; dx < size; dx++)
              m = fmaxf(m, c.x[((i * h + oy * size + dy) * w + ox * size + dx) * ch + k]);
          ok &= c.y[((i * (h / size) + oy) * (w / size) + ox) * ch + k] == m;
        }
  CHECK(ok, "maxpool (%s) %dx%dx%d size %d: forward takes each window's maximum", kname, h, w, ch,
        size);
  float *dx = vec(nx);
  fm_maxpool_backward(c.n, h, w, ch, size, c.x, c.r, dx);
  CHECK(grad_error(pool_loss, &c, c.x, dx, nx, 1e-3f) < 1e-3,
        "maxpool (%s) %dx%dx%d size %d: input gradient matches finite differences", kname, h, w,
        ch, size);
  /* On a ReLU's output, the folded ReLU backward equals the two passes one after the other. */
  float *rx = vec(nx), *two = vec(nx), *one = vec(nx);
  fm_relu_forward(nx, c.x, rx);
  fm_maxpool_backward(c.n, h, w, ch, size, rx, c.r, two);
  fm_relu_backward(nx, rx, two, two);
  fm_maxpool_backward_relu(c.n, h, w, ch, size, rx, c.r, one, 1);
  CHECK(memcmp(one, two, sizeof(float) * nx) == 0,
        "maxpool (%s) %dx%dx%d size %d: the folded ReLU backward matches ReLU after max-pool",
        kname, h, w, ch, size);
  free(rx), free(two), free(one);
  /* A tie goes to the first maximum only, so the gradient is not counted twice. */
  float tx[4] = {1, 1, 1, 1}, ty[1], tdy[1] = {3}, tdx[4];
  fm_maxpool_forward(1, 2, 2, 1, 2, tx, ty);
  fm_maxpool_backward(1, 2, 2, 1, 2, tx, tdy, tdx);
  CHECK(ty[0] == 1 && tdx[0] == 3 && tdx[1] == 0 && tdx[2] == 0 && tdx[3] == 0,
        "maxpool (%s): a tied window routes its gradient to the first maximum only", kname);
  free(c.x), free(c.y), free(c.r), free(dx);
}

/* ---- ReLU and dropout ---- */

typedef struct ew_ctx {
  int64_t n;
  float *x, *y, *r, *mask;
  int dropout;
} ew_ctx;

static double ew_loss(void *p) {
  ew_ctx *c = p;
  if (c->dropout)
    fm_dropout_apply(c->n, c->x, c->mask, c->y);
  else
    fm_relu_forward(c->n, c->x, c->y);
  return dot(c->y, c->r, c->n);
}

static void test_relu_dropout(const char *kname) {
  ew_ctx c = {.n = 200};
  c.x = randvec(c.n, 1), c.y = vec(c.n), c.r = randvec(c.n, 1), c.mask = vec(c.n);
  for (int64_t i = 0; i < c.n; i++)
    if (fabsf(c.x[i]) < 0.01f) c.x[i] = 0.5f; /* away from the kink */
  fm_relu_forward(c.n, c.x, c.y);
  int ok = 1;
  for (int64_t i = 0; i < c.n; i++) ok &= c.y[i] == (c.x[i] > 0 ? c.x[i] : 0);
  CHECK(ok, "relu (%s): forward", kname);
  float nan_in[2] = {NAN, -1.0f}, nan_out[2], pool_in[4] = {1, NAN, 2, 0}, pool_out[1];
  /* (a NaN in any position of the window, for the vector path too) */
  fm_relu_forward(2, nan_in, nan_out);
  fm_maxpool_forward(1, 2, 2, 1, 2, pool_in, pool_out);
  CHECK(isnan(nan_out[0]) && nan_out[1] == 0 && isnan(pool_out[0]),
        "relu and max-pool (%s) let NaN through", kname);
  float *dx = vec(c.n);
  fm_relu_backward(c.n, c.y, c.r, dx);
  CHECK(grad_error(ew_loss, &c, c.x, dx, c.n, 1e-3f) < 1e-4,
        "relu (%s): gradient matches finite differences", kname);

  int64_t big = 100000;
  float *mask = vec(big);
  fm_dropout_mask(7, big, 0.25f, mask);
  int64_t zeros = 0, others = 0;
  for (int64_t i = 0; i < big; i++) {
    zeros += mask[i] == 0.0f;
    others += mask[i] != 0.0f && fabsf(mask[i] - 1.0f / 0.75f) > 1e-6f;
  }
  CHECK(fabs(zeros / (double)big - 0.25) < 0.01 && others == 0,
        "dropout (%s): rate 0.25 drops %.3f of the units and scales the rest by 1/0.75", kname,
        zeros / (double)big);
  /* The vector and plain versions make the same mask. */
  int simd = fm_simd_avx512();
  fm_simd_allow(!simd);
  float *other = vec(big);
  fm_dropout_mask(7, big, 0.25f, other);
  fm_simd_allow(1);
  if (!simd) fm_simd_allow(0);
  CHECK(memcmp(mask, other, sizeof(float) * big) == 0, "dropout (%s): vector and plain masks agree",
        kname);
  free(other);
  float *mask2 = vec(big);
  /* Any piece of a mask is the same piece of the whole mask. */
  fm_dropout_mask(7, 37, 0.25f, mask2);
  CHECK(memcmp(mask, mask2, sizeof(float) * 37) == 0, "dropout (%s): a mask's prefix is the shorter mask",
        kname);
  fm_dropout_mask_at(7, 1000, 77, 0.25f, mask2);
  CHECK(memcmp(mask + 1000, mask2, sizeof(float) * 77) == 0,
        "dropout (%s): a piece made alone equals that piece of the whole mask", kname);
  fm_dropout_mask(8, big, 0.25f, mask2);
  int64_t differ = 0;
  for (int64_t i = 0; i < big; i++) differ += mask[i] != mask2[i];
  CHECK(differ > big / 4, "dropout (%s): another key gives another mask (%lld of %lld differ)", kname,
        (long long)differ, (long long)big);
  /* Neighbouring units are independent: P(both dropped) = rate^2. */
  int64_t both = 0;
  for (int64_t i = 0; i + 1 < big; i += 2) both += mask[i] == 0 && mask[i + 1] == 0;
  CHECK(fabs(both / (big / 2.0) - 0.0625) < 0.01, "dropout (%s): neighbouring units drop independently "
        "(%.4f, expected 0.0625)", kname, both / (big / 2.0));
  c.dropout = 1;
  fm_dropout_mask(3, c.n, 0.5f, c.mask);
  fm_dropout_apply(c.n, c.r, c.mask, dx);
  CHECK(grad_error(ew_loss, &c, c.x, dx, c.n, 1e-2f) < 1e-4,
        "dropout (%s): gradient with a fixed mask matches finite differences", kname);
  free(c.x), free(c.y), free(c.r), free(c.mask), free(dx), free(mask), free(mask2);
}

/* ---- softmax cross-entropy ---- */

typedef struct xent_ctx {
  int n, k;
  float *z;
  uint8_t *labels;
} xent_ctx;

static double xent_loss(void *p) {
  xent_ctx *c = p;
  return fm_softmax_xent(c->n, c->k, c->z, c->labels, 1.0f, NULL, NULL) / c->n;
}

static void test_softmax_xent(void) {
  float two[2] = {0, 0};
  uint8_t l0 = 0;
  CHECK_NEAR(fm_softmax_xent(1, 2, two, &l0, 1, NULL, NULL), log(2.0), 1e-12,
             "softmax-xent: equal logits of 2 classes give ln 2");
  float big[3] = {1000, 0, -1000};
  uint8_t l1 = 1;
  float d[3];
  int correct = -1;
  double loss = fm_softmax_xent(1, 3, big, &l1, 1, d, &correct);
  CHECK(isfinite(loss) && fabs(loss - 1000) < 1e-6 && correct == 0,
        "softmax-xent: logits of +-1000 give a finite loss of 1000 (got %g)", loss);
  CHECK(fabs(d[0] - 1) < 1e-6 && fabs(d[1] + 1) < 1e-6 && fabs(d[2]) < 1e-6,
        "softmax-xent: and the gradient softmax - onehot");
  xent_ctx c = {.n = 6, .k = 10};
  c.z = randvec(c.n * c.k, 3);
  c.labels = malloc(c.n);
  for (int i = 0; i < c.n; i++) c.labels[i] = (uint8_t)fm_rng_below(&rng, 10);
  float *dz = vec(c.n * c.k);
  fm_softmax_xent(c.n, c.k, c.z, c.labels, 1.0f / c.n, dz, &correct);
  CHECK(grad_error(xent_loss, &c, c.z, dz, c.n * c.k, 1e-3f) < 1e-4,
        "softmax-xent: gradient of the mean loss matches finite differences");
  int manual = 0;
  for (int i = 0; i < c.n; i++) {
    int best = 0;
    for (int j = 1; j < c.k; j++)
      if (c.z[i * c.k + j] > c.z[i * c.k + best]) best = j;
    manual += best == c.labels[i];
  }
  CHECK(correct == manual, "softmax-xent: counts correct predictions (%d)", correct);
  float *p = vec(c.n * c.k);
  fm_softmax(c.n, c.k, c.z, p);
  int ok = 1;
  for (int i = 0; i < c.n; i++) {
    double s = 0;
    for (int j = 0; j < c.k; j++) s += p[i * c.k + j];
    ok &= fabs(s - 1) < 1e-6;
    ok &= fabs(p[i * c.k + c.labels[i]] - exp(-fm_softmax_xent(1, c.k, c.z + i * c.k,
                                                                 c.labels + i, 1, NULL, NULL))) < 1e-6;
  }
  CHECK(ok, "softmax: rows sum to 1 and agree with the cross-entropy");
  free(c.z), free(c.labels), free(dz), free(p);
}

/* ---- initialisation ---- */

static void test_init(void) {
  fm_rng r;
  fm_rng_seed(&r, 11);
  int64_t n = 200000;
  float *w = vec(n);
  fm_init_he(&r, w, n, 50);
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; i++) s += w[i], s2 += (double)w[i] * w[i];
  double sd = sqrt(s2 / n - (s / n) * (s / n));
  CHECK(fabs(s / n) < 0.005 && fabs(sd - sqrt(2.0 / 50)) < 0.003,
        "he init: mean 0, standard deviation sqrt(2/fan_in) (%.4f)", sd);
  fm_init_glorot(&r, w, n, 30, 70);
  double limit = sqrt(6.0 / 100), lo = 0, hi = 0;
  for (int64_t i = 0; i < n; i++) lo = fmin(lo, w[i]), hi = fmax(hi, w[i]);
  CHECK(lo >= -limit && hi <= limit && hi > 0.99 * limit && lo < -0.99 * limit,
        "glorot init: uniform over +-sqrt(6/(fan_in+fan_out))");
  free(w);
}

static void run_kernel_tests(const char *name) {
  test_gemm(name);
  test_dense(name, 20, 8, 6);   /* input gradient through dy w^T */
  test_dense(name, 5, 37, 19);  /* through (w dy^T)^T: a small batch and a wide layer */
  test_dense(name, 17, 50, 60); /* the same with whole 16x16 blocks to transpose */
  test_conv(name, 6, 7, 2, 3, 3, 5, 0, 2);    /* valid 3x3 */
  test_conv(name, 6, 7, 2, 3, 3, 5, 1, 2);    /* same 3x3 */
  test_conv(name, 7, 6, 1, 5, 5, 17, 1, 2);   /* same 5x5, one input channel */
  test_conv(name, 8, 8, 1, 3, 3, 32, 0, 3);   /* the first layer of the reference CNN, smaller */
  test_conv(name, 9, 11, 1, 3, 3, 40, 1, 2);  /* one channel, filters past a block of 32 */
  test_conv(name, 5, 6, 3, 4, 2, 3, 1, 1);    /* even kernel, "same" (extra padding bottom/right) */
  test_conv(name, 40, 40, 8, 3, 3, 20, 1, 3); /* more than one im2col chunk */
  test_maxpool(name, 6, 8, 3, 2);
  test_maxpool(name, 5, 7, 20, 2); /* odd sizes: the last row and column are dropped */
  test_maxpool(name, 9, 9, 1, 3);
  test_relu_dropout(name);
}

int main(void) {
  fm_rng_seed(&rng, 12345);
  fm_blas_set_threads(1);
  /* The plain C loops and OpenBLAS, as on a CPU without AVX-512. */
  fm_simd_allow(0);
  run_kernel_tests("plain C + openblas");
  fm_simd_allow(1);
  if (fm_simd_avx512()) {
    run_kernel_tests("avx512");
    /* One-channel convolutions through im2col and the own product instead of the direct kernel. */
    fm_conv_direct_enabled = 0;
    test_conv("avx512 im2col", 7, 6, 1, 5, 5, 17, 1, 2);
    test_conv("avx512 im2col", 8, 8, 1, 3, 3, 32, 0, 3);
    fm_conv_direct_enabled = 1;
  } else {
    printf("# no AVX-512 on this CPU: only the plain paths were tested\n");
  }
  test_conv_errors();
  test_softmax_xent();
  test_init();
  return check_done();
}
