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
  if (n > u->limit - u->buf.len) {
    u->too_large = 1;
    u->skipped = n;
    spe__buf_free(&u->buf);
    return 0;
  }
  return spe__buf_append(&u->buf, data, n);
}

void upload_free(struct upload *u) {
  spe__buf_free(&u->buf);
  memset(u, 0, sizeof *u);
}
