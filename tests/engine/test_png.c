/* test_png: PNG writing, reading (every colour type and bit depth libpng knows), grids, and the
 * refusal of broken files with a message naming them. Files go to a fresh temporary directory. */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "check.h"
#include "fm_error.h"
#include "fm_png.h"

static char dir[64];

static const char *tmp_path(const char *name) {
  static char buf[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Writes a PNG with libpng directly, in any colour type / depth, from 16-bit samples (the high bits
 * are kept for lower depths). For palette images, samples are palette indices. */
static int write_raw_png(const char *path, int w, int h, int color_type, int depth, int interlace,
                         const uint16_t *samples, const png_color *palette, int npalette,
                         const png_byte *trans, int ntrans) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  int channels = color_type == PNG_COLOR_TYPE_GRAY         ? 1
                 : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                 : color_type == PNG_COLOR_TYPE_RGB        ? 3
                 : color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                                                           : 1;
  size_t rowbytes = ((size_t)w * channels * depth + 7) / 8;
  png_bytep *rows = calloc((size_t)h, sizeof *rows);
  for (int y = 0; y < h; y++) rows[y] = calloc(rowbytes, 1);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return -1;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, depth, color_type, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (palette) png_set_PLTE(png, info, palette, npalette);
  if (trans) png_set_tRNS(png, info, trans, ntrans, NULL);
  for (int y = 0; y < h; y++) {
    for (int i = 0; i < w * channels; i++) {
      unsigned v = samples[y * w * channels + i];
      if (depth == 16) {
        rows[y][2 * i] = v >> 8;
        rows[y][2 * i + 1] = v & 255;
      } else if (depth == 8) {
        rows[y][i] = (png_byte)v;
      } else {
        int per = 8 / depth, shift = 8 - depth * (i % per + 1);
        rows[y][i / per] |= (png_byte)(v << shift);
      }
    }
  }
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  for (int y = 0; y < h; y++) free(rows[y]);
  free(rows);
  fclose(f);
  return 0;
}

/* Probes and reads path; returns a malloc'd buffer or NULL. */
static float *read_all(const char *path, fm_png_info *info) {
  if (fm_png_probe(path, info) != FM_OK) return NULL;
  float *out = malloc((size_t)(info->height * info->width) * sizeof *out);
  if (fm_png_read(path, info, out) != FM_OK) {
    free(out);
    return NULL;
  }
  return out;
}

static void test_round_trip(void) {
  float px[3 * 4];
  for (int i = 0; i < 12; i++) px[i] = (float)(i * 20) / 255.0f;
  const char *p = tmp_path("rt.png");
  CHECK(fm_png_write(p, px, 3, 4, 1) == FM_OK, "write a 3x4 image (%s)", fm_error());
  fm_png_info info;
  float *back = read_all(p, &info);
  CHECK(back != NULL, "read it back (%s)", fm_error());
  if (!back) return;
  CHECK(info.height == 3 && info.width == 4 && info.bit_depth == 8 && info.channels == 1,
        "header: 3x4, 8-bit gray (got %lldx%lld, %d bits, %d channels)", (long long)info.height,
        (long long)info.width, info.bit_depth, info.channels);
  int same = 1;
  for (int i = 0; i < 12; i++) same &= back[i] == px[i];
  CHECK(same, "every pixel comes back exactly (k/255)");
  free(back);

  /* The usual 28x28 case, with all 256 levels. */
  float img[28 * 28];
  for (int i = 0; i < 28 * 28; i++) img[i] = (float)((i * 7) % 256) / 255.0f;
  p = tmp_path("img28.png");
  fm_png_write(p, img, 28, 28, 1);
  back = read_all(p, &info);
  same = back != NULL;
  for (int i = 0; same && i < 28 * 28; i++) same = back[i] == img[i];
  CHECK(same, "a 28x28 image with 256 levels round-trips exactly");
  free(back);
}

static void test_clamp_and_scale(void) {
  float px[4] = {-0.5f, 2.0f, NAN, 0.5f};
  const char *p = tmp_path("clamp.png");
  CHECK(fm_png_write(p, px, 2, 2, 3) == FM_OK, "write 2x2 at scale 3");
  fm_png_info info;
  float *back = read_all(p, &info);
  CHECK(back && info.height == 6 && info.width == 6, "scale 3 gives a 6x6 image");
  if (!back) return;
  CHECK(back[0] == 0.0f && back[5] == 1.0f, "values below 0 and above 1 are clamped");
  CHECK(back[3 * 6] == 0.0f, "NaN is written as 0");
  CHECK_NEAR(back[5 * 6 + 5], 128.0 / 255.0, 1e-7, "0.5 becomes 128/255");
  int blocks = 1;
  for (int y = 0; y < 6; y++)
    for (int x = 0; x < 6; x++) blocks &= back[y * 6 + x] == back[(y / 3) * 3 * 6 + (x / 3) * 3];
  CHECK(blocks, "each pixel is a 3x3 block");
  free(back);

  CHECK_FAILS(fm_png_write(p, px, 2, 2, 0), "scale must be an integer", "scale 0 refused");
  CHECK_FAILS(fm_png_write(p, px, 2, 2, 65), "scale", "scale 65 refused");
  CHECK_FAILS(fm_png_write(p, px, 0, 2, 1), "empty image", "an empty image is refused");
  CHECK_FAILS(fm_png_write(p, px, 1, 20000, 1), "larger than the limit", "a huge image is refused");
}

static void test_formats(void) {
  fm_png_info info;
  float *back;
  /* 1-bit gray: 0 and 1 become 0.0 and 1.0. */
  uint16_t bits[8] = {0, 1, 1, 0, 1, 0, 0, 1};
  const char *p = tmp_path("g1.png");
  write_raw_png(p, 8, 1, PNG_COLOR_TYPE_GRAY, 1, PNG_INTERLACE_NONE, bits, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  int ok = back && info.bit_depth == 1 && info.width == 8;
  for (int i = 0; ok && i < 8; i++) ok = back[i] == (float)bits[i];
  CHECK(ok, "1-bit grayscale reads as 0/1");
  free(back);

  /* 4-bit gray: v / 15. */
  uint16_t nib[4] = {0, 5, 10, 15};
  p = tmp_path("g4.png");
  write_raw_png(p, 4, 1, PNG_COLOR_TYPE_GRAY, 4, PNG_INTERLACE_NONE, nib, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  ok = back != NULL;
  for (int i = 0; ok && i < 4; i++) ok = fabsf(back[i] - nib[i] / 15.0f) < 1e-6f;
  CHECK(ok, "4-bit grayscale reads as v/15");
  free(back);

  /* 16-bit gray keeps its precision. */
  uint16_t deep[3] = {0, 1000, 65535};
  p = tmp_path("g16.png");
  write_raw_png(p, 3, 1, PNG_COLOR_TYPE_GRAY, 16, PNG_INTERLACE_NONE, deep, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  CHECK(back && info.bit_depth == 16 && fabsf(back[1] - 1000.0f / 65535.0f) < 1e-7f &&
            back[2] == 1.0f,
        "16-bit grayscale keeps 16-bit precision");
  free(back);

  /* RGB: pure gray pixels stay, red/green/blue follow the Rec. 709 weights. */
  uint16_t rgb[4 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 51, 51, 51};
  p = tmp_path("rgb.png");
  write_raw_png(p, 4, 1, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_NONE, rgb, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  CHECK(back && info.channels == 3, "RGB read (channels %d)", back ? info.channels : -1);
  if (back) {
    CHECK_NEAR(back[0], 0.2126, 0.01, "red -> 0.2126 (got %g)", back[0]);
    CHECK_NEAR(back[1], 0.7152, 0.01, "green -> 0.7152 (got %g)", back[1]);
    CHECK_NEAR(back[2], 0.0722, 0.01, "blue -> 0.0722 (got %g)", back[2]);
    CHECK_NEAR(back[3], 0.2, 1e-3, "gray 51 stays 0.2 (got %g)", back[3]);
  }
  free(back);

  /* RGBA 16-bit: alpha is ignored. */
  uint16_t rgba[2 * 4] = {65535, 65535, 65535, 0, 0, 0, 0, 65535};
  p = tmp_path("rgba16.png");
  write_raw_png(p, 2, 1, PNG_COLOR_TYPE_RGB_ALPHA, 16, PNG_INTERLACE_NONE, rgba, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  CHECK(back && info.channels == 4 && info.bit_depth == 16 && fabsf(back[0] - 1.0f) < 1e-4f &&
            back[1] == 0.0f,
        "16-bit RGBA: white (transparent) -> 1, black (opaque) -> 0");
  free(back);

  /* Gray + alpha. */
  uint16_t ga[2 * 2] = {200, 0, 100, 255};
  p = tmp_path("ga.png");
  write_raw_png(p, 2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, PNG_INTERLACE_NONE, ga, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  CHECK(back && back[0] == 200.0f / 255.0f && back[1] == 100.0f / 255.0f,
        "gray+alpha: the gray values, alpha dropped");
  free(back);

  /* Palette (2-bit indices) with transparency. */
  png_color pal[3] = {{0, 0, 0}, {255, 255, 255}, {128, 128, 128}};
  png_byte trans[3] = {255, 0, 255};
  uint16_t idx[4] = {2, 1, 0, 2};
  p = tmp_path("pal.png");
  write_raw_png(p, 4, 1, PNG_COLOR_TYPE_PALETTE, 2, PNG_INTERLACE_NONE, idx, pal, 3, trans, 3);
  back = read_all(p, &info);
  CHECK(back && info.channels == 4 && fabsf(back[0] - 128.0f / 255.0f) < 2e-3f &&
            fabsf(back[1] - 1.0f) < 1e-4f && back[2] == 0.0f,
        "2-bit palette with tRNS: the palette colours' luminance");
  free(back);

  /* Interlaced (Adam7) 8-bit gray of an odd size. */
  uint16_t il[7 * 5];
  for (int i = 0; i < 35; i++) il[i] = (uint16_t)(i * 7);
  p = tmp_path("interlaced.png");
  write_raw_png(p, 7, 5, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_ADAM7, il, NULL, 0, NULL, 0);
  back = read_all(p, &info);
  ok = back && info.width == 7 && info.height == 5;
  for (int i = 0; ok && i < 35; i++) ok = back[i] == il[i] / 255.0f;
  CHECK(ok, "interlaced 7x5 image reads exactly");
  free(back);
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(data, 1, n, f);
  fclose(f);
}

static void test_broken_files(void) {
  fm_png_info info;
  const char *missing = tmp_path("missing.png");
  CHECK_FAILS(fm_png_probe(missing, &info), "missing.png: cannot open", "a missing file");

  const char *text = tmp_path("text.png");
  write_bytes(text, "hello, I am not a picture\n", 26);
  CHECK_FAILS(fm_png_probe(text, &info), "text.png: not a PNG file", "a text file is not a PNG");

  const char *empty = tmp_path("empty.png");
  write_bytes(empty, "", 0);
  CHECK_FAILS(fm_png_probe(empty, &info), "empty.png: not a PNG file (empty)", "an empty file");

  /* A good file, then its first half: the header may read, the pixels must not. */
  float px[64 * 64];
  for (int i = 0; i < 64 * 64; i++) px[i] = (float)((i * 37) % 251) / 255.0f;
  const char *good = tmp_path("good.png");
  fm_png_write(good, px, 64, 64, 1);
  long n = file_size(good);
  unsigned char *bytes = malloc((size_t)n);
  FILE *f = fopen(good, "rb");
  size_t got = fread(bytes, 1, (size_t)n, f);
  fclose(f);
  CHECK(got == (size_t)n && n > 100, "the good file has %ld bytes", n);

  const char *half = tmp_path("half.png");
  write_bytes(half, bytes, (size_t)n / 2);
  int rc = fm_png_probe(half, &info);
  float *out = malloc(sizeof px);
  if (rc == FM_OK) rc = fm_png_read(half, &info, out);
  CHECK(rc != FM_OK && strstr(fm_error(), "half.png: ") && strstr(fm_error(), "PNG"),
        "a truncated file is refused naming it (%s)", fm_error());

  const char *head = tmp_path("head.png");
  write_bytes(head, bytes, 20);
  CHECK_FAILS(fm_png_probe(head, &info), "head.png: truncated PNG", "a file cut in its header");

  /* Flip a byte inside the image data: the CRC (or zlib) notices. */
  const char *flip = tmp_path("flip.png");
  bytes[n - 30] ^= 0x55;
  write_bytes(flip, bytes, (size_t)n);
  rc = fm_png_probe(flip, &info);
  if (rc == FM_OK) rc = fm_png_read(flip, &info, out);
  CHECK(rc != FM_OK && strstr(fm_error(), "flip.png: corrupt PNG file (libpng: "),
        "a corrupted file is refused naming it (%s)", fm_error());
  bytes[n - 30] ^= 0x55;

  /* A bad IHDR (zero width). */
  bytes[16] = bytes[17] = bytes[18] = bytes[19] = 0;
  const char *zero = tmp_path("zero.png");
  write_bytes(zero, bytes, (size_t)n);
  CHECK_FAILS(fm_png_probe(zero, &info), "zero.png: corrupt PNG file", "a zero-width header");
  free(bytes);

  /* Probe one size, then the file changes under us. */
  fm_png_probe(good, &info);
  fm_png_write(good, px, 8, 8, 1);
  CHECK_FAILS(fm_png_read(good, &info, out), "changed while being read", "a file that changed");
  free(out);
}

static void test_atomic_write(void) {
  float px[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  char bad[300];
  snprintf(bad, sizeof bad, "%s/no/such/dir/x.png", dir);
  CHECK_FAILS(fm_png_write(bad, px, 2, 2, 1), "x.png: cannot write", "a missing directory");

  const char *p = tmp_path("keep.png");
  fm_png_write(p, px, 2, 2, 1);
  long before = file_size(p);
  CHECK_FAILS(fm_png_write(p, px, 2, 2, 99), "scale", "a failed write...");
  CHECK(file_size(p) == before, "...leaves the earlier file as it was");
  /* No temporary file is left in the directory. */
  DIR *d = opendir(dir);
  int leftovers = 0;
  for (struct dirent *e; (e = readdir(d));) leftovers += strstr(e->d_name, ".tmp") != NULL;
  closedir(d);
  CHECK(leftovers == 0, "no temporary files left behind (%d)", leftovers);
}

static void test_grid(void) {
  float a[4] = {1, 1, 1, 1}, b[4] = {0.5f, 0.5f, 0.5f, 0.5f}, c[4] = {0, 0.25f, 0.5f, 0.75f};
  const float *imgs[3] = {a, b, c};
  fm_grid g = {
      .count = 3, .rows = 2, .cols = 2, .grid_cols = 2, .scale = 1, .gap_x = 1, .gap_y = 1};
  int64_t h, w;
  CHECK(fm_grid_size(&g, &h, &w) == FM_OK && h == 5 && w == 5, "3 images 2x2 in 2 columns: 5x5");
  float out[25];
  fm_grid_fill(&g, imgs, -1.0f, out);
  CHECK(out[0] == 1 && out[1 * 5 + 1] == 1, "first image at the top left");
  CHECK(out[2] == -1 && out[2 * 5 + 0] == -1, "gap column and gap row hold the background");
  CHECK(out[3] == 0.5f && out[5 + 4] == 0.5f, "second image at the top right");
  CHECK(out[3 * 5 + 0] == 0 && out[3 * 5 + 1] == 0.25f && out[4 * 5 + 1] == 0.75f,
        "third image at the bottom left, in row order");
  CHECK(out[4 * 5 + 4] == -1, "the empty cell holds the background");

  g.scale = 2;
  g.grid_cols = 10;
  CHECK(fm_grid_size(&g, &h, &w) == FM_OK && h == 4 && w == 3 * 4 + 2,
        "scale 2, more columns than images: 4x14 (got %lldx%lld)", (long long)h, (long long)w);
  g.count = 0;
  CHECK_FAILS(fm_grid_size(&g, &h, &w), "no images", "an empty grid is refused");
  g.count = 3;
  g.scale = 0;
  CHECK_FAILS(fm_grid_size(&g, &h, &w), "scale", "scale 0 is refused");
  g.scale = 1;
  g.grid_cols = 0;
  CHECK_FAILS(fm_grid_size(&g, &h, &w), "cols must be at least 1", "0 columns are refused");
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fm_png_test_XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_round_trip();
  test_clamp_and_scale();
  test_formats();
  test_broken_files();
  test_atomic_write();
  test_grid();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return check_done();
}
