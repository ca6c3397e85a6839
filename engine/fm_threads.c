/* fm_threads: a pool of worker threads that spin briefly, then sleep (see fm_threads.h).
 *
 * The items of a job are spread over SLOTS slots (item i in slot i % SLOTS), and a job is one
 * 64-bit word: generation (32 bits) and a mask of claimed slots (32; slots past the item count
 * start claimed). Every participant, the caller included, claims slots with a compare-and-swap on
 * that word: first its own (the caller slot 0, worker k slot k, so a shard's data stays in one
 * core's cache from step to step), then any left, so when a worker is slow to wake (another
 * process has its core) the running threads take its slot instead of waiting a whole scheduler
 * time slice for it. A claim only succeeds while the job has unclaimed slots, and the caller
 * publishes the next job only after every slot of this one is finished, so whoever holds a claim
 * reads this job's function, context and counts. Both kinds of waiting spin first (the next phase of a training step usually comes
 * within microseconds) and then block on a condition variable, re-checking under the mutex so no
 * wake-up is lost. The pool grows on demand, stops its workers when the library is unloaded, and
 * forgets them in a forked child (which has none). */
#include "fm_threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* Polling time before sleeping: longer than the gaps between the phases of a training step.
 * Waking a sleeping thread costs tens to hundreds of microseconds (more on a virtual machine,
 * whose idle virtual CPU must be rescheduled), long enough for the other threads to take its
 * slot and its shard's data to another core's cache. */
#define SPIN_NS 500000
#define SLOTS 32

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

typedef struct pool pool_t;

typedef struct pool {
  pthread_mutex_t mu;           /* guards the sleeping flags, worker creation, condition vars */
  pthread_cond_t work_cv, done_cv;
  pthread_mutex_t busy;         /* held by the caller of the running job */
  int workers;                  /* started so far */
  int sleeping;                 /* workers blocked on work_cv */
  int caller_sleeping;
  int quit;
  _Atomic uint64_t job;         /* generation << 32 | claimed slots */
  atomic_int done;              /* slots of the current job finished */
  fm_item_fn fn;                /* the current job, valid while it has unfinished slots */
  void *ctx;
  int items, slots;
  pthread_t tid[FM_MAX_THREADS];
  uint32_t start_gen[FM_MAX_THREADS]; /* the generation a new worker has already seen */
} pool;

static pool the_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                        .work_cv = PTHREAD_COND_INITIALIZER,
                        .done_cv = PTHREAD_COND_INITIALIZER,
                        .busy = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local int inside_worker;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Polls until cond(arg) or SPIN_NS have passed; returns cond's last value. */
static int spin_until(int (*cond)(pool_t *, uintptr_t), pool_t *p, uintptr_t arg) {
  int64_t start = now_ns();
  for (int i = 1;; i++) {
    if (cond(p, arg)) return 1;
    cpu_relax();
    if ((i & 63) == 0 && now_ns() - start > SPIN_NS) return cond(p, arg);
  }
}


static uint32_t job_gen(uint64_t j) { return (uint32_t)(j >> 32); }

/* Claims a slot of the current job, `prefer` if it is free: its index, or -1 when none is left. */
static int claim(pool *p, int prefer) {
  uint64_t j = atomic_load_explicit(&p->job, memory_order_acquire);
  for (;;) {
    uint32_t free_slots = ~(uint32_t)j;
    if (!free_slots) return -1;
    int slot = prefer < SLOTS && (free_slots >> prefer & 1) ? prefer : __builtin_ctz(free_slots);
    if (atomic_compare_exchange_weak_explicit(&p->job, &j, j | (uint64_t)1 << slot,
                                              memory_order_acq_rel, memory_order_acquire))
      return slot;
  }
}

/* Runs claimed slots until none is left. The last one to finish wakes a sleeping caller. */
static void work(pool *p, int prefer) {
  int slot;
  while ((slot = claim(p, prefer)) >= 0) {
    int slots = p->slots;
    for (int i = slot; i < p->items; i += SLOTS) p->fn(p->ctx, i);
    if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == slots) {
      pthread_mutex_lock(&p->mu);
      if (p->caller_sleeping) pthread_cond_signal(&p->done_cv);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

static int new_job(pool_t *p, uintptr_t seen) {
  return job_gen(atomic_load_explicit(&p->job, memory_order_acquire)) != (uint32_t)seen;
}

static int all_done(pool_t *p, uintptr_t slots) {
  return atomic_load_explicit(&p->done, memory_order_acquire) == (int)slots;
}

static void *worker_main(void *arg) {
  pool *p = &the_pool;
  int self = (int)(long)arg;
  /* Not the current value: the job it was started for may already be published. */
  uint32_t seen = p->start_gen[self];
  inside_worker = 1;
  for (;;) {
    if (!spin_until(new_job, p, seen)) {
      pthread_mutex_lock(&p->mu);
      p->sleeping++;
      while (job_gen(atomic_load_explicit(&p->job, memory_order_acquire)) == seen && !p->quit)
        pthread_cond_wait(&p->work_cv, &p->mu);
      p->sleeping--;
      int quit = p->quit;
      pthread_mutex_unlock(&p->mu);
      if (quit) return NULL;
    }
    seen = job_gen(atomic_load_explicit(&p->job, memory_order_acquire));
    work(p, self);
  }
}

/* Starts workers up to `want` (called with p->mu held). Returns how many there are. */
static int grow(pool *p, int want) {
  if (want > FM_MAX_THREADS - 1) want = FM_MAX_THREADS - 1;
  while (p->workers < want) {
    int id = p->workers + 1;
    p->start_gen[id] = job_gen(atomic_load(&p->job));
    if (pthread_create(&p->tid[id], NULL, worker_main, (void *)(long)id)) break;
    p->workers++;
  }
  return p->workers;
}

void fm_parallel_for(int threads, int items, fm_item_fn fn, void *ctx) {
  pool *p = &the_pool;
  if (threads > items) threads = items;
  if (threads <= 1 || inside_worker || pthread_mutex_trylock(&p->busy) != 0) {
    for (int i = 0; i < items; i++) fn(ctx, i);
    return;
  }
  pthread_mutex_lock(&p->mu);
  int workers = grow(p, threads - 1);
  pthread_mutex_unlock(&p->mu);
  if (workers == 0) {
    pthread_mutex_unlock(&p->busy);
    for (int i = 0; i < items; i++) fn(ctx, i);
    return;
  }
  int slots = items < SLOTS ? items : SLOTS;
  p->fn = fn;
  p->ctx = ctx;
  p->items = items;
  p->slots = slots;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  uint32_t gen = job_gen(atomic_load(&p->job)) + 1;
  uint32_t claimed = slots == SLOTS ? 0 : ~((1u << slots) - 1);
  atomic_store_explicit(&p->job, (uint64_t)gen << 32 | claimed, memory_order_release);
  pthread_mutex_lock(&p->mu);
  if (p->sleeping) pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);

  work(p, 0);

  if (!spin_until(all_done, p, (uintptr_t)slots)) {
    pthread_mutex_lock(&p->mu);
    p->caller_sleeping = 1;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != slots)
      pthread_cond_wait(&p->done_cv, &p->mu);
    p->caller_sleeping = 0;
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&p->busy);
}

/* The workers run this library's code: stop them before it is unloaded (Lua closes C modules
 * with dlclose when its state closes). Between jobs a worker only waits, so it can be joined. */
__attribute__((destructor)) static void pool_stop(void) {
  pool *p = &the_pool;
  if (pthread_mutex_trylock(&p->busy) != 0) return; /* exiting in the middle of a job */
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->work_cv);
  int n = p->workers;
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i <= n; i++) pthread_join(p->tid[i], NULL);
  p->workers = 0;
  pthread_mutex_unlock(&p->busy);
}

/* A forked child has only the forking thread: forget the workers. */
static void pool_after_fork(void) {
  pool *p = &the_pool;
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->busy, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->workers = p->sleeping = p->caller_sleeping = 0;
}

__attribute__((constructor)) static void pool_init(void) {
  pthread_atfork(NULL, NULL, pool_after_fork);
}
