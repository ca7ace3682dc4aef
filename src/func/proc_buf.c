/* The growable byte buffer of process isolation's frames (proc_protocol.h). */
#include "func/proc_protocol.h"

#include <stdlib.h>
#include <string.h>

/* A buffer that grew beyond this is released after use rather than kept. */
#define PBUF_KEEP ((size_t)1 << 20)

int spe__pbuf_reserve(struct pbuf *b, size_t more) {
  if (more <= b->cap - b->len) return 0;
  if (more > SIZE_MAX / 2 - b->len) return -1;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more) cap *= 2;
  char *p = realloc(b->data, cap);
  if (p == NULL) return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int spe__pbuf_append(struct pbuf *b, const void *p, size_t n) {
  if (spe__pbuf_reserve(b, n) != 0) return -1;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int spe__pbuf_dump_cb(const char *p, size_t n, void *data) {
  return spe__pbuf_append(data, p, n);
}

void spe__pbuf_reset(struct pbuf *b) {
  b->len = 0;
  if (b->cap > PBUF_KEEP) spe__pbuf_free(b);
}

void spe__pbuf_free(struct pbuf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
