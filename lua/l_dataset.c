/* l_dataset.c: the userdata fmnist.Dataset and fm.load.
 *
 * Pixels and labels live in a storage userdata (uint8, one block, counted by the garbage collector).
 * A Dataset is a view of a storage: it keeps the storage alive as its user value and, for subsets,
 * shuffles and splits, holds an index array of storage rows inline. Views of one storage share its
 * pixels, so splitting 60,000 images costs 240 KB, not 47 MB. */
#include <errno.h>
#include <math.h>
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

/* Pushes a storage for n images of rows x cols (sizes the loaders checked: at most FM_MAX_IMAGES
 * of FM_MAX_SIDE a side, so the byte count fits in int64); `from` names the file for an
 * out-of-memory message. */
static storage *new_storage(lua_State *L, int64_t n, int64_t rows, int64_t cols, const char *from) {
  size_t bytes = sizeof(storage) + (size_t)(n * rows * cols) + (size_t)n;
  lua_pushfstring(L, "the %I images of %s", (lua_Integer)n, from);
  storage *s = lfm_newuserdata(L, bytes, 0, "load", lua_tostring(L, -1));
  lua_remove(L, -2);
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
  storage *s = new_storage(L, ii.count, ii.rows, ii.cols, images);
  if (fm_idx_read(images, &ii, s->pixels) != FM_OK || fm_idx_read(labels, &li, s->labels) != FM_OK ||
      fm_labels_check(s->labels, s->n, labels) != FM_OK)
    lfm_engine_error(L, "load");
}

static void load_csv(lua_State *L, const char *path) {
  fm_csv_info info;
  if (fm_csv_probe(path, &info) != FM_OK) lfm_engine_error(L, "load");
  storage *s = new_storage(L, info.count, 28, 28, path);
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

/* A file name argument: a string without embedded zeros (the system would cut it short). */
static const char *check_path(lua_State *L, int arg) {
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  if (strlen(path) != len) luaL_argerror(L, arg, "a file name must not contain a zero byte");
  return path;
}

/* fm.load(what [, opts]): "train", "test", an IDX images file (opts.labels or the standard name
 * beside it) or a Kaggle-layout CSV file. */
static int ds_load(lua_State *L) {
  static const char *const known[] = {"labels", NULL};
  const char *what = check_path(L, 1);
  int opts = lfm_optopts(L, 2);
  lfm_check_options(L, opts, "load", known);
  int split = strcmp(what, "train") == 0 || strcmp(what, "test") == 0;
  int csv = ends_with_ci(what, ".csv") || ends_with_ci(what, ".csv.gz");
  const char *lpath = NULL;
  if (opts && lua_getfield(L, opts, "labels") != LUA_TNIL) {
    size_t len;
    lpath = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (!lpath || strlen(lpath) != len)
      return luaL_error(L, "load: option 'labels' must be a file name, got %s",
                        lpath ? "a string with a zero byte" : luaL_typename(L, -1));
    if (split || csv)
      return luaL_error(L, "load: option 'labels' is for an IDX images file, not %s", what);
    /* it stays on the stack, so lpath stays valid */
  }
  const char *name = what;
  if (split) {
    load_split(L, what);
  } else if (csv) {
    load_csv(L, what);
    name = base_name(what);
  } else {
    char labels[4096];
    if (!lpath) {
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

/* The storage rows picked by an index list (1-based view positions), a table or a tensor, into a
 * new userdata on the stack. Repeats are allowed, so a list may be longer than the view, but not
 * longer than a dataset can be. A table's length and entries may come from metamethods that run
 * code: the length is checked before anything is sized from it, and the list is read to exactly
 * that length, each entry checked as it comes. */
static int32_t *pick_list(lua_State *L, const dataset *d, const int32_t *all, int64_t *count) {
  fm_tensor *list = lfm_totensor(L, 2);
  int64_t len = list ? list->numel : luaL_len(L, 2);
  if (len < 0 || len > FM_MAX_IMAGES)
    luaL_error(L, "subset: a list of %I indices (0 to %I expected)", (lua_Integer)len,
               (lua_Integer)FM_MAX_IMAGES);
  int32_t *pick = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof(int32_t), 0);
  for (int64_t i = 0; i < len; i++) {
    lua_Integer k;
    if (list) {
      float v = list->data[i]; /* the tensor is argument 2: it cannot go away */
      if (!(v >= 1 && v <= (float)d->view.n && v == floorf(v)))
        luaL_error(L, "subset: entry %I of the index tensor is %f (an index 1..%I expected)",
                   (lua_Integer)i + 1, (double)v, (lua_Integer)d->view.n);
      k = (lua_Integer)v;
    } else {
      lua_geti(L, 2, i + 1);
      int isint;
      k = lua_tointegerx(L, -1, &isint);
      if (!isint)
        luaL_error(L, "subset: entry %I is %s (an integer index expected)", (lua_Integer)i + 1,
                   luaL_tolstring(L, -1, NULL));
      lua_pop(L, 1);
    }
    if (k < 1 || k > d->view.n)
      luaL_error(L, "subset: index %I out of range 1..%I", k, (lua_Integer)d->view.n);
    pick[i] = all[k - 1];
  }
  *count = len;
  return pick;
}

/* ds:subset(first, last) | ds:subset{i, j, ...} (1-based indices, table or tensor) |
 * ds:subset{class = c} | ds:subset{n = k} (the first k). The dataset (argument 1) and everything
 * made here stay on the stack until the new view is made. */
static int ds_subset(lua_State *L) {
  static const char *const known[] = {"class", "n", NULL};
  dataset *d = check_ds(L, 1);
  int64_t n = 0;
  int32_t *pick = NULL;
  /* Options are told from a list by raw keys: a list made by __index answers any key. */
  int is_table = lua_type(L, 2) == LUA_TTABLE;
  int has_class = is_table && lua_pushliteral(L, "class") && lua_rawget(L, 2) != LUA_TNIL;
  int has_n = is_table && lua_pushliteral(L, "n") && lua_rawget(L, 2) != LUA_TNIL;
  if (is_table) lua_pop(L, 2);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    int64_t first = check_item(L, d, 2), last = check_item(L, d, 3);
    if (last < first) return luaL_error(L, "subset: range %I..%I is empty", first + 1, last + 1);
    int32_t *all = view_rows(L, d);
    n = last - first + 1;
    pick = all + first;
  } else if (has_class || has_n) {
    lfm_check_options(L, 2, "subset", known);
    if (has_class && has_n) return luaL_error(L, "subset: give class or n, not both");
    if (has_class) {
      lua_getfield(L, 2, "class");
      int c = check_class(L, 3);
      lua_pop(L, 1);
      int32_t *all = view_rows(L, d);
      pick = lua_newuserdatauv(L, (size_t)(d->view.n ? d->view.n : 1) * sizeof(int32_t), 0);
      for (int64_t i = 0; i < d->view.n; i++)
        if (d->view.labels[all[i]] == c) pick[n++] = all[i];
    } else {
      n = lfm_optfield_range(L, 2, "n", 0, 0, d->view.n);
      pick = view_rows(L, d);
    }
  } else if (is_table || lfm_totensor(L, 2)) {
    int32_t *all = view_rows(L, d);
    pick = pick_list(L, d, all, &n);
  } else {
    return luaL_argerror(L, 2, "first and last index, a list of indices, or {class =} / {n =} expected");
  }
  derive(L, 1, pick, n, "subset");
  return 1;
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
  static const char *const known[] = {"seed", "stratify", "shuffle", NULL};
  dataset *d = check_ds(L, 1);
  lua_Number fraction = luaL_checknumber(L, 2);
  if (!(fraction >= 0 && fraction <= 1))
    return luaL_argerror(L, 2, lua_pushfstring(L, "fraction must be in [0, 1], got %f", fraction));
  int opts = lfm_optopts(L, 3);
  lfm_check_options(L, opts, "split", known);
  int stratify = lfm_optfield_bool(L, opts, "stratify", 0);
  int shuffle = lfm_optfield_bool(L, opts, "shuffle", 1);
  fm_rng r;
  fm_rng_seed(&r, lfm_optfield_seed(L, opts, "seed", lfm_rng()));
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
  static const char *const known[] = {"shuffle", "seed", NULL};
  dataset *d = check_ds(L, 1);
  lua_Integer size = luaL_optinteger(L, 2, 32);
  if (size < 1)
    return luaL_argerror(L, 2, lua_pushfstring(L, "batch size must be at least 1, got %I", size));
  int opts = lfm_optopts(L, 3);
  lfm_check_options(L, opts, "batches", known);
  int shuffle = lfm_optfield_bool(L, opts, "shuffle", 0);
  /* The global generator gives a seed only to a shuffle that has none (so that plain batches
   * leave fm.rand's stream alone); a seed given is checked either way. */
  uint64_t seed = shuffle ? lfm_optfield_seed(L, opts, "seed", lfm_rng())
                          : (uint64_t)lfm_optfield_int(L, opts, "seed", 0);
  lua_pushvalue(L, 1);
  if (shuffle) {
    fm_rng r;
    fm_rng_seed(&r, seed);
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
