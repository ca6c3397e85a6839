/* fm_csv: reading image sets from CSV files, one image a row (Kaggle: label,pixel1,...,pixel784).
 *
 * A row holds a label 0-9 and the pixels 0-255 of a square image. A header line is optional and,
 * when present, says which column is the label and where each pixel goes (see fm_dataset.h); the
 * layout it gives is a map from column to pixel, used for every row. Line ends may be LF or CRLF,
 * the last newline may be missing, blank lines are skipped (as pandas does) and spaces or tabs
 * around a number are tolerated. Files are read through fm_stream, so a gzip-compressed CSV works
 * too.
 *
 * The parser is a digit loop over a large buffer: the 60k training CSV is about 130 MB, and strtol
 * with its locale and errno handling per field would dominate the load time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>

#include "fm_dataset.h"
#include "fm_error.h"
#include "fm_stream.h"

/* Lines longer than this are refused; a Fashion-MNIST row is at most about 3.2 KB. */
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

static int64_t count_columns(const char *s, const char *e) {
  int64_t n = 1;
  for (; s < e; s++) n += *s == ',';
  return n;
}

/* ---- the header ---- */

/* A header field without the blanks and one pair of double quotes around it. */
typedef struct field {
  const char *s, *e;
} field;

/* The field starting at s, up to the next comma or e; *next is past that comma (or e). */
static field next_field(const char *s, const char *e, const char **next) {
  const char *end = memchr(s, ',', (size_t)(e - s));
  if (!end) end = e;
  *next = end < e ? end + 1 : e;
  while (s < end && is_blank_char(*s)) s++;
  while (end > s && is_blank_char(end[-1])) end--;
  if (end - s >= 2 && *s == '"' && end[-1] == '"') s++, end--;
  return (field){s, end};
}

static int field_is(field f, const char *word) {
  size_t n = strlen(word);
  return (size_t)(f.e - f.s) == n && strncasecmp(f.s, word, n) == 0;
}

/* The N of a field named like pixelN (any case), or -1. Numbers beyond any image saturate. */
static int64_t pixel_number(field f) {
  if (f.e - f.s < 6 || strncasecmp(f.s, "pixel", 5) != 0) return -1;
  int64_t n = 0;
  for (const char *p = f.s + 5; p < f.e; p++) {
    if (*p < '0' || *p > '9') return -1;
    if (n < ((int64_t)1 << 40)) n = n * 10 + (*p - '0');
  }
  return n;
}

/* The field's text for a message: at most 40 bytes, control and non-ASCII bytes as '?', so that a
 * binary file read as CSV cannot put garbage into the message. */
static const char *shown(field f, char *out, size_t size) {
  size_t len = (size_t)(f.e - f.s), keep = len > 40 ? 40 : len;
  if (keep > size - 4) keep = size - 4;
  for (size_t i = 0; i < keep; i++) out[i] = f.s[i] >= 0x20 && f.s[i] < 0x7f ? f.s[i] : '?';
  snprintf(out + keep, size - keep, "%s", len > keep ? "..." : "");
  return out;
}

/* A first line is a header when its first field does not start like a number, or any field is
 * named like a column of one (data rows never hold "label" or "pixel12"). */
static int line_is_header(const char *s, const char *e) {
  const char *p = s;
  while (p < e && is_blank_char(*p)) p++;
  if (!(p < e && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+'))) return 1;
  for (p = s; p < e;) {
    field f = next_field(p, e, &p);
    if (field_is(f, "label") || pixel_number(f) >= 0) return 1;
  }
  return 0;
}

/* Where each column of a row goes: pixel[col] is the pixel's place in the image, or -1 for the
 * label. base is the number of the first pixel's name (1 for pixel1, 0 for pixel0), for
 * messages. */
typedef struct csv_layout {
  int64_t columns, label_column, rows, cols;
  int64_t base;
  int32_t *pixel;
} csv_layout;

/* The side of a square of p pixels, or 0 when p is not a square (or too large an image). */
static int64_t square_side(int64_t p) {
  if (p < 1) return 0;
  int64_t s = (int64_t)sqrt((double)p);
  while (s * s > p) s--;
  while ((s + 1) * (s + 1) <= p) s++;
  return s * s == p && s <= FM_MAX_SIDE ? s : 0;
}

/* Sets the image size from the number of pixel columns. */
static int layout_size(const csv_reader *r, csv_layout *lay) {
  int64_t p = lay->columns - 1, side = square_side(p);
  if (side == 0)
    return fm_fail(
        "%s: line %lld: %lld columns, a label and %lld pixels, which make no square "
        "image (Fashion-MNIST has 785: a label and 28x28 pixels)",
        r->path, (long long)r->line, (long long)lay->columns, (long long)p);
  lay->rows = lay->cols = side;
  return FM_OK;
}

static int layout_alloc(const csv_reader *r, csv_layout *lay) {
  lay->pixel = malloc((size_t)lay->columns * sizeof *lay->pixel);
  if (!lay->pixel) return fm_fail("cannot read %s: out of memory", r->path);
  return FM_OK;
}

/* Without a header: the label first, then the pixels in order; columns counted on the first row. */
static int layout_plain(const csv_reader *r, const char *s, const char *e, csv_layout *lay) {
  lay->columns = count_columns(s, e);
  lay->label_column = 0;
  lay->base = 1;
  if (layout_size(r, lay) != FM_OK || layout_alloc(r, lay) != FM_OK) return FM_ERR;
  lay->pixel[0] = -1;
  for (int64_t c = 1; c < lay->columns; c++) lay->pixel[c] = (int32_t)(c - 1);
  return FM_OK;
}

/* The label column of a header: the one named "label", else the only one not named like pixelN.
 * Every other column must be a pixel. */
static int header_label(const csv_reader *r, const char *s, const char *e, csv_layout *lay) {
  int64_t named = -1, others = 0, other[2] = {-1, -1};
  field other_f[2] = {{s, s}, {s, s}};
  char a[48], b[48];
  const char *p = s;
  for (int64_t col = 0; col < lay->columns; col++) {
    field f = next_field(p, e, &p);
    if (field_is(f, "label")) {
      if (named >= 0)
        return fm_fail("%s: line %lld: columns %lld and %lld are both named 'label'", r->path,
                       (long long)r->line, (long long)named + 1, (long long)col + 1);
      named = col;
    } else if (pixel_number(f) < 0) {
      if (others < 2) other[others] = col, other_f[others] = f;
      others++;
    }
  }
  if (named >= 0 && others > 0)
    return fm_fail("%s: line %lld: column %lld ('%s') is neither the label nor a pixel (pixelN)",
                   r->path, (long long)r->line, (long long)other[0] + 1,
                   shown(other_f[0], a, sizeof a));
  if (others > 1)
    return fm_fail(
        "%s: line %lld: cannot tell the label column: columns %lld ('%s') and %lld "
        "('%s') are not named like pixelN (name the label column 'label')",
        r->path, (long long)r->line, (long long)other[0] + 1, shown(other_f[0], a, sizeof a),
        (long long)other[1] + 1, shown(other_f[1], b, sizeof b));
  if (named < 0 && others == 0)
    return fm_fail(
        "%s: line %lld: the header has no label column (every column is named like "
        "pixelN; name the label column 'label')",
        r->path, (long long)r->line);
  lay->label_column = named >= 0 ? named : other[0];
  return FM_OK;
}

/* The place of every pixel column: pixelN goes to N - base, each number once, none missing. */
static int header_pixels(const csv_reader *r, const char *s, const char *e, csv_layout *lay,
                         int64_t *seen) {
  int64_t p = lay->columns - 1, stray = -1, stray_number = 0;
  const char *q = s;
  lay->base = 1;
  for (int64_t col = 0; col < lay->columns; col++)
    if (pixel_number(next_field(q, e, &q)) == 0) lay->base = 0;
  for (int64_t i = 0; i < p; i++) seen[i] = -1;
  q = s;
  for (int64_t col = 0; col < lay->columns; col++) {
    field f = next_field(q, e, &q);
    lay->pixel[col] = -1;
    if (col == lay->label_column) continue;
    int64_t at = pixel_number(f) - lay->base;
    if (at < 0 || at >= p) {
      if (stray < 0) stray = col, stray_number = at + lay->base;
      continue;
    }
    if (seen[at] >= 0)
      return fm_fail("%s: line %lld: pixel%lld appears twice (columns %lld and %lld)", r->path,
                     (long long)r->line, (long long)(at + lay->base), (long long)seen[at] + 1,
                     (long long)col + 1);
    seen[at] = col;
    lay->pixel[col] = (int32_t)at;
  }
  for (int64_t i = 0; i < p; i++) {
    if (seen[i] >= 0) continue;
    char extra[96] = "";
    if (stray >= 0)
      snprintf(extra, sizeof extra, "; column %lld is pixel%lld", (long long)stray + 1,
               (long long)stray_number);
    return fm_fail(
        "%s: line %lld: pixel%lld is missing (%lld pixel columns, so pixel%lld to "
        "pixel%lld%s)",
        r->path, (long long)r->line, (long long)(i + lay->base), (long long)p, (long long)lay->base,
        (long long)(p - 1 + lay->base), extra);
  }
  return FM_OK;
}

static int layout_header(const csv_reader *r, const char *s, const char *e, csv_layout *lay) {
  lay->columns = count_columns(s, e);
  if (header_label(r, s, e, lay) != FM_OK || layout_size(r, lay) != FM_OK ||
      layout_alloc(r, lay) != FM_OK)
    return FM_ERR;
  int64_t *seen = malloc((size_t)(lay->columns - 1) * sizeof *seen);
  if (!seen) return fm_fail("cannot read %s: out of memory", r->path);
  int rc = header_pixels(r, s, e, lay, seen);
  free(seen);
  return rc;
}

/* The layout from the first non-blank line (a header or the first row); *header says which. */
static int layout_read(const csv_reader *r, const char *s, const char *e, csv_layout *lay,
                       int *header) {
  memset(lay, 0, sizeof *lay);
  *header = line_is_header(s, e);
  int rc = *header ? layout_header(r, s, e, lay) : layout_plain(r, s, e, lay);
  if (rc != FM_OK) {
    free(lay->pixel);
    lay->pixel = NULL;
  }
  return rc;
}

/* ---- the rows ---- */

int fm_csv_probe(const char *path, fm_csv_info *info) {
  csv_reader r;
  if (csv_open(&r, path) != FM_OK) return FM_ERR;
  const char *s, *e;
  int64_t rows = 0;
  int has_header = 0, seen_first = 0, rc;
  csv_layout lay = {0};
  while ((rc = csv_next_line(&r, &s, &e)) == 1) {
    /* Data lines start with a digit, so the blank test almost always stops at the first byte. */
    if (line_is_blank(s, e)) continue;
    if (!seen_first) {
      seen_first = 1;
      if (layout_read(&r, s, e, &lay, &has_header) != FM_OK) {
        rc = FM_ERR;
        break;
      }
      if (has_header) continue;
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
  free(lay.pixel);
  if (rc != 0) return FM_ERR;
  info->count = rows;
  info->has_header = has_header;
  info->columns = lay.columns;
  info->label_column = lay.label_column;
  info->rows = lay.rows;
  info->cols = lay.cols;
  return FM_OK;
}

/* Names column col (0-based) for messages: "column 1 (label)", "column 2 (pixel1)". */
static void describe_column(const csv_layout *lay, int64_t col, char *out, size_t size) {
  if (lay->pixel[col] < 0)
    snprintf(out, size, "column %lld (label)", (long long)col + 1);
  else
    snprintf(out, size, "column %lld (pixel%lld)", (long long)col + 1,
             (long long)(lay->pixel[col] + lay->base));
}

/* Reports a value that is not an integer in range; the field's text is quoted as found. */
static int bad_value(const csv_reader *r, const csv_layout *lay, int64_t col, const char *tok,
                     const char *e, int in_range) {
  const char *end = tok;
  while (end < e && *end != ',') end++;
  while (end > tok && is_blank_char(end[-1])) end--;
  while (tok < end && is_blank_char(*tok)) tok++;
  char where[64], text[48];
  describe_column(lay, col, where, sizeof where);
  shown((field){tok, end}, text, sizeof text);
  if (end == tok)
    return fm_fail("%s: line %lld, %s: empty value", r->path, (long long)r->line, where);
  if (in_range)
    return fm_fail("%s: line %lld, %s: value %s is outside %s", r->path, (long long)r->line, where,
                   text, lay->pixel[col] < 0 ? "0-9" : "0-255");
  return fm_fail("%s: line %lld, %s: '%s' is not an integer", r->path, (long long)r->line, where,
                 text);
}

static int wrong_columns(const csv_reader *r, const csv_layout *lay, int64_t cols) {
  return fm_fail("%s: line %lld: %lld columns, expected %lld (a label and %lld pixels)", r->path,
                 (long long)r->line, (long long)cols, (long long)lay->columns,
                 (long long)lay->columns - 1);
}

/* Parses one data row [s, e) into a label and the pixels of an image. */
static int parse_row(const csv_reader *r, const csv_layout *lay, const char *s, const char *e,
                     uint8_t *label, uint8_t *pixels) {
  const int64_t last = lay->columns - 1;
  for (int64_t col = 0; col <= last; col++) {
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
    if (!is_number || (s < e && *s != ',')) return bad_value(r, lay, col, tok, e, 0);
    int32_t at = lay->pixel[col];
    if ((negative && v != 0) || v > (at < 0 ? 9u : 255u)) return bad_value(r, lay, col, tok, e, 1);
    if (at < 0)
      *label = (uint8_t)v;
    else
      pixels[at] = (uint8_t)v;
    if (col < last) {
      if (s == e) return wrong_columns(r, lay, col + 1);
      s++; /* past the comma */
    } else if (s < e) {
      /* s is at a comma: every comma from here on starts one more column. */
      return wrong_columns(r, lay, last + count_columns(s, e));
    }
  }
  return FM_OK;
}

/* The layout read again must be the one probed: the file may have changed in between. */
static int same_layout(const csv_reader *r, const fm_csv_info *info, const csv_layout *lay,
                       int header) {
  if (header != (info->has_header != 0))
    return fm_fail("%s: file changed while being loaded (it %s a header line now)", r->path,
                   header ? "has" : "no longer has");
  if (lay->columns != info->columns || lay->label_column != info->label_column)
    return fm_fail(
        "%s: file changed while being loaded (its first line is not the one read "
        "before)",
        r->path);
  return FM_OK;
}

static int csv_read_rows(csv_reader *r, const fm_csv_info *info, csv_layout *lay, uint8_t *pixels,
                         uint8_t *labels) {
  const char *s, *e;
  int64_t rows = 0, size = info->rows * info->cols;
  int seen_first = 0, rc;
  while ((rc = csv_next_line(r, &s, &e)) == 1) {
    if (line_is_blank(s, e)) continue;
    if (!seen_first) {
      seen_first = 1;
      int header;
      if (layout_read(r, s, e, lay, &header) != FM_OK || same_layout(r, info, lay, header) != FM_OK)
        return FM_ERR;
      if (header) continue;
    }
    if (rows == info->count)
      return fm_fail(
          "%s: line %lld: more data rows than the %lld counted before (file changed "
          "while being loaded)",
          r->path, (long long)r->line, (long long)info->count);
    if (parse_row(r, lay, s, e, labels + rows, pixels + rows * size) != FM_OK) return FM_ERR;
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
  csv_layout lay = {0};
  int rc = csv_read_rows(&r, info, &lay, pixels, labels);
  free(lay.pixel);
  csv_close(&r);
  return rc;
}
