/* fm_dataset: what is done with a loaded image set: class names, label checks, where the standard
 * files are, and views over uint8 storage: counts, mean and standard-deviation images, batches
 * scaled to [0,1] floats, and (stratified) splits. */
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

void fm_dataset_counts(const fm_dataset *d, int64_t counts[FM_CLASSES]) {
  for (int c = 0; c < FM_CLASSES; c++) counts[c] = 0;
  for (int64_t i = 0; i < d->n; i++) {
    uint8_t y = d->labels[fm_dataset_row(d, i)];
    if (y < FM_CLASSES) counts[y]++;
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
  if (class_id < -1 || class_id >= FM_CLASSES)
    return fm_fail("%s: class %d is outside 0-9 (or -1 for all classes)", fname, class_id);
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
    return fm_fail("%s: class %d (%s) has no images in this dataset", fname, class_id,
                   fm_class_names[class_id]);
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
 * classes are interleaved. */
static int split_stratified(const fm_dataset *d, double fraction, fm_rng *rng, int32_t *first,
                            int32_t *second, int64_t *n_first) {
  int64_t counts[FM_CLASSES], start[FM_CLASSES + 1];
  for (int64_t i = 0; i < d->n; i++) {
    int64_t r = fm_dataset_row(d, i);
    if (d->labels[r] >= FM_CLASSES)
      return fm_fail("split: label %u of row %lld (counting from 1) is outside 0-9",
                     (unsigned)d->labels[r], (long long)(i + 1));
  }
  fm_dataset_counts(d, counts);
  start[0] = 0;
  for (int c = 0; c < FM_CLASSES; c++) start[c + 1] = start[c] + counts[c];
  size_t n = (size_t)(d->n ? d->n : 1);
  int32_t *by_class = malloc(n * sizeof *by_class);
  uint8_t *take = calloc(n, 1);
  if (!by_class || !take) {
    free(by_class);
    free(take);
    return fm_fail("split: out of memory for %lld rows", (long long)d->n);
  }
  int64_t fill[FM_CLASSES];
  memcpy(fill, start, sizeof fill);
  for (int64_t i = 0; i < d->n; i++) by_class[fill[d->labels[fm_dataset_row(d, i)]]++] = (int32_t)i;
  for (int c = 0; c < FM_CLASSES; c++) {
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
