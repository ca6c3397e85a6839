/* test_net: networks built from layer specs — shapes and parameter counts of the reference models,
 * a whole-network gradient check, prediction and saliency, activations, bit-for-bit determinism on
 * two threads, the divergence trap, and a small network that must learn synthetic data. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_net.h"
#include "fm_rng.h"

static void *zalloc(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  memset(p, 0, bytes);
  return p;
}

/* A network with its buffers. */
/* Layer records for the networks a test builds one at a time. */
static fm_layer scratch_layers[64];

typedef struct model {
  fm_net net;
  fm_layer layers[64];
  fm_work work;
  float *params, *grads, *state;
  void *mem;
  fm_optim opt;
} model;

static int model_open(model *m, const fm_layer_spec *specs, int n, int h, int w, int c, int batch,
                      int threads, uint64_t seed) {
  memset(m, 0, sizeof *m);
  if (fm_net_build(&m->net, m->layers, h, w, c, specs, n) != FM_OK) return FM_ERR;
  m->params = zalloc(sizeof(float) * m->net.n_params);
  m->grads = zalloc(sizeof(float) * m->net.n_params);
  fm_net_bind(&m->net, m->params, m->grads, NULL);
  fm_net_init(&m->net, seed);
  size_t bytes = fm_work_bytes(&m->net, batch, threads);
  m->mem = zalloc(bytes);
  if (fm_work_init(&m->work, &m->net, batch, threads, m->mem, bytes) != FM_OK) return FM_ERR;
  fm_optim_adam(&m->opt, 1e-3);
  m->state = zalloc(sizeof(float) * (size_t)fm_optim_state_floats(&m->opt, m->net.n_params));
  return FM_OK;
}

static void model_close(model *m) {
  free(m->params), free(m->grads), free(m->state), free(m->mem);
}

static void test_shapes(void) {
  fm_net net;
  fm_layer_spec reference_cnn[FM_REFERENCE_CNN_LAYERS];
  CHECK(fm_reference_cnn(reference_cnn) == 11, "the reference CNN has 11 layers");
  CHECK(fm_net_build(&net, scratch_layers, 28, 28, 1, reference_cnn, 11) == FM_OK, "reference CNN builds");
  static const int shapes[11][3] = {{26, 26, 32}, {26, 26, 32}, {13, 13, 32}, {11, 11, 64},
                                    {11, 11, 64}, {5, 5, 64},   {1, 1, 1600}, {1, 1, 128},
                                    {1, 1, 128},  {1, 1, 128},  {1, 1, 10}};
  static const int64_t params[11] = {320, 0, 0, 18496, 0, 0, 0, 204928, 0, 0, 1290};
  int ok = 1;
  for (int i = 0; i < 11; i++) {
    const fm_layer *L = &net.layer[i];
    ok &= L->out_h == shapes[i][0] && L->out_w == shapes[i][1] && L->out_c == shapes[i][2];
    ok &= L->n_weights + L->n_biases == params[i];
  }
  CHECK(ok, "reference CNN: output shapes and parameter counts per layer (320, 18496, 204928, 1290)");
  CHECK(net.n_params == 225034 && net.classes == 10, "reference CNN: 225,034 parameters in total");
  char d[64], sh[32];
  CHECK(!strcmp(fm_layer_describe(&net.layer[0], d, sizeof d), "conv2d 3x3, 32 filters, valid") &&
            !strcmp(fm_layer_shape(&net.layer[0], sh, sizeof sh), "26x26x32") &&
            !strcmp(fm_layer_describe(&net.layer[2], d, sizeof d), "maxpool 2x2") &&
            !strcmp(fm_layer_describe(&net.layer[9], d, sizeof d), "dropout 0.5") &&
            !strcmp(fm_layer_shape(&net.layer[6], sh, sizeof sh), "1600"),
        "reference CNN: layer descriptions and shapes for a summary");
  CHECK(net.layer[0].fused_relu && net.layer[3].fused_relu && net.layer[7].fused_relu,
        "reference CNN: the ReLUs after conv2d and dense run in the product");
  CHECK(net.macs == 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 1280,
        "reference CNN: %lld multiply-adds per image", (long long)net.macs);
  CHECK(net.layer[1].offset == 320 && net.layer[3].offset == 320 &&
            net.layer[10].offset == 320 + 18496 + 204928,
        "reference CNN: weights laid out layer after layer");

  fm_layer_spec mlp[] = {{.kind = FM_LAYER_FLATTEN},
                         {.kind = FM_LAYER_DENSE, .units = 256},
                         {.kind = FM_LAYER_RELU},
                         {.kind = FM_LAYER_DROPOUT, .rate = 0.2f},
                         {.kind = FM_LAYER_DENSE, .units = 128},
                         {.kind = FM_LAYER_RELU},
                         {.kind = FM_LAYER_DROPOUT, .rate = 0.2f},
                         {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK(fm_net_build(&net, scratch_layers, 28, 28, 1, mlp, 8) == FM_OK && net.n_params == 235146,
        "MLP 784-256-128-10: 235,146 parameters");
  int mlp_threads = fm_work_threads(&net, 64);
  fm_layer_spec logreg[] = {{.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK(fm_net_build(&net, scratch_layers, 28, 28, 1, logreg, 1) == FM_OK && net.n_params == 7850 &&
            net.layer[0].in_size == 784,
        "logistic regression: one dense layer on the flattened image, 7,850 parameters");
  int cores = fm_default_threads();
  CHECK(fm_work_threads(&net, 64) == 1 && mlp_threads == (cores < 4 ? cores : 4) &&
            fm_work_threads(&net, 64) == fm_work_threads(&net, 64),
        "thread counts: logistic regression trains on 1 thread, the MLP on %d of %d", mlp_threads,
        cores);
  fm_layer_spec same[] = {{.kind = FM_LAYER_CONV2D, .units = 8, .kh = 5, .same = 1},
                          {.kind = FM_LAYER_MAXPOOL},
                          {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK(fm_net_build(&net, scratch_layers, 28, 28, 1, same, 3) == FM_OK && net.layer[0].out_h == 28 &&
            net.layer[1].out_h == 14 && net.layer[2].in_size == 14 * 14 * 8,
        "conv2d 5x5 'same' keeps 28x28; max-pool halves it");
}

static void test_build_errors(void) {
  fm_net net;
  fm_layer_spec big[] = {{.kind = FM_LAYER_CONV2D, .units = 4, .kh = 7},
                         {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 7},
                         {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 10, 10, 1, big, 3), "layer 2",
              "build: a kernel larger than its input names the layer");
  fm_layer_spec drop[] = {{.kind = FM_LAYER_DROPOUT, .rate = 1.0f}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, drop, 2), "rate", "build: dropout rate 1 is refused");
  fm_layer_spec last[] = {{.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, last, 1), "class scores",
              "build: a network must end in class scores");
  fm_layer_spec units[] = {{.kind = FM_LAYER_DENSE, .units = 0}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, units, 1), "units", "build: dense with 0 units");
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, units, 0), "layers", "build: no layers");
  fm_layer_spec pool[] = {{.kind = FM_LAYER_MAXPOOL, .pool = 4}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 3, 3, 1, pool, 2), "smaller than the window",
              "build: a pool window larger than its input");
  fm_layer_spec ok[] = {{.kind = FM_LAYER_DENSE, .units = 10}};
  fm_net_build(&net, scratch_layers, 28, 28, 1, ok, 1);
  fm_work w;
  static float mem[16] __attribute__((aligned(64)));
  CHECK_FAILS(fm_work_init(&w, &net, 64, 2, mem, sizeof mem), "needed for batch 64",
              "workspace: too little memory names what is needed");
  CHECK_FAILS(fm_work_init(&w, &net, 64, 0, mem, sizeof mem), "threads",
              "workspace: zero threads are refused");
}

/* Sizes computed from specs: each limit of fm_net.h refuses what would pass it, naming the layer
 * and the numbers, where the products used to wrap around. */
static void test_build_limits(void) {
  fm_net net;
  /* 16 dense layers of 2^30 - 1 units once wrapped the parameter count to a small number */
  fm_layer_spec wrap[17];
  for (int i = 0; i < 16; i++) wrap[i] = (fm_layer_spec){.kind = FM_LAYER_DENSE, .units = (1 << 30) - 1};
  wrap[16] = (fm_layer_spec){.kind = FM_LAYER_DENSE, .units = 10};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 1, 1, (1 << 30) - 1, wrap, 17), "has a side over 32768",
              "limits: an input side over FM_NET_MAX_DIM is refused");
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 1, 1, 1024, wrap, 17), "units must be 1 to 32768 (got 1073741823)",
              "limits: dense units over FM_NET_MAX_DIM are refused");
  fm_layer_spec dense[] = {{.kind = FM_LAYER_DENSE, .units = 1024}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK(fm_net_build(&net, scratch_layers, 16, 16, 1, dense, 2) == FM_OK, "limits: a 256-1024-10 network builds");
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 128, 128, 16, dense, 2),
              "layer 1 (dense): it would have 268436480 parameters (at most 268435456)",
              "limits: 2^28 weights plus biases pass the parameter limit");
  fm_layer_spec wide[] = {{.kind = FM_LAYER_DENSE, .units = 32768}, {.kind = FM_LAYER_DENSE, .units = 32768},
                          {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, wide, 3),
              "layer 2 (dense): 32768 inputs x 32768 units is over 268435456 weights",
              "limits: a dense layer over the parameter limit names the layer and both sizes");
  fm_layer_spec filters[] = {{.kind = FM_LAYER_CONV2D, .units = 2147483647, .kh = 3},
                             {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, filters, 2), "filters must be 1 to 32768 (got 2147483647)",
              "limits: 2^31 - 1 filters are refused before any product");
  fm_layer_spec same[] = {{.kind = FM_LAYER_CONV2D, .units = 8, .kh = 32768, .same = 1},
                          {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, same, 2), "layer 1: conv2d: the patch matrix of one image",
              "limits: a 'same' kernel of 32768x32768 is refused, not divided by zero");
  fm_layer_spec kernel[] = {{.kind = FM_LAYER_CONV2D, .units = 1024, .kh = 3},
                            {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 32768, kernel, 2),
              "layer 1 (conv2d): a 3x3x32768 kernel with 1024 filters is over 268435456 weights",
              "limits: conv weights over the parameter limit");
  fm_layer_spec out[] = {{.kind = FM_LAYER_CONV2D, .units = 32768, .kh = 3, .same = 1},
                         {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 128, 128, 1, out, 2),
              "layer 1 (conv2d): an output of 128x128x32768 is over 268435456 floats per image",
              "limits: a layer output over FM_NET_MAX_IMAGE_FLOATS");
  fm_layer_spec macs[] = {{.kind = FM_LAYER_CONV2D, .units = 16384, .kh = 1},
                          {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 128, 128, 16384, macs, 2),
              "layer 1 (conv2d): 128x128 pixels x 268435456 weights is over 1099511627776 "
              "multiply-adds per image", "limits: multiply-adds over FM_NET_MAX_MACS");
  fm_layer_spec kept[] = {{.kind = FM_LAYER_RELU}, {.kind = FM_LAYER_DROPOUT, .rate = 0.5f},
                          {.kind = FM_LAYER_MAXPOOL, .pool = 4096}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 16384, 16384, 1, kept, 4),
              "layer 2 (dropout): the outputs a pass keeps would be over 268435456 floats per image",
              "limits: the activations kept per image are limited too");
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 16384, 16384, 2, kept, 4),
              "network: an input of 16384x16384x2 is over 268435456 floats per image",
              "limits: the input image is limited");
  fm_layer_spec classes[] = {{.kind = FM_LAYER_DENSE, .units = 257}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, classes, 1), "must give 2 to 256 class scores",
              "limits: 257 classes would not fit the byte of a label");

  /* the workspace: batch and threads, then its bytes */
  fm_layer_spec flat[] = {{.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK(fm_net_build(&net, scratch_layers, 4096, 4096, 1, flat, 1) == FM_OK, "limits: a 4096x4096 logistic regression builds");
  CHECK(fm_work_bytes(&net, 65537, 1) == 0 && strstr(fm_error(), "batch size must be 1 to 65536 (got 65537)"),
        "workspace: a batch over FM_NET_MAX_BATCH is refused (%s)", fm_error());
  CHECK(fm_work_bytes(&net, 1024, 2) == 0 &&
            strstr(fm_error(), "for batches of 1024 on 2 threads, over the limit of 17179869184"),
        "workspace: over FM_NET_MAX_WORK_BYTES is refused (%s)", fm_error());
  fm_work w;
  static float mem[16] __attribute__((aligned(64)));
  CHECK_FAILS(fm_work_init(&w, &net, 1024, 2, mem, SIZE_MAX), "over the limit",
              "workspace: fm_work_init refuses it whatever memory it is told it has");
  CHECK(fm_work_bytes(&net, 16, 2) > 0, "workspace: the same network with batches of 16 is fine");
}

/* Spec fields: a kind outside the table, a field the kind does not use, a value out of range. */
static void test_spec_fields(void) {
  fm_net net;
  fm_layer_spec kind[] = {{.kind = (fm_layer_kind)77}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, kind, 2), "layer 1: unknown layer kind 77 (expected 1 to 11)",
              "spec: a kind outside the table is refused");
  fm_layer_spec unused[] = {{.kind = FM_LAYER_RELU, .units = 5}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, unused, 2),
              "layer 1 (relu): units is not used by relu layers and must be 0 (got 5)",
              "spec: a field the kind does not use must be 0");
  fm_layer_spec rate[] = {{.kind = FM_LAYER_DENSE, .units = 10, .rate = 0.5f}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, rate, 1), "rate is not used by dense layers",
              "spec: a rate on a dense layer is refused");
  fm_layer_spec pad[] = {{.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 2},
                         {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, pad, 2), "padding must be 0 to 1 (got 2)",
              "spec: padding other than 0 or 1");
  fm_layer_spec init[] = {{.kind = FM_LAYER_DENSE, .units = 10, .init = (fm_init_kind)7}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, init, 1), "init must be 0 to 3 (got 7)",
              "spec: an unknown init");
  fm_layer_spec nan[] = {{.kind = FM_LAYER_DROPOUT, .rate = NAN}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, nan, 2), "rate must be in [0, 1)", "spec: a NaN rate");
  fm_layer_spec neg[] = {{.kind = FM_LAYER_MAXPOOL, .pool = -2}, {.kind = FM_LAYER_DENSE, .units = 10}};
  CHECK_FAILS(fm_net_build(&net, scratch_layers, 28, 28, 1, neg, 2), "size must be 0 to 32768 (got -2)",
              "spec: a negative pool window");
  /* one table of kinds: every name maps back to its kind */
  int round_trip = 1;
  for (int k = 1; k <= FM_LAYER_KINDS; k++)
    round_trip &= fm_layer_kind_of(fm_layer_kind_name((fm_layer_kind)k)) == (fm_layer_kind)k &&
                  strcmp(fm_layer_type_name((fm_layer_kind)k), "unknown") != 0;
  CHECK(round_trip && fm_layer_kind_of("conv3d") == 0 &&
            !strcmp(fm_layer_kind_name((fm_layer_kind)0), "unknown") &&
            !strcmp(fm_layer_type_name(FM_LAYER_MAXPOOL), "MaxPooling2D"),
        "kinds: names and types from one table, unknown outside it");
}

/* fm_net_set_layer: counts and finiteness checked before anything changes. */
static void test_set_layer(void) {
  fm_net net;
  fm_layer_spec specs[] = {{.kind = FM_LAYER_DENSE, .units = 2}, {.kind = FM_LAYER_RELU},
                           {.kind = FM_LAYER_DENSE, .units = 2}};
  float params[3 * 2 + 2 + 2 * 2 + 2] = {0};
  CHECK(fm_net_build(&net, scratch_layers, 1, 1, 3, specs, 3) == FM_OK && net.n_params == 14, "set_layer: a 3-2-2 net");
  fm_net_bind(&net, params, NULL, NULL);
  float w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {7, 8};
  CHECK(fm_net_set_layer(&net, 0, w, 6, b, 2) == FM_OK && params[5] == 6 && params[7] == 8,
        "set_layer: weights then biases in place");
  w[4] = INFINITY;
  CHECK_FAILS(fm_net_set_layer(&net, 0, w, 6, NULL, 0), "layer 1 (dense): weight 5 is not finite (inf)",
              "set_layer: a weight that is not finite is refused");
  CHECK(params[4] == 5, "set_layer: ... and nothing changed");
  CHECK_FAILS(fm_net_set_layer(&net, 0, w, 5, NULL, 0), "has 6 weights, not 5", "set_layer: a wrong count");
  CHECK_FAILS(fm_net_set_layer(&net, 1, w, 6, NULL, 0), "layer 2 (relu) has no weights",
              "set_layer: a layer without weights");
  CHECK_FAILS(fm_net_set_layer(&net, 3, w, 6, NULL, 0), "layer 4 out of range 1..3",
              "set_layer: a layer out of range");
}

/* ---- a small network with every kind of layer ---- */

static const fm_layer_spec small_net[] = {
    {.kind = FM_LAYER_CONV2D, .units = 4, .kh = 3, .same = 1},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_MAXPOOL},
    {.kind = FM_LAYER_CONV2D, .units = 3, .kh = 2},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_FLATTEN},
    {.kind = FM_LAYER_DENSE, .units = 8},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_DROPOUT, .rate = 0.3f},
    {.kind = FM_LAYER_DENSE, .units = 3},
};

static float *random_images(fm_rng *r, int n, int64_t size) {
  float *x = zalloc(sizeof(float) * n * size);
  for (int64_t i = 0; i < n * size; i++) x[i] = fm_rng_uniform(r);
  return x;
}

static void test_network_gradient(const char *kname) {
  model m;
  CHECK(model_open(&m, small_net, 10, 6, 6, 2, 8, 2, 5) == FM_OK, "small net (%s) builds", kname);
  fm_rng r;
  fm_rng_seed(&r, 99);
  const int n = 7;
  float *x = random_images(&r, n, m.net.in_size);
  uint8_t y[7] = {0, 1, 2, 2, 1, 0, 1};
  /* Biases a little positive so fewer ReLUs sit at their kink. */
  for (int l = 0; l < m.net.n_layers; l++)
    for (int64_t i = 0; i < m.net.layer[l].n_biases; i++) fm_net_biases(&m.net, l)[i] = 0.1f;
  fm_batch_stats st;
  fm_net_gradient(&m.net, &m.work, x, y, n, 1234, &st);
  float *analytic = zalloc(sizeof(float) * m.net.n_params);
  memcpy(analytic, m.grads, sizeof(float) * m.net.n_params);
  double num2 = 0, diff2 = 0;
  for (int64_t i = 0; i < m.net.n_params; i++) {
    float keep = m.params[i];
    /* Small enough that few ReLUs or max-pool windows change side (1e-2 gives a 5% error). */
    const float h = 1e-3f;
    fm_batch_stats up, down;
    m.params[i] = keep + h;
    fm_net_gradient(&m.net, &m.work, x, y, n, 1234, &up);
    m.params[i] = keep - h;
    fm_net_gradient(&m.net, &m.work, x, y, n, 1234, &down);
    m.params[i] = keep;
    double num = (up.loss - down.loss) / (2.0 * h);
    num2 += num * num;
    diff2 += (num - analytic[i]) * (num - analytic[i]);
  }
  double rel = sqrt(diff2 / num2);
  CHECK(rel < 2e-3, "small net (%s, 2 threads, dropout on): the gradient of the mean loss over all "
        "%lld parameters matches finite differences (relative error %.2g)", kname,
        (long long)m.net.n_params, rel);
  CHECK(st.n == n && isfinite(st.loss) && st.loss > 0 && st.grad_norm > 0,
        "small net (%s): batch statistics (loss %.4f, gradient norm %.4f)", kname, st.loss,
        st.grad_norm);

  /* Saliency: the gradient of one class's logit with respect to the input. */
  uint8_t cls[7] = {2, 0, 1, 1, 2, 0, 0};
  float *dx = zalloc(sizeof(float) * n * m.net.in_size);
  CHECK(fm_net_input_gradient(&m.net, &m.work, x, n, cls, dx) == FM_OK, "small net (%s): input gradient", kname);
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
  CHECK(worst < 2e-2, "small net (%s): saliency matches finite differences of the class logit "
        "(worst %.2g)", kname, worst);
  free(x), free(analytic), free(dx);
  model_close(&m);
}

static void test_predict_and_activations(void) {
  model m;
  model_open(&m, small_net, 10, 6, 6, 2, 4, 2, 8);
  fm_rng r;
  fm_rng_seed(&r, 5);
  const int n = 11; /* more than one workspace batch, and a short last one */
  float *x = random_images(&r, n, m.net.in_size), *probs = zalloc(sizeof(float) * n * 3);
  uint8_t pred[11], y[11];
  for (int i = 0; i < n; i++) y[i] = (uint8_t)(i % 3);
  double loss = 0;
  int64_t correct = -1;
  CHECK(fm_net_predict(&m.net, &m.work, x, n, probs, pred, y, &loss, &correct) == FM_OK,
        "predict: 11 images through a workspace of 4");
  int ok = 1, right = 0;
  double manual_loss = 0;
  for (int i = 0; i < n; i++) {
    double s = 0;
    int best = 0;
    for (int k = 0; k < 3; k++) {
      s += probs[i * 3 + k];
      if (probs[i * 3 + k] > probs[i * 3 + best]) best = k;
    }
    ok &= fabs(s - 1) < 1e-5 && best == pred[i];
    right += best == y[i];
    manual_loss += -log(probs[i * 3 + y[i]]);
  }
  CHECK(ok && right == correct && fabs(loss - manual_loss) < 1e-4,
        "predict: probabilities sum to 1, classes are their argmax, loss and count agree");
  /* Activations of the last pass (images 8..10): the logits give the same probabilities. */
  const float *z = fm_net_activation(&m.net, &m.work, 9, 2);
  float p[3];
  fm_softmax(1, 3, z, p);
  CHECK(z && fabs(p[0] - probs[30]) < 1e-6 && fabs(p[2] - probs[32]) < 1e-6,
        "activation: the last layer's output of image 3 of the last pass is its logits");
  const float *fmap = fm_net_activation(&m.net, &m.work, 0, 1);
  int nonneg = 1;
  for (int i = 0; i < 6 * 6 * 4; i++) nonneg &= fmap[i] >= 0;
  CHECK(fmap && nonneg, "activation: a conv2d followed by ReLU shows rectified feature maps");
  CHECK(fm_net_activation(&m.net, &m.work, 0, 3) == NULL && strstr(fm_error(), "image 4"),
        "activation: an image out of range is refused (%s)", fm_error());
  CHECK(fm_net_activation(&m.net, &m.work, 10, 0) == NULL && strstr(fm_error(), "layer 11"),
        "activation: a layer out of range is refused");
  uint8_t bad[2] = {1, 3};
  CHECK_FAILS(fm_net_predict(&m.net, &m.work, x, 2, NULL, NULL, bad, &loss, &correct), "label 3",
              "predict: a label the network does not have is refused");
  fm_batch_stats st;
  CHECK_FAILS(fm_net_gradient(&m.net, &m.work, x, bad, 2, 0, &st), "image 1",
              "gradient: the bad label's image is named");
  CHECK_FAILS(fm_net_gradient(&m.net, &m.work, x, y, 5, 0, &st), "at most 4",
              "gradient: a batch larger than the workspace is refused");
  free(x), free(probs);
  model_close(&m);
}

/* ---- synthetic data: ten classes of 8x8 images, each a fixed random pattern plus noise ---- */

static void synthetic(fm_rng *r, const float *protos, int n, float *x, uint8_t *y) {
  for (int i = 0; i < n; i++) {
    y[i] = (uint8_t)fm_rng_below(r, 10);
    for (int p = 0; p < 64; p++) {
      float v = protos[y[i] * 64 + p] + 0.35f * (float)fm_rng_normal(r);
      x[i * 64 + p] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
}

static const fm_layer_spec tiny_cnn[] = {
    {.kind = FM_LAYER_CONV2D, .units = 8, .kh = 3, .same = 1},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_MAXPOOL},
    {.kind = FM_LAYER_CONV2D, .units = 16, .kh = 3},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_FLATTEN},
    {.kind = FM_LAYER_DENSE, .units = 32},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_DROPOUT, .rate = 0.25f},
    {.kind = FM_LAYER_DENSE, .units = 10},
};

/* Trains for `epochs` over n images in batches of 32 and returns the accuracy on the test set. */
static double train_synthetic(model *m, const float *x, const uint8_t *y, int n, const float *tx,
                              const uint8_t *ty, int tn, int epochs, uint64_t seed) {
  for (int e = 0; e < epochs; e++)
    for (int b = 0; b + 32 <= n; b += 32) {
      fm_batch_stats st;
      m->opt.epoch = e + (double)b / n;
      fm_net_train_step(&m->net, &m->work, &m->opt, m->state, x + b * 64, y + b, 32,
                        seed + (uint64_t)(e * n + b), &st);
    }
  int64_t correct = 0;
  fm_net_predict(&m->net, &m->work, tx, tn, NULL, NULL, ty, NULL, &correct);
  return (double)correct / tn;
}

static void test_learning_and_determinism(void) {
  fm_rng r;
  fm_rng_seed(&r, 2024);
  float protos[640];
  for (int i = 0; i < 640; i++) protos[i] = fm_rng_uniform(&r);
  const int n = 2048, tn = 512;
  float *x = zalloc(sizeof(float) * n * 64), *tx = zalloc(sizeof(float) * tn * 64);
  uint8_t *y = zalloc(n), *ty = zalloc(tn);
  synthetic(&r, protos, n, x, y);
  synthetic(&r, protos, tn, tx, ty);

  model a, b;
  model_open(&a, tiny_cnn, 10, 8, 8, 1, 32, 2, 77);
  a.opt.lr = 3e-3;
  double acc = train_synthetic(&a, x, y, n, tx, ty, tn, 4, 1);
  CHECK(acc > 0.9, "a small CNN learns 10 synthetic classes: %.1f%% on held-out images (chance 10%%)",
        100 * acc);
  model_open(&b, tiny_cnn, 10, 8, 8, 1, 32, 2, 77);
  b.opt.lr = 3e-3;
  train_synthetic(&b, x, y, n, tx, ty, tn, 4, 1);
  CHECK(memcmp(a.params, b.params, sizeof(float) * a.net.n_params) == 0 &&
            memcmp(a.state, b.state, sizeof(float) * 2 * a.net.n_params) == 0,
        "determinism: two runs with the same seed on 2 threads give identical weights and "
        "optimizer state, bit for bit");
  model_close(&b);
  model_open(&b, tiny_cnn, 10, 8, 8, 1, 32, 2, 78);
  train_synthetic(&b, x, y, n, tx, ty, tn, 1, 1);
  CHECK(memcmp(a.params, b.params, sizeof(float) * a.net.n_params) != 0,
        "determinism: another seed gives other weights");
  model_close(&b);

  /* The MLP and logistic regression learn the same data. */
  fm_layer_spec mlp[] = {{.kind = FM_LAYER_DENSE, .units = 64},
                         {.kind = FM_LAYER_RELU},
                         {.kind = FM_LAYER_DROPOUT, .rate = 0.2f},
                         {.kind = FM_LAYER_DENSE, .units = 10}};
  model_open(&b, mlp, 4, 8, 8, 1, 32, 2, 3);
  acc = train_synthetic(&b, x, y, n, tx, ty, tn, 3, 1);
  CHECK(b.work.model_parallel && acc > 0.9, "an MLP learns them too (model parallel): %.1f%%",
        100 * acc);
  model c;
  model_open(&c, mlp, 4, 8, 8, 1, 32, 2, 3);
  train_synthetic(&c, x, y, n, tx, ty, tn, 3, 1);
  CHECK(memcmp(b.params, c.params, sizeof(float) * b.net.n_params) == 0,
        "determinism: the model-parallel MLP trains to identical weights twice");
  model_close(&b), model_close(&c);
  fm_layer_spec logreg[] = {{.kind = FM_LAYER_DENSE, .units = 10}};
  model_open(&b, logreg, 1, 8, 8, 1, 32, 1, 3);
  fm_optim_sgd(&b.opt, 0.5, 0.9, 1);
  acc = train_synthetic(&b, x, y, n, tx, ty, tn, 3, 1);
  CHECK(acc > 0.9, "logistic regression with Nesterov SGD on one thread: %.1f%%", 100 * acc);
  model_close(&b);

  /* Divergence: a NaN weight makes the loss NaN; the step is refused and nothing changes. */
  float *keep = zalloc(sizeof(float) * a.net.n_params), *keep_state = zalloc(sizeof(float) * 2 * a.net.n_params);
  a.params[5] = NAN;
  memcpy(keep, a.params, sizeof(float) * a.net.n_params);
  memcpy(keep_state, a.state, sizeof(float) * 2 * a.net.n_params);
  int64_t t = a.opt.t;
  fm_batch_stats st;
  int rc = fm_net_train_step(&a.net, &a.work, &a.opt, a.state, x, y, 32, 1, &st);
  CHECK(rc == FM_OK && st.diverged == 1 && !isfinite(st.loss),
        "divergence: a NaN loss is reported (loss %g)", st.loss);
  CHECK(memcmp(keep, a.params, sizeof(float) * a.net.n_params) == 0 &&
            memcmp(keep_state, a.state, sizeof(float) * 2 * a.net.n_params) == 0 && a.opt.t == t,
        "divergence: the weights, optimizer state and step count are left as they were");
  model_close(&a);

  /* A learning rate far too large: the logits overflow, training stops, the weights stay finite. */
  model_open(&a, logreg, 1, 8, 8, 1, 32, 2, 3);
  fm_optim_sgd(&a.opt, 1e37, 0.9, 0);
  int steps = 0, diverged = 0;
  for (; steps < 200 && !diverged; steps++) {
    fm_net_train_step(&a.net, &a.work, &a.opt, a.state, x + (steps % 64) * 32 * 64,
                      y + (steps % 64) * 32, 32, 1, &st);
    diverged = st.diverged;
  }
  int finite = 1;
  for (int64_t i = 0; i < a.net.n_params; i++) finite &= isfinite(a.params[i]);
  CHECK(diverged && finite, "divergence: lr 1e37 diverges after %d steps and every weight is finite",
        steps);
  model_close(&a);
  free(x), free(tx), free(y), free(ty), free(keep), free(keep_state);
}

/* ---- the model-parallel step of dense networks ---- */

static const fm_layer_spec dense_net[] = {
    {.kind = FM_LAYER_FLATTEN},
    {.kind = FM_LAYER_DENSE, .units = 19},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_DROPOUT, .rate = 0.3f},
    {.kind = FM_LAYER_DENSE, .units = 3}, /* fewer units than threads in one test */
    {.kind = FM_LAYER_DROPOUT, .rate = 0.2f},
    {.kind = FM_LAYER_RELU},
    {.kind = FM_LAYER_DENSE, .units = 5},
};

static void test_model_parallel(int threads) {
  model dp, mp;
  fm_net_model_parallel = 0;
  model_open(&dp, dense_net, 8, 5, 6, 1, 16, threads, 21);
  fm_net_model_parallel = 1;
  model_open(&mp, dense_net, 8, 5, 6, 1, 16, threads, 21);
  CHECK(mp.work.model_parallel && !dp.work.model_parallel,
        "model parallel (%d threads): chosen for a dense network", threads);
  fm_rng r;
  fm_rng_seed(&r, 6);
  const int n = 13;
  float *x = random_images(&r, n, 30);
  uint8_t y[13];
  for (int i = 0; i < n; i++) y[i] = (uint8_t)fm_rng_below(&r, 5);
  for (int l = 0; l < 8; l++)
    for (int64_t i = 0; i < dp.net.layer[l].n_biases; i++)
      fm_net_biases(&dp.net, l)[i] = fm_net_biases(&mp.net, l)[i] = 0.1f;
  fm_batch_stats a, b;
  fm_net_gradient(&dp.net, &dp.work, x, y, n, 77, &a);
  fm_net_gradient(&mp.net, &mp.work, x, y, n, 77, &b);
  double worst = 0;
  for (int64_t i = 0; i < dp.net.n_params; i++)
    worst = fmax(worst, fabs(dp.grads[i] - mp.grads[i]) / fmax(1e-3, fabs(dp.grads[i])));
  CHECK(fabs(a.loss - b.loss) < 1e-6 && a.correct == b.correct && worst < 1e-4,
        "model parallel (%d threads): same loss and gradient as the sharded step, dropout "
        "included (worst relative difference %.2g)", threads, worst);
  /* Finite differences of the model-parallel loss. */
  float *analytic = zalloc(sizeof(float) * mp.net.n_params);
  memcpy(analytic, mp.grads, sizeof(float) * mp.net.n_params);
  double num2 = 0, diff2 = 0;
  for (int64_t i = 0; i < mp.net.n_params; i += 3) {
    float keep = mp.params[i];
    fm_batch_stats up, down;
    mp.params[i] = keep + 1e-3f;
    fm_net_gradient(&mp.net, &mp.work, x, y, n, 77, &up);
    mp.params[i] = keep - 1e-3f;
    fm_net_gradient(&mp.net, &mp.work, x, y, n, 77, &down);
    mp.params[i] = keep;
    double num = (up.loss - down.loss) / 2e-3;
    num2 += num * num;
    diff2 += (num - analytic[i]) * (num - analytic[i]);
  }
  CHECK(sqrt(diff2 / num2) < 2e-3,
        "model parallel (%d threads): gradient matches finite differences (relative error %.2g)",
        threads, sqrt(diff2 / num2));
  /* Training steps: deterministic, close to the sharded step, and the same from dataset rows. */
  model mp2;
  model_open(&mp2, dense_net, 8, 5, 6, 1, 16, threads, 21);
  memcpy(mp2.params, mp.params, sizeof(float) * mp.net.n_params);
  uint8_t *pix = zalloc(n * 30);
  for (int i = 0; i < n * 30; i++) pix[i] = (uint8_t)fm_rng_below(&r, 256);
  fm_dataset ds = {.n = n, .rows = 5, .cols = 6, .pixels = pix, .labels = y};
  int32_t rows[13];
  for (int i = 0; i < n; i++) rows[i] = (i * 5) % n;
  float *xr = zalloc(sizeof(float) * n * 30);
  uint8_t yr[13];
  fm_dataset_gather(&ds, rows, n, xr, yr);
  for (int k = 0; k < 4; k++) {
    fm_net_train_step(&mp.net, &mp.work, &mp.opt, mp.state, xr, yr, n, 5 + k, &a);
    fm_net_train_step_rows(&mp2.net, &mp2.work, &mp2.opt, mp2.state, &ds, rows, n, 5 + k, &b);
  }
  CHECK(a.loss == b.loss && memcmp(mp.params, mp2.params, sizeof(float) * mp.net.n_params) == 0 &&
            memcmp(mp.state, mp2.state, sizeof(float) * 2 * mp.net.n_params) == 0,
        "model parallel (%d threads): steps from dataset rows equal steps from floats, bit for bit",
        threads);
  free(x), free(analytic), free(pix), free(xr);
  model_close(&dp), model_close(&mp), model_close(&mp2);
}

int main(void) {
  fm_blas_set_threads(1);
  test_shapes();
  test_build_errors();
  test_build_limits();
  test_spec_fields();
  test_set_layer();
  test_network_gradient("openblas");
  fm_gemm_select(FM_GEMM_AUTO);
  if (fm_gemm_current() != FM_GEMM_BLAS) test_network_gradient(fm_gemm_name(fm_gemm_current()));
  fm_gemm_select(FM_GEMM_BLAS);
  test_predict_and_activations();
  fm_gemm_select(FM_GEMM_AUTO);
  test_model_parallel(2);
  test_model_parallel(3);
  test_model_parallel(4); /* more threads than the 3 units of one layer */
  test_learning_and_determinism();
  return check_done();
}
