/* fm_train: one training epoch of a network over a dataset view, in mini-batches.
 *
 * The caller shuffles (it owns the order array and the generator), keeps the loop over epochs,
 * validation, early stopping and progress display; this runs the batches of one epoch: a training
 * step on each batch of rows (the threads convert their images from uint8 themselves), a report
 * of every batch to an optional callback, and a stop at the first divergence, with its place. */
#ifndef FM_TRAIN_H
#define FM_TRAIN_H

#include <stdint.h>

#include "fm_dataset.h"
#include "fm_net.h"

typedef struct fm_epoch_stats {
  double loss;        /* mean training loss over the images seen (dropout on) */
  double accuracy;    /* fraction of them the network got right, before each step */
  int64_t n;          /* images seen */
  int64_t batches;    /* batches done */
  int diverged;       /* 1 or 2 as fm_batch_stats.diverged; the epoch stopped there */
  int64_t diverged_batch; /* 0-based batch where it happened */
  int stopped;        /* the callback asked to stop */
} fm_epoch_stats;

/* Called after every batch (b of nb, 0-based); a non-zero return stops the epoch. */
typedef int (*fm_batch_fn)(void *ctx, int64_t b, int64_t nb, const fm_batch_stats *st);

/* Trains on the view rows order[0..count) of d, `batch` at a time (the last batch may be short;
 * batch <= w->batch). The optimizer's schedule sees epoch + fraction done; dropout masks come from
 * (seed, epoch, batch). Fails on bad arguments; divergence is reported in st, with a message
 * naming the epoch and batch in fm_error(). */
int fm_train_epoch(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state, const fm_dataset *d,
                   const int32_t *order, int64_t count, int batch, int epoch, uint64_t seed,
                   fm_batch_fn fn, void *ctx, fm_epoch_stats *st);

#endif
