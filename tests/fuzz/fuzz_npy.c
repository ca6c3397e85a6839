/* fuzz_npy: the .npy reader (engine/fm_npy.c) on arbitrary file contents, as fm.load_npy does it:
 * probe the header, make a tensor of its shape, read the data. The tensor's size is bounded by the
 * file's (the probe insists the file holds exactly the announced data). */
#include "fm_error.h"
#include "fm_npy.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file(0, "fuzz.npy", data, size);
  fm_npy_info info;
  if (fm_npy_probe(path, &info) != FM_OK) return 0;
  fm_tensor t;
  if (fm_shape_set(&t, info.ndim, info.shape) != FM_OK) return 0;
  t.data = malloc((size_t)t.numel * sizeof(float) + 1);
  if (!t.data) abort();
  (void)fm_npy_read(path, &info, &t);
  free(t.data);
  return 0;
}
