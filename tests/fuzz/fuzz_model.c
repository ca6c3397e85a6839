/* fuzz_model: saved models (engine/fm_modelfile.c) on arbitrary file contents, as fm.load_model
 * does it — probe (sizes and checksum), allocate the specs, layer records, meta text, weights and
 * state, read (which rebuilds the network from the specs) — and then, when the file loads, a prediction, a gradient and a saliency pass on a
 * batch of two images, so that the shapes and weights read from the file are exercised.
 *
 * The last 4 bytes are overwritten with the CRC-32 of the rest before the file is written:
 * otherwise nearly every mutation would stop at the checksum, and a wrong checksum is a plain
 * error path. Networks whose workspace for two images exceeds FUZZ_MAX_WORK are loaded but not
 * run (a big network read from a file is allowed; allocating gigabytes for it is not a bug). */
#include <zlib.h>

#include "fm_error.h"
#include "fm_modelfile.h"
#include "fm_net.h"
#include "fuzz_util.h"

#define FUZZ_BATCH 2
#define FUZZ_MAX_WORK ((size_t)256 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  return 0;
}

static void *alloc64(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (!p) abort();
  return p;
}

/* Runs the loaded network on two images of a fixed pattern. */
static void exercise(fm_net *net, float *params, float *state) {
  float *grads = alloc64(sizeof(float) * (size_t)net->n_params);
  fm_net_bind(net, params, grads, state);
  size_t bytes = fm_work_bytes(net, FUZZ_BATCH, 1);
  size_t in_floats = (size_t)net->in_size * FUZZ_BATCH;
  if (bytes == 0 || bytes > FUZZ_MAX_WORK || in_floats > FUZZ_MAX_WORK / sizeof(float)) {
    free(grads);
    return;
  }
  void *mem = alloc64(bytes);
  float *x = alloc64(sizeof(float) * in_floats);
  float *dx = alloc64(sizeof(float) * in_floats);
  for (size_t i = 0; i < in_floats; i++) x[i] = (float)(i % 7) / 7.0f;
  float probs[FUZZ_BATCH * 256];
  uint8_t pred[FUZZ_BATCH], labels[FUZZ_BATCH] = {0, 1};
  fm_work w;
  if (fm_work_init(&w, net, FUZZ_BATCH, 1, mem, bytes) == FM_OK) {
    double loss;
    int64_t correct;
    fm_batch_stats st;
    if (fm_net_predict(net, &w, x, FUZZ_BATCH, probs, pred, labels, &loss, &correct) == FM_OK)
      (void)fm_net_input_gradient(net, &w, x, FUZZ_BATCH, pred, dx);
    (void)fm_net_gradient(net, &w, x, labels, FUZZ_BATCH, 1, &st);
  }
  free(dx);
  free(x);
  free(mem);
  free(grads);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size + 1);
  if (!copy) abort();
  memcpy(copy, data, size);
  if (size >= 20) {
    uint32_t crc = (uint32_t)crc32(0L, copy, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
  }
  const char *path = fuzz_write_file(0, "fuzz.fmn", copy, size);
  free(copy);
  fm_model_desc d;
  fm_net net;
  if (fm_model_probe(path, &d) != FM_OK) return 0;
  /* the probe held every count to what the file's length can hold */
  char *meta = malloc(d.meta_bytes + 1);
  fm_layer_spec *specs = malloc(sizeof(fm_layer_spec) * (size_t)d.n_layers);
  fm_layer *layers = malloc(sizeof(fm_layer) * (size_t)d.n_layers);
  float *params = alloc64(sizeof(float) * (size_t)(d.n_params + d.n_state + 1));
  if (!meta || !specs || !layers) abort();
  if (fm_model_read(path, &d, specs, layers, &net, meta, params, params + d.n_params) == FM_OK)
    exercise(&net, params, params + d.n_params);
  free(params);
  free(layers);
  free(specs);
  free(meta);
  return 0;
}
