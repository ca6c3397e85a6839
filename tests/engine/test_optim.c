/* test_optim: optimizer steps and learning-rate schedules against values worked out by hand. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "fm_error.h"
#include "fm_gemm.h"
#include "fm_rng.h"
#include "fm_optim.h"

static void test_sgd(void) {
  fm_optim o;
  float p = 1.0f, g = 0.5f;
  fm_optim_sgd(&o, 0.1, 0.0, 0);
  CHECK(fm_optim_state_floats(&o, 10) == 0, "sgd: no state without momentum");
  fm_optim_step(&o, &p, &g, NULL, 1);
  CHECK_NEAR(p, 0.95, 1e-7, "sgd: 1 - 0.1 * 0.5 = 0.95 (got %.8f)", p);

  /* Momentum 0.9: v1 = 0.5, p1 = 0.95; v2 = 0.9 * 0.5 + 0.5 = 0.95, p2 = 0.95 - 0.095 = 0.855. */
  float v = 0.0f;
  p = 1.0f;
  fm_optim_sgd(&o, 0.1, 0.9, 0);
  CHECK(fm_optim_state_floats(&o, 10) == 10, "sgd: momentum keeps one float per parameter");
  fm_optim_step(&o, &p, &g, &v, 1);
  fm_optim_step(&o, &p, &g, &v, 1);
  CHECK(fabs(p - 0.855) < 1e-6 && fabs(v - 0.95) < 1e-6, "sgd momentum: two steps give 0.855 (got %.7f)", p);

  /* Nesterov: v1 = 0.5, p1 = 1 - 0.1 * (0.5 + 0.9 * 0.5) = 0.905. */
  v = 0.0f;
  p = 1.0f;
  fm_optim_sgd(&o, 0.1, 0.9, 1);
  fm_optim_step(&o, &p, &g, &v, 1);
  CHECK_NEAR(p, 0.905, 1e-6, "sgd nesterov: one step gives 0.905 (got %.7f)", p);

  /* L2 decay: the gradient becomes g + 0.1 * p = 0 + 0.2, p = 2 - 0.1 * 0.2 = 1.98. */
  p = 2.0f;
  g = 0.0f;
  fm_optim_sgd(&o, 0.1, 0.0, 0);
  o.weight_decay = 0.1;
  fm_optim_step(&o, &p, &g, NULL, 1);
  CHECK_NEAR(p, 1.98, 1e-6, "sgd: weight decay 0.1 pulls 2 to 1.98 (got %.7f)", p);
}

static void test_adam(void) {
  fm_optim o;
  fm_optim_adam(&o, 0.001);
  CHECK(fm_optim_state_floats(&o, 10) == 20, "adam: two moments per parameter");
  float p[2] = {1.0f, -3.0f}, state[4] = {0};
  float g1[2] = {0.5f, -2.0f};
  fm_optim_step(&o, p, g1, state, 2);
  /* Step 1: bias correction makes m_hat = g and v_hat = g^2, so p moves by lr * sign(g). */
  CHECK(fabs(p[0] - 0.999) < 1e-6 && fabs(p[1] + 2.999) < 1e-6,
        "adam: the first step moves each weight by lr against its gradient (%.7f %.7f)", p[0], p[1]);
  CHECK(fabs(state[0] - 0.05) < 1e-7 && fabs(state[2] - 0.00025) < 1e-9,
        "adam: m = 0.1 g and v = 0.001 g^2 after one step");
  /* Step 2 with g = 0.25: m = 0.9*0.05 + 0.1*0.25 = 0.07, v = 0.999*0.00025 + 0.001*0.0625 =
   * 0.00031225; m_hat = 0.07/0.19 = 0.3684211, v_hat = 0.00031225/0.001999 = 0.1562031,
   * step = 0.001 * 0.3684211 / 0.3952254 = 0.000932180. */
  float g2[2] = {0.25f, 0.0f};
  fm_optim_step(&o, p, g2, state, 2);
  CHECK(fabs(p[0] - (0.999 - 0.000932180)) < 1e-7,
        "adam: the second step matches the hand-computed 0.998067820 (got %.9f)", p[0]);
  CHECK(o.t == 2, "adam: the step counter advanced to 2");
}

static void test_schedules(void) {
  fm_schedule s = {.kind = FM_SCHED_STEP, .step_epochs = 2, .gamma = 0.5};
  CHECK(fm_schedule_lr(&s, 0.1, 0) == 0.1 && fm_schedule_lr(&s, 0.1, 1.9) == 0.1 &&
            fabs(fm_schedule_lr(&s, 0.1, 2) - 0.05) < 1e-12 &&
            fabs(fm_schedule_lr(&s, 0.1, 4.5) - 0.025) < 1e-12,
        "schedule step: halves every 2 epochs");
  fm_schedule c = {.kind = FM_SCHED_COSINE, .total_epochs = 10, .min_lr = 0.001};
  CHECK(fabs(fm_schedule_lr(&c, 0.1, 0) - 0.1) < 1e-12 &&
            fabs(fm_schedule_lr(&c, 0.1, 5) - 0.0505) < 1e-12 &&
            fabs(fm_schedule_lr(&c, 0.1, 10) - 0.001) < 1e-12 &&
            fabs(fm_schedule_lr(&c, 0.1, 12) - 0.001) < 1e-12,
        "schedule cosine: 0.1 -> 0.0505 halfway -> min_lr at the end and after");
  fm_schedule k = {.kind = FM_SCHED_CONSTANT};
  CHECK(fm_schedule_lr(&k, 0.3, 7) == 0.3, "schedule constant");
  /* The optimizer reads the schedule at o.epoch. */
  fm_optim o;
  fm_optim_sgd(&o, 0.1, 0, 0);
  o.schedule = s;
  o.epoch = 2.0;
  float p = 1.0f, g = 1.0f;
  fm_optim_step(&o, &p, &g, NULL, 1);
  CHECK_NEAR(p, 0.95, 1e-7, "sgd: a step at epoch 2 of a step schedule uses lr 0.05");
}

static void test_checks(void) {
  fm_optim o;
  fm_optim_sgd(&o, 0.0, 0, 0);
  CHECK_FAILS(fm_optim_check(&o), "learning rate", "optimizer: lr 0 is refused");
  fm_optim_sgd(&o, 0.1, 1.0, 0);
  CHECK_FAILS(fm_optim_check(&o), "momentum", "optimizer: momentum 1 is refused");
  fm_optim_adam(&o, 0.001);
  o.beta2 = 1.0;
  CHECK_FAILS(fm_optim_check(&o), "beta2", "optimizer: beta2 1 is refused");
  fm_optim_adam(&o, 0.001);
  o.weight_decay = -1;
  CHECK_FAILS(fm_optim_check(&o), "weight decay", "optimizer: negative weight decay is refused");
  fm_optim_adam(&o, 0.001);
  o.schedule.kind = FM_SCHED_COSINE;
  CHECK_FAILS(fm_optim_check(&o), "total_epochs", "optimizer: cosine without total_epochs");
  fm_optim_adam(&o, 0.001);
  CHECK(fm_optim_check(&o) == FM_OK, "optimizer: Adam defaults are valid");
  /* values that are not finite, or not finite as the float32 the step computes in */
  fm_optim_adam(&o, 1e300);
  CHECK_FAILS(fm_optim_check(&o), "learning rate 1e+300 must be positive and finite",
              "optimizer: lr 1e300 (infinite in float32) is refused");
  fm_optim_adam(&o, NAN);
  CHECK_FAILS(fm_optim_check(&o), "learning rate", "optimizer: lr NaN is refused");
  fm_optim_adam(&o, 0.001);
  o.weight_decay = INFINITY;
  CHECK_FAILS(fm_optim_check(&o), "weight decay inf", "optimizer: infinite weight decay is refused");
  fm_optim_adam(&o, 0.001);
  o.schedule = (fm_schedule){.kind = FM_SCHED_STEP, .step_epochs = 1, .gamma = INFINITY};
  CHECK_FAILS(fm_optim_check(&o), "finite gamma", "optimizer: an infinite gamma is refused");
  o.schedule = (fm_schedule){.kind = FM_SCHED_STEP, .step_epochs = NAN, .gamma = 0.5};
  CHECK_FAILS(fm_optim_check(&o), "step_epochs", "optimizer: a NaN step_epochs is refused");
  o.schedule = (fm_schedule){.kind = FM_SCHED_COSINE, .total_epochs = 10, .min_lr = 1.0};
  CHECK_FAILS(fm_optim_check(&o), "min_lr in [0, lr = 0.001] (got 1)",
              "optimizer: a min_lr above lr is refused");
  fm_optim_adam(&o, 0.001);
  CHECK(fm_optim_state_floats(&o, INT64_MAX / 2 + 1) == -1 && fm_optim_state_floats(&o, -1) == -1 &&
            fm_optim_state_floats(&o, INT64_MAX / 2) == INT64_MAX - 1,
        "optimizer: Adam's 2n state floats never wrap (-1 instead)");
  /* An update that would overflow is skipped and reported; the other element is updated. */
  fm_optim_sgd(&o, 1.0, 0, 0);
  float p[2] = {3e38f, 1.0f}, g[2] = {-3e38f, 0.5f};
  CHECK(fm_optim_step(&o, p, g, NULL, 2) == 1 && p[0] == 3e38f && p[1] == 0.5f,
        "optimizer: an overflowing update is skipped and reported, the rest applied");
}

/* The vector and plain loops give the same bits. */
static void test_paths_agree(void) {
  enum { N = 1000 };
  static float p[2][N], g[N], st[2][2 * N];
  fm_rng r;
  fm_rng_seed(&r, 4);
  for (int i = 0; i < N; i++) g[i] = (float)fm_rng_normal(&r), p[0][i] = p[1][i] = (float)fm_rng_normal(&r);
  const char *names[3] = {"adam", "sgd momentum nesterov", "sgd"};
  for (int kind = 0; kind < 3; kind++) {
    for (int path = 0; path < 2; path++) {
      fm_simd_allow(path);
      fm_optim o;
      if (kind == 0) fm_optim_adam(&o, 0.01);
      else fm_optim_sgd(&o, 0.01, kind == 1 ? 0.9 : 0.0, kind == 1);
      o.weight_decay = 1e-3;
      memset(st[path], 0, sizeof st[path]);
      for (int t = 0; t < 5; t++) fm_optim_step(&o, p[path], g, st[path], N - 3);
    }
    CHECK(memcmp(p[0], p[1], sizeof p[0]) == 0 && memcmp(st[0], st[1], sizeof st[0]) == 0,
          "optimizer %s: vector and plain loops agree bit for bit", names[kind]);
  }
  fm_simd_allow(1);
}

int main(void) {
  for (int path = 0; path < 2; path++) {
    fm_simd_allow(path);
    test_sgd();
    test_adam();
  }
  test_schedules();
  test_checks();
  test_paths_agree();
  return check_done();
}
