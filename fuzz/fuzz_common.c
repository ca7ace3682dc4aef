/* spe__fuzz_fail: what every target calls when a property breaks. */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void (*spe__fuzz_fail_handler)(const char *msg);

void spe__fuzz_fail(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (spe__fuzz_fail_handler != NULL) spe__fuzz_fail_handler(msg);
  fprintf(stderr, "fuzz property broken: %s\n", msg);
  abort();
}
