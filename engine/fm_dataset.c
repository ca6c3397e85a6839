/* fm_dataset: what is done with an image set: class names, label checks, where the standard
 * files are, views over uint8 storage (counts, mean and standard-deviation images, batches scaled
 * to [0,1] floats, (stratified) splits), and sets made from other data: float tensors turned into
 * checked bytes, and views joined end to end. */
#include "fm_dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fm_error.h"

const char *const fm_class_names[FM_CLASSES] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                "Bag",         "Ankle boot"};

int fm_dataset_check_size(int64_t n, int64_t rows, int64_t cols, const char *what) {
  if (n < 0 || n > FM_MAX_IMAGES)
    return fm_fail("%s: %lld images, an absurd count (0 to %lld)", what, (long long)n,
                   (long long)FM_MAX_IMAGES);
  if (rows < 1 || rows > FM_MAX_SIDE || cols < 1 || cols > FM_MAX_SIDE)
    return fm_fail("%s: images of %lldx%lld (each side 1 to %d)", what, (long long)rows,
                   (long long)cols, FM_MAX_SIDE);
  return FM_OK;
}

int fm_labels_check(const uint8_t *labels, int64_t n, const char *what) {
  for (int64_t i = 0; i < n; i++)
    if (labels[i] >= FM_CLASSES)
      return fm_fail("%s: label %u of item %lld (counting from 1) is outside 0-9", what,
                     (unsigned)labels[i], (long long)(i + 1));
  return FM_OK;
}

/* ---- standard file names ---- */

/* The two spellings in circulation: Zalando's and LeCun's MNIST ("train-images.idx3-ubyte"). */
static const char *const image_names[] = {"-images-idx3-ubyte", "-images.idx3-ubyte"};
static const char *const label_names[] = {"-labels-idx1-ubyte", "-labels.idx1-ubyte"};

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* Writes the first of dir/prefix<name>[.gz] that exists into out; raw files win over gzip. */
static int find_one(const char *dir, const char *prefix, const char *const names[2],
                    const char *kind, const char *split, char *out, size_t size) {
  const char *sep = dir[0] == '\0' || dir[strlen(dir) - 1] == '/' ? "" : "/";
  for (int i = 0; i < 2; i++)
    for (int gz = 0; gz < 2; gz++) {
      int len = snprintf(out, size, "%s%s%s%s%s", dir, sep, prefix, names[i], gz ? ".gz" : "");
      if (len < 0 || (size_t)len >= size)
        return fm_fail("%s: directory name too long (%d bytes with the file name, room for %zu)",
                       dir, len, size);
      if (is_file(out)) return FM_OK;
    }
  return fm_fail("no %s %s in %s (looked for %s%s and %s%s, each raw or .gz)", split, kind,
                 dir[0] ? dir : ".", prefix, names[0], prefix, names[1]);
}

int fm_find_split(const char *dir, const char *split, char *images, char *labels, size_t size) {
  const char *prefix;
  if (strcmp(split, "train") == 0)
    prefix = "train";
  else if (strcmp(split, "test") == 0)
    prefix = "t10k";
  else
    return fm_fail("unknown split '%s' (expected train or test)", split);
  if (find_one(dir, prefix, image_names, "images", split, images, size) != FM_OK) return FM_ERR;
  return find_one(dir, prefix, label_names, "labels", split, labels, size);
}

int fm_labels_path_for(const char *images, char *labels, size_t size) {
  const char *slash = strrchr(images, '/');
  const char *base = slash ? slash + 1 : images;
  for (int i = 0; i < 2; i++) {
    /* The last occurrence in the file name: a directory may be called anything. */
    const char *hit = NULL, *p = base;
    while ((p = strstr(p, image_names[i])) != NULL) hit = p++;
    if (!hit) continue;
    size_t head = (size_t)(hit - images), name = strlen(image_names[i]);
    int len = snprintf(labels, size, "%.*s%s%s", (int)head, images, label_names[i], hit + name);
    if (len < 0 || (size_t)len >= size)
      return fm_fail("%s: path too long for the labels file name", images);
    return FM_OK;
  }
  return fm_fail(
      "%s: cannot tell the labels file from this name (expected one like "
      "train-images-idx3-ubyte.gz); pass the labels path explicitly",
      images);
}

/* ---- views ---- */

void fm_dataset_counts(const fm_dataset *d, int classes, int64_t *counts) {
  for (int c = 0; c < classes; c++) counts[c] = 0;
  for (int64_t i = 0; i < d->n; i++) {
    uint8_t y = d->labels[fm_dataset_row(d, i)];
    if (y < classes) counts[y]++;
  }
}

/* Per-pixel sums are accumulated exactly in integers: uint32 within blocks small enough that even
 * squares cannot overflow (65536 * 255^2 < 2^32), which the compiler vectorizes, then uint64. */
#define STAT_BLOCK 65536

typedef struct pixel_sums {
  int64_t n;
  uint64_t *sum, *sq;
} pixel_sums;

static void add_block(int64_t p, const uint32_t *bsum, const uint32_t *bsq, pixel_sums *s) {
  for (int64_t k = 0; k < p; k++) s->sum[k] += bsum[k];
  if (bsq)
    for (int64_t k = 0; k < p; k++) s->sq[k] += bsq[k];
}

static int sum_pixels(const fm_dataset *d, int class_id, int squares, const char *fname,
                      pixel_sums *s) {
  if (class_id < -1 || class_id >= FM_MAX_CLASSES)
    return fm_fail("%s: class %d is outside 0-%d (or -1 for all classes)", fname, class_id,
                   FM_MAX_CLASSES - 1);
  int64_t p = fm_dataset_pixels(d);
  s->n = 0;
  s->sum = calloc((size_t)p, sizeof *s->sum);
  s->sq = squares ? calloc((size_t)p, sizeof *s->sq) : NULL;
  uint32_t *bsum = calloc((size_t)p, sizeof *bsum);
  uint32_t *bsq = squares ? calloc((size_t)p, sizeof *bsq) : NULL;
  if (!s->sum || !bsum || (squares && (!s->sq || !bsq))) {
    free(bsum), free(bsq), free(s->sum), free(s->sq);
    s->sum = s->sq = NULL;
    return fm_fail("%s: out of memory for %lld pixel sums", fname, (long long)p);
  }
  int64_t in_block = 0;
  for (int64_t i = 0; i < d->n; i++) {
    int64_t r = fm_dataset_row(d, i);
    if (class_id >= 0 && d->labels[r] != class_id) continue;
    const uint8_t *px = d->pixels + r * p;
    if (squares) {
#pragma omp simd
      for (int64_t k = 0; k < p; k++) {
        uint32_t v = px[k];
        bsum[k] += v;
        bsq[k] += v * v;
      }
    } else {
#pragma omp simd
      for (int64_t k = 0; k < p; k++) bsum[k] += px[k];
    }
    s->n++;
    if (++in_block == STAT_BLOCK) {
      add_block(p, bsum, bsq, s);
      memset(bsum, 0, (size_t)p * sizeof *bsum);
      if (bsq) memset(bsq, 0, (size_t)p * sizeof *bsq);
      in_block = 0;
    }
  }
  add_block(p, bsum, bsq, s);
  free(bsum);
  free(bsq);
  if (s->n == 0) {
    free(s->sum), free(s->sq);
    s->sum = s->sq = NULL;
    if (class_id < 0) return fm_fail("%s: the dataset is empty", fname);
    return fm_fail("%s: class %d has no images in this dataset", fname, class_id);
  }
  return FM_OK;
}

int fm_dataset_mean_image(const fm_dataset *d, int class_id, float *out) {
  pixel_sums s;
  if (sum_pixels(d, class_id, 0, "mean_image", &s) != FM_OK) return FM_ERR;
  int64_t p = fm_dataset_pixels(d);
  for (int64_t k = 0; k < p; k++) out[k] = (float)((double)s.sum[k] / (double)s.n / 255.0);
  free(s.sum);
  return FM_OK;
}

int fm_dataset_std_image(const fm_dataset *d, int class_id, float *out) {
  pixel_sums s;
  if (sum_pixels(d, class_id, 1, "std_image", &s) != FM_OK) return FM_ERR;
  int64_t p = fm_dataset_pixels(d);
  /* n^2 * variance = n * sum(x^2) - sum(x)^2, exact in 128 bits (both terms stay below 2^71),
   * so there is no cancellation when the variance is small. */
  __extension__ typedef unsigned __int128 u128;
  double n2 = (double)s.n * (double)s.n;
  for (int64_t k = 0; k < p; k++) {
    u128 a = (u128)s.n * s.sq[k], b = (u128)s.sum[k] * s.sum[k];
    double var = a > b ? (double)(a - b) / n2 : 0.0;
    out[k] = (float)(sqrt(var) / 255.0);
  }
  free(s.sum);
  free(s.sq);
  return FM_OK;
}

/* The exact value/255.0f of every pixel; `omp simd` makes GCC vectorize it at -O2. */
static void scale_pixels(const uint8_t *src, float *dst, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; k++) dst[k] = (float)src[k] / 255.0f;
}

void fm_dataset_fill(const fm_dataset *d, int64_t first, int64_t count, float *x, uint8_t *y) {
  int64_t p = fm_dataset_pixels(d);
  if (!d->index) {
    /* Contiguous storage rows: one long run. */
    scale_pixels(d->pixels + first * p, x, count * p);
    if (y) memcpy(y, d->labels + first, (size_t)count);
    return;
  }
  for (int64_t i = 0; i < count; i++) {
    int64_t r = d->index[first + i];
    scale_pixels(d->pixels + r * p, x + i * p, p);
    if (y) y[i] = d->labels[r];
  }
}

void fm_dataset_gather(const fm_dataset *d, const int32_t *order, int64_t count, float *x,
                       uint8_t *y) {
  int64_t p = fm_dataset_pixels(d);
  for (int64_t i = 0; i < count; i++) {
    int64_t r = fm_dataset_row(d, order[i]);
    scale_pixels(d->pixels + r * p, x + i * p, p);
    if (y) y[i] = d->labels[r];
  }
}

void fm_dataset_storage_rows(const fm_dataset *d, int32_t *out) {
  if (d->index)
    memcpy(out, d->index, (size_t)d->n * sizeof *out);
  else
    for (int64_t i = 0; i < d->n; i++) out[i] = (int32_t)i;
}

static int64_t round_share(double fraction, int64_t n) { return (int64_t)llround(fraction * n); }

static int split_plain(const fm_dataset *d, double fraction, fm_rng *rng, int32_t *first,
                       int32_t *second, int64_t *n_first) {
  int32_t *rows = malloc((size_t)(d->n ? d->n : 1) * sizeof *rows);
  if (!rows) return fm_fail("split: out of memory for %lld rows", (long long)d->n);
  fm_dataset_storage_rows(d, rows);
  if (rng) fm_rng_shuffle(rng, rows, d->n);
  int64_t k = round_share(fraction, d->n);
  memcpy(first, rows, (size_t)k * sizeof *rows);
  memcpy(second, rows + k, (size_t)(d->n - k) * sizeof *rows);
  free(rows);
  *n_first = k;
  return FM_OK;
}

/* Each class's view positions are grouped (a counting sort keeps view order within a class), the
 * first round(fraction * count) of each class (after a shuffle, with rng) are marked for the first
 * part, and both parts are collected in view order, then shuffled as wholes, with rng, so that
 * classes are interleaved. Every byte value is a class, so no label can fall outside. */
static int split_stratified(const fm_dataset *d, double fraction, fm_rng *rng, int32_t *first,
                            int32_t *second, int64_t *n_first) {
  int64_t counts[FM_MAX_CLASSES], start[FM_MAX_CLASSES + 1];
  fm_dataset_counts(d, FM_MAX_CLASSES, counts);
  start[0] = 0;
  for (int c = 0; c < FM_MAX_CLASSES; c++) start[c + 1] = start[c] + counts[c];
  size_t n = (size_t)(d->n ? d->n : 1);
  int32_t *by_class = malloc(n * sizeof *by_class);
  uint8_t *take = calloc(n, 1);
  if (!by_class || !take) {
    free(by_class);
    free(take);
    return fm_fail("split: out of memory for %lld rows", (long long)d->n);
  }
  int64_t fill[FM_MAX_CLASSES];
  memcpy(fill, start, sizeof fill);
  for (int64_t i = 0; i < d->n; i++) by_class[fill[d->labels[fm_dataset_row(d, i)]]++] = (int32_t)i;
  for (int c = 0; c < FM_MAX_CLASSES; c++) {
    if (rng) fm_rng_shuffle(rng, by_class + start[c], counts[c]);
    int64_t k = round_share(fraction, counts[c]);
    for (int64_t j = 0; j < k; j++) take[by_class[start[c] + j]] = 1;
  }
  int64_t a = 0, b = 0;
  for (int64_t i = 0; i < d->n; i++) {
    int32_t r = (int32_t)fm_dataset_row(d, i);
    if (take[i])
      first[a++] = r;
    else
      second[b++] = r;
  }
  free(by_class);
  free(take);
  if (rng) {
    fm_rng_shuffle(rng, first, a);
    fm_rng_shuffle(rng, second, b);
  }
  *n_first = a;
  return FM_OK;
}

int fm_dataset_split(const fm_dataset *d, double fraction, fm_rng *rng, int stratify,
                     int32_t *first, int32_t *second, int64_t *n_first) {
  if (!(fraction >= 0.0 && fraction <= 1.0))
    return fm_fail("split: fraction %g is outside 0-1", fraction);
  if (stratify) return split_stratified(d, fraction, rng, first, second, n_first);
  return split_plain(d, fraction, rng, first, second, n_first);
}

/* ---- datasets made from other data ---- */

/* "what[i][j][k]" for element k of t, counting from 1 in t's own shape, as a Lua user indexes it.
 */
static const char *element_name(const fm_tensor *t, int64_t k, const char *what, char *buf,
                                size_t size) {
  int64_t at[FM_MAX_DIMS];
  for (int d = t->ndim - 1; d >= 0; d--) {
    at[d] = t->shape[d] ? k % t->shape[d] : 0;
    k = t->shape[d] ? k / t->shape[d] : 0;
  }
  int len = snprintf(buf, size, "%s", what);
  for (int d = 0; d < t->ndim && len >= 0 && (size_t)len < size; d++)
    len += snprintf(buf + len, size - (size_t)len, "[%lld]", (long long)(at[d] + 1));
  return buf;
}

/* The first element of t above 1 (its index, or -1): it decides that a detected scale is bytes. */
static int64_t first_above_one(const fm_tensor *t) {
  for (int64_t k = 0; k < t->numel; k++)
    if (t->data[k] > 1.0f) return k;
  return -1;
}

/* Why value v cannot be a pixel of the scale taken (NULL: it can). */
static const char *pixel_problem(float v, fm_pixel_scale scale) {
  if (isnan(v)) return "not a number";
  if (isinf(v)) return "infinite";
  if (v < 0.0f) return "below 0";
  if (scale == FM_PIXELS_UNIT) return v > 1.0f ? "above 1" : NULL;
  if (v > 255.0f) return "above 255";
  return v != floorf(v) ? "a fraction" : NULL;
}

int fm_pixels_from_tensor(const fm_tensor *t, fm_pixel_scale scale, const char *what, uint8_t *out,
                          fm_pixel_scale *used) {
  if (scale != FM_PIXELS_DETECT && scale != FM_PIXELS_UNIT && scale != FM_PIXELS_BYTE)
    return fm_fail("%s: pixel scale %d (expected 1 or 255)", what, (int)scale);
  const char *kinds = scale == FM_PIXELS_UNIT   ? "numbers in [0, 1]"
                      : scale == FM_PIXELS_BYTE ? "integers 0-255"
                                                : "numbers in [0, 1] or integers 0-255";
  int64_t decider = -1;
  if (scale == FM_PIXELS_DETECT) {
    decider = first_above_one(t);
    scale = decider >= 0 ? FM_PIXELS_BYTE : FM_PIXELS_UNIT;
  }
  for (int64_t k = 0; k < t->numel; k++) {
    float v = t->data[k];
    const char *why = pixel_problem(v, scale);
    if (!why) {
      out[k] = scale == FM_PIXELS_UNIT ? (uint8_t)(v * 255.0f + 0.5f) : (uint8_t)v;
      continue;
    }
    char at[160], by[160];
    element_name(t, k, what, at, sizeof at);
    if (isnan(v)) v = NAN; /* printed "nan", whatever its sign bit */
    if (decider >= 0 && strcmp(why, "a fraction") == 0)
      return fm_fail(
          "%s is %.9g: a fraction, but the pixels are read as integers 0-255 because "
          "%s is %.9g (above 1)",
          at, (double)v, element_name(t, decider, what, by, sizeof by), (double)t->data[decider]);
    return fm_fail("%s is %.9g: %s (pixels are %s)", at, (double)v, why, kinds);
  }
  if (used) *used = scale;
  return FM_OK;
}

int fm_labels_from_floats(const float *y, int64_t n, int classes, const char *what, uint8_t *out,
                          int64_t *bad) {
  if (classes < 1 || classes > FM_MAX_CLASSES)
    return fm_fail("%s: %d classes (1 to %d)", what, classes, FM_MAX_CLASSES);
  for (int64_t i = 0; i < n; i++) {
    float v = y[i];
    if (v >= 0.0f && v <= (float)(classes - 1) && v == floorf(v)) {
      out[i] = (uint8_t)v;
      continue;
    }
    if (bad) *bad = i;
    if (isnan(v)) v = NAN; /* printed "nan", whatever its sign bit */
    return fm_fail("%s[%lld] is %.9g, not a class id (an integer 0 to %d: %d classes)", what,
                   (long long)(i + 1), (double)v, classes - 1, classes);
  }
  return FM_OK;
}

int fm_dataset_concat_size(const fm_dataset *const *parts, int64_t count, int64_t *total) {
  if (count < 1) return fm_fail("concat: no datasets to join");
  int64_t sum = 0;
  for (int64_t i = 0; i < count; i++) {
    const fm_dataset *p = parts[i];
    if (p->rows != parts[0]->rows || p->cols != parts[0]->cols)
      return fm_fail("concat: dataset %lld has images of %lldx%lld, dataset 1 of %lldx%lld",
                     (long long)(i + 1), (long long)p->rows, (long long)p->cols,
                     (long long)parts[0]->rows, (long long)parts[0]->cols);
    /* Each step stays below 2 * FM_MAX_IMAGES, so the sum cannot overflow. */
    if (p->n < 0 || p->n > FM_MAX_IMAGES - sum)
      return fm_fail(
          "concat: more than %lld images in all (%lld before dataset %lld, which has "
          "%lld)",
          (long long)FM_MAX_IMAGES, (long long)sum, (long long)(i + 1), (long long)p->n);
    sum += p->n;
  }
  *total = sum;
  return FM_OK;
}

void fm_dataset_concat(const fm_dataset *const *parts, int64_t count, uint8_t *pixels,
                       uint8_t *labels) {
  int64_t at = 0;
  for (int64_t i = 0; i < count; i++) {
    const fm_dataset *p = parts[i];
    int64_t size = fm_dataset_pixels(p);
    for (int64_t j = 0; j < p->n; j++, at++) {
      int64_t r = fm_dataset_row(p, j);
      memcpy(pixels + at * size, p->pixels + r * size, (size_t)size);
      labels[at] = p->labels[r];
    }
  }
}
