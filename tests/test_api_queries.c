/* What a server asks the library, through the public API: pages of jobs
 * (spe_jobs_list), a job of an earlier executor (spe_job_get), replay of the
 * event log (spe_events_since, spe_options.event_history), prune (spe_prune)
 * and the counters (spe_stats_get), on the memory and the SQLite store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spe.h"
#include "support/api_util.h"
#include "support/cli_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char *dir;
static char url[1200];

static int setup(void **state) {
  char name[64];
  snprintf(name, sizeof name, "api_queries.%ld", (long)getpid());
  dir = cli_fresh_dir(name);
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir);
  return 0;
}

static int teardown(void **state) {
  cli_remove_dir(dir);
  free(dir);
  dir = NULL;
  return 0;
}

/* An executor on `store_url` with no subscriber (so that nothing but the
 * store or the event history asks for events). */
static spe_executor *open_ex(const char *store_url, size_t event_history) {
  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  o.store_url = store_url;
  o.event_history = event_history;
  spe_executor *ex = NULL;
  char *msg = NULL;
  int rc = spe_open(&ex, &o, &msg);
  if (rc != 0) fail_msg("spe_open %s: %s", store_url, msg ? msg : spe_strerror(rc));
  return ex;
}

static const char one_task[] = "{\"name\": \"one\", \"tasks\": [{\"name\": \"a\", \"cmd\": \"echo 1\"}]}";
/* One task succeeds, one fails, one is not run. */
static const char mixed[] =
    "{\"name\": \"mixed\", \"tasks\": [{\"name\": \"ok\", \"cmd\": \"echo 1\"},"
    " {\"name\": \"bad\", \"cmd\": \"exit 3\", \"enables\": [\"after\"]},"
    " {\"name\": \"after\", \"cmd\": \"echo 2\"}]}";

/* Submit, start and wait; the id in `id`. */
static void run(spe_executor *ex, const char *text, char id[SPE_ID_SIZE]) {
  char *msg = NULL;
  int rc = spe_submit_text(ex, text, strlen(text), id, &msg);
  if (rc == 0) rc = spe_start(ex, id, &msg);
  if (rc != 0) fail_msg("submit/start: %s %s", spe_err_name(rc), msg ? msg : "");
  assert_int_equal(spe_wait(ex, id, 30000), 0);
}

static void submit_only(spe_executor *ex, const char *text, char id[SPE_ID_SIZE]) {
  assert_int_equal(spe_submit_text(ex, text, strlen(text), id, NULL), 0);
}

/* The ids of a page, newest first, joined by commas; the test fails on an
 * error. */
static char *page(spe_executor *ex, const char *status, const char *before, size_t limit) {
  json_t *out = NULL;
  char *msg = NULL;
  int rc = spe_jobs_list(ex, status, before, limit, &out, &msg);
  if (rc != 0) fail_msg("spe_jobs_list: %s %s", spe_err_name(rc), msg ? msg : "");
  assert_null(msg);
  char *text = calloc(1, 16384);
  size_t i;
  json_t *s;
  json_array_foreach(out, i, s) {
    size_t len = strlen(text);
    snprintf(text + len, 16384 - len, "%s%s", i ? "," : "",
             json_string_value(json_object_get(s, "id")));
  }
  json_decref(out);
  return text;
}

static void assert_page(spe_executor *ex, const char *status, const char *before, size_t limit,
                        const char *want) {
  char *got = page(ex, status, before, limit);
  assert_string_equal(got, want);
  free(got);
}

/* ids joined newest first, from ids given oldest first. */
static char *joined_newest_first(char ids[][SPE_ID_SIZE], int from, int to) {
  char *text = calloc(1, 4096);
  for (int i = to; i >= from; i--) {
    size_t len = strlen(text);
    snprintf(text + len, 4096 - len, "%s%s", i == to ? "" : ",", ids[i]);
  }
  return text;
}

/* ---- spe_jobs_list ---- */

static void check_pages(spe_executor *ex) {
  char ids[5][SPE_ID_SIZE];
  for (int i = 0; i < 4; i++) run(ex, i == 2 ? mixed : one_task, ids[i]);
  submit_only(ex, one_task, ids[4]);

  char *want = joined_newest_first(ids, 3, 4);
  assert_page(ex, NULL, NULL, 2, want);
  free(want);
  want = joined_newest_first(ids, 1, 2);
  assert_page(ex, NULL, ids[3], 2, want);
  free(want);
  assert_page(ex, NULL, ids[1], 2, ids[0]);
  assert_page(ex, NULL, ids[0], 2, "");
  want = joined_newest_first(ids, 0, 4);
  assert_page(ex, NULL, NULL, 0, want); /* 0: the default, 100 */
  free(want);
  char two[64];
  snprintf(two, sizeof two, "%s,%s", ids[1], ids[0]);
  assert_page(ex, "succeeded", ids[3], 2, two);
  assert_page(ex, "succeeded", ids[3], 1, ids[1]);
  assert_page(ex, "failed", NULL, 10, ids[2]);
  assert_page(ex, "submitted", NULL, 10, ids[4]);
  assert_page(ex, "running", NULL, 10, "");
  assert_page(ex, "cancelled", NULL, 10, "");

  /* A summary: no tasks, times 0 when not yet. */
  json_t *out = NULL;
  assert_int_equal(spe_jobs_list(ex, NULL, NULL, 2, &out, NULL), 0);
  json_t *sub = json_array_get(out, 0), *done = json_array_get(out, 1);
  assert_string_equal(json_string_value(json_object_get(sub, "name")), "one");
  assert_string_equal(json_string_value(json_object_get(sub, "status")), "submitted");
  assert_true(json_integer_value(json_object_get(sub, "submitted_ms")) > 0);
  assert_int_equal(json_integer_value(json_object_get(sub, "started_ms")), 0);
  assert_int_equal(json_integer_value(json_object_get(sub, "finished_ms")), 0);
  assert_true(json_integer_value(json_object_get(done, "finished_ms")) >=
              json_integer_value(json_object_get(done, "started_ms")));
  assert_true(json_integer_value(json_object_get(done, "started_ms")) > 0);
  assert_null(json_object_get(done, "tasks"));
  assert_int_equal(json_object_size(done), 6);
  json_decref(out);

  /* What is refused. */
  char *msg = NULL;
  out = (json_t *)1;
  assert_int_equal(spe_jobs_list(ex, "done", NULL, 10, &out, &msg), SPE_EINVAL);
  assert_null(out);
  assert_non_null(strstr(msg, "\"done\""));
  free(msg);
  assert_int_equal(spe_jobs_list(ex, NULL, NULL, 1001, &out, NULL), SPE_EINVAL);
  assert_int_equal(spe_jobs_list(ex, NULL, NULL, 1000, &out, NULL), 0);
  json_decref(out);
  assert_int_equal(spe_jobs_list(ex, NULL, NULL, 10, NULL, NULL), SPE_EINVAL);
  assert_int_equal(spe_jobs_list(NULL, NULL, NULL, 10, &out, NULL), SPE_EINVAL);
}

static void test_list_memory(void **state) {
  spe_executor *ex = open_ex("memory:", 0);
  check_pages(ex);
  spe_close(ex);
}

static void test_list_sqlite(void **state) {
  spe_executor *ex = open_ex(url, 0);
  check_pages(ex);
  spe_close(ex);
}

/* ---- spe_job_get of an earlier executor's job ---- */

static void test_get_a_job_of_an_earlier_executor(void **state) {
  spe_executor *ex = open_ex(url, 0);
  char id[SPE_ID_SIZE];
  run(ex, mixed, id);
  json_t *before = NULL;
  assert_int_equal(spe_job_get(ex, id, &before, NULL), 0);
  spe_close(ex);

  /* A new executor on the same store: the job is not in its memory (only
   * unfinished jobs are recovered), but in the store. */
  ex = open_ex(url, 0);
  json_t *after = NULL;
  char *msg = NULL;
  assert_int_equal(spe_job_get(ex, id, &after, &msg), 0);
  assert_null(msg);
  if (!json_equal(before, after)) {
    char *a = json_dumps(before, JSON_SORT_KEYS), *b = json_dumps(after, JSON_SORT_KEYS);
    fail_msg("before %s\nafter  %s", a, b);
  }
  assert_string_equal(h_job_status(after), "failed");
  assert_string_equal(h_task_error_kind(after, "bad"), "exit");
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(json_object_get(after, "tasks"),
                                                        "after"),
                                        "blocked_by")),
      "bad");
  json_decref(before);
  json_decref(after);
  assert_int_equal(spe_job_get(ex, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", &after, &msg), SPE_ENOJOB);
  assert_string_equal(msg, "no job with id \"01ZZZZZZZZZZZZZZZZZZZZZZZZ\"");
  free(msg);
  spe_close(ex);
}

/* ---- spe_events_since ---- */

/* Whether the log has no gaps (none until a prune deletes events). */
static int gapless = 1;

/* The events after `after` (all of them, page by page), checked to rise (and
 * to be consecutive while the log is gapless). */
static json_t *replay_all(spe_executor *ex, const char *job, int64_t after, size_t page_size,
                          int64_t *last) {
  json_t *all = json_array();
  for (;;) {
    json_t *out = NULL;
    char *msg = NULL;
    int rc = spe_events_since(ex, job, after, page_size, &out, last, &msg);
    if (rc != 0) fail_msg("spe_events_since: %s %s", spe_err_name(rc), msg ? msg : "");
    if (json_array_size(out) == 0) {
      json_decref(out);
      return all;
    }
    assert_true(json_array_size(out) <= (page_size ? page_size : 1000));
    size_t i;
    json_t *ev;
    json_array_foreach(out, i, ev) {
      int64_t seq = json_integer_value(json_object_get(ev, "seq"));
      assert_true(seq > after);
      if (job != NULL)
        assert_string_equal(json_string_value(json_object_get(ev, "job")), job);
      else if (gapless)
        assert_int_equal(seq, after + 1);
      after = seq;
    }
    json_array_extend(all, out);
    json_decref(out);
  }
}

static void test_replay_sqlite(void **state) {
  struct harness h;
  spe_options o;
  spe_options_init(&o);
  o.store_url = url;
  h_open_opts(&h, &o);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  run(h.ex, mixed, a);
  run(h.ex, one_task, b);
  int64_t last = 0;
  json_t *all = replay_all(h.ex, NULL, 0, 0, &last);
  /* What the store replays is what a subscriber received, event for event. */
  int n = (int)json_array_size(all);
  assert_int_equal(h_await_events(&h, NULL, NULL, n, 10000), n);
  pthread_mutex_lock(&h.rec.lock);
  assert_true(json_equal(all, h.rec.events));
  pthread_mutex_unlock(&h.rec.lock);
  assert_int_equal(last, n);

  /* After seq N: exactly N+1...; in pages; one job's. */
  json_t *tail = replay_all(h.ex, NULL, 5, 3, NULL);
  assert_int_equal(json_array_size(tail), n - 5);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(tail, 0), "seq")), 6);
  json_decref(tail);
  json_t *ofb = replay_all(h.ex, b, 0, 2, NULL);
  assert_int_equal(json_array_size(ofb), (size_t)h_count_events(&h, b, NULL, NULL));
  json_decref(ofb);
  json_t *out = NULL;
  assert_int_equal(spe_events_since(h.ex, NULL, n, 0, &out, &last, NULL), 0);
  assert_int_equal(json_array_size(out), 0);
  assert_int_equal(last, n);
  json_decref(out);
  h_close(&h);

  /* Across a reopen: the log is the store's, and numbering goes on. */
  spe_executor *ex = open_ex(url, 0);
  json_t *again = replay_all(ex, NULL, 0, 1000, &last);
  assert_true(json_equal(all, again));
  json_decref(again);
  char c[SPE_ID_SIZE];
  run(ex, one_task, c);
  json_t *more = replay_all(ex, NULL, n, 10, &last);
  assert_true(json_array_size(more) > 0);
  assert_string_equal(json_string_value(json_object_get(json_array_get(more, 0), "job")), c);
  assert_int_equal(last, n + (int64_t)json_array_size(more));
  json_decref(more);
  json_decref(all);

  /* What is refused. */
  char *msg = NULL;
  assert_int_equal(spe_events_since(ex, NULL, 0, 10001, &out, NULL, &msg), SPE_EINVAL);
  free(msg);
  assert_int_equal(spe_events_since(ex, NULL, -1, 10, &out, NULL, NULL), SPE_EINVAL);
  assert_int_equal(spe_events_since(ex, NULL, 0, 10, NULL, NULL, NULL), SPE_EINVAL);
  assert_int_equal(spe_events_since(ex, NULL, 0, 10000, &out, NULL, NULL), 0);
  json_decref(out);
  spe_close(ex);
}

static void test_replay_memory_needs_a_history(void **state) {
  spe_executor *ex = open_ex("memory:", 0);
  char id[SPE_ID_SIZE];
  run(ex, one_task, id);
  json_t *out = (json_t *)1;
  char *msg = NULL;
  assert_int_equal(spe_events_since(ex, NULL, 0, 10, &out, NULL, &msg), SPE_ENOTSUP);
  assert_null(out);
  assert_non_null(strstr(msg, "event_history"));
  free(msg);
  spe_close(ex);
}

static void test_replay_memory_history(void **state) {
  /* No subscriber: the history alone must make the engine build events. */
  spe_executor *ex = open_ex("memory:", 8);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  run(ex, one_task, a); /* 5 events: submitted, started, task started/ended, finished */
  int64_t last = 0;
  json_t *all = replay_all(ex, NULL, 0, 100, &last);
  assert_int_equal(json_array_size(all), 5);
  assert_int_equal(last, 5);
  assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "type")),
                      "job_submitted");
  assert_string_equal(json_string_value(json_object_get(json_array_get(all, 4), "type")),
                      "job_finished");
  json_decref(all);

  run(ex, one_task, b); /* 6..10: 1 and 2 roll out of the 8 kept */
  json_t *out = (json_t *)1;
  char *msg = NULL;
  assert_int_equal(spe_events_since(ex, NULL, 1, 100, &out, &last, &msg), SPE_ELIMIT);
  assert_null(out);
  assert_non_null(strstr(msg, "the oldest is seq 3"));
  free(msg);
  all = replay_all(ex, NULL, 2, 100, &last);
  assert_int_equal(json_array_size(all), 8);
  assert_int_equal(last, 10);
  json_decref(all);
  all = replay_all(ex, b, 2, 100, NULL);
  assert_int_equal(json_array_size(all), 5);
  json_decref(all);
  spe_close(ex);
}

/* ---- spe_prune ---- */

static void assert_gone(spe_executor *ex, const char *id) {
  json_t *job = NULL;
  assert_int_equal(spe_job_get(ex, id, &job, NULL), SPE_ENOJOB);
  assert_int_equal(spe_wait(ex, id, 0), SPE_ENOJOB);
}

static void test_prune_sqlite(void **state) {
  spe_executor *ex = open_ex(url, 0);
  char old[SPE_ID_SIZE];
  run(ex, one_task, old); /* finished in an earlier executor */
  spe_close(ex);

  ex = open_ex(url, 0);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE], waiting[SPE_ID_SIZE];
  run(ex, mixed, a);
  run(ex, one_task, b);
  submit_only(ex, one_task, waiting);
  json_t *job = NULL;
  assert_int_equal(spe_job_get(ex, old, &job, NULL), 0);
  int64_t old_finished = json_integer_value(json_object_get(job, "finished_ms"));
  json_decref(job);

  /* Strictly before: a cutoff at the oldest finish removes nothing. */
  size_t pruned = 99;
  assert_int_equal(spe_prune(ex, old_finished, &pruned, NULL), 0);
  assert_int_equal(pruned, 0);

  int64_t last_before = 0;
  json_t *events = replay_all(ex, NULL, 0, 1000, &last_before);
  json_decref(events);
  assert_int_equal(spe_prune(ex, cli_wall_ms() + 1, &pruned, NULL), 0);
  assert_int_equal(pruned, 3); /* old (only in the store), a, b */
  gapless = 0;
  assert_page(ex, NULL, NULL, 10, waiting);
  assert_gone(ex, old);
  assert_gone(ex, a);
  assert_gone(ex, b);
  json_t *left = replay_all(ex, NULL, 0, 1000, NULL);
  size_t i;
  json_t *ev;
  json_array_foreach(left, i, ev)
      assert_string_equal(json_string_value(json_object_get(ev, "job")), waiting);
  assert_int_equal(json_array_size(left), 1); /* its job_submitted */
  json_decref(left);
  spe_stats st;
  assert_int_equal(spe_stats_get(ex, &st), 0);
  assert_int_equal(st.jobs_submitted, 1);
  assert_int_equal(st.jobs_succeeded + st.jobs_failed, 0);
  assert_int_equal(spe_prune(ex, cli_wall_ms() + 1, NULL, NULL), 0);

  /* The unfinished job was kept, runs, and numbering went on. */
  assert_int_equal(spe_start(ex, waiting, NULL), 0);
  assert_int_equal(spe_wait(ex, waiting, 30000), 0);
  int64_t last = 0;
  json_t *more = replay_all(ex, NULL, last_before, 1000, &last);
  assert_true(json_array_size(more) >= 4);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(more, 0), "seq")),
                   last_before + 1);
  json_decref(more);
  spe_close(ex);
  gapless = 1;
}

static void test_prune_memory(void **state) {
  spe_executor *ex = open_ex("memory:", 0);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE], c[SPE_ID_SIZE];
  run(ex, one_task, a);
  run(ex, mixed, b);
  submit_only(ex, one_task, c);
  size_t pruned = 0;
  assert_int_equal(spe_prune(ex, cli_wall_ms() + 1, &pruned, NULL), 0);
  assert_int_equal(pruned, 2);
  assert_gone(ex, a);
  assert_gone(ex, b);
  assert_page(ex, NULL, NULL, 10, c);
  spe_stats st;
  assert_int_equal(spe_stats_get(ex, &st), 0);
  assert_int_equal(st.jobs_submitted, 1);
  assert_int_equal(st.jobs_succeeded + st.jobs_failed, 0);
  spe_close(ex);
}

/* A cancelled job leaves things behind in the engine: a ready entry for the
 * task it never picked, a retry timer for a task waiting out its backoff.
 * Pruning the job must take them too (the sanitizers and valgrind watch the
 * freed job). */
static void test_prune_a_cancelled_job(void **state) {
  struct harness h;
  spe_options o;
  spe_options_init(&o);
  o.workers = 1;
  o.retry_backoff_ms = 60000;
  o.grace_ms = 100;
  h_open_opts(&h, &o);
  static const char text[] =
      "{\"name\": \"c\", \"tasks\": [{\"name\": \"retrying\", \"cmd\": \"exit 1\","
      " \"retries\": 3}, {\"name\": \"long\", \"cmd\": \"sleep 30\"},"
      " {\"name\": \"queued\", \"cmd\": \"echo 1\"}]}";
  char id[SPE_ID_SIZE];
  h_submit_start(&h, text, id);
  /* One worker: "retrying" fails and waits out its backoff, then "long" runs,
   * and "queued" waits in the ready queue. */
  assert_int_equal(h_await_events(&h, id, "task_started", 2, 10000), 2);
  assert_int_equal(h_count_events(&h, id, "task_started", "long"), 1);
  assert_int_equal(h_count_events(&h, id, "task_terminated", "retrying"), 1);
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 30000), 0);
  size_t pruned = 0;
  assert_int_equal(spe_prune(h.ex, cli_wall_ms() + 1, &pruned, NULL), 0);
  assert_int_equal(pruned, 1);
  assert_gone(h.ex, id);
  /* The engine goes on: a new job runs. */
  char next[SPE_ID_SIZE];
  run(h.ex, one_task, next);
  h_close(&h);
}

/* Two prunes in one round each get their own count. */
struct pruner {
  spe_executor *ex;
  int64_t before;
  size_t pruned;
  int rc;
};

static void *prune_thread(void *arg) {
  struct pruner *p = arg;
  p->rc = spe_prune(p->ex, p->before, &p->pruned, NULL);
  return NULL;
}

static void test_concurrent_prunes(void **state) {
  spe_executor *ex = open_ex(url, 0);
  char ids[4][SPE_ID_SIZE];
  for (int i = 0; i < 4; i++) run(ex, one_task, ids[i]);
  struct pruner p[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    p[i] = (struct pruner){.ex = ex, .before = cli_wall_ms() + 1};
    assert_int_equal(pthread_create(&t[i], NULL, prune_thread, &p[i]), 0);
  }
  size_t total = 0;
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(p[i].rc, 0);
    total += p[i].pruned;
  }
  assert_int_equal(total, 4);
  assert_page(ex, NULL, NULL, 10, "");
  spe_close(ex);
}

/* ---- spe_stats_get ---- */

static void check_stats(spe_executor *ex, int durable) {
  spe_stats st;
  assert_int_equal(spe_stats_get(ex, &st), 0);
  assert_int_equal(st.tasks_succeeded + st.tasks_failed + st.tasks_not_run, 0);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE], c[SPE_ID_SIZE];
  run(ex, mixed, a);
  run(ex, one_task, b);
  submit_only(ex, one_task, c);
  assert_int_equal(spe_stats_get(ex, &st), 0);
  assert_int_equal(st.jobs_submitted, 1);
  assert_int_equal(st.jobs_running, 0);
  assert_int_equal(st.jobs_succeeded, 1);
  assert_int_equal(st.jobs_failed, 1);
  assert_int_equal(st.jobs_cancelled, 0);
  assert_int_equal(st.tasks_running, 0);
  assert_int_equal(st.tasks_ready, 0);
  assert_int_equal(st.tasks_succeeded, 2);
  assert_int_equal(st.tasks_failed, 1);
  assert_int_equal(st.tasks_not_run, 1);
  assert_true(st.commits >= 3);
  assert_true(st.commit_seconds_total > 0);
  assert_true(st.commit_seconds_max > 0);
  assert_true(st.commit_seconds_max <= st.commit_seconds_total);
  if (durable) {
    /* Every event published is in the log, numbered from 1. */
    int64_t last = 0;
    json_t *out = NULL;
    assert_int_equal(spe_events_since(ex, NULL, 0, 1, &out, &last, NULL), 0);
    json_decref(out);
    assert_int_equal(st.events_published, last);
  }
  assert_true(st.events_published >= 11);
  assert_int_equal(spe_stats_get(NULL, &st), SPE_EINVAL);
  assert_int_equal(spe_stats_get(ex, NULL), SPE_EINVAL);
}

static void test_stats_sqlite(void **state) {
  spe_executor *ex = open_ex(url, 0);
  check_stats(ex, 1);
  spe_close(ex);
}

static void test_stats_memory(void **state) {
  spe_executor *ex = open_ex("memory:", 100);
  check_stats(ex, 0);
  spe_close(ex);
}

/* SPE_SUBMIT_START: a job submitted and started by one call, in one commit
 * (what a server's POST /v1/jobs?start=true does). */
static void test_submit_and_start_at_once(void **state) {
  spe_executor *ex = open_ex(url, 0);
  static const char job[] = "{\"name\": \"s\", \"tasks\": [{\"name\": \"a\", \"cmd\": "
                            "\"echo 5\"}]}";
  char id[SPE_ID_SIZE], id2[SPE_ID_SIZE];
  spe_stats before, after;
  /* A plain submit is one commit (and a spe_start() another). */
  assert_int_equal(spe_stats_get(ex, &before), 0);
  assert_int_equal(spe_submit_ex(ex, job, sizeof job - 1, 0, id, NULL, NULL), 0);
  assert_int_equal(spe_stats_get(ex, &after), 0);
  assert_int_equal(after.commits - before.commits, 1);
  /* With the flag, the job is running (or done) when the call returns, and a
   * start of it is refused as for any started job. */
  assert_int_equal(spe_submit_ex(ex, job, sizeof job - 1, SPE_SUBMIT_START, id2, NULL, NULL), 0);
  json_t *got = NULL;
  assert_int_equal(spe_job_get(ex, id2, &got, NULL), 0);
  assert_string_not_equal(json_string_value(json_object_get(got, "status")), "submitted");
  json_decref(got);
  assert_int_equal(spe_start(ex, id2, NULL), SPE_ESTATE);
  got = h_wait_job(ex, id2, 10000);
  assert_string_equal(json_string_value(json_object_get(got, "status")), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(json_object_get(got, "tasks"), "a"), "result")),
                   5);
  json_decref(got);
  /* The first job was never started. */
  assert_int_equal(spe_job_get(ex, id, &got, NULL), 0);
  assert_string_equal(json_string_value(json_object_get(got, "status")), "submitted");
  json_decref(got);
  /* An unknown flag is refused. */
  assert_int_equal(spe_submit_ex(ex, job, sizeof job - 1, 4u, id, NULL, NULL), SPE_EINVAL);
  spe_close(ex);
}

/* ---- reads on other threads while jobs run (run under TSan) ---- */

struct reader {
  spe_executor *ex;
  pthread_mutex_t lock;
  int stop;          /* under lock */
  long reads;        /* under lock */
  int failed;        /* under lock: the first failing code */
};

static void *read_loop(void *arg) {
  struct reader *r = arg;
  int64_t after = 0;
  for (;;) {
    pthread_mutex_lock(&r->lock);
    int stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    if (stop) break;
    json_t *out = NULL;
    int64_t last = 0;
    int rc = spe_events_since(r->ex, NULL, after, 50, &out, &last, NULL);
    json_t *first = json_array_get(out, 0);
    char id[SPE_ID_SIZE] = "";
    if (first) snprintf(id, sizeof id, "%s", json_string_value(json_object_get(first, "job")));
    after += (int64_t)json_array_size(out);
    json_decref(out);
    if (rc == 0) rc = spe_jobs_list(r->ex, NULL, NULL, 5, &out, NULL);
    if (rc == 0) json_decref(out);
    if (rc == 0 && id[0]) {
      /* The job may have been pruned since its events were read. */
      rc = spe_job_get(r->ex, id, &out, NULL);
      if (rc == 0) json_decref(out);
      if (rc == SPE_ENOJOB) rc = 0;
    }
    spe_stats st;
    if (rc == 0) rc = spe_stats_get(r->ex, &st);
    pthread_mutex_lock(&r->lock);
    if (rc != 0 && r->failed == 0) r->failed = rc;
    r->reads++;
    pthread_mutex_unlock(&r->lock);
  }
  return NULL;
}

static void reads_while_jobs_run(const char *store_url, size_t history) {
  spe_executor *ex = open_ex(store_url, history);
  struct reader r = {.ex = ex};
  pthread_mutex_init(&r.lock, NULL);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, read_loop, &r), 0);
  char ids[12][SPE_ID_SIZE];
  for (int i = 0; i < 12; i++) {
    assert_int_equal(spe_submit_text(ex, mixed, strlen(mixed), ids[i], NULL), 0);
    assert_int_equal(spe_start(ex, ids[i], NULL), 0);
    if (i % 4 == 3) assert_int_equal(spe_prune(ex, cli_wall_ms() - 5, NULL, NULL), 0);
  }
  /* A job the prunes took is gone: SPE_ENOJOB. */
  for (int i = 0; i < 12; i++) {
    int rc = spe_wait(ex, ids[i], 30000);
    if (rc != SPE_ENOJOB) assert_int_equal(rc, 0);
  }
  pthread_mutex_lock(&r.lock);
  r.stop = 1;
  pthread_mutex_unlock(&r.lock);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  assert_int_equal(r.failed, 0);
  assert_true(r.reads > 0);
  pthread_mutex_destroy(&r.lock);
  spe_close(ex);
}

static void test_reads_while_jobs_run_sqlite(void **state) { reads_while_jobs_run(url, 0); }
static void test_reads_while_jobs_run_memory(void **state) {
  reads_while_jobs_run("memory:", 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_list_memory),
      cmocka_unit_test_setup_teardown(test_list_sqlite, setup, teardown),
      cmocka_unit_test_setup_teardown(test_get_a_job_of_an_earlier_executor, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_sqlite, setup, teardown),
      cmocka_unit_test(test_replay_memory_needs_a_history),
      cmocka_unit_test(test_replay_memory_history),
      cmocka_unit_test_setup_teardown(test_prune_sqlite, setup, teardown),
      cmocka_unit_test(test_prune_memory),
      cmocka_unit_test(test_prune_a_cancelled_job),
      cmocka_unit_test_setup_teardown(test_concurrent_prunes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stats_sqlite, setup, teardown),
      cmocka_unit_test(test_stats_memory),
      cmocka_unit_test_setup_teardown(test_submit_and_start_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reads_while_jobs_run_sqlite, setup, teardown),
      cmocka_unit_test(test_reads_while_jobs_run_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
