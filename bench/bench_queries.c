/* The SQLite store's reads for a server, on a store of 10,000 jobs:
 *
 *   bench_queries [FOLDER]   default: bench_queries.tmp beside the program;
 *                            emptied and removed at the end
 *
 * The store holds 10,000 jobs of 5 tasks (a fifth of them failed, the rest
 * succeeded; the newest 500 running), each with 12 events: 120,000 events.
 * Each read is repeated for 0.3 s on the reader connection, the way an API
 * thread calls it, and its mean time is shown: a page of jobs (the first, one
 * deep in the history, one in a status), the counts by status, one job with
 * its tasks, a replay of 1,000 events from the middle of the log, the replay of
 * one job's events. Then one prune of the oldest 2,000 jobs, in a batch, as
 * the engine commits it. */
#include "base/clock.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOBS 10000
#define TASKS 5
#define EVENTS 12
#define RUN_NS 300000000ull

static char folder[1024];
static char ids[JOBS][16];

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_queries: %s: %s\n", what, detail ? detail : "");
  exit(1);
}

static const char desc[] =
    "{\"name\":\"bench\",\"tasks\":[{\"cmd\":\"echo 1\",\"name\":\"a\"},"
    "{\"cmd\":\"echo 1\",\"name\":\"b\"},{\"cmd\":\"echo 1\",\"name\":\"c\"},"
    "{\"cmd\":\"echo 1\",\"name\":\"d\"},{\"cmd\":\"echo 1\",\"name\":\"e\"}]}";

static enum job_status status_of(int i) {
  return i >= JOBS - 500 ? JOB_RUNNING : i % 5 == 0 ? JOB_FAILED : JOB_SUCCEEDED;
}

/* 100 jobs per commit, as a busy engine would write them. */
static void fill(struct store *st) {
  struct store_batch b = {0};
  json_t *result = json_integer(1);
  for (int i = 0; i < JOBS; i++) {
    snprintf(ids[i], sizeof ids[i], "J%06d", i);
    enum job_status s = status_of(i);
    struct job_rec j = {ids[i], "bench", desc, sizeof desc - 1, s, 1000 + i, 1001 + i,
                        s == JOB_RUNNING ? 0 : 1002 + i};
    if (spe__batch_job(&b, &j) != 0) die("batch", "out of memory");
    for (uint32_t t = 0; t < TASKS; t++) {
      struct task_rec r = {.job_id = ids[i], .index = t, .status = TASK_SUCCEEDED,
                           .attempts = 1, .result = result, .started_ms = 1001 + i,
                           .finished_ms = 1002 + i, .blocked_by = -1};
      if (spe__batch_task(&b, &r) != 0) die("batch", "out of memory");
    }
    for (int e = 0; e < EVENTS; e++) {
      json_t *ev = json_pack("{s:n, s:I, s:s, s:s, s:s, s:i}", "seq", "time_ms",
                             (json_int_t)(1001 + i), "job", ids[i], "type", "task_terminated",
                             "task", "a", "attempt", 1);
      if (spe__batch_event(&b, ev) != 0) die("batch", "out of memory");
    }
    if (i % 100 == 99) {
      char *msg = NULL;
      if (spe__store_commit(st, &b, &msg) != 0) die("commit", msg);
      spe__batch_clear(&b);
    }
  }
  json_decref(result);
  spe__batch_free(&b);
}

static int count_rec(void *ctx, const struct job_rec *j) {
  ++*(int *)ctx;
  return 0;
}

static int count_job(void *ctx, const struct stored_job *sj) {
  *(int *)ctx += (int)sj->ntasks;
  return 0;
}

/* What one measure runs, and how many items one run should give. */
enum what { PAGE_FIRST, PAGE_DEEP, PAGE_STATUS, COUNT, ONE_JOB, REPLAY, REPLAY_JOB };
static const char *const names[] = {
    "a page of 100 jobs, the newest",   "a page of 100 jobs, 5,000 deep",
    "a page of 100 failed jobs",        "counts of jobs by status",
    "one job with its 5 tasks",         "replay of 1,000 events from seq 60,000",
    "replay of one job's 12 events",
};

static int run_once(struct store *st, enum what w) {
  int n = 0;
  char *msg = NULL;
  int rc = 0;
  struct job_query q = {-1, NULL, 100};
  json_t *out = NULL;
  uint64_t counts[JOB_STATUS_COUNT];
  switch (w) {
    case PAGE_FIRST: rc = st->ops->list_jobs(st, &q, count_rec, &n, &msg); break;
    case PAGE_DEEP:
      q.before_id = ids[5000];
      rc = st->ops->list_jobs(st, &q, count_rec, &n, &msg);
      break;
    case PAGE_STATUS:
      q.status = JOB_FAILED;
      rc = st->ops->list_jobs(st, &q, count_rec, &n, &msg);
      break;
    case COUNT:
      rc = st->ops->count_jobs(st, counts, &msg);
      n = (int)(counts[JOB_SUCCEEDED] + counts[JOB_FAILED] + counts[JOB_RUNNING]);
      break;
    case ONE_JOB: rc = st->ops->load_job(st, ids[4321], count_job, &n, &msg); break;
    case REPLAY:
    case REPLAY_JOB:
      out = json_array();
      rc = st->ops->events_since(st, w == REPLAY ? NULL : ids[7777], w == REPLAY ? 60000 : 0,
                                 1000, out, NULL, &msg);
      n = (int)json_array_size(out);
      json_decref(out);
      break;
  }
  if (rc != 0) die(names[w], msg);
  return n;
}

int main(int argc, char **argv) {
  snprintf(folder, sizeof folder, "%s", argc > 1 ? argv[1] : "bench_queries.tmp");
  mkdir(folder, 0777);
  char path[1100], url[1200];
  snprintf(path, sizeof path, "%s/state.db", folder);
  snprintf(url, sizeof url, "sqlite:%s", path);
  struct store *st = NULL;
  char *msg = NULL;
  if (spe__store_open(&st, url, NULL, &msg) != 0) die("open", msg);
  uint64_t t0 = spe__mono_ns();
  fill(st);
  printf("store of %d jobs, %d task rows, %d events written in %.2f s\n", JOBS, JOBS * TASKS,
         JOBS * EVENTS, (double)(spe__mono_ns() - t0) / 1e9);

  for (int w = PAGE_FIRST; w <= REPLAY_JOB; w++) {
    uint64_t start = spe__mono_ns(), now = start;
    long runs = 0;
    int n = 0;
    while (now - start < RUN_NS) {
      n = run_once(st, (enum what)w);
      runs++;
      now = spe__mono_ns();
    }
    printf("  %-40s %9.1f us  (%d items)\n", names[w], (double)(now - start) / 1e3 / runs, n);
  }

  struct store_batch b = {0};
  b.prune_before_ms = 1002 + 2000; /* the 2,000 oldest jobs finished before it */
  t0 = spe__mono_ns();
  if (spe__store_commit(st, &b, &msg) != 0) die("prune", msg);
  printf("  %-40s %9.1f ms  (%llu jobs)\n", "prune of the oldest jobs, one commit",
         (double)(spe__mono_ns() - t0) / 1e6, (unsigned long long)b.pruned);
  spe__batch_free(&b);
  spe__store_close(st);

  static const char *const sfx[] = {"", "-wal", "-shm", ".lock"};
  for (int i = 0; i < 4; i++) {
    char p[1200];
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
  rmdir(folder);
  return 0;
}
