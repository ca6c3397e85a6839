/* fm_net: building a sequential network from specs, its workspace, and the forward, backward,
 * training, prediction and saliency passes, each split over threads by fixed shards of the batch
 * (see fm_net.h for the memory and determinism rules). */
#include "fm_net.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_net_mp.h"
#include "fm_threads.h"

/* Areas inside the workspace start on 64-byte boundaries. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The one table of layer kinds, indexed by kind (row 0 is no kind): every list of names, in error
 * messages and summaries, is made from it. */
static const struct {
  const char *name; /* in specs and files */
  const char *type; /* in a summary */
} layer_kinds[FM_LAYER_KINDS + 1] = {
    [FM_LAYER_DENSE] = {"dense", "Dense"},       [FM_LAYER_CONV2D] = {"conv2d", "Conv2D"},
    [FM_LAYER_MAXPOOL] = {"maxpool", "MaxPooling2D"}, [FM_LAYER_RELU] = {"relu", "ReLU"},
    [FM_LAYER_DROPOUT] = {"dropout", "Dropout"}, [FM_LAYER_FLATTEN] = {"flatten", "Flatten"}};

static int kind_known(fm_layer_kind kind) { return (int)kind >= 1 && (int)kind <= FM_LAYER_KINDS; }

const char *fm_layer_kind_name(fm_layer_kind kind) {
  return kind_known(kind) ? layer_kinds[kind].name : "unknown";
}

const char *fm_layer_type_name(fm_layer_kind kind) {
  return kind_known(kind) ? layer_kinds[kind].type : "unknown";
}

fm_layer_kind fm_layer_kind_of(const char *name) {
  for (int k = 1; k <= FM_LAYER_KINDS; k++)
    if (strcmp(layer_kinds[k].name, name) == 0) return (fm_layer_kind)k;
  return (fm_layer_kind)0;
}

const char *fm_layer_describe(const fm_layer *L, char *buf, size_t size) {
  const fm_layer_spec *s = &L->spec;
  switch (s->kind) {
    case FM_LAYER_DENSE: snprintf(buf, size, "dense %d", s->units); break;
    case FM_LAYER_CONV2D:
      snprintf(buf, size, "conv2d %dx%d, %d filters, %s", s->kh, s->kw ? s->kw : s->kh, s->units,
               s->same ? "same" : "valid");
      break;
    case FM_LAYER_MAXPOOL: snprintf(buf, size, "maxpool %dx%d", s->pool, s->pool); break;
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

static int layer_fail_shape(int i, const fm_layer_spec *s, const char *what, int h, int w, int c) {
  return fm_fail("layer %d (%s): %s (input %dx%dx%d)", i + 1, fm_layer_kind_name(s->kind), what, h,
                 w, c);
}

/* The fields of a spec, and which kinds use them: a field its kind does not use must be 0, so that
 * a mistaken spec (or a corrupt file) is refused rather than half read. */
enum { USES_UNITS = 1, USES_KERNEL = 2, USES_SAME = 4, USES_POOL = 8, USES_RATE = 16, USES_INIT = 32 };

static int spec_fields(fm_layer_kind kind) {
  switch (kind) {
    case FM_LAYER_DENSE: return USES_UNITS | USES_INIT;
    case FM_LAYER_CONV2D: return USES_UNITS | USES_KERNEL | USES_SAME | USES_INIT;
    case FM_LAYER_MAXPOOL: return USES_POOL;
    case FM_LAYER_DROPOUT: return USES_RATE;
    default: return 0;
  }
}

/* An int field of layer i: within [lo, hi] when its kind uses it, else 0. */
static int check_field(int i, const fm_layer_spec *s, int used, const char *field, int v, int lo,
                       int hi) {
  const char *kind = fm_layer_kind_name(s->kind);
  if (!used && v != 0)
    return fm_fail("layer %d (%s): %s is not used by %s layers and must be 0 (got %d)", i + 1,
                   kind, field, kind, v);
  if (used && (v < lo || v > hi))
    return fm_fail("layer %d (%s): %s must be %d to %d (got %d)", i + 1, kind, field, lo, hi, v);
  return FM_OK;
}

/* The spec alone: a known kind, every field in its range, unused fields 0. */
static int check_spec(int i, const fm_layer_spec *s) {
  if (!kind_known(s->kind))
    return fm_fail("layer %d: unknown layer kind %d (expected 1 to %d)", i + 1, (int)s->kind,
                   FM_LAYER_KINDS);
  const int f = spec_fields(s->kind), dim = FM_NET_MAX_DIM;
  const char *units = s->kind == FM_LAYER_CONV2D ? "filters" : "units";
  if (check_field(i, s, f & USES_UNITS, units, s->units, 1, dim) != FM_OK ||
      check_field(i, s, f & USES_KERNEL, "kernel height", s->kh, 1, dim) != FM_OK ||
      check_field(i, s, f & USES_KERNEL, "kernel width (0: square)", s->kw, 0, dim) != FM_OK ||
      check_field(i, s, f & USES_SAME, "padding (0 valid, 1 same)", s->same, 0, 1) != FM_OK ||
      check_field(i, s, f & USES_POOL, "pool size (0: 2)", s->pool, 0, dim) != FM_OK ||
      check_field(i, s, f & USES_INIT, "init (0 auto, 1 He, 2 Glorot)", (int)s->init, 0, 2) != FM_OK)
    return FM_ERR;
  if (f & USES_RATE) {
    if (!(s->rate >= 0.0f && s->rate < 1.0f))
      return fm_fail("layer %d (dropout): rate must be in [0, 1) (got %g)", i + 1, (double)s->rate);
  } else if (s->rate != 0.0f) {
    return fm_fail("layer %d (%s): rate is not used by %s layers and must be 0 (got %g)", i + 1,
                   fm_layer_kind_name(s->kind), fm_layer_kind_name(s->kind), (double)s->rate);
  }
  return FM_OK;
}

/* Dense: every input to every unit. */
static int build_dense(fm_layer *L, int i) {
  const int units = L->spec.units;
  if (!fm_mul_within(L->in_size, units, FM_NET_MAX_PARAMS, &L->n_weights))
    return fm_fail("layer %d (dense): %lld inputs x %d units is over %lld weights, the most a "
                   "network may have", i + 1, (long long)L->in_size, units,
                   (long long)FM_NET_MAX_PARAMS);
  L->out_h = L->out_w = 1;
  L->out_c = units;
  L->n_biases = units;
  L->fan_in = (int)L->in_size; /* at most FM_NET_MAX_IMAGE_FLOATS */
  L->fan_out = units;
  L->macs = L->n_weights;
  return FM_OK;
}

/* Conv2d: the geometry (which keeps every size inside the product's int), then the network's own
 * limits on weights, the patch matrix of one image and the multiply-adds. */
static int build_conv(fm_layer *L, int i) {
  const fm_layer_spec *s = &L->spec;
  const int kh = s->kh, kw = s->kw ? s->kw : s->kh, units = s->units;
  if (fm_conv_geom_init(&L->conv, L->in_h, L->in_w, L->in_c, kh, kw, units, s->same) != FM_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fm_error());
    return fm_fail("layer %d: %s", i + 1, msg);
  }
  const fm_conv_geom *g = &L->conv;
  int64_t macs;
  if (!fm_mul_within(g->k, units, FM_NET_MAX_PARAMS, &L->n_weights))
    return fm_fail("layer %d (conv2d): a %dx%dx%d kernel with %d filters is over %lld weights, the "
                   "most a network may have", i + 1, kh, kw, L->in_c, units,
                   (long long)FM_NET_MAX_PARAMS);
  /* fm_conv_geom_init has held this product to INT32_MAX already. */
  const int64_t patch = (int64_t)g->oh * g->ow * g->k;
  if (patch > FM_NET_MAX_IMAGE_FLOATS)
    return fm_fail("layer %d (conv2d): the patch matrix of one image (%dx%d pixels x %d values) is "
                   "over %lld floats", i + 1, g->oh, g->ow, g->k,
                   (long long)FM_NET_MAX_IMAGE_FLOATS);
  if (!fm_mul_within((int64_t)g->oh * g->ow, L->n_weights, FM_NET_MAX_MACS, &macs))
    return fm_fail("layer %d (conv2d): %dx%d pixels x %lld weights is over %lld multiply-adds per "
                   "image", i + 1, g->oh, g->ow, (long long)L->n_weights,
                   (long long)FM_NET_MAX_MACS);
  L->spec.kw = kw;
  L->out_h = g->oh;
  L->out_w = g->ow;
  L->out_c = units;
  L->n_biases = units;
  L->fan_in = g->k;
  L->fan_out = (int)((int64_t)kh * kw * units); /* at most n_weights */
  L->macs = macs;
  return FM_OK;
}

/* Fills in one layer from its spec and the current shape; *act is the running size of the
 * activation area (per image). */
static int build_layer(fm_net *net, int i, const fm_layer_spec *spec, int64_t *act) {
  fm_layer *L = &net->layer[i];
  memset(L, 0, sizeof *L);
  L->spec = *spec;
  if (check_spec(i, spec) != FM_OK) return FM_ERR;
  const fm_layer *prev = i > 0 ? &net->layer[i - 1] : NULL;
  L->in_h = prev ? prev->out_h : net->in_h;
  L->in_w = prev ? prev->out_w : net->in_w;
  L->in_c = prev ? prev->out_c : net->in_c;
  L->in_size = prev ? prev->out_size : net->in_size;
  FM_ASSERT(L->in_size == (int64_t)L->in_h * L->in_w * L->in_c);
  FM_ASSERT(L->in_size >= 1 && L->in_size <= FM_NET_MAX_IMAGE_FLOATS);
  int64_t in_act = prev ? prev->act_offset : -1; /* -1: the network input */
  int h = L->in_h, w = L->in_w, c = L->in_c;
  switch (spec->kind) {
    case FM_LAYER_DENSE:
      if (build_dense(L, i) != FM_OK) return FM_ERR;
      break;
    case FM_LAYER_CONV2D:
      if (build_conv(L, i) != FM_OK) return FM_ERR;
      break;
    case FM_LAYER_MAXPOOL: {
      int p = spec->pool ? spec->pool : 2;
      if (h < p || w < p) return layer_fail_shape(i, spec, "input smaller than the window", h, w, c);
      L->spec.pool = p;
      L->out_h = h / p;
      L->out_w = w / p;
      L->out_c = c;
      break;
    }
    case FM_LAYER_RELU:
    case FM_LAYER_FLATTEN:
      L->out_h = spec->kind == FM_LAYER_FLATTEN ? 1 : h;
      L->out_w = spec->kind == FM_LAYER_FLATTEN ? 1 : w;
      L->out_c = spec->kind == FM_LAYER_FLATTEN ? (int)L->in_size : c;
      break;
    case FM_LAYER_DROPOUT:
      L->out_h = h;
      L->out_w = w;
      L->out_c = c;
      break;
  }
  int64_t hw;
  if (!fm_mul_within(L->out_h, L->out_w, FM_NET_MAX_IMAGE_FLOATS, &hw) ||
      !fm_mul_within(hw, L->out_c, FM_NET_MAX_IMAGE_FLOATS, &L->out_size))
    return fm_fail("layer %d (%s): an output of %dx%dx%d is over %lld floats per image", i + 1,
                   fm_layer_kind_name(spec->kind), L->out_h, L->out_w, L->out_c,
                   (long long)FM_NET_MAX_IMAGE_FLOATS);
  /* Where the output goes: flatten is a view of its input; ReLU works in place (and in the
   * product's epilogue right after dense/conv2d) unless its input is the caller's x. A dropout
   * layer keeps its mask beside its output. */
  int64_t kept = 0;
  if (spec->kind == FM_LAYER_FLATTEN ||
      (spec->kind == FM_LAYER_RELU && in_act >= 0)) {
    L->act_offset = in_act;
    if (spec->kind == FM_LAYER_RELU && prev &&
        (prev->spec.kind == FM_LAYER_DENSE || prev->spec.kind == FM_LAYER_CONV2D))
      net->layer[i - 1].fused_relu = 1;
  } else {
    L->act_offset = *act;
    kept = (int64_t)round16((size_t)L->out_size);
  }
  if (spec->kind == FM_LAYER_DROPOUT) {
    L->mask_offset = *act + kept;
    kept += (int64_t)round16((size_t)L->out_size);
  }
  if (!fm_add_within(*act, kept, FM_NET_MAX_IMAGE_FLOATS, act))
    return fm_fail("layer %d (%s): the outputs a pass keeps would be over %lld floats per image",
                   i + 1, fm_layer_kind_name(spec->kind), (long long)FM_NET_MAX_IMAGE_FLOATS);
  FM_ASSERT(L->act_offset < 0 || L->act_offset + L->out_size <= *act);
  return FM_OK;
}

/* The input shape: every side at most FM_NET_MAX_DIM, the image at most FM_NET_MAX_IMAGE_FLOATS. */
static int check_input(int in_h, int in_w, int in_c, int64_t *in_size) {
  int64_t hw;
  if (in_h <= 0 || in_w <= 0 || in_c <= 0)
    return fm_fail("network: input shape %dx%dx%d must be positive", in_h, in_w, in_c);
  if (in_h > FM_NET_MAX_DIM || in_w > FM_NET_MAX_DIM || in_c > FM_NET_MAX_DIM)
    return fm_fail("network: input shape %dx%dx%d has a side over %d", in_h, in_w, in_c,
                   FM_NET_MAX_DIM);
  if (!fm_mul_within(in_h, in_w, FM_NET_MAX_IMAGE_FLOATS, &hw) ||
      !fm_mul_within(hw, in_c, FM_NET_MAX_IMAGE_FLOATS, in_size))
    return fm_fail("network: an input of %dx%dx%d is over %lld floats per image", in_h, in_w,
                   in_c, (long long)FM_NET_MAX_IMAGE_FLOATS);
  return FM_OK;
}

/* Adds layer i's parameters, multiply-adds and scratch to the network's totals. */
static int add_totals(fm_net *net, int i) {
  fm_layer *L = &net->layer[i];
  L->offset = net->n_params;
  if (!fm_add_within(net->n_params, L->n_weights + L->n_biases, FM_NET_MAX_PARAMS,
                     &net->n_params))
    return fm_fail("layer %d (%s): its %lld parameters bring the network over %lld", i + 1,
                   fm_layer_kind_name(L->spec.kind), (long long)(L->n_weights + L->n_biases),
                   (long long)FM_NET_MAX_PARAMS);
  if (!fm_add_within(net->macs, L->macs, FM_NET_MAX_MACS, &net->macs))
    return fm_fail("layer %d (%s): the network's multiply-adds per image would be over %lld", i + 1,
                   fm_layer_kind_name(L->spec.kind), (long long)FM_NET_MAX_MACS);
  if (L->out_size > net->max_size) net->max_size = L->out_size;
  size_t scratch = 0;
  if (L->spec.kind == FM_LAYER_CONV2D) scratch = fm_conv_scratch_floats(&L->conv);
  if (scratch > net->scratch_floats) net->scratch_floats = scratch;
  return FM_OK;
}

int fm_net_build(fm_net *net, int in_h, int in_w, int in_c, const fm_layer_spec *specs, int n) {
  memset(net, 0, sizeof *net);
  if (check_input(in_h, in_w, in_c, &net->in_size) != FM_OK) return FM_ERR;
  if (n < 1 || n > FM_NET_MAX_LAYERS)
    return fm_fail("network: %d layers (expected 1 to %d)", n, FM_NET_MAX_LAYERS);
  net->in_h = in_h;
  net->in_w = in_w;
  net->in_c = in_c;
  net->max_size = net->in_size;
  int64_t act = 0;
  for (int i = 0; i < n; i++) {
    if (build_layer(net, i, &specs[i], &act) != FM_OK || add_totals(net, i) != FM_OK) {
      net->n_layers = 0;
      return FM_ERR;
    }
  }
  net->n_layers = n;
  net->act_floats = act;
  const fm_layer *last = &net->layer[n - 1];
  if (last->out_h != 1 || last->out_w != 1 || last->out_c < 2 ||
      last->out_c > FM_NET_MAX_CLASSES) {
    net->n_layers = 0;
    return fm_fail("network: the last layer (%s) must give 2 to %d class scores, not %dx%dx%d",
                   fm_layer_kind_name(last->spec.kind), FM_NET_MAX_CLASSES, last->out_h,
                   last->out_w, last->out_c);
  }
  net->classes = last->out_c;
  return FM_OK;
}

void fm_net_bind(fm_net *net, float *params, float *grads) {
  net->params = params;
  net->grads = grads;
}

float *fm_net_weights(const fm_net *net, int layer) { return net->params + net->layer[layer].offset; }

float *fm_net_biases(const fm_net *net, int layer) {
  return net->params + net->layer[layer].offset + net->layer[layer].n_weights;
}

/* The index of the first value of v[0..n) that is not finite, or -1. */
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
  if (biases) memcpy(fm_net_biases(net, layer), biases, sizeof(float) * (size_t)n_biases);
  return FM_OK;
}

void fm_net_init(fm_net *net, uint64_t seed) {
  fm_rng rng;
  fm_rng_seed(&rng, seed);
  for (int i = 0; i < net->n_layers; i++) {
    const fm_layer *L = &net->layer[i];
    FM_ASSERT(L->offset >= 0 && L->offset + L->n_weights + L->n_biases <= net->n_params);
    if (L->n_weights == 0) continue;
    int he = L->spec.init == FM_INIT_HE ||
             (L->spec.init == FM_INIT_AUTO && i + 1 < net->n_layers &&
              net->layer[i + 1].spec.kind == FM_LAYER_RELU);
    float *w = fm_net_weights(net, i);
    if (he)
      fm_init_he(&rng, w, L->n_weights, L->fan_in);
    else
      fm_init_glorot(&rng, w, L->n_weights, L->fan_in, L->fan_out);
    memset(fm_net_biases(net, i), 0, sizeof(float) * (size_t)L->n_biases);
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
  for (int l = 0; l < net->n_layers; l++)
    if (net->layer[l].spec.kind == FM_LAYER_DENSE) {
      size_t d = fm_dense_scratch_floats(shard_batch, (int)net->layer[l].in_size);
      if (d > most) most = d;
    }
  return most;
}

static size_t shard_floats(const fm_net *net, int shard_batch, size_t *act_at, size_t *d0,
                           size_t *d1, size_t *scratch_at, size_t *in_at) {
  size_t at = 0;
  *in_at = at;
  at += round16((size_t)net->in_size * shard_batch);
  *act_at = at;
  at += round16((size_t)net->act_floats * shard_batch);
  *d0 = at;
  at += round16((size_t)net->max_size * shard_batch);
  *d1 = at;
  at += round16((size_t)net->max_size * shard_batch);
  *scratch_at = at;
  at += round16(scratch_floats(net, shard_batch));
  return at;
}

int fm_net_model_parallel = 1;

static int use_mp(const fm_net *net, int shards) {
  return fm_net_model_parallel && shards > 1 && fm_net_mp_applies(net);
}

/* Floats of the part of the workspace the passes use: the shards' areas and the extra shards'
 * gradients, or the model-parallel step's layout if that is larger (the two never run at once). */
static size_t pass_floats(const fm_net *net, int batch, int shards) {
  int sb = (batch + shards - 1) / shards;
  size_t a, d0, d1, sc, in;
  size_t per = shard_floats(net, sb, &a, &d0, &d1, &sc, &in);
  size_t dp = per * shards + round16((size_t)net->n_params) * (shards - 1);
  size_t mp = use_mp(net, shards) ? fm_net_mp_floats(net, batch, shards) : 0;
  return dp > mp ? dp : mp;
}

/* The arguments of a workspace, with the message fm_work_bytes and fm_work_init give. */
static int check_work_args(const fm_net *net, int batch, int shards) {
  if (net->n_layers < 1) return fm_fail("workspace: the network has no layers");
  if (batch < 1 || batch > FM_NET_MAX_BATCH)
    return fm_fail("workspace: batch size must be 1 to %d (got %d)", FM_NET_MAX_BATCH, batch);
  if (shards < 1 || shards > FM_NET_MAX_SHARDS)
    return fm_fail("workspace: threads must be 1 to %d (got %d)", FM_NET_MAX_SHARDS, shards);
  return FM_OK;
}

/* No product below can wrap: fm_net_build holds every per-image size and the parameter count to
 * 2^28 floats (the asserts), batch is at most 2^16 and shards 64, so each term is under 2^45 floats
 * and their sum far from 2^64 bytes. Only the total needs a limit. */
size_t fm_work_bytes(const fm_net *net, int batch, int shards) {
  if (check_work_args(net, batch, shards) != FM_OK) return 0;
  FM_ASSERT(net->in_size <= FM_NET_MAX_IMAGE_FLOATS && net->act_floats <= FM_NET_MAX_IMAGE_FLOATS);
  FM_ASSERT(net->max_size <= FM_NET_MAX_IMAGE_FLOATS && net->n_params <= FM_NET_MAX_PARAMS);
  FM_ASSERT(net->scratch_floats <= 4 * (size_t)FM_NET_MAX_IMAGE_FLOATS);
  /* then the labels of a gathered batch */
  size_t bytes = sizeof(float) * (pass_floats(net, batch, shards) + round16((size_t)batch / 4 + 1));
  if (bytes > (size_t)FM_NET_MAX_WORK_BYTES) {
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
  w->shard_floats = shard_floats(net, w->shard_batch, &w->act_at, &w->delta_at[0],
                                 &w->delta_at[1], &w->scratch_at, &w->in_at);
  w->grad_at = w->shard_floats * shards;
  w->labels = (uint8_t *)(w->base + pass_floats(net, batch, shards));
  w->model_parallel = use_mp(net, shards);
  FM_ASSERT(w->scratch_at + scratch_floats(net, w->shard_batch) <= w->shard_floats);
  FM_ASSERT(w->grad_at + round16((size_t)net->n_params) * (shards - 1) <=
            pass_floats(net, batch, shards));
  FM_ASSERT(w->labels + batch <= (uint8_t *)mem + need);
  return FM_OK;
}

/* ---- per-shard passes ---- */

static int shard_first(int n, int shards, int s) { return (int)((int64_t)s * n / shards); }

static float *shard_base(const fm_work *w, int s) { return w->base + w->shard_floats * s; }

/* Layer l's output for the shard's images (NULL-free: the network input when it is a view). */
static float *layer_out(const fm_net *net, const fm_work *w, int s, int l, const float *x) {
  int64_t off = net->layer[l].act_offset;
  if (off < 0) return (float *)x;
  FM_ASSERT(s >= 0 && s < w->shards);
  FM_ASSERT(off + net->layer[l].out_size <= net->act_floats);
  return shard_base(w, s) + w->act_at + (size_t)off * w->shard_batch;
}

static float *shard_grads(const fm_net *net, const fm_work *w, int s) {
  if (s == 0) return net->grads;
  FM_ASSERT(s < w->shards);
  return w->base + w->grad_at + round16((size_t)net->n_params) * (s - 1);
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

/* x: this shard's first image; first: its index in the call (for the dropout streams). */
static void forward_shard(const fm_net *net, const fm_work *w, int s, const float *x, int cnt,
                          int first, int train, uint64_t seed) {
  float *scratch = shard_base(w, s) + w->scratch_at;
  const float *in = x;
  for (int l = 0; l < net->n_layers; l++) {
    const fm_layer *L = &net->layer[l];
    float *out = layer_out(net, w, s, l, x);
    const float *wt = net->params + L->offset, *b = wt + L->n_weights;
    switch (L->spec.kind) {
      case FM_LAYER_DENSE:
        fm_dense_forward(cnt, (int)L->in_size, L->out_c, in, wt, b, out, L->fused_relu, scratch);
        break;
      case FM_LAYER_CONV2D:
        fm_conv_forward(&L->conv, cnt, in, wt, b, out, L->fused_relu, scratch);
        break;
      case FM_LAYER_MAXPOOL:
        fm_maxpool_forward(cnt, L->in_h, L->in_w, L->in_c, L->spec.pool, in, out);
        break;
      case FM_LAYER_RELU:
        if (!(l > 0 && net->layer[l - 1].fused_relu)) fm_relu_forward(cnt * L->out_size, in, out);
        break;
      case FM_LAYER_DROPOUT:
        if (train && L->spec.rate > 0.0f) {
          FM_ASSERT(L->mask_offset >= 0 && L->mask_offset + L->out_size <= net->act_floats);
          float *mask = shard_base(w, s) + w->act_at + (size_t)L->mask_offset * w->shard_batch;
          for (int j = 0; j < cnt; j++)
            fm_dropout_mask(fm_net_mask_key(seed, l, first + j), L->out_size, L->spec.rate,
                            mask + j * L->out_size);
          fm_dropout_apply(cnt * L->out_size, in, mask, out);
        } else {
          memcpy(out, in, sizeof(float) * (size_t)(cnt * L->out_size));
        }
        break;
      case FM_LAYER_FLATTEN: break;
    }
    in = out;
  }
}

/* Backward from the gradient in delta buffer 0 (cnt x classes). grads: where parameter gradients
 * go (NULL: skip them). Returns the buffer that holds the gradient w.r.t. the input when
 * input_grad is set. */
static float *backward_shard(const fm_net *net, const fm_work *w, int s, const float *x, int cnt,
                             int train, float *grads, int input_grad) {
  float *base = shard_base(w, s);
  float *scratch = base + w->scratch_at;
  float *d = base + w->delta_at[0], *other = base + w->delta_at[1];
  int relu_done = -1; /* a ReLU whose backward pass the max-pool after it already did */
  for (int l = net->n_layers - 1; l >= 0; l--) {
    const fm_layer *L = &net->layer[l];
    /* the two delta buffers hold max_size floats per image */
    FM_ASSERT(L->in_size <= net->max_size && L->out_size <= net->max_size);
    const float *in = l > 0 ? layer_out(net, w, s, l - 1, x) : x;
    const float *out = layer_out(net, w, s, l, x);
    int need_dx = l > 0 || input_grad;
    const float *wt = net->params + L->offset;
    float *gw = grads ? grads + L->offset : NULL, *gb = gw ? gw + L->n_weights : NULL;
    float *t;
    switch (L->spec.kind) {
      case FM_LAYER_DENSE:
        if (!need_dx && !gw) break;
        fm_dense_backward(cnt, (int)L->in_size, L->out_c, in, wt, d, need_dx ? other : NULL, gw,
                          gb, scratch);
        t = d, d = other, other = t;
        break;
      case FM_LAYER_CONV2D:
        if (!need_dx && !gw) break;
        fm_conv_backward(&L->conv, cnt, in, wt, d, need_dx ? other : NULL, gw, gb, scratch);
        t = d, d = other, other = t;
        break;
      case FM_LAYER_MAXPOOL: {
        if (!need_dx) break;
        /* After a ReLU (the reference CNN's conv -> ReLU -> pool) its backward pass is folded in:
         * one pass over the larger tensor instead of two. */
        int fold = l > 0 && net->layer[l - 1].spec.kind == FM_LAYER_RELU;
        fm_maxpool_backward_relu(cnt, L->in_h, L->in_w, L->in_c, L->spec.pool, in, d, other, fold);
        if (fold) relu_done = l - 1;
        t = d, d = other, other = t;
        break;
      }
      case FM_LAYER_RELU:
        if (need_dx && l != relu_done) fm_relu_backward(cnt * L->out_size, out, d, d);
        break;
      case FM_LAYER_DROPOUT:
        if (need_dx && train && L->spec.rate > 0.0f)
          fm_dropout_apply(cnt * L->out_size, d,
                           base + w->act_at + (size_t)L->mask_offset * w->shard_batch, d);
        break;
      case FM_LAYER_FLATTEN: break;
    }
  }
  return d;
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
} job;

static void run_shard(const job *jb, int s) {
  const fm_net *net = jb->net;
  fm_work *w = jb->w;
  int first = shard_first(jb->n, w->shards, s), cnt = shard_first(jb->n, w->shards, s + 1) - first;
  FM_ASSERT(jb->n <= w->batch && first >= 0 && cnt >= 0 && first + cnt <= jb->n);
  FM_ASSERT(cnt <= w->shard_batch);
  w->loss[s] = 0.0;
  w->correct[s] = 0;
  if (cnt == 0) {
    if (jb->kind == JOB_GRADIENT && s == 0)
      memset(net->grads, 0, sizeof(float) * (size_t)net->n_params);
    return;
  }
  const float *x;
  if (jb->d) {
    /* Each shard converts its own images: the uint8 -> float work runs in parallel too. */
    float *xs = shard_base(w, s) + w->in_at;
    fm_dataset_gather(jb->d, jb->rows + first, cnt, xs, w->labels + first);
    x = xs;
  } else {
    x = jb->x + (size_t)first * net->in_size;
  }
  forward_shard(net, w, s, x, cnt, first, jb->train, jb->seed);
  if (jb->kind == JOB_FORWARD) return;
  const float *logits = layer_out(net, w, s, net->n_layers - 1, x);
  float *delta = shard_base(w, s) + w->delta_at[0];
  const int k = net->classes;
  switch (jb->kind) {
    case JOB_GRADIENT:
      w->loss[s] = fm_softmax_xent(cnt, k, logits, jb->y + first, 1.0f / (float)jb->n, delta,
                                   &w->correct[s]);
      backward_shard(net, w, s, x, cnt, 1, shard_grads(net, w, s), 0);
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
      break;
    case JOB_SALIENCY: {
      memset(delta, 0, sizeof(float) * (size_t)cnt * k);
      for (int j = 0; j < cnt; j++) delta[(size_t)j * k + jb->y[first + j]] = 1.0f;
      float *dx = backward_shard(net, w, s, x, cnt, 0, NULL, 1);
      memcpy(jb->dx + (size_t)first * net->in_size, dx, sizeof(float) * (size_t)cnt * net->in_size);
      break;
    }
    default: break;
  }
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

/* Runs every shard of a job, in parallel. */
static void run_job(const job *jb) {
  int saved = pin_blas(jb->w->shards);
  fm_parallel_for(jb->w->shards, jb->w->shards, shard_item, (void *)jb);
  unpin_blas(saved);
}

/* ---- public passes ---- */

static int check_call(const fm_net *net, const fm_work *w, const float *x, int64_t n,
                      int64_t limit, const char *what) {
  if (net->n_layers < 1) return fm_fail("%s: the network has no layers", what);
  if (!net->params) return fm_fail("%s: the network has no parameter buffer", what);
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
  run_job(&jb);
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
  FM_ASSERT(s < w->shards && j >= 0 && j < w->shard_batch);
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

/* A training step: block b summed chunk by chunk and updated at once. Weights get the decay,
 * biases do not, so the chunks follow the layers' weight and bias segments. */
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
                                    k == 0 ? wd : 0.0f);
      }
    }
  }
  c->partial[b] = sq;
  c->bad[b] = bad;
  fm_fp_leave(fp);
}

/* Forward + backward on every shard, then either the reduction into net->grads (opt NULL) or the
 * update: two parallel phases. A loss that is not finite stops before any update; a gradient
 * that is not finite shows in the update, which then leaves those parameters alone. */
static void gradient_step(fm_net *net, fm_work *w, const job *jb, fm_optim *opt, float *state,
                          fm_batch_stats *st) {
  const int S = w->shards, n = jb->n;
  step_ctx c = {.net = net, .w = w, .opt = opt, .state = state};
  for (int s = 0; s < S; s++)
    if (shard_first(n, S, s + 1) > shard_first(n, S, s)) c.src[c.nsrc++] = shard_grads(net, w, s);
  FM_ASSERT(c.nsrc >= 1 && c.nsrc <= S && S <= FM_NET_MAX_SHARDS);
  int saved = pin_blas(S);
  fm_parallel_for(S, S, shard_item, (void *)jb);
  unpin_blas(saved);
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
  if (fm_dataset_pixels(d) != net->in_size)
    return fm_fail("train step: images of %lldx%lld do not fit a network taking %dx%dx%d",
                   (long long)d->rows, (long long)d->cols, net->in_h, net->in_w, net->in_c);
  for (int i = 0; i < n; i++) {
    if (rows[i] < 0 || rows[i] >= d->n)
      return fm_fail("train step: row %d (entry %d) is not in the dataset (0 to %lld)", rows[i],
                     i, (long long)d->n - 1);
    uint8_t label = d->labels[fm_dataset_row(d, rows[i])];
    if (label >= net->classes)
      return fm_fail("train step: label %d of row %d is not a class of this network (0 to %d)",
                     label, rows[i], net->classes - 1);
  }
  if (w->model_parallel) {
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
              .y = labels ? labels + i0 : NULL, .n = cnt, .probs = probs ? probs + i0 * net->classes : NULL,
              .pred = pred ? pred + i0 : NULL};
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
  run_job(&jb);
  w->n = n;
  w->forward_done = 1;
  return FM_OK;
}
