/*
 * End-to-end scenarios of `spe run`: the seed system's test suite and the rest
 * of issue 2's list, as command tasks through the real program ($SPE_BIN).
 *
 * To keep the whole program fast, scenarios that need the same worker count run
 * together: one `spe run` with many job files, whose --json lines (in file
 * order) and events file each test then checks. Slow scenarios (timeouts,
 * sleeps) overlap inside those runs instead of adding up.
 */
#include "support/cli_util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

/* One `spe run` shared by a group of tests. */
struct shared_run {
  char *dir;
  struct cli_result r;
  json_t *jobs;   /* the --json lines, in file order */
  json_t *events; /* the events file */
};

/* Run `spe run --json --events events.ndjson EXTRA... FILES...` in `dir` (a
 * fresh directory made by cli_fresh_dir; the run takes it over); files are
 * names under tests/jobs/run/ or absolute paths. */
static void shared_run(struct shared_run *s, char *dir, const char *const *extra,
                       const char *const *files, size_t nfiles, int want_status) {
  memset(s, 0, sizeof *s);
  s->dir = dir;
  const char *args[64 + 8];
  size_t n = 0;
  args[n++] = "run";
  args[n++] = "--json";
  args[n++] = "--events";
  args[n++] = "events.ndjson";
  while (extra != NULL && *extra != NULL) args[n++] = *extra++;
  char *paths[64];
  assert_true(nfiles <= 64);
  for (size_t i = 0; i < nfiles; i++) {
    paths[i] = files[i][0] == '/' ? strdup(files[i]) : cli_job_path(files[i]);
    args[n++] = paths[i];
  }
  args[n] = NULL;
  cli_run(&s->r, s->dir, args);
  for (size_t i = 0; i < nfiles; i++) free(paths[i]);
  if (s->r.status != want_status)
    fail_msg("spe run exited with %d (want %d); stderr:\n%.3000s", s->r.status, want_status,
             s->r.err);
  s->jobs = cli_parse_ndjson(s->r.out);
  assert_int_equal(json_array_size(s->jobs), nfiles);
  char *ev_path = cli_path_join(s->dir, "events.ndjson");
  char *ev_text = cli_read_file(ev_path, NULL);
  assert_non_null(ev_text);
  s->events = cli_parse_ndjson(ev_text);
  free(ev_text);
  free(ev_path);
}

static void shared_free(struct shared_run *s) {
  cli_result_free(&s->r);
  json_decref(s->jobs);
  json_decref(s->events);
  free(s->dir);
}

static json_t *job_at(const struct shared_run *s, size_t i) {
  return json_array_get(s->jobs, i);
}

static const char *job_id(const json_t *job) {
  return json_string_value(json_object_get(job, "id"));
}

static void assert_job(const json_t *job, const char *name, const char *status) {
  assert_string_equal(json_string_value(json_object_get(job, "name")), name);
  assert_string_equal(json_string_value(json_object_get(job, "status")), status);
}

/* The most tasks seen running at once, replaying task_started/terminated. */
static int max_concurrency(const json_t *events) {
  int running = 0, most = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (strcmp(type, "task_started") == 0 && ++running > most) most = running;
    if (strcmp(type, "task_terminated") == 0) running--;
  }
  return most;
}

/* ---- The seed run: most scenarios, 4 workers ----------------------------- */

enum {
  S_GOOD, S_TWIN1, S_TWIN2, S_RETURNS3, S_FAILING, S_CRASHES, S_DOWNSTREAM, S_BLOCKED,
  S_TIMED_OUT, S_SLEEPER, S_TWO_UP, S_CHAIN, S_RETRIES, S_RESULTS, S_BIG, S_BACKGROUND,
  S_ENV, S_HUNDRED, S_COUNT
};

static struct shared_run seed;

/* A job of 100 independent tasks; task tN prints N. */
static char *write_hundred_tasks(const char *dir) {
  char *path = cli_path_join(dir, "hundred.json");
  size_t cap = 100 * 64 + 64, n = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  n += (size_t)snprintf(text + n, cap - n, "{\"name\": \"hundred\", \"tasks\": [");
  for (int i = 0; i < 100; i++)
    n += (size_t)snprintf(text + n, cap - n, "%s{\"name\": \"t%d\", \"argv\": [\"echo\", \"%d\"]}",
                          i > 0 ? ", " : "", i, i);
  snprintf(text + n, cap - n, "]}\n");
  cli_write_file(path, text);
  free(text);
  return path;
}

static int seed_setup(void **state) {
  (void)state;
  /* The hundred-task job is generated, in a directory of its own. */
  char *gen = cli_fresh_dir("seed-generated");
  char *hundred = write_hundred_tasks(gen);
  const char *files[S_COUNT] = {
      [S_GOOD] = "good.json", [S_TWIN1] = "twin.json", [S_TWIN2] = "twin.json",
      [S_RETURNS3] = "returns-3.json", [S_FAILING] = "failing.json",
      [S_CRASHES] = "crashes.json", [S_DOWNSTREAM] = "downstream.json",
      [S_BLOCKED] = "blocked.json", [S_TIMED_OUT] = "timed-out-upstream.json",
      [S_SLEEPER] = "sleeper.json", [S_TWO_UP] = "two-upstreams.json",
      [S_CHAIN] = "chain.json", [S_RETRIES] = "retries.json", [S_RESULTS] = "results.json",
      [S_BIG] = "big-output.json", [S_BACKGROUND] = "background.json",
      [S_ENV] = "environment.json", [S_HUNDRED] = hundred};
  /* The environment job works in jobdir and taskdir, relative to the
   * directory spe runs in. */
  char *dir = cli_fresh_dir("seed");
  char *jobdir = cli_path_join(dir, "jobdir");
  char *taskdir = cli_path_join(dir, "taskdir");
  assert_int_equal(mkdir(jobdir, 0755), 0);
  assert_int_equal(mkdir(taskdir, 0755), 0);
  free(jobdir);
  free(taskdir);
  const char *extra[] = {"--workers", "4", NULL};
  /* Some jobs fail on purpose: the exit status is 1. */
  shared_run(&seed, dir, extra, files, S_COUNT, 1);
  free(hundred);
  free(gen);
  return 0;
}

static int seed_teardown(void **state) {
  (void)state;
  shared_free(&seed);
  return 0;
}

static void results_come_in_file_order(void **state) {
  (void)state;
  static const char *const names[S_COUNT] = {
      "good", "twin", "twin", "returns-3", "failing", "crashes", "downstream", "blocked",
      "timed-out-upstream", "sleeper", "two-upstreams", "chain", "retries", "results",
      "big-output", "background", "environment", "hundred"};
  for (size_t i = 0; i < S_COUNT; i++)
    assert_string_equal(json_string_value(json_object_get(job_at(&seed, i), "name")), names[i]);
}

static void one_good_job(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_GOOD);
  assert_job(job, "good", "succeeded");
  assert_int_equal(strlen(job_id(job)), 26);
  assert_string_equal(json_string_value(cli_task_result(job, "hello")), "hello");
  /* shout's stdin is its input, {"hello": "hello"}, upper-cased by tr. */
  json_t *shout = cli_task_result(job, "shout");
  assert_string_equal(json_string_value(json_object_get(shout, "HELLO")), "HELLO");
  assert_int_equal(cli_task_int(job, "shout", "attempts"), 1);
  json_int_t sub = json_integer_value(json_object_get(job, "submitted_ms"));
  json_int_t start = json_integer_value(json_object_get(job, "started_ms"));
  json_int_t end = json_integer_value(json_object_get(job, "finished_ms"));
  assert_true(sub >= seed.r.start_ms - 1000 && sub <= start && start <= end);
  assert_true(end <= seed.r.end_ms + 1000);
  assert_true(cli_task_int(job, "hello", "finished_ms") <= cli_task_int(job, "shout", "started_ms"));
}

static void two_jobs_of_the_same_name(void **state) {
  (void)state;
  json_t *a = job_at(&seed, S_TWIN1), *b = job_at(&seed, S_TWIN2);
  assert_job(a, "twin", "succeeded");
  assert_job(b, "twin", "succeeded");
  assert_string_not_equal(job_id(a), job_id(b));
  assert_int_equal(json_integer_value(cli_task_result(a, "only")), 5);
  assert_int_equal(json_integer_value(cli_task_result(b, "only")), 5);
}

static void a_task_returning_3(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_RETURNS3);
  assert_job(job, "returns-3", "succeeded");
  assert_true(json_is_integer(cli_task_result(job, "three")));
  assert_int_equal(json_integer_value(cli_task_result(job, "three")), 3);
}

static void a_failing_task(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_FAILING);
  assert_job(job, "failing", "failed");
  assert_string_equal(cli_task_status(job, "fail"), "failed");
  assert_string_equal(cli_error_kind(job, "fail"), "exit");
  assert_int_equal(cli_error_int(job, "fail", "exit_code"), 1);
  json_t *err = json_object_get(cli_task(job, "fail"), "error");
  assert_non_null(strstr(json_string_value(json_object_get(err, "stderr")), "something broke"));
  assert_non_null(json_string_value(json_object_get(err, "message")));
}

static void tasks_that_crash_fail_alone(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_CRASHES);
  assert_job(job, "crashes", "failed");
  static const struct { const char *task; int sig; } crashed[] = {
      {"killed", SIGKILL}, {"terminated", SIGTERM}, {"segfault", SIGSEGV},
      {"broken-pipe", SIGPIPE}};
  for (size_t i = 0; i < sizeof crashed / sizeof *crashed; i++) {
    assert_string_equal(cli_task_status(job, crashed[i].task), "failed");
    assert_string_equal(cli_error_kind(job, crashed[i].task), "crashed");
    assert_int_equal(cli_error_int(job, crashed[i].task, "signal"), crashed[i].sig);
  }
  assert_string_equal(cli_error_kind(job, "nonzero"), "exit");
  assert_int_equal(cli_error_int(job, "nonzero", "exit_code"), 5);
  assert_string_equal(cli_task_status(job, "survivor"), "succeeded");
}

static void a_result_passed_downstream(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_DOWNSTREAM);
  assert_job(job, "downstream", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(job, "seven")), 7);
  assert_int_equal(json_integer_value(cli_task_result(job, "nine")), 9);
}

static void a_failed_upstream_blocks_everything_below(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_BLOCKED);
  assert_job(job, "blocked", "failed");
  assert_string_equal(cli_task_status(job, "up"), "failed");
  assert_string_equal(cli_task_status(job, "down"), "not_run");
  assert_string_equal(cli_task_status(job, "further"), "not_run");
  assert_string_equal(json_string_value(json_object_get(cli_task(job, "down"), "blocked_by")),
                      "up");
  assert_string_equal(
      json_string_value(json_object_get(cli_task(job, "further"), "blocked_by")), "up");
  assert_null(json_object_get(cli_task(job, "down"), "started_ms"));
  assert_int_equal(json_integer_value(cli_task_result(job, "aside")), 4);
  /* A task that never ran has no task_started event. */
  json_t *started = cli_events_where(seed.events, "task_started", job_id(job), "down");
  assert_int_equal(json_array_size(started), 0);
  json_decref(started);
}

/* A task killed by its timeout: failed with kind timeout soon after the limit,
 * and its dependent not_run right after. */
static void check_timed_out(const json_t *job, const char *slow, const char *after) {
  assert_string_equal(cli_task_status(job, slow), "failed");
  assert_string_equal(cli_error_kind(job, slow), "timeout");
  json_int_t ran = cli_task_int(job, slow, "finished_ms") - cli_task_int(job, slow, "started_ms");
  /* Killed at its timeout, well before its own end (2 s or 1 s of sleep). The
   * margin is wide for slow builds (sanitizers), where the 8 MB outputs of
   * the same run keep the engine's loop busy. */
  if (ran < 190 || ran > 1500) fail_msg("task \"%s\" ran %lld ms (timeout 200)", slow, (long long)ran);
  assert_string_equal(cli_task_status(job, after), "not_run");
  assert_string_equal(json_string_value(json_object_get(cli_task(job, after), "blocked_by")), slow);
  json_int_t tail = json_integer_value(json_object_get(job, "finished_ms")) -
                    cli_task_int(job, slow, "finished_ms");
  assert_true(tail >= 0 && tail < 500);
}

static void a_timed_out_upstream(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_TIMED_OUT);
  assert_job(job, "timed-out-upstream", "failed");
  check_timed_out(job, "slow", "after");
}

static void a_sleeper_past_its_timeout(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_SLEEPER);
  assert_job(job, "sleeper", "failed");
  check_timed_out(job, "sleep", "next");
}

static void two_upstreams(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_TWO_UP);
  assert_job(job, "two-upstreams", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(job, "sum")), 26);
}

static void a_transitive_chain(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_CHAIN);
  assert_job(job, "chain", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(job, "first")), 17);
  assert_int_equal(json_integer_value(cli_task_result(job, "second")), 21);
  assert_int_equal(json_integer_value(cli_task_result(job, "third")), 40);
}

static void retries_with_backoff(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_RETRIES);
  assert_job(job, "retries", "failed");
  assert_string_equal(cli_task_status(job, "flaky"), "succeeded");
  assert_int_equal(cli_task_int(job, "flaky", "attempts"), 3);
  assert_string_equal(json_string_value(cli_task_result(job, "flaky")), "ok after 3");
  assert_string_equal(cli_task_status(job, "hopeless"), "failed");
  assert_int_equal(cli_task_int(job, "hopeless", "attempts"), 2);
  assert_int_equal(cli_error_int(job, "hopeless", "exit_code"), 9);

  /* One task_started and one task_terminated per attempt. Each failed attempt
   * announces its backoff (100 ms, then twice that), and the next attempt
   * starts no sooner; it may start later when every worker is busy. */
  json_t *starts = cli_events_where(seed.events, "task_started", job_id(job), "flaky");
  json_t *ends = cli_events_where(seed.events, "task_terminated", job_id(job), "flaky");
  assert_int_equal(json_array_size(starts), 3);
  assert_int_equal(json_array_size(ends), 3);
  for (size_t i = 1; i < 3; i++) {
    json_t *s = json_array_get(starts, i), *e = json_array_get(ends, i - 1);
    assert_int_equal(json_integer_value(json_object_get(s, "attempt")), (json_int_t)i + 1);
    json_int_t backoff = json_integer_value(json_object_get(e, "retry_in_ms"));
    assert_int_equal(backoff, 100 << (i - 1));
    json_int_t gap = json_integer_value(json_object_get(s, "time_ms")) -
                     json_integer_value(json_object_get(e, "time_ms"));
    if (gap < backoff - 5 || gap > backoff + 2000)
      fail_msg("attempt %zu started %lld ms after attempt %zu failed (backoff %lld)", i + 1,
               (long long)gap, i, (long long)backoff);
  }
  assert_null(json_object_get(json_array_get(ends, 2), "retry_in_ms"));
  json_decref(starts);
  json_decref(ends);
}

static void results_are_json_or_strings(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_RESULTS);
  assert_job(job, "results", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(job, "number")), 42);
  json_t *want = json_pack("{s:[i,i], s:n}", "a", 1, 2, "b");
  assert_true(json_equal(cli_task_result(job, "object"), want));
  json_decref(want);
  assert_string_equal(json_string_value(cli_task_result(job, "json-string")), "quoted");
  assert_string_equal(json_string_value(cli_task_result(job, "text")), "hello world");
  assert_string_equal(json_string_value(cli_task_result(job, "two-values")), "1 2");
  assert_string_equal(json_string_value(cli_task_result(job, "lines")), "one\ntwo\n");
  assert_string_equal(json_string_value(cli_task_result(job, "no-newline")), "bare");
  assert_string_equal(json_string_value(cli_task_result(job, "empty")), "");
  json_t *input = cli_task_result(job, "input");
  assert_true(json_is_object(input) && json_object_size(input) == 0);
  assert_true(json_is_true(cli_task_result(job, "bool")));
}

static void large_output(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_BIG);
  json_t *big = cli_task_result(job, "eight-mb");
  assert_true(json_is_string(big));
  assert_int_equal(json_string_length(big), 8388608);
  assert_int_equal(json_string_value(big)[8388607], 'a');
  /* Past the 16 MiB cap: a failure that says so, not a hang or a crash. */
  assert_string_equal(cli_task_status(job, "too-big"), "failed");
  assert_string_equal(cli_error_kind(job, "too-big"), "error");
}

static int pid_file_gone(void *ctx) {
  const char *path = ctx;
  char *text = cli_read_file(path, NULL);
  if (text == NULL) return 0;
  int pid = atoi(text);
  free(text);
  return pid > 0 && cli_process_gone(pid);
}

static void a_background_child_does_not_hold_the_task(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_BACKGROUND);
  assert_job(job, "background", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(job, "leaves-child")), 1);
  json_int_t ran = cli_task_int(job, "leaves-child", "finished_ms") -
                   cli_task_int(job, "leaves-child", "started_ms");
  assert_true(ran < 1000);
  /* What was left of the task's process group was killed. */
  char *pid_path = cli_path_join(seed.dir, "background.pid");
  assert_true(cli_poll_until(pid_file_gone, pid_path, 2000));
  free(pid_path);
}

static void the_environment_of_a_task(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_ENV);
  assert_job(job, "environment", "succeeded");
  json_t *got = cli_task_result(job, "show");
  assert_true(json_is_object(got));
  assert_string_equal(json_string_value(json_object_get(got, "id")), job_id(job));
  assert_string_equal(json_string_value(json_object_get(got, "name")), "environment");
  assert_string_equal(json_string_value(json_object_get(got, "task")), "show");
  assert_string_equal(json_string_value(json_object_get(got, "attempt")), "1");
  assert_string_equal(json_string_value(json_object_get(got, "job_var")), "from-job");
  assert_string_equal(json_string_value(json_object_get(got, "task_var")), "from-task");
  assert_string_equal(json_string_value(json_object_get(got, "both")), "task");
  assert_string_equal(json_string_value(json_object_get(got, "dir")), "jobdir");
  const char *pwd = json_string_value(cli_task_result(job, "elsewhere"));
  assert_non_null(pwd);
  size_t len = strlen(pwd);
  assert_true(len > 8 && strcmp(pwd + len - 8, "/taskdir") == 0);
}

static void a_hundred_independent_tasks(void **state) {
  (void)state;
  json_t *job = job_at(&seed, S_HUNDRED);
  assert_job(job, "hundred", "succeeded");
  assert_int_equal(json_object_size(json_object_get(job, "tasks")), 100);
  for (int i = 0; i < 100; i++) {
    char name[8];
    snprintf(name, sizeof name, "t%d", i);
    assert_int_equal(json_integer_value(cli_task_result(job, name)), i);
  }
}

static void the_events_file_tells_the_whole_story(void **state) {
  (void)state;
  cli_check_event_stream(seed.events, seed.r.start_ms, seed.r.end_ms);
  json_t *finished = cli_events_where(seed.events, "job_finished", NULL, NULL);
  assert_int_equal(json_array_size(finished), S_COUNT);
  /* job_finished carries the job's status and its whole tasks object. */
  size_t i;
  json_t *ev;
  json_array_foreach(finished, i, ev) {
    const char *id = json_string_value(json_object_get(ev, "job"));
    for (size_t k = 0; k < S_COUNT; k++) {
      json_t *job = job_at(&seed, k);
      if (strcmp(job_id(job), id) != 0) continue;
      assert_true(json_equal(json_object_get(ev, "status"), json_object_get(job, "status")));
      assert_int_equal(json_object_size(json_object_get(ev, "tasks")),
                       json_object_size(json_object_get(job, "tasks")));
    }
  }
  json_decref(finished);
  assert_true(max_concurrency(seed.events) <= 4);
}

static void one_log_line_per_event_when_not_a_terminal(void **state) {
  (void)state;
  const char *id = job_id(job_at(&seed, S_GOOD));
  char want[256];
  snprintf(want, sizeof want, "Z info  job %s \"good\": task \"hello\" succeeded (attempt 1, ", id);
  if (strstr(seed.r.err, want) == NULL) fail_msg("no line \"%s\" in:\n%.2000s", want, seed.r.err);
  snprintf(want, sizeof want, "Z warn  job %s \"failing\": task \"fail\" failed: ",
           job_id(job_at(&seed, S_FAILING)));
  if (strstr(seed.r.err, want) == NULL) fail_msg("no line \"%s\" in:\n%.2000s", want, seed.r.err);
  snprintf(want, sizeof want, "job %s \"failing\": finished: failed", job_id(job_at(&seed, S_FAILING)));
  assert_non_null(strstr(seed.r.err, want));
  /* As many lines as events, at least. */
  size_t lines = 0;
  for (const char *p = seed.r.err; *p != '\0'; p++) lines += *p == '\n';
  assert_true(lines >= json_array_size(seed.events));
}

/* ---- One worker ------------------------------------------------------------ */

static struct shared_run one;
enum { O_PAIR12, O_PAIR37, O_SLEEPS, O_PRIORITY, O_COUNT };

static int one_worker_setup(void **state) {
  (void)state;
  const char *files[O_COUNT] = {"pair-1-2.json", "pair-3-7.json", "sleeps.json", "priority.json"};
  const char *extra[] = {"--workers", "1", NULL};
  shared_run(&one, cli_fresh_dir("one-worker"), extra, files, O_COUNT, 0);
  return 0;
}

static int one_worker_teardown(void **state) {
  (void)state;
  shared_free(&one);
  return 0;
}

static void two_independent_tasks_on_one_worker(void **state) {
  (void)state;
  json_t *a = job_at(&one, O_PAIR12), *b = job_at(&one, O_PAIR37);
  assert_job(a, "pair-1-2", "succeeded");
  assert_job(b, "pair-3-7", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(a, "one")), 1);
  assert_int_equal(json_integer_value(cli_task_result(a, "two")), 2);
  assert_int_equal(json_integer_value(cli_task_result(b, "three")), 3);
  assert_int_equal(json_integer_value(cli_task_result(b, "seven")), 7);
  assert_int_equal(max_concurrency(one.events), 1);
}

static void one_worker_never_overlaps_two_sleeps(void **state) {
  (void)state;
  const char *id = job_id(job_at(&one, O_SLEEPS));
  int64_t s1 = cli_event_time(one.events, "task_started", id, "half");
  int64_t e1 = cli_event_time(one.events, "task_terminated", id, "half");
  int64_t s2 = cli_event_time(one.events, "task_started", id, "more");
  int64_t e2 = cli_event_time(one.events, "task_terminated", id, "more");
  assert_true(e1 - s1 >= 490 && e2 - s2 >= 590);
  if (!(e1 <= s2 || e2 <= s1))
    fail_msg("the sleeps overlap: [%lld, %lld] and [%lld, %lld]", (long long)s1, (long long)e1,
             (long long)s2, (long long)e2);
}

static void priority_first_then_file_order(void **state) {
  (void)state;
  json_t *job = job_at(&one, O_PRIORITY);
  assert_job(job, "priority", "succeeded");
  json_t *starts = cli_events_where(one.events, "task_started", job_id(job), NULL);
  char order[16] = "";
  size_t i;
  json_t *ev;
  json_array_foreach(starts, i, ev) strcat(order, json_string_value(json_object_get(ev, "task")));
  json_decref(starts);
  /* d and b are named in priority; f too, and starts as soon as a made it
   * ready, ahead of c and e. */
  assert_string_equal(order, "dbafce");
}

/* ---- More runs ------------------------------------------------------------- */

static void two_workers_overlap_two_sleeps(void **state) {
  (void)state;
  struct shared_run s;
  const char *files[] = {"two-sleeps.json"};
  const char *extra[] = {"--workers", "2", NULL};
  shared_run(&s, cli_fresh_dir("two-workers"), extra, files, 1, 0);
  const char *id = job_id(job_at(&s, 0));
  int64_t s1 = cli_event_time(s.events, "task_started", id, "s1");
  int64_t e1 = cli_event_time(s.events, "task_terminated", id, "s1");
  int64_t s2 = cli_event_time(s.events, "task_started", id, "s2");
  int64_t e2 = cli_event_time(s.events, "task_terminated", id, "s2");
  int64_t span = (e1 > e2 ? e1 : e2) - (s1 < s2 ? s1 : s2);
  if (span < 500 || span > 750) fail_msg("two 0.5 s sleeps on 2 workers took %lld ms", (long long)span);
  shared_free(&s);
}

static void two_jobs_on_ten_workers(void **state) {
  (void)state;
  struct shared_run s;
  const char *files[] = {"six-sleeps.json", "six-sleeps.json"};
  const char *extra[] = {"--workers", "10", NULL};
  shared_run(&s, cli_fresh_dir("ten-workers"), extra, files, 2, 0);
  assert_job(job_at(&s, 0), "six-sleeps", "succeeded");
  assert_job(job_at(&s, 1), "six-sleeps", "succeeded");
  /* Twelve tasks, one limit of ten shared by both jobs. */
  assert_int_equal(max_concurrency(s.events), 10);
  shared_free(&s);
}

static void a_hundred_jobs_in_one_run(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("hundred-jobs");
  const char *args[104];
  char *paths[100];
  size_t n = 0;
  args[n++] = "run";
  args[n++] = "--json";
  for (int i = 0; i < 100; i++) {
    char name[32], text[200];
    snprintf(name, sizeof name, "job-%03d.json", i);
    snprintf(text, sizeof text,
             "{\"name\": \"job-%03d\", \"tasks\": [{\"name\": \"a\", \"cmd\": \"echo %d\", "
             "\"enables\": [\"b\"]}, {\"name\": \"b\", \"cmd\": \"cat\"}]}", i, i);
    paths[i] = cli_path_join(dir, name);
    cli_write_file(paths[i], text);
    args[n++] = paths[i];
  }
  args[n] = NULL;
  struct cli_result r;
  cli_run(&r, dir, args);
  if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err);
  json_t *jobs = cli_parse_ndjson(r.out);
  assert_int_equal(json_array_size(jobs), 100);
  for (int i = 0; i < 100; i++) {
    char name[32];
    snprintf(name, sizeof name, "job-%03d", i);
    json_t *job = json_array_get(jobs, (size_t)i);
    assert_job(job, name, "succeeded");
    json_t *b = cli_task_result(job, "b");
    assert_int_equal(json_integer_value(json_object_get(b, "a")), i);
    free(paths[i]);
  }
  json_decref(jobs);
  cli_result_free(&r);
  free(dir);
}

static void events_on_stdout(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("events-stdout");
  char *good = cli_job_path("good.json");
  const char *args[] = {"run", "--events", "-", good, NULL};
  struct cli_result r;
  cli_run(&r, dir, args);
  assert_int_equal(r.status, 0);
  /* Nothing but events on stdout. */
  json_t *events = cli_parse_ndjson(r.out);
  cli_check_event_stream(events, r.start_ms, r.end_ms);
  json_t *first = json_array_get(events, 0);
  assert_string_equal(json_string_value(json_object_get(first, "type")), "job_submitted");
  json_t *last = json_array_get(events, json_array_size(events) - 1);
  assert_string_equal(json_string_value(json_object_get(last, "type")), "job_finished");
  assert_string_equal(json_string_value(json_object_get(last, "status")), "succeeded");
  json_t *tasks = json_object_get(last, "tasks");
  json_t *shout = json_object_get(json_object_get(tasks, "shout"), "result");
  assert_string_equal(json_string_value(json_object_get(shout, "HELLO")), "HELLO");
  json_t *ends = cli_events_where(events, "task_terminated", NULL, "hello");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(ends, 0), "result")), "hello");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(ends, 0), "status")), "succeeded");
  json_decref(ends);
  json_decref(events);
  cli_result_free(&r);
  free(good);
  free(dir);
}

int main(void) {
  const struct CMUnitTest seed_tests[] = {
      cmocka_unit_test(results_come_in_file_order),
      cmocka_unit_test(one_good_job),
      cmocka_unit_test(two_jobs_of_the_same_name),
      cmocka_unit_test(a_task_returning_3),
      cmocka_unit_test(a_failing_task),
      cmocka_unit_test(tasks_that_crash_fail_alone),
      cmocka_unit_test(a_result_passed_downstream),
      cmocka_unit_test(a_failed_upstream_blocks_everything_below),
      cmocka_unit_test(a_timed_out_upstream),
      cmocka_unit_test(a_sleeper_past_its_timeout),
      cmocka_unit_test(two_upstreams),
      cmocka_unit_test(a_transitive_chain),
      cmocka_unit_test(retries_with_backoff),
      cmocka_unit_test(results_are_json_or_strings),
      cmocka_unit_test(large_output),
      cmocka_unit_test(a_background_child_does_not_hold_the_task),
      cmocka_unit_test(the_environment_of_a_task),
      cmocka_unit_test(a_hundred_independent_tasks),
      cmocka_unit_test(the_events_file_tells_the_whole_story),
      cmocka_unit_test(one_log_line_per_event_when_not_a_terminal),
  };
  const struct CMUnitTest one_worker_tests[] = {
      cmocka_unit_test(two_independent_tasks_on_one_worker),
      cmocka_unit_test(one_worker_never_overlaps_two_sleeps),
      cmocka_unit_test(priority_first_then_file_order),
  };
  const struct CMUnitTest other_tests[] = {
      cmocka_unit_test(two_workers_overlap_two_sleeps),
      cmocka_unit_test(two_jobs_on_ten_workers),
      cmocka_unit_test(a_hundred_jobs_in_one_run),
      cmocka_unit_test(events_on_stdout),
  };
  int failed = 0;
  failed += cmocka_run_group_tests_name("seed run (4 workers)", seed_tests, seed_setup,
                                        seed_teardown);
  failed += cmocka_run_group_tests_name("one worker", one_worker_tests, one_worker_setup,
                                        one_worker_teardown);
  failed += cmocka_run_group_tests_name("other runs", other_tests, NULL, NULL);
  return failed == 0 ? 0 : 1;
}
