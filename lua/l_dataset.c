/* l_dataset.c: the userdata fmnist.Dataset, and fm.load, fm.dataset and fm.concat that make one.
 *
 * Pixels and labels live in a storage userdata (uint8, one block, counted by the garbage
 * collector). A Dataset is a view of a storage: it keeps the storage alive as its user value and,
 * for subsets, shuffles and splits, holds an index array of storage rows inline. Views of one
 * storage share its pixels, so splitting 60,000 images costs 240 KB, not 47 MB. Whatever filled a
 * storage (files, tensors, other datasets), it is the same kind of object, so every method and
 * every model takes every dataset.
 *
 * A storage also knows its classes (how many, and their names unless they are Fashion-MNIST's ten)
 * and where its images came from (the source table: the files, the directory searched, a warning
 * when the training and test sets come from different places). Both tables are made here and never
 * handed out: ds.classes and ds.source give copies, so what tostring and concat read is what was
 * recorded. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lfm.h"

#define LFM_STORAGE "fmnist.Storage"
/* The user values of a storage: its class names (nil: Fashion-MNIST's) and its source table. */
enum { STORAGE_NAMES = 1, STORAGE_SOURCE = 2 };
/* Class and dataset names: printable, and short enough for a table column or a plot label. */
#define MAX_NAME 100

typedef struct storage {
  int64_t n, rows, cols;
  int classes; /* labels are 0..classes-1 */
  uint8_t *pixels, *labels;
} storage;

typedef struct dataset {
  fm_dataset view;
  char name[128]; /* what tostring shows: "train", "test", a file name, "subset of train" */
  int32_t index[]; /* view.n entries when view.index is set */
} dataset;

/* Pushes a storage for n images of rows x cols and `classes` classes, with Fashion-MNIST's names
 * and no source until they are set; `from` says what it is for in an out-of-memory message. The
 * size is checked first, so n * rows * cols cannot overflow. */
static storage *new_storage(lua_State *L, int64_t n, int64_t rows, int64_t cols, int classes,
                            const char *fname, const char *from) {
  if (fm_dataset_check_size(n, rows, cols, fname) != FM_OK) lfm_engine_error(L, fname);
  size_t bytes = sizeof(storage) + (size_t)(n * rows * cols) + (size_t)n;
  lua_pushfstring(L, "the %I images of %s", (lua_Integer)n, from);
  storage *s = lfm_newuserdata(L, bytes, 2, fname, lua_tostring(L, -1));
  lua_remove(L, -2);
  s->n = n;
  s->rows = rows;
  s->cols = cols;
  s->classes = classes;
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

/* The name of the running C function when Lua cannot tell it from the call (pcall(m.fit, m, x)
 * says '?'): looked up among the methods of the classes that take datasets. Pushes nothing;
 * NULL when not found. The metatables are read raw and checked, as a user may have changed them. */
static const char *method_name(lua_State *L) {
  static const char *const classes[] = {"fmnist.Model", LFM_DATASET};
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "f", &ar)) return NULL;
  int fn = lua_gettop(L);
  const char *name = NULL;
  for (int c = 0; c < 2 && !name; c++) {
    if (luaL_getmetatable(L, classes[c]) == LUA_TTABLE) {
      lua_pushliteral(L, "methods");
      if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
      }
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (!name && lua_next(L, -2)) {
          if (lua_rawequal(L, -1, fn) && lua_type(L, -2) == LUA_TSTRING) name = lua_tostring(L, -2);
          lua_pop(L, 1);
        }
        /* the key stays in the methods table, which stays in the registry: name stays valid */
      }
    }
    lua_settop(L, fn);
  }
  lua_pop(L, 1);
  return name;
}

/* Raises "bad argument #arg to 'f' (msg)", naming f even where luaL_argerror would say '?'. */
static int dataset_argerror(lua_State *L, int arg, const char *msg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name == NULL) {
    const char *name = method_name(L);
    if (name) return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, name, msg);
  }
  return luaL_argerror(L, arg, msg);
}

/* The type of the value at idx as luaL_typeerror names it: its class (__name, read raw from the
 * metatable, so no code runs) or its Lua type. Pushes nothing. */
static const char *type_name(lua_State *L, int idx) {
  const char *name = luaL_typename(L, idx);
  if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
    if (lua_type(L, -1) == LUA_TSTRING) name = lua_tostring(L, -1); /* kept by the metatable */
    lua_pop(L, 1);
  }
  return name;
}

/* The message for a value that is not a dataset, with the way to make one from a tensor. */
static int not_a_dataset(lua_State *L, int arg) {
  const char *hint =
      lfm_totensor(L, arg) ? "; fm.dataset(images, labels) makes one from tensors" : "";
  return dataset_argerror(
      L, arg, lua_pushfstring(L, "%s expected, got %s%s", LFM_DATASET, type_name(L, arg), hint));
}

static dataset *check_ds(lua_State *L, int arg) {
  dataset *d = luaL_testudata(L, arg, LFM_DATASET);
  if (!d) not_a_dataset(L, arg);
  return d;
}

const fm_dataset *lfm_checkdataset(lua_State *L, int arg) { return &check_ds(L, arg)->view; }

fm_dataset *lfm_todataset(lua_State *L, int arg) {
  dataset *d = luaL_testudata(L, arg, LFM_DATASET);
  return d ? &d->view : NULL;
}

/* Pushes the storage of the dataset at arg (its user value, set when it was made). */
static storage *push_storage(lua_State *L, int arg) {
  lua_getiuservalue(L, arg, 1);
  return lua_touserdata(L, -1);
}

/* The number of classes of the dataset at arg. */
static int class_count(lua_State *L, int arg) {
  int k = push_storage(L, arg)->classes;
  lua_pop(L, 1);
  return k;
}

/* Pushes a dataset over the same storage as the dataset at arg, with the given storage rows. */
static dataset *derive(lua_State *L, int arg, const int32_t *rows, int64_t n, const char *what) {
  dataset *src = check_ds(L, arg);
  char name[128];
  snprintf(name, sizeof name, "%s of %.100s", what, src->name);
  push_storage(L, arg);
  dataset *d = new_dataset(L, -1, rows, n, name);
  lua_remove(L, -2);
  return d;
}

/* ---- classes ---- */

/* Pushes fm.classes, Fashion-MNIST's ten names (made once, kept in the registry). */
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

/* Pushes ds.classes for the dataset at arg: fm.classes for Fashion-MNIST's names, else a copy of
 * the names the dataset was made with. */
static void push_class_names(lua_State *L, int arg) {
  push_storage(L, arg);
  int k = ((storage *)lua_touserdata(L, -1))->classes;
  if (lua_getiuservalue(L, -1, STORAGE_NAMES) != LUA_TTABLE) {
    lua_pop(L, 2);
    push_classes(L);
    return;
  }
  lua_createtable(L, k, 0);
  for (int c = 1; c <= k; c++) {
    lua_rawgeti(L, -2, c);
    lua_rawseti(L, -2, c);
  }
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* Pushes the name of class c of the dataset at arg, for messages. */
static const char *push_class_name(lua_State *L, int arg, int c) {
  int top = lua_gettop(L);
  push_storage(L, arg);
  int named = lua_getiuservalue(L, -1, STORAGE_NAMES) == LUA_TTABLE &&
              lua_rawgeti(L, -1, c + 1) == LUA_TSTRING;
  if (named) lua_replace(L, top + 1);
  lua_settop(L, top + named);
  if (!named) lua_pushstring(L, c < FM_CLASSES ? fm_class_names[c] : "?");
  return lua_tostring(L, -1);
}

/* ---- where the images came from ---- */

/* Pushes a new source table: {kind = kind, files = {}}. */
static void new_source(lua_State *L, const char *kind) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_newtable(L);
  lua_setfield(L, -2, "files");
}

/* source[key] = s, for the source table on top. */
static void set_string(lua_State *L, const char *key, const char *s) {
  lua_pushstring(L, s);
  lua_setfield(L, -2, key);
}

/* Appends path to source.files, for the source table on top, unless it is there already. */
static void add_file(lua_State *L, const char *path) {
  lua_getfield(L, -1, "files");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    int same = lua_rawgeti(L, -1, i) == LUA_TSTRING && strcmp(lua_tostring(L, -1), path) == 0;
    lua_pop(L, 1);
    if (same) {
      lua_pop(L, 1);
      return;
    }
  }
  lua_pushstring(L, path);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
}

/* Pushes a copy of the table at idx; tables inside are copied too, down to `depth` levels, and
 * left out below (a source is at most four deep: concat, parts, a part, its files), so that no
 * table of a storage is ever handed out. */
static void copy_table(lua_State *L, int idx, int depth) {
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 6, "copying a dataset's source");
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      if (depth <= 1) {
        lua_pop(L, 1);
        continue;
      }
      copy_table(L, -1, depth - 1);
      lua_replace(L, -2);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* The string field key of the table at idx, or def. */
static const char *string_field(lua_State *L, int idx, const char *key, const char *def) {
  const char *s = lua_getfield(L, idx, key) == LUA_TSTRING ? lua_tostring(L, -1) : def;
  lua_pop(L, 1); /* a string kept by the table stays valid */
  return s;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Pushes what tostring says of a source (the table at src): where the images came from, and the
 * warning about mixed sets on a line of its own. */
static void push_source_text(lua_State *L, int src) {
  src = lua_absindex(L, src);
  const char *kind = string_field(L, src, "kind", "");
  if (strcmp(kind, "idx") == 0) {
    const char *images = string_field(L, src, "images", "?");
    const char *labels = string_field(L, src, "labels", "?");
    size_t dir = (size_t)(base_name(images) - images);
    int beside =
        strlen(labels) > dir && strncmp(images, labels, dir) == 0 && !strchr(labels + dir, '/');
    lua_pushfstring(L, "from %s and %s", images, beside ? labels + dir : labels);
  } else if (strcmp(kind, "csv") == 0) {
    lua_pushfstring(L, "from %s", string_field(L, src, "file", "?"));
    lua_getfield(L, src, "label_column");
    lua_Integer col = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (col > 1)
      lua_pushfstring(L, " (labels in column %I)", col);
    else
      lua_pushliteral(L, "");
    lua_concat(L, 2);
  } else if (strcmp(kind, "tensors") == 0) {
    lua_pushfstring(L, "made from tensors (pixels given as %s)",
                    string_field(L, src, "pixels", "?"));
  } else if (strcmp(kind, "concat") == 0) {
    lua_getfield(L, src, "parts");
    lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
    lua_pop(L, 1);
    lua_pushfstring(L, "joined from %I part%s", n, n == 1 ? "" : "s");
  } else {
    lua_pushliteral(L, "from an unknown source");
  }
  const char *warning = string_field(L, src, "warning", NULL);
  if (warning) {
    lua_pushfstring(L, "\n  warning: %s", warning);
    lua_concat(L, 2);
  }
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

/* Loads an IDX pair into a new storage on the stack, its source recorded. */
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
  storage *s = new_storage(L, ii.count, ii.rows, ii.cols, FM_CLASSES, "load", images);
  if (fm_idx_read(images, &ii, s->pixels) != FM_OK || fm_idx_read(labels, &li, s->labels) != FM_OK ||
      fm_labels_check(s->labels, s->n, labels) != FM_OK)
    lfm_engine_error(L, "load");
  new_source(L, "idx");
  set_string(L, "images", images);
  set_string(L, "labels", labels);
  add_file(L, images);
  add_file(L, labels);
  lua_setiuservalue(L, -2, STORAGE_SOURCE);
}

/* Loads a CSV file into a new storage on the stack, its source (and label column) recorded. */
static void load_csv(lua_State *L, const char *path) {
  fm_csv_info info;
  if (fm_csv_probe(path, &info) != FM_OK) lfm_engine_error(L, "load");
  storage *s = new_storage(L, info.count, info.rows, info.cols, FM_CLASSES, "load", path);
  if (fm_csv_read(path, &info, s->pixels, s->labels) != FM_OK) lfm_engine_error(L, "load");
  new_source(L, "csv");
  set_string(L, "file", path);
  add_file(L, path);
  lua_pushboolean(L, info.has_header);
  lua_setfield(L, -2, "header");
  lua_pushinteger(L, (lua_Integer)info.label_column + 1);
  lua_setfield(L, -2, "label_column");
  lua_setiuservalue(L, -2, STORAGE_SOURCE);
}

/* The places "train" and "test" are looked for, in order: dir as searched, and what a message
 * adds to it (NULL: nothing). */
typedef struct place {
  const char *dir, *what;
} place;

static int search_places(place *p) {
  int n = 0;
  const char *env = getenv("FMNIST_DATA");
  if (env && *env) p[n++] = (place){env, "$FMNIST_DATA"};
  p[n++] = (place){"data", NULL};
  p[n++] = (place){"/usr/share/datasets/fashion-mnist", "the system-wide copy"};
  return n;
}

/* Pushes how a message names a place: "/x ($FMNIST_DATA)", "data". */
static const char *push_place(lua_State *L, const place *p) {
  return p->what ? lua_pushfstring(L, "%s (%s)", p->dir, p->what) : lua_pushstring(L, p->dir);
}

/* What a split's files are in one directory: an IDX pair (1: images and labels written), the
 * Kaggle CSV (2: its path in images) or nothing (0). */
static int find_in(const char *dir, const char *split, char *images, char *labels, size_t size) {
  if (fm_find_split(dir, split, images, labels, size) == FM_OK) return 1;
  const char *sep = dir[0] == '\0' || dir[strlen(dir) - 1] == '/' ? "" : "/";
  int len = snprintf(images, size, "%s%sfashion-mnist_%s.csv", dir, sep, split);
  return len > 0 && (size_t)len < size && file_exists(images) ? 2 : 0;
}

/* The first of the places that has the split's files (its index; -1: none) and what they are. */
static int locate(const place *places, int n, const char *split, char *images, char *labels,
                  size_t size, int *kind) {
  for (int i = 0; i < n; i++)
    if ((*kind = find_in(places[i].dir, split, images, labels, size)) != 0) return i;
  return -1;
}

/* The split just loaded (its source on top) comes from `here`, the other split would come from
 * `there`: the source says so in source.warning, and stderr once per pair of directories in this
 * Lua state (the notebooks load both sets, often more than once). */
static void warn_mixed(lua_State *L, const char *split, const place *here, const char *other,
                       const place *there) {
  int src = lua_gettop(L);
  push_place(L, here);
  push_place(L, there);
  lua_pushfstring(L,
                  "the %s set comes from %s but the %s set from %s: they may not belong "
                  "together (keep both sets in one directory)",
                  split, lua_tostring(L, src + 1), other, lua_tostring(L, src + 2));
  lua_replace(L, src + 1);
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, src, "warning");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, "fmnist.data_warnings");
  int first = strcmp(here->dir, there->dir) < 0;
  lua_pushfstring(L, "%s\n%s", first ? here->dir : there->dir, first ? there->dir : here->dir);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    fprintf(stderr, "fmnist: warning: %s\n", lua_tostring(L, src + 1));
    fflush(stderr);
    lua_pushfstring(L, "%s\n%s", first ? here->dir : there->dir, first ? there->dir : here->dir);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);
  }
  lua_settop(L, src);
}

/* Loads "train" or "test" from the first place that has it (IDX pair, or the Kaggle CSV) into a
 * storage on the stack, recording the split, the directory and whether the other split would
 * come from elsewhere. */
static void load_split(lua_State *L, const char *split) {
  place places[3];
  int n = search_places(places), kind;
  char images[4096], labels[4096];
  int at = locate(places, n, split, images, labels, sizeof images, &kind);
  if (at < 0) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "load: the Fashion-MNIST %s set was not found; looked in ", split);
    luaL_addvalue(&b);
    for (int i = 0; i < n; i++) {
      luaL_addstring(&b, i ? ", " : "");
      luaL_addstring(&b, places[i].dir);
    }
    if (!getenv("FMNIST_DATA")) luaL_addstring(&b, " ($FMNIST_DATA is not set)");
    luaL_addstring(&b,
                   ". Install it with: apt-get install dataset-fashion-mnist (or put the IDX "
                   "or CSV files in ./data)");
    luaL_pushresult(&b);
    lua_error(L);
  }
  if (kind == 1)
    load_idx(L, images, labels);
  else
    load_csv(L, images);
  lua_getiuservalue(L, -1, STORAGE_SOURCE);
  set_string(L, "split", split);
  set_string(L, "dir", places[at].dir);
  const char *other = strcmp(split, "train") == 0 ? "test" : "train";
  int there = locate(places, n, other, images, labels, sizeof images, &kind);
  /* Another place, not another name of the same one: what is in one directory is found at the
   * first name of it that is searched. */
  if (there >= 0 && there != at) warn_mixed(L, split, &places[at], other, &places[there]);
  lua_pop(L, 1);
}

/* A file name argument: a string without embedded zeros (the system would cut it short). A
 * tensor gets the way to make a dataset from tensors. */
static const char *check_path(lua_State *L, int arg) {
  if (lfm_totensor(L, arg))
    luaL_argerror(L, arg,
                  "a file name, \"train\" or \"test\" expected, got fmnist.Tensor "
                  "(fm.dataset(images, labels) makes a dataset from tensors)");
  size_t len;
  const char *path = luaL_checklstring(L, arg, &len);
  if (strlen(path) != len) luaL_argerror(L, arg, "a file name must not contain a zero byte");
  return path;
}

/* fm.load(what [, opts]): "train", "test", an IDX images file (opts.labels or the standard name
 * beside it) or a CSV file. */
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

/* ---- datasets from tensors ---- */

/* Pushes how a value shows in a message, without running any of its code (no __tostring):
 * numbers as Lua writes them, strings quoted (at most 40 bytes, unprintable bytes as '?'),
 * anything else by its type. */
static const char *push_shown(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      lua_pushvalue(L, idx);
      return lua_tostring(L, -1);
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      char text[48];
      size_t keep = len > 40 ? 40 : len;
      for (size_t i = 0; i < keep; i++) text[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
      text[keep] = '\0';
      return lua_pushfstring(L, "the string '%s%s'", text, len > keep ? "..." : "");
    }
    case LUA_TNIL:
      return lua_pushliteral(L, "nil");
    case LUA_TBOOLEAN:
      return lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
    default:
      return lua_pushfstring(L, "a %s", type_name(L, idx));
  }
}

/* " (read raw: its metatable is not used)" for a table with a metatable, else "". */
static const char *raw_note(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return "";
  lua_pop(L, 1);
  return " (the list is read raw: its metatable is not used)";
}

/* A name of 1 to MAX_NAME bytes without control characters (UTF-8 is fine). */
static int is_name(const char *s, size_t len) {
  if (len < 1 || len > MAX_NAME) return 0;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
  return 1;
}

/* The count and size of the images of a tensor: N x 784 (28 x 28 each), N x H x W or
 * N x H x W x 1. */
static void images_shape(lua_State *L, const fm_tensor *t, int64_t *n, int64_t *rows,
                         int64_t *cols) {
  char s[FM_SHAPE_STR];
  fm_shape_str(t, s, sizeof s);
  if (t->ndim == 2 && t->shape[1] == 28 * 28) {
    *rows = *cols = 28;
  } else if (t->ndim == 3 || (t->ndim == 4 && t->shape[3] == 1)) {
    *rows = t->shape[1];
    *cols = t->shape[2];
  } else if (t->ndim == 4) {
    luaL_error(L,
               "dataset: images of %s have %I channels: only grayscale images are taken "
               "(N x H x W x 1)",
               s, (lua_Integer)t->shape[3]);
  } else if (t->ndim == 2) {
    luaL_error(L,
               "dataset: images of %s: a 2-D tensor must be N x 784 (28x28 images, one a "
               "row); give other sizes as N x H x W",
               s);
  } else {
    luaL_error(L, "dataset: images of %s: expected N x 784, N x H x W or N x H x W x 1 (N images)",
               s);
  }
  *n = t->shape[0];
  if (*n == 0) luaL_error(L, "dataset: no images (a %s tensor)", s);
  if (fm_dataset_check_size(*n, *rows, *cols, "dataset") != FM_OK)
    luaL_error(L, "%s (a %s tensor)", fm_error(), s);
}

/* opts.classes: a list of 1 to FM_MAX_CLASSES different names, or how many classes there are
 * (named "0", "1", ...). Pushes the names (a new table; nil without the option: Fashion-MNIST's)
 * and returns the count. The list is read raw. */
static int classes_option(lua_State *L, int opts) {
  if (!opts || lua_getfield(L, opts, "classes") == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    lua_pushnil(L);
    return FM_CLASSES;
  }
  int v = lua_gettop(L), isint = 0;
  lua_Integer k = lua_type(L, v) == LUA_TNUMBER ? lua_tointegerx(L, v, &isint) : 0;
  if (lua_type(L, v) == LUA_TTABLE) {
    k = (lua_Integer)lua_rawlen(L, v);
    if (k < 1 || k > FM_MAX_CLASSES)
      luaL_error(L, "dataset: option 'classes' lists %I names (1 to %d expected)%s", k,
                 FM_MAX_CLASSES, raw_note(L, v));
  } else if (!isint || k < 1 || k > FM_MAX_CLASSES) {
    luaL_error(L,
               "dataset: option 'classes' must be a list of 1 to %d class names or a count, "
               "got %s",
               FM_MAX_CLASSES, push_shown(L, v));
  }
  lua_createtable(L, (int)k, 0);
  int names = lua_gettop(L);
  lua_createtable(L, 0, (int)k); /* name -> position, for repeats */
  for (lua_Integer c = 1; c <= k; c++) {
    if (!lua_istable(L, v)) {
      lua_pushfstring(L, "%I", c - 1);
    } else {
      size_t len;
      if (lua_rawgeti(L, v, c) != LUA_TSTRING)
        luaL_error(L, "dataset: classes[%I] is %s (a class name expected)", c, push_shown(L, -1));
      const char *s = lua_tolstring(L, -1, &len);
      if (!is_name(s, len))
        luaL_error(L,
                   "dataset: classes[%I] is %s: a class name has 1 to %d characters, none of "
                   "them a control character",
                   c, push_shown(L, -1), MAX_NAME);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, names + 1) != LUA_TNIL)
        luaL_error(L, "dataset: classes[%I] '%s' repeats classes[%I]", c, s, lua_tointeger(L, -1));
      lua_pop(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_pushinteger(L, c);
    lua_rawset(L, names + 1);
    lua_rawseti(L, names, c);
  }
  lua_pop(L, 1);
  lua_replace(L, v);
  return (int)k;
}

/* opts.range: 1 (pixels in [0, 1]) or 255 (integers 0-255); without it, detected. */
static fm_pixel_scale range_option(lua_State *L, int opts) {
  if (!opts || lua_getfield(L, opts, "range") == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    return FM_PIXELS_DETECT;
  }
  int isint = 0;
  lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
  if (!isint || (v != 1 && v != 255))
    luaL_error(L,
               "dataset: option 'range' must be 1 (pixels are numbers in [0, 1]) or 255 "
               "(integers 0-255), got %s",
               push_shown(L, -1));
  lua_pop(L, 1);
  return v == 1 ? FM_PIXELS_UNIT : FM_PIXELS_BYTE;
}

/* opts.name, what tostring calls the dataset, into buf (default "dataset"). */
static void name_option(lua_State *L, int opts, char *buf, size_t size) {
  snprintf(buf, size, "dataset");
  if (!opts || lua_getfield(L, opts, "name") == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    return;
  }
  size_t len = 0;
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (!s || !is_name(s, len))
    luaL_error(L,
               "dataset: option 'name' must be a name of 1 to %d characters without control "
               "characters, got %s",
               MAX_NAME, push_shown(L, -1));
  snprintf(buf, size, "%s", s);
  lua_pop(L, 1);
}

/* Checks the labels argument before any memory is taken: a tensor of n class ids (n, or n x 1)
 * or a list of n, read raw. Their values are checked as they are copied. */
static void check_labels_arg(lua_State *L, int arg, int64_t n) {
  fm_tensor *t = lfm_totensor(L, arg);
  if (t) {
    if (!(t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1)) || t->shape[0] != n) {
      char s[FM_SHAPE_STR];
      luaL_error(L, "dataset: labels of %s for %I images (a 1-D tensor of %I class ids expected)",
                 fm_shape_str(t, s, sizeof s), (lua_Integer)n, (lua_Integer)n);
    }
    return;
  }
  if (!lua_istable(L, arg))
    luaL_argerror(L, arg,
                  lua_pushfstring(L,
                                  "labels expected: a tensor or a list of class ids, "
                                  "got %s",
                                  type_name(L, arg)));
  lua_Unsigned len = lua_rawlen(L, arg);
  if (len != (lua_Unsigned)n)
    luaL_error(L, "dataset: %I labels for %I images%s", (lua_Integer)len, (lua_Integer)n,
               raw_note(L, arg));
}

/* Copies the n labels at arg (checked by check_labels_arg) into out, each an integer 0 to
 * classes - 1. Without opts.classes (named), a label of 10 or more gets the way to name more
 * classes. */
static void copy_labels(lua_State *L, int arg, int64_t n, int classes, int named, uint8_t *out) {
  const char *hint = named ? "" : "; opts.classes names more classes";
  fm_tensor *t = lfm_totensor(L, arg);
  if (t) {
    int64_t bad = 0;
    if (fm_labels_from_floats(t->data, n, classes, "labels", out, &bad) != FM_OK) {
      float v = t->data[bad];
      luaL_error(L, "dataset: %s%s", fm_error(), v >= (float)classes && v == floorf(v) ? hint : "");
    }
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    int isint = 0;
    lua_Integer v = lua_rawgeti(L, arg, i + 1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : -1;
    if (!isint || v < 0 || v >= classes)
      luaL_error(L, "dataset: labels[%I] is %s, not a class id (an integer 0 to %d: %d classes)%s",
                 (lua_Integer)(i + 1), push_shown(L, -1), classes - 1, classes,
                 isint && v >= classes ? hint : "");
    out[i] = (uint8_t)v;
    lua_pop(L, 1);
  }
}

/* fm.dataset(images, labels [, {classes =, range =, name =}]): a dataset of its own storage. The
 * options are read first (their metamethods may run code), then the shapes and lengths, and only
 * then is memory taken and are the values converted. */
static int ds_from_tensors(lua_State *L) {
  static const char *const known[] = {"classes", "range", "name", NULL};
  if (lua_isnone(L, 2))
    return luaL_argerror(L, 2, "labels expected: a tensor or a list of class ids, got no value");
  int opts = lfm_optopts(L, 3);
  lua_settop(L, 3); /* what is pushed from here on cannot be taken for an argument */
  lfm_check_options(L, opts, "dataset", known);
  fm_pixel_scale scale = range_option(L, opts);
  char name[MAX_NAME + 1];
  name_option(L, opts, name, sizeof name);
  int classes = classes_option(L, opts);
  int names = lua_gettop(L);
  fm_tensor *images = lfm_totensor(L, 1);
  if (!images)
    return luaL_argerror(L, 1,
                         lua_pushfstring(L,
                                         "a tensor of images expected (N x 784, "
                                         "N x H x W or N x H x W x 1), got %s",
                                         type_name(L, 1)));
  int64_t n = 0, rows = 0, cols = 0;
  images_shape(L, images, &n, &rows, &cols);
  check_labels_arg(L, 2, n);
  storage *s = new_storage(L, n, rows, cols, classes, "dataset", "the tensors");
  int sidx = lua_gettop(L);
  fm_pixel_scale used;
  if (fm_pixels_from_tensor(images, scale, "images", s->pixels, &used) != FM_OK)
    return lfm_engine_error(L, "dataset");
  copy_labels(L, 2, n, classes, !lua_isnil(L, names), s->labels);
  lua_pushvalue(L, names);
  lua_setiuservalue(L, sidx, STORAGE_NAMES);
  new_source(L, "tensors");
  set_string(L, "pixels", used == FM_PIXELS_BYTE ? "integers 0-255" : "numbers in [0, 1]");
  lua_setiuservalue(L, sidx, STORAGE_SOURCE);
  new_dataset(L, sidx, NULL, 0, name);
  return 1;
}

/* ---- joining datasets ---- */

/* The datasets at first..first+count-1 must have the same classes: as many, with the same names. */
static void check_same_classes(lua_State *L, int first, int count) {
  int k = class_count(L, first);
  for (int i = 1; i < count; i++) {
    int ki = class_count(L, first + i);
    if (ki != k) luaL_error(L, "concat: dataset %d has %d classes, dataset 1 has %d", i + 1, ki, k);
    for (int c = 0; c < k; c++) {
      const char *a = push_class_name(L, first, c), *b = push_class_name(L, first + i, c);
      if (strcmp(a, b) != 0)
        luaL_error(L, "concat: class %d is '%s' in dataset %d but '%s' in dataset 1", c, b, i + 1,
                   a);
      lua_pop(L, 2);
    }
  }
}

/* Adds the source of the dataset at arg to the concat source on top: its parts when it was joined
 * itself (so sources stay two levels deep), its files, and its warning. */
static void add_part_source(lua_State *L, int arg) {
  int src = lua_gettop(L);
  push_storage(L, arg);
  if (lua_getiuservalue(L, -1, STORAGE_SOURCE) != LUA_TTABLE) {
    lua_settop(L, src);
    return;
  }
  int part = lua_gettop(L);
  lua_getfield(L, src, "parts");
  int parts = lua_gettop(L);
  if (strcmp(string_field(L, part, "kind", ""), "concat") == 0 &&
      lua_getfield(L, part, "parts") == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, parts, (lua_Integer)lua_rawlen(L, parts) + 1);
    }
  } else {
    lua_pushvalue(L, part);
    lua_rawseti(L, parts, (lua_Integer)lua_rawlen(L, parts) + 1);
  }
  lua_settop(L, parts);
  if (lua_getfield(L, part, "files") == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_rawgeti(L, -1, i) == LUA_TSTRING) {
        lua_pushvalue(L, src);
        add_file(L, lua_tostring(L, -2));
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    }
  }
  const char *warning = string_field(L, part, "warning", NULL);
  if (warning && !string_field(L, src, "warning", NULL)) {
    lua_pushvalue(L, src);
    set_string(L, "warning", warning);
    lua_pop(L, 1);
  }
  lua_settop(L, src);
}

/* Pushes a new dataset of the images of the datasets at first..first+count-1 (checked to be
 * datasets), one after the other, in view order, in a storage of its own. */
static int concat_at(lua_State *L, int first, int count) {
  check_same_classes(L, first, count);
  const fm_dataset **parts = lua_newuserdatauv(L, (size_t)count * sizeof *parts, 0);
  for (int i = 0; i < count; i++) parts[i] = lfm_todataset(L, first + i);
  int64_t total;
  if (fm_dataset_concat_size(parts, count, &total) != FM_OK) return luaL_error(L, "%s", fm_error());
  storage *s = new_storage(L, total, parts[0]->rows, parts[0]->cols, class_count(L, first),
                           "concat", "the joined datasets");
  int sidx = lua_gettop(L);
  fm_dataset_concat(parts, count, s->pixels, s->labels);
  push_storage(L, first);
  lua_getiuservalue(L, -1, STORAGE_NAMES); /* a table never handed out: shared, not copied */
  lua_setiuservalue(L, sidx, STORAGE_NAMES);
  lua_pop(L, 1);
  new_source(L, "concat");
  lua_newtable(L);
  lua_setfield(L, -2, "parts");
  for (int i = 0; i < count; i++) add_part_source(L, first + i);
  lua_setiuservalue(L, sidx, STORAGE_SOURCE);
  const dataset *a = lua_touserdata(L, first), *b = lua_touserdata(L, first + (count > 1));
  char name[128];
  if (count == 1)
    snprintf(name, sizeof name, "copy of %.100s", a->name);
  else if (count == 2)
    snprintf(name, sizeof name, "%.60s + %.60s", a->name, b->name);
  else
    snprintf(name, sizeof name, "%.100s + %d more", a->name, count - 1);
  new_dataset(L, sidx, NULL, 0, name);
  return 1;
}

/* ds:concat(other, ...): ds and the others joined (with none, a copy of ds in a storage of its
 * own). */
static int ds_concat(lua_State *L) {
  check_ds(L, 1);
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) check_ds(L, i);
  return concat_at(L, 1, top);
}

/* fm.concat{a, b, ...}: the datasets of a list (read raw), joined. */
static int ds_concat_list(lua_State *L) {
  if (!lua_istable(L, 1))
    return luaL_argerror(
        L, 1, lua_pushfstring(L, "a list of datasets expected, got %s", type_name(L, 1)));
  lua_settop(L, 1);
  lua_Unsigned n = lua_rawlen(L, 1);
  if (n == 0) return luaL_error(L, "concat: the list of datasets is empty%s", raw_note(L, 1));
  if (n > 100000)
    return luaL_error(L, "concat: %I datasets, at most 100000 are joined at once", (lua_Integer)n);
  luaL_checkstack(L, (int)n + 8, "concat: too many datasets");
  for (lua_Unsigned i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, (lua_Integer)i);
    if (!lfm_todataset(L, -1))
      return luaL_error(L, "concat: entry %I is %s (a %s expected)", (lua_Integer)i,
                        push_shown(L, -1), LFM_DATASET);
  }
  return concat_at(L, 2, (int)n);
}

/* ---- inspection ---- */

static int ds_len(lua_State *L) {
  lua_pushinteger(L, check_ds(L, 1)->view.n);
  return 1;
}

/* "fmnist.Dataset 'test': 10000 images of 28x28, 10 classes, from <files>", the classes with
 * images in the view when not all have, and a warning about mixed sets on a line of its own. */
static int ds_tostring(lua_State *L) {
  dataset *d = check_ds(L, 1);
  lua_settop(L, 1); /* the storage at 2 */
  storage *s = push_storage(L, 1);
  int64_t counts[FM_MAX_CLASSES];
  fm_dataset_counts(&d->view, s->classes, counts);
  int present = 0;
  for (int c = 0; c < s->classes; c++) present += counts[c] > 0;
  lua_pushfstring(L, "fmnist.Dataset '%s': %I image%s of %Ix%I, %d class%s", d->name,
                  (lua_Integer)d->view.n, d->view.n == 1 ? "" : "s", (lua_Integer)d->view.rows,
                  (lua_Integer)d->view.cols, s->classes, s->classes == 1 ? "" : "es");
  if (present < s->classes)
    lua_pushfstring(L, " (%d with images here)", present);
  else
    lua_pushliteral(L, "");
  if (lua_getiuservalue(L, 2, STORAGE_SOURCE) == LUA_TTABLE) {
    push_source_text(L, -1);
    lua_remove(L, -2);
    lua_pushliteral(L, ", ");
    lua_insert(L, -2);
  } else {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_pushliteral(L, "");
  }
  lua_concat(L, 4);
  return 1;
}

/* ds.classes (the class names: fm.classes, or a copy of the dataset's own), ds.num_classes and
 * ds.source (a copy of the record of where the images came from); other keys are methods. */
static int ds_index(lua_State *L) {
  check_ds(L, 1);
  const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (key && strcmp(key, "classes") == 0) {
    push_class_names(L, 1);
    return 1;
  }
  if (key && strcmp(key, "num_classes") == 0) {
    lua_pushinteger(L, class_count(L, 1));
    return 1;
  }
  if (key && strcmp(key, "source") == 0) {
    push_storage(L, 1);
    if (lua_getiuservalue(L, -1, STORAGE_SOURCE) == LUA_TTABLE)
      copy_table(L, -1, 4);
    else
      lua_pushnil(L);
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

/* ds:counts(): how many images of each class, class c at position c + 1. */
static int ds_counts(lua_State *L) {
  dataset *d = check_ds(L, 1);
  int k = class_count(L, 1);
  int64_t counts[FM_MAX_CLASSES];
  fm_dataset_counts(&d->view, k, counts);
  lua_createtable(L, k, 0);
  for (int c = 0; c < k; c++) {
    lua_pushinteger(L, counts[c]);
    lua_rawseti(L, -2, c + 1);
  }
  return 1;
}

/* An optional class id of the dataset at 1: 0 to its classes - 1, or -1 when absent. */
static int check_class(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  lua_Integer c = luaL_checkinteger(L, arg);
  int k = class_count(L, 1);
  if (c < 0 || c >= k)
    luaL_argerror(L, arg, lua_pushfstring(L, "class id must be in 0..%d, got %I", k - 1, c));
  return (int)c;
}

/* Mean or standard-deviation image of the view or of one class, which must have images. */
static int image_stat(lua_State *L, int (*stat)(const fm_dataset *, int, float *), const char *name) {
  dataset *d = check_ds(L, 1);
  int c = check_class(L, 2);
  if (c >= 0) {
    int64_t counts[FM_MAX_CLASSES];
    fm_dataset_counts(&d->view, c + 1, counts);
    if (counts[c] == 0)
      return luaL_error(L, "%s: class %d (%s) has no images in this dataset", name, c,
                        push_class_name(L, 1, c));
  }
  int64_t shape[2] = {d->view.rows, d->view.cols};
  fm_tensor *t = lfm_newtensor(L, 2, shape);
  if (stat(&d->view, c, t->data) != FM_OK) return luaL_error(L, "%s", fm_error());
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
  static const luaL_Reg methods[] = {{"labels", ds_labels},
                                     {"label", ds_label},
                                     {"images", ds_images},
                                     {"image", ds_image},
                                     {"counts", ds_counts},
                                     {"mean_image", ds_mean_image},
                                     {"std_image", ds_std_image},
                                     {"subset", ds_subset},
                                     {"shuffle", ds_shuffle},
                                     {"split", ds_split},
                                     {"batches", ds_batches},
                                     {"concat", ds_concat},
                                     {NULL, NULL}};
  static const luaL_Reg functions[] = {
      {"load", ds_load}, {"dataset", ds_from_tensors}, {"concat", ds_concat_list}, {NULL, NULL}};
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
