/* fm_onnx: a network as an ONNX model file (see fm_onnx.h). The graph is described first (nodes
 * and initializers with names and attributes, a few hundred bytes a layer), then encoded as
 * protobuf straight into the atomic file. */
#include "fm_onnx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_error.h"
#include "fm_file.h"

#define NAME 64

/* ---- the protobuf wire format ----
 * A sink either writes to a file or only counts bytes (f NULL). A nested message is length-
 * prefixed, so its body runs twice: once into a counting sink for the length, then for real.
 * The nesting here is at most six deep and the deep parts are small (a shape's dimensions, a
 * node's attributes), and counting never touches tensor data, so the passes cost nothing
 * beside the writing itself. */
typedef struct pb {
  FILE *f;
  uint64_t bytes;
} pb;

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void pb_put(pb *o, const void *p, size_t n) {
  if (o->f && n) fwrite(p, 1, n, o->f); /* a failed write is kept by the atomic file */
  o->bytes += n;
}

static void pb_varint(pb *o, uint64_t v) {
  unsigned char b[10];
  size_t n = 0;
  do {
    b[n] = (unsigned char)(v & 0x7f);
    v >>= 7;
    if (v) b[n] |= 0x80;
    n++;
  } while (v);
  pb_put(o, b, n);
}

static void pb_key(pb *o, int field, int wire) {
  pb_varint(o, (uint64_t)field << 3 | (unsigned)wire);
}

/* int32, int64 and enum fields alike (a negative value takes ten bytes, as protobuf says). */
static void pb_int(pb *o, int field, int64_t v) {
  pb_key(o, field, WIRE_VARINT);
  pb_varint(o, (uint64_t)v);
}

static void le32(unsigned char *b, uint32_t u) {
  b[0] = (unsigned char)u, b[1] = (unsigned char)(u >> 8), b[2] = (unsigned char)(u >> 16),
  b[3] = (unsigned char)(u >> 24);
}

static void pb_float(pb *o, int field, float v) {
  uint32_t u;
  unsigned char b[4];
  memcpy(&u, &v, sizeof u);
  le32(b, u);
  pb_key(o, field, WIRE_FIXED32);
  pb_put(o, b, 4);
}

static void pb_bytes(pb *o, int field, const void *p, size_t n) {
  pb_key(o, field, WIRE_LEN);
  pb_varint(o, n);
  pb_put(o, p, n);
}

static void pb_string(pb *o, int field, const char *s) { pb_bytes(o, field, s, strlen(s)); }

typedef void (*pb_body)(pb *o, const void *ctx);

static void pb_message(pb *o, int field, pb_body body, const void *ctx) {
  pb size = {NULL, 0};
  body(&size, ctx);
  pb_key(o, field, WIRE_LEN);
  pb_varint(o, size.bytes);
  body(o, ctx);
}

/* ---- the graph, described before it is written ---- */

enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7 }; /* onnx.proto's AttributeType */
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };              /* TensorProto.DataType */

typedef struct attr {
  const char *name;
  int type;
  float f;
  int64_t i;
  int n;
  int64_t ints[4];
} attr;

#define NODE_INPUTS 5 /* BatchNormalization's */
typedef struct node {
  char name[NAME];
  const char *op;
  int n_in;
  char in[NODE_INPUTS][NAME];
  char out[NAME];
  int n_attr;
  attr attr[5];
} node;

/* An initializer: floats as they are, a convolution's HWIO weights to be written as OIHW, or a
 * few int64s (a Reshape's shape). */
enum { DATA_FLOATS, DATA_OIHW, DATA_INT64 };
typedef struct init {
  char name[NAME];
  int data;
  int ndims;
  int64_t dims[4];
  const float *floats;
  const fm_conv_geom *conv;
  int64_t ints[4];
} init;

/* A tensor of the engine (the network input or a layer's output, h x w x c per image) and the
 * names it has in the graph: as [N, C, H, W] and as [N, H*W*C] in the engine's HWC order. It is
 * made in one of the two forms; the other is made when a layer needs it, once. */
typedef struct value {
  char base[NAME];
  int h, w, c;
  char nchw[NAME];
  char flat[NAME];
} value;

typedef struct graph {
  const fm_net *net;
  node *nodes;
  int n_nodes, cap_nodes;
  init *inits;
  int n_inits, cap_inits;
  value *values; /* [0] the network input, [i + 1] layer i's output */
  int *value_of; /* layer i's output is values[value_of[i]]: a dropout's is its input's */
  int width;     /* digits of layer numbers in names */
  int have_clip; /* the initializers of Clip's bounds are there */
  int oom;
} graph;

static const float clip_bounds[2] = {0.0f, 6.0f};

static const char *suffixed(char *buf, const char *base, const char *suffix);
static void set_name(char *dst, const char *src);

static node *add_node(graph *g, const char *op, const char *out) {
  if (g->oom) return NULL;
  if (g->n_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
    node *p = realloc(g->nodes, sizeof *p * (size_t)cap);
    if (!p) {
      g->oom = 1;
      return NULL;
    }
    g->nodes = p, g->cap_nodes = cap;
  }
  node *n = &g->nodes[g->n_nodes++];
  memset(n, 0, sizeof *n);
  n->op = op;
  set_name(n->name, out);
  set_name(n->out, out);
  return n;
}

static void node_input(node *n, const char *name) { set_name(n->in[n->n_in++], name); }

static void node_ints(node *n, const char *name, int count, const int64_t *v) {
  attr *a = &n->attr[n->n_attr++];
  a->name = name, a->type = ATTR_INTS, a->n = count;
  memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
}

static void node_int(node *n, const char *name, int64_t v) {
  attr *a = &n->attr[n->n_attr++];
  a->name = name, a->type = ATTR_INT, a->i = v;
}

static void node_float(node *n, const char *name, float v) {
  attr *a = &n->attr[n->n_attr++];
  a->name = name, a->type = ATTR_FLOAT, a->f = v;
}

static init *add_init(graph *g, const char *name, int data, int ndims, const int64_t *dims) {
  if (g->oom) return NULL;
  if (g->n_inits == g->cap_inits) {
    int cap = g->cap_inits ? 2 * g->cap_inits : 64;
    init *p = realloc(g->inits, sizeof *p * (size_t)cap);
    if (!p) {
      g->oom = 1;
      return NULL;
    }
    g->inits = p, g->cap_inits = cap;
  }
  init *t = &g->inits[g->n_inits++];
  memset(t, 0, sizeof *t);
  set_name(t->name, name);
  t->data = data;
  t->ndims = ndims;
  if (ndims) memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndims);
  return t;
}

/* A float initializer over the network's own memory. */
static void add_floats(graph *g, const char *name, const float *data, int ndims,
                       const int64_t *dims) {
  init *t = add_init(g, name, DATA_FLOATS, ndims, dims);
  if (t) t->floats = data;
}

/* A name into a NAME-sized buffer. */
static void set_name(char *dst, const char *src) { suffixed(dst, src, ""); }

/* name = base + suffix, e.g. "03_conv2d" + "_weight" (both are short by construction: a layer
 * number, a kind name and a role). */
static const char *suffixed(char *buf, const char *base, const char *suffix) {
  size_t a = strnlen(base, NAME - 1), b = strnlen(suffix, NAME - 1 - a);
  memcpy(buf, base, a);
  memcpy(buf + a, suffix, b);
  buf[a + b] = '\0';
  return buf;
}

/* The value as [N, H*W*C] in HWC order. From [N, C, H, W] that is Transpose to NHWC, then
 * Flatten; with one channel or one pixel the two orders agree and Flatten alone does. */
static const char *as_flat(graph *g, value *v) {
  if (v->flat[0]) return v->flat;
  char name[NAME], from[NAME];
  set_name(from, v->nchw);
  if (v->c > 1 && (int64_t)v->h * v->w > 1) {
    node *t = add_node(g, "Transpose", suffixed(name, v->base, "_nhwc"));
    if (!t) return "";
    node_input(t, from);
    node_ints(t, "perm", 4, (const int64_t[]){0, 2, 3, 1});
    set_name(from, t->out); /* the next node may move the array */
  }
  node *f = add_node(g, "Flatten", suffixed(name, v->base, "_flat"));
  if (!f) return "";
  node_input(f, from);
  node_int(f, "axis", 1);
  set_name(v->flat, f->out);
  return v->flat;
}

/* The value as [N, C, H, W]: a Reshape of the flat form, the batch dimension kept by a 0 in the
 * shape. A value is made flat only by a dense or flatten layer (1 x 1 x size) or by an
 * element-wise layer or add after one, so it is always a single pixel, where HWC and CHW order
 * agree and no Transpose is needed. */
static const char *as_nchw(graph *g, value *v) {
  if (v->nchw[0]) return v->nchw;
  char name[NAME], shape[NAME];
  const int64_t four = 4;
  init *s = add_init(g, suffixed(shape, v->base, "_nchw_shape"), DATA_INT64, 1, &four);
  node *r = add_node(g, "Reshape", suffixed(name, v->base, "_nchw"));
  if (!s || !r) return "";
  const int64_t nchw[4] = {0, v->c, v->h, v->w};
  memcpy(s->ints, nchw, sizeof s->ints);
  node_input(r, v->flat);
  node_input(r, s->name);
  set_name(v->nchw, r->out);
  return v->nchw;
}

/* The value as element-wise layers take it: [N, C, H, W] when it has that form, else flat. Their
 * output takes the same form (set_like decides alike). */
static const char *as_made(graph *g, value *v) { return v->nchw[0] ? v->nchw : as_flat(g, v); }

static value *input_value(graph *g, int index) {
  return index < 0 ? &g->values[0] : &g->values[g->value_of[index]];
}

/* The output of an element-wise layer, named name, in the form as_made gave its input. */
static void set_like(value *out, const value *in, const char *name) {
  if (in->nchw[0])
    set_name(out->nchw, name);
  else
    set_name(out->flat, name);
}

static int emit_dense(graph *g, const fm_layer *L, value *in, value *out) {
  char wname[NAME], bname[NAME];
  const char *x = as_flat(g, in);
  const float *p = g->net->params + L->offset;
  add_floats(g, suffixed(wname, out->base, "_weight"), p, 2,
             (const int64_t[]){L->in_size, L->out_c});
  if (L->n_biases)
    add_floats(g, suffixed(bname, out->base, "_bias"), p + L->n_weights, 1,
               (const int64_t[]){L->out_c});
  node *n = add_node(g, "Gemm", out->base);
  if (!n) return FM_ERR;
  node_input(n, x);
  node_input(n, wname);
  if (L->n_biases) node_input(n, bname);
  set_name(out->flat, out->base);
  return FM_OK;
}

static int emit_conv(graph *g, const fm_layer *L, value *in, value *out) {
  char wname[NAME], bname[NAME];
  const fm_conv_geom *c = &L->conv;
  const char *x = as_nchw(g, in);
  const float *p = g->net->params + L->offset;
  init *w = add_init(g, suffixed(wname, out->base, "_weight"), DATA_OIHW, 4,
                     (const int64_t[]){c->cout, c->cin / c->groups, c->kh, c->kw});
  if (w) w->floats = p, w->conv = c;
  if (L->n_biases)
    add_floats(g, suffixed(bname, out->base, "_bias"), p + L->n_weights, 1,
               (const int64_t[]){c->cout});
  /* The engine's padding: pad_top/pad_left, and whatever else the output size takes at the
   * bottom/right (none with "valid"; the extra one with "same", as TensorFlow). */
  int pad_h = (c->oh - 1) * c->stride + c->kh - c->h,
      pad_w = (c->ow - 1) * c->stride + c->kw - c->w;
  int64_t bottom = 0, right = 0;
  if (L->spec.same) {
    bottom = pad_h > c->pad_top ? pad_h - c->pad_top : 0;
    right = pad_w > c->pad_left ? pad_w - c->pad_left : 0;
  }
  node *n = add_node(g, "Conv", out->base);
  if (!n) return FM_ERR;
  node_input(n, x);
  node_input(n, wname);
  if (L->n_biases) node_input(n, bname);
  node_ints(n, "kernel_shape", 2, (const int64_t[]){c->kh, c->kw});
  node_ints(n, "strides", 2, (const int64_t[]){c->stride, c->stride});
  node_ints(n, "pads", 4, (const int64_t[]){c->pad_top, c->pad_left, bottom, right});
  node_ints(n, "dilations", 2, (const int64_t[]){1, 1});
  node_int(n, "group", c->groups);
  set_name(out->nchw, out->base);
  return FM_OK;
}

static int emit_pool(graph *g, const fm_layer *L, value *in, value *out, const char *op) {
  const char *x = as_nchw(g, in);
  node *n = add_node(g, op, out->base);
  if (!n) return FM_ERR;
  node_input(n, x);
  if (L->spec.kind != FM_LAYER_GLOBAL_AVGPOOL) {
    node_ints(n, "kernel_shape", 2, (const int64_t[]){L->spec.pool, L->spec.pool});
    node_ints(n, "strides", 2, (const int64_t[]){L->spec.stride, L->spec.stride});
  }
  set_name(out->nchw, out->base);
  return FM_OK;
}

static int emit_batchnorm(graph *g, const fm_layer *L, value *in, value *out) {
  static const char *const roles[4] = {"_scale", "_shift", "_running_mean", "_running_var"};
  const int64_t c = L->out_c;
  const float *p = g->net->params + L->offset, *s = g->net->state + L->state_offset;
  const float *data[4] = {p, p + c, s, s + c};
  char names[4][NAME];
  for (int k = 0; k < 4; k++)
    add_floats(g, suffixed(names[k], out->base, roles[k]), data[k], 1, &c);
  const char *x = as_made(g, in);
  node *n = add_node(g, "BatchNormalization", out->base);
  if (!n) return FM_ERR;
  node_input(n, x);
  for (int k = 0; k < 4; k++) node_input(n, names[k]);
  node_float(n, "epsilon", L->spec.eps);
  node_float(n, "momentum", L->spec.momentum);
  set_like(out, in, out->base);
  return FM_OK;
}

static int emit_activation(graph *g, const fm_layer *L, value *in, value *out) {
  const char *x = as_made(g, in);
  if (L->spec.kind == FM_LAYER_RELU6 && !g->have_clip) {
    add_floats(g, "clip_min", &clip_bounds[0], 0, NULL);
    add_floats(g, "clip_max", &clip_bounds[1], 0, NULL);
    g->have_clip = 1;
  }
  node *n = add_node(g, L->spec.kind == FM_LAYER_RELU ? "Relu" : "Clip", out->base);
  if (!n) return FM_ERR;
  node_input(n, x);
  if (L->spec.kind == FM_LAYER_RELU6) node_input(n, "clip_min"), node_input(n, "clip_max");
  set_like(out, in, out->base);
  return FM_OK;
}

/* Inputs summed in the engine's order, ((x1 + x2) + x3) + x4, each in input 1's form; the
 * partial sums are named "05_add_sum2", ... */
static int emit_add(graph *g, const fm_layer *L, value *in, value *out) {
  const int flat = !in->nchw[0];
  char acc[NAME], name[NAME];
  set_name(acc, flat ? as_flat(g, in) : in->nchw);
  for (int k = 1; k < L->n_in; k++) {
    value *v = input_value(g, L->in[k]);
    char other[NAME];
    set_name(other, flat ? as_flat(g, v) : as_nchw(g, v));
    if (k == L->n_in - 1) {
      set_name(name, out->base);
    } else {
      char suffix[16];
      snprintf(suffix, sizeof suffix, "_sum%d", k + 1);
      suffixed(name, out->base, suffix);
    }
    node *n = add_node(g, "Add", name);
    if (!n) return FM_ERR;
    node_input(n, acc);
    node_input(n, other);
    set_name(acc, name);
  }
  set_like(out, in, out->base);
  return FM_OK;
}

static int emit_layer(graph *g, int i) {
  const fm_layer *L = &g->net->layer[i];
  value *in = input_value(g, L->in[0]);
  value *out = &g->values[i + 1];
  g->value_of[i] = i + 1;
  snprintf(out->base, NAME, "%0*d_%s", g->width, i + 1, fm_layer_kind_name(L->spec.kind));
  out->h = L->out_h, out->w = L->out_w, out->c = L->out_c;
  switch ((int)L->spec.kind) { /* a kind added later reaches the error below */
    case FM_LAYER_DENSE:
      return emit_dense(g, L, in, out);
    case FM_LAYER_CONV2D:
      return emit_conv(g, L, in, out);
    case FM_LAYER_MAXPOOL:
      return emit_pool(g, L, in, out, "MaxPool");
    case FM_LAYER_AVGPOOL:
      return emit_pool(g, L, in, out, "AveragePool");
    case FM_LAYER_GLOBAL_AVGPOOL:
      return emit_pool(g, L, in, out, "GlobalAveragePool");
    case FM_LAYER_BATCHNORM:
      return emit_batchnorm(g, L, in, out);
    case FM_LAYER_RELU:
    case FM_LAYER_RELU6:
      return emit_activation(g, L, in, out);
    case FM_LAYER_ADD:
      return emit_add(g, L, in, out);
    case FM_LAYER_DROPOUT: /* inference: the input itself */
      g->value_of[i] = L->in[0] < 0 ? 0 : g->value_of[L->in[0]];
      return FM_OK;
    case FM_LAYER_FLATTEN: /* the input's HWC-ordered flat form, as a 1 x 1 x size value */
      set_name(out->flat, as_flat(g, in));
      return FM_OK;
  }
  return fm_fail("layer %d (%s): cannot be expressed in ONNX (no operator for layer kind %d)",
                 i + 1, fm_layer_kind_name(L->spec.kind), (int)L->spec.kind);
}

static void graph_free(graph *g) {
  free(g->nodes), free(g->inits), free(g->values), free(g->value_of);
}

/* Describes the whole graph: every layer, then "logits" (the last layer's scores, flat) and
 * "probabilities" (their softmax). */
static int graph_build(graph *g, const fm_net *net) {
  memset(g, 0, sizeof *g);
  g->net = net;
  g->values = calloc((size_t)net->n_layers + 1, sizeof *g->values);
  g->value_of = calloc((size_t)net->n_layers, sizeof *g->value_of);
  if (!g->values || !g->value_of)
    return fm_fail("out of memory describing %d layers", net->n_layers);
  g->width = 2;
  for (int n = net->n_layers; n >= 100; n /= 10) g->width++;
  value *x = &g->values[0];
  snprintf(x->base, NAME, "input");
  snprintf(x->nchw, NAME, "input");
  x->h = net->in_h, x->w = net->in_w, x->c = net->in_c;
  for (int i = 0; i < net->n_layers; i++)
    if (emit_layer(g, i) != FM_OK && !g->oom) return FM_ERR;
  char last[NAME];
  set_name(last, as_flat(g, input_value(g, net->n_layers - 1)));
  node *n = add_node(g, "Identity", "logits");
  if (n) node_input(n, last);
  n = add_node(g, "Softmax", "probabilities");
  if (n) {
    node_input(n, "logits");
    node_int(n, "axis", 1);
  }
  if (g->oom) return fm_fail("out of memory describing %d layers", net->n_layers);
  return FM_OK;
}

/* ---- encoding the messages of onnx.proto ---- */

static void encode_attr(pb *o, const void *ctx) {
  const attr *a = ctx;
  pb_string(o, 1, a->name);
  pb_int(o, 20, a->type);
  if (a->type == ATTR_FLOAT) pb_float(o, 2, a->f);
  if (a->type == ATTR_INT) pb_int(o, 3, a->i);
  if (a->type == ATTR_INTS)
    for (int k = 0; k < a->n; k++) pb_int(o, 8, a->ints[k]);
}

static void encode_node(pb *o, const void *ctx) {
  const node *n = ctx;
  for (int k = 0; k < n->n_in; k++) pb_string(o, 1, n->in[k]);
  pb_string(o, 2, n->out);
  pb_string(o, 3, n->name);
  pb_string(o, 4, n->op);
  for (int k = 0; k < n->n_attr; k++) pb_message(o, 5, encode_attr, &n->attr[k]);
}

static int64_t init_count(const init *t) {
  int64_t count = 1;
  for (int k = 0; k < t->ndims; k++) count *= t->dims[k];
  return count;
}

/* raw_data: little-endian values; convolution weights go from the engine's [kh][kw][cin][cout]
 * to ONNX's [cout][cin][kh][kw] as they are written. */
static void put_raw(pb *o, const init *t) {
  const int64_t count = init_count(t);
  const size_t size = t->data == DATA_INT64 ? 8 : 4;
  pb_key(o, 9, WIRE_LEN);
  pb_varint(o, (uint64_t)count * size);
  if (!o->f) {
    o->bytes += (uint64_t)count * size;
    return;
  }
  if (t->data == DATA_INT64) {
    for (int64_t k = 0; k < count; k++) {
      unsigned char b[8];
      uint64_t u = (uint64_t)t->ints[k];
      le32(b, (uint32_t)u);
      le32(b + 4, (uint32_t)(u >> 32));
      pb_put(o, b, 8);
    }
    return;
  }
  unsigned char buf[4096];
  size_t used = 0;
  const fm_conv_geom *c = t->conv;
  const int64_t cin = c ? c->cin / c->groups : 0;
  for (int64_t k = 0; k < count; k++) {
    int64_t from = k;
    if (t->data == DATA_OIHW) {
      /* k = ((co * cin + ci) * kh + y) * kw + x */
      int64_t x = k % c->kw, y = k / c->kw % c->kh, ci = k / ((int64_t)c->kw * c->kh) % cin,
              co = k / ((int64_t)c->kw * c->kh * cin);
      from = ((y * c->kw + x) * cin + ci) * c->cout + co;
    }
    float v = t->floats[from];
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    le32(buf + used, u);
    used += 4;
    if (used == sizeof buf) pb_put(o, buf, used), used = 0;
  }
  pb_put(o, buf, used);
}

static void encode_init(pb *o, const void *ctx) {
  const init *t = ctx;
  for (int k = 0; k < t->ndims; k++) pb_int(o, 1, t->dims[k]);
  pb_int(o, 2, t->data == DATA_INT64 ? ONNX_INT64 : ONNX_FLOAT);
  pb_string(o, 8, t->name);
  put_raw(o, t);
}

/* A graph input or output: float32 [N, d1, d2, ...] with N named "N" (any batch size). */
typedef struct io_desc {
  const char *name;
  const char *doc;
  int ndims; /* after N */
  int64_t dims[3];
} io_desc;

typedef struct dim_desc {
  const char *param;
  int64_t value;
} dim_desc;

static void encode_dim(pb *o, const void *ctx) {
  const dim_desc *d = ctx;
  if (d->param)
    pb_string(o, 2, d->param);
  else
    pb_int(o, 1, d->value);
}

static void encode_shape(pb *o, const void *ctx) {
  const io_desc *io = ctx;
  dim_desc batch = {"N", 0};
  pb_message(o, 1, encode_dim, &batch);
  for (int k = 0; k < io->ndims; k++) {
    dim_desc d = {NULL, io->dims[k]};
    pb_message(o, 1, encode_dim, &d);
  }
}

static void encode_tensor_type(pb *o, const void *ctx) {
  pb_int(o, 1, ONNX_FLOAT);
  pb_message(o, 2, encode_shape, ctx);
}

static void encode_type(pb *o, const void *ctx) { pb_message(o, 1, encode_tensor_type, ctx); }

static void encode_value_info(pb *o, const void *ctx) {
  const io_desc *io = ctx;
  pb_string(o, 1, io->name);
  pb_message(o, 2, encode_type, ctx);
  if (io->doc) pb_string(o, 3, io->doc);
}

typedef struct model_ctx {
  const graph *g;
  const char *kind; /* valid UTF-8 */
  const char *producer_version;
  const char *classes; /* a JSON array */
  char doc[512];
} model_ctx;

static void encode_graph(pb *o, const void *ctx) {
  const model_ctx *m = ctx;
  const graph *g = m->g;
  const fm_net *net = g->net;
  for (int k = 0; k < g->n_nodes; k++) pb_message(o, 1, encode_node, &g->nodes[k]);
  pb_string(o, 2, m->kind);
  for (int k = 0; k < g->n_inits; k++) pb_message(o, 5, encode_init, &g->inits[k]);
  pb_string(o, 10, m->doc);
  io_desc input = {"input",
                   "images, NCHW float32, pixels scaled to [0, 1]",
                   3,
                   {net->in_c, net->in_h, net->in_w}};
  pb_message(o, 11, encode_value_info, &input);
  io_desc probs = {"probabilities",
                   "softmax of the logits: one row of class probabilities per "
                   "image",
                   1,
                   {net->classes}};
  io_desc logits = {"logits", "the last layer's class scores", 1, {net->classes}};
  pb_message(o, 12, encode_value_info, &probs);
  pb_message(o, 12, encode_value_info, &logits);
}

static void encode_opset(pb *o, const void *ctx) {
  (void)ctx;
  pb_string(o, 1, "");
  pb_int(o, 2, FM_ONNX_OPSET);
}

typedef struct entry {
  const char *key, *value;
} entry;

static void encode_entry(pb *o, const void *ctx) {
  const entry *e = ctx;
  pb_string(o, 1, e->key);
  pb_string(o, 2, e->value);
}

static void encode_model(pb *o, const model_ctx *m) {
  pb_int(o, 1, FM_ONNX_IR);
  pb_string(o, 2, "fmnist-lua");
  if (m->producer_version) pb_string(o, 3, m->producer_version);
  pb_string(o, 6, m->doc);
  pb_message(o, 7, encode_graph, m);
  pb_message(o, 8, encode_opset, NULL);
  const entry meta[] = {
      {"model_kind", m->kind},
      {"classes", m->classes},
      {"input_layout", "N x C x H x W float32 (NCHW), pixels scaled to [0, 1]"},
      {"outputs", "probabilities (softmax), logits"},
  };
  for (size_t k = 0; k < sizeof meta / sizeof meta[0]; k++)
    pb_message(o, 14, encode_entry, &meta[k]);
}

/* ---- strings: protobuf strings are UTF-8 ---- */

/* The length of the valid UTF-8 sequence at s (not a control character), or 0. */
static int utf8_sequence(const unsigned char *s) {
  if (s[0] < 0x80) return s[0] >= 0x20 && s[0] != 0x7f;
  int n = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
          : s[0] >= 0xe0 && s[0] <= 0xef ? 3
          : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                         : 0;
  for (int k = 1; k < n; k++)
    if ((s[k] & 0xc0) != 0x80) return 0;
  if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
      (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
    return 0; /* overlong, surrogate, beyond U+10FFFF */
  return n;
}

/* Appends s to out (size bytes), every byte that is not valid UTF-8 text made '?'; with json, as
 * a JSON string's content. */
static void append_text(char *out, size_t size, const char *s, int json) {
  size_t at = strlen(out);
  const unsigned char *p = (const unsigned char *)s;
  while (*p && at + 8 < size) {
    int n = utf8_sequence(p);
    if (n == 0) {
      out[at++] = '?';
      p++;
      continue;
    }
    if (json && (*p == '"' || *p == '\\')) out[at++] = '\\';
    memcpy(out + at, p, (size_t)n);
    at += (size_t)n, p += n;
  }
  out[at] = '\0';
}

void fm_onnx_text(char *out, size_t size, const char *s) {
  out[0] = '\0';
  append_text(out, size, s, 0);
}

int fm_onnx_write(const fm_net *net, const char *path, const fm_onnx_info *info) {
  static const fm_onnx_info none = {NULL, NULL, NULL, 0};
  if (!info) info = &none;
  if (!net || net->n_layers < 1 || !net->layer || !net->params || (net->n_state && !net->state))
    return fm_fail("%s: cannot export a network that was not built and given its parameters", path);
  graph g;
  if (graph_build(&g, net) != FM_OK) {
    graph_free(&g);
    return FM_ERR;
  }
  model_ctx m = {&g, NULL, info->producer_version, NULL, ""};
  char kind[64] = "", *classes = malloc(72 * (size_t)net->classes + 16);
  if (!classes) {
    graph_free(&g);
    return fm_fail("%s: out of memory for the class names", path);
  }
  fm_onnx_text(kind, sizeof kind, info->model_kind ? info->model_kind : "Model");
  strcpy(classes, "[");
  for (int c = 0; c < net->classes; c++) {
    char name[64] = "";
    if (info->class_names && c < info->n_class_names && info->class_names[c])
      append_text(name, sizeof name, info->class_names[c], 1);
    else
      snprintf(name, sizeof name, "class %d", c);
    sprintf(classes + strlen(classes), "%s\"%s\"", c ? ", " : "", name);
  }
  strcat(classes, "]");
  m.kind = kind, m.classes = classes;
  snprintf(m.doc, sizeof m.doc,
           "fmnist-lua %s: from \"input\", %d x %d x %d images per row of the batch (N x C x H x W "
           "float32, pixels scaled to [0, 1]), \"probabilities\" (softmax) and \"logits\", N x %d.",
           kind, net->in_c, net->in_h, net->in_w, net->classes);
  /* A protobuf message is at most 2 GiB; the counting pass says what this one takes. */
  pb count = {NULL, 0};
  encode_model(&count, &m);
  int rc = FM_OK;
  fm_atomic_file a;
  if (count.bytes > INT32_MAX) {
    rc = fm_fail("%s: the model takes %llu bytes, over the 2 GiB an ONNX file can hold", path,
                 (unsigned long long)count.bytes);
  } else if (fm_atomic_begin(&a, path) != FM_OK) {
    rc = FM_ERR;
  } else {
    pb out = {a.f, 0};
    encode_model(&out, &m);
    rc = fm_atomic_commit(&a);
  }
  free(classes);
  graph_free(&g);
  return rc;
}
