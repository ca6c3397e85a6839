/* fuzz_csv: the CSV loader (engine/fm_csv.c) on arbitrary file contents, as fm.load reads a .csv:
 * read the header's layout (or the first row's), count the rows, allocate, parse every row. */
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
  const char *path = fuzz_write_file(0, "fuzz.csv", data, size);
  fm_csv_info info;
  if (fm_csv_probe(path, &info) != FM_OK) return 0;
  uint8_t *pixels = malloc((size_t)(info.count * info.rows * info.cols));
  uint8_t *labels = malloc((size_t)info.count);
  if (!pixels || !labels) abort();
  (void)fm_csv_read(path, &info, pixels, labels);
  free(pixels);
  free(labels);
  return 0;
}
