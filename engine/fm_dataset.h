/* fm_dataset: labelled image sets kept as uint8 pixels, and the files they come from.
 *
 * Loading is two-phase so that the caller owns the memory: a *_probe call reads and checks a file's
 * header (or counts a CSV's rows) and says how many bytes the data needs; the caller allocates; a
 * *_read call fills the caller's buffers and checks everything else. Every failure names the file
 * and the problem, and nothing is left half-read: a failed read means the buffers are garbage and
 * must be dropped.
 *
 * A dataset is a view: pixels and labels of a storage, plus an optional index array that selects and
 * orders rows (subsets, shuffles and splits share one storage). */
#ifndef FM_DATASET_H
#define FM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "fm_rng.h"

#define FM_CLASSES 10
/* Refused as absurd: more images than this, or images wider or taller than FM_MAX_SIDE. */
#define FM_MAX_IMAGES ((int64_t)1 << 27)
#define FM_MAX_SIDE 4096

extern const char *const fm_class_names[FM_CLASSES];

/* ---- IDX files (raw, or gzip-compressed; detected from the content, not the name) ---- */
typedef struct fm_idx_info {
  int ndim;          /* 1 for labels, 3 for images */
  int64_t count;     /* first dimension */
  int64_t rows, cols;/* 1 for labels */
  int64_t bytes;     /* count * rows * cols */
} fm_idx_info;

/* Reads and checks the header: magic 0x0000 08 nd (unsigned bytes), 1 or 3 dimensions, none zero,
 * none absurd. */
int fm_idx_probe(const char *path, fm_idx_info *info);
/* Reads the whole body into dst (info->bytes bytes). Fails if the file is shorter (raw or gzip
 * truncated), longer, or its header no longer matches info. */
int fm_idx_read(const char *path, const fm_idx_info *info, uint8_t *dst);

/* ---- CSV files in the Kaggle layout: label,pixel1,...,pixel784, optional header ---- */
typedef struct fm_csv_info {
  int64_t count;     /* data rows */
  int has_header;
} fm_csv_info;

/* Counts the data rows and detects a header line (a first non-blank line whose first field does not
 * start like a number; it must have 785 columns too). A gzip-compressed CSV is read as well. */
int fm_csv_probe(const char *path, fm_csv_info *info);
/* Parses every row into pixels (count * 784 bytes) and labels (count bytes). LF or CRLF line ends,
 * a missing final newline and blank trailing lines are fine. Fails, naming the file and line, on a
 * wrong number of columns, a non-integer value, a pixel outside 0-255 or a label outside 0-9. */
int fm_csv_read(const char *path, const fm_csv_info *info, uint8_t *pixels, uint8_t *labels);

/* Fails naming `what` and the first position (counting from 1) of a label outside 0..9. */
int fm_labels_check(const uint8_t *labels, int64_t n, const char *what);

/* Looks for "<prefix>-images-idx3-ubyte[.gz]" and the labels beside it in dir ("train" has prefix
 * train, "test" has t10k; the spelling "-images.idx3-ubyte" is accepted too; a raw file is taken
 * before a .gz one). Writes the paths found; returns FM_ERR when either is missing. */
int fm_find_split(const char *dir, const char *split, char *images, char *labels, size_t size);
/* The labels file that goes with an images file by the standard naming: "...-images-idx3-ubyte..."
 * -> "...-labels-idx1-ubyte..." (same directory and suffix; "-images.idx3-ubyte" likewise). FM_ERR,
 * saying to pass the labels path explicitly, if the name does not follow it. Does not look at the
 * disk. */
int fm_labels_path_for(const char *images, char *labels, size_t size);

/* ---- views ---- */
typedef struct fm_dataset {
  int64_t n;               /* rows in this view */
  int64_t rows, cols;      /* image size, 28 x 28 for Fashion-MNIST */
  const uint8_t *pixels;   /* storage: row r's image at pixels + r * rows * cols */
  const uint8_t *labels;   /* storage: row r's label at labels[r] */
  const int32_t *index;    /* NULL: view row i is storage row i; else storage row index[i] */
} fm_dataset;

static inline int64_t fm_dataset_row(const fm_dataset *d, int64_t i) {
  return d->index ? d->index[i] : i;
}
static inline int64_t fm_dataset_pixels(const fm_dataset *d) { return d->rows * d->cols; }

/* Images per class. */
void fm_dataset_counts(const fm_dataset *d, int64_t counts[FM_CLASSES]);
/* Mean image (rows*cols floats in [0,1]) of the whole view, or of one class (class_id 0..9; -1 for
 * all). Fails if that class has no image. */
int fm_dataset_mean_image(const fm_dataset *d, int class_id, float *out);
/* Per-pixel standard deviation in [0,1] units (population). */
int fm_dataset_std_image(const fm_dataset *d, int class_id, float *out);
/* Scales images [first, first+count) of the view (the caller checks the range) to floats in [0,1]
 * (x: count*rows*cols, each value/255.0f) and their labels (y: count, may be NULL). */
void fm_dataset_fill(const fm_dataset *d, int64_t first, int64_t count, float *x, uint8_t *y);
/* The same for arbitrary view rows order[0..count), each in [0, n) (the caller checks). */
void fm_dataset_gather(const fm_dataset *d, const int32_t *order, int64_t count, float *x,
                       uint8_t *y);
/* The storage rows of the view, in view order (n int32). */
void fm_dataset_storage_rows(const fm_dataset *d, int32_t *out);
/* Splits the view into a first part of round(fraction * n) rows and the rest, as storage rows.
 * Shuffled with rng (not shuffled when rng is NULL: view order kept). Stratified: each class is
 * split in the same proportion (the first part holds round(fraction * count) of every class), and
 * each part keeps a shuffled order. first and second must each have room for n entries (a
 * stratified first part can differ from round(fraction * n)); *n_first tells the split. Fails on
 * a fraction outside [0, 1] and, when stratified, on a label outside 0..9. */
int fm_dataset_split(const fm_dataset *d, double fraction, fm_rng *rng, int stratify,
                     int32_t *first, int32_t *second, int64_t *n_first);

#endif
