/* test_modelfile: saved models against damaged and hostile files. A good file round-trips; every
 * truncation and every single-bit flip of it is refused; files crafted with a correct CRC but
 * absurd contents (2^31 layers, sizes that overflow, kinds out of range, NaN rates, negative
 * units, n_params that do not match the layers, huge or NUL-holding metadata) are refused with
 * the file named and the problem said, before anything is allocated for them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "fm_error.h"
#include "fm_modelfile.h"

static char dir[] = "/tmp/fm_test_modelfile_XXXXXX";

static const char *path_of(const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

/* ---- writing files by hand, in the layout of fm_modelfile.h ---- */

typedef struct buf {
  unsigned char data[4 << 20];
  size_t len;
} buf;

static void put(buf *b, const void *p, size_t n) {
  memcpy(b->data + b->len, p, n);
  b->len += n;
}
static void put32(buf *b, uint32_t v) {
  unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  put(b, x, 4);
}
static void put64(buf *b, uint64_t v) {
  put32(b, (uint32_t)v);
  put32(b, (uint32_t)(v >> 32));
}
static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* What goes into a crafted file; fields left 0 take the values of a good 2x2x1 -> dense 3 model. */
typedef struct crafted {
  uint32_t version, in_h, in_w, in_c, n_layers; /* n_layers: what the header says */
  int records;                                  /* layer records actually written */
  uint32_t layer[4][8];                         /* kind, units, kh, kw, same, pool, rate, init */
  uint64_t n_params;                            /* what the header says */
  int64_t weights;                              /* floats actually written */
  float weight;                                 /* the value of each */
  uint32_t meta_bytes;                          /* what the header says; 0: strlen(meta) */
  const char *meta;
  size_t meta_len;
  int32_t header_delta;                         /* added to the header size */
} crafted;

static crafted good_model(void) {
  crafted c = {.version = 1, .in_h = 2, .in_w = 2, .in_c = 1, .n_layers = 1, .records = 1,
               .n_params = 15, .weights = 15, .weight = 0.25f, .meta = "epochs_trained=1\n"};
  c.layer[0][0] = FM_LAYER_DENSE;
  c.layer[0][1] = 3;
  return c;
}

/* Writes the file for c, with a correct CRC, and returns its path. */
static const char *write_crafted(const char *name, const crafted *c) {
  static buf b;
  b.len = 0;
  size_t meta_len = c->meta_len ? c->meta_len : strlen(c->meta ? c->meta : "");
  uint32_t meta_bytes = c->meta_bytes ? c->meta_bytes : (uint32_t)meta_len;
  put(&b, "FMNISTMD", 8);
  put32(&b, c->version);
  put32(&b, (uint32_t)((int64_t)16 + 12 + 4 + 8 + 4 + 32 * (int64_t)c->records + meta_bytes +
                       c->header_delta));
  char kind[16] = "CNN";
  put(&b, kind, 16);
  put32(&b, c->in_h);
  put32(&b, c->in_w);
  put32(&b, c->in_c);
  put32(&b, c->n_layers);
  for (int i = 0; i < c->records; i++)
    for (int f = 0; f < 8; f++) put32(&b, c->layer[i][f]);
  put64(&b, c->n_params);
  put32(&b, meta_bytes);
  if (meta_len) put(&b, c->meta, meta_len);
  for (int64_t i = 0; i < c->weights; i++) put32(&b, float_bits(c->weight));
  put32(&b, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b.data, (uInt)b.len));
  const char *path = path_of(name);
  FILE *f = fopen(path, "wb");
  fwrite(b.data, 1, b.len, f);
  fclose(f);
  return path;
}

/* Probes path and, when that passes, reads it (the network is rebuilt there) into buffers sized by
 * the probe: FM_OK only when both do. The buffers are the caller's test-sized ones. */
static float params_buf[1 << 20];
static char meta_buf[(1 << 20) + 1];
static fm_layer_spec specs_buf[8];
static fm_layer layers_buf[8];
static int load(const char *path, fm_model_desc *d, fm_net *net) {
  if (fm_model_probe(path, d) != FM_OK) return FM_ERR;
  if (d->n_layers > 8 || d->n_params + d->n_state > (1 << 20))
    return fm_fail("test: the probe let through a file of %d layers and %lld values", d->n_layers,
                   (long long)(d->n_params + d->n_state));
  return fm_model_read(path, d, specs_buf, layers_buf, net, meta_buf, params_buf,
                       params_buf + d->n_params);
}

/* Loading must fail with `needle` in the message, which names the file. */
static void check_refused(const char *name, const crafted *c, const char *needle, const char *what) {
  const char *path = write_crafted(name, c);
  fm_model_desc d;
  fm_net net;
  int rc = load(path, &d, &net);
  int ok = rc != FM_OK && strstr(fm_error(), needle) && strstr(fm_error(), name);
  CHECK(ok, "%s", what);
  if (!ok) printf("#   expected \"%s\" naming %s, got rc=%d \"%s\"\n", needle, name, rc, fm_error());
}

static void test_good_and_crafted(void) {
  crafted c = good_model();
  const char *path = write_crafted("good.fmn", &c);
  fm_model_desc d;
  fm_net net;
  CHECK(load(path, &d, &net) == FM_OK && d.n_params == 15 && net.n_params == 15 &&
            d.meta_bytes == 17 && d.version == 1,
        "a crafted version-1 file with the right sizes and CRC loads (%s)", fm_error());
  CHECK(params_buf[14] == 0.25f && !strcmp(meta_buf, "epochs_trained=1\n"),
        "its weights and text read back");

  c = good_model();
  c.n_layers = 0x80000000u;
  check_refused("layers.fmn", &c, "corrupt model file (2147483648 layers)", "2^31 layers are refused");
  c = good_model();
  c.n_params = 14, c.weights = 14;
  check_refused("params.fmn", &c, "corrupt model file (14 weights for a network of 15)",
                "n_params that does not match the rebuilt network is refused");
  c = good_model();
  c.n_params = (uint64_t)1 << 62;
  check_refused("announced.fmn", &c, "(4611686018427387904 weights announced",
                "2^62 weights announced in a small file are refused before any allocation");
  c = good_model();
  c.n_params = UINT64_MAX;
  check_refused("negative.fmn", &c, "(-1 weights announced", "n_params of 2^64 - 1 is refused");
  c = good_model();
  c.meta_bytes = 0xFFFFFFFFu;
  check_refused("meta.fmn", &c, "corrupt model file (",
                "meta_bytes of 4 GiB (a header size that wraps 32 bits) is refused");
  c = good_model();
  c.meta_bytes = 2 << 20, c.weights = 1 << 20; /* a file long enough to hold the header it says */
  check_refused("meta2.fmn", &c, "corrupt model file (metadata of 2097152 bytes, over 1048576)",
                "meta_bytes over FM_MODEL_MAX_META is refused even when the file is that long");
  c = good_model();
  c.header_delta = 1 << 30;
  check_refused("header.fmn", &c, "truncated or corrupt model file (header of",
                "a header larger than the file is refused");
  c = good_model();
  c.header_delta = 4;
  check_refused("disagree.fmn", &c, "corrupt model file (header sizes disagree)",
                "a header size that disagrees with its parts is refused");
  c = good_model();
  c.in_h = 0x80000000u;
  check_refused("side.fmn", &c, "corrupt model file (input shape 2147483648x2x1; sides 1 to 32768)",
                "an input side of 2^31 is refused");
  c = good_model();
  c.in_h = c.in_w = c.in_c = 32768;
  check_refused("volume.fmn", &c, "an input of 32768x32768x32768 is over 268435456 floats",
                "an input whose h*w*c overflows 32 bits is refused by the rebuild");
  c = good_model();
  c.layer[0][0] = 77;
  check_refused("kind.fmn", &c, "corrupt model file (layer 1: unknown kind 77)",
                "a layer kind out of range is refused");
  c = good_model();
  c.layer[0][0] = 0;
  check_refused("kind0.fmn", &c, "(layer 1: unknown kind 0)", "layer kind 0 is refused");
  c = good_model();
  c.layer[0][1] = 0xFFFFFFFFu;
  check_refused("units.fmn", &c, "layer 1 (dense): units must be 1 to 32768 (got -1)",
                "negative units are refused");
  c = good_model();
  c.n_layers = c.records = 2;
  c.layer[1][0] = FM_LAYER_DENSE, c.layer[1][1] = 3;
  c.layer[0][0] = FM_LAYER_DROPOUT, c.layer[0][1] = 0, c.layer[0][6] = float_bits(NAN);
  check_refused("rate.fmn", &c, "layer 1 (dropout): rate must be in [0, 1)", "a NaN dropout rate is refused");
  c = good_model();
  c.layer[0][4] = 5;
  check_refused("same.fmn", &c, "layer 1 (dense): padding is not used by dense layers",
                "a field the kind does not use is refused");
  c = good_model();
  c.layer[0][7] = 9;
  check_refused("init.fmn", &c, "init must be 0 to 3 (got 9)",
                "an unknown init is refused");
  c = good_model();
  c.layer[0][0] = FM_LAYER_CONV2D, c.layer[0][1] = 0x7FFFFFFF, c.layer[0][2] = 65536, c.layer[0][4] = 1;
  check_refused("conv.fmn", &c, "filters must be 1 to 32768 (got 2147483647)",
                "a conv of 2^31 - 1 filters is refused");
  c = good_model();
  c.layer[0][0] = FM_LAYER_CONV2D, c.layer[0][1] = 4, c.layer[0][2] = 32768, c.layer[0][4] = 1;
  c.in_c = 32768;
  check_refused("patch.fmn", &c, "is over", "a 'same' conv whose patch overflows int is refused");
  c = good_model();
  c.meta = "a=b\0c=d\n", c.meta_len = 8;
  check_refused("nul.fmn", &c, "corrupt model file (a NUL byte in the metadata text)",
                "a NUL in the metadata is refused");
  c = good_model();
  c.weight = INFINITY;
  const char *inf = write_crafted("inf.fmn", &c);
  CHECK_FAILS(load(inf, &d, &net), "corrupt model file (weight 0 is not finite)",
              "a file of infinite weights is refused");
  c = good_model();
  c.version = 3;
  check_refused("future.fmn", &c, "written by a newer fmnist (model format 3; this one reads 2)",
                "a future version is refused");
  c = good_model();
  c.version = 0;
  check_refused("zero.fmn", &c, "corrupt model file (format version 0)", "version 0 is refused");
}

/* Every prefix and every single-bit flip of a good file is refused, naming it. */
static void test_damaged(void) {
  crafted c = good_model();
  const char *path = write_crafted("whole.fmn", &c);
  FILE *f = fopen(path, "rb");
  static unsigned char whole[4096];
  size_t n = fread(whole, 1, sizeof whole, f);
  fclose(f);
  char damaged[256];
  snprintf(damaged, sizeof damaged, "%s", path_of("damaged.fmn"));
  fm_model_desc d;
  int all = 1;
  for (size_t len = 0; len < n; len++) {
    f = fopen(damaged, "wb");
    fwrite(whole, 1, len, f);
    fclose(f);
    all &= fm_model_probe(damaged, &d) != FM_OK && strstr(fm_error(), "damaged.fmn") &&
           (strstr(fm_error(), "truncated") || strstr(fm_error(), "too short") ||
            strstr(fm_error(), "corrupt"));
  }
  CHECK(all, "every one of the %zu truncations is refused as truncated or corrupt", n);
  all = 1;
  for (size_t bit = 0; bit < 8 * n; bit++) {
    whole[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    f = fopen(damaged, "wb");
    fwrite(whole, 1, n, f);
    fclose(f);
    whole[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    all &= fm_model_probe(damaged, &d) != FM_OK && strstr(fm_error(), "damaged.fmn");
  }
  CHECK(all, "every one of the %zu single-bit flips is refused", 8 * n);
  f = fopen(damaged, "wb");
  fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
  fwrite(whole, 1, 40, f);
  fclose(f);
  CHECK_FAILS(fm_model_probe(damaged, &d), "not an fmnist model (wrong magic number)",
              "a foreign file is refused");
  CHECK_FAILS(fm_model_probe(dir, &d), "not a regular file", "a directory is refused");
}

/* Saving: weights must be finite, and a refused save leaves the old file. */
static void test_save(void) {
  fm_layer_spec spec = {.kind = FM_LAYER_DENSE, .units = 3};
  fm_layer layer;
  fm_net net;
  CHECK(fm_net_build(&net, &layer, 2, 2, 1, &spec, 1) == FM_OK && net.n_params == 15,
        "a 2x2x1 -> dense 3 network builds");
  float params[15];
  for (int i = 0; i < 15; i++) params[i] = (float)i;
  fm_net_bind(&net, params, NULL, NULL);
  const char *path = path_of("saved.fmn");
  CHECK(fm_model_save(path, "MLP", &net, "note=x\n") == FM_OK, "a model saves");
  fm_model_desc back;
  fm_net again;
  CHECK(load(path, &back, &again) == FM_OK && !memcmp(params, params_buf, sizeof params) &&
            !strcmp(meta_buf, "note=x\n") && back.version == 2 && !strcmp(back.kind, "MLP"),
        "and loads back the same, as version 2");
  params[7] = NAN;
  CHECK_FAILS(fm_model_save(path, "MLP", &net, ""), "weight 7 is not finite",
              "a weight that is not finite is not saved (the file could not be loaded)");
  CHECK(load(path, &back, &again) == FM_OK && params_buf[7] == 7.0f,
        "the earlier file is untouched");
}

int main(void) {
  if (!mkdtemp(dir)) {
    printf("Bail out! cannot make a temporary directory\n");
    return 1;
  }
  test_good_and_crafted();
  test_damaged();
  test_save();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return check_done();
}
