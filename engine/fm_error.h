/* fm_error: how the engine reports failure.
 *
 * Every engine call that can fail returns FM_OK (0) or FM_ERR (-1). On failure it leaves a message
 * naming what was wrong (file, argument, shapes) that fm_error() returns until the next failure in
 * the same thread. The engine never prints, aborts or exits on bad input. */
#ifndef FM_ERROR_H
#define FM_ERROR_H

enum { FM_OK = 0, FM_ERR = -1 };

/* Formats the message of the current failure and returns FM_ERR, so that `return fm_fail(...)` reads
 * naturally. */
int fm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message of the last failure in this thread ("" if none). */
const char *fm_error(void);

#endif
