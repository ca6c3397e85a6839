/* fm_idx: reading IDX files (the format Fashion-MNIST ships in), raw or gzip-compressed.
 *
 * An IDX file is a 4-byte magic number 0x0000 TT ND (TT the element type, ND the number of
 * dimensions), ND big-endian uint32 dimensions, then the elements. Only unsigned bytes (TT = 0x08)
 * with one dimension (labels) or three (images) are accepted.
 *
 * zlib's gz* functions read both raw and gzip files, so one code path serves both; whether a file is
 * gzip is told from its first two bytes, never from its name. A truncated or corrupt gzip stream is
 * reported by zlib through gzerror(), not through a negative count, so every read checks it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fm_dataset.h"
#include "fm_error.h"

#define IDX_UBYTE 0x08
/* Deflate cannot expand its input more than about 1032:1; a header that promises more data than the
 * compressed file could hold is refused before anyone allocates for it. */
#define GZIP_MAX_RATIO 1100
/* gzread counts in unsigned int and returns int: read large bodies in pieces of this size. */
#define READ_CHUNK ((int64_t)1 << 30)

typedef struct idx_file {
  const char *path;
  gzFile gz;
  int is_gzip;       /* the content starts with the gzip magic 1f 8b */
  int64_t file_size; /* bytes on disk; -1 when not a regular file */
} idx_file;

typedef struct idx_header {
  uint8_t magic[4];
  int64_t dims[3];
} idx_header;

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Opens path for reading through zlib, after checking that it is a readable, non-empty file. */
static int idx_open(idx_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->path = path;
  f->file_size = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fm_fail("cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fm_fail("cannot read %s: %s", path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return fm_fail("%s: is a directory, not an IDX file", path);
  }
  if (S_ISREG(st.st_mode)) {
    f->file_size = (int64_t)st.st_size;
    if (st.st_size == 0) {
      close(fd);
      return fm_fail("%s: file is empty", path);
    }
  }
  uint8_t head[2] = {0, 0};
  ssize_t got = pread(fd, head, 2, 0);
  f->is_gzip = got == 2 && head[0] == 0x1f && head[1] == 0x8b;
  f->gz = gzdopen(fd, "rb");
  if (!f->gz) {
    close(fd);
    return fm_fail("cannot read %s: out of memory", path);
  }
  /* A larger input buffer than zlib's 8 KB default roughly halves the system calls on big files. */
  gzbuffer(f->gz, 1 << 18);
  return FM_OK;
}

static void idx_close(idx_file *f) {
  if (f->gz) gzclose(f->gz);
  f->gz = NULL;
}

/* The failure behind a short or failed gzread, in words. */
static int idx_stream_error(const idx_file *f, const char *where) {
  int errnum = Z_OK;
  const char *msg = gzerror(f->gz, &errnum);
  if (errnum == Z_BUF_ERROR)
    return fm_fail("%s: truncated gzip stream (%s) while reading the %s", f->path, msg, where);
  if (errnum == Z_ERRNO)
    return fm_fail("%s: read error in the %s: %s", f->path, where, strerror(errno));
  if (errnum != Z_OK)
    return fm_fail("%s: corrupt gzip data in the %s (%s)", f->path, where, msg);
  return FM_OK;
}

/* Reads exactly n bytes; *got tells how many arrived when the file ends early. */
static int idx_read_exact(const idx_file *f, uint8_t *dst, int64_t n, int64_t *got,
                          const char *where) {
  *got = 0;
  while (*got < n) {
    int64_t want = n - *got < READ_CHUNK ? n - *got : READ_CHUNK;
    int r = gzread(f->gz, dst + *got, (unsigned)want);
    if (r < 0) {
      if (idx_stream_error(f, where) == FM_ERR) return FM_ERR;
      return fm_fail("%s: read error in the %s", f->path, where);
    }
    *got += r;
    if (r < want) break;
  }
  /* zlib reports a gzip stream cut short as a short count with Z_BUF_ERROR set, not as -1. The
   * check is made for every file: through a pipe the content could not be sniffed beforehand. */
  if (idx_stream_error(f, where) == FM_ERR) return FM_ERR;
  return FM_OK;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *idx_type_name(int t) {
  switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
  }
}

/* Reads the magic number and dimensions and checks them. */
static int idx_read_header(const idx_file *f, idx_header *h) {
  int64_t got;
  if (idx_read_exact(f, h->magic, 4, &got, "header") != FM_OK) return FM_ERR;
  if (got == 0)
    return fm_fail(f->is_gzip ? "%s: empty after gzip decompression" : "%s: file is empty", f->path);
  uint32_t magic = got == 4 ? be32(h->magic) : 0;
  if (got == 4 && h->magic[0] == 0 && h->magic[1] == 0) {
    /* Looks like an IDX header: the checks below say precisely what is wrong with it. */
  } else if (!f->is_gzip && has_suffix(f->path, ".gz")) {
    return fm_fail("%s: named .gz but is neither gzip data nor an IDX file", f->path);
  } else if (got < 4) {
    return fm_fail("%s: truncated IDX header (%lld of at least 8 bytes)", f->path, (long long)got);
  } else {
    return fm_fail("%s: not an IDX file: magic number 0x%08x, expected 0x00000801 (labels) or "
                   "0x00000803 (images)",
                   f->path, (unsigned)magic);
  }
  int type = h->magic[2], ndim = h->magic[3];
  if (type != IDX_UBYTE)
    return fm_fail("%s: IDX data type 0x%02x (%s) is not unsigned byte (0x08): magic number "
                   "0x%08x, expected 0x00000801 or 0x00000803",
                   f->path, type, idx_type_name(type), (unsigned)magic);
  if (ndim != 1 && ndim != 3)
    return fm_fail("%s: IDX file has %d dimensions (magic number 0x%08x), expected 1 for labels "
                   "(0x00000801) or 3 for images (0x00000803)",
                   f->path, ndim, (unsigned)magic);
  uint8_t raw[12];
  if (idx_read_exact(f, raw, 4 * ndim, &got, "header") != FM_OK) return FM_ERR;
  if (got < 4 * ndim)
    return fm_fail("%s: truncated IDX header (%lld of %d bytes)", f->path, (long long)(4 + got),
                   4 + 4 * ndim);
  static const char *const dim_names[3] = {"count", "rows", "columns"};
  for (int i = 0; i < 3; i++) h->dims[i] = i < ndim ? (int64_t)be32(raw + 4 * i) : 1;
  for (int i = 0; i < ndim; i++)
    if (h->dims[i] == 0) return fm_fail("%s: IDX dimension %d (%s) is zero", f->path, i + 1,
                                        dim_names[i]);
  if (h->dims[0] > FM_MAX_IMAGES)
    return fm_fail("%s: IDX header claims %lld items, an absurd count (the limit is %lld)", f->path,
                   (long long)h->dims[0], (long long)FM_MAX_IMAGES);
  if (h->dims[1] > FM_MAX_SIDE || h->dims[2] > FM_MAX_SIDE)
    return fm_fail("%s: IDX header claims %lldx%lld images, an absurd size (the limit is %d a "
                   "side)",
                   f->path, (long long)h->dims[1], (long long)h->dims[2], FM_MAX_SIDE);
  return FM_OK;
}

static void header_to_info(const uint8_t *magic, const int64_t *dims, fm_idx_info *info) {
  info->ndim = magic[3];
  info->count = dims[0];
  info->rows = dims[1];
  info->cols = dims[2];
  /* Each factor is bounded above (2^27 * 2^12 * 2^12), so the product fits in int64. */
  info->bytes = dims[0] * dims[1] * dims[2];
}

/* What the header says can be checked against the file's size before any body is read. */
static int idx_check_size(const idx_file *f, const fm_idx_info *info) {
  if (f->file_size < 0) return FM_OK;
  int64_t header = 4 + 4 * (int64_t)info->ndim;
  if (!f->is_gzip) {
    int64_t body = f->file_size - header;
    if (body < info->bytes)
      return fm_fail("%s: truncated: the header promises %lld bytes of data, the file holds %lld",
                     f->path, (long long)info->bytes, (long long)body);
    if (body > info->bytes)
      return fm_fail("%s: %lld bytes of extra data after the %lld bytes the header promises",
                     f->path, (long long)(body - info->bytes), (long long)info->bytes);
  } else if (info->bytes > f->file_size * GZIP_MAX_RATIO) {
    return fm_fail("%s: the header promises %lld bytes of data, more than a %lld-byte gzip file "
                   "can hold (truncated or corrupt)",
                   f->path, (long long)info->bytes, (long long)f->file_size);
  }
  return FM_OK;
}

int fm_idx_probe(const char *path, fm_idx_info *info) {
  idx_file f;
  idx_header h;
  if (idx_open(&f, path) != FM_OK) return FM_ERR;
  int rc = idx_read_header(&f, &h);
  if (rc == FM_OK) {
    header_to_info(h.magic, h.dims, info);
    rc = idx_check_size(&f, info);
  }
  idx_close(&f);
  return rc;
}

static int idx_read_body(const idx_file *f, const fm_idx_info *info, uint8_t *dst) {
  idx_header h;
  if (idx_read_header(f, &h) != FM_OK) return FM_ERR;
  fm_idx_info now;
  header_to_info(h.magic, h.dims, &now);
  if (now.ndim != info->ndim || now.count != info->count || now.rows != info->rows ||
      now.cols != info->cols)
    return fm_fail("%s: file changed while being loaded (its header no longer matches the one "
                   "read before)",
                   f->path);
  int64_t got;
  if (idx_read_exact(f, dst, info->bytes, &got, "data") != FM_OK) return FM_ERR;
  if (got < info->bytes)
    return fm_fail("%s: truncated: the header promises %lld bytes of data, the file holds %lld",
                   f->path, (long long)info->bytes, (long long)got);
  /* One more byte must not exist; for gzip this read also makes zlib check the stream's CRC and
   * length, and notice a stream cut inside its trailer. */
  uint8_t extra;
  if (idx_read_exact(f, &extra, 1, &got, "data") != FM_OK) return FM_ERR;
  if (got != 0)
    return fm_fail("%s: extra data after the %lld bytes the header promises", f->path,
                   (long long)info->bytes);
  return FM_OK;
}

int fm_idx_read(const char *path, const fm_idx_info *info, uint8_t *dst) {
  idx_file f;
  if (idx_open(&f, path) != FM_OK) return FM_ERR;
  int rc = idx_read_body(&f, info, dst);
  idx_close(&f);
  return rc;
}
