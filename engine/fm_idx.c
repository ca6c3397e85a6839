/* fm_idx: reading IDX files (the format Fashion-MNIST ships in), raw or gzip-compressed.
 *
 * An IDX file is a 4-byte magic number 0x0000 TT ND (TT the element type, ND the number of
 * dimensions), ND big-endian uint32 dimensions, then the elements. Only unsigned bytes (TT = 0x08)
 * with one dimension (labels) or three (images) are accepted.
 *
 * fm_stream reads raw and gzip files alike (gzip told from the content, never from the name) and
 * reports a truncated or corrupt gzip stream; what is left here is the IDX structure itself. */
#include <string.h>

#include "fm_dataset.h"
#include "fm_error.h"
#include "fm_stream.h"

#define IDX_UBYTE 0x08
/* Deflate cannot expand its input more than about 1032:1; a header that promises more data than the
 * compressed file could hold is refused before anyone allocates for it. */
#define GZIP_MAX_RATIO 1100

typedef struct idx_header {
  uint8_t magic[4];
  int64_t dims[3];
} idx_header;

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *idx_type_name(int t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "short";
    case 0x0C:
      return "int";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
    default:
      return "unknown";
  }
}

/* Reads the magic number and dimensions and checks them. */
static int idx_read_header(fm_stream *f, idx_header *h) {
  int64_t got;
  if (fm_stream_read(f, h->magic, 4, &got) != FM_OK) return FM_ERR;
  if (got == 0)
    return fm_fail(f->is_gzip ? "%s: empty after gzip decompression" : "%s: file is empty",
                   f->path);
  uint32_t magic = got == 4 ? be32(h->magic) : 0;
  if (got == 4 && h->magic[0] == 0 && h->magic[1] == 0) {
    /* Looks like an IDX header: the checks below say precisely what is wrong with it. */
  } else if (!f->is_gzip && has_suffix(f->path, ".gz")) {
    return fm_fail("%s: named .gz but is neither gzip data nor an IDX file", f->path);
  } else if (got < 4) {
    return fm_fail("%s: truncated IDX header (%lld of at least 8 bytes)", f->path, (long long)got);
  } else {
    return fm_fail(
        "%s: not an IDX file: magic number 0x%08x, expected 0x00000801 (labels) or "
        "0x00000803 (images)",
        f->path, (unsigned)magic);
  }
  int type = h->magic[2], ndim = h->magic[3];
  if (type != IDX_UBYTE)
    return fm_fail(
        "%s: IDX data type 0x%02x (%s) is not unsigned byte (0x08): magic number "
        "0x%08x, expected 0x00000801 or 0x00000803",
        f->path, type, idx_type_name(type), (unsigned)magic);
  if (ndim != 1 && ndim != 3)
    return fm_fail(
        "%s: IDX file has %d dimensions (magic number 0x%08x), expected 1 for labels "
        "(0x00000801) or 3 for images (0x00000803)",
        f->path, ndim, (unsigned)magic);
  uint8_t raw[12];
  if (fm_stream_read(f, raw, 4 * ndim, &got) != FM_OK) return FM_ERR;
  if (got < 4 * ndim)
    return fm_fail("%s: truncated IDX header (%lld of %d bytes)", f->path, (long long)(4 + got),
                   4 + 4 * ndim);
  static const char *const dim_names[3] = {"count", "rows", "columns"};
  for (int i = 0; i < 3; i++) h->dims[i] = i < ndim ? (int64_t)be32(raw + 4 * i) : 1;
  for (int i = 0; i < ndim; i++)
    if (h->dims[i] == 0)
      return fm_fail("%s: IDX dimension %d (%s) is zero", f->path, i + 1, dim_names[i]);
  if (h->dims[0] > FM_MAX_IMAGES)
    return fm_fail("%s: IDX header claims %lld items, an absurd count (the limit is %lld)", f->path,
                   (long long)h->dims[0], (long long)FM_MAX_IMAGES);
  if (h->dims[1] > FM_MAX_SIDE || h->dims[2] > FM_MAX_SIDE)
    return fm_fail(
        "%s: IDX header claims %lldx%lld images, an absurd size (the limit is %d a "
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
static int idx_check_size(const fm_stream *f, const fm_idx_info *info) {
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
    return fm_fail(
        "%s: the header promises %lld bytes of data, more than a %lld-byte gzip file "
        "can hold (truncated or corrupt)",
        f->path, (long long)info->bytes, (long long)f->file_size);
  }
  return FM_OK;
}

int fm_idx_probe(const char *path, fm_idx_info *info) {
  fm_stream f;
  idx_header h;
  if (fm_stream_open(&f, path, "an IDX file") != FM_OK) return FM_ERR;
  int rc = idx_read_header(&f, &h);
  if (rc == FM_OK) {
    header_to_info(h.magic, h.dims, info);
    rc = idx_check_size(&f, info);
  }
  fm_stream_close(&f);
  return rc;
}

static int idx_read_body(fm_stream *f, const fm_idx_info *info, uint8_t *dst) {
  idx_header h;
  if (idx_read_header(f, &h) != FM_OK) return FM_ERR;
  fm_idx_info now;
  header_to_info(h.magic, h.dims, &now);
  if (now.ndim != info->ndim || now.count != info->count || now.rows != info->rows ||
      now.cols != info->cols)
    return fm_fail(
        "%s: file changed while being loaded (its header no longer matches the one "
        "read before)",
        f->path);
  int64_t got;
  if (fm_stream_read(f, dst, info->bytes, &got) != FM_OK) return FM_ERR;
  if (got < info->bytes)
    return fm_fail("%s: truncated: the header promises %lld bytes of data, the file holds %lld",
                   f->path, (long long)info->bytes, (long long)got);
  /* One more byte must not exist; for gzip this read also reaches the stream's trailer, so its CRC
   * and length are checked and a stream cut inside it is noticed. */
  uint8_t extra;
  if (fm_stream_read(f, &extra, 1, &got) != FM_OK) return FM_ERR;
  if (got != 0)
    return fm_fail("%s: extra data after the %lld bytes the header promises", f->path,
                   (long long)info->bytes);
  return FM_OK;
}

int fm_idx_read(const char *path, const fm_idx_info *info, uint8_t *dst) {
  fm_stream f;
  if (fm_stream_open(&f, path, "an IDX file") != FM_OK) return FM_ERR;
  int rc = idx_read_body(&f, info, dst);
  fm_stream_close(&f);
  return rc;
}
