/*
 * GET /v1/events: Server-Sent Events, one event per message,
 *
 *     id: 41
 *     data: {"seq":41,"time_ms":...,"job":"01JD7...","type":"task_started",...}
 *
 * DESIGN. A stream must neither lose nor repeat an event, and a slow reader
 * must never hold up the engine. So each stream
 *
 *  1. subscribes first: the library's delivery thread formats every live event
 *     as a message and appends it to the stream's queue (on_event), which is
 *     bounded (--stream-queue);
 *  2. then replays the store's event log after the client's cursor
 *     (Last-Event-ID, else ?after=), page by page, with spe_events_since();
 *  3. then sends the queue, skipping every event with seq <= the last one sent.
 *
 * Events reach the store before they are published, so whatever was
 * published before step 1 is in the log, and whatever after it is in the
 * queue: nothing falls between. When the queue is full, the delivery thread
 * drops further events for this stream and marks it overflowed; the stream
 * sends what it holds, then ends. Its client reconnects with the last id it
 * received and the replay fills the gap, so an overflow costs a reconnect,
 * never an event.
 *
 * Threads and locks. libmicrohttpd runs each connection on a thread of its
 * own; the content reader (sse_read) runs on it and may block: it waits on
 * the stream's condition variable for live events, at most the keep-alive
 * interval, and then sends a comment line instead, so that proxies and the
 * idle timeout see a live connection and a vanished client is noticed. The
 * queue is shared with the delivery thread under the stream's lock. The
 * server's list of streams (for shutdown and the metrics) is under
 * streams_lock, taken before a stream's lock, never after.
 *
 * Where the stream starts without a cursor: a stream of one job (?job=ID)
 * replays the job's events from its first; a stream of every job starts with
 * the live events. A stream of one job ends after that job's job_finished
 * (or at once, after the replay, if the job had finished when it opened).
 */
#include "server/server_impl.h"

#include "base/clock.h"
#include "base/thread.h"
#include "base/status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPLAY_PAGE 256

struct sse {
  struct server *srv;
  struct sse *prev, *next;       /* in srv->streams, under streams_lock */
  char job[64];                  /* the job followed, or "" for every job */
  int64_t cursor;                /* seq of the last event sent, or where to start */
  int replaying;                 /* pages of the log are still to be sent */
  json_t *first_page;            /* the replay's first page, fetched at the open */
  int job_done_at_open;          /* the job followed had finished at the start */
  int ended;                     /* send what is buffered, then end */
  int keepalive_ms;
  spe_subscription *sub;
  /* Unsent output, from out_at on: the connection thread only. */
  struct spe_buf out;
  size_t out_at;
  /* Live events, filled by the delivery thread: under `lock`. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct sse_msg **queue;
  size_t queue_len, queue_cap, queue_limit;
  int overflow;
};

/* One event as an SSE message, formatted once. Live events are formatted on
 * the delivery thread, so that the event object itself never crosses to
 * another thread (its reference count is not ours to share). */
struct sse_msg {
  int64_t seq;
  int job_finished;  /* its type is job_finished */
  size_t len;
  char text[];       /* "id: SEQ\ndata: JSON\n\n" */
};

/* ---- output ---- */

/* Append one event as an SSE message, "id: SEQ\ndata: JSON\n\n", to `b`.
 * Returns 0, or -1 (out of memory; `b` is as it was). */
static int write_event(struct spe_buf *b, const json_t *ev, int64_t seq) {
  char head[48];
  int hn = snprintf(head, sizeof head, "id: %" PRId64 "\ndata: ", seq);
  size_t mark = b->len;
  if (spe__buf_append(b, head, (size_t)hn) != 0 ||
      json_dump_callback(ev, spe__buf_dump_cb, b, JSON_COMPACT) != 0 ||
      spe__buf_append(b, "\n\n", 2) != 0) {
    b->len = mark;
    return -1;
  }
  return 0;
}

static int64_t event_seq(const json_t *ev) {
  return (int64_t)json_integer_value(json_object_get(ev, "seq"));
}

static int is_job_finished(const json_t *ev) {
  const char *type = json_string_value(json_object_get(ev, "type"));
  return type != NULL && strcmp(type, "job_finished") == 0;
}

/* A live event as a message of its own (for the queue). */
static struct sse_msg *format_event(const json_t *ev) {
  struct spe_buf b = {0};
  int64_t seq = event_seq(ev);
  struct sse_msg *m = NULL;
  if (write_event(&b, ev, seq) == 0 && (m = malloc(sizeof *m + b.len)) != NULL) {
    m->seq = seq;
    m->job_finished = is_job_finished(ev);
    m->len = b.len;
    memcpy(m->text, b.data, b.len);
  }
  spe__buf_free(&b);
  return m;
}

/* The stream has sent the event `seq`. */
static void sent(struct sse *e, int64_t seq, int job_finished) {
  e->cursor = seq;
  if (e->job[0] != '\0' && job_finished) e->ended = 1;
}

/* Append one event of the log straight to the output, unless it was sent
 * already. */
static int emit_event(struct sse *e, const json_t *ev) {
  int64_t seq = event_seq(ev);
  if (seq <= e->cursor) return 0;
  if (write_event(&e->out, ev, seq) != 0) return -1;
  sent(e, seq, is_job_finished(ev));
  return 0;
}

/* Append one message, unless it was sent already. */
static int emit(struct sse *e, const struct sse_msg *m) {
  if (m->seq <= e->cursor) return 0;
  if (spe__buf_append(&e->out, m->text, m->len) != 0) return -1;
  sent(e, m->seq, m->job_finished);
  return 0;
}

/* ---- the live queue (the delivery thread) ---- */

static void on_event(void *ctx, const json_t *ev) {
  struct sse *e = ctx;
  pthread_mutex_lock(&e->lock);
  if (!e->overflow) {
    if (e->queue_len == e->queue_limit) {
      e->overflow = 1;
    } else {
      struct sse_msg *m = NULL;
      if (e->queue_len == e->queue_cap) {
        size_t cap = e->queue_cap != 0 ? e->queue_cap * 2 : 64;
        if (cap > e->queue_limit) cap = e->queue_limit;
        struct sse_msg **grown = realloc(e->queue, cap * sizeof *grown);
        if (grown != NULL) {
          e->queue = grown;
          e->queue_cap = cap;
        }
      }
      if (e->queue_len < e->queue_cap) m = format_event(ev);
      if (m != NULL)
        e->queue[e->queue_len++] = m;
      else
        e->overflow = 1; /* out of memory: end the stream like an overflow */
    }
  }
  pthread_cond_signal(&e->cond);
  pthread_mutex_unlock(&e->lock);
}

/* ---- filling the output (the connection thread) ---- */

/* Up to REPLAY_PAGE events of the log after the cursor. */
static int fetch_page(struct sse *e, json_t **page, char **msg) {
  return spe_events_since(e->srv->ex, e->job[0] != '\0' ? e->job : NULL, e->cursor,
                          REPLAY_PAGE, page, NULL, msg);
}

/* The next page of the log (the first one was fetched at the open). */
static int replay_page(struct sse *e) {
  json_t *page = e->first_page;
  char *msg = NULL;
  int rc = 0;
  if (page != NULL)
    e->first_page = NULL;
  else
    rc = fetch_page(e, &page, &msg);
  if (rc != 0) {
    /* The reconnect will be told why (410 when the events are forgotten). */
    server_log(e->srv, SPE_LOG_WARN, "event stream: replay after %" PRId64 " failed: %s",
               e->cursor, msg != NULL ? msg : spe_strerror(rc));
    free(msg);
    e->ended = 1;
    return 0;
  }
  size_t n = json_array_size(page);
  int failed = 0;
  for (size_t i = 0; i < n && !e->ended && !failed; i++)
    failed = emit_event(e, json_array_get(page, i)) != 0;
  json_decref(page);
  if (failed) return -1;
  if (n < REPLAY_PAGE) {
    e->replaying = 0;
    if (e->job_done_at_open) e->ended = 1;
  }
  return 0;
}

/* Wait for live events (at most the keep-alive interval) and send them. */
static int live(struct sse *e) {
  struct timespec until = spe__deadline_after(CLOCK_MONOTONIC, e->keepalive_ms);
  int timed_out = 0;
  pthread_mutex_lock(&e->lock);
  while (e->queue_len == 0 && !e->overflow && !atomic_load(&e->srv->stopping) && !timed_out)
    timed_out = pthread_cond_timedwait(&e->cond, &e->lock, &until) == ETIMEDOUT;
  struct sse_msg **taken = e->queue;
  size_t n = e->queue_len;
  int overflowed = e->overflow;
  e->queue = NULL;
  e->queue_len = e->queue_cap = 0;
  pthread_mutex_unlock(&e->lock);

  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    if (rc == 0 && !e->ended) rc = emit(e, taken[i]);
    free(taken[i]);
  }
  free(taken);
  if (rc != 0) return -1;
  if (atomic_load(&e->srv->stopping)) e->ended = 1;
  if (overflowed) {
    server_log(e->srv, SPE_LOG_WARN,
               "event stream: the client reads too slowly (its queue of %zu events is full); "
               "ending the stream after seq %" PRId64 ", from where the client may resume",
               e->queue_limit, e->cursor);
    e->ended = 1;
  }
  if (n == 0 && timed_out && !e->ended) return spe__buf_append(&e->out, ": keep-alive\n\n", 14);
  return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct sse *e = cls;
  while (e->out_at == e->out.len) {
    e->out_at = 0;
    spe__buf_reset(&e->out);
    if (e->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    if (atomic_load(&e->srv->stopping)) {
      e->ended = 1;
      continue;
    }
    if ((e->replaying ? replay_page(e) : live(e)) != 0)
      return MHD_CONTENT_READER_END_WITH_ERROR; /* out of memory */
  }
  size_t n = e->out.len - e->out_at;
  if (n > max) n = max;
  memcpy(buf, e->out.data + e->out_at, n);
  e->out_at += n;
  return (ssize_t)n;
}

/* ---- life of a stream ---- */

static void sse_free(void *cls) {
  struct sse *e = cls;
  /* Once this returns, on_event is not running and will not run again. */
  if (e->sub != NULL) spe_unsubscribe(e->sub);
  struct server *s = e->srv;
  pthread_mutex_lock(&s->streams_lock);
  if (e->prev != NULL || s->streams == e) {
    if (e->prev != NULL) e->prev->next = e->next;
    else s->streams = e->next;
    if (e->next != NULL) e->next->prev = e->prev;
    s->nstreams--;
  }
  pthread_mutex_unlock(&s->streams_lock);
  for (size_t i = 0; i < e->queue_len; i++) free(e->queue[i]);
  free(e->queue);
  json_decref(e->first_page);
  spe__buf_free(&e->out);
  pthread_cond_destroy(&e->cond);
  pthread_mutex_destroy(&e->lock);
  free(e);
}

static struct sse *sse_new(struct server *s) {
  struct sse *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  spe__cond_init_monotonic(&e->cond);
  pthread_mutex_init(&e->lock, NULL);
  e->srv = s;
  e->keepalive_ms = s->cfg.keepalive_ms;
  e->queue_limit = s->cfg.stream_queue;
  return e;
}

static void sse_register(struct sse *e) {
  struct server *s = e->srv;
  pthread_mutex_lock(&s->streams_lock);
  e->next = s->streams;
  if (s->streams != NULL) s->streams->prev = e;
  s->streams = e;
  s->nstreams++;
  pthread_mutex_unlock(&s->streams_lock);
}

void sse_end_all(struct server *s) {
  atomic_store(&s->stopping, 1);
  pthread_mutex_lock(&s->streams_lock);
  for (struct sse *e = s->streams; e != NULL; e = e->next) {
    pthread_mutex_lock(&e->lock);
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
  }
  pthread_mutex_unlock(&s->streams_lock);
}

/* ---- opening: what can be refused is refused before the 200 ---- */

/* A cursor: digits only. Returns 0, or -1. */
static int parse_seq(const char *v, int64_t *out) {
  if (v == NULL || v[0] == '\0' || strlen(v) > 18 || strspn(v, "0123456789") != strlen(v))
    return -1;
  *out = (int64_t)strtoll(v, NULL, 10);
  return 0;
}

/* Where to start: Last-Event-ID (a reconnecting EventSource sends it), else
 * ?after=. Returns 1 if the client gave a cursor, 0 if not, -1 if it is not a
 * number (with the response queued in *res). */
static int read_cursor(struct MHD_Connection *c, int64_t *cursor, enum MHD_Result *res) {
  const char *name = "Last-Event-ID";
  const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  if (v == NULL) {
    name = "after";
    v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
  }
  if (v == NULL) return 0;
  if (parse_seq(v, cursor) == 0) return 1;
  *res = reply_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, NULL,
                     "%s: expected an event seq (a whole number), got \"%s\"", name, v);
  return -1;
}

/* Check the job followed: 404 if unknown. Sets e->job_done_at_open. */
static int check_job(struct sse *e, struct MHD_Connection *c, enum MHD_Result *res) {
  json_t *job = NULL;
  char *msg = NULL;
  int rc = spe_job_get(e->srv->ex, e->job, &job, &msg);
  if (rc != 0) {
    *res = reply_spe_error(c, rc, msg);
    return -1;
  }
  const char *status = json_string_value(json_object_get(job, "status"));
  int status_of = status != NULL ? spe__job_status_parse(status) : -1;
  e->job_done_at_open = status_of >= 0 && spe__job_finished((enum job_status)status_of);
  json_decref(job);
  return 0;
}

/* Subscribe, then fetch the first page of the replay, kept for the first
 * replay_page() (its errors still get a proper status: 410 when the memory
 * store has forgotten the events asked for). */
static int start_stream(struct sse *e, struct MHD_Connection *c, enum MHD_Result *res) {
  struct server *s = e->srv;
  int rc = spe_subscribe(s->ex, e->job[0] != '\0' ? e->job : NULL, on_event, e, &e->sub);
  if (rc != 0) {
    *res = reply_spe_error(c, rc, NULL);
    return -1;
  }
  if (!e->replaying)
    return spe__buf_append(&e->out, ": live\n\n", 8) == 0 ? 0 : (*res = MHD_NO, -1);
  char *msg = NULL;
  rc = fetch_page(e, &e->first_page, &msg);
  if (rc == SPE_ELIMIT) {
    *res = reply_error(c, MHD_HTTP_GONE, "events_gone", NULL, NULL,
                       "the events after %" PRId64 " are no longer kept: %s", e->cursor,
                       msg != NULL ? msg : "");
    free(msg);
    return -1;
  }
  if (rc != 0) {
    *res = reply_spe_error(c, rc, msg);
    return -1;
  }
  return spe__buf_append(&e->out, ": replay\n\n", 10) == 0 ? 0 : (*res = MHD_NO, -1);
}

enum MHD_Result sse_open(struct server *s, struct MHD_Connection *c) {
  if (atomic_load(&s->stopping))
    return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", NULL, NULL,
                       "the server is stopping");
  enum MHD_Result res = MHD_NO;
  int64_t cursor = 0;
  int has_cursor = read_cursor(c, &cursor, &res);
  if (has_cursor < 0) return res;
  const char *job = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "job");
  if (job != NULL && (job[0] == '\0' || strlen(job) >= sizeof((struct sse *)0)->job))
    return reply_error(c, MHD_HTTP_NOT_FOUND, "unknown_job", NULL, NULL, "no such job: %s", job);

  struct sse *e = sse_new(s);
  if (e == NULL) return MHD_NO;
  if (job != NULL) strcpy(e->job, job);
  e->cursor = cursor;
  e->replaying = has_cursor || job != NULL;
  if ((job != NULL && check_job(e, c, &res) != 0) || start_stream(e, c, &res) != 0) {
    sse_free(e);
    return res;
  }
  sse_register(e);
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, e, sse_free);
  if (resp == NULL) {
    sse_free(e);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  res = MHD_queue_response(c, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return res;
}
