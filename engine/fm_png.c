/* fm_png: PNG reading and writing through libpng, and image grids.
 *
 * libpng reports errors by calling an error function that must not return; ours records the message
 * and longjmps back to the one setjmp in each top-level function. Everything that has to be freed
 * (the libpng structures, the FILE, the row buffer, the temporary file) is acquired before setjmp
 * and never reassigned after it, so the error path can release it without volatile gymnastics (the
 * one exception, fm_png_check's row, sized only once the header is read, is volatile). */
#include "fm_png.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_error.h"
#include "fm_file.h"

/* What the error callback leaves for the code after setjmp. */
typedef struct png_ctx {
  char message[256];
} png_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
  png_ctx *ctx = png_get_error_ptr(png);
  snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}

/* Warnings (an unknown ancillary chunk, a bad gamma value) do not stop reading or writing. */
static void on_png_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

static unsigned char to_byte(float v) {
  if (!(v > 0.0f)) return 0; /* also NaN */
  if (v >= 1.0f) return 255;
  return (unsigned char)lrintf(v * 255.0f);
}

int fm_png_write(const char *path, const float *pixels, int64_t height, int64_t width, int scale) {
  if (scale < 1 || scale > FM_PNG_MAX_SCALE)
    return fm_fail("%s: scale must be an integer from 1 to %d, got %d", path, FM_PNG_MAX_SCALE,
                   scale);
  if (height < 1 || width < 1)
    return fm_fail("%s: cannot write an empty image (%lldx%lld)", path, (long long)height,
                   (long long)width);
  int64_t out_h = height * scale, out_w = width * scale;
  if (out_h > FM_PNG_MAX_SIDE || out_w > FM_PNG_MAX_SIDE)
    return fm_fail("%s: image of %lldx%lld pixels is larger than the limit of %d per side", path,
                   (long long)out_h, (long long)out_w, FM_PNG_MAX_SIDE);

  png_ctx ctx = {{0}};
  unsigned char *row = malloc((size_t)out_w);
  if (!row) return fm_fail("%s: out of memory for a row of %lld bytes", path, (long long)out_w);
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    free(row);
    return fm_fail("%s: out of memory for libpng", path);
  }
  fm_atomic_file file;
  if (fm_atomic_begin(&file, path) != FM_OK) {
    png_destroy_write_struct(&png, &info);
    free(row);
    return FM_ERR;
  }

  if (setjmp(png_jmpbuf(png))) {
    int e = errno; /* what the failed fwrite said, before cleanup changes it */
    png_destroy_write_struct(&png, &info);
    free(row);
    fm_atomic_abort(&file);
    if (strcmp(ctx.message, "Write Error") == 0 && e)
      return fm_fail("%s: cannot write (%s)", path, strerror(e));
    return fm_fail("%s: cannot write PNG (libpng: %s)", path, ctx.message);
  }
  png_init_io(png, file.f);
  png_set_IHDR(png, info, (png_uint_32)out_w, (png_uint_32)out_h, 8, PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t y = 0; y < height; y++) {
    const float *src = pixels + y * width;
    for (int64_t x = 0; x < width; x++) memset(row + x * scale, to_byte(src[x]), (size_t)scale);
    for (int k = 0; k < scale; k++) png_write_row(png, row);
  }
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(row);
  return fm_atomic_commit(&file);
}

/* Opens path for reading if it is a regular file. O_NONBLOCK keeps open() of a FIFO without a
 * writer from waiting forever; the type is checked on the opened file, so it cannot change between
 * the check and the reads. */
static FILE *open_regular(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    fm_fail("%s: cannot open (%s)", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  const char *wrong = NULL;
  if (fstat(fd, &st) != 0)
    wrong = strerror(errno);
  else if (S_ISDIR(st.st_mode))
    wrong = strerror(EISDIR);
  else if (!S_ISREG(st.st_mode))
    wrong = "not a regular file: a device, FIFO or socket";
  if (wrong) {
    close(fd);
    fm_fail("%s: cannot read (%s)", path, wrong);
    return NULL;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    fm_fail("%s: cannot open (%s)", path, strerror(errno));
    close(fd);
  }
  return f;
}

/* Opens path and checks the 8-byte signature, so that a file that is not a PNG at all gets a plain
 * message instead of libpng's. */
static FILE *open_png(const char *path) {
  FILE *f = open_regular(path);
  if (!f) return NULL;
  unsigned char sig[8];
  size_t got = fread(sig, 1, sizeof sig, f);
  if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (e)
      fm_fail("%s: cannot read (%s)", path, strerror(e));
    else if (got == 0)
      fm_fail("%s: not a PNG file (empty)", path);
    else
      fm_fail("%s: not a PNG file (bad signature)", path);
    return NULL;
  }
  return f;
}

/* Converts row y, stored as 16-bit big-endian samples at the start of its own float slots, into
 * floats in place. Going from the last pixel down is safe: float x occupies bytes 4x..4x+3, which
 * hold samples 2x and 2x+1, both already converted by then (sample x is read before the write). */
static void row16_to_float(float *row, int64_t width) {
  const unsigned char *bytes = (const unsigned char *)row;
  for (int64_t x = width - 1; x >= 0; x--) {
    unsigned v = ((unsigned)bytes[2 * x] << 8) | bytes[2 * x + 1];
    row[x] = (float)v / 65535.0f;
  }
}


/* ---- grids ---- */

int fm_grid_size(const fm_grid *g, int64_t *height, int64_t *width) {
  if (g->count < 1) return fm_fail("grid: no images");
  if (g->rows < 1 || g->cols < 1)
    return fm_fail("grid: images must not be empty (%lldx%lld)", (long long)g->rows,
                   (long long)g->cols);
  if (g->grid_cols < 1)
    return fm_fail("grid: cols must be at least 1, got %lld", (long long)g->grid_cols);
  if (g->scale < 1 || g->scale > FM_PNG_MAX_SCALE)
    return fm_fail("grid: scale must be an integer from 1 to %d, got %d", FM_PNG_MAX_SCALE,
                   g->scale);
  if (g->gap_x < 0 || g->gap_y < 0 || g->gap_x > FM_PNG_MAX_SIDE || g->gap_y > FM_PNG_MAX_SIDE)
    return fm_fail("grid: gaps must be from 0 to %d pixels", FM_PNG_MAX_SIDE);
  if (g->count > FM_PNG_MAX_SIDE)
    return fm_fail("grid: %lld images, more than the limit of %d", (long long)g->count,
                   FM_PNG_MAX_SIDE);
  if (g->rows > FM_PNG_MAX_SIDE || g->cols > FM_PNG_MAX_SIDE)
    return fm_fail("grid: images of %lldx%lld are larger than the limit of %d per side",
                   (long long)g->rows, (long long)g->cols, FM_PNG_MAX_SIDE);
  int64_t ncols = g->count < g->grid_cols ? g->count : g->grid_cols;
  int64_t nrows = (g->count + ncols - 1) / ncols;
  int64_t h = nrows * g->rows * g->scale + (nrows - 1) * g->gap_y;
  int64_t w = ncols * g->cols * g->scale + (ncols - 1) * g->gap_x;
  if (h > FM_PNG_MAX_SIDE || w > FM_PNG_MAX_SIDE)
    return fm_fail("grid: picture of %lldx%lld pixels is larger than the limit of %d per side",
                   (long long)h, (long long)w, FM_PNG_MAX_SIDE);
  *height = h;
  *width = w;
  return FM_OK;
}

void fm_grid_fill(const fm_grid *g, const float *const *images, float background, float *out) {
  int64_t height, width;
  if (fm_grid_size(g, &height, &width) != FM_OK) return;
  for (int64_t i = 0; i < height * width; i++) out[i] = background;
  int64_t ncols = g->count < g->grid_cols ? g->count : g->grid_cols;
  int64_t cell_h = g->rows * g->scale + g->gap_y, cell_w = g->cols * g->scale + g->gap_x;
  for (int64_t k = 0; k < g->count; k++) {
    int64_t top = (k / ncols) * cell_h, left = (k % ncols) * cell_w;
    const float *img = images[k];
    for (int64_t y = 0; y < g->rows * g->scale; y++) {
      const float *src = img + (y / g->scale) * g->cols;
      float *dst = out + (top + y) * width + left;
      for (int64_t x = 0; x < g->cols * g->scale; x++) dst[x] = src[x / g->scale];
    }
  }
}

/* ---- checking a whole file ---- */

/* Decodes one image from f (positioned after its signature) row by row into a scratch row, and
 * reads up to its IEND. row_buf is the caller's so that the error path has nothing to free. */
static int check_one_image(const char *path, FILE *f, int index) {
  png_ctx ctx = {{0}};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  png_infop pinfo = png ? png_create_info_struct(png) : NULL;
  if (!pinfo) {
    png_destroy_read_struct(&png, NULL, NULL);
    return fm_fail("%s: out of memory for libpng", path);
  }
  unsigned char *volatile row = NULL;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &pinfo, NULL);
    free(row);
    if (strcmp(ctx.message, "Read Error") == 0)
      return fm_fail("%s: truncated PNG file (image %d ends early)", path, index);
    return fm_fail("%s: corrupt PNG file (image %d; libpng: %s)", path, index, ctx.message);
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  /* gnuplot's figures may be wider than images this module writes (FM_PNG_MAX_SIDE). */
  png_set_user_limits(png, 1000000, 1000000);
  png_read_info(png, pinfo);
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, pinfo);
  size_t rowbytes = png_get_rowbytes(png, pinfo);
  png_uint_32 height = png_get_image_height(png, pinfo);
  row = malloc(rowbytes ? rowbytes : 1);
  if (!row) png_error(png, "out of memory for a row");
  for (int pass = 0; pass < passes; pass++)
    for (png_uint_32 y = 0; y < height; y++) png_read_row(png, row, NULL);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &pinfo, NULL);
  free(row);
  return FM_OK;
}

int fm_png_check(const char *path) {
  FILE *f = open_png(path);
  if (!f) return FM_ERR;
  for (int index = 1;; index++) {
    if (check_one_image(path, f, index) != FM_OK) {
      fclose(f);
      return FM_ERR;
    }
    /* libpng stops reading at the end of IEND: whatever follows must be another whole image. */
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, f);
    if (got == 0 && !ferror(f)) break;
    if (got < sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
      fclose(f);
      return fm_fail("%s: corrupt PNG file (%zu stray bytes after image %d)", path, got, index);
    }
  }
  fclose(f);
  return FM_OK;
}

/* ---- reading with colour and alpha kept ---- */

/* The channels a PNG has after palette expansion and tRNS turned into alpha. */
static int color_channels(png_structp png, png_infop pinfo) {
  int color_type = png_get_color_type(png, pinfo);
  int channels = color_type == PNG_COLOR_TYPE_PALETTE ? 3 : png_get_channels(png, pinfo);
  if (!(color_type & PNG_COLOR_MASK_ALPHA) && png_get_valid(png, pinfo, PNG_INFO_tRNS)) channels++;
  return channels;
}

/* Reads the header into info and, when out is not NULL, the pixels: as one grey channel, or with
 * colour and alpha kept (`color`). One function for the probes and the reads, grey and colour, so
 * that the header checks are the same. */
static int read_png(const char *path, fm_png_info *info, const fm_png_info *expect, float *out,
                    int color) {
  FILE *f = open_png(path);
  if (!f) return FM_ERR;
  png_ctx ctx = {{0}};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_png_error, on_png_warning);
  png_infop pinfo = png ? png_create_info_struct(png) : NULL;
  if (!pinfo) {
    png_destroy_read_struct(&png, NULL, NULL);
    fclose(f);
    return fm_fail("%s: out of memory for libpng", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &pinfo, NULL);
    fclose(f);
    if (strcmp(ctx.message, "Read Error") == 0)
      return fm_fail("%s: truncated PNG file (libpng: Read Error)", path);
    return fm_fail("%s: corrupt PNG file (libpng: %s)", path, ctx.message);
  }
  png_init_io(png, f);
  png_set_sig_bytes(png, 8);
  png_set_user_limits(png, FM_PNG_MAX_SIDE, FM_PNG_MAX_SIDE);
  png_read_info(png, pinfo);

  int color_type = png_get_color_type(png, pinfo);
  info->height = png_get_image_height(png, pinfo);
  info->width = png_get_image_width(png, pinfo);
  info->bit_depth = png_get_bit_depth(png, pinfo);
  if (color) {
    info->channels = color_channels(png, pinfo);
  } else {
    info->channels = color_type == PNG_COLOR_TYPE_PALETTE ? 3 : png_get_channels(png, pinfo);
    if (color_type == PNG_COLOR_TYPE_PALETTE && png_get_valid(png, pinfo, PNG_INFO_tRNS))
      info->channels = 4;
  }

  if (out) {
    if (info->height != expect->height || info->width != expect->width ||
        (color && info->channels != expect->channels)) {
      png_destroy_read_struct(&png, &pinfo, NULL);
      fclose(f);
      return fm_fail("%s: changed while being read (now %lldx%lldx%d, was %lldx%lldx%d)", path,
                     (long long)info->height, (long long)info->width, info->channels,
                     (long long)expect->height, (long long)expect->width, expect->channels);
    }
    /* Everything becomes 16-bit samples (8-bit v as v * 257, so v / 255 comes back), palettes
     * RGB, tRNS an alpha channel. Grey: colour turned to luminance and alpha dropped, one
     * channel; colour: the channels stay as they are. */
    png_set_expand(png);
    png_set_expand_16(png);
    if (!color) {
      if (color_type & PNG_COLOR_MASK_COLOR)
        png_set_rgb_to_gray_fixed(png, PNG_ERROR_ACTION_NONE, -1, -1);
      png_set_strip_alpha(png);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    int channels = color ? info->channels : 1;
    int64_t samples = info->width * channels;
    if (png_get_channels(png, pinfo) != channels || png_get_bit_depth(png, pinfo) != 16 ||
        png_get_rowbytes(png, pinfo) != (size_t)(2 * samples))
      png_error(png, "unexpected layout after expansion to 16 bits");
    /* Each row's 16-bit samples go to the start of its own float slots (2 of the 4 bytes per
     * sample) and are widened in place afterwards, which needs no buffer besides out. */
    for (int pass = 0; pass < passes; pass++)
      for (int64_t y = 0; y < info->height; y++)
        png_read_row(png, (png_bytep)(out + y * samples), NULL);
    png_read_end(png, NULL);
    for (int64_t y = 0; y < info->height; y++) row16_to_float(out + y * samples, samples);
  }
  png_destroy_read_struct(&png, &pinfo, NULL);
  fclose(f);
  return FM_OK;
}

int fm_png_probe(const char *path, fm_png_info *info) {
  return read_png(path, info, NULL, NULL, 0);
}

int fm_png_read(const char *path, const fm_png_info *info, float *out) {
  fm_png_info now;
  return read_png(path, &now, info, out, 0);
}

int fm_png_probe_color(const char *path, fm_png_info *info) {
  return read_png(path, info, NULL, NULL, 1);
}

int fm_png_read_color(const char *path, const fm_png_info *info, float *out) {
  fm_png_info now;
  return read_png(path, &now, info, out, 1);
}
