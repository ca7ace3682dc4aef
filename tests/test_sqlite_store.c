/* The SQLite store (sqlite:PATH): what is written comes back, across reopening;
 * a failed commit keeps nothing; one owner at a time; files that are not ours,
 * damaged or newer are refused and left as they were; the schema migrates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spe.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- scratch files ---- */

static char dir[1024]; /* this test's own folder, emptied before each test */

static const char *path_of(const char *name) {
  static char buf[4][1400];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static const char *url_of(const char *name) {
  static char buf[4][1500];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "sqlite:%s/%s", dir, name);
  return p;
}

static int setup(void **state) {
  const char *tmp = getenv("SPE_TEST_TMP");
  if (tmp == NULL) tmp = "/tmp";
  mkdir(tmp, 0777);
  snprintf(dir, sizeof dir, "%s/sqlite_store.%ld", tmp, (long)getpid());
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

static int teardown(void **state) {
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *buf = NULL;
  size_t cap = 0;
  *len = 0;
  for (;;) {
    if (*len == cap) {
      cap = cap ? cap * 2 : 4096;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    size_t n = fread(buf + *len, 1, cap - *len, f);
    if (n == 0) break;
    *len += n;
  }
  fclose(f);
  return buf;
}

static void write_all(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* ---- the logger: lines kept for the tests to look at ---- */

static char logged[8192];

static void keep_line(void *ctx, int level, const char *line) {
  size_t len = strlen(logged);
  snprintf(logged + len, sizeof logged - len, "%s\n", line);
}

static const struct logger test_log = {keep_line, NULL, SPE_LOG_INFO};

/* ---- opening ---- */

static struct store *open_ok(const char *url) {
  struct store *st = NULL;
  char *msg = NULL;
  int rc = spe__store_open(&st, url, &test_log, &msg);
  if (rc != 0) fail_msg("open %s: %d %s", url, rc, msg ? msg : "");
  assert_non_null(st);
  return st;
}

/* Expect opening to fail with `code` and a message that is `want`, with
 * "%s" standing for the URL. */
static void assert_open_fails(const char *url, int code, const char *want) {
  struct store *st = (struct store *)1;
  char *msg = NULL;
  assert_int_equal(spe__store_open(&st, url, &test_log, &msg), code);
  assert_null(st);
  assert_non_null(msg);
  char expected[2048];
  snprintf(expected, sizeof expected, want, url);
  assert_string_equal(msg, expected);
  free(msg);
}

/* ---- batches ---- */

static struct job_rec job(const char *id, const char *name, enum job_status status) {
  static const char desc[] = "{\"name\":\"x\",\"tasks\":{}}";
  return (struct job_rec){.id = id,
                          .name = name,
                          .canonical = desc,
                          .canonical_len = sizeof desc - 1,
                          .status = status,
                          .submitted_ms = 1000};
}

static struct task_rec task(const char *job_id, uint32_t index, enum task_status status) {
  return (struct task_rec){.job_id = job_id, .index = index, .status = status, .blocked_by = -1};
}

static json_t *event(const char *job_id, const char *type) {
  /* Like the engine's: "seq" first, null until the commit. */
  return json_pack("{s:n, s:I, s:s, s:s}", "seq", "time_ms", (json_int_t)1234, "job", job_id,
                   "type", type);
}

static void commit_ok(struct store *st, struct store_batch *b) {
  char *msg = NULL;
  int rc = spe__store_commit(st, b, &msg);
  if (rc != 0) fail_msg("commit: %d %s", rc, msg ? msg : "");
  spe__batch_clear(b);
}

/* One job with one task and one event, committed. */
static void commit_job(struct store *st, const char *id, enum job_status status) {
  struct store_batch b = {0};
  struct job_rec j = job(id, "job", status);
  struct task_rec t = task(id, 0, TASK_PENDING);
  assert_int_equal(spe__batch_job(&b, &j), 0);
  assert_int_equal(spe__batch_task(&b, &t), 0);
  assert_int_equal(spe__batch_event(&b, event(id, "job_submitted")), 0);
  commit_ok(st, &b);
  spe__batch_free(&b);
}

/* ---- reading back: a copy of what the callback saw ---- */

struct seen {
  int njobs;
  char ids[16][32];
  enum job_status status[16];
  uint32_t ntasks[16];
  json_t *tasks[16]; /* per job: array of {index, status, attempts, lost,
                        result, error, started_ms, finished_ms, blocked_by} */
  int stop_after;    /* non-zero: return 7 after this many jobs */
};

static int see(void *ctx, const struct stored_job *sj) {
  struct seen *s = ctx;
  assert_true(s->njobs < 16);
  int i = s->njobs++;
  snprintf(s->ids[i], sizeof s->ids[i], "%s", sj->job.id);
  s->status[i] = sj->job.status;
  s->ntasks[i] = sj->ntasks;
  s->tasks[i] = json_array();
  for (uint32_t k = 0; k < sj->ntasks; k++) {
    const struct task_rec *t = &sj->tasks[k];
    assert_string_equal(t->job_id, sj->job.id);
    json_array_append_new(
        s->tasks[i],
        json_pack("{s:i, s:s, s:i, s:i, s:o, s:o, s:I, s:I, s:i}", "index", (int)t->index,
                  "status", spe__task_status_name(t->status), "attempts", (int)t->attempts,
                  "lost", (int)t->lost, "result", t->result ? json_incref(t->result) : json_null(),
                  "error", t->error ? json_incref(t->error) : json_null(), "started_ms",
                  (json_int_t)t->started_ms, "finished_ms", (json_int_t)t->finished_ms,
                  "blocked_by", (int)t->blocked_by));
  }
  return s->stop_after && s->njobs == s->stop_after ? 7 : 0;
}

static void seen_free(struct seen *s) {
  for (int i = 0; i < s->njobs; i++) json_decref(s->tasks[i]);
}

static void assert_json_equal(json_t *got, const char *want_text) {
  json_t *want = json_loads(want_text, 0, NULL);
  assert_non_null(want);
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    fail_msg("got %s\nwant %s", g, want_text);
  }
  json_decref(want);
}

/* ---- SQLite, directly, to look at the file as another program would ---- */

static char *query_text(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  char *out = NULL;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out ? out : strdup("");
}

static void assert_query(const char *path, const char *sql, const char *want) {
  char *got = query_text(path, sql);
  assert_string_equal(got, want);
  free(got);
}

static void exec_sql(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) fail_msg("%s: %s", sql, err);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* ======================================================================== */

static void test_new_store_is_created_with_its_folder(void **state) {
  logged[0] = '\0';
  const char *url = url_of("sub/state.db");
  struct store *st = open_ok(url);
  assert_string_equal(st->ops->scheme, "sqlite");
  assert_true(exists(path_of("sub/state.db")));
  assert_true(exists(path_of("sub/state.db.lock")));
  assert_false(exists(path_of("sub/state.db.new")));
  spe__store_close(st);
  assert_non_null(strstr(logged, "created state store"));
  assert_non_null(strstr(logged, "(schema 2, 0 unfinished jobs, last event 0)"));

  /* A clean close leaves no WAL behind, and an empty lock file. */
  assert_false(exists(path_of("sub/state.db-wal")));
  assert_false(exists(path_of("sub/state.db-shm")));
  size_t len;
  free(read_all(path_of("sub/state.db.lock"), &len));
  assert_int_equal(len, 0);

  /* What another program sees: an SPE store, in WAL mode. */
  const char *db = path_of("sub/state.db");
  assert_query(db, "PRAGMA application_id", "1397769521"); /* 'SPE1' */
  assert_query(db, "PRAGMA user_version", "2");
  assert_query(db, "PRAGMA journal_mode", "wal");
  assert_query(db, "SELECT value FROM meta WHERE key = 'format'", "spe-state-store");

  /* Two levels of missing folders are one too many. */
  char want[2600];
  snprintf(want, sizeof want,
           "cannot create the folder %s for state store %%s: No such file or directory",
           path_of("a/b"));
  assert_open_fails(url_of("a/b/state.db"), SPE_ESTORE, want);
}

static void test_empty_file_becomes_a_store(void **state) {
  write_all(path_of("empty.db"), "", 0);
  struct store *st = open_ok(url_of("empty.db"));
  commit_job(st, "J1", JOB_SUBMITTED);
  spe__store_close(st);
  assert_query(path_of("empty.db"), "SELECT id FROM jobs", "J1");
}

/* A crash while a store was being created leaves its scratch files, which the
 * next creation clears away; the store's own name never held half a store. */
static void test_creation_interrupted_is_started_over(void **state) {
  write_all(path_of("state.db.new"), "half a store", 12);
  write_all(path_of("state.db.new-journal"), "a journal", 9);
  struct store *st = open_ok(url_of("state.db"));
  spe__store_close(st);
  assert_false(exists(path_of("state.db.new")));
  assert_false(exists(path_of("state.db.new-journal")));
  assert_query(path_of("state.db"), "PRAGMA integrity_check", "ok");
}

/* A database's log whose database is missing (or empty) is someone's data: no
 * new store is built over it. */
static void test_no_new_store_over_a_log(void **state) {
  write_all(path_of("gone.db-wal"), "some frames", 11);
  char want[1400];
  snprintf(want, sizeof want,
           "cannot create state store %%s: %s, the log of a database, is there without the "
           "database (move it away first)",
           path_of("gone.db-wal"));
  assert_open_fails(url_of("gone.db"), SPE_ESTORE, want);
  assert_false(exists(path_of("gone.db")));

  write_all(path_of("empty.db"), "", 0);
  write_all(path_of("empty.db-journal"), "a journal", 9);
  snprintf(want, sizeof want,
           "cannot create state store %%s: %s, the log of a database, is there without the "
           "database (move it away first)",
           path_of("empty.db-journal"));
  assert_open_fails(url_of("empty.db"), SPE_ESTORE, want);
  size_t len;
  free(read_all(path_of("empty.db"), &len));
  assert_int_equal(len, 0);
}

static void test_records_come_back_after_reopening(void **state) {
  const char *url = url_of("state.db");
  struct store *st = open_ok(url);
  struct store_batch b = {0};
  struct job_rec j = job("J1", "build", JOB_SUBMITTED);
  assert_int_equal(spe__batch_job(&b, &j), 0);
  assert_int_equal(spe__batch_event(&b, event("J1", "job_submitted")), 0);
  commit_ok(st, &b);

  /* The next round: the job runs, three tasks change. */
  j.status = JOB_RUNNING;
  j.started_ms = 2000;
  struct task_rec ok = task("J1", 0, TASK_SUCCEEDED);
  ok.attempts = 1;
  ok.result = json_pack("{s:s, s:[i,i]}", "out", "héllo\n", "n", 1, 2);
  ok.started_ms = 2001;
  ok.finished_ms = 2002;
  struct task_rec bad = task("J1", 2, TASK_FAILED);
  bad.attempts = 3;
  bad.lost = 1;
  bad.error = json_pack("{s:s, s:s}", "kind", "exit", "message", "exit status 2");
  struct task_rec blocked = task("J1", 1, TASK_NOT_RUN);
  blocked.blocked_by = 2;
  assert_int_equal(spe__batch_job(&b, &j), 0);
  assert_int_equal(spe__batch_task(&b, &ok), 0);
  assert_int_equal(spe__batch_task(&b, &bad), 0);
  assert_int_equal(spe__batch_task(&b, &blocked), 0);
  json_t *ev[2] = {event("J1", "task_started"), event("J1", "task_terminated")};
  for (int i = 0; i < 2; i++) {
    json_incref(ev[i]);
    assert_int_equal(spe__batch_event(&b, ev[i]), 0);
  }
  commit_ok(st, &b);
  /* Numbered in order, after the first round's event; the key kept its place. */
  assert_int_equal(json_integer_value(json_object_get(ev[0], "seq")), 2);
  assert_int_equal(json_integer_value(json_object_get(ev[1], "seq")), 3);
  assert_string_equal(json_object_iter_key(json_object_iter(ev[0])), "seq");
  json_decref(ev[0]);
  json_decref(ev[1]);
  json_decref(ok.result);
  json_decref(bad.error);
  spe__store_close(st);

  logged[0] = '\0';
  st = open_ok(url);
  assert_non_null(strstr(logged, "(schema 2, 1 unfinished jobs, last event 3)"));
  struct seen s = {0};
  char *msg = NULL;
  assert_int_equal(st->ops->load_job(st, "J1", see, &s, &msg), 0);
  assert_int_equal(s.njobs, 1);
  assert_int_equal(s.status[0], JOB_RUNNING);
  /* Index order, whatever the order they were written in. */
  assert_json_equal(
      s.tasks[0],
      "[{\"index\":0,\"status\":\"succeeded\",\"attempts\":1,\"lost\":0,"
      "\"result\":{\"out\":\"héllo\\n\",\"n\":[1,2]},\"error\":null,\"started_ms\":2001,"
      "\"finished_ms\":2002,\"blocked_by\":-1},"
      "{\"index\":1,\"status\":\"not_run\",\"attempts\":0,\"lost\":0,\"result\":null,"
      "\"error\":null,\"started_ms\":0,\"finished_ms\":0,\"blocked_by\":2},"
      "{\"index\":2,\"status\":\"failed\",\"attempts\":3,\"lost\":1,\"result\":null,"
      "\"error\":{\"kind\":\"exit\",\"message\":\"exit status 2\"},\"started_ms\":0,"
      "\"finished_ms\":0,\"blocked_by\":-1}]");
  seen_free(&s);

  /* Numbering continues across the reopening. */
  json_t *later = event("J1", "job_finished");
  json_incref(later);
  assert_int_equal(spe__batch_event(&b, later), 0);
  commit_ok(st, &b);
  assert_int_equal(json_integer_value(json_object_get(later, "seq")), 4);
  json_decref(later);
  spe__batch_free(&b);
  spe__store_close(st);

  /* The event log holds each event as published. */
  const char *db = path_of("state.db");
  assert_query(db, "SELECT group_concat(seq || ':' || type, ' ') FROM events",
               "1:job_submitted 2:task_started 3:task_terminated 4:job_finished");
  assert_query(db, "SELECT body FROM events WHERE seq = 4",
               "{\"seq\":4,\"time_ms\":1234,\"job\":\"J1\",\"type\":\"job_finished\"}");
  assert_query(db, "SELECT job_id || ' ' || time_ms FROM events WHERE seq = 4", "J1 1234");
  /* The description's hash, for finding a job to resume by (name, hash). */
  char want[64];
  static const char desc[] = "{\"name\":\"x\",\"tasks\":{}}";
  snprintf(want, sizeof want, "%lld",
           (long long)(int64_t)spe__store_sqlite_hash(desc, sizeof desc - 1));
  assert_query(db, "SELECT description_hash FROM jobs WHERE id = 'J1'", want);
  assert_query(db, "SELECT description FROM jobs WHERE id = 'J1'", desc);
}

static void test_load_unfinished_in_submission_order(void **state) {
  const char *url = url_of("state.db");
  struct store *st = open_ok(url);
  /* Ids that sort the other way from their submission. */
  commit_job(st, "Z-running", JOB_RUNNING);
  commit_job(st, "Y-done", JOB_SUCCEEDED);
  commit_job(st, "X-submitted", JOB_SUBMITTED);
  commit_job(st, "W-failed", JOB_FAILED);
  commit_job(st, "V-running", JOB_RUNNING);
  commit_job(st, "U-cancelled", JOB_CANCELLED);
  /* An update keeps the job's place in the order. */
  struct store_batch b = {0};
  struct job_rec j = job("X-submitted", "job", JOB_RUNNING);
  struct task_rec t = task("X-submitted", 5, TASK_RUNNING);
  assert_int_equal(spe__batch_job(&b, &j), 0);
  assert_int_equal(spe__batch_task(&b, &t), 0);
  j = job("V-running", "job", JOB_SUCCEEDED);
  assert_int_equal(spe__batch_job(&b, &j), 0);
  commit_ok(st, &b);
  spe__batch_free(&b);
  spe__store_close(st);

  st = open_ok(url);
  struct seen s = {0};
  assert_int_equal(st->ops->load_unfinished(st, see, &s, NULL), 0);
  assert_int_equal(s.njobs, 2);
  assert_string_equal(s.ids[0], "Z-running");
  assert_string_equal(s.ids[1], "X-submitted");
  assert_int_equal(s.status[1], JOB_RUNNING);
  assert_int_equal(s.ntasks[1], 2);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.tasks[1], 1), "index")),
                   5);
  seen_free(&s);

  /* The callback's non-zero answer stops the reading and is returned. */
  struct seen first = {.stop_after = 1};
  assert_int_equal(st->ops->load_unfinished(st, see, &first, NULL), 7);
  assert_int_equal(first.njobs, 1);
  seen_free(&first);

  /* One job, whatever its status; none for an unknown id. */
  struct seen one = {0};
  assert_int_equal(st->ops->load_job(st, "U-cancelled", see, &one, NULL), 0);
  assert_int_equal(one.njobs, 1);
  assert_int_equal(one.status[0], JOB_CANCELLED);
  seen_free(&one);
  char *msg = NULL;
  struct seen none = {0};
  assert_int_equal(st->ops->load_job(st, "nope", see, &none, &msg), SPE_ENOJOB);
  assert_string_equal(msg, "no job with id \"nope\"");
  assert_int_equal(none.njobs, 0);
  free(msg);
  spe__store_close(st);
}

/* A failed commit keeps nothing of its batch and takes its numbers back. */
static void test_failed_commit_keeps_nothing(void **state) {
  const char *url = url_of("state.db");
  setenv("SPE_STORE_FAULT", "commit:2", 1);
  logged[0] = '\0';
  struct store *st = open_ok(url);
  unsetenv("SPE_STORE_FAULT");
  assert_non_null(strstr(logged, "fault injection SPE_STORE_FAULT=commit:2"));
  commit_job(st, "J1", JOB_SUBMITTED); /* commit 1 */

  struct store_batch b = {0};
  struct job_rec j = job("J1", "job", JOB_RUNNING);
  struct job_rec j2 = job("J2", "other", JOB_SUBMITTED);
  struct task_rec t = task("J1", 0, TASK_SUCCEEDED);
  t.result = json_integer(42);
  json_t *ev[3] = {event("J1", "job_started"), event("J1", "task_terminated"), json_object()};
  assert_int_equal(spe__batch_job(&b, &j), 0);
  assert_int_equal(spe__batch_job(&b, &j2), 0);
  assert_int_equal(spe__batch_task(&b, &t), 0);
  for (int i = 0; i < 3; i++) {
    json_incref(ev[i]);
    assert_int_equal(spe__batch_event(&b, ev[i]), 0);
  }
  char *msg = NULL;
  assert_int_equal(spe__store_commit(st, &b, &msg), SPE_ESTORE); /* commit 2 */
  char want[1400];
  snprintf(want, sizeof want, "state store write failed: database or disk is full (%s)", url);
  assert_string_equal(msg, want);
  free(msg);
  /* The events are as they came: "seq" null where it was, absent where not. */
  assert_true(json_is_null(json_object_get(ev[0], "seq")));
  assert_true(json_is_null(json_object_get(ev[1], "seq")));
  assert_null(json_object_get(ev[2], "seq"));
  assert_string_equal(json_object_iter_key(json_object_iter(ev[0])), "seq");

  /* The same batch again: numbered from where the last good commit left. */
  commit_ok(st, &b); /* commit 3 */
  assert_int_equal(json_integer_value(json_object_get(ev[0], "seq")), 2);
  assert_int_equal(json_integer_value(json_object_get(ev[2], "seq")), 4);
  for (int i = 0; i < 3; i++) json_decref(ev[i]);
  json_decref(t.result);
  spe__batch_free(&b);
  spe__store_close(st);
  assert_query(path_of("state.db"),
               "SELECT group_concat(seq, ',') FROM (SELECT seq FROM events ORDER BY seq)",
               "1,2,3,4");

  /* And a batch that fails is not in the file at all. */
  setenv("SPE_STORE_FAULT", "commit:1+", 1);
  st = open_ok(url);
  unsetenv("SPE_STORE_FAULT");
  for (int round = 0; round < 2; round++) {
    struct job_rec j3 = job("J3", "third", JOB_SUBMITTED);
    assert_int_equal(spe__batch_job(&b, &j3), 0);
    assert_int_equal(spe__batch_event(&b, event("J3", "job_submitted")), 0);
    assert_int_equal(spe__store_commit(st, &b, NULL), SPE_ESTORE);
    spe__batch_clear(&b);
  }
  spe__batch_free(&b);
  spe__store_close(st);
  const char *db = path_of("state.db");
  assert_query(db, "SELECT count(*) FROM jobs WHERE id = 'J3'", "0");
  assert_query(db, "SELECT max(seq) FROM events", "4");
  assert_query(db, "SELECT status FROM jobs WHERE id = 'J1'", "running");
  assert_query(db, "PRAGMA integrity_check", "ok");
}

static void test_fault_setting_must_be_understood(void **state) {
  static const char *const bad[] = {"commit:", "commit:0", "commit:2x", "disk", "pages:-1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("SPE_STORE_FAULT", bad[i], 1);
    char want[256];
    snprintf(want, sizeof want,
             "SPE_STORE_FAULT=\"%s\" is not understood (expected commit:N, commit:N+ or "
             "pages:N, N >= 1)",
             bad[i]);
    assert_open_fails(url_of("state.db"), SPE_EINVAL, want);
  }
  unsetenv("SPE_STORE_FAULT");
}

/* A real full disk: the file may not grow past a few pages. */
static void test_full_disk_leaves_a_usable_store(void **state) {
  const char *url = url_of("state.db");
  setenv("SPE_STORE_FAULT", "pages:12", 1);
  struct store *st = open_ok(url);
  unsetenv("SPE_STORE_FAULT");
  struct store_batch b = {0};
  char id[32];
  int committed = 0, rc = 0;
  char *msg = NULL;
  json_t *big = json_pack("{s:s}", "out", "0123456789012345678901234567890123456789");
  for (int i = 0; i < 1000 && rc == 0; i++) {
    snprintf(id, sizeof id, "J%04d", i);
    struct job_rec j = job(id, "job", JOB_RUNNING);
    assert_int_equal(spe__batch_job(&b, &j), 0);
    for (uint32_t k = 0; k < 10; k++) {
      struct task_rec t = task(id, k, TASK_SUCCEEDED);
      t.result = big;
      assert_int_equal(spe__batch_task(&b, &t), 0);
    }
    assert_int_equal(spe__batch_event(&b, event(id, "job_started")), 0);
    rc = spe__store_commit(st, &b, &msg);
    spe__batch_clear(&b);
    if (rc == 0) committed++;
  }
  assert_int_equal(rc, SPE_ESTORE);
  assert_true(committed > 0);
  assert_non_null(strstr(msg, "database or disk is full"));
  free(msg);
  json_decref(big);
  spe__batch_free(&b);
  spe__store_close(st);

  /* Every commit that succeeded is there, the failed one is not. */
  st = open_ok(url);
  int n = 0;
  char want[32];
  snprintf(want, sizeof want, "%d", committed);
  assert_query(path_of("state.db"), "SELECT count(*) FROM jobs", want);
  struct seen s = {.stop_after = 1};
  assert_int_equal(st->ops->load_unfinished(st, see, &s, NULL), 7);
  assert_int_equal(s.ntasks[0], 10);
  seen_free(&s);
  (void)n;
  spe__store_close(st);
  assert_query(path_of("state.db"), "PRAGMA integrity_check", "ok");
}

/* ---- one owner ---- */

static void test_second_owner_is_refused(void **state) {
  const char *url = url_of("state.db");
  int ready[2], go[2];
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    struct store *st = NULL;
    int rc = spe__store_open(&st, url, NULL, NULL);
    char c = rc == 0 ? 'y' : 'n';
    if (write(ready[1], &c, 1) != 1) _exit(2);
    if (read(go[0], &c, 1) < 0) _exit(2); /* wait until told */
    spe__store_close(st);
    _exit(0);
  }
  char c = 0;
  assert_int_equal(read(ready[0], &c, 1), 1);
  assert_int_equal(c, 'y');

  char want[1400];
  snprintf(want, sizeof want, "state store %%s is in use by process %ld", (long)child);
  assert_open_fails(url, SPE_ELOCKED, want);

  assert_int_equal(write(go[1], "x", 1), 1);
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);

  /* Its owner gone, the store is ours; within one process too there is one
   * owner. */
  logged[0] = '\0';
  struct store *st = open_ok(url);
  assert_null(strstr(logged, "took over")); /* it closed cleanly */
  snprintf(want, sizeof want, "state store %%s is in use by process %ld", (long)getpid());
  assert_open_fails(url, SPE_ELOCKED, want);
  spe__store_close(st);
}

static void test_lock_of_a_dead_owner_is_taken_over(void **state) {
  const char *url = url_of("state.db");
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    struct store *st = NULL;
    if (spe__store_open(&st, url, NULL, NULL) != 0) _exit(2);
    commit_job(st, "J1", JOB_RUNNING);
    _exit(0); /* dies holding the store, as a kill -9 would leave it */
  }
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(exists(path_of("state.db-wal"))); /* not checkpointed */

  logged[0] = '\0';
  struct store *st = open_ok(url);
  char want[256];
  snprintf(want, sizeof want, "took over the lock of process %ld, which is gone", (long)child);
  assert_non_null(strstr(logged, want));
  struct seen s = {0};
  assert_int_equal(st->ops->load_unfinished(st, see, &s, NULL), 0);
  assert_int_equal(s.njobs, 1);
  assert_string_equal(s.ids[0], "J1");
  seen_free(&s);
  /* The lock file names the new owner. */
  size_t len;
  char *pid = read_all(path_of("state.db.lock"), &len);
  snprintf(want, sizeof want, "%ld\n", (long)getpid());
  assert_int_equal(len, strlen(want));
  assert_memory_equal(pid, want, len);
  free(pid);
  spe__store_close(st);
}

/* A process killed (SIGKILL) in the middle of its commits leaves a store that
 * holds every commit that returned, each one whole: task 0's attempts and the
 * number of events move together, one per round, and the events are numbered
 * without a gap. The kill lands after a random number of commits, while the
 * child is in or between commits. */
static void test_killed_writer_leaves_whole_rounds(void **state) {
  const char *url = url_of("state.db");
  srand(11);
  for (int trial = 0; trial < 6; trial++) {
    int acks[2];
    assert_int_equal(pipe(acks), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
      close(acks[0]);
      struct store *st = NULL;
      if (spe__store_open(&st, url, NULL, NULL) != 0) _exit(2);
      struct store_batch b = {0};
      struct job_rec j = job("J1", "job", JOB_RUNNING);
      for (uint32_t round = 1;; round++) {
        struct task_rec t = task("J1", 0, TASK_RUNNING);
        t.attempts = round;
        if (spe__batch_job(&b, &j) || spe__batch_task(&b, &t) ||
            spe__batch_event(&b, event("J1", "task_started")))
          _exit(3);
        if (spe__store_commit(st, &b, NULL) != 0) _exit(4);
        spe__batch_clear(&b);
        if (write(acks[1], "r", 1) != 1) _exit(5);
      }
    }
    close(acks[1]);
    /* Let it commit a random number of rounds, then kill it. */
    int want = 1 + rand() % 150;
    char c;
    for (int i = 0; i < want; i++) assert_int_equal(read(acks[0], &c, 1), 1);
    kill(child, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    close(acks[0]);

    struct store *st = open_ok(url);
    struct seen s = {0};
    assert_int_equal(st->ops->load_job(st, "J1", see, &s, NULL), 0);
    json_int_t attempts =
        json_integer_value(json_object_get(json_array_get(s.tasks[0], 0), "attempts"));
    seen_free(&s);
    spe__store_close(st);
    const char *db = path_of("state.db");
    char *events = query_text(db, "SELECT count(*) FROM events");
    char *last = query_text(db, "SELECT max(seq) FROM events");
    assert_int_equal(atoll(events), attempts);
    assert_int_equal(atoll(last), attempts);
    assert_true(attempts >= want);
    free(events);
    free(last);
    assert_query(db, "PRAGMA integrity_check", "ok");
    /* The next trial starts over on a fresh store. */
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", db, db, db);
    assert_int_equal(system(cmd), 0);
  }
}

/* ---- files that are not ours ---- */

/* Opening `name` fails with `want` and leaves the file, and its neighbours,
 * as they were. */
static void assert_refused_untouched(const char *name, const char *want) {
  size_t before_len, after_len;
  char *before = read_all(path_of(name), &before_len);
  char wal[256], shm[256];
  snprintf(wal, sizeof wal, "%s-wal", name);
  snprintf(shm, sizeof shm, "%s-shm", name);
  int had_wal = exists(path_of(wal)), had_shm = exists(path_of(shm));
  assert_open_fails(url_of(name), SPE_ESTORE, want);
  char *after = read_all(path_of(name), &after_len);
  assert_int_equal(after_len, before_len);
  assert_memory_equal(after, before, before_len);
  assert_int_equal(exists(path_of(wal)), had_wal);
  assert_int_equal(exists(path_of(shm)), had_shm);
  free(before);
  free(after);
}

static void test_foreign_files_are_refused_untouched(void **state) {
  /* Random bytes. */
  char noise[10000];
  srand(7);
  for (size_t i = 0; i < sizeof noise; i++) noise[i] = (char)rand();
  write_all(path_of("noise.db"), noise, sizeof noise);
  assert_refused_untouched("noise.db", "state store %s is not an SPE state store");
  /* Text. */
  write_all(path_of("notes.txt"), "hello\n", 6);
  assert_refused_untouched("notes.txt", "state store %s is not an SPE state store");

  /* Another application's SQLite database, in WAL mode like ours. */
  exec_sql(path_of("other.db"),
           "PRAGMA journal_mode = WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);");
  assert_refused_untouched("other.db", "state store %s is not an SPE state store");
  /* Even one that has a meta table like ours, without our application id. */
  exec_sql(path_of("lookalike.db"),
           "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
           "INSERT INTO meta VALUES ('format', 'spe-state-store');");
  assert_refused_untouched("lookalike.db", "state store %s is not an SPE state store");
  /* Or our application id and no meta row. */
  exec_sql(path_of("sameid.db"), "PRAGMA application_id = 1397769521; CREATE TABLE t(x);");
  assert_refused_untouched("sameid.db", "state store %s is not an SPE state store");
}

static void test_damaged_store_is_refused_untouched(void **state) {
  struct store *st = open_ok(url_of("state.db"));
  char id[32];
  for (int i = 0; i < 50; i++) {
    snprintf(id, sizeof id, "J%03d", i);
    commit_job(st, id, JOB_RUNNING);
  }
  spe__store_close(st);
  size_t len;
  char *whole = read_all(path_of("state.db"), &len);
  assert_true(len >= 8 * 4096);

  /* Cut in half. */
  write_all(path_of("state.db"), whole, len / 2);
  char want[256];
  snprintf(want, sizeof want,
           "state store %%s is damaged: the file is %zu bytes long, its header says %zu",
           len / 2, len);
  assert_refused_untouched("state.db", want);

  /* Cut inside its header. */
  write_all(path_of("state.db"), whole, 60);
  assert_refused_untouched("state.db", "state store %s is damaged: the file is 60 bytes long");

  /* Whole, but its schema page overwritten: SQLite itself finds it damaged. */
  memset(whole + 100, 0x5a, 4096 - 100);
  write_all(path_of("state.db"), whole, len);
  assert_refused_untouched("state.db",
                           "state store %s is damaged: database disk image is malformed");
  free(whole);
}

static void test_newer_schema_is_refused_untouched(void **state) {
  struct store *st = open_ok(url_of("state.db"));
  commit_job(st, "J1", JOB_RUNNING);
  spe__store_close(st);
  exec_sql(path_of("state.db"), "PRAGMA user_version = 7");
  assert_refused_untouched("state.db",
                           "state store %s was written by a newer SPE (schema 7, this build "
                           "knows 2)");

  /* A newer SPE that died before checkpointing: the version is only in the
   * WAL, the file's own header still says 2. */
  exec_sql(path_of("state.db"), "PRAGMA user_version = 2");
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path_of("state.db"), &db) != SQLITE_OK) _exit(2);
    if (sqlite3_exec(db, "PRAGMA user_version = 9", NULL, NULL, NULL) != SQLITE_OK) _exit(2);
    _exit(0); /* no close: no checkpoint */
  }
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_int_equal(WEXITSTATUS(status), 0);
  size_t wal_before, wal_after;
  char *wal = read_all(path_of("state.db-wal"), &wal_before);
  assert_refused_untouched("state.db",
                           "state store %s was written by a newer SPE (schema 9, this build "
                           "knows 2)");
  char *wal2 = read_all(path_of("state.db-wal"), &wal_after);
  assert_int_equal(wal_after, wal_before);
  assert_memory_equal(wal, wal2, wal_before);
  free(wal);
  free(wal2);
}

/* ---- migrations ---- */

/* A later build's steps after the built-in ones: one that works, one that
 * fails. */
static const char later_ok[] =
    "ALTER TABLE jobs ADD COLUMN note TEXT;"
    "INSERT INTO meta(key, value) VALUES ('migrated', 'yes');";
static const char later_bad[] = "CREATE TABLE jobs(x);"; /* fails: the table exists */

static void test_schema_migrates_forward(void **state) {
  const struct sqlite_schema *builtin = spe__store_sqlite_schema;
  const int n = builtin->nsteps;
  assert_int_equal(n, 2);
  const char *url = url_of("state.db");
  struct store *st = open_ok(url);
  commit_job(st, "J1", JOB_RUNNING);
  spe__store_close(st);

  /* A later build, with one more step: the store migrates on open. */
  const char *steps[8];
  for (int i = 0; i < n; i++) steps[i] = builtin->steps[i];
  steps[n] = later_ok;
  steps[n + 1] = later_bad;
  struct sqlite_schema next = {steps, n + 1};
  spe__store_sqlite_schema = &next;
  logged[0] = '\0';
  st = open_ok(url);
  char want[1400];
  snprintf(want, sizeof want, "migrated state store %s from schema %d to %d", url, n, n + 1);
  assert_non_null(strstr(logged, want));
  struct seen s = {0};
  assert_int_equal(st->ops->load_unfinished(st, see, &s, NULL), 0);
  assert_int_equal(s.njobs, 1);
  seen_free(&s);
  commit_job(st, "J2", JOB_SUBMITTED);
  spe__store_close(st);
  const char *db = path_of("state.db");
  char version[16];
  snprintf(version, sizeof version, "%d", n + 1);
  assert_query(db, "PRAGMA user_version", version);
  assert_query(db, "SELECT value FROM meta WHERE key = 'migrated'", "yes");
  assert_query(db, "SELECT count(*) FROM jobs WHERE note IS NULL", "2");

  /* A step that fails leaves the store as it was. */
  struct sqlite_schema broken = {steps, n + 2};
  spe__store_sqlite_schema = &broken;
  snprintf(want, sizeof want,
           "cannot migrate state store %%s from schema %d to %d: table jobs already exists",
           n + 1, n + 2);
  assert_open_fails(url, SPE_ESTORE, want);
  spe__store_sqlite_schema = builtin;
  assert_query(db, "PRAGMA user_version", version);
  assert_query(db, "PRAGMA integrity_check", "ok");

  /* And this build, older, refuses it. */
  snprintf(want, sizeof want,
           "state store %%s was written by a newer SPE (schema %d, this build knows %d)", n + 1,
           n);
  assert_open_fails(url, SPE_ESTORE, want);
}

/* A store written by the build before (schema 1: no query indexes) opens in
 * this one: it gains the indexes of schema 2 and answers every query, over
 * the rows it already had. */
static void test_schema_1_store_migrates_to_2(void **state) {
  const struct sqlite_schema *builtin = spe__store_sqlite_schema;
  struct sqlite_schema v1 = {builtin->steps, 1};
  spe__store_sqlite_schema = &v1;
  const char *url = url_of("state.db");
  struct store *st = open_ok(url);
  commit_job(st, "J1", JOB_SUCCEEDED);
  commit_job(st, "J2", JOB_RUNNING);
  spe__store_close(st);
  spe__store_sqlite_schema = builtin;
  const char *db = path_of("state.db");
  assert_query(db, "PRAGMA user_version", "1");
  assert_query(db, "SELECT count(*) FROM sqlite_master WHERE name = 'events_by_job'", "0");

  logged[0] = '\0';
  st = open_ok(url);
  char want[1400];
  snprintf(want, sizeof want, "migrated state store %s from schema 1 to 2", url);
  assert_non_null(strstr(logged, want));
  uint64_t counts[JOB_STATUS_COUNT];
  assert_int_equal(st->ops->count_jobs(st, counts, NULL), 0);
  assert_int_equal(counts[JOB_SUCCEEDED], 1);
  assert_int_equal(counts[JOB_RUNNING], 1);
  json_t *evs = json_array();
  int64_t last = 0;
  assert_int_equal(st->ops->events_since(st, "J2", 0, 10, evs, &last, NULL), 0);
  assert_int_equal(json_array_size(evs), 1);
  assert_int_equal(last, 2);
  json_decref(evs);
  spe__store_close(st);
  assert_query(db, "PRAGMA user_version", "2");
  assert_query(db,
               "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master"
               " WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name)",
               "events_by_job jobs_by_description jobs_by_finished jobs_by_status "
               "jobs_by_status_id");
  assert_query(db, "PRAGMA integrity_check", "ok");
}

/* ---- many commits ---- */

static void test_many_commits_leave_an_intact_file(void **state) {
  const char *url = url_of("state.db");
  struct store *st = open_ok(url);
  struct store_batch b = {0};
  char ids[20][16];
  for (int i = 0; i < 20; i++) snprintf(ids[i], sizeof ids[i], "J%02d", i);
  json_t *result = json_pack("{s:s, s:i}", "out", "done", "code", 0);
  int64_t events = 0;
  for (int round = 0; round < 400; round++) {
    const char *id = ids[round % 20];
    struct job_rec j = job(id, "job", round < 380 ? JOB_RUNNING : JOB_SUCCEEDED);
    assert_int_equal(spe__batch_job(&b, &j), 0);
    for (uint32_t k = 0; k < 5; k++) {
      struct task_rec t = task(id, (uint32_t)(round / 20) * 5 + k, TASK_SUCCEEDED);
      t.result = result;
      assert_int_equal(spe__batch_task(&b, &t), 0);
      assert_int_equal(spe__batch_event(&b, event(id, "task_terminated")), 0);
      events++;
    }
    commit_ok(st, &b);
  }
  json_decref(result);
  spe__batch_free(&b);
  spe__store_close(st);
  const char *db = path_of("state.db");
  assert_query(db, "PRAGMA integrity_check", "ok");
  assert_query(db, "PRAGMA foreign_key_check", "");
  assert_query(db, "SELECT count(*) FROM tasks", "2000");
  assert_query(db, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", "20");
  char want[32];
  snprintf(want, sizeof want, "%lld", (long long)events);
  assert_query(db, "SELECT max(seq) || '' FROM events", want);
  assert_query(db, "SELECT count(*) FROM events", want);
}

/* The checks before opening pass the path to SQLite as a URI: characters that
 * mean something in a URI must reach the right file. */
static void test_odd_file_names(void **state) {
  static const char *const names[] = {"with space.db", "what?.db", "hash#.db", "100%.db",
                                      "file:x.db"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    struct store *st = open_ok(url_of(names[i]));
    commit_job(st, "J1", JOB_RUNNING);
    spe__store_close(st);
    st = open_ok(url_of(names[i])); /* through the read-only checks this time */
    struct seen s = {0};
    assert_int_equal(st->ops->load_unfinished(st, see, &s, NULL), 0);
    assert_int_equal(s.njobs, 1);
    seen_free(&s);
    spe__store_close(st);
    assert_true(exists(path_of(names[i])));
  }
}

static void test_a_folder_is_not_a_store(void **state) {
  mkdir(path_of("folder.db"), 0777);
  assert_open_fails(url_of("folder.db"), SPE_ESTORE, "cannot open state store %s: it is a folder");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_new_store_is_created_with_its_folder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_file_becomes_a_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_creation_interrupted_is_started_over, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_new_store_over_a_log, setup, teardown),
      cmocka_unit_test_setup_teardown(test_records_come_back_after_reopening, setup, teardown),
      cmocka_unit_test_setup_teardown(test_load_unfinished_in_submission_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_commit_keeps_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fault_setting_must_be_understood, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_disk_leaves_a_usable_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_second_owner_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lock_of_a_dead_owner_is_taken_over, setup, teardown),
      cmocka_unit_test_setup_teardown(test_killed_writer_leaves_whole_rounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_foreign_files_are_refused_untouched, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_store_is_refused_untouched, setup, teardown),
      cmocka_unit_test_setup_teardown(test_newer_schema_is_refused_untouched, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schema_migrates_forward, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schema_1_store_migrates_to_2, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_commits_leave_an_intact_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_odd_file_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_folder_is_not_a_store, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
