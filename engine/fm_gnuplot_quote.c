/* fm_gnuplot_quote: gnuplot string literals that read back as the exact text and run nothing. */
#include "fm_gnuplot_quote.h"

#include <stdint.h>
#include <string.h>

/* Bytes written as themselves. Not among them: the quotes, the backquote (a shell command), @ (a
 * macro), $ (data blocks and columns in some contexts), # (a comment outside strings), the
 * backslash (escapes), & { } ^ _ ~ (enhanced text markup, were it ever on), control bytes and
 * everything above 127 (UTF-8 passes through as escapes and decodes back to the same bytes). */
static int plain_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr(" -.,:;/()+=%!?", c) != NULL);
}

size_t fm_gnuplot_quoted_max(size_t n) {
  if (n > (SIZE_MAX - 2) / 5) return 0;
  return 5 * n + 2;
}

/* gnuplot reads an octal escape that starts with 0 as up to four digits and any other as up to
 * three, so a byte below 0100 is written with four digits (\0043) and the rest with three (\303):
 * an escape then never swallows a digit that follows it. */
static size_t put_octal(char *dst, unsigned char c) {
  size_t k = 0;
  dst[k++] = '\\';
  if (c < 0100) dst[k++] = '0';
  dst[k++] = (char)('0' + ((c >> 6) & 7));
  dst[k++] = (char)('0' + ((c >> 3) & 7));
  dst[k++] = (char)('0' + (c & 7));
  return k;
}

size_t fm_gnuplot_quote(char *dst, const char *s, size_t n, int kind) {
  size_t k = 0;
  dst[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%' && kind == FM_GNUPLOT_FORMAT) {
      dst[k++] = '%';
      dst[k++] = '%';
    } else if (plain_byte(c)) {
      dst[k++] = (char)c;
    } else {
      k += put_octal(dst + k, c);
    }
  }
  dst[k++] = '"';
  return k;
}
