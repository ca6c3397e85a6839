/* test_gnuplot: the gnuplot child process. A real gnuplot answers, its errors and warnings come
 * back summarised; one that hangs is killed at the deadline with its whole process group, one
 * that exits is reaped, a cancel fd stops it at once; programs that are missing or are not
 * gnuplot give clear errors. No process is left behind: every pid is checked to be gone. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fm_error.h"
#include "fm_gnuplot.h"

static char dir[64];
static fm_gnuplot g;

/* Whether pid names a process that still runs (a zombie of someone else's counts as gone). */
static int running(pid_t pid) {
  char path[64], stat[256] = "";
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(stat, 1, sizeof stat - 1, f);
  fclose(f);
  stat[n] = '\0';
  const char *close_paren = strrchr(stat, ')');
  return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z';
}

/* Our own child, once reaped, cannot be waited for again. */
static int reaped(pid_t pid) {
  int status;
  return waitpid(pid, &status, WNOHANG) < 0 && errno == ECHILD && !running(pid);
}

static int exchange(const char *commands, double timeout) {
  fm_gnuplot_begin(&g, timeout, -1);
  fm_gnuplot_sends(&g, commands);
  return fm_gnuplot_end(&g);
}

static void test_real_gnuplot(void) {
  CHECK(fm_gnuplot_start(&g, "gnuplot", NULL, 10) == FM_OK, "gnuplot starts (%s)", fm_error());
  pid_t pid = g.pid;
  CHECK(exchange("print 'hello'\nprint 1+2\n", 10) == FM_GNUPLOT_OK &&
            strcmp(g.said, "hello\n3\n") == 0,
        "an exchange: what gnuplot printed, in order");
  char said[256];
  int only_warnings;
  CHECK(exchange("plot nope\n", 10) == FM_GNUPLOT_OK, "an error does not end the process");
  fm_gnuplot_said(&g, said, sizeof said, &only_warnings);
  CHECK(strstr(said, "undefined variable: nope") && !only_warnings,
        "an error is summarised: \"%s\"", said);
  CHECK(exchange("printerr \"line 3: Warning: odd\"\nprinterr \"warning: odder\"\n", 10) ==
            FM_GNUPLOT_OK,
        "warnings");
  size_t n = fm_gnuplot_said(&g, said, sizeof said, &only_warnings);
  CHECK(only_warnings && n == strlen(said) && strcmp(said, "Warning: odd; warning: odder") == 0,
        "only warnings, \"line N:\" dropped, joined: \"%s\"", said);
  char tiny[8];
  n = fm_gnuplot_said(&g, tiny, sizeof tiny, &only_warnings);
  CHECK(n > sizeof tiny && strlen(tiny) == sizeof tiny - 1,
        "a short buffer: cut, terminated, "
        "and the full length returned");
  /* A long command goes through the pipes without either side blocking. */
  size_t big = 1 << 20;
  char *cmd = malloc(big + 32);
  strcpy(cmd, "x = 1");
  memset(cmd + 5, ' ', big);
  strcpy(cmd + 5 + big, "\nprint x\n");
  CHECK(exchange(cmd, 30) == FM_GNUPLOT_OK && strcmp(g.said, "1\n") == 0,
        "a 1 MB command line is sent whole");
  free(cmd);
  CHECK(fm_gnuplot_running(&g) && g.pid == pid, "one process served all of it");
  fm_gnuplot_stop(&g);
  CHECK(g.pid == 0 && reaped(pid), "stop: the process is gone and reaped");
}

static void test_deadline_and_cancel(void) {
  fm_gnuplot_start(&g, "gnuplot", NULL, 10);
  pid_t pid = g.pid;
  CHECK(exchange("pause 30\n", 0.5) == FM_GNUPLOT_TIMEOUT, "a hung gnuplot misses the deadline");
  CHECK(g.pid == 0 && reaped(pid), "and is killed and reaped");

  fm_gnuplot_start(&g, "gnuplot", NULL, 10);
  pid = g.pid;
  int p[2];
  CHECK(pipe(p) == 0, "a cancel pipe");
  CHECK(write(p[1], "x", 1) == 1, "cancel requested");
  fm_gnuplot_begin(&g, 30, p[0]);
  fm_gnuplot_sends(&g, "pause 30\n");
  CHECK(fm_gnuplot_end(&g) == FM_GNUPLOT_CANCELLED, "a readable cancel fd ends the exchange");
  CHECK(g.pid == 0 && reaped(pid), "and the process is killed and reaped");
  close(p[0]);
  close(p[1]);

  fm_gnuplot_start(&g, "gnuplot", NULL, 10);
  pid = g.pid;
  CHECK(
      exchange("print 'last words'\nexit\n", 10) == FM_GNUPLOT_DEAD && strstr(g.said, "last words"),
      "gnuplot exiting mid-exchange: DEAD, and what it said is kept");
  CHECK(g.pid == 0 && reaped(pid), "the exited process is reaped");

  fm_gnuplot_start(&g, "gnuplot", NULL, 10);
  pid = g.pid;
  kill(pid, SIGKILL);
  int spins = 0;
  while (running(pid) && spins++ < 1000) usleep(1000);
  CHECK(!fm_gnuplot_running(&g) && g.pid == 0 && reaped(pid),
        "a process killed between exchanges is noticed and reaped");
  CHECK(exchange("print 1\n", 1) == FM_GNUPLOT_DEAD, "an exchange without a process: DEAD");
}

static void write_script(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  chmod(path, 0755);
}

static pid_t read_pid(const char *path) {
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
  }
  return (pid_t)pid;
}

static void test_not_gnuplot(void) {
  CHECK_FAILS(fm_gnuplot_start(&g, "/nonexistent/gnuplot", "FMNIST_GNUPLOT", 5),
              "gnuplot not found: FMNIST_GNUPLOT is '/nonexistent/gnuplot' (No such file",
              "a missing program named by the environment");
  CHECK_FAILS(fm_gnuplot_start(&g, "fmnist-no-such-gnuplot", NULL, 5),
              "gnuplot not found: install gnuplot-nox", "a missing program on PATH");
  CHECK_FAILS(fm_gnuplot_start(&g, "/bin/true", NULL, 5), "'/bin/true' does not run as gnuplot",
              "a program that exits at once");
  CHECK(g.pid == 0, "nothing left running");

  /* A program that never answers, with a child of its own: both die at the deadline. */
  char script[128], pidfile[128], text[512];
  snprintf(script, sizeof script, "%s/hang.sh", dir);
  snprintf(pidfile, sizeof pidfile, "%s/child.pid", dir);
  snprintf(text, sizeof text, "#!/bin/sh\nsleep 600 &\necho $! > '%s'\nwait\n", pidfile);
  write_script(script, text);
  CHECK_FAILS(fm_gnuplot_start(&g, script, "FMNIST_GNUPLOT", 2), "did not answer within 2 s",
              "a program that hangs");
  pid_t child = read_pid(pidfile);
  /* SIGKILL is delivered asynchronously: give the kernel a moment (up to 10 s) to finish it. */
  for (int i = 0; i < 1000 && child > 0 && running(child); i++) usleep(10000);
  CHECK(child > 0 && !running(child), "its own child (pid %ld) was killed with it", (long)child);

  /* An old gnuplot is refused by version. */
  snprintf(script, sizeof script, "%s/old.sh", dir);
  write_script(script,
               "#!/bin/sh\nwhile read line; do case $line in\n"
               "  *version*) echo 'fmnist-gnuplot-version 4.6' ;;\n"
               "  print*) echo \"$line\" | sed 's/^print \"\\(.*\\)\"$/\\1/' ;;\n"
               "esac; done\n");
  CHECK_FAILS(fm_gnuplot_start(&g, script, NULL, 5), "is version 4.6; 5.2 or newer is needed",
              "gnuplot 4.6 is refused");
  CHECK(g.pid == 0, "and stopped");
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fmnist-test-gnuplot-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  fm_gnuplot_init(&g);
  test_real_gnuplot();
  test_deadline_and_cancel();
  test_not_gnuplot();
  fm_gnuplot_stop(&g);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
  return check_done();
}
