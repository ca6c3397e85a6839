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

static int png_save(lua_State *L) {
  fm_tensor *t = lfm_checktensor(L, 1);
  const char *path = luaL_checkstring(L, 2);
  int opts = lfm_optopts(L, 3);
  lua_Integer scale = lfm_optfield_int(L, opts, "scale", 1);
  if (scale < 1 || scale > FM_PNG_MAX_SCALE)
    return luaL_error(L, "save_png: scale must be an integer from 1 to %d, got %I",
                      FM_PNG_MAX_SCALE, scale);
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

/* Collects the images of fm.png.grid's first argument: pushes a userdata holding their float
 * pointers (the tensors themselves stay alive in the argument) and fills g's count and size. */
static const float **grid_images(lua_State *L, int arg, fm_grid *g) {
  char s1[64], s2[64];
  fm_tensor *t = lfm_totensor(L, arg);
  if (t) {
    int64_t n, h, w;
    if (t->ndim == 3) {
      n = t->shape[0];
      h = t->shape[1];
      w = t->shape[2];
    } else if (t->ndim == 2 && square_side(t->shape[1])) {
      n = t->shape[0];
      h = w = square_side(t->shape[1]);
    } else {
      luaL_error(L,
                 "png.grid: a tensor of images must be n x h x w, or n x (k*k) with one square "
                 "image a row; got %s",
                 fm_shape_str(t, s1, sizeof s1));
      return NULL;
    }
    if (n < 1) luaL_error(L, "png.grid: no images");
    const float **ptrs = lua_newuserdatauv(L, sizeof(float *) * (size_t)n, 0);
    for (int64_t k = 0; k < n; k++) ptrs[k] = t->data + k * h * w;
    g->count = n;
    g->rows = h;
    g->cols = w;
    return ptrs;
  }
  if (lua_type(L, arg) != LUA_TTABLE)
    luaL_error(L, "png.grid: images must be a list of tensors or a tensor, got %s",
               luaL_typename(L, arg));
  int64_t n = (int64_t)lua_rawlen(L, arg);
  if (n < 1) luaL_error(L, "png.grid: no images");
  const float **ptrs = lua_newuserdatauv(L, sizeof(float *) * (size_t)n, 0);
  fm_tensor *first = NULL;
  for (int64_t k = 1; k <= n; k++) {
    lua_rawgeti(L, arg, k);
    fm_tensor *img = lfm_totensor(L, -1);
    if (!img)
      luaL_error(L, "png.grid: image %I is a %s (tensor expected)", (lua_Integer)k,
                 luaL_typename(L, -1));
    int64_t h, w;
    image_size(L, img, "png.grid", &h, &w);
    if (!first) {
      first = img;
      g->rows = h;
      g->cols = w;
    } else if (h != g->rows || w != g->cols) {
      luaL_error(L, "png.grid: image %I is %s but image 1 is %s (all must be the same size)",
                 (lua_Integer)k, fm_shape_str(img, s1, sizeof s1),
                 fm_shape_str(first, s2, sizeof s2));
    }
    ptrs[k - 1] = img->data;
    lua_pop(L, 1); /* kept alive by the list */
  }
  g->count = n;
  return ptrs;
}

static int png_grid(lua_State *L) {
  int opts = lfm_optopts(L, 2);
  fm_grid g;
  const float **images = grid_images(L, 1, &g);
  lua_Integer square_cols = (lua_Integer)ceil(sqrt((double)g.count));
  g.grid_cols = lfm_optfield_int(L, opts, "cols", square_cols);
  lua_Integer scale = lfm_optfield_int(L, opts, "scale", 1);
  lua_Integer gap = lfm_optfield_int(L, opts, "gap", 1);
  float background = (float)lfm_optfield_num(L, opts, "background", 1.0);
  if (scale < 1 || scale > FM_PNG_MAX_SCALE)
    return luaL_error(L, "png.grid: scale must be an integer from 1 to %d, got %I",
                      FM_PNG_MAX_SCALE, scale);
  lua_Integer gap_x = lfm_optfield_int(L, opts, "gap_x", gap);
  lua_Integer gap_y = lfm_optfield_int(L, opts, "gap_y", gap);
  if (gap_x < 0 || gap_x > 1024 || gap_y < 0 || gap_y > 1024)
    return luaL_error(L, "png.grid: gaps must be 0..1024 pixels, got %I and %I", gap_x, gap_y);
  g.scale = (int)scale;
  g.gap_x = gap_x;
  g.gap_y = gap_y;
  const char *file = NULL;
  if (opts && lua_getfield(L, opts, "file") != LUA_TNIL) {
    file = lua_tostring(L, -1);
    if (!file || lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "png.grid: option 'file' must be a string");
  }
  int64_t shape[2];
  if (fm_grid_size(&g, &shape[0], &shape[1]) != FM_OK) return lfm_engine_error(L, "png.grid");
  fm_tensor *out = lfm_newtensor(L, 2, shape);
  fm_grid_fill(&g, images, background, out->data);
  if (!file) return 1;
  if (fm_png_write(file, out->data, shape[0], shape[1], 1) != FM_OK)
    return lfm_engine_error(L, "png.grid");
  lua_pushstring(L, file);
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
