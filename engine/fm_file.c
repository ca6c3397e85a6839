/* fm_file: temporary file + rename, so that a saved file is complete or absent (see fm_file.h for
 * what happens to whatever is already at the path). */
#include "fm_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_error.h"

/* What kind of thing a non-regular file is, for messages. */
static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* The process's umask, read without changing it: umask(2) can only be read by setting it, which
 * would briefly give files that other threads create at that moment the wrong permissions. */
static mode_t current_umask(void) {
  FILE *f = fopen("/proc/self/status", "re");
  if (f) {
    char line[256];
    unsigned mask;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "Umask: %o", &mask) == 1) {
        fclose(f);
        return (mode_t)mask & 0777;
      }
    fclose(f);
  }
  mode_t mask = umask(022);
  umask(mask);
  return mask;
}

/* Looks at what is at a->path: nothing, or a regular file that may be replaced (its mode and
 * owner are recorded); anything else is refused with a message naming the path. */
static int check_target(fm_atomic_file *a) {
  struct stat st;
  a->replaces = 0;
  if (lstat(a->path, &st) != 0) {
    if (errno != ENOENT) return fm_fail("%s: cannot write (%s)", a->path, strerror(errno));
    a->mode = 0666 & ~current_umask();
    return FM_OK;
  }
  if (S_ISLNK(st.st_mode))
    return fm_fail("%s: is a symbolic link; not replacing it (save to the file it points to, or "
                   "remove the link)", a->path);
  if (!S_ISREG(st.st_mode))
    return fm_fail("%s: is %s, not a regular file; not replacing it", a->path,
                   file_kind(st.st_mode));
  /* A file that could not be opened for writing is not replaced either (as cp or > would fail). */
  if (faccessat(AT_FDCWD, a->path, W_OK, AT_EACCESS) != 0)
    return fm_fail("%s: cannot write (%s)", a->path, strerror(errno));
  a->replaces = 1;
  a->mode = st.st_mode & 07777;
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  return FM_OK;
}

/* The stream's write function: write(2) to the temporary file, keeping the first errno so that
 * commit can say why a write failed ("No space left on device", "File too large") however long
 * ago it happened. Returns the bytes written, 0 on an error (fopencookie's convention). */
static ssize_t write_temp(void *cookie, const char *buf, size_t n) {
  fm_atomic_file *a = cookie;
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(a->fd, buf + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (!a->error) a->error = w < 0 ? errno : EIO;
      break;
    }
    done += (size_t)w;
  }
  return (ssize_t)done;
}

int fm_atomic_begin(fm_atomic_file *a, const char *path) {
  a->f = NULL;
  a->fd = -1;
  a->error = 0;
  a->tmp[0] = '\0';
  a->path[0] = '\0';
  if (path[0] == '\0') return fm_fail("cannot write a file with an empty name");
  if (strlen(path) >= sizeof a->path) return fm_fail("%.200s...: path too long", path);
  strcpy(a->path, path);
  if (check_target(a) != FM_OK) return FM_ERR;
  snprintf(a->tmp, sizeof a->tmp, "%s.tmpXXXXXX", path);
  /* mkostemp opens with O_EXCL and mode 0600: nobody else can open the file while it is written.
   * Its final mode is given at commit. */
  a->fd = mkostemp(a->tmp, O_CLOEXEC);
  if (a->fd < 0) {
    int e = errno;
    a->tmp[0] = '\0';
    return fm_fail("%s: cannot write (%s)", path, strerror(e));
  }
  a->f = fopencookie(a, "wb", (cookie_io_functions_t){.write = write_temp});
  if (!a->f) {
    int e = errno;
    fm_atomic_abort(a);
    return fm_fail("%s: cannot write (%s)", path, strerror(e));
  }
  return FM_OK;
}

/* Gives the temporary file the final owner and mode. Failures are ignored: they leave the file
 * 0600 and owned by whoever saves, which is narrower, never wider. The set-id bits are kept only
 * when the owner and group are. */
static void set_final_mode(fm_atomic_file *a, int fd) {
  mode_t mode = a->mode;
  if (a->replaces) {
    struct stat st;
    int same_owner = fstat(fd, &st) == 0 && st.st_uid == a->uid && st.st_gid == a->gid;
    if (!same_owner && geteuid() == 0) same_owner = fchown(fd, a->uid, a->gid) == 0;
    if (!same_owner) mode &= ~(mode_t)(S_ISUID | S_ISGID);
  }
  (void)fchmod(fd, mode);
}

/* Makes the rename itself durable; a failure here loses nothing already written. */
static void sync_directory(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  if (!slash)
    strcpy(dir, ".");
  else if (slash == path)
    strcpy(dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

int fm_atomic_commit(fm_atomic_file *a) {
  if (!a->f) return fm_fail("%s: cannot write (the file was not opened)", a->path);
  int e = 0;
  if (fflush(a->f) != 0 || ferror(a->f)) e = a->error ? a->error : EIO;
  fclose(a->f);
  a->f = NULL;
  if (!e) set_final_mode(a, a->fd);
  if (!e && fsync(a->fd) != 0 && errno != EINVAL) e = errno;
  if (close(a->fd) != 0 && !e) e = errno;
  a->fd = -1;
  /* Whatever appeared at the path meanwhile is checked again, so that a symlink or a device put
   * there during the save is not replaced either. */
  if (!e) {
    fm_atomic_file again;
    memcpy(again.path, a->path, sizeof again.path);
    if (check_target(&again) != FM_OK) {
      unlink(a->tmp);
      a->tmp[0] = '\0';
      return FM_ERR;
    }
  }
  if (!e && rename(a->tmp, a->path) != 0) e = errno;
  if (e) {
    unlink(a->tmp);
    a->tmp[0] = '\0';
    return fm_fail("%s: cannot write (%s)", a->path, strerror(e));
  }
  a->tmp[0] = '\0';
  sync_directory(a->path);
  return FM_OK;
}

void fm_atomic_abort(fm_atomic_file *a) {
  if (a->f) fclose(a->f);
  a->f = NULL;
  if (a->fd >= 0) close(a->fd);
  a->fd = -1;
  if (a->tmp[0]) unlink(a->tmp);
  a->tmp[0] = '\0';
}
