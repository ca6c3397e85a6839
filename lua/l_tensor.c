/* l_tensor.c: the userdata fmnist.Tensor.
 *
 * The header (fm_tensor) and the floats live in one userdata block, the floats 64-byte aligned, so
 * the garbage collector sees the whole size and no __gc is needed. Lua-side indices are 1-based. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fm_npy.h"
#include "lfm.h"

#define ALIGN 64

static fm_rng global_rng;
static int global_rng_ready;

fm_rng *lfm_rng(void) {
  if (!global_rng_ready) {
    fm_rng_seed(&global_rng, 0);
    global_rng_ready = 1;
  }
  return &global_rng;
}

/* The name of the C function running (fm.zeros -> "zeros"), as luaL_argerror finds it, for
 * errors raised by helpers that do not know who called them. */
static const char *calling_function(lua_State *L) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) return ar.name;
  return "tensor";
}

/* lua_newuserdatauv in a protected call (size and number of user values as arguments), so that
 * a failed allocation can be reported naming what it was for. */
static int new_userdata_unprotected(lua_State *L) {
  lua_newuserdatauv(L, (size_t)lua_tointeger(L, 1), (int)lua_tointeger(L, 2));
  return 1;
}

/* Below this a failed allocation is left to Lua's own "not enough memory": the protected call
 * costs more than the allocation. */
#define NAMED_ALLOC_MIN (64 * 1024)

void *lfm_newuserdata(lua_State *L, size_t bytes, int nuvalue, const char *fname,
                      const char *what) {
  if (bytes < NAMED_ALLOC_MIN) return lua_newuserdatauv(L, bytes, nuvalue);
  lua_pushcfunction(L, new_userdata_unprotected);
  lua_pushinteger(L, (lua_Integer)bytes);
  lua_pushinteger(L, nuvalue);
  int status = lua_pcall(L, 2, 1, 0);
  if (status == LUA_ERRMEM) {
    lua_pop(L, 1);
    char size[32];
    snprintf(size, sizeof size, "%.1f MB", (double)bytes / (1 << 20));
    luaL_error(L, "%s: out of memory for %s (%s)", fname ? fname : calling_function(L), what, size);
  } else if (status != LUA_OK) {
    lua_error(L);
  }
  return lua_touserdata(L, -1);
}

fm_tensor *lfm_newtensor(lua_State *L, int ndim, const int64_t *shape) {
  fm_tensor hdr;
  if (fm_shape_set(&hdr, ndim, shape) != FM_OK) luaL_error(L, "%s: %s", calling_function(L), fm_error());
  size_t bytes = sizeof(fm_tensor) + ALIGN + (size_t)hdr.numel * sizeof(float);
  char s[FM_SHAPE_STR], what[FM_SHAPE_STR + 16];
  snprintf(what, sizeof what, "a %s tensor", fm_shape_str(&hdr, s, sizeof s));
  fm_tensor *t = lfm_newuserdata(L, bytes, 0, NULL, what);
  *t = hdr;
  uintptr_t p = (uintptr_t)(t + 1);
  t->data = (float *)((p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
  memset(t->data, 0, (size_t)hdr.numel * sizeof(float));
  luaL_setmetatable(L, LFM_TENSOR);
  return t;
}

fm_tensor *lfm_newtensor_like(lua_State *L, const fm_tensor *t) {
  return lfm_newtensor(L, t->ndim, t->shape);
}

fm_tensor *lfm_checktensor(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, LFM_TENSOR);
}

fm_tensor *lfm_totensor(lua_State *L, int arg) {
  return luaL_testudata(L, arg, LFM_TENSOR);
}

static const char *shape_str(const fm_tensor *t, char *buf, size_t size) {
  return fm_shape_str(t, buf, size);
}

/* ---- construction ---- */

/* An integer argument or table entry that must be a size: the error names the function, where
 * the value was and what it was (a float, NaN, a string, a negative number). */
static int64_t check_size_value(lua_State *L, int idx, const char *fname, const char *where) {
  int isint;
  lua_Integer d = lua_tointegerx(L, idx, &isint);
  if (!isint) {
    const char *shown = luaL_tolstring(L, idx, NULL);
    return luaL_error(L, "%s: %s is %s (a non-negative integer expected)", fname, where, shown);
  }
  if (d < 0) return luaL_error(L, "%s: %s is %I (dimension must not be negative)", fname, where, d);
  return d;
}

/* Reads a shape from the arguments first..last: numbers (fm.zeros(2, 3)) or one table
 * (fm.zeros{2, 3}). A table's length and entries may come from metamethods: the length is checked
 * before anything is sized from it, and each entry is checked as it is read. */
static int check_shape(lua_State *L, int first, int last, int64_t *shape, const char *fname) {
  int ndim = 0;
  char where[48];
  if (lua_type(L, first) == LUA_TTABLE) {
    if (last > first) luaL_argerror(L, first + 1, "nothing may follow a shape table");
    lua_Integer len = luaL_len(L, first);
    if (len < 1 || len > FM_MAX_DIMS)
      return luaL_argerror(L, first, lua_pushfstring(L, "a shape has 1 to %d dimensions, not %I",
                                                     FM_MAX_DIMS, len));
    ndim = (int)len;
    for (int i = 0; i < ndim; i++) {
      lua_geti(L, first, i + 1);
      snprintf(where, sizeof where, "dimension %d of the shape", i + 1);
      shape[i] = check_size_value(L, -1, fname, where);
      lua_pop(L, 1);
    }
    return ndim;
  }
  for (int a = first; a <= last; a++) {
    if (ndim == FM_MAX_DIMS)
      return luaL_argerror(L, a, lua_pushfstring(L, "at most %d dimensions", FM_MAX_DIMS));
    luaL_checkinteger(L, a); /* the usual "bad argument" for a non-number */
    snprintf(where, sizeof where, "dimension %d", ndim + 1);
    shape[ndim++] = check_size_value(L, a, fname, where);
  }
  if (ndim == 0) return luaL_argerror(L, first, "dimensions expected");
  return ndim;
}

static int tensor_zeros(lua_State *L) {
  int64_t shape[FM_MAX_DIMS];
  int ndim = check_shape(L, 1, lua_gettop(L), shape, "zeros");
  lfm_newtensor(L, ndim, shape);
  return 1;
}

static int tensor_ones(lua_State *L) {
  int64_t shape[FM_MAX_DIMS];
  int ndim = check_shape(L, 1, lua_gettop(L), shape, "ones");
  fm_fill(lfm_newtensor(L, ndim, shape), 1.0f);
  return 1;
}

/* fm.full(d1, ..., dn, value) or fm.full({d1, ..., dn}, value) */
static int tensor_full(lua_State *L) {
  int top = lua_gettop(L);
  if (top < 2) return luaL_error(L, "full: expected dimensions and a value, e.g. full(2, 3, 7)");
  float value = (float)luaL_checknumber(L, top);
  int64_t shape[FM_MAX_DIMS];
  int ndim = check_shape(L, 1, top - 1, shape, "full");
  fm_fill(lfm_newtensor(L, ndim, shape), value);
  return 1;
}

static int tensor_rand(lua_State *L) {
  int64_t shape[FM_MAX_DIMS];
  int ndim = check_shape(L, 1, lua_gettop(L), shape, "rand");
  fm_tensor *t = lfm_newtensor(L, ndim, shape);
  fm_rng *r = lfm_rng();
  for (int64_t i = 0; i < t->numel; i++) t->data[i] = fm_rng_uniform(r);
  return 1;
}

static int tensor_randn(lua_State *L) {
  int64_t shape[FM_MAX_DIMS];
  int ndim = check_shape(L, 1, lua_gettop(L), shape, "randn");
  fm_tensor *t = lfm_newtensor(L, ndim, shape);
  fm_rng *r = lfm_rng();
  for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)fm_rng_normal(r);
  return 1;
}

/* fm.arange(stop), fm.arange(start, stop [, step]): numpy's half-open range. */
static int tensor_arange(lua_State *L) {
  double start = 0, stop, step = 1;
  if (lua_gettop(L) <= 1) {
    stop = luaL_checknumber(L, 1);
  } else {
    start = luaL_checknumber(L, 1);
    stop = luaL_checknumber(L, 2);
    step = luaL_optnumber(L, 3, 1);
  }
  fm_tensor shape;
  if (fm_arange_shape(start, stop, step, &shape) != FM_OK) return lfm_engine_error(L, "arange");
  fm_arange(lfm_newtensor(L, 1, shape.shape), start, step);
  return 1;
}

/* The length of the table at idx (its __len may say anything), checked to be a possible size. */
static int64_t nested_len(lua_State *L, int idx, int depth) {
  lua_Integer n = luaL_len(L, idx);
  if (n < 0 || n > FM_MAX_NUMEL)
    luaL_error(L, "tensor: a table at depth %d has length %I (0 to %I expected)", depth + 1, n,
               (lua_Integer)FM_MAX_NUMEL);
  return n;
}

/* Walks a nested table to find its shape: {{1,2},{3,4}} is 2x2. Only the first entry of each
 * level is looked at; nested_fill checks the rest. */
static int nested_shape(lua_State *L, int idx, int depth, int64_t *shape) {
  if (depth == FM_MAX_DIMS) luaL_error(L, "tensor: more than %d levels of nesting", FM_MAX_DIMS);
  shape[depth] = nested_len(L, idx, depth);
  if (shape[depth] == 0) return depth + 1;
  lua_geti(L, idx, 1);
  int ndim = depth + 1;
  if (lua_istable(L, -1)) ndim = nested_shape(L, lua_gettop(L), depth + 1, shape);
  lua_pop(L, 1);
  return ndim;
}

/* Copies the nested table into data, checking that every row has the same length. Lengths and
 * entries are read again here and may differ from the first walk (metamethods run code): every
 * row is checked against the shape the tensor was made with, so at most numel floats are written
 * whatever the table does; the tensor is anchored on the stack by the caller. */
static void nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape,
                        float **data) {
  int64_t n = nested_len(L, idx, depth);
  if (n != shape[depth])
    luaL_error(L, "tensor: ragged table (a row at depth %d has %I elements, expected %I)", depth + 1,
               (lua_Integer)n, (lua_Integer)shape[depth]);
  for (int64_t i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    if (depth + 1 < ndim) {
      if (!lua_istable(L, -1))
        luaL_error(L, "tensor: expected a table at depth %d, got %s", depth + 2, luaL_typename(L, -1));
      nested_fill(L, lua_gettop(L), depth + 1, ndim, shape, data);
    } else {
      int isnum;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum)
        luaL_error(L, "tensor: element %I at depth %d is a %s, not a number", (lua_Integer)i,
                   depth + 1, luaL_typename(L, -1));
      *(*data)++ = (float)v;
    }
    lua_pop(L, 1);
  }
}

static int tensor_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  int64_t shape[FM_MAX_DIMS];
  int ndim = nested_shape(L, 1, 0, shape);
  fm_tensor *t = lfm_newtensor(L, ndim, shape); /* at index 2 until the end */
  float *p = t->data;
  nested_fill(L, 1, 0, ndim, shape, &p);
  return 1;
}

static int fm_seed(lua_State *L) {
  lua_Integer s = luaL_checkinteger(L, 1);
  fm_rng_seed(lfm_rng(), (uint64_t)s);
  global_rng_ready = 1;
  return 0;
}

/* ---- inspection ---- */

static void push_shape(lua_State *L, const fm_tensor *t) {
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->shape[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int tensor_shape(lua_State *L) {
  push_shape(L, lfm_checktensor(L, 1));
  return 1;
}

static int tensor_dim(lua_State *L) {
  lua_pushinteger(L, lfm_checktensor(L, 1)->ndim);
  return 1;
}

static int tensor_numel(lua_State *L) {
  lua_pushinteger(L, lfm_checktensor(L, 1)->numel);
  return 1;
}

static int tensor_len(lua_State *L) {
  lua_pushinteger(L, lfm_checktensor(L, 1)->shape[0]);
  return 1;
}

/* Flat offset of the 1-based indices at args first.., one per dimension. */
static int64_t check_offset(lua_State *L, const fm_tensor *t, int first, const char *fname) {
  int64_t off = 0;
  for (int d = 0; d < t->ndim; d++) {
    lua_Integer i = luaL_checkinteger(L, first + d);
    if (i < 1 || i > t->shape[d]) {
      char s[FM_SHAPE_STR];
      luaL_error(L, "%s: index %I out of range for dimension %d of a %s tensor", fname, i, d + 1,
                 shape_str(t, s, sizeof s));
    }
    off = off * t->shape[d] + (i - 1);
  }
  return off;
}

static int tensor_get(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  if (lua_gettop(L) - 1 != t->ndim)
    return luaL_error(L, "get: a %d-D tensor takes %d indices, got %d", t->ndim, t->ndim,
                      lua_gettop(L) - 1);
  lua_pushnumber(L, t->data[check_offset(L, t, 2, "get")]);
  return 1;
}

static int tensor_set(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  if (lua_gettop(L) - 2 != t->ndim)
    return luaL_error(L, "set: a %d-D tensor takes %d indices and a value, got %d arguments",
                      t->ndim, t->ndim, lua_gettop(L) - 1);
  float v = (float)luaL_checknumber(L, lua_gettop(L));
  t->data[check_offset(L, t, 2, "set")] = v;
  lua_settop(L, 1);
  return 1;
}

/* The i-th sub-tensor along the first dimension (a copy), or the element of a 1-D tensor. */
static int push_item(lua_State *L, fm_tensor *t, lua_Integer i) {
  if (i < 1 || i > t->shape[0]) {
    char s[FM_SHAPE_STR];
    return luaL_error(L, "index %I out of range for a %s tensor", i, shape_str(t, s, sizeof s));
  }
  if (t->ndim == 1) {
    lua_pushnumber(L, t->data[i - 1]);
    return 1;
  }
  fm_tensor *r = lfm_newtensor(L, t->ndim - 1, t->shape + 1);
  memcpy(r->data, t->data + (i - 1) * r->numel, (size_t)r->numel * sizeof(float));
  return 1;
}

static int tensor_index(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint) return luaL_error(L, "tensor index must be an integer");
    return push_item(L, t, i);
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1)); /* the methods table */
  return 1;
}

static int tensor_newindex(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  if (t->ndim != 1)
    return luaL_error(L, "t[i] = v needs a 1-D tensor (use t:set(i, j, v) on a %d-D one)", t->ndim);
  if (i < 1 || i > t->shape[0])
    return luaL_error(L, "index %I out of range for a tensor of %I elements", i,
                      (lua_Integer)t->shape[0]);
  t->data[i - 1] = (float)luaL_checknumber(L, 3);
  return 0;
}

static void totable_rec(lua_State *L, const fm_tensor *t, int d, const float **p) {
  lua_createtable(L, t->shape[d] < INT32_MAX ? (int)t->shape[d] : INT32_MAX, 0);
  for (int64_t i = 0; i < t->shape[d]; i++) {
    if (d + 1 == t->ndim)
      lua_pushnumber(L, *(*p)++);
    else
      totable_rec(L, t, d + 1, p);
    lua_rawseti(L, -2, i + 1);
  }
}

static int tensor_totable(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  luaL_checkstack(L, 2 * FM_MAX_DIMS + 4, "totable");
  const float *p = t->data;
  totable_rec(L, t, 0, &p);
  return 1;
}

/* ---- printing, like numpy: aligned columns, the middle of long dimensions elided ---- */

#define EDGE 3            /* items shown at each end of an elided dimension */
#define SUMMARIZE_AT 1000 /* elements above which long dimensions are elided */

typedef struct printer {
  luaL_Buffer b;
  const fm_tensor *t;
  int summarize;
  char fmt[16];
  int width;
} printer;

static int shown(const printer *pr, int64_t n, int64_t i) {
  return !pr->summarize || n <= 2 * EDGE || i < EDGE || i >= n - EDGE;
}

static int format_value(const printer *pr, char *out, size_t size, float v) {
  if (isnan(v)) return snprintf(out, size, "nan");
  if (isinf(v)) return snprintf(out, size, v > 0 ? "inf" : "-inf");
  return snprintf(out, size, pr->fmt, (double)v);
}

/* Chooses one format for all shown values: integers as "3.", else fixed or scientific. */
static void choose_format(printer *pr) {
  const fm_tensor *t = pr->t;
  int integral = 1;
  double maxabs = 0, minabs = INFINITY;
  for (int64_t i = 0; i < t->numel; i++) {
    float v = t->data[i];
    if (!isfinite(v)) continue;
    double a = fabs(v);
    if (a > maxabs) maxabs = a;
    if (a > 0 && a < minabs) minabs = a;
    if (v != floorf(v)) integral = 0;
  }
  if (integral && maxabs < 1e8)
    strcpy(pr->fmt, "%.0f.");
  else if (maxabs >= 1e6 || (minabs < 1e-4 && maxabs > 0) || maxabs / minabs >= 1e5)
    strcpy(pr->fmt, "%.4e");
  else
    strcpy(pr->fmt, "%.4f");
  pr->width = 0;
  char buf[64];
  for (int64_t i = 0; i < t->numel; i++) {
    int w = format_value(pr, buf, sizeof buf, t->data[i]);
    if (w > pr->width) pr->width = w;
  }
}

static void print_rec(printer *pr, int d, int64_t offset, int indent) {
  const fm_tensor *t = pr->t;
  int64_t n = t->shape[d], stride = 1;
  for (int k = d + 1; k < t->ndim; k++) stride *= t->shape[k];
  luaL_addchar(&pr->b, '[');
  int first = 1;
  for (int64_t i = 0; i < n; i++) {
    if (!shown(pr, n, i)) {
      if (i == EDGE) {
        if (d + 1 == t->ndim)
          luaL_addstring(&pr->b, " ...");
        else {
          luaL_addchar(&pr->b, '\n');
          for (int k = 0; k < indent + 1; k++) luaL_addchar(&pr->b, ' ');
          luaL_addstring(&pr->b, "...");
        }
      }
      continue;
    }
    if (!first) {
      if (d + 1 == t->ndim)
        luaL_addchar(&pr->b, ' ');
      else {
        for (int k = d + 1; k < t->ndim; k++) luaL_addchar(&pr->b, '\n');
        for (int k = 0; k < indent + 1; k++) luaL_addchar(&pr->b, ' ');
      }
    } else if (d + 1 == t->ndim && i > 0) {
      luaL_addchar(&pr->b, ' ');
    }
    first = 0;
    if (d + 1 == t->ndim) {
      char buf[64];
      int w = format_value(pr, buf, sizeof buf, t->data[offset + i]);
      for (; w < pr->width; w++) luaL_addchar(&pr->b, ' ');
      luaL_addstring(&pr->b, buf);
    } else {
      print_rec(pr, d + 1, offset + i * stride, indent + 1);
    }
  }
  luaL_addchar(&pr->b, ']');
}

static int tensor_tostring(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  printer pr;
  pr.t = t;
  pr.summarize = t->numel > SUMMARIZE_AT;
  choose_format(&pr);
  luaL_buffinit(L, &pr.b);
  if (t->numel > 0) {
    print_rec(&pr, 0, 0, 0);
    luaL_addchar(&pr.b, '\n');
  }
  char s[FM_SHAPE_STR];
  lua_pushfstring(L, "[fmnist.Tensor of size %s]", shape_str(t, s, sizeof s));
  luaL_addvalue(&pr.b);
  luaL_pushresult(&pr.b);
  return 1;
}

/* ---- arithmetic ---- */

static int arith(lua_State *L, fm_binop op, const char *name) {
  fm_tensor *a = lfm_totensor(L, 1), *b = lfm_totensor(L, 2);
  if (a && b) {
    fm_tensor shape;
    if (fm_binop_shape(a, b, &shape) != FM_OK) return luaL_error(L, "%s: %s", name, fm_error());
    fm_tensor *r = lfm_newtensor(L, shape.ndim, shape.shape);
    fm_binop_tt(op, a, b, r);
    return 1;
  }
  if (a || b) {
    int scalar_arg = a ? 2 : 1;
    int isnum;
    lua_Number s = lua_tonumberx(L, scalar_arg, &isnum);
    if (!isnum)
      return luaL_error(L, "%s: a tensor and a %s do not combine (number or tensor expected)", name,
                        luaL_typename(L, scalar_arg));
    fm_tensor *t = a ? a : b;
    fm_tensor *r = lfm_newtensor_like(L, t);
    fm_binop_ts(op, t, (float)s, !a, r);
    return 1;
  }
  return luaL_error(L, "%s: tensor expected", name);
}

static int tensor_add(lua_State *L) { return arith(L, FM_ADD, "add"); }
static int tensor_sub(lua_State *L) { return arith(L, FM_SUB, "sub"); }
static int tensor_mul(lua_State *L) { return arith(L, FM_MUL, "mul"); }
static int tensor_div(lua_State *L) { return arith(L, FM_DIV, "div"); }

static int unop(lua_State *L, fm_unop op) {
  fm_tensor *t = lfm_checktensor(L, 1);
  fm_unop_apply(op, t, lfm_newtensor_like(L, t));
  return 1;
}

static int tensor_unm(lua_State *L) { return unop(L, FM_NEG); }
static int tensor_abs(lua_State *L) { return unop(L, FM_ABS); }
static int tensor_exp(lua_State *L) { return unop(L, FM_EXP); }
static int tensor_log(lua_State *L) { return unop(L, FM_LOG); }
static int tensor_sqrt(lua_State *L) { return unop(L, FM_SQRT); }

static int tensor_matmul(lua_State *L) {
  fm_tensor *a = lfm_checktensor(L, 1), *b = lfm_checktensor(L, 2);
  fm_tensor shape;
  if (fm_matmul_shape(a, b, &shape) != FM_OK) return lfm_engine_error(L, "matmul");
  fm_matmul(a, b, lfm_newtensor(L, shape.ndim, shape.shape));
  return 1;
}

/* ---- reductions: t:sum() is a number, t:sum(d) a tensor over dimension d ---- */

static int reduce(lua_State *L, fm_reduce op, const char *name) {
  fm_tensor *t = lfm_checktensor(L, 1);
  if (lua_isnoneornil(L, 2)) {
    double r;
    if (fm_reduce_all(op, t, &r) != FM_OK) return lfm_engine_error(L, name);
    if (op == FM_ARGMAX)
      lua_pushinteger(L, (lua_Integer)r + 1);
    else
      lua_pushnumber(L, r);
    return 1;
  }
  lua_Integer d = luaL_checkinteger(L, 2);
  if (d < 1 || d > t->ndim)
    return luaL_argerror(L, 2, lua_pushfstring(L, "dimension %I out of range 1..%d", d, t->ndim));
  fm_tensor shape;
  fm_reduce_shape(t, (int)d - 1, &shape);
  fm_tensor *r = lfm_newtensor(L, shape.ndim, shape.shape);
  if (fm_reduce_dim(op, t, (int)d - 1, r) != FM_OK) return lfm_engine_error(L, name);
  if (op == FM_ARGMAX)
    for (int64_t i = 0; i < r->numel; i++) r->data[i] += 1.0f;
  return 1;
}

static int tensor_sum(lua_State *L) { return reduce(L, FM_SUM, "sum"); }
static int tensor_mean(lua_State *L) { return reduce(L, FM_MEAN, "mean"); }
static int tensor_std(lua_State *L) { return reduce(L, FM_STD, "std"); }
static int tensor_min(lua_State *L) { return reduce(L, FM_MIN, "min"); }
static int tensor_max(lua_State *L) { return reduce(L, FM_MAX, "max"); }
static int tensor_argmax(lua_State *L) { return reduce(L, FM_ARGMAX, "argmax"); }

/* ---- shape changes (copies: a tensor owns its floats) ---- */

/* t:reshape(d1, ..., dn) or t:reshape{d1, ..., dn}; one dimension may be -1. */
static int tensor_reshape(lua_State *L) {
  lfm_checktensor(L, 1);
  int64_t want[FM_MAX_DIMS];
  int ndim = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, 2);
    if (len < 1 || len > FM_MAX_DIMS)
      return luaL_argerror(L, 2, lua_pushfstring(L, "1 to %d dimensions expected, got %I",
                                                 FM_MAX_DIMS, len));
    ndim = (int)len;
    for (int i = 0; i < ndim; i++) {
      lua_geti(L, 2, i + 1);
      int isint;
      want[i] = lua_tointegerx(L, -1, &isint);
      if (!isint)
        return luaL_error(L, "reshape: dimension %d is %s (an integer expected)", i + 1,
                          luaL_tolstring(L, -1, NULL));
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    if (top < 2) return luaL_error(L, "reshape: dimensions expected");
    if (top - 1 > FM_MAX_DIMS) return luaL_error(L, "reshape: at most %d dimensions", FM_MAX_DIMS);
    for (int a = 2; a <= top; a++) want[ndim++] = luaL_checkinteger(L, a);
  }
  /* Only now, with every argument read, is the tensor's memory used. */
  fm_tensor *t = lfm_checktensor(L, 1);
  fm_tensor shape;
  if (fm_reshape_shape(t, ndim, want, &shape) != FM_OK) return lfm_engine_error(L, "reshape");
  fm_tensor *r = lfm_newtensor(L, shape.ndim, shape.shape);
  fm_copy(r, t);
  return 1;
}

static int tensor_transpose(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  if (t->ndim != 2) {
    char s[FM_SHAPE_STR];
    return luaL_error(L, "transpose: a 2-D tensor expected, got %s", shape_str(t, s, sizeof s));
  }
  int64_t shape[2] = {t->shape[1], t->shape[0]};
  fm_transpose(t, lfm_newtensor(L, 2, shape));
  return 1;
}

/* t:rows(i, j): rows i..j (1-based, inclusive) along the first dimension, as a copy. */
static int tensor_rows(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  lua_Integer j = luaL_optinteger(L, 3, i);
  if (i < 1 || j > t->shape[0] || j < i - 1) {
    char s[FM_SHAPE_STR];
    return luaL_error(L, "rows: %I..%I out of range for a %s tensor", i, j, shape_str(t, s, sizeof s));
  }
  int64_t shape[FM_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] = j - i + 1;
  fm_tensor *r = lfm_newtensor(L, t->ndim, shape);
  int64_t row = t->shape[0] ? t->numel / t->shape[0] : 0;
  memcpy(r->data, t->data + (i - 1) * row, (size_t)r->numel * sizeof(float));
  return 1;
}

static int tensor_clone(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  fm_copy(lfm_newtensor_like(L, t), t);
  return 1;
}

static int tensor_fill(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  fm_fill(t, (float)luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

/* t:map(f): a new tensor of f(x) for every element. */
static int tensor_map(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  fm_tensor *r = lfm_newtensor_like(L, t);
  for (int64_t i = 0; i < t->numel; i++) {
    lua_pushvalue(L, 2);
    lua_pushnumber(L, t->data[i]);
    lua_call(L, 1, 1);
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    if (!isnum)
      return luaL_error(L, "map: the function returned a %s for element %I (number expected)",
                        luaL_typename(L, -1), (lua_Integer)i + 1);
    r->data[i] = (float)v;
    lua_pop(L, 1);
  }
  return 1;
}

static int tensor_histc(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  lua_Integer bins = luaL_optinteger(L, 2, 100);
  lua_Number lo = luaL_optnumber(L, 3, 0), hi = luaL_optnumber(L, 4, 0);
  if (bins < 1 || bins > (1 << 24)) return luaL_argerror(L, 2, "bins must be in 1..16777216");
  int64_t shape[1] = {bins};
  fm_tensor *r = lfm_newtensor(L, 1, shape);
  if (fm_histc(t, bins, lo, hi, r) != FM_OK) return lfm_engine_error(L, "histc");
  return 1;
}

/* A file name argument: a string without embedded zeros (the system would cut it short). */
static const char *check_path(lua_State *L, int arg) {
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  if (strlen(path) != len) luaL_argerror(L, arg, "a file name must not contain a zero byte");
  return path;
}

static int tensor_save_npy(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  const char *path = check_path(L, 2);
  if (fm_npy_write(path, t) != FM_OK) return lfm_engine_error(L, "save_npy");
  lua_settop(L, 1);
  return 1;
}

static int tensor_load_npy(lua_State *L) {
  const char *path = check_path(L, 1);
  fm_npy_info info;
  if (fm_npy_probe(path, &info) != FM_OK) return lfm_engine_error(L, "load_npy");
  fm_tensor *t = lfm_newtensor(L, info.ndim, info.shape);
  if (fm_npy_read(path, &info, t) != FM_OK) return lfm_engine_error(L, "load_npy");
  return 1;
}

static int tensor_eq(lua_State *L) {
  fm_tensor *a = lfm_totensor(L, 1), *b = lfm_totensor(L, 2);
  lua_pushboolean(L, a && b && fm_same_shape(a, b) &&
                         memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0);
  return 1;
}

void lfm_open_tensor(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__newindex", tensor_newindex}, {"__len", tensor_len},
      {"__tostring", tensor_tostring}, {"__add", tensor_add}, {"__sub", tensor_sub},
      {"__mul", tensor_mul}, {"__div", tensor_div}, {"__unm", tensor_unm}, {"__eq", tensor_eq},
      {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"shape", tensor_shape}, {"dim", tensor_dim}, {"numel", tensor_numel},
      {"get", tensor_get}, {"set", tensor_set}, {"totable", tensor_totable},
      {"matmul", tensor_matmul}, {"sum", tensor_sum}, {"mean", tensor_mean}, {"std", tensor_std},
      {"min", tensor_min}, {"max", tensor_max}, {"argmax", tensor_argmax},
      {"reshape", tensor_reshape}, {"transpose", tensor_transpose}, {"rows", tensor_rows},
      {"clone", tensor_clone}, {"fill", tensor_fill}, {"map", tensor_map}, {"abs", tensor_abs},
      {"exp", tensor_exp}, {"log", tensor_log}, {"sqrt", tensor_sqrt}, {"histc", tensor_histc},
      {"save_npy", tensor_save_npy}, {"add", tensor_add}, {"sub", tensor_sub},
      {"mul", tensor_mul}, {"div", tensor_div}, {NULL, NULL}};
  static const luaL_Reg functions[] = {
      {"zeros", tensor_zeros}, {"ones", tensor_ones}, {"full", tensor_full},
      {"rand", tensor_rand}, {"randn", tensor_randn}, {"arange", tensor_arange},
      {"tensor", tensor_new}, {"seed", fm_seed}, {"load_npy", tensor_load_npy}, {NULL, NULL}};
  /* __index is a function (numbers index elements) whose upvalue is the methods table, also kept
   * as metatable.methods so that other files can add methods (lfm_addmethods). */
  luaL_newmetatable(L, LFM_TENSOR);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, tensor_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
