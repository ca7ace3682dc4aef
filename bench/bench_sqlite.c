/* The SQLite store's costs, side by side with raw SQLite on the same disk:
 *
 *   bench_sqlite [FOLDER]   default: bench_sqlite.tmp beside the program (in
 *                           the build folder); emptied and removed at the end
 *
 *  1. raw SQLite, WAL and synchronous=FULL like the store: one row per
 *     transaction, then 100 rows per transaction, then 100 rows shaped like the
 *     store's events (bigger rows: more pages written per commit);
 *  2. the store's commit: rounds like those of an engine with 2 workers (2 task
 *     records and 2 events), then rounds of 100 records (50 tasks, 50 events);
 *  3. recovery: a store holding 1,000 unfinished jobs of 100 tasks each
 *     (80 succeeded with a result, 20 running) and their events; the time to
 *     open it and to read every unfinished job back, and what a
 *     PRAGMA quick_check of it would add.
 *
 * Each measure is taken in 3 slices of 0.5 s, interleaved with the others'
 * slices so that a disk busy for a moment (other programs share it) spreads
 * over all of them; the median slice is shown. The whole run takes some 15 s
 * whatever the disk. Run it on the disk the store will live on. */
#include "base/clock.h"
#include "store/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_NS 500000000ull /* one slice of a measure */
#define SLICES 3         /* slices per measure, interleaved; the median is shown */

static char folder[1024];

static const char *path_in(const char *name) {
  static char buf[1200];
  snprintf(buf, sizeof buf, "%s/%s", folder, name);
  return buf;
}

static void remove_db(const char *name) {
  char p[1300];
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal", ".lock"};
  for (int i = 0; i < 5; i++) {
    snprintf(p, sizeof p, "%s/%s%s", folder, name, sfx[i]);
    unlink(p);
  }
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_sqlite: %s: %s\n", what, detail ? detail : "");
  exit(1);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* ---- 1. raw SQLite ---- */

/* Rows of one short text (`shaped` 0), or rows shaped like the store's events
 * (`shaped` 1: a key, three short columns and a 130-byte JSON text). */
static double raw_rows_per_s(int rows_per_tx, int shaped) {
  remove_db("raw.db");
  sqlite3 *db;
  if (sqlite3_open(path_in("raw.db"), &db) != SQLITE_OK) die("open raw.db", sqlite3_errmsg(db));
  sqlite3_exec(db,
               "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
               "CREATE TABLE t(k INTEGER PRIMARY KEY, job TEXT, type TEXT, time_ms INTEGER,"
               " v TEXT);",
               NULL, NULL, NULL);
  sqlite3_stmt *ins;
  sqlite3_prepare_v2(db,
                     shaped ? "INSERT INTO t(job, type, time_ms, v) VALUES (?1, ?2, ?3, ?4)"
                            : "INSERT INTO t(v) VALUES (?4)",
                     -1, &ins, NULL);
  static const char value[] = "{\"out\":\"a result of a few dozen bytes\",\"code\":0}";
  static const char event[] =
      "{\"seq\":123456,\"time_ms\":1732676473131,\"job\":\"01JD7ZZZZZZZZZZZZZZZZZZZZZ\","
      "\"type\":\"task_terminated\",\"task\":\"t12\",\"attempt\":1,\"status\":\"succeeded\"}";
  uint64_t t0 = spe__mono_ns(), rows = 0;
  while (spe__mono_ns() - t0 < RUN_NS) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int i = 0; i < rows_per_tx; i++) {
      if (shaped) {
        sqlite3_bind_text(ins, 1, "01JD7ZZZZZZZZZZZZZZZZZZZZZ", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, "task_terminated", -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, 1732676473131);
        sqlite3_bind_text(ins, 4, event, sizeof event - 1, SQLITE_STATIC);
      } else {
        sqlite3_bind_text(ins, 4, value, sizeof value - 1, SQLITE_STATIC);
      }
      if (sqlite3_step(ins) != SQLITE_DONE) die("insert", sqlite3_errmsg(db));
      sqlite3_reset(ins);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
      die("commit", sqlite3_errmsg(db));
    rows += (uint64_t)rows_per_tx;
  }
  double rate = (double)rows / secs(spe__mono_ns() - t0);
  sqlite3_finalize(ins);
  sqlite3_close(db);
  remove_db("raw.db");
  return rate;
}

/* ---- 2. the store's commit ---- */

static struct store *open_store(const char *name) {
  char url[1300];
  snprintf(url, sizeof url, "sqlite:%s/%s", folder, name);
  struct store *st;
  char *msg = NULL;
  if (spe__store_open(&st, url, NULL, &msg) != 0) die("open store", msg);
  return st;
}

static const char desc[] = "{\"name\":\"bench\",\"tasks\":{\"t\":{\"cmd\":\"true\"}}}";

static void add_job(struct store_batch *b, const char *id, enum job_status status) {
  struct job_rec j = {.id = id, .name = "bench", .canonical = desc,
                      .canonical_len = sizeof desc - 1, .status = status,
                      .submitted_ms = spe__now_ms(), .started_ms = spe__now_ms()};
  if (spe__batch_job(b, &j) != 0) die("batch", "out of memory");
}

static json_t *task_event(const char *job_id, const char *type, uint32_t index) {
  char name[16];
  snprintf(name, sizeof name, "t%u", index);
  return json_pack("{s:n, s:I, s:s, s:s, s:s, s:i}", "seq", "time_ms",
                   (json_int_t)spe__now_ms(), "job", job_id, "type", type, "task", name,
                   "attempt", 1);
}

/* Commit rounds of `per_round` task records and as many events for RUN_NS;
 * returns rows (records + events) per second, and the rounds per second. */
static double store_rows_per_s(const char *name, uint32_t per_round, double *rounds_per_s) {
  remove_db(name);
  struct store *st = open_store(name);
  struct store_batch b = {0};
  const char *job_id = "01BENCH0000000000000000000";
  add_job(&b, job_id, JOB_RUNNING);
  char *msg = NULL;
  if (spe__store_commit(st, &b, &msg) != 0) die("commit", msg);
  spe__batch_clear(&b);
  json_t *result = json_pack("{s:s, s:i}", "out", "a result of a few dozen bytes", "code", 0);

  uint64_t t0 = spe__mono_ns(), rows = 0, rounds = 0;
  uint32_t next = 0;
  while (spe__mono_ns() - t0 < RUN_NS) {
    for (uint32_t i = 0; i < per_round; i++, next++) {
      struct task_rec t = {.job_id = job_id, .index = next % 100000, .status = TASK_SUCCEEDED,
                           .attempts = 1, .result = result, .started_ms = 1,
                           .finished_ms = 2, .blocked_by = -1};
      spe__batch_task(&b, &t);
      spe__batch_event(&b, task_event(job_id, "task_terminated", t.index));
    }
    if (spe__store_commit(st, &b, &msg) != 0) die("commit", msg);
    spe__batch_clear(&b);
    rows += 2 * per_round;
    rounds++;
  }
  double s = secs(spe__mono_ns() - t0);
  *rounds_per_s = (double)rounds / s;
  json_decref(result);
  spe__batch_free(&b);
  spe__store_close(st);
  remove_db(name);
  return (double)rows / s;
}

/* ---- 3. recovery ---- */

enum { JOBS = 1000, TASKS = 100 };

static void build_recovery_store(const char *name) {
  remove_db(name);
  struct store *st = open_store(name);
  struct store_batch b = {0};
  json_t *result = json_pack("{s:s, s:i}", "out", "a result of a few dozen bytes", "code", 0);
  char ids[10][32];
  char *msg = NULL;
  for (int j0 = 0; j0 < JOBS; j0 += 10) {
    for (int j = 0; j < 10; j++) {
      snprintf(ids[j], sizeof ids[j], "01RECOVERY%016d", j0 + j);
      add_job(&b, ids[j], JOB_RUNNING);
      for (uint32_t k = 0; k < TASKS; k++) {
        int done = k < TASKS * 8 / 10;
        struct task_rec t = {.job_id = ids[j], .index = k,
                             .status = done ? TASK_SUCCEEDED : TASK_RUNNING, .attempts = 1,
                             .result = done ? result : NULL, .started_ms = 1,
                             .finished_ms = done ? 2 : 0, .blocked_by = -1};
        spe__batch_task(&b, &t);
        spe__batch_event(&b, task_event(ids[j], "task_started", k));
        if (done) spe__batch_event(&b, task_event(ids[j], "task_terminated", k));
      }
    }
    if (spe__store_commit(st, &b, &msg) != 0) die("commit", msg);
    spe__batch_clear(&b);
  }
  json_decref(result);
  spe__batch_free(&b);
  spe__store_close(st);
}

struct tally {
  unsigned long jobs, tasks, results;
};

static int count(void *ctx, const struct stored_job *sj) {
  struct tally *t = ctx;
  t->jobs++;
  t->tasks += sj->ntasks;
  for (uint32_t i = 0; i < sj->ntasks; i++) t->results += sj->tasks[i].result != NULL;
  return 0;
}

static void recovery(void) {
  const char *name = "recovery.db";
  uint64_t t0 = spe__mono_ns();
  build_recovery_store(name);
  uint64_t built = spe__mono_ns() - t0;
  struct stat sb;
  stat(path_in(name), &sb);

  t0 = spe__mono_ns();
  struct store *st = open_store(name);
  uint64_t opened = spe__mono_ns() - t0;
  struct tally tally = {0};
  char *msg = NULL;
  t0 = spe__mono_ns();
  if (st->ops->load_unfinished(st, count, &tally, &msg) != 0) die("load", msg);
  uint64_t loaded = spe__mono_ns() - t0;
  spe__store_close(st);

  sqlite3 *db;
  sqlite3_open_v2(path_in(name), &db, SQLITE_OPEN_READONLY, NULL);
  t0 = spe__mono_ns();
  sqlite3_exec(db, "PRAGMA quick_check", NULL, NULL, NULL);
  uint64_t checked = spe__mono_ns() - t0;
  sqlite3_close(db);

  printf("recovery: store of %d unfinished jobs x %d tasks (%lu results), %.1f MB, built in "
         "%.2f s\n",
         JOBS, TASKS, tally.results, (double)sb.st_size / 1e6, secs(built));
  printf("  open %.3f s + load_unfinished %.3f s = %.3f s (%lu jobs, %lu tasks read back)\n",
         secs(opened), secs(loaded), secs(opened + loaded), tally.jobs, tally.tasks);
  printf("  (PRAGMA quick_check of that file would add %.3f s)\n", secs(checked));
  remove_db(name);
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double v[SLICES]) {
  double sorted[SLICES];
  memcpy(sorted, v, sizeof sorted);
  qsort(sorted, SLICES, sizeof *sorted, by_value);
  return sorted[SLICES / 2];
}

int main(int argc, char **argv) {
  if (argc > 1) {
    snprintf(folder, sizeof folder, "%s", argv[1]);
  } else {
    const char *slash = strrchr(argv[0], '/');
    int dirlen = slash ? (int)(slash - argv[0]) : 1;
    snprintf(folder, sizeof folder, "%.*s/bench_sqlite.tmp", dirlen, slash ? argv[0] : ".");
  }
  mkdir(folder, 0777);
  printf("SQLite %s, WAL, synchronous=FULL, in %s\n", sqlite3_libversion(), folder);

  enum { ONE, HUNDRED, SHAPED, SMALL, BIG, NMEASURES };
  double rate[NMEASURES][SLICES], commits[NMEASURES][SLICES];
  /* Each measure starts with nothing left to write back from the one before. */
  for (int k = 0; k < SLICES; k++) {
    sync();
    rate[ONE][k] = commits[ONE][k] = raw_rows_per_s(1, 0);
    sync();
    rate[HUNDRED][k] = raw_rows_per_s(100, 0);
    sync();
    rate[SHAPED][k] = raw_rows_per_s(100, 1);
    sync();
    rate[SMALL][k] = store_rows_per_s("small.db", 2, &commits[SMALL][k]);
    sync();
    rate[BIG][k] = store_rows_per_s("big.db", 50, &commits[BIG][k]);
  }
  double one = median(rate[ONE]), hundred = median(rate[HUNDRED]);
  double shaped = median(rate[SHAPED]), small = median(rate[SMALL]), big = median(rate[BIG]);
  double rounds_small = median(commits[SMALL]), rounds_big = median(commits[BIG]);
  printf("raw SQLite, 1 row (50 bytes) per transaction:      %9.0f rows/s\n", one);
  printf("raw SQLite, 100 rows (50 bytes) per transaction:   %9.0f rows/s\n", hundred);
  printf("raw SQLite, 100 event-like rows per transaction:   %9.0f rows/s\n", shaped);
  printf("store, rounds of 2 tasks + 2 events:               %9.0f rows/s (%.0f commits/s, "
         "%.2fx raw 1 row/tx; %.0f task state changes/s)\n",
         small, rounds_small, rounds_small / one, rounds_small * 2);
  printf("store, rounds of 50 tasks + 50 events:             %9.0f rows/s (%.0f commits/s, "
         "%.2fx raw 100 rows/tx, %.2fx event-like; %.0f task state changes/s)\n",
         big, rounds_big, big / hundred, big / shaped, rounds_big * 50);
  fflush(stdout);

  recovery();
  rmdir(folder);
  return 0;
}
