/*
 * Reading jobs back from the SQLite store: the unfinished ones for recovery
 * (on the writer connection), or one by id (on the reader,
 * store_sqlite_query.c). A job_loader holds what one connection needs for it.
 *
 * Jobs are streamed: a job row, then its tasks (one range of the tasks
 * table, which is ordered by (job_id, idx)), then the callback, then the next
 * job. The job statement stays open while its tasks are read, so both come
 * from one snapshot. What the callback sees points into SQLite's row buffers,
 * the loader's reused task array and JSON values the store parsed; all of it
 * is released or reused after the callback returns. The callback must not
 * call the store.
 */
#include "store/store_sqlite.h"

#include "base/msg.h"
#include "spe.h"

#include <stdlib.h>
#include <string.h>

#define JOB_COLUMNS SPE_SQLITE_JOB_COLUMNS

int spe__store_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out) {
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

int spe__store_sqlite_loader_init(struct job_loader *l, sqlite3 *db) {
  l->db = db;
  return spe__store_sqlite_prepare(db,
                                   "SELECT idx, status, attempts, lost, result, error, started_ms,"
                                   " finished_ms, blocked_by FROM tasks WHERE job_id = ?1"
                                   " ORDER BY idx",
                                   &l->select_tasks);
}

void spe__store_sqlite_loader_free(struct job_loader *l) {
  sqlite3_finalize(l->select_tasks);
  l->select_tasks = NULL;
  free(l->loaded);
  l->loaded = NULL;
  l->cap_loaded = 0;
}

int spe__store_sqlite_prepare_read(struct sqlite_store *ss) {
  int rc = spe__store_sqlite_prepare(ss->db,
                                     "SELECT " JOB_COLUMNS " FROM jobs"
                                     " WHERE status IN ('submitted', 'running') ORDER BY seq",
                                     &ss->select_unfinished);
  if (rc != SQLITE_OK) return rc;
  return spe__store_sqlite_loader_init(&ss->recovery, ss->db);
}

/* A reading failure of ours: the file holds something this build never
 * writes. */
struct bad_row {
  const char *what; /* "job status", "task result", ... */
  const char *job;
};

static int column_json(sqlite3_stmt *st, int col, json_t **out) {
  *out = NULL;
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return 0;
  const char *text = (const char *)sqlite3_column_text(st, col);
  int len = sqlite3_column_bytes(st, col);
  if (text == NULL) return -1;
  *out = json_loadb(text, (size_t)len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  return *out ? 0 : -1;
}

/* A text column read as a C string: NULL when it is NULL or holds a NUL byte
 * (which the C string would silently cut short). */
static const char *column_string(sqlite3_stmt *st, int col) {
  const char *text = (const char *)sqlite3_column_text(st, col);
  if (text == NULL || strlen(text) != (size_t)sqlite3_column_bytes(st, col)) return NULL;
  return text;
}

/* An integer column within [lo, hi]. SQLite would read text or a real as some
 * integer (text as 0, 1.5 as 1) and a cast would wrap a wider value (2^32 + 1
 * as 1): either would alias another task or count. */
static int column_int(sqlite3_stmt *st, int col, int64_t lo, int64_t hi, int64_t *out) {
  if (sqlite3_column_type(st, col) != SQLITE_INTEGER) return -1;
  *out = sqlite3_column_int64(st, col);
  return *out >= lo && *out <= hi ? 0 : -1;
}

/* Read the current row of select_tasks into t (JSON left to the caller);
 * NULL, or what is unreadable. */
static const char *read_task_fields(sqlite3_stmt *st, struct task_rec *t) {
  int64_t idx, attempts, lost, blocked_by = -1;
  if (column_int(st, 0, 0, UINT32_MAX, &idx) != 0) return "task index";
  const char *status = column_string(st, 1);
  int s = status ? spe__task_status_parse(status) : -1;
  if (s < 0) return "task status";
  if (column_int(st, 2, 0, UINT32_MAX, &attempts) != 0) return "task attempt count";
  if (column_int(st, 3, 0, UINT32_MAX, &lost) != 0) return "task lost count";
  if (sqlite3_column_type(st, 8) != SQLITE_NULL &&
      column_int(st, 8, INT32_MIN, INT32_MAX, &blocked_by) != 0)
    return "task blocked_by";
  t->index = (uint32_t)idx;
  t->status = (enum task_status)s;
  t->attempts = (uint32_t)attempts;
  t->lost = (uint32_t)lost;
  t->blocked_by = (int32_t)blocked_by;
  t->started_ms = sqlite3_column_int64(st, 6);
  t->finished_ms = sqlite3_column_int64(st, 7);
  return NULL;
}

static void free_loaded(struct job_loader *l, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    json_decref(l->loaded[i].result);
    json_decref(l->loaded[i].error);
  }
}

/* Read the current row of `st` (JOB_COLUMNS) into a job record. */
static int read_job(sqlite3_stmt *st, struct job_rec *j) {
  j->id = column_string(st, 0);
  j->name = (const char *)sqlite3_column_text(st, 1);
  j->canonical = (const char *)sqlite3_column_text(st, 2);
  j->canonical_len = (size_t)sqlite3_column_bytes(st, 2);
  const char *status = column_string(st, 3);
  int s = status ? spe__job_status_parse(status) : -1;
  j->status = (enum job_status)s;
  j->submitted_ms = sqlite3_column_int64(st, 4);
  j->started_ms = sqlite3_column_int64(st, 5);
  j->finished_ms = sqlite3_column_int64(st, 6);
  return j->id != NULL && j->canonical != NULL && s >= 0 ? 0 : -1;
}

/* Read the recorded tasks of job `id` into l->loaded; *n is how many were
 * read (and hold JSON to release) even on failure. */
static int read_tasks(struct job_loader *l, const char *id, uint32_t *n, struct bad_row *bad) {
  sqlite3_stmt *st = l->select_tasks;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  *n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n == l->cap_loaded) {
      uint32_t cap = l->cap_loaded ? l->cap_loaded * 2 : 64;
      struct task_rec *p = realloc(l->loaded, (size_t)cap * sizeof *p);
      if (p == NULL) {
        rc = SQLITE_NOMEM;
        break;
      }
      l->loaded = p;
      l->cap_loaded = cap;
    }
    struct task_rec *t = &l->loaded[(*n)++];
    memset(t, 0, sizeof *t);
    t->job_id = id;
    const char *unreadable = read_task_fields(st, t);
    bad->what = unreadable                            ? unreadable
                : column_json(st, 4, &t->result) != 0 ? "task result"
                : column_json(st, 5, &t->error) != 0  ? "task error"
                                                      : NULL;
    if (bad->what) {
      bad->job = id;
      rc = SQLITE_CORRUPT;
      break;
    }
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int spe__store_sqlite_stream_jobs(struct sqlite_store *ss, struct job_loader *l,
                                  sqlite3_stmt *jobs, int *seen, stored_job_fn fn, void *ctx,
                                  char **msg) {
  struct bad_row bad = {0};
  int rc, ret = 0;
  while ((rc = sqlite3_step(jobs)) == SQLITE_ROW) {
    ++*seen;
    struct stored_job sj = {0};
    if (read_job(jobs, &sj.job) != 0) {
      bad = (struct bad_row){"job row", sj.job.id};
      rc = SQLITE_CORRUPT;
      break;
    }
    uint32_t n = 0;
    rc = read_tasks(l, sj.job.id, &n, &bad);
    if (rc == SQLITE_OK) {
      sj.tasks = l->loaded;
      sj.ntasks = n;
      ret = fn(ctx, &sj);
    }
    free_loaded(l, n);
    if (rc != SQLITE_OK || ret != 0) break;
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  /* Take the message before the reset, which may replace it. */
  char *detail = NULL;
  if (bad.what)
    detail = spe__msg_new("job %s has an unreadable %s", bad.job ? bad.job : "?", bad.what);
  else if (rc == SQLITE_NOMEM)
    detail = strdup("out of memory");
  else if (rc != SQLITE_OK)
    detail = strdup(sqlite3_errmsg(l->db));
  sqlite3_reset(jobs);
  if (rc != SQLITE_OK)
    ret = spe__store_sqlite_fail(ss, rc, detail ? detail : sqlite3_errstr(rc),
                                 "state store read", msg);
  free(detail);
  return ret;
}

int spe__store_sqlite_load_unfinished(struct store *st, stored_job_fn fn, void *ctx,
                                      char **msg) {
  struct sqlite_store *ss = (struct sqlite_store *)st;
  int seen = 0;
  return spe__store_sqlite_stream_jobs(ss, &ss->recovery, ss->select_unfinished, &seen, fn, ctx,
                                       msg);
}
