/*
 * The SQLite store ("sqlite:PATH"), shared between its files:
 *   store_sqlite_lock.c    the owner lock (PATH.lock), the fault setting;
 *   store_sqlite_open.c    the checks before SQLite may touch a file,
 *                          creating, opening and closing;
 *   store_sqlite_schema.c  the schema as numbered steps, and migrating;
 *   store_sqlite.c         the commit of a round (the hot path);
 *   store_sqlite.c         the commit of a round (the hot path), prune;
 *   store_sqlite_load.c    reading jobs back;
 *   store_sqlite_query.c   the reader connection: reads from API threads.
 * Every SQL statement of the backend lives in these files. docs/store.md
 * describes the files on disk, the schema and the rules.
 *
 * Threads and connections: `db` is the writer, used by one thread at a time
 * (the engine's, or the committer's while a batch is in flight): open,
 * recovery, commits, close. `reader` is a second, read-only connection for
 * the reads a server makes from its own threads (load_job, list_jobs,
 * count_jobs, events_since); `reader.lock` lets one such thread use it at a
 * time. In WAL mode a reader sees the last committed transaction and never
 * waits for the writer, nor the writer for it. Both connections are opened
 * without SQLite's own mutexes (SQLITE_OPEN_NOMUTEX): each is used by one
 * thread at a time, by the rules above.
 */
#ifndef SPE_STORE_STORE_SQLITE_H
#define SPE_STORE_STORE_SQLITE_H

#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

/* 'SPE1': PRAGMA application_id of every SPE store, at offset 68 of the file. */
#define SPE_SQLITE_APPLICATION_ID 0x53504531
/* The meta row that says what the file is. */
#define SPE_SQLITE_FORMAT "spe-state-store"

/* A buffer reused for the JSON text of one bound value. */
struct text_buf {
  char *p;
  size_t cap;
};

/* Reading jobs with their tasks, on one connection (store_sqlite_load.c). */
struct job_loader {
  sqlite3 *db;                   /* borrowed: the connection it reads */
  sqlite3_stmt *select_tasks;    /* a job's task rows, in index order */
  struct task_rec *loaded;       /* the tasks of the job being read back */
  uint32_t cap_loaded;
};

/* The read-only connection of API threads, and its statements. */
struct sqlite_reader {
  pthread_mutex_t lock;          /* one thread at a time; a leaf lock */
  int lock_ready;                /* lock initialized (for closing a half-open store) */
  sqlite3 *db;
  sqlite3_stmt *begin, *end;     /* a read transaction: one snapshot for two
                                    statements */
  sqlite3_stmt *select_job;      /* one job by id */
  sqlite3_stmt *list_any, *list_status; /* pages of jobs, newest first */
  sqlite3_stmt *count_status;    /* jobs by status */
  sqlite3_stmt *events_any, *events_job, *max_seq; /* replay */
  struct job_loader loader;
};

struct sqlite_store {
  struct store base;

  /* What it is and where. */
  char *path;     /* the file, as given after "sqlite:" */
  char *url;      /* "sqlite:PATH", for messages */
  int lock_fd;    /* PATH.lock, flock'ed exclusively; -1 when not held */
  struct logger log;

  /* The connection and its statements, prepared once at open. */
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *upsert_job, *upsert_task, *insert_event;
  sqlite3_stmt *prune_events, *prune_tasks, *prune_jobs, *keep_last_seq;
  sqlite3_stmt *select_unfinished;
  struct job_loader recovery;    /* reading jobs back on the writer */

  struct sqlite_reader reader;

  /* In-memory bookkeeping, never written. */
  int64_t last_seq;              /* seq of the last event committed; 0: none */
  struct text_buf json_a, json_b; /* JSON texts of the row being written */
  uint8_t *had_seq;              /* per event of the batch being committed: what
                                    its "seq" was before (SEQ_*, store.h), to undo */
  uint32_t cap_had_seq;

  /* Fault injection (SPE_STORE_FAULT, a testing aid; docs/store.md). */
  uint64_t commits;              /* commits attempted since open */
  uint64_t fail_at;              /* 0: never; else the commit number that fails */
  int fail_after;                /* and every later one too */
  int64_t max_pages;             /* > 0: PRAGMA max_page_count, a real full disk */
};

/* ---- the schema (store_sqlite_schema.c) ---- */

/* The schema as the list of steps that build it: steps[i] takes a store from
 * version i to version i + 1, so a new store runs them all and an old one the
 * ones it lacks. The version is PRAGMA user_version = nsteps. */
struct sqlite_schema {
  const char *const *steps;
  int nsteps;
};

/* The schema this build writes. A variable only so that tests can pretend to be
 * a later build (a longer list) and exercise a migration; nothing else sets it. */
extern const struct sqlite_schema *spe__store_sqlite_schema;

/* Build the whole schema in an empty database, in one transaction, with the
 * application id and the meta row. On error *err is SQLite's message
 * (malloc'd). */
int spe__store_sqlite_create_schema(sqlite3 *db, char **err);
/* Bring a store from `from` to the current version in one transaction; on
 * failure nothing changed. *err as above. */
int spe__store_sqlite_migrate(sqlite3 *db, int from, char **err);

/* FNV-1a, 64 bits: the hash stored beside a job's canonical description, so
 * that a job to resume is found by (name, hash) without comparing texts. It is
 * part of the file format: never change it without a migration. */
uint64_t spe__store_sqlite_hash(const char *s, size_t len);

/* ---- preparing the statements, each file its own (at open) ---- */
/* Return an SQLite code; the connection's message says what failed. */
int spe__store_sqlite_prepare_write(struct sqlite_store *ss); /* store_sqlite.c */
int spe__store_sqlite_prepare_read(struct sqlite_store *ss);  /* store_sqlite_load.c */
int spe__store_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out);

/* ---- reading back (store_sqlite_load.c) ---- */
/* Prepare a loader's statement on its connection: an SQLite code. */
int spe__store_sqlite_loader_init(struct job_loader *l, sqlite3 *db);
void spe__store_sqlite_loader_free(struct job_loader *l);
/* Step `jobs` (a statement selecting JOB_COLUMNS on l->db) to the end, handing
 * each job with its tasks to fn. *seen counts the jobs read. Returns 0, fn's
 * non-zero return, or SPE_ESTORE with the message. */
int spe__store_sqlite_stream_jobs(struct sqlite_store *ss, struct job_loader *l,
                                  sqlite3_stmt *jobs, int *seen, stored_job_fn fn, void *ctx,
                                  char **msg);
int spe__store_sqlite_load_unfinished(struct store *st, stored_job_fn fn, void *ctx,
                                      char **msg);
/* The newest seq the store has given out: the newest event's, or the one a
 * prune that deleted the newest events wrote into meta. */
#define SPE_SQLITE_SELECT_LAST_SEQ                                                 \
  "SELECT MAX(IFNULL((SELECT MAX(seq) FROM events), 0),"                          \
  " IFNULL((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0))"
#define SPE_SQLITE_JOB_COLUMNS \
  "id, name, description, status, submitted_ms, started_ms, finished_ms"

/* ---- the reader connection (store_sqlite_query.c) ---- */
/* Open the reader on the store's file (after the writer has opened and
 * migrated it) and prepare its statements. Returns an SQLite code; *err (may
 * be set on failure) is SQLite's message, malloc'd. */
int spe__store_sqlite_reader_open(struct sqlite_store *ss, char **err);
/* Finalize and close; before the writer closes, so that the writer is the
 * last connection and its close checkpoints and removes the WAL. */
void spe__store_sqlite_reader_close(struct sqlite_store *ss);
int spe__store_sqlite_load_job(struct store *st, const char *id, stored_job_fn fn,
                               void *ctx, char **msg);
int spe__store_sqlite_list_jobs(struct store *st, const struct job_query *q, job_rec_fn fn,
                                void *ctx, char **msg);
int spe__store_sqlite_count_jobs(struct store *st, uint64_t counts[JOB_STATUS_COUNT],
                                 char **msg);
int spe__store_sqlite_events_since(struct store *st, const char *job_id, int64_t after_seq,
                                   uint32_t limit, json_t *out, int64_t *last_seq,
                                   char **msg);

/* ---- the owner lock and the fault setting (store_sqlite_lock.c) ---- */
/* Take PATH.lock: 0, SPE_ELOCKED (another live process holds it; the message
 * names it) or SPE_ESTORE. Sets ss->lock_fd. */
int spe__store_sqlite_lock(struct sqlite_store *ss, char **msg);
/* Empty the lock file and release the lock; a no-op when not held. */
void spe__store_sqlite_unlock(struct sqlite_store *ss);
/* Read SPE_STORE_FAULT into ss: 0, or SPE_EINVAL for a value not understood. */
int spe__store_sqlite_parse_fault(struct sqlite_store *ss, char **msg);

/* ---- opening and closing (store_sqlite_open.c) ---- */
int spe__store_sqlite_open(struct store **out, const char *where, const struct logger *lg,
                           char **msg);
void spe__store_sqlite_close(struct store *st);

/* The message of an error SQLite reported on this store, in the store's words:
 * `state store sqlite:PATH is damaged: <sqlite>` for a damaged file, else
 * `<what> failed: <sqlite> (sqlite:PATH)`. Returns SPE_ESTORE. */
int spe__store_sqlite_fail(struct sqlite_store *ss, int rc, const char *sqlite_msg,
                           const char *what, char **msg);

#endif
