/* fm_net_mp: the model-parallel training step for networks of dense layers (see fm_net_mp.h).
 *
 * Workspace (whole batch, not per shard): each block's private copy of gathered input images,
 * every layer's output for the batch (the same per-layer offsets as a shard's activations, with
 * the batch in place of the shard's images), one output-gradient buffer, each block's partial
 * input gradient, and each block's product scratch. Block t of a dense layer with `out` units is
 * columns [t*out/T, (t+1)*out/T); a phase's item t always handles block t, whatever thread runs
 * it, so results depend on the thread count T only. */
#include "fm_net_mp.h"

#include <math.h>
#include <string.h>

#include "fm_gemm.h"
#include "fm_layers.h"
#include "fm_optim.h"
#include "fm_threads.h"

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

int fm_net_mp_applies(const fm_net *net) {
  int dense = 0;
  for (int l = 0; l < net->n_layers; l++) {
    switch (net->layer[l].spec.kind) {
      case FM_LAYER_DENSE: dense = 1; break;
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
  return dense;
}

/* ---- layout ---- */

typedef struct mp_layout {
  size_t x, x_stride;       /* private inputs, one per block */
  size_t act;               /* outputs and dropout masks of the batch */
  size_t dact;              /* the output gradient of the layer being differentiated */
  size_t part, part_stride; /* partial input gradients, one per block, in two sets: a phase
                               reads the set the previous phase wrote and writes the other */
  size_t scratch, scratch_stride;
  size_t total;
} mp_layout;

static void layout(const fm_net *net, int batch, int T, mp_layout *m) {
  size_t at = 0;
  m->x = at;
  m->x_stride = round16((size_t)batch * net->in_size);
  at += m->x_stride * T;
  m->act = at;
  at += round16((size_t)batch * net->act_floats);
  m->dact = at;
  at += round16((size_t)batch * net->max_size);
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
  const float *x;       /* the caller's images, or NULL: gather from d */
  const fm_dataset *d;
  const int32_t *rows;
  const uint8_t *y;
  uint64_t seed;
  fm_optim *opt;        /* NULL: gradient only */
  float *state;
  fm_optim_coef coef;
  int first_dense, last_dense;
  int l;                /* the dense layer of the current phase */
  int next;             /* the dense layer after it (backward), or -1 */
  int parity;           /* which set of partial input gradients this phase writes */
  double sq[FM_NET_MAX_SHARDS];
  int64_t bad[FM_NET_MAX_SHARDS];
  double loss[FM_NET_MAX_SHARDS];
  int correct[FM_NET_MAX_SHARDS];
} mp_ctx;

static void block(int units, int T, int t, int *c0, int *c1) {
  *c0 = (int)((int64_t)t * units / T);
  *c1 = (int)((int64_t)(t + 1) * units / T);
}

static float *input_of(const mp_ctx *c, int t) {
  return c->x ? (float *)c->x : c->w->base + c->m.x + c->m.x_stride * t;
}

/* Layer l's output for the batch (the input itself for a flatten view of it). */
static float *out_of(const mp_ctx *c, int l, int t) {
  int64_t off = c->net->layer[l].act_offset;
  if (off < 0) return input_of(c, t);
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

/* The layers after dense layer l up to the next dense layer (ReLU, dropout) run on the block's
 * columns [c0, c1) of every image. */
static void tail_forward(const mp_ctx *c, int l, int c0, int c1, int t) {
  const fm_net *net = c->net;
  const int width = net->layer[l].out_c;
  for (int k = l + 1; k < net->n_layers && net->layer[k].spec.kind != FM_LAYER_DENSE; k++) {
    const fm_layer *L = &net->layer[k];
    const float *in = out_of(c, k - 1, t);
    float *out = out_of(c, k, t);
    for (int i = 0; i < c->n; i++) {
      size_t at = (size_t)i * width + c0;
      if (L->spec.kind == FM_LAYER_RELU) {
        if (!net->layer[k - 1].fused_relu) fm_relu_forward(c1 - c0, in + at, out + at);
      } else if (L->spec.kind == FM_LAYER_DROPOUT) {
        if (L->spec.rate > 0.0f) {
          float *mask = mask_of(c, k) + at;
          fm_dropout_mask_at(fm_net_mask_key(c->seed, k, i), c0, c1 - c0, L->spec.rate, mask);
          fm_dropout_apply(c1 - c0, in + at, mask, out + at);
        } else {
          memcpy(out + at, in + at, sizeof(float) * (size_t)(c1 - c0));
        }
      }
    }
  }
}

/* ...and their backward passes, last first, on dy (the gradient of the last of them). */
static void tail_backward(const mp_ctx *c, int l, int c0, int c1, float *dy, int t) {
  const fm_net *net = c->net;
  const int width = net->layer[l].out_c;
  int end = l + 1;
  while (end < net->n_layers && net->layer[end].spec.kind != FM_LAYER_DENSE) end++;
  for (int k = end - 1; k > l; k--) {
    const fm_layer *L = &net->layer[k];
    for (int i = 0; i < c->n; i++) {
      size_t at = (size_t)i * width + c0;
      if (L->spec.kind == FM_LAYER_RELU)
        fm_relu_backward(c1 - c0, out_of(c, k, t) + at, dy + at, dy + at);
      else if (L->spec.kind == FM_LAYER_DROPOUT && L->spec.rate > 0.0f)
        fm_dropout_apply(c1 - c0, dy + at, mask_of(c, k) + at, dy + at);
    }
  }
}

static void forward_item(void *ctx, int t) {
  mp_ctx *c = ctx;
  const fm_layer *L = &c->net->layer[c->l];
  unsigned fp = fm_fp_enter();
  if (c->l == c->first_dense && !c->x) {
    /* Every block reads every image: each gathers its own copy rather than reading another
     * core's. Block 0 also keeps the labels. */
    fm_dataset_gather(c->d, c->rows, c->n, input_of(c, t), t == 0 ? c->w->labels : NULL);
  }
  int c0, c1;
  block(L->out_c, c->T, t, &c0, &c1);
  if (c1 > c0) {
    const float *in = c->l > 0 ? out_of(c, c->l - 1, t) : input_of(c, t);
    const float *wt = c->net->params + L->offset, *b = wt + L->n_weights;
    float *out = out_of(c, c->l, t);
    fm_gemm(0, 0, c->n, c1 - c0, (int)L->in_size, in, (int)L->in_size, wt + c0, L->out_c, 0.0f,
            out + c0, L->out_c, b + c0, L->fused_relu, scratch_of(c, t));
    tail_forward(c, c->l, c0, c1, t);
  }
  fm_fp_leave(fp);
}

static void loss_item(void *ctx, int t) {
  mp_ctx *c = ctx;
  unsigned fp = fm_fp_enter();
  const int k = c->net->classes;
  int r0 = (int)((int64_t)t * c->n / c->T), r1 = (int)((int64_t)(t + 1) * c->n / c->T);
  const float *logits = out_of(c, c->net->n_layers - 1, t);
  float *d = c->w->base + c->m.dact;
  c->loss[t] = 0.0;
  c->correct[t] = 0;
  if (r1 > r0)
    c->loss[t] = fm_softmax_xent(r1 - r0, k, logits + (size_t)r0 * k, c->y + r0,
                                 1.0f / (float)c->n, d + (size_t)r0 * k, &c->correct[t]);
  fm_fp_leave(fp);
}

static void backward_item(void *ctx, int t) {
  mp_ctx *c = ctx;
  const fm_net *net = c->net;
  const fm_layer *L = &net->layer[c->l];
  const int out = L->out_c, in = (int)L->in_size;
  unsigned fp = fm_fp_enter();
  int c0, c1;
  block(out, c->T, t, &c0, &c1);
  const int nb = c1 - c0;
  float *dy = c->w->base + c->m.dact;
  /* This layer's output gradient: the loss's, or the sum of the next dense layer's partial input
   * gradients, added in block order. */
  if (c->next >= 0)
    for (int i = 0; i < c->n; i++) {
      float *row = dy + (size_t)i * out + c0;
      memcpy(row, part_of(c, !c->parity, 0) + (size_t)i * out + c0, sizeof(float) * (size_t)nb);
      for (int s = 1; s < c->T; s++) {
        const float *p = part_of(c, !c->parity, s) + (size_t)i * out + c0;
#pragma omp simd
        for (int j = 0; j < nb; j++) row[j] += p[j];
      }
    }
  tail_backward(c, c->l, c0, c1, dy, t);
  const float *x = c->l > 0 ? out_of(c, c->l - 1, t) : input_of(c, t);
  const float *wt = net->params + L->offset;
  float *gw = net->grads + L->offset, *gb = gw + L->n_weights;
  float *scratch = scratch_of(c, t);
  double sq = 0.0;
  if (nb > 0) {
    /* The block's weight and bias gradients over the whole batch: no other thread has any. */
    fm_gemm(1, 0, in, nb, c->n, x, in, dy + c0, out, 0.0f, gw + c0, out, NULL, 0, scratch);
    memset(gb + c0, 0, sizeof(float) * (size_t)nb);
    for (int i = 0; i < c->n; i++) {
      const float *row = dy + (size_t)i * out + c0;
#pragma omp simd
      for (int j = 0; j < nb; j++) gb[c0 + j] += row[j];
    }
    for (int i = 0; i < in; i++) sq += fm_sum_squares(gw + (size_t)i * out + c0, nb);
    sq += fm_sum_squares(gb + c0, nb);
  }
  /* The block's share of the input gradient, before its weights change. */
  if (c->l != c->first_dense)
    fm_gemm(0, 1, c->n, in, nb, dy + c0, out, wt + c0, out, 0.0f, part_of(c, c->parity, t), in,
            NULL, 0, scratch);
  c->sq[t] += sq;
  if (c->opt && nb > 0) {
    const int adam = c->opt->kind == FM_OPTIM_ADAM;
    const int64_t N = net->n_params;
    const float wd = (float)c->opt->weight_decay;
    int64_t bad = 0;
    for (int i = 0; i <= in; i++) {
      /* rows of the weights, then the biases (no decay) */
      int64_t at = i < in ? L->offset + (int64_t)i * out + c0 : L->offset + L->n_weights + c0;
      float *s1 = c->state ? c->state + at : NULL, *s2 = c->state && adam ? c->state + N + at : NULL;
      bad += fm_optim_apply_slice(c->opt, &c->coef, net->params + at, net->grads + at, s1, s2, nb,
                                  i < in ? wd : 0.0f);
    }
    c->bad[t] += bad;
  }
  fm_fp_leave(fp);
}

void fm_net_mp_step(fm_net *net, fm_work *w, const float *x, const fm_dataset *d,
                    const int32_t *rows, const uint8_t *y, int n, uint64_t seed, fm_optim *opt,
                    float *state, fm_batch_stats *st) {
  mp_ctx c = {.net = net, .w = w, .T = w->shards, .n = n, .x = x, .d = d, .rows = rows,
              .y = x ? y : w->labels, .seed = seed, .opt = opt, .state = state};
  layout(net, w->batch, w->shards, &c.m);
  c.first_dense = c.last_dense = -1;
  for (int l = 0; l < net->n_layers; l++)
    if (net->layer[l].spec.kind == FM_LAYER_DENSE) {
      if (c.first_dense < 0) c.first_dense = l;
      c.last_dense = l;
    }
  for (int l = c.first_dense; l < net->n_layers; l++)
    if (net->layer[l].spec.kind == FM_LAYER_DENSE) {
      c.l = l;
      fm_parallel_for(c.T, c.T, forward_item, &c);
    }
  fm_parallel_for(c.T, c.T, loss_item, &c);
  double loss = 0.0;
  int correct = 0;
  for (int t = 0; t < c.T; t++) {
    loss += c.loss[t];
    correct += c.correct[t];
  }
  st->n = n;
  st->loss = loss / n;
  st->correct = correct;
  w->n = n;
  w->forward_done = 0; /* the sharded layout of activations does not hold this batch */
  if (opt && !isfinite(st->loss)) {
    st->diverged = 1;
    st->grad_norm = NAN;
    return;
  }
  if (opt) fm_optim_begin(opt, &c.coef);
  for (int t = 0; t < c.T; t++) c.sq[t] = 0.0, c.bad[t] = 0;
  c.next = -1;
  for (int l = c.last_dense; l >= c.first_dense; l--)
    if (net->layer[l].spec.kind == FM_LAYER_DENSE) {
      c.l = l;
      fm_parallel_for(c.T, c.T, backward_item, &c);
      c.next = l;
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
