/* The store's reads for a server (store.h: load_job, list_jobs, count_jobs,
 * events_since) and prune, on SQLite and on the memory store's event history:
 * pages newest first with a cursor, replay after a seq, what a prune removes
 * and keeps, numbering that never goes back, and reads on other threads while
 * the store commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spe.h"
#include "store/store.h"
#include "support/cli_util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;
static char path[1100], url[1200];

static int setup(void **state) {
  char name[64];
  snprintf(name, sizeof name, "store_queries.%ld", (long)getpid());
  dir = cli_fresh_dir(name);
  snprintf(path, sizeof path, "%s/state.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  return 0;
}

static int teardown(void **state) {
  cli_remove_dir(dir);
  free(dir);
  dir = NULL;
  return 0;
}

static struct store *open_ok(const char *u) {
  struct store *st = NULL;
  char *msg = NULL;
  int rc = spe__store_open(&st, u, NULL, &msg);
  if (rc != 0) fail_msg("open %s: %d %s", u, rc, msg ? msg : "");
  return st;
}

/* ---- writing ---- */

static const char desc[] = "{\"name\":\"x\",\"tasks\":[{\"cmd\":\"echo 1\",\"name\":\"a\"}]}";

static struct job_rec job(const char *id, enum job_status status, int64_t finished_ms) {
  return (struct job_rec){.id = id,
                          .name = "x",
                          .canonical = desc,
                          .canonical_len = sizeof desc - 1,
                          .status = status,
                          .submitted_ms = 1000,
                          .started_ms = status == JOB_SUBMITTED ? 0 : 1001,
                          .finished_ms = finished_ms};
}

static json_t *event(const char *job_id, const char *type) {
  return json_pack("{s:n, s:I, s:s, s:s}", "seq", "time_ms", (json_int_t)1234, "job", job_id,
                   "type", type);
}

static uint64_t commit(struct store *st, struct store_batch *b) {
  char *msg = NULL;
  int rc = spe__store_commit(st, b, &msg);
  if (rc != 0) fail_msg("commit: %d %s", rc, msg ? msg : "");
  uint64_t pruned = b->pruned;
  spe__batch_clear(b);
  return pruned;
}

/* A job in one status with one task row and `nevents` events. */
static void put_job(struct store *st, const char *id, enum job_status status,
                    int64_t finished_ms, int nevents) {
  struct store_batch b = {0};
  struct job_rec j = job(id, status, finished_ms);
  struct task_rec t = {.job_id = id, .status = TASK_PENDING, .blocked_by = -1};
  assert_int_equal(spe__batch_job(&b, &j), 0);
  assert_int_equal(spe__batch_task(&b, &t), 0);
  for (int i = 0; i < nevents; i++)
    assert_int_equal(spe__batch_event(&b, event(id, i == 0 ? "job_submitted" : "job_started")), 0);
  commit(st, &b);
  spe__batch_free(&b);
}

static uint64_t prune(struct store *st, int64_t before_ms) {
  struct store_batch b = {0};
  b.prune_before_ms = before_ms;
  uint64_t n = commit(st, &b);
  spe__batch_free(&b);
  return n;
}

/* ---- reading ---- */

/* The ids of a page, joined by commas. */
struct ids {
  char text[4096];
  int n;
};

static int add_id(void *ctx, const struct job_rec *j) {
  struct ids *ids = ctx;
  size_t len = strlen(ids->text);
  snprintf(ids->text + len, sizeof ids->text - len, "%s%s", ids->n++ ? "," : "", j->id);
  assert_null(j->canonical);
  assert_string_equal(j->name, "x");
  assert_int_equal(j->submitted_ms, 1000);
  return 0;
}

static const char *page(struct store *st, int status, const char *before, uint32_t limit) {
  static struct ids ids;
  memset(&ids, 0, sizeof ids);
  struct job_query q = {status, before, limit};
  char *msg = NULL;
  int rc = st->ops->list_jobs(st, &q, add_id, &ids, &msg);
  if (rc != 0) fail_msg("list: %d %s", rc, msg ? msg : "");
  return ids.text;
}

/* The events after `after` as "seq:job:type" joined by commas. */
static const char *replay(struct store *st, const char *job_id, int64_t after, uint32_t limit,
                          int64_t *last) {
  static char text[8192];
  json_t *out = json_array();
  char *msg = NULL;
  int rc = st->ops->events_since(st, job_id, after, limit, out, last, &msg);
  if (rc != 0) fail_msg("events_since: %d %s", rc, msg ? msg : "");
  text[0] = '\0';
  size_t i;
  json_t *ev;
  json_array_foreach(out, i, ev) {
    size_t len = strlen(text);
    snprintf(text + len, sizeof text - len, "%s%lld:%s:%s", i ? "," : "",
             (long long)json_integer_value(json_object_get(ev, "seq")),
             json_string_value(json_object_get(ev, "job")),
             json_string_value(json_object_get(ev, "type")));
  }
  json_decref(out);
  return text;
}

static int found(void *ctx, const struct stored_job *sj) {
  ++*(int *)ctx;
  return 0;
}

static int load(struct store *st, const char *id) {
  int n = 0;
  int rc = st->ops->load_job(st, id, found, &n, NULL);
  assert_true(rc == 0 || rc == SPE_ENOJOB);
  return rc == 0 ? n : 0;
}

static long long count_rows(const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *s = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  long long n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

/* ======================================================================== */

static void test_pages_newest_first(void **state) {
  struct store *st = open_ok(url);
  char id[16];
  for (int i = 1; i <= 12; i++) {
    snprintf(id, sizeof id, "J%02d", i);
    put_job(st, id, i % 3 == 0 ? JOB_SUCCEEDED : JOB_RUNNING, i % 3 == 0 ? 5000 : 0, 0);
  }
  assert_string_equal(page(st, -1, NULL, 5), "J12,J11,J10,J09,J08");
  assert_string_equal(page(st, -1, "J08", 5), "J07,J06,J05,J04,J03");
  assert_string_equal(page(st, -1, "J03", 5), "J02,J01");
  assert_string_equal(page(st, -1, "J01", 5), "");
  /* A cursor need not be a job the store holds (one pruned since, say). */
  assert_string_equal(page(st, -1, "J055", 2), "J05,J04");
  assert_string_equal(page(st, JOB_SUCCEEDED, NULL, 100), "J12,J09,J06,J03");
  assert_string_equal(page(st, JOB_SUCCEEDED, "J09", 1), "J06");
  assert_string_equal(page(st, JOB_FAILED, NULL, 100), "");

  /* The queries use the indexes of schema 2, not a scan and a sort. */
  spe__store_close(st);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  static const char *const plans[][2] = {
      {"SELECT id FROM jobs WHERE id < x'' ORDER BY id DESC LIMIT 5", "sqlite_autoindex_jobs"},
      {"SELECT id FROM jobs WHERE status = 'running' AND id < 'J09' ORDER BY id DESC LIMIT 5",
       "jobs_by_status_id"},
      {"SELECT body FROM events WHERE job_id = 'J1' AND seq > 3 ORDER BY seq LIMIT 5",
       "events_by_job"},
      {"SELECT id FROM jobs WHERE finished_ms < 5 AND +status IN ('succeeded', 'failed')",
       "jobs_by_finished"},
      {"DELETE FROM events WHERE job_id IN (SELECT id FROM jobs WHERE finished_ms < 5)",
       "events_by_job"},
  };
  for (size_t i = 0; i < sizeof plans / sizeof *plans; i++) {
    char sql[512];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", plans[i][0]);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    char plan[1024] = "";
    while (sqlite3_step(s) == SQLITE_ROW) {
      size_t len = strlen(plan);
      snprintf(plan + len, sizeof plan - len, "%s; ", (const char *)sqlite3_column_text(s, 3));
    }
    sqlite3_finalize(s);
    if (strstr(plan, plans[i][1]) == NULL || strstr(plan, "TEMP B-TREE") != NULL)
      fail_msg("%s\nplan: %s", plans[i][0], plan);
  }
  sqlite3_close(db);
}

static void test_counts_by_status(void **state) {
  struct store *st = open_ok(url);
  uint64_t counts[JOB_STATUS_COUNT];
  assert_int_equal(st->ops->count_jobs(st, counts, NULL), 0);
  for (int s = 0; s < JOB_STATUS_COUNT; s++) assert_int_equal(counts[s], 0);
  put_job(st, "A", JOB_SUBMITTED, 0, 0);
  put_job(st, "B", JOB_RUNNING, 0, 0);
  put_job(st, "C", JOB_FAILED, 10, 0);
  put_job(st, "D", JOB_FAILED, 10, 0);
  put_job(st, "E", JOB_CANCELLED, 10, 0);
  put_job(st, "B", JOB_SUCCEEDED, 20, 0); /* B moves on */
  assert_int_equal(st->ops->count_jobs(st, counts, NULL), 0);
  assert_int_equal(counts[JOB_SUBMITTED], 1);
  assert_int_equal(counts[JOB_RUNNING], 0);
  assert_int_equal(counts[JOB_SUCCEEDED], 1);
  assert_int_equal(counts[JOB_FAILED], 2);
  assert_int_equal(counts[JOB_CANCELLED], 1);
  spe__store_close(st);
}

static void test_replay_after_a_seq(void **state) {
  struct store *st = open_ok(url);
  int64_t last = -1;
  assert_string_equal(replay(st, NULL, 0, 10, &last), "");
  assert_int_equal(last, 0);
  put_job(st, "A", JOB_RUNNING, 0, 2); /* 1, 2 */
  put_job(st, "B", JOB_RUNNING, 0, 2); /* 3, 4 */
  put_job(st, "A", JOB_RUNNING, 0, 1); /* 5 */
  assert_string_equal(replay(st, NULL, 0, 10, &last),
                      "1:A:job_submitted,2:A:job_started,3:B:job_submitted,4:B:job_started,"
                      "5:A:job_submitted");
  assert_int_equal(last, 5);
  assert_string_equal(replay(st, NULL, 3, 10, NULL), "4:B:job_started,5:A:job_submitted");
  assert_string_equal(replay(st, NULL, 1, 2, &last), "2:A:job_started,3:B:job_submitted");
  assert_int_equal(last, 5); /* the newest, not the last of the page */
  assert_string_equal(replay(st, "A", 0, 10, NULL),
                      "1:A:job_submitted,2:A:job_started,5:A:job_submitted");
  assert_string_equal(replay(st, "A", 2, 10, NULL), "5:A:job_submitted");
  assert_string_equal(replay(st, "nobody", 0, 10, &last), "");
  assert_int_equal(last, 5);
  assert_string_equal(replay(st, NULL, 5, 10, NULL), "");
  spe__store_close(st);

  /* The log outlives the executor: the same replay after reopening, and the
   * numbering goes on. */
  st = open_ok(url);
  assert_string_equal(replay(st, NULL, 3, 10, &last), "4:B:job_started,5:A:job_submitted");
  put_job(st, "C", JOB_RUNNING, 0, 1);
  assert_string_equal(replay(st, NULL, 4, 10, &last), "5:A:job_submitted,6:C:job_submitted");
  assert_int_equal(last, 6);
  spe__store_close(st);
}

static void test_prune_removes_old_finished_jobs(void **state) {
  struct store *st = open_ok(url);
  put_job(st, "A", JOB_SUCCEEDED, 1000, 2); /* 1, 2 */
  put_job(st, "B", JOB_FAILED, 2000, 1);    /* 3 */
  put_job(st, "C", JOB_CANCELLED, 3000, 1); /* 4 */
  put_job(st, "D", JOB_RUNNING, 0, 1);      /* 5 */
  put_job(st, "E", JOB_SUBMITTED, 0, 1);    /* 6 */
  put_job(st, "F", JOB_SUCCEEDED, 9000, 1); /* 7 */

  assert_int_equal(prune(st, 2500), 2);
  assert_string_equal(page(st, -1, NULL, 100), "F,E,D,C");
  assert_int_equal(load(st, "A"), 0);
  assert_int_equal(load(st, "B"), 0);
  assert_int_equal(load(st, "C"), 1);
  assert_string_equal(replay(st, NULL, 0, 100, NULL),
                      "4:C:job_submitted,5:D:job_submitted,6:E:job_submitted,7:F:job_submitted");
  /* Unfinished jobs are never pruned, however old. */
  assert_int_equal(prune(st, INT64_MAX), 2);
  assert_string_equal(page(st, -1, NULL, 100), "E,D");
  assert_int_equal(prune(st, INT64_MAX), 0);
  int64_t last = 0;
  assert_string_equal(replay(st, NULL, 0, 100, &last), "5:D:job_submitted,6:E:job_submitted");
  /* The newest event went with F; its seq is not given again. */
  assert_int_equal(last, 7);
  spe__store_close(st);
  assert_int_equal(count_rows("SELECT count(*) FROM tasks"), 2);
  assert_int_equal(count_rows("SELECT count(*) FROM events"), 2);

  st = open_ok(url);
  put_job(st, "G", JOB_RUNNING, 0, 1);
  assert_string_equal(replay(st, NULL, 6, 100, &last), "8:G:job_submitted");
  assert_int_equal(last, 8);
  spe__store_close(st);
}

/* A prune rides in a round's batch: the rows written before it in the same
 * transaction count, and a failed commit prunes nothing. */
static void test_prune_in_a_batch(void **state) {
  struct store *st = open_ok(url);
  put_job(st, "A", JOB_RUNNING, 0, 1);
  struct store_batch b = {0};
  struct job_rec a = job("A", JOB_SUCCEEDED, 100);
  assert_int_equal(spe__batch_job(&b, &a), 0);
  assert_int_equal(spe__batch_event(&b, event("A", "job_finished")), 0);
  b.prune_before_ms = 200;
  assert_int_equal(commit(st, &b), 1);
  assert_int_equal(b.prune_before_ms, 0); /* cleared with the batch */
  assert_string_equal(page(st, -1, NULL, 10), "");
  spe__batch_free(&b);
  spe__store_close(st);

  setenv("SPE_STORE_FAULT", "commit:2", 1);
  st = open_ok(url);
  unsetenv("SPE_STORE_FAULT");
  put_job(st, "B", JOB_FAILED, 100, 1); /* commit 1 */
  b.prune_before_ms = 200;
  assert_int_equal(spe__store_commit(st, &b, NULL), SPE_ESTORE);
  assert_int_equal(b.pruned, 0);
  spe__batch_free(&b);
  assert_string_equal(page(st, -1, NULL, 10), "B");
  spe__store_close(st);
}

/* ---- reads on other threads while the store commits (run under TSan) ---- */

struct reader_run {
  struct store *st;
  pthread_mutex_t lock;
  int stop;            /* under lock */
  int reads;           /* under lock */
  char failure[256];   /* under lock */
};

static void reader_failed(struct reader_run *r, const char *fmt, long long a, long long b) {
  pthread_mutex_lock(&r->lock);
  snprintf(r->failure, sizeof r->failure, fmt, a, b);
  pthread_mutex_unlock(&r->lock);
}

static void *read_loop(void *arg) {
  struct reader_run *r = arg;
  int64_t seen_last = 0;
  for (;;) {
    pthread_mutex_lock(&r->lock);
    int stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    if (stop) break;
    json_t *out = json_array();
    int64_t last = 0;
    int rc = r->st->ops->events_since(r->st, NULL, seen_last > 3 ? seen_last - 3 : 0, 50, out,
                                      &last, NULL);
    /* A replay is a run of consecutive seqs from the one after the cursor, and
     * the newest seq never goes back. */
    int64_t expect = seen_last > 3 ? seen_last - 2 : 1;
    size_t i;
    json_t *ev;
    json_array_foreach(out, i, ev) {
      if (json_integer_value(json_object_get(ev, "seq")) != expect++)
        reader_failed(r, "replay has a gap before seq %lld (%lld)", expect - 1, 0);
    }
    json_decref(out);
    if (rc != 0 || last < seen_last)
      reader_failed(r, "events_since failed or went back: last %lld after %lld", last,
                    seen_last);
    seen_last = last;
    struct ids ids = {0};
    struct job_query q = {JOB_RUNNING, NULL, 20};
    uint64_t counts[JOB_STATUS_COUNT];
    if (r->st->ops->list_jobs(r->st, &q, add_id, &ids, NULL) != 0 ||
        r->st->ops->count_jobs(r->st, counts, NULL) != 0)
      reader_failed(r, "list or count failed (%lld %lld)", 0, 0);
    pthread_mutex_lock(&r->lock);
    r->reads++;
    pthread_mutex_unlock(&r->lock);
  }
  return NULL;
}

static void test_reads_while_committing(void **state) {
  struct store *st = open_ok(url);
  struct reader_run r = {.st = st};
  pthread_mutex_init(&r.lock, NULL);
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&threads[i], NULL, read_loop, &r), 0);
  /* At least 150 rounds, and on until the readers have read a few times (a
   * loaded machine may keep them off the CPU for a while). */
  char id[16];
  int rounds = 0;
  for (;; rounds++) {
    pthread_mutex_lock(&r.lock);
    int reads = r.reads;
    pthread_mutex_unlock(&r.lock);
    if (rounds >= 150 && (reads >= 10 || rounds >= 3000)) break;
    snprintf(id, sizeof id, "J%04d", rounds);
    put_job(st, id, JOB_RUNNING, 0, 3);
    if (rounds % 50 == 49) prune(st, 1);
  }
  pthread_mutex_lock(&r.lock);
  r.stop = 1;
  pthread_mutex_unlock(&r.lock);
  for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
  pthread_mutex_destroy(&r.lock);
  if (r.failure[0]) fail_msg("%s", r.failure);
  assert_true(r.reads > 0);
  int64_t last = 0;
  replay(st, NULL, 0, 1, &last);
  assert_int_equal(last, 3 * rounds);
  spe__store_close(st);
}

/* ---- the memory store's event history ---- */

static void commit_events(struct store *st, const char *job_id, int n) {
  struct store_batch b = {0};
  for (int i = 0; i < n; i++) assert_int_equal(spe__batch_event(&b, event(job_id, "t")), 0);
  commit(st, &b);
  spe__batch_free(&b);
}

static void test_memory_keeps_no_events_by_default(void **state) {
  struct store *st = open_ok("memory:");
  assert_false(st->keeps_events);
  assert_null(st->ops->list_jobs);
  assert_null(st->ops->count_jobs);
  commit_events(st, "A", 2);
  json_t *out = json_array();
  char *msg = NULL;
  assert_int_equal(st->ops->events_since(st, NULL, 0, 10, out, NULL, &msg), SPE_ENOTSUP);
  assert_string_equal(msg, "the memory store keeps no events (spe_options.event_history is 0)");
  free(msg);
  json_decref(out);
  spe__store_close(st);
}

static void test_memory_history_is_a_ring(void **state) {
  struct store *st = open_ok("memory:");
  assert_int_equal(spe__store_keep_events(st, 5, NULL), 0);
  assert_true(st->keeps_events);
  int64_t last = -1;
  assert_string_equal(replay(st, NULL, 0, 10, &last), "");
  assert_int_equal(last, 0);
  commit_events(st, "A", 3); /* 1..3 */
  assert_string_equal(replay(st, NULL, 0, 10, &last), "1:A:t,2:A:t,3:A:t");
  assert_int_equal(last, 3);
  commit_events(st, "B", 2); /* 4, 5 */
  commit_events(st, "A", 3); /* 6..8: 1..3 are dropped */
  assert_string_equal(replay(st, NULL, 3, 10, &last), "4:B:t,5:B:t,6:A:t,7:A:t,8:A:t");
  assert_int_equal(last, 8);
  assert_string_equal(replay(st, NULL, 5, 2, NULL), "6:A:t,7:A:t");
  assert_string_equal(replay(st, "B", 3, 10, NULL), "4:B:t,5:B:t");
  assert_string_equal(replay(st, "A", 4, 10, NULL), "6:A:t,7:A:t,8:A:t");
  assert_string_equal(replay(st, NULL, 8, 10, NULL), "");
  assert_string_equal(replay(st, NULL, 100, 10, NULL), "");

  /* Asking for what was dropped is an error, not a silent gap. */
  json_t *out = json_array();
  char *msg = NULL;
  assert_int_equal(st->ops->events_since(st, NULL, 2, 10, out, NULL, &msg), SPE_ELIMIT);
  assert_string_equal(msg, "events after seq 2 are no longer kept: the memory store keeps the "
                           "last 5, the oldest is seq 4");
  free(msg);
  assert_int_equal(st->ops->events_since(st, "B", 0, 10, out, NULL, NULL), SPE_ELIMIT);
  assert_int_equal(json_array_size(out), 0);
  json_decref(out);

  /* Prune means nothing here (no job is kept): it counts none. */
  assert_int_equal(prune(st, INT64_MAX), 0);
  spe__store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pages_newest_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts_by_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_after_a_seq, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_removes_old_finished_jobs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_in_a_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reads_while_committing, setup, teardown),
      cmocka_unit_test(test_memory_keeps_no_events_by_default),
      cmocka_unit_test(test_memory_history_is_a_ring),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
