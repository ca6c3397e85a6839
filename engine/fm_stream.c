/* fm_stream: raw or gzip file reading with every truncation and corruption reported (see the header
 * for why inflate is driven by hand). Large reads go straight into the caller's buffer: raw files
 * through read(2), gzip files through inflate with the caller's buffer as its output. */
#include "fm_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_error.h"

#define STREAM_BUFFER (1 << 18)
/* read(2) and inflate's avail_out take at most this much at a time. */
#define STREAM_CHUNK ((int64_t)1 << 30)

/* One read(2), retried when a signal interrupts it. */
static int read_some(fm_stream *s, void *dst, size_t n, size_t *got) {
  ssize_t r;
  do r = read(s->fd, dst, n);
  while (r < 0 && errno == EINTR);
  if (r < 0) return fm_fail("%s: read error: %s", s->path, strerror(errno));
  *got = (size_t)r;
  if (r == 0) s->input_eof = 1;
  return FM_OK;
}

/* Refills the input buffer once its bytes are used up. */
static int refill(fm_stream *s) {
  size_t got;
  if (read_some(s, s->in, STREAM_BUFFER, &got) != FM_OK) return FM_ERR;
  s->in_pos = 0;
  s->in_len = got;
  return FM_OK;
}

int fm_stream_open(fm_stream *s, const char *path, const char *kind) {
  memset(s, 0, sizeof *s);
  s->path = path;
  s->fd = -1;
  s->file_size = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fm_fail("cannot open %s: %s", path, strerror(errno));
  s->fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    fm_stream_close(s);
    return fm_fail("cannot read %s: %s", path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    fm_stream_close(s);
    return fm_fail("%s: is a directory, not %s", path, kind);
  }
  if (S_ISREG(st.st_mode)) s->file_size = (int64_t)st.st_size;
  if (s->file_size == 0) {
    fm_stream_close(s);
    return fm_fail("%s: file is empty", path);
  }
  s->in = malloc(STREAM_BUFFER);
  if (!s->in) {
    fm_stream_close(s);
    return fm_fail("cannot read %s: out of memory", path);
  }
  /* Sniff the first two bytes; a pipe may deliver them one at a time. */
  while (s->in_len < 2 && !s->input_eof) {
    size_t got;
    if (read_some(s, s->in + s->in_len, STREAM_BUFFER - s->in_len, &got) != FM_OK) {
      fm_stream_close(s);
      return FM_ERR;
    }
    s->in_len += got;
  }
  if (s->in_len == 0) {
    fm_stream_close(s);
    return fm_fail("%s: file is empty", path);
  }
  s->is_gzip = s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
  if (s->is_gzip) {
    /* 15 + 16: a 32 KB window, gzip wrapper only (its CRC-32 and length are checked). */
    if (inflateInit2(&s->z, 15 + 16) != Z_OK) {
      fm_stream_close(s);
      return fm_fail("cannot read %s: out of memory for zlib", path);
    }
    s->z_live = 1;
  }
  return FM_OK;
}

void fm_stream_close(fm_stream *s) {
  if (s->z_live) inflateEnd(&s->z);
  s->z_live = 0;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  free(s->in);
  s->in = NULL;
}

static int read_raw(fm_stream *s, uint8_t *dst, int64_t n, int64_t *got) {
  while (*got < n) {
    if (s->in_pos < s->in_len) {
      size_t k = s->in_len - s->in_pos;
      if ((int64_t)k > n - *got) k = (size_t)(n - *got);
      memcpy(dst + *got, s->in + s->in_pos, k);
      s->in_pos += k;
      *got += (int64_t)k;
      continue;
    }
    if (s->input_eof) break;
    size_t k;
    if (n - *got >= STREAM_BUFFER) {
      /* Big reads skip the buffer. */
      int64_t want = n - *got < STREAM_CHUNK ? n - *got : STREAM_CHUNK;
      if (read_some(s, dst + *got, (size_t)want, &k) != FM_OK) return FM_ERR;
      *got += (int64_t)k;
    } else if (refill(s) != FM_OK) {
      return FM_ERR;
    }
  }
  return FM_OK;
}

static int read_gzip(fm_stream *s, uint8_t *dst, int64_t n, int64_t *got) {
  while (*got < n) {
    if (s->in_pos == s->in_len && !s->input_eof && refill(s) != FM_OK) return FM_ERR;
    int64_t avail = (int64_t)(s->in_len - s->in_pos);
    if (s->member_done) {
      if (avail == 0) {
        if (s->input_eof) break; /* the clean end: every member had its trailer */
        continue;
      }
      /* Concatenated gzip files are one valid gzip file; anything else is not. */
      if (s->in[s->in_pos] != 0x1f)
        return fm_fail("%s: extra data after the end of the gzip stream", s->path);
      inflateReset(&s->z);
      s->member_done = 0;
    }
    if (avail == 0) return fm_fail("%s: truncated gzip stream (unexpected end of file)", s->path);
    int64_t want = n - *got < STREAM_CHUNK ? n - *got : STREAM_CHUNK;
    s->z.next_in = s->in + s->in_pos;
    s->z.avail_in = (uInt)avail;
    s->z.next_out = dst + *got;
    s->z.avail_out = (uInt)want;
    int ret = inflate(&s->z, Z_NO_FLUSH);
    s->in_pos = s->in_len - s->z.avail_in;
    *got += want - (int64_t)s->z.avail_out;
    if (ret == Z_STREAM_END)
      s->member_done = 1;
    else if (ret == Z_MEM_ERROR)
      return fm_fail("%s: out of memory while decompressing", s->path);
    else if (ret != Z_OK && ret != Z_BUF_ERROR)
      return fm_fail("%s: corrupt gzip data (%s)", s->path, s->z.msg ? s->z.msg : "inflate failed");
  }
  return FM_OK;
}

int fm_stream_read(fm_stream *s, void *dst, int64_t n, int64_t *got) {
  *got = 0;
  if (n <= 0) return FM_OK;
  return s->is_gzip ? read_gzip(s, dst, n, got) : read_raw(s, dst, n, got);
}
