/* fm_conv_depthwise: AVX-512 depthwise convolution (see fm_conv_depthwise.h).
 *
 * For each image and block of 16 channels, the block is copied into a zero-padded buffer (the
 * same 16-floats-a-pixel layout as fm_conv_implicit's), so that every output pixel takes every
 * tap without a test, and a row's pixels are constant offsets from one pointer:
 *  - forward: 8 output pixels side by side (8 independent chains of fused multiply-adds), the
 *    taps in order;
 *  - input gradient: the output gradient spread onto a zero grid with the stride's gaps and
 *    padded, then the same walk with the kernel flipped: each input pixel sums its products in
 *    output-pixel order;
 *  - weight and bias gradients: every output pixel of every image, in order, onto kh x kw + 1
 *    sums held in registers (3x3) or in L1.
 * The results are deterministic (fixed orders) and differ from the plain loops of fm_layers.c in
 * the last bits (one rounding per fused multiply-add) and where those skip the padding: here its
 * zeros take part, as in im2col + GEMM (a NaN or infinite weight makes every output of its
 * channel NaN, borders included). */
#include "fm_conv_depthwise.h"

#include <immintrin.h>
#include <string.h>

#include "fm_gemm.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma")))
#define MAX_TAPS 49
#define PX 8 /* pixels side by side */

static int handled(const fm_conv_geom *g) {
  return fm_simd_avx512() && g->groups > 1 && g->groups == g->cin && g->cin == g->cout &&
         g->kh * g->kw <= MAX_TAPS && (g->stride == 1 || g->stride == 2);
}

static __mmask16 lanes(int n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }
static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

/* The padded extents: the forward input (hp x wp), and the input gradient's grid of output
 * gradients (hd x wd): dy(oy, ox) at (k - 1 - pad + s oy, ...), zeros between and around, so that
 * input pixel iy sums rows iy .. iy + k - 1 of it. */
typedef struct dw_geom {
  int hp, wp, hd, wd;
} dw_geom;

static void dw_geometry(const fm_conv_geom *g, dw_geom *d) {
  const int s = g->stride;
  d->hp = s * (g->oh - 1) + g->kh;
  d->wp = s * (g->ow - 1) + g->kw;
  d->hd = imax(g->h + g->kh - 1, g->kh - 1 - g->pad_top + s * (g->oh - 1) + 1);
  d->wd = imax(g->w + g->kw - 1, g->kw - 1 - g->pad_left + s * (g->ow - 1) + 1);
}

size_t fm_conv_depthwise_scratch_floats(const fm_conv_geom *g) {
  if (g->groups <= 1) return 0;
  dw_geom d;
  dw_geometry(g, &d);
  size_t a = (size_t)d.hp * d.wp * 16, b = (size_t)d.hd * d.wd * 16;
  return (a > b ? a : b) + 16;
}

/* Channels [c0, c0 + 16) of an h x w x C image into buf (hp x wp pixels of 16 floats): pixel
 * (iy, ix) at (iy + top, ix + left) spread by `step` (1, or the stride for the input gradient's
 * grid), zeros elsewhere and past channel C. */
AVX512 static void block_to_padded(const float *img, int h, int w, int C, int c0, int top,
                                   int left, int step, int hp, int wp, float *buf) {
  const __mmask16 m = lanes(C - c0);
  memset(buf, 0, sizeof(float) * (size_t)hp * wp * 16);
  for (int iy = 0; iy < h; iy++) {
    const int yy = top + iy * step;
    if (yy < 0 || yy >= hp) continue;
    const float *src = img + (size_t)iy * w * C + c0;
    float *row = buf + (size_t)yy * wp * 16;
    for (int ix = 0; ix < w; ix++) {
      const int xx = left + ix * step;
      if (xx < 0 || xx >= wp) continue;
      const __m512 v = m == 0xFFFF ? _mm512_loadu_ps(src + (size_t)ix * C)
                                   : _mm512_maskz_loadu_ps(m, src + (size_t)ix * C);
      _mm512_storeu_ps(row + (size_t)xx * 16, v);
    }
  }
}

/* rows x cols outputs (of 16 channels, written at out + (q * cols + i) * C ... with row stride
 * orow and pixel stride opx floats), output (q, i) summing taps (ky, kx) of in at
 * ((q * S + ky) * wp + i * S + kx) * 16, weights wt[ky * kw + kx] (flip: taps from the last),
 * starting from init; then ReLU when asked. S is the stride in the padded buffer. */
AVX512 static inline __attribute__((always_inline)) void walk(
    const float *in, int wp, int kh, int kw, const __m512 *wt, int flip, __m512 init, int rows,
    int cols, float *out, ptrdiff_t orow, ptrdiff_t opx, __mmask16 m, int relu, const int S) {
  const int taps = kh * kw;
  for (int q = 0; q < rows; q++)
    for (int i0 = 0; i0 < cols; i0 += PX) {
      /* the last block moved back to end at the row's end (recomputing a few pixels) */
      const int i = cols >= PX && i0 + PX > cols ? cols - PX : i0, np = imin(PX, cols - i);
      __m512 acc[PX];
      for (int p = 0; p < PX; p++) acc[p] = init;
      for (int t = 0; t < taps; t++) {
        const int ky = t / kw, kx = t % kw;
        const __m512 w = wt[flip ? taps - 1 - t : t];
        const float *a = in + ((size_t)(q * S + ky) * wp + (size_t)i * S + kx) * 16;
#pragma GCC unroll 8
        for (int p = 0; p < PX; p++)
          if (p < np) acc[p] = _mm512_fmadd_ps(_mm512_loadu_ps(a + p * S * 16), w, acc[p]);
      }
#pragma GCC unroll 8
      for (int p = 0; p < PX; p++)
        if (p < np)
          _mm512_mask_storeu_ps(out + q * orow + (i + p) * opx, m,
                                relu ? _mm512_max_ps(_mm512_setzero_ps(), acc[p]) : acc[p]);
    }
}

AVX512 static void walk_s1(const float *in, int wp, int kh, int kw, const __m512 *wt, int flip,
                           __m512 init, int rows, int cols, float *out, ptrdiff_t orow,
                           ptrdiff_t opx, __mmask16 m, int relu) {
  walk(in, wp, kh, kw, wt, flip, init, rows, cols, out, orow, opx, m, relu, 1);
}
AVX512 static void walk_s2(const float *in, int wp, int kh, int kw, const __m512 *wt, int flip,
                           __m512 init, int rows, int cols, float *out, ptrdiff_t orow,
                           ptrdiff_t opx, __mmask16 m, int relu) {
  walk(in, wp, kh, kw, wt, flip, init, rows, cols, out, orow, opx, m, relu, 2);
}

AVX512 static void forward_avx512(const fm_conv_geom *g, int n, const float *x, const float *w,
                                  const float *bias, float *y, int relu, float *scratch) {
  const int C = g->cin, taps = g->kh * g->kw;
  dw_geom d;
  dw_geometry(g, &d);
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * C;
  __m512 wv[MAX_TAPS];
  for (int i = 0; i < n; i++)
    for (int c0 = 0; c0 < C; c0 += 16) {
      const __mmask16 m = lanes(C - c0);
      for (int t = 0; t < taps; t++) wv[t] = _mm512_maskz_loadu_ps(m, w + (size_t)t * C + c0);
      const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + c0) : _mm512_setzero_ps();
      block_to_padded(x + i * in_img, g->h, g->w, C, c0, g->pad_top, g->pad_left, 1, d.hp, d.wp,
                      scratch);
      (g->stride == 1 ? walk_s1 : walk_s2)(scratch, d.wp, g->kh, g->kw, wv, 0, b, g->oh, g->ow,
                                           y + i * out_img + c0, (ptrdiff_t)g->ow * C, C, m, relu);
    }
}

int fm_conv_depthwise_forward(const fm_conv_geom *g, int n, const float *x, const float *w,
                              const float *bias, float *y, int relu, float *scratch) {
  if (!handled(g)) return 0;
  forward_avx512(g, n, x, w, bias, y, relu, scratch);
  return 1;
}

/* dw (taps vectors) and db sums over one image's output pixels, in order: x from the padded
 * block (hp x wp), dy NHWC. */
#define DW_SUM(t) s##t = _mm512_fmadd_ps(_mm512_loadu_ps(a + ((t) / 3 * wp + (t) % 3) * 16), dv, s##t);
AVX512 static void weight_grad_image(const fm_conv_geom *g, const dw_geom *d, const float *xp,
                                     const float *dyi, __mmask16 m, __m512 *gw, __m512 *gb) {
  const int C = g->cin, s = g->stride, wp = d->wp, taps = g->kh * g->kw;
  __m512 sb = *gb;
  if (g->kh == 3 && g->kw == 3) {
    __m512 s0 = gw[0], s1 = gw[1], s2 = gw[2], s3 = gw[3], s4 = gw[4], s5 = gw[5], s6 = gw[6];
    __m512 s7 = gw[7], s8 = gw[8];
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++) {
        const float *a = xp + ((size_t)oy * s * wp + (size_t)ox * s) * 16;
        const __m512 dv = _mm512_maskz_loadu_ps(m, dyi + ((size_t)oy * g->ow + ox) * C);
        sb = _mm512_add_ps(sb, dv);
        DW_SUM(0) DW_SUM(1) DW_SUM(2) DW_SUM(3) DW_SUM(4) DW_SUM(5) DW_SUM(6) DW_SUM(7) DW_SUM(8)
      }
    gw[0] = s0, gw[1] = s1, gw[2] = s2, gw[3] = s3, gw[4] = s4, gw[5] = s5, gw[6] = s6;
    gw[7] = s7, gw[8] = s8;
  } else {
    for (int oy = 0; oy < g->oh; oy++)
      for (int ox = 0; ox < g->ow; ox++) {
        const float *a = xp + ((size_t)oy * s * wp + (size_t)ox * s) * 16;
        const __m512 dv = _mm512_maskz_loadu_ps(m, dyi + ((size_t)oy * g->ow + ox) * C);
        sb = _mm512_add_ps(sb, dv);
        for (int t = 0; t < taps; t++)
          gw[t] = _mm512_fmadd_ps(_mm512_loadu_ps(a + ((size_t)(t / g->kw) * wp + t % g->kw) * 16),
                                  dv, gw[t]);
      }
  }
  *gb = sb;
}

AVX512 static void backward_avx512(const fm_conv_geom *g, int n, const float *x, const float *w,
                                   const float *dy, float *dx, float *dw, float *db,
                                   float *scratch) {
  const int C = g->cin, taps = g->kh * g->kw, s = g->stride;
  dw_geom d;
  dw_geometry(g, &d);
  const size_t in_img = (size_t)g->h * g->w * C, out_img = (size_t)g->oh * g->ow * C;
  __m512 wv[MAX_TAPS], gw[MAX_TAPS];
  for (int c0 = 0; c0 < C; c0 += 16) {
    const __mmask16 m = lanes(C - c0);
    for (int t = 0; t < taps; t++) {
      wv[t] = _mm512_maskz_loadu_ps(m, w + (size_t)t * C + c0);
      gw[t] = _mm512_setzero_ps();
    }
    __m512 gb = _mm512_setzero_ps();
    for (int i = 0; i < n; i++) {
      const float *dyi = dy + i * out_img;
      if (dx) {
        /* dx = the flipped kernel walked over the gapped, padded grid of dy */
        block_to_padded(dyi, g->oh, g->ow, C, c0, g->kh - 1 - g->pad_top,
                        g->kw - 1 - g->pad_left, s, d.hd, d.wd, scratch);
        walk_s1(scratch, d.wd, g->kh, g->kw, wv, 1, _mm512_setzero_ps(), g->h, g->w,
                dx + i * in_img + c0, (ptrdiff_t)g->w * C, C, m, 0);
      }
      if (dw || db) {
        block_to_padded(x + i * in_img, g->h, g->w, C, c0, g->pad_top, g->pad_left, 1, d.hp,
                        d.wp, scratch);
        weight_grad_image(g, &d, scratch, dyi + c0, m, gw, &gb);
      }
    }
    if (dw)
      for (int t = 0; t < taps; t++) _mm512_mask_storeu_ps(dw + (size_t)t * C + c0, m, gw[t]);
    if (db) _mm512_mask_storeu_ps(db + c0, m, gb);
  }
}

int fm_conv_depthwise_backward(const fm_conv_geom *g, int n, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db, float *scratch) {
  if (!handled(g)) return 0;
  backward_avx512(g, n, x, w, dy, dx, dw, db, scratch);
  return 1;
}
