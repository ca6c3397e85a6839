/* fm_net_mp: the model-parallel training step for networks of dense layers (see fm_net_mp.h).
 *
 * Block t of a dense layer is a contiguous range of its weight rows, the input units
 * [t*in/T, (t+1)*in/T), plus the bias entries [t*out/T, (t+1)*out/T); a phase's item t always
 * handles block t, whatever thread runs it, so results depend on the thread count T only.
 *  - forward, layer l, block t: its input columns are the sum of the previous layer's partial
 *    outputs over the blocks (in block order) plus that layer's bias, then its ReLU and dropout;
 *    its partial output is those columns times its weight rows (the whole batch);
 *  - loss: the last layer's partial outputs summed into logits, cross-entropy over a part of
 *    the images per block;
 *  - backward, layer l, block t: the weight gradient of its rows and the bias gradient of its
 *    entries (no sum between blocks needed), the input gradient of its columns (complete: a row
 *    block of the weights gives whole columns of it), the previous layer's ReLU and dropout
 *    backward on those columns, then the update of its weights, which occupy one contiguous range
 *    of the parameters, gradients and optimizer state and so stream well.
 * Workspace (whole batch): the gathered input images, every layer's output (the shards' per-layer
 * offsets with the batch in place of a shard's images), two sets of per-block partial outputs,
 * two output-gradient buffers, and per-block product scratch. */
#include "fm_net_mp.h"

#include <math.h>
#include <string.h>

#include "fm_gemm.h"
#include "fm_layers.h"
#include "fm_ops.h"
#include "fm_optim.h"
#include "fm_threads.h"

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

int fm_net_mp_applies(const fm_net *net) {
  int dense = 0;
  if (!net->chain || net->n_layers > FM_NET_MP_MAX_LAYERS) return 0;
  for (int l = 0; l < net->n_layers; l++) {
    switch (net->layer[l].spec.kind) {
      case FM_LAYER_DENSE:
        if (net->layer[l].n_biases != net->layer[l].out_c) return 0;
        dense = 1;
        break;
      case FM_LAYER_FLATTEN:
        if (dense) return 0;
        break;
      case FM_LAYER_RELU:
      case FM_LAYER_DROPOUT:
        if (!dense) return 0;
        break;
      default: return 0;
    }
  }
  /* The logits must be a dense layer's own output (the loss phase sums them). */
  return dense && net->layer[net->n_layers - 1].spec.kind == FM_LAYER_DENSE;
}

/* ---- layout ---- */

typedef struct mp_layout {
  size_t x;                 /* gathered input images */
  size_t act;               /* outputs and dropout masks of the batch */
  size_t dy[2];             /* output gradients, alternating between layers */
  size_t part, part_stride; /* partial outputs, two sets of one per block */
  size_t scratch, scratch_stride;
  size_t total;
} mp_layout;

static void layout(const fm_net *net, int batch, int T, mp_layout *m) {
  size_t at = 0;
  m->x = at;
  at += round16((size_t)batch * net->in_size);
  m->act = at;
  at += round16((size_t)batch * net->act_floats);
  for (int k = 0; k < 2; k++) {
    m->dy[k] = at;
    at += round16((size_t)batch * net->max_size);
  }
  m->part = at;
  m->part_stride = round16((size_t)batch * net->max_size);
  at += m->part_stride * T * 2;
  m->scratch = at;
  m->scratch_stride = round16(FM_GEMM_SCRATCH_FLOATS);
  at += m->scratch_stride * T;
  m->total = at;
}

size_t fm_net_mp_floats(const fm_net *net, int batch, int shards) {
  mp_layout m;
  layout(net, batch, shards, &m);
  return m.total;
}

/* ---- one step ---- */

typedef struct mp_ctx {
  fm_net *net;
  fm_work *w;
  mp_layout m;
  int T, n;
  const float *x;       /* the caller's images, or NULL: gather them from d */
  const fm_dataset *d;
  const int32_t *rows;
  const uint8_t *y;
  uint64_t seed;
  fm_optim *opt;        /* NULL: gradient only */
  float *state;
  fm_optim_coef coef;
  int l;                /* the dense layer of the current phase */
  int prev;             /* the dense layer before it, or -1 */
  int parity;           /* which set of partial outputs / output gradients this phase writes */
  double sq[FM_NET_MAX_SHARDS];
  int64_t bad[FM_NET_MAX_SHARDS];
  double loss[FM_NET_MAX_SHARDS];
  int correct[FM_NET_MAX_SHARDS];
} mp_ctx;

static void block(int units, int T, int t, int *u0, int *u1) {
  *u0 = (int)((int64_t)t * units / T);
  *u1 = (int)((int64_t)(t + 1) * units / T);
}

static float *input(const mp_ctx *c) {
  return c->x ? (float *)c->x : c->w->base + c->m.x;
}

/* Layer l's output for the batch (the input itself for a flatten view of it). */
static float *out_of(const mp_ctx *c, int l) {
  int64_t off = c->net->layer[l].act_offset;
  if (off < 0) return input(c);
  return c->w->base + c->m.act + (size_t)off * c->w->batch;
}

static float *mask_of(const mp_ctx *c, int l) {
  return c->w->base + c->m.act + (size_t)c->net->layer[l].mask_offset * c->w->batch;
}

static float *scratch_of(const mp_ctx *c, int t) {
  return c->w->base + c->m.scratch + c->m.scratch_stride * t;
}

static float *part_of(const mp_ctx *c, int set, int t) {
  return c->w->base + c->m.part + c->m.part_stride * ((size_t)set * c->T + t);
}

static float *dy_of(const mp_ctx *c, int set) { return c->w->base + c->m.dy[set]; }

/* The layers from dense layer l's output to the next dense layer's input: the last of them. */
static int tail_end(const fm_net *net, int l) {
  int k = l + 1;
  while (k < net->n_layers && net->layer[k].spec.kind != FM_LAYER_DENSE) k++;
  return k - 1;
}

/* Columns [u0, u1) of dense layer l's output for every image: the sum of its blocks' partial
 * outputs (set `set`) plus the bias, then the ReLU and dropout after it. */
static void assemble_columns(const mp_ctx *c, int l, int set, int u0, int u1) {
  const fm_net *net = c->net;
  const fm_layer *L = &net->layer[l];
  const int width = L->out_c, nu = u1 - u0;
  const float *b = net->params + L->offset + L->n_weights;
  float *out = out_of(c, l);
  for (int i = 0; i < c->n; i++) {
    float *row = out + (size_t)i * width + u0;
    const float *p0 = part_of(c, set, 0) + (size_t)i * width + u0;
#pragma omp simd
    for (int j = 0; j < nu; j++) row[j] = p0[j];
    for (int s = 1; s < c->T; s++) {
      const float *p = part_of(c, set, s) + (size_t)i * width + u0;
#pragma omp simd
      for (int j = 0; j < nu; j++) row[j] += p[j];
    }
#pragma omp simd
    for (int j = 0; j < nu; j++) row[j] += b[u0 + j];
  }
  for (int k = l + 1; k <= tail_end(net, l); k++) {
    const fm_layer *K = &net->layer[k];
    const float *in = out_of(c, k - 1);
    float *o = out_of(c, k);
    for (int i = 0; i < c->n; i++) {
      size_t at = (size_t)i * width + u0;
      if (K->spec.kind == FM_LAYER_RELU) {
        fm_relu_forward(nu, in + at, o + at);
      } else if (K->spec.kind == FM_LAYER_DROPOUT) {
        if (K->spec.rate > 0.0f) {
          float *mask = mask_of(c, k) + at;
          fm_dropout_mask_at(fm_net_mask_key(c->seed, k, i), u0, nu, K->spec.rate, mask);
          fm_dropout_apply(nu, in + at, mask, o + at);
        } else {
          memcpy(o + at, in + at, sizeof(float) * (size_t)nu);
        }
      }
    }
  }
}

/* The backward passes of the ReLU and dropout after dense layer l, last first, on columns
 * [u0, u1) of dy (the gradient of the last of them). */
static void tail_backward(const mp_ctx *c, int l, int u0, int u1, float *dy) {
  const fm_net *net = c->net;
  const int width = net->layer[l].out_c, nu = u1 - u0;
  for (int k = tail_end(net, l); k > l; k--) {
    const fm_layer *K = &net->layer[k];
    for (int i = 0; i < c->n; i++) {
      size_t at = (size_t)i * width + u0;
      if (K->spec.kind == FM_LAYER_RELU)
        fm_relu_backward(nu, out_of(c, k) + at, dy + at, dy + at);
      else if (K->spec.kind == FM_LAYER_DROPOUT && K->spec.rate > 0.0f)
        fm_dropout_apply(nu, dy + at, mask_of(c, k) + at, dy + at);
    }
  }
}

/* Columns [u0, u1) of the images, scaled from the uint8 pixels as fm_dataset_gather does. */
static void gather_columns(const mp_ctx *c, int u0, int u1, int labels) {
  const fm_dataset *d = c->d;
  const int64_t p = fm_dataset_pixels(d);
  float *x = c->w->base + c->m.x;
  for (int i = 0; i < c->n; i++) {
    int64_t r = fm_dataset_row(d, c->rows[i]);
    const uint8_t *src = d->pixels + r * p;
    float *dst = x + (size_t)i * p;
#pragma omp simd
    for (int j = u0; j < u1; j++) dst[j] = (float)src[j] / 255.0f;
    if (labels) c->w->labels[i] = d->labels[r];
  }
}

static void forward_item(void *ctx, int t) {
  mp_ctx *c = ctx;
  const fm_layer *L = &c->net->layer[c->l];
  const int in = (int)L->in_size;
  unsigned fp = fm_fp_enter();
  int r0, r1;
  block(in, c->T, t, &r0, &r1);
  if (c->prev < 0) {
    if (!c->x) gather_columns(c, r0, r1, t == 0);
  } else {
    assemble_columns(c, c->prev, !c->parity, r0, r1);
  }
  /* This block's partial output: its input columns times its weight rows. */
  const float *x = c->l > 0 ? out_of(c, c->l - 1) : input(c);
  const float *wt = c->net->params + L->offset + (size_t)r0 * L->out_c;
  fm_gemm(0, 0, c->n, L->out_c, r1 - r0, x + r0, in, wt, L->out_c, 0.0f, part_of(c, c->parity, t),
          L->out_c, NULL, 0, scratch_of(c, t));
  fm_fp_leave(fp);
}

static void loss_item(void *ctx, int t) {
  mp_ctx *c = ctx;
  const fm_net *net = c->net;
  const fm_layer *L = &net->layer[c->l];
  const int k = net->classes;
  unsigned fp = fm_fp_enter();
  int i0, i1;
  block(c->n, c->T, t, &i0, &i1);
  const float *b = net->params + L->offset + L->n_weights;
  float *logits = out_of(c, c->l);
  for (int i = i0; i < i1; i++) {
    float *row = logits + (size_t)i * k;
    memcpy(row, part_of(c, !c->parity, 0) + (size_t)i * k, sizeof(float) * (size_t)k);
    for (int s = 1; s < c->T; s++) {
      const float *p = part_of(c, !c->parity, s) + (size_t)i * k;
      for (int j = 0; j < k; j++) row[j] += p[j];
    }
    for (int j = 0; j < k; j++) row[j] += b[j];
  }
  c->loss[t] = 0.0;
  c->correct[t] = 0;
  if (i1 > i0)
    c->loss[t] = fm_softmax_xent_smoothed(i1 - i0, k, logits + (size_t)i0 * k, c->y + i0,
                                          c->w->label_smoothing, 1.0f / (float)c->n,
                                          dy_of(c, c->parity) + (size_t)i0 * k, &c->correct[t]);
  fm_fp_leave(fp);
}

static void backward_item(void *ctx, int t) {
  mp_ctx *c = ctx;
  const fm_net *net = c->net;
  const fm_layer *L = &net->layer[c->l];
  const int out = L->out_c, in = (int)L->in_size;
  unsigned fp = fm_fp_enter();
  int r0, r1, u0, u1;
  block(in, c->T, t, &r0, &r1);
  block(out, c->T, t, &u0, &u1);
  const int nr = r1 - r0, nu = u1 - u0;
  const float *dy = dy_of(c, !c->parity);
  const float *x = c->l > 0 ? out_of(c, c->l - 1) : input(c);
  const float *wt = net->params + L->offset + (size_t)r0 * out;
  float *gw = net->grads + L->offset + (size_t)r0 * out;
  float *gb = net->grads + L->offset + L->n_weights;
  float *scratch = scratch_of(c, t);
  /* The weight gradient of this block's rows and the bias gradient of its entries, over the
   * whole batch: no other block has any part of them. */
  fm_gemm(1, 0, nr, out, c->n, x + r0, in, dy, out, 0.0f, gw, out, NULL, 0, scratch);
  memset(gb + u0, 0, sizeof(float) * (size_t)nu);
  for (int i = 0; i < c->n; i++) {
    const float *row = dy + (size_t)i * out + u0;
#pragma omp simd
    for (int j = 0; j < nu; j++) gb[u0 + j] += row[j];
  }
  c->sq[t] += fm_sum_squares(gw, (int64_t)nr * out) + fm_sum_squares(gb + u0, nu);
  /* The input gradient of its columns (whole: a block of weight rows gives whole columns), with
   * the previous layer's ReLU and dropout, before the weights change. */
  if (c->prev >= 0) {
    float *dx = dy_of(c, c->parity);
    fm_gemm(0, 1, c->n, nr, out, dy, out, wt, out, 0.0f, dx + r0, in, NULL, 0, scratch);
    tail_backward(c, c->prev, r0, r1, dx);
  }
  if (c->opt) {
    const int adam = c->opt->kind == FM_OPTIM_ADAM;
    const int64_t N = net->n_params;
    int64_t at = L->offset + (int64_t)r0 * out, bias_at = L->offset + L->n_weights + u0;
    float *s1 = c->state ? c->state + at : NULL, *s2 = c->state && adam ? c->state + N + at : NULL;
    c->bad[t] += fm_optim_apply_slice(c->opt, &c->coef, net->params + at, net->grads + at, s1,
                                      s2, (int64_t)nr * out, (float)c->opt->weight_decay);
    s1 = c->state ? c->state + bias_at : NULL;
    s2 = c->state && adam ? c->state + N + bias_at : NULL;
    c->bad[t] += fm_optim_apply_slice(c->opt, &c->coef, net->params + bias_at,
                                      net->grads + bias_at, s1, s2, nu, 0.0f);
  }
  fm_fp_leave(fp);
}

void fm_net_mp_step(fm_net *net, fm_work *w, const float *x, const fm_dataset *d,
                    const int32_t *rows, const uint8_t *y, int n, uint64_t seed, fm_optim *opt,
                    float *state, fm_batch_stats *st) {
  mp_ctx c = {.net = net, .w = w, .T = w->shards, .n = n, .x = x, .d = d, .rows = rows,
              .y = x ? y : w->labels, .seed = seed, .opt = opt, .state = state};
  layout(net, w->batch, w->shards, &c.m);
  int dense[FM_NET_MP_MAX_LAYERS] = {0}, nd = 0;
  for (int l = 0; l < net->n_layers; l++)
    if (net->layer[l].spec.kind == FM_LAYER_DENSE) dense[nd++] = l;
  /* Forward: phase k computes dense layer k's partial outputs (and finishes layer k-1's). */
  for (int k = 0; k < nd; k++) {
    c.l = dense[k];
    c.prev = k > 0 ? dense[k - 1] : -1;
    fm_parallel_for(c.T, c.T, forward_item, &c);
    c.parity = !c.parity;
  }
  c.l = dense[nd - 1];
  fm_parallel_for(c.T, c.T, loss_item, &c);
  c.parity = !c.parity;
  double loss = 0.0;
  int correct = 0;
  for (int t = 0; t < c.T; t++) {
    loss += c.loss[t];
    correct += c.correct[t];
    c.sq[t] = 0.0;
    c.bad[t] = 0;
  }
  st->n = n;
  st->loss = loss / n;
  st->correct = correct;
  w->n = n;
  w->forward_done = 0; /* the shards' layout of activations does not hold this batch */
  if (opt && !isfinite(st->loss)) {
    st->diverged = 1;
    st->grad_norm = NAN;
    return;
  }
  if (opt) fm_optim_begin(opt, &c.coef);
  for (int k = nd - 1; k >= 0; k--) {
    c.l = dense[k];
    c.prev = k > 0 ? dense[k - 1] : -1;
    fm_parallel_for(c.T, c.T, backward_item, &c);
    c.parity = !c.parity;
  }
  double sq = 0.0;
  for (int t = 0; t < c.T; t++) {
    sq += c.sq[t];
    if (opt && c.bad[t]) st->diverged = 2;
  }
  st->grad_norm = sqrt(sq);
  if (!opt) st->diverged = !isfinite(st->loss) || !isfinite(st->grad_norm);
}
