/* fm_csv: reading image sets from CSV files in the Kaggle layout (label,pixel1,...,pixel784).
 *
 * One image a row: the label 0-9, then 784 pixels 0-255 in row-major order. A header line is
 * optional, line ends may be LF or CRLF, the last newline may be missing, blank lines are skipped
 * (as pandas does) and spaces or tabs around a number are tolerated. Files are read through
 * fm_stream, so a gzip-compressed CSV works too.
 *
 * The parser is a digit loop over a large buffer: the 60k training CSV is about 130 MB, and strtol
 * with its locale and errno handling per field would dominate the load time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_dataset.h"
#include "fm_error.h"
#include "fm_stream.h"

#define CSV_PIXELS 784
#define CSV_COLUMNS (CSV_PIXELS + 1)
/* Lines longer than this are refused; a valid row is at most about 3.2 KB. */
#define CSV_BUFFER (1 << 20)

typedef struct csv_reader {
  const char *path;
  fm_stream stream;
  char *buf;
  size_t len, pos; /* buf[pos, len) is read but not yet handed out */
  int eof;
  int64_t line; /* number of the line last handed out, from 1 */
} csv_reader;

static int csv_open(csv_reader *r, const char *path) {
  memset(r, 0, sizeof *r);
  r->path = path;
  if (fm_stream_open(&r->stream, path, "a CSV file") != FM_OK) return FM_ERR;
  r->buf = malloc(CSV_BUFFER);
  if (!r->buf) {
    fm_stream_close(&r->stream);
    return fm_fail("cannot read %s: out of memory", path);
  }
  return FM_OK;
}

static void csv_close(csv_reader *r) {
  fm_stream_close(&r->stream);
  free(r->buf);
  r->buf = NULL;
}

/* Hands out the next line as [*s, *e) without its line end. Returns 1, 0 at the end of the file,
 * or FM_ERR. */
static int csv_next_line(csv_reader *r, const char **s, const char **e) {
  for (;;) {
    char *start = r->buf + r->pos;
    size_t avail = r->len - r->pos;
    char *end = memchr(start, '\n', avail);
    if (!end && r->eof) {
      if (avail == 0) return 0;
      end = start + avail; /* the last line has no newline */
    }
    if (end) {
      r->pos = (size_t)(end - r->buf) + (end < r->buf + r->len);
      r->line++;
      if (end > start && end[-1] == '\r') end--;
      if (r->line == 1 && end - start >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3; /* a UTF-8 byte order mark, as spreadsheet programs write */
      *s = start;
      *e = end;
      return 1;
    }
    memmove(r->buf, start, avail);
    r->len = avail;
    r->pos = 0;
    if (r->len == CSV_BUFFER)
      return fm_fail("%s: line %lld is longer than %d bytes", r->path, (long long)r->line + 1,
                     CSV_BUFFER);
    int64_t got;
    if (fm_stream_read(&r->stream, r->buf + r->len, CSV_BUFFER - (int64_t)r->len, &got) != FM_OK)
      return FM_ERR;
    if (got == 0) r->eof = 1;
    r->len += (size_t)got;
  }
}

static inline int is_blank_char(char c) { return c == ' ' || c == '\t'; }

static int line_is_blank(const char *s, const char *e) {
  while (s < e && (is_blank_char(*s) || *s == '\r')) s++;
  return s == e;
}

/* A header is a first line whose first field does not start like a number. */
static int line_is_header(const char *s, const char *e) {
  while (s < e && is_blank_char(*s)) s++;
  return !(s < e && ((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'));
}

static int64_t count_columns(const char *s, const char *e) {
  int64_t n = 1;
  for (; s < e; s++) n += *s == ',';
  return n;
}

static int csv_check_header(const csv_reader *r, const char *s, const char *e) {
  int64_t cols = count_columns(s, e);
  if (cols != CSV_COLUMNS)
    return fm_fail(
        "%s: line %lld: the header has %lld columns, expected %d (label, pixel1, ..., "
        "pixel%d)",
        r->path, (long long)r->line, (long long)cols, CSV_COLUMNS, CSV_PIXELS);
  return FM_OK;
}

int fm_csv_probe(const char *path, fm_csv_info *info) {
  csv_reader r;
  if (csv_open(&r, path) != FM_OK) return FM_ERR;
  const char *s, *e;
  int64_t rows = 0;
  int has_header = 0, seen_first = 0, rc;
  while ((rc = csv_next_line(&r, &s, &e)) == 1) {
    /* Data lines start with a digit, so the blank test almost always stops at the first byte. */
    if (line_is_blank(s, e)) continue;
    if (!seen_first) {
      seen_first = 1;
      if (line_is_header(s, e)) {
        has_header = 1;
        if (csv_check_header(&r, s, e) != FM_OK) {
          rc = FM_ERR;
          break;
        }
        continue;
      }
    }
    rows++;
  }
  if (rc == 0 && rows == 0)
    rc = seen_first ? fm_fail("%s: no data rows (only a header)", path)
                    : fm_fail("%s: no data rows (only blank lines)", path);
  if (rc == 0 && rows > FM_MAX_IMAGES)
    rc = fm_fail("%s: %lld data rows, an absurd count (the limit is %lld)", path, (long long)rows,
                 (long long)FM_MAX_IMAGES);
  csv_close(&r);
  if (rc != 0) return FM_ERR;
  info->count = rows;
  info->has_header = has_header;
  return FM_OK;
}

/* Names column col (0-based) for messages: "column 1 (label)", "column 2 (pixel1)". */
static void describe_column(int col, char *out, size_t size) {
  if (col == 0)
    snprintf(out, size, "column 1 (label)");
  else
    snprintf(out, size, "column %d (pixel%d)", col + 1, col);
}

/* Reports a value that is not an integer in range; the field's text is quoted as found. */
static int bad_value(const csv_reader *r, int col, const char *tok, const char *e, int in_range) {
  const char *end = tok;
  while (end < e && *end != ',') end++;
  while (end > tok && is_blank_char(end[-1])) end--;
  while (tok < end && is_blank_char(*tok)) tok++;
  char where[48], text[48];
  describe_column(col, where, sizeof where);
  /* At most 40 bytes of the field, control and non-ASCII bytes shown as '?', so that a binary file
   * read as CSV cannot put garbage into the message. */
  int len = (int)(end - tok > 40 ? 40 : end - tok);
  for (int i = 0; i < len; i++) text[i] = tok[i] >= 0x20 && tok[i] < 0x7f ? tok[i] : '?';
  snprintf(text + len, sizeof text - (size_t)len, "%s", end - tok > 40 ? "..." : "");
  if (len == 0)
    return fm_fail("%s: line %lld, %s: empty value", r->path, (long long)r->line, where);
  if (in_range)
    return fm_fail("%s: line %lld, %s: value %s is outside %s", r->path, (long long)r->line, where,
                   text, col == 0 ? "0-9" : "0-255");
  return fm_fail("%s: line %lld, %s: '%s' is not an integer", r->path, (long long)r->line, where,
                 text);
}

static int wrong_columns(const csv_reader *r, int64_t cols) {
  return fm_fail("%s: line %lld: %lld columns, expected %d (label and %d pixels)", r->path,
                 (long long)r->line, (long long)cols, CSV_COLUMNS, CSV_PIXELS);
}

/* Parses one data row [s, e) into a label and CSV_PIXELS pixels. */
static int parse_row(const csv_reader *r, const char *s, const char *e, uint8_t *label,
                     uint8_t *pixels) {
  for (int col = 0; col < CSV_COLUMNS; col++) {
    const char *tok = s;
    while (s < e && is_blank_char(*s)) s++;
    int negative = 0;
    if (s < e && (*s == '-' || *s == '+')) negative = *s++ == '-';
    const char *digits = s;
    unsigned v = 0;
    /* Saturate instead of overflowing: anything above 999 is out of range anyway. */
    for (; s < e && (unsigned)(*s - '0') < 10; s++)
      if (v < 1000) v = v * 10 + (unsigned)(*s - '0');
    int is_number = s > digits;
    while (s < e && is_blank_char(*s)) s++;
    if (!is_number || (s < e && *s != ',')) return bad_value(r, col, tok, e, 0);
    if ((negative && v != 0) || v > (col == 0 ? 9u : 255u)) return bad_value(r, col, tok, e, 1);
    if (col == 0)
      *label = (uint8_t)v;
    else
      pixels[col - 1] = (uint8_t)v;
    if (col < CSV_COLUMNS - 1) {
      if (s == e) return wrong_columns(r, col + 1);
      s++; /* past the comma */
    } else if (s < e) {
      /* s is at a comma: every comma from here on starts one more column. */
      return wrong_columns(r, CSV_COLUMNS - 1 + count_columns(s, e));
    }
  }
  return FM_OK;
}

static int csv_read_rows(csv_reader *r, const fm_csv_info *info, uint8_t *pixels, uint8_t *labels) {
  const char *s, *e;
  int64_t rows = 0;
  int seen_first = 0, rc;
  while ((rc = csv_next_line(r, &s, &e)) == 1) {
    if (line_is_blank(s, e)) continue;
    if (!seen_first) {
      seen_first = 1;
      int header = line_is_header(s, e);
      if (header != (info->has_header != 0))
        return fm_fail("%s: file changed while being loaded (it %s a header line now)", r->path,
                       header ? "has" : "no longer has");
      if (header) {
        if (csv_check_header(r, s, e) != FM_OK) return FM_ERR;
        continue;
      }
    }
    if (rows == info->count)
      return fm_fail(
          "%s: line %lld: more data rows than the %lld counted before (file changed "
          "while being loaded)",
          r->path, (long long)r->line, (long long)info->count);
    if (parse_row(r, s, e, labels + rows, pixels + rows * CSV_PIXELS) != FM_OK) return FM_ERR;
    rows++;
  }
  if (rc != 0) return FM_ERR;
  if (rows < info->count)
    return fm_fail(
        "%s: only %lld data rows, fewer than the %lld counted before (file changed or "
        "truncated while being loaded)",
        r->path, (long long)rows, (long long)info->count);
  return FM_OK;
}

int fm_csv_read(const char *path, const fm_csv_info *info, uint8_t *pixels, uint8_t *labels) {
  csv_reader r;
  if (csv_open(&r, path) != FM_OK) return FM_ERR;
  int rc = csv_read_rows(&r, info, pixels, labels);
  csv_close(&r);
  return rc;
}
