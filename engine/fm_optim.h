/* fm_optim: optimizers and learning-rate schedules over flat parameter and gradient buffers.
 *
 * An optimizer is a plain struct of hyper-parameters plus a step counter; its per-parameter state
 * (momentum, or Adam's two moments) lives in a float buffer the caller owns, so it can be saved,
 * checksummed or reset like the weights. Updates are elementwise, so any split of the buffer over
 * threads gives the same bits.
 *
 *   SGD:   v = momentum * v + g;  p -= lr * v            (Nesterov: p -= lr * (g + momentum * v))
 *          without momentum no state is kept and p -= lr * g.
 *   Adam:  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *          p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * L2 weight decay adds weight_decay * p to the gradient first (the gradient of
 * weight_decay / 2 * |p|^2); decoupled weight decay (AdamW, Loshchilov and Hutter) instead shrinks
 * the parameter by the factor 1 - lr * weight_decay before the update. The network applies either
 * to weights and not to biases or batch-norm scales and shifts. */
#ifndef FM_OPTIM_H
#define FM_OPTIM_H

#include <stdint.h>

typedef enum { FM_OPTIM_SGD = 1, FM_OPTIM_ADAM = 2 } fm_optim_kind;
typedef enum {
  FM_SCHED_CONSTANT = 0,
  FM_SCHED_STEP = 1,
  FM_SCHED_COSINE = 2,
  FM_SCHED_ONECYCLE = 3
} fm_sched_kind;

/* The learning rate as a function of training progress e, in epochs (fractions allowed):
 *   constant: lr
 *   step:     lr * gamma ^ floor(e / step_epochs)
 *   cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * min(e', T) / T)) / 2 with e' = e - warmup and
 *             T = total_epochs - warmup
 *   onecycle: (Smith's one-cycle policy, as PyTorch's OneCycleLR) from lr / 25 up to lr over the
 *             first 30% of total_epochs, then down to lr / 25e4, both halves cosine-shaped.
 * A warm-up (warmup_epochs > 0; not with onecycle, which has its own) first raises the rate
 * linearly from lr / 100 to the schedule's rate at e = warmup_epochs. */
typedef struct fm_schedule {
  fm_sched_kind kind;
  double step_epochs, gamma;    /* step */
  double total_epochs, min_lr;  /* cosine, onecycle (total_epochs) */
  double warmup_epochs;         /* 0: none */
} fm_schedule;

typedef struct fm_optim {
  fm_optim_kind kind;
  double lr;
  double momentum;      /* SGD, in [0, 1) */
  int nesterov;         /* SGD with momentum */
  double beta1, beta2;  /* Adam, in [0, 1) */
  double eps;           /* Adam, > 0 */
  double weight_decay;  /* >= 0 */
  int decoupled;        /* weight decay as AdamW applies it, not as an L2 term in the gradient */
  fm_schedule schedule;
  int64_t t;            /* steps taken; Adam's bias correction uses it */
  double epoch;         /* progress the schedule reads; the training loop sets it */
} fm_optim;

/* Defaults: SGD lr 0.01 without momentum; Adam lr 0.001, betas 0.9 and 0.999, eps 1e-8. */
void fm_optim_sgd(fm_optim *o, double lr, double momentum, int nesterov);
void fm_optim_adam(fm_optim *o, double lr);
/* Fails, naming the field, on a value out of range. */
int fm_optim_check(const fm_optim *o);

/* Floats of state for n parameters (0 for SGD without momentum, n with, 2n for Adam); -1 when n is
 * negative or the count would not fit 64 bits. The caller zeroes it before the first step (and
 * whenever it restarts the optimizer, with t = 0). */
int64_t fm_optim_state_floats(const fm_optim *o, int64_t n);

double fm_schedule_lr(const fm_schedule *s, double lr, double epoch);

/* What one step needs beyond the struct: the learning rate of this step and Adam's bias
 * corrections. fm_optim_begin advances t and computes it. */
typedef struct fm_optim_coef {
  float lr, momentum, beta1, beta2, eps;
  float one_minus_beta1, one_minus_beta2; /* from double: 1 - 0.999f would be off by 5e-5 */
  float correction1, correction2;  /* 1 / (1 - beta^t) */
} fm_optim_coef;
void fm_optim_begin(fm_optim *o, fm_optim_coef *c);

/* Updates parameters [first, first + count) of a buffer of n (state holds the state of all n, as
 * fm_optim_state_floats lays it out), with L2 decay wd. A parameter whose update would not be
 * finite keeps its old value and state; returns how many did (0 normally). */
int64_t fm_optim_apply(const fm_optim *o, const fm_optim_coef *c, float *params, const float *grads,
                       float *state, int64_t n, int64_t first, int64_t count, float wd);

/* The same on a slice given by pointers: p, g and the state slices s1 (momentum, or Adam's m) and
 * s2 (Adam's v), each `count` long (s1, s2 unused when the optimizer keeps no such state). */
int64_t fm_optim_apply_slice(const fm_optim *o, const fm_optim_coef *c, float *p, const float *g,
                             float *s1, float *s2, int64_t count, float wd);

/* Sum of squares of n floats, in double, accumulated in a fixed order (a gradient's squared
 * norm: the training step's finiteness check and statistic). */
double fm_sum_squares(const float *x, int64_t n);

/* One whole step over n parameters with o->weight_decay on all of them (begin + apply). */
int64_t fm_optim_step(fm_optim *o, float *params, const float *grads, float *state, int64_t n);

#endif
