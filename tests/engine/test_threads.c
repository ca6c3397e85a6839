/* test_threads: the engine's thread pool runs every item exactly once, whatever the thread count
 * (0, 1, more than items, more than FM_MAX_THREADS), from inside an item, and when no thread can be
 * started at all (an address-space limit in a child process leaves no room for a thread's stack):
 * then the caller runs everything itself and returns, instead of waiting for workers that do
 * not exist. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fm_threads.h"

#define SKIP(...)                                                                                  \
  do {                                                                                             \
    printf("ok %d # SKIP ", ++check_count);                                                        \
    printf(__VA_ARGS__);                                                                           \
    printf("\n");                                                                                  \
  } while (0)

#define ITEMS 1000

typedef struct counts {
  atomic_int hits[ITEMS];
  atomic_int nested;
} counts;

static void count_item(void *ctx, int item) {
  counts *c = ctx;
  atomic_fetch_add(&c->hits[item], 1);
}

/* Each of the first few items starts a parallel loop of its own. */
static void nested_item(void *ctx, int item) {
  counts *c = ctx;
  if (item < 4) {
    counts inner;
    memset(&inner, 0, sizeof inner);
    fm_parallel_for(4, 50, count_item, &inner);
    int all = 1;
    for (int i = 0; i < 50; i++) all &= atomic_load(&inner.hits[i]) == 1;
    if (all) atomic_fetch_add(&c->nested, 1);
  }
  atomic_fetch_add(&c->hits[item], 1);
}

/* 1 when items 0..n-1 ran once each and the rest not at all. */
static int each_once(counts *c, int n) {
  for (int i = 0; i < ITEMS; i++)
    if (atomic_load(&c->hits[i]) != (i < n ? 1 : 0)) return 0;
  return 1;
}

static int run(int threads, int items, fm_item_fn fn, counts *c) {
  memset(c, 0, sizeof *c);
  fm_parallel_for(threads, items, fn, c);
  return each_once(c, items > 0 ? items : 0);
}

#if !defined(__SANITIZE_ADDRESS__)
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void *wait_at_gate(void *arg) {
  pthread_mutex_lock(&gate);
  pthread_mutex_unlock(&gate);
  return arg;
}

/* The address space in use now, in bytes (VmSize). */
static long vm_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %ld", &kb) == 1) break;
  if (f) fclose(f);
  return kb * 1024;
}
#endif

static void test_no_threads_can_start(void) {
#if defined(__SANITIZE_ADDRESS__)
  SKIP("an address-space limit cannot apply to an AddressSanitizer build");
#else
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    /* A forked child has no workers; with 1 MB of address space to spare none can be started. */
    long now = vm_bytes();
    struct rlimit lim = {.rlim_cur = (rlim_t)now + (1 << 20), .rlim_max = (rlim_t)now + (1 << 20)};
    if (now <= 0 || setrlimit(RLIMIT_AS, &lim) != 0) _exit(3);
    /* glibc keeps the stacks of finished threads (the parent's included) and reuses them without
     * asking for address space: threads that wait on `gate` use them up until creating one fails. */
    pthread_mutex_lock(&gate);
    pthread_t blockers[64];
    int n = 0;
    while (n < 64 && pthread_create(&blockers[n], NULL, wait_at_gate, NULL) == 0) n++;
    if (n == 64) _exit(4); /* the limit did not bite */
    static counts c;
    int ok = run(8, ITEMS, count_item, &c) && run(3, 7, count_item, &c);
    pthread_mutex_unlock(&gate);
    for (int i = 0; i < n; i++) pthread_join(blockers[i], NULL);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "no thread can start: the caller runs every item once and returns (child status %d)",
        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
#endif
}

int main(void) {
  static counts c;
  CHECK(run(4, ITEMS, count_item, &c), "4 threads, 1000 items: each once");
  CHECK(run(1, ITEMS, count_item, &c), "1 thread");
  CHECK(run(0, 5, count_item, &c), "0 threads runs on the caller");
  CHECK(run(-3, 5, count_item, &c), "a negative thread count runs on the caller");
  CHECK(run(8, 3, count_item, &c), "more threads than items");
  CHECK(run(1000, ITEMS, count_item, &c), "more threads than FM_MAX_THREADS");
  CHECK(run(4, 0, count_item, &c), "no items");
  CHECK(run(4, -1, count_item, &c), "a negative item count");
  CHECK(run(4, 64, nested_item, &c) && atomic_load(&c.nested) == 4,
        "a parallel loop inside an item runs (on its caller) without waiting on the pool");
  test_no_threads_can_start();
  CHECK(run(4, ITEMS, count_item, &c), "the pool still works afterwards");
  return check_done();
}
