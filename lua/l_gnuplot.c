/* l_gnuplot.c: the gnuplot process behind fm.plot, as the table fm.gnuplot.
 *
 * One gnuplot serves every figure of a Lua state. It starts with the first figure and lives in a
 * userdata anchored in the registry, whose __gc/__close ends it when the state closes (or
 * fm.gnuplot.close() does, earlier). It reads commands on one pipe; its stdout and stderr come back
 * together on another, which is read, never thrown away. A figure ends with `unset output`, which
 * closes the file, and a `print` of a marker line (print writes to stderr): the figure is complete
 * when the marker arrives, and whatever gnuplot said before it is about this figure. A dead
 * gnuplot (closed pipe, EPIPE) is reaped and replaced on the next figure; a hung one is killed
 * after a timeout. Data goes to gnuplot as data blocks written here from the tensors' floats
 * (never number by number from Lua) into a temporary file that gnuplot loads: gnuplot reads its
 * stdin one byte per read(), 30 times slower than a file.
 *
 *   fm.gnuplot.run(fig) -> path | text, warnings
 *     fig.terminal   a `set terminal` argument, e.g. "pngcairo size 800,600" (trusted: plot.lua)
 *     fig.output     the file to write (written to a temporary file, renamed when complete); nil
 *                    to get the drawing back as a string (dumb text, sixel)
 *     fig.timeout    seconds to wait for gnuplot (default FMNIST_GNUPLOT_TIMEOUT or 60)
 *     fig[1..n]      command strings, or data blocks {name = "$d", columns = {c1, c2, ...}}
 *                    (each column a tensor or a list of numbers, all the same length: one line
 *                    per row) or {name = "$m", matrix = t} (a 2-D tensor, one line per row), with
 *                    an optional digits = 1..17 (default 7)
 *   fm.gnuplot.quote(s)   a gnuplot string literal that reads back as s and runs nothing
 *   fm.gnuplot.pid()      the running gnuplot's process id, or nil
 *   fm.gnuplot.close()    ends the process now (the next figure starts another)
 *
 * The binary is "gnuplot" on PATH, or FMNIST_GNUPLOT. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lfm.h"

#define LFM_GNUPLOT "fmnist.Gnuplot"
#define REGISTRY_KEY "fmnist.gnuplot.process"
#define DEFAULT_TIMEOUT 60.0
#define HELLO_TIMEOUT 10.0

extern char **environ;

typedef struct gp_process {
  pid_t pid;            /* 0: not running */
  int in_fd, out_fd;    /* gnuplot's stdin; its stdout + stderr */
  unsigned long serial; /* figures sent, for the marker */
  char marker[64];      /* the line that ends the current figure */
  int got_marker, eof;
  char line[1024]; /* a line of gnuplot's output being assembled */
  size_t line_len;
  char said[8192]; /* what gnuplot said during the current figure */
  size_t said_len;
  int said_cut;
  char out[65536]; /* commands not yet written */
  size_t out_len;
  int failed; /* GP_DEAD or GP_TIMEOUT once writing failed */
} gp_process;

enum { GP_OK = 0, GP_DEAD = 1, GP_TIMEOUT = 2 };

/* ---- time ---- */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int ms_until(double deadline) {
  double left = deadline - now_seconds();
  if (left <= 0) return 0;
  return left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
}

/* ---- the process ---- */

/* Moves fd above 2 so that the dup2 onto 0/1/2 in the child never meets itself (dup2 of an fd
 * onto itself would keep its close-on-exec flag and lose it at exec). */
static int above_stdio(int fd) {
  if (fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

/* Ends the process: closing its stdin makes gnuplot exit; if it does not within a second it is
 * killed. Always reaps it, so no zombie is left. Safe on a process that is not running. */
static void gp_stop(gp_process *p) {
  if (p->in_fd >= 0) close(p->in_fd);
  p->in_fd = -1;
  if (p->pid > 0) {
    int status;
    pid_t r = 0;
    for (int i = 0; i < 100 && (r = waitpid(p->pid, &status, WNOHANG)) == 0; i++) {
      struct timespec ten_ms = {0, 10000000};
      nanosleep(&ten_ms, NULL);
    }
    if (r == 0) {
      kill(p->pid, SIGKILL);
      while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  p->pid = 0;
  if (p->out_fd >= 0) close(p->out_fd);
  p->out_fd = -1;
  p->out_len = 0;
  p->line_len = 0;
}

/* Kills at once: used when gnuplot stopped answering, or broke the protocol. */
static void gp_kill(gp_process *p) {
  if (p->pid > 0) kill(p->pid, SIGKILL);
  gp_stop(p);
}

/* Appends a completed line of gnuplot's output to what it said, or notes the marker. */
static void gp_line(gp_process *p) {
  p->line[p->line_len] = '\0';
  if (strcmp(p->line, p->marker) == 0) {
    p->got_marker = 1;
  } else if (p->said_len + p->line_len + 2 <= sizeof p->said) {
    memcpy(p->said + p->said_len, p->line, p->line_len);
    p->said_len += p->line_len;
    p->said[p->said_len++] = '\n';
    p->said[p->said_len] = '\0';
  } else {
    p->said_cut = 1;
  }
  p->line_len = 0;
}

/* Reads whatever gnuplot has written so far (the pipe is non-blocking). Returns GP_DEAD at end of
 * file: gnuplot has exited or closed its output. */
static int gp_read(gp_process *p) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(p->out_fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? GP_OK : GP_DEAD;
    }
    if (n == 0) {
      if (p->line_len) gp_line(p);
      p->eof = 1;
      return GP_DEAD;
    }
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == '\n')
        gp_line(p);
      else if (buf[i] != '\r' && p->line_len + 1 < sizeof p->line)
        p->line[p->line_len++] = buf[i];
    }
  }
}

/* write() that reports a closed pipe as EPIPE instead of letting SIGPIPE end the whole program:
 * SIGPIPE is blocked for this thread during the call, and a SIGPIPE it raised is taken back
 * before unblocking. */
static ssize_t write_nosigpipe(int fd, const char *s, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t w = write(fd, s, n);
  int e = errno;
  if (w < 0 && e == EPIPE && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return w;
}

/* Writes n bytes to gnuplot while reading its output, so that neither side can block the other
 * with a full pipe. */
static int gp_write(gp_process *p, const char *s, size_t n, double deadline) {
  while (n > 0) {
    struct pollfd fds[2] = {{p->in_fd, POLLOUT, 0}, {p->out_fd, POLLIN, 0}};
    int r = poll(fds, 2, ms_until(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return GP_DEAD;
    if (r == 0) return GP_TIMEOUT;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && gp_read(p) == GP_DEAD) return GP_DEAD;
    if (fds[0].revents & (POLLERR | POLLHUP)) return GP_DEAD;
    if (fds[0].revents & POLLOUT) {
      ssize_t w = write_nosigpipe(p->in_fd, s, n);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return GP_DEAD;
      }
      s += w;
      n -= (size_t)w;
    }
  }
  return GP_OK;
}

/* Waits for the marker line. */
static int gp_wait_marker(gp_process *p, double deadline) {
  while (!p->got_marker) {
    struct pollfd fd = {p->out_fd, POLLIN, 0};
    int r = poll(&fd, 1, ms_until(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return GP_DEAD;
    if (r == 0) return GP_TIMEOUT;
    if (gp_read(p) == GP_DEAD && !p->got_marker) return GP_DEAD;
  }
  return GP_OK;
}

/* ---- buffered commands ---- */

static void gp_flush(gp_process *p, double deadline) {
  if (!p->failed && p->out_len) p->failed = gp_write(p, p->out, p->out_len, deadline);
  p->out_len = 0;
}

static void gp_put(gp_process *p, const char *s, size_t n, double deadline) {
  if (p->out_len + n > sizeof p->out) gp_flush(p, deadline);
  if (n > sizeof p->out) {
    if (!p->failed) p->failed = gp_write(p, s, n, deadline);
    return;
  }
  memcpy(p->out + p->out_len, s, n);
  p->out_len += n;
}

static void gp_puts(gp_process *p, const char *s, double deadline) {
  gp_put(p, s, strlen(s), deadline);
}

/* Starts a new exchange: clears what gnuplot said and picks a fresh marker (gp_put_marker sends
 * the command that prints it, last). */
static void gp_begin(gp_process *p) {
  p->said_len = 0;
  p->said[0] = '\0';
  p->said_cut = 0;
  p->got_marker = 0;
  p->failed = GP_OK;
  p->out_len = 0;
  snprintf(p->marker, sizeof p->marker, "fmnist-figure-done %ld-%lu", (long)getpid(), ++p->serial);
}

static void gp_put_marker(gp_process *p, double deadline) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "print \"%s\"\n", p->marker);
  gp_puts(p, cmd, deadline);
}

/* ---- quoting ---- */

/* A double-quoted gnuplot string in which every byte but letters, digits, space and harmless
 * punctuation is an octal escape. Nothing special can survive: no quote to end the string, no
 * backquote (gnuplot runs `...` as a shell command even inside double quotes, but only a literal
 * backquote character, which never appears here), no @ macro, and a newline stays a newline in the
 * text instead of ending the command. */
static int plain_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr(" -_.,:;/()+=%!?", c) != NULL);
}

/* gnuplot reads an octal escape starting with 0 as up to four digits and any other as up to three,
 * so a byte below 0100 is written with four digits (\0043) and the rest with three (\303): the
 * escape then never swallows a digit that follows it. Returns the length written to esc. */
static int escape_byte(char esc[6], unsigned char c) {
  return snprintf(esc, 6, c < 0100 ? "\\0%03o" : "\\%03o", c);
}

static void push_quoted(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (plain_char(c)) {
      luaL_addchar(&b, (char)c);
    } else {
      char esc[6];
      luaL_addlstring(&b, esc, (size_t)escape_byte(esc, c));
    }
  }
  luaL_addchar(&b, '"');
  luaL_pushresult(&b);
}

/* The same quoting into the command buffer, for paths the C side sends itself. */
static void gp_put_quoted(gp_process *p, const char *s, double deadline) {
  gp_puts(p, "\"", deadline);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[6];
    if (plain_char(c)) {
      esc[0] = (char)c;
      esc[1] = '\0';
    } else {
      escape_byte(esc, c);
    }
    gp_puts(p, esc, deadline);
  }
  gp_puts(p, "\"", deadline);
}

static int gnuplot_quote(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  push_quoted(L, s, n);
  return 1;
}

/* ---- starting ---- */

static gp_process *gp_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY);
  gp_process *p = luaL_checkudata(L, -1, LFM_GNUPLOT);
  lua_pop(L, 1); /* the registry keeps it alive */
  return p;
}

/* Raises the "not found" error with what to do about it. */
static int not_found(lua_State *L, const char *env, int err) {
  if (env)
    return luaL_error(L,
                      "gnuplot not found: FMNIST_GNUPLOT is '%s' (%s); install gnuplot-nox "
                      "or fix FMNIST_GNUPLOT",
                      env, strerror(err));
  return luaL_error(L,
                    "gnuplot not found: install gnuplot-nox (apt-get install gnuplot-nox), or set "
                    "FMNIST_GNUPLOT to the gnuplot program");
}

/* Spawns gnuplot and checks that it answers as gnuplot 5.2 or newer (data blocks, `reset
 * session`). Raises on failure, with the process stopped. */
static void gp_start(lua_State *L, gp_process *p) {
  const char *env = getenv("FMNIST_GNUPLOT");
  if (env && !*env) env = NULL;
  const char *prog = env ? env : "gnuplot";
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) luaL_error(L, "gnuplot: cannot make a pipe (%s)", strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    close(in[0]);
    close(in[1]);
    luaL_error(L, "gnuplot: cannot make a pipe (%s)", strerror(e));
  }
  for (int i = 0; i < 2; i++) {
    in[i] = above_stdio(in[i]);
    out[i] = above_stdio(out[i]);
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawnattr_init(&attr);
  /* Its own process group: Ctrl-C at the prompt interrupts Lua, not the plotter. Default signal
   * handling and an empty mask, whatever the host did with its own. */
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  /* --default-settings: a user's ~/.gnuplot must not change the figures. */
  char *argv[] = {(char *)prog, "--default-settings", NULL};
  pid_t pid;
  int rc = strchr(prog, '/') ? posix_spawn(&pid, prog, &fa, &attr, argv, environ)
                             : posix_spawnp(&pid, prog, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    if (rc == ENOENT || rc == ENOTDIR) not_found(L, env, rc);
    luaL_error(L, "gnuplot: cannot run '%s' (%s)", prog, strerror(rc));
  }
  p->pid = pid;
  p->in_fd = in[1];
  p->out_fd = out[0];
  p->eof = 0;
  p->line_len = 0;
  fcntl(p->in_fd, F_SETFL, fcntl(p->in_fd, F_GETFL) | O_NONBLOCK);
  fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);

  /* Handshake: the version, printed before the marker. */
  double deadline = now_seconds() + HELLO_TIMEOUT;
  gp_begin(p);
  gp_puts(p, "print sprintf('fmnist-gnuplot-version %.1f', GPVAL_VERSION)\n", deadline);
  gp_put_marker(p, deadline);
  gp_flush(p, deadline);
  int status = p->failed ? p->failed : gp_wait_marker(p, deadline);
  const char *v = strstr(p->said, "fmnist-gnuplot-version ");
  double version = v ? atof(v + strlen("fmnist-gnuplot-version ")) : 0;
  if (status != GP_OK || version == 0) {
    char said[512];
    size_t n = p->said_len < sizeof said - 1 ? p->said_len : sizeof said - 1;
    memcpy(said, p->said, n);
    said[n] = '\0';
    for (char *c = said; *c; c++)
      if (*c == '\n') *c = ' ';
    gp_kill(p);
    luaL_error(L, "gnuplot: '%s' %s%s%s", prog,
               status == GP_TIMEOUT ? "did not answer within 10 s" : "does not run as gnuplot",
               said[0] ? ": " : "", said);
  }
  if (version < 5.2) {
    gp_stop(p);
    luaL_error(L, "gnuplot: '%s' is version %f; 5.2 or newer is needed (install gnuplot-nox)", prog,
               version);
  }
}

/* Makes sure a live gnuplot is there: a process that died since the last figure (killed, crashed)
 * is reaped and replaced. */
static void gp_ensure(lua_State *L, gp_process *p) {
  if (p->pid > 0) {
    int status;
    if (p->eof || waitpid(p->pid, &status, WNOHANG) != 0) {
      if (!p->eof) p->pid = 0; /* reaped just now */
      gp_stop(p);
    } else {
      gp_read(p); /* anything said between figures is not about the next one */
    }
  }
  if (p->pid <= 0) gp_start(L, p);
}

/* ---- figures ---- */

typedef struct data_block {
  int item; /* index in fig */
  const char *name;
  int matrix; /* 1: fig[item].matrix */
  int ncols;  /* columns (a matrix: its width) */
  int64_t nrows;
  int digits;
} data_block;

/* The number of values in column c of data item at stack index it (columns table at index cols).
 * Raises naming the block and column when the column is neither a tensor nor a list of numbers. */
static int64_t column_length(lua_State *L, int cols, int c, const char *name) {
  lua_rawgeti(L, cols, c);
  fm_tensor *t = lfm_totensor(L, -1);
  int64_t n;
  if (t) {
    n = t->numel;
  } else if (lua_type(L, -1) == LUA_TTABLE) {
    n = (int64_t)lua_rawlen(L, -1);
    for (int64_t i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      int isnum;
      lua_tonumberx(L, -1, &isnum);
      if (!isnum)
        luaL_error(L, "gnuplot data %s: column %d, value %I is a %s (number expected)", name, c,
                   (lua_Integer)i, luaL_typename(L, -1));
      lua_pop(L, 1);
    }
  } else {
    return luaL_error(L, "gnuplot data %s: column %d is a %s (tensor or list of numbers expected)",
                      name, c, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return n;
}

static int valid_block_name(const char *s) {
  if (s[0] != '$' || !(s[1] == '_' || (s[1] >= 'A' && s[1] <= 'Z') || (s[1] >= 'a' && s[1] <= 'z')))
    return 0;
  for (s += 2; *s; s++)
    if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
          (*s >= '0' && *s <= '9')))
      return 0;
  return 1;
}

/* Checks a data item (a table at stack index it) completely, so that nothing can raise once
 * sending has begun (a half-sent data block would swallow the next figure's commands). */
static void check_block(lua_State *L, int it, int item, data_block *d) {
  d->item = item;
  if (lua_getfield(L, it, "name") != LUA_TSTRING || !valid_block_name(lua_tostring(L, -1)))
    luaL_error(L, "gnuplot: item %d: data needs a name like \"$data\"", item);
  d->name = lua_tostring(L, -1); /* kept alive by fig */
  lua_pop(L, 1);
  d->digits = 7;
  if (lua_getfield(L, it, "digits") != LUA_TNIL) {
    lua_Integer k = lua_tointeger(L, -1);
    if (k < 1 || k > 17) luaL_error(L, "gnuplot data %s: digits must be 1..17", d->name);
    d->digits = (int)k;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, it, "matrix") != LUA_TNIL) {
    fm_tensor *t = lfm_totensor(L, -1);
    if (!t || t->ndim > 2)
      luaL_error(L, "gnuplot data %s: matrix must be a 1-D or 2-D tensor", d->name);
    d->matrix = 1;
    d->nrows = t->ndim == 2 ? t->shape[0] : 1;
    d->ncols = (int)(t->ndim == 2 ? t->shape[1] : t->shape[0]);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  d->matrix = 0;
  if (lua_getfield(L, it, "columns") != LUA_TTABLE)
    luaL_error(L, "gnuplot data %s: columns (a list) or matrix (a tensor) expected", d->name);
  int cols = lua_gettop(L);
  d->ncols = (int)lua_rawlen(L, cols);
  if (d->ncols < 1) luaL_error(L, "gnuplot data %s: no columns", d->name);
  for (int c = 1; c <= d->ncols; c++) {
    int64_t n = column_length(L, cols, c, d->name);
    if (c == 1)
      d->nrows = n;
    else if (n != d->nrows)
      luaL_error(L, "gnuplot data %s: column %d has %I values, column 1 has %I", d->name, c,
                 (lua_Integer)n, (lua_Integer)d->nrows);
  }
  lua_pop(L, 1);
}

static void put_number(FILE *f, double v, int digits, char sep) {
  if (isfinite(v))
    fprintf(f, "%.*g%c", digits, v, sep);
  else
    fprintf(f, "NaN%c", sep);
}

/* Writes a data block checked by check_block to f. Raises nothing. */
static void write_block(lua_State *L, FILE *f, int fig, const data_block *d) {
  fprintf(f, "%s << EOD\n", d->name);
  lua_rawgeti(L, fig, d->item);
  if (d->matrix) {
    lua_getfield(L, -1, "matrix");
    const fm_tensor *t = lfm_totensor(L, -1);
    for (int64_t r = 0; r < d->nrows; r++)
      for (int c = 0; c < d->ncols; c++)
        put_number(f, t->data[r * d->ncols + c], d->digits, c + 1 < d->ncols ? ' ' : '\n');
    lua_pop(L, 1);
  } else {
    lua_getfield(L, -1, "columns");
    int cols = lua_gettop(L);
    const fm_tensor *tens[64];
    int direct = d->ncols <= 64;
    for (int c = 0; direct && c < d->ncols; c++) {
      lua_rawgeti(L, cols, c + 1);
      tens[c] = lfm_totensor(L, -1);
      lua_pop(L, 1); /* kept alive by fig */
    }
    for (int64_t r = 0; r < d->nrows; r++) {
      for (int c = 0; c < d->ncols; c++) {
        double v;
        if (direct && tens[c]) {
          v = tens[c]->data[r];
        } else {
          lua_rawgeti(L, cols, c + 1);
          const fm_tensor *t = lfm_totensor(L, -1);
          if (t) {
            v = t->data[r];
          } else {
            lua_rawgeti(L, -1, r + 1);
            v = lua_tonumber(L, -1);
            lua_pop(L, 1);
          }
          lua_pop(L, 1);
        }
        put_number(f, v, d->digits, c + 1 < d->ncols ? ' ' : '\n');
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  fputs("EOD\n", f);
}

/* Makes a temporary file name in the directory of path (so that rename is atomic), creating the
 * file with the usual permissions. Returns 0 or an errno value. */
static int make_temp_beside(const char *path, char *tmp, size_t size) {
  if ((size_t)snprintf(tmp, size, "%s.tmpXXXXXX", path) >= size) return ENAMETOOLONG;
  int fd = mkstemp(tmp);
  if (fd < 0) return errno;
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  close(fd);
  return 0;
}

static int make_temp_file(const char *prefix, char *tmp, size_t size) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  if ((size_t)snprintf(tmp, size, "%s/%sXXXXXX", dir, prefix) >= size) return ENAMETOOLONG;
  int fd = mkstemp(tmp);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

/* Turns what gnuplot said into one message: drops blank lines, the caret lines under an echoed
 * command and the "line N:" prefixes; an echoed command becomes "(in: ...)". Sets *only_warnings
 * when every message line is a warning. Pushes the message. */
static void push_said(lua_State *L, const gp_process *p, int *only_warnings) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  *only_warnings = 1;
  int any = 0;
  const char *s = p->said;
  while (*s) {
    const char *end = strchr(s, '\n');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    const char *t = s;
    while (t < s + n && (*t == ' ' || *t == '\t')) t++;
    size_t m = (size_t)(s + n - t);
    int caret = m > 0 && strspn(t, " ^") >= m;
    if (m > 0 && !caret) {
      int echo = m > 9 && strncmp(t, "gnuplot> ", 9) == 0;
      if (strncmp(t, "line ", 5) == 0) {
        const char *colon = memchr(t, ':', m);
        if (colon) {
          colon++;
          while (*colon == ' ') colon++;
          m -= (size_t)(colon - t);
          t = colon;
        }
      }
      if (!echo && !(m >= 8 && strncasecmp(t, "warning:", 8) == 0)) *only_warnings = 0;
      if (any) luaL_addstring(&b, "; ");
      if (echo) {
        luaL_addstring(&b, "(in: ");
        luaL_addlstring(&b, t + 9, m - 9);
        luaL_addstring(&b, ")");
      } else {
        luaL_addlstring(&b, t, m);
      }
      any = 1;
    }
    s += n;
    if (*s == '\n') s++;
  }
  if (p->said_cut) luaL_addstring(&b, "; ...");
  if (!any) *only_warnings = 0;
  luaL_pushresult(&b);
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
  fclose(f);
  luaL_pushresult(&b);
  return 1;
}

static int gnuplot_run(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int fig = 1;
  /* Everything is checked before anything is sent. */
  if (lua_getfield(L, fig, "terminal") != LUA_TSTRING)
    return luaL_error(L, "gnuplot.run: fig.terminal (a string) expected");
  const char *terminal = lua_tostring(L, -1);
  if (strchr(terminal, '\n') || strchr(terminal, '`'))
    return luaL_error(L, "gnuplot.run: fig.terminal must be one plain line");
  const char *output = NULL;
  size_t output_len = 0;
  int output_idx = lua_gettop(L) + 1;
  if (lua_getfield(L, fig, "output") != LUA_TNIL) {
    if (!lua_isstring(L, -1)) return luaL_error(L, "gnuplot.run: fig.output must be a file name");
    output = lua_tolstring(L, -1, &output_len);
    if (output_len == 0 || strlen(output) != output_len)
      return luaL_error(L, "gnuplot.run: bad output file name");
  }
  double timeout = DEFAULT_TIMEOUT;
  const char *env_timeout = getenv("FMNIST_GNUPLOT_TIMEOUT");
  if (env_timeout && atof(env_timeout) > 0) timeout = atof(env_timeout);
  if (lua_getfield(L, fig, "timeout") != LUA_TNIL) timeout = luaL_checknumber(L, -1);
  if (!(timeout > 0)) return luaL_error(L, "gnuplot.run: timeout must be positive");
  lua_pop(L, 1);
  int nitems = (int)lua_rawlen(L, fig);
  data_block *blocks = lua_newuserdatauv(L, sizeof(data_block) * (size_t)(nitems + 1), 0);
  for (int i = 1; i <= nitems; i++) {
    int type = lua_rawgeti(L, fig, i);
    if (type == LUA_TTABLE)
      check_block(L, lua_gettop(L), i, &blocks[i]);
    else if (type != LUA_TSTRING)
      return luaL_error(L, "gnuplot.run: item %d is a %s (command string or data table expected)",
                        i, luaL_typename(L, -1));
    lua_pop(L, 1);
  }

  gp_process *p = gp_get(L);
  gp_ensure(L, p);

  /* Data blocks go through a file that gnuplot loads (see the top of this file). */
  char data[PATH_MAX + 16] = "";
  int any_data = 0;
  for (int i = 1; i <= nitems; i++) {
    any_data |= lua_rawgeti(L, fig, i) == LUA_TTABLE;
    lua_pop(L, 1);
  }
  if (any_data) {
    int e = make_temp_file("fmnist-data-", data, sizeof data);
    FILE *f = e ? NULL : fopen(data, "w");
    if (!e && !f) e = errno;
    if (f) {
      for (int i = 1; i <= nitems; i++) {
        if (lua_rawgeti(L, fig, i) == LUA_TTABLE) write_block(L, f, fig, &blocks[i]);
        lua_pop(L, 1);
      }
      if (ferror(f)) e = EIO;
      if (fclose(f) != 0 && !e) e = errno;
    }
    if (e) {
      if (data[0]) unlink(data);
      return luaL_error(L, "gnuplot: cannot write the figure's data to %s (%s)", data, strerror(e));
    }
  }

  char tmp[PATH_MAX + 16];
  int e = output ? make_temp_beside(output, tmp, sizeof tmp)
                 : make_temp_file("fmnist-plot-", tmp, sizeof tmp);
  if (e) {
    if (any_data) unlink(data);
    return luaL_error(L, "%s: cannot write (%s)", output ? output : "temporary plot file",
                      strerror(e));
  }

  /* Sending: from here on nothing raises until the temporary files are dealt with. */
  double deadline = now_seconds() + timeout;
  gp_begin(p);
  /* A figure that failed halfway may have left gnuplot in multiplot mode, where the terminal
   * cannot change; reset session forgets the previous figure's settings and data blocks. */
  gp_puts(p, "unset multiplot\nreset session\nset terminal ", deadline);
  gp_puts(p, terminal, deadline);
  gp_puts(p, "\nset output ", deadline);
  gp_put_quoted(p, tmp, deadline);
  gp_puts(p, "\n", deadline);
  if (any_data) {
    gp_puts(p, "load ", deadline);
    gp_put_quoted(p, data, deadline);
    gp_puts(p, "\n", deadline);
  }
  for (int i = 1; i <= nitems && !p->failed; i++) {
    if (lua_rawgeti(L, fig, i) == LUA_TSTRING) {
      size_t n;
      const char *cmd = lua_tolstring(L, -1, &n);
      gp_put(p, cmd, n, deadline);
      if (n == 0 || cmd[n - 1] != '\n') gp_puts(p, "\n", deadline);
    }
    lua_pop(L, 1);
  }
  gp_puts(p, "unset output\n", deadline);
  gp_put_marker(p, deadline);
  gp_flush(p, deadline);
  int status = p->failed ? p->failed : gp_wait_marker(p, deadline);
  if (any_data) unlink(data);

  if (status != GP_OK) {
    unlink(tmp);
    if (status == GP_DEAD) gp_read(p);
    int only_warnings;
    push_said(L, p, &only_warnings);
    const char *said = lua_tostring(L, -1);
    if (status == GP_TIMEOUT) {
      gp_kill(p);
      char secs[32];
      snprintf(secs, sizeof secs, "%g", timeout);
      return luaL_error(L, "gnuplot did not finish the figure within %s s (killed)%s%s", secs,
                        said[0] ? ": " : "", said);
    }
    gp_stop(p);
    return luaL_error(L, "gnuplot exited while drawing%s%s", said[0] ? ": " : "", said);
  }
  int only_warnings;
  push_said(L, p, &only_warnings);
  int said_idx = lua_gettop(L);
  if (lua_rawlen(L, said_idx) > 0 && !only_warnings) {
    unlink(tmp);
    return luaL_error(L, "gnuplot: %s", lua_tostring(L, said_idx));
  }
  struct stat st;
  if (stat(tmp, &st) != 0 || st.st_size == 0) {
    unlink(tmp);
    return luaL_error(L, "gnuplot drew nothing%s%s", output ? " into " : "", output ? output : "");
  }
  if (output) {
    if (rename(tmp, output) != 0) {
      e = errno;
      unlink(tmp);
      return luaL_error(L, "%s: cannot write (%s)", output, strerror(e));
    }
    lua_pushvalue(L, output_idx);
  } else {
    int ok = push_file(L, tmp);
    unlink(tmp);
    if (!ok) return luaL_error(L, "gnuplot: cannot read its drawing back");
  }
  if (lua_rawlen(L, said_idx) > 0)
    lua_pushvalue(L, said_idx);
  else
    lua_pushnil(L);
  return 2;
}

static int gnuplot_pid(lua_State *L) {
  gp_process *p = gp_get(L);
  if (p->pid > 0)
    lua_pushinteger(L, p->pid);
  else
    lua_pushnil(L);
  return 1;
}

static int gnuplot_close(lua_State *L) {
  gp_stop(gp_get(L));
  return 0;
}

static int process_gc(lua_State *L) {
  gp_stop(luaL_checkudata(L, 1, LFM_GNUPLOT));
  return 0;
}

void lfm_open_gnuplot(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", process_gc}, {"__close", process_gc}, {NULL, NULL}};
  static const luaL_Reg functions[] = {{"run", gnuplot_run},
                                       {"quote", gnuplot_quote},
                                       {"pid", gnuplot_pid},
                                       {"close", gnuplot_close},
                                       {NULL, NULL}};
  lfm_newclass(L, LFM_GNUPLOT, meta, NULL);
  /* One process object per Lua state, created now in the stopped state so that its __gc runs at
   * lua_close however the program ends. */
  if (lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY) == LUA_TNIL) {
    gp_process *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    p->in_fd = p->out_fd = -1;
    luaL_setmetatable(L, LFM_GNUPLOT);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_KEY);
  }
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  lua_setfield(L, -2, "gnuplot");
}
