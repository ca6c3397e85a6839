/* fuzz_idx_gz: the IDX loader through the gzip side of engine/fm_stream.c. Random bytes almost
 * never make a valid deflate stream, so the first byte picks what the rest becomes:
 *   bit 0 clear: the rest is the file as it is (corrupt gzip streams, headers, trailers);
 *   bit 0 set:   the rest is an IDX file that is gzip-compressed here, then
 *                bit 1: cut short by 1 + (byte >> 4) bytes (a stream truncated anywhere),
 *                bit 2: followed by a second gzip member of the same data (concatenated gzip),
 *                bit 3: followed by one stray byte (padding after the last member);
 *                the compression level is (byte >> 4) % 10.
 * Then it is loaded as fm.load loads an images or labels file. */
#include <zlib.h>

#include "fm_dataset.h"
#include "fm_error.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  return 0;
}

/* gzip-compresses in[0..n) at `level` onto out (room for cap bytes); returns the length. */
static size_t gzip_member(const uint8_t *in, size_t n, int level, uint8_t *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return len;
}

static void load(const char *path) {
  fm_idx_info info;
  if (fm_idx_probe(path, &info) != FM_OK) return;
  uint8_t *body = malloc((size_t)info.bytes);
  if (!body) abort();
  if (fm_idx_read(path, &info, body) == FM_OK && info.ndim == 1)
    (void)fm_labels_check(body, info.count, path);
  free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  const uint8_t *rest = data + 1;
  size_t n = size - 1;
  if (!(mode & 1)) {
    load(fuzz_write_file(0, "images-idx3-ubyte.gz", rest, n));
    return 0;
  }
  size_t cap = compressBound((uLong)n) + 64;
  uint8_t *gz = malloc(2 * cap + 1);
  if (!gz) abort();
  int level = (mode >> 4) % 10;
  size_t len = gzip_member(rest, n, level, gz, cap);
  if (mode & 4) len += gzip_member(rest, n, level, gz + len, cap);
  if (mode & 8) gz[len++] = (uint8_t)(mode ^ 0x5a);
  if (mode & 2) {
    size_t cut = 1 + (size_t)(mode >> 4);
    len = len > cut ? len - cut : 0;
  }
  load(fuzz_write_file(0, "images-idx3-ubyte.gz", gz, len));
  free(gz);
  return 0;
}
