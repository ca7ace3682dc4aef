#include "base/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A buffer that grew beyond this is released by a reset rather than kept. */
#define BUF_KEEP ((size_t)1 << 20)

int spe__buf_reserve(struct spe_buf *b, size_t more) {
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

int spe__buf_append(struct spe_buf *b, const void *p, size_t n) {
  if (spe__buf_reserve(b, n) != 0) return -1;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int spe__buf_dump_cb(const char *p, size_t n, void *data) {
  return spe__buf_append(data, p, n);
}

void spe__buf_reset(struct spe_buf *b) {
  b->len = 0;
  if (b->cap > BUF_KEEP) spe__buf_free(b);
}

void spe__buf_free(struct spe_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
