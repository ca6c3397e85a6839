/* lfm_modules.h: the table of pure-Lua modules compiled into the C module (see tools/bin2c.c). */
#ifndef LFM_MODULES_H
#define LFM_MODULES_H
#include <stddef.h>
typedef struct lfm_lua_module {
  const char *name;      /* "plot" -> require "fmnist.plot", and fm.plot */
  const char *chunkname; /* for error messages and tracebacks */
  const char *source;
  size_t size;
} lfm_lua_module;
extern const lfm_lua_module lfm_lua_modules[];
#endif
