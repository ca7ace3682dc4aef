#include "support/api_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

void h_record(void *ctx, const json_t *event) {
  struct recorder *r = ctx;
  /* A copy of its own: the library's threads keep changing the reference
   * counts of the event and of the values it shares with the engine (the
   * results), which jansson reads without atomics when the test's thread takes
   * a reference. */
  json_t *copy = json_deep_copy(event);
  pthread_mutex_lock(&r->lock);
  json_array_append_new(r->events, copy);
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

void h_open_opts(struct harness *h, const spe_options *opt) {
  memset(h, 0, sizeof *h);
  h_recorder_init(&h->rec);
  char *msg = NULL;
  int rc = spe_open(&h->ex, opt, &msg);
  if (rc != 0) fail_msg("spe_open: %s", msg ? msg : spe_strerror(rc));
  assert_int_equal(spe_subscribe(h->ex, NULL, h_record, &h->rec, &h->sub), 0);
}

void h_open(struct harness *h, int workers) {
  spe_options o;
  spe_options_init(&o);
  o.workers = workers;
  o.retry_backoff_ms = 50;
  h_open_opts(h, &o);
}

void h_open_funcs(struct harness *h, int workers, int isolation, const spe_registry *reg) {
  spe_options o;
  spe_options_init(&o);
  o.workers = workers;
  o.retry_backoff_ms = 50;
  o.functions = reg;
  o.isolation = isolation;
  h_open_opts(h, &o);
}

void h_close(struct harness *h) {
  spe_close(h->ex);
  h_recorder_free(&h->rec);
}

void h_recorder_init(struct recorder *r) {
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->events = json_array();
}

void h_recorder_free(struct recorder *r) {
  json_decref(r->events);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
}

void h_submit_start(struct harness *h, const char *job_text, char *id) {
  char *msg = NULL;
  int rc = spe_submit_text(h->ex, job_text, strlen(job_text), id, &msg);
  if (rc != 0) fail_msg("submit: %s: %s", spe_err_name(rc), msg ? msg : "");
  rc = spe_start(h->ex, id, &msg);
  if (rc != 0) fail_msg("start: %s: %s", spe_err_name(rc), msg ? msg : "");
}

json_t *h_wait_job(spe_executor *ex, const char *id, int timeout_ms) {
  assert_int_equal(spe_wait(ex, id, timeout_ms), 0);
  json_t *job = NULL;
  assert_int_equal(spe_job_get(ex, id, &job, NULL), 0);
  return job;
}

json_t *h_run(struct harness *h, const char *job_text) {
  char id[SPE_ID_SIZE];
  h_submit_start(h, job_text, id);
  json_t *job = h_wait_job(h->ex, id, 30000);
  return job;
}

char *h_unquote(const char *q) {
  char *s = strdup(q);
  for (char *p = s; *p; p++)
    if (*p == '\'') *p = '"';
  return s;
}

json_t *h_runq(struct harness *h, const char *q) {
  char *text = h_unquote(q);
  json_t *job = h_run(h, text);
  free(text);
  return job;
}

static json_t *task(const json_t *job, const char *name) {
  json_t *t = json_object_get(json_object_get(job, "tasks"), name);
  if (t == NULL) fail_msg("no task \"%s\" in the job", name);
  return t;
}

const char *h_job_status(const json_t *job) {
  return json_string_value(json_object_get(job, "status"));
}

const char *h_task_status(const json_t *job, const char *name) {
  return json_string_value(json_object_get(task(job, name), "status"));
}

json_t *h_task_result(const json_t *job, const char *name) {
  return json_object_get(task(job, name), "result");
}

const char *h_task_error_kind(const json_t *job, const char *name) {
  return json_string_value(json_object_get(json_object_get(task(job, name), "error"), "kind"));
}

json_int_t h_task_int(const json_t *job, const char *name, const char *field) {
  json_t *v = json_object_get(task(job, name), field);
  if (!json_is_integer(v)) fail_msg("task \"%s\": no integer \"%s\"", name, field);
  return json_integer_value(v);
}

json_t *h_task_error(const json_t *job, const char *name) {
  return json_object_get(task(job, name), "error");
}

json_int_t h_error_int(const json_t *job, const char *name, const char *field) {
  json_t *v = json_object_get(h_task_error(job, name), field);
  if (!json_is_integer(v)) fail_msg("task \"%s\": no integer error.%s", name, field);
  return json_integer_value(v);
}

const char *h_job_id(const json_t *job) {
  return json_string_value(json_object_get(job, "id"));
}

static int matches(const json_t *ev, const char *job, const char *type, const char *taskname) {
  if (job && strcmp(json_string_value(json_object_get(ev, "job")), job) != 0) return 0;
  if (type && strcmp(json_string_value(json_object_get(ev, "type")), type) != 0) return 0;
  if (taskname) {
    const char *t = json_string_value(json_object_get(ev, "task"));
    if (t == NULL || strcmp(t, taskname) != 0) return 0;
  }
  return 1;
}

static int count_locked(struct recorder *r, const char *job, const char *type, const char *t) {
  int n = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(r->events, i, ev) n += matches(ev, job, type, t);
  return n;
}

int h_count_events(struct harness *h, const char *job, const char *type, const char *t) {
  pthread_mutex_lock(&h->rec.lock);
  int n = count_locked(&h->rec, job, type, t);
  pthread_mutex_unlock(&h->rec.lock);
  return n;
}

json_t *h_recorder_events(struct recorder *r, const char *job, const char *type,
                          const char *t) {
  json_t *out = json_array();
  size_t i;
  json_t *ev;
  pthread_mutex_lock(&r->lock);
  json_array_foreach(r->events, i, ev) {
    if (matches(ev, job, type, t)) json_array_append(out, ev);
  }
  pthread_mutex_unlock(&r->lock);
  return out;
}

json_t *h_events(struct harness *h, const char *job, const char *type, const char *t) {
  return h_recorder_events(&h->rec, job, type, t);
}

int h_recorder_await(struct recorder *r, const char *job, const char *type, int count,
                     int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&r->lock);
  int n;
  while ((n = count_locked(r, job, type, NULL)) < count)
    if (pthread_cond_timedwait(&r->cond, &r->lock, &deadline) != 0) break;
  n = count_locked(r, job, type, NULL);
  pthread_mutex_unlock(&r->lock);
  return n;
}

int h_await_events(struct harness *h, const char *job, const char *type, int count,
                   int timeout_ms) {
  return h_recorder_await(&h->rec, job, type, count, timeout_ms);
}

json_int_t h_event_time(struct harness *h, const char *job, const char *type, const char *t) {
  json_int_t when = -1;
  size_t i;
  json_t *ev;
  pthread_mutex_lock(&h->rec.lock);
  json_array_foreach(h->rec.events, i, ev) {
    if (matches(ev, job, type, t)) {
      when = json_integer_value(json_object_get(ev, "time_ms"));
      break;
    }
  }
  pthread_mutex_unlock(&h->rec.lock);
  return when;
}
