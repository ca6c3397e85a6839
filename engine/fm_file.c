/* fm_file: temporary file + rename, so that a saved file is complete or absent. */
#include "fm_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_error.h"

int fm_atomic_begin(fm_atomic_file *a, const char *path) {
  a->f = NULL;
  a->tmp[0] = '\0';
  if (strlen(path) >= sizeof a->path) return fm_fail("%.200s...: path too long", path);
  strcpy(a->path, path);
  snprintf(a->tmp, sizeof a->tmp, "%s.tmpXXXXXX", path);
  int fd = mkstemp(a->tmp);
  if (fd < 0) {
    int e = errno;
    a->tmp[0] = '\0';
    return fm_fail("%s: cannot write (%s)", path, strerror(e));
  }
  /* mkstemp makes the file 0600; a saved file should have the usual permissions. */
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  a->f = fdopen(fd, "wb");
  if (!a->f) {
    int e = errno;
    close(fd);
    unlink(a->tmp);
    a->tmp[0] = '\0';
    return fm_fail("%s: cannot write (%s)", path, strerror(e));
  }
  return FM_OK;
}

int fm_atomic_commit(fm_atomic_file *a) {
  int failed = ferror(a->f);
  int e = failed ? EIO : 0;
  if (fflush(a->f) != 0 && !e) e = errno;
  if (fsync(fileno(a->f)) != 0 && !e && errno != EINVAL) e = errno;
  if (fclose(a->f) != 0 && !e) e = errno;
  a->f = NULL;
  if (!e && rename(a->tmp, a->path) != 0) e = errno;
  if (e) {
    unlink(a->tmp);
    a->tmp[0] = '\0';
    return fm_fail("%s: write failed (%s)", a->path, strerror(e));
  }
  a->tmp[0] = '\0';
  return FM_OK;
}

void fm_atomic_abort(fm_atomic_file *a) {
  if (a->f) fclose(a->f);
  a->f = NULL;
  if (a->tmp[0]) unlink(a->tmp);
  a->tmp[0] = '\0';
}
