#include "cli/event_log.h"

#include "cli/log_sink.h"
#include "spe.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct event_log {
  /* job id -> {"name": NAME, "started": ms, "starts": {task: ms}}; delivery
   * thread only */
  json_t *jobs;
  pthread_mutex_t names_lock;
  json_t *names; /* job id -> name, from event_log_name(); under names_lock */
};

int event_log_new(struct event_log **out) {
  struct event_log *el = calloc(1, sizeof *el);
  if (el == NULL || (el->jobs = json_object()) == NULL || (el->names = json_object()) == NULL) {
    if (el != NULL) json_decref(el->jobs);
    free(el);
    return -1;
  }
  pthread_mutex_init(&el->names_lock, NULL);
  *out = el;
  return 0;
}

void event_log_free(struct event_log *el) {
  if (el == NULL) return;
  json_decref(el->jobs);
  json_decref(el->names);
  pthread_mutex_destroy(&el->names_lock);
  free(el);
}

/* The job's entry, made at its first event. NULL only when out of memory. */
static json_t *job_entry(struct event_log *el, const char *id, const json_t *ev) {
  json_t *entry = json_object_get(el->jobs, id);
  if (entry == NULL) {
    entry = json_pack("{s:{}}", "starts");
    if (entry == NULL || json_object_set_new(el->jobs, id, entry) != 0) return NULL;
  }
  const char *name = json_string_value(json_object_get(ev, "name"));
  if (name != NULL) {
    json_object_set_new(entry, "name", json_string(name));
  } else if (json_object_get(entry, "name") == NULL) {
    pthread_mutex_lock(&el->names_lock);
    json_t *given = json_object_get(el->names, id);
    if (given != NULL) json_object_set(entry, "name", given);
    pthread_mutex_unlock(&el->names_lock);
  }
  return entry;
}

void event_log_name(struct event_log *el, const char *id, const char *name) {
  pthread_mutex_lock(&el->names_lock);
  json_object_set_new(el->names, id, json_string(name));
  pthread_mutex_unlock(&el->names_lock);
}

static const char *str_field(const json_t *obj, const char *key) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s != NULL ? s : "?";
}

/* The last non-empty line of a task's stderr, at most 200 bytes, into out. */
static void last_stderr_line(const char *err, char out[204]) {
  out[0] = '\0';
  if (err == NULL) return;
  size_t end = strlen(err);
  while (end > 0 && (err[end - 1] == '\n' || err[end - 1] == '\r')) end--;
  size_t start = end;
  while (start > 0 && err[start - 1] != '\n') start--;
  size_t len = end - start;
  if (len > 200) {
    start = end - 200;
    len = 200;
  }
  memcpy(out, err + start, len);
  out[len] = '\0';
}

static void task_terminated(const char *who, json_t *entry, const json_t *ev, int64_t t) {
  const char *task = str_field(ev, "task");
  const char *status = str_field(ev, "status");
  json_int_t attempt = json_integer_value(json_object_get(ev, "attempt"));
  char took[48] = "";
  json_t *started = json_object_get(json_object_get(entry, "starts"), task);
  if (json_is_integer(started))
    snprintf(took, sizeof took, ", %" PRId64 " ms", t - (int64_t)json_integer_value(started));
  if (strcmp(status, "succeeded") == 0) {
    log_sink_line(SPE_LOG_INFO, t, "%s: task \"%s\" succeeded (attempt %" JSON_INTEGER_FORMAT "%s)",
                  who, task, attempt, took);
    return;
  }
  const json_t *error = json_object_get(ev, "error");
  char tail[204];
  last_stderr_line(json_string_value(json_object_get(error, "stderr")), tail);
  if (strcmp(status, "failed") != 0) {
    /* "interrupted": the executor stopped while it ran; a later run starts it
     * again. */
    log_sink_line(SPE_LOG_INFO, t, "%s: task \"%s\" %s (attempt %" JSON_INTEGER_FORMAT "%s)",
                  who, task, status, attempt, took);
    return;
  }
  const json_t *retry_in = json_object_get(ev, "retry_in_ms");
  char retry[64] = "";
  if (json_is_integer(retry_in))
    snprintf(retry, sizeof retry, ", will retry in %" JSON_INTEGER_FORMAT " ms",
             json_integer_value(retry_in));
  log_sink_line(retry[0] != '\0' ? SPE_LOG_INFO : SPE_LOG_WARN, t,
                "%s: task \"%s\" failed: %s (attempt %" JSON_INTEGER_FORMAT "%s%s)%s%s%s", who,
                task, str_field(error, "message"), attempt, took, retry,
                tail[0] != '\0' ? "; stderr: \"" : "", tail, tail[0] != '\0' ? "\"" : "");
}

void event_log_count_tasks(const json_t *tasks, char *out, size_t cap) {
  static const char *const names[] = {"succeeded", "failed", "not_run", "running", "pending"};
  size_t counts[5] = {0};
  const char *key;
  json_t *task;
  json_object_foreach((json_t *)tasks, key, task) {
    const char *st = json_string_value(json_object_get(task, "status"));
    for (int i = 0; i < 5; i++)
      if (st != NULL && strcmp(st, names[i]) == 0) counts[i]++;
  }
  size_t total = json_object_size(tasks);
  int n = snprintf(out, cap, "%zu task%s", total, total == 1 ? "" : "s");
  const char *sep = ": ";
  for (int i = 0; i < 5 && n > 0 && (size_t)n < cap; i++) {
    if (counts[i] == 0) continue;
    n += snprintf(out + n, cap - (size_t)n, "%s%zu %s", sep, counts[i],
                  i == 2 ? "not run" : names[i]);
    sep = ", ";
  }
}

static void job_finished(const char *who, json_t *entry, const json_t *ev, int64_t t) {
  const char *status = str_field(ev, "status");
  char took[48] = "";
  json_t *started = json_object_get(entry, "started");
  if (json_is_integer(started)) {
    int64_t ms = t - (int64_t)json_integer_value(started);
    snprintf(took, sizeof took, " in %" PRId64 ".%03d s", ms / 1000, (int)(ms % 1000));
  }
  char counts[160];
  event_log_count_tasks(json_object_get(ev, "tasks"), counts, sizeof counts);
  log_sink_line(strcmp(status, "succeeded") == 0 ? SPE_LOG_INFO : SPE_LOG_WARN, t,
                "%s: finished: %s%s (%s)", who, status, took, counts);
}

void event_log_write(struct event_log *el, const json_t *ev) {
  const char *type = str_field(ev, "type");
  const char *id = str_field(ev, "job");
  int64_t t = (int64_t)json_integer_value(json_object_get(ev, "time_ms"));
  json_t *entry = job_entry(el, id, ev);
  char who[300];
  const char *name = json_string_value(json_object_get(entry, "name"));
  if (name != NULL)
    snprintf(who, sizeof who, "job %s \"%.200s\"", id, name);
  else
    snprintf(who, sizeof who, "job %s", id);

  if (strcmp(type, "task_started") == 0) {
    if (entry != NULL)
      json_object_set_new(json_object_get(entry, "starts"), str_field(ev, "task"),
                          json_integer(t));
    log_sink_line(SPE_LOG_INFO, t, "%s: task \"%s\" started (attempt %" JSON_INTEGER_FORMAT ")",
                  who, str_field(ev, "task"), json_integer_value(json_object_get(ev, "attempt")));
  } else if (strcmp(type, "task_terminated") == 0) {
    task_terminated(who, entry, ev, t);
  } else if (strcmp(type, "task_not_run") == 0) {
    const char *by = json_string_value(json_object_get(ev, "blocked_by"));
    log_sink_line(SPE_LOG_INFO, t, "%s: task \"%s\" not run%s%s%s", who, str_field(ev, "task"),
                  by != NULL ? ": blocked by \"" : "", by != NULL ? by : "",
                  by != NULL ? "\"" : "");
  } else if (strcmp(type, "job_started") == 0) {
    if (entry != NULL) json_object_set_new(entry, "started", json_integer(t));
    log_sink_line(SPE_LOG_INFO, t, "%s: started", who);
  } else if (strcmp(type, "job_finished") == 0) {
    job_finished(who, entry, ev, t);
  } else if (strcmp(type, "job_submitted") == 0) {
    log_sink_line(SPE_LOG_INFO, t, "%s: submitted", who);
  } else if (strcmp(type, "job_cancelled") == 0) {
    log_sink_line(SPE_LOG_WARN, t, "%s: cancelled", who);
  } else if (strcmp(type, "job_recovered") == 0) {
    /* Seen by `spe watch` across a server restart; `spe run` subscribes after
     * recovery and never sees one. */
    log_sink_line(SPE_LOG_INFO, t,
                  "%s: recovered after a restart: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
                  " tasks done, %" JSON_INTEGER_FORMAT " to run again, %" JSON_INTEGER_FORMAT
                  " lost",
                  who, json_integer_value(json_object_get(ev, "tasks_done")),
                  json_integer_value(json_object_get(ev, "tasks_total")),
                  json_integer_value(json_object_get(ev, "tasks_restarted")),
                  json_integer_value(json_object_get(ev, "tasks_lost")));
  } else {
    log_sink_line(SPE_LOG_INFO, t, "%s: %s", who, type);
  }
}
