/* fm_gnuplot_quote: user text as gnuplot string literals -- the boundary between what a user
 * types (titles, labels, captions, legend keys) and the commands gnuplot runs.
 *
 * gnuplot runs text in several places a plain "..." does not protect: a backquote runs a shell
 * command anywhere on a command line, even inside double quotes; @name expands a macro; a quote
 * ends the string and the rest of the line is a command; a newline ends the command. And some
 * strings are formats: explicit tic labels (`set xtics ("label" 0)`) go through gnuplot's
 * gprintf, so "%s%s%n" there reads and writes process memory and "50% off" fails.
 *
 * fm_gnuplot_quote writes a double-quoted literal in which every byte other than letters,
 * digits, space and a few harmless marks is an octal escape, so none of those characters can
 * appear in the command line itself; gnuplot decodes the escapes into the exact bytes given.
 * With FM_GNUPLOT_FORMAT every '%' is doubled as well, so that a format prints the text as it
 * is. Enhanced-text markup (^ _ @ { } &) is a separate matter: the figures are drawn with
 * `noenhanced` terminals and every text command says `noenhanced` too.
 *
 * A zero byte cannot be represented (gnuplot's strings end there): callers refuse text that
 * holds one (fm_gnuplot_quote writes it as \0000, which gnuplot reads as the end). */
#ifndef FM_GNUPLOT_QUOTE_H
#define FM_GNUPLOT_QUOTE_H

#include <stddef.h>

enum {
  FM_GNUPLOT_TEXT = 0,   /* a string shown as it is: titles, axis labels, key titles, labels */
  FM_GNUPLOT_FORMAT = 1, /* a string gnuplot reads as a format (tic labels): '%' doubled too */
};

/* The most bytes fm_gnuplot_quote writes for n bytes of text (5 per byte and the two quotes);
 * 0 when that does not fit in a size_t. */
size_t fm_gnuplot_quoted_max(size_t n);

/* Writes s[0..n) as a gnuplot string literal into dst, which has room for
 * fm_gnuplot_quoted_max(n) bytes; returns the length written (no terminating zero). The output
 * holds only letters, digits, space, the marks -_.,:;/()+=%!? and backslash escapes. */
size_t fm_gnuplot_quote(char *dst, const char *s, size_t n, int kind);

#endif
