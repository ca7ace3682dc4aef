/*
 * The HTTP server of `spe serve` (docs/server.md): the API of one executor
 * over a Unix socket and/or a TCP address, on libmicrohttpd.
 *
 * The server is part of the program, not of the library: it borrows an open
 * executor and never closes it. The program stops it in this order, so that
 * no request is refused half-way and no thread outlives the executor:
 *
 *     server_quiesce()      no new connection (the socket file goes away)
 *     server_end_streams()  every event stream ends (clients reconnect later)
 *     spe_shutdown()        running tasks stop (the program's call)
 *     server_stop()         open connections close, their threads are joined
 *     spe_close()           (the program's call)
 */
#ifndef SPE_SERVER_SERVER_H
#define SPE_SERVER_SERVER_H

#include "spe.h"

#include <stddef.h>

struct server;

/* Defaults, quoted by `spe serve --help` and docs/server.md. */
#define SERVER_DEFAULT_MAX_BODY ((size_t)16 * 1024 * 1024)
#define SERVER_DEFAULT_IDLE_TIMEOUT_S 30u
#define SERVER_DEFAULT_KEEPALIVE_MS 15000
#define SERVER_DEFAULT_STREAM_QUEUE ((size_t)10000)
#define SERVER_DEFAULT_MAX_CONNECTIONS 1000u

struct server_config {
  /* Where to listen: a Unix socket path, a TCP "HOST:PORT", or both (at least
   * one). A TCP listener needs `token`. */
  const char *socket_path;
  const char *listen_addr;
  /* The bearer token every request on the TCP listener must carry (except
   * GET /v1/health), or NULL. Not required on the Unix socket, whose mode
   * (0600) already admits only its owner. Copied. */
  const char *token;
  size_t max_body;            /* a request body larger than this: 413 */
  unsigned idle_timeout_s;    /* a connection silent this long is closed */
  int keepalive_ms;           /* comment lines on an idle event stream */
  size_t stream_queue;        /* live events one stream may hold unsent */
  unsigned max_connections;   /* connections at once, per listener */
  /* Where the server's own log lines go (the program's log sink). */
  spe_log_fn log;
  void *log_ctx;
  int log_level; /* the most verbose level passed to `log` */
};

/* Fill `cfg` with the defaults (no address, no token, no log). */
void server_config_init(struct server_config *cfg);

/* Read a bearer token from `path`: one word of visible characters, at least
 * 16 of them, a final newline allowed. *token is malloc'd. Returns 0 or -1
 * with *msg set. */
int server_read_token(const char *path, char **token, char **msg);

/* Bind the listeners: create the Unix socket (mode 0600 from the start, its
 * folder 0700 if missing; a stale socket file is replaced, a live server on it
 * is refused) and/or bind the TCP address. Nothing is served yet: connections
 * wait in the backlog until server_start(), so that the program can refuse a
 * busy address before it opens (and recovers) the store. */
int server_bind(struct server **out, const struct server_config *cfg, char **msg);

/* Serve `ex` (borrowed until server_stop()) on the bound listeners. */
int server_start(struct server *s, spe_executor *ex, char **msg);

/* Stop accepting connections and remove the socket file. Idempotent. */
void server_quiesce(struct server *s);

/* End every event stream at once, and refuse new ones (503). */
void server_end_streams(struct server *s);

/* Close every connection, join the server's threads, release the listeners
 * and free the server. NULL is a no-op. Also valid after a failed start. */
void server_stop(struct server *s);

#endif
