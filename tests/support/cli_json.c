/* Reading what `spe` writes: NDJSON events and job objects (SPEC §3, §4). */
#include "support/cli_util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

json_t *cli_parse_ndjson(const char *text) {
  json_t *all = json_array();
  assert_non_null(all);
  const char *line = text;
  int lineno = 1;
  while (*line != '\0') {
    const char *nl = strchr(line, '\n');
    size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
    if (len > 0) {
      json_error_t e;
      json_t *v = json_loadb(line, len, 0, &e);
      if (!json_is_object(v))
        fail_msg("line %d is not one JSON object (%s): %.200s", lineno, e.text, line);
      json_array_append_new(all, v);
    }
    if (nl == NULL) break;
    line = nl + 1;
    lineno++;
  }
  return all;
}

static int matches(const json_t *ev, const char *key, const char *want) {
  if (want == NULL) return 1;
  const char *have = json_string_value(json_object_get(ev, key));
  return have != NULL && strcmp(have, want) == 0;
}

json_t *cli_events_where(const json_t *events, const char *type, const char *job,
                         const char *task) {
  json_t *sel = json_array();
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    if (matches(ev, "type", type) && matches(ev, "job", job) && matches(ev, "task", task))
      json_array_append(sel, ev);
  }
  return sel;
}

int64_t cli_event_time(const json_t *events, const char *type, const char *job,
                       const char *task) {
  json_t *sel = cli_events_where(events, type, job, task);
  if (json_array_size(sel) != 1)
    fail_msg("expected one %s event for task %s, found %zu", type, task ? task : "-",
             json_array_size(sel));
  int64_t t = (int64_t)json_integer_value(json_object_get(json_array_get(sel, 0), "time_ms"));
  json_decref(sel);
  return t;
}

/* Per (job, task, attempt): the number of task_started and task_terminated
 * events seen so far. */
static void count_attempt(json_t *seen, const json_t *ev, int terminated) {
  char key[512];
  snprintf(key, sizeof key, "%s/%s/%lld",
           json_string_value(json_object_get(ev, "job")),
           json_string_value(json_object_get(ev, "task")),
           (long long)json_integer_value(json_object_get(ev, "attempt")));
  json_t *pair = json_object_get(seen, key);
  if (pair == NULL) {
    pair = json_pack("[i,i]", 0, 0);
    json_object_set_new(seen, key, pair);
  }
  json_t *slot = json_array_get(pair, terminated);
  json_integer_set(slot, json_integer_value(slot) + 1);
  if (terminated && json_integer_value(json_array_get(pair, 0)) != 1)
    fail_msg("%s: task_terminated without a task_started before it", key);
}

void cli_check_event_stream(const json_t *events, int64_t from_ms, int64_t to_ms) {
  assert_true(json_array_size(events) > 0);
  json_t *seen = json_object();    /* attempts */
  json_t *finished = json_object(); /* job id -> number of job_finished */
  json_int_t prev_seq = -1;
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    if (prev_seq >= 0 && seq != prev_seq + 1)
      fail_msg("event %zu: seq %lld follows %lld", i, (long long)seq, (long long)prev_seq);
    prev_seq = seq;
    json_int_t t = json_integer_value(json_object_get(ev, "time_ms"));
    if (t < from_ms - 1000 || t > to_ms + 1000)
      fail_msg("event %zu: time_ms %lld outside the run [%lld, %lld]", i, (long long)t,
               (long long)from_ms, (long long)to_ms);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *job = json_string_value(json_object_get(ev, "job"));
    assert_non_null(type);
    assert_non_null(job);
    if (json_integer_value(json_object_get(finished, job)) > 0)
      fail_msg("event %zu (%s) after job %s finished", i, type, job);
    if (strcmp(type, "task_started") == 0) count_attempt(seen, ev, 0);
    if (strcmp(type, "task_terminated") == 0) count_attempt(seen, ev, 1);
    if (strcmp(type, "job_finished") == 0)
      json_object_set_new(finished, job, json_integer(1));
    if (strcmp(type, "job_submitted") == 0 && json_object_get(finished, job) == NULL)
      json_object_set_new(finished, job, json_integer(0));
  }
  const char *key;
  json_t *v;
  json_object_foreach(seen, key, v) {
    if (json_integer_value(json_array_get(v, 0)) != 1 ||
        json_integer_value(json_array_get(v, 1)) != 1)
      fail_msg("%s: %lld task_started and %lld task_terminated (want one each)", key,
               (long long)json_integer_value(json_array_get(v, 0)),
               (long long)json_integer_value(json_array_get(v, 1)));
  }
  json_object_foreach(finished, key, v) {
    if (json_integer_value(v) != 1) fail_msg("job %s has no job_finished event", key);
  }
  json_decref(seen);
  json_decref(finished);
}

json_t *cli_task(const json_t *job, const char *task) {
  json_t *t = json_object_get(json_object_get(job, "tasks"), task);
  if (t == NULL) fail_msg("job \"%s\" has no task \"%s\"",
                          json_string_value(json_object_get(job, "name")), task);
  return t;
}

const char *cli_task_status(const json_t *job, const char *task) {
  return json_string_value(json_object_get(cli_task(job, task), "status"));
}

json_t *cli_task_result(const json_t *job, const char *task) {
  return json_object_get(cli_task(job, task), "result");
}

const char *cli_error_kind(const json_t *job, const char *task) {
  return json_string_value(json_object_get(json_object_get(cli_task(job, task), "error"), "kind"));
}

json_int_t cli_task_int(const json_t *job, const char *task, const char *field) {
  json_t *v = json_object_get(cli_task(job, task), field);
  if (!json_is_integer(v)) fail_msg("task \"%s\": %s is not an integer", task, field);
  return json_integer_value(v);
}

json_int_t cli_error_int(const json_t *job, const char *task, const char *field) {
  json_t *v = json_object_get(json_object_get(cli_task(job, task), "error"), field);
  if (!json_is_integer(v)) fail_msg("task \"%s\": error.%s is not an integer", task, field);
  return json_integer_value(v);
}
