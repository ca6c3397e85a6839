/* fuzz_util.h: what the fuzz targets share. The engine's loaders take file names, so each target
 * writes the fuzzer's bytes to a file in a private temporary directory made once per process and
 * removed at exit; the page cache keeps that cheap. The engine runs on one thread
 * (OMP_NUM_THREADS=1 before the first call) so that a run is reproducible and leaves the other
 * core to the rest of the machine. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[4096];

static inline void fuzz_remove_dir(void) {
  if (!fuzz_dir[0]) return;
  char cmd[4200];
  /* Only a directory this process made with mkdtemp, and quoted: nothing the fuzzer chose. */
  snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", fuzz_dir);
  if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* Makes the private directory (under $TMPDIR or /tmp) and sets the engine to one thread. */
static inline void fuzz_setup(void) {
  setenv("OMP_NUM_THREADS", "1", 1);
  if (fuzz_dir[0]) return;
  const char *tmp = getenv("TMPDIR");
  snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fmnist-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(fuzz_dir)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(fuzz_remove_dir);
}

/* Writes data to the file name inside the private directory and returns its path (a static
 * buffer per name slot: slot 0 or 1, so that two files can be in use at once). */
static inline const char *fuzz_write_file(int slot, const char *name, const uint8_t *data,
                                          size_t size) {
  static char paths[2][4200];
  char *path = paths[slot & 1];
  snprintf(path, sizeof paths[0], "%s/%s", fuzz_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
    perror(path);
    abort();
  }
  return path;
}

#endif
