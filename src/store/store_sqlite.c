/*
 * The SQLite store's commit: one round of the engine, one transaction.
 *
 * The engine calls commit once per scheduling round with everything the round
 * changed (jobs, tasks, events). All of it goes into one transaction, and with
 * WAL and synchronous=FULL that is one fsync of the WAL per round: the group
 * commit that lets many state changes share a disk flush (SPEC §5).
 *
 * This is the hot path, so nothing is allocated per row in the steady state:
 * statements are prepared once, strings the caller owns are bound without a
 * copy (SQLITE_STATIC: they outlive the step), and JSON is written into two
 * buffers the store keeps and reuses.
 *
 * A batch may also prune (spe_prune): after its rows, the same transaction
 * deletes the finished jobs that finished before a time, their tasks and
 * their events. Deleting tasks and events first, each with one statement over
 * an index, is faster than letting the foreign key cascade row by row.
 *
 * Failure is all or nothing. SQLite rolls the transaction back; the events get
 * back the "seq" they had before, and the store's next number does not move, so
 * a later commit numbers from the same place.
 */
#include "store/store_sqlite.h"

#include "base/msg.h"
#include "spe.h"

#include <stdlib.h>
#include <string.h>

#define JSON_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out) {
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

int spe__store_sqlite_prepare_write(struct sqlite_store *ss) {
  int rc;
  if ((rc = prepare(ss->db, "BEGIN IMMEDIATE", &ss->begin)) != SQLITE_OK) return rc;
  if ((rc = prepare(ss->db, "COMMIT", &ss->commit)) != SQLITE_OK) return rc;
  if ((rc = prepare(ss->db, "ROLLBACK", &ss->rollback)) != SQLITE_OK) return rc;
  /* A job's name and description never change: an update only moves its
   * status and times. */
  rc = prepare(ss->db,
               "INSERT INTO jobs(id, name, description, description_hash, status,"
               " submitted_ms, started_ms, finished_ms)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
               " ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
               " submitted_ms = excluded.submitted_ms, started_ms = excluded.started_ms,"
               " finished_ms = excluded.finished_ms",
               &ss->upsert_job);
  if (rc != SQLITE_OK) return rc;
  rc = prepare(ss->db,
               "INSERT INTO tasks(job_id, idx, status, attempts, lost, result, error,"
               " started_ms, finished_ms, blocked_by)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
               " ON CONFLICT(job_id, idx) DO UPDATE SET status = excluded.status,"
               " attempts = excluded.attempts, lost = excluded.lost,"
               " result = excluded.result, error = excluded.error,"
               " started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,"
               " blocked_by = excluded.blocked_by",
               &ss->upsert_task);
  if (rc != SQLITE_OK) return rc;
  rc = prepare(ss->db,
               "INSERT INTO events(seq, job_id, type, time_ms, body)"
               " VALUES (?1, ?2, ?3, ?4, ?5)",
               &ss->insert_event);
  if (rc != SQLITE_OK) return rc;
  /* Which jobs a prune deletes: finished ones (a finished job is the only
   * kind with a finished_ms, but the status says it too), found by
   * jobs_by_finished: the unary + keeps the planner from scanning every
   * finished job by jobs_by_status_id instead. */
#define PRUNED_JOBS                                                                 \
  "SELECT id FROM jobs WHERE finished_ms < ?1"                                       \
  " AND +status IN ('succeeded', 'failed', 'cancelled')"
  rc = prepare(ss->db, "DELETE FROM events WHERE job_id IN (" PRUNED_JOBS ")",
               &ss->prune_events);
  if (rc != SQLITE_OK) return rc;
  rc = prepare(ss->db, "DELETE FROM tasks WHERE job_id IN (" PRUNED_JOBS ")", &ss->prune_tasks);
  if (rc != SQLITE_OK) return rc;
  rc = prepare(ss->db,
               "DELETE FROM jobs WHERE finished_ms < ?1"
               " AND +status IN ('succeeded', 'failed', 'cancelled')",
               &ss->prune_jobs);
#undef PRUNED_JOBS
  if (rc != SQLITE_OK) return rc;
  /* A prune may delete the newest events; numbering must still never give a
   * seq twice, across a reopen too (SELECT_LAST_SEQ). */
  return prepare(ss->db,
                 "INSERT INTO meta(key, value) VALUES ('last_seq', ?1)"
                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 &ss->keep_last_seq);
}

int spe__store_sqlite_fail(struct sqlite_store *ss, int rc, const char *sqlite_msg,
                           const char *what, char **msg) {
  int primary = rc & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
    spe__msg_set(msg, "state store %s is damaged: %s", ss->url, sqlite_msg);
  else
    spe__msg_set(msg, "%s failed: %s (%s)", what, sqlite_msg, ss->url);
  return SPE_ESTORE;
}

/* Run a statement that returns no rows and make it ready for the next use. */
static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Times are "not yet" (NULL) or milliseconds. */
static void bind_time(sqlite3_stmt *st, int i, int64_t ms) {
  if (ms != 0)
    sqlite3_bind_int64(st, i, ms);
  else
    sqlite3_bind_null(st, i);
}

/* Bind `v` as compact JSON text written into `buf` (NULL binds NULL). The
 * buffer grows to the largest value seen and is then reused. */
static int bind_json(sqlite3_stmt *st, int i, const json_t *v, struct text_buf *buf) {
  if (v == NULL) return sqlite3_bind_null(st, i);
  size_t n = json_dumpb(v, buf->p, buf->cap, JSON_FLAGS);
  if (n == 0) return SQLITE_NOMEM; /* jansson fails only when out of memory */
  if (n > buf->cap) {
    size_t cap = buf->cap * 2 > n ? buf->cap * 2 : n < 256 ? 256 : n;
    char *p = realloc(buf->p, cap);
    if (p == NULL) return SQLITE_NOMEM;
    buf->p = p;
    buf->cap = cap;
    n = json_dumpb(v, buf->p, buf->cap, JSON_FLAGS);
    if (n == 0 || n > buf->cap) return SQLITE_NOMEM;
  }
  return sqlite3_bind_text(st, i, buf->p, (int)n, SQLITE_STATIC);
}

static int write_job(struct sqlite_store *ss, const struct job_rec *r) {
  sqlite3_stmt *st = ss->upsert_job;
  uint64_t hash = spe__store_sqlite_hash(r->canonical, r->canonical_len);
  sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, r->canonical, (int)r->canonical_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, (int64_t)hash);
  sqlite3_bind_text(st, 5, spe__job_status_name(r->status), -1, SQLITE_STATIC);
  bind_time(st, 6, r->submitted_ms);
  bind_time(st, 7, r->started_ms);
  bind_time(st, 8, r->finished_ms);
  return step_done(st);
}

static int write_task(struct sqlite_store *ss, const struct task_rec *r) {
  sqlite3_stmt *st = ss->upsert_task;
  sqlite3_bind_text(st, 1, r->job_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, r->index);
  sqlite3_bind_text(st, 3, spe__task_status_name(r->status), -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, r->attempts);
  sqlite3_bind_int64(st, 5, r->lost);
  int rc = bind_json(st, 6, r->result, &ss->json_a);
  if (rc == SQLITE_OK) rc = bind_json(st, 7, r->error, &ss->json_b);
  if (rc != SQLITE_OK) return rc;
  bind_time(st, 8, r->started_ms);
  bind_time(st, 9, r->finished_ms);
  if (r->blocked_by >= 0)
    sqlite3_bind_int64(st, 10, r->blocked_by);
  else
    sqlite3_bind_null(st, 10);
  return step_done(st);
}

/* The event's seq is set first: the body written is the event as published. */
static int write_event(struct sqlite_store *ss, json_t *ev, int64_t seq, uint8_t *had) {
  sqlite3_stmt *st = ss->insert_event;
  if (spe__event_set_seq(ev, seq, had) != 0) return SQLITE_NOMEM;
  const char *job = json_string_value(json_object_get(ev, "job"));
  const char *type = json_string_value(json_object_get(ev, "type"));
  const json_t *time = json_object_get(ev, "time_ms");
  sqlite3_bind_int64(st, 1, seq);
  sqlite3_bind_text(st, 2, job, -1, SQLITE_STATIC); /* NULL binds NULL */
  sqlite3_bind_text(st, 3, type ? type : "", -1, SQLITE_STATIC);
  if (json_is_integer(time))
    sqlite3_bind_int64(st, 4, json_integer_value(time));
  else
    sqlite3_bind_null(st, 4);
  int rc = bind_json(st, 5, ev, &ss->json_a);
  return rc == SQLITE_OK ? step_done(st) : rc;
}

/* Delete what a prune removes; *pruned gets the number of jobs. `last_seq`
 * is the newest seq given out, this batch's included. */
static int prune(struct sqlite_store *ss, int64_t before_ms, int64_t last_seq,
                 uint64_t *pruned) {
  sqlite3_stmt *steps[] = {ss->prune_events, ss->prune_tasks, ss->prune_jobs};
  int rc = SQLITE_OK;
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof steps / sizeof *steps; i++) {
    sqlite3_bind_int64(steps[i], 1, before_ms);
    rc = step_done(steps[i]);
  }
  if (rc != SQLITE_OK) return rc;
  *pruned = (uint64_t)sqlite3_changes64(ss->db);
  sqlite3_bind_int64(ss->keep_last_seq, 1, last_seq);
  return step_done(ss->keep_last_seq);
}

/* SPE_STORE_FAULT=commit:N[+]: is this commit one that must fail? */
static int fault_due(const struct sqlite_store *ss) {
  if (ss->fail_at == 0) return 0;
  return ss->commits == ss->fail_at || (ss->fail_after && ss->commits > ss->fail_at);
}

/* Give the events back the "seq" they had. */
static void unnumber(struct sqlite_store *ss, struct store_batch *b, uint32_t numbered) {
  for (uint32_t i = 0; i < numbered; i++) spe__event_unset_seq(b->events[i], ss->had_seq[i]);
}

static int sqlite_commit(struct store *st, struct store_batch *b, char **msg) {
  struct sqlite_store *ss = (struct sqlite_store *)st;
  b->pruned = 0;
  if (!spe__batch_writes(b)) return 0;
  ss->commits++;
  if (b->nevents > ss->cap_had_seq) {
    uint32_t cap = b->nevents > 2 * ss->cap_had_seq ? b->nevents : 2 * ss->cap_had_seq;
    uint8_t *p = realloc(ss->had_seq, cap);
    if (p == NULL) {
      spe__msg_set(msg, "state store write failed: out of memory (%s)", ss->url);
      return SPE_ESTORE;
    }
    ss->had_seq = p;
    ss->cap_had_seq = cap;
  }

  const char *why = NULL; /* a failure of ours, where SQLite has no message */
  uint32_t numbered = 0;
  int rc = step_done(ss->begin);
  for (uint32_t i = 0; rc == SQLITE_OK && i < b->njobs; i++) rc = write_job(ss, &b->jobs[i]);
  for (uint32_t i = 0; rc == SQLITE_OK && i < b->ntasks; i++) rc = write_task(ss, &b->tasks[i]);
  for (uint32_t i = 0; rc == SQLITE_OK && i < b->nevents; i++) {
    numbered = i + 1;
    rc = write_event(ss, b->events[i], ss->last_seq + 1 + i, &ss->had_seq[i]);
  }
  uint64_t pruned = 0;
  if (rc == SQLITE_OK && b->prune_before_ms > 0)
    rc = prune(ss, b->prune_before_ms, ss->last_seq + b->nevents, &pruned);
  if (rc == SQLITE_NOMEM) why = "out of memory";
  if (rc == SQLITE_OK && fault_due(ss)) {
    /* The injected fault strikes after every row is written, so that the
     * rollback has something to undo, as a real full disk would. */
    rc = SQLITE_FULL;
    why = sqlite3_errstr(rc);
  }
  if (rc == SQLITE_OK) rc = step_done(ss->commit);
  if (rc == SQLITE_OK) {
    ss->last_seq += b->nevents;
    b->pruned = pruned;
    return 0;
  }

  /* Take SQLite's message before the rollback replaces it. */
  char *detail = strdup(why ? why : sqlite3_errmsg(ss->db));
  if (!sqlite3_get_autocommit(ss->db)) {
    int rrc = step_done(ss->rollback);
    if (rrc != SQLITE_OK)
      spe__log(&ss->log, SPE_LOG_ERROR, "state store %s: rollback failed: %s", ss->url,
               sqlite3_errmsg(ss->db));
  }
  unnumber(ss, b, numbered);
  spe__store_sqlite_fail(ss, rc, detail ? detail : sqlite3_errstr(rc), "state store write",
                         msg);
  free(detail);
  return SPE_ESTORE;
}

const struct store_ops spe__store_sqlite_ops = {
    .scheme = "sqlite",
    .slow_commit = 1,
    .keeps_state = 1,
    .open = spe__store_sqlite_open,
    .commit = sqlite_commit,
    .load_unfinished = spe__store_sqlite_load_unfinished,
    .load_job = spe__store_sqlite_load_job,
    .list_jobs = spe__store_sqlite_list_jobs,
    .count_jobs = spe__store_sqlite_count_jobs,
    .events_since = spe__store_sqlite_events_since,
    .close = spe__store_sqlite_close,
};
