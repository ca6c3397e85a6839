/* fm_train: the batches of one training epoch over a dataset view (see fm_train.h). */
#include "fm_train.h"

#include <string.h>

#include "fm_error.h"

/* Distinct, well-mixed dropout seeds for every (seed, epoch, batch). */
static uint64_t batch_seed(uint64_t seed, int epoch, int64_t b) {
  uint64_t z = seed ^ ((uint64_t)epoch << 40) ^ (uint64_t)b;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int fm_train_epoch(fm_net *net, fm_work *w, fm_optim *opt, float *opt_state, const fm_dataset *d,
                   const int32_t *order, int64_t count, int batch, int epoch, uint64_t seed,
                   fm_batch_fn fn, void *ctx, fm_epoch_stats *st) {
  memset(st, 0, sizeof *st);
  if (batch < 1 || batch > w->batch)
    return fm_fail("train: batch size %d must be 1 to %d (the workspace's)", batch, w->batch);
  if (d->rows != net->in_h || d->cols != net->in_w || net->in_c != 1)
    return fm_fail("train: images of %lldx%lld do not fit a network taking %dx%dx%d",
                   (long long)d->rows, (long long)d->cols, net->in_h, net->in_w, net->in_c);
  if (count < 0 || count > d->n)
    return fm_fail("train: %lld rows asked of a dataset of %lld", (long long)count,
                   (long long)d->n);
  int64_t nb = (count + batch - 1) / batch;
  double loss = 0.0;
  int64_t correct = 0;
  for (int64_t b = 0; b < nb; b++) {
    int64_t i0 = b * batch;
    int cnt = (int)(count - i0 < batch ? count - i0 : batch);
    opt->epoch = epoch + (double)b / nb;
    fm_batch_stats bs;
    if (fm_net_train_step_rows(net, w, opt, opt_state, d, order + i0, cnt,
                               batch_seed(seed, epoch, b), &bs) != FM_OK)
      return FM_ERR;
    if (bs.diverged) {
      st->diverged = bs.diverged;
      st->diverged_batch = b;
      fm_fail("training diverged at epoch %d, batch %lld of %lld: %s", epoch + 1,
              (long long)b + 1, (long long)nb,
              bs.diverged == 1 ? "the loss or a gradient is not finite; the weights are those "
                                 "before this batch"
                               : "an update overflowed and was skipped");
      break;
    }
    loss += bs.loss * cnt;
    correct += bs.correct;
    st->n += cnt;
    st->batches = b + 1;
    if (fn && fn(ctx, b, nb, &bs)) {
      st->stopped = 1;
      break;
    }
  }
  st->loss = st->n ? loss / st->n : 0.0;
  st->accuracy = st->n ? (double)correct / st->n : 0.0;
  return FM_OK;
}
