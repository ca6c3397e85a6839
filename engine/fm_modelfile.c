/* fm_modelfile: writing and checking saved models (layout in fm_modelfile.h). */
#include "fm_modelfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_file.h"

static const char model_magic[8] = {'F', 'M', 'N', 'I', 'S', 'T', 'M', 'D'};
#define LAYER_BYTES 32
#define FIXED_HEADER (16 + 4 * 3 + 4 + 8 + 4) /* kind, shape, n_layers, n_params, meta_bytes */

/* ---- little-endian encoding, independent of the machine ---- */

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* CRC32 accumulated over what is written or read, and the bytes so far (for the assertions that
 * every section starts where the header says). A call moves at most the metadata at once. */
typedef struct crc_file {
  FILE *f;
  uLong crc;
  long bytes;
} crc_file;

static int cwrite(crc_file *c, const void *p, size_t n) {
  FM_ASSERT(n <= FM_MODEL_MAX_META);
  c->crc = crc32(c->crc, p, (uInt)n);
  c->bytes += (long)n;
  return fwrite(p, 1, n, c->f) == n;
}

static int cread(crc_file *c, void *p, size_t n) {
  FM_ASSERT(n <= FM_MODEL_MAX_META);
  if (fread(p, 1, n, c->f) != n) return 0;
  c->crc = crc32(c->crc, p, (uInt)n);
  c->bytes += (long)n;
  return 1;
}

static size_t header_bytes(const fm_model_desc *d) {
  return FIXED_HEADER + (size_t)d->n_layers * LAYER_BYTES + d->meta_bytes;
}

int fm_model_save(const char *path, const fm_model_desc *d, const char *meta, const float *params) {
  fm_net net;
  if (d->n_layers < 1 || d->n_layers > FM_NET_MAX_LAYERS)
    return fm_fail("%s: %d layers (1 to %d)", path, d->n_layers, FM_NET_MAX_LAYERS);
  if (fm_net_build(&net, d->in_h, d->in_w, d->in_c, d->specs, d->n_layers) != FM_OK) return FM_ERR;
  if (net.n_params != d->n_params)
    return fm_fail("%s: %lld parameters given for a network of %lld", path,
                   (long long)d->n_params, (long long)net.n_params);
  size_t meta_bytes = meta ? strlen(meta) : 0;
  if (meta_bytes > FM_MODEL_MAX_META)
    return fm_fail("%s: metadata of %zu bytes, over %d", path, meta_bytes, FM_MODEL_MAX_META);
  /* A file is data that loads again: a weight that is not finite would make it unloadable. */
  for (int64_t i = 0; i < d->n_params; i++)
    if (!isfinite(params[i]))
      return fm_fail("%s: weight %lld is not finite (%g); nothing was written", path,
                     (long long)i, (double)params[i]);
  fm_model_desc h = *d;
  h.meta_bytes = meta_bytes;

  fm_atomic_file a;
  if (fm_atomic_begin(&a, path) != FM_OK) return FM_ERR;
  crc_file c = {a.f, crc32(0L, Z_NULL, 0), 0};
  unsigned char buf[64];
  int ok = cwrite(&c, model_magic, 8);
  put32(buf, FM_MODEL_VERSION);
  put32(buf + 4, (uint32_t)header_bytes(&h));
  ok = ok && cwrite(&c, buf, 8);
  memset(buf, 0, 16);
  memcpy(buf, h.kind, strnlen(h.kind, 15));
  put32(buf + 16, (uint32_t)h.in_h);
  put32(buf + 20, (uint32_t)h.in_w);
  put32(buf + 24, (uint32_t)h.in_c);
  put32(buf + 28, (uint32_t)h.n_layers);
  ok = ok && cwrite(&c, buf, 32);
  for (int i = 0; i < h.n_layers && ok; i++) {
    const fm_layer_spec *s = &h.specs[i];
    put32(buf, (uint32_t)s->kind);
    put32(buf + 4, (uint32_t)s->units);
    put32(buf + 8, (uint32_t)s->kh);
    put32(buf + 12, (uint32_t)s->kw);
    put32(buf + 16, (uint32_t)s->same);
    put32(buf + 20, (uint32_t)s->pool);
    put32(buf + 24, float_bits(s->rate));
    put32(buf + 28, (uint32_t)s->init);
    ok = cwrite(&c, buf, LAYER_BYTES);
  }
  put64(buf, (uint64_t)h.n_params);
  put32(buf + 8, (uint32_t)meta_bytes);
  ok = ok && cwrite(&c, buf, 12) && (meta_bytes == 0 || cwrite(&c, meta, meta_bytes));
  FM_ASSERT(!ok || c.bytes == 16 + (long)header_bytes(&h));
  /* The weights in chunks, converted to little-endian bytes. */
  unsigned char chunk[4096];
  for (int64_t i = 0; i < h.n_params && ok;) {
    size_t k = 0;
    for (; k < sizeof chunk / 4 && i < h.n_params; k++, i++) put32(chunk + 4 * k, float_bits(params[i]));
    ok = cwrite(&c, chunk, 4 * k);
  }
  FM_ASSERT(!ok || c.bytes == 16 + (long)header_bytes(&h) + 4 * (long)h.n_params);
  put32(buf, (uint32_t)c.crc);
  ok = ok && fwrite(buf, 1, 4, a.f) == 4;
  if (!ok) {
    int e = errno;
    fm_atomic_abort(&a);
    return fm_fail("%s: write failed (%s)", path, strerror(e ? e : EIO));
  }
  return fm_atomic_commit(&a);
}

/* Reads the header into d and rebuilds the network; the CRC is checked by the caller. */
static int read_header(const char *path, crc_file *c, long file_size, fm_model_desc *d, fm_net *net) {
  unsigned char buf[64];
  memset(d, 0, sizeof *d);
  if (file_size < 16 || !cread(c, buf, 8))
    return fm_fail("%s: not an fmnist model (too short to hold a header)", path);
  if (memcmp(buf, model_magic, 8) != 0)
    return fm_fail("%s: not an fmnist model (wrong magic number)", path);
  if (!cread(c, buf, 8)) return fm_fail("%s: truncated model file", path);
  uint32_t version = get32(buf), hbytes = get32(buf + 4);
  if (version > FM_MODEL_VERSION)
    return fm_fail("%s: written by a newer fmnist (model format %u; this one reads %d)", path,
                   version, FM_MODEL_VERSION);
  if (version == 0) return fm_fail("%s: corrupt model file (format version 0)", path);
  if (hbytes < FIXED_HEADER || (long)hbytes > file_size - 20)
    return fm_fail("%s: truncated or corrupt model file (header of %u bytes in a file of %ld)",
                   path, hbytes, file_size);
  if (!cread(c, buf, 32)) return fm_fail("%s: truncated model file", path);
  memcpy(d->kind, buf, 15);
  d->kind[15] = '\0';
  uint32_t in_h = get32(buf + 16), in_w = get32(buf + 20), in_c = get32(buf + 24);
  uint32_t n_layers = get32(buf + 28);
  /* Sides beyond FM_NET_MAX_DIM would not even fit an int; the product is fm_net_build's. */
  if (in_h < 1 || in_h > FM_NET_MAX_DIM || in_w < 1 || in_w > FM_NET_MAX_DIM || in_c < 1 ||
      in_c > FM_NET_MAX_DIM)
    return fm_fail("%s: corrupt model file (input shape %ux%ux%u; sides 1 to %d)", path, in_h,
                   in_w, in_c, FM_NET_MAX_DIM);
  if (n_layers < 1 || n_layers > FM_NET_MAX_LAYERS)
    return fm_fail("%s: corrupt model file (%u layers)", path, n_layers);
  if (FIXED_HEADER + n_layers * LAYER_BYTES > hbytes)
    return fm_fail("%s: corrupt model file (header too small for %u layers)", path, n_layers);
  d->in_h = (int)in_h;
  d->in_w = (int)in_w;
  d->in_c = (int)in_c;
  d->n_layers = (int)n_layers;
  for (uint32_t i = 0; i < n_layers; i++) {
    if (!cread(c, buf, LAYER_BYTES)) return fm_fail("%s: truncated model file", path);
    fm_layer_spec *s = &d->specs[i];
    uint32_t kind = get32(buf);
    if (kind < 1 || kind > FM_LAYER_KINDS)
      return fm_fail("%s: corrupt model file (layer %u: unknown kind %u)", path, i + 1, kind);
    s->kind = (fm_layer_kind)kind;
    s->units = (int)get32(buf + 4);
    s->kh = (int)get32(buf + 8);
    s->kw = (int)get32(buf + 12);
    s->same = (int)get32(buf + 16);
    s->pool = (int)get32(buf + 20);
    s->rate = bits_float(get32(buf + 24));
    s->init = (fm_init_kind)get32(buf + 28);
  }
  if (!cread(c, buf, 12)) return fm_fail("%s: truncated model file", path);
  d->n_params = (int64_t)get64(buf);
  d->meta_bytes = get32(buf + 8);
  if (d->meta_bytes > FM_MODEL_MAX_META)
    return fm_fail("%s: corrupt model file (metadata of %zu bytes, over %d)", path, d->meta_bytes,
                   FM_MODEL_MAX_META);
  if (FIXED_HEADER + n_layers * LAYER_BYTES + d->meta_bytes != hbytes)
    return fm_fail("%s: corrupt model file (header sizes disagree)", path);
  d->params_at = 16 + (long)hbytes;
  FM_ASSERT(c->bytes == d->params_at - (long)d->meta_bytes);
  if (d->n_params < 0 || d->n_params > (file_size - d->params_at - 4) / 4 ||
      d->params_at + 4 * d->n_params + 4 != file_size)
    return fm_fail("%s: truncated or corrupt model file (%lld weights announced, %ld bytes in "
                   "the file)", path, (long long)d->n_params, file_size);
  if (fm_net_build(net, d->in_h, d->in_w, d->in_c, d->specs, d->n_layers) != FM_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", fm_error());
    return fm_fail("%s: corrupt model file (%s)", path, why);
  }
  if (net->n_params != d->n_params)
    return fm_fail("%s: corrupt model file (%lld weights for a network of %lld)", path,
                   (long long)d->n_params, (long long)net->n_params);
  return FM_OK;
}

/* Opens path, reads it all through the CRC, and fills d, net and (when not NULL) meta and params. */
static int read_model(const char *path, fm_model_desc *d, fm_net *net, char *meta, float *params) {
  FILE *f = fopen(path, "rb");
  if (!f) return fm_fail("%s: cannot open (%s)", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fm_fail("%s: not a regular file", path);
  }
  crc_file c = {f, crc32(0L, Z_NULL, 0), 0};
  fm_model_desc probe;
  int rc = read_header(path, &c, (long)st.st_size, &probe, net);
  if (rc == FM_OK && meta && params && memcmp(&probe, d, sizeof probe) != 0)
    rc = fm_fail("%s: the file changed while it was read", path);
  if (rc == FM_OK) {
    *d = probe;
    /* meta text, then the weights, each through the CRC */
    unsigned char chunk[4096];
    size_t left = d->meta_bytes, at = 0;
    while (rc == FM_OK && left) {
      size_t k = left < sizeof chunk ? left : sizeof chunk;
      if (!cread(&c, chunk, k)) rc = fm_fail("%s: truncated model file", path);
      /* text, as saved: a NUL would end it early and hide what follows */
      if (rc == FM_OK && memchr(chunk, '\0', k))
        rc = fm_fail("%s: corrupt model file (a NUL byte in the metadata text)", path);
      if (meta) memcpy(meta + at, chunk, k);
      at += k;
      left -= k;
    }
    if (meta) meta[d->meta_bytes] = '\0';
    FM_ASSERT(rc != FM_OK || c.bytes == d->params_at);
    for (int64_t i = 0; rc == FM_OK && i < d->n_params;) {
      int64_t k = d->n_params - i < (int64_t)(sizeof chunk / 4) ? d->n_params - i : (int64_t)(sizeof chunk / 4);
      if (!cread(&c, chunk, (size_t)k * 4)) rc = fm_fail("%s: truncated model file", path);
      for (int64_t j = 0; rc == FM_OK && params && j < k; j++) params[i + j] = bits_float(get32(chunk + 4 * j));
      i += k;
    }
    FM_ASSERT(rc != FM_OK || c.bytes == d->params_at + 4 * (long)d->n_params);
    unsigned char tail[4];
    if (rc == FM_OK && fread(tail, 1, 4, f) != 4) rc = fm_fail("%s: truncated model file", path);
    if (rc == FM_OK && get32(tail) != (uint32_t)c.crc)
      rc = fm_fail("%s: corrupt model file (checksum mismatch)", path);
    if (rc == FM_OK && params)
      for (int64_t i = 0; i < d->n_params; i++)
        if (!isfinite(params[i])) {
          rc = fm_fail("%s: corrupt model file (weight %lld is not finite)", path, (long long)i);
          break;
        }
  }
  fclose(f);
  return rc;
}

int fm_model_probe(const char *path, fm_model_desc *d, fm_net *net) {
  return read_model(path, d, net, NULL, NULL);
}

int fm_model_read(const char *path, const fm_model_desc *d, char *meta, float *params) {
  fm_model_desc copy = *d;
  fm_net net;
  return read_model(path, &copy, &net, meta, params);
}
