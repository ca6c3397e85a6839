/* fm_net: networks as a graph of layers (nodes) in topological order, trained on both cores.
 *
 * A network is a list of layer specs. Each layer names its inputs: earlier layers, or the network
 * input; by default the layer before it (the first layer takes the network input), so a plain list
 * is a sequential network. A layer may feed several others (a residual block's input feeds its
 * body and its shortcut); their gradients add up. What every kind of layer does — its shape rule,
 * parameters and their roles, initialisation, scratch, forward and backward passes — is one entry
 * of the table in fm_ops.c; this file lays the graph out in memory and runs the passes.
 *
 * Memory: the caller owns everything. fm_net_build fills an fm_net and the caller's array of
 * n fm_layer records (the records stay in the caller's memory; net->layer points at them) without
 * allocating; the caller then provides
 *   - the parameters, one flat float buffer of net->n_params (fm_net_bind), each layer's weights
 *     followed by its biases, in layer order (layouts in fm_layers.h); a batch-norm layer's scale
 *     then shift;
 *   - the state, net->n_state floats that training updates but the optimizer never sees (batch
 *     norm's running mean then running variance, per batch-norm layer in layer order);
 *   - the gradients, another buffer of n_params floats (only for training and saliency);
 *   - the optimizer state (fm_optim_state_floats);
 *   - a workspace for a given batch size and thread count (fm_work_bytes): every layer's output
 *     for that batch (kept for the backward pass and for inspection), the gradients of layer
 *     outputs (slots reused once a layer's backward pass has consumed them), one scratch area
 *     sized for the most demanding layer (shared by all layers, as darknet does), room for a
 *     gathered batch, batch statistics, and a private gradient buffer for each extra thread.
 * A layer writes its output in place of its input's (and a ReLU after a dense or convolution
 * layer is applied inside the product) only when that input has no other consumer and nothing
 * reads it afterwards, as decided from the graph when it is built.
 *
 * Threads and determinism: a call on n images splits them into `shards` fixed contiguous parts
 * (shard s gets images [s*n/S, (s+1)*n/S)), run on the engine's thread pool (fm_threads.h).
 * Each shard runs the forward and backward pass on its images with single-threaded matrix
 * products and writes its own gradient buffer; the buffers are then added in shard order.
 * Batch normalisation in training needs statistics of the whole batch: each of its layers ends a
 * phase of the pass, where every image's partial sums are added in image order, so the statistics
 * do not depend on the shard count. Networks of dense layers only train model-parallel instead
 * (fm_net_model_parallel below). No float is ever accumulated in an order that depends on timing,
 * so results are bit-for-bit reproducible for a given seed, shard count and matrix kernel
 * (fm_gemm_select), whichever thread runs which part. Dropout masks are drawn per image and unit
 * from (seed, layer, image index), so they do not depend on the split either. The passes run with
 * denormals flushed to zero.
 *
 * Errors: FM_ERR with a message (fm_error()) naming the layer, the argument and the shapes. */
#ifndef FM_NET_H
#define FM_NET_H

#include <stddef.h>
#include <stdint.h>

#include "fm_augment.h"
#include "fm_dataset.h"
#include "fm_layers.h"
#include "fm_optim.h"

/* Layers a network may have: far beyond any network these images call for (ResNet-110 has about
 * 380), and a bound on what a model file may claim before anything is allocated for it. */
#define FM_NET_MAX_LAYERS 4096
/* Inputs one layer may take (an add of several branches). */
#define FM_NET_MAX_INPUTS 4
#define FM_NET_MAX_SHARDS 64

/* ---- limits ----
 * Every size fm_net_build and fm_work_bytes work out from specs, a file or a batch size is
 * computed with overflow-checked arithmetic (fm_check.h) and held to these, so that a hostile or
 * mistaken spec is refused with the layer and the numbers named instead of wrapping around. They
 * are set by what a machine with 24 GiB of memory can hold while training: the parameters about
 * five times over (weights, gradients, Adam's two moments, the best epoch's copy) beside one
 * workspace. */
/* Any one side, channel count, unit or filter count, kernel side or pool window: far beyond any
 * image classifier, and the product of two of them still fits in 32 bits. */
#define FM_NET_MAX_DIM (1 << 15)
/* Parameters of the whole network: 1 GiB a copy, about 5 GiB while training with Adam. */
#define FM_NET_MAX_PARAMS ((int64_t)1 << 28)
/* Floats per image of any layer's input or output, of all the outputs a pass keeps, and of one
 * convolution's patch matrix (im2col): 1 GiB each for a batch of one image. It also keeps every
 * per-image size inside the int the layer kernels take. */
#define FM_NET_MAX_IMAGE_FLOATS ((int64_t)1 << 28)
/* Forward multiply-adds per image: about 10^12, minutes of one core for every image, so a
 * network beyond it could never be trained here. */
#define FM_NET_MAX_MACS ((int64_t)1 << 40)
/* Images in one call's batch (fm_work_init). */
#define FM_NET_MAX_BATCH (1 << 16)
/* Bytes of one workspace: with the parameters it must fit in 24 GiB. */
#define FM_NET_MAX_WORK_BYTES ((int64_t)16 << 30)
/* Class scores of the last layer: labels and predictions are bytes. */
#define FM_NET_MAX_CLASSES 256

/* The network input, as a layer's input index. */
#define FM_NET_INPUT (-1)

/* The numbers are those of model files: never renumber. */
typedef enum {
  FM_LAYER_DENSE = 1,
  FM_LAYER_CONV2D = 2,
  FM_LAYER_MAXPOOL = 3,
  FM_LAYER_RELU = 4,
  FM_LAYER_DROPOUT = 5,
  FM_LAYER_FLATTEN = 6,
  FM_LAYER_BATCHNORM = 7,
  FM_LAYER_ADD = 8,
  FM_LAYER_AVGPOOL = 9,
  FM_LAYER_GLOBAL_AVGPOOL = 10,
  FM_LAYER_RELU6 = 11
} fm_layer_kind;
#define FM_LAYER_KIND_END 12 /* kinds are 1 to FM_LAYER_KIND_END - 1 */
#define FM_LAYER_KINDS (FM_LAYER_KIND_END - 1)

typedef enum { FM_INIT_AUTO = 0, FM_INIT_HE = 1, FM_INIT_GLOROT = 2, FM_INIT_ZERO = 3 } fm_init_kind;

/* What the caller asks for. Unused fields are 0, and 0 means the default where one is given. */
typedef struct fm_layer_spec {
  fm_layer_kind kind;
  int n_inputs;      /* 0: the layer before (the network input for the first layer) */
  int inputs[FM_NET_MAX_INPUTS]; /* earlier layers (0-based), or FM_NET_INPUT */
  int units;         /* dense: outputs; conv2d: filters */
  int kh, kw;        /* conv2d kernel; kw 0 means square (kh x kh) */
  int same;          /* conv2d: 1 "same" padding (output = ceil(input / stride)), 0 "valid" */
  int pool;          /* maxpool/avgpool: window (0 means 2) */
  int stride;        /* conv2d: 0 means 1; maxpool/avgpool: 0 means the window */
  int groups;        /* conv2d: 0 or 1 all input channels; the input channel count: depthwise */
  int no_bias;       /* dense/conv2d: 1 leaves the bias out (before a batch norm) */
  float rate;        /* dropout: probability of dropping, in [0, 1) */
  float eps;         /* batch norm: added to the variance (0 means 1e-5) */
  float momentum;    /* batch norm: running = momentum * running + (1 - momentum) * batch
                        (0 means 0.9) */
  fm_init_kind init; /* dense/conv2d: AUTO = He when a ReLU follows (through batch norm),
                        Glorot otherwise; batch norm: ZERO starts its scale at 0 */
} fm_layer_spec;

/* What fm_net_build works out for each layer (shapes per image). */
typedef struct fm_layer {
  fm_layer_spec spec;       /* with the defaults filled in */
  int n_in;
  int in[FM_NET_MAX_INPUTS]; /* resolved inputs: earlier layers or FM_NET_INPUT */
  int in_h, in_w, in_c;     /* shape of input 0; a flat vector of n is 1 x 1 x n */
  int out_h, out_w, out_c;  /* output shape */
  int64_t in_size, out_size;
  int64_t n_weights, n_biases; /* parameters: weights (batch norm: scale), then biases (shift) */
  int64_t offset;           /* first weight in the parameter buffer; the biases follow */
  int64_t n_state;          /* floats of state (batch norm: running mean and variance) */
  int64_t state_offset;
  int64_t macs;             /* multiply-adds of the forward pass, per image */
  int fan_in, fan_out;
  int consumers;            /* layers taking this one's output */
  int fused_relu;           /* dense/conv2d/batch norm whose only consumer is a ReLU: applied
                               in the same pass (the ReLU then runs in place and does nothing) */
  int relu_folded;          /* maxpool after a ReLU it alone reads: its backward pass does the
                               ReLU's too (the ReLU's own is skipped) */
  int skip_backward;        /* a ReLU whose backward pass the max-pool after it does */
  int bwd_target[FM_NET_MAX_INPUTS]; /* whose output gradient receives input k's gradient */
  int accumulate[FM_NET_MAX_INPUTS]; /* added to what another consumer already wrote there */
  int grad_upstream;        /* it or a layer it depends on has parameters */
  fm_conv_geom conv;
  int64_t act_offset;       /* its output in a shard's activations, per image (-1: the input) */
  int64_t mask_offset;      /* dropout: where its mask lives */
  int64_t delta_offset;     /* its output gradient in a shard's gradient area, per image */
  int64_t delta_size;       /* build bookkeeping: the size of that slot, and whether it is */
  int delta_state;          /* held, free for another layer, or handed down to an input */
  int64_t stats_offset;     /* batch norm: its batch mean and 1/std in the shared area */
} fm_layer;

typedef struct fm_net {
  int n_layers;
  fm_layer *layer;          /* the caller's records, given to fm_net_build */
  int in_h, in_w, in_c;
  int64_t in_size;
  int classes;              /* outputs of the last layer */
  int64_t n_params;
  int64_t n_state;
  int64_t act_floats;       /* activations kept per image */
  int64_t delta_floats;     /* output gradients live at once, per image */
  int64_t max_size;         /* largest input or output of any layer, per image */
  size_t scratch_floats;    /* per thread, for the convolutions (dense layers' depends on the batch) */
  int64_t macs;             /* forward multiply-adds per image, all layers */
  int n_batchnorm;          /* batch-norm layers: each ends a phase of a training pass */
  int max_bn_channels;
  int64_t bn_floats;        /* per-layer batch statistics kept between the passes */
  int chain;                /* every layer takes the one before it, which has no other consumer */
  float *params;            /* bound by fm_net_bind */
  float *grads;
  float *state;
} fm_net;

/* ---- the kinds of layer ---- */

/* How a spec field is read from a layer description (the binding's tables come from here). */
typedef enum {
  FM_FIELD_INT,     /* an integer in [lo, hi] */
  FM_FIELD_FLOAT,   /* a number in [lo, hi] (hi excluded for the dropout rate) */
  FM_FIELD_KERNEL,  /* an integer, or h and w: sets kh and kw */
  FM_FIELD_PADDING, /* "valid" or "same": sets same */
  FM_FIELD_BIAS,    /* a boolean: sets no_bias to its negation */
  FM_FIELD_INIT     /* "auto", "he", "glorot" or "zeros": sets init */
} fm_field_type;

typedef struct fm_field {
  const char *name;  /* the key in a layer description: "units", "kernel", ... */
  int position;      /* its place in the {"dense", 128} form (2, 3, ...), or 0 */
  fm_field_type type;
  size_t offset;     /* of the int or float in fm_layer_spec it sets */
  double lo, hi;
} fm_field;

typedef struct fm_layer_type {
  fm_layer_kind kind;
  const char *name;          /* "dense", in layer descriptions and model files' text */
  const char *display;       /* "Dense", as Keras names it in a summary */
  int min_inputs, max_inputs;
  const fm_field *fields;    /* ends with a NULL name */
} fm_layer_type;

/* The kinds, in kind order: types[k] for 1 <= k < FM_LAYER_KIND_END. */
const fm_layer_type *fm_layer_type_of(fm_layer_kind kind); /* NULL for an unknown kind */
const fm_layer_type *fm_layer_type_named(const char *name); /* NULL for an unknown name */
/* The name of a kind ("dense"; "unknown" outside 1..FM_LAYER_KINDS), the type a summary shows
 * ("Dense"), and the kind of a name (0 when none has it). */
const char *fm_layer_kind_name(fm_layer_kind kind);
const char *fm_layer_type_name(fm_layer_kind kind);
fm_layer_kind fm_layer_kind_of(const char *name);
/* One spec alone, as layer `index` (0-based; messages say index + 1): a known kind, every field
 * its kind uses within that field's range (0 meaning the default where there is one), every other
 * field 0, inputs only as many as it says. fm_net_build checks this first. */
int fm_layer_spec_check(int index, const fm_layer_spec *s);

/* The reference CNN (conv 3x3x32, ReLU, max-pool 2 -> conv 3x3x64, ReLU, max-pool 2 -> flatten,
 * dense 128, ReLU, dropout 0.5 -> dense 10) into specs (room for FM_REFERENCE_CNN_LAYERS). */
#define FM_REFERENCE_CNN_LAYERS 11
int fm_reference_cnn(fm_layer_spec *specs);
/* For a Keras-like summary: "conv2d 3x3, 32 filters, valid", "maxpool 2x2", "dense 128",
 * "dropout 0.5", "relu", "flatten", "batchnorm", "add" into buf; and the output shape "26x26x32"
 * (or "128" when flat). Both return buf. */
const char *fm_layer_describe(const fm_layer *L, char *buf, size_t size);
const char *fm_layer_shape(const fm_layer *L, char *buf, size_t size);

/* Checks the specs against each other and the input shape and lays the network out into net and
 * layers (n records). A dense layer flattens its input (HWC order), so a flatten layer before it is
 * optional. The last layer's output must be flat, 2 to FM_NET_MAX_CLASSES values: the class
 * logits. Fails naming the layer when a field its kind does not use is not 0, a value is out of
 * its range, an input does not come before the layer, or a size would pass the limits above. */
int fm_net_build(fm_net *net, fm_layer *layers, int in_h, int in_w, int in_c,
                 const fm_layer_spec *specs, int n);
/* grads may be NULL for a network that only predicts; state may be NULL when n_state is 0. */
void fm_net_bind(fm_net *net, float *params, float *grads, float *state);
/* Weights from a generator seeded with seed (He or Glorot), zero biases, batch-norm scales 1
 * and shifts 0, running means 0 and variances 1. */
void fm_net_init(fm_net *net, uint64_t seed);
/* A layer's weights and biases inside net->params. */
float *fm_net_weights(const fm_net *net, int layer);
float *fm_net_biases(const fm_net *net, int layer);
/* Replaces layer `layer`'s weights (n_weights floats, its layout) and, when biases is not NULL,
 * its biases (n_biases). Fails, changing nothing, when a count differs from the layer's or a value
 * is not finite (a saved model holds finite weights only). */
int fm_net_set_layer(fm_net *net, int layer, const float *weights, int64_t n_weights,
                     const float *biases, int64_t n_biases);

/* ---- workspace ---- */
typedef struct fm_work {
  int batch;                /* largest n of one call */
  int shards;               /* parts of a batch, run in parallel */
  int shard_batch;          /* images per shard at most */
  float *base;
  size_t bytes;
  size_t shard_floats;      /* floats per shard */
  size_t in_at, act_at, delta_at, dx_at, tmp_at, scratch_at; /* offsets inside a shard's area */
  size_t bn_at;             /* the shared batch statistics, after the shards' areas */
  size_t partial_at;        /* per-image partial sums of one batch-norm layer (doubles) */
  size_t grad_at;           /* the extra shards' gradients */
  uint8_t *labels;          /* the labels of a batch gathered by fm_net_train_step_rows */
  int model_parallel;       /* training steps run model-parallel (see fm_net_model_parallel) */
  /* Training settings the caller may set after fm_work_init (both off after it): */
  fm_augment augment;       /* changes to the images fm_net_train_step_rows gathers (per image,
                               from the step's seed and the image's row: fm_augment.h); steps
                               with an active augmentation are batch-sharded */
  float label_smoothing;    /* in [0, 1): the training loss against smoothed targets */
  /* the last call */
  int n;                    /* images */
  int forward_done;         /* activations hold the outputs for those images */
  double loss[FM_NET_MAX_SHARDS];
  int correct[FM_NET_MAX_SHARDS];
} fm_work;

/* Networks of dense layers only (flatten first, ReLU and dropout between, a dense layer last)
 * train model-parallel on 2 or more threads: each thread owns a block of rows of every dense
 * layer's weights instead of a part of the batch, which moves far less data between cores
 * (engine/fm_net_mp.h). Results are deterministic for a given thread count either way, but differ
 * between the two in the last bits. Set to 0 before fm_work_init to shard every network. */
extern int fm_net_model_parallel;

/* 0 (with a message) when batch or shards are out of range or the workspace would be over
 * FM_NET_MAX_WORK_BYTES. */
size_t fm_work_bytes(const fm_net *net, int batch, int shards);
/* mem: at least fm_work_bytes(net, batch, shards) bytes, 64-byte aligned. */
int fm_work_init(fm_work *w, const fm_net *net, int batch, int shards, void *mem, size_t bytes);
/* The cores this process may use: the OpenMP thread limit (OMP_NUM_THREADS, else the CPUs it may
 * run on), at most FM_NET_MAX_SHARDS. */
int fm_default_threads(void);
/* A good shard count for training net on batches of `batch`: fm_default_threads(), but fewer when
 * a shard would get under about 20 MFLOP of work per step, where waking a thread costs more than
 * it saves (logistic regression gets 1). It depends only on the network and the batch size, never
 * on timing, so the same call gives the same count (and the same bits) every time. */
int fm_work_threads(const fm_net *net, int batch);

/* ---- passes ---- */
typedef struct fm_batch_stats {
  double loss;       /* mean cross-entropy over the batch */
  int correct;       /* images whose top class is the label */
  int n;
  double grad_norm;  /* L2 norm of the mean gradient (training step) */
  int diverged;      /* 1: the loss is not finite (no update was made); 2: some gradients or
                        updates were not finite, and those parameters kept their values */
} fm_batch_stats;

/* Forward pass over n <= w->batch images (x: n * net->in_size floats). train: dropout on, with
 * masks drawn from seed, and batch norm normalising with this batch's statistics (which also
 * update its running statistics); otherwise batch norm uses the running statistics. Every
 * layer's output stays in the workspace (fm_net_activation). */
int fm_net_forward(const fm_net *net, fm_work *w, const float *x, int n, int train, uint64_t seed);
/* Layer `layer`'s output for image i (0 <= i < n) of the last pass (fm_net_forward, the last
 * chunk of fm_net_predict, a sharded gradient or training step): out_size floats, HWC. NULL
 * (with a message) when out of range or no such pass was made since (a model-parallel training
 * step keeps its activations elsewhere). A dense or convolution layer whose ReLU was applied in
 * the product shows the rectified values. */
const float *fm_net_activation(const fm_net *net, const fm_work *w, int layer, int i);

/* Forward (training mode) + mean softmax cross-entropy + backward: net->grads becomes the gradient
 * of the mean loss over the n images. Labels must be < net->classes. */
int fm_net_gradient(fm_net *net, fm_work *w, const float *x, const uint8_t *y, int n,
                    uint64_t seed, fm_batch_stats *st);

/* One training step: the gradient of the mean loss, then, if the loss is finite, one optimizer
 * update (weight decay on weights, not on biases or batch-norm scales and shifts). The shards'
 * gradients are summed chunk by chunk straight into the update, so net->grads is scratch
 * afterwards (fm_net_gradient gives a gradient). Divergence is not an error: st->diverged is set,
 * and the parameters and optimizer state are left as they were (1: the loss is not finite), or
 * updated except where a gradient or the update itself was not finite (2). Either way every
 * weight stays finite, so the caller can stop with the last finite weights. FM_ERR only for bad
 * arguments. */
int fm_net_train_step(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state, const float *x,
                      const uint8_t *y, int n, uint64_t seed, fm_batch_stats *st);

/* The same step on the images of view rows rows[0..n) of d: each thread gathers and converts its
 * own part of the batch from the uint8 pixels (into the workspace), so that runs in parallel too.
 * Fails naming the entry when a row is out of range or its label is not a class. */
int fm_net_train_step_rows(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state,
                           const fm_dataset *d, const int32_t *rows, int n, uint64_t seed,
                           fm_batch_stats *st);

/* Inference on any number of images, w->batch at a time. Any output may be NULL:
 * probs (n x classes softmax), pred (n top classes). With labels, *loss_sum gets the summed
 * cross-entropy and *correct the number of right predictions. */
int fm_net_predict(const fm_net *net, fm_work *w, const float *x, int64_t n, float *probs,
                   uint8_t *pred, const uint8_t *labels, double *loss_sum, int64_t *correct);

/* Saliency: dx[i] = d logit[cls[i]] / d x[i] for n <= w->batch images (inference mode; the
 * parameter gradients are not touched). dx: n * net->in_size floats. */
int fm_net_input_gradient(const fm_net *net, fm_work *w, const float *x, int n, const uint8_t *cls,
                          float *dx);

#endif
