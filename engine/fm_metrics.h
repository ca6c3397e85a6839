/* fm_metrics: what a classifier got right and wrong — the confusion matrix and the per-class
 * precision, recall, F1 and support behind scikit-learn's classification_report. */
#ifndef FM_METRICS_H
#define FM_METRICS_H

#include <stdint.h>

#define FM_METRICS_MAX_CLASSES 256

typedef struct fm_metrics {
  int classes;
  int64_t total;
  double accuracy;
  /* per class; a class never predicted has precision 0, one never present recall 0 (as
   * scikit-learn with zero_division=0) */
  double precision[FM_METRICS_MAX_CLASSES], recall[FM_METRICS_MAX_CLASSES],
      f1[FM_METRICS_MAX_CLASSES];
  int64_t support[FM_METRICS_MAX_CLASSES];
  /* A class is present when it is a true label or a prediction at least once; like scikit-learn,
   * the macro averages are over the present classes only. */
  int present[FM_METRICS_MAX_CLASSES];
  int n_present;
  double macro_precision, macro_recall, macro_f1;          /* unweighted means over classes */
  double weighted_precision, weighted_recall, weighted_f1; /* weighted by support */
} fm_metrics;

/* confusion[t * classes + p] counts the images of true class t predicted as p. Fails naming the
 * position of a label or prediction outside 0..classes-1. */
int fm_confusion(const uint8_t *truth, const uint8_t *predicted, int64_t n, int classes,
                 int64_t *confusion);
/* Each row divided by its sum (rows of absent classes stay 0): the fraction of each true class
 * predicted as each class. */
void fm_confusion_normalize(const int64_t *confusion, int classes, float *out);
/* Everything else, from a confusion matrix. */
int fm_metrics_compute(const int64_t *confusion, int classes, fm_metrics *m);

#endif
