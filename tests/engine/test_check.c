/* test_check: the checked size arithmetic of fm_check.h at the edges of 64 bits, and FM_ASSERT:
 * compiled out (its condition never evaluated) in the normal build, and in the -DFM_DEBUG build
 * (make SANITIZE=1) an abort that names the condition and its place, also for the engine's own
 * invariants (a network whose layout was corrupted behind the engine's back). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fm_check.h"
#include "fm_error.h"
#include "fm_net.h"

static void test_arithmetic(void) {
  int64_t r = -7;
  CHECK(fm_mul_within(1 << 20, 1 << 20, INT64_MAX, &r) && r == (int64_t)1 << 40,
        "mul: 2^20 * 2^20 = 2^40");
  r = -7;
  CHECK(!fm_mul_within(INT64_MAX / 2 + 1, 2, INT64_MAX, &r) && r == -7,
        "mul: a product past 2^63 fails and leaves the result alone");
  CHECK(!fm_mul_within((int64_t)1 << 32, (int64_t)1 << 32, INT64_MAX, &r), "mul: 2^32 * 2^32 fails");
  CHECK(fm_mul_within(1 << 14, 1 << 14, 1 << 28, &r) && r == 1 << 28 &&
            !fm_mul_within((1 << 14) + 1, 1 << 14, 1 << 28, &r),
        "mul: the limit itself is within, one more is not");
  CHECK(!fm_mul_within(-1, 5, INT64_MAX, &r) && !fm_mul_within(5, -1, INT64_MAX, &r),
        "mul: a negative operand fails");
  CHECK(fm_mul_within(0, INT64_MAX, 0, &r) && r == 0, "mul: zero times anything is 0");
  CHECK(fm_add_within(INT64_MAX - 1, 1, INT64_MAX, &r) && r == INT64_MAX &&
            !fm_add_within(INT64_MAX, 1, INT64_MAX, &r),
        "add: up to 2^63 - 1, not past it");
  CHECK(!fm_add_within(10, 1, 10, &r) && !fm_add_within(-1, 1, 10, &r),
        "add: over the limit or negative fails");
}

#ifdef FM_DEBUG
/* Runs f in a child; returns its exit signal (0 when it exited normally) and its stderr in err. */
static int in_child(void (*f)(void), char *err, size_t size) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    f();
    _exit(0);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t k;
  while (got + 1 < size && (k = read(fds[0], err + got, size - 1 - got)) > 0) got += (size_t)k;
  err[got] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void assert_false(void) { FM_ASSERT(1 + 1 == 3); }

/* A reference-like network whose second layer's output was moved outside the activation area:
 * only an engine bug could do this, and the debug build must catch it before memory is touched. */
static void corrupted_forward(void) {
  fm_layer_spec specs[] = {{.kind = FM_LAYER_DENSE, .units = 8}, {.kind = FM_LAYER_RELU},
                           {.kind = FM_LAYER_DENSE, .units = 4}};
  fm_net net;
  static fm_layer layers[3];
  if (fm_net_build(&net, layers, 2, 2, 1, specs, 3) != FM_OK) return;
  static float params[64], x[4];
  fm_net_bind(&net, params, NULL, NULL);
  size_t bytes = fm_work_bytes(&net, 1, 1);
  void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
  fm_work w;
  if (fm_work_init(&w, &net, 1, 1, mem, bytes) != FM_OK) return;
  net.layer[2].act_offset = net.act_floats; /* past the end */
  fm_net_forward(&net, &w, x, 1, 0, 0);
  free(mem);
}
#endif

static void test_assertions(void) {
  int evaluated = 0;
  FM_ASSERT(++evaluated == 1);
#ifdef FM_DEBUG
  CHECK(evaluated == 1, "FM_DEBUG: an assertion's condition is evaluated");
  char err[1024];
  int sig = in_child(assert_false, err, sizeof err);
  CHECK(sig == SIGABRT && strstr(err, "test_check.c") &&
            strstr(err, "internal assertion failed: 1 + 1 == 3"),
        "FM_DEBUG: a false assertion aborts naming the condition and its place (signal %d: %s)",
        sig, err);
  sig = in_child(corrupted_forward, err, sizeof err);
  CHECK(sig == SIGABRT && strstr(err, "fm_net.c") && strstr(err, "act_floats"),
        "FM_DEBUG: a layer output outside the activations is caught in the pass (signal %d: %s)",
        sig, err);
#else
  CHECK(evaluated == 0, "without FM_DEBUG an assertion's condition is not evaluated");
  FM_ASSERT(1 + 1 == 3);
  CHECK(1, "without FM_DEBUG a false assertion does nothing");
  printf("ok %d # SKIP the engine's assertions are compiled in only with -DFM_DEBUG (make SANITIZE=1)\n",
         ++check_count);
#endif
}

int main(void) {
  test_arithmetic();
  test_assertions();
  return check_done();
}
