/* l_image.c: fm.image, pictures of any size made ready for the models (engine/fm_image.c), and
 * fm.class_name.
 *
 * An image is a tensor H x W (grey) or H x W x C with C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA,
 * values in [0,1]. Functions keep the layout they are given (2-D stays 2-D) unless said otherwise.
 * Rows and columns are 1-based, as everywhere in Lua.
 *
 *   fm.image.load(path) -> H x W x C tensor: any PNG (1 to 16 bits, grey, RGB, palette, with or
 *       without alpha or a transparency chunk) with its channels and alpha kept
 *   fm.image.grey(t [, {background = v | "auto"}]) -> H x W: alpha composited onto the grey level
 *       background (default "auto": white behind a dark object, black behind a light one), then
 *       luminance 0.299 R + 0.587 G + 0.114 B (Rec. 601)
 *   fm.image.background(t) -> level: the median of a grey image's border pixels; above 0.5 the
 *       background is light
 *   fm.image.invert(t) -> 1 - t on every channel but alpha
 *   fm.image.trim(t [, {threshold = 0.1, background = border level}]) -> cropped, box: the
 *       bounding box of the pixels of a grey image that differ from the background by more than
 *       threshold; box = {top =, left =, height =, width =}. An image with no such pixel is an
 *       error.
 *   fm.image.crop(t, top, left, height, width) -> that box of t, which must lie inside it
 *   fm.image.pad(t, top, bottom, left, right [, value = 0]) -> t with margins of value
 *   fm.image.resize(t, height, width) -> area averaging on an axis that shrinks (the mean is kept,
 *       nothing aliases), bilinear interpolation on an axis that grows
 *   fm.image.center(t, size [, {by = "mass" | "box"}]) -> size x size: a grey image that fits,
 *       placed on a black canvas with its centre of mass (default) or its middle at the centre,
 *       as far as the canvas allows without cutting it
 *   fm.image.prepare(t [, opts]) -> 28 x 28, info: the dataset's pipeline. Alpha composited
 *       (background), grey, inverted when the border is light (invert = "auto" | true | false),
 *       trimmed (threshold, default 0.1), levelled so that a dark background is 0, resized so that
 *       the longest side is size - 2 * margin (size 28, margin 0), centred by its box as the
 *       dataset is (center = "box" | "mass"). info says what was found: background (border level
 *       before inversion), inverted, alpha_background (nil without alpha), box (in t's pixels),
 *       scaled = {height =, width =}, placed = {top =, left =} (on the canvas).
 *   fm.class_name(id) -> the name of class id 0..9 (the dataset's labels, as model:predict gives
 *       them); anything else is an error.
 *
 * Errors name the function and the argument: "image.resize: height must be an integer from 1 to
 * 16384, got 0"; files are named: "image.load: x.png: not a PNG file". */
#include <math.h>
#include <string.h>

#include "fm_image.h"
#include "fm_png.h"
#include "lfm.h"

/* ---- arguments ---- */

/* The image behind tensor argument arg (H x W, or H x W x C with C 1..4), checked for size. */
static fm_image check_image(lua_State *L, int arg, const char *fname) {
  fm_tensor *t = lfm_checktensor(L, arg);
  char s[64];
  if (!(t->ndim == 2 || (t->ndim == 3 && t->shape[2] >= 1 && t->shape[2] <= 4)))
    luaL_error(L, "%s: an image is a H x W or H x W x C tensor (C from 1 to 4), got %s", fname,
               fm_shape_str(t, s, sizeof s));
  fm_image im = {t->shape[0], t->shape[1], t->ndim == 3 ? (int)t->shape[2] : 1, t->data};
  if (fm_image_size("image", im.height, im.width, im.channels, NULL) != FM_OK)
    lfm_engine_error(L, fname);
  return im;
}

/* As check_image, for functions that need one channel. */
static fm_image check_grey(lua_State *L, int arg, const char *fname) {
  fm_image im = check_image(L, arg, fname);
  if (im.channels != 1) {
    char s[64];
    luaL_error(L, "%s: needs a grey image (H x W or H x W x 1), got %s; fm.image.grey makes one",
               fname, fm_shape_str(lfm_checktensor(L, arg), s, sizeof s));
  }
  return im;
}

/* An integer argument from lo to hi; the message names it. */
static int64_t check_int(lua_State *L, int arg, const char *fname, const char *name, lua_Integer lo,
                         lua_Integer hi) {
  int isint = 0;
  lua_Integer v = lua_type(L, arg) == LUA_TNUMBER ? lua_tointegerx(L, arg, &isint) : 0;
  if (!isint || v < lo || v > hi)
    luaL_error(L, "%s: %s must be an integer from %I to %I, got %s", fname, name, lo, hi,
               lua_isnoneornil(L, arg) ? "nothing" : luaL_tolstring(L, arg, NULL));
  return (int64_t)v;
}

/* Pushes a new tensor for an image of the given size, 2-D when ndim is 2, and points *im at it. */
static void push_image(lua_State *L, int ndim, int64_t height, int64_t width, int channels,
                       fm_image *im, const char *fname) {
  if (fm_image_size("result", height, width, channels, NULL) != FM_OK) lfm_engine_error(L, fname);
  int64_t shape[3] = {height, width, channels};
  fm_tensor *t = lfm_newtensor(L, ndim, shape);
  *im = (fm_image){height, width, channels, t->data};
}

static int ndim_of(lua_State *L, int arg) { return lfm_checktensor(L, arg)->ndim; }

/* A grey level option: a number in [0,1], or "auto" (or absent), which gives NaN. */
static float opt_level(lua_State *L, int opts, const char *key, const char *fname) {
  if (!opts) return NAN;
  int type = lua_getfield(L, opts, key);
  float v = NAN;
  int is_auto =
      type == LUA_TNIL || (type == LUA_TSTRING && strcmp(lua_tostring(L, -1), "auto") == 0);
  if (!is_auto) {
    v = type == LUA_TNUMBER ? (float)lua_tonumber(L, -1) : NAN;
    if (!(v >= 0.0f && v <= 1.0f))
      luaL_error(L, "%s: option '%s' must be a number in [0, 1] or \"auto\", got %s", fname, key,
                 luaL_tolstring(L, -1, NULL));
  }
  lua_pop(L, 1);
  return v;
}

/* A number option in [0, 1); NaN and anything else is an error naming it. */
static float opt_fraction(lua_State *L, int opts, const char *key, float def, const char *fname) {
  lua_Number v = lfm_optfield_num(L, opts, key, def);
  if (!(v >= 0.0 && v < 1.0))
    luaL_error(L, "%s: option '%s' must be a number in [0, 1), got %f", fname, key, v);
  return (float)v;
}

/* A string option that must be one of the NULL-terminated choices; returns its index. */
static int opt_choice(lua_State *L, int opts, const char *key, const char *const *choices, int def,
                      const char *fname) {
  if (!opts || lua_getfield(L, opts, key) == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    return def;
  }
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  for (int i = 0; s && choices[i]; i++)
    if (strcmp(s, choices[i]) == 0) {
      lua_pop(L, 1);
      return i;
    }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; choices[i]; i++) {
    if (i) luaL_addstring(&b, ", ");
    lua_pushfstring(L, "\"%s\"", choices[i]);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  const char *list = lua_tostring(L, -1);
  const char *got = luaL_tolstring(L, -2, NULL);
  return luaL_error(L, "%s: option '%s' must be one of %s, got %s", fname, key, list, got);
}

/* ---- functions ---- */

static int image_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  fm_png_info info;
  if (fm_png_probe_color(path, &info) != FM_OK) return lfm_engine_error(L, "image.load");
  /* The header's claim is checked before the memory for it is asked for. */
  if (fm_image_size(path, info.height, info.width, info.channels, NULL) != FM_OK)
    return lfm_engine_error(L, "image.load");
  fm_image im;
  push_image(L, 3, info.height, info.width, info.channels, &im, "image.load");
  if (fm_png_read_color(path, &info, im.data) != FM_OK) return lfm_engine_error(L, "image.load");
  return 1;
}

static int image_grey(lua_State *L) {
  static const char *const known[] = {"background", NULL};
  fm_image in = check_image(L, 1, "image.grey");
  int opts = lfm_optopts(L, 2);
  lfm_check_options(L, opts, "image.grey", known);
  float background = opt_level(L, opts, "background", "image.grey");
  if (isnan(background)) background = fm_image_alpha_background(&in);
  fm_image out;
  push_image(L, 2, in.height, in.width, 1, &out, "image.grey");
  if (fm_image_grey(&in, background, &out) != FM_OK) return lfm_engine_error(L, "image.grey");
  return 1;
}

static int image_background(lua_State *L) {
  fm_image in = check_grey(L, 1, "image.background");
  float level;
  if (fm_image_background(&in, &level) != FM_OK) return lfm_engine_error(L, "image.background");
  lua_pushnumber(L, level);
  return 1;
}

static int image_invert(lua_State *L) {
  fm_image in = check_image(L, 1, "image.invert");
  fm_image out;
  push_image(L, ndim_of(L, 1), in.height, in.width, in.channels, &out, "image.invert");
  if (fm_image_invert(&in, &out) != FM_OK) return lfm_engine_error(L, "image.invert");
  return 1;
}

/* Pushes {top =, left =, height =, width =}, 1-based. */
static void push_box(lua_State *L, fm_box b) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, b.top + 1);
  lua_setfield(L, -2, "top");
  lua_pushinteger(L, b.left + 1);
  lua_setfield(L, -2, "left");
  lua_pushinteger(L, b.height);
  lua_setfield(L, -2, "height");
  lua_pushinteger(L, b.width);
  lua_setfield(L, -2, "width");
}

static int image_trim(lua_State *L) {
  static const char *const known[] = {"threshold", "background", NULL};
  fm_image in = check_grey(L, 1, "image.trim");
  int opts = lfm_optopts(L, 2);
  lfm_check_options(L, opts, "image.trim", known);
  float threshold = opt_fraction(L, opts, "threshold", 0.1f, "image.trim");
  float background = opt_level(L, opts, "background", "image.trim");
  if (isnan(background)) {
    if (fm_image_background(&in, &background) != FM_OK) return lfm_engine_error(L, "image.trim");
    background = background < 0 ? 0 : background > 1 ? 1 : background;
  }
  fm_box box;
  if (fm_image_trim_box(&in, background, threshold, &box) != FM_OK)
    return lfm_engine_error(L, "image.trim");
  fm_image out;
  push_image(L, ndim_of(L, 1), box.height, box.width, 1, &out, "image.trim");
  if (fm_image_crop(&in, box.top, box.left, &out) != FM_OK)
    return lfm_engine_error(L, "image.trim");
  push_box(L, box);
  return 2;
}

static int image_crop(lua_State *L) {
  fm_image in = check_image(L, 1, "image.crop");
  int64_t top = check_int(L, 2, "image.crop", "top", 1, in.height);
  int64_t left = check_int(L, 3, "image.crop", "left", 1, in.width);
  int64_t h = check_int(L, 4, "image.crop", "height", 1, in.height - top + 1);
  int64_t w = check_int(L, 5, "image.crop", "width", 1, in.width - left + 1);
  fm_image out;
  push_image(L, ndim_of(L, 1), h, w, in.channels, &out, "image.crop");
  if (fm_image_crop(&in, top - 1, left - 1, &out) != FM_OK)
    return lfm_engine_error(L, "image.crop");
  return 1;
}

static int image_pad(lua_State *L) {
  fm_image in = check_image(L, 1, "image.pad");
  static const char *const names[] = {"top", "bottom", "left", "right"};
  int64_t pad[4];
  for (int i = 0; i < 4; i++)
    pad[i] = check_int(L, 2 + i, "image.pad", names[i], 0, FM_IMAGE_MAX_SIDE);
  lua_Number value = luaL_optnumber(L, 6, 0.0);
  if (!isfinite(value))
    return luaL_error(L, "image.pad: value must be a finite number, got %f", value);
  fm_image out;
  push_image(L, ndim_of(L, 1), in.height + pad[0] + pad[1], in.width + pad[2] + pad[3], in.channels,
             &out, "image.pad");
  if (fm_image_pad(&in, pad[0], pad[1], pad[2], pad[3], (float)value, &out) != FM_OK)
    return lfm_engine_error(L, "image.pad");
  return 1;
}

static int image_resize(lua_State *L) {
  fm_image in = check_image(L, 1, "image.resize");
  int64_t h = check_int(L, 2, "image.resize", "height", 1, FM_IMAGE_MAX_SIDE);
  int64_t w = check_int(L, 3, "image.resize", "width", 1, FM_IMAGE_MAX_SIDE);
  fm_image out;
  push_image(L, ndim_of(L, 1), h, w, in.channels, &out, "image.resize");
  if (fm_image_resize(&in, &out) != FM_OK) return lfm_engine_error(L, "image.resize");
  return 1;
}

static int image_center(lua_State *L) {
  static const char *const known[] = {"by", NULL};
  static const char *const by[] = {"mass", "box", NULL};
  fm_image in = check_grey(L, 1, "image.center");
  int64_t size = check_int(L, 2, "image.center", "size", 1, FM_IMAGE_MAX_SIDE);
  int opts = lfm_optopts(L, 3);
  lfm_check_options(L, opts, "image.center", known);
  int by_mass = opt_choice(L, opts, "by", by, 0, "image.center") == 0;
  fm_image out;
  push_image(L, 2, size, size, 1, &out, "image.center");
  if (fm_image_center(&in, by_mass, &out, NULL, NULL) != FM_OK)
    return lfm_engine_error(L, "image.center");
  return 1;
}

/* invert = "auto" | true | false */
static fm_invert_mode opt_invert(lua_State *L, int opts) {
  if (!opts || lua_getfield(L, opts, "invert") == LUA_TNIL) {
    if (opts) lua_pop(L, 1);
    return FM_INVERT_AUTO;
  }
  fm_invert_mode mode = FM_INVERT_AUTO;
  if (lua_type(L, -1) == LUA_TBOOLEAN)
    mode = lua_toboolean(L, -1) ? FM_INVERT_YES : FM_INVERT_NO;
  else if (!(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "auto") == 0))
    luaL_error(L, "image.prepare: option 'invert' must be true, false or \"auto\", got %s",
               luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return mode;
}

static int image_prepare(lua_State *L) {
  static const char *const known[] = {"background", "invert", "threshold", "size",
                                      "margin",     "center", NULL};
  static const char *const centers[] = {"box", "mass", NULL};
  fm_image in = check_image(L, 1, "image.prepare");
  int opts = lfm_optopts(L, 2);
  lfm_check_options(L, opts, "image.prepare", known);
  fm_prepare_opts o = fm_prepare_defaults();
  o.alpha_background = opt_level(L, opts, "background", "image.prepare");
  o.invert = opt_invert(L, opts);
  o.threshold = opt_fraction(L, opts, "threshold", o.threshold, "image.prepare");
  o.size = lfm_optfield_range(L, opts, "size", o.size, 1, 1024);
  o.margin = lfm_optfield_range(L, opts, "margin", o.margin, 0, (o.size - 1) / 2);
  o.by_mass = opt_choice(L, opts, "center", centers, 0, "image.prepare") == 1;
  fm_image out;
  push_image(L, 2, o.size, o.size, 1, &out, "image.prepare");
  fm_prepare_info info;
  if (fm_image_prepare(&in, &o, &out, &info) != FM_OK) return lfm_engine_error(L, "image.prepare");
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, info.background);
  lua_setfield(L, -2, "background");
  lua_pushboolean(L, info.inverted);
  lua_setfield(L, -2, "inverted");
  if (!isnan(info.alpha_background)) {
    lua_pushnumber(L, info.alpha_background);
    lua_setfield(L, -2, "alpha_background");
  }
  push_box(L, info.box);
  lua_setfield(L, -2, "box");
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, info.scaled_height);
  lua_setfield(L, -2, "height");
  lua_pushinteger(L, info.scaled_width);
  lua_setfield(L, -2, "width");
  lua_setfield(L, -2, "scaled");
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, info.top + 1);
  lua_setfield(L, -2, "top");
  lua_pushinteger(L, info.left + 1);
  lua_setfield(L, -2, "left");
  lua_setfield(L, -2, "placed");
  return 2;
}

/* fm.class_name(id): the names are the registry's "fmnist.classes" (l_dataset.c), the same table
 * as fm.classes, where name k + 1 is class k's. That table can be changed from Lua, so what it
 * holds is checked. */
static int class_name(lua_State *L) {
  int isint = 0;
  lua_Integer id = lua_type(L, 1) == LUA_TNUMBER ? lua_tointegerx(L, 1, &isint) : 0;
  if (!isint || id < 0 || id >= FM_CLASSES)
    return luaL_error(L, "class_name: %s is not a class id (0 to %d, the dataset's labels)",
                      lua_isnoneornil(L, 1) ? "nothing" : luaL_tolstring(L, 1, NULL),
                      FM_CLASSES - 1);
  if (lua_getfield(L, LUA_REGISTRYINDEX, "fmnist.classes") != LUA_TTABLE)
    return luaL_error(L, "class_name: the class names are missing");
  if (lua_rawgeti(L, -1, id + 1) != LUA_TSTRING)
    return luaL_error(L, "class_name: the name of class %I is a %s, not a string", id,
                      luaL_typename(L, -1));
  return 1;
}

void lfm_open_image(lua_State *L) {
  static const luaL_Reg functions[] = {{"load", image_load},
                                       {"grey", image_grey},
                                       {"background", image_background},
                                       {"invert", image_invert},
                                       {"trim", image_trim},
                                       {"crop", image_crop},
                                       {"pad", image_pad},
                                       {"resize", image_resize},
                                       {"center", image_center},
                                       {"prepare", image_prepare},
                                       {NULL, NULL}};
  luaL_newlib(L, functions);
  lua_setfield(L, -2, "image");
  lua_pushcfunction(L, class_name);
  lua_setfield(L, -2, "class_name");
}
