/* fm_file: writing a file so that it appears whole or not at all. Data goes to a temporary file in
 * the same directory, which is renamed over the target only once everything was written and
 * flushed; a failure (full disk, bad path, an error halfway) leaves any earlier file untouched. */
#ifndef FM_FILE_H
#define FM_FILE_H

#include <stdio.h>

typedef struct fm_atomic_file {
  FILE *f;
  char path[4096];
  char tmp[4096 + 16];
} fm_atomic_file;

/* Opens the temporary file; fails naming path. */
int fm_atomic_begin(fm_atomic_file *a, const char *path);
/* Flushes, closes and renames into place; on any failure removes the temporary file and fails
 * naming path. */
int fm_atomic_commit(fm_atomic_file *a);
/* Closes and removes the temporary file (safe to call after a failed commit). */
void fm_atomic_abort(fm_atomic_file *a);

#endif
