/*
 * A growable byte buffer: what a command wrote, a frame to a worker process,
 * a request body, an event's text. Amortized doubling from 4 KiB.
 *
 * Ownership: the buffer owns `data` (malloc'd, NULL until the first byte);
 * spe__buf_free() releases it. A zeroed struct is an empty buffer.
 */
#ifndef SPE_BASE_BUF_H
#define SPE_BASE_BUF_H

#include <stddef.h>

struct spe_buf {
  char *data;
  size_t len, cap;
};

/* Make room for `more` bytes after len. Returns 0 or -1 (out of memory). */
int spe__buf_reserve(struct spe_buf *b, size_t more);
/* Append n bytes. Returns 0 or -1 (out of memory; the buffer is unchanged). */
int spe__buf_append(struct spe_buf *b, const void *p, size_t n);
/* A jansson dump callback (json_dump_callback) appending to the spe_buf given
 * as `data`. */
int spe__buf_dump_cb(const char *p, size_t n, void *data);
/* Empty the buffer; let its memory go when it grew past 1 MiB, so that one
 * big use does not pin megabytes in a long-lived buffer. */
void spe__buf_reset(struct spe_buf *b);
void spe__buf_free(struct spe_buf *b);

#endif
