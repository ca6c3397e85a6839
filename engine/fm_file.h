/* fm_file: writing a file so that it appears whole or not at all. Data goes to a temporary file in
 * the same directory, which is renamed over the target only once everything was written and
 * flushed; a failure (full disk, bad path, an error halfway) leaves any earlier file untouched.
 * Every file the engine saves (model files, .npy, PNG) goes through here.
 *
 * What is at the path is looked at first, as cp and the shell's > do:
 * - nothing: the new file gets the usual permissions (0666 less the umask);
 * - a regular file: it is replaced only if it could be opened for writing, and the new file keeps
 *   its permission bits (and, for root, its owner and group);
 * - a symbolic link: refused, naming the path; the link is left alone. Saving never writes through
 *   a link, so a link planted where a file is expected cannot redirect a save elsewhere;
 * - a directory, FIFO, device node or socket: refused, naming the path and what it is.
 * The temporary file is created with O_EXCL and mode 0600 (no one else can open it while it is
 * written), fsync'ed before the rename, and removed on every failure path.
 *
 * A file that another process writes (gnuplot drawing a figure) can be saved the same way: give
 * it a->tmp as the name to write, then commit; it must truncate that file, not replace it. */
#ifndef FM_FILE_H
#define FM_FILE_H

#include <stdio.h>
#include <sys/types.h>

typedef struct fm_atomic_file {
  FILE *f; /* write the contents here */
  int fd;   /* the temporary file under f */
  int error; /* the first errno of a failed write */
  char path[4096];
  char tmp[4096 + 16];
  int replaces;       /* a regular file was at path when the save began */
  mode_t mode;        /* permission bits the new file gets */
  uid_t uid;          /* owner and group of the file replaced (kept when running as root) */
  gid_t gid;
} fm_atomic_file;

/* Checks what is at path and opens the temporary file; fails naming path. */
int fm_atomic_begin(fm_atomic_file *a, const char *path);
/* Flushes, fsyncs, closes and renames into place; on any failure removes the temporary file and
 * fails naming path and the system's reason ("No space left on device"). */
int fm_atomic_commit(fm_atomic_file *a);
/* Closes and removes the temporary file (safe to call after a failed begin or commit, and twice). */
void fm_atomic_abort(fm_atomic_file *a);

#endif
