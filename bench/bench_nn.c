/* bench_nn: speed and memory of the engine's networks on Fashion-MNIST (or, when the dataset is
 * not installed, on synthetic images of the same size).
 *
 *   bench_nn sgemm                 GFLOP/s of a 4096^3 OpenBLAS sgemm: the machine's practical
 *                                  ceiling, with OpenBLAS's own threads
 *   bench_nn convs [--batch N]     GFLOP/s of each convolution pass of ResNet-20, one thread on
 *                                  N / 2 images (one shard of two), im2col + GEMM vs the kernels
 *                                  used now (implicit GEMM)
 *   bench_nn cnn|mlp|logreg|resnet|mobilenet [opts]
 *                                  seconds per training epoch (median), training GFLOP/s,
 *                                  inference images/s on the test set, test accuracy, peak RSS
 *   options: --epochs N  --threads N (default: fm_work_threads)  --batch N
 *            --images N (train on N images an epoch; times scaled to the whole set)
 *            --kernel auto|blas|avx512  --optim adam|sgd  --lr X  --schedule constant|cosine
 *            --wd X  --target ACC (seconds of training + evaluation until test accuracy >= ACC)
 *            --data DIR  --synthetic
 *            --no-direct (one-channel convolutions through im2col + GEMM too)
 *            --no-implicit (no implicit-GEMM convolutions: im2col + GEMM as before them)
 *            --plain (no AVX-512 code at all: plain C loops and OpenBLAS, as on an older CPU)
 *            --no-mp (dense networks too train batch-sharded instead of model-parallel)
 *            --no-eval (no test-set evaluation: training time only, for profiles)
 *
 * Every figure is printed on a line of its own and again in one "RESULT key=value ..." line that
 * bench/run.sh collects. Run one model per process so that its peak RSS is its own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>

#include "fm_conv_direct.h"
#include "fm_conv_implicit.h"
#include "fm_dataset.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_net.h"
#include "fm_train.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the whole process (all threads): the work done, whatever else the machine runs. */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

static void *xalloc(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) {
    fprintf(stderr, "bench_nn: out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return p;
}

/* ---- the machine's ceiling ---- */

static int bench_sgemm(void) {
  const int n = 4096, reps = 3;
  float *a = xalloc(sizeof(float) * n * n), *b = xalloc(sizeof(float) * n * n);
  float *c = xalloc(sizeof(float) * n * n);
  for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
  double t[3];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    t[r] = now() - t0;
  }
  double gf = 2.0 * n * n * (double)n / median(t, reps) / 1e9;
  const char *core = getenv("OPENBLAS_CORETYPE");
  printf("sgemm 4096^3: %.1f GFLOP/s (OpenBLAS %d threads, core %s, OPENBLAS_CORETYPE=%s)\n", gf,
         fm_blas_threads(), openblas_get_corename(), core ? core : "(unset)");
  printf("RESULT model=sgemm gflops=%.1f threads=%d\n", gf, fm_blas_threads());
  free(a), free(b), free(c);
  return 0;
}

/* ---- convolution layers alone ---- */

static double thread_cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct conv_case {
  const char *name;
  int h, cin, k, cout, stride, count; /* count: layers of this shape in ResNet-20 */
  int input_grad;                      /* 0 for the stem (its input is the images) */
} conv_case;

/* Median thread CPU seconds of `reps` runs of one pass: 0 forward, 1 input gradient, 2 weight
 * gradient, 3 both gradients (one call, as in training). */
static double time_pass(const fm_conv_geom *g, int n, int pass, const float *x, const float *w,
                        const float *dy, float *y, float *dx, float *dw, float *scratch, int reps) {
  double t[16];
  for (int r = 0; r < reps; r++) {
    double t0 = thread_cpu_now();
    if (pass == 0) fm_conv_forward(g, n, x, w, NULL, y, 0, scratch);
    else if (pass == 1) fm_conv_backward(g, n, x, w, dy, dx, NULL, NULL, scratch);
    else if (pass == 2) fm_conv_backward(g, n, x, w, dy, NULL, dw, NULL, scratch);
    else fm_conv_backward(g, n, x, w, dy, dx, dw, NULL, scratch);
    t[r] = thread_cpu_now() - t0;
  }
  return median(t, reps);
}

/* Every convolution shape of ResNet-20 on 28x28 images, one thread, a shard of 64 images (batch
 * 128 on two threads): GFLOP/s of each pass through im2col + GEMM (the implicit kernels off) and
 * through the kernels the dispatcher picks now, and the time of all 19 layers per image. */
static int bench_convs(int n) {
  static const conv_case cases[] = {
      {"stem 3x3 1->16", 28, 1, 3, 16, 1, 1, 0},
      {"stage1 3x3 16->16", 28, 16, 3, 16, 1, 6, 1},
      {"down 3x3/2 16->32", 28, 16, 3, 32, 2, 1, 1},
      {"proj 1x1/2 16->32", 28, 16, 1, 32, 2, 1, 1},
      {"stage2 3x3 32->32", 14, 32, 3, 32, 1, 5, 1},
      {"down 3x3/2 32->64", 14, 32, 3, 64, 2, 1, 1},
      {"proj 1x1/2 32->64", 14, 32, 1, 64, 2, 1, 1},
      {"stage3 3x3 64->64", 7, 64, 3, 64, 1, 5, 1}};
  const char *pass_name[4] = {"forward", "input grad", "weight grad", "backward"};
  double total[2] = {0, 0};
  printf("# one thread, %d images per call, thread CPU time (median of 7)\n", n);
  printf("%-20s %-12s %10s %10s %8s\n", "layer", "pass", "old GF/s", "new GF/s", "speedup");
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const conv_case *cc = &cases[c];
    fm_conv_geom g;
    if (fm_conv_geom_init(&g, cc->h, cc->h, cc->cin, cc->k, cc->k, cc->cout, 1, cc->stride, 1) !=
        FM_OK) {
      fprintf(stderr, "bench_nn: %s\n", fm_error());
      return 1;
    }
    size_t nx = (size_t)n * g.h * g.w * g.cin, ny = (size_t)n * g.oh * g.ow * g.cout;
    size_t nw = (size_t)g.k * g.cout;
    float *x = xalloc(sizeof(float) * nx), *dx = xalloc(sizeof(float) * nx);
    float *y = xalloc(sizeof(float) * ny), *dy = xalloc(sizeof(float) * ny);
    float *w = xalloc(sizeof(float) * nw), *dw = xalloc(sizeof(float) * nw);
    float *scratch = xalloc(sizeof(float) * fm_conv_scratch_floats(&g));
    for (size_t i = 0; i < nx; i++) x[i] = (float)(i % 17) * 0.05f - 0.4f;
    for (size_t i = 0; i < ny; i++) dy[i] = (float)(i % 13) * 0.03f - 0.2f;
    for (size_t i = 0; i < nw; i++) w[i] = (float)(i % 11) * 0.02f - 0.1f;
    double flops = 2.0 * (double)n * g.oh * g.ow * (double)g.k * g.cout;
    for (int pass = 0; pass < 4; pass++) {
      if (pass == 1 && !cc->input_grad) continue;
      if (pass == 3 && !cc->input_grad) continue;
      /* the time of a training step: forward, and both gradients in one call (the stem's
       * weight gradient alone) */
      int counts = pass == 0 || pass == 3 || (pass == 2 && !cc->input_grad);
      double pflops = pass == 3 ? 2 * flops : flops;
      double t[2];
      for (int v = 0; v < 2; v++) {
        fm_conv_implicit_enabled = v;
        time_pass(&g, n, pass, x, w, dy, y, dx, dw, scratch, 1); /* warm up */
        t[v] = time_pass(&g, n, pass, x, w, dy, y, dx, dw, scratch, 7);
        if (counts) total[v] += t[v] * cc->count / n;
      }
      printf("%-20s %-12s %10.1f %10.1f %7.2fx\n", cc->name, pass_name[pass], pflops / t[0] / 1e9,
             pflops / t[1] / 1e9, t[0] / t[1]);
    }
    fm_conv_implicit_enabled = 1;
    free(x), free(dx), free(y), free(dy), free(w), free(dw), free(scratch);
  }
  /* MobileNet's depthwise layers: the plain loops (AVX-512 code off) against the kernels now */
  static const conv_case dw_cases[] = {{"dw 3x3 32 @28", 28, 32, 3, 32, 1, 1, 1},
                                       {"dw 3x3/2 64 @28", 28, 64, 3, 64, 2, 1, 1},
                                       {"dw 3x3 128 @14", 14, 128, 3, 128, 1, 1, 1},
                                       {"dw 3x3/2 128 @14", 14, 128, 3, 128, 2, 1, 1},
                                       {"dw 3x3 256 @7", 7, 256, 3, 256, 1, 2, 1}};
  double dw_total[2] = {0, 0};
  for (size_t c = 0; c < sizeof dw_cases / sizeof dw_cases[0]; c++) {
    const conv_case *cc = &dw_cases[c];
    fm_conv_geom g;
    fm_conv_geom_init(&g, cc->h, cc->h, cc->cin, 3, 3, cc->cout, 1, cc->stride, cc->cin);
    size_t nx = (size_t)n * g.h * g.w * g.cin, ny = (size_t)n * g.oh * g.ow * g.cout;
    float *x = xalloc(sizeof(float) * nx), *dx = xalloc(sizeof(float) * nx);
    float *y = xalloc(sizeof(float) * ny), *dy = xalloc(sizeof(float) * ny);
    float *w = xalloc(sizeof(float) * 9 * g.cin), *dw = xalloc(sizeof(float) * 9 * g.cin);
    float *scratch = xalloc(sizeof(float) * (fm_conv_scratch_floats(&g) + 16));
    for (size_t i = 0; i < nx; i++) x[i] = (float)(i % 17) * 0.05f - 0.4f;
    for (size_t i = 0; i < ny; i++) dy[i] = (float)(i % 13) * 0.03f - 0.2f;
    for (int i = 0; i < 9 * g.cin; i++) w[i] = (float)(i % 11) * 0.02f - 0.1f;
    double flops = 2.0 * (double)n * g.oh * g.ow * 9.0 * g.cin;
    for (int pass = 0; pass < 4; pass += 3) {
      double t[2];
      for (int v = 0; v < 2; v++) {
        fm_simd_allow(v);
        time_pass(&g, n, pass, x, w, dy, y, dx, dw, scratch, 1);
        t[v] = time_pass(&g, n, pass, x, w, dy, y, dx, dw, scratch, 7);
        dw_total[v] += t[v] * cc->count / n;
      }
      fm_simd_allow(1);
      double pflops = pass == 3 ? 2 * flops : flops;
      printf("%-20s %-12s %10.1f %10.1f %7.2fx\n", cc->name, pass_name[pass], pflops / t[0] / 1e9,
             pflops / t[1] / 1e9, t[0] / t[1]);
    }
    free(x), free(dx), free(y), free(dy), free(w), free(dw), free(scratch);
  }
  printf("MobileNet's 6 depthwise layers, forward + backward, per image: plain loops %.3f ms, "
         "AVX-512 %.3f ms (%.2fx)\n", 1e3 * dw_total[0], 1e3 * dw_total[1],
         dw_total[0] / dw_total[1]);
  printf("all 19 convolutions, forward + backward, per image: old %.3f ms, new %.3f ms (%.2fx); "
         "a 60000-image epoch on 2 cores: old %.1f s, new %.1f s of convolutions\n",
         1e3 * total[0], 1e3 * total[1], total[0] / total[1], total[0] * 30000, total[1] * 30000);
  printf("RESULT model=convs old_ms=%.3f new_ms=%.3f\n", 1e3 * total[0], 1e3 * total[1]);
  return 0;
}

/* ---- data ---- */

typedef struct data {
  uint8_t *pixels[2], *labels[2];
  fm_dataset set[2]; /* train, test */
  const char *source;
} data;

static int load_split(const char *dir, const char *split, uint8_t **pix, uint8_t **lab,
                      fm_dataset *d) {
  char ip[1024], lp[1024];
  if (fm_find_split(dir, split, ip, lp, sizeof ip) != FM_OK) return FM_ERR;
  fm_idx_info ii, li;
  if (fm_idx_probe(ip, &ii) != FM_OK || fm_idx_probe(lp, &li) != FM_OK) return FM_ERR;
  *pix = xalloc((size_t)ii.bytes);
  *lab = xalloc((size_t)li.bytes);
  if (fm_idx_read(ip, &ii, *pix) != FM_OK || fm_idx_read(lp, &li, *lab) != FM_OK) return FM_ERR;
  memset(d, 0, sizeof *d);
  d->n = ii.count;
  d->rows = ii.rows;
  d->cols = ii.cols;
  d->pixels = *pix;
  d->labels = *lab;
  return FM_OK;
}

/* Ten classes of noisy random prototypes: learnable, and the same size as the real thing. */
static void synthetic(data *dt) {
  fm_rng r;
  fm_rng_seed(&r, 42);
  uint8_t proto[10][784];
  for (int k = 0; k < 10; k++)
    for (int p = 0; p < 784; p++) proto[k][p] = (uint8_t)fm_rng_below(&r, 256);
  const int64_t counts[2] = {60000, 10000};
  for (int s = 0; s < 2; s++) {
    dt->pixels[s] = xalloc((size_t)counts[s] * 784);
    dt->labels[s] = xalloc((size_t)counts[s]);
    for (int64_t i = 0; i < counts[s]; i++) {
      int k = (int)fm_rng_below(&r, 10);
      dt->labels[s][i] = (uint8_t)k;
      for (int p = 0; p < 784; p++) {
        int v = proto[k][p] + (int)(60.0 * fm_rng_normal(&r));
        dt->pixels[s][i * 784 + p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    }
    dt->set[s] = (fm_dataset){.n = counts[s], .rows = 28, .cols = 28, .pixels = dt->pixels[s],
                              .labels = dt->labels[s]};
  }
  dt->source = "synthetic";
}

static void load_data(data *dt, const char *dir, int force_synthetic) {
  memset(dt, 0, sizeof *dt);
  if (!force_synthetic && load_split(dir, "train", &dt->pixels[0], &dt->labels[0], &dt->set[0]) == FM_OK &&
      load_split(dir, "test", &dt->pixels[1], &dt->labels[1], &dt->set[1]) == FM_OK) {
    dt->source = "fashion-mnist";
    return;
  }
  if (!force_synthetic) printf("# %s: %s; using synthetic images\n", dir, fm_error());
  for (int s = 0; s < 2; s++) free(dt->pixels[s]), free(dt->labels[s]);
  synthetic(dt);
}

/* ---- models ---- */

/* Appends conv (no bias, "same"; groups 0 or the channels: depthwise) + batch norm (+ the
 * activation: FM_LAYER_RELU or FM_LAYER_RELU6; 0 none) taking layer `from`; returns the last. */
static int conv_bn_act(fm_layer_spec *s, int *n, int from, int filters, int kernel, int stride,
                       int groups, fm_layer_kind act) {
  s[*n] = (fm_layer_spec){.kind = FM_LAYER_CONV2D, .units = filters, .kh = kernel, .same = 1,
                          .stride = stride, .groups = groups, .no_bias = 1, .n_inputs = 1,
                          .inputs = {from}};
  (*n)++;
  s[(*n)++] = (fm_layer_spec){.kind = FM_LAYER_BATCHNORM};
  if (act) s[(*n)++] = (fm_layer_spec){.kind = act};
  return *n - 1;
}

static int conv_bn(fm_layer_spec *s, int *n, int from, int filters, int kernel, int stride,
                   int relu) {
  return conv_bn_act(s, n, from, filters, kernel, stride, 0, relu ? FM_LAYER_RELU : 0);
}

/* The layer list of fm.MobileNet{} (width 1, dropout 0.2; lua/fmnist/nets.lua,
 * mobilenet_layers): a 3x3 stem of 32, six depthwise-separable blocks (depthwise 3x3 + batch
 * norm + ReLU6, pointwise 1x1 + batch norm + ReLU6) to 64, 128 (stride 2), 128, 256 (stride 2),
 * 256, 256 channels, global average pooling, dropout, dense 10: 42 specs. */
static int mobilenet_specs(fm_layer_spec *s) {
  static const int blocks[6][2] = {{64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}, {256, 1}};
  int n = 0, channels = 32, last = conv_bn_act(s, &n, FM_NET_INPUT, 32, 3, 1, 0, FM_LAYER_RELU6);
  for (int b = 0; b < 6; b++) {
    last = conv_bn_act(s, &n, last, channels, 3, blocks[b][1], channels, FM_LAYER_RELU6);
    channels = blocks[b][0];
    last = conv_bn_act(s, &n, last, channels, 1, 1, 0, FM_LAYER_RELU6);
  }
  s[n++] = (fm_layer_spec){.kind = FM_LAYER_GLOBAL_AVGPOOL};
  s[n++] = (fm_layer_spec){.kind = FM_LAYER_DROPOUT, .rate = 0.2f};
  s[n++] = (fm_layer_spec){.kind = FM_LAYER_DENSE, .units = 10};
  return n;
}

/* The layer list fm.ResNet{depth, width} compiles to (lua/fmnist/nets.lua, resnet_layers): a 3x3
 * stem, three stages of (depth - 2) / 6 basic blocks at width, 2 width and 4 width channels, the
 * first block of stages 2 and 3 with stride 2 and a 1x1 projection shortcut, each block's sum
 * followed by a ReLU; global average pooling, dense 10. s needs room for 21 (depth - 2) / 6 + 9
 * specs (72 for depth 20). */
static int resnet_specs(int depth, int width, fm_layer_spec *s) {
  int n = 0, last = conv_bn(s, &n, FM_NET_INPUT, width, 3, 1, 1);
  for (int stage = 0; stage < 3; stage++) {
    int c = width << stage;
    for (int b = 0; b < (depth - 2) / 6; b++) {
      int stride = stage > 0 && b == 0 ? 2 : 1;
      int body = conv_bn(s, &n, last, c, 3, stride, 1);
      body = conv_bn(s, &n, body, c, 3, 1, 0);
      int shortcut = stride != 1 ? conv_bn(s, &n, last, c, 1, stride, 0) : last;
      s[n++] = (fm_layer_spec){.kind = FM_LAYER_ADD, .n_inputs = 2, .inputs = {body, shortcut}};
      s[n++] = (fm_layer_spec){.kind = FM_LAYER_RELU};
      last = n - 1;
    }
  }
  s[n++] = (fm_layer_spec){.kind = FM_LAYER_GLOBAL_AVGPOOL};
  s[n++] = (fm_layer_spec){.kind = FM_LAYER_DENSE, .units = 10};
  return n;
}

static int model_specs(const char *name, fm_layer_spec *s) {
  if (!strcmp(name, "cnn")) return fm_reference_cnn(s);
  if (!strcmp(name, "mlp")) {
    fm_layer_spec mlp[] = {{.kind = FM_LAYER_FLATTEN},
                           {.kind = FM_LAYER_DENSE, .units = 256},
                           {.kind = FM_LAYER_RELU},
                           {.kind = FM_LAYER_DROPOUT, .rate = 0.2f},
                           {.kind = FM_LAYER_DENSE, .units = 128},
                           {.kind = FM_LAYER_RELU},
                           {.kind = FM_LAYER_DROPOUT, .rate = 0.2f},
                           {.kind = FM_LAYER_DENSE, .units = 10}};
    memcpy(s, mlp, sizeof mlp);
    return 8;
  }
  if (!strcmp(name, "logreg")) {
    s[0] = (fm_layer_spec){.kind = FM_LAYER_DENSE, .units = 10};
    return 1;
  }
  if (!strcmp(name, "resnet")) return resnet_specs(20, 16, s);
  if (!strcmp(name, "mobilenet")) return mobilenet_specs(s);
  return 0;
}

typedef struct options {
  const char *model, *kernel, *data_dir, *optim, *schedule;
  int epochs, threads, batch, synthetic, plain, no_direct, no_eval, no_implicit;
  int64_t images;
  double lr, target, wd;
} options;

/* Wall time of every batch of an epoch (from the per-batch callback): the median batch is a
 * figure that other processes on a shared machine disturb less than the epoch's total. */
typedef struct batch_clock {
  double last, *times;
  int64_t n, cap;
} batch_clock;

static int batch_tick(void *ctx, int64_t b, int64_t nb, const fm_batch_stats *st) {
  (void)b, (void)nb, (void)st;
  batch_clock *bc = ctx;
  double t = now();
  if (bc->n < bc->cap) bc->times[bc->n++] = t - bc->last;
  bc->last = t;
  return 0;
}

/* Test-set accuracy (and images/s), converting the uint8 images a block at a time. */
static double evaluate(const fm_net *net, fm_work *w, const fm_dataset *d, double *img_per_s) {
  const int64_t block = 2000;
  float *x = xalloc(sizeof(float) * block * 784);
  uint8_t *y = xalloc(block);
  int64_t correct = 0;
  double t0 = now();
  for (int64_t i = 0; i < d->n; i += block) {
    int64_t cnt = d->n - i < block ? d->n - i : block, right = 0;
    fm_dataset_fill(d, i, cnt, x, y);
    fm_net_predict(net, w, x, cnt, NULL, NULL, y, NULL, &right);
    correct += right;
  }
  double t = now() - t0;
  if (img_per_s) *img_per_s = (double)d->n / t;
  free(x), free(y);
  return (double)correct / (double)d->n;
}

static int bench_model(const options *o) {
  fm_layer_spec specs[128];
  static fm_layer layers[128];
  int nl = model_specs(o->model, specs);
  if (!nl) {
    fprintf(stderr, "bench_nn: unknown model '%s' (sgemm, convs, cnn, mlp, logreg, resnet, mobilenet)\n", o->model);
    return 2;
  }
  if (o->plain) fm_simd_allow(0);
  if (o->no_direct) fm_conv_direct_enabled = 0;
  if (o->no_implicit) fm_conv_implicit_enabled = 0;
  fm_gemm_kernel k = !strcmp(o->kernel, "blas") ? FM_GEMM_BLAS
                     : !strcmp(o->kernel, "avx512") ? FM_GEMM_AVX512 : FM_GEMM_AUTO;
  fm_gemm_select(k);
  data dt;
  load_data(&dt, o->data_dir, o->synthetic);

  fm_net net;
  if (fm_net_build(&net, layers, 28, 28, 1, specs, nl) != FM_OK) {
    fprintf(stderr, "bench_nn: %s\n", fm_error());
    return 1;
  }
  float *params = xalloc(sizeof(float) * net.n_params), *grads = xalloc(sizeof(float) * net.n_params);
  float *net_state = xalloc(sizeof(float) * (size_t)(net.n_state ? net.n_state : 1));
  fm_net_bind(&net, params, grads, net.n_state ? net_state : NULL);
  fm_net_init(&net, 1);
  fm_optim opt;
  if (!strcmp(o->optim, "sgd"))
    fm_optim_sgd(&opt, o->lr > 0 ? o->lr : 0.05, 0.9, 1);
  else
    fm_optim_adam(&opt, o->lr > 0 ? o->lr : 1e-3);
  opt.weight_decay = o->wd;
  if (!strcmp(o->schedule, "cosine")) {
    opt.schedule.kind = FM_SCHED_COSINE;
    opt.schedule.total_epochs = o->epochs;
  }
  int threads = o->threads > 0 ? o->threads : fm_work_threads(&net, o->batch);
  int64_t sf = fm_optim_state_floats(&opt, net.n_params);
  float *state = xalloc(sizeof(float) * (size_t)(sf ? sf : 1));
  memset(state, 0, sizeof(float) * (size_t)sf);

  size_t wbytes = fm_work_bytes(&net, o->batch, threads);
  void *wmem = xalloc(wbytes);
  fm_work work;
  if (fm_work_init(&work, &net, o->batch, threads, wmem, wbytes) != FM_OK) {
    fprintf(stderr, "bench_nn: %s\n", fm_error());
    return 1;
  }
  /* Inference goes through a workspace of larger batches (bigger products, fewer calls). */
  const int infer_batch = 256;
  int ithreads = o->threads > 0 ? o->threads : fm_default_threads();
  size_t ibytes = fm_work_bytes(&net, infer_batch, ithreads);
  void *imem = xalloc(ibytes);
  fm_work iwork;
  fm_work_init(&iwork, &net, infer_batch, ithreads, imem, ibytes);

  const fm_dataset *train = &dt.set[0], *test = &dt.set[1];
  int32_t *order = xalloc(sizeof(int32_t) * (size_t)train->n);
  fm_rng shuffle;
  fm_rng_seed(&shuffle, 7);
  double train_flops = 6.0 * (double)net.macs * (double)train->n;
  /* --images: each epoch trains on that many of the shuffled images; times are scaled up to the
   * whole training set. */
  int64_t count = o->images > 0 && o->images < train->n ? o->images : train->n;
  double scale = (double)train->n / (double)count;

  printf("model %s: %lld parameters, %.3f GFLOP per training epoch (6 x %lld multiply-adds x %lld "
         "images)\n", o->model, (long long)net.n_params, train_flops / 1e9, (long long)net.macs,
         (long long)train->n);
  printf("kernel %s%s%s%s, %d threads (inference %d), batch %d, %s lr %g%s, weight decay %g, "
         "data %s\n", fm_gemm_name(fm_gemm_current()), o->plain ? " (plain C loops)" : "",
         o->no_direct ? " (no direct conv)" : "", o->no_implicit ? " (no implicit GEMM)" : "", threads, ithreads, o->batch, o->optim, opt.lr,
         opt.schedule.kind == FM_SCHED_COSINE ? " cosine" : "", o->wd, dt.source);
  if (count < train->n)
    printf("each epoch trains on %lld of the %lld images; times are scaled to the whole set\n",
           (long long)count, (long long)train->n);

  double times[64], cpus[64], elapsed = 0, reached = -1, acc = 0, img_s = 0, batch_med[64];
  batch_clock bc = {.cap = (count + o->batch - 1) / o->batch};
  bc.times = xalloc(sizeof(double) * (size_t)bc.cap);
  int epochs = o->epochs > 64 ? 64 : o->epochs;
  for (int e = 0; e < epochs; e++) {
    for (int64_t i = 0; i < train->n; i++) order[i] = (int32_t)i;
    fm_rng_shuffle(&shuffle, order, train->n);
    fm_epoch_stats st;
    double t0 = now(), c0 = cpu_now();
    bc.n = 0;
    bc.last = t0;
    if (fm_train_epoch(&net, &work, &opt, state, train, order, count, o->batch, e, 11, batch_tick,
                       &bc, &st) != FM_OK || st.diverged) {
      fprintf(stderr, "bench_nn: %s\n", fm_error());
      return 1;
    }
    times[e] = (now() - t0) * scale;
    cpus[e] = (cpu_now() - c0) * scale;
    /* the median batch times the batches of a whole epoch (the last one short) */
    batch_med[e] = median(bc.times, (int)bc.n) * (double)train->n / (double)o->batch;
    double te = now();
    if (!o->no_eval) acc = evaluate(&net, &iwork, test, &img_s);
    elapsed += times[e] + (now() - te);
    if (o->target > 0 && reached < 0 && acc >= o->target) reached = elapsed;
    printf("epoch %d: %.3f s (%.1f GFLOP/s, cpu %.3f s, median batch x batches %.3f s), train "
           "loss %.4f, train acc %.4f, test acc %.4f, inference %.0f images/s\n", e + 1,
           times[e], train_flops / times[e] / 1e9, cpus[e], batch_med[e], st.loss, st.accuracy,
           acc, img_s);
    fflush(stdout);
  }
  /* Inference speed: median of five passes over the test set. */
  double inf[5] = {0};
  for (int r = 0; r < 5 && !o->no_eval; r++) evaluate(&net, &iwork, test, &inf[r]);
  double infer = median(inf, 5);
  double ep = median(times, epochs), cpu_ep = median(cpus, epochs);
  double med_ep = median(batch_med, epochs);
  printf("epoch (median of %d): %.3f s, %.1f GFLOP/s; inference %.0f images/s; peak RSS %.1f MB\n",
         epochs, ep, train_flops / ep / 1e9, infer, peak_rss_mb());
  if (o->target > 0) {
    if (reached >= 0)
      printf("test accuracy %.1f%% reached after %.2f s of training and evaluation\n",
             100 * o->target, reached);
    else
      printf("test accuracy %.1f%% not reached in %d epochs (%.4f)\n", 100 * o->target, epochs, acc);
  }
  printf("RESULT model=%s epoch_s=%.3f cpu_s=%.3f batch_med_s=%.3f gflops=%.1f infer_img_s=%.0f "
         "rss_mb=%.1f test_acc=%.4f epochs=%d kernel=%s%s%s%s threads=%d batch=%d data=%s "
         "target_s=%.2f\n",
         o->model, ep, cpu_ep, med_ep, train_flops / ep / 1e9, infer, peak_rss_mb(), acc, epochs,
         fm_gemm_name(fm_gemm_current()), o->plain ? "+plain" : "",
         o->no_direct || o->no_implicit ? "+im2col" : "",
         work.model_parallel ? "+mp" : "", threads, o->batch, dt.source, reached);
  free(bc.times);
  free(params), free(grads), free(net_state), free(state), free(wmem), free(imem), free(order);
  for (int s = 0; s < 2; s++) free(dt.pixels[s]), free(dt.labels[s]);
  return 0;
}

int main(int argc, char **argv) {
  options o = {.model = argc > 1 ? argv[1] : "cnn", .kernel = "auto",
               .data_dir = "/usr/share/datasets/fashion-mnist", .optim = "adam", .epochs = 0,
               .threads = 0, .batch = 64, .schedule = "constant"};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--synthetic") || !strcmp(a, "--plain") || !strcmp(a, "--no-direct") ||
        !strcmp(a, "--no-mp") || !strcmp(a, "--no-eval") || !strcmp(a, "--no-implicit")) {
      if (!strcmp(a, "--synthetic")) o.synthetic = 1;
      if (!strcmp(a, "--no-mp")) fm_net_model_parallel = 0;
      if (!strcmp(a, "--plain")) o.plain = 1;
      if (!strcmp(a, "--no-direct")) o.no_direct = 1;
      if (!strcmp(a, "--no-eval")) o.no_eval = 1;
      if (!strcmp(a, "--no-implicit")) o.no_implicit = 1;
      continue;
    }
    if (!v) {
      fprintf(stderr, "bench_nn: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--epochs")) o.epochs = atoi(v);
    else if (!strcmp(a, "--threads")) o.threads = atoi(v);
    else if (!strcmp(a, "--batch")) o.batch = atoi(v);
    else if (!strcmp(a, "--images")) o.images = atoll(v);
    else if (!strcmp(a, "--kernel")) o.kernel = v;
    else if (!strcmp(a, "--data")) o.data_dir = v;
    else if (!strcmp(a, "--optim")) o.optim = v;
    else if (!strcmp(a, "--lr")) o.lr = atof(v);
    else if (!strcmp(a, "--target")) o.target = atof(v);
    else if (!strcmp(a, "--schedule")) o.schedule = v;
    else if (!strcmp(a, "--wd")) o.wd = atof(v);
    else {
      fprintf(stderr, "bench_nn: unknown option %s\n", a);
      return 2;
    }
  }
  if (!strcmp(o.model, "sgemm")) return bench_sgemm();
  if (!strcmp(o.model, "convs")) return bench_convs(o.batch > 1 ? o.batch / 2 : 1);
  if (o.epochs <= 0)
    o.epochs = !strcmp(o.model, "cnn") ? 3
               : !strcmp(o.model, "resnet") || !strcmp(o.model, "mobilenet") ? 1 : 5;
  if (o.threads < 0 || o.threads > FM_NET_MAX_SHARDS || o.batch < 1) {
    fprintf(stderr, "bench_nn: bad --threads or --batch\n");
    return 2;
  }
  return bench_model(&o);
}
