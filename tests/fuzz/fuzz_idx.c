/* fuzz_idx: the IDX loader (engine/fm_idx.c) on arbitrary file contents, as fm.load reads an
 * images or labels file: probe the header, allocate what it announces, read the body, check the
 * labels. Raw files mostly; a mutation that starts with the gzip magic takes the gzip path too
 * (fuzz_idx_gz aims at that one). */
#include "fm_dataset.h"
#include "fm_error.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file(0, "images-idx3-ubyte", data, size);
  fm_idx_info info;
  if (fm_idx_probe(path, &info) != FM_OK) return 0;
  uint8_t *body = malloc((size_t)info.bytes);
  if (!body) abort();
  if (fm_idx_read(path, &info, body) == FM_OK && info.ndim == 1)
    (void)fm_labels_check(body, info.count, path);
  free(body);
  return 0;
}
