#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void spe__log(const struct logger *lg, int level, const char *fmt, ...) {
  if (!spe__log_enabled(lg, level)) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < (int)sizeof buf) {
    lg->fn(lg->ctx, level, buf);
    return;
  }
  /* Longer than the stack buffer: format again into the heap. */
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    lg->fn(lg->ctx, level, buf); /* truncated is better than nothing */
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  lg->fn(lg->ctx, level, big);
  free(big);
}
