/* l_export.c: a model's network for other programs —
 *   model:export_onnx(path) -> path   an ONNX model computing the class probabilities from
 *                                     N x 1 x 28 x 28 images (engine/fm_onnx.h)
 *   model:export_npy(dir) -> dir      every parameter and state tensor as a .npy file in the
 *                                     engine's own layout, and index.json describing the layers
 * Every file is written through a temporary file renamed into place (engine/fm_file.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fm_file.h"
#include "fm_npy.h"
#include "fm_onnx.h"
#include "lfm.h"
#include "lfm_modules.h"

/* Where the JSON encoder made from the embedded fmnist.json is kept (never package.loaded's). */
#define JSON_ENCODE_KEY "fmnist.export.json_encode"

/* A file or directory name: a string (a number is not taken for one), without zero bytes. */
static const char *check_path(lua_State *L, int arg, const char *what) {
  size_t len;
  luaL_checktype(L, arg, LUA_TSTRING);
  const char *path = lua_tolstring(L, arg, &len);
  if (strlen(path) != len)
    luaL_argerror(L, arg, lua_pushfstring(L, "a %s name cannot hold a zero byte", what));
  if (len == 0) luaL_argerror(L, arg, lua_pushfstring(L, "the %s name is empty", what));
  return path;
}

/* model:export_onnx(path) -> path */
static int model_export_onnx(lua_State *L) {
  const char *kind;
  const fm_net *net = lfm_checkmodel(L, 1, &kind);
  const char *path = check_path(L, 2, "file");
  lua_settop(L, 2);
  const fm_onnx_info info = {LFM_VERSION, kind, fm_class_names, FM_CLASSES};
  if (fm_onnx_write(net, path, &info) != FM_OK) return lfm_engine_error(L, "export_onnx");
  return 1;
}

/* ---- model:export_npy ---- */

/* Pushes json.encode of the embedded fmnist.json, compiled from the module's source the first
 * time and kept in the registry. */
static void push_json_encode(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, JSON_ENCODE_KEY) == LUA_TFUNCTION) return;
  lua_pop(L, 1);
  const lfm_lua_module *m = lfm_lua_modules;
  while (m->name && strcmp(m->name, "json") != 0) m++;
  if (!m->name) luaL_error(L, "export_npy: the module fmnist.json is missing from the build");
  if (luaL_loadbufferx(L, m->source, m->size, m->chunkname, "t") != LUA_OK) lua_error(L);
  lua_pushliteral(L, "fmnist.json");
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1) || lua_getfield(L, -1, "encode") != LUA_TFUNCTION)
    luaL_error(L, "export_npy: fmnist.json has no encode function");
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, JSON_ENCODE_KEY);
}

/* A float spec field as the shortest decimal that reads back as the same float (1e-05, not
 * 9.9999997e-06), so that index.json says what the user gave. */
static void push_float(lua_State *L, float v) {
  char buf[32];
  for (int digits = 6; digits <= 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
    if ((float)strtod(buf, NULL) == v) break;
  }
  lua_pushnumber(L, strtod(buf, NULL));
}

static void push_ints(lua_State *L, int n, const int64_t *v) {
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    lua_pushinteger(L, (lua_Integer)v[k]);
    lua_rawseti(L, -2, k + 1);
  }
}

static void push_shape3(lua_State *L, int h, int w, int c) {
  const int64_t s[3] = {h, w, c};
  push_ints(L, 3, s);
}

/* The name a summary gives layer i: its kind and how many of that kind came up to it
 * ("conv2d_2"); "input" for the network input. */
static void push_layer_name(lua_State *L, const fm_net *net, int i) {
  if (i < 0) {
    lua_pushliteral(L, "input");
    return;
  }
  int count = 0;
  for (int j = 0; j <= i; j++) count += net->layer[j].spec.kind == net->layer[i].spec.kind;
  lua_pushfstring(L, "%s_%d", fm_layer_kind_name(net->layer[i].spec.kind), count);
}

/* The layer's fields as its kind's table names them ({filters = 32, kernel = {3, 3}, ...}), or
 * nothing (0 returned) for a kind without fields. */
static int push_fields(lua_State *L, const fm_layer *ly) {
  static const char *const inits[] = {"auto", "he", "glorot", "zeros"};
  const fm_layer_type *t = fm_layer_type_of(ly->spec.kind);
  if (!t || !t->fields[0].name) return 0;
  lua_newtable(L);
  for (const fm_field *f = t->fields; f->name; f++) {
    const char *at = (const char *)&ly->spec + f->offset;
    int iv;
    float fv;
    memcpy(&iv, at, sizeof iv);
    memcpy(&fv, at, sizeof fv);
    switch (f->type) {
      case FM_FIELD_INT:
        lua_pushinteger(L, iv);
        break;
      case FM_FIELD_FLOAT:
        push_float(L, fv);
        break;
      case FM_FIELD_KERNEL: {
        const int64_t k[2] = {ly->spec.kh, ly->spec.kw ? ly->spec.kw : ly->spec.kh};
        push_ints(L, 2, k);
        break;
      }
      case FM_FIELD_PADDING:
        lua_pushstring(L, iv ? "same" : "valid");
        break;
      case FM_FIELD_BIAS:
        lua_pushboolean(L, !iv);
        break;
      case FM_FIELD_INIT:
        lua_pushstring(L, iv >= 0 && iv <= 3 ? inits[iv] : "auto");
        break;
    }
    lua_setfield(L, -2, f->name);
  }
  return 1;
}

/* The tensors of one layer: where each lives, its shape in the engine's layout, and its role. */
typedef struct part {
  const char *role;
  const float *data;
  int ndim;
  int64_t shape[4];
} part;

/* The tensors of layer ly in net, into p (room for 4); returns how many. */
static int layer_parts(const fm_net *net, const fm_layer *ly, part *p) {
  const float *w = net->params + ly->offset, *b = w + ly->n_weights;
  int n = 0;
  switch (ly->spec.kind) {
    case FM_LAYER_DENSE:
      p[n++] = (part){"weight", w, 2, {ly->in_size, ly->out_c}};
      if (ly->n_biases) p[n++] = (part){"bias", b, 1, {ly->out_c}};
      break;
    case FM_LAYER_CONV2D:
      p[n++] = (part){"weight",
                      w,
                      4,
                      {ly->conv.kh, ly->conv.kw, ly->conv.cin / ly->conv.groups, ly->conv.cout}};
      if (ly->n_biases) p[n++] = (part){"bias", b, 1, {ly->out_c}};
      break;
    case FM_LAYER_BATCHNORM: {
      const float *s = net->state + ly->state_offset;
      p[n++] = (part){"scale", w, 1, {ly->out_c}};
      p[n++] = (part){"shift", b, 1, {ly->out_c}};
      p[n++] = (part){"running_mean", s, 1, {ly->out_c}};
      p[n++] = (part){"running_var", s + ly->out_c, 1, {ly->out_c}};
      break;
    }
    default: /* a kind added later: its tensors flat, so that none is left out */
      if (ly->n_weights) p[n++] = (part){"weight", w, 1, {ly->n_weights}};
      if (ly->n_biases) p[n++] = (part){"bias", b, 1, {ly->n_biases}};
      if (ly->n_state) p[n++] = (part){"state", net->state + ly->state_offset, 1, {ly->n_state}};
      break;
  }
  return n;
}

static int layer_digits(const fm_net *net) {
  int width = 2;
  for (int n = net->n_layers; n >= 100; n /= 10) width++;
  return width;
}

/* Pushes the file name of a part: "03_conv2d_weight.npy". */
static const char *push_file_name(lua_State *L, const fm_net *net, int i, const char *role) {
  char buf[96];
  int len = snprintf(buf, sizeof buf, "%0*d_%s_%s.npy", layer_digits(net), i + 1,
                     fm_layer_kind_name(net->layer[i].spec.kind), role);
  if (len < 0 || len >= (int)sizeof buf) luaL_error(L, "export_npy: a file name is too long");
  return lua_pushstring(L, buf);
}

/* Pushes the index of the export as a table (what index.json holds). */
static void push_index(lua_State *L, const fm_net *net, const char *kind) {
  lua_newtable(L);
  lua_pushliteral(L, "fmnist-lua npy export");
  lua_setfield(L, -2, "format");
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, "fmnist-lua " LFM_VERSION);
  lua_setfield(L, -2, "producer");
  char text[64];
  fm_onnx_text(text, sizeof text, kind); /* JSON is UTF-8; a kind may be any bytes */
  lua_pushstring(L, text);
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, net->n_params);
  lua_setfield(L, -2, "params");
  lua_pushinteger(L, net->n_state);
  lua_setfield(L, -2, "state");
  push_shape3(L, net->in_h, net->in_w, net->in_c);
  lua_setfield(L, -2, "input_shape");
  lua_createtable(L, net->classes, 0);
  for (int c = 0; c < net->classes; c++) {
    if (c < FM_CLASSES)
      lua_pushstring(L, fm_class_names[c]);
    else
      lua_pushfstring(L, "class %d", c);
    lua_rawseti(L, -2, c + 1);
  }
  lua_setfield(L, -2, "classes");
  lua_newtable(L);
  lua_pushliteral(L,
                  "float32, little-endian, C order; shapes per image are [height, width, "
                  "channels] (NHWC batches)");
  lua_setfield(L, -2, "all");
  lua_pushliteral(L, "weight [inputs, units]: y = x @ weight + bias, x flattened in HWC order");
  lua_setfield(L, -2, "dense");
  lua_pushliteral(L,
                  "weight [kh, kw, input channels / groups, filters] (HWIO); groups = channels "
                  "is depthwise (filter c sees channel c)");
  lua_setfield(L, -2, "conv2d");
  lua_pushliteral(L,
                  "y = (x - running_mean) / sqrt(running_var + eps) * scale + shift in "
                  "inference, per channel");
  lua_setfield(L, -2, "batchnorm");
  lua_setfield(L, -2, "layouts");
  lua_createtable(L, net->n_layers, 0);
  for (int i = 0; i < net->n_layers; i++) {
    const fm_layer *ly = &net->layer[i];
    lua_newtable(L);
    lua_pushinteger(L, i + 1);
    lua_setfield(L, -2, "index");
    lua_pushstring(L, fm_layer_kind_name(ly->spec.kind));
    lua_setfield(L, -2, "kind");
    push_layer_name(L, net, i);
    lua_setfield(L, -2, "name");
    lua_createtable(L, ly->n_in, 0);
    for (int k = 0; k < ly->n_in; k++) {
      push_layer_name(L, net, ly->in[k]);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "inputs");
    if (push_fields(L, ly)) lua_setfield(L, -2, "fields");
    push_shape3(L, ly->in_h, ly->in_w, ly->in_c);
    lua_setfield(L, -2, "input_shape");
    push_shape3(L, ly->out_h, ly->out_w, ly->out_c);
    lua_setfield(L, -2, "output_shape");
    lua_pushinteger(L, ly->n_weights + ly->n_biases + ly->n_state);
    lua_setfield(L, -2, "params");
    part parts[4];
    int n = layer_parts(net, ly, parts);
    lua_createtable(L, n, 0);
    for (int k = 0; k < n; k++) {
      lua_createtable(L, 0, 3);
      lua_pushstring(L, parts[k].role);
      lua_setfield(L, -2, "role");
      push_file_name(L, net, i, parts[k].role);
      lua_setfield(L, -2, "file");
      push_ints(L, parts[k].ndim, parts[k].shape);
      lua_setfield(L, -2, "shape");
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "files");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "layers");
}

/* The directory must be one (not through a symbolic link), or is made. */
static void ensure_directory(lua_State *L, const char *dir) {
  struct stat st;
  if (lstat(dir, &st) != 0) {
    if (errno != ENOENT) luaL_error(L, "export_npy: %s: %s", dir, strerror(errno));
    if (mkdir(dir, 0777) != 0)
      luaL_error(L, "export_npy: %s: cannot create the directory (%s)", dir, strerror(errno));
    return;
  }
  if (S_ISLNK(st.st_mode))
    luaL_error(L,
               "export_npy: %s: is a symbolic link; not writing through it (give the "
               "directory it points to)",
               dir);
  if (!S_ISDIR(st.st_mode))
    luaL_error(L, "export_npy: %s: exists and is not a directory; not replacing it", dir);
}

/* Pushes dir/name. */
static const char *push_join(lua_State *L, const char *dir, const char *name) {
  size_t len = strlen(dir);
  return lua_pushfstring(L, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name);
}

/* model:export_npy(dir) -> dir. The index is made (and encoded) before any file is written, and
 * written last, so that it names only files that are complete. */
static int model_export_npy(lua_State *L) {
  const char *kind;
  const fm_net *net = lfm_checkmodel(L, 1, &kind);
  const char *dir = check_path(L, 2, "directory");
  lua_settop(L, 2);
  push_json_encode(L);
  push_index(L, net, kind);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) /* 3: the JSON text */
    return luaL_error(L, "export_npy: %s", lua_tostring(L, -1));
  ensure_directory(L, dir);
  for (int i = 0; i < net->n_layers; i++) {
    part parts[4];
    int n = layer_parts(net, &net->layer[i], parts);
    for (int k = 0; k < n; k++) {
      const char *path = push_join(L, dir, push_file_name(L, net, i, parts[k].role));
      fm_tensor t;
      if (fm_shape_set(&t, parts[k].ndim, parts[k].shape) != FM_OK)
        return lfm_engine_error(L, "export_npy");
      t.data = (float *)parts[k].data; /* only read */
      if (fm_npy_write(path, &t) != FM_OK) return lfm_engine_error(L, "export_npy");
      lua_pop(L, 2);
    }
  }
  const char *path = push_join(L, dir, "index.json");
  fm_atomic_file a;
  if (fm_atomic_begin(&a, path) != FM_OK) return lfm_engine_error(L, "export_npy");
  size_t len;
  const char *json = lua_tolstring(L, 3, &len);
  fwrite(json, 1, len, a.f);
  fputc('\n', a.f);
  if (fm_atomic_commit(&a) != FM_OK) return lfm_engine_error(L, "export_npy");
  lua_settop(L, 2);
  return 1;
}

void lfm_open_export(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"export_onnx", model_export_onnx}, {"export_npy", model_export_npy}, {NULL, NULL}};
  lfm_model_methods(L, methods);
}
