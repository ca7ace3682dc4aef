/*
 * A request body, gathered in memory up to the server's limit (--max-body).
 *
 * A body whose Content-Length is over the limit is refused before it is read
 * (router.c). A chunked body has no length up front: it is gathered until it
 * passes the limit, then read on and dropped, so that the 413 answer can be
 * sent once it has ended (libmicrohttpd lets a response be queued only before
 * the body or after it). A client that goes on sending as much again past the
 * limit is not worth the wait: its connection is closed without an answer.
 */
#include "server/server_impl.h"

#include <stdlib.h>
#include <string.h>

int upload_append(struct upload *u, const char *data, size_t n) {
  if (u->too_large) {
    u->skipped += n;
    return u->skipped > u->limit ? -1 : 0;
  }
  if (n > u->limit - u->len) {
    u->too_large = 1;
    u->skipped = n;
    free(u->data);
    u->data = NULL;
    u->len = u->cap = 0;
    return 0;
  }
  if (u->len + n + 1 > u->cap) {
    size_t cap = u->cap != 0 ? u->cap : 4096;
    while (cap < u->len + n + 1) cap *= 2;
    char *grown = realloc(u->data, cap);
    if (grown == NULL) return -1;
    u->data = grown;
    u->cap = cap;
  }
  memcpy(u->data + u->len, data, n);
  u->len += n;
  u->data[u->len] = '\0';
  return 0;
}

void upload_free(struct upload *u) {
  free(u->data);
  memset(u, 0, sizeof *u);
}
