/* fm_net: building a network graph from specs, its workspace, and the forward, backward,
 * training, prediction and saliency passes, each split over threads by fixed shards of the batch
 * (see fm_net.h for the memory and determinism rules; the kinds of layer are in fm_ops.c). */
#include "fm_net.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_net_mp.h"
#include "fm_ops.h"
#include "fm_threads.h"

/* Areas inside the workspace start on 64-byte boundaries. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

const char *fm_layer_describe(const fm_layer *L, char *buf, size_t size) {
  const fm_layer_spec *s = &L->spec;
  switch (s->kind) {
    case FM_LAYER_DENSE: snprintf(buf, size, "dense %d", s->units); break;
    case FM_LAYER_CONV2D: {
      char extra[64] = "";
      if (s->stride > 1) snprintf(extra, sizeof extra, ", stride %d", s->stride);
      if (s->groups > 1)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", depthwise");
      snprintf(buf, size, "conv2d %dx%d, %d filters, %s%s", s->kh, s->kw ? s->kw : s->kh, s->units,
               s->same ? "same" : "valid", extra);
      break;
    }
    case FM_LAYER_MAXPOOL:
    case FM_LAYER_AVGPOOL:
      snprintf(buf, size, "%s %dx%d", fm_layer_kind_name(s->kind), s->pool, s->pool);
      break;
    case FM_LAYER_DROPOUT: snprintf(buf, size, "dropout %g", (double)s->rate); break;
    default: snprintf(buf, size, "%s", fm_layer_kind_name(s->kind)); break;
  }
  return buf;
}

const char *fm_layer_shape(const fm_layer *L, char *buf, size_t size) {
  if (L->out_h == 1 && L->out_w == 1)
    snprintf(buf, size, "%d", L->out_c);
  else
    snprintf(buf, size, "%dx%dx%d", L->out_h, L->out_w, L->out_c);
  return buf;
}

/* ---- building ---- */

int fm_reference_cnn(fm_layer_spec *specs) {
  static const fm_layer_spec cnn[FM_REFERENCE_CNN_LAYERS] = {
      {.kind = FM_LAYER_CONV2D, .units = 32, .kh = 3},
      {.kind = FM_LAYER_RELU},
      {.kind = FM_LAYER_MAXPOOL, .pool = 2},
      {.kind = FM_LAYER_CONV2D, .units = 64, .kh = 3},
      {.kind = FM_LAYER_RELU},
      {.kind = FM_LAYER_MAXPOOL, .pool = 2},
      {.kind = FM_LAYER_FLATTEN},
      {.kind = FM_LAYER_DENSE, .units = 128},
      {.kind = FM_LAYER_RELU},
      {.kind = FM_LAYER_DROPOUT, .rate = 0.5f},
      {.kind = FM_LAYER_DENSE, .units = 10}};
  memcpy(specs, cnn, sizeof cnn);
  return FM_REFERENCE_CNN_LAYERS;
}

/* The defaults of fm_layer_spec's zero fields, filled in so that a layer (and a saved model)
 * says what it is. */
static void fill_defaults(fm_layer_spec *s) {
  switch (s->kind) {
    case FM_LAYER_CONV2D:
      if (!s->kw) s->kw = s->kh;
      if (!s->stride) s->stride = 1;
      if (!s->groups) s->groups = 1;
      break;
    case FM_LAYER_MAXPOOL:
    case FM_LAYER_AVGPOOL:
      if (!s->pool) s->pool = 2;
      if (!s->stride) s->stride = s->pool;
      break;
    case FM_LAYER_BATCHNORM:
      if (s->eps == 0.0f) s->eps = 1e-5f;
      if (s->momentum == 0.0f) s->momentum = 0.9f;
      break;
    default: break;
  }
}

/* Input k's shape: the network input's or an earlier layer's output. */
static void input_shape(const fm_net *net, int in, int *h, int *w, int *c) {
  if (in < 0) {
    *h = net->in_h, *w = net->in_w, *c = net->in_c;
  } else {
    const fm_layer *I = &net->layer[in];
    *h = I->out_h, *w = I->out_w, *c = I->out_c;
  }
}

/* Resolves the inputs of layer i and checks them against its kind. */
static int resolve_inputs(fm_net *net, int i, const fm_layer_spec *spec) {
  fm_layer *L = &net->layer[i];
  const fm_layer_type *t = fm_layer_type_of(spec->kind);
  if (spec->n_inputs == 0) {
    L->n_in = 1;
    L->in[0] = i - 1; /* -1: the network input */
  } else {
    if (spec->n_inputs < 1 || spec->n_inputs > FM_NET_MAX_INPUTS)
      return fm_fail("layer %d (%s): %d inputs (1 to %d)", i + 1, t->name, spec->n_inputs,
                     FM_NET_MAX_INPUTS);
    L->n_in = spec->n_inputs;
    for (int k = 0; k < L->n_in; k++) {
      int in = spec->inputs[k];
      if (in != FM_NET_INPUT && (in < 0 || in >= i))
        return fm_fail("layer %d (%s): input %d is layer %lld, which does not come before it",
                       i + 1, t->name, k + 1, (long long)in + 1); /* in may be INT_MAX */
      L->in[k] = in;
    }
  }
  if (L->n_in < t->min_inputs || L->n_in > t->max_inputs)
    return fm_fail("layer %d (%s): takes %d to %d inputs, not %d", i + 1, t->name, t->min_inputs,
                   t->max_inputs, L->n_in);
  for (int k = 0; k < L->n_in; k++)
    if (L->in[k] >= 0) net->layer[L->in[k]].consumers++;
  return FM_OK;
}

static int aliases_input(const fm_net *net, const fm_layer *L) {
  return L->n_in > 0 && L->act_offset >= 0 &&
         ((L->in[0] >= 0 && net->layer[L->in[0]].act_offset == L->act_offset));
}

/* Whether a layer may write its output over layer k's: k's output (and whatever it is a view of
 * or was written over) is read by k's one consumer only, and by no backward pass. */
static int can_overwrite(const fm_net *net, int k) {
  if (k < 0) return 0; /* never the caller's images */
  for (int m = k;;) {
    const fm_layer *M = &net->layer[m];
    if (M->consumers != 1 || (fm_op_of(M->spec.kind)->flags & FM_OP_READS_OUTPUT)) return 0;
    if (!aliases_input(net, M)) return 1;
    m = M->in[0];
  }
}

/* Where layer i's output goes (per image, in a shard's activations): a view of its input
 * (flatten), in place of its input when the graph allows, or an area of its own. */
static int place_output(fm_net *net, int i, int64_t *act) {
  fm_layer *L = &net->layer[i];
  const fm_op *op = fm_op_of(L->spec.kind);
  int in0 = L->in[0];
  if (L->spec.kind == FM_LAYER_FLATTEN) {
    L->act_offset = in0 >= 0 ? net->layer[in0].act_offset : -1;
  } else if ((op->flags & FM_OP_INPLACE) && in0 >= 0 && can_overwrite(net, in0)) {
    fm_layer *I = &net->layer[in0];
    L->act_offset = I->act_offset;
    if (L->spec.kind == FM_LAYER_RELU && (fm_op_of(I->spec.kind)->flags & FM_OP_FUSES_RELU))
      I->fused_relu = 1;
  } else {
    L->act_offset = *act;
    *act += (int64_t)round16((size_t)L->out_size);
  }
  if (L->spec.kind == FM_LAYER_DROPOUT) {
    L->mask_offset = *act;
    *act += (int64_t)round16((size_t)L->out_size);
  }
  if (*act > FM_NET_MAX_IMAGE_FLOATS)
    return fm_fail("layer %d (%s): the outputs a pass keeps would be over %lld floats per image",
                   i + 1, fm_layer_kind_name(L->spec.kind), (long long)FM_NET_MAX_IMAGE_FLOATS);
  FM_ASSERT(L->act_offset < 0 || L->act_offset + L->out_size <= *act);
  return FM_OK;
}

/* ---- the gradients of layer outputs ----
 * Slots are given out walking the layers backwards: a layer's output gradient is needed from the
 * moment its last consumer's backward pass writes it until its own backward pass has read it,
 * and then its slot serves another layer. A consumer whose input gradient may overwrite its own
 * output gradient (ReLU, dropout, batch norm, add, flatten) hands its slot down when it is that
 * input's only consumer. The records' delta_size and delta_state keep the books. */
enum { SLOT_NONE = 0, SLOT_LIVE, SLOT_FREE };

/* A slot of `need` floats for layer t: the smallest free one that fits, or a new one. */
static int64_t take_slot(fm_net *net, int t, int64_t need, int64_t *end) {
  int best = -1;
  for (int j = 0; j < net->n_layers; j++) {
    const fm_layer *J = &net->layer[j];
    if (J->delta_state == SLOT_FREE && J->delta_size >= need &&
        (best < 0 || J->delta_size < net->layer[best].delta_size))
      best = j;
  }
  fm_layer *T = &net->layer[t];
  T->delta_state = SLOT_LIVE;
  if (best >= 0) {
    fm_layer *B = &net->layer[best];
    B->delta_state = SLOT_NONE;
    T->delta_size = B->delta_size;
    return B->delta_offset;
  }
  int64_t at = *end;
  *end += need;
  T->delta_size = need;
  return at;
}

static void place_deltas(fm_net *net) {
  const int n = net->n_layers;
  int64_t end = 0;
  int input_written = 0;
  for (int i = 0; i < n; i++) {
    net->layer[i].delta_offset = -1;
    net->layer[i].delta_state = SLOT_NONE;
  }
  fm_layer *last = &net->layer[n - 1];
  last->delta_offset = take_slot(net, n - 1, (int64_t)round16((size_t)last->out_size), &end);
  for (int i = n - 1; i >= 0; i--) {
    fm_layer *L = &net->layer[i];
    if (L->skip_backward) continue;
    const fm_op *op = fm_op_of(L->spec.kind);
    int handed_down = 0;
    for (int k = 0; k < L->n_in; k++) {
      int t = L->bwd_target[k];
      if (t < 0) {
        L->accumulate[k] = input_written;
        input_written = 1;
        continue;
      }
      fm_layer *T = &net->layer[t];
      if (T->delta_offset >= 0) {
        L->accumulate[k] = 1;
        continue;
      }
      L->accumulate[k] = 0;
      if (k == 0 && !handed_down && (op->flags & FM_OP_DX_ALIAS) && t == L->in[0] &&
          T->consumers == 1 && T->out_size == L->out_size && L->delta_state == SLOT_LIVE) {
        T->delta_offset = L->delta_offset;
        T->delta_size = L->delta_size;
        T->delta_state = SLOT_LIVE;
        L->delta_state = SLOT_NONE;
        handed_down = 1;
      } else {
        T->delta_offset = take_slot(net, t, (int64_t)round16((size_t)T->out_size), &end);
      }
    }
    if (L->delta_state == SLOT_LIVE) L->delta_state = SLOT_FREE;
  }
  net->delta_floats = end;
}

/* Fills in layer i from its spec and its inputs' shapes. */
static int build_layer(fm_net *net, int i, const fm_layer_spec *spec, int64_t *act) {
  fm_layer *L = &net->layer[i];
  memset(L, 0, sizeof *L);
  if (fm_layer_spec_check(i, spec) != FM_OK) return FM_ERR;
  const fm_op *op = fm_op_of(spec->kind);
  L->spec = *spec;
  fill_defaults(&L->spec);
  if (resolve_inputs(net, i, &L->spec) != FM_OK) return FM_ERR;
  input_shape(net, L->in[0], &L->in_h, &L->in_w, &L->in_c);
  L->in_size = (int64_t)L->in_h * L->in_w * L->in_c;
  FM_ASSERT(L->in_size >= 1 && L->in_size <= FM_NET_MAX_IMAGE_FLOATS);
  if (op->infer(net, L, i) != FM_OK) return FM_ERR;
  for (int k = 0; k < L->n_in; k++) L->bwd_target[k] = L->in[k];
  L->grad_upstream = L->n_weights + L->n_biases > 0;
  for (int k = 0; k < L->n_in; k++)
    if (L->in[k] >= 0 && net->layer[L->in[k]].grad_upstream) L->grad_upstream = 1;
  return place_output(net, i, act);
}

/* A max-pool whose input is a ReLU that only it reads does the ReLU's backward pass itself. */
static void fold_relus(fm_net *net) {
  for (int i = 0; i < net->n_layers; i++) {
    fm_layer *L = &net->layer[i];
    int r = L->in[0];
    if (L->spec.kind != FM_LAYER_MAXPOOL || r < 0) continue;
    fm_layer *R = &net->layer[r];
    if (R->spec.kind != FM_LAYER_RELU || R->consumers != 1) continue;
    L->relu_folded = 1;
    L->bwd_target[0] = R->in[0];
    R->skip_backward = 1;
  }
}

/* The input shape: every side at most FM_NET_MAX_DIM, the image at most FM_NET_MAX_IMAGE_FLOATS. */
static int check_input(int in_h, int in_w, int in_c) {
  int64_t hw, size;
  if (in_h <= 0 || in_w <= 0 || in_c <= 0)
    return fm_fail("network: input shape %dx%dx%d must be positive", in_h, in_w, in_c);
  if (in_h > FM_NET_MAX_DIM || in_w > FM_NET_MAX_DIM || in_c > FM_NET_MAX_DIM)
    return fm_fail("network: input shape %dx%dx%d has a side over %d", in_h, in_w, in_c,
                   FM_NET_MAX_DIM);
  if (!fm_mul_within(in_h, in_w, FM_NET_MAX_IMAGE_FLOATS, &hw) ||
      !fm_mul_within(hw, in_c, FM_NET_MAX_IMAGE_FLOATS, &size))
    return fm_fail("network: an input of %dx%dx%d is over %lld floats per image", in_h, in_w,
                   in_c, (long long)FM_NET_MAX_IMAGE_FLOATS);
  return FM_OK;
}

/* Adds layer i's parameters, state and multiply-adds to the network's totals. */
static int add_totals(fm_net *net, int i) {
  fm_layer *L = &net->layer[i];
  L->offset = net->n_params;
  L->state_offset = net->n_state;
  if (!fm_add_within(net->n_params, L->n_weights + L->n_biases, FM_NET_MAX_PARAMS,
                     &net->n_params) ||
      !fm_add_within(net->n_state, L->n_state, FM_NET_MAX_PARAMS, &net->n_state))
    return fm_fail("layer %d (%s): its %lld parameters bring the network over %lld", i + 1,
                   fm_layer_kind_name(L->spec.kind), (long long)(L->n_weights + L->n_biases),
                   (long long)FM_NET_MAX_PARAMS);
  if (!fm_add_within(net->macs, L->macs, FM_NET_MAX_MACS, &net->macs))
    return fm_fail("layer %d (%s): the network's multiply-adds per image would be over %lld", i + 1,
                   fm_layer_kind_name(L->spec.kind), (long long)FM_NET_MAX_MACS);
  return FM_OK;
}

int fm_net_build(fm_net *net, fm_layer *layers, int in_h, int in_w, int in_c,
                 const fm_layer_spec *specs, int n) {
  memset(net, 0, sizeof *net);
  if (check_input(in_h, in_w, in_c) != FM_OK) return FM_ERR;
  if (n < 1 || n > FM_NET_MAX_LAYERS)
    return fm_fail("network: %d layers (expected 1 to %d)", n, FM_NET_MAX_LAYERS);
  net->layer = layers;
  net->n_layers = n;
  net->in_h = in_h;
  net->in_w = in_w;
  net->in_c = in_c;
  net->in_size = (int64_t)in_h * in_w * in_c;
  net->max_size = net->in_size;
  int64_t act = 0;
  for (int i = 0; i < n; i++) {
    if (build_layer(net, i, &specs[i], &act) != FM_OK) {
      net->n_layers = 0;
      return FM_ERR;
    }
    fm_layer *L = &net->layer[i];
    if (add_totals(net, i) != FM_OK) {
      net->n_layers = 0;
      return FM_ERR;
    }
    if (L->out_size > net->max_size) net->max_size = L->out_size;
    const fm_op *op = fm_op_of(L->spec.kind);
    size_t scratch = op->scratch && L->spec.kind != FM_LAYER_DENSE ? op->scratch(L, 1) : 0;
    if (scratch > net->scratch_floats) net->scratch_floats = scratch;
    if (op->partial_doubles) {
      L->stats_offset = net->bn_floats;
      net->bn_floats += (int64_t)round16(6 * (size_t)L->out_c);
      net->n_batchnorm++;
      if (L->out_c > net->max_bn_channels) net->max_bn_channels = L->out_c;
    }
  }
  net->act_floats = act;
  for (int i = 0; i + 1 < n; i++)
    if (net->layer[i].consumers == 0) {
      net->n_layers = 0;
      return fm_fail("layer %d (%s): its output is used by no later layer (only the last layer "
                     "may end the network)", i + 1, fm_layer_kind_name(net->layer[i].spec.kind));
    }
  const fm_layer *last = &net->layer[n - 1];
  if (last->out_h != 1 || last->out_w != 1 || last->out_c < 2 ||
      last->out_c > FM_NET_MAX_CLASSES) {
    net->n_layers = 0;
    return fm_fail("network: the last layer (%s) must give 2 to %d class scores, not %dx%dx%d",
                   fm_layer_kind_name(last->spec.kind), FM_NET_MAX_CLASSES, last->out_h,
                   last->out_w, last->out_c);
  }
  net->classes = last->out_c;
  net->chain = 1;
  for (int i = 0; i < n; i++)
    if (net->layer[i].n_in != 1 || net->layer[i].in[0] != i - 1 ||
        (i + 1 < n && net->layer[i].consumers != 1))
      net->chain = 0;
  fold_relus(net);
  place_deltas(net);
  return FM_OK;
}

static int64_t first_not_finite(const float *v, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i])) return i;
  return -1;
}

int fm_net_set_layer(fm_net *net, int layer, const float *weights, int64_t n_weights,
                     const float *biases, int64_t n_biases) {
  if (layer < 0 || layer >= net->n_layers)
    return fm_fail("layer %d out of range 1..%d", layer + 1, net->n_layers);
  const fm_layer *L = &net->layer[layer];
  const char *kind = fm_layer_kind_name(L->spec.kind);
  if (L->n_weights == 0) return fm_fail("layer %d (%s) has no weights", layer + 1, kind);
  if (n_weights != L->n_weights)
    return fm_fail("layer %d (%s) has %lld weights, not %lld", layer + 1, kind,
                   (long long)L->n_weights, (long long)n_weights);
  if (biases && n_biases != L->n_biases)
    return fm_fail("layer %d (%s) has %lld biases, not %lld", layer + 1, kind,
                   (long long)L->n_biases, (long long)n_biases);
  int64_t bad = first_not_finite(weights, n_weights);
  if (bad >= 0)
    return fm_fail("layer %d (%s): weight %lld is not finite (%g)", layer + 1, kind,
                   (long long)bad + 1, (double)weights[bad]);
  bad = biases ? first_not_finite(biases, n_biases) : -1;
  if (bad >= 0)
    return fm_fail("layer %d (%s): bias %lld is not finite (%g)", layer + 1, kind,
                   (long long)bad + 1, (double)biases[bad]);
  memcpy(fm_net_weights(net, layer), weights, sizeof(float) * (size_t)n_weights);
  if (biases && n_biases)
    memcpy(fm_net_biases(net, layer), biases, sizeof(float) * (size_t)n_biases);
  return FM_OK;
}

void fm_net_bind(fm_net *net, float *params, float *grads, float *state) {
  net->params = params;
  net->grads = grads;
  net->state = state;
}

float *fm_net_weights(const fm_net *net, int layer) { return net->params + net->layer[layer].offset; }

float *fm_net_biases(const fm_net *net, int layer) {
  return net->params + net->layer[layer].offset + net->layer[layer].n_weights;
}

/* AUTO initialisation: He when the layer's output reaches a ReLU through batch norm or dropout
 * (each the only consumer of the one before), Glorot otherwise. */
static int relu_follows(const fm_net *net, int i) {
  while (net->layer[i].consumers == 1) {
    int j = i + 1;
    while (j < net->n_layers) {
      const fm_layer *J = &net->layer[j];
      int uses = 0;
      for (int k = 0; k < J->n_in; k++) uses |= J->in[k] == i;
      if (uses) break;
      j++;
    }
    if (j >= net->n_layers) return 0;
    fm_layer_kind k = net->layer[j].spec.kind;
    if (k == FM_LAYER_RELU || k == FM_LAYER_RELU6) return 1;
    if (k != FM_LAYER_BATCHNORM && k != FM_LAYER_DROPOUT) return 0;
    i = j;
  }
  return 0;
}

void fm_net_init(fm_net *net, uint64_t seed) {
  fm_rng rng;
  fm_rng_seed(&rng, seed);
  for (int i = 0; i < net->n_layers; i++) {
    const fm_layer *L = &net->layer[i];
    const fm_op *op = fm_op_of(L->spec.kind);
    if (!op->init) continue;
    int he = L->spec.init == FM_INIT_HE || (L->spec.init == FM_INIT_AUTO && relu_follows(net, i));
    op->init(L, &rng, he, fm_net_weights(net, i), fm_net_biases(net, i),
             net->state ? net->state + L->state_offset : NULL);
  }
}

/* ---- workspace ---- */

int fm_default_threads(void) {
  int t = omp_get_max_threads();
  return t < 1 ? 1 : t > FM_NET_MAX_SHARDS ? FM_NET_MAX_SHARDS : t;
}

int fm_work_threads(const fm_net *net, int batch) {
  const double per_shard = 20e6; /* floating-point operations of a training step */
  double flops = 6.0 * (double)net->macs * (batch > 0 ? batch : 1);
  int t = fm_default_threads();
  int useful = (int)(flops / per_shard);
  if (useful < 1) useful = 1;
  return t < useful ? t : useful;
}

/* The scratch a shard of shard_batch images needs: the largest of any layer's. */
static size_t scratch_floats(const fm_net *net, int shard_batch) {
  size_t most = net->scratch_floats;
  for (int l = 0; l < net->n_layers; l++) {
    const fm_layer *L = &net->layer[l];
    const fm_op *op = fm_op_of(L->spec.kind);
    size_t d = op->scratch ? op->scratch(L, shard_batch) : 0;
    if (d > most) most = d;
  }
  return most;
}

/* A shard's area, laid out: the gathered input, activations, output gradients, the input's
 * gradient, a buffer for gradients that add onto another's, scratch. Returns its floats, or 0 if
 * the sizes overflow. */
static size_t shard_layout(const fm_net *net, int sb, fm_work *w) {
  const double limit = (double)((size_t)1 << 40); /* 4 TiB of floats: nothing this big fits */
  double total = (double)sb * ((double)net->in_size * 2 + (double)net->act_floats +
                               (double)net->delta_floats + (double)net->max_size) +
                 (double)scratch_floats(net, sb);
  if (total > limit) return 0;
  size_t at = 0;
  w->in_at = at;
  at += round16((size_t)net->in_size * sb);
  w->act_at = at;
  at += round16((size_t)net->act_floats * sb);
  w->delta_at = at;
  at += round16((size_t)net->delta_floats * sb);
  w->dx_at = at;
  at += round16((size_t)net->in_size * sb);
  w->tmp_at = at;
  at += round16((size_t)net->max_size * sb);
  w->scratch_at = at;
  at += round16(scratch_floats(net, sb));
  return at;
}

int fm_net_model_parallel = 1;

static int use_mp(const fm_net *net, int shards) {
  return fm_net_model_parallel && shards > 1 && fm_net_mp_applies(net);
}

/* Floats of the part of the workspace the passes use: the shards' areas, the shared batch
 * statistics, the extra shards' gradients — or the model-parallel step's layout if that is larger
 * (the two never run at once). Fills w's offsets; 0 on overflow. */
static size_t pass_floats(const fm_net *net, int batch, int shards, fm_work *w) {
  int sb = (batch + shards - 1) / shards;
  size_t per = shard_layout(net, sb, w);
  if (per == 0) return 0;
  w->shard_floats = per;
  size_t at = per * shards;
  w->bn_at = at;
  at += round16((size_t)net->bn_floats);
  w->partial_at = at;
  at += round16((size_t)batch * (size_t)net->max_bn_channels * 2 * 2); /* doubles */
  w->grad_at = at;
  at += round16((size_t)net->n_params) * (shards - 1);
  size_t mp = use_mp(net, shards) ? fm_net_mp_floats(net, batch, shards) : 0;
  return at > mp ? at : mp;
}

static int check_work_args(const fm_net *net, int batch, int shards) {
  if (net->n_layers < 1) return fm_fail("workspace: the network has no layers");
  if (batch < 1 || batch > FM_NET_MAX_BATCH)
    return fm_fail("workspace: batch size must be 1 to %d (got %d)", FM_NET_MAX_BATCH, batch);
  if (shards < 1 || shards > FM_NET_MAX_SHARDS)
    return fm_fail("workspace: threads must be 1 to %d (got %d)", FM_NET_MAX_SHARDS, shards);
  return FM_OK;
}

/* No product below can wrap: fm_net_build holds every per-image size and the parameter count to
 * 2^28 floats, batch is at most 2^16 and shards 64, so each term is under 2^45 floats and their
 * sum far from 2^64 bytes (shard_layout also checks). Only the total needs a limit. */
size_t fm_work_bytes(const fm_net *net, int batch, int shards) {
  if (check_work_args(net, batch, shards) != FM_OK) return 0;
  FM_ASSERT(net->in_size <= FM_NET_MAX_IMAGE_FLOATS && net->act_floats <= FM_NET_MAX_IMAGE_FLOATS);
  FM_ASSERT(net->max_size <= FM_NET_MAX_IMAGE_FLOATS && net->n_params <= FM_NET_MAX_PARAMS);
  fm_work w;
  size_t floats = pass_floats(net, batch, shards, &w);
  /* then the labels of a gathered batch */
  size_t bytes = floats ? sizeof(float) * (floats + round16((size_t)batch / 4 + 1)) : 0;
  if (bytes == 0 || bytes > (size_t)FM_NET_MAX_WORK_BYTES) {
    fm_fail("workspace: %zu bytes for batches of %d on %d threads, over the limit of %lld; use a "
            "smaller batch", bytes, batch, shards, (long long)FM_NET_MAX_WORK_BYTES);
    return 0;
  }
  return bytes;
}

int fm_work_init(fm_work *w, const fm_net *net, int batch, int shards, void *mem, size_t bytes) {
  memset(w, 0, sizeof *w);
  size_t need = fm_work_bytes(net, batch, shards);
  if (need == 0) return FM_ERR;
  if (bytes < need)
    return fm_fail("workspace: %zu bytes given, %zu needed for batch %d on %d threads", bytes,
                   need, batch, shards);
  if (((uintptr_t)mem & 63) != 0) return fm_fail("workspace: memory must be 64-byte aligned");
  w->batch = batch;
  w->shards = shards;
  w->shard_batch = (batch + shards - 1) / shards;
  w->base = mem;
  w->bytes = bytes;
  size_t floats = pass_floats(net, batch, shards, w);
  w->labels = (uint8_t *)(w->base + floats);
  w->model_parallel = use_mp(net, shards);
  FM_ASSERT(w->scratch_at + scratch_floats(net, w->shard_batch) <= w->shard_floats);
  FM_ASSERT(w->grad_at + round16((size_t)net->n_params) * (shards - 1) <= floats);
  FM_ASSERT(w->labels + batch <= (uint8_t *)mem + need);
  return FM_OK;
}

/* ---- per-shard passes ---- */

static int shard_first(int n, int shards, int s) { return (int)((int64_t)s * n / shards); }

static float *shard_base(const fm_work *w, int s) { return w->base + w->shard_floats * s; }

/* Layer l's output for the shard's images (x itself for the network input or a view of it). */
static float *layer_out(const fm_net *net, const fm_work *w, int s, int l, const float *x) {
  if (l < 0) return (float *)x;
  int64_t off = net->layer[l].act_offset;
  if (off < 0) return (float *)x;
  FM_ASSERT(s >= 0 && s < w->shards && l < net->n_layers);
  FM_ASSERT(off + net->layer[l].out_size <= net->act_floats);
  return shard_base(w, s) + w->act_at + (size_t)off * w->shard_batch;
}

/* Layer l's output gradient for the shard (l < 0: the network input's). */
static float *layer_delta(const fm_net *net, const fm_work *w, int s, int l) {
  if (l < 0) return shard_base(w, s) + w->dx_at;
  FM_ASSERT(net->layer[l].delta_offset >= 0 &&
            net->layer[l].delta_offset + net->layer[l].out_size <= net->delta_floats);
  return shard_base(w, s) + w->delta_at + (size_t)net->layer[l].delta_offset * w->shard_batch;
}

static float *shard_grads(const fm_net *net, const fm_work *w, int s) {
  if (s == 0) return net->grads;
  return w->base + w->grad_at + round16((size_t)net->n_params) * (s - 1);
}

float *fm_net_bn_stats(const fm_net *net, const fm_work *w, const fm_layer *L) {
  (void)net;
  return w->base + w->bn_at + L->stats_offset;
}

/* A 64-bit mix of seed, layer and image (the murmur3 finaliser): the key of that image's mask in
 * that dropout layer, the same whatever shard computes it. */
uint64_t fm_net_mask_key(uint64_t seed, int layer, int64_t image) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(layer + 1);
  z ^= (uint64_t)image * 0xd1b54a32d192ed03ULL;
  z ^= z >> 33;
  z *= 0xff51afd7ed558ccdULL;
  z ^= z >> 33;
  z *= 0xc4ceb9fe1a85ec53ULL;
  z ^= z >> 33;
  return z;
}

/* Forward over layers [from, to) of one shard. */
static void forward_range(const fm_pass *p, const float *x, int from, int to) {
  const fm_net *net = p->net;
  for (int l = from; l < to; l++) {
    const fm_layer *L = &net->layer[l];
    const float *in[FM_NET_MAX_INPUTS];
    for (int k = 0; k < L->n_in; k++) in[k] = layer_out(net, p->w, p->s, L->in[k], x);
    fm_op_of(L->spec.kind)->forward(p, L, l, in, layer_out(net, p->w, p->s, l, x));
  }
}

/* Whether input k's gradient is wanted: for the network input only in saliency; for a layer when
 * something it depends on has parameters. */
static int wants_dx(const fm_net *net, const fm_layer *L, int k, int input_grad) {
  int t = L->bwd_target[k];
  return input_grad || (t >= 0 && net->layer[t].grad_upstream);
}

/* Backward over layers hi down to lo + 1 of one shard, from the output gradients already in
 * place. grads: where parameter gradients go (NULL: skip them). */
static void backward_range(const fm_pass *p, const float *x, int hi, int lo, int input_grad) {
  const fm_net *net = p->net;
  const fm_work *w = p->w;
  float *tmp = shard_base(w, p->s) + w->tmp_at;
  for (int l = hi; l > lo; l--) {
    const fm_layer *L = &net->layer[l];
    if (L->skip_backward) continue;
    const fm_op *op = fm_op_of(L->spec.kind);
    const float *in[FM_NET_MAX_INPUTS];
    float *dx[FM_NET_MAX_INPUTS], *target[FM_NET_MAX_INPUTS];
    int any = 0;
    for (int k = 0; k < L->n_in; k++) {
      in[k] = layer_out(net, w, p->s, L->in[k], x);
      target[k] = NULL;
      dx[k] = NULL;
      if (!wants_dx(net, L, k, input_grad)) continue;
      target[k] = layer_delta(net, w, p->s, L->bwd_target[k]);
      dx[k] = L->accumulate[k] ? tmp : target[k];
      any = 1;
    }
    float *gw = p->grads && (op->flags & FM_OP_PARAMS) ? p->grads + L->offset : NULL;
    /* Batch norm's parameter gradients come from the whole batch's sums (bwd_combine). */
    if (op->bwd_combine && p->train) gw = NULL;
    if (!any && !gw) continue;
    float *gb = gw && L->n_biases ? gw + L->n_weights : NULL;
    float *dy = layer_delta(net, w, p->s, l);
    for (int k = 0; k < L->n_in; k++) {
      /* Two accumulating inputs would share the buffer: do them one at a time. */
      if (!dx[k] || !L->accumulate[k]) continue;
      float *one[FM_NET_MAX_INPUTS] = {NULL};
      one[k] = tmp;
      op->backward(p, L, l, in, layer_out(net, w, p->s, l, x), dy, one, gw, gb);
      gw = gb = NULL;
      const size_t count = (size_t)p->cnt * (size_t)(L->bwd_target[k] >= 0
                                                         ? net->layer[L->bwd_target[k]].out_size
                                                         : net->in_size);
      float *t = target[k];
#pragma omp simd
      for (size_t j = 0; j < count; j++) t[j] += tmp[j];
      dx[k] = NULL;
    }
    int rest = gw != NULL;
    for (int k = 0; k < L->n_in; k++) rest |= dx[k] != NULL;
    if (rest) op->backward(p, L, l, in, layer_out(net, w, p->s, l, x), dy, dx, gw, gb);
  }
}

/* ---- running shards in parallel ---- */

typedef enum { JOB_FORWARD, JOB_GRADIENT, JOB_PREDICT, JOB_SALIENCY } job_kind;

typedef struct job {
  job_kind kind;
  const fm_net *net;
  fm_work *w;
  const float *x;
  const uint8_t *y;   /* labels (gradient, predict) or classes (saliency) */
  int n;
  int train;
  uint64_t seed;
  float *probs;       /* predict */
  uint8_t *pred;
  float *dx;          /* saliency */
  const fm_dataset *d; /* gather the images of view rows `rows` instead of reading x */
  const int32_t *rows;
  int phase;          /* of a phased pass (see run_shard) */
} job;

/* The index of the j-th batch-norm layer (a phase boundary). */
static int nth_bn(const fm_net *net, int j) {
  for (int l = 0; l < net->n_layers; l++)
    if (net->layer[l].spec.kind == FM_LAYER_BATCHNORM && j-- == 0) return l;
  return -1;
}

/* The shard's input images: gathered from the dataset by the shard itself in the first phase. */
static const float *shard_input(const job *jb, int s, int first, int cnt) {
  const fm_net *net = jb->net;
  fm_work *w = jb->w;
  if (!jb->d) return jb->x + (size_t)first * net->in_size;
  float *xs = shard_base(w, s) + w->in_at;
  /* Each shard converts its own images: the uint8 -> float work runs in parallel too. */
  if (jb->phase == 0) {
    fm_dataset_gather(jb->d, jb->rows + first, cnt, xs, w->labels + first);
    if (jb->kind == JOB_GRADIENT && fm_augment_active(&w->augment)) {
      /* the shard's gradient buffer for accumulations is free until the backward pass */
      float *scratch = shard_base(w, s) + w->tmp_at;
      for (int j = 0; j < cnt; j++)
        fm_augment_image(&w->augment, jb->seed, (uint64_t)fm_dataset_row(jb->d, jb->rows[first + j]),
                         net->in_h, net->in_w, net->in_c, xs + (size_t)j * net->in_size, scratch);
    }
  }
  return xs;
}

/* Phases of a training pass over a network with m batch-norm layers b[0] < ... < b[m-1]:
 *   phase j < m:   forward from b[j-1] (its normalisation) to b[j], then b[j]'s partial sums;
 *   phase m:       forward to the end, the loss, backward down to b[m-1] and its partial sums;
 *   phase m+1+j:   backward from b[m-1-j] (its input gradient) down to b[m-2-j], its sums.
 * Between phases the sums of the whole batch are combined. Without batch norm (or outside
 * training) there is one phase: the whole pass. */
static void run_shard(const job *jb, int s) {
  const fm_net *net = jb->net;
  fm_work *w = jb->w;
  int first = shard_first(jb->n, w->shards, s), cnt = shard_first(jb->n, w->shards, s + 1) - first;
  const int m = jb->train ? net->n_batchnorm : 0, ph = jb->phase, N = net->n_layers;
  FM_ASSERT(jb->n <= w->batch && first >= 0 && cnt >= 0 && first + cnt <= jb->n);
  FM_ASSERT(cnt <= w->shard_batch);
  if (ph == 0 || ph == m) {
    w->loss[s] = 0.0;
    w->correct[s] = 0;
  }
  if (cnt == 0) {
    if (jb->kind == JOB_GRADIENT && s == 0 && ph == 0)
      memset(net->grads, 0, sizeof(float) * (size_t)net->n_params);
    return;
  }
  const float *x = shard_input(jb, s, first, cnt);
  fm_pass p = {.net = net, .w = w, .s = s, .cnt = cnt, .first = first, .train = jb->train,
               .seed = jb->seed, .scratch = shard_base(w, s) + w->scratch_at,
               .partial = (double *)(w->base + w->partial_at)};
  const int input_grad = jb->kind == JOB_SALIENCY;
  if (jb->kind == JOB_GRADIENT) p.grads = shard_grads(net, w, s);
  if (ph < m) {
    int from = ph == 0 ? 0 : nth_bn(net, ph - 1), b = nth_bn(net, ph);
    forward_range(&p, x, from, b);
    const fm_layer *B = &net->layer[b];
    fm_op_of(B->spec.kind)->fwd_partial(&p, B, layer_out(net, w, s, B->in[0], x));
    return;
  }
  if (ph == m) {
    forward_range(&p, x, m ? nth_bn(net, m - 1) : 0, N);
    if (jb->kind == JOB_FORWARD) return;
    const float *logits = layer_out(net, w, s, N - 1, x);
    float *delta = layer_delta(net, w, s, N - 1);
    const int k = net->classes;
    switch (jb->kind) {
      case JOB_GRADIENT:
        w->loss[s] = fm_softmax_xent_smoothed(cnt, k, logits, jb->y + first, w->label_smoothing,
                                              1.0f / (float)jb->n, delta, &w->correct[s]);
        break;
      case JOB_PREDICT:
        if (jb->y) w->loss[s] = fm_softmax_xent(cnt, k, logits, jb->y + first, 1.0f, NULL, NULL);
        for (int j = 0; j < cnt; j++) {
          const float *z = logits + (size_t)j * k;
          int best = 0;
          for (int c = 1; c < k; c++)
            if (z[c] > z[best]) best = c;
          if (jb->pred) jb->pred[first + j] = (uint8_t)best;
          if (jb->y) w->correct[s] += best == jb->y[first + j];
        }
        if (jb->probs) fm_softmax(cnt, k, logits, jb->probs + (size_t)first * k);
        return;
      case JOB_SALIENCY:
        memset(delta, 0, sizeof(float) * (size_t)cnt * k);
        for (int j = 0; j < cnt; j++) delta[(size_t)j * k + jb->y[first + j]] = 1.0f;
        break;
      default: return;
    }
  }
  /* backward: phase m starts at the last layer, phase m+1+j at batch-norm layer b[m-1-j] */
  int hi = ph == m ? N - 1 : nth_bn(net, m - 1 - (ph - m - 1));
  int j = ph - m; /* 0 for phase m */
  int lo = m - 1 - j >= 0 ? nth_bn(net, m - 1 - j) : -1;
  backward_range(&p, x, hi, lo, input_grad);
  if (lo >= 0) {
    const fm_layer *B = &net->layer[lo];
    fm_op_of(B->spec.kind)->bwd_partial(&p, B, layer_out(net, w, s, B->in[0], x),
                                        layer_delta(net, w, s, lo));
  }
  if (input_grad && lo < 0)
    memcpy(jb->dx + (size_t)first * net->in_size, layer_delta(net, w, s, -1),
           sizeof(float) * (size_t)cnt * net->in_size);
}

/* Denormal floats take a slow microcode path on x86 (over 100 cycles per operation), and training
 * makes them: Adam's first moment of a weight whose gradient is always 0 (a pixel that is black in
 * every image) decays geometrically through the denormal range. The engine's work items therefore
 * run with denormals flushed to zero (MXCSR FTZ and DAZ), restoring the caller's mode after. */
#if defined(__SSE2__)
#include <xmmintrin.h>
unsigned fm_fp_enter(void) {
  unsigned old = _mm_getcsr();
  _mm_setcsr(old | 0x8040); /* FTZ | DAZ */
  return old;
}
void fm_fp_leave(unsigned old) { _mm_setcsr(old); }
#else
unsigned fm_fp_enter(void) { return 0; }
void fm_fp_leave(unsigned old) { (void)old; }
#endif

static void shard_item(void *ctx, int s) {
  unsigned fp = fm_fp_enter();
  run_shard(ctx, s);
  fm_fp_leave(fp);
}

/* OpenBLAS as the product kernel inside parallel shards: its own threads are pinned to 1 meanwhile
 * so the two levels do not oversubscribe the cores. With one shard OpenBLAS keeps its threads
 * (the "threads inside the product" mode). Returns the count to restore, or 0. */
static int pin_blas(int shards) {
  if (shards < 2 || fm_gemm_current() != FM_GEMM_BLAS) return 0;
  int saved = fm_blas_threads();
  fm_blas_set_threads(1);
  return saved;
}

static void unpin_blas(int saved) {
  if (saved) fm_blas_set_threads(saved);
}

/* The shards of the call that have images, in order (the gradient buffers that count). */
static int shards_with_images(const job *jb, int *list) {
  int k = 0;
  for (int s = 0; s < jb->w->shards; s++)
    if (shard_first(jb->n, jb->w->shards, s + 1) > shard_first(jb->n, jb->w->shards, s))
      list[k++] = s;
  return k;
}

/* The combining step between two phases (on the calling thread, in a fixed order). */
static void combine_phase(job *jb) {
  const fm_net *net = jb->net;
  const int m = net->n_batchnorm, ph = jb->phase;
  const double *partial = (const double *)(jb->w->base + jb->w->partial_at);
  unsigned fp = fm_fp_enter();
  if (ph < m) {
    const fm_layer *B = &net->layer[nth_bn(net, ph)];
    fm_op_of(B->spec.kind)->fwd_combine(net, jb->w, B, jb->n, partial);
  } else {
    const fm_layer *B = &net->layer[nth_bn(net, m - 1 - (ph - m))];
    int with[FM_NET_MAX_SHARDS], k = shards_with_images(jb, with);
    float *gw = shard_grads(net, jb->w, with[0]) + B->offset;
    fm_op_of(B->spec.kind)->bwd_combine(net, jb->w, B, jb->n, partial, gw, gw + B->n_weights);
    /* The other shards' buffers hold zeros there, so the sum over shards is the batch's. */
    for (int i = 1; i < k; i++)
      memset(shard_grads(net, jb->w, with[i]) + B->offset, 0,
             sizeof(float) * (size_t)(B->n_weights + B->n_biases));
  }
  fm_fp_leave(fp);
}

/* Runs every phase of a job, each over every shard in parallel. */
static void run_job(job *jb) {
  const fm_net *net = jb->net;
  int saved = pin_blas(jb->w->shards);
  const int m = jb->train ? net->n_batchnorm : 0;
  int phases = m == 0 ? 1 : jb->kind == JOB_FORWARD ? m + 1 : 2 * m + 1;
  for (int ph = 0; ph < phases; ph++) {
    jb->phase = ph;
    fm_parallel_for(jb->w->shards, jb->w->shards, shard_item, (void *)jb);
    if (ph + 1 < phases) combine_phase(jb);
  }
  unpin_blas(saved);
}

/* ---- public passes ---- */

static int check_call(const fm_net *net, const fm_work *w, const float *x, int64_t n,
                      int64_t limit, const char *what) {
  if (net->n_layers < 1) return fm_fail("%s: the network has no layers", what);
  if (!net->params) return fm_fail("%s: the network has no parameter buffer", what);
  if (net->n_state > 0 && !net->state) return fm_fail("%s: the network has no state buffer", what);
  if (!w->base) return fm_fail("%s: the workspace is not initialised", what);
  if (n < 0 || n > limit)
    return fm_fail("%s: %lld images, but the workspace holds batches of at most %d", what,
                   (long long)n, w->batch);
  if (n > 0 && !x) return fm_fail("%s: no input images", what);
  return FM_OK;
}

static int check_labels(const uint8_t *y, int64_t n, int classes, const char *what) {
  if (!y) return fm_fail("%s: no labels", what);
  for (int64_t i = 0; i < n; i++)
    if (y[i] >= classes)
      return fm_fail("%s: label %d of image %lld is not a class of this network (0 to %d)", what,
                     y[i], (long long)i, classes - 1);
  return FM_OK;
}

int fm_net_forward(const fm_net *net, fm_work *w, const float *x, int n, int train,
                   uint64_t seed) {
  if (check_call(net, w, x, n, w->batch, "forward") != FM_OK) return FM_ERR;
  job jb = {.kind = JOB_FORWARD, .net = net, .w = w, .x = x, .n = n, .train = train, .seed = seed};
  if (n > 0) run_job(&jb);
  w->n = n;
  w->forward_done = 1;
  return FM_OK;
}

const float *fm_net_activation(const fm_net *net, const fm_work *w, int layer, int i) {
  if (!w->forward_done) {
    fm_fail("activation: no forward pass has been made with this workspace");
    return NULL;
  }
  if (layer < 0 || layer >= net->n_layers) {
    fm_fail("activation: layer %d out of range (the network has %d)", layer + 1, net->n_layers);
    return NULL;
  }
  if (i < 0 || i >= w->n) {
    fm_fail("activation: image %d out of range (the last pass had %d)", i + 1, w->n);
    return NULL;
  }
  if (net->layer[layer].act_offset < 0) {
    fm_fail("activation: layer %d is a view of the network input", layer + 1);
    return NULL;
  }
  int s = 0;
  while (shard_first(w->n, w->shards, s + 1) <= i) s++;
  int j = i - shard_first(w->n, w->shards, s);
  return layer_out(net, w, s, layer, NULL) + (size_t)j * net->layer[layer].out_size;
}

/* ---- reducing the shards' gradients, and updating ----
 * The parameters are cut into S fixed blocks (S = shards), block b handled by one parallel item.
 * Its gradient is the sum of the shards' gradients, always added in shard order, one L1-sized
 * chunk at a time; in a training step each chunk goes straight into the optimizer, so the summed
 * gradient is never written out. The blocks depend only on the shard count, so every sum and the
 * order of its terms do too. */

enum { CHUNK = 1024 };

static void block_range(const fm_net *net, int b, int blocks, int64_t *lo, int64_t *hi) {
  *lo = b * net->n_params / blocks;
  *hi = (b + 1) * net->n_params / blocks;
  FM_ASSERT(0 <= *lo && *lo <= *hi && *hi <= net->n_params);
}

typedef struct step_ctx {
  fm_net *net;
  fm_work *w;
  fm_optim *opt;
  float *state;
  fm_optim_coef coef;
  const float *src[FM_NET_MAX_SHARDS]; /* the gradients of the shards that had images */
  int nsrc;
  double partial[FM_NET_MAX_SHARDS];
  int64_t bad[FM_NET_MAX_SHARDS];
} step_ctx;

/* acc = sum of the shards' gradients over [at, at + len). */
static void sum_chunk(const step_ctx *c, int64_t at, int len, float *acc) {
  memcpy(acc, c->src[0] + at, sizeof(float) * (size_t)len);
  for (int k = 1; k < c->nsrc; k++) {
    const float *g = c->src[k] + at;
#pragma omp simd
    for (int i = 0; i < len; i++) acc[i] += g[i];
  }
}

/* fm_net_gradient: block b of the sum into net->grads (shard 0's buffer: chunks go through acc
 * because net->grads is also a source). */
static void reduce_item(void *ctx, int b) {
  step_ctx *c = ctx;
  unsigned fp = fm_fp_enter();
  int64_t lo, hi;
  block_range(c->net, b, c->w->shards, &lo, &hi);
  float acc[CHUNK];
  double sq = 0.0;
  for (int64_t at = lo; at < hi; at += CHUNK) {
    int len = (int)(hi - at < CHUNK ? hi - at : CHUNK);
    sum_chunk(c, at, len, acc);
    sq += fm_sum_squares(acc, len);
    memcpy(c->net->grads + at, acc, sizeof(float) * (size_t)len);
  }
  c->partial[b] = sq;
  fm_fp_leave(fp);
}

/* Weight decay applies to the weights of dense and convolution layers; biases and batch norm's
 * scales and shifts keep their values. */
static int decays(const fm_layer *L, int segment) {
  return segment == 0 && L->spec.kind != FM_LAYER_BATCHNORM;
}

/* A training step: block b summed chunk by chunk and updated at once. The chunks follow the
 * layers' weight and bias segments, which decay differently. */
static void update_item(void *ctx, int b) {
  step_ctx *c = ctx;
  const fm_net *net = c->net;
  unsigned fp = fm_fp_enter();
  int64_t lo, hi, bad = 0, N = net->n_params;
  block_range(net, b, c->w->shards, &lo, &hi);
  const float wd = (float)c->opt->weight_decay;
  float acc[CHUNK];
  double sq = 0.0;
  int adam = c->opt->kind == FM_OPTIM_ADAM;
  for (int l = 0; l < net->n_layers; l++) {
    const fm_layer *L = &net->layer[l];
    int64_t seg[2][2] = {{L->offset, L->offset + L->n_weights},
                         {L->offset + L->n_weights, L->offset + L->n_weights + L->n_biases}};
    for (int k = 0; k < 2; k++) {
      int64_t a = seg[k][0] > lo ? seg[k][0] : lo, z = seg[k][1] < hi ? seg[k][1] : hi;
      for (int64_t at = a; at < z; at += CHUNK) {
        int len = (int)(z - at < CHUNK ? z - at : CHUNK);
        sum_chunk(c, at, len, acc);
        sq += fm_sum_squares(acc, len);
        float *s1 = c->state ? c->state + at : NULL;
        float *s2 = c->state && adam ? c->state + N + at : NULL;
        bad += fm_optim_apply_slice(c->opt, &c->coef, net->params + at, acc, s1, s2, len,
                                    decays(L, k) ? wd : 0.0f);
      }
    }
  }
  c->partial[b] = sq;
  c->bad[b] = bad;
  fm_fp_leave(fp);
}

/* Forward + backward on every shard (in phases when there is batch norm), then either the
 * reduction into net->grads (opt NULL) or the update. A loss that is not finite stops before any
 * update; a gradient that is not finite shows in the update, which then leaves those parameters
 * alone. */
static void gradient_step(fm_net *net, fm_work *w, job *jb, fm_optim *opt, float *state,
                          fm_batch_stats *st) {
  const int S = w->shards, n = jb->n;
  step_ctx c = {.net = net, .w = w, .opt = opt, .state = state};
  int with[FM_NET_MAX_SHARDS];
  c.nsrc = shards_with_images(jb, with);
  for (int k = 0; k < c.nsrc; k++) c.src[k] = shard_grads(net, w, with[k]);
  run_job(jb);
  double loss = 0.0;
  int correct = 0;
  for (int s = 0; s < S; s++) {
    loss += w->loss[s];
    correct += w->correct[s];
  }
  st->n = n;
  st->loss = loss / n;
  st->correct = correct;
  w->n = n;
  w->forward_done = 1;
  if (opt && !isfinite(st->loss)) {
    st->diverged = 1;
    st->grad_norm = NAN;
    return;
  }
  if (opt) fm_optim_begin(opt, &c.coef);
  fm_parallel_for(S, S, opt ? update_item : reduce_item, &c);
  double sq = 0.0;
  for (int b = 0; b < S; b++) {
    sq += c.partial[b];
    if (opt && c.bad[b]) st->diverged = 2;
  }
  st->grad_norm = sqrt(sq);
  if (!opt) st->diverged = !isfinite(st->loss) || !isfinite(st->grad_norm);
}

int fm_net_gradient(fm_net *net, fm_work *w, const float *x, const uint8_t *y, int n,
                    uint64_t seed, fm_batch_stats *st) {
  memset(st, 0, sizeof *st);
  if (check_call(net, w, x, n, w->batch, "gradient") != FM_OK) return FM_ERR;
  if (n < 1) return fm_fail("gradient: needs at least one image");
  if (!net->grads) return fm_fail("gradient: the network has no gradient buffer");
  if (check_labels(y, n, net->classes, "gradient") != FM_OK) return FM_ERR;
  if (w->model_parallel) {
    fm_net_mp_step(net, w, x, NULL, NULL, y, n, seed, NULL, NULL, st);
    return FM_OK;
  }
  job jb = {.kind = JOB_GRADIENT, .net = net, .w = w, .x = x, .y = y, .n = n, .train = 1,
            .seed = seed};
  gradient_step(net, w, &jb, NULL, NULL, st);
  return FM_OK;
}

static int check_step(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state, const void *x,
                      int n) {
  if (fm_optim_check(opt) != FM_OK) return FM_ERR;
  if (!opt_state && fm_optim_state_floats(opt, net->n_params) > 0)
    return fm_fail("train step: the optimizer needs a state buffer");
  if (check_call(net, w, x, n, w->batch, "train step") != FM_OK) return FM_ERR;
  if (n < 1) return fm_fail("train step: needs at least one image");
  if (!net->grads) return fm_fail("train step: the network has no gradient buffer");
  return FM_OK;
}

int fm_net_train_step(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state, const float *x,
                      const uint8_t *y, int n, uint64_t seed, fm_batch_stats *st) {
  memset(st, 0, sizeof *st);
  if (check_step(net, w, opt, opt_state, x, n) != FM_OK) return FM_ERR;
  if (check_labels(y, n, net->classes, "train step") != FM_OK) return FM_ERR;
  if (w->model_parallel) {
    fm_net_mp_step(net, w, x, NULL, NULL, y, n, seed, opt, opt_state, st);
    return FM_OK;
  }
  job jb = {.kind = JOB_GRADIENT, .net = net, .w = w, .x = x, .y = y, .n = n, .train = 1,
            .seed = seed};
  gradient_step(net, w, &jb, opt, opt_state, st);
  return FM_OK;
}

int fm_net_train_step_rows(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state,
                           const fm_dataset *d, const int32_t *rows, int n, uint64_t seed,
                           fm_batch_stats *st) {
  memset(st, 0, sizeof *st);
  if (check_step(net, w, opt, opt_state, rows, n) != FM_OK) return FM_ERR;
  if (d->rows != net->in_h || d->cols != net->in_w || net->in_c != 1)
    return fm_fail("train step: images of %lldx%lld do not fit a network taking %dx%dx%d",
                   (long long)d->rows, (long long)d->cols, net->in_h, net->in_w, net->in_c);
  for (int i = 0; i < n; i++) {
    if (rows[i] < 0 || rows[i] >= d->n)
      return fm_fail("train step: row %d (entry %d) is not in the dataset (0 to %lld)", rows[i],
                     i, (long long)d->n - 1);
    uint8_t label = d->labels[fm_dataset_row(d, rows[i])];
    if (label >= net->classes)
      return fm_fail("train step: label %d of image %d is not a class of this network (0 to %d)",
                     label, rows[i] + 1, net->classes - 1);
  }
  if (w->model_parallel && !fm_augment_active(&w->augment)) {
    fm_net_mp_step(net, w, NULL, d, rows, NULL, n, seed, opt, opt_state, st);
    return FM_OK;
  }
  job jb = {.kind = JOB_GRADIENT, .net = net, .w = w, .y = w->labels, .n = n, .train = 1,
            .seed = seed, .d = d, .rows = rows};
  gradient_step(net, w, &jb, opt, opt_state, st);
  return FM_OK;
}

int fm_net_predict(const fm_net *net, fm_work *w, const float *x, int64_t n, float *probs,
                   uint8_t *pred, const uint8_t *labels, double *loss_sum, int64_t *correct) {
  if (check_call(net, w, x, n, INT64_MAX, "predict") != FM_OK) return FM_ERR;
  if (labels && check_labels(labels, n, net->classes, "predict") != FM_OK) return FM_ERR;
  double loss = 0.0;
  int64_t right = 0;
  for (int64_t i0 = 0; i0 < n; i0 += w->batch) {
    int cnt = (int)(n - i0 < w->batch ? n - i0 : w->batch);
    job jb = {.kind = JOB_PREDICT, .net = net, .w = w, .x = x + i0 * net->in_size,
              .y = labels ? labels + i0 : NULL, .n = cnt,
              .probs = probs ? probs + i0 * net->classes : NULL, .pred = pred ? pred + i0 : NULL};
    run_job(&jb);
    w->n = cnt;
    w->forward_done = 1;
    for (int s = 0; s < w->shards; s++) {
      loss += w->loss[s];
      right += w->correct[s];
    }
  }
  if (loss_sum) *loss_sum = loss;
  if (correct) *correct = right;
  return FM_OK;
}

int fm_net_input_gradient(const fm_net *net, fm_work *w, const float *x, int n, const uint8_t *cls,
                          float *dx) {
  if (check_call(net, w, x, n, w->batch, "input gradient") != FM_OK) return FM_ERR;
  if (check_labels(cls, n, net->classes, "input gradient") != FM_OK) return FM_ERR;
  if (!dx && n > 0) return fm_fail("input gradient: no output buffer");
  job jb = {.kind = JOB_SALIENCY, .net = net, .w = w, .x = x, .y = cls, .n = n, .dx = dx};
  if (n > 0) run_job(&jb);
  w->n = n;
  w->forward_done = 1;
  return FM_OK;
}
