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
} defaults;

typedef struct model {
  fm_model_desc desc;
  fm_net net;
  defaults def;
  int epochs_trained;
  float *params, *grads;
} model;

/* Training defaults of each kind, chosen to reach the reference accuracies on the 10k test set
 * (see the README); the user's l2 is added by the constructors. */
static defaults kind_defaults(const char *kind) {
  if (strcmp(kind, "LogReg") == 0) return (defaults){10, 64, 3e-3, FM_OPTIM_ADAM, 0, FM_SCHED_COSINE};
  if (strcmp(kind, "MLP") == 0) return (defaults){30, 64, 1e-3, FM_OPTIM_ADAM, 0, FM_SCHED_COSINE};
  if (strcmp(kind, "CNN") == 0) return (defaults){15, 32, 1e-3, FM_OPTIM_ADAM, 0, FM_SCHED_COSINE};
  return (defaults){10, 64, 1e-3, FM_OPTIM_ADAM, 0, FM_SCHED_COSINE};
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

/* Pushes a new model for the description: parameters and gradients inside the userdata. */
static model *new_model(lua_State *L, const fm_model_desc *desc) {
  fm_net net;
  if (fm_net_build(&net, desc->in_h, desc->in_w, desc->in_c, desc->specs, desc->n_layers) != FM_OK)
    lfm_engine_error(L, desc->kind);
  /* fm_net_build holds n_params to FM_NET_MAX_PARAMS, so this cannot fail; checked all the same */
  int64_t floats = 0, bytes = 0;
  if (!fm_mul_within(net.n_params, 2, FM_NET_MAX_PARAMS * 2, &floats) ||
      !fm_add_within(floats * (int64_t)sizeof(float), (int64_t)(sizeof(model) + ALIGN),
                     INT64_MAX, &bytes))
    luaL_error(L, "%s: %I parameters are too many", desc->kind, (lua_Integer)net.n_params);
  model *m = lua_newuserdatauv(L, (size_t)bytes, 1);
  memset(m, 0, sizeof *m);
  m->desc = *desc;
  m->desc.n_params = net.n_params;
  m->net = net;
  uintptr_t p = (uintptr_t)(m + 1);
  m->params = (float *)((p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
  m->grads = m->params + net.n_params;
  memset(m->params, 0, (size_t)floats * sizeof(float));
  fm_net_bind(&m->net, m->params, m->grads);
  m->def = kind_defaults(desc->kind);
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

/* ---- building: layer specs from Lua ---- */

/* How each kind of layer is written: after its name, its parameters by position or by key, in this
 * order. The names of the kinds are the engine's (fm_layer_kind_name). */
typedef enum { PARAM_COUNT, PARAM_SIZE, PARAM_PADDING, PARAM_RATE } param_type;
typedef struct layer_syntax {
  int n_params;
  int required;  /* the first `required` must be given */
  struct {
    const char *key;
    param_type type;
  } param[3];
  const char *example;
} layer_syntax;

static const layer_syntax layer_syntaxes[FM_LAYER_KINDS + 1] = {
    [FM_LAYER_DENSE] = {1, 1, {{"units", PARAM_COUNT}}, "{\"dense\", 128}"},
    [FM_LAYER_CONV2D] = {3, 1, {{"filters", PARAM_COUNT}, {"kernel", PARAM_SIZE},
                                {"padding", PARAM_PADDING}}, "{\"conv2d\", 32, 3, padding = \"same\"}"},
    [FM_LAYER_MAXPOOL] = {1, 0, {{"size", PARAM_SIZE}}, "{\"maxpool\", 2}"},
    [FM_LAYER_RELU] = {0, 0, {{NULL, 0}}, "\"relu\""},
    [FM_LAYER_DROPOUT] = {1, 1, {{"rate", PARAM_RATE}}, "{\"dropout\", 0.5}"},
    [FM_LAYER_FLATTEN] = {0, 0, {{NULL, 0}}, "\"flatten\""},
};

/* A layer's name: the engine's names, and "conv" for conv2d. Raises listing the known names. */
static fm_layer_kind layer_kind_named(lua_State *L, int i, const char *name) {
  fm_layer_kind kind = strcmp(name, "conv") == 0 ? FM_LAYER_CONV2D : fm_layer_kind_of(name);
  if (kind) return kind;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int k = 1; k <= FM_LAYER_KINDS; k++) {
    if (k > 1) luaL_addstring(&b, ", ");
    luaL_addstring(&b, fm_layer_kind_name((fm_layer_kind)k));
  }
  luaL_pushresult(&b);
  luaL_error(L, "layers[%d]: unknown layer '%s' (known: %s)", i, name, lua_tostring(L, -1));
  return kind;
}

/* "units" or "filters, kernel, padding": the keys a kind takes. */
static const char *push_keys(lua_State *L, const layer_syntax *syn) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int p = 0; p < syn->n_params; p++) {
    if (p) luaL_addstring(&b, ", ");
    luaL_addstring(&b, syn->param[p].key);
  }
  if (syn->n_params == 0) luaL_addstring(&b, "none");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* Which parameters the layer table at idx gives, and how: by[p] is 0 (not given), the position
 * (2, 3, ...) or -1 (by key). Any other key is an error naming it and the valid ones. */
static void layer_keys(lua_State *L, int idx, int i, const char *kind, const layer_syntax *syn,
                       int by[3]) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int p = -1, how = 0;
    lua_Integer pos;
    if (integer_in(L, -1, 1, 1, &pos)) continue; /* the name */
    if (integer_in(L, -1, 2, 1 + syn->n_params, &pos)) {
      p = (int)pos - 2;
      how = (int)pos;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      for (int q = 0; q < syn->n_params; q++)
        if (strcmp(lua_tostring(L, -1), syn->param[q].key) == 0) p = q, how = -1;
    }
    if (p < 0) {
      const char *key = describe(L, -1), *valid = push_keys(L, syn);
      luaL_error(L, "layers[%d] (%s): unknown key %s (valid keys: %s, e.g. %s)", i, kind, key,
                 valid, syn->example);
    }
    if (by[p])
      luaL_error(L, "layers[%d] (%s): '%s' is given twice, by position and by key", i, kind,
                 syn->param[p].key);
    by[p] = how;
  }
}

/* Reads parameter p of the layer (pushed on the stack) into the spec. */
static void layer_param(lua_State *L, int i, const char *kind, const layer_syntax *syn, int p,
                        fm_layer_spec *s) {
  const char *key = syn->param[p].key;
  lua_Integer v = 0;
  switch (syn->param[p].type) {
    case PARAM_COUNT:
    case PARAM_SIZE:
      if (!integer_in(L, -1, 1, FM_NET_MAX_DIM, &v))
        luaL_error(L, "layers[%d] (%s): %s must be an integer from 1 to %d, got %s", i, kind, key,
                   FM_NET_MAX_DIM, describe(L, -1));
      if (syn->param[p].type == PARAM_COUNT)
        s->units = (int)v;
      else if (s->kind == FM_LAYER_CONV2D)
        s->kh = (int)v;
      else
        s->pool = (int)v;
      break;
    case PARAM_PADDING: {
      const char *pad = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      if (strcmp(pad, "same") != 0 && strcmp(pad, "valid") != 0)
        luaL_error(L, "layers[%d] (%s): padding must be \"valid\" or \"same\", not %s", i, kind,
                   describe(L, -1));
      s->same = strcmp(pad, "same") == 0;
      break;
    }
    case PARAM_RATE: {
      lua_Number r = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
      if (!(r >= 0 && r < 1))
        luaL_error(L, "layers[%d] (%s): rate must be a number in [0, 1), got %s", i, kind,
                   describe(L, -1));
      s->rate = (float)r;
      break;
    }
  }
}

/* One layer: "relu", "flatten", {"dense", 128}, {"conv2d", 32, 3, padding = "same"},
 * {"maxpool", 2}, {"dropout", 0.5}; every parameter may also be given by its key
 * ({"dense", units = 128}). Unknown keys, wrong types, fractional or out-of-range sizes are
 * errors naming the layer and the key. */
static fm_layer_spec parse_layer(lua_State *L, int idx, int i) {
  fm_layer_spec s;
  memset(&s, 0, sizeof s);
  int is_table = lua_type(L, idx) == LUA_TTABLE;
  if (is_table)
    lua_rawgeti(L, idx, 1);
  else
    lua_pushvalue(L, idx);
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "layers[%d]: a layer name or a table like {\"dense\", 128} expected, got %s", i,
               is_table ? describe(L, -1) : luaL_typename(L, idx));
  s.kind = layer_kind_named(L, i, lua_tostring(L, -1));
  const char *kind = fm_layer_kind_name(s.kind);
  lua_pop(L, 1);
  const layer_syntax *syn = &layer_syntaxes[s.kind];
  int by[3] = {0, 0, 0};
  if (is_table) layer_keys(L, idx, i, kind, syn, by);
  if (s.kind == FM_LAYER_CONV2D) s.kh = 3;
  for (int p = 0; p < syn->n_params; p++) {
    if (!by[p]) {
      if (p < syn->required)
        luaL_error(L, "layers[%d]: %s needs %s, e.g. %s", i, kind, syn->param[p].key,
                   syn->example);
      continue;
    }
    if (by[p] > 0) {
      lua_rawgeti(L, idx, by[p]);
    } else {
      lua_pushstring(L, syn->param[p].key);
      lua_rawget(L, idx);
    }
    layer_param(L, i, kind, syn, p, &s);
    lua_pop(L, 1);
  }
  return s;
}

static void set_kind(fm_model_desc *d, const char *kind) {
  memset(d->kind, 0, sizeof d->kind);
  snprintf(d->kind, sizeof d->kind, "%s", kind);
  d->in_h = 28;
  d->in_w = 28;
  d->in_c = 1;
}

static void add_layer(fm_model_desc *d, fm_layer_kind kind, int units, float rate) {
  fm_layer_spec *s = &d->specs[d->n_layers++];
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
  fm_model_desc d;
  memset(&d, 0, sizeof d);
  set_kind(&d, "LogReg");
  add_layer(&d, FM_LAYER_DENSE, FM_CLASSES, 0);
  model *m = new_model(L, &d);
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
  fm_model_desc d;
  memset(&d, 0, sizeof d);
  set_kind(&d, "MLP");
  for (int i = 0; i < nh; i++) {
    add_layer(&d, FM_LAYER_DENSE, hidden[i], 0);
    add_layer(&d, FM_LAYER_RELU, 0, 0);
    if (dropout > 0) add_layer(&d, FM_LAYER_DROPOUT, 0, (float)dropout);
  }
  add_layer(&d, FM_LAYER_DENSE, FM_CLASSES, 0);
  model *m = new_model(L, &d);
  m->def.weight_decay = l2;
  fm_net_init(&m->net, seed);
  return 1;
}

/* fm.CNN{layers = {...}, l2 =, seed =}: by default the reference net, conv 3x3x32, ReLU, max-pool
 * -> conv 3x3x64, ReLU, max-pool -> dense 128, ReLU, dropout 0.5 -> dense 10. */
static int model_cnn(lua_State *L) {
  int opts = lfm_optopts(L, 1);
  static const char *const known[] = {"layers", "l2", "seed", NULL};
  lfm_check_options(L, opts, "CNN", known);
  double l2 = l2_option(L, opts);
  uint64_t seed = lfm_optfield_seed(L, opts, "seed", lfm_rng());
  fm_model_desc d;
  memset(&d, 0, sizeof d);
  set_kind(&d, "CNN");
  if (opts && lua_getfield(L, opts, "layers") != LUA_TNIL) {
    if (!lua_istable(L, -1))
      return luaL_error(L, "CNN: layers must be a list of layers, got %s", luaL_typename(L, -1));
    int list = lua_gettop(L);
    int n = check_list(L, list, "CNN: layers", FM_NET_MAX_LAYERS);
    if (n < 1) return luaL_error(L, "CNN: 1 to %d layers, not %d", FM_NET_MAX_LAYERS, n);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, list, i);
      d.specs[d.n_layers++] = parse_layer(L, lua_gettop(L), i);
      lua_pop(L, 1);
    }
  } else {
    d.n_layers = fm_reference_cnn(d.specs);
  }
  if (opts) lua_pop(L, 1);
  model *m = new_model(L, &d);
  m->def.weight_decay = l2;
  fm_net_init(&m->net, seed);
  return 1;
}

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

/* Raises fit's error for an interruption after `epochs` epochs, once the guard has put the hook
 * back (so that the error itself is not interrupted). */
static int fit_interrupted(lua_State *L, int guard, const model *m, const char *where) {
  sigint_guard_restore(lua_touserdata(L, guard), 1);
  return luaL_error(L, "fit: interrupted %s; the model keeps the weights of the %d epochs trained",
                    where, m->epochs_trained);
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
  static const char *const optimizers[] = {"adam", "sgd", NULL};
  static const fm_optim_kind kinds[] = {FM_OPTIM_ADAM, FM_OPTIM_SGD};
  fm_optim_kind kind =
      kinds[opt_choice(L, opts, "optimizer", optimizers, m->def.optimizer == FM_OPTIM_SGD)];
  double lr = opt_number(L, opts, "lr", kind == m->def.optimizer ? m->def.lr : 0.01, 0.0, FLT_MAX,
                         OPEN_LO);
  if (kind == FM_OPTIM_ADAM) {
    opt_unused(L, opts, "momentum", "optimizer = \"sgd\"");
    opt_unused(L, opts, "nesterov", "optimizer = \"sgd\"");
    fm_optim_adam(o, lr);
  } else {
    fm_optim_sgd(o, lr, opt_number(L, opts, "momentum", 0.9, 0.0, 1.0, OPEN_HI),
                 lfm_optfield_bool(L, opts, "nesterov", 0));
  }
  o->weight_decay = opt_number(L, opts, "weight_decay", m->def.weight_decay, 0.0, FLT_MAX, 0);
  static const char *const schedules[] = {"constant", "step", "cosine", NULL};
  static const fm_sched_kind sched[] = {FM_SCHED_CONSTANT, FM_SCHED_STEP, FM_SCHED_COSINE};
  int def = m->def.schedule == FM_SCHED_COSINE ? 2 : m->def.schedule == FM_SCHED_STEP ? 1 : 0;
  o->schedule.kind = sched[opt_choice(L, opts, "schedule", schedules, def)];
  if (o->schedule.kind == FM_SCHED_COSINE) {
    o->schedule.total_epochs = epochs > 0 ? epochs : 1;
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

/* Everything fit reads from its options, checked before any training starts. */
typedef struct fit_options {
  int epochs, batch, threads, patience, restore_best, shuffle, verbose;
  uint64_t seed;
  fm_optim opt;
  int train, val;  /* stack indices of the training and validation sets (val 0: none) */
  int on_epoch;    /* stack index of the callback, or 0 */
} fit_options;

static void fit_options_read(lua_State *L, int opts, const model *m, fit_options *fo) {
  static const char *const known[] = {"epochs", "batch", "lr", "optimizer", "momentum", "nesterov",
                                      "weight_decay", "schedule", "min_lr", "step_epochs", "gamma",
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
    if (sets[k] && fm_dataset_pixels(sets[k]) != m->net.in_size)
      luaL_error(L, "fit: %s images of %Ix%I do not fit the model's %dx%dx%d input", which[k],
                 (lua_Integer)sets[k]->rows, (lua_Integer)sets[k]->cols, m->net.in_h,
                 m->net.in_w, m->net.in_c);
  if (train->n == 0) luaL_error(L, "fit: the training set is empty");
  if (train->n > INT32_MAX)
    luaL_error(L, "fit: %I training images, at most %d", (lua_Integer)train->n, INT32_MAX);
}

/* Calls on_epoch(epoch, record); returns 1 when it returned false (stop). Its errors go to the
 * caller, an interruption as fit's own. */
static int call_on_epoch(lua_State *L, const fit_options *fo, int rec, int guard, const model *m,
                         int epoch) {
  lua_pushvalue(L, fo->on_epoch);
  lua_pushinteger(L, epoch);
  lua_pushvalue(L, rec);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    if (interrupted) {
      char where[64];
      snprintf(where, sizeof where, "in on_epoch after epoch %d", epoch);
      return fit_interrupted(L, guard, m, where);
    }
    return lua_error(L);
  }
  int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  return stop;
}

/* model:fit(ds, {epochs =, batch =, lr =, optimizer =, momentum =, weight_decay =, schedule =,
 *   seed =, validation = ds_or_fraction, patience =, restore_best =, on_epoch =, verbose =,
 *   threads =}) -> history */
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
  int64_t state_n = fm_optim_state_floats(&opt, m->net.n_params);
  if (state_n < 0) return luaL_error(L, "fit: no optimizer state for %I parameters", (lua_Integer)m->net.n_params);
  float *state = push_array(L, state_n ? state_n : 1, sizeof(float), "fit");
  memset(state, 0, sizeof(float) * (size_t)state_n);
  int32_t *order = push_array(L, train->n, sizeof(int32_t), "fit");
  float *best = patience > 0 && fo.restore_best && val
                    ? push_array(L, m->net.n_params, sizeof(float), "fit")
                    : NULL;
  fm_rng rng;
  fm_rng_seed(&rng, fo.seed);

  lua_newtable(L); /* history */
  int hist = lua_gettop(L);
  fit_ctx c = {.L = L, .epochs = epochs, .bar = verbose == 1 && isatty(2)};
  double best_loss = INFINITY;
  int best_epoch = 0, since_best = 0;
  const char *stop_reason = NULL;
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
    double seconds = now() - c.t_start;
    if (c.bar) fputc('\n', stderr);
    if (rc != FM_OK || st.diverged) return luaL_error(L, "fit: %s", fm_error());
    if (st.stopped) {
      char where[64];
      snprintf(where, sizeof where, "at epoch %d, batch %lld", e + 1, (long long)st.batches);
      return fit_interrupted(L, guard, m, where);
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
    lua_pushnumber(L, fm_schedule_lr(&opt.schedule, opt.lr, e));
    lua_setfield(L, rec, "lr");
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
    if (fo.on_epoch && call_on_epoch(L, &fo, rec, guard, m, e + 1))
      stop_reason = "on_epoch returned false";
    if (interrupted) {
      char where[64];
      snprintf(where, sizeof where, "after epoch %d", e + 1);
      return fit_interrupted(L, guard, m, where);
    }
    lua_pop(L, 1); /* rec */
    /* early stopping on the validation loss */
    if (patience > 0 && val && val->n) {
      if (val_loss < best_loss) {
        best_loss = val_loss;
        best_epoch = e + 1;
        since_best = 0;
        if (best) memcpy(best, m->params, sizeof(float) * (size_t)m->net.n_params);
      } else if (++since_best >= patience) {
        stop_reason = "early stopping";
      }
    }
    if (stop_reason) break;
  }
  if (stop_reason && best && best_epoch > 0 && strcmp(stop_reason, "early stopping") == 0) {
    memcpy(m->params, best, sizeof(float) * (size_t)m->net.n_params);
    lua_pushinteger(L, best_epoch);
    lua_setfield(L, hist, "best_epoch");
  }
  if (stop_reason) {
    lua_pushstring(L, stop_reason);
    lua_setfield(L, hist, "stopped");
    if (verbose > 0)
      fprintf(stderr, "Stopped: %s%s\n", stop_reason,
              best && best_epoch ? " (weights of the best epoch restored)" : "");
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

/* The Keras-like summary table, pushed as a string. */
static void push_summary(lua_State *L, const model *m) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char line[160];
  const char *rule = "_________________________________________________________________\n";
  const char *dbl = "=================================================================\n";
  snprintf(line, sizeof line, "Model: \"%s\"\n", m->desc.kind);
  luaL_addstring(&b, line);
  luaL_addstring(&b, rule);
  luaL_addstring(&b, " Layer (type)                Output Shape              Param #\n");
  luaL_addstring(&b, dbl);
  int count[FM_LAYER_KINDS + 1] = {0}; /* layers of each kind so far, for "dense_2" */
  for (int i = 0; i < m->net.n_layers; i++) {
    const fm_layer *ly = &m->net.layer[i];
    char name[64], shape[48], params[32];
    fm_layer_kind kind = ly->spec.kind; /* a kind fm_net_build knows, 1 to FM_LAYER_KINDS */
    snprintf(name, sizeof name, "%s_%d (%s)", fm_layer_kind_name(kind), ++count[kind],
             fm_layer_type_name(kind));
    if (ly->out_h == 1 && ly->out_w == 1)
      snprintf(shape, sizeof shape, "(None, %d)", ly->out_c);
    else
      snprintf(shape, sizeof shape, "(None, %d, %d, %d)", ly->out_h, ly->out_w, ly->out_c);
    snprintf(params, sizeof params, "%lld", (long long)(ly->n_weights + ly->n_biases));
    snprintf(line, sizeof line, " %-27s %-25s %s\n", name, shape, params);
    luaL_addstring(&b, line);
  }
  luaL_addstring(&b, dbl);
  luaL_addstring(&b, "Total params: ");
  add_thousands(&b, (long long)m->net.n_params);
  luaL_addstring(&b, "\nTrainable params: ");
  add_thousands(&b, (long long)m->net.n_params);
  luaL_addstring(&b, "\nNon-trainable params: 0\n");
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
  lua_pushfstring(L, "fmnist.Model %s: %d layers, %I parameters, %d epochs trained", m->desc.kind,
                  m->net.n_layers, (lua_Integer)m->net.n_params, m->epochs_trained);
  return 1;
}

/* model.kind, model.params, model.epochs, model.layers, model.info, model.defaults; other keys
 * are methods. */
static int model_index(lua_State *L) {
  model *m = check_model(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "kind") == 0) {
    lua_pushstring(L, m->desc.kind);
  } else if (k && strcmp(k, "params") == 0) {
    lua_pushinteger(L, m->net.n_params);
  } else if (k && strcmp(k, "epochs") == 0) {
    lua_pushinteger(L, m->epochs_trained);
  } else if (k && strcmp(k, "layers") == 0) {
    lua_pushinteger(L, m->net.n_layers);
  } else if (k && strcmp(k, "info") == 0) {
    lua_getiuservalue(L, 1, 1);
  } else if (k && strcmp(k, "defaults") == 0) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, m->def.epochs);
    lua_setfield(L, -2, "epochs");
    lua_pushinteger(L, m->def.batch);
    lua_setfield(L, -2, "batch");
    lua_pushnumber(L, m->def.lr);
    lua_setfield(L, -2, "lr");
    lua_pushstring(L, m->def.optimizer == FM_OPTIM_ADAM ? "adam" : "sgd");
    lua_setfield(L, -2, "optimizer");
    lua_pushstring(L, m->def.schedule == FM_SCHED_COSINE ? "cosine" : "constant");
    lua_setfield(L, -2, "schedule");
    lua_pushnumber(L, m->def.weight_decay);
    lua_setfield(L, -2, "weight_decay");
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

/* model:weights(i) -> weights, biases of layer i: dense in x out, conv2d kh x kw x cin x cout.
 * The tensors are copies. */
static int model_weights(lua_State *L) {
  model *m = check_model(L, 1);
  int i = check_layer(L, m, 2);
  const fm_layer *ly = &m->net.layer[i];
  if (ly->n_weights == 0)
    return luaL_error(L, "weights: layer %d (%s) has no weights", i + 1,
                      fm_layer_kind_name(ly->spec.kind));
  fm_tensor *w;
  if (ly->spec.kind == FM_LAYER_CONV2D) {
    int64_t shape[4] = {ly->conv.kh, ly->conv.kw, ly->conv.cin, ly->conv.cout};
    w = lfm_newtensor(L, 4, shape);
  } else {
    int64_t shape[2] = {ly->in_size, ly->out_c};
    w = lfm_newtensor(L, 2, shape);
  }
  memcpy(w->data, fm_net_weights(&m->net, i), sizeof(float) * (size_t)ly->n_weights);
  int64_t bs[1] = {ly->n_biases};
  fm_tensor *bt = lfm_newtensor(L, 1, bs);
  memcpy(bt->data, fm_net_biases(&m->net, i), sizeof(float) * (size_t)ly->n_biases);
  return 2;
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
 * "key=value" line each; a key holding '=', a newline or a zero byte, or a value holding a newline
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
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 4, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  if (fm_model_save(path, &m->desc, lua_tostring(L, -1), m->params) != FM_OK)
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
 * allocated for it, and read again into the new model. */
static int model_load(lua_State *L) {
  const char *path = check_path(L, 1);
  fm_model_desc d;
  fm_net net;
  if (fm_model_probe(path, &d, &net) != FM_OK) return lfm_engine_error(L, "load_model");
  char *meta = push_array(L, (int64_t)d.meta_bytes + 1, 1, "load_model");
  model *m = new_model(L, &d);
  if (fm_model_read(path, &d, meta, m->params) != FM_OK) return lfm_engine_error(L, "load_model");
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

void lfm_open_model(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", model_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"fit", model_fit}, {"predict", model_predict}, {"predict_proba", model_predict_proba},
      {"evaluate", model_evaluate}, {"summary", model_summary}, {"weights", model_weights},
      {"set_weights", model_set_weights}, {"gradient_wrt_input", model_gradient_wrt_input},
      {"activations", model_activations}, {"layer", model_layer}, {"save", model_save},
      {NULL, NULL}};
  static const luaL_Reg functions[] = {{"LogReg", model_logreg}, {"MLP", model_mlp},
                                       {"CNN", model_cnn}, {"load_model", model_load},
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
