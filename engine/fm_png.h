/* fm_png: grayscale images as PNG files (through libpng), and grids of images.
 *
 * Writing makes an 8-bit grayscale PNG from floats in [0,1] (clamped), optionally upscaled by an
 * integer factor; the file appears whole or not at all (fm_file.h). Reading accepts any PNG (1 to
 * 16 bits, grayscale, palette, RGB, with or without alpha, interlaced or not) and gives grayscale
 * floats in [0,1]; colour becomes luminance (Rec. 709 weights) and alpha is ignored.
 *
 * Reading is two-phase like the dataset loaders, so that the caller owns the memory: fm_png_probe
 * says how big the image is, the caller allocates height * width floats, fm_png_read fills them.
 * Every failure names the file; libpng's own errors are caught (setjmp) and nothing leaks. */
#ifndef FM_PNG_H
#define FM_PNG_H

#include <stdint.h>

/* Images taller or wider than this are refused as absurd, when read or written. */
#define FM_PNG_MAX_SIDE 16384
#define FM_PNG_MAX_SCALE 64

typedef struct fm_png_info {
  int64_t height, width;
  int bit_depth; /* as stored: 1, 2, 4, 8 or 16 */
  int channels;  /* as stored, after palette expansion: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
} fm_png_info;

/* Writes height x width floats (row-major) as an 8-bit grayscale PNG, each value clamped to [0,1]
 * (NaN as 0) and drawn as a scale x scale block. */
int fm_png_write(const char *path, const float *pixels, int64_t height, int64_t width, int scale);

/* Checks that a file is whole, decodable PNG: every row of every image decoded, every CRC right,
 * and the file ending with an image's IEND chunk (gnuplot writes one image after another for
 * several plots into one file). Fails naming the file and what is wrong: how a figure written by
 * another program (gnuplot) is checked before it replaces anything. */
int fm_png_check(const char *path);

/* Reads the header of a PNG file. Only regular files are read (a FIFO or a device is refused
 * rather than waited on). */
int fm_png_probe(const char *path, fm_png_info *info);
/* Reads the whole image as grayscale floats in [0,1] into out (info->height * info->width). Fails
 * if the file no longer matches info, or is corrupt or truncated. */
int fm_png_read(const char *path, const fm_png_info *info, float *out);

/* ---- grids: images of the same size side by side, gap pixels apart ---- */
typedef struct fm_grid {
  int64_t count;        /* images */
  int64_t rows, cols;   /* each image's size */
  int64_t grid_cols;    /* images per grid row (fewer when count is smaller) */
  int scale;            /* each image pixel becomes scale x scale pixels */
  int64_t gap_x, gap_y; /* output pixels between neighbouring images */
} fm_grid;

/* The size of the grid picture; fails on a count of 0, a bad scale, gap or grid_cols, or a picture
 * wider or taller than FM_PNG_MAX_SIDE. */
int fm_grid_size(const fm_grid *g, int64_t *height, int64_t *width);
/* Draws images[0..count) (each rows * cols floats) into out (height * width from fm_grid_size);
 * gaps and empty cells get the value background. */
void fm_grid_fill(const fm_grid *g, const float *const *images, float background, float *out);

/* ---- reading with colour and alpha kept ---- */
/* Reads the header like fm_png_probe, but info->channels counts what fm_png_read_color gives:
 * palettes become RGB, and a transparency chunk (tRNS) adds an alpha channel to grey, RGB and
 * palette images. */
int fm_png_probe_color(const char *path, fm_png_info *info);
/* Reads the whole image into out: height x width pixels of info->channels floats in [0,1] side by
 * side (grey, grey+alpha, RGB or RGBA; alpha 0 is transparent), whatever the bit depth. info comes
 * from fm_png_probe_color; fails if the file no longer matches it, or is corrupt or truncated. */
int fm_png_read_color(const char *path, const fm_png_info *info, float *out);

#endif
