/* fm_image: the pieces of Fashion-MNIST's image preparation and the pipeline made of them.
 *
 * Sizes are checked with fm_image_size before any index arithmetic, so that every product below
 * (height * width * channels, at most 2^28) fits easily in int64_t; offsets and pads are checked
 * against FM_IMAGE_MAX_SIDE before they are added. Sums are accumulated in double. */
#include "fm_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm_error.h"

int fm_image_size(const char *what, int64_t height, int64_t width, int channels, int64_t *count) {
  if (channels < 1 || channels > 4)
    return fm_fail("%s: %d channels (1 grey, 2 grey+alpha, 3 RGB or 4 RGBA expected)", what,
                   channels);
  if (height < 1 || width < 1)
    return fm_fail("%s: %lld x %lld pixels (an image needs at least 1 x 1)", what,
                   (long long)height, (long long)width);
  if (height > FM_IMAGE_MAX_SIDE || width > FM_IMAGE_MAX_SIDE)
    return fm_fail("%s: %lld x %lld pixels, more than the limit of %d per side", what,
                   (long long)height, (long long)width, FM_IMAGE_MAX_SIDE);
  if (height * width > FM_IMAGE_MAX_PIXELS)
    return fm_fail("%s: %lld x %lld pixels, more than the limit of %lld pixels", what,
                   (long long)height, (long long)width, (long long)FM_IMAGE_MAX_PIXELS);
  if (count) *count = height * width * channels;
  return FM_OK;
}

/* Checks an image argument: its size, and that it has memory. */
static int check_image(const char *what, const fm_image *im) {
  if (!im) return fm_fail("%s: no image", what);
  if (fm_image_size(what, im->height, im->width, im->channels, NULL) != FM_OK) return FM_ERR;
  if (!im->data) return fm_fail("%s: no pixel memory", what);
  return FM_OK;
}

/* Checks that out has the given size and one of in's channel counts (channels 0: any). */
static int check_output(const fm_image *out, int64_t height, int64_t width, int channels) {
  if (check_image("output", out) != FM_OK) return FM_ERR;
  if (out->height != height || out->width != width || (channels && out->channels != channels))
    return fm_fail("output is %lld x %lld x %d, expected %lld x %lld x %d", (long long)out->height,
                   (long long)out->width, out->channels, (long long)height, (long long)width,
                   channels ? channels : out->channels);
  return FM_OK;
}

static int check_unit(const char *name, float v) {
  if (!(v >= 0.0f && v <= 1.0f)) return fm_fail("%s must be a number in [0, 1], got %g", name, v);
  return FM_OK;
}

/* ---- grey ---- */

/* Luminance of one pixel (Rec. 601 weights, as JPEG and most photo software), before alpha. */
static double pixel_luma(const float *p, int channels) {
  if (channels >= 3) return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  return p[0];
}

static int has_alpha(int channels) { return channels == 2 || channels == 4; }

int fm_image_grey(const fm_image *in, float background, fm_image *out) {
  if (check_image("image", in) != FM_OK || check_output(out, in->height, in->width, 1) != FM_OK)
    return FM_ERR;
  if (check_unit("background", background) != FM_OK) return FM_ERR;
  int64_t n = in->height * in->width;
  int c = in->channels;
  for (int64_t i = 0; i < n; i++) {
    const float *p = in->data + i * c;
    double v = pixel_luma(p, c);
    if (has_alpha(c)) {
      double a = p[c - 1];
      v = a * v + (1.0 - a) * background;
    }
    out->data[i] = (float)v;
  }
  return FM_OK;
}

float fm_image_alpha_background(const fm_image *in) {
  if (!in || !in->data || !has_alpha(in->channels)) return 1.0f;
  if (fm_image_size("image", in->height, in->width, in->channels, NULL) != FM_OK) return 1.0f;
  double mass = 0, luma = 0;
  int c = in->channels;
  for (int64_t i = 0; i < in->height * in->width; i++) {
    const float *p = in->data + i * c;
    double a = p[c - 1];
    if (!(a > 0)) continue; /* also NaN */
    mass += a;
    luma += a * pixel_luma(p, c);
  }
  if (!(mass > 0) || !isfinite(luma)) return 1.0f;
  return luma / mass < 0.5 ? 1.0f : 0.0f;
}

/* ---- background level ---- */

/* Ascending, NaN first: a total order, so qsort is well defined whatever the pixels hold. */
static int compare_floats(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  if (isnan(x) || isnan(y)) return isnan(y) - isnan(x);
  return (x > y) - (x < y);
}

int fm_image_background(const fm_image *grey, float *level) {
  if (check_image("image", grey) != FM_OK) return FM_ERR;
  if (grey->channels != 1)
    return fm_fail("the background level needs a grey image (1 channel), got %d channels",
                   grey->channels);
  int64_t h = grey->height, w = grey->width;
  /* The first and last rows whole, and the first and last column between them. */
  int64_t n = h == 1 ? w : w == 1 ? h : 2 * w + 2 * (h - 2);
  float *border = malloc(sizeof(float) * (size_t)n);
  if (!border) return fm_fail("out of memory for %lld border pixels", (long long)n);
  int64_t k = 0;
  for (int64_t x = 0; x < w; x++) border[k++] = grey->data[x];
  if (h > 1)
    for (int64_t x = 0; x < w; x++) border[k++] = grey->data[(h - 1) * w + x];
  for (int64_t y = 1; y + 1 < h; y++) {
    border[k++] = grey->data[y * w];
    if (w > 1) border[k++] = grey->data[y * w + w - 1];
  }
  qsort(border, (size_t)k, sizeof(float), compare_floats);
  float median = border[k / 2];
  free(border);
  if (isnan(median)) return fm_fail("the border pixels are mostly NaN, not levels");
  *level = median;
  return FM_OK;
}

/* ---- invert ---- */

int fm_image_invert(const fm_image *in, fm_image *out) {
  if (check_image("image", in) != FM_OK ||
      check_output(out, in->height, in->width, in->channels) != FM_OK)
    return FM_ERR;
  int c = in->channels, colours = has_alpha(c) ? c - 1 : c;
  for (int64_t i = 0; i < in->height * in->width; i++) {
    const float *p = in->data + i * c;
    float *q = out->data + i * c;
    for (int k = 0; k < colours; k++) q[k] = 1.0f - p[k];
    if (colours < c) q[c - 1] = p[c - 1];
  }
  return FM_OK;
}

/* ---- trim ---- */

int fm_image_trim_box(const fm_image *grey, float background, float threshold, fm_box *box) {
  if (check_image("image", grey) != FM_OK) return FM_ERR;
  if (grey->channels != 1)
    return fm_fail("trimming needs a grey image (1 channel), got %d channels", grey->channels);
  if (check_unit("background", background) != FM_OK) return FM_ERR;
  if (!(threshold >= 0.0f && threshold < 1.0f))
    return fm_fail("threshold must be a number in [0, 1), got %g", threshold);
  int64_t h = grey->height, w = grey->width;
  int64_t top = h, bottom = -1, left = w, right = -1;
  for (int64_t y = 0; y < h; y++) {
    const float *row = grey->data + y * w;
    for (int64_t x = 0; x < w; x++) {
      if (!(fabsf(row[x] - background) > threshold)) continue;
      if (y < top) top = y;
      bottom = y;
      if (x < left) left = x;
      if (x > right) right = x;
    }
  }
  if (bottom < 0)
    return fm_fail("no object: every pixel is within %g of the background level %g", threshold,
                   background);
  *box = (fm_box){top, left, bottom - top + 1, right - left + 1};
  return FM_OK;
}

/* ---- crop and pad ---- */

int fm_image_crop(const fm_image *in, int64_t top, int64_t left, fm_image *out) {
  if (check_image("image", in) != FM_OK) return FM_ERR;
  if (!out) return fm_fail("output: no image");
  if (out->height < 1 || out->width < 1)
    return fm_fail("an empty crop (%lld x %lld): height and width must be at least 1",
                   (long long)out->height, (long long)out->width);
  if (top < 0 || top >= in->height)
    return fm_fail("top must be a row of the %lld x %lld image, got %lld (0-based)",
                   (long long)in->height, (long long)in->width, (long long)top);
  if (left < 0 || left >= in->width)
    return fm_fail("left must be a column of the %lld x %lld image, got %lld (0-based)",
                   (long long)in->height, (long long)in->width, (long long)left);
  if (out->height > in->height - top || out->width > in->width - left)
    return fm_fail(
        "a %lld x %lld crop at row %lld, column %lld (0-based) goes past the edge of "
        "the %lld x %lld image",
        (long long)out->height, (long long)out->width, (long long)top, (long long)left,
        (long long)in->height, (long long)in->width);
  if (check_output(out, out->height, out->width, in->channels) != FM_OK) return FM_ERR;
  int c = in->channels;
  for (int64_t y = 0; y < out->height; y++)
    memcpy(out->data + y * out->width * c, in->data + ((top + y) * in->width + left) * c,
           sizeof(float) * (size_t)(out->width * c));
  return FM_OK;
}

static int check_pad(const char *name, int64_t v) {
  if (v < 0 || v > FM_IMAGE_MAX_SIDE)
    return fm_fail("%s must be from 0 to %d pixels, got %lld", name, FM_IMAGE_MAX_SIDE,
                   (long long)v);
  return FM_OK;
}

int fm_image_pad(const fm_image *in, int64_t top, int64_t bottom, int64_t left, int64_t right,
                 float value, fm_image *out) {
  if (check_image("image", in) != FM_OK) return FM_ERR;
  if (check_pad("top", top) != FM_OK || check_pad("bottom", bottom) != FM_OK ||
      check_pad("left", left) != FM_OK || check_pad("right", right) != FM_OK)
    return FM_ERR;
  if (!isfinite(value)) return fm_fail("value must be a finite number, got %g", value);
  int64_t h = in->height + top + bottom, w = in->width + left + right;
  if (fm_image_size("padded image", h, w, in->channels, NULL) != FM_OK) return FM_ERR;
  if (check_output(out, h, w, in->channels) != FM_OK) return FM_ERR;
  int c = in->channels;
  for (int64_t i = 0; i < h * w * c; i++) out->data[i] = value;
  for (int64_t y = 0; y < in->height; y++)
    memcpy(out->data + ((top + y) * w + left) * c, in->data + y * in->width * c,
           sizeof(float) * (size_t)(in->width * c));
  return FM_OK;
}

/* ---- resize ---- */

/* The source pixels and weights behind each output pixel along one axis: output o reads taps
 * first[o] + k for k < offset[o + 1] - offset[o], weighted by weight[offset[o] + k]. */
typedef struct axis_taps {
  int64_t *first, *offset;
  float *weight;
} axis_taps;

static void free_taps(axis_taps *t) {
  free(t->first);
  free(t->offset);
  free(t->weight);
}

/* Area averaging (n_out <= n_in): output o covers source [o * n_in / n_out, (o + 1) * n_in /
 * n_out); each source pixel counts by the length of its overlap. Measured in units of 1 / n_out
 * source pixels, every boundary is an integer, so the overlaps are exact and each weight is
 * overlap / n_in. Bilinear (n_out > n_in): the centre of output o, (o + 0.5) * n_in / n_out - 0.5
 * in source coordinates, clamped to the image, between its two nearest source pixels. */
static int make_taps(int64_t n_in, int64_t n_out, axis_taps *t) {
  int64_t max_taps = n_in + 2 * n_out;
  t->first = malloc(sizeof(int64_t) * (size_t)n_out);
  t->offset = malloc(sizeof(int64_t) * (size_t)(n_out + 1));
  t->weight = malloc(sizeof(float) * (size_t)max_taps);
  if (!t->first || !t->offset || !t->weight) {
    free_taps(t);
    return fm_fail("out of memory for resampling tables of %lld entries", (long long)max_taps);
  }
  int64_t k = 0;
  for (int64_t o = 0; o < n_out; o++) {
    t->offset[o] = k;
    if (n_out <= n_in) {
      int64_t lo = o * n_in, hi = (o + 1) * n_in; /* in units of 1 / n_out */
      int64_t first = lo / n_out, last = (hi - 1) / n_out;
      t->first[o] = first;
      for (int64_t i = first; i <= last; i++) {
        int64_t a = lo > i * n_out ? lo : i * n_out;
        int64_t b = hi < (i + 1) * n_out ? hi : (i + 1) * n_out;
        t->weight[k++] = (float)((double)(b - a) / (double)n_in);
      }
    } else {
      double x = ((double)o + 0.5) * (double)n_in / (double)n_out - 0.5;
      if (x < 0) x = 0;
      if (x > (double)(n_in - 1)) x = (double)(n_in - 1);
      int64_t i0 = (int64_t)floor(x);
      double f = x - (double)i0;
      t->first[o] = i0;
      t->weight[k++] = (float)(1.0 - f);
      if (i0 + 1 < n_in) t->weight[k++] = (float)f;
    }
  }
  t->offset[n_out] = k;
  return FM_OK;
}

int fm_image_resize(const fm_image *in, fm_image *out) {
  if (check_image("image", in) != FM_OK) return FM_ERR;
  if (!out) return fm_fail("output: no image");
  if (fm_image_size("output", out->height, out->width, in->channels, NULL) != FM_OK ||
      check_output(out, out->height, out->width, in->channels) != FM_OK)
    return FM_ERR;
  axis_taps ty, tx;
  if (make_taps(in->height, out->height, &ty) != FM_OK) return FM_ERR;
  if (make_taps(in->width, out->width, &tx) != FM_OK) {
    free_taps(&ty);
    return FM_ERR;
  }
  /* Directly in two dimensions: no intermediate image, and the cost is about (in_h + 2 out_h)
   * (in_w + 2 out_w) multiply-adds per channel, as for two separate passes. */
  int c = in->channels;
  for (int64_t oy = 0; oy < out->height; oy++) {
    for (int64_t ox = 0; ox < out->width; ox++) {
      double acc[4] = {0, 0, 0, 0};
      for (int64_t ky = ty.offset[oy]; ky < ty.offset[oy + 1]; ky++) {
        int64_t sy = ty.first[oy] + (ky - ty.offset[oy]);
        double wy = ty.weight[ky];
        for (int64_t kx = tx.offset[ox]; kx < tx.offset[ox + 1]; kx++) {
          int64_t sx = tx.first[ox] + (kx - tx.offset[ox]);
          double wgt = wy * tx.weight[kx];
          const float *p = in->data + (sy * in->width + sx) * c;
          for (int ch = 0; ch < c; ch++) acc[ch] += wgt * p[ch];
        }
      }
      float *q = out->data + (oy * out->width + ox) * c;
      for (int ch = 0; ch < c; ch++) q[ch] = (float)acc[ch];
    }
  }
  free_taps(&ty);
  free_taps(&tx);
  return FM_OK;
}

/* ---- center ---- */

/* Where an image of length n goes on a canvas of length size so that its point at `centre`
 * (in pixels from its start) lands in the middle, kept inside the canvas. */
static int64_t place(double centre, int64_t n, int64_t size) {
  double start = floor((double)size / 2.0 - centre + 0.5);
  if (start > (double)(size - n)) start = (double)(size - n);
  if (start < 0) start = 0;
  return (int64_t)start;
}

int fm_image_center(const fm_image *in, int by_mass, fm_image *out, int64_t *top, int64_t *left) {
  if (check_image("image", in) != FM_OK || check_image("canvas", out) != FM_OK) return FM_ERR;
  if (in->channels != 1 || out->channels != 1)
    return fm_fail("centring needs grey images (1 channel), got %d and %d channels", in->channels,
                   out->channels);
  if (in->height > out->height || in->width > out->width)
    return fm_fail("a %lld x %lld image does not fit on a %lld x %lld canvas (resize it first)",
                   (long long)in->height, (long long)in->width, (long long)out->height,
                   (long long)out->width);
  double cy = in->height / 2.0, cx = in->width / 2.0;
  if (by_mass) {
    double mass = 0, my = 0, mx = 0;
    for (int64_t y = 0; y < in->height; y++)
      for (int64_t x = 0; x < in->width; x++) {
        double v = in->data[y * in->width + x];
        if (!(v > 0)) continue; /* a dark background and NaN weigh nothing */
        mass += v;
        my += v * ((double)y + 0.5);
        mx += v * ((double)x + 0.5);
      }
    if (mass > 0 && isfinite(mass) && isfinite(my) && isfinite(mx)) {
      cy = my / mass;
      cx = mx / mass;
    }
  }
  int64_t t = place(cy, in->height, out->height), l = place(cx, in->width, out->width);
  memset(out->data, 0, sizeof(float) * (size_t)(out->height * out->width));
  for (int64_t y = 0; y < in->height; y++)
    memcpy(out->data + (t + y) * out->width + l, in->data + y * in->width,
           sizeof(float) * (size_t)in->width);
  if (top) *top = t;
  if (left) *left = l;
  return FM_OK;
}

/* ---- the pipeline ---- */

fm_prepare_opts fm_prepare_defaults(void) {
  return (fm_prepare_opts){.size = 28,
                           .margin = 0,
                           .alpha_background = NAN,
                           .invert = FM_INVERT_AUTO,
                           .threshold = 0.1f,
                           .by_mass = 0};
}

static int check_prepare_opts(const fm_prepare_opts *o) {
  if (o->size < 1 || o->size > 1024)
    return fm_fail("size must be from 1 to 1024 pixels, got %lld", (long long)o->size);
  if (o->margin < 0 || 2 * o->margin >= o->size)
    return fm_fail("margin must be from 0 to %lld pixels for a size of %lld, got %lld",
                   (long long)((o->size - 1) / 2), (long long)o->size, (long long)o->margin);
  if (!isnan(o->alpha_background) && check_unit("background", o->alpha_background) != FM_OK)
    return FM_ERR;
  if (o->invert != FM_INVERT_AUTO && o->invert != FM_INVERT_YES && o->invert != FM_INVERT_NO)
    return fm_fail("invert must be auto, yes or no");
  if (!(o->threshold >= 0.0f && o->threshold < 1.0f))
    return fm_fail("threshold must be a number in [0, 1), got %g", o->threshold);
  return FM_OK;
}

/* The size of a box scaled so that its longer side is `longest`, keeping the aspect ratio. */
static void fit_longest(int64_t h, int64_t w, int64_t longest, int64_t *sh, int64_t *sw) {
  if (h >= w) {
    *sh = longest;
    *sw = (int64_t)llround((double)w * (double)longest / (double)h);
  } else {
    *sw = longest;
    *sh = (int64_t)llround((double)h * (double)longest / (double)w);
  }
  if (*sh < 1) *sh = 1;
  if (*sw < 1) *sw = 1;
}

/* The steps after the grey picture exists: grey is modified (inverted) in place. */
static int prepare_grey(fm_image *grey, const fm_prepare_opts *o, fm_image *out,
                        fm_prepare_info *info) {
  if (fm_image_background(grey, &info->background) != FM_OK) return FM_ERR;
  float level = info->background;
  info->inverted = o->invert == FM_INVERT_YES || (o->invert == FM_INVERT_AUTO && level > 0.5f);
  if (info->inverted) {
    fm_image_invert(grey, grey);
    level = 1.0f - level;
  }
  float clamped = level < 0 ? 0 : level > 1 ? 1 : level;
  if (fm_image_trim_box(grey, clamped, o->threshold, &info->box) != FM_OK) return FM_ERR;
  fm_box b = info->box;
  fit_longest(b.height, b.width, o->size - 2 * o->margin, &info->scaled_height,
              &info->scaled_width);

  fm_image crop = {b.height, b.width, 1, malloc(sizeof(float) * (size_t)(b.height * b.width))};
  fm_image scaled = {info->scaled_height, info->scaled_width, 1,
                     malloc(sizeof(float) * (size_t)(info->scaled_height * info->scaled_width))};
  int rc = FM_ERR;
  if (!crop.data || !scaled.data) {
    fm_fail("out of memory for a %lld x %lld crop", (long long)b.height, (long long)b.width);
  } else if (fm_image_crop(grey, b.top, b.left, &crop) == FM_OK &&
             fm_image_resize(&crop, &scaled) == FM_OK) {
    /* Levels: a dark background becomes black, as the canvas around it. */
    int64_t n = scaled.height * scaled.width;
    for (int64_t i = 0; i < n; i++) {
      float v = scaled.data[i];
      if (clamped < 0.5f) v = (v - clamped) / (1.0f - clamped);
      scaled.data[i] = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* NaN too becomes 0 */
    }
    rc = fm_image_center(&scaled, o->by_mass, out, &info->top, &info->left);
  }
  free(crop.data);
  free(scaled.data);
  return rc;
}

int fm_image_prepare(const fm_image *in, const fm_prepare_opts *opts, fm_image *out,
                     fm_prepare_info *info) {
  fm_prepare_info scratch;
  if (!info) info = &scratch;
  if (check_image("image", in) != FM_OK || check_prepare_opts(opts) != FM_OK ||
      check_output(out, opts->size, opts->size, 1) != FM_OK)
    return FM_ERR;
  info->alpha_background = NAN;
  if (has_alpha(in->channels))
    info->alpha_background =
        isnan(opts->alpha_background) ? fm_image_alpha_background(in) : opts->alpha_background;
  int64_t n = in->height * in->width;
  fm_image grey = {in->height, in->width, 1, malloc(sizeof(float) * (size_t)n)};
  if (!grey.data)
    return fm_fail("out of memory for a %lld x %lld grey image", (long long)in->height,
                   (long long)in->width);
  int rc = fm_image_grey(in, isnan(info->alpha_background) ? 0.0f : info->alpha_background, &grey);
  if (rc == FM_OK) rc = prepare_grey(&grey, opts, out, info);
  free(grey.data);
  return rc;
}
