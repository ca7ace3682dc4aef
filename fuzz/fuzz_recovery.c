/*
 * Fuzz target: recovery from stored state. The input becomes rows of a real
 * SQLite store (plain SQL INSERTs into the schema of
 * src/store/store_sqlite_schema.c), then an executor is opened on it, which
 * reads every unfinished job back (store_sqlite_load.c) and resumes it
 * (engine/recover.c), and closed again.
 *
 * Input: lines of tab-separated fields (any bytes but tab and newline; an
 * empty field is NULL, any other is bound as text and SQLite's column
 * affinity makes "12" an integer, "1.5" a real and "x" stays text):
 *
 *   J <id> <status> <name> <submitted_ms> <started_ms> <finished_ms> <job text>
 *   T <idx> <status> <attempts> <lost> <blocked_by> <started_ms> <finished_ms>
 *     <result JSON> <error JSON>
 *
 * A J line adds a job (its job text is the rest of the line, stored as the
 * job's description as it is; recovery parses it and may refuse it); T lines
 * add tasks to the last job. Other lines are ignored. Rows the schema refuses
 * (a NULL where NOT NULL, a duplicate key) are left out.
 *
 * The executor runs with hold_recovered = 1: a recovered job never starts a
 * task, so whatever the stored commands say, nothing runs.
 *
 * Properties:
 *  - spe_open either succeeds or refuses with SPE_ESTORE and a message; it
 *    refuses exactly when an unfinished job has a task row this build could
 *    not have written: an unknown status name, a result or error that is not
 *    JSON, an index, attempt count, lost count or blocked_by that is not an
 *    integer in its field's range (the loader must not alias 2^32 + 1 to 1,
 *    or read "x" as 0), or a job id or status name with a NUL byte in it
 *    (which a C string would cut short);
 *  - a job whose id is not a ULID or whose description does not parse (held
 *    to no limit, as recovery holds it) is skipped with a log line, and so is a stored task beyond the job's tasks;
 *  - every other unfinished job is there afterwards (spe_job_get), each stored
 *    task with the status it had (a task that was running is pending again,
 *    or failed as lost when this crash brings it to the lost-attempt limit; a
 *    pending one may have become not_run below a lost one);
 *  - no crash, no leak, no sanitizer report.
 * The store lives in one scratch folder per process (on /dev/shm when there is
 * one, so that its fsyncs cost nothing); its rows are deleted before each
 * input.
 */
#include "fuzz.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "job/job.h"
#include "spe.h"
#include "store/store_sqlite.h"

enum { MAX_JOBS = 16, MAX_FIELDS = 11, LOST_LIMIT = 3 };

/* ---- the scratch store, made once per process ---- */

struct scratch {
  char dir[256];
  char path[300];
  char url[310];
  sqlite3 *db; /* our own connection, for the INSERTs */
  sqlite3_stmt *insert_job, *insert_task, *select_tasks;
};

static struct scratch *scratch;

static void remove_scratch(void) {
  if (scratch == NULL) return;
  sqlite3_finalize(scratch->insert_job);
  sqlite3_finalize(scratch->insert_task);
  sqlite3_finalize(scratch->select_tasks);
  sqlite3_close(scratch->db);
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".lock"};
  for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
    char file[320];
    snprintf(file, sizeof file, "%s%s", scratch->path, suffixes[i]);
    unlink(file);
  }
  rmdir(scratch->dir);
  free(scratch);
  scratch = NULL;
}

static void prepare(const char *sql, sqlite3_stmt **out) {
  int rc = sqlite3_prepare_v2(scratch->db, sql, -1, out, NULL);
  FUZZ_CHECK(rc == SQLITE_OK, "prepare: %s", sqlite3_errmsg(scratch->db));
}

static void make_scratch(void) {
  scratch = calloc(1, sizeof *scratch);
  FUZZ_CHECK(scratch != NULL, "out of memory");
  snprintf(scratch->dir, sizeof scratch->dir, "%s/spe-fuzz-recovery-XXXXXX", spe__fuzz_scratch_base());
  FUZZ_CHECK(mkdtemp(scratch->dir) != NULL, "cannot make a folder in %s", spe__fuzz_scratch_base());
  snprintf(scratch->path, sizeof scratch->path, "%s/state.db", scratch->dir);
  snprintf(scratch->url, sizeof scratch->url, "sqlite:%s", scratch->path);
  atexit(remove_scratch);

  /* The executor makes the store, so that its schema is the real one. */
  spe_options o;
  spe_options_init(&o);
  o.store_url = scratch->url;
  o.workers = 1;
  spe_executor *ex = NULL;
  char *msg = NULL;
  int rc = spe_open(&ex, &o, &msg);
  FUZZ_CHECK(rc == 0, "cannot make the scratch store: %s", msg ? msg : "?");
  spe_close(ex);

  rc = sqlite3_open_v2(scratch->path, &scratch->db, SQLITE_OPEN_READWRITE, NULL);
  FUZZ_CHECK(rc == SQLITE_OK, "cannot open the scratch store");
  sqlite3_exec(scratch->db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
  prepare("INSERT OR IGNORE INTO jobs(id, status, name, submitted_ms, started_ms, finished_ms,"
          " description, description_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
          &scratch->insert_job);
  prepare("INSERT OR IGNORE INTO tasks(job_id, idx, status, attempts, lost, blocked_by,"
          " started_ms, finished_ms, result, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
          " ?10)",
          &scratch->insert_task);
  /* The tasks of a job as the loader finds them: by the id as a C string. */
  prepare("SELECT idx, status, attempts, lost, blocked_by, result, error FROM tasks"
          " WHERE job_id = ?1",
          &scratch->select_tasks);
}

static void exec_sql(const char *sql) {
  int rc = sqlite3_exec(scratch->db, sql, NULL, NULL, NULL);
  FUZZ_CHECK(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(scratch->db));
}

/* ---- the input as rows ---- */

struct field {
  const char *p;
  size_t len;
};

/* A task row as it was stored, before recovery rewrote it. */
struct stored_task {
  int64_t idx, lost;
  int status; /* enum task_status */
};

struct job_row {
  struct field id, status, text;
  char *cid;     /* the id as the engine sees it: a C string, up to a NUL */
  int inserted;  /* the schema took it */
  int loaded;    /* unfinished: recovery reads it back */
  int readable;  /* ... and it can be rebuilt (a ULID id, a valid description) */
  int bad_rows;  /* rows recovery must refuse: its id or task rows */
  int beyond;    /* task rows beyond its tasks (skipped with a log line) */
  struct stored_task *tasks; /* its good task rows within its tasks */
  int ntasks;
};

struct input {
  struct job_row jobs[MAX_JOBS];
  int njobs;
};

/* Split one line into at most `max` fields; the last takes the rest. */
static int split(const char *line, size_t len, struct field *f, int max) {
  int n = 0;
  size_t start = 0;
  for (size_t k = 0; k <= len && n < max; k++) {
    if (k == len || (line[k] == '\t' && n < max - 1)) {
      f[n++] = (struct field){line + start, k - start};
      start = k + 1;
    }
  }
  return n;
}

static void bind(sqlite3_stmt *st, int i, const struct field *f) {
  if (f->len == 0)
    sqlite3_bind_null(st, i);
  else
    sqlite3_bind_text(st, i, f->p, (int)f->len, SQLITE_TRANSIENT);
}

static int field_is(const struct field *f, const char *s) {
  return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

static void insert_job(struct input *in, const struct field *f, int n) {
  if (in->njobs == MAX_JOBS) return;
  struct job_row *j = &in->jobs[in->njobs++];
  memset(j, 0, sizeof *j);
  struct field none = {"", 0};
  j->id = n > 1 ? f[1] : none;
  j->status = n > 2 ? f[2] : none;
  j->text = n > 7 ? f[7] : none;
  j->cid = strndup(j->id.p, j->id.len);
  FUZZ_CHECK(j->cid != NULL, "out of memory");
  sqlite3_stmt *st = scratch->insert_job;
  for (int i = 1; i <= 6; i++) bind(st, i, i < n ? &f[i] : &none);
  /* The description is NOT NULL: an empty text is stored as empty. */
  sqlite3_bind_text(st, 7, j->text.p, (int)j->text.len, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 8, (int64_t)spe__store_sqlite_hash(j->text.p, j->text.len));
  int rc = sqlite3_step(st);
  FUZZ_CHECK(rc == SQLITE_DONE, "insert job: %s", sqlite3_errmsg(scratch->db));
  j->inserted = sqlite3_changes(scratch->db) == 1;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static void insert_task(struct input *in, const struct field *f, int n) {
  if (in->njobs == 0) return;
  const struct job_row *j = &in->jobs[in->njobs - 1];
  sqlite3_stmt *st = scratch->insert_task;
  struct field none = {"", 0};
  sqlite3_bind_text(st, 1, j->id.p, (int)j->id.len, SQLITE_TRANSIENT);
  for (int i = 1; i <= 9; i++) bind(st, i + 1, i < n ? &f[i] : &none);
  int rc = sqlite3_step(st);
  FUZZ_CHECK(rc == SQLITE_DONE, "insert task: %s", sqlite3_errmsg(scratch->db));
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static void store_input(const uint8_t *data, size_t size, struct input *in) {
  exec_sql("BEGIN; DELETE FROM tasks; DELETE FROM jobs; DELETE FROM events;");
  in->njobs = 0;
  const char *text = (const char *)data;
  size_t at = 0;
  while (at < size) {
    const char *nl = memchr(text + at, '\n', size - at);
    size_t len = nl ? (size_t)(nl - (text + at)) : size - at;
    struct field f[MAX_FIELDS];
    if (len >= 1 && text[at] == 'J') {
      int n = split(text + at, len, f, 8);
      if (f[0].len == 1) insert_job(in, f, n);
    } else if (len >= 1 && text[at] == 'T') {
      int n = split(text + at, len, f, MAX_FIELDS);
      if (f[0].len == 1) insert_task(in, f, n);
    }
    at += len + 1;
  }
  exec_sql("COMMIT;");
}

/* ---- what recovery must make of it ---- */

static int is_integer_in(sqlite3_stmt *st, int col, int64_t lo, int64_t hi) {
  if (sqlite3_column_type(st, col) != SQLITE_INTEGER) return 0;
  int64_t v = sqlite3_column_int64(st, col);
  return v >= lo && v <= hi;
}

static int is_json(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return 1;
  const char *text = (const char *)sqlite3_column_text(st, col);
  json_t *v = json_loadb(text, (size_t)sqlite3_column_bytes(st, col),
                         JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
  json_decref(v);
  return v != NULL;
}

static int task_row_ok(sqlite3_stmt *st) {
  const char *status = (const char *)sqlite3_column_text(st, 1);
  return is_integer_in(st, 0, 0, UINT32_MAX) && status != NULL &&
         spe__task_status_parse(status) >= 0 &&
         (size_t)sqlite3_column_bytes(st, 1) == strlen(status) &&
         is_integer_in(st, 2, 0, UINT32_MAX) && is_integer_in(st, 3, 0, UINT32_MAX) &&
         (sqlite3_column_type(st, 4) == SQLITE_NULL ||
          is_integer_in(st, 4, INT32_MIN, INT32_MAX)) &&
         is_json(st, 5) && is_json(st, 6);
}

static void classify(struct job_row *j) {
  j->loaded = j->inserted && (field_is(&j->status, "submitted") || field_is(&j->status, "running"));
  if (!j->loaded) return;
  if (strlen(j->cid) != j->id.len) { /* an id a C string would cut short */
    j->bad_rows++;
    return;
  }
  struct job_def *def = NULL;
  char *msg = NULL;
  j->readable = strlen(j->cid) == SPE_ID_SIZE - 1 &&
                spe__job_parse_text_limits(j->text.p, j->text.len, &spe__job_limits_none, &def,
                                           &msg) == 0;
  sqlite3_stmt *st = scratch->select_tasks;
  sqlite3_bind_text(st, 1, j->cid, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (!task_row_ok(st)) {
      j->bad_rows++;
    } else if (def != NULL && sqlite3_column_int64(st, 0) >= def->ntasks) {
      j->beyond++;
    } else if (def != NULL) {
      struct stored_task *more = realloc(j->tasks, (size_t)(j->ntasks + 1) * sizeof *more);
      FUZZ_CHECK(more != NULL, "out of memory");
      j->tasks = more;
      j->tasks[j->ntasks++] = (struct stored_task){
          sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 3),
          spe__task_status_parse((const char *)sqlite3_column_text(st, 1))};
    }
  }
  sqlite3_reset(st);
  spe__job_free(def);
  free(msg);
}

/* ---- the log ---- */

struct log_counts {
  pthread_mutex_t lock;
  int unreadable; /* "cannot be read back" */
  int ignored;    /* a stored task beyond the job's tasks */
};

static void on_log(void *ctx, int level, const char *msg) {
  struct log_counts *c = ctx;
  pthread_mutex_lock(&c->lock);
  if (strstr(msg, "cannot be read back") != NULL) c->unreadable++;
  if (strstr(msg, "beyond its") != NULL) c->ignored++;
  pthread_mutex_unlock(&c->lock);
}

/* ---- the checks ---- */

/* Each stored task came back with its status (SPEC §5's recovery rules). */
static void check_job(spe_executor *ex, const struct job_row *j) {
  const char *id = j->cid;
  json_t *job = NULL;
  char *msg = NULL;
  int rc = spe_job_get(ex, id, &job, &msg);
  FUZZ_CHECK(rc == 0, "recovered job %s is missing: %s", id, msg ? msg : "?");
  struct job_def *def = NULL;
  FUZZ_CHECK(spe__job_parse_text_limits(j->text.p, j->text.len, &spe__job_limits_none, &def,
                                         NULL) == 0,
             "reparse");
  json_t *tasks = json_object_get(job, "tasks");
  FUZZ_CHECK(json_object_size(tasks) == def->ntasks, "job %s shows %zu of %u tasks", id,
             json_object_size(tasks), def->ntasks);
  for (int k = 0; k < j->ntasks; k++) {
    const struct stored_task *was = &j->tasks[k];
    const char *name = def->tasks[was->idx].name;
    const char *now = json_string_value(json_object_get(json_object_get(tasks, name), "status"));
    FUZZ_CHECK(now != NULL, "task \"%s\" has no status", name);
    int expect = was->status;
    /* Cut short once more: under the limit it runs again, at it it is lost. */
    if (was->status == TASK_RUNNING)
      expect = was->lost + 1 < LOST_LIMIT ? TASK_PENDING : TASK_FAILED;
    int ok = strcmp(now, spe__task_status_name(expect)) == 0;
    if (was->status == TASK_PENDING) ok |= strcmp(now, "not_run") == 0;
    FUZZ_CHECK(ok, "task \"%s\" was stored %s (lost %lld) and came back %s", name,
               spe__task_status_name(was->status), (long long)was->lost, now);
  }
  spe__job_free(def);
  json_decref(job);
}

void spe__fuzz_recovery_check(const uint8_t *data, size_t size) {
  if (scratch == NULL) make_scratch();
  struct input *in = calloc(1, sizeof *in);
  FUZZ_CHECK(in != NULL, "out of memory");
  store_input(data, size, in);
  int bad = 0, unreadable = 0, beyond = 0;
  for (int k = 0; k < in->njobs; k++) {
    struct job_row *j = &in->jobs[k];
    classify(j);
    bad += j->bad_rows;
    unreadable += j->loaded && !j->readable;
    beyond += j->readable ? j->beyond : 0;
  }

  struct log_counts counts = {.lock = PTHREAD_MUTEX_INITIALIZER};
  spe_options o;
  spe_options_init(&o);
  o.store_url = scratch->url;
  o.workers = 1;
  o.hold_recovered = 1;
  o.lost_attempt_limit = LOST_LIMIT;
  o.log = on_log;
  o.log_ctx = &counts;
  spe_executor *ex = NULL;
  char *msg = NULL;
  int rc = spe_open(&ex, &o, &msg);
  if (bad > 0) {
    FUZZ_CHECK(rc == SPE_ESTORE && msg != NULL, "%d bad task row(s) accepted (rc %d)", bad, rc);
  } else {
    FUZZ_CHECK(rc == 0, "good rows refused: %s", msg ? msg : "?");
    FUZZ_CHECK(counts.unreadable >= unreadable, "%d unreadable job(s), %d log line(s)",
               unreadable, counts.unreadable);
    FUZZ_CHECK(counts.ignored >= beyond, "%d task row(s) beyond a job's tasks, %d log line(s)",
               beyond, counts.ignored);
    for (int k = 0; k < in->njobs; k++)
      if (in->jobs[k].readable) check_job(ex, &in->jobs[k]);
  }
  spe_close(ex);
  free(msg);
  for (int k = 0; k < in->njobs; k++) {
    free(in->jobs[k].cid);
    free(in->jobs[k].tasks);
  }
  free(in);
}

SPE_FUZZ_ENTRY(spe__fuzz_recovery_check)
