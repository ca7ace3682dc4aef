/*
 * The SQLite store's reader: a second connection, read-only, for the reads a
 * server makes from its own threads (a job by id, pages of jobs, counts by
 * status, the event log since a seq), so that they never wait for the engine
 * thread nor the engine for them.
 *
 * In WAL mode a reader sees the database as of the last commit when its read
 * transaction began, and a writer appends to the WAL without waiting for
 * readers: the committer keeps committing while a page of jobs is read. The
 * reader's statements are prepared once, at open; `reader.lock` lets one
 * thread use the connection at a time (a leaf lock: nothing else is taken
 * while it is held, and the callbacks it runs take none).
 *
 * Each read that takes two statements runs them in one read transaction, so
 * that they see one snapshot: a replay's events and the newest seq, a job's
 * row and its tasks (the job statement stays open while its tasks are read).
 *
 * The indexes behind each query are in schema step 2 (store_sqlite_schema.c);
 * docs/store.md lists them.
 */
#include "store/store_sqlite.h"

#include "base/msg.h"
#include "spe.h"

#include <stdlib.h>
#include <string.h>

#define LIST_COLUMNS "id, name, status, submitted_ms, started_ms, finished_ms"

/* How long a reader waits for a lock. Readers of a WAL database wait only in
 * rare moments (another connection recovering the WAL index); never forever. */
#define READER_BUSY_MS 5000

/* Every statement of the reader, to prepare and finalize in one place. */
struct stmt_def {
  size_t offset; /* of the sqlite3_stmt * in struct sqlite_reader */
  const char *sql;
};

#define STMT(field, sql) {offsetof(struct sqlite_reader, field), sql}
static const struct stmt_def stmts[] = {
    STMT(begin, "BEGIN"),
    STMT(end, "COMMIT"),
    STMT(select_job, "SELECT " SPE_SQLITE_JOB_COLUMNS " FROM jobs WHERE id = ?1"),
    /* Newest first by id, after a cursor: a range of the unique index on id,
     * or of jobs_by_status_id. "From the newest" binds an empty blob as the
     * cursor: SQLite orders every text before every blob, so `id < x''` holds
     * for every id and the same statement serves the first page. */
    STMT(list_any, "SELECT " LIST_COLUMNS " FROM jobs WHERE id < ?1 ORDER BY id DESC LIMIT ?2"),
    STMT(list_status, "SELECT " LIST_COLUMNS " FROM jobs WHERE status = ?1 AND id < ?2"
                      " ORDER BY id DESC LIMIT ?3"),
    STMT(count_status, "SELECT status, count(*) FROM jobs GROUP BY status"),
    STMT(events_any, "SELECT body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
    STMT(events_job, "SELECT body FROM events WHERE job_id = ?1 AND seq > ?2"
                     " ORDER BY seq LIMIT ?3"),
    STMT(max_seq, SPE_SQLITE_SELECT_LAST_SEQ),
};
#define NSTMTS (sizeof stmts / sizeof *stmts)

static sqlite3_stmt **stmt_at(struct sqlite_reader *r, size_t i) {
  return (sqlite3_stmt **)((char *)r + stmts[i].offset);
}

int spe__store_sqlite_reader_open(struct sqlite_store *ss, char **err) {
  struct sqlite_reader *r = &ss->reader;
  pthread_mutex_init(&r->lock, NULL);
  r->lock_ready = 1;
  int rc = sqlite3_open_v2(ss->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(r->db, READER_BUSY_MS);
  for (size_t i = 0; rc == SQLITE_OK && i < NSTMTS; i++)
    rc = spe__store_sqlite_prepare(r->db, stmts[i].sql, stmt_at(r, i));
  if (rc == SQLITE_OK) rc = spe__store_sqlite_loader_init(&r->loader, r->db);
  if (rc != SQLITE_OK)
    *err = strdup(r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
  return rc;
}

void spe__store_sqlite_reader_close(struct sqlite_store *ss) {
  struct sqlite_reader *r = &ss->reader;
  for (size_t i = 0; i < NSTMTS; i++) {
    sqlite3_finalize(*stmt_at(r, i));
    *stmt_at(r, i) = NULL;
  }
  spe__store_sqlite_loader_free(&r->loader);
  if (r->db != NULL && sqlite3_close(r->db) != SQLITE_OK)
    spe__log(&ss->log, SPE_LOG_ERROR, "state store %s: closing the reader failed: %s", ss->url,
             sqlite3_errmsg(r->db));
  r->db = NULL;
  if (r->lock_ready) pthread_mutex_destroy(&r->lock);
  r->lock_ready = 0;
}

/* A read failed with SQLite code rc (or our own `what`): the store's message,
 * taken from the connection before anything else replaces it. Under the lock. */
static int read_failed(struct sqlite_store *ss, int rc, const char *what, char **msg) {
  const char *detail = what ? what
                       : rc == SQLITE_NOMEM ? "out of memory"
                                            : sqlite3_errmsg(ss->reader.db);
  return spe__store_sqlite_fail(ss, rc, detail, "state store read", msg);
}

/* ---- one job ---- */

int spe__store_sqlite_load_job(struct store *st, const char *id, stored_job_fn fn, void *ctx,
                               char **msg) {
  struct sqlite_store *ss = (struct sqlite_store *)st;
  struct sqlite_reader *r = &ss->reader;
  int seen = 0;
  pthread_mutex_lock(&r->lock);
  sqlite3_bind_text(r->select_job, 1, id, -1, SQLITE_STATIC);
  int ret = spe__store_sqlite_stream_jobs(ss, &r->loader, r->select_job, &seen, fn, ctx, msg);
  sqlite3_clear_bindings(r->select_job);
  pthread_mutex_unlock(&r->lock);
  if (ret == 0 && seen == 0) {
    spe__msg_set(msg, "no job with id \"%s\"", id);
    return SPE_ENOJOB;
  }
  return ret;
}

/* ---- pages of jobs ---- */

/* The current row of a list statement (LIST_COLUMNS) as a job_rec; -1 when
 * the row holds what this build never writes. */
static int read_summary(sqlite3_stmt *st, struct job_rec *j) {
  memset(j, 0, sizeof *j);
  j->id = (const char *)sqlite3_column_text(st, 0);
  j->name = (const char *)sqlite3_column_text(st, 1);
  const char *status = (const char *)sqlite3_column_text(st, 2);
  int s = status ? spe__job_status_parse(status) : -1;
  j->status = (enum job_status)s;
  j->submitted_ms = sqlite3_column_int64(st, 3);
  j->started_ms = sqlite3_column_int64(st, 4);
  j->finished_ms = sqlite3_column_int64(st, 5);
  return j->id != NULL && s >= 0 ? 0 : -1;
}

int spe__store_sqlite_list_jobs(struct store *st, const struct job_query *q, job_rec_fn fn,
                                void *ctx, char **msg) {
  struct sqlite_store *ss = (struct sqlite_store *)st;
  struct sqlite_reader *r = &ss->reader;
  pthread_mutex_lock(&r->lock);
  sqlite3_stmt *s = q->status >= 0 ? r->list_status : r->list_any;
  int i = 1;
  if (q->status >= 0)
    sqlite3_bind_text(s, i++, spe__job_status_name((enum job_status)q->status), -1,
                      SQLITE_STATIC);
  if (q->before_id != NULL)
    sqlite3_bind_text(s, i++, q->before_id, -1, SQLITE_STATIC);
  else
    sqlite3_bind_zeroblob(s, i++, 0);
  sqlite3_bind_int64(s, i, q->limit);
  int rc, ret = 0;
  const char *bad = NULL;
  while (ret == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    struct job_rec j;
    if (read_summary(s, &j) != 0) {
      bad = "a job row is unreadable";
      rc = SQLITE_CORRUPT;
      break;
    }
    ret = fn(ctx, &j);
  }
  if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW) ret = read_failed(ss, rc, bad, msg);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  pthread_mutex_unlock(&r->lock);
  return ret;
}

/* ---- counts ---- */

int spe__store_sqlite_count_jobs(struct store *st, uint64_t counts[JOB_STATUS_COUNT],
                                 char **msg) {
  struct sqlite_store *ss = (struct sqlite_store *)st;
  struct sqlite_reader *r = &ss->reader;
  memset(counts, 0, JOB_STATUS_COUNT * sizeof *counts);
  pthread_mutex_lock(&r->lock);
  int rc;
  while ((rc = sqlite3_step(r->count_status)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(r->count_status, 0);
    int s = name ? spe__job_status_parse(name) : -1;
    if (s >= 0) counts[s] = (uint64_t)sqlite3_column_int64(r->count_status, 1);
  }
  int ret = rc == SQLITE_DONE ? 0 : read_failed(ss, rc, NULL, msg);
  sqlite3_reset(r->count_status);
  pthread_mutex_unlock(&r->lock);
  return ret;
}

/* ---- the event log ---- */

/* Step a statement whose rows are event bodies, appending each, parsed, to
 * `out`. An SQLite code. */
static int append_events(sqlite3_stmt *s, json_t *out, const char **bad) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *body = (const char *)sqlite3_column_text(s, 0);
    json_t *ev = body ? json_loadb(body, (size_t)sqlite3_column_bytes(s, 0), 0, NULL) : NULL;
    if (!json_is_object(ev)) {
      json_decref(ev);
      *bad = "an event's body is not a JSON object";
      return SQLITE_CORRUPT;
    }
    if (json_array_append_new(out, ev) != 0) return SQLITE_NOMEM;
  }
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int spe__store_sqlite_events_since(struct store *st, const char *job_id, int64_t after_seq,
                                   uint32_t limit, json_t *out, int64_t *last_seq,
                                   char **msg) {
  struct sqlite_store *ss = (struct sqlite_store *)st;
  struct sqlite_reader *r = &ss->reader;
  const char *bad = NULL;
  int64_t last = 0;
  pthread_mutex_lock(&r->lock);
  sqlite3_stmt *s = job_id ? r->events_job : r->events_any;
  int i = 1;
  if (job_id) sqlite3_bind_text(s, i++, job_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, i++, after_seq);
  sqlite3_bind_int64(s, i, limit);
  int rc = sqlite3_step(r->begin);
  sqlite3_reset(r->begin);
  if (rc == SQLITE_DONE) rc = append_events(s, out, &bad);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(r->max_seq);
    if (rc == SQLITE_ROW) {
      last = sqlite3_column_int64(r->max_seq, 0);
      rc = SQLITE_OK;
    }
    sqlite3_reset(r->max_seq);
  }
  int ret = rc == SQLITE_OK ? 0 : read_failed(ss, rc, bad, msg);
  /* End the read transaction, whatever happened, so that the reader does not
   * hold an old snapshot (which would also keep the WAL from being reset). */
  if (!sqlite3_get_autocommit(r->db)) {
    sqlite3_step(r->end);
    sqlite3_reset(r->end);
  }
  pthread_mutex_unlock(&r->lock);
  if (ret == 0 && last_seq) *last_seq = last;
  return ret;
}
