/* test_graph: networks as graphs — explicit inputs, a residual add with fan-out, batch norm in
 * training and inference, strided and depthwise convolutions, average pooling, global average
 * pooling, ReLU6 and layers without bias: gradients against finite differences (parameters and
 * input), batch norm independent of the thread count, running statistics, slot reuse, build
 * errors, and model files of version 2 with their state. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_modelfile.h"
#include "fm_net.h"
#include "fm_rng.h"

static void *zalloc(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  memset(p, 0, bytes);
  return p;
}

typedef struct model {
  fm_net net;
  fm_layer layers[64];
  fm_work work;
  float *params, *grads, *state;
  void *mem;
} model;

static int model_open(model *m, const fm_layer_spec *specs, int n, int h, int w, int c, int batch,
                      int threads, uint64_t seed) {
  memset(m, 0, sizeof *m);
  if (fm_net_build(&m->net, m->layers, h, w, c, specs, n) != FM_OK) return FM_ERR;
  m->params = zalloc(sizeof(float) * (m->net.n_params + 1));
  m->grads = zalloc(sizeof(float) * (m->net.n_params + 1));
  m->state = zalloc(sizeof(float) * (m->net.n_state + 1));
  fm_net_bind(&m->net, m->params, m->grads, m->state);
  fm_net_init(&m->net, seed);
  size_t bytes = fm_work_bytes(&m->net, batch, threads);
  m->mem = zalloc(bytes);
  return fm_work_init(&m->work, &m->net, batch, threads, m->mem, bytes);
}

static void model_close(model *m) {
  free(m->params), free(m->grads), free(m->state), free(m->mem);
}

static float *random_images(fm_rng *r, int n, int64_t size) {
  float *x = zalloc(sizeof(float) * n * size);
  for (int64_t i = 0; i < n * size; i++) x[i] = fm_rng_uniform(r);
  return x;
}

/* A residual network in miniature (8x8x2 input): a stem, a block whose input feeds both its body
 * and the add (fan-out), a strided block with a projection shortcut, a depthwise-separable pair,
 * then average pooling, ReLU6, global average pooling and a dense head. */
static const fm_layer_spec resnet_like[] = {
    /* 0 */ {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 1, .no_bias = 1},
    /* 1 */ {.kind = FM_LAYER_BATCHNORM},
    /* 2 */ {.kind = FM_LAYER_RELU},
    /* 3 */ {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 1, .no_bias = 1},
    /* 4 */ {.kind = FM_LAYER_BATCHNORM},
    /* 5 */ {.kind = FM_LAYER_RELU},
    /* 6 */ {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 1, .no_bias = 1},
    /* 7 */ {.kind = FM_LAYER_BATCHNORM},
    /* 8 */ {.kind = FM_LAYER_ADD, .n_inputs = 2, .inputs = {7, 2}},
    /* 9 */ {.kind = FM_LAYER_RELU},
    /* 10 */ {.kind = FM_LAYER_CONV2D, .units = 6, .kh = 3, .same = 1, .stride = 2},
    /* 11 */ {.kind = FM_LAYER_BATCHNORM},
    /* 12 */ {.kind = FM_LAYER_RELU},
    /* 13 */ {.kind = FM_LAYER_CONV2D, .units = 6, .kh = 1, .stride = 2, .n_inputs = 1,
              .inputs = {9}},
    /* 14 */ {.kind = FM_LAYER_ADD, .n_inputs = 2, .inputs = {12, 13}},
    /* 15 */ {.kind = FM_LAYER_CONV2D, .units = 6, .kh = 3, .same = 1, .groups = 6},
    /* 16 */ {.kind = FM_LAYER_BATCHNORM},
    /* 17 */ {.kind = FM_LAYER_RELU6},
    /* 18 */ {.kind = FM_LAYER_CONV2D, .units = 5, .kh = 1},
    /* 19 */ {.kind = FM_LAYER_AVGPOOL},
    /* 20 */ {.kind = FM_LAYER_GLOBAL_AVGPOOL},
    /* 21 */ {.kind = FM_LAYER_DENSE, .units = 3},
};
#define RESNET_LIKE_N 22

/* The relative error of the analytic gradient of the mean loss against central differences. */
static double gradient_error(model *m, const float *x, const uint8_t *y, int n) {
  fm_batch_stats st;
  fm_net_gradient(&m->net, &m->work, x, y, n, 77, &st);
  float *analytic = zalloc(sizeof(float) * m->net.n_params);
  memcpy(analytic, m->grads, sizeof(float) * m->net.n_params);
  float *state = zalloc(sizeof(float) * (m->net.n_state + 1));
  memcpy(state, m->state, sizeof(float) * m->net.n_state);
  double num2 = 0, diff2 = 0;
  for (int64_t i = 0; i < m->net.n_params; i++) {
    float keep = m->params[i];
    const float h = 1e-3f;
    fm_batch_stats up, down;
    m->params[i] = keep + h;
    fm_net_gradient(&m->net, &m->work, x, y, n, 77, &up);
    m->params[i] = keep - h;
    fm_net_gradient(&m->net, &m->work, x, y, n, 77, &down);
    m->params[i] = keep;
    double num = (up.loss - down.loss) / (2.0 * h);
    num2 += num * num;
    diff2 += (num - analytic[i]) * (num - analytic[i]);
  }
  memcpy(m->state, state, sizeof(float) * m->net.n_state);
  free(analytic), free(state);
  return sqrt(diff2 / num2);
}

static void test_shapes_and_layout(void) {
  model m;
  CHECK(model_open(&m, resnet_like, RESNET_LIKE_N, 8, 8, 2, 8, 1, 3) == FM_OK,
        "the residual net builds (%s)", fm_error());
  const fm_net *net = &m.net;
  CHECK(net->layer[8].n_in == 2 && net->layer[8].in[0] == 7 && net->layer[8].in[1] == 2 &&
            net->layer[2].consumers == 2 && net->layer[9].consumers == 2,
        "explicit inputs: the add takes layers 8 and 3; layer 3 and layer 10 feed two layers");
  CHECK(net->layer[10].out_h == 4 && net->layer[13].out_h == 4 && net->layer[14].out_c == 6,
        "stride 2 halves 8x8 to 4x4 in the body and the 1x1 projection");
  CHECK(net->layer[15].n_weights == 9 * 6 && net->layer[15].n_biases == 6,
        "depthwise 3x3 over 6 channels: 54 weights");
  CHECK(net->layer[0].n_biases == 0 && net->layer[1].n_weights == 4 && net->layer[1].n_state == 8,
        "a conv without bias; batch norm has a scale and shift per channel and 2 state values");
  CHECK(net->layer[19].out_h == 2 && net->layer[20].out_h == 1 && net->layer[20].out_c == 5,
        "average pooling halves, global average pooling leaves one value per channel");
  CHECK(net->n_batchnorm == 5 && net->n_state == 2 * (4 + 4 + 4 + 6 + 6), "5 batch norms, their state");
  CHECK(net->layer[1].fused_relu && net->layer[2].act_offset == net->layer[1].act_offset,
        "a ReLU after batch norm runs inside it, in place");
  CHECK(net->layer[8].act_offset == net->layer[7].act_offset,
        "the add writes over its body's batch norm output (read by nothing else)");
  CHECK(net->layer[9].act_offset != net->layer[8].act_offset || net->layer[8].consumers == 1,
        "no layer writes in place over an output that two layers read");
  CHECK(!net->chain, "a graph is not a chain");
  /* Gradient slots: far fewer than one per layer. */
  int64_t sum = 0;
  for (int i = 0; i < net->n_layers; i++) sum += net->layer[i].out_size;
  CHECK(net->delta_floats < sum / 2, "output gradients share slots: %lld floats per image for %lld "
        "of outputs", (long long)net->delta_floats, (long long)sum);
  model_close(&m);
}

/* The residual net with every ReLU and ReLU6 replaced by dropout of rate 0 (the identity): its
 * loss is smooth, so finite differences check every other kind tightly. With the ReLUs, units that
 * cross their kink under the step blur the check, which then only catches gross errors. */
static void smooth_variant(fm_layer_spec *specs) {
  memcpy(specs, resnet_like, sizeof resnet_like);
  for (int i = 0; i < RESNET_LIKE_N; i++)
    if (specs[i].kind == FM_LAYER_RELU || specs[i].kind == FM_LAYER_RELU6) {
      specs[i].kind = FM_LAYER_DROPOUT;
      specs[i].rate = 0.0f;
    }
}

static void test_gradients(int threads, int smooth) {
  model m;
  fm_layer_spec specs[RESNET_LIKE_N];
  if (smooth)
    smooth_variant(specs);
  else
    memcpy(specs, resnet_like, sizeof resnet_like);
  model_open(&m, specs, RESNET_LIKE_N, 8, 8, 2, 8, threads, 3);
  const char *what = smooth ? "identity in place of the ReLUs" : "with its ReLUs";
  /* Scales and biases off their starting values, so that every path carries signal. */
  fm_rng r;
  fm_rng_seed(&r, 5);
  for (int l = 0; l < m.net.n_layers; l++) {
    float *b = fm_net_biases(&m.net, l);
    for (int64_t i = 0; i < m.net.layer[l].n_biases; i++) b[i] = 0.2f * (fm_rng_uniform(&r) - 0.3f);
    if (m.net.layer[l].spec.kind == FM_LAYER_BATCHNORM) {
      float *s = fm_net_weights(&m.net, l);
      for (int64_t i = 0; i < m.net.layer[l].n_weights; i++) s[i] = 0.5f + fm_rng_uniform(&r);
    }
  }
  const int n = 7;
  float *x = random_images(&r, n, m.net.in_size);
  uint8_t y[7] = {0, 1, 2, 2, 1, 0, 1};
  double rel = gradient_error(&m, x, y, n);
  CHECK(rel < (smooth ? 2e-3 : 3e-2), "residual net (%s), %d thread(s): the gradient of every "
        "parameter (conv with and without bias, strided, depthwise, batch norm in training, add "
        "with fan-out, pooling, dense) matches finite differences (relative error %.2g)", what,
        threads, rel);

  /* Saliency in inference mode: batch norm uses its running statistics. */
  for (int64_t i = 0; i < m.net.n_state; i++) m.state[i] = 0.1f + 0.5f * fm_rng_uniform(&r);
  uint8_t cls[7] = {2, 0, 1, 1, 2, 0, 0};
  float *dx = zalloc(sizeof(float) * n * m.net.in_size);
  CHECK(fm_net_input_gradient(&m.net, &m.work, x, n, cls, dx) == FM_OK, "input gradient runs");
  double worst = 0;
  int last = m.net.n_layers - 1;
  for (int img = 0; img < n; img += 3)
    for (int64_t i = 0; i < m.net.in_size; i++) {
      float *v = &x[img * m.net.in_size + i], keep = *v;
      const float h = 1e-2f;
      *v = keep + h;
      fm_net_forward(&m.net, &m.work, x, n, 0, 0);
      double up = fm_net_activation(&m.net, &m.work, last, img)[cls[img]];
      *v = keep - h;
      fm_net_forward(&m.net, &m.work, x, n, 0, 0);
      double down = fm_net_activation(&m.net, &m.work, last, img)[cls[img]];
      *v = keep;
      double num = (up - down) / (2 * h);
      worst = fmax(worst, fabs(num - dx[img * m.net.in_size + i]) / fmax(1, fabs(num)));
    }
  CHECK(worst < (smooth ? 1e-3 : 6e-2), "residual net (%s), %d thread(s): saliency (inference "
        "batch norm) matches finite differences (worst %.2g)", what, threads, worst);
  free(x), free(dx);
  model_close(&m);
}

/* Batch norm's statistics are sums over images added in image order, so the forward pass and
 * the running statistics do not depend on the thread count. */
static void test_batchnorm_threads(void) {
  model a, b;
  model_open(&a, resnet_like, RESNET_LIKE_N, 8, 8, 2, 9, 1, 11);
  model_open(&b, resnet_like, RESNET_LIKE_N, 8, 8, 2, 9, 2, 11);
  fm_rng r;
  fm_rng_seed(&r, 8);
  const int n = 9;
  float *x = random_images(&r, n, a.net.in_size);
  fm_net_forward(&a.net, &a.work, x, n, 1, 5);
  fm_net_forward(&b.net, &b.work, x, n, 1, 5);
  int same = 1;
  for (int l = 0; l < a.net.n_layers; l++)
    for (int img = 0; img < n; img++) {
      const float *p = fm_net_activation(&a.net, &a.work, l, img);
      const float *q = fm_net_activation(&b.net, &b.work, l, img);
      if (p && q && memcmp(p, q, sizeof(float) * a.net.layer[l].out_size) != 0) same = 0;
    }
  CHECK(same, "batch norm in training: every layer's output is the same on 1 and 2 threads, bit "
        "for bit");
  CHECK(memcmp(a.state, b.state, sizeof(float) * a.net.n_state) == 0,
        "the running statistics too");
  /* The first batch norm's running mean moved from 0 towards its batch mean by 1 - 0.9. */
  const fm_layer *B = &a.net.layer[1];
  const float *conv = NULL;
  double mean0 = 0;
  for (int img = 0; img < n; img++) {
    conv = fm_net_activation(&a.net, &a.work, 0, img);
    (void)conv;
  }
  /* Recompute the batch mean of channel 0 from a fresh inference-free pass over layer 0. */
  model c;
  model_open(&c, resnet_like, RESNET_LIKE_N, 8, 8, 2, 9, 1, 11);
  fm_net_forward(&c.net, &c.work, x, n, 0, 0);
  for (int img = 0; img < n; img++) {
    const float *o = fm_net_activation(&c.net, &c.work, 0, img);
    for (int p = 0; p < 64; p++) mean0 += o[p * 4];
  }
  mean0 /= n * 64.0;
  CHECK(fabs(a.state[B->state_offset] - 0.1 * mean0) < 1e-5,
        "running mean = 0.9 * 0 + 0.1 * batch mean (%.6f vs %.6f)", a.state[B->state_offset],
        0.1 * mean0);
  free(x);
  model_close(&a), model_close(&b), model_close(&c);
}

/* Training steps on 1 and 2 threads: the losses agree closely (the weight gradients' sums differ
 * in the last bits between the two). */
static void test_training(void) {
  model m;
  model_open(&m, resnet_like, RESNET_LIKE_N, 8, 8, 2, 16, 2, 4);
  fm_optim opt;
  fm_optim_adam(&opt, 1e-2);
  float *st = zalloc(sizeof(float) * 2 * m.net.n_params);
  fm_rng r;
  fm_rng_seed(&r, 9);
  const int n = 16;
  float *x = random_images(&r, n, m.net.in_size);
  uint8_t y[16];
  for (int i = 0; i < n; i++) y[i] = (uint8_t)(i % 3);
  /* Make the classes learnable: brighten one corner per class. */
  for (int i = 0; i < n; i++) x[i * m.net.in_size + y[i] * 20] += 3.0f;
  fm_batch_stats s0, s;
  fm_net_train_step(&m.net, &m.work, &opt, st, x, y, n, 1, &s0);
  for (int k = 0; k < 60; k++) fm_net_train_step(&m.net, &m.work, &opt, st, x, y, n, 1, &s);
  CHECK(s.loss < 0.5 * s0.loss, "the residual net learns a small batch (loss %.3f -> %.3f)",
        s0.loss, s.loss);
  free(x), free(st);
  model_close(&m);
}

static void test_build_errors(void) {
  fm_net net;
  fm_layer layers[8];
  fm_layer_spec ahead[] = {{.kind = FM_LAYER_DENSE, .units = 4},
                           {.kind = FM_LAYER_ADD, .n_inputs = 2, .inputs = {0, 2}},
                           {.kind = FM_LAYER_DENSE, .units = 3}};
  CHECK_FAILS(fm_net_build(&net, layers, 4, 4, 1, ahead, 3), "does not come before it",
              "an input must come before the layer");
  ahead[1].inputs[1] = INT_MAX;
  CHECK_FAILS(fm_net_build(&net, layers, 4, 4, 1, ahead, 3), "input 2 is layer 2147483648,",
              "an input index of INT_MAX is refused and named without overflow");
  fm_layer_spec shapes[] = {{.kind = FM_LAYER_DENSE, .units = 4},
                            {.kind = FM_LAYER_DENSE, .units = 5},
                            {.kind = FM_LAYER_ADD, .n_inputs = 2, .inputs = {0, 1}},
                            {.kind = FM_LAYER_DENSE, .units = 3}};
  CHECK_FAILS(fm_net_build(&net, layers, 4, 4, 1, shapes, 4), "input 2 is 1x1x5 but input 1 is 1x1x4",
              "add: inputs of different shapes are refused, naming both");
  fm_layer_spec one[] = {{.kind = FM_LAYER_ADD}, {.kind = FM_LAYER_DENSE, .units = 3}};
  CHECK_FAILS(fm_net_build(&net, layers, 4, 4, 1, one, 2), "takes 2 to 4 inputs, not 1",
              "add needs two inputs");
  fm_layer_spec dead[] = {{.kind = FM_LAYER_DENSE, .units = 4},
                          {.kind = FM_LAYER_DENSE, .units = 3, .n_inputs = 1, .inputs = {-1}}};
  CHECK_FAILS(fm_net_build(&net, layers, 4, 4, 1, dead, 2), "used by no later layer",
              "a layer whose output nothing reads is refused");
  fm_layer_spec groups[] = {{.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .groups = 2},
                            {.kind = FM_LAYER_DENSE, .units = 3}};
  CHECK_FAILS(fm_net_build(&net, layers, 8, 8, 4, groups, 2), "groups",
              "grouped convolutions other than depthwise are refused");
  fm_layer_spec bn[] = {{.kind = FM_LAYER_BATCHNORM, .momentum = 1.5f},
                        {.kind = FM_LAYER_DENSE, .units = 3}};
  CHECK_FAILS(fm_net_build(&net, layers, 4, 4, 1, bn, 2), "momentum", "batch norm momentum 1.5");
}

static void test_model_file(void) {
  model a;
  model_open(&a, resnet_like, RESNET_LIKE_N, 8, 8, 2, 4, 1, 21);
  for (int64_t i = 0; i < a.net.n_state; i++) a.state[i] = 0.25f + (float)i;
  char path[] = "/tmp/fm_test_graph_XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  CHECK(fm_model_save(path, "Residual", &a.net, "note=x\n") == FM_OK, "a graph with state saves");
  fm_model_desc d;
  CHECK(fm_model_probe(path, &d) == FM_OK && d.version == 2 && d.n_layers == RESNET_LIKE_N &&
            d.n_params == a.net.n_params && d.n_state == a.net.n_state && !strcmp(d.kind, "Residual"),
        "probe: version 2, layers, parameters and state counted");
  fm_layer_spec specs[RESNET_LIKE_N];
  static fm_layer layers[RESNET_LIKE_N];
  fm_net net;
  char meta[64];
  float *params = zalloc(sizeof(float) * a.net.n_params);
  float *state = zalloc(sizeof(float) * a.net.n_state);
  CHECK(fm_model_read(path, &d, specs, layers, &net, meta, params, state) == FM_OK,
        "read back (%s)", fm_error());
  CHECK(memcmp(params, a.params, sizeof(float) * a.net.n_params) == 0 &&
            memcmp(state, a.state, sizeof(float) * a.net.n_state) == 0 && !strcmp(meta, "note=x\n"),
        "parameters, state and text come back exactly");
  int same = net.n_layers == a.net.n_layers;
  for (int i = 0; same && i < net.n_layers; i++)
    same = net.layer[i].n_in == a.net.layer[i].n_in &&
           memcmp(net.layer[i].in, a.net.layer[i].in, sizeof net.layer[i].in) == 0 &&
           net.layer[i].out_size == a.net.layer[i].out_size &&
           net.layer[i].spec.stride == a.net.layer[i].spec.stride &&
           net.layer[i].spec.groups == a.net.layer[i].spec.groups &&
           net.layer[i].spec.no_bias == a.net.layer[i].spec.no_bias;
  CHECK(same, "the graph comes back: inputs, strides, groups, biases, shapes");
  /* A field this version does not know, with a correct checksum: refused as from a newer
   * fmnist. The first record: its length, kind, n_inputs (1), input (-1), n_fields, then the
   * first key, at 48 + 20. */
  FILE *f = fopen(path, "r+b");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  unsigned char *bytes = malloc((size_t)size);
  fseek(f, 0, SEEK_SET);
  CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size && bytes[68] == 1,
        "the first layer's first field is key 1 (units)");
  bytes[68] = 99;
  uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes, (uInt)(size - 4));
  for (int i = 0; i < 4; i++) bytes[size - 4 + i] = (unsigned char)(crc >> (8 * i));
  fseek(f, 0, SEEK_SET);
  fwrite(bytes, 1, (size_t)size, f);
  fclose(f);
  CHECK_FAILS(fm_model_probe(path, &d), "written by a newer fmnist (layer 1 has a field 99",
              "an unknown field key is refused as from a newer version");
  bytes[68] = 1;
  bytes[size - 10] ^= 0x40; /* a state value */
  f = fopen(path, "wb");
  fwrite(bytes, 1, (size_t)size, f);
  fclose(f);
  CHECK_FAILS(fm_model_probe(path, &d), "checksum", "a changed byte fails the checksum");
  free(bytes);
  unlink(path);
  free(params), free(state);
  model_close(&a);
}

/* The element-wise and pooling kernels on values worked out by hand. */
static void test_kernels(void) {
  float x[5] = {-1.0f, 0.5f, 6.5f, 3.0f, NAN}, y[5], dy[5] = {1, 2, 3, 4, 5}, dx[5];
  fm_relu6_forward(5, x, y);
  fm_relu6_backward(5, y, dy, dx);
  CHECK(y[0] == 0 && y[1] == 0.5f && y[2] == 6 && y[3] == 3 && isnan(y[4]) && dx[0] == 0 &&
            dx[1] == 2 && dx[2] == 0 && dx[3] == 4,
        "ReLU6: clipped to [0, 6], NaN kept; the gradient passes strictly inside");
  /* a 2x3 image of 2 channels: average pool 2 keeps one window, the last column is dropped */
  float img[12] = {1, 10, 2, 20, 9, 90, 3, 30, 4, 40, 9, 90}, out[2], back[12];
  fm_avgpool_forward(1, 2, 3, 2, 2, img, out);
  float g[2] = {4, 8};
  fm_avgpool_backward(1, 2, 3, 2, 2, g, back);
  CHECK(out[0] == 2.5f && out[1] == 25 && back[0] == 1 && back[1] == 2 && back[4] == 0 &&
            back[6] == 1 && back[11] == 0,
        "average pooling: the window's mean; the gradient spread evenly, leftovers get 0");
  float gap[2];
  fm_global_avgpool_forward(1, 6, 2, img, gap);
  fm_global_avgpool_backward(1, 6, 2, g, back);
  CHECK(fabsf(gap[0] - 28.0f / 6) < 1e-6f && fabsf(gap[1] - 280.0f / 6) < 1e-5f &&
            fabsf(back[0] - 4.0f / 6) < 1e-7f && fabsf(back[11] - 8.0f / 6) < 1e-7f,
        "global average pooling: the mean of each channel over the pixels");
  /* the vector path (whole registers and a tail) against the plain loops, bit for bit */
  float big[37], ya[37], yb[37], ga[37], gb[37], gy[37];
  for (int i = 0; i < 37; i++) {
    big[i] = (float)(i % 9) - 1.5f;
    gy[i] = (float)i;
  }
  big[3] = NAN;
  big[20] = 6.0f;
  big[21] = 0.0f;
  fm_relu6_forward(37, big, ya);
  fm_relu6_backward(37, ya, gy, ga);
  fm_simd_allow(0);
  fm_relu6_forward(37, big, yb);
  fm_relu6_backward(37, yb, gy, gb);
  fm_simd_allow(1);
  CHECK(memcmp(ya, yb, sizeof ya) == 0 && memcmp(ga, gb, sizeof ga) == 0 && isnan(ya[3]) &&
            ga[20] == 0 && ga[21] == 0,
        "ReLU6: the vector code gives the plain loops' bits (NaN kept, 0 and 6 pass no gradient)");
  const float *two[2] = {x + 1, dy};
  float sum[2];
  fm_add_forward(2, 2, two, sum);
  CHECK(sum[0] == 1.5f && sum[1] == 8.5f, "add: element-wise sum");
}

/* A dense layer without bias before batch norm (the head of a batch-normalised CNN): its weight
 * gradient is checked against finite differences, and it has no bias to update. */
static void test_dense_no_bias(void) {
  static const fm_layer_spec specs[] = {
      {.kind = FM_LAYER_FLATTEN},
      {.kind = FM_LAYER_DENSE, .units = 5, .no_bias = 1},
      {.kind = FM_LAYER_BATCHNORM},
      {.kind = FM_LAYER_DROPOUT, .rate = 0.0f},
      {.kind = FM_LAYER_DENSE, .units = 3},
  };
  model m;
  CHECK(model_open(&m, specs, 5, 4, 4, 1, 8, 1, 3) == FM_OK, "dense without bias: the net builds");
  CHECK(m.net.layer[1].n_biases == 0 && m.net.layer[1].n_weights == 16 * 5,
        "dense without bias: 80 weights and no bias");
  fm_rng r;
  fm_rng_seed(&r, 9);
  const int n = 6;
  float *x = random_images(&r, n, m.net.in_size);
  uint8_t y[6] = {0, 1, 2, 2, 1, 0};
  double rel = gradient_error(&m, x, y, n);
  CHECK(rel < 2e-3, "dense without bias, then batch norm: gradients match finite differences "
        "(relative error %.2g)", rel);
  free(x);
  model_close(&m);
}

int main(void) {
  test_kernels();
  test_shapes_and_layout();
  test_dense_no_bias();
  test_gradients(1, 1);
  test_gradients(2, 1);
  test_gradients(2, 0);
  test_batchnorm_threads();
  test_training();
  test_build_errors();
  test_model_file();
  return check_done();
}
