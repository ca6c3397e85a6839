/* fm_conv_direct: direct AVX-512 convolution kernels for one-channel inputs (see
 * fm_conv_direct.h).
 *
 * With one input channel a patch is only kh * kw numbers, so im2col would write kh * kw floats per
 * output pixel to save kh * kw multiply-adds per filter: as much memory traffic as arithmetic.
 * Here each output pixel instead broadcasts its kh * kw input values against the kernel's rows
 * (32 filters = two zmm registers per tap) and accumulates in registers:
 *  - forward: 4 pixels x 32 filters of accumulators, bias and ReLU applied before the store;
 *  - weight gradient: all taps (up to 9 at a time) x 32 filters accumulate over every pixel of
 *    every image, together with the bias gradient, so dy is read once per 9 taps.
 * "same" padding copies each image into a zero-bordered buffer first, so the loops have no
 * bounds checks. Results are deterministic: each sum runs in a fixed order. */
#include "fm_conv_direct.h"

#include <immintrin.h>
#include <string.h>

#include "fm_gemm.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))

int fm_conv_direct_enabled = 1;

static int direct_ok(const fm_conv_geom *g) {
  /* Up to 7x7: the tap offsets live in a fixed array; larger one-channel kernels are rare. */
  return fm_simd_avx512() && g->cin == 1 && g->kh * g->kw <= 49 && g->stride == 1 &&
         g->groups == 1 && fm_conv_direct_enabled;
}

/* The input image as the loops want it: padded with zeros when "same", else x itself. */
static const float *padded_image(const fm_conv_geom *g, const float *img, float *buf, int *pw) {
  int ph = g->oh + g->kh - 1;
  *pw = g->ow + g->kw - 1;
  if (g->pad_top == 0 && g->pad_left == 0 && ph == g->h && *pw == g->w) return img;
  memset(buf, 0, sizeof(float) * (size_t)ph * *pw);
  for (int y = 0; y < g->h; y++)
    memcpy(buf + (size_t)(y + g->pad_top) * *pw + g->pad_left, img + (size_t)y * g->w,
           sizeof(float) * (size_t)g->w);
  return buf;
}

static __mmask16 lane_mask(int n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* ---- forward ---- */

AVX512 static inline __m512 relu_keep_nan(__m512 v) { return _mm512_max_ps(_mm512_setzero_ps(), v); }

/* Accumulators are named variables (an array indexed at run time would live in memory). */
#define FWD_FMA(p)                               \
  do {                                           \
    __m512 xv = _mm512_set1_ps(xi[p]);           \
    a##p##0 = _mm512_fmadd_ps(xv, w0, a##p##0);  \
    a##p##1 = _mm512_fmadd_ps(xv, w1, a##p##1);  \
  } while (0)
#define FWD_STORE(p)                                                        \
  do {                                                                      \
    float *o = out + (size_t)(ox + p) * g->cout + c0;                       \
    _mm512_mask_storeu_ps(o, m0, relu ? relu_keep_nan(a##p##0) : a##p##0);  \
    _mm512_mask_storeu_ps(o + 16, m1, relu ? relu_keep_nan(a##p##1) : a##p##1); \
  } while (0)

/* 4 output pixels (consecutive in a row) x one block of up to 32 filters; the last pixels of a
 * row go one at a time through the same code with the other three discarded. */
AVX512 static void forward_avx512(const fm_conv_geom *g, int n, const float *x, const float *w,
                                  const float *bias, float *y, int relu, float *buf) {
  const int taps = g->kh * g->kw;
  int off[49];
  int pw;
  for (int i = 0; i < n; i++) {
    const float *img = padded_image(g, x + (size_t)i * g->h * g->w, buf, &pw);
    for (int ky = 0; ky < g->kh; ky++)
      for (int kx = 0; kx < g->kw; kx++) off[ky * g->kw + kx] = ky * pw + kx;
    for (int c0 = 0; c0 < g->cout; c0 += 32) {
      __mmask16 m0 = lane_mask(g->cout - c0);
      __mmask16 m1 = g->cout - c0 > 16 ? lane_mask(g->cout - c0 - 16) : 0;
      __m512 bias0 = _mm512_maskz_loadu_ps(m0, bias + c0);
      __m512 bias1 = _mm512_maskz_loadu_ps(m1, bias + c0 + 16);
      for (int oy = 0; oy < g->oh; oy++) {
        const float *row = img + (size_t)oy * pw;
        float *out = y + ((size_t)i * g->oh + oy) * g->ow * g->cout;
        for (int ox = 0; ox < g->ow; ox += 4) {
          /* Near the row's end, pixels past it read valid memory of the padded row below (or
           * repeat the last pixel) and are not stored. */
          int np = g->ow - ox < 4 ? g->ow - ox : 4;
          int step = np == 4 ? 1 : 0;
          __m512 a00 = bias0, a01 = bias1, a10 = bias0, a11 = bias1;
          __m512 a20 = bias0, a21 = bias1, a30 = bias0, a31 = bias1;
          if (step) {
            for (int t = 0; t < taps; t++) {
              const float *wr = w + (size_t)t * g->cout + c0;
              __m512 w0 = _mm512_maskz_loadu_ps(m0, wr), w1 = _mm512_maskz_loadu_ps(m1, wr + 16);
              const float *xi = row + off[t] + ox;
              FWD_FMA(0);
              FWD_FMA(1);
              FWD_FMA(2);
              FWD_FMA(3);
            }
            FWD_STORE(0);
            FWD_STORE(1);
            FWD_STORE(2);
            FWD_STORE(3);
          } else {
            for (int q = 0; q < np; q++, ox++) {
              a00 = bias0, a01 = bias1;
              for (int t = 0; t < taps; t++) {
                const float *wr = w + (size_t)t * g->cout + c0;
                __m512 w0 = _mm512_maskz_loadu_ps(m0, wr), w1 = _mm512_maskz_loadu_ps(m1, wr + 16);
                const float *xi = row + off[t] + ox;
                FWD_FMA(0);
              }
              FWD_STORE(0);
            }
          }
        }
      }
    }
  }
}

/* ---- weight and bias gradients ---- */

#define WG_DECL(t) __m512 s##t##0 = _mm512_setzero_ps(), s##t##1 = _mm512_setzero_ps()
#define WG_FMA(t)                                      \
  do {                                                 \
    __m512 xv = _mm512_set1_ps(px[o##t]);              \
    s##t##0 = _mm512_fmadd_ps(xv, d0, s##t##0);        \
    s##t##1 = _mm512_fmadd_ps(xv, d1, s##t##1);        \
  } while (0)
#define WG_STORE(t)                                              \
  if (t < nt) {                                                  \
    float *o = dw + (size_t)(t0 + t) * g->cout + c0;             \
    _mm512_mask_storeu_ps(o, m0, s##t##0);                       \
    _mm512_mask_storeu_ps(o + 16, m1, s##t##1);                  \
  }

/* Up to 9 taps [t0, t0 + nt) x one block of up to 32 filters, summed over every output pixel of
 * the n images (and the bias gradient with them). Taps past nt repeat the last one and are not
 * stored. */
AVX512 static void weight_grad_block(const fm_conv_geom *g, int n, const float *x, const float *dy,
                                     float *dw, float *db, int t0, int nt, int c0, float *buf) {
  __mmask16 m0 = lane_mask(g->cout - c0);
  __mmask16 m1 = g->cout - c0 > 16 ? lane_mask(g->cout - c0 - 16) : 0;
  WG_DECL(0); WG_DECL(1); WG_DECL(2); WG_DECL(3); WG_DECL(4);
  WG_DECL(5); WG_DECL(6); WG_DECL(7); WG_DECL(8);
  __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
  int pw;
  for (int i = 0; i < n; i++) {
    const float *img = padded_image(g, x + (size_t)i * g->h * g->w, buf, &pw);
    int off[9];
    for (int t = 0; t < 9; t++) {
      int tap = t0 + (t < nt ? t : nt - 1);
      off[t] = (tap / g->kw) * pw + tap % g->kw;
    }
    const ptrdiff_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4];
    const ptrdiff_t o5 = off[5], o6 = off[6], o7 = off[7], o8 = off[8];
    for (int oy = 0; oy < g->oh; oy++) {
      const float *px = img + (size_t)oy * pw;
      const float *d = dy + ((size_t)i * g->oh + oy) * g->ow * g->cout + c0;
      for (int ox = 0; ox < g->ow; ox++, d += g->cout, px++) {
        __m512 d0 = _mm512_maskz_loadu_ps(m0, d), d1 = _mm512_maskz_loadu_ps(m1, d + 16);
        b0 = _mm512_add_ps(b0, d0);
        b1 = _mm512_add_ps(b1, d1);
        WG_FMA(0); WG_FMA(1); WG_FMA(2); WG_FMA(3); WG_FMA(4);
        WG_FMA(5); WG_FMA(6); WG_FMA(7); WG_FMA(8);
      }
    }
  }
  WG_STORE(0) WG_STORE(1) WG_STORE(2) WG_STORE(3) WG_STORE(4)
  WG_STORE(5) WG_STORE(6) WG_STORE(7) WG_STORE(8)
  if (db) {
    _mm512_mask_storeu_ps(db + c0, m0, b0);
    _mm512_mask_storeu_ps(db + c0 + 16, m1, b1);
  }
}

size_t fm_conv_direct_scratch_floats(const fm_conv_geom *g) {
  return ((size_t)g->oh + (size_t)g->kh - 1) * ((size_t)g->ow + (size_t)g->kw - 1);
}

int fm_conv_direct_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                           const float *bias, float *y, int relu, float *scratch) {
  if (!direct_ok(g) || !bias) return 0; /* without a bias: im2col + GEMM */
  forward_avx512(g, n, x, w, bias, y, relu, scratch);
  return 1;
}

int fm_conv_direct_weight_grad(const fm_conv_geom *g, int n, const float *x, const float *dy,
                               float *dw, float *db, float *scratch) {
  if (!direct_ok(g)) return 0;
  const int taps = g->kh * g->kw;
  for (int c0 = 0; c0 < g->cout; c0 += 32)
    for (int t0 = 0; t0 < taps; t0 += 9)
      weight_grad_block(g, n, x, dy, dw, t0 == 0 ? db : NULL, t0, taps - t0 < 9 ? taps - t0 : 9,
                        c0, scratch);
  return 1;
}
