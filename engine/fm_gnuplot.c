/* fm_gnuplot: the gnuplot child process (see fm_gnuplot.h for the protocol). */
#include "fm_gnuplot.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fm_error.h"
#include "fm_gnuplot_quote.h"

extern char **environ;

/* The oldest gnuplot with data blocks and `reset session`. */
#define MIN_VERSION 5.2

/* ---- time ---- */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Milliseconds left until deadline for poll(), rounded up, capped so that an infinite deadline
 * (a huge timeout) still fits an int. */
static int ms_until(double deadline) {
  double left = deadline - now_seconds();
  if (!(left > 0)) return 0;
  return left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- the process ---- */

void fm_gnuplot_init(fm_gnuplot *g) {
  memset(g, 0, sizeof *g);
  g->in_fd = g->out_fd = -1;
  g->cancel_fd = -1;
}

/* Moves fd above 2 so that the dup2 onto 0/1/2 in the child never meets itself (dup2 of an fd
 * onto itself would keep its close-on-exec flag and lose it at exec). */
static int above_stdio(int fd) {
  if (fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

/* The child's state without reaping it: until it is reaped its pid (and so its process group's
 * number) cannot be given to another process, which makes kill_group safe. CHILD_GONE: someone else
 * reaped it (SIGCHLD ignored, a waitpid(-1) elsewhere); its number may belong to anyone now. */
enum { CHILD_RUNNING, CHILD_EXITED, CHILD_GONE };

static int child_state(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return errno == EINTR ? CHILD_RUNNING : CHILD_GONE;
  return info.si_pid == pid ? CHILD_EXITED : CHILD_RUNNING;
}

/* Kills the whole process group the child leads (it was spawned as its leader): a wrapper script's
 * children and whatever gnuplot's `system` started die with it. Only called before the leader is
 * reaped (see child_state). */
static void kill_group(pid_t pid) {
  if (pid > 0) kill(-pid, SIGKILL);
}

static void reap(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

void fm_gnuplot_stop(fm_gnuplot *g) {
  if (g->in_fd >= 0) close(g->in_fd);
  g->in_fd = -1;
  if (g->pid > 0) {
    int state = child_state(g->pid);
    for (int i = 0; i < 100 && state == CHILD_RUNNING; i++) {
      sleep_ms(10);
      state = child_state(g->pid);
    }
    if (state != CHILD_GONE) {
      kill_group(g->pid); /* the leader's children, or the leader itself if it did not exit */
      reap(g->pid);
    }
  }
  g->pid = 0;
  if (g->out_fd >= 0) close(g->out_fd);
  g->out_fd = -1;
  g->out_len = 0;
  g->line_len = 0;
}

/* Kills at once: gnuplot missed a deadline, was cancelled, or broke the protocol. */
static void kill_now(fm_gnuplot *g) {
  if (g->pid > 0 && child_state(g->pid) != CHILD_GONE) {
    kill_group(g->pid);
    reap(g->pid);
    g->pid = 0;
  }
  fm_gnuplot_stop(g);
}

/* Appends a completed line of gnuplot's output to what it said, or notes the marker. */
static void take_line(fm_gnuplot *g) {
  g->line[g->line_len] = '\0';
  if (g->marker[0] && strcmp(g->line, g->marker) == 0) {
    g->got_marker = 1;
  } else if (g->said_len + g->line_len + 2 <= sizeof g->said) {
    memcpy(g->said + g->said_len, g->line, g->line_len);
    g->said_len += g->line_len;
    g->said[g->said_len++] = '\n';
    g->said[g->said_len] = '\0';
  } else {
    g->said_cut = 1;
  }
  g->line_len = 0;
}

/* Reads whatever gnuplot has written so far (the pipe is non-blocking). Returns FM_GNUPLOT_DEAD at
 * end of file: gnuplot has exited or closed its output. */
static int read_output(fm_gnuplot *g) {
  char buf[4096];
  if (g->out_fd < 0) return FM_GNUPLOT_DEAD;
  for (;;) {
    ssize_t n = read(g->out_fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? FM_GNUPLOT_OK : FM_GNUPLOT_DEAD;
    }
    if (n == 0) {
      if (g->line_len) take_line(g);
      g->eof = 1;
      return FM_GNUPLOT_DEAD;
    }
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == '\n')
        take_line(g);
      else if (buf[i] != '\r' && g->line_len + 1 < sizeof g->line)
        g->line[g->line_len++] = buf[i];
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

/* One poll over gnuplot's pipes and the cancel fd. Returns FM_GNUPLOT_OK with revents filled, or
 * the reason to stop. */
static int wait_event(fm_gnuplot *g, struct pollfd *fds, int nfds) {
  for (;;) {
    fds[nfds].fd = g->cancel_fd;
    fds[nfds].events = POLLIN;
    fds[nfds].revents = 0;
    int r = poll(fds, (nfds_t)(nfds + (g->cancel_fd >= 0)), ms_until(g->deadline));
    if (r < 0 && errno == EINTR) {
      if (g->cancel_fd >= 0) {
        struct pollfd c = {g->cancel_fd, POLLIN, 0};
        if (poll(&c, 1, 0) > 0) return FM_GNUPLOT_CANCELLED;
      }
      continue;
    }
    if (r < 0) return FM_GNUPLOT_DEAD;
    if (r == 0) return FM_GNUPLOT_TIMEOUT;
    if (g->cancel_fd >= 0 && fds[nfds].revents) return FM_GNUPLOT_CANCELLED;
    return FM_GNUPLOT_OK;
  }
}

/* Writes n bytes to gnuplot while reading its output. */
static int write_all(fm_gnuplot *g, const char *s, size_t n) {
  while (n > 0) {
    struct pollfd fds[3] = {{g->in_fd, POLLOUT, 0}, {g->out_fd, POLLIN, 0}, {-1, 0, 0}};
    int r = wait_event(g, fds, 2);
    if (r != FM_GNUPLOT_OK) return r;
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && read_output(g) == FM_GNUPLOT_DEAD)
      return FM_GNUPLOT_DEAD;
    if (fds[0].revents & (POLLERR | POLLHUP)) return FM_GNUPLOT_DEAD;
    if (fds[0].revents & POLLOUT) {
      ssize_t w = write_nosigpipe(g->in_fd, s, n);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return FM_GNUPLOT_DEAD;
      }
      s += w;
      n -= (size_t)w;
    }
  }
  return FM_GNUPLOT_OK;
}

static int wait_marker(fm_gnuplot *g) {
  while (!g->got_marker) {
    struct pollfd fds[2] = {{g->out_fd, POLLIN, 0}, {-1, 0, 0}};
    int r = wait_event(g, fds, 1);
    if (r != FM_GNUPLOT_OK) return r;
    if (read_output(g) == FM_GNUPLOT_DEAD && !g->got_marker) return FM_GNUPLOT_DEAD;
  }
  return FM_GNUPLOT_OK;
}

/* ---- exchanges ---- */

static void flush(fm_gnuplot *g) {
  if (!g->status && g->out_len) g->status = write_all(g, g->out, g->out_len);
  g->out_len = 0;
}

void fm_gnuplot_send(fm_gnuplot *g, const char *s, size_t n) {
  if (g->status) return;
  if (g->out_len + n > sizeof g->out) flush(g);
  if (n > sizeof g->out) {
    if (!g->status) g->status = write_all(g, s, n);
    return;
  }
  memcpy(g->out + g->out_len, s, n);
  g->out_len += n;
}

void fm_gnuplot_sends(fm_gnuplot *g, const char *s) { fm_gnuplot_send(g, s, strlen(s)); }

/* Quotes in pieces through a small buffer, so that text of any length needs no allocation. */
void fm_gnuplot_send_quoted(fm_gnuplot *g, const char *s, size_t n, int kind) {
  char piece[5 * 256 + 2];
  fm_gnuplot_sends(g, "\"");
  for (size_t i = 0; i < n; i += 256) {
    size_t m = n - i < 256 ? n - i : 256;
    size_t k = fm_gnuplot_quote(piece, s + i, m, kind);
    fm_gnuplot_send(g, piece + 1, k - 2); /* without this piece's own quotes */
  }
  fm_gnuplot_sends(g, "\"");
}

void fm_gnuplot_begin(fm_gnuplot *g, double timeout, int cancel_fd) {
  g->said_len = 0;
  g->said[0] = '\0';
  g->said_cut = 0;
  g->got_marker = 0;
  g->status = g->pid > 0 ? FM_GNUPLOT_OK : FM_GNUPLOT_DEAD;
  g->out_len = 0;
  g->deadline = now_seconds() + timeout;
  g->cancel_fd = cancel_fd;
  snprintf(g->marker, sizeof g->marker, "fmnist-figure-done %ld-%lu", (long)getpid(), ++g->serial);
}

int fm_gnuplot_end(fm_gnuplot *g) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "print \"%s\"\n", g->marker);
  fm_gnuplot_sends(g, cmd);
  flush(g);
  int status = g->status ? g->status : wait_marker(g);
  g->cancel_fd = -1;
  if (status == FM_GNUPLOT_DEAD) {
    if (g->out_fd >= 0) read_output(g); /* its last words */
    fm_gnuplot_stop(g);
  } else if (status != FM_GNUPLOT_OK) {
    kill_now(g);
  }
  g->status = status;
  return status;
}

/* ---- starting ---- */

int fm_gnuplot_running(fm_gnuplot *g) {
  if (g->pid <= 0) return 0;
  /* Output between exchanges is not about the next one, and no marker is awaited. */
  g->marker[0] = '\0';
  if (g->eof || child_state(g->pid) != CHILD_RUNNING || read_output(g) == FM_GNUPLOT_DEAD) {
    fm_gnuplot_stop(g);
    return 0;
  }
  return 1;
}

static int not_found(const char *program, const char *configured_by, int err) {
  if (configured_by)
    return fm_fail("gnuplot not found: %s is '%s' (%s); install gnuplot-nox or fix %s",
                   configured_by, program, strerror(err), configured_by);
  return fm_fail(
      "gnuplot not found: install gnuplot-nox (apt-get install gnuplot-nox), or set "
      "FMNIST_GNUPLOT to the gnuplot program");
}

/* Spawns program with its stdin on one pipe and its stdout and stderr on the other. */
static int spawn(fm_gnuplot *g, const char *program, const char *configured_by) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    return fm_fail("gnuplot: cannot make a pipe (%s)", strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    close(in[0]);
    close(in[1]);
    return fm_fail("gnuplot: cannot make a pipe (%s)", strerror(e));
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
  char *argv[] = {(char *)program, "--default-settings", NULL};
  pid_t pid;
  int rc = strchr(program, '/') ? posix_spawn(&pid, program, &fa, &attr, argv, environ)
                                : posix_spawnp(&pid, program, &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    if (rc == ENOENT || rc == ENOTDIR || rc == EACCES) return not_found(program, configured_by, rc);
    return fm_fail("gnuplot: cannot run '%s' (%s)", program, strerror(rc));
  }
  g->pid = pid;
  g->in_fd = in[1];
  g->out_fd = out[0];
  g->eof = 0;
  g->line_len = 0;
  fcntl(g->in_fd, F_SETFL, fcntl(g->in_fd, F_GETFL) | O_NONBLOCK);
  fcntl(g->out_fd, F_SETFL, fcntl(g->out_fd, F_GETFL) | O_NONBLOCK);
  return FM_OK;
}

int fm_gnuplot_start(fm_gnuplot *g, const char *program, const char *configured_by,
                     double timeout) {
  fm_gnuplot_stop(g);
  if (spawn(g, program, configured_by) != FM_OK) return FM_ERR;
  /* Handshake: the version, printed before the marker. */
  fm_gnuplot_begin(g, timeout, -1);
  fm_gnuplot_sends(g, "print sprintf('fmnist-gnuplot-version %.1f', GPVAL_VERSION)\n");
  int status = fm_gnuplot_end(g);
  const char *v = strstr(g->said, "fmnist-gnuplot-version ");
  double version = v ? atof(v + strlen("fmnist-gnuplot-version ")) : 0;
  if (status != FM_GNUPLOT_OK || version == 0) {
    char said[512];
    size_t n = g->said_len < sizeof said - 1 ? g->said_len : sizeof said - 1;
    memcpy(said, g->said, n);
    said[n] = '\0';
    for (char *c = said; *c; c++)
      if (*c == '\n') *c = ' ';
    kill_now(g);
    if (status == FM_GNUPLOT_TIMEOUT)
      return fm_fail("gnuplot: '%s' did not answer within %g s (killed)%s%s", program, timeout,
                     said[0] ? ": " : "", said);
    return fm_fail("gnuplot: '%s' does not run as gnuplot%s%s", program, said[0] ? ": " : "", said);
  }
  if (version < MIN_VERSION) {
    fm_gnuplot_stop(g);
    return fm_fail("gnuplot: '%s' is version %.1f; %.1f or newer is needed (install gnuplot-nox)",
                   program, version, MIN_VERSION);
  }
  return FM_OK;
}

/* ---- what it said ---- */

/* Appends n bytes to buf (size bytes, always terminated) at *len, counting what did not fit. */
static void append(char *buf, size_t size, size_t *len, const char *s, size_t n) {
  if (*len < size) {
    size_t room = size - 1 - *len;
    memcpy(buf + *len, s, n < room ? n : room);
    buf[*len + (n < room ? n : room)] = '\0';
  }
  *len += n;
}

size_t fm_gnuplot_said(const fm_gnuplot *g, char *buf, size_t size, int *only_warnings) {
  size_t len = 0;
  if (size) buf[0] = '\0';
  *only_warnings = 1;
  int any = 0;
  const char *s = g->said;
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
          while (colon < t + m && *colon == ' ') colon++;
          m -= (size_t)(colon - t);
          t = colon;
        }
      }
      if (!echo && !(m >= 8 && strncasecmp(t, "warning:", 8) == 0)) *only_warnings = 0;
      if (any) append(buf, size, &len, "; ", 2);
      if (echo) {
        append(buf, size, &len, "(in: ", 5);
        append(buf, size, &len, t + 9, m - 9);
        append(buf, size, &len, ")", 1);
      } else {
        append(buf, size, &len, t, m);
      }
      any = 1;
    }
    s += n;
    if (*s == '\n') s++;
  }
  if (g->said_cut) append(buf, size, &len, "; ...", 5);
  if (!any) *only_warnings = 0;
  return len;
}
