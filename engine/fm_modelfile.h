/* fm_modelfile: saved models — a network's architecture and weights, as data only.
 *
 * Layout, every number little-endian whatever the machine:
 *   "FMNISTMD"                 8 bytes, the magic
 *   u32 version                FM_MODEL_VERSION; a larger one is refused as written by a newer fmnist
 *   u32 header_bytes           the size of the header that follows
 *   header:
 *     char kind[16]            "LogReg", "MLP", "CNN", ... (NUL-padded)
 *     u32 in_h, in_w, in_c     the input shape
 *     u32 n_layers             then per layer 8 x 32 bits:
 *       u32 kind, i32 units, i32 kh, i32 kw, i32 same, i32 pool, f32 rate, u32 init
 *     u64 n_params
 *     u32 meta_bytes           then that many bytes of text: "key=value" lines (options,
 *                              history, scores) that a loader reads as strings, never runs
 *   f32 params[n_params]
 *   u32 crc32                  of every byte before it
 * Loading checks the magic, the version, every size against the file's length (before anything is
 * allocated), the layer kinds, the CRC, that the text holds no NUL and every weight is finite, and
 * rebuilds the network from the specs (so impossible layers, and sizes over the limits in fm_net.h,
 * are refused with the layer named) and checks that it has exactly n_params parameters before a
 * single weight is handed out. Saving refuses weights that are not finite (the file could not be
 * loaded again) and goes through a temporary file and a rename. */
#ifndef FM_MODELFILE_H
#define FM_MODELFILE_H

#include <stddef.h>
#include <stdint.h>

#include "fm_net.h"

#define FM_MODEL_VERSION 1
#define FM_MODEL_MAX_META (1 << 20) /* bytes of metadata text: options, history, scores */

typedef struct fm_model_desc {
  char kind[16];
  int in_h, in_w, in_c;
  int n_layers;
  fm_layer_spec specs[FM_NET_MAX_LAYERS];
  int64_t n_params;
  size_t meta_bytes;
  long params_at; /* where the weights start in the file (set by probe) */
} fm_model_desc;

/* Writes d (n_params must match the network the specs build), its meta text and the params. */
int fm_model_save(const char *path, const fm_model_desc *d, const char *meta, const float *params);
/* Reads and checks everything but keeps only the description (the CRC covers the whole file, so
 * the whole file is read). net receives the rebuilt network (unbound). */
int fm_model_probe(const char *path, fm_model_desc *d, fm_net *net);
/* Reads the meta text (d->meta_bytes + 1 bytes, NUL-terminated) and the params (d->n_params). */
int fm_model_read(const char *path, const fm_model_desc *d, char *meta, float *params);

#endif
