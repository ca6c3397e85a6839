/* test_figure: the files around a figure. Terminals are recognised or refused; drawings made by a
 * real gnuplot in every format pass the completeness check whole and fail it cut anywhere; the
 * private directory is made and removed; installing a drawing replaces the target whole, or --
 * when the target's disk refuses the bytes (RLIMIT_FSIZE, as a full disk would) -- leaves the
 * earlier file's bytes exactly as they were and no temporary file behind. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fm_error.h"
#include "fm_figure.h"
#include "fm_file.h"
#include "fm_gnuplot.h"

static char dir[64];
static fm_gnuplot g;

static const char *tmp_path(const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc((size_t)size + 1);
  *n = fread(data, 1, (size_t)size, f);
  fclose(f);
  return data;
}

static void write_file(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

static int count_entries(const char *path) {
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void test_terminals(void) {
  fm_figure_kind k;
  CHECK(fm_figure_kind_of("pngcairo size 800,600 noenhanced font \"Sans,11\"", &k) == FM_OK &&
            k.format == FM_FIGURE_PNG && k.terminal_suffix[0] == '\0',
        "pngcairo writes PNG");
  CHECK(fm_figure_kind_of("dumb size 100,30 noenhanced", &k) == FM_OK &&
            k.format == FM_FIGURE_TEXT && k.text_rows == 30 && k.terminal_suffix[0] == '\0',
        "dumb size 100,30: text of 30 rows");
  CHECK(fm_figure_kind_of("dumb", &k) == FM_OK && k.text_rows == 24 &&
            strcmp(k.terminal_suffix, " size 79,24") == 0,
        "dumb without a size: gnuplot's 79,24 said explicitly");
  CHECK(fm_figure_kind_of("svg size 10, 20", &k) == FM_OK && k.format == FM_FIGURE_SVG, "svg");
  CHECK(fm_figure_kind_of("pdfcairo", &k) == FM_OK && k.format == FM_FIGURE_PDF, "pdfcairo");
  CHECK(fm_figure_kind_of("sixelgd", &k) == FM_OK && k.format == FM_FIGURE_SIXEL, "sixelgd");
  CHECK_FAILS(fm_figure_kind_of("postscript eps", &k),
              "terminal 'postscript' is not one whose figures can be checked (known: pngcairo, "
              "png, svg, pdfcairo, dumb, sixelgd)",
              "an unknown terminal is refused, naming the known ones");
  CHECK_FAILS(fm_figure_kind_of("pngcairo; set output '|x'", &k), "must be one plain command",
              "a second command after ';' is refused");
  CHECK_FAILS(fm_figure_kind_of("pngcairo\nset output", &k), "must be one plain command",
              "a newline is refused");
  CHECK_FAILS(fm_figure_kind_of("svg font `x`", &k), "must be one plain command",
              "a backquote is refused");
  CHECK_FAILS(fm_figure_kind_of("pngcairox", &k), "terminal 'pngcairox' is not",
              "prefixes are not names");
}

/* Draws a figure with a real gnuplot into path. */
static int draw(const char *terminal, const char *path, const char *plot) {
  fm_gnuplot_begin(&g, 30, -1);
  fm_gnuplot_sends(&g, "reset session\nset terminal ");
  fm_gnuplot_sends(&g, terminal);
  fm_gnuplot_sends(&g, "\nset output ");
  fm_gnuplot_send_quoted(&g, path, strlen(path), 0);
  fm_gnuplot_sends(&g, "\n");
  fm_gnuplot_sends(&g, plot);
  fm_gnuplot_sends(&g, "\nunset output\n");
  return fm_gnuplot_end(&g) == FM_GNUPLOT_OK && g.said_len == 0 ? FM_OK : FM_ERR;
}

/* Checks the whole drawing, then copies cut at many points (every byte near both ends), which must
 * all be refused. */
static void check_cuts(const char *terminal, const char *plot, const char *name) {
  const char *path = tmp_path(name);
  fm_figure_kind k;
  if (fm_figure_kind_of(terminal, &k) != FM_OK || draw(terminal, path, plot) != FM_OK) {
    CHECK(0, "%s: gnuplot draws it (%s)", name, fm_error());
    return;
  }
  size_t n;
  char *data = read_file(path, &n);
  CHECK(fm_figure_check(path, &k, "whole") == FM_OK,
        "%s: a whole %s drawing (%zu bytes) passes (%s)", name, fm_figure_format_name(k.format), n,
        fm_error());
  const char *cut = tmp_path("cut");
  int refused = 0, tried = 0;
  size_t first_passing = 0;
  /* A cut that takes only the trailing newline leaves a complete document. */
  while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r') && k.format != FM_FIGURE_TEXT) n--;
  for (size_t len = 0; len < n; len++) {
    if (len > 64 && len + 64 < n && len % 97 != 0) continue;
    write_file(cut, data, len);
    tried++;
    if (fm_figure_check(cut, &k, "user.fig") != FM_OK && strstr(fm_error(), "user.fig: "))
      refused++;
    else if (!first_passing)
      first_passing = len;
  }
  CHECK(refused == tried,
        "%s: every one of %d cut copies is refused, naming the figure "
        "(first passing length: %zu)",
        name, tried, first_passing);
  write_file(cut, data, 0);
  CHECK_FAILS(fm_figure_check(cut, &k, "user.fig"), "user.fig: gnuplot drew nothing",
              "%s: an empty drawing", name);
  free(data);
}

static void test_checks(void) {
  if (fm_gnuplot_start(&g, "gnuplot", NULL, 10) != FM_OK) {
    printf("ok %d # SKIP gnuplot does not start: %s\n", ++check_count, fm_error());
    return;
  }
  check_cuts("pngcairo size 300,200", "plot sin(x)", "fig.png");
  check_cuts("pngcairo size 300,200", "plot sin(x)\nplot cos(x)", "two.png");
  check_cuts("svg size 300,200", "plot sin(x)", "fig.svg");
  check_cuts("pdfcairo size 3in,2in", "plot sin(x)", "fig.pdf");
  check_cuts("dumb size 60,20", "plot sin(x)", "fig.txt");
  check_cuts("dumb size 60,20", "plot sin(x)\nplot cos(x)", "two.txt");
  check_cuts("sixelgd size 100,80", "plot sin(x)", "fig.six");
  fm_figure_kind k;
  fm_figure_kind_of("pngcairo", &k);
  write_file(tmp_path("text.png"), "not a png at all", 16);
  CHECK_FAILS(fm_figure_check(tmp_path("text.png"), &k, "user.png"),
              "user.png: gnuplot's drawing is not a complete PNG file", "a text file is no PNG");
  fm_gnuplot_stop(&g);
}

static void test_private_dir(void) {
  fm_figure_dir d;
  const char *old = getenv("TMPDIR");
  char *saved = old ? strdup(old) : NULL;
  setenv("TMPDIR", dir, 1);
  int before = count_entries(dir);
  CHECK(fm_figure_dir_make(&d) == FM_OK && strncmp(d.dir, dir, strlen(dir)) == 0,
        "the private directory is made under $TMPDIR (%s)", d.dir);
  struct stat st;
  CHECK(stat(d.dir, &st) == 0 && (st.st_mode & 0777) == 0700, "mode 0700");
  CHECK(strcmp(d.drawing + strlen(d.dir), "/figure") == 0 &&
            strcmp(d.data + strlen(d.dir), "/data.gp") == 0 && d.drawing[0] == '/',
        "fixed, absolute names inside it");
  write_file(d.drawing, "x", 1);
  write_file(d.data, "y", 1);
  write_file(tmp_path("keep"), "z", 1);
  char other[4200];
  snprintf(other, sizeof other, "%s/other", d.dir);
  write_file(other, "z", 1);
  fm_figure_dir_remove(&d);
  CHECK(count_entries(dir) == before + 1 && d.dir[0] == '\0',
        "removed with every file in it, and nothing else");
  fm_figure_dir_remove(&d);
  CHECK(1, "removing twice is harmless");
  setenv("TMPDIR", "relative/dir", 1);
  CHECK(fm_figure_dir_make(&d) == FM_OK && strncmp(d.dir, "/tmp/fmnist-plot-", 17) == 0,
        "a relative TMPDIR is not used (%s)", d.dir);
  fm_figure_dir_remove(&d);
  if (saved) {
    setenv("TMPDIR", saved, 1);
    free(saved);
  } else {
    unsetenv("TMPDIR");
  }
  unlink(tmp_path("keep"));
}

/* Installs big over target in a child whose files may not grow past limit bytes (the child
 * ignores SIGXFSZ, so writes fail with EFBIG as on a full disk). Returns the child's result:
 * 0 installed, 1 refused with a message naming the target, 2 something else. */
static int install_limited(const char *big, const char *target, rlim_t limit) {
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit r = {limit, limit};
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &r) != 0) _exit(3);
    fm_atomic_file a;
    if (fm_atomic_begin(&a, target) != FM_OK) _exit(2);
    if (fm_figure_install(big, &a) == FM_OK) _exit(0);
    printf("#   %s\n", fm_error());
    fflush(stdout);
    _exit(strstr(fm_error(), target) ? 1 : 2);
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

static void test_install(void) {
  const char *big = tmp_path("big.drawing"), *target = tmp_path("target.svg");
  size_t n = 200000;
  char *data = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (char)('a' + i % 26);
  write_file(big, data, n);
  const char *old = "<svg>the earlier figure</svg>\n";
  write_file(target, old, strlen(old));
  int before = count_entries(dir);
  CHECK(install_limited(big, target, 50000) == 1,
        "a target that cannot take the bytes: the install fails naming it");
  size_t m;
  char *now = read_file(target, &m);
  CHECK(now && m == strlen(old) && memcmp(now, old, m) == 0,
        "the earlier file's bytes are exactly as they were");
  free(now);
  CHECK(count_entries(dir) == before, "no temporary file is left beside it");
  CHECK(install_limited(big, target, RLIM_INFINITY) == 0, "without the limit it is installed");
  now = read_file(target, &m);
  CHECK(now && m == n && memcmp(now, data, n) == 0, "and the target holds the drawing whole");
  free(now);
  fm_atomic_file a;
  CHECK(fm_atomic_begin(&a, target) == FM_OK, "a target opened");
  CHECK_FAILS(fm_figure_install(tmp_path("missing"), &a),
              "target.svg: cannot read gnuplot's drawing", "a missing drawing");
  CHECK(count_entries(dir) == before, "and its temporary file is removed");
  free(data);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fmnist-test-figure-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  fm_gnuplot_init(&g);
  test_terminals();
  test_checks();
  test_private_dir();
  test_install();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return check_done();
}
