/* fm_optim: SGD (momentum, Nesterov), Adam, L2 decay and learning-rate schedules. */
#include "fm_optim.h"

#include <immintrin.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_gemm.h"

void fm_optim_sgd(fm_optim *o, double lr, double momentum, int nesterov) {
  memset(o, 0, sizeof *o);
  o->kind = FM_OPTIM_SGD;
  o->lr = lr;
  o->momentum = momentum;
  o->nesterov = nesterov;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
}

void fm_optim_adam(fm_optim *o, double lr) {
  fm_optim_sgd(o, lr, 0.0, 0);
  o->kind = FM_OPTIM_ADAM;
}

int fm_optim_check(const fm_optim *o) {
  if (o->kind != FM_OPTIM_SGD && o->kind != FM_OPTIM_ADAM)
    return fm_fail("optimizer: unknown kind %d (expected SGD or Adam)", (int)o->kind);
  /* The step runs in float32: a rate that is not a finite float would make every update infinite. */
  if (!(o->lr > 0.0 && o->lr <= FLT_MAX))
    return fm_fail("optimizer: learning rate %g must be positive and finite (at most %g)", o->lr,
                   (double)FLT_MAX);
  if (!(o->momentum >= 0.0 && o->momentum < 1.0))
    return fm_fail("optimizer: momentum %g must be in [0, 1)", o->momentum);
  if (o->kind == FM_OPTIM_ADAM) {
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0))
      return fm_fail("optimizer: beta1 %g must be in [0, 1)", o->beta1);
    if (!(o->beta2 >= 0.0 && o->beta2 < 1.0))
      return fm_fail("optimizer: beta2 %g must be in [0, 1)", o->beta2);
    if (!(o->eps > 0.0 && o->eps <= FLT_MAX))
      return fm_fail("optimizer: eps %g must be positive and finite", o->eps);
  }
  if (!(o->weight_decay >= 0.0 && o->weight_decay <= FLT_MAX))
    return fm_fail("optimizer: weight decay %g must be >= 0 and finite", o->weight_decay);
  const fm_schedule *s = &o->schedule;
  switch (s->kind) {
    case FM_SCHED_CONSTANT: break;
    case FM_SCHED_STEP:
      if (!(s->step_epochs > 0.0) || !isfinite(s->step_epochs))
        return fm_fail("optimizer: step schedule needs a finite step_epochs > 0 (got %g)",
                       s->step_epochs);
      if (!(s->gamma > 0.0) || !isfinite(s->gamma))
        return fm_fail("optimizer: step schedule needs a finite gamma > 0 (got %g)", s->gamma);
      break;
    case FM_SCHED_COSINE:
      if (!(s->total_epochs > 0.0) || !isfinite(s->total_epochs))
        return fm_fail("optimizer: cosine schedule needs a finite total_epochs > 0 (got %g)",
                       s->total_epochs);
      if (!(s->min_lr >= 0.0 && s->min_lr <= o->lr))
        return fm_fail("optimizer: cosine schedule needs min_lr in [0, lr = %g] (got %g)", o->lr,
                       s->min_lr);
      break;
    case FM_SCHED_ONECYCLE:
      if (!(s->total_epochs > 0.0) || !isfinite(s->total_epochs))
        return fm_fail("optimizer: one-cycle schedule needs a finite total_epochs > 0 (got %g)",
                       s->total_epochs);
      if (s->warmup_epochs != 0.0)
        return fm_fail("optimizer: the one-cycle schedule has its own warm-up (got warmup %g)",
                       s->warmup_epochs);
      break;
    default: return fm_fail("optimizer: unknown schedule %d", (int)s->kind);
  }
  if (!(s->warmup_epochs >= 0.0) || !isfinite(s->warmup_epochs) ||
      (s->kind == FM_SCHED_COSINE && s->warmup_epochs >= s->total_epochs && s->warmup_epochs > 0))
    return fm_fail("optimizer: warmup %g must be >= 0 and shorter than the %g epochs of the "
                   "schedule", s->warmup_epochs, s->total_epochs);
  if (o->decoupled != 0 && o->decoupled != 1)
    return fm_fail("optimizer: decoupled must be 0 or 1 (got %d)", o->decoupled);
  return FM_OK;
}

int64_t fm_optim_state_floats(const fm_optim *o, int64_t n) {
  int64_t floats;
  if (!fm_mul_within(n, o->kind == FM_OPTIM_ADAM ? 2 : o->momentum > 0.0 ? 1 : 0, INT64_MAX,
                     &floats))
    return -1;
  return floats;
}

/* A cosine-shaped move from a to b as t goes from 0 to 1. */
static double cosine_from(double a, double b, double t) {
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  return b + (a - b) * 0.5 * (1.0 + cos(M_PI * t));
}

double fm_schedule_lr(const fm_schedule *s, double lr, double epoch) {
  const double w = s->warmup_epochs;
  double rate;
  switch (s->kind) {
    case FM_SCHED_STEP: rate = lr * pow(s->gamma, floor(epoch / s->step_epochs)); break;
    case FM_SCHED_COSINE: {
      if (w > 0) {
        rate = cosine_from(lr, s->min_lr, (epoch - w) / (s->total_epochs - w));
        break;
      }
      /* (written out so that the rounding, and every trained weight, stays as it always was) */
      double e = epoch < s->total_epochs ? epoch : s->total_epochs;
      if (e < 0) e = 0;
      rate = s->min_lr + (lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * e / s->total_epochs));
      break;
    }
    case FM_SCHED_ONECYCLE: {
      const double up = 0.3 * s->total_epochs, start = lr / 25.0, end = lr / 25e4;
      return epoch < up ? cosine_from(start, lr, epoch / up)
                        : cosine_from(lr, end, (epoch - up) / (s->total_epochs - up));
    }
    default: rate = lr; break;
  }
  if (w > 0 && epoch < w) rate *= 0.01 + 0.99 * (epoch < 0 ? 0 : epoch) / w;
  return rate;
}

void fm_optim_begin(fm_optim *o, fm_optim_coef *c) {
  o->t++;
  c->lr = (float)fm_schedule_lr(&o->schedule, o->lr, o->epoch);
  c->momentum = (float)o->momentum;
  c->beta1 = (float)o->beta1;
  c->beta2 = (float)o->beta2;
  c->eps = (float)o->eps;
  c->one_minus_beta1 = (float)(1.0 - o->beta1);
  c->one_minus_beta2 = (float)(1.0 - o->beta2);
  c->correction1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)o->t)));
  c->correction2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)o->t)));
}

/* Each update computes the new values first and stores them only when they are all finite; an
 * element whose update would overflow keeps its old values and is counted, so the parameters
 * never hold an infinity or a NaN. */
static int64_t sgd_plain(const fm_optim_coef *c, float *p, const float *g, int64_t count,
                         float wd) {
  int64_t bad = 0;
  for (int64_t i = 0; i < count; i++) {
    float np = p[i] - c->lr * (g[i] + wd * p[i]);
    int ok = isfinite(np);
    p[i] = ok ? np : p[i];
    bad += !ok;
  }
  return bad;
}

static int64_t sgd_momentum(const fm_optim_coef *c, int nesterov, float *p, const float *g,
                            float *v, int64_t count, float wd) {
  int64_t bad = 0;
  for (int64_t i = 0; i < count; i++) {
    float gi = g[i] + wd * p[i];
    float nv = c->momentum * v[i] + gi;
    float np = p[i] - c->lr * (nesterov ? gi + c->momentum * nv : nv);
    int ok = isfinite(np) && isfinite(nv);
    v[i] = ok ? nv : v[i];
    p[i] = ok ? np : p[i];
    bad += !ok;
  }
  return bad;
}

static int64_t adam(const fm_optim_coef *c, float *p, const float *g, float *m, float *v,
                    int64_t count, float wd) {
  int64_t bad = 0;
  const float b1 = c->beta1, b2 = c->beta2, a1 = c->one_minus_beta1, a2 = c->one_minus_beta2;
  for (int64_t i = 0; i < count; i++) {
    float gi = g[i] + wd * p[i];
    float nm = b1 * m[i] + a1 * gi;
    float nv = b2 * v[i] + a2 * gi * gi;
    float np = p[i] - c->lr * (nm * c->correction1) / (sqrtf(nv * c->correction2) + c->eps);
    /* (the vector version computes the same expression in the same order) */
    int ok = isfinite(np) && isfinite(nv);
    m[i] = ok ? nm : m[i];
    v[i] = ok ? nv : v[i];
    p[i] = ok ? np : p[i];
    bad += !ok;
  }
  return bad;
}

/* ---- AVX-512 versions: the same operations in the same order (no fused multiply-add), so
 * they give exactly the bits of the loops above, sixteen at a time. ---- */

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,prfchw")))

/* Floats ahead of the loop to prefetch for writing (1 KB). */
#define PREFETCH_AHEAD 256
#define PREFETCH_W(addr) __builtin_prefetch((addr), 1, 3)

/* Lanes holding a finite value: x - x is 0 for finite x and NaN otherwise. */
AVX512 static inline __mmask16 finite_mask(__m512 x) {
  return _mm512_cmp_ps_mask(_mm512_sub_ps(x, x), _mm512_setzero_ps(), _CMP_EQ_OQ);
}

static inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
}

AVX512 static int64_t sgd_plain_avx512(const fm_optim_coef *c, float *p, const float *g,
                                       int64_t count, float wd) {
  int64_t bad = 0;
  const __m512 lr = _mm512_set1_ps(c->lr), vwd = _mm512_set1_ps(wd);
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail_mask(count - i);
    __m512 pv = _mm512_maskz_loadu_ps(m, p + i), gv = _mm512_maskz_loadu_ps(m, g + i);
    __m512 np = _mm512_sub_ps(pv, _mm512_mul_ps(lr, _mm512_add_ps(gv, _mm512_mul_ps(vwd, pv))));
    __mmask16 ok = finite_mask(np) & m;
    _mm512_mask_storeu_ps(p + i, ok, np);
    bad += __builtin_popcount(m & ~ok);
  }
  return bad;
}

AVX512 static int64_t sgd_momentum_avx512(const fm_optim_coef *c, int nesterov, float *p,
                                          const float *g, float *v, int64_t count, float wd) {
  int64_t bad = 0;
  const __m512 lr = _mm512_set1_ps(c->lr), mu = _mm512_set1_ps(c->momentum);
  const __m512 vwd = _mm512_set1_ps(wd);
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail_mask(count - i);
    __m512 pv = _mm512_maskz_loadu_ps(m, p + i), gv = _mm512_maskz_loadu_ps(m, g + i);
    __m512 vv = _mm512_maskz_loadu_ps(m, v + i);
    __m512 gi = _mm512_add_ps(gv, _mm512_mul_ps(vwd, pv));
    __m512 nv = _mm512_add_ps(_mm512_mul_ps(mu, vv), gi);
    __m512 step = nesterov ? _mm512_add_ps(gi, _mm512_mul_ps(mu, nv)) : nv;
    __m512 np = _mm512_sub_ps(pv, _mm512_mul_ps(lr, step));
    __mmask16 ok = finite_mask(np) & finite_mask(nv) & m;
    _mm512_mask_storeu_ps(v + i, ok, nv);
    _mm512_mask_storeu_ps(p + i, ok, np);
    bad += __builtin_popcount(m & ~ok);
  }
  return bad;
}

AVX512 static int64_t adam_avx512(const fm_optim_coef *c, float *p, const float *g, float *mo,
                                  float *ve, int64_t count, float wd) {
  int64_t bad = 0;
  const __m512 b1 = _mm512_set1_ps(c->beta1), b2 = _mm512_set1_ps(c->beta2);
  const __m512 a1 = _mm512_set1_ps(c->one_minus_beta1), a2 = _mm512_set1_ps(c->one_minus_beta2);
  const __m512 c1 = _mm512_set1_ps(c->correction1), c2 = _mm512_set1_ps(c->correction2);
  const __m512 lr = _mm512_set1_ps(c->lr), eps = _mm512_set1_ps(c->eps);
  const __m512 vwd = _mm512_set1_ps(wd);
  for (int64_t i = 0; i < count; i += 16) {
    __mmask16 m = tail_mask(count - i);
    /* Ask for the lines we are about to write well ahead: the parameters are also cached by the
     * other threads (they read them in the forward pass), and a store that finds a line shared
     * elsewhere otherwise waits for the invalidation one line at a time. */
    if (i + PREFETCH_AHEAD < count) {
      /* (never past the slice: that memory may be another thread's, which the prefetch for
       * writing would take from it) */
      PREFETCH_W(p + i + PREFETCH_AHEAD);
      PREFETCH_W(mo + i + PREFETCH_AHEAD);
      PREFETCH_W(ve + i + PREFETCH_AHEAD);
    }
    __m512 pv = _mm512_maskz_loadu_ps(m, p + i), gv = _mm512_maskz_loadu_ps(m, g + i);
    __m512 mv = _mm512_maskz_loadu_ps(m, mo + i), vv = _mm512_maskz_loadu_ps(m, ve + i);
    __m512 gi = _mm512_add_ps(gv, _mm512_mul_ps(vwd, pv));
    __m512 nm = _mm512_add_ps(_mm512_mul_ps(b1, mv), _mm512_mul_ps(a1, gi));
    __m512 nv = _mm512_add_ps(_mm512_mul_ps(b2, vv), _mm512_mul_ps(_mm512_mul_ps(a2, gi), gi));
    __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_mul_ps(nv, c2)), eps);
    __m512 np = _mm512_sub_ps(pv, _mm512_div_ps(_mm512_mul_ps(lr, _mm512_mul_ps(nm, c1)), den));
    __mmask16 ok = finite_mask(np) & finite_mask(nv) & m;
    _mm512_mask_storeu_ps(mo + i, ok, nm);
    _mm512_mask_storeu_ps(ve + i, ok, nv);
    _mm512_mask_storeu_ps(p + i, ok, np);
    bad += __builtin_popcount(m & ~ok);
  }
  return bad;
}

/* Four independent double accumulators of eight lanes: a single accumulator would make the loop
 * wait on each addition's latency. */
AVX512 static double sum_squares_avx512(const float *x, int64_t n) {
  __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; k++) {
      __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * k));
      acc[k] = _mm512_fmadd_pd(v, v, acc[k]);
    }
  double total = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(acc[0], acc[1]),
                                                    _mm512_add_pd(acc[2], acc[3])));
  for (; i < n; i++) total += (double)x[i] * x[i];
  return total;
}

double fm_sum_squares(const float *x, int64_t n) {
  if (fm_simd_avx512()) return sum_squares_avx512(x, n);
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) acc[k] += (double)x[i + k] * x[i + k];
  double total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  for (; i < n; i++) total += (double)x[i] * x[i];
  return total;
}

int64_t fm_optim_apply_slice(const fm_optim *o, const fm_optim_coef *c, float *p, const float *g,
                             float *s1, float *s2, int64_t count, float wd) {
  int vec = fm_simd_avx512();
  if (o->decoupled && wd != 0.0f) {
    /* AdamW: the parameter shrinks first, and the gradient stays the loss's own. */
    const float keep = 1.0f - c->lr * wd;
#pragma omp simd
    for (int64_t i = 0; i < count; i++) p[i] *= keep;
    wd = 0.0f;
  }
  if (o->kind == FM_OPTIM_ADAM)
    return vec ? adam_avx512(c, p, g, s1, s2, count, wd) : adam(c, p, g, s1, s2, count, wd);
  if (o->momentum > 0.0)
    return vec ? sgd_momentum_avx512(c, o->nesterov, p, g, s1, count, wd)
               : sgd_momentum(c, o->nesterov, p, g, s1, count, wd);
  return vec ? sgd_plain_avx512(c, p, g, count, wd) : sgd_plain(c, p, g, count, wd);
}

int64_t fm_optim_apply(const fm_optim *o, const fm_optim_coef *c, float *params, const float *grads,
                       float *state, int64_t n, int64_t first, int64_t count, float wd) {
  float *s1 = state ? state + first : NULL, *s2 = state ? state + n + first : NULL;
  return fm_optim_apply_slice(o, c, params + first, grads + first, s1, s2, count, wd);
}

int64_t fm_optim_step(fm_optim *o, float *params, const float *grads, float *state, int64_t n) {
  fm_optim_coef c;
  fm_optim_begin(o, &c);
  return fm_optim_apply(o, &c, params, grads, state, n, 0, n, (float)o->weight_decay);
}
