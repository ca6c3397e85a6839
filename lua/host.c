/* host.c: the fmnist-lua program, a Lua 5.4 interpreter with the fmnist module built in.
 *
 *   fmnist-lua [options] [script [args]]
 *   fmnist-lua COMMAND [args]          (report, predict, ...: see run_command)
 *
 * It behaves like the stock `lua` (lua.c): options are collected first, then -e and -l run in
 * order, then the script with the global `arg`, then the REPL for -i. With no script it is a REPL
 * when stdin is a terminal and otherwise runs stdin as a script. Everything runs inside one
 * protected call, so even a failure while starting up prints a clean message.
 *
 * "fmnist" is put in package.preload, so `require "fmnist"` works from any directory; the REPL
 * also makes it the global `fm`. Scripts get no such global: they require the module as they
 * would under a stock lua5.4, so they run unchanged under both.
 *
 * The REPL reads through GNU readline (editing, history in ~/.fmnist_history) when stdin is a
 * terminal, and plain lines without prompts otherwise, so `printf 'x\n' | fmnist-lua -i` can be
 * tested. Ctrl-C stops a running chunk with an "interrupted!" error; at the prompt it discards the
 * line being typed; a second Ctrl-C while C code ignores the first ends the process. What the
 * REPL shows of values, Tab completion, help (help(x), ?x, ??x) and the banner are Lua, in
 * lua/fmnist/repl.lua; without it the REPL still works, printing through print.
 *
 * The program also offers the Lua module "fmnist.host" (see luaopen_host): capturing file
 * descriptors 1 and 2 for the cells of a report, terminal queries, build facts. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "fm_net.h"
#include "lfm.h"
#include "lfm_modules.h"

int luaopen_fmnist(lua_State *L);

#define PROGNAME "fmnist-lua"
#define HISTORY_NAME ".fmnist_history"
#define HISTORY_MAX 1000

/* Reading a REPL line can also end these two ways besides giving a line. */
enum { LINE_EOF = -1, LINE_CANCELLED = -2 };

/* Options seen on the command line. */
enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_H = 16 };

static lua_State *globalL = NULL;       /* the state the Ctrl-C handler stops */
static const char *progname = PROGNAME; /* NULL in the REPL: its messages are not prefixed */
static int use_readline = 0;            /* the REPL's stdin is a terminal */
static char *history_path = NULL;       /* NULL when there is no HOME */
static volatile sig_atomic_t prompt_interrupted = 0;
static volatile sig_atomic_t terminal_resized = 0;

/* ---- messages ---- */

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g' (-l fm=fmnist)\n"
          "  -v        show the versions of fmnist, Lua, OpenBLAS, libpng and zlib\n"
          "  -h        show this help\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "With no script: an interactive session with the module loaded as 'fm' when stdin\n"
          "is a terminal, otherwise stdin runs as a script. Scripts load the module with\n"
          "require \"fmnist\".\n",
          PROGNAME);
  fflush(out);
}

/* Prints msg on stderr, prefixed by the program name outside the REPL. Flushes stdout first so
 * that a script's output and its error message come out in the order they were made. */
static void message(const char *msg) {
  fflush(stdout);
  if (progname) fprintf(stderr, "%s: ", progname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

/* Reports a failed status with the message on top of the stack, and pops it. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    message(msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* Message handler of every protected call: turns the error object into a string and appends a
 * traceback. An object with __tostring is shown through it and without a traceback, as lua.c
 * does: it is a message meant for the user as it is (a notebook's "unknown option"). */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* ---- Ctrl-C ---- */

static void set_sigint(void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
}

/* Runs at the next Lua instruction after Ctrl-C: a Lua error unwinds to the REPL or the script's
 * caller like any other. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* A signal handler may not touch the Lua state; setting a hook is the one thing allowed (as in
 * lua.c). The handler resets itself, so that a second Ctrl-C ends a process stuck in C code that
 * never returns to Lua. */
static void on_sigint_running(int sig) {
  signal(sig, SIG_DFL);
  lua_sethook(globalL, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Calls the function below narg arguments with the message handler and Ctrl-C armed. */
static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  set_sigint(on_sigint_running, SA_RESTART);
  int status = lua_pcall(L, narg, nres, base);
  set_sigint(SIG_DFL, 0);
  /* A Ctrl-C that came as the call ended must not stop the next one. */
  if (lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

/* ---- options ---- */

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) { return dochunk(L, luaL_loadfile(L, name)); }

static int dostring(lua_State *L, const char *s, const char *chunkname) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), chunkname));
}

/* -l mod or -l g=mod: global g (or mod) = require(mod). */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  size_t globlen = eq ? (size_t)(eq - spec) : strlen(spec);
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_pushglobaltable(L);
    lua_pushlstring(L, spec, globlen);
    lua_pushvalue(L, -3);
    lua_settable(L, -3);
    lua_pop(L, 2);
  }
  return report(L, status);
}

/* arg[0] is the script, arg[1..] its arguments, arg[-1..] the options and the program before it.
 * With no script (script == 0) the program is arg[0] and the options follow it, as in lua.c. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Pushes arg[1..n] as the script's ... and returns n. */
static int push_script_args(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE) luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL; /* stdin */
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = push_script_args(L);
    status = docall(L, n, 0);
  }
  return report(L, status);
}

/* Scans the options; *first becomes the index of the script (0: none), or of the bad option
 * when the result is HAS_ERROR. */
static int collect_args(char **argv, int argc, int *first) {
  int args = 0;
  for (int i = 1; i < argc; i++) {
    *first = i;
    if (argv[i][0] != '-') return args; /* the script */
    switch (argv[i][1]) {
      case '\0': /* "-": stdin is the script */
        return args;
      case '-': /* "--": the next argument is the script */
        if (argv[i][2] != '\0') return HAS_ERROR;
        *first = i + 1 < argc ? i + 1 : 0;
        return args;
      case 'i':
      case 'v':
      case 'h':
        if (argv[i][2] != '\0') return HAS_ERROR;
        args |= argv[i][1] == 'i' ? HAS_I : argv[i][1] == 'v' ? HAS_V : HAS_H;
        break;
      case 'e':
        args |= HAS_E;
        /* FALLTHROUGH */
      case 'l':
        if (argv[i][2] == '\0') { /* the argument is the next word */
          i++;
          if (i >= argc || argv[i][0] == '-') return HAS_ERROR;
        }
        break;
      default:
        return HAS_ERROR;
    }
  }
  *first = 0;
  return args;
}

static void usage_error(const char *badoption) {
  fprintf(stderr, "%s: ", PROGNAME);
  if ((badoption[1] == 'e' || badoption[1] == 'l') && badoption[2] == '\0')
    fprintf(stderr, "'%s' needs an argument\n", badoption);
  else
    fprintf(stderr, "unrecognized option '%s'\n", badoption);
  print_usage(stderr);
}

/* Runs -e and -l in command-line order, up to the script. Returns 0 when one failed. */
static int run_args(lua_State *L, char **argv, int optlim) {
  for (int i = 1; i < optlim; i++) {
    char option = argv[i][1];
    if (argv[i][0] != '-' || (option != 'e' && option != 'l')) continue;
    const char *extra = argv[i] + 2;
    if (*extra == '\0') extra = argv[++i];
    int status = option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
    if (status != LUA_OK) return 0;
  }
  return 1;
}

/* Pushes require("fmnist"); raises on failure. */
static void require_fmnist(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fmnist");
  lua_call(L, 1, 1);
}

static void print_versions(lua_State *L) {
  static const char *const names[] = {"fmnist", "lua", "openblas", "libpng", "zlib"};
  require_fmnist(L);
  lua_getfield(L, -1, "versions");
  lua_call(L, 0, 1);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    lua_getfield(L, -1, names[i]);
    const char *v = lua_tostring(L, -1);
    printf("%-9s %s\n", names[i], v ? v : "unknown");
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  fflush(stdout);
}

/* ---- REPL: reading lines ---- */

static void history_open(void) {
  const char *home = getenv("HOME");
  if (home == NULL || *home == '\0') return;
  size_t size = strlen(home) + sizeof("/" HISTORY_NAME);
  history_path = malloc(size);
  if (history_path == NULL) return;
  snprintf(history_path, size, "%s/%s", home, HISTORY_NAME);
  stifle_history(HISTORY_MAX);
  read_history(history_path); /* missing or unreadable: start with no history */
}

/* Adds a line to the history and to the file at once, so a session that is killed keeps it.
 * Every failure is ignored: history is a convenience. */
static void history_add(const char *line) {
  if (*line == '\0') return;
  HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last && strcmp(last->line, line) == 0) return; /* no runs of the same line */
  add_history(line);
  if (history_path && append_history(1, history_path) != 0)
    write_history(history_path); /* append_history does not create the file */
}

static void history_close(void) {
  if (history_path) history_truncate_file(history_path, HISTORY_MAX);
  free(history_path);
  history_path = NULL;
  clear_history();
}

static char *readline_result;
static int readline_finished;

static void on_readline_line(char *line) {
  readline_result = line;
  readline_finished = 1;
  rl_callback_handler_remove(); /* the terminal goes back to normal before the line runs */
}

static void on_sigint_prompt(int sig) {
  (void)sig;
  prompt_interrupted = 1;
}

static void on_sigwinch(int sig) {
  (void)sig;
  terminal_resized = 1;
}

/* Reads one line through readline's callback interface, waiting in pselect() so that Ctrl-C
 * can cancel the line instead of ending the process (the blocking readline() cannot be left
 * cleanly from a signal). Returns a malloc'd line, NULL at end of input; *cancelled is set by
 * Ctrl-C. SIGINT is blocked except inside pselect, so a Ctrl-C is never missed. */
static char *read_terminal_line(const char *prompt, int *cancelled) {
  sigset_t block, orig;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGWINCH);
  sigprocmask(SIG_BLOCK, &block, &orig);
  set_sigint(on_sigint_prompt, 0);
  struct sigaction winch, old_winch;
  memset(&winch, 0, sizeof winch);
  winch.sa_handler = on_sigwinch;
  sigemptyset(&winch.sa_mask);
  sigaction(SIGWINCH, &winch, &old_winch);
  prompt_interrupted = 0;
  readline_result = NULL;
  readline_finished = 0;
  rl_reset_screen_size(); /* the terminal may have been resized while code ran */
  rl_callback_handler_install(prompt, on_readline_line);
  int fd = fileno(rl_instream);
  while (!readline_finished) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    int n = pselect(fd + 1, &fds, NULL, NULL, NULL, &orig);
    if (n < 0 && errno == EINTR) {
      if (prompt_interrupted) {
        rl_free_line_state();
        rl_callback_sigcleanup();
        rl_echo_signal_char(SIGINT);
        rl_cleanup_after_signal();
        rl_callback_handler_remove();
        fputc('\n', rl_outstream);
        *cancelled = 1;
        break;
      }
      if (terminal_resized) {
        terminal_resized = 0;
        rl_resize_terminal();
      }
      continue;
    }
    if (n < 0) { /* stdin unusable: treat as end of input */
      rl_callback_handler_remove();
      break;
    }
    rl_callback_read_char();
  }
  sigaction(SIGWINCH, &old_winch, NULL);
  set_sigint(SIG_DFL, 0);
  sigprocmask(SIG_SETMASK, &orig, NULL);
  return readline_result;
}

/* A line from a stdin that is not a terminal, without its newline; NULL at end of input. */
static char *read_plain_line(void) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (n < 0) {
    free(line);
    return NULL;
  }
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
  return line;
}

/* The prompt: _PROMPT / _PROMPT2 when the user set them, as in lua.c. Pushes it. */
static const char *push_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushstring(L, firstline ? "> " : ">> ");
    return lua_tostring(L, -1);
  }
  const char *p = luaL_tolstring(L, -1, NULL);
  lua_remove(L, -2);
  return p;
}

/* Pushes the next line; returns 1, or LINE_EOF / LINE_CANCELLED with nothing pushed. */
static int pushline(lua_State *L, int firstline) {
  char *line;
  int cancelled = 0;
  if (use_readline) {
    line = read_terminal_line(push_prompt(L, firstline), &cancelled);
    lua_pop(L, 1);
  } else {
    line = read_plain_line();
  }
  if (cancelled) {
    free(line);
    return LINE_CANCELLED;
  }
  if (line == NULL) return LINE_EOF;
  if (use_readline) history_add(line);
  lua_pushstring(L, line);
  free(line);
  return 1;
}

/* ---- REPL: Tab completion ---- */

/* Tab completes Lua names: globals and keywords, then fields after '.' or ':' (fm.ze -> fm.zeros,
 * t:sh -> t:shape). The candidates come from fmnist.repl's complete(text), in Lua: it knows the
 * fields of datasets and models from the help entries, the modules fm loads on first use, and
 * leaves metamethods out. Inside a string literal readline's file-name completion stays, for
 * fm.load("data/...). */

static lua_State *completion_L;
static int completion_index; /* stack index of the candidate list while readline reads it */

/* Whether position end of line is inside a quoted string (a comment ends the scan). */
static int inside_string(const char *line, int end) {
  char quote = 0;
  for (int i = 0; i < end && line[i]; i++) {
    char c = line[i];
    if (quote) {
      if (c == '\\' && i + 1 < end)
        i++;
      else if (c == quote)
        quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '-' && line[i + 1] == '-') {
      break;
    }
  }
  return quote != 0;
}

/* Words end at Lua operators, but '.' and ':' stay inside so that fm.ze is one word; in a string
 * only quotes and blanks end a file name. A leading '?' (help) is not part of the word. */
static char *word_breaks(void) {
  static char lua_breaks[] = " \t\n\"'><=;+-*/%^~#&|(){}[],?";
  static char string_breaks[] = " \t\n\"'";
  return inside_string(rl_line_buffer, rl_point) ? string_breaks : lua_breaks;
}

/* Pushes require("fmnist.repl")[name], or returns 0 with nothing pushed when the module or the
 * function is missing (the REPL then does without). Runs protected. */
static int push_repl_function(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fmnist.repl");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

static char *completion_generator(const char *text, int state) {
  static lua_Integer next;
  (void)text; /* the list holds only matches */
  if (state == 0) next = 1;
  char *s = NULL;
  if (lua_rawgeti(completion_L, completion_index, next++) == LUA_TSTRING)
    s = strdup(lua_tostring(completion_L, -1));
  lua_pop(completion_L, 1);
  return s;
}

static char **complete_lua(const char *text, int start, int end) {
  (void)end;
  if (inside_string(rl_line_buffer, start)) return NULL; /* file names */
  rl_attempted_completion_over = 1;
  rl_completion_suppress_append = 1;
  lua_State *L = completion_L;
  int top = lua_gettop(L);
  char **matches = NULL;
  if (lua_checkstack(L, 8) && push_repl_function(L, "complete")) {
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
      completion_index = lua_gettop(L);
      matches = rl_completion_matches(text, completion_generator);
    }
  }
  lua_settop(L, top);
  return matches;
}

/* ---- REPL: compiling and running ---- */

/* A syntax error at <eof> means the statement goes on in the next line, except the bare
 * "syntax error" the parser gives for an expression that is not a statement (`x = 1; x`): more
 * lines cannot be what was meant, so it is reported at once, with what to type instead. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char eof[] = "<eof>", bare[] = "syntax error near <eof>";
  size_t eoflen = sizeof eof - 1, barelen = sizeof bare - 1;
  if (len >= barelen && strcmp(msg + len - barelen, bare) == 0) {
    lua_pushliteral(L, " (an expression alone is not a statement: put it on a line of its own "
                       "to see its value, or print it)");
    lua_concat(L, 2);
    return 0;
  }
  return len >= eoflen && strcmp(msg + len - eoflen, eof) == 0;
}

/* Tries the line as "return <line>;" so that an expression's value is printed. */
static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK)
    lua_remove(L, -2); /* the modified line */
  else
    lua_pop(L, 2); /* the error and the modified line */
  return status;
}

/* Reads more lines while the chunk is incomplete. The line is at index 1; returns the load
 * status with the function or the error on top, or a LINE_* code. */
static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *chunk = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, chunk, len, "=stdin");
    if (!incomplete(L, status)) return status;
    int r = pushline(L, 0);
    if (r == LINE_EOF) return status; /* report the incomplete statement */
    if (r == LINE_CANCELLED) return r;
    lua_remove(L, -2); /* the error message */
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* A line starting with '?' asks for help: "?fm.load" is help(fm.load), "??f" shows f's source
 * and "?" alone the overview. It becomes a call to fmnist.repl's help_line with the rest of the
 * line as a string, which looks the text up as an expression or as a name ("?Model:fit"). */
static int help_line(lua_State *L) {
  const char *line = lua_tostring(L, 1);
  int source = line[1] == '?';
  const char *rest = line + 1 + source;
  /* the rest as a long string whose brackets it does not contain */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char close[64] = "]";
  size_t level = 0;
  for (; level < sizeof close - 3; level++) {
    memset(close + 1, '=', level);
    close[level + 1] = ']';
    close[level + 2] = '\0';
    if (!strstr(rest, close)) break;
  }
  luaL_addstring(&b, "return require('fmnist.repl').help_line([");
  for (size_t i = 0; i < level; i++) luaL_addchar(&b, '=');
  luaL_addstring(&b, "[");
  luaL_addstring(&b, rest);
  luaL_addstring(&b, close);
  luaL_addstring(&b, source ? ", true)" : ")");
  luaL_pushresult(&b);
  const char *chunk = lua_tostring(L, -1);
  int status = luaL_loadbuffer(L, chunk, strlen(chunk), "=stdin");
  lua_remove(L, -2);
  return status;
}

/* Leaves the compiled chunk (or an error message) alone on the stack. */
static int loadline(lua_State *L) {
  lua_settop(L, 0);
  int r = pushline(L, 1);
  if (r != 1) return r;
  int status;
  if (lua_tostring(L, 1)[0] == '?')
    status = help_line(L);
  else if ((status = addreturn(L)) != LUA_OK)
    status = multiline(L);
  if (status == LINE_CANCELLED) return status;
  lua_remove(L, 1); /* the line */
  return status;
}

/* Shows the values left on the stack through fmnist.repl's show (tables opened up, functions by
 * their help name, `_` set to the first value), or the global print when that is missing. */
static void print_results(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  if (!push_repl_function(L, "show")) lua_getglobal(L, "print");
  lua_insert(L, 1);
  report(L, docall(L, n, 0));
}

/* The first line, then what fmnist.repl adds (how to get help; the values a notebook left). */
static void print_banner(lua_State *L) {
  int top = lua_gettop(L);
  const char *version = "?";
  if (lua_getglobal(L, "fm") == LUA_TTABLE && lua_getfield(L, -1, "version") == LUA_TSTRING)
    version = lua_tostring(L, -1);
  printf("%s %s (%s)  the module is loaded as 'fm'; Ctrl-D quits\n", PROGNAME, version,
         LUA_RELEASE);
  fflush(stdout);
  lua_settop(L, top);
  if (push_repl_function(L, "banner")) report(L, docall(L, 0, 0));
  lua_settop(L, top);
  fflush(stdout);
}

static void run_repl(lua_State *L) {
  const char *saved_progname = progname;
  progname = NULL;
  use_readline = isatty(STDIN_FILENO);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fmnist");
  int status = docall(L, 1, 1);
  if (status == LUA_OK)
    lua_setglobal(L, "fm");
  else
    report(L, status);
  /* help and the other globals of an interactive session */
  if (push_repl_function(L, "install")) report(L, docall(L, 0, 0));
  if (use_readline) {
    print_banner(L);
    rl_readline_name = PROGNAME; /* for $if fmnist-lua in ~/.inputrc */
    rl_instream = stdin;
    rl_outstream = stdout;
    completion_L = L;
    rl_attempted_completion_function = complete_lua;
    rl_completion_word_break_hook = word_breaks;
    rl_catch_signals = 0; /* Ctrl-C is handled in read_terminal_line */
    history_open();
  }
  while ((status = loadline(L)) != LINE_EOF) {
    if (status == LINE_CANCELLED) continue;
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      print_results(L);
    else
      report(L, status);
  }
  lua_settop(L, 0);
  if (use_readline) {
    fputc('\n', stdout); /* the shell's prompt starts on a fresh line after Ctrl-D */
    history_close();
  }
  fflush(stdout);
  progname = saved_progname;
}

/* ---- the fmnist.host module: what only the program can do ----
 *
 * `require "fmnist.host"` works inside fmnist-lua only; under a stock lua5.4 there is no such
 * module, and the Lua code that uses it (fmnist.capture, fmnist.termimage, the report) does less.
 *   capture_start([echo]) / capture_take() / capture_stop()
 *       Everything written to file descriptors 1 and 2 — print, io.write, the C library's stdout
 *       and stderr (fit's progress lines), child processes — goes into one pipe, in the order it
 *       was written, read by a thread that keeps it and, with echo, copies it to the original
 *       stdout as it comes. take returns what came since the last take; stop puts both
 *       descriptors back and returns the rest.
 *   terminal_query(seq, final [, seconds]) -> what the terminal answers to an escape sequence
 *       (up to a byte of `final`), or nil without a terminal or an answer in time
 *   terminal_size() -> columns, rows, pixel width, pixel height; nil when there is no terminal
 *   isatty(fd) -> boolean
 *   build() -> {compiler =, threads =, openmp =, git =, sanitizer =}
 *   module_source(name) -> the text of the embedded lua/fmnist/NAME.lua, or nil */

/* Written into the pipe to mark a point in the stream: when the reader thread meets it, all
 * that was written before has been kept. It can neither be typed nor come out of printf("%s"). */
static const char sync_marker[] = "\000\001fmnist-capture-sync\001\000";
#define MARKER_LEN (sizeof sync_marker - 1)
#define CAPTURE_LIMIT ((size_t)16 << 20) /* bytes kept between two takes; more are counted */

static struct {
  int active;
  int saved_out, saved_err; /* the descriptors 1 and 2 had before */
  int pipe_r, pipe_w;
  int echo;
  pthread_t reader;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  char *text; /* kept since the last take */
  size_t len, size, dropped;
  unsigned long sent, seen; /* markers written and markers met */
  int stopping, finished;
} cap = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* Copies n bytes to the original stdout (with echo) and keeps them. Runs on the reader thread. */
static void capture_keep(const char *p, size_t n) {
  if (n == 0) return;
  for (size_t done = 0; cap.echo && done < n;) {
    ssize_t w = write(cap.saved_out, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break; /* a closed stdout: the copy in the report is what matters */
    done += (size_t)w;
  }
  pthread_mutex_lock(&cap.lock);
  size_t room = cap.len < CAPTURE_LIMIT ? CAPTURE_LIMIT - cap.len : 0;
  size_t take = n < room ? n : room;
  if (cap.len + take > cap.size) {
    size_t size = cap.size ? cap.size : 4096;
    while (size < cap.len + take) size *= 2;
    char *grown = realloc(cap.text, size);
    if (grown) {
      cap.text = grown;
      cap.size = size;
    } else {
      take = cap.size - cap.len;
    }
  }
  memcpy(cap.text + cap.len, p, take);
  cap.len += take;
  cap.dropped += n - take;
  pthread_mutex_unlock(&cap.lock);
}

/* How many bytes at the end of p[0..n) could be the beginning of a marker. */
static size_t marker_prefix_at_end(const char *p, size_t n) {
  for (size_t k = n < MARKER_LEN - 1 ? n : MARKER_LEN - 1; k > 0; k--)
    if (memcmp(p + n - k, sync_marker, k) == 0) return k;
  return 0;
}

/* The reader thread: keeps what comes through the pipe, counting the markers it meets, until
 * the marker of capture_stop (or the end of the pipe). */
static void *capture_reader(void *unused) {
  (void)unused;
  char data[MARKER_LEN + 8192];
  size_t have = 0; /* bytes kept back from the last read: maybe the start of a marker */
  for (;;) {
    ssize_t n = read(cap.pipe_r, data + have, sizeof data - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += (size_t)n;
    size_t start = 0;
    const char *m;
    while ((m = memmem(data + start, have - start, sync_marker, MARKER_LEN)) != NULL) {
      size_t at = (size_t)(m - data);
      capture_keep(data + start, at - start);
      start = at + MARKER_LEN;
      pthread_mutex_lock(&cap.lock);
      cap.seen++;
      int last = cap.stopping && cap.seen == cap.sent;
      pthread_cond_broadcast(&cap.cond);
      pthread_mutex_unlock(&cap.lock);
      if (last) return NULL;
    }
    size_t keep = marker_prefix_at_end(data + start, have - start);
    capture_keep(data + start, have - start - keep);
    memmove(data, data + have - keep, keep);
    have = keep;
  }
  capture_keep(data, have);
  pthread_mutex_lock(&cap.lock);
  cap.finished = 1;
  pthread_cond_broadcast(&cap.cond);
  pthread_mutex_unlock(&cap.lock);
  return NULL;
}

/* Writes a marker and waits until the reader has met it: everything written before is kept. */
static void capture_sync(int stopping) {
  pthread_mutex_lock(&cap.lock);
  cap.stopping = stopping;
  unsigned long want = ++cap.sent;
  pthread_mutex_unlock(&cap.lock);
  for (size_t done = 0; done < MARKER_LEN;) {
    ssize_t w = write(cap.pipe_w, sync_marker + done, MARKER_LEN - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  pthread_mutex_lock(&cap.lock);
  while (cap.seen < want && !cap.finished) pthread_cond_wait(&cap.cond, &cap.lock);
  pthread_mutex_unlock(&cap.lock);
}

/* Pushes the text kept since the last take (with a note of what did not fit) and forgets it. */
static void capture_push_text(lua_State *L) {
  pthread_mutex_lock(&cap.lock);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, cap.text ? cap.text : "", cap.len);
  size_t dropped = cap.dropped;
  cap.len = 0;
  cap.dropped = 0;
  pthread_mutex_unlock(&cap.lock);
  if (dropped) {
    char note[96];
    snprintf(note, sizeof note, "\n[... %zu more bytes of output not kept]\n", dropped);
    luaL_addstring(&b, note);
  }
  luaL_pushresult(&b);
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Puts stdout and stderr back and ends the reader. Safe when not capturing; also runs at exit,
 * so that os.exit inside a cell still leaves the terminal's descriptors in place. */
static void capture_end(void) {
  if (!cap.active) return;
  fflush(stdout);
  fflush(stderr);
  dup2(cap.saved_out, STDOUT_FILENO);
  dup2(cap.saved_err, STDERR_FILENO);
  capture_sync(1);
  pthread_join(cap.reader, NULL);
  close_fd(&cap.pipe_r);
  close_fd(&cap.pipe_w);
  close_fd(&cap.saved_out);
  close_fd(&cap.saved_err);
  cap.active = 0;
}

static int host_capture_start(lua_State *L) {
  int echo = lua_toboolean(L, 1);
  if (cap.active) return luaL_error(L, "capture_start: already capturing");
  static int exit_handler;
  if (!exit_handler) exit_handler = atexit(capture_end) == 0;
  fflush(stdout);
  fflush(stderr);
  int fds[2];
  cap.saved_out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  cap.saved_err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (cap.saved_out < 0 || cap.saved_err < 0) {
    close_fd(&cap.saved_out);
    close_fd(&cap.saved_err);
    return luaL_error(L, "capture_start: standard output or error is not open");
  }
  if (pipe2(fds, O_CLOEXEC) != 0) {
    int e = errno;
    close_fd(&cap.saved_out);
    close_fd(&cap.saved_err);
    return luaL_error(L, "capture_start: cannot make a pipe (%s)", strerror(e));
  }
  cap.pipe_r = fds[0];
  cap.pipe_w = fds[1];
  cap.echo = echo;
  cap.len = cap.dropped = 0;
  cap.sent = cap.seen = 0;
  cap.stopping = cap.finished = 0;
  /* Signals go to the main thread, where the handlers expect them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&cap.reader, NULL, capture_reader, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    close_fd(&cap.pipe_r);
    close_fd(&cap.pipe_w);
    close_fd(&cap.saved_out);
    close_fd(&cap.saved_err);
    return luaL_error(L, "capture_start: cannot start a thread (%s)", strerror(rc));
  }
  dup2(cap.pipe_w, STDOUT_FILENO);
  dup2(cap.pipe_w, STDERR_FILENO);
  cap.active = 1;
  lua_pushboolean(L, 1);
  return 1;
}

static int host_capture_take(lua_State *L) {
  if (!cap.active) return luaL_error(L, "capture_take: not capturing (capture_start first)");
  fflush(stdout);
  fflush(stderr);
  capture_sync(0);
  capture_push_text(L);
  return 1;
}

static int host_capture_stop(lua_State *L) {
  if (!cap.active) {
    lua_pushliteral(L, "");
    return 1;
  }
  capture_end();
  capture_push_text(L);
  return 1;
}

static int host_capture_active(lua_State *L) {
  lua_pushboolean(L, cap.active);
  return 1;
}

/* The terminal: /dev/tty, so that it is found while stdout is captured or redirected. */
static int open_terminal(void) { return open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC); }

/* terminal_query(seq, final [, seconds]): sends seq to the terminal with echo and line editing
 * off, and reads the answer until a byte of `final` (after the first byte), at most 255 bytes or
 * `seconds` (default 0.5). Pushes the answer, or nil. */
static int host_terminal_query(lua_State *L) {
  size_t seqlen;
  const char *seq = luaL_checklstring(L, 1, &seqlen);
  const char *final = luaL_checkstring(L, 2);
  lua_Number seconds = luaL_optnumber(L, 3, 0.5);
  luaL_argcheck(L, seconds > 0 && seconds <= 10, 3, "seconds must be in (0, 10]");
  int fd = open_terminal();
  struct termios old, raw;
  if (fd < 0 || tcgetattr(fd, &old) != 0) {
    if (fd >= 0) close(fd);
    lua_pushnil(L);
    return 1;
  }
  raw = old;
  raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  tcsetattr(fd, TCSANOW, &raw);
  char answer[256];
  size_t got = 0;
  int complete = 0;
  if (write(fd, seq, seqlen) == (ssize_t)seqlen) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!complete && got < sizeof answer - 1) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      double left = seconds - ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9);
      if (left <= 0) break;
      struct pollfd p = {.fd = fd, .events = POLLIN};
      int r = poll(&p, 1, (int)(left * 1000) + 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      ssize_t n = read(fd, answer + got, 1);
      if (n <= 0) break;
      complete = got > 0 && strchr(final, answer[got]) != NULL && answer[got] != '\0';
      got++;
    }
  }
  tcsetattr(fd, TCSANOW, &old);
  close(fd);
  if (complete)
    lua_pushlstring(L, answer, got);
  else
    lua_pushnil(L);
  return 1;
}

static int host_terminal_size(lua_State *L) {
  struct winsize ws;
  int ok = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0;
  if (!ok) {
    int fd = open_terminal();
    ok = fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0;
    if (fd >= 0) close(fd);
  }
  if (!ok || ws.ws_col == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, ws.ws_col);
  lua_pushinteger(L, ws.ws_row);
  lua_pushinteger(L, ws.ws_xpixel);
  lua_pushinteger(L, ws.ws_ypixel);
  return 4;
}

static int host_isatty(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 1024, 1, "not a file descriptor");
  /* stdout while captured is a pipe; what matters is where it ends up */
  if (cap.active && (fd == 1 || fd == 2)) fd = fd == 1 ? cap.saved_out : cap.saved_err;
  lua_pushboolean(L, isatty((int)fd));
  return 1;
}

static int host_build(lua_State *L) {
  lua_createtable(L, 0, 5);
#if defined(__clang__)
  lua_pushstring(L, "clang " __clang_version__);
#elif defined(__GNUC__)
  lua_pushstring(L, "gcc " __VERSION__);
#else
  lua_pushstring(L, "unknown");
#endif
  lua_setfield(L, -2, "compiler");
  lua_pushinteger(L, fm_default_threads());
  lua_setfield(L, -2, "threads");
#ifdef _OPENMP
  lua_pushinteger(L, _OPENMP);
  lua_setfield(L, -2, "openmp");
#endif
#ifdef LFM_GIT_DESCRIBE
  lua_pushstring(L, LFM_GIT_DESCRIBE);
  lua_setfield(L, -2, "git");
#endif
#if defined(__SANITIZE_ADDRESS__)
  lua_pushstring(L, "address");
  lua_setfield(L, -2, "sanitizer");
#endif
  return 1;
}

static int host_module_source(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (const lfm_lua_module *m = lfm_lua_modules; m->name; m++) {
    if (strcmp(m->name, name) == 0) {
      lua_pushlstring(L, m->source, m->size);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

static int host_gc(lua_State *L) {
  (void)L;
  capture_end();
  return 0;
}

static int luaopen_host(lua_State *L) {
  static const luaL_Reg functions[] = {
      {"capture_start", host_capture_start}, {"capture_take", host_capture_take},
      {"capture_stop", host_capture_stop},   {"capture_active", host_capture_active},
      {"terminal_query", host_terminal_query}, {"terminal_size", host_terminal_size},
      {"isatty", host_isatty},               {"build", host_build},
      {"module_source", host_module_source}, {NULL, NULL}};
  luaL_newlib(L, functions);
  /* When the state closes, a capture still running ends and the descriptors come back. */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, host_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  return 1;
}

/* ---- main ---- */

/* package.preload loader of an embedded "fmnist.NAME" before fmnist itself is loaded: loading
 * fmnist installs the real loaders (fmnist.c), so that `require "fmnist.notebook"` works as the
 * first line of a script; then the real one runs. */
static int load_after_fmnist(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  require_fmnist(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  if (lua_getfield(L, -1, name) != LUA_TFUNCTION || lua_tocfunction(L, -1) == load_after_fmnist)
    return luaL_error(L, "module '%s' is not in the fmnist module", name);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

static void preload_fmnist(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const lfm_lua_module *m = lfm_lua_modules; m->name; m++) {
    lua_pushfstring(L, "fmnist.%s", m->name);
    lua_pushcfunction(L, load_after_fmnist);
    lua_settable(L, -3);
  }
  lua_pushcfunction(L, luaopen_fmnist);
  lua_setfield(L, -2, "fmnist");
  lua_pushcfunction(L, luaopen_host);
  lua_setfield(L, -2, "fmnist.host");
  lua_pop(L, 1);
}

/* A command is a word such as "report" or "predict" for which the module embeds
 * "fmnist.cmd_<word>" (lua/fmnist/cmd_<word>.lua). That module returns a function taking the
 * words after the command as a list (also in `arg`, with the command as arg[0]) and returning an
 * exit status (an integer, or true/nil for success and false for failure). Returns -1 when
 * argv[1] names no command, so that it runs as a script (a file named like a command runs as
 * ./name). Otherwise pushes nothing and returns the status. */
static int run_command(lua_State *L, char **argv, int argc) {
  const char *word = argv[1];
  if (argc < 2 || word[0] == '\0' || strspn(word, "abcdefghijklmnopqrstuvwxyz") != strlen(word))
    return -1;
  require_fmnist(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushfstring(L, "fmnist.cmd_%s", word);
  int known = lua_gettable(L, -2) != LUA_TNIL;
  lua_pop(L, 3); /* the module, preload, the loader */
  if (!known) return -1;
  create_arg_table(L, argv, argc, 1);
  lua_getglobal(L, "require");
  lua_pushfstring(L, "fmnist.cmd_%s", word);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) {
    lua_getglobal(L, "arg");
    lua_createtable(L, argc - 2, 0);
    for (int i = 2; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i - 1);
    }
    lua_remove(L, -2);
    status = docall(L, 1, 1);
  }
  if (status != LUA_OK) {
    report(L, status);
    return EXIT_FAILURE;
  }
  int code = lua_isinteger(L, -1)   ? (int)lua_tointeger(L, -1)
             : lua_isboolean(L, -1) ? (lua_toboolean(L, -1) ? EXIT_SUCCESS : EXIT_FAILURE)
                                    : EXIT_SUCCESS;
  lua_pop(L, 1);
  return code;
}

/* Everything runs here, inside a protected call. Pushes true when all went well, or the exit
 * status of a command. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = 0;
  if (argc > 1 && argv[1][0] != '-') {
    luaL_checkversion(L);
    luaL_openlibs(L);
    preload_fmnist(L);
    int code = run_command(L, argv, argc);
    if (code >= 0) {
      lua_pushinteger(L, code);
      return 1;
    }
  }
  int args = collect_args(argv, argc, &script);
  luaL_checkversion(L);
  if (args == HAS_ERROR) {
    usage_error(argv[script]);
    return 0;
  }
  if (args & HAS_H) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!(argc > 1 && argv[1][0] != '-')) { /* else opened above */
    luaL_openlibs(L);
    preload_fmnist(L);
  }
  create_arg_table(L, argv, argc, script);
  if (args & HAS_V) print_versions(L);
  if (!run_args(L, argv, script > 0 ? script : argc)) return 0;
  int script_ok = script == 0 || handle_script(L, argv + script) == LUA_OK;
  if (args & HAS_I) {
    /* As python -i: the session opens even after the script failed, with what it left, so
     * that the failure can be looked into; the exit status still says it failed. */
    run_repl(L);
    if (!script_ok) return 0;
  } else if (!script_ok) {
    return 0;
  } else if (script == 0 && !(args & (HAS_E | HAS_V))) {
    if (isatty(STDIN_FILENO))
      run_repl(L);
    else if (dofile(L, NULL) != LUA_OK)
      return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Under an address-space limit (ulimit -v), OpenBLAS's own worker thread, started when the
 * library loads and before any of this program runs, retries a 128 MB buffer allocation forever,
 * and exit() then waits for it. The engine never uses OpenBLAS's threads for its own passes (its
 * thread pool runs the products single-threaded), so the program starts itself again with one
 * OpenBLAS thread when such a limit is set and the user did not choose a thread count. */
static void avoid_blas_threads_under_limit(char **argv) {
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur == RLIM_INFINITY) return;
  if (getenv("OPENBLAS_NUM_THREADS")) return;
  if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0) return;
  execv("/proc/self/exe", argv); /* returns only on failure: then go on as we are */
}

int main(int argc, char **argv) {
  avoid_blas_threads_under_limit(argv);
  /* Character classes only, so readline handles UTF-8; numbers keep the C locale. */
  setlocale(LC_CTYPE, "");
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", PROGNAME);
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int command = status == LUA_OK && lua_isinteger(L, -1);
  int code = command ? (int)lua_tointeger(L, -1) : EXIT_FAILURE;
  int result = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  if (command) return code;
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
