/* test_tensor: the tensor engine without Lua: shapes and their checked arithmetic (products past
 * FM_MAX_NUMEL, reshape with -1, arange counts), broadcasting, the matrix product, reductions,
 * histograms with NaN and infinities; .npy files written and read back, hostile headers, files
 * that are not regular or change between probe and read, a save that fails halfway; and the
 * metrics behind fm.metrics (confusion matrix, per-class scores, an empty matrix). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fm_error.h"
#include "fm_metrics.h"
#include "fm_npy.h"
#include "fm_tensor.h"

static char tmpdir[256];

static const char *tpath(const char *name) {
  static char bufs[8][512];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
}

/* A tensor header over data (the caller's buffer, as the engine expects). */
static fm_tensor make(int ndim, const int64_t *shape, float *data) {
  fm_tensor t;
  if (fm_shape_set(&t, ndim, shape) != FM_OK) {
    printf("Bail out! %s\n", fm_error());
    exit(1);
  }
  t.data = data;
  return t;
}

static void test_shapes(void) {
  fm_tensor t;
  int64_t ok[3] = {2, 3, 4};
  CHECK(fm_shape_set(&t, 3, ok) == FM_OK && t.numel == 24 && t.shape[3] == 1, "2x3x4 has 24 elements");
  int64_t neg[2] = {2, -1};
  CHECK_FAILS(fm_shape_set(&t, 2, neg), "shape 2x-1: dimension 2 is negative (-1)", "a negative dimension");
  int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
  CHECK_FAILS(fm_shape_set(&t, 2, huge),
              "shape 1099511627776x1099511627776: a tensor of more than 17179869184 elements",
              "2^40 x 2^40 is refused without overflowing");
  int64_t wrap[4] = {(int64_t)1 << 16, (int64_t)1 << 16, (int64_t)1 << 16, (int64_t)1 << 16};
  CHECK_FAILS(fm_shape_set(&t, 4, wrap), "more than", "a product of 2^64 (0 when it wraps) is refused");
  int64_t zero_big[2] = {FM_MAX_NUMEL, 0}, zero_huge[2] = {FM_MAX_NUMEL + 1, 0};
  CHECK(fm_shape_set(&t, 2, zero_big) == FM_OK && t.numel == 0, "a zero beside the largest dimension");
  CHECK_FAILS(fm_shape_set(&t, 2, zero_huge), "more than", "a zero does not excuse an absurd dimension");
  CHECK_FAILS(fm_shape_set(&t, 0, ok), "1 to 4 dimensions, not 0", "no dimensions");
  CHECK_FAILS(fm_shape_set(&t, 5, ok), "1 to 4 dimensions, not 5", "five dimensions");
  char s[FM_SHAPE_STR];
  int64_t longest[4] = {INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};
  fm_dims_str(4, longest, s, sizeof s);
  CHECK(strlen(s) == 4 * 20 + 3, "FM_SHAPE_STR holds the longest shape (%s)", s);
}

static void test_reshape(void) {
  float data[12];
  int64_t shape12[1] = {12};
  fm_tensor t = make(1, shape12, data), r;
  int64_t a[2] = {3, -1};
  CHECK(fm_reshape_shape(&t, 2, a, &r) == FM_OK && r.shape[0] == 3 && r.shape[1] == 4, "3x-1 infers 4");
  int64_t b[3] = {(int64_t)1 << 40, (int64_t)1 << 40, -1};
  CHECK_FAILS(fm_reshape_shape(&t, 3, b, &r),
              "a 12 tensor cannot become 1099511627776x1099511627776x-1: dimension 1 is 1099511627776",
              "2^40 x 2^40 x -1 names both shapes");
  int64_t c[3] = {(int64_t)1 << 20, (int64_t)1 << 20, -1};
  CHECK_FAILS(fm_reshape_shape(&t, 3, c, &r), "a 12 tensor (12 elements) cannot become 1048576x1048576x-1",
              "a known product past the size, without overflow");
  int64_t d[4] = {(int64_t)1 << 30, (int64_t)1 << 30, (int64_t)1 << 30, 0};
  CHECK_FAILS(fm_reshape_shape(&t, 4, d, &r), "(12 elements) cannot become", "a product clamped then zeroed");
  int64_t e[2] = {5, -1};
  CHECK_FAILS(fm_reshape_shape(&t, 2, e, &r), "a 12 tensor (12 elements) cannot become 5x-1",
              "12 is not a multiple of 5");
  int64_t f[2] = {-1, -1};
  CHECK_FAILS(fm_reshape_shape(&t, 2, f, &r), "only one dimension may be -1", "two -1");
  int64_t g[2] = {-3, 4};
  CHECK_FAILS(fm_reshape_shape(&t, 2, g, &r), "cannot become -3x4: dimension 1 is -3", "-3");
  int64_t h[2] = {INT64_MIN, 1};
  CHECK_FAILS(fm_reshape_shape(&t, 2, h, &r), "dimension 1 is -9223372036854775808", "INT64_MIN");
  int64_t shape0[2] = {0, 5};
  fm_tensor empty = make(2, shape0, data);
  int64_t i[2] = {0, -1}, j[3] = {5, 0, 7};
  CHECK_FAILS(fm_reshape_shape(&empty, 2, i, &r), "-1 is ambiguous beside a zero dimension", "0x-1");
  CHECK(fm_reshape_shape(&empty, 3, j, &r) == FM_OK && r.numel == 0, "an empty tensor becomes 5x0x7");
  CHECK_FAILS(fm_reshape_shape(&t, 5, a, &r), "1 to 4 dimensions", "five dimensions");
}

static void test_arange(void) {
  fm_tensor t;
  CHECK(fm_arange_shape(0, 1, 0.25, &t) == FM_OK && t.numel == 4, "arange(0, 1, 0.25) has 4");
  CHECK(fm_arange_shape(5, 1, 1, &t) == FM_OK && t.numel == 0, "arange(5, 1) is empty");
  CHECK(fm_arange_shape(5, 1, -2, &t) == FM_OK && t.numel == 2, "arange(5, 1, -2) has 2");
  CHECK_FAILS(fm_arange_shape(NAN, 1, 1, &t), "start nan, stop 1, step 1: start and stop must be finite",
              "NaN start");
  CHECK_FAILS(fm_arange_shape(0, INFINITY, 1, &t), "must be finite", "infinite stop");
  CHECK_FAILS(fm_arange_shape(0, 1, 0, &t), "step finite and non-zero", "zero step");
  CHECK_FAILS(fm_arange_shape(-1e308, 1e308, 1, &t), "would make inf elements", "stop - start overflows");
  CHECK_FAILS(fm_arange_shape(0, 1e12, 1, &t), "would make 1000000000000 elements, more than 17179869184",
              "10^12 elements");
  float data[5];
  fm_tensor a = make(1, (int64_t[]){5}, data);
  fm_arange(&a, 1, 0.5);
  CHECK(data[0] == 1 && data[4] == 3, "arange values");
}

static void test_arithmetic(void) {
  float x[6] = {1, 2, 3, 4, 5, 6}, row[3] = {10, 20, 30}, out[6];
  fm_tensor m = make(2, (int64_t[]){2, 3}, x), r = make(1, (int64_t[]){3}, row), o;
  CHECK(fm_binop_shape(&m, &r, &o) == FM_OK && o.numel == 6, "2x3 + 3 is 2x3");
  o.data = out;
  fm_binop_tt(FM_ADD, &m, &r, &o);
  CHECK(out[0] == 11 && out[5] == 36, "a row vector broadcasts over rows");
  fm_binop_tt(FM_SUB, &r, &m, &o);
  CHECK(out[3] == 6, "on the left too: 10 - 4");
  fm_tensor col = make(1, (int64_t[]){2}, row);
  CHECK_FAILS(fm_binop_shape(&m, &col, &o), "shapes 2x3 and 2 do not fit", "a mismatch names both shapes");
  fm_binop_ts(FM_DIV, &m, 2, 1, &o);
  CHECK(out[3] == 0.5f, "scalar first: 2 / 4");

  float b[6] = {1, 0, 0, 1, 1, 1}, prod[4];
  fm_tensor mb = make(2, (int64_t[]){3, 2}, b), p;
  CHECK(fm_matmul_shape(&m, &mb, &p) == FM_OK && p.shape[0] == 2 && p.shape[1] == 2, "2x3 @ 3x2 is 2x2");
  p.data = prod;
  fm_matmul(&m, &mb, &p);
  CHECK(prod[0] == 4 && prod[1] == 5 && prod[2] == 10 && prod[3] == 11, "matmul values");
  CHECK_FAILS(fm_matmul_shape(&m, &m, &p), "2x3 and 2x3 do not fit", "matmul mismatch names both shapes");
  fm_tensor v3 = make(1, (int64_t[]){3}, row);
  CHECK(fm_matmul_shape(&m, &v3, &p) == FM_OK && p.ndim == 1 && p.shape[0] == 2, "2x3 @ 3 is 2");
  fm_matmul(&m, &v3, &p);
  CHECK(prod[0] == 140 && prod[1] == 320, "matrix times vector");
  fm_tensor k0a = make(2, (int64_t[]){2, 0}, x), k0b = make(2, (int64_t[]){0, 2}, x);
  prod[0] = prod[3] = 99;
  CHECK(fm_matmul_shape(&k0a, &k0b, &p) == FM_OK, "2x0 @ 0x2");
  fm_matmul(&k0a, &k0b, &p);
  CHECK(prod[0] == 0 && prod[3] == 0, "an empty inner dimension gives zeros");

  float tr[6];
  fm_tensor t = make(2, (int64_t[]){3, 2}, tr);
  fm_transpose(&m, &t);
  CHECK(tr[0] == 1 && tr[1] == 4 && tr[5] == 6, "transpose");
}

static void test_reductions(void) {
  float x[6] = {1, 9, 3, 7, 2, 8};
  fm_tensor m = make(2, (int64_t[]){2, 3}, x), o;
  double v;
  CHECK(fm_reduce_all(FM_SUM, &m, &v) == FM_OK && v == 30, "sum");
  CHECK(fm_reduce_all(FM_ARGMAX, &m, &v) == FM_OK && v == 1, "argmax is 0-based here");
  float out[3];
  CHECK(fm_reduce_shape(&m, 0, &o) == FM_OK && o.numel == 3, "reduce over dim 1 leaves 3");
  o.data = out;
  CHECK(fm_reduce_dim(FM_MAX, &m, 0, &o) == FM_OK && out[0] == 7 && out[1] == 9 && out[2] == 8, "max over rows");
  CHECK_FAILS(fm_reduce_shape(&m, 2, &o), "dimension 3 out of range (the tensor has 2)", "dim 3 of 2");
  fm_tensor empty = make(2, (int64_t[]){0, 3}, x);
  CHECK_FAILS(fm_reduce_all(FM_MIN, &empty, &v), "the tensor is empty", "min of nothing");
  CHECK(fm_reduce_all(FM_MEAN, &empty, &v) == FM_OK && isnan(v), "mean of nothing is NaN");
  fm_reduce_shape(&empty, 0, &o);
  o.data = out;
  CHECK_FAILS(fm_reduce_dim(FM_ARGMAX, &empty, 0, &o), "dimension 1 is empty", "argmax over an empty dimension");
}

static void test_histc(void) {
  float x[7] = {0, 0.1f, 0.5f, 0.99f, 1, 2, NAN}, bins[4];
  fm_tensor a = make(1, (int64_t[]){7}, x), h;
  h.data = bins;
  CHECK(fm_histc(&a, 2, 0, 1, &h) == FM_OK && bins[0] == 2 && bins[1] == 3,
        "hi goes in the last bin; outside and NaN are dropped");
  CHECK_FAILS(fm_histc(&a, 2, 0, INFINITY, &h), "the range [0, inf] must be finite", "infinite hi");
  CHECK_FAILS(fm_histc(&a, 2, NAN, 1, &h), "must be finite", "NaN lo");
  CHECK_FAILS(fm_histc(&a, 2, 2, 1, &h), "the range [2, 1] is empty", "lo above hi");
  CHECK_FAILS(fm_histc(&a, 0, 0, 1, &h), "bins must be from 1", "no bins");
  float y[4] = {INFINITY, 1, -INFINITY, 3};
  fm_tensor b = make(1, (int64_t[]){4}, y);
  CHECK(fm_histc(&b, 2, 0, 0, &h) == FM_OK && bins[0] == 1 && bins[1] == 1,
        "the data's range is that of its finite values");
  float z[2] = {NAN, INFINITY};
  fm_tensor c = make(1, (int64_t[]){2}, z);
  CHECK(fm_histc(&c, 2, 0, 0, &h) == FM_OK && bins[0] == 0 && bins[1] == 0, "no finite value: all zero");
  float big[2] = {1e30f, 1e30f};
  fm_tensor d = make(1, (int64_t[]){2}, big);
  CHECK(fm_histc(&d, 3, 0, 0, &h) == FM_OK && bins[0] + bins[1] + bins[2] == 2, "one huge value");
  CHECK_FAILS(fm_histc(&a, 4, 0, 1e-320, &h), "too narrow or too wide", "a subnormal range");
}

/* ---- .npy ---- */

/* A .npy file with the given header dict (padded like numpy) and n bytes of data. */
static void write_npy(const char *path, int version, const char *dict, size_t n) {
  char buf[4096];
  size_t pre = version == 1 ? 10 : 12, len = strlen(dict);
  size_t total = pre + len + 1, pad = (64 - total % 64) % 64, hlen = len + pad + 1;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (char)version;
  buf[7] = 0;
  buf[8] = (char)(hlen & 0xff);
  buf[9] = (char)(hlen >> 8 & 0xff);
  if (version > 1) buf[10] = (char)(hlen >> 16 & 0xff), buf[11] = (char)(hlen >> 24 & 0xff);
  memcpy(buf + pre, dict, len);
  memset(buf + pre + len, ' ', pad);
  buf[pre + len + pad] = '\n';
  memset(buf + total + pad, 7, n);
  write_bytes(path, buf, total + pad + n);
}

static void test_npy(void) {
  float data[6] = {1.5f, -2, 3, 4, 5, 6e20f}, back[6] = {0};
  fm_tensor t = make(2, (int64_t[]){2, 3}, data);
  const char *p = tpath("t.npy");
  CHECK(fm_npy_write(p, &t) == FM_OK, "write a 2x3 tensor");
  fm_npy_info info;
  CHECK(fm_npy_probe(p, &info) == FM_OK && info.ndim == 2 && info.shape[1] == 3 && !info.is_uint8,
        "probe reads its shape and dtype");
  fm_tensor r = make(2, info.shape, back);
  CHECK(fm_npy_read(p, &info, &r) == FM_OK && memcmp(data, back, sizeof data) == 0, "round trip is exact");
  struct stat st;
  CHECK(stat(p, &st) == 0 && (st.st_size - 24) % 64 == 0, "the data starts on a 64-byte boundary");

  fm_tensor wrong = make(1, (int64_t[]){5}, back);
  CHECK_FAILS(fm_npy_read(p, &info, &wrong), "a tensor of 5 elements cannot take 6", "read checks the size");
  /* Replaced between probe and read: the second read of the header notices. */
  float other[6];
  fm_tensor t32 = make(2, (int64_t[]){3, 2}, other);
  fm_npy_write(p, &t32);
  CHECK_FAILS(fm_npy_read(p, &info, &r), "file changed while being loaded", "a file replaced after the probe");

  struct {
    const char *name, *dict;
    int version;
    size_t n;
    const char *expect;
  } bad[] = {
      {"overflow.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 1, 0,
       "overflow.npy: shape 4294967296x4294967296: a tensor of more than"},
      {"wrap.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536, 65536, 65536), }", 1, 0,
       "a tensor of more than"},
      {"toolong.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 1, 0,
       "bad shape"},
      {"negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 1, 0, "bad shape"},
      {"five.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", 1, 4,
       "more than 4 dimensions"},
      {"scalar.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 1, 4, "0-dimensional"},
      {"f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 1, 8, "dtype '<f8' is not supported"},
      {"fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", 1, 4, "Fortran-ordered"},
      {"noshape.npy", "{'descr': '<f4', 'fortran_order': False, }", 1, 4, "no shape"},
      {"open.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, ", 1, 8, "bad shape"},
      {"short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 1, 7,
       "short.npy: holds 135 bytes where its header announces 136"},
      {"long.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 2, 9, "announces"},
      {"v4.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4, 8, ".npy version 4 is not supported"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_npy(tpath(bad[i].name), bad[i].version, bad[i].dict, bad[i].n);
    CHECK_FAILS(fm_npy_probe(tpath(bad[i].name), &info), bad[i].expect, ".npy refused: %s", bad[i].name);
  }
  unsigned char absurd[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0, 0, 0, 0x80};
  write_bytes(tpath("absurd.npy"), absurd, sizeof absurd);
  CHECK_FAILS(fm_npy_probe(tpath("absurd.npy"), &info), "header of 2147483648 bytes is absurd",
              "a 2 GB header length is refused before any allocation");
  write_bytes(tpath("cut.npy"), absurd, 8);
  CHECK_FAILS(fm_npy_probe(tpath("cut.npy"), &info), "not a .npy file", "eight bytes");

  mkfifo(tpath("fifo.npy"), 0644);
  CHECK_FAILS(fm_npy_probe(tpath("fifo.npy"), &info), "fifo.npy: is a FIFO (named pipe), not a .npy file",
              "a FIFO is refused without waiting for a writer");
  CHECK_FAILS(fm_npy_probe(tmpdir, &info), "is a directory, not a .npy file", "a directory");
  CHECK_FAILS(fm_npy_probe("/dev/zero", &info), "/dev/zero: is a character device", "/dev/zero");
  CHECK_FAILS(fm_npy_probe(tpath("missing.npy"), &info), "missing.npy: cannot open (No such file",
              "a missing file");

  /* Saving goes through fm_file: a symlink is refused, a failed write keeps the old file. */
  const char *target = tpath("target.npy"), *link = tpath("link.npy");
  write_bytes(target, "target", 6);
  if (symlink(target, link) != 0) printf("Bail out! symlink: %s\n", strerror(errno));
  CHECK_FAILS(fm_npy_write(link, &t), "link.npy: is a symbolic link", "save_npy refuses a symlink");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 40, .rlim_max = 40};
    setrlimit(RLIMIT_FSIZE, &lim);
    _exit(fm_npy_write(target, &t) == FM_ERR && strstr(fm_error(), "File too large") ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  FILE *f = fopen(target, "rb");
  char got[16] = "";
  if (f) {
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
  }
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(got, "target") == 0,
        "a .npy save over the file size limit fails and keeps the old bytes");
}

/* ---- metrics ---- */

static void test_metrics(void) {
  uint8_t truth[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2}, pred[10] = {0, 0, 1, 0, 1, 1, 2, 2, 2, 0};
  int64_t conf[100];
  CHECK(fm_confusion(truth, pred, 10, 10, conf) == FM_OK && conf[0] == 3 && conf[1] == 1 && conf[20] == 1,
        "confusion: row = true class, column = predicted");
  fm_metrics m;
  CHECK(fm_metrics_compute(conf, 10, &m) == FM_OK, "metrics compute");
  CHECK_NEAR(m.accuracy, 0.7, 1e-12, "accuracy");
  CHECK_NEAR(m.precision[0], 0.75, 1e-12, "precision of class 0");
  CHECK_NEAR(m.recall[1], 2.0 / 3, 1e-12, "recall of class 1");
  CHECK(m.n_present == 3 && m.present[2] && !m.present[3], "present classes");
  CHECK_NEAR(m.macro_recall, (0.75 + 2.0 / 3 + 2.0 / 3) / 3, 1e-12, "macro recall over present classes");
  CHECK_NEAR(m.weighted_recall, 0.7, 1e-12, "weighted recall is the accuracy");
  float norm[100];
  fm_confusion_normalize(conf, 10, norm);
  CHECK(norm[0] == 0.75f && norm[99] == 0, "normalised rows; an absent class's row stays 0");

  uint8_t bad[3] = {1, 10, 2};
  CHECK_FAILS(fm_confusion(bad, pred, 3, 10, conf), "true label 10 at position 2 is outside 0..9",
              "a true label of 10 is refused naming its position");
  CHECK_FAILS(fm_confusion(truth, bad, 3, 10, conf), "predicted label 10 at position 2", "a prediction of 10");
  CHECK_FAILS(fm_confusion(truth, pred, 3, 0, conf), "0 classes", "no classes");
  CHECK_FAILS(fm_confusion(truth, pred, 3, 257, conf), "257 classes", "too many classes");
  int64_t none[100] = {0};
  CHECK(fm_metrics_compute(none, 10, &m) == FM_OK && m.total == 0 && m.accuracy == 0 && m.n_present == 0 &&
            m.macro_f1 == 0 && !isnan(m.weighted_f1),
        "an empty confusion matrix gives zeros, not NaN");
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/fm-tensor-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  test_shapes();
  test_reshape();
  test_arange();
  test_arithmetic();
  test_reductions();
  test_histc();
  test_npy();
  test_metrics();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
  return check_done();
}
