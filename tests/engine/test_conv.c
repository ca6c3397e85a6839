/* test_conv: the implicit-GEMM convolution kernels (engine/fm_conv_implicit.c) against a plain
 * double-precision reference and against im2col + GEMM, on every shape of ResNet-20 for 28x28
 * images and on awkward ones (one image, 7x7, 5x3, 1x1 images, even kernels, strides 2 and 3,
 * channel counts needing several tiles, bias and fused ReLU, NaN), plus determinism, the scratch
 * bound, the shapes they decline, and which layers fm_conv_forward/backward send to them.
 *
 * Tolerances: a float32 sum of k products, in any order, is within gamma_k = k u / (1 - k u)
 * (u = 2^-24) of the exact sum times the sum of the products' magnitudes (the classic bound for
 * recursive summation; an FMA only rounds less). The reference gives the exact value (double
 * accumulation of float products is exact to far below that) and the sum of magnitudes for every
 * output, so each output is checked against its own bound, and two float32 results of different
 * orders against twice it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fm_conv_depthwise.h"
#include "fm_conv_implicit.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_layers.h"
#include "fm_rng.h"

static fm_rng rng;

#define GUARD 64
#define GUARD_VALUE 1234.5f

/* n floats followed by GUARD floats of a marker, 64-byte aligned. */
static float *guarded(size_t n) {
  size_t bytes = ((n + GUARD) * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes);
  memset(p, 0, n * sizeof(float));
  for (size_t i = n; i < n + GUARD; i++) p[i] = GUARD_VALUE;
  return p;
}
static int guard_intact(const float *p, size_t n) {
  for (size_t i = n; i < n + GUARD; i++)
    if (p[i] != GUARD_VALUE) return 0;
  return 1;
}
static float *randvec(size_t n, float scale) {
  float *p = guarded(n);
  for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * (float)fm_rng_uniform(&rng) - 1.0f);
  return p;
}

static double gamma_k(double k) {
  const double u = ldexp(1.0, -24);
  return k * u / (1.0 - k * u);
}

/* ---- references in double: value and sum of magnitudes of every output ---- */

/* Input pixel of output (oy, ox) through tap (ky, kx), or -1 when it falls in the padding. */
static long in_pixel(const fm_conv_geom *g, int i, int oy, int ox, int ky, int kx) {
  int iy = oy * g->stride + ky - g->pad_top, ix = ox * g->stride + kx - g->pad_left;
  if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) return -1;
  return ((long)i * g->h + iy) * g->w + ix;
}

static void forward_ref(const fm_conv_geom *g, int n, const float *x, const float *w,
                        const float *b, double *y, double *mag) {
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++)
        for (int co = 0; co < g->cout; co++) {
          double s = b ? b[co] : 0, m = b ? fabs(b[co]) : 0;
          for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
              long p = in_pixel(g, i, oy, ox, ky, kx);
              if (p < 0) continue;
              for (int ci = 0; ci < g->cin; ci++) {
                double t = (double)x[p * g->cin + ci] *
                           w[((ky * g->kw + kx) * g->cin + ci) * g->cout + co];
                s += t, m += fabs(t);
              }
            }
          long o = (((long)i * g->oh + oy) * g->ow + ox) * g->cout + co;
          y[o] = s, mag[o] = m;
        }
}

static void input_grad_ref(const fm_conv_geom *g, int n, const float *w, const float *dy,
                           double *dx, double *mag) {
  long nx = (long)n * g->h * g->w * g->cin;
  memset(dx, 0, sizeof(double) * nx);
  memset(mag, 0, sizeof(double) * nx);
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++)
        for (int ky = 0; ky < g->kh; ky++)
          for (int kx = 0; kx < g->kw; kx++) {
            long p = in_pixel(g, i, oy, ox, ky, kx);
            if (p < 0) continue;
            const float *d = dy + (((long)i * g->oh + oy) * g->ow + ox) * g->cout;
            for (int ci = 0; ci < g->cin; ci++)
              for (int co = 0; co < g->cout; co++) {
                double t = (double)d[co] * w[((ky * g->kw + kx) * g->cin + ci) * g->cout + co];
                dx[p * g->cin + ci] += t, mag[p * g->cin + ci] += fabs(t);
              }
          }
}

static void weight_grad_ref(const fm_conv_geom *g, int n, const float *x, const float *dy,
                            double *dw, double *mag) {
  long nw = (long)g->kh * g->kw * g->cin * g->cout;
  memset(dw, 0, sizeof(double) * nw);
  memset(mag, 0, sizeof(double) * nw);
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++)
        for (int ky = 0; ky < g->kh; ky++)
          for (int kx = 0; kx < g->kw; kx++) {
            long p = in_pixel(g, i, oy, ox, ky, kx);
            if (p < 0) continue;
            const float *d = dy + (((long)i * g->oh + oy) * g->ow + ox) * g->cout;
            for (int ci = 0; ci < g->cin; ci++)
              for (int co = 0; co < g->cout; co++) {
                long o = ((ky * g->kw + kx) * g->cin + ci) * (long)g->cout + co;
                double t = (double)x[p * g->cin + ci] * d[co];
                dw[o] += t, mag[o] += fabs(t);
              }
          }
}

/* Every |got - want| within gamma_k(terms) * mag (times `times`); reports the worst ratio. */
static int within(const float *got, const double *want, const double *mag, long count,
                  double terms, double times, double *worst) {
  int ok = 1;
  *worst = 0;
  for (long i = 0; i < count; i++) {
    double bound = times * gamma_k(terms) * mag[i] + 1e-30, e = fabs(got[i] - want[i]);
    if (!(e <= bound)) ok = 0;
    if (e / bound > *worst) *worst = e / bound;
  }
  return ok;
}
static int within_f(const float *a, const float *b, const double *mag, long count, double terms,
                    double *worst) {
  int ok = 1;
  *worst = 0;
  for (long i = 0; i < count; i++) {
    double bound = 2 * gamma_k(terms) * mag[i] + 1e-30, e = fabs((double)a[i] - b[i]);
    if (!(e <= bound)) ok = 0;
    if (e / bound > *worst) *worst = e / bound;
  }
  return ok;
}

/* ---- one shape ---- */

typedef struct shape {
  int h, w, cin, kh, kw, cout, stride, same, n;
  int bias, relu;
  const char *what;
} shape;

static void test_shape(const shape *s) {
  fm_conv_geom g;
  char name[200];
  snprintf(name, sizeof name, "%s: %dx%dx%d -> %d, %dx%d stride %d %s%s%s, %d image%s", s->what,
           s->h, s->w, s->cin, s->cout, s->kh, s->kw, s->stride, s->same ? "same" : "valid",
           s->bias ? ", bias" : "", s->relu ? ", relu" : "", s->n, s->n == 1 ? "" : "s");
  if (fm_conv_geom_init(&g, s->h, s->w, s->cin, s->kh, s->kw, s->cout, s->same, s->stride, 1) !=
      FM_OK) {
    CHECK(0, "%s: geometry (%s)", name, fm_error());
    return;
  }
  const int n = s->n;
  const long nx = (long)n * g.h * g.w * g.cin, ny = (long)n * g.oh * g.ow * g.cout;
  const long nw = (long)g.kh * g.kw * g.cin * g.cout;
  const size_t ns = fm_conv_scratch_floats(&g);
  float *x = randvec(nx, 1), *w = randvec(nw, 0.5f), *b = s->bias ? randvec(g.cout, 0.5f) : NULL;
  float *dy = randvec(ny, 1), *scratch = guarded(ns);
  float *y = guarded(ny), *y2 = guarded(ny), *dx = guarded(nx), *dx2 = guarded(nx);
  float *dw = guarded(nw), *dw2 = guarded(nw);
  double *ref = malloc(sizeof(double) * (ny > nx ? (ny > nw ? ny : nw) : (nx > nw ? nx : nw)));
  double *mag = malloc(sizeof(double) * (ny > nx ? (ny > nw ? ny : nw) : (nx > nw ? nx : nw)));
  double worst;
  const int fwd = g.cout % 16 == 0 && g.stride <= 2, dx_ok = g.cin % 16 == 0;

  /* forward */
  CHECK(fm_conv_implicit_forward(&g, n, x, w, b, y, s->relu, scratch) == fwd,
        "%s: forward %s", name, fwd ? "taken" : "declined");
  if (fwd) {
    forward_ref(&g, n, x, w, b, ref, mag);
    if (s->relu)
      for (long i = 0; i < ny; i++) ref[i] = ref[i] < 0 ? 0 : ref[i];
    double terms = (double)g.kh * g.kw * g.cin + (b != NULL);
    CHECK(within(y, ref, mag, ny, terms, 1, &worst), "%s: forward within the float32 bound of the "
          "exact sums (worst %.2f of the bound)", name, worst);
    fm_conv_implicit_forward(&g, n, x, w, b, y2, s->relu, scratch);
    CHECK(memcmp(y, y2, sizeof(float) * ny) == 0, "%s: forward gives the same bits again", name);
    /* One image at a time: the same bits (no sum crosses images). */
    int same_bits = 1;
    for (int i = 0; i < n; i++) {
      long per = (long)g.oh * g.ow * g.cout;
      fm_conv_implicit_forward(&g, 1, x + i * (long)g.h * g.w * g.cin, w, b, y2 + i * per,
                               s->relu, scratch);
    }
    same_bits = memcmp(y, y2, sizeof(float) * ny) == 0;
    CHECK(same_bits, "%s: forward image by image gives the same bits", name);
    /* Whole rows read in place (3x3 stride 1) and the blocked copy: the same bits. */
    fm_conv_implicit_rows = 0;
    fm_conv_implicit_forward(&g, n, x, w, b, y2, s->relu, scratch);
    fm_conv_implicit_rows = 1;
    CHECK(memcmp(y, y2, sizeof(float) * ny) == 0, "%s: forward through the blocked copy gives "
          "the same bits", name);
    fm_conv_implicit_enabled = 0;
    fm_conv_forward(&g, n, x, w, b, y2, s->relu, scratch);
    fm_conv_implicit_enabled = 1;
    CHECK(within_f(y, y2, mag, ny, terms, &worst), "%s: forward agrees with im2col + GEMM "
          "(worst %.2f of twice the bound)", name, worst);
  }

  /* input gradient */
  CHECK(fm_conv_implicit_backward(&g, n, x, w, dy, dx, NULL, scratch) == dx_ok,
        "%s: input gradient %s", name, dx_ok ? "taken" : "declined");
  if (dx_ok) {
    input_grad_ref(&g, n, w, dy, ref, mag);
    double terms = (double)g.kh * g.kw * g.cout;
    CHECK(within(dx, ref, mag, nx, terms, 1, &worst), "%s: input gradient within the float32 "
          "bound (worst %.2f)", name, worst);
    fm_conv_implicit_backward(&g, n, x, w, dy, dx2, NULL, scratch);
    CHECK(memcmp(dx, dx2, sizeof(float) * nx) == 0, "%s: input gradient gives the same bits "
          "again", name);
    fm_conv_implicit_rows = 0;
    fm_conv_implicit_backward(&g, n, x, w, dy, dx2, NULL, scratch);
    fm_conv_implicit_rows = 1;
    CHECK(memcmp(dx, dx2, sizeof(float) * nx) == 0, "%s: input gradient through the blocked copy "
          "gives the same bits", name);
    fm_conv_implicit_enabled = 0;
    fm_conv_backward(&g, n, x, w, dy, dx2, NULL, NULL, scratch);
    fm_conv_implicit_enabled = 1;
    CHECK(within_f(dx, dx2, mag, nx, terms, &worst), "%s: input gradient agrees with GEMM + "
          "col2im (worst %.2f)", name, worst);
  }

  /* weight gradient */
  CHECK(fm_conv_implicit_backward(&g, n, x, w, dy, NULL, dw, scratch) == 1,
        "%s: weight gradient taken", name);
  {
    weight_grad_ref(&g, n, x, dy, ref, mag);
    double terms = (double)n * g.oh * g.ow;
    CHECK(within(dw, ref, mag, nw, terms, 1, &worst), "%s: weight gradient within the float32 "
          "bound (worst %.2f)", name, worst);
    fm_conv_implicit_backward(&g, n, x, w, dy, NULL, dw2, scratch);
    CHECK(memcmp(dw, dw2, sizeof(float) * nw) == 0, "%s: weight gradient gives the same bits "
          "again", name);
    fm_conv_implicit_rows = 0;
    fm_conv_implicit_backward(&g, n, x, w, dy, NULL, dw2, scratch);
    fm_conv_implicit_rows = 1;
    CHECK(memcmp(dw, dw2, sizeof(float) * nw) == 0, "%s: weight gradient through the blocked "
          "copy gives the same bits", name);
    if (dx_ok) {
      /* Both at once (one pass over dy, a block of images at a time): the same bits. */
      fm_conv_implicit_backward(&g, n, x, w, dy, dx2, dw2, scratch);
      CHECK(memcmp(dw, dw2, sizeof(float) * nw) == 0 && memcmp(dx, dx2, sizeof(float) * nx) == 0,
            "%s: both gradients together give the same bits as each alone", name);
    }
    fm_conv_implicit_enabled = 0;
    fm_conv_backward(&g, n, x, w, dy, NULL, dw2, NULL, scratch);
    fm_conv_implicit_enabled = 1;
    CHECK(within_f(dw, dw2, mag, nw, terms, &worst), "%s: weight gradient agrees with im2col + "
          "GEMM (worst %.2f)", name, worst);
  }

  CHECK(guard_intact(scratch, ns) && guard_intact(y, ny) && guard_intact(y2, ny) &&
        guard_intact(dx, nx) && guard_intact(dx2, nx) && guard_intact(dw, nw) &&
        guard_intact(dw2, nw), "%s: nothing written past the scratch (%zu floats) or the outputs",
        name, ns);
  free(x), free(w), free(b), free(dy), free(scratch), free(y), free(y2), free(dx), free(dx2);
  free(dw), free(dw2), free(ref), free(mag);
}

/* ---- what fm_conv_forward / fm_conv_backward send here ---- */

/* Which parts of a layer the dispatcher computed with the implicit kernels: bit 0 forward, 1 input
 * gradient, 2 weight gradient set when its bits are those of the implicit kernel called directly;
 * *im2col gets the same bits for "those of im2col + GEMM" (the implicit kernels turned off). */
static int dispatch_case(int h, int w, int cin, int k, int cout, int same, int stride, int bias,
                         int *im2col) {
  fm_conv_geom g;
  fm_conv_geom_init(&g, h, w, cin, k, k, cout, same, stride, 1);
  const int n = 2;
  const long nx = (long)n * g.h * g.w * g.cin, ny = (long)n * g.oh * g.ow * g.cout;
  const long nw = (long)g.k * g.cout;
  float *x = randvec(nx, 1), *wt = randvec(nw, 0.5f), *b = bias ? randvec(cout, 0.5f) : NULL;
  float *dy = randvec(ny, 1), *scratch = guarded(fm_conv_scratch_floats(&g));
  float *y[3], *dx[3], *dw[3], *db[3];
  for (int v = 0; v < 3; v++) {
    y[v] = guarded(ny), dx[v] = guarded(nx), dw[v] = guarded(nw), db[v] = guarded(cout);
    /* v = 0: the dispatcher; 1: im2col (implicit off); 2: the implicit kernels called directly */
    fm_conv_implicit_enabled = v != 1;
    if (v < 2) {
      fm_conv_forward(&g, n, x, wt, b, y[v], 1, scratch);
      fm_conv_backward(&g, n, x, wt, dy, dx[v], dw[v], b ? db[v] : NULL, scratch);
    } else {
      fm_conv_implicit_forward(&g, n, x, wt, b, y[v], 1, scratch);
      fm_conv_implicit_backward(&g, n, x, wt, dy, dx[v], NULL, scratch);
      fm_conv_implicit_backward(&g, n, x, wt, dy, NULL, dw[v], scratch);
    }
  }
  fm_conv_implicit_enabled = 1;
  int implicit = 0;
  for (int v = 1; v < 3; v++) {
    int bits = (memcmp(y[0], y[v], sizeof(float) * ny) == 0) |
               (memcmp(dx[0], dx[v], sizeof(float) * nx) == 0) << 1 |
               (memcmp(dw[0], dw[v], sizeof(float) * nw) == 0) << 2;
    if (v == 1) *im2col = bits & ~(b && memcmp(db[0], db[1], sizeof(float) * cout) ? 7 : 0);
    else implicit = bits;
  }
  for (int v = 0; v < 3; v++) free(y[v]), free(dx[v]), free(dw[v]), free(db[v]);
  free(x), free(wt), free(b), free(dy), free(scratch);
  return implicit;
}

/* The shapes are large enough that the two paths sum in different orders (more than the
 * product's k block of 192 terms, more than 192 pixels per weight gradient, overlapping windows),
 * except where said. */
static void test_dispatch(void) {
  int old, imp;
  imp = dispatch_case(14, 14, 32, 3, 32, 1, 1, 0, &old);
  CHECK(imp == 7 && old == 0, "dispatch: a 'same' 3x3 convolution over 32 channels takes the "
        "implicit kernels (forward, input and weight gradients)");
  imp = dispatch_case(28, 28, 32, 3, 32, 1, 2, 0, &old);
  CHECK(imp == 7 && old == 0, "dispatch: a 'same' 3x3 stride-2 convolution takes them too");
  /* dx of a 1x1 layer is one product per pixel, summed in the same order both ways */
  imp = dispatch_case(28, 28, 256, 1, 32, 1, 2, 0, &old);
  CHECK(old == 7 && imp == 2, "dispatch: a 1x1 stride-2 projection keeps im2col + GEMM");
  imp = dispatch_case(13, 13, 32, 3, 64, 0, 1, 1, &old);
  CHECK(old == 7 && imp == 0, "dispatch: the reference CNN's 'valid' 32 -> 64 layer with a bias "
        "keeps im2col + GEMM, bit for bit (the model-file fixtures retrain to the same bits)");
  imp = dispatch_case(14, 14, 256, 1, 64, 1, 1, 0, &old);
  CHECK(old == 7 && imp == 2, "dispatch: a 1x1 stride-1 convolution keeps its direct product");
  imp = dispatch_case(9, 9, 16, 3, 20, 1, 1, 1, &old);
  CHECK((old & 1) && imp == 6, "dispatch: 20 filters: forward through im2col + GEMM, the "
        "gradients (16 input channels) through the implicit kernels");
}

/* ---- NaN ---- */

/* A NaN in the input reaches the outputs whose windows hold it, as through im2col + GEMM (both
 * multiply it, or the zeros of the padding, into every sum it takes part in). */
static void test_nan(void) {
  fm_conv_geom g;
  fm_conv_geom_init(&g, 7, 7, 32, 3, 3, 32, 1, 1, 1);
  const int n = 2;
  const long nx = (long)n * 49 * 32, ny = nx, nw = 9L * 32 * 32;
  float *x = randvec(nx, 1), *w = randvec(nw, 0.5f), *dy = randvec(ny, 1);
  float *scratch = guarded(fm_conv_scratch_floats(&g));
  float *a = guarded(nx), *b = guarded(nx), *wa = guarded(nw), *wb = guarded(nw);
  x[(49 + 3 * 7 + 6) * 32 + 5] = NAN; /* image 1, row 3, last column, channel 5 */
  dy[(0 + 0) * 32 + 7] = NAN;         /* image 0, the corner, channel 7 */
  int same = 1, count = 0;
  for (int relu = 0; relu < 2; relu++) {
    /* the same NaN through both implicit paths (whole rows and the blocked copy) */
    fm_conv_implicit_rows = 0;
    fm_conv_implicit_forward(&g, n, x, w, NULL, a, relu, scratch);
    fm_conv_implicit_rows = 1;
    fm_conv_implicit_forward(&g, n, x, w, NULL, b, relu, scratch);
    for (long i = 0; i < ny; i++) same &= !isnan(a[i]) == !isnan(b[i]);
    fm_conv_implicit_forward(&g, n, x, w, NULL, a, relu, scratch);
    fm_conv_implicit_enabled = 0;
    fm_conv_forward(&g, n, x, w, NULL, b, relu, scratch);
    fm_conv_implicit_enabled = 1;
    for (long i = 0; i < ny; i++) {
      same &= !isnan(a[i]) == !isnan(b[i]);
      count += isnan(a[i]) != 0;
    }
  }
  /* 3x2 output pixels (the last column has no right neighbour) x 32 channels, twice */
  CHECK(same && count == 2 * 6 * 32, "NaN in the input: the same %d outputs are NaN as through "
        "im2col + GEMM, with and without the fused ReLU", count);
  fm_conv_implicit_rows = 0;
  fm_conv_implicit_backward(&g, n, x, w, dy, a, wa, scratch);
  fm_conv_implicit_rows = 1;
  float *a2 = guarded(nx), *wa2 = guarded(nw);
  fm_conv_implicit_backward(&g, n, x, w, dy, a2, wa2, scratch);
  CHECK(memcmp(a, a2, sizeof(float) * nx) == 0 && memcmp(wa, wa2, sizeof(float) * nw) == 0,
        "NaN in the gradients: the same bits in place and through the blocked copy");
  free(a2), free(wa2);
  fm_conv_implicit_enabled = 0;
  fm_conv_backward(&g, n, x, w, dy, b, wb, NULL, scratch);
  fm_conv_implicit_enabled = 1;
  int dx_nan = 0, dw_nan = 0;
  same = 1;
  for (long i = 0; i < nx; i++) same &= !isnan(a[i]) == !isnan(b[i]), dx_nan += isnan(a[i]) != 0;
  for (long i = 0; i < nw; i++) same &= !isnan(wa[i]) == !isnan(wb[i]), dw_nan += isnan(wa[i]) != 0;
  /* dx: the corner's 2x2 neighbourhood x 32 channels. dw: output channel 7 of every tap and
   * input channel (the NaN of dy meets every input value of its window, the padding's zeros
   * too: 9 x 32), and input channel 5 of the 6 taps whose shift reaches the NaN of x from an
   * output pixel (the left column of taps would need an output column 7: 6 x 32), 6 in both. */
  CHECK(same && dx_nan == 4 * 32 && dw_nan == 9 * 32 + 6 * 32 - 6, "NaN in the gradients: input "
        "gradient (%d NaN) and weight gradient (%d NaN) as through the product", dx_nan, dw_nan);
  /* A NaN weight (tap 0, input channel 3, filter 9) reaches every output of filter 9, the
   * padding's zeros included (0 x NaN), on all three paths. */
  x[(49 + 3 * 7 + 6) * 32 + 5] = 0.5f;
  w[3 * 32 + 9] = NAN;
  float *c = guarded(ny);
  fm_conv_implicit_forward(&g, n, x, w, NULL, a, 0, scratch);
  fm_conv_implicit_rows = 0;
  fm_conv_implicit_forward(&g, n, x, w, NULL, b, 0, scratch);
  fm_conv_implicit_rows = 1;
  fm_conv_implicit_enabled = 0;
  fm_conv_forward(&g, n, x, w, NULL, c, 0, scratch);
  fm_conv_implicit_enabled = 1;
  int all = 1;
  for (long i = 0; i < ny; i++) {
    int want = i % 32 == 9;
    all &= !isnan(a[i]) == !want && !isnan(b[i]) == !want && !isnan(c[i]) == !want;
  }
  CHECK(all, "NaN in a weight: every output of its filter is NaN, borders included, on every path");
  free(c);
  free(x), free(w), free(dy), free(scratch), free(a), free(b), free(wa), free(wb);
}

/* ---- depthwise ---- */

/* The AVX-512 depthwise kernels against a double reference (forward, dx, dw, db within the
 * float32 bound of their sums) and against the plain loops (within twice it); determinism; the
 * scratch bound; parts alone. */
static void test_depthwise(int h, int w, int c, int k, int stride, int same, int bias, int relu,
                           int n) {
  fm_conv_geom g;
  char name[160];
  snprintf(name, sizeof name, "depthwise %dx%dx%d, %dx%d stride %d %s%s%s, %d image%s", h, w, c, k,
           k, stride, same ? "same" : "valid", bias ? ", bias" : "", relu ? ", relu" : "", n,
           n == 1 ? "" : "s");
  if (fm_conv_geom_init(&g, h, w, c, k, k, c, same, stride, c) != FM_OK) {
    CHECK(0, "%s: geometry (%s)", name, fm_error());
    return;
  }
  const long nx = (long)n * h * w * c, ny = (long)n * g.oh * g.ow * c, nw = (long)k * k * c;
  const size_t ns = fm_conv_scratch_floats(&g);
  float *x = randvec(nx, 1), *wt = randvec(nw, 0.5f), *b = bias ? randvec(c, 0.5f) : NULL;
  float *dy = randvec(ny, 1), *scratch = guarded(ns);
  float *y[3], *dx[3], *dw[3], *db[3];
  for (int v = 0; v < 3; v++) {
    y[v] = guarded(ny), dx[v] = guarded(nx), dw[v] = guarded(nw), db[v] = guarded(c);
    fm_simd_allow(v > 0); /* 0: the plain loops; 1 and 2: AVX-512, twice */
    fm_conv_forward(&g, n, x, wt, b, y[v], relu, scratch);
    fm_conv_backward(&g, n, x, wt, dy, dx[v], dw[v], db[v], scratch);
  }
  fm_simd_allow(1);
  CHECK(!memcmp(y[1], y[2], sizeof(float) * ny) && !memcmp(dx[1], dx[2], sizeof(float) * nx) &&
        !memcmp(dw[1], dw[2], sizeof(float) * nw) && !memcmp(db[1], db[2], sizeof(float) * c),
        "%s: the same bits again", name);
  /* reference */
  double *ry = calloc(ny, sizeof(double)), *my = calloc(ny, sizeof(double));
  double *rx = calloc(nx, sizeof(double)), *mx = calloc(nx, sizeof(double));
  double *rw = calloc(nw, sizeof(double)), *mw = calloc(nw, sizeof(double));
  double *rb = calloc(c, sizeof(double)), *mb = calloc(c, sizeof(double));
  for (int i = 0; i < n; i++)
    for (int oy = 0; oy < g.oh; oy++)
      for (int ox = 0; ox < g.ow; ox++)
        for (int ch = 0; ch < c; ch++) {
          long o = (((long)i * g.oh + oy) * g.ow + ox) * c + ch;
          ry[o] = b ? b[ch] : 0, my[o] = b ? fabs(b[ch]) : 0;
          rb[ch] += dy[o], mb[ch] += fabs(dy[o]);
          for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
              long p = in_pixel(&g, i, oy, ox, ky, kx);
              if (p < 0) continue;
              long t = (long)(ky * k + kx) * c + ch;
              double f = (double)x[p * c + ch] * wt[t];
              ry[o] += f, my[o] += fabs(f);
              double gw = (double)x[p * c + ch] * dy[o], gx = (double)wt[t] * dy[o];
              rw[t] += gw, mw[t] += fabs(gw), rx[p * c + ch] += gx, mx[p * c + ch] += fabs(gx);
            }
          if (relu && ry[o] < 0) ry[o] = 0;
        }
  double worst[4], pix = (double)n * g.oh * g.ow;
  int ok = within(y[1], ry, my, ny, k * k + 1, 1, &worst[0]) &
           within(dx[1], rx, mx, nx, k * k, 1, &worst[1]) &
           within(dw[1], rw, mw, nw, pix, 1, &worst[2]) & within(db[1], rb, mb, c, pix, 1, &worst[3]);
  CHECK(ok, "%s: forward and gradients within the float32 bound (worst %.2f %.2f %.2f %.2f)", name,
        worst[0], worst[1], worst[2], worst[3]);
  ok = within_f(y[1], y[0], my, ny, k * k + 1, &worst[0]) &
       within_f(dx[1], dx[0], mx, nx, k * k, &worst[1]) &
       within_f(dw[1], dw[0], mw, nw, pix, &worst[2]) & within_f(db[1], db[0], mb, c, pix, &worst[3]);
  CHECK(ok, "%s: agrees with the plain loops (worst %.2f %.2f %.2f %.2f)", name, worst[0],
        worst[1], worst[2], worst[3]);
  CHECK(guard_intact(scratch, ns) && guard_intact(y[1], ny) && guard_intact(dx[1], nx) &&
        guard_intact(dw[1], nw) && guard_intact(db[1], c), "%s: nothing written past the "
        "scratch (%zu floats) or the outputs", name, ns);
  CHECK(fm_conv_depthwise_forward(&g, n, x, wt, b, y[0], relu, scratch) == 1 &&
        fm_conv_depthwise_backward(&g, n, x, wt, dy, dx[0], NULL, NULL, scratch) == 1 &&
        memcmp(dx[0], dx[1], sizeof(float) * nx) == 0, "%s: the AVX-512 kernels take it; the "
        "input gradient alone is the same", name);
  CHECK(fm_conv_depthwise_backward(&g, n, x, wt, dy, NULL, dw[0], db[0], scratch) == 1 &&
        memcmp(dw[0], dw[1], sizeof(float) * nw) == 0 && memcmp(db[0], db[1], sizeof(float) * c) == 0,
        "%s: the weight and bias gradients alone are the same", name);
  for (int v = 0; v < 3; v++) free(y[v]), free(dx[v]), free(dw[v]), free(db[v]);
  free(x), free(wt), free(b), free(dy), free(scratch), free(ry), free(my), free(rx), free(mx);
  free(rw), free(mw), free(rb), free(mb);
}

/* A NaN in the input reaches the outputs whose window holds it; a NaN weight every output of
 * its channel (the padding's zeros take part, as in im2col + GEMM). */
static void test_depthwise_nan(void) {
  fm_conv_geom g;
  fm_conv_geom_init(&g, 6, 6, 32, 3, 3, 32, 1, 1, 32);
  const long nx = 36 * 32, nw = 9 * 32;
  float *x = randvec(nx, 1), *w = randvec(nw, 0.5f), *y = guarded(nx);
  float *scratch = guarded(fm_conv_scratch_floats(&g));
  x[(2 * 6 + 5) * 32 + 7] = NAN; /* row 2, last column, channel 7 */
  w[4 * 32 + 20] = NAN;          /* the centre tap of channel 20 */
  fm_conv_forward(&g, 1, x, w, NULL, y, 1, scratch);
  int ok = 1;
  for (int py = 0; py < 6; py++)
    for (int px = 0; px < 6; px++)
      for (int ch = 0; ch < 32; ch++) {
        int want = ch == 20 || (ch == 7 && py >= 1 && py <= 3 && px >= 4);
        ok &= !isnan(y[(py * 6 + px) * 32 + ch]) == !want;
      }
  CHECK(ok, "depthwise: NaN in an input pixel reaches its windows, a NaN weight its channel");
  free(x), free(w), free(y), free(scratch);
}

/* ---- what the kernels decline ---- */

static void test_declined(void) {
  fm_conv_geom g;
  float dummy[64] = {0};
  fm_conv_geom_init(&g, 8, 8, 16, 3, 3, 16, 1, 1, 16);
  CHECK(!fm_conv_implicit_forward(&g, 1, dummy, dummy, NULL, dummy, 0, dummy) &&
        !fm_conv_implicit_backward(&g, 1, dummy, dummy, dummy, dummy, NULL, dummy) &&
        !fm_conv_implicit_backward(&g, 1, dummy, dummy, dummy, NULL, dummy, dummy),
        "declined: depthwise (groups = channels)");
  fm_conv_geom_init(&g, 12, 12, 16, 9, 9, 16, 1, 1, 1);
  CHECK(!fm_conv_implicit_forward(&g, 1, dummy, dummy, NULL, dummy, 0, dummy) &&
        !fm_conv_implicit_backward(&g, 1, dummy, dummy, dummy, NULL, dummy, dummy),
        "declined: a 9x9 kernel (81 taps, over 49)");
  fm_conv_geom_init(&g, 6, 6, 24, 3, 3, 16, 1, 1, 1);
  CHECK(!fm_conv_implicit_backward(&g, 1, dummy, dummy, dummy, dummy, dummy, dummy),
        "declined: both gradients of 24 input channels (the input gradient needs multiples of "
        "16), with nothing written");
  fm_conv_geom_init(&g, 12, 12, 16, 3, 3, 16, 1, 1, 1);
  fm_conv_implicit_enabled = 0;
  CHECK(!fm_conv_implicit_forward(&g, 1, dummy, dummy, NULL, dummy, 0, dummy) &&
        !fm_conv_implicit_backward(&g, 1, dummy, dummy, dummy, dummy, dummy, dummy),
        "declined: everything when turned off");
  fm_conv_implicit_enabled = 1;
  fm_simd_allow(0);
  CHECK(!fm_conv_implicit_forward(&g, 1, dummy, dummy, NULL, dummy, 0, dummy),
        "declined: everything when AVX-512 code is not allowed");
  fm_simd_allow(1);
}

int main(void) {
  fm_rng_seed(&rng, 2024);
  if (!fm_simd_avx512()) {
    printf("ok 1 - implicit-GEMM convolutions # SKIP no AVX-512 on this CPU\n1..1\n");
    return 0;
  }
  static const shape shapes[] = {
      /* ResNet-20 on 28x28: the stem, each stage's 3x3, the strided 3x3 and 1x1 projections */
      {28, 28, 1, 3, 3, 16, 1, 1, 2, 0, 1, "resnet stem"},
      {28, 28, 16, 3, 3, 16, 1, 1, 2, 0, 0, "resnet stage 1"},
      {14, 14, 32, 3, 3, 32, 1, 1, 3, 0, 0, "resnet stage 2"},
      {7, 7, 64, 3, 3, 64, 1, 1, 4, 0, 1, "resnet stage 3"},
      {28, 28, 16, 3, 3, 32, 2, 1, 2, 0, 0, "resnet into stage 2"},
      {14, 14, 32, 3, 3, 64, 2, 1, 2, 0, 0, "resnet into stage 3"},
      {28, 28, 16, 1, 1, 32, 2, 1, 2, 0, 0, "resnet projection 2"},
      {14, 14, 32, 1, 1, 64, 2, 1, 2, 0, 0, "resnet projection 3"},
      /* wider channel counts: chunks of 4 vectors, 3 + 2, columns past 3 */
      {7, 7, 128, 3, 3, 256, 1, 1, 1, 1, 0, "wide"},
      {9, 13, 48, 3, 3, 80, 1, 1, 2, 1, 1, "80 filters"},
      {13, 13, 16, 3, 3, 48, 1, 1, 1, 0, 1, "tiles overlapping"},
      {30, 30, 16, 3, 3, 16, 1, 1, 1, 1, 0, "two tiles a row"},
      /* small and odd images, one image, borders */
      {5, 3, 16, 3, 3, 16, 1, 1, 1, 1, 1, "5x3"},
      {1, 1, 16, 3, 3, 32, 1, 1, 3, 1, 0, "1x1 image"},
      {7, 7, 16, 3, 3, 16, 2, 1, 1, 0, 0, "odd size, stride 2"},
      {5, 6, 16, 4, 2, 32, 1, 1, 2, 1, 0, "even kernel (padding bottom and right)"},
      {6, 7, 32, 5, 5, 16, 1, 1, 2, 0, 1, "5x5 kernel"},
      {9, 8, 16, 3, 3, 32, 1, 0, 2, 1, 0, "valid padding"},
      {9, 9, 16, 3, 3, 16, 2, 0, 1, 0, 0, "valid, stride 2"},
      {7, 7, 32, 1, 1, 64, 1, 1, 2, 1, 0, "1x1 stride 1"},
      {10, 11, 16, 3, 3, 32, 3, 1, 2, 0, 0, "stride 3 (gradients only)"},
      {6, 6, 16, 3, 3, 20, 1, 1, 1, 0, 0, "20 filters (gradients only)"},
      {6, 6, 8, 3, 3, 32, 1, 1, 1, 1, 0, "8 input channels (no input gradient)"},
      {6, 5, 24, 3, 3, 32, 1, 1, 2, 0, 1, "24 input channels (no input gradient)"},
      {5, 5, 1, 3, 3, 16, 2, 1, 2, 1, 0, "1 input channel, stride 2"},
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) test_shape(&shapes[i]);
  test_dispatch();
  /* MobileNet's depthwise layers, and channel counts off a block of 16 */
  test_depthwise(28, 28, 32, 3, 1, 1, 0, 1, 2);
  test_depthwise(28, 28, 64, 3, 2, 1, 0, 0, 2);
  test_depthwise(7, 7, 256, 3, 1, 1, 1, 0, 1);
  test_depthwise(9, 8, 6, 3, 1, 1, 1, 1, 3);
  test_depthwise(11, 10, 40, 5, 2, 1, 0, 0, 2);
  test_depthwise(8, 9, 24, 3, 1, 0, 1, 0, 2);
  test_depthwise(1, 1, 16, 3, 1, 1, 0, 0, 1);
  test_depthwise(14, 14, 128, 3, 2, 1, 1, 1, 2);
  test_depthwise(7, 7, 256, 5, 1, 0, 0, 0, 1);
  test_depthwise_nan();
  test_nan();
  test_declined();
  return check_done();
}
