/* l_gnuplot.c: the gnuplot process behind fm.plot, as the table fm.gnuplot.
 *
 * One gnuplot (engine/fm_gnuplot.c) serves every figure of a Lua state. It starts with the first
 * figure and lives in a userdata anchored in the registry, whose __gc/__close ends it when the
 * state closes (or fm.gnuplot.close() does, earlier). A figure is checked whole, then drawn:
 *
 *   check      every field of fig is read and checked once, and every object the figure uses
 *              (command strings, tensors, copies of lists of numbers) is anchored in tables made
 *              here: metamethods run only in this phase, and nothing a later finalizer does to
 *              the user's tables can reach the anchored copies
 *   write      raw pointers are taken from the anchored objects and the data blocks written to a
 *              file in the figure's private directory (fm_figure.h), which gnuplot loads -- gnuplot
 *              reads its stdin one byte per read(), 30 times slower than a file
 *   send       commands go to gnuplot; `set output` names the private drawing file, never a
 *              user's name (a name starting with '|' would be a shell command to gnuplot)
 *   wait       for gnuplot's marker, its exit, the deadline, or Ctrl-C
 *   interpret  what gnuplot said (an error unless only warnings), whether the drawing is complete
 *              for its format, then the drawing is copied over the user's file through a temporary
 *              file and rename, or read back
 * A to-be-closed object owns the private directory, the temporary target file and the Ctrl-C
 * handler, so however the figure ends (an error in any phase, out of memory) they are released
 * and an earlier file of the same name is left as it was.
 *
 *   fm.gnuplot.run(fig) -> path | text, warnings
 *     fig.terminal   a `set terminal` argument whose output can be checked: pngcairo, png, svg,
 *                    pdfcairo, dumb or sixelgd, e.g. "pngcairo size 800,600"
 *     fig.output     the file to write (replaced only by a complete figure); nil to get the
 *                    drawing back as a string (dumb text, sixel)
 *     fig.timeout    seconds to wait for gnuplot (default FMNIST_GNUPLOT_TIMEOUT or 60)
 *     fig[1..n]      gnuplot commands (code, like os.execute's: user text belongs in them only
 *                    through quote), or data blocks {name = "$d", columns = {c1, c2, ...}} (each
 *                    column a tensor or a list of numbers, all the same length: one line per row)
 *                    or {name = "$m", matrix = t} (a 1-D or 2-D tensor, one line per row), with an
 *                    optional digits = 1..17 (default 7). fig and its lists are read raw (their
 *                    metatables are not consulted); data tables' fields through __index.
 *   fm.gnuplot.quote(s [, "format"])   a gnuplot string literal that reads back as s and runs
 *                    nothing; with "format", for strings gnuplot reads as formats (tic labels)
 *   fm.gnuplot.pid()      the running gnuplot's process id, or nil
 *   fm.gnuplot.close()    ends the process now (the next figure starts another)
 *
 * Ctrl-C while gnuplot draws stops gnuplot (killed and reaped) and raises "gnuplot: interrupted".
 * The binary is "gnuplot" on PATH, or FMNIST_GNUPLOT. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_figure.h"
#include "fm_file.h"
#include "fm_gnuplot.h"
#include "fm_gnuplot_quote.h"
#include "lfm.h"

#define LFM_GNUPLOT "fmnist.Gnuplot"
#define LFM_FIGURE_JOB "fmnist.GnuplotFigure"
#define REGISTRY_KEY "fmnist.gnuplot.process"
#define DEFAULT_TIMEOUT 60.0
#define HELLO_TIMEOUT 10.0
/* Values in one figure's data blocks. gnuplot takes about 5 s per million scatter points; past
 * this a figure would take minutes and its data file gigabytes. */
#define MAX_VALUES ((int64_t)1 << 24)
#define MAX_COLUMNS 1024

/* ---- Ctrl-C ---- */

/* The handler writes a byte to a pipe that the wait polls, so that a Ctrl-C is seen at once,
 * whichever thread the signal is delivered to. */
static int interrupt_pipe[2] = {-1, -1};

static void on_sigint(int sig) {
  (void)sig;
  int saved = errno;
  if (write(interrupt_pipe[1], "", 1) < 0) {
  } /* a full pipe already says "interrupted" */
  errno = saved;
}

static void drain_interrupts(void) {
  char buf[64];
  while (read(interrupt_pipe[0], buf, sizeof buf) > 0) {
  }
}

/* ---- a figure's resources ---- */

typedef struct figure_job {
  fm_figure_dir dir;
  fm_atomic_file target;
  int target_open;
  int sigint_armed;
  struct sigaction old_sigint;
} figure_job;

/* Catches Ctrl-C for the wait, unless the program ignores it (then it stays ignored). Returns the
 * fd to poll, or -1. */
static int arm_sigint(figure_job *job) {
  if (interrupt_pipe[0] < 0 && pipe2(interrupt_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  drain_interrupts();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, &job->old_sigint) != 0) return -1;
  if (job->old_sigint.sa_handler == SIG_IGN) {
    sigaction(SIGINT, &job->old_sigint, NULL);
    return -1;
  }
  job->sigint_armed = 1;
  return interrupt_pipe[0];
}

static void disarm_sigint(figure_job *job) {
  if (job->sigint_armed) sigaction(SIGINT, &job->old_sigint, NULL);
  job->sigint_armed = 0;
}

static int figure_job_close(lua_State *L) {
  figure_job *job = luaL_checkudata(L, 1, LFM_FIGURE_JOB);
  disarm_sigint(job);
  if (job->target_open) fm_atomic_abort(&job->target);
  job->target_open = 0;
  fm_figure_dir_remove(&job->dir);
  return 0;
}

/* Pushes a new job, marked to be closed when gnuplot_run returns or raises. */
static figure_job *push_figure_job(lua_State *L) {
  figure_job *job = lua_newuserdatauv(L, sizeof *job, 0);
  memset(job, 0, sizeof *job);
  luaL_setmetatable(L, LFM_FIGURE_JOB);
  lua_toclose(L, -1);
  return job;
}

/* ---- quoting ---- */

/* Pushes s as a gnuplot string literal of the given kind; a zero byte is refused (gnuplot's
 * strings would end there). */
static void push_quoted(lua_State *L, const char *s, size_t n, int kind, const char *what) {
  if (memchr(s, '\0', n)) luaL_error(L, "%s holds a zero byte, which gnuplot cannot show", what);
  size_t max = fm_gnuplot_quoted_max(n);
  if (max == 0) luaL_error(L, "%s is too long", what);
  luaL_Buffer b;
  char *dst = luaL_buffinitsize(L, &b, max);
  luaL_pushresultsize(&b, fm_gnuplot_quote(dst, s, n, kind));
}

static int gnuplot_quote(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  static const char *const kinds[] = {"text", "format", NULL};
  int kind = luaL_checkoption(L, 2, "text", kinds) == 1 ? FM_GNUPLOT_FORMAT : FM_GNUPLOT_TEXT;
  push_quoted(L, s, n, kind, "gnuplot.quote: the text");
  return 1;
}

/* ---- the process ---- */

/* Pushes the process userdata and returns it. It stays on the stack while it is used: the
 * registry is reachable from Lua (debug.getregistry), so the registry alone does not anchor it. */
static fm_gnuplot *gp_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY);
  fm_gnuplot *g = luaL_testudata(L, -1, LFM_GNUPLOT);
  if (!g)
    luaL_error(L, "gnuplot: registry[\"%s\"] is not the gnuplot process any more", REGISTRY_KEY);
  return g;
}

/* Makes sure a live gnuplot is there: one that died since the last figure is reaped and
 * replaced. Raises when none can be started. */
static void gp_ensure(lua_State *L, fm_gnuplot *g, double timeout) {
  if (fm_gnuplot_running(g)) return;
  const char *env = getenv("FMNIST_GNUPLOT");
  if (env && !*env) env = NULL;
  double hello = timeout < HELLO_TIMEOUT ? timeout : HELLO_TIMEOUT;
  if (fm_gnuplot_start(g, env ? env : "gnuplot", env ? "FMNIST_GNUPLOT" : NULL, hello) != FM_OK)
    luaL_error(L, "%s", fm_error());
}

/* ---- checking a figure ---- */

/* A data block as checked. Its columns (tensors, or copies of lists as doubles) are anchored in
 * the block userdata's user value, a table made here, until the figure is written. */
typedef struct data_block {
  char name[64];
  int digits;
  int is_matrix;
  int64_t nrows, ncols;
} data_block;

/* A column: floats of a tensor or doubles copied from a list; one of the two. */
typedef struct column {
  const float *f;
  const double *d;
} column;

static int valid_block_name(const char *s) {
  if (s[0] != '$' || !(s[1] == '_' || (s[1] >= 'A' && s[1] <= 'Z') || (s[1] >= 'a' && s[1] <= 'z')))
    return 0;
  for (s += 2; *s; s++)
    if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
          (*s >= '0' && *s <= '9')))
      return 0;
  return 1;
}

/* Pushes the values of column c (at stack index col) as something that stays the same until the
 * figure is written: the tensor itself, or a copy of a list of numbers as a userdata of doubles
 * (read raw, each value checked). Returns the number of values. */
static int64_t anchor_column(lua_State *L, int col, int c, const char *name) {
  fm_tensor *t = lfm_totensor(L, col);
  if (t) {
    lua_pushvalue(L, col);
    return t->numel;
  }
  if (lua_type(L, col) != LUA_TTABLE)
    return luaL_error(L, "gnuplot data %s: column %d is a %s (tensor or list of numbers expected)",
                      name, c, luaL_typename(L, col));
  lua_Unsigned n = lua_rawlen(L, col);
  if (n > (lua_Unsigned)MAX_VALUES)
    luaL_error(L, "gnuplot data %s: column %d has %I values, more than the %I a figure can hold",
               name, c, (lua_Integer)n, (lua_Integer)MAX_VALUES);
  double *copy = lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
  for (lua_Unsigned i = 1; i <= n; i++) {
    if (lua_rawgeti(L, col, (lua_Integer)i) != LUA_TNUMBER)
      luaL_error(L, "gnuplot data %s: column %d, value %I is a %s (number expected)", name, c,
                 (lua_Integer)i, luaL_typename(L, -1));
    copy[i - 1] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  return (int64_t)n;
}

/* Checks the data table at stack index it (item number item) and pushes a block userdata whose
 * user value anchors its columns. */
static data_block *check_block(lua_State *L, int it, int item) {
  static const char *const known[] = {"name", "columns", "matrix", "digits", NULL};
  lua_pushfstring(L, "gnuplot.run: item %d (data)", item);
  lfm_check_options(L, it, lua_tostring(L, -1), known);
  lua_pop(L, 1);
  data_block *d = lua_newuserdatauv(L, sizeof *d, 1);
  memset(d, 0, sizeof *d);
  int block = lua_gettop(L);
  lua_newtable(L); /* the anchors */
  int anchors = lua_gettop(L);
  size_t len;
  if (lua_getfield(L, it, "name") != LUA_TSTRING || !valid_block_name(lua_tolstring(L, -1, &len)) ||
      len >= sizeof d->name)
    luaL_error(L, "gnuplot.run: item %d: data needs a name like \"$data\" (letters, digits, _)",
               item);
  memcpy(d->name, lua_tostring(L, -1), len + 1);
  lua_pop(L, 1);
  d->digits = 7;
  if (lua_getfield(L, it, "digits") != LUA_TNIL) {
    int isint;
    lua_Integer k = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || k < 1 || k > 17)
      luaL_error(L, "gnuplot data %s: digits must be an integer from 1 to 17, got %s", d->name,
                 luaL_tolstring(L, -1, NULL));
    d->digits = (int)k;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, it, "matrix") != LUA_TNIL) {
    fm_tensor *t = lfm_totensor(L, -1);
    if (!t || t->ndim > 2)
      luaL_error(L, "gnuplot data %s: matrix must be a 1-D or 2-D tensor", d->name);
    d->is_matrix = 1;
    d->nrows = t->ndim == 2 ? t->shape[0] : 1;
    d->ncols = t->ndim == 2 ? t->shape[1] : t->shape[0];
    if (t->numel == 0) luaL_error(L, "gnuplot data %s: matrix is empty", d->name);
    lua_rawseti(L, anchors, 1);
  } else {
    lua_pop(L, 1);
    if (lua_getfield(L, it, "columns") != LUA_TTABLE)
      luaL_error(L, "gnuplot data %s: columns (a list) or matrix (a tensor) expected", d->name);
    int cols = lua_gettop(L);
    lua_Unsigned ncols = lua_rawlen(L, cols);
    if (ncols < 1 || ncols > MAX_COLUMNS)
      luaL_error(L, "gnuplot data %s: %I columns (1 to %d expected)", d->name, (lua_Integer)ncols,
                 MAX_COLUMNS);
    d->ncols = (int64_t)ncols;
    for (int64_t c = 1; c <= d->ncols; c++) {
      lua_rawgeti(L, cols, c);
      int64_t n = anchor_column(L, lua_gettop(L), (int)c, d->name);
      if (c == 1)
        d->nrows = n;
      else if (n != d->nrows)
        luaL_error(L, "gnuplot data %s: column %d has %I values, column 1 has %I", d->name, (int)c,
                   (lua_Integer)n, (lua_Integer)d->nrows);
      lua_rawseti(L, anchors, c);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (d->nrows == 0) luaL_error(L, "gnuplot data %s: the columns are empty", d->name);
  }
  lua_setiuservalue(L, block, 1);
  return d;
}

/* The timeout: fig.timeout, else FMNIST_GNUPLOT_TIMEOUT, else 60 s. */
static double check_timeout(lua_State *L, int fig) {
  double timeout = DEFAULT_TIMEOUT;
  const char *env = getenv("FMNIST_GNUPLOT_TIMEOUT");
  if (env && *env) {
    char *end;
    timeout = strtod(env, &end);
    if (*end || !(timeout > 0) || !isfinite(timeout))
      luaL_error(L, "FMNIST_GNUPLOT_TIMEOUT must be a positive number of seconds, got '%s'", env);
  }
  if (lua_getfield(L, fig, "timeout") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "gnuplot.run: fig.timeout must be a number of seconds, got %s",
                 luaL_typename(L, -1));
    timeout = lua_tonumber(L, -1);
    if (!(timeout > 0) || !isfinite(timeout))
      luaL_error(L, "gnuplot.run: fig.timeout must be a positive number of seconds, got %s",
                 luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
  return timeout;
}

/* fig.output: nil, or a name for open() and rename() only. An existing directory, device or FIFO
 * is refused before anything is drawn. Leaves the name (or nil) on the stack. */
static const char *check_output(lua_State *L, int fig) {
  int type = lua_getfield(L, fig, "output");
  if (type == LUA_TNIL) return NULL;
  if (type != LUA_TSTRING)
    luaL_error(L, "gnuplot.run: fig.output must be a file name (a string), got %s",
               luaL_typename(L, -1));
  size_t n;
  const char *output = lua_tolstring(L, -1, &n);
  if (n == 0) luaL_error(L, "gnuplot.run: fig.output is an empty file name");
  if (strlen(output) != n) luaL_error(L, "gnuplot.run: fig.output holds a zero byte");
  struct stat st;
  if (stat(output, &st) == 0 && !S_ISREG(st.st_mode))
    luaL_error(L, "%s: cannot write a figure there (%s)", output,
               S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
  return output;
}

/* Raises for any key of fig other than terminal, output, timeout and the items 1..n. */
static void check_fig_keys(lua_State *L, int fig, lua_Unsigned n) {
  lua_pushnil(L);
  while (lua_next(L, fig)) {
    lua_pop(L, 1);
    int isint;
    lua_Integer i = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) == LUA_TNUMBER && isint && i >= 1 && (lua_Unsigned)i <= n) continue;
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (k && (!strcmp(k, "terminal") || !strcmp(k, "output") || !strcmp(k, "timeout"))) continue;
    luaL_error(L,
               "gnuplot.run: unknown field %s in the figure (known: terminal, output, timeout, "
               "and the commands 1..%I)",
               luaL_tolstring(L, -1, NULL), (lua_Integer)n);
  }
}

/* ---- writing the data ---- */

static void put_number(FILE *f, double v, int digits, char sep) {
  if (isfinite(v))
    fprintf(f, "%.*g%c", digits, v, sep);
  else
    fprintf(f, "NaN%c", sep);
}

/* Fills cols (d->ncols entries) with pointers into the block's anchored columns. Runs no Lua
 * code: the anchors are tables made here, without metatables. */
static void bind_columns(lua_State *L, int block, const data_block *d, column *cols) {
  lua_getiuservalue(L, block, 1);
  for (int64_t c = 0; c < (d->is_matrix ? 1 : d->ncols); c++) {
    lua_rawgeti(L, -1, c + 1);
    fm_tensor *t = lfm_totensor(L, -1);
    cols[c].f = t ? t->data : NULL;
    cols[c].d = t ? NULL : lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void write_block(FILE *f, const data_block *d, const column *cols) {
  fprintf(f, "%s << EOD\n", d->name);
  for (int64_t r = 0; r < d->nrows; r++) {
    for (int64_t c = 0; c < d->ncols; c++) {
      double v =
          d->is_matrix ? cols[0].f[r * d->ncols + c] : (cols[c].f ? cols[c].f[r] : cols[c].d[r]);
      put_number(f, v, d->digits, c + 1 < d->ncols ? ' ' : '\n');
    }
  }
  fputs("EOD\n", f);
}

/* Writes every data block of items (the anchored figure, nitems long) to path. */
static void write_data(lua_State *L, int items, lua_Integer nitems, const char *path) {
  int64_t most = 1;
  for (lua_Integer i = 1; i <= nitems; i++) {
    if (lua_rawgeti(L, items, i) == LUA_TUSERDATA) {
      const data_block *d = lua_touserdata(L, -1);
      if (d->ncols > most) most = d->ncols;
    }
    lua_pop(L, 1);
  }
  column *cols = lua_newuserdatauv(L, (size_t)most * sizeof(column), 0);
  FILE *f = fopen(path, "w");
  if (!f)
    luaL_error(L, "gnuplot: cannot write the figure's data to %s (%s)", path, strerror(errno));
  for (lua_Integer i = 1; i <= nitems; i++) {
    if (lua_rawgeti(L, items, i) == LUA_TUSERDATA) {
      const data_block *d = lua_touserdata(L, -1);
      bind_columns(L, lua_gettop(L), d, cols);
      write_block(f, d, cols);
    }
    lua_pop(L, 1);
  }
  int e = ferror(f) ? (errno ? errno : EIO) : 0;
  if (fclose(f) != 0 && !e) e = errno;
  if (e) luaL_error(L, "gnuplot: cannot write the figure's data to %s (%s)", path, strerror(e));
  lua_pop(L, 1);
}

/* ---- the figure ---- */

/* Pushes what gnuplot said during the figure as one line; sets *only_warnings. */
static void push_said(lua_State *L, const fm_gnuplot *g, int *only_warnings) {
  size_t n = fm_gnuplot_said(g, NULL, 0, only_warnings);
  luaL_Buffer b;
  char *dst = luaL_buffinitsize(L, &b, n + 1);
  fm_gnuplot_said(g, dst, n + 1, only_warnings);
  luaL_pushresultsize(&b, n);
}

/* Pushes the contents of a file as a string (the drawing of a dumb or sixel figure). */
static int push_file(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t n;
  do {
    char *dst = luaL_prepbuffer(&b);
    n = fread(dst, 1, LUAL_BUFFERSIZE, f);
    luaL_addsize(&b, n);
  } while (n == LUAL_BUFFERSIZE);
  int bad = ferror(f);
  fclose(f);
  luaL_pushresult(&b);
  return !bad;
}

/* Sends the figure: a clean session, the terminal, the private drawing file as output, the data,
 * the commands, and the end of the output. */
static void send_figure(fm_gnuplot *g, lua_State *L, const char *terminal,
                        const fm_figure_kind *kind, const figure_job *job, int any_data, int items,
                        lua_Integer nitems) {
  /* A figure that failed halfway may have left gnuplot in multiplot mode, where the terminal
   * cannot change; reset session forgets the previous figure's settings and data blocks. */
  fm_gnuplot_sends(g, "unset multiplot\nreset session\nset terminal ");
  fm_gnuplot_sends(g, terminal);
  fm_gnuplot_sends(g, kind->terminal_suffix);
  fm_gnuplot_sends(g, "\nset output ");
  fm_gnuplot_send_quoted(g, job->dir.drawing, strlen(job->dir.drawing), FM_GNUPLOT_TEXT);
  fm_gnuplot_sends(g, "\n");
  if (any_data) {
    fm_gnuplot_sends(g, "load ");
    fm_gnuplot_send_quoted(g, job->dir.data, strlen(job->dir.data), FM_GNUPLOT_TEXT);
    fm_gnuplot_sends(g, "\n");
  }
  for (lua_Integer i = 1; i <= nitems; i++) {
    if (lua_rawgeti(L, items, i) == LUA_TSTRING) {
      size_t n;
      const char *cmd = lua_tolstring(L, -1, &n);
      fm_gnuplot_send(g, cmd, n);
      if (n == 0 || cmd[n - 1] != '\n') fm_gnuplot_sends(g, "\n");
    }
    lua_pop(L, 1);
  }
  fm_gnuplot_sends(g, "unset output\n");
}

/* Raises the error of a figure gnuplot did not finish. */
/* Raises the message on top of the stack, prefixed by the figure's file name when it has one
 * (the file was not changed: that is what the name tells). */
static int raise_about(lua_State *L, const char *output) {
  if (output) return luaL_error(L, "%s: %s", output, lua_tostring(L, -1));
  return lua_error(L);
}

static int figure_failed(lua_State *L, fm_gnuplot *g, int status, double timeout,
                         const char *output) {
  int only_warnings;
  push_said(L, g, &only_warnings);
  const char *said = lua_tostring(L, -1);
  const char *sep = said[0] ? ": " : "";
  if (status == FM_GNUPLOT_CANCELLED) {
    lua_pushstring(L, "gnuplot: interrupted (gnuplot stopped; no file written)");
  } else if (status == FM_GNUPLOT_TIMEOUT) {
    char secs[32];
    snprintf(secs, sizeof secs, "%g", timeout);
    lua_pushfstring(L,
                    "gnuplot did not finish the figure within %s s (killed; fig.timeout or "
                    "FMNIST_GNUPLOT_TIMEOUT give it longer)%s%s",
                    secs, sep, said);
  } else {
    lua_pushfstring(L, "gnuplot exited while drawing%s%s", sep, said);
  }
  return raise_about(L, output);
}

static int gnuplot_run(lua_State *L) {
  /* ---- check: the only phase in which user code (metamethods, finalizers) may run ---- */
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  const int fig = 1;
  lua_Unsigned n = lua_rawlen(L, fig);
  if (n > 1000000) return luaL_error(L, "gnuplot.run: %I items is too many", (lua_Integer)n);
  lua_Integer nitems = (lua_Integer)n;
  check_fig_keys(L, fig, n);
  if (lua_getfield(L, fig, "terminal") != LUA_TSTRING) /* stack 2 */
    return luaL_error(L, "gnuplot.run: fig.terminal (a string) expected, got %s",
                      luaL_typename(L, -1));
  const char *terminal = lua_tostring(L, 2);
  fm_figure_kind kind;
  if (fm_figure_kind_of(terminal, &kind) != FM_OK)
    return luaL_error(L, "gnuplot.run: %s", fm_error());
  const char *output = check_output(L, fig); /* stack 3 */
  const int output_idx = 3;
  double timeout = check_timeout(L, fig);
  lua_createtable(L, (int)nitems, 0); /* stack 4: the figure's items, anchored */
  const int items = 4;
  int any_data = 0;
  int64_t values = 0;
  for (lua_Integer i = 1; i <= nitems; i++) {
    int type = lua_rawgeti(L, fig, i);
    if (type == LUA_TTABLE) {
      const data_block *d = check_block(L, lua_gettop(L), (int)i);
      values += d->nrows * d->ncols;
      if (values > MAX_VALUES)
        return luaL_error(L,
                          "gnuplot.run: the figure's data holds more than %I values; draw a "
                          "sample of them",
                          (lua_Integer)MAX_VALUES);
      any_data = 1;
      lua_rawseti(L, items, i);
    } else if (type == LUA_TSTRING) {
      size_t len;
      const char *cmd = lua_tolstring(L, -1, &len);
      if (strlen(cmd) != len) return luaL_error(L, "gnuplot.run: item %I holds a zero byte", i);
      lua_pushvalue(L, -1);
      lua_rawseti(L, items, i);
    } else {
      return luaL_error(L, "gnuplot.run: item %I is a %s (command string or data table expected)",
                        i, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }

  /* ---- write: raw pointers, taken only now and only into objects anchored in items. A
   * finalizer that runs during an allocation from here on is still user code, but it cannot reach
   * items, the job or the stack slots above. ---- */
  figure_job *job = push_figure_job(L);
  if (fm_figure_dir_make(&job->dir) != FM_OK) return luaL_error(L, "gnuplot: %s", fm_error());
  if (any_data) write_data(L, items, nitems, job->dir.data);
  if (output) {
    if (fm_atomic_begin(&job->target, output) != FM_OK) return luaL_error(L, "%s", fm_error());
    job->target_open = 1;
  }
  fm_gnuplot *g = gp_get(L);
  gp_ensure(L, g, timeout);

  /* ---- send and wait ---- */
  int cancel_fd = arm_sigint(job);
  fm_gnuplot_begin(g, timeout, cancel_fd);
  send_figure(g, L, terminal, &kind, job, any_data, items, nitems);
  int status = fm_gnuplot_end(g);
  disarm_sigint(job);

  /* ---- interpret ---- */
  if (status != FM_GNUPLOT_OK) return figure_failed(L, g, status, timeout, output);
  int only_warnings;
  push_said(L, g, &only_warnings);
  int said_idx = lua_gettop(L);
  if (lua_rawlen(L, said_idx) > 0 && !only_warnings) {
    lua_pushfstring(L, "gnuplot: %s", lua_tostring(L, said_idx));
    return raise_about(L, output);
  }
  if (fm_figure_check(job->dir.drawing, &kind, output ? output : "the figure") != FM_OK)
    return luaL_error(L, "%s", fm_error());
  if (output) {
    job->target_open = 0; /* installed or aborted, either way closed */
    if (fm_figure_install(job->dir.drawing, &job->target) != FM_OK)
      return luaL_error(L, "%s", fm_error());
    lua_pushvalue(L, output_idx);
  } else if (!push_file(L, job->dir.drawing)) {
    return luaL_error(L, "gnuplot: cannot read its drawing back");
  }
  if (lua_rawlen(L, said_idx) > 0)
    lua_pushvalue(L, said_idx);
  else
    lua_pushnil(L);
  return 2;
}

static int gnuplot_pid(lua_State *L) {
  fm_gnuplot *g = gp_get(L);
  if (g->pid > 0)
    lua_pushinteger(L, g->pid);
  else
    lua_pushnil(L);
  return 1;
}

static int gnuplot_close(lua_State *L) {
  fm_gnuplot_stop(gp_get(L));
  return 0;
}

static int process_gc(lua_State *L) {
  fm_gnuplot_stop(luaL_checkudata(L, 1, LFM_GNUPLOT));
  return 0;
}

void lfm_open_gnuplot(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", process_gc}, {"__close", process_gc}, {NULL, NULL}};
  static const luaL_Reg job_meta[] = {
      {"__gc", figure_job_close}, {"__close", figure_job_close}, {NULL, NULL}};
  static const luaL_Reg functions[] = {{"run", gnuplot_run},
                                       {"quote", gnuplot_quote},
                                       {"pid", gnuplot_pid},
                                       {"close", gnuplot_close},
                                       {NULL, NULL}};
  lfm_newclass(L, LFM_GNUPLOT, meta, NULL);
  lfm_newclass(L, LFM_FIGURE_JOB, job_meta, NULL);
  /* One process object per Lua state, created now in the stopped state so that its __gc runs at
   * lua_close however the program ends. */
  if (lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY) == LUA_TNIL) {
    fm_gnuplot *g = lua_newuserdatauv(L, sizeof *g, 0);
    fm_gnuplot_init(g);
    luaL_setmetatable(L, LFM_GNUPLOT);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY);
  }
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  lua_setfield(L, -2, "gnuplot");
}
