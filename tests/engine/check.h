/* check.h: the engine tests' tiny harness. Each CHECK prints one TAP line ("ok N - what" or
 * "not ok N - what"); check_done() prints the plan and returns the exit status. tests/run.sh adds the
 * lines of every test program up into the suite's summary. */
#ifndef CHECK_H
#define CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_count, check_failed;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    int check_ok_ = (cond) ? 1 : 0;                                                                \
    check_count++;                                                                                 \
    if (!check_ok_) check_failed++;                                                                \
    printf("%sok %d - ", check_ok_ ? "" : "not ", check_count);                                    \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
    if (!check_ok_) printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
    fflush(stdout);                                                                                \
  } while (0)

/* Close enough for float32 arithmetic. */
#define CHECK_NEAR(a, b, tol, ...) CHECK(fabs((double)(a) - (double)(b)) <= (tol), __VA_ARGS__)

/* An engine call must fail and its message must contain `needle`. */
#define CHECK_FAILS(call, needle, ...)                                                             \
  do {                                                                                             \
    int check_rc_ = (call);                                                                        \
    const char *check_msg_ = fm_error();                                                           \
    CHECK(check_rc_ != 0 && strstr(check_msg_, (needle)) != NULL, __VA_ARGS__);                    \
    if (check_rc_ == 0 || !strstr(check_msg_, (needle)))                                           \
      printf("#   expected an error containing \"%s\", got rc=%d \"%s\"\n", (needle), check_rc_,     \
             check_msg_);                                                                          \
  } while (0)

static inline int check_done(void) {
  printf("1..%d\n", check_count);
  return check_failed ? 1 : 0;
}

#endif
