/* fuzz_png: PNG reading (engine/fm_png.c over libpng) on arbitrary file contents, as fm.load_png
 * does it: probe the header, allocate height x width floats, read and convert to gray.
 *
 * Before writing the file, every chunk's CRC is recomputed, so that mutations reach the decoder
 * instead of stopping at libpng's checksum test (a wrong CRC is a plain error path). Images of
 * more than FUZZ_MAX_PIXELS are probed but not read: the engine accepts up to 16384 x 16384, and
 * decoding a gigabyte from a few bytes of deflate is a slow input, not a bug. */
#include <zlib.h>

#include "fm_error.h"
#include "fm_png.h"
#include "fuzz_util.h"

#define FUZZ_MAX_PIXELS (1 << 22)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  return 0;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Rewrites the CRC of every whole chunk after the 8-byte signature. */
static void fix_crcs(uint8_t *png, size_t size) {
  size_t pos = 8;
  while (pos + 12 <= size) {
    uint32_t len = be32(png + pos);
    if (len > size - pos - 12) break;
    uint32_t crc = (uint32_t)crc32(0L, png + pos + 4, (uInt)len + 4);
    uint8_t *c = png + pos + 8 + len;
    c[0] = (uint8_t)(crc >> 24);
    c[1] = (uint8_t)(crc >> 16);
    c[2] = (uint8_t)(crc >> 8);
    c[3] = (uint8_t)crc;
    pos += 12 + (size_t)len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size + 1);
  if (!copy) abort();
  memcpy(copy, data, size);
  fix_crcs(copy, size);
  const char *path = fuzz_write_file(0, "fuzz.png", copy, size);
  free(copy);
  fm_png_info info;
  if (fm_png_probe(path, &info) != FM_OK) return 0;
  if (info.height * info.width > FUZZ_MAX_PIXELS) return 0;
  float *out = malloc((size_t)(info.height * info.width) * sizeof(float) + 1);
  if (!out) abort();
  (void)fm_png_read(path, &info, out);
  free(out);
  return 0;
}
