/* fm_eval: a network over every image of a dataset view — predictions, probabilities, and the
 * loss and accuracy against the view's labels — a chunk of images at a time, so that the floats
 * of 60,000 images never exist at once. */
#ifndef FM_EVAL_H
#define FM_EVAL_H

#include "fm_dataset.h"
#include "fm_net.h"

/* x: chunk * net->in_size floats; y: chunk labels. probs (d->n x classes) and pred (d->n) may be
 * NULL; *loss_sum (summed cross-entropy) and *correct (may be NULL) use the view's labels. */
int fm_eval_dataset(const fm_net *net, fm_work *w, const fm_dataset *d, float *x, uint8_t *y,
                    int64_t chunk, float *probs, uint8_t *pred, double *loss_sum,
                    int64_t *correct);

/* The confusion matrix of the network on d: confusion[t * net->classes + p] counts the images of
 * label t it predicts as p (net->classes x net->classes, overwritten), with *loss_sum and *correct
 * as above (either may be NULL). x, y and pred are scratch for chunk images. Labels must be
 * classes of the network (a label outside them fails, naming it). */
int fm_eval_confusion(const fm_net *net, fm_work *w, const fm_dataset *d, float *x, uint8_t *y,
                      uint8_t *pred, int64_t chunk, int64_t *confusion, double *loss_sum,
                      int64_t *correct);

#endif
