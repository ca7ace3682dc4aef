/* What the targets share: spe__fuzz_fail (a broken property) and the folder
 * for scratch files. */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

const char *spe__fuzz_scratch_base(void) {
  const char *env = getenv("SPE_FUZZ_TMP");
  if (env != NULL && env[0] != '\0') return env;
  if (access("/dev/shm", W_OK) == 0) return "/dev/shm"; /* no disk writes per input */
  env = getenv("TMPDIR");
  return env != NULL && env[0] != '\0' ? env : "/tmp";
}
