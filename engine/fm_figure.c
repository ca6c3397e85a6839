/* fm_figure: private directories for gnuplot, complete-drawing checks, installing a drawing. */
#include "fm_figure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_error.h"
#include "fm_png.h"

/* ---- terminals ---- */

static const struct {
  const char *terminal;
  fm_figure_format format;
} TERMINALS[] = {
    {"pngcairo", FM_FIGURE_PNG}, {"png", FM_FIGURE_PNG},   {"svg", FM_FIGURE_SVG},
    {"pdfcairo", FM_FIGURE_PDF}, {"dumb", FM_FIGURE_TEXT}, {"sixelgd", FM_FIGURE_SIXEL},
};
#define NTERMINALS (sizeof TERMINALS / sizeof TERMINALS[0])

const char *fm_figure_format_name(fm_figure_format format) {
  switch (format) {
    case FM_FIGURE_PNG:
      return "PNG";
    case FM_FIGURE_SVG:
      return "SVG";
    case FM_FIGURE_PDF:
      return "PDF";
    case FM_FIGURE_TEXT:
      return "text";
    case FM_FIGURE_SIXEL:
      return "sixel";
  }
  return "?";
}

/* The rows of "size C,R" (or "size C, R") in a dumb terminal's options; 0 when absent. */
static int text_rows(const char *options) {
  for (const char *s = strstr(options, "size"); s; s = strstr(s + 4, "size")) {
    int starts_word = s == options || s[-1] == ' ';
    int cols, rows;
    if (starts_word && sscanf(s + 4, " %d , %d", &cols, &rows) == 2 && rows > 0) return rows;
  }
  return 0;
}

int fm_figure_kind_of(const char *terminal, fm_figure_kind *kind) {
  if (strpbrk(terminal, "\n\r;`@"))
    return fm_fail("terminal '%s' must be one plain command (no newline, ';', '`' or '@')",
                   terminal);
  size_t n = strcspn(terminal, " \t");
  for (size_t i = 0; i < NTERMINALS; i++) {
    if (strlen(TERMINALS[i].terminal) == n && strncmp(terminal, TERMINALS[i].terminal, n) == 0) {
      kind->format = TERMINALS[i].format;
      kind->text_rows = 0;
      kind->terminal_suffix = "";
      if (kind->format == FM_FIGURE_TEXT) {
        kind->text_rows = text_rows(terminal + n);
        if (kind->text_rows == 0) {
          kind->text_rows = 24;
          kind->terminal_suffix = " size 79,24";
        }
      }
      return FM_OK;
    }
  }
  char known[128] = "";
  for (size_t i = 0; i < NTERMINALS; i++) {
    if (i) strcat(known, ", ");
    strcat(known, TERMINALS[i].terminal);
  }
  return fm_fail("terminal '%.*s' is not one whose figures can be checked (known: %s)", (int)n,
                 terminal, known);
}

/* ---- checking a drawing ---- */

/* The first and last bytes of a file (up to sizeof head/tail) and its size. */
typedef struct ends {
  unsigned char head[16], tail[32];
  size_t nhead, ntail;
  long long size;
} ends;

static int read_ends(const char *drawing, const char *name, ends *e) {
  FILE *f = fopen(drawing, "rb");
  if (!f) return fm_fail("%s: cannot read gnuplot's drawing (%s)", name, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    int err = errno;
    fclose(f);
    return fm_fail("%s: cannot read gnuplot's drawing (%s)", name, strerror(err));
  }
  e->size = (long long)st.st_size;
  e->nhead = fread(e->head, 1, sizeof e->head, f);
  long back = e->size < (long long)sizeof e->tail ? (long)e->size : (long)sizeof e->tail;
  e->ntail = 0;
  if (fseek(f, -back, SEEK_END) == 0) e->ntail = fread(e->tail, 1, (size_t)back, f);
  int bad = ferror(f);
  fclose(f);
  if (bad) return fm_fail("%s: cannot read gnuplot's drawing (%s)", name, strerror(EIO));
  return FM_OK;
}

static int starts_with(const ends *e, const char *s) {
  size_t n = strlen(s);
  return e->nhead >= n && memcmp(e->head, s, n) == 0;
}

/* Whether the file ends with s followed by nothing but white space. */
static int ends_with(const ends *e, const char *s) {
  size_t n = strlen(s), k = e->ntail;
  while (k > 0 && (e->tail[k - 1] == '\n' || e->tail[k - 1] == '\r' || e->tail[k - 1] == ' ')) k--;
  return k >= n && memcmp(e->tail + k - n, s, n) == 0;
}

static int incomplete(const char *name, fm_figure_format format, const char *why) {
  return fm_fail("%s: gnuplot's drawing is not a complete %s file (%s; a full disk?)", name,
                 fm_figure_format_name(format), why);
}

/* Text pages: a dumb page is an optional form feed and `rows` lines; several plots make several
 * pages. A short write leaves a line count that is not a whole number of pages, or a last line
 * without its newline. */
static int check_text(const char *drawing, int rows, const char *name) {
  FILE *f = fopen(drawing, "rb");
  if (!f) return fm_fail("%s: cannot read gnuplot's drawing (%s)", name, strerror(errno));
  long long lines = 0;
  int c, last = '\n';
  while ((c = getc(f)) != EOF) {
    if (c == '\n') lines++;
    last = c;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) return fm_fail("%s: cannot read gnuplot's drawing (%s)", name, strerror(EIO));
  if (last != '\n') return incomplete(name, FM_FIGURE_TEXT, "the last line is cut");
  if (lines % rows != 0) {
    char why[96];
    snprintf(why, sizeof why, "%lld lines, not whole pages of %d", lines, rows);
    return incomplete(name, FM_FIGURE_TEXT, why);
  }
  return FM_OK;
}

int fm_figure_check(const char *drawing, const fm_figure_kind *kind, const char *name) {
  ends e;
  if (read_ends(drawing, name, &e) != FM_OK) return FM_ERR;
  if (e.size == 0)
    return fm_fail("%s: gnuplot drew nothing (no plot command, or a full disk?)", name);
  switch (kind->format) {
    case FM_FIGURE_PNG:
      if (fm_png_check(drawing) != FM_OK) {
        /* fm_png names the private file; the user knows the figure by name. */
        const char *why = strstr(fm_error(), ": ");
        char copy[512];
        snprintf(copy, sizeof copy, "%s", why ? why + 2 : fm_error());
        return incomplete(name, kind->format, copy);
      }
      return FM_OK;
    case FM_FIGURE_SVG:
      if (!starts_with(&e, "<") || !ends_with(&e, "</svg>"))
        return incomplete(name, kind->format, "no </svg> at the end");
      return FM_OK;
    case FM_FIGURE_PDF:
      if (!starts_with(&e, "%PDF-")) return incomplete(name, kind->format, "no %PDF- header");
      if (!ends_with(&e, "%%EOF")) return incomplete(name, kind->format, "no %%EOF at the end");
      return FM_OK;
    case FM_FIGURE_SIXEL:
      if (!starts_with(&e, "\033P")) return incomplete(name, kind->format, "no ESC P at the start");
      if (!(e.ntail >= 2 && memcmp(e.tail + e.ntail - 2, "\033\\", 2) == 0))
        return incomplete(name, kind->format, "no ESC \\ at the end");
      return FM_OK;
    case FM_FIGURE_TEXT:
      return check_text(drawing, kind->text_rows, name);
  }
  return fm_fail("%s: unknown figure format", name);
}

/* ---- the private directory ---- */

int fm_figure_dir_make(fm_figure_dir *d) {
  d->dir[0] = d->data[0] = d->drawing[0] = '\0';
  const char *base = getenv("TMPDIR");
  if (!base || base[0] != '/') base = "/tmp";
  char dir[sizeof d->dir];
  if ((size_t)snprintf(dir, sizeof dir, "%s/fmnist-plot-XXXXXX", base) >= sizeof dir)
    return fm_fail("%s: cannot make a directory for the figure (%s)", base, strerror(ENAMETOOLONG));
  if (!mkdtemp(dir))
    return fm_fail("%s: cannot make a directory for the figure (%s)", base, strerror(errno));
  memcpy(d->dir, dir, sizeof dir);
  snprintf(d->data, sizeof d->data, "%s/data.gp", d->dir);
  snprintf(d->drawing, sizeof d->drawing, "%s/figure", d->dir);
  return FM_OK;
}

/* Every file in the directory goes: gnuplot commands may have written more than the drawing. */
void fm_figure_dir_remove(fm_figure_dir *d) {
  if (!d->dir[0]) return;
  DIR *dp = opendir(d->dir);
  if (dp) {
    struct dirent *ent;
    while ((ent = readdir(dp)) != NULL) {
      if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
      unlinkat(dirfd(dp), ent->d_name, 0);
    }
    closedir(dp);
  }
  rmdir(d->dir);
  d->dir[0] = d->data[0] = d->drawing[0] = '\0';
}

/* ---- installing ---- */

int fm_figure_install(const char *drawing, fm_atomic_file *target) {
  FILE *in = fopen(drawing, "rb");
  if (!in) {
    int e = errno;
    fm_atomic_abort(target);
    return fm_fail("%s: cannot read gnuplot's drawing (%s)", target->path, strerror(e));
  }
  char buf[65536];
  size_t n;
  int write_error = 0;
  while (!write_error && (n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, target->f) != n) write_error = errno ? errno : EIO;
  int read_failed = ferror(in);
  fclose(in);
  if (read_failed || write_error) {
    fm_atomic_abort(target);
    if (write_error) return fm_fail("%s: cannot write (%s)", target->path, strerror(write_error));
    return fm_fail("%s: cannot read gnuplot's drawing (%s)", target->path, strerror(EIO));
  }
  /* Flushing, syncing and closing can fail too (a full disk often shows only here); the commit
   * reports it and removes the temporary file. */
  return fm_atomic_commit(target);
}
