/* fm_error: a per-thread message buffer for the last failure. */
#include "fm_error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

int fm_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return FM_ERR;
}

const char *fm_error(void) { return last_error; }
