/* fm_threads: the engine's own small thread pool for the network's parallel phases.
 *
 * Why not OpenMP's: libgomp's idle threads spin for a long time before sleeping, and a library
 * cannot change that (OMP_WAIT_POLICY is read when libgomp loads). On a machine whose cores are
 * also busy with other work, a spinning thread takes the CPU from the thread that is working: on
 * two shared cores a training step measured 27 times slower than on one thread. These workers
 * spin for a few tens of microseconds (enough to catch the next phase of a step) and then sleep
 * on a condition variable.
 *
 * fm_parallel_for runs fn(ctx, i) for every item i < items on up to `threads` threads (the caller
 * works too) and returns when all are done. Threads claim items as they come, so a thread that
 * another process delays does not hold the others up: its items are taken by whoever is running.
 * Items must therefore not depend on each other or on the thread that runs them (none of the
 * engine's results do). A call made while the pool is busy (from another thread, or from inside
 * an item) runs its items on the calling thread. */
#ifndef FM_THREADS_H
#define FM_THREADS_H

#define FM_MAX_THREADS 64

typedef void (*fm_item_fn)(void *ctx, int item);

void fm_parallel_for(int threads, int items, fm_item_fn fn, void *ctx);

#endif
