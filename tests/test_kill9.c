/*
 * Kill -9 trials (issue 3, SPEC §5): `spe run` on a SQLite store is killed
 * with SIGKILL at chosen moments, several times, then run to the end. Each
 * trial checks what the durability rule promises:
 *
 *  - the last run exits 0 and its --json result is complete and exactly right
 *    (every task's result is its number plus the sum of its ancestors');
 *  - no task whose success was published (a task_terminated event in some
 *    run's events file) ran again afterwards: no task_started event for it in
 *    a later run, and no line of it in tasks.log written after that run ended;
 *    its final result and attempt are the published ones;
 *  - an attempt whose start was published (so durable) never runs again under
 *    its number: after a crash the store knows it ran, and the next attempt
 *    has the next number. (The engine may start a task whose inputs are
 *    durable before the commit that records its start; a crash in between
 *    runs that attempt again under the same number, at least once as SPEC §5
 *    allows. The trials count those and print the count.);
 *  - every task ran at least once, and its final attempt is its last line;
 *  - the store passes PRAGMA integrity_check after every kill (on a copy, so
 *    that the next run finds the files exactly as the kill left them) and at
 *    the end, holds one job, and its event log has, per attempt, one
 *    task_started and one task_terminated (recovery ends a crashed attempt).
 *
 * The kill moments: "early" (a random delay after the start, before or while
 * the store opens and recovers), "event" (right after the K-th line of the
 * events file, K random, plus up to 2 ms), and two aimed ones, found by
 * reading /proc/PID/task/TID/syscall after the K-th line: "commit" (a thread
 * is in fsync/fdatasync: the store is committing a round) and "spawn" (a
 * thread is in clone/clone3/vfork: a task is being started). Trials kill one,
 * two or three runs in a row before the last run. The output tells where each
 * kill landed.
 *
 * Random choices come from one seed, printed first; SPE_TEST_SEED=N replays
 * them (the moments then repeat as closely as timing allows).
 * SPE_KILL_TRIALS=N sets the number of trials (default 24).
 */
#include "support/cli_util.h"
#include "support/dag_job.h"
#include "support/durable_util.h"

#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define MAX_RUNS 8
#define MAX_ATTEMPTS 32

enum kill_mode { KILL_EARLY, KILL_AT_EVENT, KILL_IN_COMMIT, KILL_IN_SPAWN, KILL_MODES };
static const char *const mode_names[KILL_MODES] = {"early", "event", "commit", "spawn"};

/* Where the kills landed, over all trials. */
struct tally {
  int aimed[KILL_MODES], hit[KILL_MODES]; /* per mode: tried, got there */
  int phase[PHASE_UNKNOWN + 1];           /* what /proc said at the kill */
  int before_any_event, ended_first, runs;
  int reused_attempts;                    /* attempts run twice under one number */
};

struct trial {
  int index;
  uint64_t rng;
  char *dir, *db;
  struct dag_job job;
  int runs;                          /* runs so far */
  size_t log_end[MAX_RUNS];          /* tasks.log size when run n had ended */
  int published_run[DAG_TASKS];      /* run that published the task's success, -1 */
  long published_attempt[DAG_TASKS];
  long long published_result[DAG_TASKS];
  long final_attempt[DAG_TASKS];     /* attempts in the last run's result */
  int start_run[DAG_TASKS][MAX_ATTEMPTS]; /* run that published the start, -1 */
  char job_id[32];                   /* the job, once an events file named it */
  int64_t started_ms;
  char story[512];                   /* one line about the trial's kills */
};

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void story_add(struct trial *t, const char *fmt, ...) {
  size_t len = strlen(t->story);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->story + len, sizeof t->story - len, fmt, ap);
  va_end(ap);
}

static int published_count(const struct trial *t) {
  int n = 0;
  for (int k = 0; k < DAG_TASKS; k++) n += t->published_run[k] >= 0;
  return n;
}

/* Start run number t->runs of the trial. */
static pid_t start_run(struct trial *t, char *events_name, size_t size) {
  snprintf(events_name, size, "events.%d", t->runs);
  const char *args[] = {"run", "--workers", "4", "--lost-limit", "1000", "--log-level", "warn",
                        "--state", "sqlite:st/state.db", "--json", "--events", events_name,
                        t->job.job_path, NULL};
  return cli_spawn(t->dir, args, NULL, NULL, -1);
}

/* Take in what run n published: no task may start again, or succeed again,
 * once its success has been published. */
static void absorb_events(struct trial *t, const char *events_name) {
  char *path = cli_path_join(t->dir, events_name);
  json_t *events = events_file_read(path);
  free(path);
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    const char *job = json_string_value(json_object_get(ev, "job"));
    if (t->job_id[0] == '\0') snprintf(t->job_id, sizeof t->job_id, "%s", job);
    if (strcmp(job, t->job_id) != 0)
      fail_msg("run %d: an event of job %s, but the trial's job is %s (not resumed?)", t->runs,
               job, t->job_id);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *task = json_string_value(json_object_get(ev, "task"));
    if (task == NULL) continue;
    int k = dag_task_index(&t->job, task);
    assert_true(k >= 0);
    int started = strcmp(type, "task_started") == 0;
    int succeeded = strcmp(type, "task_terminated") == 0 &&
                    strcmp(json_string_value(json_object_get(ev, "status")), "succeeded") == 0;
    if ((started || succeeded) && t->published_run[k] >= 0)
      fail_msg("run %d: %s for task %s, whose success run %d had published", t->runs, type, task,
               t->published_run[k]);
    if (started) {
      long a = (long)json_integer_value(json_object_get(ev, "attempt"));
      assert_true(a >= 1 && a < MAX_ATTEMPTS);
      if (t->start_run[k][a] >= 0)
        fail_msg("run %d: task %s attempt %ld started again (run %d had published its start)",
                 t->runs, task, a, t->start_run[k][a]);
      t->start_run[k][a] = t->runs;
    }
    if (succeeded) {
      t->published_run[k] = t->runs;
      t->published_attempt[k] = (long)json_integer_value(json_object_get(ev, "attempt"));
      t->published_result[k] = json_integer_value(json_object_get(ev, "result"));
    }
  }
  json_decref(events);
}

/* The store as the kill left it, checked on a copy. Returns 1 if the job
 * has finished there (the kill came after its last commit). */
static int check_store_after_kill(const struct trial *t) {
  if (!file_exists(t->db)) return 0; /* killed before the store was made */
  char *ok = store_query(t->db, "PRAGMA integrity_check");
  if (strcmp(ok, "ok\n") != 0)
    fail_msg("run %d: integrity_check after the kill: %s", t->runs, ok);
  free(ok);
  char *status = store_query(t->db, "SELECT status FROM jobs");
  int done = strcmp(status, "succeeded\n") == 0;
  if (!done && status[0] != '\0' && strcmp(status, "running\n") != 0 &&
      strcmp(status, "submitted\n") != 0)
    fail_msg("run %d: after the kill the store has jobs of status %s", t->runs, status);
  free(status);
  return done;
}

/* The job as the store holds it, in the shape of SPEC §3 (what the checks
 * read of it: id, status, and each task's status, result and attempts). */
static json_t *job_from_store(const struct trial *t) {
  char *id = store_query(t->db, "SELECT id FROM jobs");
  char *status = store_query(t->db, "SELECT status FROM jobs");
  char *rows = store_query(t->db,
                           "SELECT json_array(idx, status, attempts, json(result)) FROM tasks "
                           "ORDER BY idx");
  *strchr(id, '\n') = '\0';
  *strchr(status, '\n') = '\0';
  json_t *tasks = json_object();
  for (char *line = rows, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    json_t *row = json_loadb(line, (size_t)(nl - line), 0, NULL);
    assert_true(json_is_array(row));
    int k = (int)json_integer_value(json_array_get(row, 0));
    assert_true(k >= 0 && k < DAG_TASKS);
    json_object_set_new(tasks, t->job.names[k],
                        json_pack("{s:O, s:O, s:O}", "status", json_array_get(row, 1), "attempts",
                                  json_array_get(row, 2), "result", json_array_get(row, 3)));
    json_decref(row);
  }
  json_t *job = json_pack("{s:s, s:s, s:o}", "id", id, "status", status, "tasks", tasks);
  free(id);
  free(status);
  free(rows);
  return job;
}

enum run_end { RUN_KILLED, RUN_ENDED_FIRST, RUN_KILLED_AFTER_THE_END };

/* Run number t->runs, killed at a moment `mode` chooses. */
/* Wait for the tasks a killed spe left behind (they were re-parented to this
 * process, its subreaper), so that whatever they write is counted as theirs,
 * not as a later run's. Each is a short task. */
static void reap_orphans(void) {
  while (waitpid(-1, NULL, 0) > 0) {
  }
}

static enum run_end killed_run(struct trial *t, enum kill_mode mode, struct tally *tl) {
  char events_name[32];
  pid_t pid = start_run(t, events_name, sizeof events_name);
  char *events_path = cli_path_join(t->dir, events_name);
  int remaining = DAG_TASKS - published_count(t);
  long k = 0;
  int got_there = 0;
  if (mode == KILL_EARLY) {
    long us = rng_range(&t->rng, 0, 15000);
    sleep_us(us);
    story_add(t, " early(%ldus)", us);
  } else {
    /* A run writes at least two events per task left (started, terminated).
     * An aimed kill waits a little more after the K-th: leave it room. */
    k = rng_range(&t->rng, 1, mode == KILL_AT_EVENT ? 2 * remaining : remaining * 3 / 2);
    wait_for_lines(events_path, (size_t)k, pid, 10000);
    if (mode == KILL_AT_EVENT)
      sleep_us(rng_range(&t->rng, 0, 2000));
    else
      got_there = wait_for_phase(pid, mode == KILL_IN_COMMIT ? PHASE_COMMIT : PHASE_SPAWN, 2000);
  }
  /* An aimed kill follows the sight of its moment at once. */
  enum proc_phase phase = got_there ? (mode == KILL_IN_COMMIT ? PHASE_COMMIT : PHASE_SPAWN)
                                    : proc_phase_of(pid);
  kill(pid, SIGKILL);
  size_t lines = file_lines(events_path);
  struct cli_result r;
  cli_finish(&r, pid, t->dir);
  reap_orphans();
  free(events_path);
  tl->runs++;
  tl->aimed[mode]++;
  if (r.status == 0) {
    /* It finished before the kill: this was the last run. */
    tl->ended_first++;
    story_add(t, " %s@%ld(ended first)", mode_names[mode], k);
    cli_result_free(&r);
    return RUN_ENDED_FIRST;
  }
  if (r.status != 128 + SIGKILL)
    fail_msg("run %d exited with %d before the kill; stderr:\n%s", t->runs, r.status, r.err);
  cli_result_free(&r);
  tl->hit[mode] += mode < KILL_IN_COMMIT || got_there;
  tl->phase[phase]++;
  tl->before_any_event += lines == 0;
  if (mode != KILL_EARLY)
    story_add(t, " %s@%ld->%s", mode_names[mode], k, proc_phase_name(phase));
  else
    story_add(t, "->%s%s", proc_phase_name(phase), lines == 0 ? ",no event yet" : "");
  t->log_end[t->runs] = dag_log_size(t->dir);
  absorb_events(t, events_name);
  int done = check_store_after_kill(t);
  t->runs++;
  if (done) {
    /* Killed after the job's last commit: a next run would make a new job. */
    story_add(t, "(after the job's last commit)");
    return RUN_KILLED_AFTER_THE_END;
  }
  return RUN_KILLED;
}

/* The run that goes to the end (unless the job has ended already); checks
 * the job's result. */
static void last_run(struct trial *t, enum run_end how) {
  char events_name[32];
  json_t *job;
  if (how == RUN_KILLED_AFTER_THE_END) {
    job = job_from_store(t);
    t->runs--; /* the last run is the killed one */
  } else {
    struct cli_result r;
    if (how == RUN_ENDED_FIRST) {
      /* The run to be killed ended by itself: its files are the last run's. */
      snprintf(events_name, sizeof events_name, "events.%d", t->runs);
      char *out = cli_path_join(t->dir, ".stdout");
      r.out = cli_read_file(out, NULL);
      r.err = strdup("");
      r.status = 0;
      free(out);
    } else {
      pid_t pid = start_run(t, events_name, sizeof events_name);
      cli_finish(&r, pid, t->dir);
      if (r.status != 0) fail_msg("the last run exited with %d; stderr:\n%s", r.status, r.err);
      if (t->job_id[0] != '\0' && strstr(r.err, "resuming job") == NULL)
        fail_msg("the last run did not resume job %s; stderr:\n%s", t->job_id, r.err);
    }
    absorb_events(t, events_name);
    json_t *jobs = cli_parse_ndjson(r.out);
    assert_int_equal(json_array_size(jobs), 1);
    job = json_incref(json_array_get(jobs, 0));
    json_decref(jobs);
    cli_result_free(&r);
  }
  dag_check_result(&t->job, job);
  /* The same job from the first run on: every run resumed it. */
  const char *id = json_string_value(json_object_get(job, "id"));
  if (t->job_id[0] == '\0') snprintf(t->job_id, sizeof t->job_id, "%s", id);
  assert_string_equal(id, t->job_id);
  for (int k = 0; k < DAG_TASKS; k++) {
    /* A published success is the one that stays. (A success committed by a
     * run killed before it wrote the event is in the store, never in a file.) */
    const char *name = t->job.names[k];
    t->final_attempt[k] = (long)cli_task_int(job, name, "attempts");
    if (t->published_run[k] < 0) continue;
    assert_int_equal(t->final_attempt[k], t->published_attempt[k]);
    assert_int_equal(json_integer_value(cli_task_result(job, name)), t->published_result[k]);
  }
  json_decref(job);
}

/* tasks.log against what the runs published. */
static void check_task_log(const struct trial *t, struct tally *tl) {
  struct log_line *lines;
  size_t n = dag_log_read(&t->job, t->dir, &lines);
  long last[DAG_TASKS] = {0};
  for (size_t i = 0; i < n; i++) {
    const struct log_line *l = &lines[i];
    const char *name = t->job.names[l->task];
    assert_true(l->attempt < MAX_ATTEMPTS);
    int s = t->start_run[l->task][l->attempt];
    for (size_t j = 0; j < i; j++) {
      if (lines[j].task != l->task || lines[j].attempt != l->attempt) continue;
      if (s >= 0 && s < t->runs && l->offset >= t->log_end[s])
        fail_msg("task %s attempt %ld ran again after run %d had published its start", name,
                 l->attempt, s);
      tl->reused_attempts++;
      break;
    }
    int p = t->published_run[l->task];
    if (p >= 0 && p < t->runs && l->offset >= t->log_end[p])
      fail_msg("task %s ran again (attempt %ld) after run %d had published its success", name,
               l->attempt, p);
    if (l->attempt > last[l->task]) last[l->task] = l->attempt;
  }
  for (int k = 0; k < DAG_TASKS; k++) {
    if (last[k] == 0) fail_msg("task %s never ran", t->job.names[k]);
    if (last[k] != t->final_attempt[k])
      fail_msg("task %s: its last attempt to run was %ld, but attempt %ld succeeded",
               t->job.names[k], last[k], t->final_attempt[k]);
  }
  free(lines);
}

/* The store at the end: whole, one job, succeeded, and an event log that
 * tells every attempt from start to end. */
static void check_store_at_end(const struct trial *t) {
  char *ok = store_query(t->db, "PRAGMA integrity_check");
  assert_string_equal(ok, "ok\n");
  free(ok);
  char *jobs = store_query(t->db, "SELECT id || ' ' || status FROM jobs");
  char want[64];
  snprintf(want, sizeof want, "%s succeeded\n", t->job_id);
  assert_string_equal(jobs, want);
  free(jobs);
  assert_int_equal(store_query_int(t->db, "SELECT count(*) FROM tasks WHERE status = 'succeeded'"),
                   DAG_TASKS);
  char *bodies = store_query(t->db, "SELECT body FROM events ORDER BY seq");
  json_t *log = cli_parse_ndjson(bodies);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(log, 0), "seq")), 1);
  cli_check_event_stream(log, t->started_ms, cli_wall_ms());
  json_decref(log);
  free(bodies);
}

static void one_trial(int index, uint64_t seed, struct tally *tl) {
  /* Each trial's own sequence, from the seed and its number. */
  uint64_t mix = seed ^ ((uint64_t)index << 48 | (uint64_t)index);
  struct trial t = {.index = index, .rng = rng_next(&mix)};
  char name[32];
  snprintf(name, sizeof name, "kill9-%02d", index);
  t.dir = cli_fresh_dir(name);
  t.db = cli_path_join(t.dir, "st/state.db");
  t.started_ms = cli_wall_ms();
  for (int k = 0; k < DAG_TASKS; k++) {
    t.published_run[k] = -1;
    for (int a = 0; a < MAX_ATTEMPTS; a++) t.start_run[k][a] = -1;
  }
  dag_job_write(&t.job, t.dir);

  /* 1, 2 or 3 kills in a row, every mode in turn across the trials. */
  int kills = 1 + index % 3;
  enum run_end how = RUN_KILLED;
  for (int j = 0; j < kills && how == RUN_KILLED; j++)
    how = killed_run(&t, (enum kill_mode)((index + j) % KILL_MODES), tl);
  last_run(&t, how);
  check_task_log(&t, tl);
  check_store_at_end(&t);
  printf("trial %2d: %d run(s):%s; then to the end: ok\n", index, t.runs + 1, t.story);
  fflush(stdout);
  dag_job_free(&t.job);
  free(t.db);
  free(t.dir);
}

static void kill_nine_at_random_moments(void **state) {
  (void)state;
  uint64_t seed = test_seed();
  printf("kill -9 trials: seed %llu (replay with SPE_TEST_SEED=%llu)\n", (unsigned long long)seed,
         (unsigned long long)seed);
  fflush(stdout);
  const char *n_env = getenv("SPE_KILL_TRIALS");
  int trials = n_env != NULL && atoi(n_env) > 0 ? atoi(n_env) : 24;
  struct tally tl = {0};
  for (int i = 0; i < trials; i++) one_trial(i, seed, &tl);

  printf("%d kills in %d trials: %d landed in a commit (fsync), %d in a spawn, %d between, "
         "%d where /proc did not tell; %d before the first event; %d run(s) ended before "
         "their kill\n",
         tl.runs - tl.ended_first, trials, tl.phase[PHASE_COMMIT], tl.phase[PHASE_SPAWN],
         tl.phase[PHASE_OTHER], tl.phase[PHASE_UNKNOWN], tl.before_any_event, tl.ended_first);
  for (int m = 0; m < KILL_MODES; m++)
    printf("  aimed %-6s: %d, got there %d\n", mode_names[m], tl.aimed[m], tl.hit[m]);
  printf("  attempts that ran again under the same number (started before their start "
         "was committed): %d\n",
         tl.reused_attempts);
  fflush(stdout);
  /* The aimed kills must have landed where they were aimed, or this set has
   * not tested what it claims (unless /proc cannot tell, as in some
   * sandboxes). */
  if (tl.phase[PHASE_UNKNOWN] == 0) {
    assert_true(tl.phase[PHASE_COMMIT] > 0);
    assert_true(tl.phase[PHASE_SPAWN] > 0);
  }
}

int main(void) {
  /* The tasks of a killed spe live on for a few milliseconds: as their
   * subreaper, this process can wait for them (reap_orphans). */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    perror("prctl(PR_SET_CHILD_SUBREAPER)");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kill_nine_at_random_moments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
