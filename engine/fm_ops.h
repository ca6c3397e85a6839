/* fm_ops: what each kind of layer does, one table entry per kind (internal to the engine; fm_net.c
 * builds graphs and runs passes over these entries, fm_ops.c holds them).
 *
 * A new kind of layer is its kernels (fm_layers.c or a file of its own), its entry here, and its
 * tests. An entry says how the layer's output shape and parameter counts follow from its inputs
 * (infer), how its parameters start (init), how much scratch it needs, and its forward and
 * backward passes over one shard's images. Kinds that need statistics of the whole batch in
 * training (batch norm) also have the partial sums each shard computes for its images and the step
 * that combines them; the network then ends a phase at that layer. */
#ifndef FM_OPS_H
#define FM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "fm_net.h"
#include "fm_rng.h"

/* One shard's part of a pass. */
typedef struct fm_pass {
  const fm_net *net;
  const fm_work *w;
  int s;              /* the shard */
  int cnt, first;     /* its images, and the first one's index in the call */
  int train;          /* dropout on; batch norm with batch statistics */
  uint64_t seed;      /* dropout masks */
  float *scratch;     /* the shard's scratch area */
  float *grads;       /* the shard's parameter gradients, or NULL when none are wanted */
  double *partial;    /* per-image partial sums of the phase's batch-norm layer (whole batch) */
} fm_pass;

enum {
  FM_OP_INPLACE = 1,      /* may write its output over its input 0 (its backward never reads it) */
  FM_OP_READS_OUTPUT = 2, /* its backward pass reads its own output */
  FM_OP_DX_ALIAS = 4,     /* its input gradient may be written over its output gradient */
  FM_OP_FUSES_RELU = 8,   /* can apply a ReLU that follows it in its own pass */
  FM_OP_PARAMS = 16       /* has parameters */
};

typedef struct fm_op {
  unsigned flags;
  /* Output shape, parameter, state and multiply-add counts, fan in/out, from L->spec and the
   * input shapes (L->in_* for input 0; net->layer[L->in[k]] for the others). Fails naming layer
   * `index` (0-based; messages say index + 1). */
  int (*infer)(const fm_net *net, fm_layer *L, int index);
  /* Parameters and state; NULL: nothing to do. he: a ReLU follows (for AUTO init). */
  void (*init)(const fm_layer *L, fm_rng *r, int he, float *w, float *b, float *state);
  /* Scratch floats for a shard of shard_batch images; NULL: none. */
  size_t (*scratch)(const fm_layer *L, int shard_batch);
  /* in[k]: input k's output for the shard (cnt images); out: this layer's. */
  void (*forward)(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                  float *out);
  /* dy: the gradient of the output (may be overwritten when FM_OP_DX_ALIAS and dx[0] == dy);
   * dx[k]: where input k's gradient goes (overwritten), or NULL when it is not needed; gw, gb:
   * parameter gradients (overwritten: the sums over the shard's images), or NULL. */
  void (*backward)(const fm_pass *p, const fm_layer *L, int index, const float *const *in,
                   const float *out, float *dy, float *const *dx, float *gw, float *gb);
  /* Batch statistics (training only). fwd_partial: this shard's per-image sums from the input,
   * into p->partial; fwd_combine: the whole batch's (n images), in image order, into the
   * workspace's statistics, and the running statistics in net->state updated. bwd_partial and
   * bwd_combine the same for the backward pass; bwd_combine also writes the parameter gradients
   * (gw, gb: one shard's buffers, the others get zeros from the caller). */
  void (*fwd_partial)(const fm_pass *p, const fm_layer *L, const float *in);
  void (*fwd_combine)(const fm_net *net, const fm_work *w, const fm_layer *L, int n,
                      const double *partial);
  void (*bwd_partial)(const fm_pass *p, const fm_layer *L, const float *in, const float *dy);
  void (*bwd_combine)(const fm_net *net, const fm_work *w, const fm_layer *L, int n,
                      const double *partial, float *gw, float *gb);
  /* Doubles of per-image partial sums per image (0 for kinds without batch statistics). */
  int (*partial_doubles)(const fm_layer *L);
} fm_op;

const fm_op *fm_op_of(fm_layer_kind kind);

/* Shared with fm_net.c and fm_net_mp.c. */
uint64_t fm_net_mask_key(uint64_t seed, int layer, int64_t image);
/* The batch statistics of a batch-norm layer in the workspace: mean[c] then 1/std[c]. */
float *fm_net_bn_stats(const fm_net *net, const fm_work *w, const fm_layer *L);

#endif
