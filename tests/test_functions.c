/* `exec` tasks through the public API: the seed system's scenarios with C
 * functions (tests/support/funcs.h), each run in both isolations — one cmocka
 * group per isolation, the isolation handed to every test as its state. Job
 * texts use ' for " (h_runq). The timing cases are in test_functions_timing.c. */
#include "support/api_util.h"
#include "support/cli_util.h"
#include "support/funcs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static int isolation_of(void **state) { return *(const int *)*state; }


static const char *error_message(const json_t *job, const char *task) {
  return json_string_value(json_object_get(h_task_error(job, task), "message"));
}

static void bad_jobs_are_refused(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  static const struct {
    const char *text, *msg;
  } cases[] = {
      {"{", "JSON"},
      {"{'tasks':[{'name':'a','exec':'sum'}]}", "'name'"},
      {"{'name':'j','tasks':[{'name':'a','exec':''}]}", "task 'a': 'exec' must be a non-empty"},
      {"{'name':'j','tasks':[{'name':'a','exec':3}]}", "task 'a': 'exec' must be a non-empty"},
      {"{'name':'j','tasks':[{'name':'a','exec':'sum','cmd':'true'}]}", "exactly one of"},
      {"{'name':'j','tasks':[{'name':'a','exec':'sum','enables':['a']}]}",
       "dependency cycle: a -> a"},
      {"{'name':'j','tasks':[{'name':'a','exec':'sum','enables':['z']}]}",
       "task 'a': enables unknown task 'z'"},
      {"{'name':'j','tasks':[{'name':'a','exec':'sum','argh':1}]}", "argh"},
      /* A function nobody registered: refused on submit, naming task and function. */
      {"{'name':'j','tasks':[{'name':'a','exec':'sum','enables':['b']},"
       "{'name':'b','exec':'no_such_function'}]}",
       "'no_such_function'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *text = h_unquote(cases[i].text), *want = h_unquote(cases[i].msg);
    char id[SPE_ID_SIZE];
    char *msg = NULL;
    int rc = spe_submit_text(h.ex, text, strlen(text), id, &msg);
    if (rc != SPE_EJOB) fail_msg("case %zu: %s, not SPE_EJOB", i, spe_err_name(rc));
    assert_non_null(msg);
    if (strstr(msg, want) == NULL) fail_msg("case %zu: message \"%s\"", i, msg);
    free(msg);
    free(text);
    free(want);
  }
  /* The same through spe_submit_json. */
  json_t *desc = json_pack("{s:s, s:[{s:s, s:s}]}", "name", "j", "tasks", "name", "t", "exec",
                           "nope");
  char id[SPE_ID_SIZE];
  char *msg = NULL;
  assert_int_equal(spe_submit_json(h.ex, desc, id, &msg), SPE_EJOB);
  assert_non_null(strstr(msg, "\"nope\""));
  free(msg);
  json_decref(desc);
  /* Nothing was stored, so nothing was published. */
  assert_int_equal(h_count_events(&h, NULL, NULL, NULL), 0);
  h_close(&h);
}

static void good_job_and_same_name_twice(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  const char *text = "{'name':'nisse','tasks':[{'name':'t','exec':'sum','arg':3}]}";
  json_t *a = h_runq(&h, text);
  json_t *b = h_runq(&h, text);
  assert_string_equal(h_job_status(a), "succeeded");
  assert_string_equal(h_job_status(b), "succeeded");
  assert_string_not_equal(h_job_id(a), h_job_id(b));
  assert_int_equal(json_integer_value(h_task_result(a, "t")), 3);
  assert_int_equal(h_task_int(a, "t", "attempts"), 1);
  assert_true(h_task_int(a, "t", "finished_ms") >= h_task_int(a, "t", "started_ms"));
  json_decref(a);
  json_decref(b);
  /* A job submitted through spe_submit_json runs the same way. */
  json_t *desc = json_pack("{s:s, s:[{s:s, s:s, s:[i,i]}]}", "name", "json", "tasks", "name",
                           "t", "exec", "sum", "arg", 1, 2);
  char id[SPE_ID_SIZE];
  assert_int_equal(spe_submit_json(h.ex, desc, id, NULL), 0);
  json_decref(desc);
  assert_int_equal(spe_start(h.ex, id, NULL), 0);
  a = h_wait_job(h.ex, id, 30000);
  assert_int_equal(json_integer_value(h_task_result(a, "t")), 3);
  json_decref(a);
  h_close(&h);
}

static void results_3_and_1_plus_2_and_3_plus_7(void **state) {
  struct harness h;
  tf_open(&h, 1, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'three','exec':'sum','arg':3},"
                           "{'name':'one_plus_two','exec':'sum','arg':[1,2]},"
                           "{'name':'three_plus_seven','exec':'sum','arg':[3,7]},"
                           "{'name':'nothing','exec':'null'}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "three")), 3);
  assert_int_equal(json_integer_value(h_task_result(job, "one_plus_two")), 3);
  assert_int_equal(json_integer_value(h_task_result(job, "three_plus_seven")), 10);
  /* A function that returns NULL has the result JSON null, present. */
  assert_non_null(h_task_result(job, "nothing"));
  assert_true(json_is_null(h_task_result(job, "nothing")));
  json_decref(job);
  h_close(&h);
}

static void division_by_zero_is_an_error(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'bad','exec':'div','arg':[1,0]},"
                           "{'name':'good','exec':'div','arg':[6,3]}]}");
  assert_string_equal(h_job_status(job), "failed");
  assert_string_equal(h_task_status(job, "bad"), "failed");
  assert_string_equal(h_task_error_kind(job, "bad"), "error");
  assert_string_equal(error_message(job, "bad"), "division by zero: 1/0");
  assert_int_equal(h_task_int(job, "bad", "attempts"), 1);
  assert_string_equal(h_task_status(job, "good"), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "good")), 2);
  json_decref(job);
  h_close(&h);
}

/* Under process isolation a function that kills itself, aborts or exits costs
 * only its task. Under thread isolation such a function would take the test
 * program with it (that isolation gives no protection, include/spe.h says so),
 * so there only the reported error is run. */
static void misbehaving_functions_fail_alone(void **state) {
  struct harness h;
  int process = isolation_of(state) == SPE_ISOLATION_PROCESS;
  tf_open(&h, 4, isolation_of(state));
  json_t *job = h_runq(&h, process ? "{'name':'j','tasks':["
                                     "{'name':'kill','exec':'kill_self'},"
                                     "{'name':'abort','exec':'abort'},"
                                     "{'name':'exit','exec':'exit1'},"
                                     "{'name':'error','exec':'fail'},"
                                     "{'name':'fine','exec':'sum','arg':5}]}"
                                   : "{'name':'j','tasks':["
                                     "{'name':'error','exec':'fail'},"
                                     "{'name':'fine','exec':'sum','arg':5}]}");
  assert_string_equal(h_job_status(job), "failed");
  if (process) {
    assert_string_equal(h_task_status(job, "kill"), "failed");
    assert_string_equal(h_task_error_kind(job, "kill"), "crashed");
    assert_int_equal(h_error_int(job, "kill", "signal"), 9);
    assert_string_equal(h_task_status(job, "abort"), "failed");
    assert_string_equal(h_task_error_kind(job, "abort"), "crashed");
    assert_int_equal(h_error_int(job, "abort", "signal"), 6);
    assert_string_equal(h_task_status(job, "exit"), "failed");
    assert_string_equal(h_task_error_kind(job, "exit"), "crashed");
    assert_int_equal(h_error_int(job, "exit", "exit_code"), 1);
  }
  assert_string_equal(h_task_status(job, "error"), "failed");
  assert_string_equal(h_task_error_kind(job, "error"), "error");
  assert_string_equal(error_message(job, "error"), "failed on purpose");
  assert_int_equal(json_integer_value(h_task_result(job, "fine")), 5);
  json_decref(job);
  /* The executor is alive: its workers were replaced, the next job runs. */
  job = h_runq(&h, "{'name':'after','tasks':[{'name':'a','exec':'sum','arg':1},"
                   "{'name':'b','exec':'sum','arg':2},{'name':'c','exec':'sum','arg':3},"
                   "{'name':'d','exec':'sum','arg':4},{'name':'e','exec':'sum','arg':5}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "e")), 5);
  json_decref(job);
  h_close(&h);
}

static void results_flow_downstream(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  /* 7 -> 9 */
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'seven','exec':'sum','arg':7,"
                           "'enables':['nine']},{'name':'nine','exec':'sum','arg':2}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "nine")), 9);
  json_decref(job);
  /* 7 + 17 + 2 = 26 */
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','exec':'sum','arg':7,'enables':['sum']},"
                   "{'name':'b','exec':'sum','arg':17,'enables':['sum']},"
                   "{'name':'sum','exec':'sum','arg':2}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "sum")), 26);
  json_decref(job);
  /* 17 -> 21 -> 40: the last reads both ancestors (17 + 21 + 2). */
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','exec':'sum','arg':17,'enables':['b']},"
                   "{'name':'b','exec':'sum','arg':4,'enables':['c']},"
                   "{'name':'c','exec':'sum','arg':2}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "b")), 21);
  assert_int_equal(json_integer_value(h_task_result(job, "c")), 40);
  json_decref(job);
  /* The input names every ancestor (not only the direct ones) with its result,
   * whatever JSON that is; a task without ancestors gets {}. */
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','exec':'context','enables':['b']},"
                   "{'name':'b','exec':'null','enables':['c']},{'name':'c','exec':'input'},"
                   "{'name':'alone','exec':'input'}]}");
  json_t *want = json_pack("{s:O, s:n}", "a", h_task_result(job, "a"), "b");
  assert_true(json_equal(h_task_result(job, "c"), want));
  json_decref(want);
  want = json_object();
  assert_true(json_equal(h_task_result(job, "alone"), want));
  json_decref(want);
  json_decref(job);
  h_close(&h);
}

static void failed_or_timed_out_upstream_blocks(void **state) {
  struct harness h;
  tf_open(&h, 3, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'j','tasks':["
                           "{'name':'bad','exec':'fail','enables':['mid']},"
                           "{'name':'mid','exec':'sum','arg':1,'enables':['end']},"
                           "{'name':'end','exec':'sum','arg':1},"
                           "{'name':'endless','exec':'loop','timeout':200,'enables':['after']},"
                           "{'name':'after','exec':'sum','arg':1},"
                           "{'name':'other','exec':'sum','arg':2}]}");
  assert_string_equal(h_job_status(job), "failed");
  assert_string_equal(h_task_error_kind(job, "bad"), "error");
  assert_string_equal(h_task_status(job, "mid"), "not_run");
  assert_string_equal(h_task_status(job, "end"), "not_run");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(job, "tasks"), "end"), "blocked_by")),
                      "bad");
  assert_string_equal(h_task_status(job, "endless"), "failed");
  assert_string_equal(h_task_error_kind(job, "endless"), "timeout");
  assert_string_equal(h_task_status(job, "after"), "not_run");
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_object_get(job, "tasks"), "after"), "blocked_by")),
                      "endless");
  assert_string_equal(h_task_status(job, "other"), "succeeded");
  const char *id = h_job_id(job);
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  assert_int_equal(h_count_events(&h, id, "task_not_run", NULL), 3);
  assert_int_equal(h_count_events(&h, id, "task_started", "mid"), 0);
  assert_int_equal(h_count_events(&h, id, "task_started", "after"), 0);
  json_decref(job);
  /* The timed-out function did not take a worker with it for good. */
  job = h_runq(&h, "{'name':'next','tasks':[{'name':'a','exec':'sum','arg':1},"
                   "{'name':'b','exec':'sum','arg':2},{'name':'c','exec':'sum','arg':3}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  json_decref(job);
  h_close(&h);
}

static char *wide_job(int ntasks) {
  size_t cap = (size_t)ntasks * 64 + 64, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  len += (size_t)snprintf(text + len, cap - len, "{\"name\":\"wide\",\"tasks\":[");
  for (int i = 0; i < ntasks; i++)
    len += (size_t)snprintf(text + len, cap - len,
                            "%s{\"name\":\"t%d\",\"exec\":\"sum\",\"arg\":%d}", i ? "," : "", i,
                            i);
  snprintf(text + len, cap - len, "]}");
  return text;
}

static void hundred_tasks_and_hundred_jobs(void **state) {
  struct harness h;
  tf_open(&h, 4, isolation_of(state));
  char *text = wide_job(100);
  json_t *job = h_run(&h, text);
  free(text);
  assert_string_equal(h_job_status(job), "succeeded");
  for (int i = 0; i < 100; i++) {
    char name[16];
    snprintf(name, sizeof name, "t%d", i);
    assert_int_equal(json_integer_value(h_task_result(job, name)), i);
  }
  json_decref(job);

  /* 100 jobs at once, then wait for all. */
  char ids[100][SPE_ID_SIZE];
  for (int i = 0; i < 100; i++) {
    char buf[128];
    snprintf(buf, sizeof buf,
             "{\"name\":\"job%d\",\"tasks\":[{\"name\":\"t\",\"exec\":\"sum\",\"arg\":%d}]}", i,
             i);
    h_submit_start(&h, buf, ids[i]);
  }
  for (int i = 0; i < 100; i++) {
    job = h_wait_job(h.ex, ids[i], 30000);
    assert_string_equal(h_job_status(job), "succeeded");
    assert_int_equal(json_integer_value(h_task_result(job, "t")), i);
    json_decref(job);
  }
  h_close(&h);
}

static void two_jobs_on_ten_workers(void **state) {
  struct harness h;
  tf_open(&h, 10, isolation_of(state));
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  char *ja = h_unquote("{'name':'a','tasks':[{'name':'x','exec':'sum','arg':1,'enables':['y']},"
                       "{'name':'y','exec':'sum','arg':1}]}");
  char *jb = h_unquote("{'name':'b','tasks':[{'name':'x','exec':'sum','arg':5}]}");
  h_submit_start(&h, ja, a);
  h_submit_start(&h, jb, b);
  free(ja);
  free(jb);
  json_t *job = h_wait_job(h.ex, a, 10000);
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "y")), 2);
  json_decref(job);
  job = h_wait_job(h.ex, b, 10000);
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "x")), 5);
  json_decref(job);
  h_close(&h);
}

/* What spe_call_job_id/job_name/task/attempt tell a function. */
static void the_call_context(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  json_t *job = h_runq(&h, "{'name':'ctx job','tasks':[{'name':'who','exec':'context'},"
                           "{'name':'again','exec':'flaky','retries':1}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  json_t *who = h_task_result(job, "who");
  assert_string_equal(json_string_value(json_object_get(who, "job_id")), h_job_id(job));
  assert_string_equal(json_string_value(json_object_get(who, "job_name")), "ctx job");
  assert_string_equal(json_string_value(json_object_get(who, "task")), "who");
  assert_int_equal(json_integer_value(json_object_get(who, "attempt")), 1);
  /* Attempt 1 reported a failure; attempt 2 ran and says so. */
  json_t *again = h_task_result(job, "again");
  assert_string_equal(json_string_value(json_object_get(again, "task")), "again");
  assert_string_equal(json_string_value(json_object_get(again, "job_id")), h_job_id(job));
  assert_int_equal(json_integer_value(json_object_get(again, "attempt")), 2);
  assert_int_equal(h_task_int(job, "again", "attempts"), 2);
  const char *id = h_job_id(job);
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  json_t *ended = h_events(&h, id, "task_terminated", "again");
  assert_int_equal(json_array_size(ended), 2);
  json_t *first = json_array_get(ended, 0);
  assert_string_equal(json_string_value(json_object_get(first, "status")), "failed");
  assert_true(json_is_integer(json_object_get(first, "retry_in_ms")));
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(first, "error"), "message")),
      "attempt 1 fails");
  json_decref(ended);
  json_t *started = h_events(&h, id, "task_started", "again");
  assert_int_equal(json_array_size(started), 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(started, 0), "attempt")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(started, 1), "attempt")), 2);
  json_decref(started);
  json_decref(job);
  h_close(&h);
}

/* A cancel stops running functions (process isolation: their workers are
 * killed; thread isolation: reported at once, and the endless loop sees
 * spe_call_cancelled()), and a close with a function running returns. */
static void cancel_and_close_stop_functions(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  char id[SPE_ID_SIZE];
  char *text = h_unquote("{'name':'j','tasks':[{'name':'long','exec':'loop','enables':['b']},"
                         "{'name':'b','exec':'sum'},{'name':'c','exec':'loop'}]}");
  h_submit_start(&h, text, id);
  free(text);
  assert_int_equal(h_await_events(&h, id, "task_started", 2, 5000), 2);
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  json_t *job = h_wait_job(h.ex, id, 10000);
  assert_string_equal(h_job_status(job), "cancelled");
  assert_string_equal(h_task_error_kind(job, "long"), "cancelled");
  assert_string_equal(h_task_error_kind(job, "c"), "cancelled");
  assert_string_equal(h_task_status(job, "b"), "not_run");
  json_decref(job);

  text = h_unquote("{'name':'k','tasks':[{'name':'endless','exec':'loop'}]}");
  h_submit_start(&h, text, id);
  free(text);
  assert_int_equal(h_await_events(&h, id, "task_started", 1, 5000), 1);
  int64_t t0 = cli_mono_ms();
  spe_close(h.ex);
  int64_t took = cli_mono_ms() - t0;
  /* SIGTERM ends the worker at once; the pool's loop notices within a
   * millisecond. Far below the 5 s grace time either way. */
  if (took > 3000) fail_msg("close took %lld ms", (long long)took);
  assert_int_equal(h_count_events(&h, id, "job_finished", NULL), 0);
  h.ex = NULL;
  h_close(&h);
}

/* One worker busy with an endless call, four more tasks ready behind it (in
 * thread isolation they are queued ahead, in the pool): a cancel leaves them
 * not_run, never started - no attempt, no task_started event. */
static void cancel_leaves_waiting_calls_unstarted(void **state) {
  struct harness h;
  tf_open(&h, 1, isolation_of(state));
  char id[SPE_ID_SIZE];
  char *text = h_unquote("{'name':'j','tasks':[{'name':'long','exec':'loop'},"
                         "{'name':'b1','exec':'sum','arg':1},{'name':'b2','exec':'sum','arg':2},"
                         "{'name':'b3','exec':'sum','arg':3},{'name':'b4','exec':'sum','arg':4}]}");
  h_submit_start(&h, text, id);
  free(text);
  assert_int_equal(h_await_events(&h, id, "task_started", 1, 5000), 1);
  assert_int_equal(h_count_events(&h, id, "task_started", "long"), 1);
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 10000), 0);
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  json_t *job = NULL;
  assert_int_equal(spe_job_get(h.ex, id, &job, NULL), 0);
  assert_string_equal(h_job_status(job), "cancelled");
  assert_string_equal(h_task_error_kind(job, "long"), "cancelled");
  const char *waiting[] = {"b1", "b2", "b3", "b4"};
  for (int i = 0; i < 4; i++) {
    assert_string_equal(h_task_status(job, waiting[i]), "not_run");
    json_t *t = json_object_get(json_object_get(job, "tasks"), waiting[i]);
    assert_null(json_object_get(t, "started_ms"));
    assert_int_equal(h_count_events(&h, id, "task_started", waiting[i]), 0);
  }
  assert_int_equal(h_count_events(&h, id, "task_started", NULL), 1);
  json_decref(job);
  h_close(&h);
}

/* Thread isolation: a call that timed out goes on, and may read its input
 * (its ancestors' results) after its job has finished: the job is not pruned
 * before the call is over, and the call reads what the ancestors returned. */
static void abandoned_call_keeps_its_job(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  tf_late_reset();
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','exec':'sum','arg':5,'enables':['b']},"
                           "{'name':'b','exec':'late_input','timeout':100}]}");
  assert_string_equal(h_job_status(job), "failed");
  assert_string_equal(h_task_error_kind(job, "b"), "timeout");
  int64_t later = cli_wall_ms() + 60000;
  size_t pruned = 99;
  assert_int_equal(spe_prune(h.ex, later, &pruned, NULL), 0);
  assert_int_equal(pruned, 0); /* b's call still runs */
  tf_late_release();
  /* Nothing announces the end of an abandoned call: ask until it is over. */
  int64_t deadline = cli_mono_ms() + 10000;
  while (pruned == 0 && cli_mono_ms() < deadline) {
    struct timespec nap = {0, 2000000};
    nanosleep(&nap, NULL);
    assert_int_equal(spe_prune(h.ex, later, &pruned, NULL), 0);
  }
  assert_int_equal(pruned, 1);
  char *read = tf_late_read();
  assert_non_null(read);
  assert_string_equal(read, "{\"a\":5}");
  free(read);
  json_decref(job);
  h_close(&h);
}

/* A close while tasks wait behind a busy worker (in thread isolation, calls
 * queued ahead in the pool) leaves them pending in the store: reopened, the
 * job resumes and each of them runs once, as its first attempt. */
static void close_leaves_waiting_calls_pending(void **state) {
  char name[64];
  snprintf(name, sizeof name, "functions_close.%d.%ld", isolation_of(state), (long)getpid());
  char *dir = cli_fresh_dir(name);
  char url[1200];
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir);
  spe_registry *reg = tf_registry();
  spe_options o;
  spe_options_init(&o);
  o.workers = 1;
  o.functions = reg;
  o.isolation = isolation_of(state);
  o.store_url = url;
  struct harness h;
  h_open_opts(&h, &o);
  char id[SPE_ID_SIZE];
  char *text = h_unquote("{'name':'j','tasks':[{'name':'first','exec':'sleep','arg':300},"
                         "{'name':'b1','exec':'context'},{'name':'b2','exec':'context'},"
                         "{'name':'b3','exec':'context'},{'name':'b4','exec':'context'}]}");
  h_submit_start(&h, text, id);
  free(text);
  assert_int_equal(h_await_events(&h, id, "task_started", 1, 5000), 1);
  assert_int_equal(h_count_events(&h, id, "task_started", "first"), 1);
  h_close(&h); /* `first` is interrupted; b1..b4 have not started */

  h_open_opts(&h, &o); /* recovered: the job goes on by itself */
  spe_registry_free(reg);
  json_t *job = h_wait_job(h.ex, id, 10000);
  assert_string_equal(h_job_status(job), "succeeded");
  /* Events reach the subscriber after the job is seen finished. */
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  const char *waiting[] = {"b1", "b2", "b3", "b4"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(h_task_int(job, waiting[i], "attempts"), 1);
    json_t *ctx = h_task_result(job, waiting[i]);
    assert_int_equal(json_integer_value(json_object_get(ctx, "attempt")), 1);
    assert_int_equal(h_count_events(&h, id, "task_started", waiting[i]), 1);
  }
  json_decref(job);
  h_close(&h);
  cli_remove_dir(dir);
  free(dir);
}

/* Commands and functions on 2 workers, several jobs at once: replayed in seq
 * order (the order a subscriber or `spe watch` sees), the events never show
 * more than 2 tasks running - not even for a moment, when a call gives its
 * worker to a command. */
static void events_never_show_more_than_workers(void **state) {
  struct harness h;
  tf_open(&h, 2, isolation_of(state));
  enum { JOBS = 8, TASKS = 32 };
  char ids[JOBS][SPE_ID_SIZE];
  for (int j = 0; j < JOBS; j++) {
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"name\":\"mix%d\",\"tasks\":[", j);
    for (int t = 0; t < TASKS; t++)
      n += (size_t)snprintf(text + n, sizeof text - n,
                            t % 2 ? "%s{\"name\":\"t%d\",\"argv\":[\"true\"]}"
                                  : "%s{\"name\":\"t%d\",\"exec\":\"sum\",\"arg\":1}",
                            t ? "," : "", t);
    snprintf(text + n, sizeof text - n, "]}");
    h_submit_start(&h, text, ids[j]);
  }
  for (int j = 0; j < JOBS; j++) assert_int_equal(spe_wait(h.ex, ids[j], 30000), 0);
  assert_int_equal(h_await_events(&h, NULL, "job_finished", JOBS, 10000), JOBS);
  json_t *events = h_events(&h, NULL, NULL, NULL);
  int running = 0, most = 0, started = 0;
  json_int_t last_seq = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    assert_true(seq > last_seq); /* delivered in seq order */
    last_seq = seq;
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (strcmp(type, "task_started") == 0) {
      started++;
      if (++running > most) most = running;
    } else if (strcmp(type, "task_terminated") == 0) {
      running--;
    }
  }
  json_decref(events);
  assert_int_equal(started, JOBS * TASKS);
  assert_int_equal(running, 0);
  if (most > 2) fail_msg("%d tasks running at once in the events, with 2 workers", most);
  h_close(&h);
}

#define FUNCTION_TESTS(iso)                                                    \
  cmocka_unit_test_prestate(bad_jobs_are_refused, iso),                        \
      cmocka_unit_test_prestate(good_job_and_same_name_twice, iso),            \
      cmocka_unit_test_prestate(results_3_and_1_plus_2_and_3_plus_7, iso),     \
      cmocka_unit_test_prestate(division_by_zero_is_an_error, iso),            \
      cmocka_unit_test_prestate(misbehaving_functions_fail_alone, iso),        \
      cmocka_unit_test_prestate(results_flow_downstream, iso),                 \
      cmocka_unit_test_prestate(failed_or_timed_out_upstream_blocks, iso),     \
      cmocka_unit_test_prestate(hundred_tasks_and_hundred_jobs, iso),          \
      cmocka_unit_test_prestate(two_jobs_on_ten_workers, iso),                 \
      cmocka_unit_test_prestate(the_call_context, iso),                        \
      cmocka_unit_test_prestate(cancel_and_close_stop_functions, iso),         \
      cmocka_unit_test_prestate(cancel_leaves_waiting_calls_unstarted, iso),   \
      cmocka_unit_test_prestate(close_leaves_waiting_calls_pending, iso),      \
      cmocka_unit_test_prestate(events_never_show_more_than_workers, iso)

int main(void) {
  static int process = SPE_ISOLATION_PROCESS, thread = SPE_ISOLATION_THREAD;
  const struct CMUnitTest in_processes[] = {FUNCTION_TESTS(&process)};
  const struct CMUnitTest in_threads[] = {
      FUNCTION_TESTS(&thread),
      cmocka_unit_test_prestate(abandoned_call_keeps_its_job, &thread),
  };
  int failed = cmocka_run_group_tests_name("process isolation", in_processes, NULL, NULL);
  failed += cmocka_run_group_tests_name("thread isolation", in_threads, NULL, NULL);
  return failed;
}
