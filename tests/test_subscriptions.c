/* Events through the public API with `exec` tasks: a subscription to one job
 * gets only its events, one to all gets every job's; the pollable queue
 * (spe_queue_*) the same for one job and for all; the events of exec tasks
 * have the shape of SPEC §4. Each test runs in both isolations. */
#include "support/api_util.h"
#include "support/cli_util.h"
#include "support/funcs.h"

#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* The isolation this group runs in (the tests' state). */
static int isolation_of(void **state) { return *(const int *)*state; }

static const char *str(const json_t *obj, const char *key) {
  return json_string_value(json_object_get(obj, key));
}

static void submit_only(struct harness *h, const char *quoted, char *id) {
  char *text = h_unquote(quoted);
  char *msg = NULL;
  int rc = spe_submit_text(h->ex, text, strlen(text), id, &msg);
  if (rc != 0) fail_msg("submit: %s: %s", spe_err_name(rc), msg ? msg : "");
  free(text);
}

/* Every event of `events` belongs to job `id`, and they include the job's
 * start, each task's start and end, and its end. */
static void only_events_of(const json_t *events, const char *id, int ntasks) {
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    if (strcmp(str(ev, "job"), id) != 0)
      fail_msg("event %zu (%s) of job %s in a subscription to %s", i, str(ev, "type"),
               str(ev, "job"), id);
  }
  int started = 0, ended = 0, job_started = 0, finished = 0;
  json_array_foreach(events, i, ev) {
    const char *type = str(ev, "type");
    started += strcmp(type, "task_started") == 0;
    ended += strcmp(type, "task_terminated") == 0;
    job_started += strcmp(type, "job_started") == 0;
    finished += strcmp(type, "job_finished") == 0;
  }
  assert_int_equal(job_started, 1);
  assert_int_equal(started, ntasks);
  assert_int_equal(ended, ntasks);
  assert_int_equal(finished, 1);
  assert_string_equal(str(json_array_get(events, json_array_size(events) - 1), "type"),
                      "job_finished");
}

/* Two arrays of events hold the same events (by seq) in the same order. */
static void same_events(const json_t *a, const json_t *b) {
  assert_int_equal(json_array_size(a), json_array_size(b));
  for (size_t i = 0; i < json_array_size(a); i++)
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, i), "seq")),
                     json_integer_value(json_object_get(json_array_get(b, i), "seq")));
}

static const char *JOB_A = "{'name':'a','tasks':[{'name':'x','exec':'sum','arg':1,'enables':['y']},"
                           "{'name':'y','exec':'sum','arg':2}]}";
static const char *JOB_B = "{'name':'b','tasks':[{'name':'x','exec':'sum','arg':5},"
                           "{'name':'y','exec':'sum','arg':6},{'name':'z','exec':'fail'}]}";

static void callbacks_for_one_job_and_for_all(void **state) {
  struct harness h; /* its recorder subscribed to all jobs at spe_open */
  tf_open(&h, 2, isolation_of(state));
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  submit_only(&h, JOB_A, a);
  submit_only(&h, JOB_B, b);
  struct recorder only_a, all;
  h_recorder_init(&only_a);
  h_recorder_init(&all);
  spe_subscription *sub_a = NULL, *sub_all = NULL;
  assert_int_equal(spe_subscribe(h.ex, a, h_record, &only_a, &sub_a), 0);
  assert_int_equal(spe_subscribe(h.ex, NULL, h_record, &all, &sub_all), 0);
  assert_non_null(sub_a);
  assert_int_equal(spe_start(h.ex, a, NULL), 0);
  assert_int_equal(spe_start(h.ex, b, NULL), 0);
  assert_int_equal(spe_wait(h.ex, a, 10000), 0);
  assert_int_equal(spe_wait(h.ex, b, 10000), 0);
  assert_int_equal(h_recorder_await(&only_a, a, "job_finished", 1, 5000), 1);
  assert_int_equal(h_recorder_await(&all, b, "job_finished", 1, 5000), 1);
  assert_int_equal(h_recorder_await(&all, a, "job_finished", 1, 5000), 1);

  json_t *got_a = h_recorder_events(&only_a, NULL, NULL, NULL);
  only_events_of(got_a, a, 2);
  /* The subscription to all got both jobs' events, A's the same as the
   * subscription to A. */
  json_t *all_a = h_recorder_events(&all, a, NULL, NULL);
  json_t *all_b = h_recorder_events(&all, b, NULL, NULL);
  same_events(got_a, all_a);
  only_events_of(all_b, b, 3);
  json_t *everything = h_recorder_events(&all, NULL, NULL, NULL);
  assert_int_equal(json_array_size(everything), json_array_size(all_a) + json_array_size(all_b));
  json_decref(everything);
  json_decref(all_a);
  json_decref(all_b);

  /* Once unsubscribed, no more calls: another run of A's job is not seen. */
  spe_unsubscribe(sub_a);
  size_t before = json_array_size(got_a);
  json_t *again = h_runq(&h, JOB_A);
  assert_int_equal(h_await_events(&h, h_job_id(again), "job_finished", 1, 5000), 1);
  assert_int_equal(h_recorder_await(&all, h_job_id(again), "job_finished", 1, 5000), 1);
  json_t *now_a = h_recorder_events(&only_a, NULL, NULL, NULL);
  assert_int_equal(json_array_size(now_a), before);
  json_decref(now_a);
  json_decref(again);
  json_decref(got_a);
  spe_unsubscribe(sub_all);
  h_close(&h);
  h_recorder_free(&only_a);
  h_recorder_free(&all);
}

/* Read a queue until the job_finished of `id` (every job's, if id is NULL and
 * `jobs` jobs are expected), polling its descriptor as an event loop would. */
static json_t *drain_until_finished(spe_queue *q, int jobs) {
  json_t *got = json_array();
  int finished = 0;
  while (finished < jobs) {
    struct pollfd p = {.fd = spe_queue_fd(q), .events = POLLIN};
    if (poll(&p, 1, 10000) != 1) fail_msg("the queue's descriptor did not become readable");
    assert_true(spe_queue_length(q) > 0);
    json_t *ev = NULL;
    assert_int_equal(spe_queue_next(q, 0, &ev), 0);
    assert_non_null(ev);
    finished += strcmp(str(ev, "type"), "job_finished") == 0;
    json_array_append_new(got, ev);
  }
  return got;
}

static void queues_for_one_job_and_for_all(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  submit_only(&h, JOB_A, a);
  submit_only(&h, JOB_B, b);
  spe_queue *qa = NULL, *qall = NULL;
  assert_int_equal(spe_queue_open(h.ex, a, &qa), 0);
  assert_int_equal(spe_queue_open(h.ex, NULL, &qall), 0);
  assert_non_null(qa);
  assert_true(spe_queue_fd(qa) >= 0);
  /* Nothing published yet: empty, not readable, and a read does not wait. */
  assert_int_equal(spe_queue_length(qa), 0);
  struct pollfd p = {.fd = spe_queue_fd(qa), .events = POLLIN};
  assert_int_equal(poll(&p, 1, 0), 0);
  json_t *ev = NULL;
  assert_int_equal(spe_queue_next(qa, 0, &ev), SPE_ETIMEDOUT);
  assert_null(ev);
  assert_int_equal(spe_queue_next(qa, 20, &ev), SPE_ETIMEDOUT);

  assert_int_equal(spe_start(h.ex, a, NULL), 0);
  assert_int_equal(spe_start(h.ex, b, NULL), 0);
  json_t *got_a = drain_until_finished(qa, 1);
  json_t *got_all = drain_until_finished(qall, 2);
  only_events_of(got_a, a, 2);
  /* The job's events, in seq order, the same as the callback got. */
  assert_int_equal(h_await_events(&h, a, "job_finished", 1, 5000), 1);
  assert_int_equal(h_await_events(&h, b, "job_finished", 1, 5000), 1);
  json_t *cb_a = h_events(&h, a, NULL, NULL);
  json_t *cb_all = h_events(&h, NULL, NULL, NULL);
  /* The harness's subscription also saw the two job_submitted events, published
   * before the queues were opened. */
  assert_int_equal(json_array_size(cb_a), json_array_size(got_a) + 1);
  json_array_remove(cb_a, 0);
  same_events(cb_a, got_a);
  assert_int_equal(json_array_size(cb_all), json_array_size(got_all) + 2);
  json_array_remove(cb_all, 0);
  json_array_remove(cb_all, 0);
  same_events(cb_all, got_all);
  json_decref(cb_a);
  json_decref(cb_all);
  /* Drained: empty and not readable. */
  assert_int_equal(spe_queue_length(qa), 0);
  assert_int_equal(poll(&p, 1, 0), 0);
  json_decref(got_a);
  json_decref(got_all);
  spe_queue_close(qa);

  /* Once the executor stops delivering events, a read of the empty queue says
   * so instead of waiting, and the descriptor is readable. */
  assert_int_equal(spe_shutdown(h.ex), 0);
  int rc;
  while ((rc = spe_queue_next(qall, 10000, &ev)) == 0) json_decref(ev);
  assert_int_equal(rc, SPE_ECLOSED);
  p.fd = spe_queue_fd(qall);
  assert_int_equal(poll(&p, 1, 0), 1);
  assert_int_equal(spe_queue_next(qall, -1, &ev), SPE_ECLOSED);
  spe_queue_close(qall);
  h_close(&h);
}

/* A queue left open is released by spe_close() (valgrind and ASan check it). */
static void queue_left_open(void **state) {
  struct harness h;
  tf_open(&h, 1, isolation_of(state));
  spe_queue *q = NULL;
  assert_int_equal(spe_queue_open(h.ex, NULL, &q), 0);
  json_t *job = h_runq(&h, JOB_A);
  json_decref(job);
  spe_subscription *sub = NULL;
  struct recorder r;
  h_recorder_init(&r);
  assert_int_equal(spe_subscribe(h.ex, NULL, h_record, &r, &sub), 0);
  h_close(&h);
  h_recorder_free(&r);
}

/* SPEC §4 for exec tasks: task_started with the attempt, task_terminated with
 * status and result or error, task_not_run, job_finished with status and the
 * tasks object of §3. */
static void events_of_exec_tasks(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  int64_t t0 = cli_wall_ms();
  json_t *job = h_runq(&h, "{'name':'j','tasks':["
                           "{'name':'ok','exec':'sum','arg':3,'enables':['bad']},"
                           "{'name':'bad','exec':'fail','enables':['never']},"
                           "{'name':'never','exec':'sum'},"
                           "{'name':'twice','exec':'flaky','retries':1}]}");
  const char *id = h_job_id(job);
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  json_t *all = h_events(&h, NULL, NULL, NULL);
  cli_check_event_stream(all, t0, cli_wall_ms());
  json_decref(all);

  json_t *ev = h_events(&h, id, "task_started", "ok");
  assert_int_equal(json_array_size(ev), 1);
  json_t *e = json_array_get(ev, 0);
  assert_int_equal(json_integer_value(json_object_get(e, "attempt")), 1);
  assert_true(json_is_integer(json_object_get(e, "seq")));
  json_decref(ev);

  ev = h_events(&h, id, "task_terminated", "ok");
  e = json_array_get(ev, 0);
  assert_string_equal(str(e, "status"), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(e, "result")), 3);
  assert_null(json_object_get(e, "error"));
  json_decref(ev);

  ev = h_events(&h, id, "task_terminated", "bad");
  e = json_array_get(ev, 0);
  assert_string_equal(str(e, "status"), "failed");
  assert_null(json_object_get(e, "result"));
  assert_string_equal(str(json_object_get(e, "error"), "kind"), "error");
  assert_string_equal(str(json_object_get(e, "error"), "message"), "failed on purpose");
  json_decref(ev);

  ev = h_events(&h, id, "task_started", "twice");
  assert_int_equal(json_array_size(ev), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 1), "attempt")), 2);
  json_decref(ev);

  assert_int_equal(h_count_events(&h, id, "task_not_run", "never"), 1);
  assert_int_equal(h_count_events(&h, id, "task_started", "never"), 0);

  ev = h_events(&h, id, "job_finished", NULL);
  e = json_array_get(ev, 0);
  assert_string_equal(str(e, "status"), "failed");
  assert_true(json_equal(json_object_get(e, "tasks"), json_object_get(job, "tasks")));
  json_decref(ev);
  json_decref(job);
  h_close(&h);
}

#define EVENT_TESTS(iso)                                                       \
  cmocka_unit_test_prestate(callbacks_for_one_job_and_for_all, iso),           \
      cmocka_unit_test_prestate(queues_for_one_job_and_for_all, iso),          \
      cmocka_unit_test_prestate(queue_left_open, iso),                         \
      cmocka_unit_test_prestate(events_of_exec_tasks, iso)

int main(void) {
  static int process = SPE_ISOLATION_PROCESS, thread = SPE_ISOLATION_THREAD;
  const struct CMUnitTest in_processes[] = {EVENT_TESTS(&process)};
  const struct CMUnitTest in_threads[] = {EVENT_TESTS(&thread)};
  int failed = cmocka_run_group_tests_name("process isolation", in_processes, NULL, NULL);
  failed += cmocka_run_group_tests_name("thread isolation", in_threads, NULL, NULL);
  return failed;
}
