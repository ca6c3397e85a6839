/* fm_image: preparing a picture of any size the way Fashion-MNIST's images were made, from small
 * pieces that are each useful alone.
 *
 * An image is height x width pixels of `channels` floats each, row-major with the channels of a
 * pixel side by side: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA, every value normally in [0,1] (0 is
 * black, alpha 0 is transparent). The caller owns every buffer (fm_tensor.h's rule): a function
 * that makes an image fills an fm_image whose height, width and channels say what it wants and
 * whose data points at height * width * channels floats; fm_image_size says how many that is, and
 * every function checks it again, so a wrong size is an error, never an overflow.
 *
 * The dataset's pipeline (Zalando's: trim the edges that have the corner colour, shrink so that
 * the longest side is 28, centre on a 28 x 28 canvas, negate so that the garment is light on
 * black) is fm_image_prepare; the pieces it is made of are public:
 *   grey       alpha composited onto a background, then luminance (Rec. 601: .299 R + .587 G +
 *              .114 B)
 *   background the level of the border pixels (their median): how light the background is
 *   invert     1 - v on every channel but alpha
 *   trim_box   the bounding box of the pixels that differ from the background by more than a
 *              threshold
 *   crop, pad  a box of the image, or the image with margins of a constant value
 *   resize     area averaging on an axis that shrinks (every source pixel counts, in proportion to
 *              how much of it an output pixel covers: no aliasing, the mean is kept), bilinear
 *              interpolation (pixel centres aligned) on an axis that grows
 *   center     the image on a square dark canvas, its centre of mass (or its box) in the middle
 *
 * Errors are FM_ERR with a message (fm_error.h) that names the function and the argument. Every
 * function is deterministic and single-threaded; fm_image_background (a copy of the border),
 * fm_image_resize (tables of weights) and fm_image_prepare (its intermediate images) allocate
 * memory and free it before returning, and say so when there is none. */
#ifndef FM_IMAGE_H
#define FM_IMAGE_H

#include <stdint.h>

/* Pictures larger than this are refused before any memory is allocated for them: a file can claim
 * any size in its header. The side limit is libpng's user limit in fm_png.c; 2^26 pixels of 4
 * floats is 1 GiB. */
#define FM_IMAGE_MAX_SIDE 16384
#define FM_IMAGE_MAX_PIXELS ((int64_t)1 << 26)

typedef struct fm_image {
  int64_t height, width;
  int channels; /* 1 to 4 */
  float *data;
} fm_image;

/* A box of pixels, 0-based. */
typedef struct fm_box {
  int64_t top, left, height, width;
} fm_box;

/* Checks a size (sides 1..FM_IMAGE_MAX_SIDE, pixels up to FM_IMAGE_MAX_PIXELS, channels 1..4) and
 * sets *count to height * width * channels. `what` starts the message ("x.png", "image.resize"). */
int fm_image_size(const char *what, int64_t height, int64_t width, int channels, int64_t *count);

/* Grey out of in (any channels): alpha (channels 2 and 4) composited onto the grey level
 * background, colour (3 and 4) turned into luminance. out: in's size, 1 channel. background must
 * lie in [0,1]. */
int fm_image_grey(const fm_image *in, float background, fm_image *out);
/* The background that makes a transparent picture's object stand out: 1 (white) when the opaque
 * pixels are dark on average (alpha-weighted luminance below 0.5), else 0 (black). 1 for a
 * picture with no alpha channel or no opaque pixel. */
float fm_image_alpha_background(const fm_image *in);

/* The median of the border pixels (first and last row and column) of a 1-channel image. */
int fm_image_background(const fm_image *grey, float *level);

/* out = 1 - in on every channel except alpha; out may be in. */
int fm_image_invert(const fm_image *in, fm_image *out);

/* The smallest box holding every pixel of a 1-channel image that differs from background by more
 * than threshold (threshold in [0,1), background in [0,1]). Fails, saying so, when there is no
 * such pixel. */
int fm_image_trim_box(const fm_image *grey, float background, float threshold, fm_box *box);

/* out = the box (top, left, out->height x out->width) of in; the box must lie inside in. */
int fm_image_crop(const fm_image *in, int64_t top, int64_t left, fm_image *out);
/* out = in with top, bottom, left and right rows and columns of value around it (each >= 0). */
int fm_image_pad(const fm_image *in, int64_t top, int64_t bottom, int64_t left, int64_t right,
                 float value, fm_image *out);

/* out (any height and width, in's channels) = in resampled: area averaging on each axis that
 * shrinks, bilinear interpolation on each axis that grows, a copy on an axis that keeps its
 * size. */
int fm_image_resize(const fm_image *in, fm_image *out);

/* out (a size x size canvas of zeros, 1 channel) gets the 1-channel in, which must fit, placed so
 * that its centre of mass (by_mass) or its middle (otherwise) is at the canvas's centre, rounded
 * to whole pixels; a shift is limited so that nothing of in falls off the canvas. The top-left
 * corner used is stored in *top and *left when they are not NULL. An image with no positive mass
 * is placed by its middle. */
int fm_image_center(const fm_image *in, int by_mass, fm_image *out, int64_t *top, int64_t *left);

/* ---- the whole pipeline ---- */
typedef enum { FM_INVERT_AUTO, FM_INVERT_YES, FM_INVERT_NO } fm_invert_mode;

typedef struct fm_prepare_opts {
  int64_t size;           /* the canvas side: 28 */
  int64_t margin;         /* pixels kept free on each side: 0, as the dataset */
  float alpha_background; /* where alpha is composited; NaN: fm_image_alpha_background's choice */
  fm_invert_mode invert;  /* AUTO: invert when the border level is above 0.5 */
  float threshold;        /* for trimming: 0.1 */
  int by_mass;            /* centre by mass instead of by the box (the dataset's way) */
} fm_prepare_opts;

/* The defaults above. */
fm_prepare_opts fm_prepare_defaults(void);

/* What fm_image_prepare found and did. */
typedef struct fm_prepare_info {
  float alpha_background; /* NaN when the picture has no alpha */
  float background;       /* the border level of the grey picture, before inversion */
  int inverted;
  fm_box box;                          /* the object in the picture's pixels */
  int64_t scaled_height, scaled_width; /* the box's size after resizing */
  int64_t top, left;                   /* where it was put on the canvas */
} fm_prepare_info;

/* Prepares in (any size and channels) as a Fashion-MNIST image in out (opts->size squared floats,
 * 1 channel, in [0,1]): grey (alpha composited first), inverted when the background is light,
 * trimmed to the object, levelled so that the background becomes 0 (v -> (v - b) / (1 - b),
 * clamped, when the background b is below 0.5), resized so that the longest side is size - 2 *
 * margin (keeping the aspect ratio), centred. info may be NULL. */
int fm_image_prepare(const fm_image *in, const fm_prepare_opts *opts, fm_image *out,
                     fm_prepare_info *info);

#endif
