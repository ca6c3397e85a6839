/* test_gnuplot_quote: the quoting that stands between user text and gnuplot's command line.
 * Every byte value, next to digits, in both kinds: the literal holds only harmless characters,
 * decodes (by gnuplot's escape rules) to exactly the input, and a format literal prints the text
 * as it is -- checked against a real gnuplot's sprintf as well. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fm_error.h"
#include "fm_gnuplot.h"
#include "fm_gnuplot_quote.h"

/* Decodes a literal the way gnuplot reads a double-quoted string: \ followed by 0 takes up to
 * four octal digits, by 1-7 up to three. Returns the length, or -1 when the literal has anything
 * this module never writes (a raw quote inside, another escape, no closing quote). */
static long decode(const char *q, size_t n, char *out) {
  if (n < 2 || q[0] != '"' || q[n - 1] != '"') return -1;
  long k = 0;
  for (size_t i = 1; i + 1 < n; i++) {
    if (q[i] == '"') return -1;
    if (q[i] != '\\') {
      out[k++] = q[i];
      continue;
    }
    size_t max = q[i + 1] == '0' ? 4 : 3, d = 0;
    unsigned v = 0;
    while (d < max && i + 1 + d < n - 1 && q[i + 1 + d] >= '0' && q[i + 1 + d] <= '7')
      v = v * 8 + (unsigned)(q[i + 1 + d++] - '0');
    if (d == 0 || v > 255) return -1;
    out[k++] = (char)v;
    i += d;
  }
  return k;
}

static int harmless(const char *q, size_t n) {
  for (size_t i = 1; i + 1 < n; i++) {
    unsigned char c = (unsigned char)q[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             (c != 0 && strchr(" -.,:;/()+=%!?\\", c) != NULL);
    if (!ok) return 0;
  }
  return 1;
}

static void test_every_byte(void) {
  /* each byte alone, then followed by digits that an escape must not swallow */
  int all_harmless = 1, all_back = 1, within = 1;
  for (int c = 1; c < 256; c++) {
    char text[4] = {(char)c, '0', '7', (char)c};
    for (size_t n = 1; n <= 4; n++) {
      for (int kind = FM_GNUPLOT_TEXT; kind <= FM_GNUPLOT_FORMAT; kind++) {
        char q[64], back[64];
        size_t len = fm_gnuplot_quote(q, text, n, kind);
        within &= len <= fm_gnuplot_quoted_max(n);
        all_harmless &= harmless(q, len);
        long k = decode(q, len, back);
        /* the text kind decodes to the text; the format kind to the text with % doubled */
        char want[16];
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
          want[w++] = text[i];
          if (text[i] == '%' && kind == FM_GNUPLOT_FORMAT) want[w++] = '%';
        }
        if (k != (long)w || memcmp(back, want, w) != 0) {
          if (all_back) printf("#   byte %d, length %zu, kind %d: %.*s\n", c, n, kind, (int)len, q);
          all_back = 0;
        }
      }
    }
  }
  CHECK(all_harmless, "only letters, digits, space, -.,:;/()+=%%!? and escapes in every literal");
  CHECK(all_back, "every byte value, next to digits, decodes back exactly");
  CHECK(within, "no literal is longer than fm_gnuplot_quoted_max");
}

static void test_dangerous_text(void) {
  const char *evil = "a\"; system(\"touch x\"); \"\n`touch y` @macro $data #c \\ 'q' {x}&^_~";
  char q[512];
  size_t len = fm_gnuplot_quote(q, evil, strlen(evil), FM_GNUPLOT_TEXT);
  q[len] = '\0';
  CHECK(!strchr(q + 1, '"') || strchr(q + 1, '"') == q + len - 1,
        "no quote but the closing one: %s", q);
  CHECK(!strpbrk(q, "`@$#'\n{}&^_~"), "no backquote, @, $, #, newline or markup character");
  CHECK(fm_gnuplot_quoted_max((size_t)-1) == 0, "an impossible length is reported, not wrapped");
  len = fm_gnuplot_quote(q, "50% off %s%n", 12, FM_GNUPLOT_FORMAT);
  q[len] = '\0';
  CHECK(strcmp(q, "\"50%% off %%s%%n\"") == 0, "format: every %% doubled (%s)", q);
  len = fm_gnuplot_quote(q, "", 0, FM_GNUPLOT_TEXT);
  CHECK(len == 2 && memcmp(q, "\"\"", 2) == 0, "the empty text is \"\"");
}

/* gnuplot itself: a format literal given to sprintf prints the text unchanged. */
static void test_with_gnuplot(void) {
  static fm_gnuplot g;
  fm_gnuplot_init(&g);
  if (fm_gnuplot_start(&g, "gnuplot", NULL, 10) != FM_OK) {
    printf("ok %d # SKIP gnuplot does not start: %s\n", ++check_count, fm_error());
    return;
  }
  const char *texts[] = {"50% off", "%g", "%s%s%n", "100%", "%%", "a_b^c {x} @y &z", "\303\274%d"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    fm_gnuplot_begin(&g, 10, -1);
    fm_gnuplot_sends(&g, "print sprintf(");
    fm_gnuplot_send_quoted(&g, texts[i], strlen(texts[i]), FM_GNUPLOT_FORMAT);
    fm_gnuplot_sends(&g, ")\n");
    int status = fm_gnuplot_end(&g);
    char want[64];
    snprintf(want, sizeof want, "%s\n", texts[i]);
    CHECK(status == FM_GNUPLOT_OK && strcmp(g.said, want) == 0,
          "gnuplot's sprintf of the format literal of \"%s\" prints it as it is", texts[i]);
  }
  fm_gnuplot_stop(&g);
}

int main(void) {
  test_every_byte();
  test_dangerous_text();
  test_with_gnuplot();
  return check_done();
}
