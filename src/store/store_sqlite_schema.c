/*
 * The SQLite store's schema, as a versioned script: a list of steps, step i
 * taking a store from version i to i + 1. The version is kept in
 * PRAGMA user_version. A new store runs every step; a store written by an
 * older build runs the steps it lacks, all in one transaction, when it is
 * opened. A step, once released, never changes: a change to the schema is a
 * new step at the end (docs/store.md, "Migrations").
 */
#include "store/store_sqlite.h"

#include "base/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version 1. Statuses are stored by name ("running"), times in milliseconds
 * since the epoch or NULL for "not yet", JSON as compact text. The comments
 * are SQL comments, so that they stay in the file's schema for whoever opens
 * it with the sqlite3 shell. */
static const char step_1[] =
    "-- What the file is (PRAGMA application_id says it too, in the header).\n"
    "CREATE TABLE meta (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "INSERT INTO meta(key, value) VALUES ('format', '" SPE_SQLITE_FORMAT "');\n"

    "CREATE TABLE jobs (\n"
    "  seq INTEGER PRIMARY KEY,  -- the rowid: submission order\n"
    "  id TEXT NOT NULL UNIQUE,\n"
    "  name TEXT,\n"
    "  description TEXT NOT NULL,  -- canonical JSON\n"
    "  description_hash INTEGER NOT NULL,  -- FNV-1a 64 of description, as int64\n"
    "  status TEXT NOT NULL,\n"
    "  submitted_ms INTEGER,\n"
    "  started_ms INTEGER,\n"
    "  finished_ms INTEGER\n"
    ");\n"
    "CREATE INDEX jobs_by_description ON jobs(name, description_hash);\n"
    "CREATE INDEX jobs_by_status ON jobs(status, seq);\n"

    /* Without rowid, a job's tasks lie together in index order, which is how
     * recovery reads them. */
    "-- Only tasks that changed at least once have a row.\n"
    "CREATE TABLE tasks (\n"
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,\n"
    "  idx INTEGER NOT NULL,  -- position in the job's tasks\n"
    "  status TEXT NOT NULL,\n"
    "  attempts INTEGER NOT NULL,\n"
    "  lost INTEGER NOT NULL,  -- attempts cut short by a crash\n"
    "  result TEXT,  -- JSON, when succeeded\n"
    "  error TEXT,  -- JSON object, when failed\n"
    "  started_ms INTEGER,\n"
    "  finished_ms INTEGER,\n"
    "  blocked_by INTEGER,  -- not_run: idx of the failed task upstream\n"
    "  PRIMARY KEY (job_id, idx)\n"
    ") WITHOUT ROWID;\n"

    "-- The event log, numbered across the life of the store. body is the\n"
    "-- event as published (seq included); the other columns repeat parts of it.\n"
    "CREATE TABLE events (\n"
    "  seq INTEGER PRIMARY KEY,\n"
    "  job_id TEXT,\n"
    "  type TEXT NOT NULL,\n"
    "  time_ms INTEGER,\n"
    "  body TEXT NOT NULL\n"
    ");\n";

/* Version 2: the indexes of a server's reads (store_sqlite_query.c) and of
 * prune. Pages of jobs are newest first by id, in one status or any (the
 * unique index on id serves "any"); a replay of one job's events reads one
 * range of events_by_job, as does a prune; a prune finds finished jobs by
 * finished_ms. */
static const char step_2[] =
    "-- A page of jobs in one status, newest first (by id).\n"
    "CREATE INDEX jobs_by_status_id ON jobs(status, id);\n"
    "-- Prune: finished jobs by the time they finished.\n"
    "CREATE INDEX jobs_by_finished ON jobs(finished_ms);\n"
    "-- One job's events in order (replay of one job, prune).\n"
    "CREATE INDEX events_by_job ON events(job_id, seq);\n";

static const char *const steps[] = {step_1, step_2};

static const struct sqlite_schema builtin = {steps, sizeof steps / sizeof *steps};
const struct sqlite_schema *spe__store_sqlite_schema = &builtin;

uint64_t spe__store_sqlite_hash(const char *s, size_t len) {
  uint64_t h = 0xcbf29ce484222325u;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3u;
  }
  return h;
}

static int exec(sqlite3 *db, const char *sql, char **err) {
  char *e = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &e);
  if (rc != SQLITE_OK) {
    free(*err);
    *err = strdup(e ? e : sqlite3_errstr(rc));
  }
  sqlite3_free(e);
  return rc;
}

/* Run steps [from, nsteps) and set the version; inside the caller's
 * transaction. */
static int run_steps(sqlite3 *db, int from, char **err) {
  const struct sqlite_schema *s = spe__store_sqlite_schema;
  for (int i = from; i < s->nsteps; i++) {
    int rc = exec(db, s->steps[i], err);
    if (rc != SQLITE_OK) return rc;
  }
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d;", s->nsteps);
  return exec(db, sql, err);
}

/* Run the steps from `from` on in one transaction (with the store's identity
 * when `create`); roll back when anything fails. */
static int in_transaction(sqlite3 *db, int from, int create, char **err) {
  int rc = exec(db, "BEGIN IMMEDIATE;", err);
  if (rc != SQLITE_OK) return rc;
  rc = run_steps(db, from, err);
  if (rc == SQLITE_OK && create) {
    char sql[160];
    snprintf(sql, sizeof sql,
             "PRAGMA application_id = %d;"
             "INSERT INTO meta(key, value) VALUES ('created_ms', '%lld');",
             SPE_SQLITE_APPLICATION_ID, (long long)spe__now_ms());
    rc = exec(db, sql, err);
  }
  if (rc == SQLITE_OK) rc = exec(db, "COMMIT;", err);
  if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
    char *ignored = NULL;
    exec(db, "ROLLBACK;", &ignored);
    free(ignored);
  }
  return rc;
}

int spe__store_sqlite_create_schema(sqlite3 *db, char **err) {
  return in_transaction(db, 0, 1, err);
}

int spe__store_sqlite_migrate(sqlite3 *db, int from, char **err) {
  return in_transaction(db, from, 0, err);
}
