/* l_metrics.c: fm.metrics(y_true, y_pred) and the result table that model:evaluate returns too.
 *
 * A result is a plain Lua table (accuracy, confusion, precision, recall, f1, support, macro,
 * weighted, ...) whose metatable, from the pure-Lua module fmnist.result, adds report() — the
 * layout of scikit-learn's classification_report.
 *
 * The metatable is taken once, when the module opens, from the embedded source of fmnist.result
 * and kept in the registry: what package.loaded, package.preload or require hold later is the
 * user's to change and is never looked at again. */
#include <math.h>
#include <string.h>

#include "fm_metrics.h"
#include "lfm.h"
#include "lfm_modules.h"

#define RESULT_MODULE "fmnist.result"
#define RESULT_META "fmnist.Result" /* registry key of the metatable of every result */

/* Labels from a tensor of integers in 0..classes-1 into a uint8 userdata pushed on the stack. */
static uint8_t *labels_from(lua_State *L, int arg, const char *what, int classes) {
  fm_tensor *t = lfm_checktensor(L, arg);
  uint8_t *out = lua_newuserdatauv(L, (size_t)(t->numel ? t->numel : 1), 0);
  for (int64_t i = 0; i < t->numel; i++) {
    float v = t->data[i];
    if (!(v >= 0 && v < classes) || v != floorf(v))
      luaL_error(L, "metrics: %s[%I] = %f is not a class id 0..%d", what, (lua_Integer)i + 1,
                 (double)v, classes - 1);
    out[i] = (uint8_t)v;
  }
  return out;
}
static void set_number(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void push_array(lua_State *L, const double *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static void push_avg(lua_State *L, double p, double r, double f1) {
  lua_createtable(L, 0, 3);
  set_number(L, "precision", p);
  set_number(L, "recall", r);
  set_number(L, "f1", f1);
}

/* The names of the classes of a result, in a table of its own (fm.classes belongs to the user,
 * who may change it): the dataset's ten, then the ids of any further classes a model scores
 * ("10", "11", ...). */
static void push_class_names(lua_State *L, int classes) {
  lua_createtable(L, classes, 0);
  for (int i = 0; i < classes; i++) {
    if (i < FM_CLASSES)
      lua_pushstring(L, fm_class_names[i]);
    else
      lua_pushfstring(L, "%d", i);
    lua_rawseti(L, -2, i + 1);
  }
}

void lfm_push_result(lua_State *L, const int64_t *confusion, int classes, double loss) {
  fm_metrics m;
  if (fm_metrics_compute(confusion, classes, &m) != FM_OK) lfm_engine_error(L, "metrics");
  lua_createtable(L, 0, 14);
  set_number(L, "accuracy", m.accuracy);
  if (!isnan(loss)) set_number(L, "loss", loss);
  lua_pushinteger(L, m.total);
  lua_setfield(L, -2, "n");
  int64_t shape[2] = {classes, classes};
  fm_tensor *c = lfm_newtensor(L, 2, shape);
  for (int i = 0; i < classes * classes; i++) c->data[i] = (float)confusion[i];
  lua_setfield(L, -2, "confusion");
  fm_confusion_normalize(confusion, classes, lfm_newtensor(L, 2, shape)->data);
  lua_setfield(L, -2, "confusion_normalized");
  push_array(L, m.precision, classes);
  lua_setfield(L, -2, "precision");
  push_array(L, m.recall, classes);
  lua_setfield(L, -2, "recall");
  push_array(L, m.f1, classes);
  lua_setfield(L, -2, "f1");
  lua_createtable(L, classes, 0);
  for (int i = 0; i < classes; i++) {
    lua_pushinteger(L, m.support[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "support");
  lua_createtable(L, classes, 0);
  for (int i = 0; i < classes; i++) {
    lua_pushboolean(L, m.present[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "present");
  push_avg(L, m.macro_precision, m.macro_recall, m.macro_f1);
  lua_setfield(L, -2, "macro");
  push_avg(L, m.weighted_precision, m.weighted_recall, m.weighted_f1);
  lua_setfield(L, -2, "weighted");
  push_class_names(L, classes);
  lua_setfield(L, -2, "classes");
  lua_getfield(L, LUA_REGISTRYINDEX, RESULT_META); /* a table: checked when it was stored */
  lua_setmetatable(L, -2);
}

/* fm.metrics(y_true, y_pred [, {classes = 10}]): tensors of class ids of the same length; classes
 * (2 to FM_METRICS_MAX_CLASSES) for the predictions of a model with more outputs than ten. */
static int metrics_new(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1), *p = lfm_checktensor(L, 2);
  int opts = lfm_optopts(L, 3);
  static const char *const known[] = {"classes", NULL};
  lfm_check_options(L, opts, "metrics", known);
  int classes = (int)lfm_optfield_range(L, opts, "classes", FM_CLASSES, 2, FM_METRICS_MAX_CLASSES);
  if (t->numel != p->numel)
    return luaL_error(L, "metrics: %I true labels but %I predictions", (lua_Integer)t->numel,
                      (lua_Integer)p->numel);
  if (t->numel == 0) return luaL_error(L, "metrics: no labels (y_true and y_pred are empty)");
  uint8_t *truth = labels_from(L, 1, "y_true", classes);
  uint8_t *pred = labels_from(L, 2, "y_pred", classes);
  int64_t *confusion = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)classes * (size_t)classes, 0);
  if (fm_confusion(truth, pred, t->numel, classes, confusion) != FM_OK)
    return lfm_engine_error(L, "metrics");
  lfm_push_result(L, confusion, classes, NAN);
  return 1;
}

/* Runs the embedded source of fmnist.result (never a file or a preload entry) and stores its
 * Result table in the registry; package.loaded gets the same module table unless something is
 * already there, so that require "fmnist.result" and the results agree. */
static void load_result_module(lua_State *L) {
  const lfm_lua_module *m = lfm_lua_modules;
  while (m->name && strcmp(m->name, "result") != 0) m++;
  if (!m->name) luaL_error(L, "fmnist: the module %s is missing from the build", RESULT_MODULE);
  if (luaL_loadbufferx(L, m->source, m->size, m->chunkname, "t") != LUA_OK) lua_error(L);
  lua_pushliteral(L, RESULT_MODULE);
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1) || lua_getfield(L, -1, "Result") != LUA_TTABLE)
    luaL_error(L, "fmnist: %s did not return a table with a Result table", RESULT_MODULE);
  lua_setfield(L, LUA_REGISTRYINDEX, RESULT_META);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, RESULT_MODULE) == LUA_TNIL) {
    lua_pushvalue(L, -3);
    lua_setfield(L, -3, RESULT_MODULE);
  }
  lua_pop(L, 3);
}

void lfm_open_metrics(lua_State *L) {
  static const luaL_Reg functions[] = {{"metrics", metrics_new}, {NULL, NULL}};
  load_result_module(L);
  luaL_setfuncs(L, functions, 0);
}
