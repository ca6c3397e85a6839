/* fm_npy: the .npy header is a magic string, a version, a header length and a Python dict literal
 * such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. Only what this project
 * writes and reads is accepted; anything else is refused with a message naming the file. */
#include "fm_npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_error.h"
#include "fm_file.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* Finds 'key': in the header dict and returns a pointer just after the colon, or NULL. */
static const char *dict_value(const char *header, const char *key) {
  char quoted[32];
  snprintf(quoted, sizeof quoted, "'%s'", key);
  const char *p = strstr(header, quoted);
  if (!p) {
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    p = strstr(header, quoted);
  }
  if (!p) return NULL;
  p += strlen(quoted);
  while (*p == ' ') p++;
  if (*p != ':') return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

static int parse_header(const char *path, const char *header, fm_npy_info *info) {
  const char *descr = dict_value(header, "descr");
  if (!descr) return fm_fail("%s: not a valid .npy file (no 'descr' in the header)", path);
  if (strncmp(descr, "'<f4'", 5) == 0)
    info->is_uint8 = 0;
  else if (strncmp(descr, "'|u1'", 5) == 0 || strncmp(descr, "'u1'", 4) == 0)
    info->is_uint8 = 1;
  else {
    int len = 0;
    while (descr[len] && descr[len] != ',' && len < 16) len++;
    return fm_fail("%s: dtype %.*s is not supported (float32 '<f4' or uint8 '|u1')", path, len,
                   descr);
  }
  const char *order = dict_value(header, "fortran_order");
  if (!order || strncmp(order, "False", 5) != 0)
    return fm_fail("%s: Fortran-ordered arrays are not supported (save with C order)", path);
  const char *shape = dict_value(header, "shape");
  if (!shape || *shape != '(') return fm_fail("%s: not a valid .npy file (no shape)", path);
  shape++;
  int ndim = 0;
  int64_t dims[FM_MAX_DIMS];
  for (;;) {
    while (*shape == ' ' || *shape == ',') shape++;
    if (*shape == ')') break;
    char *end;
    errno = 0;
    long long v = strtoll(shape, &end, 10);
    if (end == shape || errno || v < 0) return fm_fail("%s: not a valid .npy file (bad shape)", path);
    if (ndim == FM_MAX_DIMS)
      return fm_fail("%s: arrays of more than %d dimensions are not supported", path, FM_MAX_DIMS);
    dims[ndim++] = v;
    shape = end;
  }
  if (ndim == 0) return fm_fail("%s: 0-dimensional arrays are not supported", path);
  fm_tensor t;
  if (fm_shape_set(&t, ndim, dims) != FM_OK) {
    char why[256];
    snprintf(why, sizeof why, "%s", fm_error());
    return fm_fail("%s: %s", path, why);
  }
  info->ndim = ndim;
  memcpy(info->shape, dims, sizeof dims);
  return FM_OK;
}

/* What kind of thing a non-regular file is, for messages. */
static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* Opens path for reading; only a regular file will do (the data is found by its size and read
 * in a second pass). O_NONBLOCK keeps the open of a FIFO from waiting for a writer; it is
 * cleared again once the file is known to be regular. */
static FILE *open_npy(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    fm_fail("%s: cannot open (%s)", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    fm_fail("%s: cannot read (%s)", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    fm_fail("%s: is %s, not a .npy file", path, file_kind(st.st_mode));
    close(fd);
    return NULL;
  }
  FILE *f = NULL;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 || !(f = fdopen(fd, "rb"))) {
    fm_fail("%s: cannot read (%s)", path, strerror(errno));
    close(fd);
  }
  return f;
}

/* Reads and checks the header of the open file f; on success f is at the data. */
static int read_header(FILE *f, const char *path, fm_npy_info *info) {
  unsigned char pre[10];
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, npy_magic, 6) != 0)
    return fm_fail("%s: not a .npy file (no \\x93NUMPY magic)", path);
  size_t hlen;
  long offset;
  if (pre[6] == 1) {
    hlen = pre[8] | (size_t)pre[9] << 8;
    offset = 10;
  } else if (pre[6] == 2 || pre[6] == 3) {
    unsigned char more[2];
    if (fread(more, 1, 2, f) != 2) return fm_fail("%s: truncated .npy header", path);
    hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)more[0] << 16 | (size_t)more[1] << 24;
    offset = 12;
  } else {
    return fm_fail("%s: .npy version %d is not supported", path, pre[6]);
  }
  if (hlen > 1 << 20) return fm_fail("%s: .npy header of %zu bytes is absurd", path, hlen);
  char *header = malloc(hlen + 1);
  if (!header) return fm_fail("%s: out of memory for a .npy header of %zu bytes", path, hlen);
  int rc;
  if (fread(header, 1, hlen, f) != hlen) {
    rc = fm_fail("%s: truncated .npy header", path);
  } else {
    header[hlen] = '\0';
    rc = parse_header(path, header, info);
  }
  free(header);
  info->data_offset = offset + (long)hlen;
  return rc;
}

static int64_t npy_numel(const fm_npy_info *info) {
  int64_t numel = 1; /* bounded: parse_header checked the shape with fm_shape_set */
  for (int i = 0; i < info->ndim; i++) numel *= info->shape[i];
  return numel;
}

int fm_npy_probe(const char *path, fm_npy_info *info) {
  FILE *f = open_npy(path);
  if (!f) return FM_ERR;
  int rc = read_header(f, path, info);
  if (rc == FM_OK) {
    /* The file must hold exactly the data the header announces. */
    int64_t want = info->data_offset + npy_numel(info) * (info->is_uint8 ? 1 : 4);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size != want)
      rc = fm_fail("%s: holds %ld bytes where its header announces %lld (truncated or corrupt)",
                   path, size, (long long)want);
  }
  fclose(f);
  return rc;
}

int fm_npy_read(const char *path, const fm_npy_info *info, fm_tensor *t) {
  if (t->numel != npy_numel(info))
    return fm_fail("%s: a tensor of %lld elements cannot take %lld", path, (long long)t->numel,
                   (long long)npy_numel(info));
  FILE *f = open_npy(path);
  if (!f) return FM_ERR;
  /* The header is read again: the file may have been replaced since the probe. */
  fm_npy_info now;
  int rc = read_header(f, path, &now);
  if (rc == FM_OK && (now.ndim != info->ndim || now.is_uint8 != info->is_uint8 ||
                      now.data_offset != info->data_offset ||
                      memcmp(now.shape, info->shape, sizeof now.shape[0] * (size_t)now.ndim) != 0))
    rc = fm_fail("%s: file changed while being loaded (its header no longer matches)", path);
  if (rc == FM_OK && info->is_uint8) {
    /* Converted from the end backwards, in place: each float takes the room of 4 bytes. */
    unsigned char *bytes = (unsigned char *)t->data;
    if (fread(bytes, 1, (size_t)t->numel, f) != (size_t)t->numel)
      rc = fm_fail("%s: truncated data", path);
    else
      for (int64_t i = t->numel - 1; i >= 0; i--) t->data[i] = (float)bytes[i];
  } else if (rc == FM_OK) {
    if (fread(t->data, sizeof(float), (size_t)t->numel, f) != (size_t)t->numel)
      rc = fm_fail("%s: truncated data", path);
  }
  fclose(f);
  return rc;
}

int fm_npy_write(const char *path, const fm_tensor *t) {
  char dict[256];
  int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  /* numpy's tuple syntax: (3,) for one dimension, (3, 5) for more. */
  for (int i = 0; i < t->ndim; i++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld%s", i ? ", " : "",
                  (long long)t->shape[i], t->ndim == 1 ? "," : "");
  n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
  /* Header padded with spaces and a newline so that the data starts on a 64-byte boundary. */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  unsigned char pre[10];
  memcpy(pre, npy_magic, 6);
  pre[6] = 1;
  pre[7] = 0;
  size_t hlen = (size_t)n + pad + 1;
  pre[8] = (unsigned char)(hlen & 0xff);
  pre[9] = (unsigned char)(hlen >> 8);
  fm_atomic_file a;
  if (fm_atomic_begin(&a, path) != FM_OK) return FM_ERR;
  fwrite(pre, 1, 10, a.f);
  fwrite(dict, 1, (size_t)n, a.f);
  for (size_t i = 0; i < pad; i++) fputc(' ', a.f);
  fputc('\n', a.f);
  fwrite(t->data, sizeof(float), (size_t)t->numel, a.f);
  return fm_atomic_commit(&a);
}
