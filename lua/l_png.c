/* l_png.c: PNG files for tensors (engine/fm_png.c underneath).
 *
 *   t:save_png(path [, {scale = k}]) -> path
 *       a 2-D tensor (or a 1-D one of square length, like a row of ds:images()) as an 8-bit
 *       grayscale PNG: values in [0,1] (clamped), each pixel drawn k x k
 *   fm.load_png(path) -> tensor
 *       any PNG as grayscale floats in [0,1], height x width
 *   fm.png.grid(images [, opts]) -> path | tensor
 *       images: a list of tensors of one size, an n x h x w tensor, or an n x (k*k) tensor whose
 *       rows are square images. opts: cols (default: a square-ish grid), scale (1), gap (pixels
 *       between images, 1; gap_x and gap_y set the two directions apart), background (value of
 *       gaps and empty cells, 1 = white), file (write a PNG there and return its path; without it
 *       the picture comes back as a tensor, e.g. for fm.plot.images).
 *   fm.png.save(t, path [, opts]) and fm.png.load(path) are the same as t:save_png and fm.load_png.
 *
 * Errors name the file (the engine's messages always do): "load_png: x.png: not a PNG file". */
#include <math.h>
#include <string.h>

#include "fm_png.h"
#include "lfm.h"

/* The side of a square image of n pixels, or 0 when n is not a square. */
static int64_t square_side(int64_t n) {
  int64_t s = (int64_t)llround(sqrt((double)n));
  return s > 0 && s * s == n ? s : 0;
}

/* Height and width of a tensor seen as one image: 2-D as it is, 1-D when its length is square. */
static void image_size(lua_State *L, const fm_tensor *t, const char *fname, int64_t *h,
                       int64_t *w) {
  char s[64];
  if (t->ndim == 2) {
    *h = t->shape[0];
    *w = t->shape[1];
  } else if (t->ndim == 1 && square_side(t->numel)) {
    *h = *w = square_side(t->numel);
  } else {
    luaL_error(L, "%s: an image must be a 2-D tensor or a 1-D one of square length, got %s", fname,
               fm_shape_str(t, s, sizeof s));
  }
}

/* Arguments are read and checked (options through their __index) before the tensor's floats are
 * touched; the tensor stays anchored as argument 1. */
static int png_save(lua_State *L) {
  lfm_checktensor(L, 1);
  luaL_checkstring(L, 2);
  int opts = lfm_optopts(L, 3);
  static const char *const known[] = {"scale", NULL};
  lfm_check_options(L, opts, "save_png", known);
  lua_Integer scale = lfm_optfield_range(L, opts, "scale", 1, 1, FM_PNG_MAX_SCALE);
  const fm_tensor *t = lfm_checktensor(L, 1);
  const char *path = lua_tostring(L, 2);
  int64_t h, w;
  image_size(L, t, "save_png", &h, &w);
  if (fm_png_write(path, t->data, h, w, (int)scale) != FM_OK)
    return lfm_engine_error(L, "save_png");
  lua_pushvalue(L, 2);
  return 1;
}

static int png_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  fm_png_info info;
  if (fm_png_probe(path, &info) != FM_OK) return lfm_engine_error(L, "load_png");
  int64_t shape[2] = {info.height, info.width};
  fm_tensor *t = lfm_newtensor(L, 2, shape);
  if (fm_png_read(path, &info, t->data) != FM_OK) return lfm_engine_error(L, "load_png");
  return 1;
}

/* Checks fm.png.grid's first argument and pushes a table, made here, that holds every image
 * tensor: whatever later happens to the user's list (a finalizer that empties it during an
 * allocation), the tensors stay alive. The list is read raw (no __len, no __index). Fills g's
 * count and image size; returns 1 when the images are the rows of one tensor (anchors[1]). */
static int anchor_grid_images(lua_State *L, int arg, fm_grid *g) {
  char s1[64], s2[64];
  fm_tensor *t = lfm_totensor(L, arg);
  if (t) {
    if (t->ndim == 3) {
      g->count = t->shape[0];
      g->rows = t->shape[1];
      g->cols = t->shape[2];
    } else if (t->ndim == 2 && square_side(t->shape[1])) {
      g->count = t->shape[0];
      g->rows = g->cols = square_side(t->shape[1]);
    } else {
      luaL_error(L,
                 "png.grid: a tensor of images must be n x h x w, or n x (k*k) with one square "
                 "image a row; got %s",
                 fm_shape_str(t, s1, sizeof s1));
    }
    if (g->count < 1) luaL_error(L, "png.grid: no images");
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, arg);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  if (lua_type(L, arg) != LUA_TTABLE)
    luaL_error(L, "png.grid: images must be a list of tensors or a tensor, got %s",
               luaL_typename(L, arg));
  lua_Unsigned n = lua_rawlen(L, arg);
  if (n < 1) luaL_error(L, "png.grid: no images");
  if (n > FM_PNG_MAX_SIDE)
    luaL_error(L, "png.grid: %I images, more than the %d a grid can hold", (lua_Integer)n,
               FM_PNG_MAX_SIDE);
  lua_createtable(L, (int)n, 0);
  int anchors = lua_gettop(L);
  fm_tensor *first = NULL;
  for (lua_Integer k = 1; k <= (lua_Integer)n; k++) {
    lua_rawgeti(L, arg, k);
    fm_tensor *img = lfm_totensor(L, -1);
    if (!img)
      luaL_error(L, "png.grid: image %I is a %s (tensor expected)", k, luaL_typename(L, -1));
    int64_t h, w;
    image_size(L, img, "png.grid", &h, &w);
    if (!first) {
      first = img;
      g->rows = h;
      g->cols = w;
    } else if (h != g->rows || w != g->cols) {
      luaL_error(L, "png.grid: image %I is %s but image 1 is %s (all must be the same size)", k,
                 fm_shape_str(img, s1, sizeof s1), fm_shape_str(first, s2, sizeof s2));
    }
    lua_rawseti(L, anchors, k);
  }
  g->count = (int64_t)n;
  return 0;
}

/* Pointers to the images anchored by anchor_grid_images (table at index anchors), in a userdata
 * pushed here. Runs no Lua code but the allocation. */
static const float **grid_pointers(lua_State *L, int anchors, int one_tensor, const fm_grid *g) {
  const float **ptrs = lua_newuserdatauv(L, sizeof(float *) * (size_t)g->count, 0);
  for (int64_t k = 0; k < g->count; k++) {
    lua_rawgeti(L, anchors, one_tensor ? 1 : k + 1);
    const fm_tensor *t = lfm_totensor(L, -1);
    ptrs[k] = one_tensor ? t->data + k * g->rows * g->cols : t->data;
    lua_pop(L, 1);
  }
  return ptrs;
}

/* Every option is read and checked before the images are looked at, and the images are anchored
 * before any pointer to their floats is taken. */
static int png_grid(lua_State *L) {
  lua_settop(L, 2);
  int opts = lfm_optopts(L, 2);
  static const char *const known[] = {"cols",  "scale",      "gap",  "gap_x",
                                      "gap_y", "background", "file", NULL};
  lfm_check_options(L, opts, "png.grid", known);
  /* 0: absent, a square-ish grid */
  lua_Integer cols = lfm_optfield_range(L, opts, "cols", 0, 1, FM_PNG_MAX_SIDE);
  lua_Integer scale = lfm_optfield_range(L, opts, "scale", 1, 1, FM_PNG_MAX_SCALE);
  lua_Integer gap = lfm_optfield_range(L, opts, "gap", 1, 0, 1024);
  lua_Integer gap_x = lfm_optfield_range(L, opts, "gap_x", gap, 0, 1024);
  lua_Integer gap_y = lfm_optfield_range(L, opts, "gap_y", gap, 0, 1024);
  float background = (float)lfm_optfield_num(L, opts, "background", 1.0);
  int file_type = opts ? lua_getfield(L, opts, "file") : (lua_pushnil(L), LUA_TNIL); /* index 3 */
  if (file_type != LUA_TNIL && file_type != LUA_TSTRING)
    return luaL_error(L, "png.grid: option 'file' must be a string, got %s", luaL_typename(L, 3));

  fm_grid g;
  int one_tensor = anchor_grid_images(L, 1, &g); /* index 4 */
  g.grid_cols = cols ? cols : (lua_Integer)ceil(sqrt((double)g.count));
  g.scale = (int)scale;
  g.gap_x = gap_x;
  g.gap_y = gap_y;
  int64_t shape[2];
  if (fm_grid_size(&g, &shape[0], &shape[1]) != FM_OK) return lfm_engine_error(L, "png.grid");
  fm_tensor *out = lfm_newtensor(L, 2, shape); /* index 5 */
  const float **images = grid_pointers(L, 4, one_tensor, &g);
  fm_grid_fill(&g, images, background, out->data);
  lua_settop(L, 5);
  if (file_type == LUA_TNIL) return 1;
  if (fm_png_write(lua_tostring(L, 3), out->data, shape[0], shape[1], 1) != FM_OK)
    return lfm_engine_error(L, "png.grid");
  lua_pushvalue(L, 3);
  return 1;
}

void lfm_open_png(lua_State *L) {
  static const luaL_Reg methods[] = {{"save_png", png_save}, {NULL, NULL}};
  static const luaL_Reg functions[] = {
      {"grid", png_grid}, {"save", png_save}, {"load", png_load}, {NULL, NULL}};
  lfm_addmethods(L, LFM_TENSOR, methods);
  luaL_newlib(L, functions);
  lua_setfield(L, -2, "png");
  lua_pushcfunction(L, png_load);
  lua_setfield(L, -2, "load_png");
}
