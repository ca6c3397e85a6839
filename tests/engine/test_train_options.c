/* test_train_options: the training options beyond plain SGD and Adam — warm-up and one-cycle
 * schedules, decoupled weight decay (AdamW), label smoothing against finite differences, and the
 * augmentation of training images (pad-and-crop shifts, flips, random erasing): what each does to
 * an image, that it depends on (seed, image) alone, and that a training step uses it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fm_augment.h"
#include "fm_error.h"
#include "fm_layers.h"
#include "fm_net.h"
#include "fm_optim.h"

static void test_schedules(void) {
  fm_schedule s = {.kind = FM_SCHED_COSINE, .total_epochs = 10, .warmup_epochs = 2};
  CHECK_NEAR(fm_schedule_lr(&s, 1.0, 0.0), 0.01, 1e-12, "warm-up starts at lr / 100");
  CHECK_NEAR(fm_schedule_lr(&s, 1.0, 1.0), 0.505, 1e-12, "and rises linearly (0.505 half way)");
  CHECK_NEAR(fm_schedule_lr(&s, 1.0, 2.0), 1.0, 1e-12, "to the full rate at the end of the warm-up");
  CHECK_NEAR(fm_schedule_lr(&s, 1.0, 6.0), 0.5, 1e-12, "then the cosine over the 8 epochs left");
  CHECK_NEAR(fm_schedule_lr(&s, 1.0, 10.0), 0.0, 1e-12, "down to min_lr at the end");
  fm_schedule plain = {.kind = FM_SCHED_COSINE, .total_epochs = 10};
  CHECK(fm_schedule_lr(&plain, 1e-3, 3.7) == 0.0 + 1e-3 * 0.5 * (1.0 + cos(M_PI * 3.7 / 10)),
        "without a warm-up the cosine is the same expression as always, to the bit");
  fm_schedule one = {.kind = FM_SCHED_ONECYCLE, .total_epochs = 10};
  CHECK_NEAR(fm_schedule_lr(&one, 1.0, 0.0), 1.0 / 25, 1e-12, "one-cycle starts at lr / 25");
  CHECK_NEAR(fm_schedule_lr(&one, 1.0, 3.0), 1.0, 1e-12, "peaks at lr after 30%% of the epochs");
  CHECK_NEAR(fm_schedule_lr(&one, 1.0, 10.0), 1.0 / 25e4, 1e-12, "and ends at lr / 25e4");
  CHECK(fm_schedule_lr(&one, 1.0, 2.0) > fm_schedule_lr(&one, 1.0, 1.0) &&
            fm_schedule_lr(&one, 1.0, 6.0) < fm_schedule_lr(&one, 1.0, 4.0),
        "rising before the peak, falling after");
  fm_optim o;
  fm_optim_adam(&o, 1e-3);
  o.schedule = one;
  o.schedule.warmup_epochs = 1;
  CHECK_FAILS(fm_optim_check(&o), "its own warm-up", "one-cycle refuses a second warm-up");
  o.schedule = s;
  o.schedule.warmup_epochs = 10;
  CHECK_FAILS(fm_optim_check(&o), "shorter than the 10 epochs", "a warm-up as long as the schedule");
}

static void test_adamw(void) {
  /* With a zero gradient Adam's step is 0: only the decay moves the weights. */
  float p[20], g[20] = {0}, st[40] = {0};
  for (int i = 0; i < 20; i++) p[i] = (float)(i + 1);
  fm_optim o;
  fm_optim_adam(&o, 0.1);
  o.weight_decay = 0.5;
  o.decoupled = 1;
  CHECK(fm_optim_check(&o) == FM_OK, "AdamW checks");
  fm_optim_step(&o, p, g, st, 20);
  int ok = 1;
  for (int i = 0; i < 20; i++) ok &= fabsf(p[i] - (float)(i + 1) * (1.0f - 0.1f * 0.5f)) < 1e-6f;
  CHECK(ok, "decoupled decay shrinks each weight by 1 - lr * wd (a zero gradient moves nothing "
        "else)");
  /* L2 decay puts wd * p into Adam's normalised step instead: a step of about lr. */
  for (int i = 0; i < 20; i++) p[i] = (float)(i + 1);
  memset(st, 0, sizeof st);
  o.decoupled = 0;
  o.t = 0;
  fm_optim_step(&o, p, g, st, 20);
  CHECK(fabsf(p[19] - (20.0f - 0.1f)) < 1e-4f, "L2 decay through Adam moves every weight by about "
        "lr (20 -> %.4f)", (double)p[19]);
}

static void test_label_smoothing(void) {
  const int n = 3, k = 4;
  float z[12] = {0.5f, -1, 2, 0.1f, 3, 0, -2, 1, 0, 0, 0, 0};
  uint8_t y[3] = {2, 0, 3};
  float d[12], d0[12];
  double l0 = fm_softmax_xent(n, k, z, y, 1.0f, d0, NULL);
  double l0s = fm_softmax_xent_smoothed(n, k, z, y, 0.0f, 1.0f, d, NULL);
  CHECK(l0 == l0s && memcmp(d, d0, sizeof d) == 0, "smoothing 0 is the plain loss, to the bit");
  const float eps = 0.2f;
  double loss = fm_softmax_xent_smoothed(n, k, z, y, eps, 1.0f, d, NULL);
  /* by hand: sum over classes of target * -log p */
  double manual = 0;
  for (int i = 0; i < n; i++) {
    double mx = -1e30, sum = 0;
    for (int j = 0; j < k; j++) mx = fmax(mx, z[i * k + j]);
    for (int j = 0; j < k; j++) sum += exp(z[i * k + j] - mx);
    for (int j = 0; j < k; j++) {
      double t = j == y[i] ? 1.0 - eps + (double)eps / k : (double)eps / k;
      manual += t * (log(sum) - (z[i * k + j] - mx));
    }
  }
  CHECK_NEAR(loss, manual, 1e-9, "smoothed loss by hand (%.6f)", loss);
  double worst = 0;
  for (int i = 0; i < n * k; i++) {
    float keep = z[i];
    z[i] = keep + 1e-3f;
    double up = fm_softmax_xent_smoothed(n, k, z, y, eps, 1.0f, NULL, NULL);
    z[i] = keep - 1e-3f;
    double down = fm_softmax_xent_smoothed(n, k, z, y, eps, 1.0f, NULL, NULL);
    z[i] = keep;
    worst = fmax(worst, fabs((up - down) / 2e-3 - d[i]));
  }
  CHECK(worst < 1e-3, "its gradient matches finite differences (worst %.2g)", worst);
}

/* A 6x6 image with a distinct value in every pixel. */
static void numbered(float *img) {
  for (int i = 0; i < 36; i++) img[i] = (float)(i + 1) / 36.0f;
}

static void test_augment(void) {
  float img[36], again[36], scratch[36];
  fm_augment none = {0};
  CHECK(!fm_augment_active(&none), "no augmentation by default");
  fm_augment flip = {.flip = 1};
  int flipped = 0, kept = 0;
  for (uint64_t key = 0; key < 64; key++) {
    numbered(img);
    fm_augment_image(&flip, 7, key, 6, 6, 1, img, scratch);
    if (img[0] == 6.0f / 36) flipped++;
    else if (img[0] == 1.0f / 36) kept++;
  }
  CHECK(flipped + kept == 64 && flipped > 16 && kept > 16,
        "flip: each image mirrored left-right or kept, about half each (%d of 64 flipped)", flipped);
  fm_augment crop = {.crop = 2};
  int shifted = 0, all_ok = 1;
  for (uint64_t key = 0; key < 64; key++) {
    numbered(img);
    fm_augment_image(&crop, 7, key, 6, 6, 1, img, scratch);
    /* every pixel is 0 (padding) or the original value of a pixel at most 2 away */
    for (int y = 0; y < 6; y++)
      for (int x = 0; x < 6; x++) {
        float v = img[y * 6 + x];
        if (v == 0) continue;
        int src = (int)lroundf(v * 36) - 1, sy = src / 6, sx = src % 6;
        all_ok &= abs(sy - y) <= 2 && abs(sx - x) <= 2;
      }
    shifted += img[14] != 15.0f / 36;
  }
  CHECK(all_ok && shifted > 32, "crop: images shift by up to 2 pixels with zeros coming in (%d of "
        "64 moved)", shifted);
  fm_augment erase = {.erase = 1.0f};
  numbered(img);
  fm_augment_image(&erase, 7, 3, 6, 6, 1, img, scratch);
  int changed = 0;
  for (int i = 0; i < 36; i++) changed += fabsf(img[i] - (float)(i + 1) / 36.0f) > 1e-6f;
  CHECK(changed > 0 && changed < 36, "erase 1: a rectangle of the image is replaced (%d pixels)",
        changed);
  fm_augment all = {.crop = 2, .flip = 1, .erase = 0.5f};
  numbered(img);
  numbered(again);
  fm_augment_image(&all, 11, 5, 6, 6, 1, img, scratch);
  fm_augment_image(&all, 11, 5, 6, 6, 1, again, scratch);
  CHECK(memcmp(img, again, sizeof img) == 0, "the same (seed, image) gives the same changes");
  numbered(again);
  fm_augment_image(&all, 12, 5, 6, 6, 1, again, scratch);
  CHECK(memcmp(img, again, sizeof img) != 0, "another seed gives others");
  CHECK_FAILS(fm_augment_check(&(fm_augment){.crop = 4}, 6, 6), "crop must be 0 to 3",
              "a crop over half the image is refused");
  CHECK_FAILS(fm_augment_check(&(fm_augment){.erase = 1.5f}, 6, 6), "erase must be a probability",
              "an erase probability over 1 is refused");
}

int main(void) {
  test_schedules();
  test_adamw();
  test_label_smoothing();
  test_augment();
  return check_done();
}
