/* fm_metrics: confusion matrix and per-class scores. */
#include "fm_metrics.h"

#include <string.h>

#include "fm_error.h"

int fm_confusion(const uint8_t *truth, const uint8_t *predicted, int64_t n, int classes,
                 int64_t *confusion) {
  if (classes < 1 || classes > FM_METRICS_MAX_CLASSES)
    return fm_fail("%d classes: expected 1 to %d", classes, FM_METRICS_MAX_CLASSES);
  memset(confusion, 0, sizeof(int64_t) * (size_t)classes * (size_t)classes);
  for (int64_t i = 0; i < n; i++) {
    if (truth[i] >= classes)
      return fm_fail("true label %d at position %lld is outside 0..%d", truth[i], (long long)i + 1,
                     classes - 1);
    if (predicted[i] >= classes)
      return fm_fail("predicted label %d at position %lld is outside 0..%d", predicted[i],
                     (long long)i + 1, classes - 1);
    confusion[truth[i] * classes + predicted[i]]++;
  }
  return FM_OK;
}

void fm_confusion_normalize(const int64_t *confusion, int classes, float *out) {
  for (int t = 0; t < classes; t++) {
    int64_t row = 0;
    for (int p = 0; p < classes; p++) row += confusion[t * classes + p];
    for (int p = 0; p < classes; p++)
      out[t * classes + p] = row ? (float)((double)confusion[t * classes + p] / (double)row) : 0.0f;
  }
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

int fm_metrics_compute(const int64_t *confusion, int classes, fm_metrics *m) {
  if (classes < 1 || classes > FM_METRICS_MAX_CLASSES)
    return fm_fail("%d classes: expected 1 to %d", classes, FM_METRICS_MAX_CLASSES);
  memset(m, 0, sizeof *m);
  m->classes = classes;
  int64_t correct = 0;
  for (int c = 0; c < classes; c++) {
    int64_t tp = confusion[c * classes + c], predicted = 0, actual = 0;
    for (int k = 0; k < classes; k++) {
      predicted += confusion[k * classes + c];
      actual += confusion[c * classes + k];
    }
    correct += tp;
    m->total += actual;
    m->present[c] = predicted + actual > 0;
    m->n_present += m->present[c];
    m->support[c] = actual;
    m->precision[c] = ratio((double)tp, (double)predicted);
    m->recall[c] = ratio((double)tp, (double)actual);
    m->f1[c] = ratio(2 * m->precision[c] * m->recall[c], m->precision[c] + m->recall[c]);
  }
  m->accuracy = ratio((double)correct, (double)m->total);
  for (int c = 0; c < classes; c++) {
    double w = ratio((double)m->support[c], (double)m->total);
    double u = m->present[c] ? 1.0 / m->n_present : 0.0;
    m->macro_precision += m->precision[c] * u;
    m->macro_recall += m->recall[c] * u;
    m->macro_f1 += m->f1[c] * u;
    m->weighted_precision += m->precision[c] * w;
    m->weighted_recall += m->recall[c] * w;
    m->weighted_f1 += m->f1[c] * w;
  }
  return FM_OK;
}
