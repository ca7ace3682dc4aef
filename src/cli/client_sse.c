/*
 * Following the server's event stream (GET /v1/events, Server-Sent Events)
 * across lost connections and server restarts.
 *
 * The stream is read as it arrives (libcurl's write callback): bytes are cut
 * into lines; "data:" lines are gathered, "id:" lines too, a line starting
 * with ":" is a comment (the server's keep-alive) and an empty line ends an
 * event, whose data is one JSON object with its "seq". An event whose seq is
 * not above the last one handed on is dropped, so that the caller sees each
 * event once however the connections went.
 *
 * When the transfer ends without the caller having said stop (the server
 * closed the stream, was killed, restarted, or dropped this reader for being
 * slow), the stream is asked for again with `after` and Last-Event-ID = the
 * last seq seen: the server replays what came after it from its store, so
 * nothing is lost. Tries are spaced by a backoff (100 ms, doubling, at most
 * 2 s) and go on for RECONNECT_MS (60 s) after the last working
 * connection; the very first connection is not retried (a wrong address
 * should fail at once).
 */
#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "cli/client.h"
#include "cli/client_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000
/* How long to go on trying after the last working connection. */
#define RECONNECT_MS 60000
/* One event's data may hold a whole job (job_finished): allow a big one. */
#define EVENT_MAX ((size_t)256 << 20)

/* Append to one of the follow's buffers, up to EVENT_MAX bytes. */
static int growbuf_add(struct spe_buf *b, const char *p, size_t n) {
  if (n > EVENT_MAX - b->len) return -1;
  return spe__buf_append(b, p, n);
}

/* The state of one follow, across its connections. */
struct sse {
  struct client *c;
  client_event_fn on_event;
  void *ctx;
  int64_t last_seq;     /* the newest seq handed on; -1: none yet */
  /* Per connection: */
  int status_checked;   /* the response status has been looked at */
  long status;
  int events_seen;      /* events (or keep-alives) received on it */
  int delivered;        /* events handed on from it */
  struct spe_buf line;   /* the line being read */
  struct spe_buf data;   /* the data lines of the event being read */
  int has_data;
  struct spe_buf error; /* the body of an error answer */
  /* Why the transfer was aborted from the callback, if it was: */
  int stopped;          /* the caller said FOLLOW_STOP */
  char *bad;            /* a protocol error, malloc'd message */
};

/* An event is complete: parse it and hand it on. Returns 0 to go on, -1 to
 * abort the transfer (stopped or bad set). */
static int dispatch(struct sse *s) {
  if (!s->has_data) return 0;
  s->has_data = 0;
  json_error_t jerr;
  json_t *ev = json_loadb(s->data.data != NULL ? s->data.data : "", s->data.len, 0, &jerr);
  s->data.len = 0;
  json_t *seq = json_object_get(ev, "seq");
  if (!json_is_object(ev) || !json_is_integer(seq)) {
    char msg[256];
    snprintf(msg, sizeof msg, "an event that is not a JSON object with a seq%s%s",
             ev == NULL ? ": " : "", ev == NULL ? jerr.text : "");
    s->bad = strdup(msg);
    json_decref(ev);
    return -1;
  }
  int64_t n = (int64_t)json_integer_value(seq);
  int rc = 0;
  if (n > s->last_seq) {
    s->last_seq = n;
    s->delivered++;
    if (s->on_event(s->ctx, ev) == FOLLOW_STOP) {
      s->stopped = 1;
      rc = -1;
    }
  }
  json_decref(ev);
  return rc;
}

/* One line of the stream, without its end. */
static int on_line(struct sse *s, char *line, size_t len) {
  if (len == 0) return dispatch(s);
  s->events_seen = 1;
  if (line[0] == ':') return 0; /* a comment: the server's keep-alive */
  char *colon = memchr(line, ':', len);
  size_t name_len = colon != NULL ? (size_t)(colon - line) : len;
  const char *value = colon != NULL ? colon + 1 : line + len;
  if (value < line + len && *value == ' ') value++;
  size_t value_len = (size_t)(line + len - value);
  if (name_len == 4 && memcmp(line, "data", 4) == 0) {
    if ((s->has_data && growbuf_add(&s->data, "\n", 1) != 0) ||
        growbuf_add(&s->data, value, value_len) != 0) {
      s->bad = strdup("an event too large to hold");
      return -1;
    }
    s->has_data = 1;
  }
  /* "id" repeats the data's seq; "event" and "retry" are not used. */
  return 0;
}

static size_t on_bytes(char *p, size_t size, size_t n, void *ud) {
  struct sse *s = ud;
  size_t total = size * n;
  if (!s->status_checked) {
    curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &s->status);
    s->status_checked = 1;
  }
  if (s->status != 200) return growbuf_add(&s->error, p, total) == 0 ? total : 0;
  for (size_t i = 0; i < total; i++) {
    if (p[i] != '\n') {
      if (growbuf_add(&s->line, p + i, 1) != 0) {
        s->bad = strdup("a line too long to hold");
        return 0;
      }
      continue;
    }
    size_t len = s->line.len;
    if (len > 0 && s->line.data[len - 1] == '\r') len--;
    s->line.len = 0;
    if (on_line(s, s->line.data != NULL ? s->line.data : "", len) != 0) return 0;
  }
  return total;
}

static size_t collect_body(char *p, size_t size, size_t n, void *ud) {
  return growbuf_add(ud, p, size * n) == 0 ? size * n : 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* One connection: GET the stream after `after` (-1: the server's default) and
 * read it until it ends. Returns libcurl's code; s->status and the flags say
 * the rest. */
static CURLcode connect_once(struct sse *s, const char *job, int64_t after) {
  struct client *c = s->c;
  char path[512], last_id[64];
  char *ejob = job != NULL ? client_escape(c, job) : NULL;
  int n = snprintf(path, sizeof path, "/v1/events");
  const char *sep = "?";
  if (ejob != NULL) {
    n += snprintf(path + n, sizeof path - (size_t)n, "%sjob=%s", sep, ejob);
    sep = "&";
  }
  free(ejob);
  const char *extra[] = {NULL, NULL};
  if (after >= 0) {
    snprintf(path + n, sizeof path - (size_t)n, "%safter=%" PRId64, sep, after);
    /* Both say the same; Last-Event-ID is what an SSE server looks at when a
     * stream resumes. */
    snprintf(last_id, sizeof last_id, "Last-Event-ID: %" PRId64, after);
    extra[0] = last_id;
  }
  s->status_checked = 0;
  s->status = 0;
  s->events_seen = s->delivered = 0;
  s->line.len = s->data.len = s->error.len = 0;
  s->has_data = 0;
  struct curl_slist *headers = client__headers(c, "text/event-stream", extra);
  if (headers == NULL || client__prepare(c, path, headers) != 0) {
    curl_slist_free_all(headers);
    return CURLE_OUT_OF_MEMORY;
  }
  curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_bytes);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, s);
  CURLcode rc = curl_easy_perform(c->curl);
  if (!s->status_checked) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &s->status);
  curl_slist_free_all(headers);
  return rc;
}

/* Whether the server says, right now, that `job` has finished. Quiet: any
 * failure is a no. */
static int job_has_finished(struct client *c, const char *job) {
  char *ejob = client_escape(c, job);
  char path[256];
  snprintf(path, sizeof path, "/v1/jobs/%s", ejob != NULL ? ejob : "");
  free(ejob);
  struct spe_buf body = {0};
  struct curl_slist *headers = client__headers(c, "application/json", NULL);
  long status = 0;
  if (headers != NULL && client__prepare(c, path, headers) == 0) {
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(c->curl) == CURLE_OK)
      curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_slist_free_all(headers);
  json_t *j = status == 200 && body.data != NULL ? json_loadb(body.data, body.len, 0, NULL) : NULL;
  const char *st = json_string_value(json_object_get(j, "status"));
  int status_of = st != NULL ? spe__job_status_parse(st) : -1;
  int done = status_of >= 0 && spe__job_finished((enum job_status)status_of);
  json_decref(j);
  spe__buf_free(&body);
  return done;
}

static void free_sse(struct sse *s) {
  spe__buf_free(&s->line);
  spe__buf_free(&s->data);
  spe__buf_free(&s->error);
  free(s->bad);
}

int client_follow(struct client *c, const struct client_follow_opts *fo, client_event_fn on_event,
                  void *ctx) {
  struct sse s = {.c = c, .on_event = on_event, .ctx = ctx, .last_seq = -1};
  int delay = BACKOFF_FIRST_MS, ever_connected = 0, rc;
  int64_t lost_at = 0;
  if (fo->after >= 0) s.last_seq = fo->after;
  for (;;) {
    CURLcode cr = connect_once(&s, fo->job, s.last_seq >= 0 ? s.last_seq : fo->after);
    if (s.stopped) {
      rc = 0;
      break;
    }
    if (s.bad != NULL) {
      fprintf(stderr, "%s: the server at %s sent %s\n", c->cmd, c->address, s.bad);
      rc = CLIENT_EXIT_SERVER;
      break;
    }
    if (cr == CURLE_OUT_OF_MEMORY) {
      fprintf(stderr, "%s: out of memory\n", c->cmd);
      rc = CLIENT_EXIT_SERVER;
      break;
    }
    int answered = s.status != 0;
    if (answered && s.status >= 400 && s.status < 500) {
      rc = client__http_failed(c, s.status, s.error.data, s.error.len, NULL);
      break;
    }
    if (!ever_connected && !(answered && s.status == 200)) {
      /* The first try: say at once what is wrong rather than wait. */
      rc = cr != CURLE_OK ? client__transfer_failed(c, cr)
                          : client__http_failed(c, s.status, s.error.data, s.error.len, NULL);
      break;
    }
    if (answered && s.status == 200) {
      /* It worked until now: the time without a server counts from here. */
      ever_connected = 1;
      lost_at = spe__mono_ms();
      if (s.events_seen) delay = BACKOFF_FIRST_MS;
      /* The server ends a job's stream at once when the job had finished
       * before the cursor: its job_finished will never come. */
      if (cr == CURLE_OK && s.delivered == 0 && fo->job != NULL &&
          job_has_finished(c, fo->job)) {
        rc = 0;
        break;
      }
    }
    if (spe__mono_ms() - lost_at >= RECONNECT_MS) {
      fprintf(stderr, "%s: lost the server at %s and could not reconnect within %d s\n", c->cmd,
              c->address, RECONNECT_MS / 1000);
      rc = CLIENT_EXIT_SERVER;
      break;
    }
    sleep_ms(delay);
    delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
  }
  free_sse(&s);
  return rc;
}
