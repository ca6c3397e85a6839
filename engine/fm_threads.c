/* fm_threads: a pool of worker threads that spin briefly, then sleep (see fm_threads.h).
 *
 * A job is published by bumping a generation counter; workers that see it run their share of the
 * items and count down `pending`; the caller runs share 0 and waits for pending to reach 0. Both
 * waits spin first (the next phase of a training step usually follows within microseconds) and
 * then block on a condition variable, re-checking under the mutex so no wake-up is lost. The pool
 * grows on demand, stops its workers when the library is unloaded, and forgets them in a forked
 * child (which has none). */
#include "fm_threads.h"

#include <pthread.h>
#include <stdatomic.h>

/* About 30-60 microseconds of polling before sleeping. */
#define SPIN_ROUNDS 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

typedef struct pool {
  pthread_mutex_t mu;           /* guards sleeping counts, worker creation, the condition vars */
  pthread_cond_t work_cv, done_cv;
  pthread_mutex_t busy;         /* held by the caller of the running job */
  int workers;                  /* started so far */
  int sleeping;                 /* workers blocked on work_cv */
  int caller_sleeping;
  int quit;
  atomic_uint gen;              /* bumped once per job */
  atomic_int pending;           /* workers that have not finished the current job */
  /* the current job */
  fm_item_fn fn;
  void *ctx;
  int items, threads;
  pthread_t tid[FM_MAX_THREADS];
  unsigned start_gen[FM_MAX_THREADS]; /* the generation a new worker has already seen */
} pool;

static pool the_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                        .work_cv = PTHREAD_COND_INITIALIZER,
                        .done_cv = PTHREAD_COND_INITIALIZER,
                        .busy = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local int inside_worker;

static void run_share(pool *p, int t) {
  for (int i = t; i < p->items; i += p->threads) p->fn(p->ctx, i);
}

static void *worker_main(void *arg) {
  pool *p = &the_pool;
  int self = (int)(long)arg; /* 1 .. workers */
  /* Not the current value: the job it was started for may already be published. */
  unsigned seen = p->start_gen[self];
  inside_worker = 1;
  for (;;) {
    int spins = 0;
    while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && spins < SPIN_ROUNDS) {
      cpu_relax();
      spins++;
    }
    if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
      pthread_mutex_lock(&p->mu);
      p->sleeping++;
      while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->quit)
        pthread_cond_wait(&p->work_cv, &p->mu);
      p->sleeping--;
      int quit = p->quit;
      pthread_mutex_unlock(&p->mu);
      if (quit) return NULL;
    }
    seen = atomic_load_explicit(&p->gen, memory_order_acquire);
    if (self < p->threads) run_share(p, self);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      if (p->caller_sleeping) pthread_cond_signal(&p->done_cv);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

/* Starts workers up to `want` (called with p->mu held). Returns how many there are. */
static int grow(pool *p, int want) {
  if (want > FM_MAX_THREADS - 1) want = FM_MAX_THREADS - 1;
  while (p->workers < want) {
    p->start_gen[p->workers + 1] = atomic_load(&p->gen);
    if (pthread_create(&p->tid[p->workers + 1], NULL, worker_main, (void *)(long)(p->workers + 1)))
      break;
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
  if (threads > workers + 1) threads = workers + 1;
  p->fn = fn;
  p->ctx = ctx;
  p->items = items;
  p->threads = threads;
  atomic_store_explicit(&p->pending, workers, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel);
  pthread_mutex_lock(&p->mu);
  if (p->sleeping) pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);

  run_share(p, 0);

  int spins = 0;
  while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0 && spins < SPIN_ROUNDS) {
    cpu_relax();
    spins++;
  }
  if (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
    pthread_mutex_lock(&p->mu);
    p->caller_sleeping = 1;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
      pthread_cond_wait(&p->done_cv, &p->mu);
    p->caller_sleeping = 0;
    pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&p->busy);
}

/* The workers run this library's code: stop them before it is unloaded (Lua closes C modules
 * with dlclose when its state closes). */
__attribute__((destructor)) static void pool_stop(void) {
  pool *p = &the_pool;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->work_cv);
  int n = p->workers;
  pthread_mutex_unlock(&p->mu);
  /* A worker busy with a job (the process is exiting from another thread) is left alone. */
  if (atomic_load(&p->pending) != 0) return;
  for (int i = 1; i <= n; i++) pthread_join(p->tid[i], NULL);
  p->workers = 0;
}

/* A forked child has only the forking thread: forget the workers. */
static void pool_after_fork(void) {
  pool *p = &the_pool;
  pthread_mutex_init(&p->mu, NULL);
  pthread_mutex_init(&p->busy, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->workers = p->sleeping = p->caller_sleeping = 0;
  atomic_store(&p->pending, 0);
}

__attribute__((constructor)) static void pool_init(void) {
  pthread_atfork(NULL, NULL, pool_after_fork);
}
