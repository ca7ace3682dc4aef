/*
 * GET /metrics in the Prometheus text format (version 0.0.4), from one
 * spe_stats_get() snapshot plus the server's own count of event streams; and
 * GET /v1/health.
 */
#include "server/server_impl.h"

#include "base/clock.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text so far; `failed` once out of memory. */
struct text {
  struct spe_buf b;
  int failed;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...) {
  if (t->failed) return;
  size_t room = 256;
  for (;;) {
    if (spe__buf_reserve(&t->b, room) != 0) {
      t->failed = 1;
      return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->b.data + t->b.len, t->b.cap - t->b.len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if ((size_t)n < t->b.cap - t->b.len) {
      t->b.len += (size_t)n;
      return;
    }
    room = (size_t)n + 1;
  }
}

static void family(struct text *t, const char *name, const char *type, const char *help) {
  add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void by_status(struct text *t, const char *name, const char *status, uint64_t v) {
  add(t, "%s{status=\"%s\"} %" PRIu64 "\n", name, status, v);
}

static size_t stream_count(struct server *s) {
  pthread_mutex_lock(&s->streams_lock);
  size_t n = s->nstreams;
  pthread_mutex_unlock(&s->streams_lock);
  return n;
}

static void write_metrics(struct text *t, const spe_stats *st, size_t streams) {
  family(t, "spe_jobs", "gauge", "Jobs in the state store, by status.");
  by_status(t, "spe_jobs", "submitted", st->jobs_submitted);
  by_status(t, "spe_jobs", "running", st->jobs_running);
  by_status(t, "spe_jobs", "succeeded", st->jobs_succeeded);
  by_status(t, "spe_jobs", "failed", st->jobs_failed);
  by_status(t, "spe_jobs", "cancelled", st->jobs_cancelled);
  family(t, "spe_tasks_running", "gauge", "Task attempts running now.");
  add(t, "spe_tasks_running %" PRIu64 "\n", st->tasks_running);
  family(t, "spe_tasks_ready", "gauge", "Ready tasks waiting for a worker (the queue depth).");
  add(t, "spe_tasks_ready %" PRIu64 "\n", st->tasks_ready);
  family(t, "spe_tasks_finished_total", "counter",
         "Tasks that ended, by status, since the server started.");
  by_status(t, "spe_tasks_finished_total", "succeeded", st->tasks_succeeded);
  by_status(t, "spe_tasks_finished_total", "failed", st->tasks_failed);
  by_status(t, "spe_tasks_finished_total", "not_run", st->tasks_not_run);
  family(t, "spe_commit_seconds", "summary", "Duration of the state store's commits.");
  add(t, "spe_commit_seconds_sum %.6f\n", st->commit_seconds_total);
  add(t, "spe_commit_seconds_count %" PRIu64 "\n", st->commits);
  family(t, "spe_commit_seconds_max", "gauge", "The longest commit since the server started.");
  add(t, "spe_commit_seconds_max %.6f\n", st->commit_seconds_max);
  family(t, "spe_events_published_total", "counter", "Events published since the server started.");
  add(t, "spe_events_published_total %" PRIu64 "\n", st->events_published);
  family(t, "spe_event_streams", "gauge", "Clients following GET /v1/events now.");
  add(t, "spe_event_streams %zu\n", streams);
}

enum MHD_Result metrics_reply(struct server *s, struct MHD_Connection *c) {
  spe_stats st;
  memset(&st, 0, sizeof st);
  int rc = spe_stats_get(s->ex, &st);
  if (rc != 0) return reply_spe_error(c, rc, NULL);
  struct text t = {{0}, 0};
  write_metrics(&t, &st, stream_count(s));
  if (t.failed) {
    spe__buf_free(&t.b);
    return MHD_NO;
  }
  /* reply_text() takes the text. */
  return reply_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", t.b.data,
                    t.b.len);
}

enum MHD_Result health_reply(struct server *s, struct MHD_Connection *c) {
  int stopping = atomic_load(&s->stopping);
  int failed = spe_failure(s->ex) != 0;
  const char *status = failed ? "failed" : stopping ? "stopping" : "ok";
  json_t *body = json_pack("{s:s,s:s,s:I}", "status", status, "version", SPE_VERSION,
                           "uptime_ms", (json_int_t)(spe__now_ms() - s->started_ms));
  return reply_json(c, failed || stopping ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, body);
}
