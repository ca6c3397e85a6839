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
#include "fm_tensor.h"

/* Fashion-MNIST's classes; a dataset made from tensors may have up to FM_MAX_CLASSES (a label is
 * a byte). */
#define FM_CLASSES 10
#define FM_MAX_CLASSES 256
/* Refused as absurd: more images than this, or images wider or taller than FM_MAX_SIDE. The
 * largest dataset, FM_MAX_IMAGES * FM_MAX_SIDE^2 bytes (2^51), still fits in int64, and every
 * row of a view fits in int32. */
#define FM_MAX_IMAGES ((int64_t)1 << 27)
#define FM_MAX_SIDE 4096

extern const char *const fm_class_names[FM_CLASSES];

/* Checks the size of a dataset to be made: n images (0 to FM_MAX_IMAGES) of rows x cols (each 1 to
 * FM_MAX_SIDE). Fails naming `what` and the size; after it, n * rows * cols cannot overflow. */
int fm_dataset_check_size(int64_t n, int64_t rows, int64_t cols, const char *what);

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

/* ---- CSV files: one image a row, a label and the pixels (Kaggle: label,pixel1,...,pixel784) ----
 *
 * The first non-blank line is a header when its first field does not start like a number or any
 * field is named "label" or like "pixelN". A header decides the layout: the label is the column
 * named "label" (any case), or else the only column not named like pixelN; every other column
 * must be a pixel, pixel1..pixelP (or pixel0..pixelP-1), each once, in any order. Without a
 * header the label comes first and the pixels follow in order. P pixels make a square image (784:
 * 28 x 28). Anything else is an error naming the file, the line and the columns. */
typedef struct fm_csv_info {
  int64_t count;        /* data rows */
  int has_header;
  int64_t columns;      /* fields in every row: the label and rows * cols pixels */
  int64_t label_column; /* where the label is, from 0 (0 without a header) */
  int64_t rows, cols;   /* the image size */
} fm_csv_info;

/* Reads the header (or the first row) and counts the data rows. A gzip-compressed CSV is read as
 * well. */
int fm_csv_probe(const char *path, fm_csv_info *info);
/* Parses every row into pixels (count * rows * cols bytes, row-major, pixelN at N - 1 or N) and
 * labels (count bytes). LF or CRLF line ends, a missing final newline and blank lines are fine.
 * Fails, naming the file and line, on a wrong number of columns, a non-integer value, a pixel
 * outside 0-255, a label outside 0-9, or a header that is not the one probed. */
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

/* Images of each class 0..classes-1 (1 to FM_MAX_CLASSES) into counts[classes]; labels from
 * `classes` up are not counted. */
void fm_dataset_counts(const fm_dataset *d, int classes, int64_t *counts);
/* Mean image (rows*cols floats in [0,1]) of the whole view, or of one class (class_id 0 to
 * FM_MAX_CLASSES - 1; -1 for all). Fails if that class has no image. */
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
 * a fraction outside [0, 1]. Every label value 0..255 is a class of its own. */
int fm_dataset_split(const fm_dataset *d, double fraction, fm_rng *rng, int stratify,
                     int32_t *first, int32_t *second, int64_t *n_first);

/* ---- datasets made from other data ---- */

/* How float pixels become bytes: UNIT takes values in [0, 1] (each rounded to the nearest of 256
 * levels, v * 255), BYTE takes integers 0..255 as they are, DETECT is BYTE when any value is above
 * 1 and UNIT otherwise. */
typedef enum { FM_PIXELS_DETECT = 0, FM_PIXELS_UNIT = 1, FM_PIXELS_BYTE = 255 } fm_pixel_scale;

/* Converts every value of t (any shape; its first dimension the images) to a byte in out
 * (t->numel bytes). *used (may be NULL) gets the scale taken. Fails on the first bad value in
 * order, naming it as what[i][j]... (counting from 1, in t's own shape) and why: NaN, infinite,
 * negative, above the range, or a fraction where integers are expected (and, when detected, which
 * value made them expected). */
int fm_pixels_from_tensor(const fm_tensor *t, fm_pixel_scale scale, const char *what, uint8_t *out,
                          fm_pixel_scale *used);
/* Converts n class ids y[0..n) (floats) to bytes, each an integer 0 to classes - 1. Fails on the
 * first that is not, naming it as what[i] (counting from 1); *bad (may be NULL) gets its index. */
int fm_labels_from_floats(const float *y, int64_t n, int classes, const char *what, uint8_t *out,
                          int64_t *bad);

/* The number of images of the parts joined end to end (count views, at least one). Fails when
 * their images differ in size (naming both) or the total is above FM_MAX_IMAGES. */
int fm_dataset_concat_size(const fm_dataset *const *parts, int64_t count, int64_t *total);
/* Copies the images and labels of the parts, in view order, one after the other: pixels needs
 * total * rows * cols bytes, labels total bytes (the sizes fm_dataset_concat_size checked). */
void fm_dataset_concat(const fm_dataset *const *parts, int64_t count, uint8_t *pixels,
                       uint8_t *labels);

#endif
