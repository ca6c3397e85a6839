/* fm_figure: the files around a gnuplot figure.
 *
 * gnuplot is never given a name a user chose. It writes into a private directory made for each
 * figure (mkdtemp, mode 0700, under an absolute $TMPDIR or /tmp), under fixed names; a user's file
 * name is only ever passed to open() and rename(), never to gnuplot or a shell, so a name that
 * starts with '|' or '<', holds quotes, spaces, newlines or '~', is just a file name.
 *
 * A drawing is checked to be complete for its format before it is used -- gnuplot does not
 * report a short write on a full disk, and a killed gnuplot leaves half a file -- and then copied
 * into place through fm_file's temporary file and rename, so that the user's file is replaced
 * whole or not at all. */
#ifndef FM_FIGURE_H
#define FM_FIGURE_H

#include <stddef.h>

#include "fm_file.h"

typedef enum fm_figure_format {
  FM_FIGURE_PNG,   /* pngcairo, png: every image decodes, the file ends with IEND */
  FM_FIGURE_SVG,   /* svg: an <svg> document that ends with </svg> */
  FM_FIGURE_PDF,   /* pdfcairo: %PDF- ... %%EOF */
  FM_FIGURE_TEXT,  /* dumb: whole pages of `rows` lines */
  FM_FIGURE_SIXEL, /* sixelgd: ESC P ... ESC \ */
} fm_figure_format;

typedef struct fm_figure_kind {
  fm_figure_format format;
  int text_rows; /* FM_FIGURE_TEXT: lines per page, from "size C,R" */
  /* What to add to the terminal argument: gnuplot keeps a terminal's options from one `set
   * terminal` to the next, so a dumb terminal without a size gets gnuplot's default, 79,24, said
   * explicitly (else its rows would be whatever an earlier figure asked for). */
  const char *terminal_suffix;
} fm_figure_kind;

/* What a `set terminal` argument ("pngcairo size 800,600 ...") writes. Fails for a terminal not
 * listed above, naming it and the known ones, and for anything but one plain command (a newline,
 * ';' or backquote). */
int fm_figure_kind_of(const char *terminal, fm_figure_kind *kind);
/* "PNG", "SVG", "PDF", "text", "sixel". */
const char *fm_figure_format_name(fm_figure_format format);

/* Checks that the file at drawing is a complete figure of its kind. Failures name `name` (how the
 * user knows the figure: its file name) and say what is missing. */
int fm_figure_check(const char *drawing, const fm_figure_kind *kind, const char *name);

/* The private directory of one figure and the fixed names inside it. */
typedef struct fm_figure_dir {
  char dir[4096];
  char data[4096 + 16];    /* dir/data.gp: the data blocks gnuplot loads */
  char drawing[4096 + 16]; /* dir/figure: what gnuplot draws into */
} fm_figure_dir;

/* Makes the directory. $TMPDIR is used when it is an absolute path, else /tmp. */
int fm_figure_dir_make(fm_figure_dir *d);
/* Removes the directory and every file in it; safe to call twice or on one never made. */
void fm_figure_dir_remove(fm_figure_dir *d);

/* Copies the file at drawing into target (opened with fm_atomic_begin) and commits it: the user's
 * file appears whole or not at all. On failure target is aborted; the message names its path. */
int fm_figure_install(const char *drawing, fm_atomic_file *target);

#endif
