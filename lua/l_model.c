/* l_model.c: the userdata fmnist.Model — fm.LogReg, fm.MLP, fm.CNN and fm.load_model — with
 * Keras's habits: fit, evaluate, predict, predict_proba, summary, save.
 *
 * A model holds its network description, parameters and gradients inside the userdata (the
 * garbage collector sees them). Workspaces and optimizer state are made per call as userdata on
 * the stack, so an error anywhere frees them. Training runs in the engine; this file shows the
 * progress bar, calls the Lua callback, validates, stops early and keeps the history. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fm_check.h"
#include "fm_eval.h"
#include "fm_modelfile.h"
#include "fm_net.h"
#include "fm_optim.h"
#include "fm_train.h"
#include "lfm.h"

#define LFM_MODEL "fmnist.Model"
#define ALIGN 64
#define PREDICT_BATCH 256

typedef struct defaults {
  int epochs, batch;
  double lr;
  fm_optim_kind optimizer;
  double weight_decay;
  fm_sched_kind schedule; /* cosine decay to 0 over the epochs: the last epochs settle */
  int decoupled;          /* Adam with decoupled weight decay (AdamW) */
  int nesterov;           /* SGD */
  double warmup;          /* epochs */
  double label_smoothing;
  fm_augment augment;
} defaults;

typedef struct model {
  char kind[16];
  fm_net net;               /* net.layer points at layers, below */
  defaults def;
  int epochs_trained;
  int n_layers;
  fm_layer_spec *specs;     /* what the model was built from */
  fm_layer *layers;
  float *params, *grads, *state;
} model;

/* Training defaults of each kind, chosen to reach the reference accuracies on the 10k test set
 * (see the README); a constructor's l2 replaces the weight decay. */
static defaults kind_defaults(const char *kind) {
  defaults d = {.epochs = 10, .batch = 64, .lr = 1e-3, .optimizer = FM_OPTIM_ADAM,
                .schedule = FM_SCHED_COSINE};
  if (strcmp(kind, "LogReg") == 0) d.lr = 3e-3;
  if (strcmp(kind, "MLP") == 0) d.epochs = 30;
  if (strcmp(kind, "CNN") == 0) d.epochs = 15, d.batch = 32;
  if (strcmp(kind, "ResNet") == 0) {
    /* He et al.'s CIFAR recipe, shortened: SGD with Nesterov momentum, warm-up then cosine */
    d.epochs = 50, d.batch = 128, d.lr = 0.1, d.optimizer = FM_OPTIM_SGD, d.nesterov = 1;
    d.weight_decay = 5e-4, d.warmup = 2;
    d.augment = (fm_augment){.crop = 2, .flip = 1, .erase = 0.5f};
  }
  if (strcmp(kind, "MobileNet") == 0) {
    /* the ResNet's recipe, 40 epochs */
    d.epochs = 40, d.batch = 128, d.lr = 0.1, d.optimizer = FM_OPTIM_SGD, d.nesterov = 1;
    d.weight_decay = 5e-4, d.warmup = 2;
    d.augment = (fm_augment){.crop = 2, .flip = 1, .erase = 0.5f};
  }
  return d;
}

/* The defaults as the table model.defaults gives: fit's option names and values. */
static void push_defaults(lua_State *L, const defaults *d) {
  lua_createtable(L, 0, 10);
  lua_pushinteger(L, d->epochs);
  lua_setfield(L, -2, "epochs");
  lua_pushinteger(L, d->batch);
  lua_setfield(L, -2, "batch");
  lua_pushnumber(L, d->lr);
  lua_setfield(L, -2, "lr");
  lua_pushstring(L, d->optimizer == FM_OPTIM_SGD ? "sgd" : d->decoupled ? "adamw" : "adam");
  lua_setfield(L, -2, "optimizer");
  if (d->optimizer == FM_OPTIM_SGD) {
    lua_pushboolean(L, d->nesterov);
    lua_setfield(L, -2, "nesterov");
  }
  static const struct { fm_sched_kind kind; const char *name; } sched[] = {
      {FM_SCHED_CONSTANT, "constant"}, {FM_SCHED_STEP, "step"}, {FM_SCHED_COSINE, "cosine"},
      {FM_SCHED_ONECYCLE, "onecycle"}};
  for (size_t k = 0; k < sizeof sched / sizeof sched[0]; k++)
    if (sched[k].kind == d->schedule) lua_pushstring(L, sched[k].name);
  lua_setfield(L, -2, "schedule");
  lua_pushnumber(L, d->weight_decay);
  lua_setfield(L, -2, "weight_decay");
  lua_pushnumber(L, d->warmup);
  lua_setfield(L, -2, "warmup");
  lua_pushnumber(L, d->label_smoothing);
  lua_setfield(L, -2, "label_smoothing");
  if (fm_augment_active(&d->augment)) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, d->augment.crop);
    lua_setfield(L, -2, "crop");
    lua_pushboolean(L, d->augment.flip);
    lua_setfield(L, -2, "flip");
    lua_pushnumber(L, d->augment.erase);
    lua_setfield(L, -2, "erase");
  } else {
    lua_pushboolean(L, 0);
  }
  lua_setfield(L, -2, "augment");
}

static model *check_model(lua_State *L, int arg) { return luaL_checkudata(L, arg, LFM_MODEL); }

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A block of count elements of `size` bytes, 64-byte aligned, owned by a userdata pushed on the
 * stack. Raises naming `what` when the byte count would not fit a size_t (Lua itself raises when
 * the memory cannot be had). */
static void *push_array(lua_State *L, int64_t count, size_t size, const char *what) {
  int64_t bytes = 0;
  if (!fm_mul_within(count, (int64_t)size, (int64_t)(SIZE_MAX / 2) - ALIGN, &bytes))
    luaL_error(L, "%s: cannot allocate %f elements of %d bytes", what, (lua_Number)count,
               (int)size);
  uintptr_t p = (uintptr_t)lua_newuserdatauv(L, (size_t)bytes + ALIGN, 0);
  return (void *)((p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
}

static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

/* Pushes a new model of the given kind built from n specs: the specs, layer records,
 * parameters, gradients and state all live inside the userdata, where the garbage collector
 * counts them. Everything starts at zero; the caller initialises or loads. */
static model *new_model(lua_State *L, const char *kind, int in_h, int in_w, int in_c,
                        const fm_layer_spec *specs, int n) {
  if (n < 1 || n > FM_NET_MAX_LAYERS)
    luaL_error(L, "%s: 1 to %d layers, not %d", kind, FM_NET_MAX_LAYERS, n);
  /* A first build into scratch says how many floats the model needs. */
  fm_layer *scratch = push_array(L, n, sizeof(fm_layer), kind);
  fm_net net;
  if (fm_net_build(&net, scratch, in_h, in_w, in_c, specs, n) != FM_OK) lfm_engine_error(L, kind);
  lua_pop(L, 1);
  /* fm_net_build holds n_params and n_state to FM_NET_MAX_PARAMS, so this cannot overflow */
  size_t head = align_up(sizeof(model)), spec_bytes = align_up(sizeof(fm_layer_spec) * (size_t)n);
  size_t layer_bytes = align_up(sizeof(fm_layer) * (size_t)n);
  size_t floats = (size_t)net.n_params * 2 + (size_t)net.n_state;
  /* user values: 1 info (strings kept in saved files), 2 the optimizer's state between fits */
  model *m = lua_newuserdatauv(L, head + spec_bytes + layer_bytes + ALIGN + floats * sizeof(float), 2);
  memset(m, 0, sizeof *m);
  snprintf(m->kind, sizeof m->kind, "%s", kind);
  m->n_layers = n;
  m->specs = (fm_layer_spec *)((char *)m + head);
  m->layers = (fm_layer *)((char *)m->specs + spec_bytes);
  memcpy(m->specs, specs, sizeof(fm_layer_spec) * (size_t)n);
  uintptr_t p = (uintptr_t)((char *)m->layers + layer_bytes);
  m->params = (float *)((p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
  m->grads = m->params + net.n_params;
  m->state = m->grads + net.n_params;
  memset(m->params, 0, floats * sizeof(float));
  if (fm_net_build(&m->net, m->layers, in_h, in_w, in_c, m->specs, n) != FM_OK)
    lfm_engine_error(L, kind);
  fm_net_bind(&m->net, m->params, m->grads, m->state);
  m->def = kind_defaults(kind);
  luaL_setmetatable(L, LFM_MODEL);
  lua_newtable(L); /* user value 1: info (strings kept in saved files) */
  lua_setiuservalue(L, -2, 1);
  return m;
}

/* ---- checking values ---- */

/* Pushes a short description of the value at idx for an error message: numbers and strings as
 * they are, anything else by its type (no __tostring of the caller's runs). */
static const char *describe(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return lua_pushfstring(L, "%I", lua_tointeger(L, idx));
      return lua_pushfstring(L, "%f", lua_tonumber(L, idx));
    case LUA_TSTRING: return lua_pushfstring(L, "'%s'", lua_tostring(L, idx));
    default: return lua_pushstring(L, luaL_typename(L, idx));
  }
}

/* The value at idx as an integer in [lo, hi]: a number with an integral value (8.0 is 8; 8.7,
 * NaN, strings and 2^63 are not). 0 when it is not. */
static int integer_in(lua_State *L, int idx, lua_Integer lo, lua_Integer hi, lua_Integer *v) {
  int isnum = 0;
  *v = 0;
  if (lua_type(L, idx) == LUA_TNUMBER) *v = lua_tointegerx(L, idx, &isnum);
  return isnum && *v >= lo && *v <= hi;
}

/* A number option that must lie in [lo, hi] (the ends excluded as `open` says: 1 low, 2 high);
 * NaN never does. The error names the key, the range and the value. */
enum { OPEN_LO = 1, OPEN_HI = 2 };
static double opt_number(lua_State *L, int opts, const char *key, double def, double lo,
                         double hi, int open) {
  double v = lfm_optfield_num(L, opts, key, def);
  int ok = (open & OPEN_LO ? v > lo : v >= lo) && (open & OPEN_HI ? v < hi : v <= hi);
  if (!ok) {
    char range[96];
    snprintf(range, sizeof range, "%c%g, %g%c, got %g", open & OPEN_LO ? '(' : '[', lo, hi,
             open & OPEN_HI ? ')' : ']', v);
    luaL_error(L, "option '%s' must be a number in %s", key, range);
  }
  return v;
}

/* A path argument: a string without embedded zeros (the C library would stop at the first). */
static const char *check_path(lua_State *L, int arg) {
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  if (strlen(path) != len) luaL_argerror(L, arg, "a file name cannot hold a zero byte");
  return path;
}

/* The table at idx must be a plain list: keys 1..#t only (read raw, so no __len or __index of the
 * caller's runs). Returns its length. */
static int check_list(lua_State *L, int idx, const char *what, int max) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_Integer k;
    lua_pop(L, 1);
    if (!integer_in(L, -1, 1, n, &k))
      luaL_error(L, "%s must be a list, but it has the key %s", what, describe(L, -1));
  }
  if (n > max) luaL_error(L, "%s: at most %d entries, not %I", what, max, n);
  return (int)n;
}

/* ---- building: layer descriptions from Lua ----
 * A layer is a name ("relu") or a table: the name first, then the kind's fields by position or by
 * key: {"conv2d", 32, 3, padding = "same", stride = 2}. Every kind's fields come from the engine's
 * table (fm_layer_type); besides them any layer takes `name` (a string later layers can give as an
 * input) and `inputs` (a list of earlier layers: names, 1-based indices, negative offsets -1 for
 * the layer before, or "input" for the network input). Tables are read raw: no __index or __len
 * of the caller's runs. Unknown keys, wrong types, fractional or out-of-range values are errors
 * naming the layer, the key and the valid keys. */

/* "dense, conv2d, ..." from the engine's table. */
static const char *known_layers(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int k = 1; k < FM_LAYER_KIND_END; k++) {
    if (k > 1) luaL_addstring(&b, ", ");
    luaL_addstring(&b, fm_layer_kind_name((fm_layer_kind)k));
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* "units, bias, init, name, inputs": the keys a kind takes. */
static const char *known_fields(lua_State *L, const fm_layer_type *t) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const fm_field *f = t->fields; f->name; f++) {
    luaL_addstring(&b, f->name);
    luaL_addstring(&b, ", ");
  }
  luaL_addstring(&b, "name, inputs");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

static const fm_field *field_at(const fm_layer_type *t, lua_Integer position) {
  for (const fm_field *f = t->fields; f->name; f++)
    if (f->position == position) return f;
  return NULL;
}

static const fm_field *field_named(const fm_layer_type *t, const char *name) {
  for (const fm_field *f = t->fields; f->name; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

/* The value at the top of the stack as an integer in [lo, hi], for key `what` of layer i. */
static int layer_int(lua_State *L, int i, const fm_layer_type *t, const char *what, double lo,
                     double hi) {
  lua_Integer v;
  if (!integer_in(L, -1, (lua_Integer)lo, (lua_Integer)hi, &v)) {
    const char *got = describe(L, -1);
    luaL_error(L, "layers[%d] (%s): %s must be an integer from %I to %I, got %s", i, t->name,
               what, (lua_Integer)lo, (lua_Integer)hi, got);
  }
  return (int)v;
}

/* The value at the top of the stack into field f of s. */
static void set_field(lua_State *L, int i, const fm_layer_type *t, const fm_field *f,
                      fm_layer_spec *s) {
  char *at = (char *)s + f->offset;
  int iv = 0;
  switch (f->type) {
    case FM_FIELD_INT: iv = layer_int(L, i, t, f->name, f->lo, f->hi); break;
    case FM_FIELD_FLOAT: {
      lua_Number v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
      /* The dropout rate stops short of 1. */
      int open_hi = f->offset == offsetof(fm_layer_spec, rate);
      if (!(v >= f->lo && (open_hi ? v < f->hi : v <= f->hi))) {
        const char *got = describe(L, -1);
        char range[64];
        snprintf(range, sizeof range, "[%g, %g%c", f->lo, f->hi, open_hi ? ')' : ']');
        luaL_error(L, "layers[%d] (%s): %s must be a number in %s, got %s", i, t->name, f->name,
                   range, got);
      }
      float fv = (float)v;
      memcpy(at, &fv, sizeof fv);
      return;
    }
    case FM_FIELD_KERNEL:
      if (lua_type(L, -1) == LUA_TTABLE) {
        if (lua_rawlen(L, -1) != 2)
          luaL_error(L, "layers[%d] (%s): kernel must be a size or {height, width}", i, t->name);
        lua_rawgeti(L, -1, 1);
        s->kh = layer_int(L, i, t, "kernel height", f->lo, f->hi);
        lua_rawgeti(L, -2, 2);
        s->kw = layer_int(L, i, t, "kernel width", f->lo, f->hi);
        lua_pop(L, 2);
      } else {
        s->kh = s->kw = layer_int(L, i, t, f->name, f->lo, f->hi);
      }
      return;
    case FM_FIELD_PADDING: {
      const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (strcmp(v, "same") != 0 && strcmp(v, "valid") != 0)
        luaL_error(L, "layers[%d] (%s): padding must be \"valid\" or \"same\", not %s", i,
                   t->name, describe(L, -1));
      iv = strcmp(v, "same") == 0;
      break;
    }
    case FM_FIELD_BIAS:
      if (!lua_isboolean(L, -1))
        luaL_error(L, "layers[%d] (%s): bias must be true or false, got %s", i, t->name,
                   describe(L, -1));
      iv = !lua_toboolean(L, -1);
      break;
    case FM_FIELD_INIT: {
      static const char *const inits[] = {"auto", "he", "glorot", "zeros", NULL};
      const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      int k = 0;
      while (inits[k] && strcmp(inits[k], v) != 0) k++;
      if (!inits[k])
        luaL_error(L, "layers[%d] (%s): init must be \"auto\", \"he\", \"glorot\" or \"zeros\", "
                   "not %s", i, t->name, describe(L, -1));
      iv = k; /* FM_INIT_AUTO, HE, GLOROT, ZERO in this order */
      break;
    }
  }
  memcpy(at, &iv, sizeof iv);
}

/* One input reference at the top of the stack, for layer i (1-based), names in the table at
 * `names` (name -> 1-based index). Returns the 0-based layer or FM_NET_INPUT. */
static int resolve_input(lua_State *L, int i, int names) {
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *ref = lua_tostring(L, -1);
    if (strcmp(ref, "input") == 0) return FM_NET_INPUT;
    lua_pushvalue(L, -1);
    if (lua_rawget(L, names) != LUA_TNUMBER)
      luaL_error(L, "layers[%d]: input '%s' names no earlier layer", i, ref);
    int at = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return at - 1;
  }
  lua_Integer k;
  if (!integer_in(L, -1, -(lua_Integer)i, i - 1, &k) || k == 0)
    luaL_error(L, "layers[%d]: an input is a name, \"input\", an earlier layer's index (1 to %d) "
               "or an offset (-1 the layer before), not %s", i, i - 1, describe(L, -1));
  lua_Integer at = k > 0 ? k : i + k; /* 1-based; 0 means the network input */
  return at == 0 ? FM_NET_INPUT : (int)at - 1;
}

/* `inputs` of layer i at the top of the stack into s. */
static void layer_inputs(lua_State *L, int i, const fm_layer_type *t, int names, fm_layer_spec *s) {
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_error(L, "layers[%d] (%s): inputs must be a list of earlier layers, got %s", i, t->name,
               luaL_typename(L, -1));
  int list = lua_gettop(L);
  int n = check_list(L, list, "inputs", FM_NET_MAX_INPUTS);
  if (n < 1) luaL_error(L, "layers[%d] (%s): inputs is empty", i, t->name);
  s->n_inputs = n;
  for (int k = 1; k <= n; k++) {
    lua_rawgeti(L, list, k);
    s->inputs[k - 1] = resolve_input(L, i, names);
    lua_pop(L, 1);
  }
}

/* `name` of layer i at the top of the stack, recorded in `names`. */
static void layer_name_key(lua_State *L, int i, const fm_layer_type *t, int names) {
  if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "input") == 0)
    luaL_error(L, "layers[%d] (%s): name must be a string other than \"input\", got %s", i,
               t->name, describe(L, -1));
  lua_pushvalue(L, -1);
  if (lua_rawget(L, names) != LUA_TNIL)
    luaL_error(L, "layers[%d] (%s): the name '%s' is taken by layers[%d]", i, t->name,
               lua_tostring(L, -2), (int)lua_tointeger(L, -1));
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_pushinteger(L, i);
  lua_rawset(L, names);
}

/* Layer i (1-based) at stack index idx into s; `names` maps names to layers. */
static void parse_layer(lua_State *L, int idx, int i, int names, fm_layer_spec *s) {
  memset(s, 0, sizeof *s);
  int top = lua_gettop(L);
  int is_table = lua_type(L, idx) == LUA_TTABLE;
  if (is_table)
    lua_rawgeti(L, idx, 1);
  else
    lua_pushvalue(L, idx);
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "layers[%d]: a layer name or a table like {\"dense\", 128} expected, got %s", i,
               is_table ? describe(L, -1) : luaL_typename(L, idx));
  const char *name = lua_tostring(L, -1);
  if (strcmp(name, "conv") == 0) name = "conv2d"; /* the short name Keras users type */
  const fm_layer_type *t = fm_layer_type_named(name);
  if (!t) luaL_error(L, "layers[%d]: unknown layer '%s' (known: %s)", i, name, known_layers(L));
  s->kind = t->kind;
  if (is_table) {
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_Integer pos;
      if (integer_in(L, -2, 1, 1, &pos)) { /* the name */
        lua_pop(L, 1);
        continue;
      }
      const fm_field *f = NULL;
      const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (integer_in(L, -2, 2, len, &pos) && (f = field_at(t, pos)) != NULL) {
        /* a value by position */
      } else if (key && (f = field_named(t, key)) != NULL) {
        if (f->position && f->position <= len)
          luaL_error(L, "layers[%d] (%s): '%s' is given twice, by position and by key", i,
                     t->name, key);
      } else if (key && strcmp(key, "name") == 0) {
        layer_name_key(L, i, t, names);
      } else if (key && strcmp(key, "inputs") == 0) {
        layer_inputs(L, i, t, names, s);
      } else {
        const char *bad = describe(L, -2);
        const char *valid = known_fields(L, t);
        luaL_error(L, "layers[%d] (%s): unknown key %s (valid keys: %s)", i, t->name, bad, valid);
      }
      if (f) set_field(L, i, t, f, s);
      lua_settop(L, top + 2); /* the name and the key */
    }
  }
  /* Fields a kind cannot do without. */
  if ((t->kind == FM_LAYER_DENSE || t->kind == FM_LAYER_CONV2D) && s->units == 0)
    luaL_error(L, "layers[%d]: %s needs %s, e.g. %s", i, t->name,
               t->kind == FM_LAYER_DENSE ? "units" : "filters",
               t->kind == FM_LAYER_DENSE ? "{\"dense\", 128}" : "{\"conv2d\", 32, 3}");
  if (t->kind == FM_LAYER_CONV2D && s->kh == 0) s->kh = s->kw = 3;
  if (t->kind == FM_LAYER_DROPOUT && !is_table)
    luaL_error(L, "layers[%d]: dropout needs rate, e.g. {\"dropout\", 0.5}", i);
  lua_settop(L, top);
}

/* Builds a model of kind `kind` from the list of layers at index `list`; pushes it. */
static model *model_from_list(lua_State *L, const char *kind, int list) {
  int n = check_list(L, list, lua_pushfstring(L, "%s: layers", kind), FM_NET_MAX_LAYERS);
  lua_pop(L, 1);
  if (n < 1) luaL_error(L, "%s: 1 to %d layers, not %d", kind, FM_NET_MAX_LAYERS, n);
  fm_layer_spec *specs = push_array(L, n, sizeof(fm_layer_spec), kind);
  lua_newtable(L); /* names */
  int names = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    parse_layer(L, lua_gettop(L), i, names, &specs[i - 1]);
    lua_pop(L, 1);
  }
  model *m = new_model(L, kind, 28, 28, 1, specs, n);
  lua_replace(L, names - 1); /* the model takes the specs' place */
  lua_settop(L, names - 1);
  return m;
}

/* A spec list built in C for the preset models. */
typedef struct spec_list {
  fm_layer_spec s[32];
  int n;
} spec_list;

static void add_layer(spec_list *d, fm_layer_kind kind, int units, float rate) {
  fm_layer_spec *s = &d->s[d->n++];
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->units = units;
  s->rate = rate;
}

/* l2 of the constructors: the default weight decay of fit. */
static double l2_option(lua_State *L, int opts) {
  return opt_number(L, opts, "l2", 0.0, 0.0, FLT_MAX, 0);
}

/* fm.LogReg{l2 =}: one dense layer from the 784 pixels to the 10 classes, starting from zero. */
static int model_logreg(lua_State *L) {
  int opts = lfm_optopts(L, 1);
  static const char *const known[] = {"l2", "seed", NULL}; /* seed: accepted, nothing random */
  lfm_check_options(L, opts, "LogReg", known);
  double l2 = l2_option(L, opts);
  /* checked like everywhere else, but no number is drawn from fm.seed's generator when it is
   * absent (that would change what every later default seed is) */
  int has_seed = opts && lua_getfield(L, opts, "seed") != LUA_TNIL;
  if (opts) lua_pop(L, 1);
  if (has_seed) lfm_optfield_seed(L, opts, "seed", lfm_rng());
  spec_list d = {.n = 0};
  add_layer(&d, FM_LAYER_DENSE, FM_CLASSES, 0);
  model *m = new_model(L, "LogReg", 28, 28, 1, d.s, d.n);
  m->def.weight_decay = l2;
  /* Zero weights, as logistic regression usually starts: a pixel that is rarely lit then keeps a
   * weight near 0 instead of its random start, and the weight maps show what was learnt (the
   * parameters of a new model are zero). */
  return 1;
}

/* fm.MLP{hidden = {256, 128}, dropout = 0.2, l2 =, seed =} */
static int model_mlp(lua_State *L) {
  int opts = lfm_optopts(L, 1);
  static const char *const known[] = {"hidden", "dropout", "l2", "seed", NULL};
  lfm_check_options(L, opts, "MLP", known);
  double dropout = opt_number(L, opts, "dropout", 0.2, 0.0, 1.0, OPEN_HI);
  double l2 = l2_option(L, opts);
  uint64_t seed = lfm_optfield_seed(L, opts, "seed", lfm_rng());
  enum { MAX_HIDDEN = 8 };
  int hidden[MAX_HIDDEN] = {256, 128}, nh = 2;
  if (opts && lua_getfield(L, opts, "hidden") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "MLP: hidden must be a list of layer sizes, got %s",
                        luaL_typename(L, -1));
    int list = lua_gettop(L);
    nh = check_list(L, list, "MLP: hidden", MAX_HIDDEN);
    for (int i = 0; i < nh; i++) {
      lua_Integer v;
      lua_rawgeti(L, list, i + 1);
      if (!integer_in(L, -1, 1, FM_NET_MAX_DIM, &v))
        return luaL_error(L, "MLP: hidden[%d] must be an integer from 1 to %d, got %s", i + 1,
                          FM_NET_MAX_DIM, describe(L, -1));
      hidden[i] = (int)v;
      lua_pop(L, 1);
    }
  }
  if (opts) lua_pop(L, 1);
  spec_list d = {.n = 0};
  for (int i = 0; i < nh; i++) {
    add_layer(&d, FM_LAYER_DENSE, hidden[i], 0);
    add_layer(&d, FM_LAYER_RELU, 0, 0);
    if (dropout > 0) add_layer(&d, FM_LAYER_DROPOUT, 0, (float)dropout);
  }
  add_layer(&d, FM_LAYER_DENSE, FM_CLASSES, 0);
  model *m = new_model(L, "MLP", 28, 28, 1, d.s, d.n);
  m->def.weight_decay = l2;
  fm_net_init(&m->net, seed);
  return 1;
}

/* fm.Model{layers = {...}, kind =, l2 =, seed =}: any network of layers (see parse_layer; the
 * containers of fmnist.nets are compiled to such lists in Lua first). fm.CNN{layers =, l2 =,
 * seed =} is the same with kind "CNN" and, without layers, the reference net: conv 3x3x32, ReLU,
 * max-pool -> conv 3x3x64, ReLU, max-pool -> dense 128, ReLU, dropout 0.5 -> dense 10. */
static int model_graph(lua_State *L, const char *kind, int require_layers) {
  int opts = lfm_optopts(L, 1);
  static const char *const known[] = {"layers", "kind", "l2", "seed", NULL};
  lfm_check_options(L, opts, kind, known);
  double l2 = l2_option(L, opts);
  /* without l2 the kind's own weight decay stays (the ResNet and MobileNet recipes have one) */
  int has_l2 = opts && lua_getfield(L, opts, "l2") != LUA_TNIL;
  if (opts) lua_pop(L, 1);
  uint64_t seed = lfm_optfield_seed(L, opts, "seed", lfm_rng());
  if (opts && lua_getfield(L, opts, "kind") != LUA_TNIL) {
    size_t len;
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!k || len < 1 || len > 15 || strlen(k) != len || strpbrk(k, "\n\r="))
      return luaL_error(L, "%s: kind must be a name of 1 to 15 characters, got %s", kind,
                        describe(L, -1));
    kind = k; /* anchored at this stack slot until the model is built */
  } else {
    lua_settop(L, opts ? opts : 1);
    lua_pushnil(L);
  }
  model *m;
  if (opts && lua_getfield(L, opts, "layers") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "%s: layers must be a list of layers, got %s", kind,
                        luaL_typename(L, -1));
    m = model_from_list(L, kind, lua_gettop(L));
  } else if (require_layers) {
    return luaL_error(L, "%s: layers = {...} is required", kind);
  } else {
    fm_layer_spec specs[FM_REFERENCE_CNN_LAYERS];
    int n = fm_reference_cnn(specs);
    m = new_model(L, kind, 28, 28, 1, specs, n);
  }
  if (has_l2) m->def.weight_decay = l2;
  fm_net_init(&m->net, seed);
  return 1;
}

static int model_cnn(lua_State *L) { return model_graph(L, "CNN", 0); }
static int model_generic(lua_State *L) { return model_graph(L, "Model", 1); }

/* ---- workspace and inputs ---- */

static int thread_option(lua_State *L, int opts) {
  return (int)lfm_optfield_range(L, opts, "threads", fm_default_threads(), 1, FM_NET_MAX_SHARDS);
}

/* Pushes a workspace userdata and fills w. */
static void push_work(lua_State *L, const model *m, fm_work *w, int batch, int threads,
                      const char *fname) {
  size_t bytes = fm_work_bytes(&m->net, batch, threads);
  if (bytes == 0) lfm_engine_error(L, fname);
  void *mem = push_array(L, (int64_t)bytes, 1, fname);
  if (fm_work_init(w, &m->net, batch, threads, mem, bytes) != FM_OK) lfm_engine_error(L, fname);
}

/* A tensor of images for the model: its element count a multiple of the input size (784):
 * 784, 28x28, N x 784, N x 28 x 28, N x 28 x 28 x 1. Returns the number of images. */
static int64_t tensor_images(lua_State *L, const model *m, fm_tensor *t, const char *fname) {
  int64_t in = m->net.in_size;
  if (t->numel == 0 || t->numel % in != 0) {
    char s[64];
    luaL_error(L, "%s: a %s tensor is not images of %d x %d (%I values each)", fname,
               fm_shape_str(t, s, sizeof s), m->net.in_h, m->net.in_w, (lua_Integer)in);
  }
  return t->numel / in;
}

/* Images per call of the engine: a few images should not pay for a workspace of 256. */
static int chunk_for(int64_t n) { return n < PREDICT_BATCH ? (int)(n ? n : 1) : PREDICT_BATCH; }

/* Runs the model over a dataset or a tensor; pushes probabilities (n x classes) or predictions. */
/* A tensor shaped like one image (784, 28 x 28 or 28 x 28 x 1), rather than a batch of them. */
static int one_image(const model *m, const fm_tensor *t) {
  const fm_net *net = &m->net;
  if (t->ndim == 1) return t->shape[0] == net->in_size;
  if (t->ndim == 2) return t->shape[0] == net->in_h && t->shape[1] == net->in_w && net->in_c == 1;
  return t->ndim == 3 && t->shape[0] == net->in_h && t->shape[1] == net->in_w &&
         t->shape[2] == net->in_c;
}

static int predict_common(lua_State *L, int want_probs, const char *fname) {
  model *m = check_model(L, 1);
  fm_dataset *d = lfm_todataset(L, 2);
  fm_tensor *t = d ? NULL : lfm_totensor(L, 2);
  if (!d && !t) return luaL_typeerror(L, 2, "fmnist.Dataset or fmnist.Tensor");
  int opts = lfm_optopts(L, 3);
  static const char *const known[] = {"threads", NULL};
  lfm_check_options(L, opts, fname, known);
  int threads = thread_option(L, opts);
  int64_t n = d ? d->n : tensor_images(L, m, t, fname);
  int chunk = chunk_for(n);
  fm_work w;
  push_work(L, m, &w, chunk, threads, fname);
  uint8_t *pred = push_array(L, n + 1, 1, fname);
  float *probs = NULL;
  if (want_probs) {
    int64_t shape[2] = {n, m->net.classes};
    probs = lfm_newtensor(L, 2, shape)->data;
  }
  int rc;
  if (d) {
    float *x = push_array(L, (int64_t)chunk * m->net.in_size, sizeof(float), fname);
    uint8_t *y = push_array(L, chunk, 1, fname);
    rc = fm_eval_dataset(&m->net, &w, d, x, y, chunk, probs, pred, NULL, NULL);
    lua_pop(L, 2);
  } else {
    rc = fm_net_predict(&m->net, &w, t->data, n, probs, pred, NULL, NULL, NULL);
  }
  if (rc != FM_OK) return lfm_engine_error(L, fname);
  if (want_probs) return 1;
  if (t && one_image(m, t)) {
    lua_pushinteger(L, pred[0]); /* one image: its class id itself */
    return 1;
  }
  int64_t shape[1] = {n};
  fm_tensor *out = lfm_newtensor(L, 1, shape);
  for (int64_t i = 0; i < n; i++) out->data[i] = pred[i];
  return 1;
}

static int model_predict(lua_State *L) { return predict_common(L, 0, "predict"); }
static int model_predict_proba(lua_State *L) { return predict_common(L, 1, "predict_proba"); }

/* Loss and accuracy of the model on a dataset, and (when confusion is not NULL) its confusion
 * matrix, net->classes x net->classes. Leaves the stack as it was. */
static void evaluate_dataset(lua_State *L, model *m, const fm_dataset *d, int threads,
                             const char *fname, double *loss, double *accuracy,
                             int64_t *confusion) {
  int chunk = chunk_for(d->n), top = lua_gettop(L);
  int64_t k = m->net.classes;
  fm_work w;
  push_work(L, m, &w, chunk, threads, fname);
  float *x = push_array(L, (int64_t)chunk * m->net.in_size, sizeof(float), fname);
  uint8_t *y = push_array(L, chunk, 1, fname);
  uint8_t *pred = push_array(L, chunk, 1, fname);
  int64_t *counts = confusion ? confusion : push_array(L, k * k, sizeof(int64_t), fname);
  double loss_sum = 0;
  int64_t correct = 0;
  if (fm_eval_confusion(&m->net, &w, d, x, y, pred, chunk, counts, &loss_sum, &correct) != FM_OK)
    lfm_engine_error(L, fname);
  *loss = d->n ? loss_sum / (double)d->n : NAN;
  *accuracy = d->n ? (double)correct / (double)d->n : NAN;
  lua_settop(L, top);
}

/* model:evaluate(ds [, {threads =}]) -> result (accuracy, loss, confusion of classes x classes,
 * per-class scores, report()). The model's classes may outnumber the dataset's labels. */
static int model_evaluate(lua_State *L) {
  model *m = check_model(L, 1);
  const fm_dataset *d = lfm_checkdataset(L, 2);
  int opts = lfm_optopts(L, 3);
  static const char *const known[] = {"threads", NULL};
  lfm_check_options(L, opts, "evaluate", known);
  int threads = thread_option(L, opts);
  int64_t k = m->net.classes;
  int64_t *confusion = push_array(L, k * k, sizeof(int64_t), "evaluate");
  double loss, accuracy;
  evaluate_dataset(L, m, d, threads, "evaluate", &loss, &accuracy, confusion);
  lfm_push_result(L, confusion, (int)k, loss);
  /* The dataset's own class names, where it has them for the model's classes (checked: a
   * dataset's fields are read through its metatable, which debug code could replace). */
  int result = lua_gettop(L);
  if (lua_getfield(L, 2, "classes") == LUA_TTABLE) {
    int names = lua_gettop(L);
    lua_getfield(L, result, "classes");
    int mine = lua_gettop(L);
    for (lua_Integer c = 1; c <= k; c++) {
      if (lua_rawgeti(L, names, c) == LUA_TSTRING)
        lua_rawseti(L, mine, c);
      else
        lua_pop(L, 1);
    }
  }
  lua_settop(L, result);
  return 1;
}

/* ---- training ---- */

/* Ctrl-C while fit runs. The handler sets a flag, which stops the C training loop after the
 * current batch, and (as lua.c does) a hook on the Lua state of the innermost fit, which stops Lua
 * code such as a runaway on_epoch: setting a hook is the one thing a signal handler may do to a
 * Lua state. fit_state is that state, NULL when no fit runs. */
static volatile sig_atomic_t interrupted;
static lua_State *volatile fit_state;

/* Raises in Lua code only: C functions (the guard's __close among them) run to their end, so the
 * guard always restores the handler. The hook stays until fit ends, so a callback that catches
 * the error is stopped again at its next instruction. */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  if (lua_getinfo(L, "S", ar) && ar->what[0] == 'C') return;
  luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
  lua_State *L = fit_state;
  if (L) lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* The handler it replaced, the fit it nests in and the hook it may replace are kept in a
 * to-be-closed userdata, so that all come back however fit ends: a return, an engine error, an
 * error in the user's on_epoch, or an interruption. */
#define LFM_SIGGUARD "fmnist.SigintGuard"
typedef struct sigint_guard {
  struct sigaction old;
  lua_State *L, *outer; /* this fit's state; the enclosing fit's (a fit inside on_epoch) */
  lua_Hook old_hook;
  int old_mask, old_count;
  int active;
} sigint_guard;

static void sigint_guard_restore(sigint_guard *g, int with_hook) {
  if (!g->active) return;
  sigaction(SIGINT, &g->old, NULL);
  fit_state = g->outer;
  if (with_hook && lua_gethook(g->L) == interrupt_hook)
    lua_sethook(g->L, g->old_hook, g->old_mask, g->old_count);
  g->active = 0;
}

static int sigint_guard_close(lua_State *L) {
  sigint_guard_restore(luaL_checkudata(L, 1, LFM_SIGGUARD), 1);
  return 0;
}

/* Only when the guard was never closed, which fit (a C function that cannot yield) does not
 * allow; its Lua state may be gone by then, so the hook is left alone. */
static int sigint_guard_gc(lua_State *L) {
  sigint_guard_restore(luaL_checkudata(L, 1, LFM_SIGGUARD), 0);
  return 0;
}

/* Installs the handler and pushes its guard, marked to be closed. */
static void push_sigint_guard(lua_State *L) {
  sigint_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
  memset(g, 0, sizeof *g);
  if (luaL_newmetatable(L, LFM_SIGGUARD)) {
    lua_pushcfunction(L, sigint_guard_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, sigint_guard_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  g->L = L;
  g->outer = fit_state;
  g->old_hook = lua_gethook(L);
  g->old_mask = lua_gethookmask(L);
  g->old_count = lua_gethookcount(L);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  interrupted = 0;
  fit_state = L;
  if (sigaction(SIGINT, &sa, &g->old) == 0)
    g->active = 1;
  else
    fit_state = g->outer;
  lua_toclose(L, -1);
}

typedef struct fit_ctx {
  lua_State *L;
  int epoch, epochs;
  int64_t images_done, total;
  double t_start, t_last_draw;
  double loss_sum;
  int64_t correct, seen;
  int bar; /* draw a progress bar (stderr is a terminal and verbose) */
} fit_ctx;

static void format_eta(char *buf, size_t size, double s) {
  if (s >= 3600)
    snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
  else if (s >= 60)
    snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else
    snprintf(buf, size, "%.0fs", s);
}

static void draw_bar(fit_ctx *c, int64_t b, int64_t nb) {
  double t = now(), el = t - c->t_start;
  double rate = el > 0 ? (double)c->seen / el : 0;
  char eta[32];
  format_eta(eta, sizeof eta, rate > 0 ? (double)(c->total - c->seen) / rate : 0);
  int width = 24, filled = (int)(width * (b + 1) / nb);
  char bar[32];
  for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : '.');
  bar[width] = '\0';
  fprintf(stderr, "\rEpoch %d/%d [%s] %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  ETA %s \033[K",
          c->epoch, c->epochs, bar, (long long)b + 1, (long long)nb,
          c->seen ? c->loss_sum / c->seen : 0.0, c->seen ? (double)c->correct / c->seen : 0.0, rate,
          eta);
  fflush(stderr);
  c->t_last_draw = t;
}

static int on_batch(void *ctx, int64_t b, int64_t nb, const fm_batch_stats *st) {
  fit_ctx *c = ctx;
  c->loss_sum += st->loss * st->n;
  c->correct += st->correct;
  c->seen += st->n;
  if (c->bar && (now() - c->t_last_draw > 0.1 || b + 1 == nb)) draw_bar(c, b, nb);
  return interrupted;
}

/* Appends v to the array field `key` of the table at idx. */
static void append(lua_State *L, int idx, const char *key, double v) {
  if (lua_getfield(L, idx, key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, idx, key);
  }
  lua_pushnumber(L, v);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
}

/* A string option that must be one of the NULL-terminated names; returns its index, or def when
 * absent. */
static int opt_choice(lua_State *L, int opts, const char *key, const char *const *names, int def) {
  if (!opts) return def;
  if (lua_getfield(L, opts, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return def;
  }
  for (int i = 0; lua_type(L, -1) == LUA_TSTRING && names[i]; i++)
    if (strcmp(lua_tostring(L, -1), names[i]) == 0) {
      lua_pop(L, 1);
      return i;
    }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; names[i]; i++) {
    lua_pushfstring(L, "%s\"%s\"", i ? ", " : "", names[i]);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  const char *valid = lua_tostring(L, -1), *got = describe(L, -2);
  return luaL_error(L, "fit: option '%s' must be one of %s, not %s", key, valid, got);
}

/* Options that only one choice of optimizer or schedule reads are errors with the others, rather
 * than silently ignored. */
static void opt_unused(lua_State *L, int opts, const char *key, const char *used_with) {
  if (!opts) return;
  if (lua_getfield(L, opts, key) != LUA_TNIL)
    luaL_error(L, "fit: option '%s' applies only with %s", key, used_with);
  lua_pop(L, 1);
}

/* optimizer =, lr =, momentum =, nesterov =, weight_decay =, and the schedule with its options. */
static void optimizer_options(lua_State *L, int opts, const model *m, int epochs, fm_optim *o) {
  /* "adamw" is Adam with decoupled weight decay */
  static const char *const optimizers[] = {"adam", "sgd", "adamw", NULL};
  static const fm_optim_kind kinds[] = {FM_OPTIM_ADAM, FM_OPTIM_SGD, FM_OPTIM_ADAM};
  int def_choice = m->def.optimizer == FM_OPTIM_SGD ? 1 : m->def.decoupled ? 2 : 0;
  int choice = opt_choice(L, opts, "optimizer", optimizers, def_choice);
  fm_optim_kind kind = kinds[choice];
  double lr = opt_number(L, opts, "lr", choice == def_choice ? m->def.lr : 0.01, 0.0, FLT_MAX,
                         OPEN_LO);
  if (kind == FM_OPTIM_ADAM) {
    opt_unused(L, opts, "momentum", "optimizer = \"sgd\"");
    opt_unused(L, opts, "nesterov", "optimizer = \"sgd\"");
    fm_optim_adam(o, lr);
    o->decoupled = choice == 2;
  } else {
    fm_optim_sgd(o, lr, opt_number(L, opts, "momentum", 0.9, 0.0, 1.0, OPEN_HI),
                 lfm_optfield_bool(L, opts, "nesterov", m->def.nesterov));
  }
  o->weight_decay = opt_number(L, opts, "weight_decay",
                               choice == def_choice ? m->def.weight_decay : 0.0, 0.0, FLT_MAX, 0);
  static const char *const schedules[] = {"constant", "step", "cosine", "onecycle", NULL};
  static const fm_sched_kind sched[] = {FM_SCHED_CONSTANT, FM_SCHED_STEP, FM_SCHED_COSINE,
                                        FM_SCHED_ONECYCLE};
  int def = 0;
  for (int k = 0; schedules[k]; k++)
    if (sched[k] == m->def.schedule) def = k;
  o->schedule.kind = sched[opt_choice(L, opts, "schedule", schedules, def)];
  /* a run shorter than the recipe's warms up for the same share of its epochs */
  double def_warmup = m->def.warmup;
  if (epochs < m->def.epochs) def_warmup *= (double)epochs / m->def.epochs;
  o->schedule.warmup_epochs =
      o->schedule.kind == FM_SCHED_ONECYCLE
          ? 0.0
          : opt_number(L, opts, "warmup", def_warmup, 0.0, epochs > 0 ? epochs : 1, OPEN_HI);
  if (o->schedule.kind == FM_SCHED_ONECYCLE) opt_unused(L, opts, "warmup", "a schedule other than \"onecycle\"");
  if (o->schedule.kind == FM_SCHED_COSINE || o->schedule.kind == FM_SCHED_ONECYCLE)
    o->schedule.total_epochs = epochs > 0 ? epochs : 1;
  if (o->schedule.kind == FM_SCHED_COSINE) {
    o->schedule.min_lr = opt_number(L, opts, "min_lr", 0.0, 0.0, lr, 0);
  } else {
    opt_unused(L, opts, "min_lr", "schedule = \"cosine\"");
  }
  if (o->schedule.kind == FM_SCHED_STEP) {
    o->schedule.step_epochs = opt_number(L, opts, "step_epochs", 5, 0.0, 1e9, OPEN_LO);
    o->schedule.gamma = opt_number(L, opts, "gamma", 0.1, 0.0, FLT_MAX, OPEN_LO);
  } else {
    opt_unused(L, opts, "step_epochs", "schedule = \"step\"");
    opt_unused(L, opts, "gamma", "schedule = \"step\"");
  }
  if (fm_optim_check(o) != FM_OK) lfm_engine_error(L, "fit");
}

/* verbose = true/false or 0 (silent), 1 (a progress bar on a terminal and a line per epoch), 2 (a
 * line per epoch only), as Keras. */
static int verbose_option(lua_State *L, int opts) {
  if (!opts) return 1;
  int t = lua_getfield(L, opts, "verbose");
  lua_pop(L, 1);
  if (t == LUA_TNIL) return 1;
  if (t == LUA_TBOOLEAN) return lfm_optfield_bool(L, opts, "verbose", 1);
  return (int)lfm_optfield_range(L, opts, "verbose", 1, 0, 2);
}

/* validation = a dataset, or a fraction held out of the training set (stratified, with the
 * seed): pushes the training and validation sets and returns the validation set's index, or 0
 * (nothing pushed) without validation. */
static int validation_option(lua_State *L, int opts, uint64_t seed) {
  if (!opts) return 0;
  if (lua_getfield(L, opts, "validation") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (lfm_todataset(L, -1)) {
    lua_pushvalue(L, 2);
    lua_insert(L, -2);
    return lua_gettop(L);
  }
  if (lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "fit: option 'validation' must be a dataset or a fraction in (0, 1), got %s",
               luaL_typename(L, -1));
  double frac = lua_tonumber(L, -1);
  if (!(frac > 0 && frac < 1))
    luaL_error(L, "fit: validation fraction must be in (0, 1), got %f", (lua_Number)frac);
  lua_pop(L, 1);
  /* ds:split(1 - frac, {seed = seed, stratify = true}) */
  lua_getfield(L, 2, "split");
  lua_pushvalue(L, 2);
  lua_pushnumber(L, 1 - frac);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, (lua_Integer)seed);
  lua_setfield(L, -2, "seed");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "stratify");
  lua_call(L, 3, 2);
  return lua_gettop(L);
}

/* augment = {crop =, flip =, erase =} (fm_augment.h), or false for none. */
static void augment_option(lua_State *L, int opts, const model *m, fm_augment *a) {
  *a = m->def.augment;
  if (!opts) return;
  int t = lua_getfield(L, opts, "augment");
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    memset(a, 0, sizeof *a);
    lua_pop(L, 1);
    return;
  }
  if (t != LUA_TTABLE)
    luaL_error(L, "fit: option 'augment' must be a table {crop =, flip =, erase =} or false, got %s",
               luaL_typename(L, -1));
  int tab = lua_gettop(L);
  static const char *const known[] = {"crop", "flip", "erase", NULL};
  lfm_check_options(L, tab, "fit: augment", known);
  memset(a, 0, sizeof *a);
  a->crop = (int)lfm_optfield_range(L, tab, "crop", 0, 0, m->net.in_h / 2);
  a->flip = lfm_optfield_bool(L, tab, "flip", 0);
  a->erase = (float)opt_number(L, tab, "erase", 0.0, 0.0, 1.0, 0);
  lua_pop(L, 1);
}

/* Everything fit reads from its options, checked before any training starts. */
typedef struct fit_options {
  int epochs, batch, threads, patience, restore_best, shuffle, verbose, reset;
  uint64_t seed;
  fm_optim opt;
  fm_augment augment;
  float label_smoothing;
  int train, val;  /* stack indices of the training and validation sets (val 0: none) */
  int on_epoch;    /* stack index of the callback, or 0 */
} fit_options;

static void fit_options_read(lua_State *L, int opts, const model *m, fit_options *fo) {
  static const char *const known[] = {"epochs", "batch", "lr", "optimizer", "momentum", "nesterov",
                                      "weight_decay", "schedule", "min_lr", "step_epochs", "gamma",
                                      "warmup", "label_smoothing", "augment", "reset",
                                      "seed", "validation", "patience", "restore_best", "on_epoch",
                                      "verbose", "threads", "shuffle", NULL};
  lfm_check_options(L, opts, "fit", known);
  memset(fo, 0, sizeof *fo);
  fo->epochs = (int)lfm_optfield_range(L, opts, "epochs", m->def.epochs, 0, 100000);
  fo->batch = (int)lfm_optfield_range(L, opts, "batch", m->def.batch, 1, FM_NET_MAX_BATCH);
  fo->threads = thread_option(L, opts);
  fo->patience = (int)lfm_optfield_range(L, opts, "patience", 0, 0, 100000);
  fo->restore_best = lfm_optfield_bool(L, opts, "restore_best", 1);
  fo->shuffle = lfm_optfield_bool(L, opts, "shuffle", 1);
  fo->verbose = verbose_option(L, opts);
  fo->seed = lfm_optfield_seed(L, opts, "seed", lfm_rng());
  fo->reset = lfm_optfield_bool(L, opts, "reset", 0);
  fo->label_smoothing =
      (float)opt_number(L, opts, "label_smoothing", m->def.label_smoothing, 0.0, 1.0, OPEN_HI);
  augment_option(L, opts, m, &fo->augment);
  optimizer_options(L, opts, m, fo->epochs, &fo->opt);
  if (opts && lua_getfield(L, opts, "on_epoch") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TFUNCTION)
      luaL_error(L, "fit: option 'on_epoch' must be a function, got %s", luaL_typename(L, -1));
    fo->on_epoch = lua_gettop(L);
  } else if (opts) {
    lua_pop(L, 1);
  }
  fo->val = validation_option(L, opts, fo->seed);
  fo->train = fo->val ? fo->val - 1 : 2;
}

/* The sets must fit the model before the first epoch, not after it. */
static void check_sets(lua_State *L, const model *m, const fm_dataset *train,
                       const fm_dataset *val) {
  const char *which[2] = {"training", "validation"};
  const fm_dataset *sets[2] = {train, val};
  for (int k = 0; k < 2; k++)
    if (sets[k] && (sets[k]->rows != m->net.in_h || sets[k]->cols != m->net.in_w || m->net.in_c != 1))
      luaL_error(L, "fit: %s images of %Ix%I do not fit the model's %dx%dx%d input", which[k],
                 (lua_Integer)sets[k]->rows, (lua_Integer)sets[k]->cols, m->net.in_h,
                 m->net.in_w, m->net.in_c);
  if (train->n == 0) luaL_error(L, "fit: the training set is empty");
  if (train->n > INT32_MAX)
    luaL_error(L, "fit: %I training images, at most %d", (lua_Integer)train->n, INT32_MAX);
}

/* Calls on_epoch(epoch, record): returns 1 when it returned false (stop), 2 when Ctrl-C
 * interrupted it. Its other errors go to the caller. */
static int call_on_epoch(lua_State *L, const fit_options *fo, int rec, int epoch) {
  lua_pushvalue(L, fo->on_epoch);
  lua_pushinteger(L, epoch);
  lua_pushvalue(L, rec);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    if (interrupted) {
      lua_pop(L, 1);
      return 2;
    }
    return lua_error(L);
  }
  int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  return stop;
}

/* The optimizer's state kept in the model between fits (as Keras keeps its optimizer): the state
 * floats and the step count, for the optimizer that made them. */
#define LFM_OPTSTATE "fmnist.OptimizerState"
typedef struct optim_state {
  fm_optim_kind kind;
  int64_t floats, steps;
  float data[]; /* 64-byte aligned by align_state */
} optim_state;

static float *state_data(optim_state *st) {
  uintptr_t p = (uintptr_t)st->data;
  return (float *)((p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
}

/* The model's kept state when it suits opt (same optimizer, same size) and reset is not asked;
 * otherwise a new zeroed one, kept in the model from now on. opt->t continues from it. */
static float *optimizer_state(lua_State *L, fm_optim *opt, int64_t n, int reset) {
  if (!reset && lua_getiuservalue(L, 1, 2) == LUA_TUSERDATA) {
    optim_state *st = luaL_testudata(L, -1, LFM_OPTSTATE);
    lua_pop(L, 1);
    if (st && st->kind == opt->kind && st->floats == n) {
      opt->t = st->steps;
      return state_data(st);
    }
  } else if (!reset) {
    lua_pop(L, 1);
  }
  int64_t bytes = 0;
  if (!fm_mul_within(n, sizeof(float), INT64_MAX / 2, &bytes))
    luaL_error(L, "fit: no optimizer state for %I parameters", (lua_Integer)n);
  optim_state *st = lua_newuserdatauv(L, sizeof(optim_state) + ALIGN + (size_t)bytes, 0);
  st->kind = opt->kind;
  st->floats = n;
  st->steps = 0;
  memset(state_data(st), 0, (size_t)bytes);
  luaL_setmetatable(L, LFM_OPTSTATE);
  lua_setiuservalue(L, 1, 2);
  opt->t = 0;
  return state_data(st);
}

static void optimizer_state_steps(lua_State *L, const fm_optim *opt) {
  lua_getiuservalue(L, 1, 2);
  optim_state *st = luaL_testudata(L, -1, LFM_OPTSTATE);
  if (st) st->steps = opt->t;
  lua_pop(L, 1);
}

/* model:fit(ds, {epochs =, batch =, lr =, optimizer =, momentum =, nesterov =, weight_decay =,
 *   schedule =, warmup =, label_smoothing =, augment =, reset =, seed =, validation =,
 *   patience =, restore_best =, on_epoch =, verbose =, threads =}) -> history
 * Ctrl-C stops training after the current batch (or interrupts on_epoch): fit then returns the
 * history of the complete epochs with history.interrupted = true and history.stopped saying where;
 * the model keeps all it learnt. */
static int model_fit(lua_State *L) {
  model *m = check_model(L, 1);
  lfm_checkdataset(L, 2);
  int opts = lfm_optopts(L, 3);
  fit_options fo;
  fit_options_read(L, opts, m, &fo);
  const fm_dataset *train = lfm_checkdataset(L, fo.train);
  const fm_dataset *val = fo.val ? lfm_checkdataset(L, fo.val) : NULL;
  check_sets(L, m, train, val);
  int epochs = fo.epochs, patience = fo.patience, verbose = fo.verbose;
  int batch = fo.batch > train->n ? (int)train->n : fo.batch;
  fm_optim opt = fo.opt;

  /* Memory: workspace, optimizer state, order, best weights. */
  fm_work w;
  push_work(L, m, &w, batch, fo.threads, "fit");
  w.augment = fo.augment;
  w.label_smoothing = fo.label_smoothing;
  int64_t state_n = fm_optim_state_floats(&opt, m->net.n_params);
  if (state_n < 0) return luaL_error(L, "fit: no optimizer state for %I parameters", (lua_Integer)m->net.n_params);
  float *state = optimizer_state(L, &opt, state_n, fo.reset);
  int32_t *order = push_array(L, train->n, sizeof(int32_t), "fit");
  /* the best epoch's weights and, for batch norm, its running statistics */
  const int64_t kept = m->net.n_params + m->net.n_state;
  float *best = patience > 0 && fo.restore_best && val ? push_array(L, kept, sizeof(float), "fit")
                                                       : NULL;
  fm_rng rng;
  fm_rng_seed(&rng, fo.seed);

  lua_newtable(L); /* history */
  int hist = lua_gettop(L);
  fit_ctx c = {.L = L, .epochs = epochs, .bar = verbose == 1 && isatty(2)};
  double best_loss = INFINITY;
  int best_epoch = 0, since_best = 0;
  char stop_reason[160] = "";
  int was_interrupted = 0;
  push_sigint_guard(L);
  int guard = lua_gettop(L);

  for (int e = 0; e < epochs; e++) {
    for (int64_t i = 0; i < train->n; i++) order[i] = (int32_t)i;
    if (fo.shuffle) fm_rng_shuffle(&rng, order, train->n);
    c.epoch = e + 1;
    c.total = train->n;
    c.seen = 0;
    c.correct = 0;
    c.loss_sum = 0;
    c.t_start = now();
    c.t_last_draw = 0;
    fm_epoch_stats st;
    int rc = fm_train_epoch(&m->net, &w, &opt, state, train, order, train->n, batch, e, fo.seed,
                            on_batch, &c, &st);
    optimizer_state_steps(L, &opt);
    double seconds = now() - c.t_start;
    if (c.bar) fputc('\n', stderr);
    if (rc != FM_OK || st.diverged) return luaL_error(L, "fit: %s", fm_error());
    if (st.stopped) {
      int64_t nb = (train->n + batch - 1) / batch;
      snprintf(stop_reason, sizeof stop_reason,
               "interrupted (Ctrl-C) at epoch %d, batch %lld of %lld; the history has the %d "
               "complete epoch%s, the model all it learnt", e + 1, (long long)st.batches,
               (long long)nb, e, e == 1 ? "" : "s");
      was_interrupted = 1;
      break;
    }
    m->epochs_trained++;
    /* the epoch's record */
    lua_createtable(L, 0, 8);
    int rec = lua_gettop(L);
    lua_pushinteger(L, e + 1);
    lua_setfield(L, rec, "epoch");
    lua_pushnumber(L, st.loss);
    lua_setfield(L, rec, "loss");
    lua_pushnumber(L, st.accuracy);
    lua_setfield(L, rec, "accuracy");
    double lr_e = fm_schedule_lr(&opt.schedule, opt.lr, e);
    lua_pushnumber(L, lr_e);
    lua_setfield(L, rec, "lr");
    append(L, hist, "lr", lr_e);
    append(L, hist, "loss", st.loss);
    append(L, hist, "accuracy", st.accuracy);
    double val_loss = NAN, val_acc = NAN;
    if (val && val->n) {
      evaluate_dataset(L, m, val, fo.threads, "fit", &val_loss, &val_acc, NULL);
      lua_pushnumber(L, val_loss);
      lua_setfield(L, rec, "val_loss");
      lua_pushnumber(L, val_acc);
      lua_setfield(L, rec, "val_accuracy");
      append(L, hist, "val_loss", val_loss);
      append(L, hist, "val_accuracy", val_acc);
    }
    seconds = now() - c.t_start;
    lua_pushnumber(L, seconds);
    lua_setfield(L, rec, "seconds");
    append(L, hist, "seconds", seconds);
    lua_pushvalue(L, rec);
    lua_rawseti(L, hist, e + 1);
    if (verbose > 0) {
      if (val && val->n)
        fprintf(stderr, "Epoch %d/%d  %.1fs  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  (%.0f img/s)\n",
                e + 1, epochs, seconds, st.loss, st.accuracy, val_loss, val_acc,
                (double)train->n / seconds);
      else
        fprintf(stderr, "Epoch %d/%d  %.1fs  loss %.4f  acc %.4f  (%.0f img/s)\n", e + 1, epochs,
                seconds, st.loss, st.accuracy, (double)train->n / seconds);
    }
    /* the user's callback: returning false stops training */
    int called = fo.on_epoch ? call_on_epoch(L, &fo, rec, e + 1) : 0;
    if (called == 1) snprintf(stop_reason, sizeof stop_reason, "on_epoch returned false");
    if (called == 2 || interrupted) {
      snprintf(stop_reason, sizeof stop_reason,
               "interrupted (Ctrl-C) %s epoch %d; the history has the %d complete epoch%s, the "
               "model all it learnt", called == 2 ? "in on_epoch after" : "after", e + 1, e + 1,
               e == 0 ? "" : "s");
      was_interrupted = 1;
    }
    lua_pop(L, 1); /* rec */
    /* early stopping on the validation loss */
    if (!was_interrupted && patience > 0 && val && val->n) {
      if (val_loss < best_loss) {
        best_loss = val_loss;
        best_epoch = e + 1;
        since_best = 0;
        if (best) {
          memcpy(best, m->params, sizeof(float) * (size_t)m->net.n_params);
          memcpy(best + m->net.n_params, m->state, sizeof(float) * (size_t)m->net.n_state);
        }
      } else if (++since_best >= patience) {
        snprintf(stop_reason, sizeof stop_reason, "early stopping");
      }
    }
    if (stop_reason[0]) break;
  }
  /* The hook is taken off before anything else runs, so that nothing more is interrupted. */
  sigint_guard_restore(lua_touserdata(L, guard), 1);
  int restored = 0;
  if (best && best_epoch > 0 && strcmp(stop_reason, "early stopping") == 0) {
    memcpy(m->params, best, sizeof(float) * (size_t)m->net.n_params);
    memcpy(m->state, best + m->net.n_params, sizeof(float) * (size_t)m->net.n_state);
    lua_pushinteger(L, best_epoch);
    lua_setfield(L, hist, "best_epoch");
    restored = 1;
  }
  if (stop_reason[0]) {
    lua_pushstring(L, stop_reason);
    lua_setfield(L, hist, "stopped");
    if (verbose > 0 || was_interrupted)
      fprintf(stderr, "Stopped: %s%s\n", stop_reason,
              restored ? " (weights of the best epoch restored)" : "");
  }
  if (was_interrupted) {
    lua_pushboolean(L, 1);
    lua_setfield(L, hist, "interrupted");
  }
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, hist));
  lua_setfield(L, hist, "epochs");
  lua_pushvalue(L, hist); /* above the handler's guard, which closes on return */
  return 1;
}

/* ---- inspection ---- */

static void add_thousands(luaL_Buffer *b, long long v) {
  char digits[32], out[48];
  int n = snprintf(digits, sizeof digits, "%lld", v), k = 0;
  for (int i = 0; i < n; i++) {
    if (i && (n - i) % 3 == 0) out[k++] = ',';
    out[k++] = digits[i];
  }
  out[k] = '\0';
  luaL_addstring(b, out);
}

/* Layer i's name in a summary: its kind and how many of that kind came before ("conv2d_2"). */
static void layer_name(const fm_net *net, int i, char *buf, size_t size) {
  if (i < 0) {
    snprintf(buf, size, "input");
    return;
  }
  int count = 0;
  for (int j = 0; j <= i; j++) count += net->layer[j].spec.kind == net->layer[i].spec.kind;
  snprintf(buf, size, "%s_%d", fm_layer_kind_name(net->layer[i].spec.kind), count);
}

/* The Keras-like summary table, pushed as a string. A network that is not a plain chain gets the
 * functional model's "Connected to" column. */
static void push_summary(lua_State *L, const model *m) {
  const fm_net *net = &m->net;
  const int graph = !net->chain;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char line[320];
  const char *rule = graph ? "_____________________________________________________________________________________________________\n"
                           : "_________________________________________________________________\n";
  const char *dbl = graph ? "=====================================================================================================\n"
                          : "=================================================================\n";
  snprintf(line, sizeof line, "Model: \"%s\"\n", m->kind);
  luaL_addstring(&b, line);
  luaL_addstring(&b, rule);
  luaL_addstring(&b, graph ? " Layer (type)                              Output Shape         Param #   Connected to\n"
                           : " Layer (type)                Output Shape              Param #\n");
  luaL_addstring(&b, dbl);
  for (int i = 0; i < net->n_layers; i++) {
    const fm_layer *ly = &net->layer[i];
    char name[48], full[96], shape[48], params[32], from[128] = "";
    layer_name(net, i, name, sizeof name);
    snprintf(full, sizeof full, "%s (%s)", name, fm_layer_type_of(ly->spec.kind)->display);
    if (ly->out_h == 1 && ly->out_w == 1)
      snprintf(shape, sizeof shape, "(None, %d)", ly->out_c);
    else
      snprintf(shape, sizeof shape, "(None, %d, %d, %d)", ly->out_h, ly->out_w, ly->out_c);
    snprintf(params, sizeof params, "%lld", (long long)(ly->n_weights + ly->n_biases + ly->n_state));
    if (graph) {
      for (int k = 0; k < ly->n_in; k++) {
        char in[48];
        layer_name(net, ly->in[k], in, sizeof in);
        snprintf(from + strlen(from), sizeof from - strlen(from), "%s%s", k ? ", " : "", in);
      }
      snprintf(line, sizeof line, " %-41s %-20s %-9s %s\n", full, shape, params, from);
    } else {
      snprintf(line, sizeof line, " %-27s %-25s %s\n", full, shape, params);
    }
    luaL_addstring(&b, line);
  }
  luaL_addstring(&b, dbl);
  luaL_addstring(&b, "Total params: ");
  add_thousands(&b, (long long)(net->n_params + net->n_state));
  luaL_addstring(&b, "\nTrainable params: ");
  add_thousands(&b, (long long)net->n_params);
  luaL_addstring(&b, "\nNon-trainable params: ");
  add_thousands(&b, (long long)net->n_state);
  luaL_addstring(&b, "\n");
  luaL_addstring(&b, rule);
  luaL_pushresult(&b);
}

/* model:summary() prints the table, like Keras; model:summary{print = false} only returns it. */
static int model_summary(lua_State *L) {
  model *m = check_model(L, 1);
  int opts = lfm_optopts(L, 2);
  static const char *const known[] = {"print", NULL};
  lfm_check_options(L, opts, "summary", known);
  int print = lfm_optfield_bool(L, opts, "print", 1);
  push_summary(L, m);
  if (print) {
    fputs(lua_tostring(L, -1), stdout);
    fflush(stdout);
    return 0;
  }
  return 1;
}

static int model_tostring(lua_State *L) {
  model *m = check_model(L, 1);
  lua_pushfstring(L, "fmnist.Model %s: %d layer%s, %I parameters, %d epoch%s trained", m->kind,
                  m->net.n_layers, m->net.n_layers == 1 ? "" : "s", (lua_Integer)m->net.n_params,
                  m->epochs_trained, m->epochs_trained == 1 ? "" : "s");
  return 1;
}

/* model.kind, model.params, model.epochs, model.layers, model.info, model.defaults; other keys
 * are methods. */
static int model_index(lua_State *L) {
  model *m = check_model(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "kind") == 0) {
    lua_pushstring(L, m->kind);
  } else if (k && strcmp(k, "params") == 0) {
    lua_pushinteger(L, m->net.n_params);
  } else if (k && strcmp(k, "epochs") == 0) {
    lua_pushinteger(L, m->epochs_trained);
  } else if (k && strcmp(k, "layers") == 0) {
    lua_pushinteger(L, m->net.n_layers);
  } else if (k && strcmp(k, "info") == 0) {
    lua_getiuservalue(L, 1, 1);
  } else if (k && strcmp(k, "defaults") == 0) {
    push_defaults(L, &m->def);
  } else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

static int check_layer(lua_State *L, const model *m, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  if (i < 1 || i > m->net.n_layers)
    luaL_argerror(L, arg, lua_pushfstring(L, "layer %I out of range 1..%d", i, m->net.n_layers));
  return (int)i - 1;
}

/* model:weights(i) -> weights, biases of layer i: dense in x out, conv2d kh x kw x cin x cout
 * (depthwise: kh x kw x 1 x cout), batch norm scale and shift and then its running mean and
 * variance. A layer without biases gives an empty tensor. The tensors are copies. */
static int model_weights(lua_State *L) {
  model *m = check_model(L, 1);
  int i = check_layer(L, m, 2);
  const fm_layer *ly = &m->net.layer[i];
  if (ly->n_weights == 0)
    return luaL_error(L, "weights: layer %d (%s) has no weights", i + 1,
                      fm_layer_kind_name(ly->spec.kind));
  fm_tensor *w;
  if (ly->spec.kind == FM_LAYER_CONV2D) {
    int64_t shape[4] = {ly->conv.kh, ly->conv.kw, ly->conv.cin / ly->conv.groups, ly->conv.cout};
    w = lfm_newtensor(L, 4, shape);
  } else if (ly->spec.kind == FM_LAYER_BATCHNORM) {
    int64_t shape[1] = {ly->n_weights};
    w = lfm_newtensor(L, 1, shape);
  } else {
    int64_t shape[2] = {ly->in_size, ly->out_c};
    w = lfm_newtensor(L, 2, shape);
  }
  memcpy(w->data, fm_net_weights(&m->net, i), sizeof(float) * (size_t)ly->n_weights);
  int64_t bs[1] = {ly->n_biases};
  fm_tensor *bt = lfm_newtensor(L, 1, bs);
  if (ly->n_biases)
    memcpy(bt->data, fm_net_biases(&m->net, i), sizeof(float) * (size_t)ly->n_biases);
  if (ly->n_state == 0) return 2;
  /* batch norm: then its running mean and variance */
  int64_t cs[1] = {ly->out_c};
  fm_tensor *mean = lfm_newtensor(L, 1, cs);
  memcpy(mean->data, m->net.state + ly->state_offset, sizeof(float) * (size_t)ly->out_c);
  fm_tensor *var = lfm_newtensor(L, 1, cs);
  memcpy(var->data, m->net.state + ly->state_offset + ly->out_c, sizeof(float) * (size_t)ly->out_c);
  return 4;
}

/* model:set_weights(i, w [, b]): replaces layer i's weights (as many as weights(i) gives, any
 * shape) and, when given, its biases. Values that are not finite are refused: a saved model holds
 * finite weights only. */
static int model_set_weights(lua_State *L) {
  model *m = check_model(L, 1);
  int i = check_layer(L, m, 2);
  fm_tensor *w = lfm_checktensor(L, 3);
  fm_tensor *b = lua_isnoneornil(L, 4) ? NULL : lfm_checktensor(L, 4);
  if (fm_net_set_layer(&m->net, i, w->data, w->numel, b ? b->data : NULL, b ? b->numel : 0) !=
      FM_OK)
    return lfm_engine_error(L, "set_weights");
  return 0;
}

/* model:gradient_wrt_input(x, class) -> d score(class) / d x, shaped like x. x holds one image
 * or N; class is a number (for every image) or a tensor of N class ids. */
static int model_gradient_wrt_input(lua_State *L) {
  model *m = check_model(L, 1);
  fm_tensor *x = lfm_checktensor(L, 2);
  fm_tensor *ct = lfm_totensor(L, 3);
  if (!ct && lua_type(L, 3) != LUA_TNUMBER)
    return luaL_typeerror(L, 3, "class id or fmnist.Tensor of class ids");
  int64_t n = tensor_images(L, m, x, "gradient_wrt_input");
  if (ct && ct->numel != n)
    return luaL_error(L, "gradient_wrt_input: %I images but %I classes", (lua_Integer)n,
                      (lua_Integer)ct->numel);
  uint8_t *cls = push_array(L, n, 1, "gradient_wrt_input");
  for (int64_t i = 0; i < n; i++) {
    double c = ct ? (double)ct->data[i] : lua_tonumber(L, 3);
    if (!(c >= 0 && c < m->net.classes) || c != floor(c))
      return luaL_error(L, "gradient_wrt_input: class %f%s is not a class id 0..%d", c,
                        ct ? lua_pushfstring(L, " (entry %I)", (lua_Integer)i + 1) : "",
                        m->net.classes - 1);
    cls[i] = (uint8_t)c;
  }
  fm_tensor *dx = lfm_newtensor_like(L, x);
  int chunk = n < 64 ? (int)n : 64;
  fm_work w;
  push_work(L, m, &w, chunk, 1, "gradient_wrt_input");
  for (int64_t i0 = 0; i0 < n; i0 += chunk) {
    int cnt = (int)(n - i0 < chunk ? n - i0 : chunk);
    if (fm_net_input_gradient(&m->net, &w, x->data + i0 * m->net.in_size, cnt, cls + i0,
                              dx->data + i0 * m->net.in_size) != FM_OK)
      return lfm_engine_error(L, "gradient_wrt_input");
  }
  lua_pop(L, 1);
  return 1;
}

/* model:activations(image, layer) -> the layer's output for one image: channels x h x w for
 * convolution and pooling layers (one 2-D map per channel), a vector otherwise. */
static int model_activations(lua_State *L) {
  model *m = check_model(L, 1);
  fm_tensor *x = lfm_checktensor(L, 2);
  if (tensor_images(L, m, x, "activations") != 1)
    return luaL_error(L, "activations: one image expected");
  int l = check_layer(L, m, 3);
  fm_work w;
  push_work(L, m, &w, 1, 1, "activations");
  if (fm_net_forward(&m->net, &w, x->data, 1, 0, 0) != FM_OK) return lfm_engine_error(L, "activations");
  const float *a = fm_net_activation(&m->net, &w, l, 0);
  if (!a) return lfm_engine_error(L, "activations");
  const fm_layer *ly = &m->net.layer[l];
  fm_tensor *out;
  if (ly->out_h > 1 || ly->out_w > 1) {
    int64_t shape[3] = {ly->out_c, ly->out_h, ly->out_w};
    out = lfm_newtensor(L, 3, shape);
    /* HWC -> CHW */
    for (int c = 0; c < ly->out_c; c++)
      for (int p = 0; p < ly->out_h * ly->out_w; p++) out->data[c * ly->out_h * ly->out_w + p] = a[p * ly->out_c + c];
  } else {
    int64_t shape[1] = {ly->out_size};
    out = lfm_newtensor(L, 1, shape);
    memcpy(out->data, a, sizeof(float) * (size_t)ly->out_size);
  }
  return 1;
}

/* model:layer(i) -> {type =, output = {h, w, c}, params =} */
static int model_layer(lua_State *L) {
  model *m = check_model(L, 1);
  int i = check_layer(L, m, 2);
  const fm_layer *ly = &m->net.layer[i];
  lua_createtable(L, 0, 6);
  lua_pushstring(L, fm_layer_kind_name(ly->spec.kind));
  lua_setfield(L, -2, "type");
  lua_createtable(L, 3, 0);
  lua_pushinteger(L, ly->out_h);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, ly->out_w);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, ly->out_c);
  lua_rawseti(L, -2, 3);
  lua_setfield(L, -2, "output");
  lua_pushinteger(L, ly->n_weights + ly->n_biases);
  lua_setfield(L, -2, "params");
  if (ly->spec.kind == FM_LAYER_DENSE || ly->spec.kind == FM_LAYER_CONV2D) {
    lua_pushinteger(L, ly->spec.units);
    lua_setfield(L, -2, "units");
  }
  if (ly->spec.kind == FM_LAYER_DROPOUT) {
    lua_pushnumber(L, ly->spec.rate);
    lua_setfield(L, -2, "rate");
  }
  return 1;
}

/* ---- files ---- */

/* Pushes an info value as the text a file keeps: a string as it is, a number in the fewest
 * digits that read back as the same number (no __tostring of anyone's runs). */
static void push_info_value(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    lua_pushvalue(L, idx);
  } else if (lua_isinteger(L, idx)) {
    lua_pushfstring(L, "%I", lua_tointeger(L, idx));
  } else {
    char buf[64];
    double v = lua_tonumber(L, idx);
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
    lua_pushstring(L, buf);
  }
}

/* model:save(path): the info table's string and number fields go into the file's text, one
 * "key=value" line each, sorted by key; a key holding '=', a newline or a zero byte, or a value holding a newline
 * or a zero byte, could not be read back and is refused. */
static int model_save(lua_State *L) {
  model *m = check_model(L, 1);
  const char *path = check_path(L, 2);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, 1); /* 3: info */
  lua_newtable(L);            /* 4: the lines */
  int n = 0;
  lua_pushfstring(L, "epochs_trained=%d\n", m->epochs_trained);
  lua_rawseti(L, 4, ++n);
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    int tv = lua_type(L, -1);
    if (lua_type(L, -2) == LUA_TSTRING && (tv == LUA_TSTRING || tv == LUA_TNUMBER) &&
        strcmp(lua_tostring(L, -2), "epochs_trained") != 0) {
      size_t klen, vlen;
      const char *k = lua_tolstring(L, -2, &klen);
      push_info_value(L, -1);
      const char *v = lua_tolstring(L, -1, &vlen);
      if (strlen(k) != klen || strpbrk(k, "=\n") || strlen(v) != vlen || strchr(v, '\n'))
        return luaL_error(L, "save: info key '%s' or its value holds '=', a newline or a zero "
                          "byte", k);
      lua_pushfstring(L, "%s=%s\n", k, v);
      lua_rawseti(L, 4, ++n);
      lua_pop(L, 1); /* the value's text */
    }
    lua_pop(L, 1);
  }
  /* Insertion sort of lines 2..n by key: the pairs order of a table is not the same in every
   * run, and equal models should give equal files. */
  for (int i = 3; i <= n; i++) {
    for (int j = i; j > 2; j--) {
      lua_rawgeti(L, 4, j - 1);
      lua_rawgeti(L, 4, j);
      if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
        lua_pop(L, 2);
        break;
      }
      lua_rawseti(L, 4, j - 1);
      lua_rawseti(L, 4, j);
    }
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 4, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  if (fm_model_save(path, m->kind, &m->net, lua_tostring(L, -1)) != FM_OK)
    return lfm_engine_error(L, "save");
  lua_settop(L, 2);
  return 1;
}

/* The epochs_trained line of a loaded file's text (table at idx): a count, or absent (0). */
static int epochs_trained_of(lua_State *L, int idx, const char *path) {
  if (lua_getfield(L, idx, "epochs_trained") == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  const char *text = lua_tostring(L, -1), *end = text;
  long long v = -1;
  if (*text >= '0' && *text <= '9') {
    errno = 0;
    v = strtoll(text, (char **)&end, 10);
  }
  if (v < 0 || v > INT_MAX || errno || *end)
    luaL_error(L, "load_model: %s: corrupt model file (epochs_trained=%s is not a count)", path,
               text);
  lua_pop(L, 1);
  return (int)v;
}

/* fm.load_model(path) -> model. The file is checked whole (fm_modelfile.h) before anything is
 * allocated for it (its sizes were checked against its length, so these blocks are at most its
 * size), and read again into the new model. Version 1 files (before batch norm and graphs) load
 * as the same sequential networks. */
static int model_load(lua_State *L) {
  const char *path = check_path(L, 1);
  fm_model_desc d;
  if (fm_model_probe(path, &d) != FM_OK) return lfm_engine_error(L, "load_model");
  fm_layer_spec *specs = push_array(L, d.n_layers, sizeof(fm_layer_spec), "load_model");
  fm_layer *layers = push_array(L, d.n_layers, sizeof(fm_layer), "load_model");
  char *meta = push_array(L, (int64_t)d.meta_bytes + 1, 1, "load_model");
  float *params = push_array(L, d.n_params + d.n_state + 1, sizeof(float), "load_model");
  float *state = params + d.n_params;
  fm_net net;
  if (fm_model_read(path, &d, specs, layers, &net, meta, params, state) != FM_OK)
    return lfm_engine_error(L, "load_model");
  model *m = new_model(L, d.kind, d.in_h, d.in_w, d.in_c, specs, d.n_layers);
  memcpy(m->params, params, sizeof(float) * (size_t)d.n_params);
  memcpy(m->state, state, sizeof(float) * (size_t)d.n_state);
  /* the text: key=value lines into model.info, as strings */
  lua_getiuservalue(L, -1, 1);
  for (char *line = meta; *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    char *eq = memchr(line, '=', len);
    if (eq) {
      lua_pushlstring(L, line, (size_t)(eq - line));
      lua_pushlstring(L, eq + 1, len - (size_t)(eq - line) - 1);
      lua_settable(L, -3);
    }
    line += len + (end ? 1 : 0);
  }
  m->epochs_trained = epochs_trained_of(L, lua_gettop(L), path);
  lua_pop(L, 1);
  return 1;
}

const fm_net *lfm_checkmodel(lua_State *L, int arg, const char **kind) {
  model *m = check_model(L, arg);
  if (kind) *kind = m->kind;
  return &m->net;
}

void lfm_model_methods(lua_State *L, const luaL_Reg *methods) {
  luaL_getmetatable(L, LFM_MODEL);
  lua_getfield(L, -1, "methods");
  luaL_setfuncs(L, methods, 0);
  lua_pop(L, 2);
}

void lfm_open_model(lua_State *L) {
  luaL_newmetatable(L, LFM_OPTSTATE); /* a plain block: no methods */
  lua_pop(L, 1);
  static const luaL_Reg meta[] = {{"__tostring", model_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"fit", model_fit}, {"predict", model_predict}, {"predict_proba", model_predict_proba},
      {"evaluate", model_evaluate}, {"summary", model_summary}, {"weights", model_weights},
      {"set_weights", model_set_weights}, {"gradient_wrt_input", model_gradient_wrt_input},
      {"activations", model_activations}, {"layer", model_layer}, {"save", model_save},
      {NULL, NULL}};
  static const luaL_Reg functions[] = {{"LogReg", model_logreg}, {"MLP", model_mlp},
                                       {"CNN", model_cnn}, {"Model", model_generic},
                                       {"load_model", model_load},
                                       {NULL, NULL}};
  luaL_newmetatable(L, LFM_MODEL);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, model_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
