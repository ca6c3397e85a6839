/* test_file: saving through fm_file, for real, in a temporary directory: new files get 0666 less
 * the umask; an existing file keeps its mode (0600, 0755) and, for root, its owner; a symlink, a
 * FIFO, /dev/null, a directory and a socket at the path are refused naming what they are and left
 * as they were; a read-only file is not replaced; a write that fails halfway (a file size limit,
 * standing in for a full disk) or an abort leaves the old bytes; something put at the path during
 * the save is noticed at commit; and no temporary file is ever left behind. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fm_error.h"
#include "fm_file.h"

/* A check that cannot run here: TAP's "ok N # SKIP reason". */
#define SKIP(...)                                                                                  \
  do {                                                                                             \
    printf("ok %d # SKIP ", ++check_count);                                                        \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
  } while (0)

static char tmpdir[256];

static const char *tpath(const char *name) {
  static char bufs[8][512];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
  return b;
}

static void write_file(const char *path, const char *data) {
  FILE *f = fopen(path, "wb");
  if (!f || fputs(data, f) < 0 || fclose(f) != 0) {
    printf("Bail out! cannot write %s\n", path);
    exit(1);
  }
}

/* The whole file as a string ("" when it cannot be read). */
static const char *read_file(const char *path) {
  static char buf[4096];
  buf[0] = '\0';
  FILE *f = fopen(path, "rb");
  if (!f) return buf;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Saves data to path through fm_file; FM_OK or FM_ERR with fm_error() set. */
static int save(const char *path, const char *data) {
  fm_atomic_file a;
  if (fm_atomic_begin(&a, path) != FM_OK) return FM_ERR;
  fputs(data, a.f);
  return fm_atomic_commit(&a);
}

static mode_t mode_of(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 ? st.st_mode : 0;
}

/* Names in dir that look like one of fm_file's temporary files. */
static int temp_files_in(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".tmp")) {
      printf("#   left behind: %s/%s\n", dir, e->d_name);
      n++;
    }
  closedir(d);
  return n;
}

static void test_new_and_replaced(void) {
  const char *p = tpath("new.bin");
  CHECK(save(p, "first") == FM_OK && strcmp(read_file(p), "first") == 0, "a new file is written");
  CHECK((mode_of(p) & 07777) == 0644, "a new file gets 0666 less the umask 022 (got %o)",
        (unsigned)(mode_of(p) & 07777));
  CHECK(save(p, "second") == FM_OK && strcmp(read_file(p), "second") == 0,
        "an existing file is replaced");

  const char *priv = tpath("private.bin");
  write_file(priv, "old");
  chmod(priv, 0600);
  CHECK(save(priv, "new") == FM_OK && strcmp(read_file(priv), "new") == 0, "a 0600 file is replaced");
  CHECK((mode_of(priv) & 07777) == 0600, "a 0600 file stays 0600 (got %o)",
        (unsigned)(mode_of(priv) & 07777));

  const char *exe = tpath("script.sh");
  write_file(exe, "#!/bin/sh\n");
  chmod(exe, 0755);
  CHECK(save(exe, "#!/bin/sh\nexit 0\n") == FM_OK, "a 0755 file is replaced");
  CHECK((mode_of(exe) & 07777) == 0755, "a 0755 file stays 0755 (got %o)",
        (unsigned)(mode_of(exe) & 07777));

  const char *odd = tpath("odd.bin");
  write_file(odd, "x");
  chmod(odd, 0640);
  umask(077);
  CHECK(save(odd, "y") == FM_OK && (mode_of(odd) & 07777) == 0640,
        "an existing file's mode wins over the umask (got %o)", (unsigned)(mode_of(odd) & 07777));
  umask(022);
}

static void test_owner_kept(void) {
  if (geteuid() != 0) {
    SKIP("owner and group are kept only when saving as root");
    return;
  }
  const char *p = tpath("owned.bin");
  write_file(p, "old");
  if (chown(p, 1234, 5678) != 0) {
    SKIP("chown is not permitted here (%s)", strerror(errno));
    return;
  }
  chmod(p, 0640);
  struct stat st;
  CHECK(save(p, "new") == FM_OK && stat(p, &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678 &&
            (st.st_mode & 07777) == 0640,
        "root keeps the owner, group and mode of the file it replaces");
}

/* /dev/null as the target. The save runs in a child that gives up root first: if fm_file ever
 * stopped refusing devices, an unprivileged child could not replace /dev/null (it cannot write
 * in /dev), so the check cannot break the machine it runs on. */
static void test_dev_null(void) {
  int fds[2];
  if (pipe(fds) != 0) printf("Bail out! pipe: %s\n", strerror(errno));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    const char *msg = save("/dev/null", "x") == FM_OK ? "(the save succeeded)" : fm_error();
    if (write(fds[1], msg, strlen(msg)) < 0) _exit(4);
    _exit(0);
  }
  close(fds[1]);
  char msg[1024];
  ssize_t n = read(fds[0], msg, sizeof msg - 1);
  msg[n > 0 ? n : 0] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
            strstr(msg, "/dev/null: is a character device, not a regular file"),
        "/dev/null is refused: %s", msg);
  CHECK(S_ISCHR(mode_of("/dev/null")), "/dev/null is still a character device");
}

static void test_refused(void) {
  /* A symbolic link to a file: neither the link nor its target changes. */
  const char *target = tpath("target.bin"), *link = tpath("link.bin");
  write_file(target, "target bytes");
  if (symlink(target, link) != 0) printf("Bail out! symlink: %s\n", strerror(errno));
  CHECK_FAILS(save(link, "new"), "is a symbolic link", "a symlink at the path is refused");
  CHECK(strstr(fm_error(), link) != NULL, "the message names the path: %s", fm_error());
  CHECK(S_ISLNK(mode_of(link)) && strcmp(read_file(target), "target bytes") == 0,
        "the symlink and its target are left as they were");
  const char *dangling = tpath("dangling.bin");
  if (symlink(tpath("nowhere"), dangling) != 0) printf("Bail out! symlink: %s\n", strerror(errno));
  CHECK_FAILS(save(dangling, "new"), "is a symbolic link", "a dangling symlink is refused");
  CHECK(mode_of(tpath("nowhere")) == 0, "nothing is created where the dangling link points");

  const char *fifo = tpath("fifo");
  if (mkfifo(fifo, 0644) != 0) printf("Bail out! mkfifo: %s\n", strerror(errno));
  CHECK_FAILS(save(fifo, "x"), "is a FIFO (named pipe), not a regular file", "a FIFO is refused");
  CHECK(S_ISFIFO(mode_of(fifo)), "the FIFO is still a FIFO");

  test_dev_null();
  /* As root, a device node of our own, so that the privileged path is checked too. */
  const char *node = tpath("null-node");
  if (geteuid() != 0 || mknod(node, S_IFCHR | 0666, makedev(1, 3)) != 0) {
    SKIP("a device node can only be made by root (%s)", strerror(errno));
  } else {
    CHECK_FAILS(save(node, "x"), "null-node: is a character device, not a regular file",
                "root is refused a device node too");
    CHECK(S_ISCHR(mode_of(node)), "the device node is still a device node");
  }

  const char *dir = tpath("dir");
  mkdir(dir, 0755);
  CHECK_FAILS(save(dir, "x"), "is a directory, not a regular file", "a directory is refused");
  CHECK(S_ISDIR(mode_of(dir)) && temp_files_in(dir) == 0, "the directory is left as it was");

  const char *sock = tpath("sock");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    SKIP("cannot make a socket in %s (%s)", tmpdir, strerror(errno));
  } else {
    CHECK_FAILS(save(sock, "x"), "is a socket, not a regular file", "a socket is refused");
    CHECK(S_ISSOCK(mode_of(sock)), "the socket is still a socket");
  }
  if (fd >= 0) close(fd);

  CHECK_FAILS(save(tpath("no-such-dir/x.bin"), "x"), "No such file or directory",
              "a missing directory fails with the system's reason");
  CHECK_FAILS(save("", "x"), "empty name", "an empty path is refused");
}

/* A file without write permission is not replaced, as cp or the shell's > would refuse to write
 * it. Root may write anything, so the check runs in a child that gives up root when it has it. */
static void test_read_only(void) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    char dir[] = "/tmp/fm-file-ro-XXXXXX";
    if (!mkdtemp(dir)) _exit(4);
    char path[300];
    snprintf(path, sizeof path, "%s/ro.bin", dir);
    write_file(path, "keep me");
    chmod(path, 0444);
    int rc = save(path, "new");
    int ok = rc == FM_ERR && strstr(fm_error(), "Permission denied") &&
             strcmp(read_file(path), "keep me") == 0 && temp_files_in(dir) == 0;
    unlink(path);
    rmdir(dir);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "a read-only file is not replaced (Permission denied), old bytes kept (child status %d)",
        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* A write that fails halfway: RLIMIT_FSIZE stands in for a full disk (write returns EFBIG once
 * SIGXFSZ is ignored). Runs in a child so that the limit does not outlive the check. */
static void test_failed_write(void) {
  const char *p = tpath("full.bin");
  write_file(p, "the old contents");
  /* The child's message comes back through a pipe: the limit would stop it writing to a log file. */
  int fds[2];
  if (pipe(fds) != 0) printf("Bail out! pipe: %s\n", strerror(errno));
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 1000, .rlim_max = 1000};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(3);
    fm_atomic_file a;
    if (fm_atomic_begin(&a, p) != FM_OK) _exit(4);
    for (int i = 0; i < 5000; i++) fputc('x', a.f);
    int rc = fm_atomic_commit(&a);
    const char *msg = rc == FM_OK ? "(the save succeeded)" : fm_error();
    if (write(fds[1], msg, strlen(msg)) < 0) _exit(5);
    _exit(0);
  }
  close(fds[1]);
  char msg[1024];
  ssize_t n = read(fds[0], msg, sizeof msg - 1);
  msg[n > 0 ? n : 0] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(msg, p) &&
            strstr(msg, "cannot write (File too large)"),
        "a write over the file size limit fails naming the path and the reason: %s", msg);
  CHECK(strcmp(read_file(p), "the old contents") == 0, "the old file's bytes are intact");
  CHECK(temp_files_in(tmpdir) == 0, "no temporary file is left after the failed write");

  fm_atomic_file a;
  CHECK(fm_atomic_begin(&a, p) == FM_OK, "begin again");
  fputs("half of something", a.f);
  fm_atomic_abort(&a);
  fm_atomic_abort(&a);
  CHECK(strcmp(read_file(p), "the old contents") == 0 && temp_files_in(tmpdir) == 0,
        "an aborted save (twice) keeps the old bytes and leaves no temporary file");
}

/* A symlink put at the path while the file is being written is not replaced at commit. */
static void test_changed_during_save(void) {
  const char *p = tpath("raced.bin"), *target = tpath("raced-target.bin");
  write_file(p, "old");
  write_file(target, "target");
  fm_atomic_file a;
  CHECK(fm_atomic_begin(&a, p) == FM_OK, "begin on a regular file");
  fputs("new", a.f);
  unlink(p);
  if (symlink(target, p) != 0) printf("Bail out! symlink: %s\n", strerror(errno));
  CHECK_FAILS(fm_atomic_commit(&a), "is a symbolic link", "commit notices a symlink put there meanwhile");
  CHECK(S_ISLNK(mode_of(p)) && strcmp(read_file(target), "target") == 0 && temp_files_in(tmpdir) == 0,
        "the symlink and its target are untouched and the temporary file is gone");
}

/* Another process (gnuplot drawing a figure) may write the temporary file by name between begin
 * and commit: it truncates the same file, which commit then fsyncs, gives its mode and renames. */
static void test_written_by_another_process(void) {
  const char *p = tpath("figure.txt");
  write_file(p, "old figure");
  chmod(p, 0600);
  fm_atomic_file a;
  CHECK(fm_atomic_begin(&a, p) == FM_OK, "begin a save for another process");
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "printf 'drawn by sh' > '%s'", a.tmp);
  int rc = system(cmd);
  CHECK(rc == 0 && fm_atomic_commit(&a) == FM_OK && strcmp(read_file(p), "drawn by sh") == 0 &&
            (mode_of(p) & 07777) == 0600 && temp_files_in(tmpdir) == 0,
        "what another process wrote to the temporary file is renamed into place with the old mode");
}

static int remove_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

int main(void) {
  umask(022);
  snprintf(tmpdir, sizeof tmpdir, "%s/fm-file-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    printf("Bail out! mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  test_new_and_replaced();
  test_owner_kept();
  test_refused();
  test_read_only();
  test_failed_write();
  test_changed_during_save();
  test_written_by_another_process();
  CHECK(temp_files_in(tmpdir) == 0, "no temporary file is left anywhere");
  remove_tree(tmpdir);
  return check_done();
}
