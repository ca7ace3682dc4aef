/* The engine through the public API, with command tasks: the seed system's
 * scenarios, and the engine's own rules (readiness, priority, retries, not_run,
 * the worker limit, cancel, shutdown, events). Job texts use ' for " (h_runq). */
#include "support/api_util.h"
#include "support/cli_util.h"

#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* A task command that prints the sum of the numbers in its input plus `add`
 * (tests/scripts/sum.sh; SPE_SOURCE_DIR is in the test's environment, which
 * tasks inherit). */
#define SUM_PLUS(add) "sh $SPE_SOURCE_DIR/tests/scripts/sum.sh " #add

static void bad_jobs_are_refused(void **state) {
  struct harness h;
  h_open(&h, 2);
  static const struct {
    const char *text, *msg;
  } cases[] = {
      {"[]", "a job must be a JSON object"},
      {"{\"tasks\":[{\"name\":\"a\",\"cmd\":\"true\"}]}", "\"name\""},
      {"{\"name\":\"j\",\"tasks\":[]}", "\"tasks\""},
      {"{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"true\",\"enables\":[\"z\"]}]}",
       "task \"a\": enables unknown task \"z\""},
      {"{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"true\",\"enables\":[\"a\"]}]}",
       "dependency cycle: a -> a"},
      {"{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"exec\":\"f\"}]}",
       "task \"a\": exec function \"f\" is not registered"},
      {"", "empty"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char id[SPE_ID_SIZE];
    char *msg = NULL;
    int rc = spe_submit_text(h.ex, cases[i].text, strlen(cases[i].text), id, &msg);
    assert_int_equal(rc, SPE_EJOB);
    assert_non_null(msg);
    if (strstr(msg, cases[i].msg) == NULL) fail_msg("case %zu: message \"%s\"", i, msg);
    free(msg);
  }
  /* Nothing was stored, so nothing was published. */
  assert_int_equal(h_count_events(&h, NULL, NULL, NULL), 0);
  h_close(&h);
}

static void good_job_and_same_name_twice(void **state) {
  struct harness h;
  h_open(&h, 2);
  const char *text = "{'name':'nisse','tasks':[{'name':'t','cmd':'echo 3'}]}";
  json_t *a = h_runq(&h, text);
  json_t *b = h_runq(&h, text);
  assert_string_equal(h_job_status(a), "succeeded");
  assert_string_equal(h_job_status(b), "succeeded");
  assert_string_not_equal(json_string_value(json_object_get(a, "id")),
                          json_string_value(json_object_get(b, "id")));
  assert_int_equal(json_integer_value(h_task_result(a, "t")), 3);
  assert_int_equal(h_task_int(a, "t", "attempts"), 1);
  json_decref(a);
  json_decref(b);
  h_close(&h);
}

static void failing_task(void **state) {
  struct harness h;
  h_open(&h, 2);
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'t','cmd':'echo oops >&2; exit 3'}]}");
  assert_string_equal(h_job_status(job), "failed");
  assert_string_equal(h_task_status(job, "t"), "failed");
  json_t *err = json_object_get(json_object_get(json_object_get(job, "tasks"), "t"), "error");
  assert_string_equal(json_string_value(json_object_get(err, "kind")), "exit");
  assert_int_equal(json_integer_value(json_object_get(err, "exit_code")), 3);
  assert_non_null(strstr(json_string_value(json_object_get(err, "stderr")), "oops"));
  json_decref(job);
  h_close(&h);
}

static void two_independent_tasks_one_worker(void **state) {
  struct harness h;
  h_open(&h, 1);
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'echo 1'},"
                           "{'name':'b','cmd':'echo 2'}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "a")), 1);
  assert_int_equal(json_integer_value(h_task_result(job, "b")), 2);
  json_decref(job);
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','argv':['echo','3']},"
                   "{'name':'b','argv':['sh','-c','echo $((3+4))']}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "a")), 3);
  assert_int_equal(json_integer_value(h_task_result(job, "b")), 7);
  json_decref(job);
  h_close(&h);
}

static void misbehaving_tasks_fail_alone(void **state) {
  struct harness h;
  h_open(&h, 4);
  json_t *job = h_runq(&h, "{'name':'j','tasks':["
                           "{'name':'kill','cmd':'kill -KILL $$'},"
                           "{'name':'term','cmd':'kill -TERM $$'},"
                           "{'name':'exit','cmd':'exit 2'},"
                           "{'name':'segv','cmd':'kill -SEGV $$'},"
                           "{'name':'fine','cmd':'echo 5'}]}");
  assert_string_equal(h_job_status(job), "failed");
  assert_string_equal(h_task_error_kind(job, "kill"), "crashed");
  assert_string_equal(h_task_error_kind(job, "term"), "crashed");
  assert_string_equal(h_task_error_kind(job, "exit"), "exit");
  assert_string_equal(h_task_error_kind(job, "segv"), "crashed");
  json_t *tasks = json_object_get(job, "tasks");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(json_object_get(tasks, "kill"), "error"), "signal")),
                   9);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(json_object_get(tasks, "segv"), "error"), "signal")),
                   11);
  assert_int_equal(json_integer_value(h_task_result(job, "fine")), 5);
  json_decref(job);
  /* The executor is alive and runs the next job. */
  job = h_runq(&h, "{'name':'after','tasks':[{'name':'t','cmd':'echo 1'}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  json_decref(job);
  h_close(&h);
}

static void results_flow_downstream(void **state) {
  struct harness h;
  h_open(&h, 2);
  /* 7 -> 9 */
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'seven','cmd':'echo 7',"
                           "'enables':['nine']},{'name':'nine','cmd':'" SUM_PLUS(2) "'}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "nine")), 9);
  json_decref(job);
  /* 7 + 17 + 2 = 26 */
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'echo 7','enables':['sum']},"
                   "{'name':'b','cmd':'echo 17','enables':['sum']},"
                   "{'name':'sum','cmd':'" SUM_PLUS(2) "'}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "sum")), 26);
  json_decref(job);
  /* 17 -> 21 -> 40: the last reads both ancestors (17 + 21 + 2). */
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'echo 17','enables':['b']},"
                   "{'name':'b','cmd':'" SUM_PLUS(4) "','enables':['c']},"
                   "{'name':'c','cmd':'" SUM_PLUS(2) "'}]}");
  assert_int_equal(json_integer_value(h_task_result(job, "b")), 21);
  assert_int_equal(json_integer_value(h_task_result(job, "c")), 40);
  json_decref(job);
  /* The input names every ancestor, as an object of results. */
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'echo \\\"x\\\"','enables':['b']},"
                   "{'name':'b','cmd':'echo [1]','enables':['c']},{'name':'c','cmd':'cat'}]}");
  json_t *want = json_pack("{s:s, s:[i]}", "a", "x", "b", 1);
  assert_true(json_equal(h_task_result(job, "c"), want));
  json_decref(want);
  json_decref(job);
  h_close(&h);
}

static void failure_blocks_downstream_only(void **state) {
  struct harness h;
  h_open(&h, 2);
  json_t *job = h_runq(&h, "{'name':'j','tasks':["
                           "{'name':'bad','cmd':'exit 1','enables':['mid']},"
                           "{'name':'mid','cmd':'echo 1','enables':['end']},"
                           "{'name':'end','cmd':'echo 1'},"
                           "{'name':'other','cmd':'echo 2'}]}");
  assert_string_equal(h_job_status(job), "failed");
  assert_string_equal(h_task_status(job, "mid"), "not_run");
  assert_string_equal(h_task_status(job, "end"), "not_run");
  json_t *tasks = json_object_get(job, "tasks");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(tasks, "end"), "blocked_by")), "bad");
  assert_string_equal(h_task_status(job, "other"), "succeeded");
  const char *id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  assert_int_equal(h_count_events(&h, id, "task_not_run", NULL), 2);
  assert_int_equal(h_count_events(&h, id, "task_started", "mid"), 0);
  json_decref(job);
  h_close(&h);
}

static void timeouts_kill_and_block(void **state) {
  struct harness h;
  h_open(&h, 2);
  int64_t t0 = cli_mono_ms();
  json_t *job = h_runq(&h, "{'name':'j','tasks':["
                           "{'name':'slow','cmd':'sleep 2','timeout':200,'enables':['after']},"
                           "{'name':'sleeper','cmd':'sleep 1','timeout':200,'enables':['x']},"
                           "{'name':'after','cmd':'echo 1'},{'name':'x','cmd':'echo 1'}]}");
  int64_t took = cli_mono_ms() - t0;
  assert_string_equal(h_task_error_kind(job, "slow"), "timeout");
  assert_string_equal(h_task_error_kind(job, "sleeper"), "timeout");
  assert_string_equal(h_task_status(job, "after"), "not_run");
  assert_string_equal(h_task_status(job, "x"), "not_run");
  if (took > 1000) fail_msg("timeouts took %lld ms", (long long)took);
  json_decref(job);
  h_close(&h);
}

static void many_tasks_and_jobs(void **state) {
  struct harness h;
  h_open(&h, 4);
  /* 100 independent tasks. */
  size_t cap = 100 * 64 + 64, len = 0;
  char *text = malloc(cap);
  len += (size_t)snprintf(text + len, cap - len, "{\"name\":\"wide\",\"tasks\":[");
  for (int i = 0; i < 100; i++)
    len += (size_t)snprintf(text + len, cap - len, "%s{\"name\":\"t%d\",\"argv\":[\"echo\",\"%d\"]}",
                            i ? "," : "", i, i);
  snprintf(text + len, cap - len, "]}");
  json_t *job = h_run(&h, text);
  free(text);
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "t99")), 99);
  json_decref(job);

  /* 100 jobs at once, then wait for all. */
  char ids[100][SPE_ID_SIZE];
  for (int i = 0; i < 100; i++) {
    char buf[128];
    snprintf(buf, sizeof buf, "{\"name\":\"job%d\",\"tasks\":[{\"name\":\"t\",\"cmd\":\"echo %d\"}]}",
             i, i);
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

/* A task with more upstream tasks than its count's byte holds (255 and
 * more: engine_impl.h, SPE_WAIT_BIG) waits for every one of them, like one
 * with 254. */
static void wide_fan_in(void **state) {
  struct harness h;
  h_open(&h, 4);
  size_t cap = 300 * 128 + 3 * 3000, len = 0;
  char *text = malloc(cap);
  len += (size_t)snprintf(text + len, cap - len, "{\"name\":\"fan\",\"tasks\":[");
  /* r253 and r254 start last (file order) and end last, 300 and 600 ms
   * after the others: a collector started when its count came to 1 rather
   * than 0 would find one of them missing. */
  for (int i = 0; i < 300; i++)
    len += (size_t)snprintf(text + len, cap - len,
                            "{\"name\":\"r%d\",\"argv\":[\"sh\",\"-c\",\"%secho %d\"],"
                            "\"enables\":[\"c300\"%s%s]},",
                            i, i == 253 ? "sleep 0.3; " : i == 254 ? "sleep 0.6; " : "", i,
                            i < 254 ? ",\"c254\"" : "", i < 255 ? ",\"c255\"" : "");
  len += (size_t)snprintf(text + len, cap - len,
                          "{\"name\":\"c254\",\"cmd\":\"cat\"},{\"name\":\"c255\",\"cmd\":\"cat\"},"
                          "{\"name\":\"c300\",\"cmd\":\"cat\"}]}");
  assert_true(len < cap);
  json_t *job = h_run(&h, text);
  free(text);
  assert_string_equal(h_job_status(job), "succeeded");
  const char *names[] = {"c254", "c255", "c300"};
  size_t want[] = {254, 255, 300};
  for (int k = 0; k < 3; k++) {
    /* `cat`: its input, every upstream task's result - each one there,
     * which it is only if the task started after all of them ended (a
     * result not there yet is null). */
    json_t *in = h_task_result(job, names[k]);
    assert_true(json_is_object(in));
    assert_int_equal(json_object_size(in), want[k]);
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
      if (!json_is_integer(v)) fail_msg("%s started before %s ended", names[k], key);
      assert_int_equal(json_integer_value(v), atoi(key + 1));
    }
  }
  json_decref(job);
  h_close(&h);
}

static void two_jobs_on_ten_workers(void **state) {
  struct harness h;
  h_open(&h, 10);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  char *ja = h_unquote("{'name':'a','tasks':[{'name':'x','cmd':'echo 1','enables':['y']},"
                       "{'name':'y','cmd':'" SUM_PLUS(1) "'}]}");
  char *jb = h_unquote("{'name':'b','tasks':[{'name':'x','cmd':'echo 5'}]}");
  h_submit_start(&h, ja, a);
  h_submit_start(&h, jb, b);
  free(ja);
  free(jb);
  json_t *job = h_wait_job(h.ex, a, 10000);
  assert_int_equal(json_integer_value(h_task_result(job, "y")), 2);
  json_decref(job);
  job = h_wait_job(h.ex, b, 10000);
  assert_int_equal(json_integer_value(h_task_result(job, "x")), 5);
  json_decref(job);
  h_close(&h);
}

/* Start and end of a task, from its events. */
static void task_span(struct harness *h, const char *id, const char *task, json_int_t *start,
                      json_int_t *end) {
  *start = h_event_time(h, id, "task_started", task);
  *end = h_event_time(h, id, "task_terminated", task);
  assert_true(*start > 0 && *end >= *start);
}

static void worker_limit_from_events(void **state) {
  struct harness h;
  json_int_t s1, e1, s2, e2;
  /* One worker: the two sleeps never overlap. */
  h_open(&h, 1);
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'sleep 0.5'},"
                           "{'name':'b','cmd':'sleep 0.6'}]}");
  const char *id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  task_span(&h, id, "a", &s1, &e1);
  task_span(&h, id, "b", &s2, &e2);
  assert_true(e1 - s1 >= 500 && e2 - s2 >= 600);
  assert_true(s2 >= e1 || s1 >= e2);
  json_decref(job);
  h_close(&h);

  /* Two workers: two 0.5 s sleeps overlap; the span is 500-750 ms. */
  h_open(&h, 2);
  job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'sleep 0.5'},"
                   "{'name':'b','cmd':'sleep 0.5'}]}");
  id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  task_span(&h, id, "a", &s1, &e1);
  task_span(&h, id, "b", &s2, &e2);
  json_int_t span = (e1 > e2 ? e1 : e2) - (s1 < s2 ? s1 : s2);
  if (span < 500 || span > 750) fail_msg("span %lld ms", (long long)span);
  json_decref(job);
  h_close(&h);
}

static void priority_then_file_order(void **state) {
  struct harness h;
  h_open(&h, 1);
  json_t *job = h_runq(&h, "{'name':'j','priority':['d','c'],'tasks':["
                           "{'name':'a','cmd':'true'},{'name':'b','cmd':'true'},"
                           "{'name':'c','cmd':'true'},{'name':'d','cmd':'true'}]}");
  const char *id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  const char *want[] = {"d", "c", "a", "b"};
  int k = 0;
  size_t i;
  json_t *ev;
  pthread_mutex_lock(&h.rec.lock);
  json_array_foreach(h.rec.events, i, ev) {
    if (strcmp(json_string_value(json_object_get(ev, "type")), "task_started") != 0) continue;
    assert_true(k < 4);
    assert_string_equal(json_string_value(json_object_get(ev, "task")), want[k++]);
  }
  pthread_mutex_unlock(&h.rec.lock);
  assert_int_equal(k, 4);
  json_decref(job);
  h_close(&h);
}

/* Between jobs, by blocks of SPE_READY_BLOCK (64) ranks: the job whose first
 * ready task is in the lower block first, then the job started first; within
 * a job, rank order, and a `priority` task that becomes ready late goes
 * before the others at once. One worker; job A (a0..a69, all roots) starts
 * first; job B starts while a0 sleeps (1 s: time enough under valgrind). B's
 * ranks: z 0, x 1, y 2. So A's block 0 (a1..a63) goes first, then B's block
 * 0 (x, then z freed by x, then y), then A's block 1 (a64..a69). */
static void ready_order_between_jobs(void **state) {
  struct harness h;
  h_open(&h, 1);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  char text[4096] = "{\"name\":\"A\",\"tasks\":[{\"name\":\"a0\",\"cmd\":\"sleep 1\"}";
  for (int i = 1; i < 70; i++)
    snprintf(text + strlen(text), sizeof text - strlen(text),
             ",{\"name\":\"a%d\",\"cmd\":\"true\"}", i);
  strcat(text, "]}");
  h_submit_start(&h, text, a);
  assert_int_equal(h_recorder_await(&h.rec, a, "task_started", 1, 5000), 1);
  char *btext = h_unquote("{'name':'B','priority':['z'],'tasks':[{'name':'x','cmd':'true',"
                          "'enables':['z']},{'name':'y','cmd':'true'},{'name':'z','cmd':'true'}]}");
  h_submit_start(&h, btext, b);
  free(btext);
  assert_int_equal(h_await_events(&h, b, "job_finished", 1, 10000), 1);
  assert_int_equal(h_await_events(&h, a, "job_finished", 1, 10000), 1);
  char order[1024] = "", want[1024] = "";
  json_t *started = h_events(&h, NULL, "task_started", NULL);
  size_t i;
  json_t *ev;
  json_array_foreach(started, i, ev) {
    const char *job = json_string_value(json_object_get(ev, "job"));
    snprintf(order + strlen(order), sizeof order - strlen(order), "%s%s", i ? " " : "",
             json_string_value(json_object_get(ev, "task")));
    assert_true(strcmp(job, a) == 0 || strcmp(job, b) == 0);
  }
  json_decref(started);
  for (int k = 0; k < 64; k++) snprintf(want + strlen(want), sizeof want - strlen(want), "a%d ", k);
  strcat(want, "x z y");
  for (int k = 64; k < 70; k++) snprintf(want + strlen(want), sizeof want - strlen(want), " a%d", k);
  assert_string_equal(order, want);
  h_close(&h);
}

static void retries_with_backoff(void **state) {
  struct harness h;
  h_open(&h, 2); /* backoff base 50 ms: waits of 50 then 100 ms */
  char dir[] = "/tmp/spe-retry-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char text[512];
  snprintf(text, sizeof text,
           "{\"name\":\"j\",\"tasks\":[{\"name\":\"flaky\",\"retries\":3,\"cwd\":\"%s\","
           "\"cmd\":\"echo x >> n; test $(wc -l < n) -ge 3 && echo ok\"},"
           "{\"name\":\"never\",\"retries\":1,\"cmd\":\"exit 4\"}]}",
           dir);
  json_t *job = h_run(&h, text);
  assert_string_equal(h_task_status(job, "flaky"), "succeeded");
  assert_string_equal(json_string_value(h_task_result(job, "flaky")), "ok");
  assert_int_equal(h_task_int(job, "flaky", "attempts"), 3);
  assert_string_equal(h_task_status(job, "never"), "failed");
  assert_int_equal(h_task_int(job, "never", "attempts"), 2);
  const char *id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  assert_int_equal(h_count_events(&h, id, "task_started", "flaky"), 3);
  assert_int_equal(h_count_events(&h, id, "task_terminated", "flaky"), 3);
  /* The third attempt starts at least 50 + 100 ms after the first ended. */
  json_int_t first_end = h_event_time(&h, id, "task_terminated", "flaky");
  json_int_t last_start = h_task_int(job, "flaky", "started_ms");
  assert_true(last_start - first_end >= 150);
  json_decref(job);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  h_close(&h);
}

/* A cancel while a task waits out its backoff: the job ends at once, the task
 * becomes not_run and never starts again, and the job can be pruned: the
 * cancel stopped the timer, so nothing fires on the pruned job later (under
 * ASan a timer left behind would read freed memory when it fires). */
static void cancel_during_backoff(void **state) {
  struct harness h;
  spe_options o;
  spe_options_init(&o);
  o.workers = 1;
  o.retry_backoff_ms = 300;
  h_open_opts(&h, &o);
  char id[SPE_ID_SIZE];
  char *text = h_unquote("{'name':'j','tasks':[{'name':'a','cmd':'exit 1','retries':2}]}");
  h_submit_start(&h, text, id);
  free(text);
  assert_int_equal(h_await_events(&h, id, "task_terminated", 1, 5000), 1);
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 5000), 0);
  json_t *job = NULL;
  assert_int_equal(spe_job_get(h.ex, id, &job, NULL), 0);
  assert_string_equal(h_job_status(job), "cancelled");
  assert_string_equal(h_task_status(job, "a"), "not_run");
  json_decref(job);
  size_t pruned = 0;
  assert_int_equal(spe_prune(h.ex, INT64_MAX, &pruned, NULL), 0);
  assert_int_equal(pruned, 1);
  /* Nothing announces that a timer did not fire: stay open past the backoff. */
  struct timespec nap = {0, 600 * 1000000L};
  nanosleep(&nap, NULL);
  assert_int_equal(h_count_events(&h, id, "task_started", "a"), 1);
  h_close(&h);
}

static void events_follow_the_contract(void **state) {
  struct harness h;
  h_open(&h, 2);
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'echo 1','retries':1,"
                           "'enables':['b']},{'name':'b','cmd':'exit 1','enables':['c']},"
                           "{'name':'c','cmd':'true'}]}");
  const char *id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  pthread_mutex_lock(&h.rec.lock);
  json_int_t last = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(h.rec.events, i, ev) {
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    if (i > 0) assert_int_equal(seq, last + 1);
    last = seq;
    assert_true(json_integer_value(json_object_get(ev, "time_ms")) > 1700000000000LL);
  }
  pthread_mutex_unlock(&h.rec.lock);
  assert_int_equal(h_count_events(&h, id, "job_submitted", NULL), 1);
  assert_int_equal(h_count_events(&h, id, "job_started", NULL), 1);
  assert_int_equal(h_count_events(&h, id, "task_started", "a"), 1);
  assert_int_equal(h_count_events(&h, id, "task_terminated", "b"), 1);
  assert_int_equal(h_count_events(&h, id, "task_not_run", "c"), 1);
  assert_int_equal(h_count_events(&h, id, "job_finished", NULL), 1);
  json_decref(job);
  h_close(&h);
}

static void api_misuse_returns_errors(void **state) {
  struct harness h;
  h_open(&h, 1);
  char id[SPE_ID_SIZE];
  char *msg = NULL;
  assert_int_equal(spe_start(h.ex, "01ARZ3NDEKTSV4RRFFQ69G5FAV", &msg), SPE_ENOJOB);
  assert_non_null(msg);
  free(msg);
  msg = NULL;
  assert_int_equal(spe_wait(h.ex, "nope", 0), SPE_ENOJOB);
  assert_int_equal(spe_start(NULL, "x", NULL), SPE_EINVAL);
  assert_int_equal(spe_start(h.ex, NULL, NULL), SPE_EINVAL);
  assert_int_equal(spe_submit_text(h.ex, NULL, 0, id, NULL), SPE_EJOB);
  json_t *out = NULL;
  assert_int_equal(spe_job_get(h.ex, "nope", &out, NULL), SPE_ENOJOB);
  assert_null(out);

  const char *text = "{\"name\":\"j\",\"tasks\":[{\"name\":\"t\",\"cmd\":\"sleep 0.2\"}]}";
  assert_int_equal(spe_submit_text(h.ex, text, strlen(text), id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 10), SPE_ETIMEDOUT); /* submitted, not started */
  assert_int_equal(spe_job_get(h.ex, id, &out, NULL), 0);
  assert_string_equal(h_job_status(out), "submitted");
  assert_string_equal(h_task_status(out, "t"), "pending");
  json_decref(out);
  assert_int_equal(spe_start(h.ex, id, NULL), 0);
  assert_int_equal(spe_start(h.ex, id, &msg), SPE_ESTATE);
  assert_non_null(msg);
  free(msg);
  assert_int_equal(spe_wait(h.ex, id, 10000), 0);
  assert_int_equal(spe_cancel(h.ex, id, NULL), SPE_ESTATE);
  assert_string_equal(spe_strerror(SPE_ENOJOB), "no such job");
  assert_string_equal(spe_err_name(SPE_ENOJOB), "SPE_ENOJOB");
  h_close(&h);
  spe_close(NULL);
}

static void cancel_stops_running_tasks(void **state) {
  struct harness h;
  h_open(&h, 2);
  char id[SPE_ID_SIZE];
  char *text = h_unquote("{'name':'j','tasks':[{'name':'long','cmd':'sleep 30','enables':['b']},"
                         "{'name':'b','cmd':'true'},{'name':'c','cmd':'sleep 30'}]}");
  h_submit_start(&h, text, id);
  free(text);
  assert_int_equal(h_await_events(&h, id, "task_started", 2, 5000), 2);
  int64_t t0 = cli_mono_ms();
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 10000), 0);
  assert_true(cli_mono_ms() - t0 < 3000); /* sleep dies of SIGTERM at once */
  json_t *job = NULL;
  assert_int_equal(spe_job_get(h.ex, id, &job, NULL), 0);
  assert_string_equal(h_job_status(job), "cancelled");
  assert_string_equal(h_task_error_kind(job, "long"), "cancelled");
  assert_string_equal(h_task_error_kind(job, "c"), "cancelled");
  assert_string_equal(h_task_status(job, "b"), "not_run");
  json_decref(job);
  assert_int_equal(h_await_events(&h, id, "job_cancelled", 1, 5000), 1);

  /* A submitted job that never started can be cancelled too. */
  text = h_unquote("{'name':'j','tasks':[{'name':'t','cmd':'true'}]}");
  assert_int_equal(spe_submit_text(h.ex, text, strlen(text), id, NULL), 0);
  free(text);
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 5000), 0);
  assert_int_equal(spe_start(h.ex, id, NULL), SPE_ESTATE);
  h_close(&h);
}

static void shutdown_interrupts_running_tasks(void **state) {
  struct harness h;
  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  o.grace_ms = 300;
  h_open_opts(&h, &o);
  char id[SPE_ID_SIZE];
  /* The task ignores SIGTERM, so it takes the SIGKILL after the grace time. It
   * says it is ready (its trap is set) through a FIFO the test reads. */
  char dir[] = "/tmp/spe-shutdown-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char fifo[64], text[256];
  snprintf(fifo, sizeof fifo, "%s/ready", dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  snprintf(text, sizeof text,
           "{\"name\":\"j\",\"tasks\":[{\"name\":\"stubborn\","
           "\"cmd\":\"trap '' TERM; echo ready > %s; exec sleep 30\"}]}",
           fifo);
  h_submit_start(&h, text, id);
  FILE *f = fopen(fifo, "r"); /* blocks until the task opens it */
  assert_non_null(f);
  char line[16] = "";
  assert_non_null(fgets(line, sizeof line, f));
  fclose(f);
  assert_string_equal(line, "ready\n");
  unlink(fifo);
  rmdir(dir);
  int64_t t0 = cli_mono_ms();
  assert_int_equal(spe_shutdown(h.ex), 0);
  assert_int_equal(spe_wait(h.ex, id, 10000), SPE_ECLOSED);
  const char *more = "{\"name\":\"j\",\"tasks\":[{\"name\":\"t\",\"cmd\":\"true\"}]}";
  assert_int_equal(spe_submit_text(h.ex, more, strlen(more), id, NULL), SPE_ECLOSED);
  spe_close(h.ex);
  int64_t took = cli_mono_ms() - t0;
  if (took < 250 || took > 3000) fail_msg("shutdown took %lld ms", (long long)took);
  /* The attempt is reported as interrupted, not failed. */
  assert_int_equal(h_count_events(&h, id, "task_terminated", "stubborn"), 1);
  size_t i;
  json_t *ev;
  json_array_foreach(h.rec.events, i, ev) {
    if (strcmp(json_string_value(json_object_get(ev, "type")), "task_terminated") == 0)
      assert_string_equal(json_string_value(json_object_get(ev, "status")), "interrupted");
  }
  assert_int_equal(h_count_events(&h, id, "job_finished", NULL), 0);
  h.ex = NULL;
  h_close(&h);
}

/* The same engine on the SQLite store, whose commits run on the committer
 * thread: results flow, events keep their order, and a reopened store brings
 * back what was not finished, to be resumed by name and description. */
static void durable_store_round_trip(void **state) {
  char dir[] = "/tmp/spe-engine-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char url[128];
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir);
  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  o.store_url = url;
  struct harness h;
  h_open_opts(&h, &o);
  json_t *job = h_runq(&h, "{'name':'j','tasks':[{'name':'a','cmd':'echo 7','enables':['sum']},"
                           "{'name':'b','cmd':'echo 17','enables':['sum']},"
                           "{'name':'sum','cmd':'" SUM_PLUS(2) "','enables':['more']},"
                           "{'name':'more','cmd':'" SUM_PLUS(0) "'}]}");
  assert_string_equal(h_job_status(job), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "sum")), 26);
  assert_int_equal(json_integer_value(h_task_result(job, "more")), 50); /* 7 + 17 + 26 */
  const char *id = json_string_value(json_object_get(job, "id"));
  assert_int_equal(h_await_events(&h, id, "job_finished", 1, 5000), 1);
  pthread_mutex_lock(&h.rec.lock);
  size_t i;
  json_t *ev;
  json_array_foreach(h.rec.events, i, ev)
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), (json_int_t)i + 1);
  pthread_mutex_unlock(&h.rec.lock);
  json_decref(job);

  char *text = h_unquote("{'name':'later','tasks':[{'name':'t','cmd':'echo 5'}]}");
  char later[SPE_ID_SIZE], again[SPE_ID_SIZE];
  assert_int_equal(spe_submit_text(h.ex, text, strlen(text), later, NULL), 0);
  h_close(&h);

  h_open_opts(&h, &o);
  assert_int_equal(spe_job_get(h.ex, later, &job, NULL), 0);
  assert_string_equal(h_job_status(job), "submitted");
  json_decref(job);
  int resumed = 0;
  assert_int_equal(spe_submit_ex(h.ex, text, strlen(text), SPE_SUBMIT_RESUME, again, &resumed,
                                 NULL), 0);
  assert_int_equal(resumed, 1);
  assert_string_equal(again, later);
  /* Each recovered job is resumed once: the same text again is a new job. */
  char third[SPE_ID_SIZE];
  assert_int_equal(spe_submit_ex(h.ex, text, strlen(text), SPE_SUBMIT_RESUME, third, &resumed,
                                 NULL), 0);
  assert_int_equal(resumed, 0);
  assert_string_not_equal(third, later);
  assert_int_equal(spe_start(h.ex, later, NULL), 0);
  job = h_wait_job(h.ex, later, 10000);
  assert_int_equal(json_integer_value(h_task_result(job, "t")), 5);
  json_decref(job);
  h_close(&h);
  free(text);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* A function that notes that it was called (ctx: an atomic_int). */
static json_t *note_call(void *ctx, spe_call *call) {
  (void)call;
  atomic_store((atomic_int *)ctx, 1);
  return json_integer(1);
}

/* SPEC §5: a task whose input holds an upstream task's result starts only
 * once that result is durable (the engine keeps the round that freed it,
 * engine_impl.h). Here the commit that would record a's success fails
 * (SPE_STORE_FAULT): b, which a enables, must never be called. b is a
 * thread-isolated function, called within microseconds of being handed over,
 * where a commit takes milliseconds: started early, it would be seen. */
static void dependent_waits_for_its_inputs_commit(void **state) {
  char dir[] = "/tmp/spe-engine-XXXXXX";
  assert_non_null(mkdtemp(dir));
  atomic_int called = 0;
  spe_registry *reg = NULL;
  assert_int_equal(spe_registry_new(&reg), 0);
  assert_int_equal(spe_register(reg, "note", note_call, &called, NULL), 0);
  char url[128];
  const char *text = "{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"sleep 0.3; echo 1\","
                     "\"enables\":[\"b\"]},{\"name\":\"b\",\"exec\":\"note\"}]}";
  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  o.store_url = url;
  o.functions = reg;
  o.isolation = SPE_ISOLATION_THREAD;
  struct harness h;
  char id[SPE_ID_SIZE];

  /* Without a fault: how many commits there are once a has started (its
   * task_started is published after the commit that records it), and b is
   * called. */
  snprintf(url, sizeof url, "sqlite:%s/first.db", dir);
  h_open_opts(&h, &o);
  h_submit_start(&h, text, id);
  assert_int_equal(h_await_events(&h, id, "task_started", 1, 10000), 1);
  spe_stats st;
  assert_int_equal(spe_stats_get(h.ex, &st), 0);
  json_t *job = h_wait_job(h.ex, id, 10000);
  assert_string_equal(h_job_status(job), "succeeded");
  json_decref(job);
  h_close(&h);
  assert_int_equal(atomic_load(&called), 1);
  atomic_store(&called, 0);

  /* The same run on a new store, with every commit after those failing:
   * the first to fail is the one with a's success. */
  char fault[64];
  snprintf(fault, sizeof fault, "commit:%llu+", (unsigned long long)st.commits + 1);
  assert_int_equal(setenv("SPE_STORE_FAULT", fault, 1), 0);
  snprintf(url, sizeof url, "sqlite:%s/second.db", dir);
  h_open_opts(&h, &o);
  h_submit_start(&h, text, id);
  assert_int_equal(h_await_events(&h, id, "task_started", 1, 10000), 1);
  assert_int_equal(spe_wait(h.ex, id, 10000), SPE_ESTORE); /* the failed commit stops it */
  assert_int_equal(spe_failure(h.ex), SPE_ESTORE);
  spe_close(h.ex); /* every call is over, every event published is delivered */
  assert_int_equal(h_count_events(&h, id, "task_started", "b"), 0);
  h_recorder_free(&h.rec);
  assert_int_equal(unsetenv("SPE_STORE_FAULT"), 0);
  if (atomic_load(&called)) fail_msg("b was called before a's success was durable");

  spe_registry_free(reg);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_jobs_are_refused),
      cmocka_unit_test(good_job_and_same_name_twice),
      cmocka_unit_test(failing_task),
      cmocka_unit_test(two_independent_tasks_one_worker),
      cmocka_unit_test(misbehaving_tasks_fail_alone),
      cmocka_unit_test(results_flow_downstream),
      cmocka_unit_test(failure_blocks_downstream_only),
      cmocka_unit_test(timeouts_kill_and_block),
      cmocka_unit_test(many_tasks_and_jobs),
      cmocka_unit_test(wide_fan_in),
      cmocka_unit_test(two_jobs_on_ten_workers),
      cmocka_unit_test(worker_limit_from_events),
      cmocka_unit_test(priority_then_file_order),
      cmocka_unit_test(ready_order_between_jobs),
      cmocka_unit_test(retries_with_backoff),
      cmocka_unit_test(cancel_during_backoff),
      cmocka_unit_test(events_follow_the_contract),
      cmocka_unit_test(api_misuse_returns_errors),
      cmocka_unit_test(cancel_stops_running_tasks),
      cmocka_unit_test(shutdown_interrupts_running_tasks),
      cmocka_unit_test(durable_store_round_trip),
      cmocka_unit_test(dependent_waits_for_its_inputs_commit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
