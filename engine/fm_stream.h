/* fm_stream: sequential reading of a data file that may be gzip-compressed, for the IDX and CSV
 * loaders. Whether a file is gzip is told from its first two bytes, never from its name.
 *
 * Inflate is driven directly rather than through zlib's gzread, which (zlib 1.2.13) accepts a gzip
 * file cut inside its 8-byte trailer without a word and skips anything after the last member. Here
 * every gzip member must end with a verified trailer, a stream that ends early is "truncated", and
 * bytes after the last member are "extra data". */
#ifndef FM_STREAM_H
#define FM_STREAM_H

#include <stdint.h>
#include <zlib.h>

typedef struct fm_stream {
  const char *path; /* for messages; not copied */
  int fd;
  int is_gzip;       /* the content starts with the gzip magic 1f 8b */
  int64_t file_size; /* bytes on disk; -1 when not a regular file */
  uint8_t *in;       /* input buffer: file bytes not yet used */
  size_t in_pos, in_len;
  int input_eof;   /* the file has no more bytes */
  int member_done; /* gzip: the current member ended with a good trailer */
  int z_live;
  z_stream z;
} fm_stream;

/* Opens path; fails naming it when it is missing, a directory, unreadable or empty. `kind` says
 * what the file should be ("an IDX file") for the directory message. */
int fm_stream_open(fm_stream *s, const char *path, const char *kind);
/* Reads up to n bytes into dst and says how many arrived in *got: fewer than n only at the end of
 * the data. Fails naming the file on a read error or a truncated, corrupt or padded gzip stream. */
int fm_stream_read(fm_stream *s, void *dst, int64_t n, int64_t *got);
/* Releases everything; safe on a stream whose open failed, and twice. */
void fm_stream_close(fm_stream *s);

#endif
