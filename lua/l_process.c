/* l_process.c: fm.process — worker processes and the file operations a search shared between
 * processes and hosts needs, which Lua's io and os libraries lack.
 *
 *   fm.process.spawn(argv [, {env =, stdin =, stdout =, stderr =, channel =}]) -> process
 *   fm.process.channel()            in a process started with channel = true: its end
 *   fm.process.poll(list, seconds)  the processes of list with something to receive
 *   fm.process.hostname(), .pid(), .cpus(), .executable(), .sleep(seconds)
 *   fm.process.write_file(path, data)   whole or not at all (temporary file, fsync, rename)
 *   fm.process.append(path, data)       one write() on a file opened with O_APPEND
 *   fm.process.mkdir(path), .list(dir)
 *   p.pid, p:send(s), p:receive() (a line) / p:receive(n) (n bytes), p:wait([nohang]),
 *   p:kill([name]), p:close()
 *
 * spawn never goes through a shell: argv is the program and its arguments as given (the program
 * is looked up in PATH only when its name has no '/'). channel = true gives the child one end of
 * a Unix socket pair as file descriptor 3 (its number in the environment variable
 * FMNIST_CHANNEL_FD) and keeps the other end in the process object: a socket, so that sending to
 * a process that has died is an error (EPIPE without a SIGPIPE), not the end of the sender; both
 * ends are close-on-exec, so no other child (another worker, gnuplot) holds them open, and a
 * process that dies is seen at once as the end of its channel.
 *
 * A process object that is garbage collected or closed while its child still runs kills the child
 * (SIGKILL) and reaps it: an error in the parent never leaves workers behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fm_file.h"
#include "lfm.h"

extern char **environ;

#define LFM_PROCESS "fmnist.Process"
#define CHANNEL_FD 3
#define CHANNEL_ENV "FMNIST_CHANNEL_FD"
#define MAX_MESSAGE ((size_t)64 << 20) /* a line or a block longer than this is refused */
#define MAX_ARGS 4096

typedef struct process {
  pid_t pid;       /* 0: the channel of fm.process.channel(), no child */
  int fd;          /* the channel, -1 when there is none or it is closed */
  int reaped;      /* the child has been waited for; status holds how it ended */
  int status;      /* from waitpid */
  int eof;         /* the other end closed the channel */
  char *buf;       /* bytes received and not yet handed out */
  size_t len, cap; /* in buf */
} process;

static process *check_process(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, LFM_PROCESS);
}

/* A new process object in a harmless empty state: no child, no channel. */
static process *new_process(lua_State *L) {
  process *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->fd = -1;
  luaL_setmetatable(L, LFM_PROCESS);
  return p;
}

static void close_channel(process *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

/* Waits for the child; with nohang, returns 0 while it runs. Retries after signals. */
static int reap(process *p, int nohang) {
  if (p->pid <= 0 || p->reaped) return 1;
  for (;;) {
    pid_t r = waitpid(p->pid, &p->status, nohang ? WNOHANG : 0);
    if (r == p->pid) {
      p->reaped = 1;
      return 1;
    }
    if (r == 0) return 0;
    if (errno == EINTR) continue;
    /* ECHILD: reaped elsewhere (a SIGCHLD handler someone installed); nothing is left to wait
     * for, and how it ended is unknown. */
    p->reaped = 1;
    p->status = -1;
    return 1;
  }
}

/* __gc and __close: the channel is closed and a child still running is killed and reaped. */
static int process_release(lua_State *L) {
  process *p = check_process(L, 1);
  close_channel(p);
  if (p->pid > 0 && !reap(p, 1)) {
    kill(p->pid, SIGKILL);
    reap(p, 0);
  }
  free(p->buf);
  p->buf = NULL;
  p->len = p->cap = 0;
  return 0;
}

/* ---- spawn ---- */

/* Checks a string without NUL bytes (they would cut an argument or a variable short). */
static const char *check_cstring(lua_State *L, int idx, const char *what, lua_Integer i) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (!s || lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "spawn: %s %I must be a string, got %s", what, i, luaL_typename(L, idx));
  if (strlen(s) != len) luaL_error(L, "spawn: %s %I holds a NUL byte", what, i);
  return s;
}

/* The argv list as a NULL-terminated array: a userdata pushed on the stack whose user value
 * holds the strings, so that they live as long as the array whatever happens to the caller's
 * table. */
static char **check_argv(lua_State *L, int arg) {
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
  if (n < 1) luaL_error(L, "spawn: argv must list the program and its arguments (it is empty)");
  if (n > MAX_ARGS) luaL_error(L, "spawn: more than %d arguments", MAX_ARGS);
  char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 1);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, arg, i);
    argv[i - 1] = (char *)check_cstring(L, -1, "argument", i);
    lua_rawseti(L, -2, i);
  }
  argv[n] = NULL;
  lua_setiuservalue(L, -2, 1);
  return argv;
}

/* The child's environment: ours, with the names in the table at `env` (0: none) replaced (a
 * string value) or removed (false), plus the channel's variable. Pushes a userdata holding the
 * array, whose user value holds the strings made here. */
static char **build_env(lua_State *L, int env, int channel) {
  size_t ours = 0, extra = 1;
  while (environ[ours]) ours++;
  if (env) {
    lua_pushnil(L);
    while (lua_next(L, env)) {
      extra++;
      lua_pop(L, 1);
    }
  }
  char **out = lua_newuserdatauv(L, sizeof(char *) * (ours + extra + 1), 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, -3, 1);
  int strings = lua_gettop(L);
  size_t n = 0;
  for (size_t i = 0; i < ours; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t namelen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int replaced = channel && namelen == strlen(CHANNEL_ENV) &&
                   strncmp(environ[i], CHANNEL_ENV, namelen) == 0;
    if (env && !replaced) {
      lua_pushlstring(L, environ[i], namelen);
      replaced = lua_rawget(L, env) != LUA_TNIL;
      lua_pop(L, 1);
    }
    if (!replaced) out[n++] = environ[i];
  }
  if (env) {
    lua_pushnil(L);
    while (lua_next(L, env)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "spawn: env keys must be names");
      const char *name = lua_tostring(L, -2);
      if (!*name || strchr(name, '=') || strlen(name) != lua_rawlen(L, -2))
        luaL_error(L, "spawn: env name '%s' is empty or holds '=' or a NUL byte", name);
      if (lua_type(L, -1) == LUA_TSTRING) {
        if (strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
          luaL_error(L, "spawn: env value of '%s' holds a NUL byte", name);
        lua_pushfstring(L, "%s=%s", name, lua_tostring(L, -1));
        out[n++] = (char *)lua_tostring(L, -1);
        lua_rawseti(L, strings, (lua_Integer)n);
      } else if (!(lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        luaL_error(L, "spawn: env value of '%s' must be a string or false (remove), got %s", name,
                   luaL_typename(L, -1));
      }
      lua_pop(L, 1);
    }
  }
  if (channel) {
    lua_pushfstring(L, "%s=%d", CHANNEL_ENV, CHANNEL_FD);
    out[n++] = (char *)lua_tostring(L, -1);
    lua_rawseti(L, strings, (lua_Integer)n);
  }
  out[n] = NULL;
  lua_pop(L, 1); /* the strings: anchored by the array */
  return out;
}

/* Where a standard stream of the child goes: "inherit" or "null" (/dev/null). */
static int stream_option(lua_State *L, int opts, const char *key, const char *def) {
  const char *v = def;
  if (opts && lua_getfield(L, opts, key) != LUA_TNIL) {
    v = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || (strcmp(v, "inherit") != 0 && strcmp(v, "null") != 0))
      luaL_error(L, "spawn: option '%s' must be \"inherit\" or \"null\", got %s", key,
                 luaL_tolstring(L, -1, NULL));
    v = strcmp(v, "null") == 0 ? "null" : "inherit";
  }
  if (opts) lua_pop(L, 1);
  return strcmp(v, "null") == 0;
}

/* fm.process.spawn(argv [, {env =, stdin = "null"|"inherit", stdout =, stderr =, channel =}])
 * -> process. stdin defaults to /dev/null (a worker never reads the terminal), stdout and stderr
 * to the parent's. Raises when the program cannot be started, naming it. */
static int process_spawn(lua_State *L) {
  int opts = lfm_optopts(L, 2);
  static const char *const known[] = {"env", "stdin", "stdout", "stderr", "channel", NULL};
  lfm_check_options(L, opts, "spawn", known);
  lua_settop(L, 2);
  /* every option first (reading them may run metamethods), then the raw pointers */
  int channel = lfm_optfield_bool(L, opts, "channel", 0);
  int null_in = stream_option(L, opts, "stdin", "null");
  int null_out = stream_option(L, opts, "stdout", "inherit");
  int null_err = stream_option(L, opts, "stderr", "inherit");
  int env = 0;
  if (opts && lua_getfield(L, opts, "env") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_error(L, "spawn: option 'env' must be a table of names");
    env = lua_gettop(L); /* 3 */
  } else {
    lua_settop(L, 2);
    lua_pushnil(L); /* 3 */
  }
  char **argv = check_argv(L, 1);             /* 4 */
  char **envp = build_env(L, env, channel);   /* 5 */
  process *p = new_process(L);                /* 6 */

  int sv[2] = {-1, -1};
  if (channel) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return luaL_error(L, "spawn: cannot make a channel (%s)", strerror(errno));
    if (sv[1] == CHANNEL_FD) { /* dup2(3, 3) would keep close-on-exec */
      int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, CHANNEL_FD + 1);
      int e = errno;
      close(sv[1]);
      sv[1] = moved;
      if (moved < 0) {
        close(sv[0]);
        return luaL_error(L, "spawn: cannot make a channel (%s)", strerror(e));
      }
    }
    p->fd = sv[0];
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  if (null_in) posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (null_out) posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (null_err) posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  if (channel) posix_spawn_file_actions_adddup2(&fa, sv[1], CHANNEL_FD);
  /* The child starts with no signal blocked, whatever the parent blocks right now. */
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = strchr(argv[0], '/') ? posix_spawn(&pid, argv[0], &fa, &attr, argv, envp)
                                : posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (channel) close(sv[1]);
  if (rc != 0) {
    close_channel(p);
    return luaL_error(L, "spawn: cannot start '%s' (%s)", argv[0], strerror(rc));
  }
  p->pid = pid;
  return 1;
}

/* fm.process.channel(): the channel a parent gave this process (fd 3 by FMNIST_CHANNEL_FD). The
 * variable is removed, so that processes this one starts do not take the channel for theirs. */
static int process_channel(lua_State *L) {
  const char *v = getenv(CHANNEL_ENV);
  if (!v) return luaL_error(L, "channel: %s is not set (this process was not started with a channel)", CHANNEL_ENV);
  char *end;
  errno = 0;
  long fd = strtol(v, &end, 10);
  struct stat st;
  if (errno || *end || fd < 0 || fd > INT_MAX || fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    return luaL_error(L, "channel: %s=%s is not an open socket", CHANNEL_ENV, v);
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  unsetenv(CHANNEL_ENV);
  process *p = new_process(L);
  p->fd = (int)fd;
  return 1;
}

/* ---- the channel ---- */

/* p:send(data) -> true, or nil and a message when the other end is gone. */
static int process_send(lua_State *L) {
  process *p = check_process(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (p->fd < 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "the channel is closed");
    return 2;
  }
  while (len > 0) {
    ssize_t n = send(p->fd, s, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      luaL_pushfail(L);
      lua_pushstring(L, strerror(errno));
      return 2;
    }
    s += n;
    len -= (size_t)n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Reads what is there (blocking until something is) into the buffer; 0 at the end. */
static int fill(lua_State *L, process *p) {
  if (p->eof || p->fd < 0) return 0;
  if (p->cap - p->len < 65536) {
    size_t cap = p->cap ? p->cap * 2 : 65536 * 2;
    if (cap > MAX_MESSAGE + 65536) luaL_error(L, "receive: a message longer than %d MB", (int)(MAX_MESSAGE >> 20));
    char *nb = realloc(p->buf, cap);
    if (!nb) luaL_error(L, "receive: not enough memory");
    p->buf = nb;
    p->cap = cap;
  }
  for (;;) {
    ssize_t n = recv(p->fd, p->buf + p->len, p->cap - p->len, 0);
    if (n > 0) {
      p->len += (size_t)n;
      return 1;
    }
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
      p->eof = 1;
      return 0;
    }
    if (errno == EINTR) return -1; /* let a Ctrl-C hook run; the caller tries again */
  }
}

static void take(lua_State *L, process *p, size_t n, size_t skip) {
  lua_pushlstring(L, p->buf, n);
  memmove(p->buf, p->buf + n + skip, p->len - n - skip);
  p->len -= n + skip;
}

/* p:receive() -> the next line without its newline; p:receive(n) -> the next n bytes. Blocks
 * until they are there; nil at the end of the channel (a partial line or block is dropped). */
static int process_receive(lua_State *L) {
  process *p = check_process(L, 1);
  lua_Integer want = -1;
  if (!lua_isnoneornil(L, 2)) {
    want = luaL_checkinteger(L, 2);
    if (want < 0 || (size_t)want > MAX_MESSAGE)
      return luaL_argerror(L, 2, "a byte count from 0 to 64 MB");
  }
  for (;;) {
    if (want >= 0 && p->len >= (size_t)want) {
      take(L, p, (size_t)want, 0);
      return 1;
    }
    if (want < 0) {
      char *nl = p->len ? memchr(p->buf, '\n', p->len) : NULL;
      if (nl) {
        take(L, p, (size_t)(nl - p->buf), 1);
        return 1;
      }
      if (p->len > MAX_MESSAGE) return luaL_error(L, "receive: a line longer than 64 MB");
    }
    int r = fill(L, p);
    if (r == 0) {
      luaL_pushfail(L);
      return 1;
    }
  }
}

/* Whether receive would return without blocking: a whole line or the end is there. */
static int has_line(const process *p) {
  return p->eof || p->fd < 0 || (p->len && memchr(p->buf, '\n', p->len));
}

/* fm.process.poll(list, seconds) -> the processes of list whose channel has a whole line (or
 * has ended), waiting up to seconds (negative: without limit) for one. Returns early, possibly
 * with none, when a signal comes, so that Ctrl-C reaches the caller. */
static int process_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Number seconds = luaL_checknumber(L, 2);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n > 4096) return luaL_argerror(L, 1, "at most 4096 processes");
  struct pollfd *fds = lua_newuserdatauv(L, sizeof(struct pollfd) * (size_t)(n ? n : 1), 0);
  lua_newtable(L);
  int out = lua_gettop(L), ready = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    process *p = luaL_testudata(L, -1, LFM_PROCESS);
    if (!p) return luaL_error(L, "poll: item %I is a %s, not a process", i, luaL_typename(L, -1));
    fds[i - 1].fd = has_line(p) ? -1 : p->fd;
    fds[i - 1].events = POLLIN;
    fds[i - 1].revents = 0;
    if (has_line(p)) {
      lua_rawseti(L, out, ++ready);
    } else {
      lua_pop(L, 1);
    }
  }
  if (ready) return 1;
  int ms = seconds < 0 ? -1 : seconds > 86400 ? 86400000 : (int)(seconds * 1000);
  int rc = poll(fds, (nfds_t)n, ms);
  if (rc <= 0) return 1; /* timeout, or a signal (EINTR) */
  for (lua_Integer i = 1; i <= n; i++) {
    if (!fds[i - 1].revents) continue;
    lua_rawgeti(L, 1, i);
    process *p = lua_touserdata(L, -1);
    /* read what is there without blocking: poll said something is */
    if (p->fd >= 0 && fill(L, p) < 0) { /* interrupted: look again next time */ }
    if (has_line(p))
      lua_rawseti(L, out, ++ready);
    else
      lua_pop(L, 1);
  }
  return 1;
}

/* ---- the child ---- */

static const struct {
  const char *name;
  int sig;
} signal_names[] = {{"INT", SIGINT}, {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"HUP", SIGHUP},
                    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}, {NULL, 0}};

static const char *signal_name(int sig) {
  for (int i = 0; signal_names[i].name; i++)
    if (signal_names[i].sig == sig) return signal_names[i].name;
  return NULL;
}

/* p:wait([nohang]) -> "exited", code | "signaled", number, name | nil while it runs (nohang). */
static int process_wait(lua_State *L) {
  process *p = check_process(L, 1);
  if (p->pid <= 0) return luaL_error(L, "wait: this channel has no child process");
  if (!reap(p, lua_toboolean(L, 2))) {
    luaL_pushfail(L);
    return 1;
  }
  if (p->status == -1) {
    lua_pushliteral(L, "unknown");
    return 1;
  }
  if (WIFEXITED(p->status)) {
    lua_pushliteral(L, "exited");
    lua_pushinteger(L, WEXITSTATUS(p->status));
    return 2;
  }
  int sig = WTERMSIG(p->status);
  const char *name = signal_name(sig);
  lua_pushliteral(L, "signaled");
  lua_pushinteger(L, sig);
  if (name)
    lua_pushfstring(L, "SIG%s", name);
  else
    lua_pushstring(L, strsignal(sig));
  return 3;
}

/* p:kill([name]): sends "TERM" (default), "INT", "KILL", ...; false when the child has ended. */
static int process_kill(lua_State *L) {
  process *p = check_process(L, 1);
  const char *name = luaL_optstring(L, 2, "TERM");
  int sig = 0;
  for (int i = 0; signal_names[i].name; i++)
    if (strcmp(signal_names[i].name, name) == 0) sig = signal_names[i].sig;
  if (!sig) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; signal_names[i].name; i++) {
      if (i) luaL_addstring(&b, ", ");
      luaL_addstring(&b, signal_names[i].name);
    }
    luaL_pushresult(&b);
    return luaL_error(L, "kill: unknown signal '%s' (known: %s)", name, lua_tostring(L, -1));
  }
  if (p->pid <= 0) return luaL_error(L, "kill: this channel has no child process");
  lua_pushboolean(L, !p->reaped && kill(p->pid, sig) == 0);
  return 1;
}

static int process_close(lua_State *L) {
  close_channel(check_process(L, 1));
  return 0;
}

static int process_tostring(lua_State *L) {
  process *p = check_process(L, 1);
  if (p->pid > 0)
    lua_pushfstring(L, "fmnist.Process %d%s", (int)p->pid, p->reaped ? " (ended)" : "");
  else
    lua_pushfstring(L, "fmnist.Process channel%s", p->fd < 0 ? " (closed)" : "");
  return 1;
}

/* p.pid; other keys are methods */
static int process_index(lua_State *L) {
  process *p = check_process(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "pid") == 0) {
    lua_pushinteger(L, p->pid);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* ---- this process and the machine ---- */

static int process_hostname(lua_State *L) {
  char name[256];
  if (gethostname(name, sizeof name) != 0) return luaL_error(L, "hostname: %s", strerror(errno));
  name[sizeof name - 1] = '\0';
  lua_pushstring(L, name);
  return 1;
}

static int process_pid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

/* The cores this process may run on (its affinity mask: taskset, cgroups' cpusets, Slurm). */
static int process_cpus(lua_State *L) {
  cpu_set_t set;
  long n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n < 1 ? 1 : n);
  return 1;
}

/* The running program's file, to start more of it (a worker runs the same binary). */
static int process_executable(lua_State *L) {
  char path[PATH_MAX + 1];
  ssize_t n = readlink("/proc/self/exe", path, PATH_MAX);
  if (n <= 0) return luaL_error(L, "executable: cannot read /proc/self/exe (%s)", strerror(errno));
  path[n] = '\0';
  lua_pushstring(L, path);
  return 1;
}

static int process_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  if (!(s >= 0 && s <= 86400)) return luaL_argerror(L, 1, "seconds from 0 to 86400");
  struct timespec ts = {(time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL); /* a signal ends it early, so that Ctrl-C is not held up */
  return 0;
}

/* ---- files ---- */

/* fm.process.write_file(path, data): through a temporary file in the same folder, flushed to
 * disk and renamed over path, so that readers (on this host or over NFS, where a rename is one
 * operation on the server) see the old file or the whole new one. */
static int process_write_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  fm_atomic_file a;
  if (fm_atomic_begin(&a, path) != FM_OK) return lfm_engine_error(L, "write_file");
  if (len && fwrite(data, 1, len, a.f) != len) {
    fm_atomic_abort(&a);
    return luaL_error(L, "write_file: %s: write failed (%s)", path, strerror(errno));
  }
  if (fm_atomic_commit(&a) != FM_OK) return lfm_engine_error(L, "write_file");
  return 0;
}

/* fm.process.append(path, data): data goes to the end of the file in one write() on a
 * descriptor opened with O_APPEND, so that lines appended by several processes of this host do
 * not interleave. (Over NFS, O_APPEND is not atomic between hosts: one writer per file there.) */
static int process_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return luaL_error(L, "append: %s: %s", path, strerror(errno));
  ssize_t n;
  do {
    n = write(fd, data, len);
  } while (n < 0 && errno == EINTR);
  int e = n < 0 ? errno : 0;
  if (!e && fsync(fd) != 0 && errno != EINVAL) e = errno;
  close(fd);
  if (e) return luaL_error(L, "append: %s: %s", path, strerror(e));
  if ((size_t)n != len)
    return luaL_error(L, "append: %s: only %I of %I bytes written", path, (lua_Integer)n,
                      (lua_Integer)len);
  return 0;
}

/* fm.process.mkdir(path): makes the folder; nothing when it is there already. */
static int process_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (mkdir(path, 0777) != 0) {
    int e = errno;
    struct stat st;
    if (!(e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
      return luaL_error(L, "mkdir: %s: %s", path, e == EEXIST ? "exists and is not a folder" : strerror(e));
  }
  return 0;
}

/* fm.process.list(dir) -> the names in dir (without . and ..), in no particular order. */
static int process_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return luaL_error(L, "list: %s: %s", path, strerror(errno));
  lua_newtable(L);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (!lua_checkstack(L, 2)) break;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

void lfm_open_process(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", process_release}, {"__close", process_release},
                                  {"__tostring", process_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {{"send", process_send}, {"receive", process_receive},
                                     {"wait", process_wait}, {"kill", process_kill},
                                     {"close", process_close}, {NULL, NULL}};
  static const luaL_Reg functions[] = {
      {"spawn", process_spawn}, {"channel", process_channel}, {"poll", process_poll},
      {"hostname", process_hostname}, {"pid", process_pid}, {"cpus", process_cpus},
      {"executable", process_executable}, {"sleep", process_sleep},
      {"write_file", process_write_file}, {"append", process_append}, {"mkdir", process_mkdir},
      {"list", process_list}, {NULL, NULL}};
  luaL_newmetatable(L, LFM_PROCESS);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, process_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  lua_setfield(L, -2, "process");
}
