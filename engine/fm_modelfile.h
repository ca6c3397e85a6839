/* fm_modelfile: saved models — a network's graph, weights and state, as data only.
 *
 * Layout of version 2, every number little-endian whatever the machine:
 *   "FMNISTMD"                 8 bytes, the magic
 *   u32 version                FM_MODEL_VERSION; a larger one is refused as written by a newer fmnist
 *   u32 header_bytes           the size of the header that follows
 *   header:
 *     char kind[16]            "LogReg", "MLP", "CNN", "ResNet", ... (NUL-padded)
 *     u32 in_h, in_w, in_c     the input shape
 *     u32 n_layers             then per layer a record:
 *       u32 record_bytes       the bytes of the record after this field
 *       u32 kind               fm_layer_kind
 *       u32 n_inputs           then i32 inputs[n_inputs] (0-based layers; -1 the network input)
 *       u32 n_fields           then n_fields pairs u32 key, u32 value (FM_FIELD_KEY_*: integers,
 *                              or the bits of a float); fields not given are 0
 *     u64 n_params, u64 n_state
 *     u32 meta_bytes           then that many bytes of text: "key=value" lines (options,
 *                              history, scores) that a loader reads as strings, never runs
 *   f32 params[n_params]
 *   f32 state[n_state]         batch norm's running statistics
 *   u32 crc32                  of every byte before it
 * Version 1 (read, never written) had fixed records of 8 x 32 bits (kind, units, kh, kw, same,
 * pool, rate, init), no inputs, no state; it loads as the same sequential network.
 * Loading checks the magic, the version, every size against the file's length, the CRC, and
 * rebuilds the network from the specs (so impossible layers are refused with the layer named)
 * before a single weight is handed out. Saving goes through a temporary file and a rename. */
#ifndef FM_MODELFILE_H
#define FM_MODELFILE_H

#include <stddef.h>
#include <stdint.h>

#include "fm_net.h"

#define FM_MODEL_VERSION 2
#define FM_MODEL_MAX_META (1 << 20)

typedef struct fm_model_desc {
  char kind[16];
  int in_h, in_w, in_c;
  int n_layers;
  int64_t n_params, n_state;
  size_t meta_bytes;
  uint32_t version; /* of the file that was read */
} fm_model_desc;

/* Writes the network (its layers as built, defaults filled in), the kind, the meta text (may be
 * NULL) and net->params and net->state. */
int fm_model_save(const char *path, const char *kind, const fm_net *net, const char *meta);
/* Reads the whole file and checks it (sizes, CRC); d gets what the caller must allocate before
 * fm_model_read: n_layers specs and layer records, meta_bytes + 1 bytes, n_params and n_state
 * floats. */
int fm_model_probe(const char *path, fm_model_desc *d);
/* Reads the file probed into d again: the specs, the network rebuilt from them into net and layers
 * (checked against the parameter and state counts), the NUL-terminated meta text and the
 * parameters and state; binds params and state to net (no gradients). Fails if the file is no
 * longer the one probed. */
int fm_model_read(const char *path, const fm_model_desc *d, fm_layer_spec *specs,
                  fm_layer *layers, fm_net *net, char *meta, float *params, float *state);

#endif
