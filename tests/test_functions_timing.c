/* The worker limit with `exec` tasks, timed from the events: with one worker two
 * sleeping functions never overlap; with two, two of 500 ms overlap. Both
 * isolations. Its assertions are about time, so it runs in the plain build only
 * (label timing). */
#include "support/api_util.h"
#include "support/funcs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

/* The isolation this group runs in (the tests' state). */
static int isolation_of(void **state) { return *(const int *)*state; }

/* A task's start and end from its events, checked against the §3 times. */
static void task_span(struct harness *h, const json_t *job, const char *task, json_int_t *start,
                      json_int_t *end) {
  const char *id = h_job_id(job);
  *start = h_event_time(h, id, "task_started", task);
  *end = h_event_time(h, id, "task_terminated", task);
  assert_true(*start > 0 && *end >= *start);
  /* The job object says the same within the time the events take to commit. */
  assert_true(h_task_int(job, task, "started_ms") <= *start);
  assert_true(h_task_int(job, task, "finished_ms") <= *end);
}

static void one_worker_never_overlaps(void **state) {
  struct harness h;
  json_int_t s1, e1, s2, e2;
  tf_open(&h, 1, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','exec':'sleep','arg':500},"
                           "{'name':'b','exec':'sleep','arg':600}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(h_await_events(&h, h_job_id(job), "job_finished", 1, 5000), 1);
  task_span(&h, job, "a", &s1, &e1);
  task_span(&h, job, "b", &s2, &e2);
  if (e1 - s1 < 500 || e2 - s2 < 600)
    fail_msg("a took %lld ms, b %lld ms", (long long)(e1 - s1), (long long)(e2 - s2));
  if (!(s2 >= e1 || s1 >= e2))
    fail_msg("overlap: a %lld..%lld, b %lld..%lld", (long long)s1, (long long)e1, (long long)s2,
             (long long)e2);
  json_decref(job);
  h_close(&h);
}

static void two_workers_overlap(void **state) {
  struct harness h;
  json_int_t s1, e1, s2, e2;
  tf_open(&h, 2, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','exec':'sleep','arg':500},"
                           "{'name':'b','exec':'sleep','arg':500}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(h_await_events(&h, h_job_id(job), "job_finished", 1, 5000), 1);
  task_span(&h, job, "a", &s1, &e1);
  task_span(&h, job, "b", &s2, &e2);
  json_int_t span = (e1 > e2 ? e1 : e2) - (s1 < s2 ? s1 : s2);
  if (span < 500 || span > 750) fail_msg("span %lld ms", (long long)span);
  json_decref(job);
  h_close(&h);
}

/* Commands and functions share the workers: with one, a 300 ms command and a
 * 300 ms function never overlap, whichever starts first. */
static void commands_and_functions_share_one_worker(void **state) {
  struct harness h;
  json_int_t s1, e1, s2, e2;
  tf_open(&h, 1, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'c','cmd':'sleep 0.3'},"
                           "{'name':'f','exec':'sleep','arg':300},"
                           "{'name':'c2','cmd':'sleep 0.3'}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(h_await_events(&h, h_job_id(job), "job_finished", 1, 5000), 1);
  task_span(&h, job, "c", &s1, &e1);
  task_span(&h, job, "f", &s2, &e2);
  if (!(s2 >= e1 || s1 >= e2))
    fail_msg("overlap: c %lld..%lld, f %lld..%lld", (long long)s1, (long long)e1, (long long)s2,
             (long long)e2);
  json_int_t s3, e3;
  task_span(&h, job, "c2", &s3, &e3);
  if (!(s3 >= e2 || s2 >= e3))
    fail_msg("overlap: f %lld..%lld, c2 %lld..%lld", (long long)s2, (long long)e2, (long long)s3,
             (long long)e3);
  json_decref(job);
  h_close(&h);
}

int main(void) {
  static int process = SPE_ISOLATION_PROCESS, thread = SPE_ISOLATION_THREAD;
  const struct CMUnitTest in_processes[] = {
      cmocka_unit_test_prestate(one_worker_never_overlaps, &process),
      cmocka_unit_test_prestate(two_workers_overlap, &process),
      cmocka_unit_test_prestate(commands_and_functions_share_one_worker, &process),
  };
  const struct CMUnitTest in_threads[] = {
      cmocka_unit_test_prestate(one_worker_never_overlaps, &thread),
      cmocka_unit_test_prestate(two_workers_overlap, &thread),
      cmocka_unit_test_prestate(commands_and_functions_share_one_worker, &thread),
  };
  int failed = cmocka_run_group_tests_name("process isolation", in_processes, NULL, NULL);
  failed += cmocka_run_group_tests_name("thread isolation", in_threads, NULL, NULL);
  return failed;
}
