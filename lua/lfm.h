/* lfm.h: what the binding files share. One C file per userdata type (l_tensor.c, l_dataset.c, ...),
 * each with an lfm_open_* function that adds its functions to the module table; fmnist.c's
 * luaopen_fmnist calls them all. The binding never does numerics: it checks arguments, allocates,
 * calls the engine and turns FM_ERR into a Lua error. */
#ifndef LFM_H
#define LFM_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fm_dataset.h"
#include "fm_net.h"
#include "fm_error.h"
#include "fm_rng.h"
#include "fm_tensor.h"

#define LFM_TENSOR "fmnist.Tensor"
#define LFM_DATASET "fmnist.Dataset"
#define LFM_VERSION "0.1.0"

/* ---- tensors (l_tensor.c) ---- */
/* Pushes a new tensor of the given shape; its floats live inside the userdata (64-byte aligned),
 * so the garbage collector counts them. Contents are zero. Raises on a bad shape. */
fm_tensor *lfm_newtensor(lua_State *L, int ndim, const int64_t *shape);
/* A new tensor shaped like t. */
fm_tensor *lfm_newtensor_like(lua_State *L, const fm_tensor *t);
fm_tensor *lfm_checktensor(lua_State *L, int arg);
fm_tensor *lfm_totensor(lua_State *L, int arg); /* NULL if not a tensor */
/* lua_newuserdatauv that, for a large block, raises "fname: out of memory for <what> (N MB)"
 * instead of Lua's bare "not enough memory" (fname NULL: the running function's name). */
void *lfm_newuserdata(lua_State *L, size_t bytes, int nuvalue, const char *fname,
                      const char *what);
void lfm_open_tensor(lua_State *L);             /* module table on top */

/* The generator behind fm.seed, fm.rand, fm.randn and every default seed. */
fm_rng *lfm_rng(void);

/* ---- datasets (l_dataset.c) ---- */
/* Checks that arg is a Dataset and returns its engine view (valid while the dataset lives). */
const fm_dataset *lfm_checkdataset(lua_State *L, int arg);
fm_dataset *lfm_todataset(lua_State *L, int arg); /* NULL if not a dataset */
void lfm_open_dataset(lua_State *L);

/* ---- PNG files (l_png.c): t:save_png, fm.load_png, fm.png ---- */
void lfm_open_png(lua_State *L); /* after lfm_open_tensor: adds a tensor method */

/* ---- pictures made ready for the models (l_image.c): fm.image, fm.class_name ---- */
void lfm_open_image(lua_State *L);

/* ---- the gnuplot process behind fm.plot (l_gnuplot.c): fm.gnuplot ---- */
void lfm_open_gnuplot(lua_State *L);

/* ---- worker processes and shared result files (l_process.c): fm.process ---- */
void lfm_open_process(lua_State *L);

/* ---- metrics and results (l_metrics.c) ---- */
/* Pushes a result table (accuracy, confusion, per-class scores, averages, report()) for a
 * classes x classes confusion matrix (a model may score more classes than the dataset's ten);
 * loss is left out when NaN. */
void lfm_push_result(lua_State *L, const int64_t *confusion, int classes, double loss);
void lfm_open_metrics(lua_State *L);

/* ---- models (l_model.c): fm.LogReg, fm.MLP, fm.CNN, fm.load_model ---- */
void lfm_open_model(lua_State *L);
/* The network of the model at arg (raises unless it is an fmnist.Model); *kind gets its kind name
 * when kind is not NULL. Valid while the model lives: keep it on the stack. */
const fm_net *lfm_checkmodel(lua_State *L, int arg, const char **kind);
/* Adds methods to fmnist.Model (from another binding file, e.g. exports). */
void lfm_model_methods(lua_State *L, const luaL_Reg *methods);

/* ---- exports (l_export.c): model:export_onnx, model:export_npy ---- */
void lfm_open_export(lua_State *L); /* after lfm_open_model: adds Model methods */

/* ---- shared helpers (fmnist.c) ---- */
/* Raises a Lua error with the engine's message, prefixed by the calling function's name. */
int lfm_engine_error(lua_State *L, const char *fname);
/* Registers a metatable named tname with the metamethods in meta and the methods in methods as
 * __index (unless meta already has an __index). Leaves nothing on the stack. */
void lfm_newclass(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods);
/* Adds methods to the class tname (registered earlier): to metatable.methods when the class has
 * one (its __index is a function), else to its __index table. How one file adds, say, save_png to
 * fmnist.Tensor. */
void lfm_addmethods(lua_State *L, const char *tname, const luaL_Reg *methods);
/* Optional integer/number/boolean field of the options table at index opts (0 or nil: no table). */
lua_Integer lfm_optfield_int(lua_State *L, int opts, const char *key, lua_Integer def);
lua_Number lfm_optfield_num(lua_State *L, int opts, const char *key, lua_Number def);
int lfm_optfield_bool(lua_State *L, int opts, const char *key, int def);
/* An integer option that must lie in [lo, hi]; the error names the key, the range and the value. */
lua_Integer lfm_optfield_range(lua_State *L, int opts, const char *key, lua_Integer def,
                               lua_Integer lo, lua_Integer hi);
/* A seed: any integer (taken as 64 bits), or the next number of `fallback` when absent. */
uint64_t lfm_optfield_seed(lua_State *L, int opts, const char *key, fm_rng *fallback);
/* Raises "fname: unknown option 'k' (known: a, b, c)" for any key of opts not in the
 * NULL-terminated list known. */
void lfm_check_options(lua_State *L, int opts, const char *fname, const char *const *known);
/* Checks that arg is a table of options or absent; returns its index or 0. */
int lfm_optopts(lua_State *L, int arg);

#endif
