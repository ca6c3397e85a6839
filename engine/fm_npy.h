/* fm_npy: numpy's .npy format (versions 1 to 3), for exchanging tensors with Python.
 * Reads little-endian float32 ('<f4') and uint8 ('|u1') arrays in C order into floats (uint8 values
 * stay 0-255); writes float32. */
#ifndef FM_NPY_H
#define FM_NPY_H

#include "fm_tensor.h"

typedef struct fm_npy_info {
  int ndim;
  int64_t shape[FM_MAX_DIMS];
  int is_uint8;        /* else float32 */
  long data_offset;    /* where the array starts in the file */
} fm_npy_info;

/* Reads and checks the header; fails naming the file on anything else than the above. */
int fm_npy_probe(const char *path, fm_npy_info *info);
/* Reads the data into t (whose shape must be info's). */
int fm_npy_read(const char *path, const fm_npy_info *info, fm_tensor *t);
/* Writes t as '<f4', through a temporary file renamed into place. */
int fm_npy_write(const char *path, const fm_tensor *t);

#endif
