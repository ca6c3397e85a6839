/* fm_ops: the table of layer kinds — their fields as a layer description gives them, shape rules,
 * initialisation and passes (see fm_ops.h). */
#include "fm_ops.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_layers.h"


/* "layer 3 (conv2d): <what> (input 28x28x1)" */
__attribute__((format(printf, 3, 4))) static int fail_layer(int index, const fm_layer *L,
                                                             const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fm_fail("layer %d (%s): %s (input %dx%dx%d)", index + 1, fm_layer_kind_name(L->spec.kind),
                 msg, L->in_h, L->in_w, L->in_c);
}

/* The output shape, checked against the per-image limit. */
static int set_output(int index, fm_layer *L, int h, int w, int c) {
  int64_t hw = 0, size = 0;
  if (h < 1 || w < 1 || c < 1 || !fm_mul_within(h, w, FM_NET_MAX_IMAGE_FLOATS, &hw) ||
      !fm_mul_within(hw, c, FM_NET_MAX_IMAGE_FLOATS, &size))
    return fm_fail("layer %d (%s): an output of %dx%dx%d is over %lld floats per image", index + 1,
                   fm_layer_kind_name(L->spec.kind), h, w, c, (long long)FM_NET_MAX_IMAGE_FLOATS);
  L->out_h = h;
  L->out_w = w;
  L->out_c = c;
  L->out_size = size;
  return FM_OK;
}

static int check_params(int index, fm_layer *L) {
  if (L->n_weights + L->n_biases > FM_NET_MAX_PARAMS)
    return fail_layer(index, L, "it would have %lld parameters (at most %lld)",
                      (long long)(L->n_weights + L->n_biases), (long long)FM_NET_MAX_PARAMS);
  return FM_OK;
}

/* ---- dense ---- */

static int dense_infer(const fm_net *net, fm_layer *L, int index) {
  (void)net;
  const int units = L->spec.units;
  if (units < 1) return fm_fail("layer %d (dense): units must be positive (got %d)", index + 1, units);
  if (set_output(index, L, 1, 1, units) != FM_OK) return FM_ERR;
  if (!fm_mul_within(L->in_size, units, FM_NET_MAX_PARAMS, &L->n_weights))
    return fail_layer(index, L, "%lld inputs x %d units is over %lld weights, the most a network "
                      "may have", (long long)L->in_size, units, (long long)FM_NET_MAX_PARAMS);
  L->n_biases = L->spec.no_bias ? 0 : units;
  L->fan_in = (int)L->in_size;
  L->fan_out = units;
  L->macs = L->n_weights;
  return check_params(index, L);
}

static void weights_init(const fm_layer *L, fm_rng *r, int he, float *w, float *b, float *state) {
  (void)state;
  if (L->spec.init == FM_INIT_ZERO)
    memset(w, 0, sizeof(float) * (size_t)L->n_weights);
  else if (he)
    fm_init_he(r, w, L->n_weights, L->fan_in);
  else
    fm_init_glorot(r, w, L->n_weights, L->fan_in, L->fan_out);
  if (L->n_biases) memset(b, 0, sizeof(float) * (size_t)L->n_biases);
}

static size_t dense_scratch(const fm_layer *L, int shard_batch) {
  return fm_dense_scratch_floats(shard_batch, (int)L->in_size);
}

static const float *params_of(const fm_pass *p, const fm_layer *L) {
  return p->net->params + L->offset;
}

static void dense_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                          float *out) {
  (void)index;
  const float *w = params_of(p, L);
  fm_dense_forward(p->cnt, (int)L->in_size, L->out_c, in[0], w, L->n_biases ? w + L->n_weights : NULL,
                   out, L->fused_relu, p->scratch);
}

static void dense_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                           const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)out;
  if (!dx[0] && !gw) return;
  fm_dense_backward(p->cnt, (int)L->in_size, L->out_c, in[0], params_of(p, L), dy, dx[0], gw, gb,
                    p->scratch);
}

/* ---- conv2d ---- */

static int conv_infer(const fm_net *net, fm_layer *L, int index) {
  (void)net;
  const fm_layer_spec *s = &L->spec;
  if (s->units <= 0)
    return fm_fail("layer %d (conv2d): filters must be positive (got %d)", index + 1, s->units);
  if (fm_conv_geom_init(&L->conv, L->in_h, L->in_w, L->in_c, s->kh, s->kw, s->units, s->same,
                        s->stride, s->groups) != FM_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fm_error());
    return fm_fail("layer %d: %s", index + 1, msg);
  }
  if (set_output(index, L, L->conv.oh, L->conv.ow, s->units) != FM_OK) return FM_ERR;
  const fm_conv_geom *g = &L->conv;
  if (!fm_mul_within(g->k, s->units, FM_NET_MAX_PARAMS, &L->n_weights))
    return fail_layer(index, L, "a %dx%dx%d kernel with %d filters is over %lld weights, the most "
                      "a network may have", s->kh, s->kw, L->in_c / s->groups, s->units,
                      (long long)FM_NET_MAX_PARAMS);
  /* fm_conv_geom_init has held the patch length and matrix to INT32_MAX already. */
  if ((int64_t)g->oh * g->ow * g->k > FM_NET_MAX_IMAGE_FLOATS)
    return fail_layer(index, L, "the patch matrix of one image (%dx%d pixels x %d values) is over "
                      "%lld floats", g->oh, g->ow, g->k, (long long)FM_NET_MAX_IMAGE_FLOATS);
  if (!fm_mul_within((int64_t)g->oh * g->ow, L->n_weights, FM_NET_MAX_MACS, &L->macs))
    return fail_layer(index, L, "%dx%d pixels x %lld weights is over %lld multiply-adds per image",
                      g->oh, g->ow, (long long)L->n_weights, (long long)FM_NET_MAX_MACS);
  L->n_biases = s->no_bias ? 0 : s->units;
  L->fan_in = g->k;
  L->fan_out = (int)((int64_t)s->kh * s->kw * (s->units / s->groups)); /* at most n_weights */
  return check_params(index, L);
}

static size_t conv_scratch(const fm_layer *L, int shard_batch) {
  (void)shard_batch;
  return fm_conv_scratch_floats(&L->conv);
}

static void conv_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                         float *out) {
  (void)index;
  const float *w = params_of(p, L);
  fm_conv_forward(&L->conv, p->cnt, in[0], w, L->n_biases ? w + L->n_weights : NULL, out,
                  L->fused_relu, p->scratch);
}

static void conv_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                          const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)out;
  if (!dx[0] && !gw) return;
  fm_conv_backward(&L->conv, p->cnt, in[0], params_of(p, L), dy, dx[0], gw, gb, p->scratch);
}

/* ---- pooling ---- */

static int pool_infer(const fm_net *net, fm_layer *L, int index) {
  (void)net;
  int size = L->spec.pool;
  if (size < 1) return fm_fail("layer %d (%s): size must be positive (got %d)", index + 1,
                               fm_layer_kind_name(L->spec.kind), size);
  if (L->spec.stride != size)
    return fm_fail("layer %d (%s): stride %d must equal the window %d", index + 1,
                   fm_layer_kind_name(L->spec.kind), L->spec.stride, size);
  if (L->in_h < size || L->in_w < size)
    return fail_layer(index, L, "input smaller than the window");
  return set_output(index, L, L->in_h / size, L->in_w / size, L->in_c);
}

static void maxpool_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                            float *out) {
  (void)index;
  fm_maxpool_forward(p->cnt, L->in_h, L->in_w, L->in_c, L->spec.pool, in[0], out);
}

static void maxpool_backward(const fm_pass *p, const fm_layer *L, int index,
                             const float *const *in, const float *out, float *dy,
                             float *const *dx, float *gw, float *gb) {
  (void)index, (void)out, (void)gw, (void)gb;
  if (!dx[0]) return;
  /* After a ReLU only it reads (the reference CNN's conv -> ReLU -> pool), the ReLU's backward
   * pass is folded in: one pass over the larger tensor instead of two. */
  fm_maxpool_backward_relu(p->cnt, L->in_h, L->in_w, L->in_c, L->spec.pool, in[0], dy, dx[0],
                           L->relu_folded);
}

static void avgpool_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                            float *out) {
  (void)index;
  fm_avgpool_forward(p->cnt, L->in_h, L->in_w, L->in_c, L->spec.pool, in[0], out);
}

static void avgpool_backward(const fm_pass *p, const fm_layer *L, int index,
                             const float *const *in, const float *out, float *dy,
                             float *const *dx, float *gw, float *gb) {
  (void)index, (void)in, (void)out, (void)gw, (void)gb;
  if (dx[0]) fm_avgpool_backward(p->cnt, L->in_h, L->in_w, L->in_c, L->spec.pool, dy, dx[0]);
}

static int gap_infer(const fm_net *net, fm_layer *L, int index) {
  (void)net;
  return set_output(index, L, 1, 1, L->in_c);
}

static void gap_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                        float *out) {
  (void)index;
  fm_global_avgpool_forward(p->cnt, L->in_h * L->in_w, L->in_c, in[0], out);
}

static void gap_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                         const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)in, (void)out, (void)gw, (void)gb;
  if (dx[0]) fm_global_avgpool_backward(p->cnt, L->in_h * L->in_w, L->in_c, dy, dx[0]);
}

/* ---- element-wise: ReLU, ReLU6, dropout, flatten ---- */

static int same_shape_infer(const fm_net *net, fm_layer *L, int index) {
  (void)net;
  return set_output(index, L, L->in_h, L->in_w, L->in_c);
}

static int flatten_infer(const fm_net *net, fm_layer *L, int index) {
  (void)net;
  return set_output(index, L, 1, 1, (int)L->in_size);
}

static void relu_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                         float *out) {
  (void)index;
  /* Applied by the product before it when that layer's only consumer is this one. */
  if (L->in[0] >= 0 && p->net->layer[L->in[0]].fused_relu) return;
  fm_relu_forward((int64_t)p->cnt * L->out_size, in[0], out);
}

static void relu_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                          const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)in, (void)gw, (void)gb;
  if (dx[0]) fm_relu_backward((int64_t)p->cnt * L->out_size, out, dy, dx[0]);
}

static void relu6_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                          float *out) {
  (void)index;
  fm_relu6_forward((int64_t)p->cnt * L->out_size, in[0], out);
}

static void relu6_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                           const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)in, (void)gw, (void)gb;
  if (dx[0]) fm_relu6_backward((int64_t)p->cnt * L->out_size, out, dy, dx[0]);
}

static int dropout_infer(const fm_net *net, fm_layer *L, int index) {
  if (!(L->spec.rate >= 0.0f && L->spec.rate < 1.0f))
    return fm_fail("layer %d (dropout): rate must be in [0, 1) (got %g)", index + 1,
                   (double)L->spec.rate);
  return same_shape_infer(net, L, index);
}

static float *dropout_mask(const fm_pass *p, const fm_layer *L) {
  return p->w->base + p->w->shard_floats * p->s + p->w->act_at +
         (size_t)L->mask_offset * p->w->shard_batch;
}

static void dropout_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                            float *out) {
  const int64_t size = L->out_size;
  if (p->train && L->spec.rate > 0.0f) {
    float *mask = dropout_mask(p, L);
    for (int j = 0; j < p->cnt; j++)
      fm_dropout_mask(fm_net_mask_key(p->seed, index, p->first + j), size, L->spec.rate,
                      mask + j * size);
    fm_dropout_apply(p->cnt * size, in[0], mask, out);
  } else if (out != in[0]) {
    memcpy(out, in[0], sizeof(float) * (size_t)(p->cnt * size));
  }
}

static void dropout_backward(const fm_pass *p, const fm_layer *L, int index,
                             const float *const *in, const float *out, float *dy,
                             float *const *dx, float *gw, float *gb) {
  (void)index, (void)in, (void)out, (void)gw, (void)gb;
  if (!dx[0]) return;
  const int64_t count = (int64_t)p->cnt * L->out_size;
  if (p->train && L->spec.rate > 0.0f)
    fm_dropout_apply(count, dy, dropout_mask(p, L), dx[0]);
  else if (dx[0] != dy)
    memcpy(dx[0], dy, sizeof(float) * (size_t)count);
}

/* A view of its input: nothing to compute forward; backward the gradient passes unchanged. */
static void flatten_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                            float *out) {
  (void)p, (void)L, (void)index, (void)in, (void)out;
}

static void copy_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                          const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)in, (void)out, (void)gw, (void)gb;
  for (int k = 0; k < L->n_in; k++)
    if (dx[k] && dx[k] != dy)
      memcpy(dx[k], dy, sizeof(float) * (size_t)p->cnt * (size_t)L->out_size);
}

/* ---- add ---- */

static int add_infer(const fm_net *net, fm_layer *L, int index) {
  for (int k = 1; k < L->n_in; k++) {
    int h = net->in_h, w = net->in_w, c = net->in_c;
    if (L->in[k] >= 0) {
      const fm_layer *I = &net->layer[L->in[k]];
      h = I->out_h, w = I->out_w, c = I->out_c;
    }
    if (h != L->in_h || w != L->in_w || c != L->in_c)
      return fm_fail("layer %d (add): input %d is %dx%dx%d but input 1 is %dx%dx%d", index + 1,
                     k + 1, h, w, c, L->in_h, L->in_w, L->in_c);
  }
  return same_shape_infer(net, L, index);
}

static void add_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                        float *out) {
  (void)index;
  fm_add_forward((int64_t)p->cnt * L->out_size, L->n_in, in, out);
}

/* ---- batch normalisation ----
 * The workspace keeps six vectors of C floats per layer (fm_net_bn_stats): the batch mean and
 * 1/std, then a and b of the forward pass, then p and q of the backward pass (fm_layers.h). */

static int bn_infer(const fm_net *net, fm_layer *L, int index) {
  const fm_layer_spec *s = &L->spec;
  if (!(s->eps > 0.0f && s->eps <= 1.0f))
    return fm_fail("layer %d (batchnorm): eps must be in (0, 1] (got %g)", index + 1, (double)s->eps);
  if (!(s->momentum >= 0.0f && s->momentum < 1.0f))
    return fm_fail("layer %d (batchnorm): momentum must be in [0, 1) (got %g)", index + 1,
                   (double)s->momentum);
  if (s->init != FM_INIT_AUTO && s->init != FM_INIT_ZERO)
    return fm_fail("layer %d (batchnorm): its scale starts at 1, or at 0 with init \"zeros\"",
                   index + 1);
  if (same_shape_infer(net, L, index) != FM_OK) return FM_ERR;
  L->n_weights = L->out_c;
  L->n_biases = L->out_c;
  L->n_state = 2 * (int64_t)L->out_c;
  return FM_OK;
}

static void bn_init(const fm_layer *L, fm_rng *r, int he, float *w, float *b, float *state) {
  (void)r, (void)he;
  const int c = L->out_c;
  for (int i = 0; i < c; i++) {
    w[i] = L->spec.init == FM_INIT_ZERO ? 0.0f : 1.0f;
    b[i] = 0.0f;
    state[i] = 0.0f;     /* running mean */
    state[c + i] = 1.0f; /* running variance */
  }
}

static int bn_partial_doubles(const fm_layer *L) { return 2 * L->out_c; }

static int64_t bn_rows(const fm_layer *L) { return (int64_t)L->out_h * L->out_w; }

/* Inference: a and b from the running statistics, into the shard's scratch. */
static void bn_running_coefs(const fm_pass *p, const fm_layer *L, float *a, float *b) {
  const float *scale = params_of(p, L), *shift = scale + L->out_c;
  const float *mean = p->net->state + L->state_offset, *var = mean + L->out_c;
  for (int c = 0; c < L->out_c; c++) {
    float inv = (float)(1.0 / sqrt((double)var[c] + L->spec.eps));
    a[c] = scale[c] * inv;
    b[c] = shift[c] - mean[c] * a[c];
  }
}

static size_t bn_scratch(const fm_layer *L, int shard_batch) {
  (void)shard_batch;
  return 4 * (size_t)L->out_c;
}

static void bn_forward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                       float *out) {
  (void)index;
  const int c = L->out_c;
  const float *a, *b;
  if (p->train) {
    const float *st = fm_net_bn_stats(p->net, p->w, L);
    a = st + 2 * c;
    b = st + 3 * c;
  } else {
    bn_running_coefs(p, L, p->scratch, p->scratch + c);
    a = p->scratch;
    b = p->scratch + c;
  }
  fm_bn_apply((int64_t)p->cnt * bn_rows(L), c, in[0], a, b, out, L->fused_relu);
}

static void bn_fwd_partial(const fm_pass *p, const fm_layer *L, const float *in) {
  const int c = L->out_c;
  const int64_t rows = bn_rows(L);
  for (int j = 0; j < p->cnt; j++) {
    double *sums = p->partial + (size_t)(p->first + j) * 2 * c;
    memset(sums, 0, sizeof(double) * 2 * (size_t)c);
    fm_bn_sums(rows, c, in + (size_t)j * rows * c, sums);
  }
}

static void bn_fwd_combine(const fm_net *net, const fm_work *w, const fm_layer *L, int n,
                           const double *partial) {
  const int c = L->out_c;
  const double m = (double)n * (double)bn_rows(L);
  float *st = fm_net_bn_stats(net, w, L);
  const float *scale = net->params + L->offset, *shift = scale + c;
  float *run_mean = net->state + L->state_offset, *run_var = run_mean + c;
  const float mom = L->spec.momentum;
  for (int ch = 0; ch < c; ch++) {
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) {
      s += partial[(size_t)i * 2 * c + ch];
      ss += partial[(size_t)i * 2 * c + c + ch];
    }
    double mean = s / m, var = ss / m - mean * mean;
    if (var < 0.0) var = 0.0; /* rounding */
    double inv = 1.0 / sqrt(var + L->spec.eps);
    st[ch] = (float)mean;
    st[c + ch] = (float)inv;
    st[2 * c + ch] = (float)(scale[ch] * inv);
    st[3 * c + ch] = (float)(shift[ch] - mean * scale[ch] * inv);
    /* The running variance is the unbiased estimate, as PyTorch and Keras keep it. */
    double unbiased = m > 1.0 ? var * m / (m - 1.0) : var;
    run_mean[ch] = (float)(mom * run_mean[ch] + (1.0 - mom) * mean);
    run_var[ch] = (float)(mom * run_var[ch] + (1.0 - mom) * unbiased);
  }
}

static void bn_bwd_partial(const fm_pass *p, const fm_layer *L, const float *in, const float *dy) {
  const int c = L->out_c;
  const int64_t rows = bn_rows(L);
  for (int j = 0; j < p->cnt; j++) {
    double *sums = p->partial + (size_t)(p->first + j) * 2 * c;
    memset(sums, 0, sizeof(double) * 2 * (size_t)c);
    size_t at = (size_t)j * rows * c;
    fm_bn_grad_sums(rows, c, in + at, dy + at, sums);
  }
}

/* The sums of dy and dy * xhat give the shift's and the scale's gradients and the backward
 * coefficients: dx = a * dy + p * x + q with p = -a * inv * sum(dy xhat) / m and
 * q = -a * sum(dy) / m - p * mean. */
static void bn_bwd_combine(const fm_net *net, const fm_work *w, const fm_layer *L, int n,
                           const double *partial, float *gw, float *gb) {
  const int c = L->out_c;
  const double m = (double)n * (double)bn_rows(L);
  float *st = fm_net_bn_stats(net, w, L);
  for (int ch = 0; ch < c; ch++) {
    double sdy = 0.0, sdyx = 0.0;
    for (int i = 0; i < n; i++) {
      sdy += partial[(size_t)i * 2 * c + ch];
      sdyx += partial[(size_t)i * 2 * c + c + ch];
    }
    double mean = st[ch], inv = st[c + ch], a = st[2 * c + ch];
    double sdy_xhat = inv * (sdyx - mean * sdy);
    if (gw) gw[ch] = (float)sdy_xhat;
    if (gb) gb[ch] = (float)sdy;
    double pc = -a * inv * sdy_xhat / m;
    st[4 * c + ch] = (float)pc;
    st[5 * c + ch] = (float)(-a * sdy / m - pc * mean);
  }
}

static void bn_backward(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                        const float *out, float *dy, float *const *dx, float *gw, float *gb) {
  (void)index, (void)out, (void)gw, (void)gb;
  if (!dx[0]) return;
  const int c = L->out_c;
  const float *a, *pc, *q;
  if (p->train) {
    const float *st = fm_net_bn_stats(p->net, p->w, L);
    a = st + 2 * c;
    pc = st + 4 * c;
    q = st + 5 * c;
  } else {
    /* Inference statistics are constants: dx = a * dy. */
    float *s = p->scratch;
    bn_running_coefs(p, L, s, s + c);
    memset(s + 2 * c, 0, sizeof(float) * 2 * (size_t)c);
    a = s;
    pc = s + 2 * c;
    q = s + 3 * c;
  }
  fm_bn_backward((int64_t)p->cnt * bn_rows(L), c, in[0], dy, a, pc, q, dx[0]);
}

/* ---- the table ---- */

#define INPLACE FM_OP_INPLACE
#define READS_OUT FM_OP_READS_OUTPUT
#define DX_ALIAS FM_OP_DX_ALIAS
#define FUSES FM_OP_FUSES_RELU
#define PARAMS FM_OP_PARAMS

static const fm_op ops[FM_LAYER_KIND_END] = {
    [FM_LAYER_DENSE] = {PARAMS | FUSES, dense_infer, weights_init, dense_scratch, dense_forward,
                        dense_backward},
    [FM_LAYER_CONV2D] = {PARAMS | FUSES, conv_infer, weights_init, conv_scratch, conv_forward,
                         conv_backward},
    [FM_LAYER_MAXPOOL] = {0, pool_infer, NULL, NULL, maxpool_forward, maxpool_backward},
    [FM_LAYER_RELU] = {INPLACE | READS_OUT | DX_ALIAS, same_shape_infer, NULL, NULL, relu_forward,
                       relu_backward},
    [FM_LAYER_DROPOUT] = {DX_ALIAS, dropout_infer, NULL, NULL, dropout_forward, dropout_backward},
    [FM_LAYER_FLATTEN] = {DX_ALIAS, flatten_infer, NULL, NULL, flatten_forward, copy_backward},
    [FM_LAYER_BATCHNORM] = {PARAMS | FUSES | DX_ALIAS, bn_infer, bn_init, bn_scratch, bn_forward,
                            bn_backward, bn_fwd_partial, bn_fwd_combine, bn_bwd_partial,
                            bn_bwd_combine, bn_partial_doubles},
    [FM_LAYER_ADD] = {INPLACE | DX_ALIAS, add_infer, NULL, NULL, add_forward, copy_backward},
    [FM_LAYER_AVGPOOL] = {0, pool_infer, NULL, NULL, avgpool_forward, avgpool_backward},
    [FM_LAYER_GLOBAL_AVGPOOL] = {0, gap_infer, NULL, NULL, gap_forward, gap_backward},
    [FM_LAYER_RELU6] = {INPLACE | READS_OUT | DX_ALIAS, same_shape_infer, NULL, NULL,
                        relu6_forward, relu6_backward},
};

const fm_op *fm_op_of(fm_layer_kind kind) {
  if (kind < 1 || kind >= FM_LAYER_KIND_END) return NULL;
  return &ops[kind];
}

/* ---- the fields of a layer description ---- */

#define F(field) offsetof(fm_layer_spec, field)
#define INIT_FIELD {"init", 0, FM_FIELD_INIT, F(init), 0, 0}
#define END_FIELDS {NULL, 0, 0, 0, 0, 0}

static const fm_field dense_fields[] = {{"units", 2, FM_FIELD_INT, F(units), 1, FM_NET_MAX_DIM},
                                        {"bias", 0, FM_FIELD_BIAS, F(no_bias), 0, 1},
                                        INIT_FIELD,
                                        END_FIELDS};
static const fm_field conv_fields[] = {{"filters", 2, FM_FIELD_INT, F(units), 1, FM_NET_MAX_DIM},
                                       {"kernel", 3, FM_FIELD_KERNEL, F(kh), 1, FM_NET_MAX_DIM},
                                       {"padding", 0, FM_FIELD_PADDING, F(same), 0, 1},
                                       {"stride", 0, FM_FIELD_INT, F(stride), 1, FM_NET_MAX_DIM},
                                       {"groups", 0, FM_FIELD_INT, F(groups), 1, FM_NET_MAX_DIM},
                                       {"bias", 0, FM_FIELD_BIAS, F(no_bias), 0, 1},
                                       INIT_FIELD,
                                       END_FIELDS};
static const fm_field pool_fields[] = {{"size", 2, FM_FIELD_INT, F(pool), 1, FM_NET_MAX_DIM},
                                       {"stride", 0, FM_FIELD_INT, F(stride), 1, FM_NET_MAX_DIM},
                                       END_FIELDS};
static const fm_field dropout_fields[] = {{"rate", 2, FM_FIELD_FLOAT, F(rate), 0, 1}, END_FIELDS};
static const fm_field bn_fields[] = {{"eps", 0, FM_FIELD_FLOAT, F(eps), 1e-12, 1},
                                     {"momentum", 0, FM_FIELD_FLOAT, F(momentum), 0, 1},
                                     INIT_FIELD,
                                     END_FIELDS};
static const fm_field no_fields[] = {END_FIELDS};

static const fm_layer_type types[FM_LAYER_KIND_END] = {
    [FM_LAYER_DENSE] = {FM_LAYER_DENSE, "dense", "Dense", 1, 1, dense_fields},
    [FM_LAYER_CONV2D] = {FM_LAYER_CONV2D, "conv2d", "Conv2D", 1, 1, conv_fields},
    [FM_LAYER_MAXPOOL] = {FM_LAYER_MAXPOOL, "maxpool", "MaxPooling2D", 1, 1, pool_fields},
    [FM_LAYER_RELU] = {FM_LAYER_RELU, "relu", "ReLU", 1, 1, no_fields},
    [FM_LAYER_DROPOUT] = {FM_LAYER_DROPOUT, "dropout", "Dropout", 1, 1, dropout_fields},
    [FM_LAYER_FLATTEN] = {FM_LAYER_FLATTEN, "flatten", "Flatten", 1, 1, no_fields},
    [FM_LAYER_BATCHNORM] = {FM_LAYER_BATCHNORM, "batchnorm", "BatchNormalization", 1, 1, bn_fields},
    [FM_LAYER_ADD] = {FM_LAYER_ADD, "add", "Add", 2, FM_NET_MAX_INPUTS, no_fields},
    [FM_LAYER_AVGPOOL] = {FM_LAYER_AVGPOOL, "avgpool", "AveragePooling2D", 1, 1, pool_fields},
    [FM_LAYER_GLOBAL_AVGPOOL] = {FM_LAYER_GLOBAL_AVGPOOL, "global_avgpool",
                                 "GlobalAveragePooling2D", 1, 1, no_fields},
    [FM_LAYER_RELU6] = {FM_LAYER_RELU6, "relu6", "ReLU6", 1, 1, no_fields},
};

const fm_layer_type *fm_layer_type_of(fm_layer_kind kind) {
  if (kind < 1 || kind >= FM_LAYER_KIND_END) return NULL;
  return &types[kind];
}

const fm_layer_type *fm_layer_type_named(const char *name) {
  for (int k = 1; k < FM_LAYER_KIND_END; k++)
    if (strcmp(types[k].name, name) == 0) return &types[k];
  return NULL;
}

const char *fm_layer_kind_name(fm_layer_kind kind) {
  const fm_layer_type *t = fm_layer_type_of(kind);
  return t ? t->name : "unknown";
}

const char *fm_layer_type_name(fm_layer_kind kind) {
  const fm_layer_type *t = fm_layer_type_of(kind);
  return t ? t->display : "unknown";
}

fm_layer_kind fm_layer_kind_of(const char *name) {
  const fm_layer_type *t = fm_layer_type_named(name);
  return t ? t->kind : (fm_layer_kind)0;
}

/* ---- checking a spec against its kind's fields ----
 * Every field of fm_layer_spec, and whether a kind uses it: a field its kind does not use must be
 * 0, so that a mistaken spec (or a corrupt file) is refused rather than half read; a used one is 0
 * (its default, where it has one) or within the range the kind's table gives. */
static const struct {
  const char *name;
  size_t offset;
  int is_float;
} spec_fields[] = {
    {"units", F(units), 0},   {"kernel height", F(kh), 0}, {"kernel width", F(kw), 0},
    {"padding", F(same), 0},  {"pool size", F(pool), 0},    {"stride", F(stride), 0},
    {"groups", F(groups), 0}, {"bias", F(no_bias), 0},      {"rate", F(rate), 1},
    {"eps", F(eps), 1},       {"momentum", F(momentum), 1}, {"init", F(init), 0},
};

/* The kind's field that sets the spec field at `offset` (a kernel sets kh and kw). */
static const fm_field *field_for(const fm_layer_type *t, size_t offset) {
  for (const fm_field *f = t->fields; f->name; f++)
    if (f->offset == offset || (f->type == FM_FIELD_KERNEL && offset == F(kw))) return f;
  return NULL;
}

int fm_layer_spec_check(int index, const fm_layer_spec *s) {
  const fm_layer_type *t = fm_layer_type_of(s->kind);
  if (!t)
    return fm_fail("layer %d: unknown layer kind %d (expected 1 to %d)", index + 1, (int)s->kind,
                   FM_LAYER_KINDS);
  for (size_t k = 0; k < sizeof spec_fields / sizeof spec_fields[0]; k++) {
    const char *at = (const char *)s + spec_fields[k].offset;
    double v;
    if (spec_fields[k].is_float) {
      float fv;
      memcpy(&fv, at, sizeof fv);
      v = fv;
    } else {
      int iv;
      memcpy(&iv, at, sizeof iv);
      v = iv;
    }
    const fm_field *f = field_for(t, spec_fields[k].offset);
    if (!f) {
      if (v != 0.0)
        return fm_fail("layer %d (%s): %s is not used by %s layers and must be 0 (got %.9g)",
                       index + 1, t->name, spec_fields[k].name, t->name, v);
      continue;
    }
    const char *name = f->type == FM_FIELD_KERNEL ? spec_fields[k].name : f->name;
    if (spec_fields[k].offset == F(rate)) {
      if (!(v >= 0.0 && v < 1.0))
        return fm_fail("layer %d (%s): rate must be in [0, 1) (got %g)", index + 1, t->name, v);
      continue;
    }
    double hi = f->type == FM_FIELD_INIT ? FM_INIT_ZERO : f->hi;
    /* 0 is the default of every field but a count of units or filters */
    int zero_ok = spec_fields[k].offset != F(units);
    if ((v == 0.0 && zero_ok) || (v >= f->lo && v <= hi)) continue;
    if (spec_fields[k].is_float)
      return fm_fail("layer %d (%s): %s must be %g to %g (got %g)", index + 1, t->name, name,
                     zero_ok ? 0.0 : f->lo, hi, v);
    return fm_fail("layer %d (%s): %s must be %lld to %lld (got %lld)", index + 1, t->name, name,
                   (long long)(zero_ok ? 0 : f->lo), (long long)hi, (long long)v);
  }
  if (s->kind == FM_LAYER_CONV2D && s->kh == 0)
    return fm_fail("layer %d (conv2d): the kernel size must be given", index + 1);
  if (s->n_inputs < 0 || s->n_inputs > FM_NET_MAX_INPUTS)
    return fm_fail("layer %d (%s): %d inputs (0 for the layer before, or 1 to %d)", index + 1,
                   t->name, s->n_inputs, FM_NET_MAX_INPUTS);
  for (int k = s->n_inputs; k < FM_NET_MAX_INPUTS; k++)
    if (s->inputs[k] != 0)
      return fm_fail("layer %d (%s): input %d is given (%d) beyond its %d inputs", index + 1,
                     t->name, k + 1, s->inputs[k], s->n_inputs);
  return FM_OK;
}
