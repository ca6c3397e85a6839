/* test_onnx: fm_onnx_write read back with a small protobuf reader written here — the wire format
 * is well formed to the last byte (every length prefix the counting pass wrote is right), the
 * model's header (IR version, opset, producer, metadata with the class names), the graph's input
 * and outputs, the operators in order with their attributes (pads of "same" convolutions, groups,
 * epsilon, the NHWC Transpose before a Flatten), initializers (convolution weights transposed from
 * HWIO to OIHW, dense weights as they are), names that are not UTF-8 cleaned, and the errors: a
 * directory, a symbolic link, a missing folder, a network without parameters, a kind of layer
 * without an operator. The numbers themselves are checked against ONNX Runtime by
 * tests/lua/test_export.lua. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fm_error.h"
#include "fm_net.h"
#include "fm_onnx.h"

static char tmpdir[256];

static const char *tpath(const char *name) {
  static char bufs[4][512];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

/* ---- a protobuf reader: just enough to walk what the export writes ---- */

typedef struct field {
  int num, wire;
  uint64_t value;            /* varint and fixed32 */
  const unsigned char *data; /* length-delimited */
  size_t len;
} field;

typedef struct reader {
  const unsigned char *p, *end;
} reader;

static int read_varint(reader *r, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return 0;
    unsigned char b = *r->p++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 1;
  }
  return 0;
}

static int read_field(reader *r, field *f) {
  uint64_t key;
  if (!read_varint(r, &key)) return 0;
  f->num = (int)(key >> 3), f->wire = (int)(key & 7);
  if (f->wire == 0) return read_varint(r, &f->value);
  if (f->wire == 5) {
    if (r->end - r->p < 4) return 0;
    f->value = r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 1;
  }
  if (f->wire != 2 || !read_varint(r, &f->value) || f->value > (uint64_t)(r->end - r->p)) return 0;
  f->data = r->p, f->len = (size_t)f->value;
  r->p += f->len;
  return 1;
}

typedef struct msg {
  const unsigned char *p;
  size_t n;
} msg;

/* Every field parses and the last ends exactly at the end. */
static int msg_valid(msg m) {
  reader r = {m.p, m.p + m.n};
  field f;
  while (r.p < r.end)
    if (!read_field(&r, &f)) return 0;
  return r.p == r.end;
}

/* The nth (0-based) field numbered num. */
static int msg_get(msg m, int num, int nth, field *out) {
  reader r = {m.p, m.p + m.n};
  field f;
  while (r.p < r.end && read_field(&r, &f))
    if (f.num == num && nth-- == 0) {
      *out = f;
      return 1;
    }
  return 0;
}

static int msg_count(msg m, int num) {
  field f;
  int n = 0;
  while (msg_get(m, num, n, &f)) n++;
  return n;
}

static msg sub(field f) { return (msg){f.data, f.len}; }

/* Field num of m as a string ("" when absent), into a static buffer. */
static const char *msg_str(msg m, int num, int nth) {
  static char bufs[4][4096];
  static int next;
  char *b = bufs[next++ % 4];
  field f;
  b[0] = '\0';
  if (msg_get(m, num, nth, &f) && f.wire == 2 && f.len < sizeof bufs[0]) {
    memcpy(b, f.data, f.len);
    b[f.len] = '\0';
  }
  return b;
}

static int64_t msg_int(msg m, int num, int nth) {
  field f;
  return msg_get(m, num, nth, &f) && f.wire == 0 ? (int64_t)f.value : -999;
}

/* ONNX field numbers (onnx.proto) */
enum { MODEL_IR = 1, MODEL_PRODUCER = 2, MODEL_GRAPH = 7, MODEL_OPSET = 8, MODEL_META = 14 };
enum { GRAPH_NODE = 1, GRAPH_INIT = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP = 4, NODE_ATTR = 5 };

static unsigned char *file_bytes;
static size_t file_size;

static msg load(const char *path) {
  free(file_bytes);
  file_bytes = NULL;
  file_size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return (msg){NULL, 0};
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  file_bytes = malloc((size_t)n + 1);
  file_size = fread(file_bytes, 1, (size_t)n, f);
  fclose(f);
  return (msg){file_bytes, file_size};
}

static msg graph_of(msg model) {
  field f;
  return msg_get(model, MODEL_GRAPH, 0, &f) ? sub(f) : (msg){NULL, 0};
}

/* The node named name, or an empty message. */
static msg node_named(msg graph, const char *name) {
  field f;
  for (int k = 0; msg_get(graph, GRAPH_NODE, k, &f); k++)
    if (strcmp(msg_str(sub(f), NODE_NAME, 0), name) == 0) return sub(f);
  return (msg){NULL, 0};
}

static msg init_named(msg graph, const char *name) {
  field f;
  for (int k = 0; msg_get(graph, GRAPH_INIT, k, &f); k++)
    if (strcmp(msg_str(sub(f), 8, 0), name) == 0) return sub(f);
  return (msg){NULL, 0};
}

/* The op types of the nodes, space-separated. */
static const char *ops(msg graph) {
  static char buf[1024];
  field f;
  buf[0] = '\0';
  for (int k = 0; msg_get(graph, GRAPH_NODE, k, &f); k++)
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", k ? " " : "",
             msg_str(sub(f), NODE_OP, 0));
  return buf;
}

/* A node's attribute: its ints as "0,0,1,1", its int or its float as text. */
static const char *attr(msg node, const char *name) {
  static char buf[128];
  field f;
  buf[0] = '\0';
  for (int k = 0; msg_get(node, NODE_ATTR, k, &f); k++) {
    msg a = sub(f);
    if (strcmp(msg_str(a, 1, 0), name) != 0) continue;
    int64_t type = msg_int(a, 20, 0);
    if (type == 7)
      for (int j = 0; j < msg_count(a, 8); j++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%lld", j ? "," : "",
                 (long long)msg_int(a, 8, j));
    if (type == 2) snprintf(buf, sizeof buf, "%lld", (long long)msg_int(a, 3, 0));
    if (type == 1 && msg_get(a, 2, 0, &f)) {
      uint32_t u = (uint32_t)f.value;
      float v;
      memcpy(&v, &u, sizeof v);
      snprintf(buf, sizeof buf, "%g", (double)v);
    }
  }
  return buf;
}

/* An initializer's dims as "4,3,3,3". */
static const char *dims(msg t) {
  static char buf[128];
  buf[0] = '\0';
  for (int j = 0; j < msg_count(t, 1); j++)
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%lld", j ? "," : "",
             (long long)msg_int(t, 1, j));
  return buf;
}

/* Float k of an initializer's raw_data (little-endian). */
static float raw_float(msg t, int64_t k) {
  field f;
  if (!msg_get(t, 9, 0, &f) || (size_t)(4 * k + 4) > f.len) return NAN;
  const unsigned char *b = f.data + 4 * k;
  uint32_t u = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  float v;
  memcpy(&v, &u, sizeof v);
  return v;
}

/* A graph input or output: "name N,3,6,6". */
static const char *value_info(msg graph, int num, int nth) {
  static char buf[256];
  field f, t, tt, shape, d;
  buf[0] = '\0';
  if (!msg_get(graph, num, nth, &f)) return buf;
  snprintf(buf, sizeof buf, "%s", msg_str(sub(f), 1, 0));
  if (!msg_get(sub(f), 2, 0, &t) || !msg_get(sub(t), 1, 0, &tt) || msg_int(sub(tt), 1, 0) != 1 ||
      !msg_get(sub(tt), 2, 0, &shape))
    return buf;
  for (int j = 0; msg_get(sub(shape), 1, j, &d); j++) {
    const char *param = msg_str(sub(d), 2, 0);
    if (*param)
      snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", j ? "," : " ", param);
    else
      snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%lld", j ? "," : " ",
               (long long)msg_int(sub(d), 1, 0));
  }
  return buf;
}

static const char *metadata(msg model, const char *key) {
  field f;
  for (int k = 0; msg_get(model, MODEL_META, k, &f); k++)
    if (strcmp(msg_str(sub(f), 1, 0), key) == 0) return msg_str(sub(f), 2, 0);
  return "(none)";
}

/* ---- networks ---- */

typedef struct model {
  fm_net net;
  fm_layer layers[16];
  float *params, *state;
} model;

static int model_open(model *m, const fm_layer_spec *specs, int n, int h, int w, int c) {
  memset(m, 0, sizeof *m);
  if (fm_net_build(&m->net, m->layers, h, w, c, specs, n) != FM_OK) return FM_ERR;
  m->params = calloc((size_t)m->net.n_params + 1, sizeof(float));
  m->state = calloc((size_t)m->net.n_state + 1, sizeof(float));
  fm_net_bind(&m->net, m->params, NULL, m->state);
  fm_net_init(&m->net, 7);
  /* running statistics that are not the initial 0 and 1 */
  for (int64_t i = 0; i < m->net.n_state; i++) m->state[i] = 0.5f + 0.01f * (float)i;
  return FM_OK;
}

static void model_close(model *m) { free(m->params), free(m->state); }

/* 6x6x3 input: a strided "same" convolution, batch norm, ReLU6, a depthwise convolution without
 * bias, an add with the first convolution, global average pooling and a dense head. */
static const fm_layer_spec conv_net[] = {
    /* 1 */ {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 1, .stride = 2},
    /* 2 */ {.kind = FM_LAYER_BATCHNORM, .eps = 1e-3f},
    /* 3 */ {.kind = FM_LAYER_RELU6},
    /* 4 */ {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 1, .groups = 4, .no_bias = 1},
    /* 5 */ {.kind = FM_LAYER_ADD, .n_inputs = 2, .inputs = {3, 0}},
    /* 6 */ {.kind = FM_LAYER_GLOBAL_AVGPOOL},
    /* 7 */ {.kind = FM_LAYER_DENSE, .units = 5},
};

/* A dense layer straight on a 6x6x3 input, dropout, then a dense head. */
static const fm_layer_spec dense_net[] = {
    {.kind = FM_LAYER_DENSE, .units = 7},
    {.kind = FM_LAYER_DROPOUT, .rate = 0.5f},
    {.kind = FM_LAYER_DENSE, .units = 3},
};

/* Convolutions, max-pooling and a flatten of several channels before the dense head. */
static const fm_layer_spec flatten_net[] = {
    {.kind = FM_LAYER_CONV2D, .units = 2, .kh = 3}, {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_MAXPOOL, .pool = 2},          {.kind = FM_LAYER_FLATTEN},
    {.kind = FM_LAYER_DENSE, .units = 4},
};

static void test_conv_net(void) {
  model m;
  CHECK(model_open(&m, conv_net, 7, 6, 6, 3) == FM_OK, "the conv net builds (%s)", fm_error());
  const char *names[] = {"Sweater", "Boot \"tall\""};
  fm_onnx_info info = {"9.8.7", "Tiny", names, 2};
  const char *path = tpath("conv.onnx");
  CHECK(fm_onnx_write(&m.net, path, &info) == FM_OK, "written (%s)", fm_error());
  msg model = load(path);
  msg graph = graph_of(model);
  CHECK(model.n > 0 && msg_valid(model) && graph.n > 0 && msg_valid(graph),
        "the file is well-formed protobuf to its last byte (%zu bytes)", model.n);
  field f;
  int nodes_ok = 1;
  for (int k = 0; msg_get(graph, GRAPH_NODE, k, &f); k++) nodes_ok &= msg_valid(sub(f));
  CHECK(nodes_ok, "every node is well-formed");
  CHECK(msg_int(model, MODEL_IR, 0) == 8 && msg_get(model, MODEL_OPSET, 0, &f) &&
            msg_int(sub(f), 2, 0) == 13 && strcmp(msg_str(sub(f), 1, 0), "") == 0,
        "IR version 8, the default domain at opset 13");
  CHECK(strcmp(msg_str(model, MODEL_PRODUCER, 0), "fmnist-lua") == 0 &&
            strcmp(msg_str(model, 3, 0), "9.8.7") == 0,
        "producer fmnist-lua 9.8.7");
  CHECK(strcmp(metadata(model, "model_kind"), "Tiny") == 0, "metadata: the model kind");
  CHECK(strcmp(metadata(model, "classes"),
               "[\"Sweater\", \"Boot \\\"tall\\\"\", \"class 2\", \"class 3\", \"class 4\"]") == 0,
        "metadata: the class names as a JSON array, quotes escaped, unnamed classes numbered (%s)",
        metadata(model, "classes"));
  CHECK(strcmp(value_info(graph, GRAPH_INPUT, 0), "input N,3,6,6") == 0,
        "input: N x C x H x W (%s)", value_info(graph, GRAPH_INPUT, 0));
  CHECK(strcmp(value_info(graph, GRAPH_OUTPUT, 0), "probabilities N,5") == 0 &&
            strcmp(value_info(graph, GRAPH_OUTPUT, 1), "logits N,5") == 0,
        "outputs: probabilities and logits, N x 5");
  CHECK(strcmp(ops(graph),
               "Conv BatchNormalization Clip Conv Add GlobalAveragePool Flatten Gemm "
               "Identity Softmax") == 0,
        "the operators in order (%s)", ops(graph));
  msg conv1 = node_named(graph, "1_conv2d"), conv4 = node_named(graph, "04_conv2d");
  CHECK(conv1.n == 0 && node_named(graph, "01_conv2d").n > 0, "layer numbers have two digits");
  conv1 = node_named(graph, "01_conv2d");
  /* 6 -> 3 with stride 2 and a 3x3 kernel: 2 * 2 + 3 - 6 = 1 padding row, at the bottom */
  CHECK(strcmp(attr(conv1, "pads"), "0,0,1,1") == 0 && strcmp(attr(conv1, "strides"), "2,2") == 0 &&
            strcmp(attr(conv1, "kernel_shape"), "3,3") == 0 &&
            strcmp(attr(conv1, "group"), "1") == 0,
        "a strided same convolution: the odd padding at the bottom/right (pads %s)",
        attr(conv1, "pads"));
  CHECK(strcmp(attr(conv4, "pads"), "1,1,1,1") == 0 && strcmp(attr(conv4, "group"), "4") == 0 &&
            msg_count(conv4, NODE_INPUT) == 2,
        "depthwise: group 4, pads 1 all round, no bias input");
  msg bn = node_named(graph, "02_batchnorm");
  CHECK(strcmp(attr(bn, "epsilon"), "0.001") == 0 && msg_count(bn, NODE_INPUT) == 5 &&
            strcmp(msg_str(bn, NODE_INPUT, 3), "02_batchnorm_running_mean") == 0,
        "batch norm: epsilon from the spec, scale, shift, mean and variance");
  msg add = node_named(graph, "05_add");
  CHECK(strcmp(msg_str(add, NODE_INPUT, 0), "04_conv2d") == 0 &&
            strcmp(msg_str(add, NODE_INPUT, 1), "01_conv2d") == 0,
        "add: its inputs by name");
  msg clip = node_named(graph, "03_relu6");
  msg lo = init_named(graph, "clip_min"), hi = init_named(graph, "clip_max");
  CHECK(strcmp(msg_str(clip, NODE_INPUT, 1), "clip_min") == 0 && raw_float(lo, 0) == 0.0f &&
            raw_float(hi, 0) == 6.0f && msg_count(lo, 1) == 0,
        "relu6: Clip between scalars 0 and 6");
  msg w = init_named(graph, "01_conv2d_weight");
  CHECK(strcmp(dims(w), "4,3,3,3") == 0 && msg_int(w, 2, 0) == 1,
        "conv weights: float, OIHW dims (%s)", dims(w));
  /* engine HWIO [ky][kx][ci][co]; ONNX OIHW [co][ci][ky][kx] */
  const float *hwio = fm_net_weights(&m.net, 0);
  int same = 1;
  for (int co = 0; co < 4; co++)
    for (int ci = 0; ci < 3; ci++)
      for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
          same &= raw_float(w, ((co * 3 + ci) * 3 + ky) * 3 + kx) ==
                  hwio[((ky * 3 + kx) * 3 + ci) * 4 + co];
  CHECK(same, "conv weights transposed from HWIO to OIHW, every one");
  msg dw = init_named(graph, "04_conv2d_weight");
  CHECK(strcmp(dims(dw), "4,1,3,3") == 0 &&
            raw_float(dw, (2 * 3 + 1) * 3 + 0) == fm_net_weights(&m.net, 3)[(1 * 3 + 0) * 4 + 2],
        "depthwise weights: 4 x 1 x 3 x 3");
  msg mean = init_named(graph, "02_batchnorm_running_mean"),
      var = init_named(graph, "02_batchnorm_running_var");
  CHECK(raw_float(mean, 1) == m.state[m.layers[1].state_offset + 1] &&
            raw_float(var, 3) == m.state[m.layers[1].state_offset + 4 + 3],
        "batch norm's running statistics come from the state");
  msg dense_w = init_named(graph, "07_dense_weight");
  CHECK(strcmp(dims(dense_w), "4,5") == 0 && raw_float(dense_w, 7) == fm_net_weights(&m.net, 6)[7],
        "dense weights [in][out] as they are");
  msg soft = node_named(graph, "probabilities");
  CHECK(strcmp(attr(soft, "axis"), "1") == 0 && strcmp(msg_str(soft, NODE_INPUT, 0), "logits") == 0,
        "softmax over the classes of the logits");
  model_close(&m);
}

static void test_dense_and_flatten(void) {
  model m;
  CHECK(model_open(&m, dense_net, 3, 6, 6, 3) == FM_OK, "the dense net builds (%s)", fm_error());
  const char *path = tpath("dense.onnx");
  CHECK(fm_onnx_write(&m.net, path, NULL) == FM_OK, "written without info (%s)", fm_error());
  msg model = load(path);
  msg graph = graph_of(model);
  CHECK(msg_valid(model) && strcmp(ops(graph), "Transpose Flatten Gemm Gemm Identity Softmax") == 0,
        "a dense layer on a 6x6x3 input flattens it in HWC order; dropout is left out (%s)",
        ops(graph));
  msg t = node_named(graph, "input_nhwc"), g3 = node_named(graph, "03_dense");
  CHECK(strcmp(attr(t, "perm"), "0,2,3,1") == 0 && node_named(graph, "input_flat").n > 0,
        "Transpose to NHWC, then Flatten");
  CHECK(strcmp(msg_str(g3, NODE_INPUT, 0), "01_dense") == 0,
        "the dense after dropout reads the dense before it");
  CHECK(strcmp(metadata(model, "model_kind"), "Model") == 0 &&
            strcmp(metadata(model, "classes"), "[\"class 0\", \"class 1\", \"class 2\"]") == 0,
        "without info: kind Model, classes numbered");
  model_close(&m);

  CHECK(model_open(&m, flatten_net, 5, 8, 8, 1) == FM_OK, "the flatten net builds (%s)",
        fm_error());
  fm_onnx_info info = {NULL, "bad\xff\xc3(", NULL, 0};
  CHECK(fm_onnx_write(&m.net, path, &info) == FM_OK, "written (%s)", fm_error());
  model = load(path);
  graph = graph_of(model);
  CHECK(strcmp(ops(graph), "Conv Relu MaxPool Transpose Flatten Gemm Identity Softmax") == 0,
        "flatten of two channels: Transpose to NHWC first (%s)", ops(graph));
  CHECK(strcmp(msg_str(node_named(graph, "05_dense"), NODE_INPUT, 0), "03_maxpool_flat") == 0,
        "the flatten layer is the maxpool's flat form");
  CHECK(strcmp(metadata(model, "model_kind"),
               "bad?"
               "?(") == 0 &&
            msg_count(model, 3) == 0,
        "bytes that are not UTF-8 become '?'; no producer version when none is given (%s)",
        metadata(model, "model_kind"));
  model_close(&m);
}

static void test_errors(void) {
  model m;
  CHECK(model_open(&m, dense_net, 3, 6, 6, 3) == FM_OK, "the dense net builds");
  const char *dir = tpath("adir");
  mkdir(dir, 0755);
  CHECK_FAILS(fm_onnx_write(&m.net, dir, NULL), "adir: is a directory", "a directory is refused");
  const char *target = tpath("target"), *link = tpath("link");
  FILE *f = fopen(target, "w");
  fputs("keep", f);
  fclose(f);
  if (symlink(target, link) != 0) printf("Bail out! symlink: %s\n", strerror(errno));
  CHECK_FAILS(fm_onnx_write(&m.net, link, NULL), "link: is a symbolic link",
              "a symlink is refused");
  msg kept = load(target);
  CHECK(kept.n == 4 && memcmp(kept.p, "keep", 4) == 0, "the link's target is untouched");
  CHECK_FAILS(fm_onnx_write(&m.net, tpath("none/x.onnx"), NULL),
              "none/x.onnx: cannot write (No such file or directory)", "a missing folder, named");
  fm_net unbound = m.net;
  unbound.params = NULL;
  CHECK_FAILS(fm_onnx_write(&unbound, tpath("u.onnx"), NULL), "not built and given its parameters",
              "a network without parameters is refused");
  /* A kind with no operator: what a kind added to the engine without an export would meet. */
  m.layers[2].spec.kind = (fm_layer_kind)99;
  CHECK_FAILS(fm_onnx_write(&m.net, tpath("k.onnx"), NULL),
              "layer 3 (unknown): cannot be expressed in ONNX (no operator for layer kind 99)",
              "a layer without an operator is named");
  struct stat st;
  CHECK(stat(tpath("k.onnx"), &st) != 0, "and nothing is written");
  model_close(&m);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/fm-onnx-XXXXXX");
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  test_conv_net();
  test_dense_and_flatten();
  test_errors();
  free(file_bytes);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
  return check_done();
}
