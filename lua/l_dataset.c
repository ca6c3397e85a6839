/* l_dataset.c: the userdata fmnist.Dataset and fm.load.
 *
 * Pixels and labels live in a storage userdata (uint8, one block, counted by the garbage collector).
 * A Dataset is a view of a storage: it keeps the storage alive as its user value and, for subsets,
 * shuffles and splits, holds an index array of storage rows inline. Views of one storage share its
 * pixels, so splitting 60,000 images costs 240 KB, not 47 MB. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lfm.h"

#define LFM_STORAGE "fmnist.Storage"

typedef struct storage {
  int64_t n, rows, cols;
  uint8_t *pixels, *labels;
} storage;

typedef struct dataset {
  fm_dataset view;
  char name[128]; /* what tostring shows: "train", "test", a file name, "subset of train" */
  int32_t index[]; /* view.n entries when view.index is set */
} dataset;

/* Pushes a storage for n images of rows x cols; pixels and labels are zeroed. */
static storage *new_storage(lua_State *L, int64_t n, int64_t rows, int64_t cols) {
  size_t bytes = sizeof(storage) + (size_t)(n * rows * cols) + (size_t)n;
  storage *s = lua_newuserdatauv(L, bytes, 0);
  s->n = n;
  s->rows = rows;
  s->cols = cols;
  s->pixels = (uint8_t *)(s + 1);
  s->labels = s->pixels + n * rows * cols;
  luaL_setmetatable(L, LFM_STORAGE);
  return s;
}

/* Pushes a dataset over the storage at index sidx: all of it (rows == NULL) or the given storage
 * rows. */
static dataset *new_dataset(lua_State *L, int sidx, const int32_t *rows, int64_t n,
                            const char *name) {
  sidx = lua_absindex(L, sidx);
  storage *s = luaL_checkudata(L, sidx, LFM_STORAGE);
  dataset *d = lua_newuserdatauv(L, sizeof(dataset) + (rows ? (size_t)n * sizeof(int32_t) : 0), 1);
  d->view.n = rows ? n : s->n;
  d->view.rows = s->rows;
  d->view.cols = s->cols;
  d->view.pixels = s->pixels;
  d->view.labels = s->labels;
  d->view.index = NULL;
  if (rows) {
    memcpy(d->index, rows, (size_t)n * sizeof(int32_t));
    d->view.index = d->index;
  }
  snprintf(d->name, sizeof d->name, "%s", name);
  lua_pushvalue(L, sidx);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, LFM_DATASET);
  return d;
}

static dataset *check_ds(lua_State *L, int arg) { return luaL_checkudata(L, arg, LFM_DATASET); }

const fm_dataset *lfm_checkdataset(lua_State *L, int arg) { return &check_ds(L, arg)->view; }

fm_dataset *lfm_todataset(lua_State *L, int arg) {
  dataset *d = luaL_testudata(L, arg, LFM_DATASET);
  return d ? &d->view : NULL;
}

/* Pushes a dataset over the same storage as the dataset at arg, with the given storage rows. */
static dataset *derive(lua_State *L, int arg, const int32_t *rows, int64_t n, const char *what) {
  dataset *src = check_ds(L, arg);
  char name[128];
  snprintf(name, sizeof name, "%s of %.100s", what, src->name);
  lua_getiuservalue(L, arg, 1);
  dataset *d = new_dataset(L, -1, rows, n, name);
  lua_remove(L, -2);
  return d;
}

/* ---- loading ---- */

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with_ci(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Loads an IDX pair into a new storage on the stack. */
static void load_idx(lua_State *L, const char *images, const char *labels) {
  fm_idx_info ii, li;
  if (fm_idx_probe(images, &ii) != FM_OK) lfm_engine_error(L, "load");
  if (ii.ndim != 3)
    luaL_error(L, "load: %s holds a %d-dimensional array, not images (3 dimensions)", images,
               ii.ndim);
  if (fm_idx_probe(labels, &li) != FM_OK) lfm_engine_error(L, "load");
  if (li.ndim != 1)
    luaL_error(L, "load: %s holds a %d-dimensional array, not labels (1 dimension)", labels,
               li.ndim);
  if (li.count != ii.count)
    luaL_error(L, "load: %s has %I images but %s has %I labels", images, (lua_Integer)ii.count,
               labels, (lua_Integer)li.count);
  storage *s = new_storage(L, ii.count, ii.rows, ii.cols);
  if (fm_idx_read(images, &ii, s->pixels) != FM_OK || fm_idx_read(labels, &li, s->labels) != FM_OK ||
      fm_labels_check(s->labels, s->n, labels) != FM_OK)
    lfm_engine_error(L, "load");
}

static void load_csv(lua_State *L, const char *path) {
  fm_csv_info info;
  if (fm_csv_probe(path, &info) != FM_OK) lfm_engine_error(L, "load");
  storage *s = new_storage(L, info.count, 28, 28);
  if (fm_csv_read(path, &info, s->pixels, s->labels) != FM_OK) lfm_engine_error(L, "load");
}

/* Where "train" and "test" are looked for, in order. */
static int search_dirs(const char **dirs) {
  int n = 0;
  const char *env = getenv("FMNIST_DATA");
  if (env && *env) dirs[n++] = env;
  dirs[n++] = "data";
  dirs[n++] = "/usr/share/datasets/fashion-mnist";
  return n;
}

/* Loads "train" or "test" from the first directory that has it (IDX pair, or the Kaggle CSV). */
static void load_split(lua_State *L, const char *split) {
  const char *dirs[3];
  int ndirs = search_dirs(dirs);
  char images[4096], labels[4096];
  for (int i = 0; i < ndirs; i++) {
    if (fm_find_split(dirs[i], split, images, labels, sizeof images) == FM_OK) {
      load_idx(L, images, labels);
      return;
    }
    snprintf(images, sizeof images, "%s/fashion-mnist_%s.csv", dirs[i], split);
    if (file_exists(images)) {
      load_csv(L, images);
      return;
    }
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "load: the Fashion-MNIST %s set was not found; looked in ", split);
  luaL_addvalue(&b);
  for (int i = 0; i < ndirs; i++) {
    luaL_addstring(&b, i ? ", " : "");
    luaL_addstring(&b, dirs[i]);
  }
  if (!getenv("FMNIST_DATA")) luaL_addstring(&b, " ($FMNIST_DATA is not set)");
  luaL_addstring(&b, ". Install it with: apt-get install dataset-fashion-mnist (or put the IDX or "
                     "CSV files in ./data)");
  luaL_pushresult(&b);
  lua_error(L);
}

/* fm.load(what [, opts]): "train", "test", an IDX images file (opts.labels or the standard name
 * beside it) or a Kaggle-layout CSV file. */
static int ds_load(lua_State *L) {
  const char *what = luaL_checkstring(L, 1);
  int opts = lfm_optopts(L, 2);
  const char *name = what;
  if (strcmp(what, "train") == 0 || strcmp(what, "test") == 0) {
    load_split(L, what);
  } else if (ends_with_ci(what, ".csv") || ends_with_ci(what, ".csv.gz")) {
    load_csv(L, what);
    name = base_name(what);
  } else {
    char labels[4096];
    const char *lpath = NULL;
    if (opts && lua_getfield(L, opts, "labels") != LUA_TNIL) {
      lpath = lua_tostring(L, -1);
      if (!lpath) return luaL_error(L, "option 'labels' must be a path string");
    } else {
      if (opts) lua_pop(L, 1);
      if (!file_exists(what)) {
        if (fm_idx_probe(what, &(fm_idx_info){0}) != FM_OK) return lfm_engine_error(L, "load");
      }
      if (fm_labels_path_for(what, labels, sizeof labels) != FM_OK) return lfm_engine_error(L, "load");
      lpath = labels;
    }
    load_idx(L, what, lpath);
    name = base_name(what);
  }
  new_dataset(L, -1, NULL, 0, name);
  return 1;
}

/* ---- inspection ---- */

static int ds_len(lua_State *L) {
  lua_pushinteger(L, check_ds(L, 1)->view.n);
  return 1;
}

static int ds_tostring(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int64_t counts[FM_CLASSES];
  fm_dataset_counts(&d->view, counts);
  int classes = 0;
  for (int c = 0; c < FM_CLASSES; c++) classes += counts[c] > 0;
  lua_pushfstring(L, "fmnist.Dataset '%s': %I images of %Ix%I, %d classes", d->name,
                  (lua_Integer)d->view.n, (lua_Integer)d->view.rows, (lua_Integer)d->view.cols,
                  classes);
  return 1;
}

static void push_classes(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, "fmnist.classes") == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, FM_CLASSES, 0);
  for (int c = 0; c < FM_CLASSES; c++) {
    lua_pushstring(L, fm_class_names[c]);
    lua_rawseti(L, -2, c + 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "fmnist.classes");
}

/* ds.classes is the table of the ten names; other keys are methods. */
static int ds_index(lua_State *L) {
  check_ds(L, 1);
  const char *key = lua_tostring(L, 2);
  if (key && strcmp(key, "classes") == 0) {
    push_classes(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int64_t check_item(lua_State *L, const dataset *d, int arg) {
  lua_Integer i = luaL_checkinteger(L, arg);
  if (i < 1 || i > d->view.n)
    luaL_argerror(L, arg, lua_pushfstring(L, "image %I out of range 1..%I", i, (lua_Integer)d->view.n));
  return i - 1;
}

static int ds_labels(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int64_t shape[1] = {d->view.n};
  fm_tensor *t = lfm_newtensor(L, 1, shape);
  for (int64_t i = 0; i < d->view.n; i++) t->data[i] = d->view.labels[fm_dataset_row(&d->view, i)];
  return 1;
}

static int ds_label(lua_State *L) {
  dataset *d = check_ds(L, 1);
  lua_pushinteger(L, d->view.labels[fm_dataset_row(&d->view, check_item(L, d, 2))]);
  return 1;
}

/* ds:images([first, last]): N x (rows*cols) floats in [0,1]. */
static int ds_images(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int64_t first = 0, last = d->view.n - 1;
  if (!lua_isnoneornil(L, 2)) {
    first = check_item(L, d, 2);
    last = lua_isnoneornil(L, 3) ? d->view.n - 1 : check_item(L, d, 3);
    if (last < first) return luaL_error(L, "images: range %I..%I is empty", first + 1, last + 1);
  }
  int64_t shape[2] = {last - first + 1, fm_dataset_pixels(&d->view)};
  fm_tensor *t = lfm_newtensor(L, 2, shape);
  fm_dataset_fill(&d->view, first, shape[0], t->data, NULL);
  return 1;
}

static int ds_image(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int64_t i = check_item(L, d, 2);
  int64_t shape[2] = {d->view.rows, d->view.cols};
  fm_dataset_fill(&d->view, i, 1, lfm_newtensor(L, 2, shape)->data, NULL);
  return 1;
}

static int ds_counts(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int64_t counts[FM_CLASSES];
  fm_dataset_counts(&d->view, counts);
  lua_createtable(L, FM_CLASSES, 0);
  for (int c = 0; c < FM_CLASSES; c++) {
    lua_pushinteger(L, counts[c]);
    lua_rawseti(L, -2, c + 1);
  }
  return 1;
}

static int check_class(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  lua_Integer c = luaL_checkinteger(L, arg);
  if (c < 0 || c >= FM_CLASSES) luaL_argerror(L, arg, "class id must be in 0..9");
  return (int)c;
}

static int image_stat(lua_State *L, int (*stat)(const fm_dataset *, int, float *), const char *name) {
  dataset *d = check_ds(L, 1);
  int c = check_class(L, 2);
  int64_t shape[2] = {d->view.rows, d->view.cols};
  fm_tensor *t = lfm_newtensor(L, 2, shape);
  if (stat(&d->view, c, t->data) != FM_OK) return lfm_engine_error(L, name);
  return 1;
}

static int ds_mean_image(lua_State *L) { return image_stat(L, fm_dataset_mean_image, "mean_image"); }
static int ds_std_image(lua_State *L) { return image_stat(L, fm_dataset_std_image, "std_image"); }

/* ---- derived datasets ---- */

/* Storage rows of the view (a temporary userdata on the stack, so an error frees it). */
static int32_t *view_rows(lua_State *L, const dataset *d) {
  int32_t *rows = lua_newuserdatauv(L, (size_t)(d->view.n ? d->view.n : 1) * sizeof(int32_t), 0);
  fm_dataset_storage_rows(&d->view, rows);
  return rows;
}

/* ds:subset(first, last) | ds:subset{i, j, ...} (1-based indices, table or tensor) |
 * ds:subset{class = c} | ds:subset{n = k} (the first k) */
static int ds_subset(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int32_t *all = view_rows(L, d);
  int allidx = lua_gettop(L);
  int64_t n = 0;
  int32_t *pick = NULL;
  fm_tensor *list = lfm_totensor(L, 2);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    int64_t first = check_item(L, d, 2), last = check_item(L, d, 3);
    if (last < first) return luaL_error(L, "subset: range %I..%I is empty", first + 1, last + 1);
    n = last - first + 1;
    pick = all + first;
  } else if (list || lua_type(L, 2) == LUA_TTABLE) {
    int has_class = !list && lua_getfield(L, 2, "class") != LUA_TNIL;
    if (!list) lua_pop(L, 1);
    int has_n = !list && lua_getfield(L, 2, "n") != LUA_TNIL;
    if (!list) lua_pop(L, 1);
    int64_t len = list ? list->numel : (int64_t)luaL_len(L, 2);
    pick = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof(int32_t) + (has_class ? (size_t)d->view.n * sizeof(int32_t) : 0), 0);
    if (has_class) {
      lua_getfield(L, 2, "class");
      int c = check_class(L, -1);
      lua_pop(L, 1);
      for (int64_t i = 0; i < d->view.n; i++)
        if (d->view.labels[all[i]] == c) pick[n++] = all[i];
    } else if (has_n) {
      lua_Integer k = lfm_optfield_int(L, 2, "n", 0);
      if (k < 0 || k > d->view.n)
        return luaL_error(L, "subset: n = %I out of range 0..%I", k, (lua_Integer)d->view.n);
      n = k;
      pick = all;
    } else {
      for (int64_t i = 0; i < len; i++) {
        lua_Integer k;
        if (list) {
          k = (lua_Integer)list->data[i];
          if ((float)k != list->data[i]) k = 0;
        } else {
          lua_geti(L, 2, i + 1);
          int isint;
          k = lua_tointegerx(L, -1, &isint);
          lua_pop(L, 1);
          if (!isint) return luaL_error(L, "subset: entry %I is not an integer index", (lua_Integer)i + 1);
        }
        if (k < 1 || k > d->view.n)
          return luaL_error(L, "subset: index %I out of range 1..%I", k, (lua_Integer)d->view.n);
        pick[n++] = all[k - 1];
      }
    }
  } else {
    return luaL_argerror(L, 2, "first and last index, a list of indices, or {class =} / {n =} expected");
  }
  derive(L, 1, pick, n, "subset");
  lua_replace(L, allidx);
  lua_settop(L, allidx);
  return 1;
}

static uint64_t seed_option(lua_State *L, int opts) {
  /* Without an explicit seed, draw one from the generator fm.seed controls. */
  if (opts && lua_getfield(L, opts, "seed") != LUA_TNIL) {
    lua_pop(L, 1);
    return (uint64_t)lfm_optfield_int(L, opts, "seed", 0);
  }
  if (opts) lua_pop(L, 1);
  return fm_rng_next(lfm_rng());
}

/* ds:shuffle([seed]): a new dataset in a random order. */
static int ds_shuffle(lua_State *L) {
  dataset *d = check_ds(L, 1);
  uint64_t seed = lua_isnoneornil(L, 2) ? fm_rng_next(lfm_rng()) : (uint64_t)luaL_checkinteger(L, 2);
  int32_t *rows = view_rows(L, d);
  fm_rng r;
  fm_rng_seed(&r, seed);
  fm_rng_shuffle(&r, rows, d->view.n);
  derive(L, 1, rows, d->view.n, "shuffle");
  return 1;
}

/* ds:split(fraction, {seed =, stratify =, shuffle =}) -> first, rest */
static int ds_split(lua_State *L) {
  dataset *d = check_ds(L, 1);
  lua_Number fraction = luaL_checknumber(L, 2);
  if (!(fraction >= 0 && fraction <= 1)) return luaL_argerror(L, 2, "fraction must be in [0, 1]");
  int opts = lfm_optopts(L, 3);
  int stratify = lfm_optfield_bool(L, opts, "stratify", 0);
  int shuffle = lfm_optfield_bool(L, opts, "shuffle", 1);
  fm_rng r;
  fm_rng_seed(&r, seed_option(L, opts));
  int32_t *first = lua_newuserdatauv(L, (size_t)(d->view.n + 1) * sizeof(int32_t), 0);
  int32_t *second = lua_newuserdatauv(L, (size_t)(d->view.n + 1) * sizeof(int32_t), 0);
  int64_t n_first;
  if (fm_dataset_split(&d->view, fraction, shuffle ? &r : NULL, stratify, first, second, &n_first) != FM_OK)
    return lfm_engine_error(L, "split");
  derive(L, 1, first, n_first, "split");
  derive(L, 1, second, d->view.n - n_first, "split");
  return 2;
}

/* Iterator state of ds:batches: upvalues are the dataset, the order (userdata of int32, or nil), the
 * batch size and the position. */
static int batches_next(lua_State *L) {
  dataset *d = check_ds(L, lua_upvalueindex(1));
  int32_t *order = lua_touserdata(L, lua_upvalueindex(2));
  int64_t size = lua_tointeger(L, lua_upvalueindex(3));
  int64_t pos = lua_tointeger(L, lua_upvalueindex(4));
  if (pos >= d->view.n) return 0;
  int64_t count = d->view.n - pos < size ? d->view.n - pos : size;
  int64_t xs[2] = {count, fm_dataset_pixels(&d->view)}, ys[1] = {count};
  fm_tensor *x = lfm_newtensor(L, 2, xs);
  fm_tensor *y = lfm_newtensor(L, 1, ys);
  uint8_t *labels = lua_newuserdatauv(L, (size_t)count, 0);
  if (order)
    fm_dataset_gather(&d->view, order + pos, count, x->data, labels);
  else
    fm_dataset_fill(&d->view, pos, count, x->data, labels);
  lua_pop(L, 1);
  for (int64_t i = 0; i < count; i++) y->data[i] = labels[i];
  lua_pushinteger(L, pos + count);
  lua_replace(L, lua_upvalueindex(4));
  return 2;
}

/* for x, y in ds:batches(size, {shuffle =, seed =}) do ... end */
static int ds_batches(lua_State *L) {
  dataset *d = check_ds(L, 1);
  lua_Integer size = luaL_optinteger(L, 2, 32);
  if (size < 1) return luaL_argerror(L, 2, "batch size must be at least 1");
  int opts = lfm_optopts(L, 3);
  int shuffle = lfm_optfield_bool(L, opts, "shuffle", 0);
  lua_pushvalue(L, 1);
  if (shuffle) {
    fm_rng r;
    fm_rng_seed(&r, seed_option(L, opts));
    int32_t *order = lua_newuserdatauv(L, (size_t)(d->view.n + 1) * sizeof(int32_t), 0);
    for (int64_t i = 0; i < d->view.n; i++) order[i] = (int32_t)i;
    fm_rng_shuffle(&r, order, d->view.n);
  } else {
    lua_pushnil(L);
  }
  lua_pushinteger(L, size);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, batches_next, 4);
  return 1;
}

void lfm_open_dataset(lua_State *L) {
  static const luaL_Reg meta[] = {{"__len", ds_len}, {"__tostring", ds_tostring}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
      {"labels", ds_labels}, {"label", ds_label}, {"images", ds_images}, {"image", ds_image},
      {"counts", ds_counts}, {"mean_image", ds_mean_image}, {"std_image", ds_std_image},
      {"subset", ds_subset}, {"shuffle", ds_shuffle}, {"split", ds_split},
      {"batches", ds_batches}, {NULL, NULL}};
  static const luaL_Reg functions[] = {{"load", ds_load}, {NULL, NULL}};
  luaL_newmetatable(L, LFM_STORAGE);
  lua_pop(L, 1);
  luaL_newmetatable(L, LFM_DATASET);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, ds_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
  push_classes(L);
  lua_setfield(L, -2, "classes");
}
