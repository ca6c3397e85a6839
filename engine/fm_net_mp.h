/* fm_net_mp: the model-parallel training step of networks made only of dense layers (with
 * flatten, ReLU and dropout between them), used by fm_net.c. Internal to the engine.
 *
 * The batch-sharded step gives every thread all the weights and sums the threads' weight
 * gradients, so each step moves the whole parameter vector between cores twice. For a dense
 * network the weights outweigh the activations (an MLP on a batch of 64 has 235,146 weights and
 * about 25,000 activations), and moving data between cores is what costs most on a machine whose
 * cores do not share a cache. Here each thread owns a block of every dense layer instead (the
 * same blocks every step): a contiguous range of its weight rows, i.e. of its input units. It
 * computes their contribution to the layer's outputs for the whole batch, their weight gradient
 * (no sum between threads is needed) and the input gradient of its units (complete), and updates
 * them and their optimizer state, which never leave its cache. Only activations cross: the
 * partial outputs, added in block order, and the output gradients. Dropout masks are the sharded
 * step's, keyed by (seed, layer, image) and indexed by unit, so both steps compute the same
 * function.
 *
 * The step runs as a chain of parallel phases (one per dense layer forward, the loss, one per
 * dense layer backward), each a parallel-for over the blocks, so a delayed thread's block is taken
 * by another thread and no phase waits for a descheduled thread. */
#ifndef FM_NET_MP_H
#define FM_NET_MP_H

#include <stddef.h>
#include <stdint.h>

#include "fm_dataset.h"
#include "fm_net.h"

/* The step keeps a small table of the dense layers: longer networks are sharded instead. */
#define FM_NET_MP_MAX_LAYERS 64

/* 1 when the network is a chain of at most FM_NET_MP_MAX_LAYERS layers, every layer is dense
 * (with biases), flatten, ReLU or dropout, flatten comes before the first dense layer, every ReLU
 * and dropout after one, and the last layer is dense. */
int fm_net_mp_applies(const fm_net *net);
/* Floats of workspace the step needs for batches of `batch` on `shards` threads. */
size_t fm_net_mp_floats(const fm_net *net, int batch, int shards);

/* One step on n images: x (n * in_size floats), or the view rows rows[0..n) of d gathered by each
 * thread. Labels y (n, < classes), already checked. opt NULL: only the gradient into net->grads.
 * Fills st as fm_net_train_step does. */
void fm_net_mp_step(fm_net *net, fm_work *w, const float *x, const fm_dataset *d,
                    const int32_t *rows, const uint8_t *y, int n, uint64_t seed, fm_optim *opt,
                    float *state, fm_batch_stats *st);

/* Shared with fm_net.c: the MXCSR denormal mode of the engine's work items. */
unsigned fm_fp_enter(void);
void fm_fp_leave(unsigned old);

#endif
