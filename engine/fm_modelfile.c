/* fm_modelfile: writing and checking saved models (layout in fm_modelfile.h). */
#include "fm_modelfile.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fm_check.h"
#include "fm_error.h"
#include "fm_file.h"

static const char model_magic[8] = {'F', 'M', 'N', 'I', 'S', 'T', 'M', 'D'};
#define V1_LAYER_BYTES 32
#define KIND_AND_SHAPE 32 /* kind[16], in_h, in_w, in_c, n_layers */

/* The fields of a layer record in version 2: key -> the spec field it sets. Keys are never
 * renumbered; a key this table does not know is refused as written by a newer fmnist. */
static const struct {
  uint32_t key;
  size_t offset;
  int is_float;
} record_fields[] = {
    {1, offsetof(fm_layer_spec, units), 0},     {2, offsetof(fm_layer_spec, kh), 0},
    {3, offsetof(fm_layer_spec, kw), 0},        {4, offsetof(fm_layer_spec, same), 0},
    {5, offsetof(fm_layer_spec, pool), 0},      {6, offsetof(fm_layer_spec, stride), 0},
    {7, offsetof(fm_layer_spec, groups), 0},    {8, offsetof(fm_layer_spec, no_bias), 0},
    {9, offsetof(fm_layer_spec, rate), 1},      {10, offsetof(fm_layer_spec, eps), 1},
    {11, offsetof(fm_layer_spec, momentum), 1}, {12, offsetof(fm_layer_spec, init), 0},
};
#define N_FIELDS ((int)(sizeof record_fields / sizeof record_fields[0]))
/* The largest record: kind, n_inputs, inputs, n_fields, fields. */
#define MAX_RECORD (4 * (3 + FM_NET_MAX_INPUTS) + 8 * N_FIELDS)

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

/* The 32 bits of a spec field. */
static uint32_t field_get(const fm_layer_spec *s, int f) {
  const char *at = (const char *)s + record_fields[f].offset;
  if (record_fields[f].is_float) {
    float v;
    memcpy(&v, at, sizeof v);
    return float_bits(v);
  }
  int v;
  memcpy(&v, at, sizeof v);
  return (uint32_t)v;
}

static void field_set(fm_layer_spec *s, int f, uint32_t bits) {
  char *at = (char *)s + record_fields[f].offset;
  if (record_fields[f].is_float) {
    float v = bits_float(bits);
    memcpy(at, &v, sizeof v);
  } else {
    int v = (int)bits;
    memcpy(at, &v, sizeof v);
  }
}

/* A layer's version-2 record (without its length) into buf; returns its bytes. */
static size_t encode_record(const fm_layer *L, unsigned char *buf) {
  size_t at = 0;
  put32(buf + at, (uint32_t)L->spec.kind), at += 4;
  put32(buf + at, (uint32_t)L->n_in), at += 4;
  for (int k = 0; k < L->n_in; k++) put32(buf + at, (uint32_t)L->in[k]), at += 4;
  unsigned char *count = buf + at;
  at += 4;
  uint32_t n = 0;
  for (int f = 0; f < N_FIELDS; f++) {
    uint32_t v = field_get(&L->spec, f);
    if (v == 0) continue;
    put32(buf + at, record_fields[f].key), at += 4;
    put32(buf + at, v), at += 4;
    n++;
  }
  put32(count, n);
  return at;
}

/* CRC32 accumulated over what is written or read. */
typedef struct crc_file {
  FILE *f;
  uLong crc;
} crc_file;

static int cwrite(crc_file *c, const void *p, size_t n) {
  c->crc = crc32(c->crc, p, (uInt)n);
  return fwrite(p, 1, n, c->f) == n;
}

static int cread(crc_file *c, void *p, size_t n) {
  if (fread(p, 1, n, c->f) != n) return 0;
  c->crc = crc32(c->crc, p, (uInt)n);
  return 1;
}

/* Floats through the CRC as little-endian bytes. */
static int write_floats(crc_file *c, const float *v, int64_t n) {
  unsigned char chunk[4096];
  for (int64_t i = 0; i < n;) {
    size_t k = 0;
    for (; k < sizeof chunk / 4 && i < n; k++, i++) put32(chunk + 4 * k, float_bits(v[i]));
    if (!cwrite(c, chunk, 4 * k)) return 0;
  }
  return 1;
}

int fm_model_save(const char *path, const char *kind, const fm_net *net, const char *meta) {
  if (net->n_layers < 1) return fm_fail("%s: the network has no layers", path);
  if (!net->params || (net->n_state > 0 && !net->state))
    return fm_fail("%s: the network has no parameters bound", path);
  size_t meta_bytes = meta ? strlen(meta) : 0;
  if (meta_bytes > FM_MODEL_MAX_META) return fm_fail("%s: metadata over 1 MB", path);
  /* A file that could not be loaded again is not written: every value must be finite. */
  for (int64_t i = 0; i < net->n_params; i++)
    if (!isfinite(net->params[i]))
      return fm_fail("%s: weight %lld is not finite (%g); the model was not saved", path,
                     (long long)i, (double)net->params[i]);
  for (int64_t i = 0; i < net->n_state; i++)
    if (!isfinite(net->state[i]))
      return fm_fail("%s: state value %lld is not finite (%g); the model was not saved", path,
                     (long long)i, (double)net->state[i]);
  size_t hbytes = KIND_AND_SHAPE + 8 + 8 + 4 + meta_bytes;
  unsigned char rec[MAX_RECORD];
  for (int i = 0; i < net->n_layers; i++) hbytes += 4 + encode_record(&net->layer[i], rec);
  if (hbytes > UINT32_MAX) return fm_fail("%s: the model's description is too large", path);

  fm_atomic_file a;
  if (fm_atomic_begin(&a, path) != FM_OK) return FM_ERR;
  crc_file c = {a.f, crc32(0L, Z_NULL, 0)};
  unsigned char buf[64];
  int ok = cwrite(&c, model_magic, 8);
  put32(buf, FM_MODEL_VERSION);
  put32(buf + 4, (uint32_t)hbytes);
  ok = ok && cwrite(&c, buf, 8);
  memset(buf, 0, 16);
  memcpy(buf, kind, strnlen(kind, 15));
  put32(buf + 16, (uint32_t)net->in_h);
  put32(buf + 20, (uint32_t)net->in_w);
  put32(buf + 24, (uint32_t)net->in_c);
  put32(buf + 28, (uint32_t)net->n_layers);
  ok = ok && cwrite(&c, buf, KIND_AND_SHAPE);
  for (int i = 0; i < net->n_layers && ok; i++) {
    size_t n = encode_record(&net->layer[i], rec);
    put32(buf, (uint32_t)n);
    ok = cwrite(&c, buf, 4) && cwrite(&c, rec, n);
  }
  put64(buf, (uint64_t)net->n_params);
  put64(buf + 8, (uint64_t)net->n_state);
  put32(buf + 16, (uint32_t)meta_bytes);
  ok = ok && cwrite(&c, buf, 20) && (meta_bytes == 0 || cwrite(&c, meta, meta_bytes));
  ok = ok && write_floats(&c, net->params, net->n_params) &&
       write_floats(&c, net->state, net->n_state);
  put32(buf, (uint32_t)c.crc);
  ok = ok && fwrite(buf, 1, 4, a.f) == 4;
  if (!ok) {
    int e = errno;
    fm_atomic_abort(&a);
    return fm_fail("%s: write failed (%s)", path, strerror(e ? e : EIO));
  }
  return fm_atomic_commit(&a);
}

/* ---- reading ---- */

typedef struct reader {
  const char *path;
  crc_file c;
  long size;         /* of the file */
  uint32_t version;
  uint32_t hbytes;
  size_t header_read; /* bytes of the header read so far */
} reader;

static int truncated(const reader *r) { return fm_fail("%s: truncated model file", r->path); }

/* n bytes of the header (counted against its announced size). */
static int header_read(reader *r, void *p, size_t n) {
  if (r->header_read + n > r->hbytes)
    return fm_fail("%s: corrupt model file (the header is longer than announced)", r->path);
  if (!cread(&r->c, p, n)) return truncated(r);
  r->header_read += n;
  return FM_OK;
}

/* A version-2 layer record into s (NULL: only checked). */
static int read_record(reader *r, int i, fm_layer_spec *s) {
  unsigned char buf[MAX_RECORD];
  if (header_read(r, buf, 4) != FM_OK) return FM_ERR;
  uint32_t len = get32(buf);
  if (len < 12 || len > MAX_RECORD)
    return fm_fail("%s: corrupt model file (layer %d's record of %u bytes)", r->path, i + 1, len);
  if (header_read(r, buf, len) != FM_OK) return FM_ERR;
  fm_layer_spec spec;
  memset(&spec, 0, sizeof spec);
  uint32_t kind = get32(buf);
  if (kind < 1 || kind > FM_LAYER_KINDS)
    return fm_fail("%s: corrupt model file (layer %d: unknown kind %u)", r->path, i + 1, kind);
  spec.kind = (fm_layer_kind)kind;
  uint32_t n_in = get32(buf + 4);
  if (n_in > FM_NET_MAX_INPUTS || 12 + 4 * (size_t)n_in > len)
    return fm_fail("%s: corrupt model file (layer %d has %u inputs)", r->path, i + 1, n_in);
  spec.n_inputs = (int)n_in;
  for (uint32_t k = 0; k < n_in; k++) spec.inputs[k] = (int32_t)get32(buf + 8 + 4 * k);
  size_t at = 8 + 4 * (size_t)n_in;
  uint32_t n_fields = get32(buf + at);
  at += 4;
  if (n_fields > N_FIELDS || at + 8 * (size_t)n_fields != len)
    return fm_fail("%s: corrupt model file (layer %d's record holds %u fields in %u bytes)",
                   r->path, i + 1, n_fields, len);
  unsigned seen = 0;
  for (uint32_t j = 0; j < n_fields; j++, at += 8) {
    uint32_t key = get32(buf + at), value = get32(buf + at + 4);
    int f = 0;
    while (f < N_FIELDS && record_fields[f].key != key) f++;
    if (f == N_FIELDS)
      return fm_fail("%s: written by a newer fmnist (layer %d has a field %u this one does not "
                     "know)", r->path, i + 1, key);
    if (seen & (1u << f))
      return fm_fail("%s: corrupt model file (layer %d gives field %u twice)", r->path, i + 1, key);
    seen |= 1u << f;
    field_set(&spec, f, value);
  }
  if (s) *s = spec;
  return FM_OK;
}

/* A version-1 layer record into s (NULL: only checked). */
static int read_record_v1(reader *r, int i, fm_layer_spec *s) {
  unsigned char buf[V1_LAYER_BYTES];
  if (header_read(r, buf, V1_LAYER_BYTES) != FM_OK) return FM_ERR;
  uint32_t kind = get32(buf);
  if (kind < 1 || kind > FM_LAYER_FLATTEN) /* version 1 knew the first six kinds */
    return fm_fail("%s: corrupt model file (layer %d: unknown kind %u)", r->path, i + 1, kind);
  if (!s) return FM_OK;
  memset(s, 0, sizeof *s);
  s->kind = (fm_layer_kind)kind;
  s->units = (int)get32(buf + 4);
  s->kh = (int)get32(buf + 8);
  s->kw = (int)get32(buf + 12);
  s->same = (int)get32(buf + 16);
  s->pool = (int)get32(buf + 20);
  s->rate = bits_float(get32(buf + 24));
  s->init = (fm_init_kind)get32(buf + 28);
  return FM_OK;
}

/* Reads the header into d (and the specs, when not NULL). */
static int read_header(reader *r, fm_model_desc *d, fm_layer_spec *specs) {
  unsigned char buf[64];
  memset(d, 0, sizeof *d);
  if (r->size < 16 || !cread(&r->c, buf, 8))
    return fm_fail("%s: not an fmnist model (too short to hold a header)", r->path);
  if (memcmp(buf, model_magic, 8) != 0)
    return fm_fail("%s: not an fmnist model (wrong magic number)", r->path);
  if (!cread(&r->c, buf, 8)) return truncated(r);
  r->version = get32(buf);
  r->hbytes = get32(buf + 4);
  if (r->version > FM_MODEL_VERSION)
    return fm_fail("%s: written by a newer fmnist (model format %u; this one reads %d)", r->path,
                   r->version, FM_MODEL_VERSION);
  if (r->version == 0) return fm_fail("%s: corrupt model file (format version 0)", r->path);
  if (r->hbytes < KIND_AND_SHAPE || (long)r->hbytes > r->size - 20)
    return fm_fail("%s: truncated or corrupt model file (header of %u bytes in a file of %ld)",
                   r->path, r->hbytes, r->size);
  if (header_read(r, buf, KIND_AND_SHAPE) != FM_OK) return FM_ERR;
  d->version = r->version;
  memcpy(d->kind, buf, 15);
  d->kind[15] = '\0';
  uint32_t in_h = get32(buf + 16), in_w = get32(buf + 20), in_c = get32(buf + 24);
  uint32_t n_layers = get32(buf + 28);
  /* Sides beyond FM_NET_MAX_DIM would not even fit an int; the product is fm_net_build's. */
  if (in_h < 1 || in_h > FM_NET_MAX_DIM || in_w < 1 || in_w > FM_NET_MAX_DIM || in_c < 1 ||
      in_c > FM_NET_MAX_DIM)
    return fm_fail("%s: corrupt model file (input shape %ux%ux%u; sides 1 to %d)", r->path,
                   in_h, in_w, in_c, FM_NET_MAX_DIM);
  if (n_layers < 1 || n_layers > FM_NET_MAX_LAYERS)
    return fm_fail("%s: corrupt model file (%u layers)", r->path, n_layers);
  d->in_h = (int)in_h;
  d->in_w = (int)in_w;
  d->in_c = (int)in_c;
  d->n_layers = (int)n_layers;
  for (uint32_t i = 0; i < n_layers; i++) {
    fm_layer_spec *s = specs ? &specs[i] : NULL;
    int rc = r->version == 1 ? read_record_v1(r, (int)i, s) : read_record(r, (int)i, s);
    if (rc != FM_OK) return FM_ERR;
  }
  if (r->version == 1) {
    if (header_read(r, buf, 12) != FM_OK) return FM_ERR;
    d->n_params = (int64_t)get64(buf);
    d->meta_bytes = get32(buf + 8);
  } else {
    if (header_read(r, buf, 20) != FM_OK) return FM_ERR;
    d->n_params = (int64_t)get64(buf);
    d->n_state = (int64_t)get64(buf + 8);
    d->meta_bytes = get32(buf + 16);
  }
  if (d->meta_bytes > FM_MODEL_MAX_META)
    return fm_fail("%s: corrupt model file (metadata of %zu bytes, over %d)", r->path,
                   d->meta_bytes, FM_MODEL_MAX_META);
  if (r->header_read + d->meta_bytes != r->hbytes)
    return fm_fail("%s: corrupt model file (header sizes disagree)", r->path);
  long data_at = 16 + (long)r->hbytes, room = (r->size - data_at - 4) / 4;
  if (d->n_params < 0 || d->n_state < 0 || d->n_params > room || d->n_state > room - d->n_params ||
      data_at + 4 * (d->n_params + d->n_state) + 4 != r->size)
    return fm_fail("%s: truncated or corrupt model file (%lld weights announced, and %lld state "
                   "values, in a file of %ld bytes)", r->path, (long long)d->n_params,
                   (long long)d->n_state, r->size);
  return FM_OK;
}

/* Floats through the CRC, checked finite; into out when not NULL. */
static int read_floats(reader *r, int64_t n, float *out, const char *what) {
  unsigned char chunk[4096];
  for (int64_t i = 0; i < n;) {
    int64_t k = n - i < (int64_t)(sizeof chunk / 4) ? n - i : (int64_t)(sizeof chunk / 4);
    if (!cread(&r->c, chunk, (size_t)k * 4)) return truncated(r);
    for (int64_t j = 0; j < k; j++) {
      float v = bits_float(get32(chunk + 4 * j));
      if (!isfinite(v))
        return fm_fail("%s: corrupt model file (%s %lld is not finite)", r->path, what,
                       (long long)(i + j));
      if (out) out[i + j] = v;
    }
    i += k;
  }
  return FM_OK;
}

/* Opens path and reads it all through the CRC: the header into d, and when the buffers are given
 * the specs, meta text, params and state. */
static int read_model(const char *path, fm_model_desc *d, fm_layer_spec *specs, char *meta,
                      float *params, float *state) {
  FILE *f = fopen(path, "rb");
  if (!f) return fm_fail("%s: cannot open (%s)", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fm_fail("%s: not a regular file", path);
  }
  reader r = {.path = path, .c = {f, crc32(0L, Z_NULL, 0)}, .size = (long)st.st_size};
  int rc = read_header(&r, d, specs);
  /* meta text, then the weights and the state, each through the CRC */
  unsigned char chunk[4096];
  size_t left = rc == FM_OK ? d->meta_bytes : 0, at = 0;
  while (rc == FM_OK && left) {
    size_t k = left < sizeof chunk ? left : sizeof chunk;
    if (!cread(&r.c, chunk, k)) rc = truncated(&r);
    /* text, as saved: a NUL would end it early and hide what follows */
    if (rc == FM_OK && memchr(chunk, '\0', k))
      rc = fm_fail("%s: corrupt model file (a NUL byte in the metadata text)", path);
    if (rc == FM_OK && meta) memcpy(meta + at, chunk, k);
    at += k;
    left -= k;
  }
  if (rc == FM_OK && meta) meta[d->meta_bytes] = '\0';
  if (rc == FM_OK) rc = read_floats(&r, d->n_params, params, "weight");
  if (rc == FM_OK) rc = read_floats(&r, d->n_state, state, "state value");
  unsigned char tail[4];
  if (rc == FM_OK && fread(tail, 1, 4, f) != 4) rc = truncated(&r);
  if (rc == FM_OK && get32(tail) != (uint32_t)r.c.crc)
    rc = fm_fail("%s: corrupt model file (checksum mismatch)", path);
  fclose(f);
  return rc;
}

int fm_model_probe(const char *path, fm_model_desc *d) {
  return read_model(path, d, NULL, NULL, NULL, NULL);
}

int fm_model_read(const char *path, const fm_model_desc *d, fm_layer_spec *specs,
                  fm_layer *layers, fm_net *net, char *meta, float *params, float *state) {
  fm_model_desc now;
  if (read_model(path, &now, specs, meta, params, state) != FM_OK) return FM_ERR;
  if (memcmp(&now, d, sizeof now) != 0)
    return fm_fail("%s: the file changed while it was read", path);
  if (fm_net_build(net, layers, d->in_h, d->in_w, d->in_c, specs, d->n_layers) != FM_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", fm_error());
    return fm_fail("%s: corrupt model file (%s)", path, why);
  }
  if (net->n_params != d->n_params)
    return fm_fail("%s: corrupt model file (%lld weights for a network of %lld)", path,
                   (long long)d->n_params, (long long)net->n_params);
  if (net->n_state != d->n_state)
    return fm_fail("%s: corrupt model file (%lld state values for a network of %lld)", path,
                   (long long)d->n_state, (long long)net->n_state);
  fm_net_bind(net, params, NULL, state);
  return FM_OK;
}
