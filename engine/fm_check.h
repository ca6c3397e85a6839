/* fm_check: overflow-checked size arithmetic and debug-only assertions, for every part of the
 * engine that computes sizes from a caller's specs or a file.
 *
 * Two different things, kept apart as SQLite keeps them:
 *  - what a user or a file can get wrong (a layer too large, a product that would wrap) is an
 *    error: compute the size with fm_mul_within / fm_add_within against a named limit and fail
 *    with a message naming the layer and the numbers (fm_error.h);
 *  - what cannot happen unless the engine itself is wrong (a workspace offset outside its area, a
 *    shard range outside the batch, a layer whose input is not its predecessor's output) is an
 *    FM_ASSERT. Assertions are compiled in only with -DFM_DEBUG (the SANITIZE=1 build), where a
 *    failure prints the condition and its place and aborts; otherwise they cost nothing and their
 *    condition is not evaluated. Never use FM_ASSERT for bad input. */
#ifndef FM_CHECK_H
#define FM_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Sizes are computed in 64 bits; a size_t narrower than that would break the limits' reasoning. */
_Static_assert(sizeof(size_t) >= 8, "the engine's size limits assume a 64-bit size_t");

/* a * b for a, b >= 0: 1 with *out set when the product is at most limit, 0 (and *out untouched)
 * when it would exceed limit or 64 bits. A negative operand also gives 0. */
static inline int fm_mul_within(int64_t a, int64_t b, int64_t limit, int64_t *out) {
  int64_t p;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &p) || p > limit) return 0;
  *out = p;
  return 1;
}

/* a + b for a, b >= 0, the same way. */
static inline int fm_add_within(int64_t a, int64_t b, int64_t limit, int64_t *out) {
  int64_t s;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &s) || s > limit) return 0;
  *out = s;
  return 1;
}

#ifdef FM_DEBUG
static inline void fm_assert_fail(const char *cond, const char *file, int line, const char *func) {
  fprintf(stderr, "%s:%d: %s: internal assertion failed: %s\n", file, line, func, cond);
  fflush(stderr);
  abort();
}
#define FM_ASSERT(cond) ((cond) ? (void)0 : fm_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
/* Not evaluated, but still compiled: variables used only in assertions stay "used". */
#define FM_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif
