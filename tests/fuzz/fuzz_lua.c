/* fuzz_lua: the Lua API. Each input runs in a fresh Lua 5.4 state with the fmnist module (the
 * binding, lua/fmnist.c and lua/l_NAME.c, and the pure-Lua modules compiled into it), where
 * tests/fuzz/lua_driver.lua turns the bytes into calls of the module's public functions and
 * methods with arguments drawn from a palette of hostile values. Lua errors are the expected
 * outcome; crashes, sanitizer reports, leaks (the state is closed after each input) and hangs are
 * findings, and so is what the driver reports through fuzz_finding (a string that ran as a
 * command; with FUZZ_PLOT, gnuplot dying, hanging or refusing what an fm.plot figure sent it).
 *
 * The list of callables is not kept here: the driver walks what the binding registered (the module
 * table, its package.preload entries, the fmnist.* metatables in the registry) once at start-up,
 * and each input picks from that list. Option names for the palette come from the binding's
 * sources (FUZZ_KEYS, made by the Makefile).
 *
 * Sandbox: the process works in a private temporary directory (also $HOME, $TMPDIR and
 * $FMNIST_DATA, which holds a 12-image train split and a 10-image test split), emptied and
 * refilled with the fixture files before each input, so that files written by one input never
 * reach the next. Without FUZZ_PLOT, FMNIST_GNUPLOT names a program that does not exist, so every
 * figure fails fast after its arguments were checked; fuzz_lua_plot (FUZZ_PLOT=1) calls only
 * fm.plot and fm.gnuplot, with the real gnuplot. Standard output goes to /dev/null unless
 * FUZZ_VERBOSE is set. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz_util.h"

#ifndef FUZZ_PLOT
#define FUZZ_PLOT 0
#endif

int luaopen_fmnist(lua_State *L);

typedef struct text {
  char *bytes;
  size_t size;
} text;

static text driver, keys, names;
static char workdir[4200];
#define MAX_FIXTURES 32
static struct fixture {
  char name[256];
  text content;
} fixtures[MAX_FIXTURES];
static int n_fixtures;

static text read_all(const char *path) {
  text t = {NULL, 0};
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_lua: cannot open %s\n", path);
    abort();
  }
  size_t cap = 0;
  for (;;) {
    if (t.size == cap) {
      cap = cap ? 2 * cap : 65536;
      t.bytes = realloc(t.bytes, cap + 1);
      if (!t.bytes) abort();
    }
    size_t got = fread(t.bytes + t.size, 1, cap - t.size, f);
    if (got == 0) break;
    t.size += got;
  }
  fclose(f);
  t.bytes[t.size] = '\0';
  return t;
}

static int lua_finding(lua_State *L) {
  fprintf(stderr, "fuzz_lua: FINDING: %s\n", luaL_checkstring(L, 1));
  abort();
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  luaL_requiref(L, "fmnist", luaopen_fmnist, 0);
  lua_pop(L, 1);
  lua_register(L, "fuzz_finding", lua_finding);
  return L;
}

/* Runs the driver in L; returns a malloc'd copy of its string result. An error that escapes the
 * driver (not one of the calls it makes, which it catches) is a harness bug: abort. */
static char *run_driver(lua_State *L, const char *mode, const uint8_t *data, size_t size) {
  if (luaL_loadbufferx(L, driver.bytes, driver.size, "@lua_driver.lua", "t") != LUA_OK) {
    fprintf(stderr, "fuzz_lua: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pushstring(L, mode);
  lua_pushlstring(L, (const char *)data, size);
  lua_pushlstring(L, keys.bytes, keys.size);
  lua_pushlstring(L, names.bytes ? names.bytes : "", names.size);
  lua_pushboolean(L, FUZZ_PLOT);
  if (lua_pcall(L, 5, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_lua: driver (%s) failed: %s\n", mode, luaL_tolstring(L, -1, NULL));
    abort();
  }
  const char *s = lua_tostring(L, -1);
  char *copy = strdup(s ? s : "");
  if (!copy) abort();
  return copy;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  if (ftw->level > 0 && remove(path) != 0) {
    perror(path);
    abort();
  }
  return 0;
}

/* Empties the work directory and writes the fixtures back. */
static void reset_workdir(void) {
  if (nftw(workdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) abort();
  for (int i = 0; i < n_fixtures; i++) {
    char path[4500];
    snprintf(path, sizeof path, "%s/%s", workdir, fixtures[i].name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(fixtures[i].content.bytes, 1, fixtures[i].content.size, f) !=
                  fixtures[i].content.size || fclose(f) != 0)
      abort();
  }
}

/* Remembers every file the driver's "fixtures" mode wrote. */
static void snapshot_fixtures(void) {
  DIR *d = opendir(workdir);
  if (!d) abort();
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (n_fixtures == MAX_FIXTURES) abort();
    struct fixture *fx = &fixtures[n_fixtures++];
    snprintf(fx->name, sizeof fx->name, "%s", e->d_name);
    char path[4500];
    snprintf(path, sizeof path, "%s/%s", workdir, e->d_name);
    fx->content = read_all(path);
  }
  closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  const char *driver_path = getenv("FUZZ_LUA_DRIVER");
  driver = read_all(driver_path ? driver_path : FUZZ_LUA_DRIVER);
  keys = read_all(getenv("FUZZ_KEYS") ? getenv("FUZZ_KEYS") : FUZZ_KEYS);
  snprintf(workdir, sizeof workdir, "%s/work", fuzz_dir);
  if (mkdir(workdir, 0700) != 0 || chdir(workdir) != 0) abort();
  setenv("HOME", workdir, 1);
  setenv("TMPDIR", workdir, 1);
  setenv("FMNIST_DATA", workdir, 1);
  setenv("FMNIST_PLOT", "", 1);
  if (FUZZ_PLOT)
    setenv("FMNIST_GNUPLOT_TIMEOUT", "8", 1);
  else
    setenv("FMNIST_GNUPLOT", "/nonexistent/fmnist-fuzz/gnuplot", 1);
  if (!getenv("FUZZ_VERBOSE")) {
    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, 1) < 0) abort();
    close(null);
  }
  lua_State *L = new_state();
  free(run_driver(L, "fixtures", NULL, 0));
  lua_close(L);
  snapshot_fixtures();
  L = new_state();
  names.bytes = run_driver(L, "list", NULL, 0);
  names.size = strlen(names.bytes);
  lua_close(L);
  int count = 0;
  for (size_t i = 0; i < names.size; i++) count += names.bytes[i] == '\n';
  fprintf(stderr, "fuzz_lua: %d callables, %d fixture files\n", names.size ? count + 1 : 0,
          n_fixtures);
  if (getenv("FUZZ_LIST")) fprintf(stderr, "%s\n", names.bytes);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reset_workdir();
  lua_State *L = new_state();
  free(run_driver(L, "run", data, size));
  lua_close(L);
  return 0;
}
