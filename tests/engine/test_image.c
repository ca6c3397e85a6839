/* test_image: the pieces of fm_image (grey, background, invert, trim, crop, pad, resize, center)
 * and the whole preparation, on images made here, and every error path. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "fm_error.h"
#include "fm_image.h"

static fm_image make(int64_t h, int64_t w, int c) {
  return (fm_image){h, w, c, calloc((size_t)(h * w * c), sizeof(float))};
}

static double mean(const fm_image *im) {
  double s = 0;
  int64_t n = im->height * im->width * im->channels;
  for (int64_t i = 0; i < n; i++) s += im->data[i];
  return s / (double)n;
}

static float at(const fm_image *im, int64_t y, int64_t x) { return im->data[y * im->width + x]; }

/* A w x h rectangle of value v at (top, left) on a grey image. */
static void rect(fm_image *im, int64_t top, int64_t left, int64_t h, int64_t w, float v) {
  for (int64_t y = top; y < top + h; y++)
    for (int64_t x = left; x < left + w; x++) im->data[y * im->width + x] = v;
}

static void test_size(void) {
  int64_t n;
  CHECK(fm_image_size("x", 3, 4, 2, &n) == FM_OK && n == 24, "3 x 4 x 2 is 24 floats");
  CHECK_FAILS(fm_image_size("x.png", (int64_t)1 << 31, (int64_t)1 << 31, 4, &n),
              "x.png: 2147483648 x 2147483648 pixels, more than the limit of 16384 per side",
              "a file claiming 2^31 x 2^31 is refused before allocation");
  CHECK_FAILS(fm_image_size("x.png", 16384, 16384, 1, &n), "more than the limit of 67108864 pixels",
              "16384 x 16384 is more pixels than the limit");
  CHECK_FAILS(fm_image_size("x", 0, 5, 1, &n), "x: 0 x 5 pixels (an image needs at least 1 x 1)",
              "an empty image is refused");
  CHECK_FAILS(fm_image_size("x", 2, 2, 5, &n), "x: 5 channels", "5 channels are refused");
}

static void test_grey(void) {
  fm_image rgba = make(1, 3, 4), out = make(1, 3, 1);
  float px[] = {1, 0, 0, 1, /* opaque red */ 0, 0, 1, 0.5f, /* half blue */ 0.3f, 0.6f, 0.9f, 0};
  for (int i = 0; i < 12; i++) rgba.data[i] = px[i];
  CHECK(fm_image_grey(&rgba, 1.0f, &out) == FM_OK, "grey of RGBA");
  CHECK_NEAR(at(&out, 0, 0), 0.299, 1e-6, "opaque red: its luminance 0.299");
  CHECK_NEAR(at(&out, 0, 1), 0.5 * 0.114 + 0.5 * 1.0, 1e-6,
             "half-transparent blue over white: 0.5 * 0.114 + 0.5");
  CHECK_NEAR(at(&out, 0, 2), 1.0, 1e-6,
             "a transparent pixel is the background, whatever its colour");
  CHECK(fm_image_grey(&rgba, 0.0f, &out) == FM_OK && fabsf(at(&out, 0, 2)) < 1e-6f &&
            fabs(at(&out, 0, 1) - 0.057) < 1e-6,
        "over black: transparent is 0, half blue 0.057");
  CHECK_FAILS(fm_image_grey(&rgba, NAN, &out), "background must be a number in [0, 1], got nan",
              "a NaN background is refused");
  CHECK_FAILS(fm_image_grey(&rgba, 1.5f, &out), "background must be a number in [0, 1]",
              "a background above 1 is refused");
  fm_image wrong = make(2, 3, 1);
  CHECK_FAILS(fm_image_grey(&rgba, 0, &wrong), "output is 2 x 3 x 1, expected 1 x 3 x 1",
              "a wrong output size is refused, naming both");
  CHECK(fm_image_alpha_background(&rgba) == 1.0f,
        "a dark opaque object (red, blue) gets a white background");
  for (int i = 0; i < 3; i++) rgba.data[i] = 0.9f;
  rgba.data[4] = rgba.data[5] = rgba.data[6] = 0.9f;
  CHECK(fm_image_alpha_background(&rgba) == 0.0f, "a light object gets a black background");
  fm_image ga = make(1, 1, 2);
  ga.data[0] = 0.2f;
  ga.data[1] = 0.25f;
  fm_image g1 = make(1, 1, 1);
  CHECK(fm_image_grey(&ga, 0.6f, &g1) == FM_OK && fabsf(at(&g1, 0, 0) - 0.5f) < 1e-6f,
        "grey+alpha: 0.25 * 0.2 + 0.75 * 0.6 = 0.5");
  free(ga.data);
  free(g1.data);
  free(wrong.data);
  free(rgba.data);
  free(out.data);
}

static void test_background(void) {
  fm_image im = make(10, 12, 1);
  for (int64_t i = 0; i < 120; i++) im.data[i] = 0.9f;
  rect(&im, 0, 0, 10, 2, 0.1f); /* an object touching the left edge: 2 of 40 border pixels... */
  float level;
  CHECK(fm_image_background(&im, &level) == FM_OK && level == 0.9f,
        "a light background is found although the object touches the border");
  rect(&im, 2, 2, 6, 8, 0.0f);
  CHECK(fm_image_background(&im, &level) == FM_OK && level == 0.9f, "the inside does not count");
  fm_image row = make(1, 5, 1);
  row.data[2] = 1;
  CHECK(fm_image_background(&row, &level) == FM_OK && level == 0.0f, "a 1 x 5 image: its median");
  fm_image rgb = make(2, 2, 3);
  CHECK_FAILS(fm_image_background(&rgb, &level), "needs a grey image (1 channel), got 3 channels",
              "the background level of RGB is refused");
  for (int64_t i = 0; i < 5; i++) row.data[i] = NAN;
  CHECK_FAILS(fm_image_background(&row, &level), "NaN", "a border of NaN has no level");
  free(rgb.data);
  free(row.data);
  free(im.data);
}

static void test_invert(void) {
  fm_image im = make(1, 1, 4);
  float px[] = {0.25f, 0.5f, 1.0f, 0.75f};
  for (int i = 0; i < 4; i++) im.data[i] = px[i];
  CHECK(fm_image_invert(&im, &im) == FM_OK, "invert in place");
  CHECK(im.data[0] == 0.75f && im.data[1] == 0.5f && im.data[2] == 0.0f && im.data[3] == 0.75f,
        "colours become 1 - v, alpha stays");
  free(im.data);
}

static void test_trim_crop_pad(void) {
  fm_image im = make(20, 30, 1);
  rect(&im, 5, 7, 4, 9, 0.8f);
  im.data[19 * 30 + 29] = 0.05f; /* below the threshold */
  fm_box b;
  CHECK(fm_image_trim_box(&im, 0.0f, 0.1f, &b) == FM_OK && b.top == 5 && b.left == 7 &&
            b.height == 4 && b.width == 9,
        "trim finds the 4 x 9 box at (5, 7), ignoring a speck under the threshold");
  CHECK(fm_image_trim_box(&im, 0.0f, 0.0f, &b) == FM_OK && b.height == 15 && b.width == 23,
        "threshold 0 keeps the speck");
  fm_image blank = make(4, 4, 1);
  CHECK_FAILS(fm_image_trim_box(&blank, 0.0f, 0.1f, &b),
              "no object: every pixel is within 0.1 of the background level 0",
              "a blank image has nothing to trim to");
  CHECK_FAILS(fm_image_trim_box(&im, 0.0f, NAN, &b),
              "threshold must be a number in [0, 1), got nan", "a NaN threshold is refused");

  fm_image crop = make(4, 9, 1);
  CHECK(fm_image_crop(&im, 5, 7, &crop) == FM_OK && mean(&crop) > 0.799 && mean(&crop) < 0.801,
        "the crop of the box is the object");
  CHECK_FAILS(fm_image_crop(&im, 17, 7, &crop), "goes past the edge of the 20 x 30 image",
              "a crop past the edge is refused");
  CHECK_FAILS(fm_image_crop(&im, -1, 0, &crop), "top must be a row of the 20 x 30 image, got -1",
              "a negative top is refused");
  fm_image empty = {0, 3, 1, crop.data};
  CHECK_FAILS(fm_image_crop(&im, 0, 0, &empty), "an empty crop (0 x 3)",
              "a zero-size crop is refused");

  fm_image padded = make(4 + 1 + 2, 9 + 3 + 0, 1);
  CHECK(fm_image_pad(&crop, 1, 2, 3, 0, 0.5f, &padded) == FM_OK, "pad 1, 2, 3, 0");
  CHECK(at(&padded, 0, 0) == 0.5f && at(&padded, 6, 11) == 0.5f && at(&padded, 1, 3) == 0.8f &&
            at(&padded, 4, 11) == 0.8f && at(&padded, 5, 3) == 0.5f,
        "margins have the value, the image sits at (1, 3)");
  CHECK_FAILS(fm_image_pad(&crop, 0, -1, 0, 0, 0, &padded),
              "bottom must be from 0 to 16384 pixels, got -1",
              "a negative pad is refused, naming it");
  CHECK_FAILS(fm_image_pad(&crop, 0, 0, 0, 0, NAN, &padded), "value must be a finite number",
              "a NaN pad value is refused");
  CHECK_FAILS(fm_image_pad(&crop, 0, 0, 16384, 0, 0, &padded),
              "padded image: 4 x 16393 pixels, more than the limit",
              "a pad past the size limit is refused");
  free(padded.data);
  free(crop.data);
  free(blank.data);
  free(im.data);
}

static void test_resize(void) {
  fm_image src = make(37, 53, 3);
  for (int64_t i = 0; i < 37 * 53 * 3; i++) src.data[i] = 0.3f;
  int64_t sizes[][2] = {{28, 28}, {100, 7}, {37, 53}, {1, 1}, {200, 300}};
  for (int k = 0; k < 5; k++) {
    fm_image out = make(sizes[k][0], sizes[k][1], 3);
    int ok = fm_image_resize(&src, &out) == FM_OK;
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < out.height * out.width * 3; i++) {
      if (out.data[i] < lo) lo = out.data[i];
      if (out.data[i] > hi) hi = out.data[i];
    }
    CHECK(ok && lo > 0.3f - 1e-6f && hi < 0.3f + 1e-6f,
          "a constant image stays constant at %lldx%lld", (long long)out.height,
          (long long)out.width);
    free(out.data);
  }
  /* Area averaging keeps the mean, also for sizes that do not divide. */
  fm_image grad = make(45, 61, 1);
  for (int64_t y = 0; y < 45; y++)
    for (int64_t x = 0; x < 61; x++) grad.data[y * 61 + x] = (float)((x * 7 + y * 13) % 17) / 16.0f;
  fm_image small = make(28, 19, 1);
  CHECK(fm_image_resize(&grad, &small) == FM_OK && fabs(mean(&small) - mean(&grad)) < 1e-5,
        "area averaging 45x61 -> 28x19 keeps the mean (%.6f vs %.6f)", mean(&small), mean(&grad));
  fm_image same = make(45, 61, 1);
  int equal = fm_image_resize(&grad, &same) == FM_OK;
  for (int64_t i = 0; i < 45 * 61; i++) equal &= same.data[i] == grad.data[i];
  CHECK(equal, "resizing to the same size copies");
  /* 4x4 of 2x2 blocks down to 2x2: each output is its block's mean. */
  fm_image blocks = make(4, 4, 1), half = make(2, 2, 1);
  float bv[16] = {0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0};
  for (int i = 0; i < 16; i++) blocks.data[i] = bv[i];
  CHECK(fm_image_resize(&blocks, &half) == FM_OK && half.data[0] == 0.5f && half.data[1] == 1.0f &&
            half.data[2] == 0.0f && half.data[3] == 0.25f,
        "2x shrink averages each 2x2 block");
  /* Bilinear on growth: 1 x 2 (0, 1) to 1 x 4 gives 0, 0.25, 0.75, 1. */
  fm_image two = make(1, 2, 1), four = make(1, 4, 1);
  two.data[1] = 1;
  CHECK(fm_image_resize(&two, &four) == FM_OK && four.data[0] == 0.0f &&
            fabsf(four.data[1] - 0.25f) < 1e-6f && fabsf(four.data[2] - 0.75f) < 1e-6f &&
            four.data[3] == 1.0f,
        "bilinear growth with pixel centres aligned: 0, 0.25, 0.75, 1");
  fm_image huge = {1 << 20, 1 << 20, 1, small.data};
  CHECK_FAILS(fm_image_resize(&grad, &huge),
              "output: 1048576 x 1048576 pixels, more than the limit",
              "a huge output is refused before any work");
  fm_image zero = {0, 10, 1, small.data};
  CHECK_FAILS(fm_image_resize(&grad, &zero), "output: 0 x 10 pixels",
              "a zero-size output is refused");
  free(two.data);
  free(four.data);
  free(blocks.data);
  free(half.data);
  free(same.data);
  free(small.data);
  free(grad.data);
  free(src.data);
}

static void test_center(void) {
  /* A 10 x 10 image whose mass is all in its bottom-right 2 x 2: by mass that corner goes to the
   * middle of a 28 x 28 canvas, as far as the canvas allows. */
  fm_image im = make(10, 10, 1), canvas = make(28, 28, 1);
  rect(&im, 8, 8, 2, 2, 1.0f);
  int64_t top, left;
  CHECK(fm_image_center(&im, 1, &canvas, &top, &left) == FM_OK && top == 5 && left == 5,
        "by mass: the 2 x 2 mass at (8..9) of the image lands on 13..14, the canvas's middle "
        "(top %lld, left %lld)",
        (long long)top, (long long)left);
  CHECK(at(&canvas, 13, 13) == 1.0f && at(&canvas, 14, 14) == 1.0f && mean(&canvas) > 0,
        "the mass is at the centre pixels 13..14");
  CHECK(fm_image_center(&im, 0, &canvas, &top, &left) == FM_OK && top == 9 && left == 9,
        "by box: the 10 x 10 image at (9, 9)");
  fm_image tall = make(28, 6, 1);
  rect(&tall, 0, 0, 28, 1, 1.0f);
  CHECK(fm_image_center(&tall, 1, &canvas, &top, &left) == FM_OK && top == 0 && left == 14,
        "a full-height image: no vertical freedom; its mass column 0 goes to column 14, half a "
        "pixel right of the middle as ties round up (%lld)",
        (long long)left);
  fm_image big = make(29, 5, 1);
  CHECK_FAILS(fm_image_center(&big, 1, &canvas, NULL, NULL),
              "a 29 x 5 image does not fit on a 28 x 28 canvas", "an image larger than the canvas");
  free(big.data);
  free(tall.data);
  free(im.data);
  free(canvas.data);
}

/* A 300 x 200 RGB picture: a dark rectangle on a light grey background. Prepared, it must be light
 * on black, its longest side 28, centred, the background level 0. */
static void test_prepare(void) {
  fm_image pic = make(200, 300, 3);
  for (int64_t i = 0; i < 200 * 300 * 3; i++) pic.data[i] = 0.8f;
  for (int64_t y = 50; y < 150; y++)
    for (int64_t x = 40; x < 240; x++)
      for (int c = 0; c < 3; c++) pic.data[(y * 300 + x) * 3 + c] = 0.2f;
  fm_image out = make(28, 28, 1);
  fm_prepare_opts o = fm_prepare_defaults();
  fm_prepare_info info;
  CHECK(fm_image_prepare(&pic, &o, &out, &info) == FM_OK, "prepare a 300 x 200 RGB picture");
  CHECK(info.inverted && fabsf(info.background - 0.8f) < 1e-6f, "light background found, inverted");
  CHECK(
      info.box.top == 50 && info.box.left == 40 && info.box.height == 100 && info.box.width == 200,
      "the box is the rectangle");
  CHECK(info.scaled_height == 14 && info.scaled_width == 28 && info.top == 7 && info.left == 0,
        "200 x 100 becomes 28 x 14, placed at row 7");
  CHECK(at(&out, 0, 0) == 0.0f && at(&out, 6, 10) == 0.0f && at(&out, 21, 10) == 0.0f,
        "outside the object is black");
  CHECK(fabsf(at(&out, 7, 0) - 0.75f) < 1e-6f && fabsf(at(&out, 20, 27) - 0.75f) < 1e-6f,
        "the object, 0.2 on 0.8, inverted (0.8 on 0.2) and levelled: (0.8 - 0.2) / 0.8 = 0.75");
  o.margin = 4;
  CHECK(
      fm_image_prepare(&pic, &o, &out, &info) == FM_OK && info.scaled_width == 20 && info.left == 4,
      "margin 4: the longest side is 20");
  o = fm_prepare_defaults();
  o.invert = FM_INVERT_NO;
  CHECK(fm_image_prepare(&pic, &o, &out, &info) == FM_OK && !info.inverted &&
            fabsf(at(&out, 7, 0) - 0.2f) < 1e-6f && at(&out, 0, 0) == 0.0f,
        "invert no: the object keeps its 0.2, a light background is not levelled");
  o = fm_prepare_defaults();
  o.threshold = NAN;
  CHECK_FAILS(fm_image_prepare(&pic, &o, &out, &info),
              "threshold must be a number in [0, 1), got nan", "a NaN threshold is refused");
  o = fm_prepare_defaults();
  o.margin = 14;
  CHECK_FAILS(fm_image_prepare(&pic, &o, &out, &info), "margin must be from 0 to 13 pixels",
              "a margin that leaves nothing is refused");
  o = fm_prepare_defaults();
  o.alpha_background = 2;
  CHECK_FAILS(fm_image_prepare(&pic, &o, &out, &info),
              "background must be a number in [0, 1], got 2",
              "an alpha background out of range is refused");
  free(out.data);
  free(pic.data);
}

int main(void) {
  test_size();
  test_grey();
  test_background();
  test_invert();
  test_trim_crop_pad();
  test_resize();
  test_center();
  test_prepare();
  return check_done();
}
