#include "base/msg.h"

#include <stdio.h>
#include <stdlib.h>

char *spe__msg_newv(const char *fmt, va_list ap) {
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) return NULL;
  return s;
}

char *spe__msg_new(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = spe__msg_newv(fmt, ap);
  va_end(ap);
  return s;
}

void spe__msg_set(char **out, const char *fmt, ...) {
  if (out == NULL) return;
  free(*out);
  va_list ap;
  va_start(ap, fmt);
  *out = spe__msg_newv(fmt, ap);
  va_end(ap);
}

void spe__msg_give(char **out, char *msg) {
  if (out == NULL) {
    free(msg);
    return;
  }
  free(*out);
  *out = msg;
}
