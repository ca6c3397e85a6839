/* test_dataset: the dataset engine: IDX files raw and gzip, CSV files (the Kaggle layout, and the
 * label wherever the header puts it), every kind of bad file and header with the words of its
 * error, the standard file names, the views (counts, mean and std images, batches, splits), and
 * datasets made from other data (float pixels and labels checked, views joined, sizes at the
 * limits). All files are generated in a temporary directory; when the Debian
 * Fashion-MNIST files are installed, the test set is also round-tripped through raw IDX and CSV. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "fm_dataset.h"
#include "fm_error.h"
#include "fm_rng.h"

#define SIDE 28
#define PIXELS (SIDE * SIDE)
#define SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

static char tmpdir[256];

/* tmpdir/name, in one of a few rotating buffers so that several can be alive in one call. */
static const char *tpath(const char *name) {
  static char bufs[8][512];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
}

static void write_gz(const char *path, const void *data, size_t n) {
  gzFile g = gzopen(path, "wb");
  if (!g || (n && gzwrite(g, data, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
}

static uint8_t *read_whole(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

/* An IDX file's bytes: magic 0x0000 type ndim, dims big-endian, then body. */
static uint8_t *make_idx(int type, int ndim, const uint32_t *dims, const uint8_t *body,
                         size_t body_n, size_t *n) {
  *n = 4 + 4 * (size_t)ndim + body_n;
  uint8_t *b = malloc(*n), *p = b;
  *p++ = 0, *p++ = 0, *p++ = (uint8_t)type, *p++ = (uint8_t)ndim;
  for (int i = 0; i < ndim; i++) {
    *p++ = (uint8_t)(dims[i] >> 24), *p++ = (uint8_t)(dims[i] >> 16);
    *p++ = (uint8_t)(dims[i] >> 8), *p++ = (uint8_t)dims[i];
  }
  if (body_n) memcpy(p, body, body_n);
  return b;
}

static void write_idx(const char *path, int gz, int ndim, const uint32_t *dims, const uint8_t *body,
                      size_t body_n) {
  size_t n;
  uint8_t *b = make_idx(0x08, ndim, dims, body, body_n, &n);
  if (gz)
    write_gz(path, b, n);
  else
    write_file(path, b, n);
  free(b);
}

static void write_images(const char *path, int gz, const uint8_t *px, uint32_t count) {
  uint32_t dims[3] = {count, SIDE, SIDE};
  write_idx(path, gz, 3, dims, px, (size_t)count * PIXELS);
}

static void write_labels(const char *path, int gz, const uint8_t *labels, uint32_t count) {
  write_idx(path, gz, 1, &count, labels, count);
}

/* Writes a Kaggle-layout CSV with the given options. */
static void write_csv(const char *path, const uint8_t *px, const uint8_t *labels, int64_t n,
                      int header, int crlf, int final_newline) {
  FILE *f = fopen(path, "wb");
  const char *eol = crlf ? "\r\n" : "\n";
  if (header) {
    fprintf(f, "label");
    for (int k = 1; k <= PIXELS; k++) fprintf(f, ",pixel%d", k);
    fputs(eol, f);
  }
  for (int64_t i = 0; i < n; i++) {
    fprintf(f, "%u", labels[i]);
    for (int k = 0; k < PIXELS; k++) fprintf(f, ",%u", px[i * PIXELS + k]);
    if (i + 1 < n || final_newline) fputs(eol, f);
  }
  fclose(f);
}

/* One CSV row as text: label then the pixels, with pixel `bad_col` (1-based column, 0 for none)
 * replaced by `bad` and `ncols` columns in all. */
static void csv_row(char *out, int label, int ncols, int bad_col, const char *bad) {
  char *p = out;
  for (int c = 1; c <= ncols; c++) {
    if (c > 1) *p++ = ',';
    if (c == bad_col)
      p += sprintf(p, "%s", bad);
    else
      p += sprintf(p, "%d", c == 1 ? label : (c * 7) % 256);
  }
  *p = '\0';
}

/* The Kaggle header line "label,pixel1,...,pixel784" after prefix. */
static void kaggle_header(char *out, const char *prefix) {
  char *p = out + sprintf(out, "%slabel", prefix);
  for (int k = 1; k <= PIXELS; k++) p += sprintf(p, ",pixel%d", k);
}

/* Loads like a caller: probe, allocate, read. */
static int load_idx(const char *path, fm_idx_info *info, uint8_t **data) {
  *data = NULL;
  if (fm_idx_probe(path, info) != FM_OK) return FM_ERR;
  *data = malloc((size_t)info->bytes);
  if (fm_idx_read(path, info, *data) != FM_OK) {
    free(*data);
    *data = NULL;
    return FM_ERR;
  }
  return FM_OK;
}

static int load_csv(const char *path, fm_csv_info *info, uint8_t **px, uint8_t **labels) {
  *px = *labels = NULL;
  if (fm_csv_probe(path, info) != FM_OK) return FM_ERR;
  *px = malloc((size_t)info->count * PIXELS);
  *labels = malloc((size_t)info->count);
  if (fm_csv_read(path, info, *px, *labels) != FM_OK) {
    free(*px), free(*labels);
    *px = *labels = NULL;
    return FM_ERR;
  }
  return FM_OK;
}

static int probe_and_read_idx(const char *path) {
  fm_idx_info info;
  uint8_t *data;
  int rc = load_idx(path, &info, &data);
  free(data);
  return rc;
}

static int probe_and_read_csv(const char *path) {
  fm_csv_info info;
  uint8_t *px, *lb;
  int rc = load_csv(path, &info, &px, &lb);
  free(px), free(lb);
  return rc;
}

/* Small data that every format must reproduce: all pixel values 0..255 appear. */
#define SMALL 30
static uint8_t small_px[SMALL * PIXELS], small_lb[SMALL];

static void make_small(void) {
  fm_rng r;
  fm_rng_seed(&r, 7);
  for (int i = 0; i < SMALL * PIXELS; i++)
    small_px[i] = i < 256 ? (uint8_t)i : (uint8_t)fm_rng_below(&r, 256);
  for (int i = 0; i < SMALL; i++) small_lb[i] = (uint8_t)((i * 3) % FM_CLASSES);
}

/* ---- IDX ---- */

static void test_idx_good(void) {
  write_images(tpath("raw-images-idx3-ubyte"), 0, small_px, SMALL);
  write_images(tpath("gz-images-idx3-ubyte.gz"), 1, small_px, SMALL);
  write_images(tpath("rawnamedgz-images-idx3-ubyte.gz"), 0, small_px, SMALL);
  write_labels(tpath("raw-labels-idx1-ubyte"), 0, small_lb, SMALL);
  write_labels(tpath("gz-labels-idx1-ubyte.gz"), 1, small_lb, SMALL);

  const char *names[3] = {"raw-images-idx3-ubyte", "gz-images-idx3-ubyte.gz",
                          "rawnamedgz-images-idx3-ubyte.gz"};
  for (int i = 0; i < 3; i++) {
    fm_idx_info info;
    uint8_t *data;
    int rc = load_idx(tpath(names[i]), &info, &data);
    CHECK(rc == FM_OK, "IDX %s loads (%s)", names[i], rc ? fm_error() : "ok");
    if (rc) continue;
    CHECK(info.ndim == 3 && info.count == SMALL && info.rows == SIDE && info.cols == SIDE &&
              info.bytes == SMALL * PIXELS,
          "IDX %s header: 3 dims, %d x 28 x 28, %d bytes", names[i], SMALL, SMALL * PIXELS);
    CHECK(memcmp(data, small_px, sizeof small_px) == 0, "IDX %s pixels are the bytes written",
          names[i]);
    free(data);
  }
  for (int gz = 0; gz < 2; gz++) {
    fm_idx_info info;
    uint8_t *data;
    const char *name = gz ? "gz-labels-idx1-ubyte.gz" : "raw-labels-idx1-ubyte";
    int rc = load_idx(tpath(name), &info, &data);
    CHECK(rc == FM_OK && info.ndim == 1 && info.count == SMALL && info.rows == 1 &&
              info.cols == 1 && info.bytes == SMALL && memcmp(data, small_lb, SMALL) == 0,
          "IDX labels %s: 1 dim, %d labels, as written", name, SMALL);
    if (rc == FM_OK) CHECK(fm_labels_check(data, SMALL, name) == FM_OK, "labels %s are 0-9", name);
    free(data);
  }
}

static void test_idx_bad_headers(void) {
  CHECK_FAILS(fm_idx_probe(tpath("missing-images-idx3-ubyte.gz"), &(fm_idx_info){0}),
              "missing-images-idx3-ubyte.gz: No such file or directory",
              "missing IDX file: file name and strerror");

  write_file(tpath("empty.idx"), "", 0);
  CHECK_FAILS(fm_idx_probe(tpath("empty.idx"), &(fm_idx_info){0}), "empty.idx: file is empty",
              "empty IDX file");
  write_gz(tpath("empty.idx.gz"), "", 0);
  CHECK_FAILS(fm_idx_probe(tpath("empty.idx.gz"), &(fm_idx_info){0}),
              "empty.idx.gz: empty after gzip decompression", "empty gzip IDX file");

  mkdir(tpath("adir"), 0700);
  CHECK_FAILS(fm_idx_probe(tpath("adir"), &(fm_idx_info){0}), "adir: is a directory",
              "a directory is refused");

  write_file(tpath("short-header.idx"), "\0\0\x08\x03\0\0", 6);
  CHECK_FAILS(fm_idx_probe(tpath("short-header.idx"), &(fm_idx_info){0}),
              "short-header.idx: truncated IDX header (6 of 16 bytes)", "truncated IDX header");

  const char *text = "hello, this is not an IDX file\n";
  write_file(tpath("text.gz"), text, strlen(text));
  CHECK_FAILS(fm_idx_probe(tpath("text.gz"), &(fm_idx_info){0}),
              "text.gz: named .gz but is neither gzip data nor an IDX file",
              ".gz name with text content");
  write_file(tpath("text.idx"), text, strlen(text));
  CHECK_FAILS(fm_idx_probe(tpath("text.idx"), &(fm_idx_info){0}),
              "text.idx: not an IDX file: magic number 0x68656c6c, expected 0x00000801 (labels) "
              "or 0x00000803 (images)",
              "wrong magic: expected and found");
  write_gz(tpath("text-in.gz"), text, strlen(text));
  CHECK_FAILS(fm_idx_probe(tpath("text-in.gz"), &(fm_idx_info){0}),
              "text-in.gz: not an IDX file: magic number 0x68656c6c",
              "gzip of something that is not IDX: wrong magic");

  uint8_t body[PIXELS] = {0};
  uint32_t dims[3] = {1, SIDE, SIDE};
  size_t n;
  uint8_t *b = make_idx(0x0D, 3, dims, body, PIXELS, &n);
  write_file(tpath("float.idx"), b, n);
  free(b);
  CHECK_FAILS(fm_idx_probe(tpath("float.idx"), &(fm_idx_info){0}),
              "float.idx: IDX data type 0x0d (float) is not unsigned byte (0x08)",
              "IDX of floats refused");

  write_idx(tpath("two-dims.idx"), 0, 2, dims, body, 0);
  CHECK_FAILS(fm_idx_probe(tpath("two-dims.idx"), &(fm_idx_info){0}),
              "two-dims.idx: IDX file has 2 dimensions (magic number 0x00000802), expected 1",
              "IDX with 2 dimensions refused");

  uint32_t zero_count[3] = {0, SIDE, SIDE}, zero_rows[3] = {5, 0, SIDE};
  write_idx(tpath("zero-count.idx"), 0, 3, zero_count, body, 0);
  CHECK_FAILS(fm_idx_probe(tpath("zero-count.idx"), &(fm_idx_info){0}),
              "zero-count.idx: IDX dimension 1 (count) is zero", "zero count refused");
  write_idx(tpath("zero-rows.idx.gz"), 1, 3, zero_rows, body, 0);
  CHECK_FAILS(fm_idx_probe(tpath("zero-rows.idx.gz"), &(fm_idx_info){0}),
              "zero-rows.idx.gz: IDX dimension 2 (rows) is zero", "zero rows refused (gzip)");

  uint32_t huge_count[3] = {0xFFFFFFFFu, SIDE, SIDE}, huge_side[3] = {10, 5000, SIDE};
  write_idx(tpath("huge-count.idx"), 0, 3, huge_count, body, 0);
  CHECK_FAILS(fm_idx_probe(tpath("huge-count.idx"), &(fm_idx_info){0}),
              "huge-count.idx: IDX header claims 4294967295 items, an absurd count",
              "absurd count refused");
  write_idx(tpath("huge-side.idx"), 0, 3, huge_side, body, 0);
  CHECK_FAILS(fm_idx_probe(tpath("huge-side.idx"), &(fm_idx_info){0}),
              "huge-side.idx: IDX header claims 5000x28 images, an absurd size",
              "absurd image size refused");

  /* The largest header allowed: its size arithmetic must not overflow. */
  uint32_t max_dims[3] = {(uint32_t)FM_MAX_IMAGES, FM_MAX_SIDE, FM_MAX_SIDE};
  write_idx(tpath("max-dims.idx"), 0, 3, max_dims, body, PIXELS);
  CHECK_FAILS(fm_idx_probe(tpath("max-dims.idx"), &(fm_idx_info){0}),
              "max-dims.idx: truncated: the header promises 2251799813685248 bytes of data, the "
              "file holds 784",
              "largest dimensions: exact byte count, refused as truncated");
  write_idx(tpath("max-dims.idx.gz"), 1, 3, max_dims, body, PIXELS);
  CHECK_FAILS(fm_idx_probe(tpath("max-dims.idx.gz"), &(fm_idx_info){0}),
              "max-dims.idx.gz: the header promises 2251799813685248 bytes of data, more than a",
              "gzip too small for its header refused before any allocation");
}

static void test_idx_bad_bodies(void) {
  /* Raw: a short body is seen by the probe (file size) and by the read. */
  size_t n;
  uint32_t dims[3] = {SMALL, SIDE, SIDE};
  uint8_t *b = make_idx(0x08, 3, dims, small_px, sizeof small_px, &n);
  write_file(tpath("short-body.idx"), b, n - 1);
  CHECK_FAILS(fm_idx_probe(tpath("short-body.idx"), &(fm_idx_info){0}),
              "short-body.idx: truncated: the header promises 23520 bytes of data, the file holds "
              "23519",
              "raw IDX one byte short: refused by probe");
  fm_idx_info info;
  uint8_t *dst = malloc(sizeof small_px);
  write_file(tpath("shrinks.idx"), b, n);
  CHECK(fm_idx_probe(tpath("shrinks.idx"), &info) == FM_OK, "probe before the file shrinks");
  write_file(tpath("shrinks.idx"), b, n - 100);
  CHECK_FAILS(fm_idx_read(tpath("shrinks.idx"), &info, dst),
              "shrinks.idx: truncated: the header promises 23520 bytes of data, the file holds "
              "23420",
              "raw IDX shortened after the probe: refused by read");

  /* Trailing data, raw and inside a gzip stream. */
  uint8_t *longer = malloc(n + 5);
  memcpy(longer, b, n);
  memset(longer + n, 0xAB, 5);
  write_file(tpath("long.idx"), longer, n + 5);
  CHECK_FAILS(fm_idx_probe(tpath("long.idx"), &(fm_idx_info){0}),
              "long.idx: 5 bytes of extra data after the 23520 bytes the header promises",
              "raw IDX with trailing data: refused by probe");
  write_gz(tpath("long.idx.gz"), longer, n + 5);
  CHECK_FAILS(probe_and_read_idx(tpath("long.idx.gz")),
              "long.idx.gz: extra data after the 23520 bytes the header promises",
              "gzip IDX with trailing data: refused by read");
  write_file(tpath("grows.idx"), b, n);
  fm_idx_probe(tpath("grows.idx"), &info);
  write_file(tpath("grows.idx"), longer, n + 5);
  CHECK_FAILS(fm_idx_read(tpath("grows.idx"), &info, dst),
              "grows.idx: extra data after the 23520 bytes",
              "raw IDX grown after the probe: refused by read");
  free(longer);

  /* The header changed between probe and read. */
  write_file(tpath("changes.idx"), b, n);
  fm_idx_probe(tpath("changes.idx"), &info);
  uint32_t fewer[3] = {SMALL - 1, SIDE, SIDE};
  write_idx(tpath("changes.idx"), 0, 3, fewer, small_px, (SMALL - 1) * PIXELS);
  CHECK_FAILS(fm_idx_read(tpath("changes.idx"), &info, dst),
              "changes.idx: file changed while being loaded (its header no longer matches",
              "header changed between probe and read");
  free(dst);

  /* Gzip cut in the middle, cut inside its trailer, and with a wrong checksum. Random pixels
   * compress poorly; with 2000 images (1.5 MB) zlib's read-ahead while the header is read does not
   * reach the cut, so the probe passes and the read itself must notice. */
  enum { BIG = 2000 };
  uint8_t *px = malloc((size_t)BIG * PIXELS);
  fm_rng r;
  fm_rng_seed(&r, 3);
  for (int i = 0; i < BIG * PIXELS; i++) px[i] = (uint8_t)fm_rng_below(&r, 256);
  write_images(tpath("whole.gz"), 1, px, BIG);
  size_t gz_n;
  uint8_t *gz = read_whole(tpath("whole.gz"), &gz_n);
  CHECK(probe_and_read_idx(tpath("whole.gz")) == FM_OK, "a %zu-byte gzip IDX of %d images loads",
        gz_n, BIG);
  write_file(tpath("cut-half.gz"), gz, gz_n / 2);
  CHECK(fm_idx_probe(tpath("cut-half.gz"), &info) == FM_OK,
        "gzip cut in half: the header alone still probes");
  uint8_t *big = malloc((size_t)BIG * PIXELS);
  CHECK_FAILS(fm_idx_read(tpath("cut-half.gz"), &info, big),
              "cut-half.gz: truncated gzip stream (unexpected end of file)",
              "gzip cut in half: refused by read, not read short");
  free(big);
  write_file(tpath("cut-small.gz"), gz, 5000);
  CHECK_FAILS(probe_and_read_idx(tpath("cut-small.gz")),
              "cut-small.gz: truncated gzip stream (unexpected end of file)",
              "gzip cut after 5000 bytes: refused");
  write_file(tpath("cut-trailer.gz"), gz, gz_n - 3);
  CHECK_FAILS(probe_and_read_idx(tpath("cut-trailer.gz")),
              "cut-trailer.gz: truncated gzip stream (unexpected end of file)",
              "gzip cut inside its 8-byte trailer: refused");
  gz[gz_n - 8] ^= 0xFF; /* the CRC-32 */
  write_file(tpath("bad-crc.gz"), gz, gz_n);
  CHECK_FAILS(probe_and_read_idx(tpath("bad-crc.gz")),
              "bad-crc.gz: corrupt gzip data (incorrect data check)",
              "gzip with a wrong CRC: refused");
  gz[gz_n - 8] ^= 0xFF;
  gz[gz_n - 4] ^= 0x01; /* the length */
  write_file(tpath("bad-length.gz"), gz, gz_n);
  CHECK_FAILS(probe_and_read_idx(tpath("bad-length.gz")),
              "bad-length.gz: corrupt gzip data (incorrect length check)",
              "gzip with a wrong length: refused");
  gz[gz_n - 4] ^= 0x01;
  gz[gz_n / 2] ^= 0x55;
  write_file(tpath("flipped.gz"), gz, gz_n);
  CHECK_FAILS(probe_and_read_idx(tpath("flipped.gz")), "flipped.gz: corrupt gzip data",
              "gzip with a damaged byte in the middle: refused");
  gz[gz_n / 2] ^= 0x55;
  gz[3] = 0xE0; /* reserved header flag bits */
  write_file(tpath("bad-flags.gz"), gz, gz_n);
  CHECK_FAILS(probe_and_read_idx(tpath("bad-flags.gz")), "bad-flags.gz: corrupt gzip data",
              "gzip with a damaged header: refused");
  gz[3] = 0;
  /* Two gzip members make one valid file; bytes after the last member do not. */
  size_t half = (size_t)BIG * PIXELS / 2;
  uint32_t big_dims[3] = {BIG, SIDE, SIDE};
  size_t hn;
  uint8_t *whole = make_idx(0x08, 3, big_dims, px, (size_t)BIG * PIXELS, &hn);
  write_gz(tpath("part1.gz"), whole, hn - half);
  write_gz(tpath("part2.gz"), whole + hn - half, half);
  size_t n1, n2;
  uint8_t *p1 = read_whole(tpath("part1.gz"), &n1), *p2 = read_whole(tpath("part2.gz"), &n2);
  uint8_t *both = malloc(n1 + n2 + 4);
  memcpy(both, p1, n1);
  memcpy(both + n1, p2, n2);
  write_file(tpath("members.gz"), both, n1 + n2);
  fm_idx_info mi;
  uint8_t *got_px;
  int rc_members = load_idx(tpath("members.gz"), &mi, &got_px);
  CHECK(rc_members == FM_OK && mi.count == BIG && memcmp(got_px, px, (size_t)BIG * PIXELS) == 0,
        "two concatenated gzip members read as one file (%s)", rc_members ? fm_error() : "ok");
  free(got_px);
  memcpy(both + n1 + n2, "\0\0\0\0", 4);
  write_file(tpath("padded.gz"), both, n1 + n2 + 4);
  CHECK_FAILS(probe_and_read_idx(tpath("padded.gz")),
              "padded.gz: extra data after the end of the gzip stream",
              "zero bytes after the gzip stream: refused");
  free(p1), free(p2), free(both), free(whole);
  free(gz);
  free(px);
  free(b);

  /* Labels outside 0-9 pass the file checks; fm_labels_check names the first bad one. */
  uint8_t labels[6] = {0, 9, 3, 12, 200, 1};
  write_labels(tpath("bad-labels-idx1-ubyte"), 0, labels, 6);
  uint8_t *got;
  int rc = load_idx(tpath("bad-labels-idx1-ubyte"), &info, &got);
  CHECK(rc == FM_OK, "labels file with a 12 in it reads");
  if (rc == FM_OK)
    CHECK_FAILS(fm_labels_check(got, 6, "bad-labels-idx1-ubyte"),
                "bad-labels-idx1-ubyte: label 12 of item 4 (counting from 1) is outside 0-9",
                "label outside 0-9: position and value");
  free(got);
}

/* A FIFO has no size and arrives piecemeal: the gzip test then happens on the bytes as they come.
 * A child writes the gzip IDX into the FIFO twice, once for the probe and once for the read. Two
 * pipes keep the sessions apart: the child says when its first writing is closed, and waits for the
 * probe to be closed before it opens the FIFO again (else either could join the other's pipe). */
static void test_idx_fifo(void) {
  size_t n;
  write_images(tpath("fifo-src.gz"), 1, small_px, SMALL);
  uint8_t *gz = read_whole(tpath("fifo-src.gz"), &n);
  const char *fifo = tpath("fifo-images-idx3-ubyte.gz");
  int done[2], go[2];
  if (mkfifo(fifo, 0600) != 0 || pipe(done) != 0 || pipe(go) != 0) {
    printf("ok %d # skip cannot make a FIFO in %s\n", ++check_count, tmpdir);
    free(gz);
    return;
  }
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    signal(SIGPIPE, SIG_IGN); /* the probe stops reading after the header */
    char byte;
    for (int i = 0; i < 2; i++) {
      if (i == 1 && read(go[0], &byte, 1) != 1) _exit(1);
      FILE *f = fopen(fifo, "wb");
      if (!f) _exit(1);
      /* Two writes, so that the reader may see the first byte alone. */
      fwrite(gz, 1, 1, f);
      fflush(f);
      fwrite(gz + 1, 1, n - 1, f);
      fclose(f);
      if (i == 0 && write(done[1], "x", 1) != 1) _exit(1);
    }
    _exit(0);
  }
  alarm(30); /* a hang here should fail the test, not stall the suite */
  fm_idx_info info;
  uint8_t *data = malloc(sizeof small_px), byte;
  int rc = fm_idx_probe(fifo, &info);
  if (read(done[0], &byte, 1) != 1 || write(go[1], "x", 1) != 1) rc = FM_ERR;
  if (rc == FM_OK) rc = fm_idx_read(fifo, &info, data);
  CHECK(rc == FM_OK && info.count == SMALL && memcmp(data, small_px, sizeof small_px) == 0,
        "gzip IDX through a FIFO (%s)", rc ? fm_error() : "ok");
  if (rc != FM_OK) kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  alarm(0);
  close(done[0]), close(done[1]), close(go[0]), close(go[1]);
  free(data);
  free(gz);
}

/* ---- CSV ---- */

static void check_csv_equal(const char *name, int header, int crlf, int final_newline) {
  write_csv(tpath(name), small_px, small_lb, SMALL, header, crlf, final_newline);
  fm_csv_info info;
  uint8_t *px, *lb;
  int rc = load_csv(tpath(name), &info, &px, &lb);
  CHECK(rc == FM_OK, "CSV %s loads (%s)", name, rc ? fm_error() : "ok");
  if (rc) return;
  CHECK(info.count == SMALL && info.has_header == header, "CSV %s: %d rows, header %s", name, SMALL,
        header ? "found" : "absent");
  CHECK(memcmp(px, small_px, sizeof small_px) == 0 && memcmp(lb, small_lb, SMALL) == 0,
        "CSV %s: the same bytes as the IDX files", name);
  free(px), free(lb);
}

/* Writes a CSV from lines (NULL-terminated), each followed by eol. */
static void write_lines(const char *path, const char *const *lines, const char *eol) {
  FILE *f = fopen(path, "wb");
  for (int i = 0; lines[i]; i++) fprintf(f, "%s%s", lines[i], eol);
  fclose(f);
}

static void test_csv_good(void) {
  check_csv_equal("header-lf.csv", 1, 0, 1);
  check_csv_equal("noheader-crlf-nofinal.csv", 0, 1, 0);
  check_csv_equal("header-crlf-nofinal.csv", 1, 1, 0);

  /* A byte order mark, spaces and tabs around numbers, blank lines at the end. */
  static char rows[3][4 * 786 + 16], spaced[4 * 786 * 3], header[16 * 786];
  for (int i = 0; i < 3; i++) csv_row(rows[i], i + 4, 785, 0, "");
  char *p = spaced + sprintf(spaced, "  ");
  for (const char *s = rows[1]; *s; s++) {
    if (*s == ',')
      p += sprintf(p, " \t, ");
    else
      *p++ = *s;
  }
  sprintf(p, "\t ");
  kaggle_header(header, "\xEF\xBB\xBF");
  const char *lines[] = {header, rows[0], spaced, rows[2], "", "  ", "", NULL};
  write_lines(tpath("lenient.csv"), lines, "\r\n");
  fm_csv_info info;
  uint8_t *px, *lb;
  int rc = load_csv(tpath("lenient.csv"), &info, &px, &lb);
  CHECK(rc == FM_OK, "CSV with BOM, spaces and blank trailing lines loads (%s)",
        rc ? fm_error() : "ok");
  if (rc == FM_OK) {
    CHECK(info.count == 3 && info.has_header, "lenient CSV: 3 rows and a header");
    CHECK(lb[0] == 4 && lb[1] == 5 && lb[2] == 6 && px[PIXELS + 0] == 14 &&
              px[PIXELS + 783] == (785 * 7) % 256,
          "lenient CSV: values parsed through the spaces");
    free(px), free(lb);
  }

  /* A CSV compressed with gzip reads too. */
  size_t n;
  uint8_t *text = read_whole(tpath("header-lf.csv"), &n);
  write_gz(tpath("header-lf.csv.gz"), text, n);
  rc = load_csv(tpath("header-lf.csv.gz"), &info, &px, &lb);
  CHECK(rc == FM_OK && info.count == SMALL && memcmp(px, small_px, sizeof small_px) == 0,
        "gzip-compressed CSV loads the same bytes");
  free(px), free(lb);
  /* ... and a cut one is refused. */
  size_t gz_n;
  uint8_t *gz = read_whole(tpath("header-lf.csv.gz"), &gz_n);
  write_file(tpath("cut.csv.gz"), gz, gz_n * 2 / 3);
  CHECK_FAILS(probe_and_read_csv(tpath("cut.csv.gz")), "cut.csv.gz: truncated gzip stream",
              "truncated gzip CSV refused");
  free(gz);
  free(text);
}

static void test_csv_bad(void) {
  static char row_ok[4 * 786], row_bad[4 * 800];
  csv_row(row_ok, 3, 785, 0, "");
  struct {
    const char *name;
    int label, ncols, bad_col;
    const char *bad, *expect, *what;
  } cases[] = {
      {"short-row.csv", 1, 784, 0, "", "short-row.csv: line 3: 784 columns, expected 785",
       "a row with 784 columns"},
      {"long-row.csv", 1, 786, 0, "", "long-row.csv: line 3: 786 columns, expected 785",
       "a row with 786 columns"},
      {"comma-end.csv", 1, 785, 785, "9,", "comma-end.csv: line 3: 786 columns, expected 785",
       "a row ending in a comma"},
      {"one-col.csv", 1, 1, 0, "", "one-col.csv: line 3: 1 columns, expected 785",
       "a row with one column"},
      {"word.csv", 1, 785, 10, "abc",
       "word.csv: line 3, column 10 (pixel9): 'abc' is not an integer", "a word as a pixel"},
      {"float.csv", 1, 785, 2, "1.5",
       "float.csv: line 3, column 2 (pixel1): '1.5' is not an integer", "a fraction as a pixel"},
      {"digits-word.csv", 1, 785, 785, "12x",
       "digits-word.csv: line 3, column 785 (pixel784): '12x' is not an integer",
       "digits then letters in the last column"},
      {"inner-space.csv", 1, 785, 5, "1 2",
       "inner-space.csv: line 3, column 5 (pixel4): '1 2' is not an integer",
       "a space inside a number"},
      {"empty-field.csv", 1, 785, 3, "", "empty-field.csv: line 3, column 3 (pixel2): empty value",
       "an empty field"},
      {"pixel-256.csv", 1, 785, 100, "256",
       "pixel-256.csv: line 3, column 100 (pixel99): value 256 is outside 0-255", "a pixel of 256"},
      {"pixel-neg.csv", 1, 785, 100, "-1",
       "pixel-neg.csv: line 3, column 100 (pixel99): value -1 is outside 0-255",
       "a negative pixel"},
      {"pixel-huge.csv", 1, 785, 7, "99999999999999999999",
       "pixel-huge.csv: line 3, column 7 (pixel6): value 99999999999999999999 is outside 0-255",
       "a pixel too large for any integer type"},
      {"label-10.csv", 10, 785, 0, "",
       "label-10.csv: line 3, column 1 (label): value 10 is outside 0-9", "a label of 10"},
      {"binary.csv", 1, 785, 9,
       "\x01\xff"
       "7",
       "binary.csv: line 3, column 9 (pixel8): '??7' is not an integer",
       "control and non-ASCII bytes shown as '?'"},
      {"label-word.csv", 1, 785, 1, "Bag",
       "label-word.csv: line 3, column 1 (label): 'Bag' is not an integer",
       "a class name as label"},
      {"label-neg.csv", 1, 785, 1, "-1",
       "label-neg.csv: line 3, column 1 (label): value -1 is outside 0-9", "a negative label"},
      {"label-255.csv", 1, 785, 1, "255",
       "label-255.csv: line 3, column 1 (label): value 255 is outside 0-9", "a label of 255"},
      {"quoted.csv", 1, 785, 7, "\"7\"",
       "quoted.csv: line 3, column 7 (pixel6): '\"7\"' is not an integer", "a quoted pixel"},
      {"nan.csv", 1, 785, 4, "nan", "nan.csv: line 3, column 4 (pixel3): 'nan' is not an integer",
       "NaN as a pixel"},
      {"exp.csv", 1, 785, 4, "1e2", "exp.csv: line 3, column 4 (pixel3): '1e2' is not an integer",
       "an exponent"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    csv_row(row_bad, cases[i].label, cases[i].ncols, cases[i].bad_col, cases[i].bad);
    const char *lines[] = {row_ok, row_ok, row_bad, row_ok, NULL};
    write_lines(tpath(cases[i].name), lines, i % 2 ? "\r\n" : "\n");
    CHECK_FAILS(probe_and_read_csv(tpath(cases[i].name)), cases[i].expect, "CSV with %s",
                cases[i].what);
  }

  /* A row of 100000 columns: counted, not parsed past the 785th. */
  static char wide[2 * 100000 + 2];
  char *w = wide;
  for (int c = 0; c < 100000; c++) w += sprintf(w, c ? ",%d" : "%d", c % 10);
  const char *wide_lines[] = {row_ok, wide, NULL};
  write_lines(tpath("wide.csv"), wide_lines, "\n");
  CHECK_FAILS(probe_and_read_csv(tpath("wide.csv")), "wide.csv: line 2: 100000 columns, expected 785",
              "CSV with a row of 100000 columns");

  /* Line numbers count the header and blank lines. */
  static char header[16 * 786];
  kaggle_header(header, "");
  csv_row(row_bad, 2, 785, 50, "x");
  const char *numbered[] = {header, row_ok, "", row_ok, row_bad, NULL};
  write_lines(tpath("numbered.csv"), numbered, "\n");
  CHECK_FAILS(probe_and_read_csv(tpath("numbered.csv")),
              "numbered.csv: line 5, column 50 (pixel49): 'x' is not an integer",
              "line numbers count the header and blank lines");

  const char *bad_header[] = {"label,pixel1,pixel2", row_ok, NULL};
  write_lines(tpath("bad-header.csv"), bad_header, "\n");
  CHECK_FAILS(fm_csv_probe(tpath("bad-header.csv"), &(fm_csv_info){0}),
              "bad-header.csv: line 1: 3 columns, a label and 2 pixels, which make no square image",
              "a header with the wrong number of columns");
  const char *only_header[] = {header, "", NULL};
  write_lines(tpath("only-header.csv"), only_header, "\n");
  CHECK_FAILS(fm_csv_probe(tpath("only-header.csv"), &(fm_csv_info){0}),
              "only-header.csv: no data rows (only a header)", "a CSV with only a header");
  write_file(tpath("blank.csv"), "\n\r\n  \n", 6);
  CHECK_FAILS(fm_csv_probe(tpath("blank.csv"), &(fm_csv_info){0}),
              "blank.csv: no data rows (only blank lines)", "a CSV of blank lines");
  write_file(tpath("empty.csv"), "", 0);
  CHECK_FAILS(fm_csv_probe(tpath("empty.csv"), &(fm_csv_info){0}), "empty.csv: file is empty",
              "an empty CSV");
  CHECK_FAILS(fm_csv_probe(tpath("missing.csv"), &(fm_csv_info){0}),
              "missing.csv: No such file or directory", "a missing CSV");
  CHECK_FAILS(fm_csv_probe(tpath("adir"), &(fm_csv_info){0}), "adir: is a directory",
              "a directory as CSV");

  /* The file changes between probe and read. */
  const char *three[] = {row_ok, row_ok, row_ok, NULL};
  const char *two[] = {row_ok, row_ok, "", NULL};
  const char *four[] = {row_ok, row_ok, row_ok, row_ok, NULL};
  fm_csv_info info;
  uint8_t px[4 * PIXELS], lb[4];
  write_lines(tpath("shrinks.csv"), three, "\n");
  CHECK(fm_csv_probe(tpath("shrinks.csv"), &info) == FM_OK && info.count == 3,
        "probe counts 3 rows");
  write_lines(tpath("shrinks.csv"), two, "\n");
  CHECK_FAILS(fm_csv_read(tpath("shrinks.csv"), &info, px, lb),
              "shrinks.csv: only 2 data rows, fewer than the 3 counted before",
              "CSV with fewer rows at read time than probed");
  write_lines(tpath("shrinks.csv"), four, "\n");
  CHECK_FAILS(fm_csv_read(tpath("shrinks.csv"), &info, px, lb),
              "shrinks.csv: line 4: more data rows than the 3 counted before",
              "CSV with more rows at read time than probed");
  const char *with_header[] = {header, row_ok, row_ok, row_ok, NULL};
  write_lines(tpath("shrinks.csv"), with_header, "\n");
  CHECK_FAILS(fm_csv_read(tpath("shrinks.csv"), &info, px, lb),
              "shrinks.csv: file changed while being loaded (it has a header line now)",
              "CSV that gained a header after the probe");

  /* A line too long to be a row. */
  size_t big = (1 << 20) + 10;
  char *longline = malloc(big);
  memset(longline, '1', big);
  longline[big - 1] = '\n';
  write_file(tpath("longline.csv"), longline, big);
  free(longline);
  CHECK_FAILS(fm_csv_probe(tpath("longline.csv"), &(fm_csv_info){0}),
              "longline.csv: line 1 is longer than 1048576 bytes", "an endless line refused");
}

/* ---- CSV layouts: where the header puts the label and the pixels ---- */

/* Writes small_px/small_lb as a CSV whose header has the label at column label_at (1-based) under
 * the name label_name, and pixel k (0-based) named pixel<k + base>, in reverse order when
 * reversed; rows follow the same layout. */
static void write_layout_csv(const char *path, int label_at, const char *label_name, int base,
                             int reversed, const char *eol) {
  FILE *f = fopen(path, "wb");
  for (int c = 1; c <= PIXELS + 1; c++) {
    if (c > 1) fputc(',', f);
    int k = c < label_at ? c - 1 : c - 2;
    if (c == label_at)
      fputs(label_name, f);
    else
      fprintf(f, "pixel%d", (reversed ? PIXELS - 1 - k : k) + base);
  }
  fputs(eol, f);
  for (int i = 0; i < SMALL; i++) {
    for (int c = 1; c <= PIXELS + 1; c++) {
      if (c > 1) fputc(',', f);
      int k = c < label_at ? c - 1 : c - 2;
      fprintf(f, "%u",
              c == label_at ? small_lb[i] : small_px[i * PIXELS + (reversed ? PIXELS - 1 - k : k)]);
    }
    fputs(eol, f);
  }
  fclose(f);
}

static void check_layout(const char *name, int label_at, const char *label_name, int base,
                         int reversed, const char *eol) {
  write_layout_csv(tpath(name), label_at, label_name, base, reversed, eol);
  fm_csv_info info;
  uint8_t *px, *lb;
  int rc = load_csv(tpath(name), &info, &px, &lb);
  CHECK(rc == FM_OK, "CSV %s loads (%s)", name, rc ? fm_error() : "ok");
  if (rc) return;
  CHECK(info.has_header && info.label_column == label_at - 1 && info.columns == PIXELS + 1 &&
            info.rows == SIDE && info.cols == SIDE && info.count == SMALL,
        "CSV %s: header, label in column %d, 28x28, %d rows", name, label_at, SMALL);
  CHECK(memcmp(px, small_px, sizeof small_px) == 0 && memcmp(lb, small_lb, SMALL) == 0,
        "CSV %s: the same images and labels as label-first", name);
  free(px), free(lb);
}

/* A header of `columns` names: names[c] for the columns given (1-based, NULL-terminated pairs), and
 * pixel<k> for the others, k counting from 1 over the columns that are not given. */
static void header_with(char *out, int columns, const int *at, const char *const *names) {
  char *p = out;
  for (int c = 1, k = 1; c <= columns; c++) {
    if (c > 1) *p++ = ',';
    const char *given = NULL;
    for (int i = 0; at[i]; i++)
      if (at[i] == c) given = names[i];
    if (given)
      p += sprintf(p, "%s", given);
    else
      p += sprintf(p, "pixel%d", k++);
  }
  *p = '\0';
}

static void test_csv_layouts(void) {
  check_layout("label-last.csv", PIXELS + 1, "label", 1, 0, "\n");
  check_layout("label-middle-crlf.csv", 400, "label", 1, 0, "\r\n");
  check_layout("label-quoted-reversed.csv", 1, "\"Label\"", 1, 1, "\r\n");
  check_layout("pixel0-label-last.csv", PIXELS + 1, "LABEL", 0, 0, "\n");
  check_layout("unnamed-label.csv", 3, "class", 1, 1, "\n");
  check_layout("spaced-label.csv", 9, "  label ", 1, 0, "\n");

  /* Without a header: the label first, and any square image. */
  const char *tiny[] = {"7,0,1,2,3,4,5,6,7,255", "2,9,9,9,9,9,9,9,9,9", NULL};
  write_lines(tpath("tiny.csv"), tiny, "\n");
  fm_csv_info info;
  uint8_t *px, *lb;
  int rc = load_csv(tpath("tiny.csv"), &info, &px, &lb);
  CHECK(rc == FM_OK && !info.has_header && info.rows == 3 && info.cols == 3 && info.count == 2 &&
            info.label_column == 0,
        "a CSV of 10 columns without a header: 3x3 images, the label first (%s)",
        rc ? fm_error() : "ok");
  if (rc == FM_OK) {
    CHECK(lb[0] == 7 && lb[1] == 2 && px[8] == 255 && px[9] == 9, "3x3 CSV: labels and pixels");
    free(px), free(lb);
  }
  /* A header of a small image, label last, pixel names in any order. */
  const char *small_header[] = {"pixel2,pixel4,pixel1,pixel3,label", "1,2,3,4,5", NULL};
  write_lines(tpath("shuffled-2x2.csv"), small_header, "\r\n");
  rc = load_csv(tpath("shuffled-2x2.csv"), &info, &px, &lb);
  CHECK(rc == FM_OK && info.rows == 2 && lb[0] == 5 && px[0] == 3 && px[1] == 1 && px[2] == 4 &&
            px[3] == 2,
        "pixel columns placed by their names, not their order (%s)", rc ? fm_error() : "ok");
  if (rc == FM_OK) free(px), free(lb);

  /* Headers that leave the layout in doubt, or are wrong. */
  static char header[32 * 800], row[4 * 800];
  struct {
    const char *name;
    int columns, at[3];
    const char *names[3];
    const char *expect, *what;
  } bad[] = {
      {"no-label.csv",
       785,
       {0},
       {NULL},
       "no-label.csv: line 1: the header has no label column (every column is named like pixelN; "
       "name the label column 'label')",
       "a header of pixel columns only"},
      {"two-labels.csv",
       786,
       {1, 786, 0},
       {"label", "Label"},
       "two-labels.csv: line 1: columns 1 and 786 are both named 'label'",
       "two label columns"},
      {"two-others.csv",
       786,
       {1, 2, 0},
       {"id", "target"},
       "two-others.csv: line 1: cannot tell the label column: columns 1 ('id') and 2 ('target') "
       "are not named like pixelN (name the label column 'label')",
       "two columns that could be the label"},
      {"label-and-other.csv",
       786,
       {1, 2, 0},
       {"id", "label"},
       "label-and-other.csv: line 1: column 1 ('id') is neither the label nor a pixel (pixelN)",
       "a label column and another that is no pixel"},
      {"dup-pixel.csv",
       785,
       {1, 785, 0},
       {"label", "pixel5"},
       "dup-pixel.csv: line 1: pixel5 appears twice (columns 6 and 785)",
       "a pixel named twice"},
      {"missing-pixel.csv",
       785,
       {1, 785, 0},
       {"label", "pixel785"},
       "missing-pixel.csv: line 1: pixel784 is missing (784 pixel columns, so pixel1 to pixel784; "
       "column 785 is pixel785)",
       "a pixel beyond the image instead of the last one"},
      {"too-many-pixels.csv",
       786,
       {1, 0},
       {"label"},
       "too-many-pixels.csv: line 1: 786 columns, a label and 785 pixels, which make no square "
       "image",
       "785 pixel columns"},
      {"number-names.csv",
       785,
       {1, 785, 0},
       {"0", "label"},
       "number-names.csv: line 1: column 1 ('0') is neither the label nor a pixel (pixelN)",
       "a header of numbers is told from data by its 'label'"},
      {"binary-name.csv",
       786,
       {1, 2, 0},
       {"\x01\xfflabel", "x"},
       "binary-name.csv: line 1: cannot tell the label column: columns 1 ('??label') and 2 ('x')",
       "control bytes in a header name are shown as '?'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    header_with(header, bad[i].columns, bad[i].at, bad[i].names);
    csv_row(row, 1, 785, 0, "");
    const char *lines[] = {header, row, NULL};
    write_lines(tpath(bad[i].name), lines, i % 2 ? "\r\n" : "\n");
    CHECK_FAILS(fm_csv_probe(tpath(bad[i].name), &(fm_csv_info){0}), bad[i].expect, "CSV with %s",
                bad[i].what);
  }

  /* Rows are read through the header's layout: columns and labels named by it. */
  write_layout_csv(tpath("last-bad.csv"), PIXELS + 1, "label", 1, 1, "\n");
  FILE *f = fopen(tpath("last-bad.csv"), "ab");
  csv_row(row, 0, 785, 785, "10");
  fprintf(f, "%s\n", row);
  fclose(f);
  CHECK_FAILS(probe_and_read_csv(tpath("last-bad.csv")),
              "last-bad.csv: line 32, column 785 (label): value 10 is outside 0-9",
              "a label of 10 in the last column, named as the label");
  f = fopen(tpath("last-bad.csv"), "wb");
  header_with(header, 785, (int[]){785, 0}, (const char *const[]){"label"});
  csv_row(row, 0, 785, 2, "x");
  fprintf(f, "%s\n%s\n", header, row);
  csv_row(row, 0, 784, 0, "");
  fprintf(f, "%s\n", row);
  fclose(f);
  CHECK_FAILS(probe_and_read_csv(tpath("last-bad.csv")),
              "last-bad.csv: line 2, column 2 (pixel2): 'x' is not an integer",
              "a bad pixel named by the header");
  const char *short_row[] = {header, row, NULL};
  write_lines(tpath("short-after-header.csv"), short_row, "\r\n");
  CHECK_FAILS(probe_and_read_csv(tpath("short-after-header.csv")),
              "short-after-header.csv: line 2: 784 columns, expected 785 (a label and 784 pixels)",
              "a row with fewer columns than the header");
  const char *not_square[] = {"1,2,3,4", NULL};
  write_lines(tpath("not-square.csv"), not_square, "\n");
  CHECK_FAILS(fm_csv_probe(tpath("not-square.csv"), &(fm_csv_info){0}),
              "not-square.csv: line 1: 4 columns, a label and 3 pixels, which make no square image",
              "a CSV without a header whose pixels make no square");

  /* The header moves the label between probe and read. */
  write_layout_csv(tpath("moves.csv"), 1, "label", 1, 0, "\n");
  CHECK(fm_csv_probe(tpath("moves.csv"), &info) == FM_OK && info.label_column == 0,
        "probe: the label first");
  write_layout_csv(tpath("moves.csv"), PIXELS + 1, "label", 1, 0, "\n");
  static uint8_t mpx[SMALL * PIXELS], mlb[SMALL];
  CHECK_FAILS(fm_csv_read(tpath("moves.csv"), &info, mpx, mlb),
              "moves.csv: file changed while being loaded (its first line is not the one read "
              "before)",
              "a label column that moved after the probe");
}

/* ---- datasets made from other data ---- */

/* A tensor header over data (shape given), for the engine calls that take one. */
static fm_tensor tensor_of(float *data, int ndim, const int64_t *shape) {
  fm_tensor t;
  fm_shape_set(&t, ndim, shape);
  t.data = data;
  return t;
}

static void test_from_data(void) {
  CHECK(fm_dataset_check_size(FM_MAX_IMAGES, FM_MAX_SIDE, FM_MAX_SIDE, "d") == FM_OK,
        "the largest dataset size passes (2^51 bytes fit in int64)");
  CHECK(fm_dataset_check_size(0, 1, 1, "d") == FM_OK, "an empty dataset passes");
  CHECK_FAILS(fm_dataset_check_size(FM_MAX_IMAGES + 1, 28, 28, "d"),
              "d: 134217729 images, an absurd count (0 to 134217728)", "too many images");
  CHECK_FAILS(fm_dataset_check_size(-1, 28, 28, "d"), "d: -1 images", "a negative count");
  CHECK_FAILS(fm_dataset_check_size(5, 4097, 1, "d"), "d: images of 4097x1 (each side 1 to 4096)",
              "a side above the limit");
  CHECK_FAILS(fm_dataset_check_size(5, 28, 0, "d"), "d: images of 28x0", "a side of zero");
  CHECK_FAILS(fm_dataset_check_size(1, INT64_MAX, INT64_MAX, "d"), "images of 9223372036854775807x",
              "sides whose product overflows");

  /* Pixels: detected as [0, 1] or 0-255, converted, and every bad value named. */
  float unit[12] = {0, 1, 0.5f, 1 / 255.0f, 254 / 255.0f, 0.25f, 0, 0, 0, 0, 0, 0.999f};
  int64_t shape3[3] = {2, 2, 3};
  fm_tensor t = tensor_of(unit, 3, shape3);
  uint8_t out[12];
  fm_pixel_scale used = FM_PIXELS_DETECT;
  CHECK(fm_pixels_from_tensor(&t, FM_PIXELS_DETECT, "images", out, &used) == FM_OK &&
            used == FM_PIXELS_UNIT && out[0] == 0 && out[1] == 255 && out[2] == 128 &&
            out[3] == 1 && out[4] == 254 && out[5] == 64 && out[11] == 255,
        "floats in [0, 1] detected, each the nearest of 256 levels");
  float bytes[12] = {0, 255, 128, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  t = tensor_of(bytes, 3, shape3);
  CHECK(fm_pixels_from_tensor(&t, FM_PIXELS_DETECT, "images", out, &used) == FM_OK &&
            used == FM_PIXELS_BYTE && out[1] == 255 && out[2] == 128 && out[3] == 1,
        "integers 0-255 detected and kept");
  float dark[12] = {0, 1, 1, 0};
  t = tensor_of(dark, 3, shape3);
  CHECK(fm_pixels_from_tensor(&t, FM_PIXELS_BYTE, "images", out, &used) == FM_OK &&
            used == FM_PIXELS_BYTE && out[1] == 1,
        "an explicit 0-255 scale keeps values of 1 as 1");
  struct {
    int at;
    float v;
    fm_pixel_scale scale;
    const char *expect, *what;
  } bad[] = {
      {8, NAN, FM_PIXELS_DETECT,
       "images[2][1][3] is nan: not a number (pixels are numbers in [0, 1] or integers 0-255)",
       "NaN named by its place in the tensor, counting from 1"},
      {0, -0.5f, FM_PIXELS_DETECT, "images[1][1][1] is -0.5: below 0", "a negative value"},
      {11, INFINITY, FM_PIXELS_DETECT, "images[2][2][3] is inf: infinite", "an infinite value"},
      {4, 300, FM_PIXELS_DETECT, "images[1][2][2] is 300: above 255", "a value above 255"},
      {4, 1.5f, FM_PIXELS_UNIT, "images[1][2][2] is 1.5: above 1 (pixels are numbers in [0, 1])",
       "above 1 when [0, 1] is asked for"},
      {4, 0.5f, FM_PIXELS_BYTE, "images[1][2][2] is 0.5: a fraction (pixels are integers 0-255)",
       "a fraction when 0-255 is asked for"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    float v[12] = {0};
    v[bad[i].at] = bad[i].v;
    t = tensor_of(v, 3, shape3);
    CHECK_FAILS(fm_pixels_from_tensor(&t, bad[i].scale, "images", out, NULL), bad[i].expect, "%s",
                bad[i].what);
  }
  float mixed[12] = {0.5f, 0, 0, 0, 0, 0, 0, 200, 12.5f};
  t = tensor_of(mixed, 3, shape3);
  CHECK_FAILS(fm_pixels_from_tensor(&t, FM_PIXELS_DETECT, "images", out, NULL),
              "images[1][1][1] is 0.5: a fraction, but the pixels are read as integers 0-255 "
              "because images[2][1][2] is 200 (above 1)",
              "the first fraction, and the value that made integers expected");
  int64_t shape2[2] = {3, 4};
  t = tensor_of(mixed, 2, shape2);
  CHECK_FAILS(
      fm_pixels_from_tensor(&t, FM_PIXELS_DETECT, "x", out, NULL),
      "x[1][1] is 0.5: a fraction, but the pixels are read as integers 0-255 because x[2][4] "
      "is 200",
      "places in a 2-D tensor");
  CHECK_FAILS(fm_pixels_from_tensor(&t, (fm_pixel_scale)7, "x", out, NULL),
              "x: pixel scale 7 (expected 1 or 255)", "an unknown scale");

  /* Labels from floats. */
  float y[5] = {0, 9, 3, 3, 1};
  uint8_t ly[5];
  CHECK(fm_labels_from_floats(y, 5, 10, "labels", ly, NULL) == FM_OK && ly[1] == 9 && ly[4] == 1,
        "labels 0-9 of 10 classes");
  CHECK_FAILS(fm_labels_from_floats(y, 5, 9, "labels", ly, NULL),
              "labels[2] is 9, not a class id (an integer 0 to 8: 9 classes)",
              "a label of 9 with 9 classes");
  float ybad[4] = {1, 2.5f, NAN, -1};
  int64_t bad_at = -1;
  CHECK_FAILS(fm_labels_from_floats(ybad, 4, 10, "y", ly, &bad_at), "y[2] is 2.5, not a class id",
              "a fractional label");
  CHECK(bad_at == 1, "the index of the bad label is given (%lld)", (long long)bad_at);
  CHECK_FAILS(fm_labels_from_floats(ybad + 2, 2, 10, "y", ly, NULL), "y[1] is nan, not a class id",
              "a NaN label");
  CHECK_FAILS(fm_labels_from_floats(ybad + 3, 1, 10, "y", ly, NULL), "y[1] is -1, not a class id",
              "a negative label");
  float y255[1] = {255};
  CHECK(fm_labels_from_floats(y255, 1, 256, "y", ly, NULL) == FM_OK && ly[0] == 255,
        "label 255 of 256 classes");
  CHECK_FAILS(fm_labels_from_floats(y, 1, 257, "y", ly, NULL), "y: 257 classes (1 to 256)",
              "more classes than a byte holds");

  /* Views joined end to end. */
  static const uint8_t apx[3 * 4] = {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, alb[3] = {0, 1, 2};
  static const uint8_t bpx[2 * 4] = {7, 7, 7, 7, 8, 8, 8, 8}, blb[2] = {5, 6};
  static const int32_t aidx[2] = {2, 0};
  fm_dataset a = {2, 2, 2, apx, alb, aidx}, b = {2, 2, 2, bpx, blb, NULL};
  const fm_dataset *parts[3] = {&a, &b, &a};
  int64_t total = 0;
  CHECK(fm_dataset_concat_size(parts, 3, &total) == FM_OK && total == 6, "three views: 6 images");
  uint8_t jpx[6 * 4], jlb[6];
  fm_dataset_concat(parts, 3, jpx, jlb);
  CHECK(jpx[0] == 3 && jpx[4] == 1 && jpx[8] == 7 && jpx[15] == 8 && jpx[16] == 3 &&
            memcmp(jlb, (uint8_t[]){2, 0, 5, 6, 2, 0}, 6) == 0,
        "joined in view order: through the index, then the plain view");
  fm_dataset odd = {1, 4, 1, bpx, blb, NULL};
  const fm_dataset *mismatched[2] = {&a, &odd};
  CHECK_FAILS(fm_dataset_concat_size(mismatched, 2, &total),
              "concat: dataset 2 has images of 4x1, dataset 1 of 2x2", "images of other sizes");
  CHECK_FAILS(fm_dataset_concat_size(parts, 0, &total), "concat: no datasets to join",
              "nothing to join");
  /* Sizes a caller could claim: the sum is checked before it can overflow. */
  fm_dataset huge = {FM_MAX_IMAGES / 2 + 1, 1, 1, NULL, NULL, NULL};
  const fm_dataset *huges[3] = {&huge, &huge, &huge};
  CHECK_FAILS(fm_dataset_concat_size(huges, 3, &total),
              "concat: more than 134217728 images in all (67108865 before dataset 2, which has "
              "67108865)",
              "views that add up to more than the limit");
  fm_dataset half = {FM_MAX_IMAGES / 2, 1, 1, NULL, NULL, NULL};
  const fm_dataset *halves[2] = {&half, &half};
  CHECK(fm_dataset_concat_size(halves, 2, &total) == FM_OK && total == FM_MAX_IMAGES,
        "views that add up to exactly the limit");
  fm_dataset negative = {-5, 1, 1, NULL, NULL, NULL};
  const fm_dataset *negs[2] = {&half, &negative};
  CHECK_FAILS(fm_dataset_concat_size(negs, 2, &total), "dataset 2, which has -5",
              "a negative count");
  fm_dataset maxed = {INT64_MAX, 1, 1, NULL, NULL, NULL};
  const fm_dataset *maxes[2] = {&half, &maxed};
  CHECK_FAILS(fm_dataset_concat_size(maxes, 2, &total), "more than 134217728 images in all",
              "a count of 2^63 - 1");
}

/* ---- standard names ---- */

static void test_names(void) {
  CHECK(strcmp(fm_class_names[0], "T-shirt/top") == 0 && strcmp(fm_class_names[6], "Shirt") == 0 &&
            strcmp(fm_class_names[9], "Ankle boot") == 0,
        "class names: 0 T-shirt/top, 6 Shirt, 9 Ankle boot");

  char labels[512];
  struct {
    const char *images, *labels;
  } ok[] = {
      {"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
       "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"},
      {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
      {"data/train-images.idx3-ubyte", "data/train-labels.idx1-ubyte"},
      {"x-images-idx3-ubyte/my-images-idx3-ubyte.gz",
       "x-images-idx3-ubyte/my-labels-idx1-ubyte.gz"},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int rc = fm_labels_path_for(ok[i].images, labels, sizeof labels);
    CHECK(rc == FM_OK && strcmp(labels, ok[i].labels) == 0, "labels for %s: %s", ok[i].images,
          rc ? fm_error() : labels);
  }
  CHECK_FAILS(fm_labels_path_for("x-images-idx3-ubyte/pictures.gz", labels, sizeof labels),
              "x-images-idx3-ubyte/pictures.gz: cannot tell the labels file from this name",
              "non-standard name: the labels path must be given");
  CHECK(strstr(fm_error(), "pass the labels path explicitly") != NULL,
        "the message says to pass the labels path");
  CHECK_FAILS(fm_labels_path_for("t10k-images-idx3-ubyte", labels, 10), "path too long",
              "labels path that does not fit the buffer");

  mkdir(tpath("std"), 0700);
  write_file(tpath("std/train-images-idx3-ubyte"), "x", 1);
  write_file(tpath("std/train-images-idx3-ubyte.gz"), "x", 1);
  write_file(tpath("std/train-labels-idx1-ubyte.gz"), "x", 1);
  write_file(tpath("std/t10k-images-idx3-ubyte.gz"), "x", 1);
  char images[512];
  int rc = fm_find_split(tpath("std"), "train", images, labels, sizeof images);
  CHECK(rc == FM_OK && strcmp(images, tpath("std/train-images-idx3-ubyte")) == 0 &&
            strcmp(labels, tpath("std/train-labels-idx1-ubyte.gz")) == 0,
        "train split: raw images preferred over .gz, .gz labels found (%s)",
        rc ? fm_error() : images);
  char with_slash[512];
  snprintf(with_slash, sizeof with_slash, "%s/", tpath("std"));
  rc = fm_find_split(with_slash, "train", images, labels, sizeof images);
  CHECK(rc == FM_OK && strcmp(images, tpath("std/train-images-idx3-ubyte")) == 0,
        "a directory given with a trailing slash");
  CHECK_FAILS(fm_find_split(tpath("std"), "test", images, labels, sizeof images),
              "no test labels in", "test split without labels file");
  CHECK(strstr(fm_error(), "t10k-labels-idx1-ubyte") != NULL,
        "the message names the file looked for (%s)", fm_error());
  CHECK_FAILS(fm_find_split(tpath("adir"), "train", images, labels, sizeof images),
              "no train images in", "a directory without the files");
  CHECK_FAILS(fm_find_split(tpath("std"), "valid", images, labels, sizeof images),
              "unknown split 'valid' (expected train or test)", "unknown split name");
  CHECK_FAILS(fm_find_split(tpath("std"), "train", images, labels, 20), "too long",
              "paths that do not fit the buffers");
}

/* ---- views ---- */

static void test_views(void) {
  /* 7 images of 2x3; classes 0,0,1,1,1,3,9. */
  enum { N = 7, P = 6 };
  static const uint8_t px[N * P] = {0,   10,  255, 3,   4,   5,   /**/ 1, 20,       255,    3, 4,
                                    5,   100, 0,   0,   0,   0,   0,      /**/ 200, 0,      0, 0,
                                    255, 9,   50,  50,  50,  50,  50,     50,       /**/ 7, 7, 7,
                                    7,   7,   7,   255, 255, 255, 255,    255,      255};
  static const uint8_t lb[N] = {0, 0, 1, 1, 1, 3, 9};
  fm_dataset d = {N, 2, 3, px, lb, NULL};
  int64_t counts[FM_CLASSES];
  fm_dataset_counts(&d, FM_CLASSES, counts);
  CHECK(counts[0] == 2 && counts[1] == 3 && counts[2] == 0 && counts[3] == 1 && counts[9] == 1,
        "counts per class");

  /* Mean and population std against a direct two-pass computation in double. */
  for (int cls = -1; cls < FM_CLASSES; cls++) {
    float mean[P], sd[P];
    int64_t m = 0;
    for (int i = 0; i < N; i++) m += cls < 0 || lb[i] == cls;
    if (m == 0) {
      char expect[64];
      snprintf(expect, sizeof expect, "mean_image: class %d has no images in this dataset", cls);
      CHECK_FAILS(fm_dataset_mean_image(&d, cls, mean), expect, "mean_image of empty class %d",
                  cls);
      continue;
    }
    int rc = fm_dataset_mean_image(&d, cls, mean) | fm_dataset_std_image(&d, cls, sd);
    double err_mean = 0, err_sd = 0;
    for (int k = 0; k < P; k++) {
      double s = 0, v = 0;
      for (int i = 0; i < N; i++)
        if (cls < 0 || lb[i] == cls) s += px[i * P + k] / 255.0;
      s /= (double)m;
      for (int i = 0; i < N; i++)
        if (cls < 0 || lb[i] == cls) v += (px[i * P + k] / 255.0 - s) * (px[i * P + k] / 255.0 - s);
      v = sqrt(v / (double)m);
      err_mean = fmax(err_mean, fabs(mean[k] - s));
      err_sd = fmax(err_sd, fabs(sd[k] - v));
    }
    CHECK(rc == FM_OK && err_mean < 1e-6 && err_sd < 1e-6,
          "mean and std images of class %d (max errors %.2g, %.2g)", cls, err_mean, err_sd);
  }
  float img[P];
  CHECK_FAILS(fm_dataset_std_image(&d, 10, img), "std_image: class 10 has no images",
              "std_image of class 10, a class id that a dataset may have, but not this one");
  CHECK_FAILS(fm_dataset_std_image(&d, 256, img), "std_image: class 256 is outside 0-255",
              "std_image of class 256, more than a byte");
  CHECK_FAILS(fm_dataset_mean_image(&d, -2, img), "mean_image: class -2 is outside 0-255",
              "mean_image of class -2");
  fm_dataset_std_image(&d, 9, img);
  CHECK(img[0] == 0.0f && img[5] == 0.0f, "std of a single image is exactly 0");

  /* A view through an index: storage rows 6, 2, 2, 0. */
  static const int32_t index[4] = {6, 2, 2, 0};
  fm_dataset v = {4, 2, 3, px, lb, index};
  fm_dataset_counts(&v, FM_CLASSES, counts);
  CHECK(counts[9] == 1 && counts[1] == 2 && counts[0] == 1, "counts through an index");
  fm_dataset_mean_image(&v, 1, img);
  CHECK(img[0] == (float)(100 / 255.0), "mean image through an index counts repeated rows");

  float x[4 * P];
  uint8_t y[4];
  fm_dataset_fill(&d, 2, 3, x, y);
  int exact = 1;
  for (int i = 0; i < 3 * P; i++) exact &= x[i] == (float)px[2 * P + i] / 255.0f;
  CHECK(exact && y[0] == 1 && y[2] == 1, "fill of a plain view: value / 255.0f and labels");
  fm_dataset_fill(&v, 1, 3, x, NULL);
  exact = 1;
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < P; k++) exact &= x[i * P + k] == (float)px[index[1 + i] * P + k] / 255.0f;
  CHECK(exact, "fill through an index, labels not wanted");

  static const int32_t order[4] = {3, 0, 3, 1};
  fm_dataset_gather(&v, order, 4, x, y);
  exact = 1;
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < P; k++)
      exact &= x[i * P + k] == (float)px[index[order[i]] * P + k] / 255.0f;
  CHECK(exact && y[0] == 0 && y[1] == 9 && y[3] == 1, "gather of view rows 3,0,3,1");
  fm_dataset_gather(&d, order, 4, x, y);
  CHECK(x[0] == (float)px[3 * P] / 255.0f && y[1] == 0, "gather from a plain view");

  int32_t rows[N];
  fm_dataset_storage_rows(&v, rows);
  CHECK(rows[0] == 6 && rows[1] == 2 && rows[2] == 2 && rows[3] == 0, "storage rows of an index");
  fm_dataset_storage_rows(&d, rows);
  CHECK(rows[0] == 0 && rows[6] == 6, "storage rows of a plain view");
}

/* Checks that first and second together hold every storage row of d exactly once. */
static int covers(const fm_dataset *d, const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
  if (na + nb != d->n) return 0;
  int *seen = calloc((size_t)d->n, sizeof *seen);
  int ok = 1;
  for (int64_t i = 0; i < na; i++) ok &= seen[a[i]]++ == 0;
  for (int64_t i = 0; i < nb; i++) ok &= seen[b[i]]++ == 0;
  free(seen);
  return ok;
}

static void test_split(void) {
  /* 1000 images of 1x1, class c has 40 + 12c of them, interleaved. */
  enum { N = 1000 };
  static uint8_t px[N], lb[N];
  int64_t want[FM_CLASSES];
  int64_t n = 0;
  for (int c = 0; c < FM_CLASSES; c++) want[c] = 40 + 12 * c, n += want[c];
  CHECK(n == 940, "split fixture: 940 rows");
  int64_t left[FM_CLASSES];
  memcpy(left, want, sizeof left);
  for (int64_t i = 0, c = 0; i < n; c = (c + 1) % FM_CLASSES) {
    if (left[c] == 0) continue;
    left[c]--;
    lb[i] = (uint8_t)c;
    px[i] = (uint8_t)i;
    i++;
  }
  fm_dataset d = {n, 1, 1, px, lb, NULL};
  static int32_t a[N], b[N], a2[N], b2[N];
  int64_t na, nb, na2;

  CHECK(fm_dataset_split(&d, 0.25, NULL, 0, a, b, &na) == FM_OK && na == 235 &&
            covers(&d, a, na, b, n - na) && a[0] == 0 && a[234] == 234 && b[0] == 235,
        "plain split without rng: the first 235 rows, then the rest, in order");

  fm_rng r;
  fm_rng_seed(&r, 42);
  CHECK(fm_dataset_split(&d, 0.9, &r, 0, a, b, &na) == FM_OK && na == 846 &&
            covers(&d, a, na, b, n - na),
        "plain shuffled split 0.9: 846 + 94, disjoint and covering");
  int in_order = 1;
  for (int64_t i = 1; i < na; i++) in_order &= a[i] > a[i - 1];
  CHECK(!in_order, "plain shuffled split is shuffled");
  fm_rng_seed(&r, 42);
  fm_dataset_split(&d, 0.9, &r, 0, a2, b2, &na2);
  CHECK(na2 == na && memcmp(a, a2, sizeof a) == 0 && memcmp(b, b2, (size_t)(n - na) * 4) == 0,
        "plain split: the same seed gives the same split");
  fm_rng_seed(&r, 43);
  fm_dataset_split(&d, 0.9, &r, 0, a2, b2, &na2);
  CHECK(memcmp(a, a2, (size_t)na * 4) != 0, "plain split: another seed gives another split");

  for (int shuffled = 0; shuffled < 2; shuffled++) {
    fm_rng_seed(&r, 5);
    int rc = fm_dataset_split(&d, 0.7, shuffled ? &r : NULL, 1, a, b, &na);
    nb = n - na;
    int64_t ca[FM_CLASSES] = {0}, cb[FM_CLASSES] = {0}, expect_a = 0;
    for (int64_t i = 0; i < na; i++) ca[lb[a[i]]]++;
    for (int64_t i = 0; i < nb; i++) cb[lb[b[i]]]++;
    int exact = 1;
    for (int c = 0; c < FM_CLASSES; c++) {
      int64_t k = llround(0.7 * (double)want[c]);
      expect_a += k;
      exact &= ca[c] == k && cb[c] == want[c] - k;
    }
    CHECK(rc == FM_OK && na == expect_a && exact,
          "stratified split 0.7 (%s): round(0.7 * count) of every class in the first part",
          shuffled ? "shuffled" : "in order");
    CHECK(covers(&d, a, na, b, nb), "stratified split (%s): disjoint and covering",
          shuffled ? "shuffled" : "in order");
    in_order = 1;
    for (int64_t i = 1; i < na; i++) in_order &= a[i] > a[i - 1];
    for (int64_t i = 1; i < nb; i++) in_order &= b[i] > b[i - 1];
    CHECK(in_order == !shuffled, "stratified split (%s): %s", shuffled ? "shuffled" : "in order",
          shuffled ? "both parts shuffled" : "both parts keep view order");
  }
  fm_rng_seed(&r, 5);
  fm_dataset_split(&d, 0.7, &r, 1, a2, b2, &na2);
  CHECK(na2 == na && memcmp(a, a2, (size_t)na * 4) == 0 && memcmp(b, b2, (size_t)nb * 4) == 0,
        "stratified split: the same seed gives the same split");

  /* A view through an index splits into storage rows of that index. */
  static int32_t index[100];
  for (int i = 0; i < 100; i++) index[i] = 900 + (i % 40);
  fm_dataset v = {100, 1, 1, px, lb, index};
  CHECK(fm_dataset_split(&v, 0.5, NULL, 0, a, b, &na) == FM_OK && na == 50 && a[0] == 900 &&
            b[0] == 910,
        "split of an indexed view gives storage rows");
  CHECK(fm_dataset_split(&d, 0.0, NULL, 1, a, b, &na) == FM_OK && na == 0,
        "fraction 0: everything in the second part");
  CHECK(fm_dataset_split(&d, 1.0, &r, 0, a, b, &na) == FM_OK && na == n,
        "fraction 1: everything in the first part");
  CHECK_FAILS(fm_dataset_split(&d, 1.5, NULL, 0, a, b, &na), "split: fraction 1.5 is outside 0-1",
              "fraction 1.5 refused");
  CHECK_FAILS(fm_dataset_split(&d, NAN, NULL, 0, a, b, &na), "split: fraction nan is outside 0-1",
              "fraction NaN refused");
  /* Labels beyond Fashion-MNIST's ten are classes too: 60 images of class 11 and 40 of 200. */
  static uint8_t wide_lb[100];
  for (int i = 0; i < 100; i++) wide_lb[i] = i % 5 < 3 ? 11 : 200;
  fm_dataset w = {100, 1, 1, px, wide_lb, NULL};
  int64_t c11 = 0, c200 = 0;
  CHECK(fm_dataset_split(&w, 0.25, NULL, 1, a, b, &na) == FM_OK && na == 25,
        "stratified split of labels 11 and 200: 15 + 10 in the first part");
  for (int64_t i = 0; i < na; i++) c11 += wide_lb[a[i]] == 11, c200 += wide_lb[a[i]] == 200;
  CHECK(c11 == 15 && c200 == 10 && covers(&w, a, na, b, 100 - na),
        "stratified split keeps the share of classes 11 and 200 (%lld, %lld)", (long long)c11,
        (long long)c200);
  int64_t wc[FM_MAX_CLASSES];
  fm_dataset_counts(&w, 12, wc);
  CHECK(wc[11] == 60 && wc[0] == 0, "counts of 12 classes: 60 of class 11, label 200 not counted");
}

/* ---- the real Fashion-MNIST files ---- */

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void test_fashion_mnist(void) {
  char images[512], labels[512];
  if (fm_find_split(SYSTEM_DIR, "test", images, labels, sizeof images) != FM_OK) {
    printf("ok %d # skip Fashion-MNIST is not installed in %s (package dataset-fashion-mnist)\n",
           ++check_count, SYSTEM_DIR);
    return;
  }
  double t0 = now_seconds();
  fm_idx_info ii, li;
  uint8_t *px, *lb;
  int rc = load_idx(images, &ii, &px);
  CHECK(rc == FM_OK, "test images load from %s (%s)", images, rc ? fm_error() : "ok");
  if (rc) return;
  rc = load_idx(labels, &li, &lb);
  CHECK(rc == FM_OK, "test labels load from %s (%s)", labels, rc ? fm_error() : "ok");
  if (rc) {
    free(px);
    return;
  }
  printf("# test set loaded from gzip in %.3f s\n", now_seconds() - t0);
  CHECK(ii.count == 10000 && ii.rows == 28 && ii.cols == 28 && li.count == 10000,
        "test set: 10000 images of 28x28 and 10000 labels");
  CHECK(fm_labels_check(lb, li.count, labels) == FM_OK, "test labels are all 0-9");
  fm_dataset d = {ii.count, ii.rows, ii.cols, px, lb, NULL};
  int64_t counts[FM_CLASSES];
  fm_dataset_counts(&d, FM_CLASSES, counts);
  int all_1000 = 1;
  for (int c = 0; c < FM_CLASSES; c++) all_1000 &= counts[c] == 1000;
  CHECK(all_1000, "test set: 1000 images of every class");

  /* The same set as raw IDX files and as a Kaggle CSV with a header and CRLF line ends. */
  write_images(tpath("t10k-images-idx3-ubyte"), 0, px, (uint32_t)ii.count);
  write_labels(tpath("t10k-labels-idx1-ubyte"), 0, lb, (uint32_t)li.count);
  write_csv(tpath("fashion-mnist_test.csv"), px, lb, ii.count, 1, 1, 1);
  uint8_t *raw_px, *raw_lb, *csv_px, *csv_lb;
  fm_idx_info ri, rl;
  fm_csv_info ci;
  rc = load_idx(tpath("t10k-images-idx3-ubyte"), &ri, &raw_px) |
       load_idx(tpath("t10k-labels-idx1-ubyte"), &rl, &raw_lb);
  CHECK(rc == FM_OK && ri.count == 10000 && memcmp(raw_px, px, (size_t)ii.bytes) == 0 &&
            memcmp(raw_lb, lb, 10000) == 0,
        "test set through raw IDX files: identical bytes");
  t0 = now_seconds();
  rc = load_csv(tpath("fashion-mnist_test.csv"), &ci, &csv_px, &csv_lb);
  double t_csv = now_seconds() - t0;
  CHECK(rc == FM_OK && ci.count == 10000 && ci.has_header &&
            memcmp(csv_px, px, (size_t)ii.bytes) == 0 && memcmp(csv_lb, lb, 10000) == 0,
        "test set through a CSV with header and CRLF: identical bytes");
  printf("# test set loaded from CSV in %.3f s\n", t_csv);
  free(raw_px), free(raw_lb), free(csv_px), free(csv_lb);

  /* Statistics of the real set, in [0,1] units. */
  float mean[PIXELS], sd[PIXELS];
  rc = fm_dataset_mean_image(&d, -1, mean) | fm_dataset_std_image(&d, -1, sd);
  double overall = 0, maxsd = 0;
  for (int k = 0; k < PIXELS; k++) overall += mean[k] / PIXELS, maxsd = fmax(maxsd, sd[k]);
  CHECK(rc == FM_OK && overall > 0.2 && overall < 0.4 && maxsd > 0.2 && maxsd <= 0.5,
        "test set: mean pixel %.4f, largest pixel std %.4f", overall, maxsd);
  free(px), free(lb);

  /* Both sets, as `fm.load` would read them. */
  if (fm_find_split(SYSTEM_DIR, "train", images, labels, sizeof images) == FM_OK) {
    t0 = now_seconds();
    rc = load_idx(images, &ii, &px) | load_idx(labels, &li, &lb);
    CHECK(rc == FM_OK && ii.count == 60000 && li.count == 60000, "training set: 60000 images");
    if (rc == FM_OK) {
      printf("# training set loaded from gzip in %.3f s\n", now_seconds() - t0);
      d = (fm_dataset){ii.count, ii.rows, ii.cols, px, lb, NULL};
      fm_dataset_counts(&d, FM_CLASSES, counts);
      int all_6000 = 1;
      for (int c = 0; c < FM_CLASSES; c++) all_6000 &= counts[c] == 6000;
      CHECK(all_6000, "training set: 6000 images of every class");
      /* Touched first, so that the time is the scaling and not the kernel's page faults. */
      float *x = malloc((size_t)ii.bytes * sizeof *x);
      memset(x, 0xff, (size_t)ii.bytes * sizeof *x); /* not 0: malloc + memset 0 becomes calloc */
      t0 = now_seconds();
      fm_dataset_fill(&d, 0, d.n, x, NULL);
      printf("# 60000 images scaled to floats in %.3f s\n", now_seconds() - t0);
      CHECK(x[PIXELS * 59999 + 400] == px[PIXELS * 59999 + 400] / 255.0f,
            "training set: fill of all images");
      free(x);
    }
    free(px), free(lb);
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/fmnist-test-dataset-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! cannot create a temporary directory in %s\n", tmpdir);
    return 1;
  }
  make_small();
  test_idx_good();
  test_idx_bad_headers();
  test_idx_bad_bodies();
  test_idx_fifo();
  test_csv_good();
  test_csv_bad();
  test_csv_layouts();
  test_from_data();
  test_names();
  test_views();
  test_split();
  test_fashion_mnist();
  nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return check_done();
}
