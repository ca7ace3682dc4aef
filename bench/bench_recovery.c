/*
 * Recovery time: how long spe_open takes on a store holding 1,000 unfinished
 * jobs of 100 tasks each (half of each job's tasks done with results, one
 * running at the "crash", the rest pending), until the executor is running
 * again. Target: under 1 s.
 *
 *   build/bench/bench_recovery [JOBS [TASKS]]
 *
 * The store is written through the store interface, as the engine would have
 * left it, into a scratch folder beside the program, and removed afterwards.
 */
#include "base/clock.h"
#include "base/status.h"
#include "base/ulid.h"
#include "job/job.h"
#include "spe.h"
#include "store/store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_recovery: %s: %s\n", what, msg ? msg : "failed");
  exit(1);
}

/* A job of `n` tasks: a wide layer of n/2 tasks feeding the other n/2 pairwise. */
static char *job_text(uint32_t n) {
  size_t cap = (size_t)n * 96 + 64, len = 0;
  char *s = malloc(cap);
  len += (size_t)snprintf(s + len, cap - len, "{\"name\":\"recovery-bench\",\"tasks\":[");
  for (uint32_t i = 0; i < n; i++) {
    if (i < n / 2)
      len += (size_t)snprintf(s + len, cap - len,
                              "%s{\"name\":\"t%u\",\"argv\":[\"true\"],\"enables\":[\"t%u\"]}",
                              i ? "," : "", i, i + n / 2);
    else
      len += (size_t)snprintf(s + len, cap - len, ",{\"name\":\"t%u\",\"argv\":[\"true\"]}", i);
  }
  snprintf(s + len, cap - len, "]}");
  return s;
}

int main(int argc, char **argv) {
  uint32_t jobs = argc > 1 ? (uint32_t)atoi(argv[1]) : 1000;
  uint32_t tasks = argc > 2 ? (uint32_t)atoi(argv[2]) : 100;
  if (jobs < 1 || tasks < 4) die("usage", "bench_recovery [JOBS >= 1 [TASKS >= 4]]");

  char exe[PATH_MAX], dir[PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) die("readlink", NULL);
  exe[n] = '\0';
  *strrchr(exe, '/') = '\0';
  snprintf(dir, sizeof dir, "%s/recovery-bench-%d", exe, (int)getpid());
  char url[PATH_MAX + 128];
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir);

  char *text = job_text(tasks);
  struct job_def *def = NULL;
  char *msg = NULL;
  if (spe__job_parse_text(text, strlen(text), &def, &msg) != 0) die("job", msg);

  /* Write the store as a crashed executor would have left it. */
  int64_t t0 = spe__mono_ms();
  struct store *st = NULL;
  struct logger quiet = {0};
  if (spe__store_open(&st, url, &quiet, &msg) != 0) die("store", msg);
  struct store_batch b = {0};
  json_t *result = json_integer(42);
  char (*ids)[SPE_ULID_LEN + 1] = calloc(jobs, sizeof *ids);
  for (uint32_t j = 0; j < jobs; j++) {
    spe__ulid_new(ids[j]);
    int64_t now = spe__now_ms();
    struct job_rec jr = {ids[j], def->name, def->canonical, def->canonical_len, JOB_RUNNING,
                         now, now, 0};
    spe__batch_job(&b, &jr);
    for (uint32_t t = 0; t <= tasks / 2; t++) {
      struct task_rec tr = {.job_id = ids[j], .index = t, .attempts = 1, .started_ms = now,
                            .blocked_by = -1};
      tr.status = t < tasks / 2 ? TASK_SUCCEEDED : TASK_RUNNING;
      tr.result = t < tasks / 2 ? result : NULL;
      tr.finished_ms = t < tasks / 2 ? now : 0;
      spe__batch_task(&b, &tr);
    }
    if (b.ntasks >= 5000 || j + 1 == jobs) {
      if (spe__store_commit(st, &b, &msg) != 0) die("commit", msg);
      spe__batch_clear(&b);
    }
  }
  spe__batch_free(&b);
  spe__store_close(st);
  int64_t built = spe__mono_ms() - t0;

  /* Recover: open an executor on it. It reads every job back, restores every
   * task, re-queues the interrupted ones and commits that before returning. */
  spe_options opt;
  spe_options_init(&opt);
  opt.store_url = url;
  opt.workers = 2;
  opt.grace_ms = 0;
  spe_executor *ex = NULL;
  int64_t t1 = spe__mono_ms();
  if (spe_open(&ex, &opt, &msg) != 0) die("spe_open", msg);
  int64_t opened = spe__mono_ms() - t1;
  json_t *job = NULL;
  if (spe_job_get(ex, ids[jobs - 1], &job, &msg) != 0) die("spe_job_get", msg);
  const char *status = json_string_value(json_object_get(job, "status"));
  spe_close(ex);

  printf("store: %u unfinished jobs x %u tasks (%u done, 1 running at the crash, the rest "
         "pending), written in %.2f s\n",
         jobs, tasks, tasks / 2, (double)built / 1000);
  printf("recovery: spe_open returned, running again, in %.3f s (target < 1 s); last job: %s\n",
         (double)opened / 1000, status ? status : "?");

  json_decref(job);
  json_decref(result);
  free(ids);
  free(text);
  spe__job_free(def);
  char cmd[PATH_MAX + 128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
