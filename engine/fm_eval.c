/* fm_eval: chunked inference over a dataset view. */
#include "fm_eval.h"

#include <string.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_metrics.h"

/* Every prediction of a network is a byte and a class of the metrics. */
_Static_assert(FM_NET_MAX_CLASSES <= 256 && FM_NET_MAX_CLASSES <= FM_METRICS_MAX_CLASSES,
               "a network's classes must fit the metrics and a byte");

/* The loop of both: chunk by chunk, the images and labels into x and y, then a prediction. pred
 * holds the whole view's predictions, or (per_chunk) only the current chunk's; confusion (may be
 * NULL, zeroed by the caller) counts each label and prediction. */
static int eval_chunks(const fm_net *net, fm_work *w, const fm_dataset *d, float *x, uint8_t *y,
                       int64_t chunk, float *probs, uint8_t *pred, int per_chunk,
                       int64_t *confusion, double *loss_sum, int64_t *correct) {
  if (d->rows != net->in_h || d->cols != net->in_w || net->in_c != 1)
    return fm_fail("images of %lldx%lld do not fit a network taking %dx%dx%d", (long long)d->rows,
                   (long long)d->cols, net->in_h, net->in_w, net->in_c);
  /* predictions alone need no labels (a dataset may have classes the network has not) */
  const int scored = confusion || loss_sum || correct;
  if (chunk < 1) return fm_fail("chunk of %lld images", (long long)chunk);
  const int k = net->classes;
  double loss = 0.0;
  int64_t right = 0;
  for (int64_t i0 = 0; i0 < d->n; i0 += chunk) {
    int64_t cnt = d->n - i0 < chunk ? d->n - i0 : chunk;
    fm_dataset_fill(d, i0, cnt, x, y);
    double l = 0.0;
    int64_t c = 0;
    uint8_t *p = pred && !per_chunk ? pred + i0 : pred;
    /* fm_net_predict checks every label against the classes, and predictions are classes */
    if (fm_net_predict(net, w, x, cnt, probs ? probs + i0 * k : NULL, p, scored ? y : NULL,
                       scored ? &l : NULL, scored ? &c : NULL) != FM_OK)
      return FM_ERR;
    for (int64_t j = 0; confusion && j < cnt; j++) {
      FM_ASSERT(y[j] < k && p[j] < k);
      confusion[y[j] * k + p[j]]++;
    }
    loss += l;
    right += c;
  }
  if (loss_sum) *loss_sum = loss;
  if (correct) *correct = right;
  return FM_OK;
}

int fm_eval_dataset(const fm_net *net, fm_work *w, const fm_dataset *d, float *x, uint8_t *y,
                    int64_t chunk, float *probs, uint8_t *pred, double *loss_sum,
                    int64_t *correct) {
  return eval_chunks(net, w, d, x, y, chunk, probs, pred, 0, NULL, loss_sum, correct);
}

int fm_eval_confusion(const fm_net *net, fm_work *w, const fm_dataset *d, float *x, uint8_t *y,
                      uint8_t *pred, int64_t chunk, int64_t *confusion, double *loss_sum,
                      int64_t *correct) {
  FM_ASSERT(net->classes >= 2 && net->classes <= FM_NET_MAX_CLASSES && pred);
  memset(confusion, 0, sizeof(int64_t) * (size_t)net->classes * (size_t)net->classes);
  return eval_chunks(net, w, d, x, y, chunk, NULL, pred, 1, confusion, loss_sum, correct);
}
