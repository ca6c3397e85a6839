/* fmnist.c: luaopen_fmnist, the entry point of the Lua module, and helpers the binding files share.
 *
 * The module table gets the functions of every userdata file (lfm_open_*). The pure-Lua modules
 * compiled in from the files in lua/fmnist/ are installed in package.preload as "fmnist.NAME" and appear
 * lazily as fm.NAME on first use, so start-up stays fast. */
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <png.h>
#include <zlib.h>

#include "fm_gemm.h"
#include "lfm.h"
#include "lfm_modules.h"

int lfm_engine_error(lua_State *L, const char *fname) {
  return luaL_error(L, "%s: %s", fname, fm_error());
}

void lfm_newclass(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, tname);
  luaL_setfuncs(L, meta, 0);
  if (methods) {
    if (lua_getfield(L, -1, "__index") == LUA_TNIL) {
      lua_pop(L, 1);
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, "__index");
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

void lfm_addmethods(lua_State *L, const char *tname, const luaL_Reg *methods) {
  luaL_getmetatable(L, tname);
  if (lua_getfield(L, -1, "methods") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_getfield(L, -1, "__index");
  }
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 2);
}

int lfm_optopts(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return 0;
  luaL_checktype(L, arg, LUA_TTABLE);
  return lua_absindex(L, arg);
}

/* Pushes opts[key]; raises naming the option when present with the wrong type. */
static int optfield(lua_State *L, int opts, const char *key, int type) {
  if (!opts) return 0;
  int t = lua_getfield(L, opts, key);
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (t != type && !(type == LUA_TNUMBER && t == LUA_TSTRING && lua_isnumber(L, -1))) {
    luaL_error(L, "option '%s' must be a %s, got %s", key, lua_typename(L, type),
               luaL_typename(L, -1));
  }
  return 1;
}

lua_Integer lfm_optfield_int(lua_State *L, int opts, const char *key, lua_Integer def) {
  if (!optfield(L, opts, key, LUA_TNUMBER)) return def;
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum) luaL_error(L, "option '%s' must be an integer, got %s", key, lua_tostring(L, -1));
  lua_pop(L, 1);
  return v;
}

lua_Number lfm_optfield_num(lua_State *L, int opts, const char *key, lua_Number def) {
  if (!optfield(L, opts, key, LUA_TNUMBER)) return def;
  lua_Number v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

lua_Integer lfm_optfield_range(lua_State *L, int opts, const char *key, lua_Integer def,
                               lua_Integer lo, lua_Integer hi) {
  if (!optfield(L, opts, key, LUA_TNUMBER)) return def;
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < lo || v > hi)
    luaL_error(L, "option '%s' must be an integer from %I to %I, got %s", key, lo, hi,
               luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return v;
}

uint64_t lfm_optfield_seed(lua_State *L, int opts, const char *key, fm_rng *fallback) {
  if (!optfield(L, opts, key, LUA_TNUMBER)) return fm_rng_next(fallback);
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum)
    luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return (uint64_t)v;
}

void lfm_check_options(lua_State *L, int opts, const char *fname, const char *const *known) {
  if (!opts) return;
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int ok = 0;
    for (int i = 0; k && known[i]; i++) ok |= strcmp(known[i], k) == 0;
    if (ok) continue;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; known[i]; i++) {
      if (i) luaL_addstring(&b, ", ");
      luaL_addstring(&b, known[i]);
    }
    luaL_pushresult(&b);
    if (k)
      luaL_error(L, "%s: unknown option '%s' (known: %s)", fname, k, lua_tostring(L, -1));
    else
      luaL_error(L, "%s: option keys are names, not %s (known: %s)", fname,
                 luaL_typename(L, -2), lua_tostring(L, -1));
  }
}

int lfm_optfield_bool(lua_State *L, int opts, const char *key, int def) {
  if (!optfield(L, opts, key, LUA_TBOOLEAN)) return def;
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* fm.versions() -> {fmnist=, lua=, openblas=, libpng=, zlib=, gemm=} (gemm: the matrix product
 * kernel in use, "avx512" or "openblas": trained weights match bit for bit only on the same one) */
static int fm_versions(lua_State *L) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, LFM_VERSION);
  lua_setfield(L, -2, "fmnist");
  lua_pushstring(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, openblas_get_config());
  lua_setfield(L, -2, "openblas");
  lua_pushstring(L, png_get_libpng_ver(NULL));
  lua_setfield(L, -2, "libpng");
  lua_pushstring(L, zlibVersion());
  lua_setfield(L, -2, "zlib");
  lua_pushstring(L, fm_gemm_name(fm_gemm_current()));
  lua_setfield(L, -2, "gemm");
  return 1;
}

/* fm.clock() -> seconds on a monotonic wall clock (os.clock adds up the CPU time of every thread,
 * os.time counts whole seconds). */
static int fm_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

/* fm.threads() -> the threads training uses by default: OMP_NUM_THREADS, else the cores this
 * process may run on (its affinity mask), at most the engine's shard limit. fit's threads option
 * overrides it for one call. */
static int fm_threads(lua_State *L) {
  lua_pushinteger(L, fm_default_threads());
  return 1;
}

/* package.preload loader for an embedded module; upvalue 1 is its index in lfm_lua_modules. */
static int load_embedded(lua_State *L) {
  const lfm_lua_module *m = &lfm_lua_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbufferx(L, m->source, m->size, m->chunkname, "t") != LUA_OK) return lua_error(L);
  lua_pushstring(L, lua_tostring(L, 1));
  lua_call(L, 1, 1);
  return 1;
}

/* __index of the module table: fm.plot requires "fmnist.plot" on first use and keeps it. */
static int module_index(lua_State *L) {
  const char *key = lua_tostring(L, 2);
  if (!key) return 0;
  for (const lfm_lua_module *m = lfm_lua_modules; m->name; m++) {
    if (strcmp(m->name, key) == 0) {
      lua_getglobal(L, "require");
      lua_pushfstring(L, "fmnist.%s", key);
      lua_call(L, 1, 1);
      lua_pushvalue(L, 2);
      lua_pushvalue(L, -2);
      lua_rawset(L, 1);
      return 1;
    }
  }
  return 0;
}

static void install_embedded(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (int i = 0; lfm_lua_modules[i].name; i++) {
    lua_pushfstring(L, "fmnist.%s", lfm_lua_modules[i].name);
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_settable(L, -3);
  }
  lua_pop(L, 1);
}

int luaopen_fmnist(lua_State *L) {
  static const luaL_Reg functions[] = {
      {"versions", fm_versions}, {"clock", fm_clock}, {"threads", fm_threads}, {NULL, NULL}};
  luaL_newlib(L, functions);
  lua_pushstring(L, LFM_VERSION);
  lua_setfield(L, -2, "version");
  lfm_open_tensor(L);
  lfm_open_dataset(L);
  lfm_open_metrics(L);
  lfm_open_model(L);
  lfm_open_export(L);
  lfm_open_png(L);
  lfm_open_image(L);
  lfm_open_gnuplot(L);
  lfm_open_process(L);
  install_embedded(L);
  /* fm.Model and fm.CNN take the containers of fmnist.nets (compiled in Lua to the flat lists the
   * C constructors read), and fm.Sequential, fm.Residual, fm.ResNet, fm.MobileNet come from it. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fmnist.nets");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "install");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 1;
}
