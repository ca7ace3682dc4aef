/*
 * What the files of src/server share: the server, its listeners, the state of
 * one request, and the handlers the router calls.
 *
 * Threads. libmicrohttpd runs in thread-per-connection mode: each connection
 * has a thread of its own, which calls the router for every request on it, and
 * the content reader of an event stream, which may block (sse.c). The
 * handlers call the library (safe from any thread) and share only the server,
 * which is read-only once started, except:
 *   - `stopping` (atomic): set once, by server_end_streams();
 *   - the list of event streams, under `streams_lock` (sse.c). Lock order:
 *     streams_lock, then a stream's own lock.
 */
#ifndef SPE_SERVER_SERVER_IMPL_H
#define SPE_SERVER_SERVER_IMPL_H

#include "base/buf.h"
#include "server/server.h"
#include "spe.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct sse;

struct listener {
  struct server *srv;
  int fd;                    /* the listening socket, -1 once closed */
  int needs_token;           /* TCP: every request but health carries the token */
  char *unix_path;           /* the socket file, removed on quiesce; or NULL */
  char shown[320];           /* "unix:PATH" or "http://HOST:PORT", for logs */
  struct MHD_Daemon *daemon; /* NULL until started */
};

struct server {
  struct server_config cfg;  /* strings below are our copies */
  char *token;
  size_t token_len;
  spe_executor *ex;          /* borrowed; NULL until started */
  struct listener listeners[2];
  int nlisteners;
  int quiesced;              /* main thread only */
  atomic_int stopping;       /* streams end, new ones are refused */
  pthread_mutex_t streams_lock;
  struct sse *streams;       /* open event streams, under streams_lock */
  size_t nstreams;           /* under streams_lock */
  int64_t started_ms;
};

/* The endpoints (docs/server.md). */
enum route {
  ROUTE_NONE,       /* unknown path: 404 */
  ROUTE_JOBS,       /* /v1/jobs: GET list, POST submit */
  ROUTE_JOB,        /* /v1/jobs/{id}: GET */
  ROUTE_JOB_START,  /* /v1/jobs/{id}/start: POST */
  ROUTE_JOB_CANCEL, /* /v1/jobs/{id}/cancel: POST */
  ROUTE_PRUNE,      /* /v1/prune: POST */
  ROUTE_EVENTS,     /* /v1/events: GET (SSE) */
  ROUTE_HEALTH,     /* /v1/health: GET */
  ROUTE_METRICS     /* /metrics: GET */
};

/* A request body being received (upload.c). */
struct upload {
  struct spe_buf buf; /* what was received (empty once past the limit) */
  size_t limit;    /* max_body */
  size_t skipped;  /* bytes dropped after the limit was passed */
  int too_large;   /* the limit was passed: the answer is 413 */
};

/* One request (MHD's per-request context, freed when it completes). */
struct request {
  enum route route;
  char id[64];     /* {id} of the path, when the route has one */
  int answered;    /* a response was queued before the body (refused) */
  struct upload body;
};

/* ---- router.c ---- */
/* The MHD access handler (cls: the listener) and completion callback. */
enum MHD_Result router_handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **req_cls);
void router_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe);

/* ---- upload.c ---- */
/* Take `n` more bytes of body. Returns 0, or -1 when the client has sent so
 * much past the limit that the connection should be closed. */
int upload_append(struct upload *u, const char *data, size_t n);
void upload_free(struct upload *u);

/* ---- auth.c ---- */
/* Whether the request carries "Authorization: Bearer TOKEN" with the
 * server's token (compared in constant time). */
int auth_ok(const struct server *s, struct MHD_Connection *c);

/* ---- reply.c ---- */
/* Queue `body` (stolen) as JSON with `status`. */
enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body);
/* Queue `text` (malloc'd, stolen) with `status` and `content_type`. */
enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                           char *text, size_t len);
/* Queue {"error": {"code": code, "message": ...}} with `status`; `header` and
 * `value` (may be NULL) add one header (Allow, WWW-Authenticate...). */
enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                            const char *header, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Queue the error for a library call that returned `rc` with `msg` (may be
 * NULL): its status and code (docs/server.md). Takes `msg` (malloc'd, as the
 * library gives it) and frees it. */
enum MHD_Result reply_spe_error(struct MHD_Connection *c, int rc, char *msg);

/* ---- jobs.c ---- */
enum MHD_Result jobs_submit(struct server *s, struct MHD_Connection *c, struct request *r);
enum MHD_Result jobs_list(struct server *s, struct MHD_Connection *c);
enum MHD_Result jobs_get(struct server *s, struct MHD_Connection *c, const char *id);
enum MHD_Result jobs_start(struct server *s, struct MHD_Connection *c, const char *id);
enum MHD_Result jobs_cancel(struct server *s, struct MHD_Connection *c, const char *id);
enum MHD_Result jobs_prune(struct server *s, struct MHD_Connection *c);

/* ---- sse.c ---- */
enum MHD_Result sse_open(struct server *s, struct MHD_Connection *c);
/* Wake every stream so that it ends (stopping is set). */
void sse_end_all(struct server *s);

/* ---- metrics.c ---- */
enum MHD_Result metrics_reply(struct server *s, struct MHD_Connection *c);
enum MHD_Result health_reply(struct server *s, struct MHD_Connection *c);

/* ---- server.c ---- */
/* Log a line of the server through the configured sink. */
void server_log(const struct server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
