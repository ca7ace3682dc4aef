/*
 * Durable state through the real `spe` program (issue 3, SPEC §5): one owner
 * per store, stale locks, files that are not ours or are damaged or newer, a
 * failing disk, SIGINT and resume, the lost-attempt limit, resume against
 * --fresh against a finished job, and the default store. The kill -9 trials
 * are in test_kill9.c.
 *
 * Jobs here are small command jobs whose tasks append "NAME ATTEMPT [JOB]" to
 * a file `log` in the folder `spe` runs in, so that a test can tell which
 * attempts of which tasks ran, in which run. A task that must still be running
 * when the test acts writes its pid and sleeps; it finishes at once when a
 * file `gate` exists, which the test creates before the run that should
 * complete the job.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define STATE "sqlite:st/state.db"

static void assert_contains(const char *text, const char *want) {
  if (strstr(text, want) == NULL) fail_msg("expected \"%s\" in:\n%s", want, text);
}

static void assert_lacks(const char *text, const char *unwanted) {
  if (strstr(text, unwanted) != NULL) fail_msg("did not expect \"%s\" in:\n%s", unwanted, text);
}

static char *write_job(const char *dir, const char *name, const char *text) {
  char *path = cli_path_join(dir, name);
  cli_write_file(path, text);
  return path;
}

static void touch(const char *dir, const char *name) {
  char *path = cli_path_join(dir, name);
  cli_write_file(path, "");
  free(path);
}

/* Run spe to its end and check the exit status (printing stderr if wrong). */
static void run_expect(struct cli_result *r, const char *dir, const char *const *args,
                       const char *const *env, int want) {
  cli_run_env(r, dir, args, env);
  if (r->status != want)
    fail_msg("spe %s exited with %d (want %d); stderr:\n%s", args[0], r->status, want, r->err);
}

/* The one job of a --json run. New reference. */
static json_t *the_job(const struct cli_result *r) {
  json_t *jobs = cli_parse_ndjson(r->out);
  assert_int_equal(json_array_size(jobs), 1);
  json_t *job = json_incref(json_array_get(jobs, 0));
  json_decref(jobs);
  return job;
}

static const char *id_of(const json_t *job) {
  return json_string_value(json_object_get(job, "id"));
}

/* How many lines of DIR/log are exactly `line`. */
static int log_count(const char *dir, const char *line) {
  char *path = cli_path_join(dir, "log");
  char *text = cli_read_file(path, NULL);
  free(path);
  int n = 0;
  size_t len = strlen(line);
  for (const char *p = text; p != NULL && *p != '\0';) {
    const char *nl = strchr(p, '\n');
    size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
    n += l == len && memcmp(p, line, len) == 0;
    p = nl != NULL ? nl + 1 : NULL;
  }
  free(text);
  return n;
}

/* Waiting for a task to be running: its pid in DIR/NAME. */
struct pid_file {
  const char *dir, *name;
};

static int pid_written(void *ctx) {
  const struct pid_file *pf = ctx;
  char *path = cli_path_join(pf->dir, pf->name);
  char *text = cli_read_file(path, NULL);
  free(path);
  int ok = text != NULL && strchr(text, '\n') != NULL;
  free(text);
  return ok;
}

/* Wait for `lines` events in DIR/EVENTS and the pid in DIR/PIDFILE (removed
 * before the run); returns the task's pid. */
static pid_t wait_running(const char *dir, const char *events, size_t lines, const char *pidfile,
                          pid_t spe) {
  char *path = cli_path_join(dir, events);
  size_t seen = wait_for_lines(path, lines, spe, 10000);
  free(path);
  struct pid_file pf = {dir, pidfile};
  if (seen < lines || !cli_poll_until(pid_written, &pf, 10000)) {
    kill(spe, SIGKILL);
    fail_msg("the task did not start (%zu of %zu events)", seen, lines);
  }
  char *pid_path = cli_path_join(dir, pidfile);
  char *text = cli_read_file(pid_path, NULL);
  pid_t pid = (pid_t)atoi(text);
  free(text);
  free(pid_path);
  assert_true(pid > 0);
  return pid;
}

static void remove_file(const char *dir, const char *name) {
  char *path = cli_path_join(dir, name);
  unlink(path);
  free(path);
}

/* kill -9 a run of spe, then the task it leaves behind (its own process
 * group: a task outlives a killed executor). */
static void kill_nine(pid_t spe, pid_t task, const char *dir) {
  assert_int_equal(kill(spe, SIGKILL), 0);
  struct cli_result r;
  cli_finish(&r, spe, dir);
  assert_int_equal(r.status, 128 + SIGKILL);
  cli_result_free(&r);
  if (task > 0) kill(-task, SIGKILL);
}

/* The store's event log (SPEC §4 holds for it across every run: seq rises by
 * one, one task_started and one task_terminated per attempt, one
 * job_finished per finished job). */
static void check_store_event_log(const char *db, int64_t from_ms) {
  char *bodies = store_query(db, "SELECT body FROM events ORDER BY seq");
  json_t *log = cli_parse_ndjson(bodies);
  cli_check_event_stream(log, from_ms, cli_wall_ms());
  json_decref(log);
  free(bodies);
}

/* a -> b -> c; b runs until DIR/gate exists. Each line: NAME ATTEMPT JOB. */
static const char gated_job[] =
    "{\"name\": \"gated\", \"tasks\": [\n"
    " {\"name\": \"a\", \"cmd\": \"echo \\\"a $SPE_ATTEMPT $SPE_JOB_ID\\\" >> log; echo 1\","
    " \"enables\": [\"b\"]},\n"
    " {\"name\": \"b\", \"cmd\": \"echo \\\"b $SPE_ATTEMPT $SPE_JOB_ID\\\" >> log; if [ -e gate ];"
    " then echo 2; else echo $$ > b.pid; exec sleep 30; fi\", \"enables\": [\"c\"]},\n"
    " {\"name\": \"c\", \"cmd\": \"echo \\\"c $SPE_ATTEMPT $SPE_JOB_ID\\\" >> log; echo 3\"}]}\n";
/* Its events until b runs: job_submitted, job_started, a started and
 * terminated, b started. */
#define GATED_UNTIL_B 5

/* A job with one task that leaves a mark: did anything run? */
static const char marker_job[] =
    "{\"name\": \"marker\", \"tasks\": [{\"name\": \"m\", \"cmd\": \"touch ran\"}]}\n";

/* ---- One owner ---------------------------------------------------------------- */

static void a_second_owner_is_refused_at_once(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("second-owner");
  char *job = write_job(dir, "gated.json", gated_job);
  char *marker = write_job(dir, "marker.json", marker_job);
  const char *first_args[] = {"run", "--state", STATE, "--events", "events", job, NULL};
  pid_t first = cli_spawn(dir, first_args, NULL, NULL, -1);
  wait_running(dir, "events", GATED_UNTIL_B, "b.pid", first);

  /* A second spe on the same store, while the first runs a task. */
  const char *second_args[] = {"run", "--state", STATE, marker, NULL};
  struct cli_result r;
  int64_t t0 = cli_mono_ms();
  run_expect(&r, dir, second_args, NULL, 3);
  assert_true(cli_mono_ms() - t0 < 2000); /* at once, not after the first ends */
  char want[128];
  snprintf(want, sizeof want, "state store %s is in use by process %d", STATE, (int)first);
  assert_contains(r.err, want);
  char *ran = cli_path_join(dir, "ran");
  assert_false(file_exists(ran)); /* nothing of the second run ran */
  cli_result_free(&r);

  /* The first goes on undisturbed; stop it. */
  assert_false(cli_process_gone(first));
  assert_int_equal(kill(first, SIGINT), 0);
  cli_finish(&r, first, dir);
  assert_int_equal(r.status, 130);
  cli_result_free(&r);
  free(ran);
  free(marker);
  free(job);
  free(dir);
}

static void a_stale_lock_is_taken_over(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("stale-lock");
  char *job = write_job(dir, "gated.json", gated_job);
  const char *first_args[] = {"run", "--state", STATE, "--events", "events", job, NULL};
  pid_t first = cli_spawn(dir, first_args, NULL, NULL, -1);
  pid_t b = wait_running(dir, "events", GATED_UNTIL_B, "b.pid", first);
  kill_nine(first, b, dir);

  /* The dead owner's pid is still in the lock file. */
  char *lock = cli_path_join(dir, "st/state.db.lock");
  char *pid_text = cli_read_file(lock, NULL);
  assert_int_equal(atoi(pid_text), first);
  free(pid_text);

  touch(dir, "gate");
  const char *args[] = {"run", "--state", STATE, "--log-level", "info", "--json", job, NULL};
  struct cli_result r;
  run_expect(&r, dir, args, NULL, 0);
  char want[160];
  snprintf(want, sizeof want, "state store %s: took over the lock of process %d, which is gone",
           STATE, (int)first);
  assert_contains(r.err, want);
  /* Recovery says what it did, at info. */
  assert_contains(r.err, "task \"b\" was running at the crash; it runs again");
  assert_contains(r.err, "(running): 1 of 3 tasks already done, 1 to run again, 0 lost");
  json_t *result = the_job(&r);
  assert_string_equal(json_string_value(json_object_get(result, "status")), "succeeded");
  /* b's crashed attempt counts: the next one is attempt 2. */
  assert_int_equal(cli_task_int(result, "b", "attempts"), 2);
  assert_int_equal(cli_task_int(result, "a", "attempts"), 1);
  /* A clean close leaves the lock file empty. */
  size_t len = 1;
  pid_text = cli_read_file(lock, &len);
  assert_int_equal(len, 0);
  free(pid_text);
  json_decref(result);
  cli_result_free(&r);
  free(lock);
  free(job);
  free(dir);
}

/* ---- Files that are not a store this build may use ------------------------------- */

/* `spe run` on DIR/st/state.db as it is now: refused with exit 3 and
 * `message`, the file byte for byte as it was, nothing beside it, nothing
 * run. */
static void refused_untouched(const char *dir, const char *message) {
  char *db = cli_path_join(dir, "st/state.db");
  char *before = cli_path_join(dir, "state.db.before");
  copy_file(db, before);
  char *marker = write_job(dir, "marker.json", marker_job);
  remove_file(dir, "ran");
  const char *args[] = {"run", "--state", STATE, marker, NULL};
  struct cli_result r;
  run_expect(&r, dir, args, NULL, 3);
  assert_contains(r.err, message);
  assert_contains(r.err, "spe: cannot open the state store \"" STATE "\": ");
  assert_true(same_bytes(db, before));
  char *wal = cli_path_join(dir, "st/state.db-wal");
  char *shm = cli_path_join(dir, "st/state.db-shm");
  char *ran = cli_path_join(dir, "ran");
  assert_false(file_exists(wal));
  assert_false(file_exists(shm));
  assert_false(file_exists(ran));
  cli_result_free(&r);
  free(ran);
  free(shm);
  free(wal);
  free(marker);
  free(before);
  free(db);
}

static char *store_dir_with_file(const char *name, char **db) {
  char *dir = cli_fresh_dir(name);
  char *st = cli_path_join(dir, "st");
  assert_int_equal(mkdir(st, 0755), 0);
  free(st);
  *db = cli_path_join(dir, "st/state.db");
  return dir;
}

static void a_file_of_random_bytes_is_refused_untouched(void **state) {
  (void)state;
  char *db;
  char *dir = store_dir_with_file("damaged-random", &db);
  uint64_t seed = test_seed();
  printf("random store bytes: seed %llu\n", (unsigned long long)seed);
  char bytes[8192];
  for (size_t i = 0; i < sizeof bytes; i += 8) {
    uint64_t v = rng_next(&seed);
    memcpy(bytes + i, &v, 8);
  }
  FILE *f = fopen(db, "we");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, sizeof bytes, f), sizeof bytes);
  assert_int_equal(fclose(f), 0);
  refused_untouched(dir, "state store " STATE " is not an SPE state store");
  free(db);
  free(dir);
}

static void an_sqlite_file_of_another_application_is_refused_untouched(void **state) {
  (void)state;
  char *db;
  char *dir = store_dir_with_file("foreign-sqlite", &db);
  sqlite_exec_file(db, "CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES ('mine');");
  refused_untouched(dir, "state store " STATE " is not an SPE state store");
  /* A WAL-mode database of another application too. */
  unlink(db);
  sqlite_exec_file(db, "PRAGMA journal_mode = WAL; CREATE TABLE notes(body TEXT);");
  refused_untouched(dir, "state store " STATE " is not an SPE state store");
  free(db);
  free(dir);
}

/* A real store, made by a run of the marker job. */
static char *dir_with_a_store(const char *name, char **db) {
  char *dir = cli_fresh_dir(name);
  char *marker = write_job(dir, "marker.json", marker_job);
  const char *args[] = {"run", "--state", STATE, marker, NULL};
  struct cli_result r;
  run_expect(&r, dir, args, NULL, 0);
  cli_result_free(&r);
  free(marker);
  *db = cli_path_join(dir, "st/state.db");
  return dir;
}

static void a_truncated_store_is_refused_untouched(void **state) {
  (void)state;
  char *db;
  char *dir = dir_with_a_store("damaged-truncated", &db);
  assert_int_equal(truncate(db, 4096), 0);
  refused_untouched(dir, "state store " STATE " is damaged: the file is 4096 bytes long");
  free(db);
  free(dir);
}

static void a_store_of_a_newer_schema_is_refused_untouched(void **state) {
  (void)state;
  char *db;
  char *dir = dir_with_a_store("newer-schema", &db);
  sqlite_exec_file(db, "PRAGMA user_version = 99");
  refused_untouched(dir, "state store " STATE
                         " was written by a newer SPE (schema 99, this build knows 2)");
  free(db);
  free(dir);
}

/* ---- A failing disk --------------------------------------------------------------- */

/* Run the 40-task job with SPE_STORE_FAULT=fault: exit 3 and what failed;
 * dispatching stopped at the failure; then a run without the fault finishes
 * the job, without running again a task whose success was published. */
static void write_failure(char *dir, const char *fault, const char *message) {
  struct dag_job d;
  dag_job_write(&d, dir);
  char env_fault[64];
  snprintf(env_fault, sizeof env_fault, "SPE_STORE_FAULT=%s", fault);
  const char *env[] = {env_fault, NULL};
  const char *args1[] = {"run", "--workers", "2", "--state", STATE, "--events", "events.1",
                         "--json", d.job_path, NULL};
  struct cli_result r;
  run_expect(&r, dir, args1, env, 3);
  assert_contains(r.err, message);
  assert_string_equal(r.out, ""); /* no result: the job did not end */
  cli_result_free(&r);

  /* Dispatching stopped at the failure. The engine may start a task whose
   * inputs are durable before the commit that records its start, so attempts
   * that ran while the failing commit was under way have no published start:
   * those of its round and of the round gathered meanwhile, a few per worker
   * (the failing commit is quick: it fails before any fsync). A run that went
   * on after the failure would run the 30-odd tasks left. */
  char *events_path = cli_path_join(dir, "events.1");
  json_t *events = events_file_read(events_path);
  free(events_path);
  json_t *started = cli_events_where(events, "task_started", NULL, NULL);
  json_t *finished = cli_events_where(events, "job_finished", NULL, NULL);
  assert_true(json_array_size(started) > 0);
  assert_int_equal(json_array_size(finished), 0);
  struct log_line *lines;
  size_t n = dag_log_read(&d, dir, &lines);
  assert_true(n > 0);
  int unpublished = 0;
  for (size_t i = 0; i < n; i++) {
    int found = 0;
    size_t j;
    json_t *ev;
    json_array_foreach(started, j, ev) {
      found |= strcmp(json_string_value(json_object_get(ev, "task")), d.names[lines[i].task]) ==
                   0 &&
               json_integer_value(json_object_get(ev, "attempt")) == lines[i].attempt;
    }
    unpublished += !found;
  }
  if (unpublished > 4)
    fail_msg("%d attempts ran without a published start (2 workers)", unpublished);
  free(lines);
  size_t log_end = dag_log_size(dir);
  json_t *succeeded = json_object();
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    const char *status = json_string_value(json_object_get(ev, "status"));
    if (status != NULL && strcmp(status, "succeeded") == 0)
      json_object_set(succeeded, json_string_value(json_object_get(ev, "task")),
                      json_object_get(ev, "result"));
  }

  /* The next run, on a healthy disk, completes the job. */
  const char *args2[] = {"run", "--workers", "2", "--state", STATE, "--json", d.job_path, NULL};
  run_expect(&r, dir, args2, NULL, 0);
  assert_contains(r.err, "resuming job");
  json_t *job = the_job(&r);
  dag_check_result(&d, job);
  n = dag_log_read(&d, dir, &lines);
  for (size_t k = 0; k < n; k++) {
    const char *task = d.names[lines[k].task];
    if (lines[k].offset >= log_end && json_object_get(succeeded, task) != NULL)
      fail_msg("task %s ran again after its success was published", task);
  }
  const char *task;
  json_t *result;
  json_object_foreach(succeeded, task, result) {
    assert_true(json_equal(result, cli_task_result(job, task)));
  }
  char *db = cli_path_join(dir, "st/state.db");
  char *ok = store_query(db, "PRAGMA integrity_check");
  assert_string_equal(ok, "ok\n");
  free(ok);
  free(db);
  free(lines);
  json_decref(job);
  json_decref(succeeded);
  json_decref(started);
  json_decref(finished);
  json_decref(events);
  cli_result_free(&r);
  dag_job_free(&d);
  free(dir);
}

static void a_failed_commit_stops_the_run_and_the_next_completes_it(void **state) {
  (void)state;
  /* The 10th commit fails, as if the disk were full: some tasks have run,
   * some are running, the rest wait. */
  write_failure(cli_fresh_dir("write-failure"), "commit:10",
                "state store write failed: database or disk is full (" STATE ")");
}

static void a_full_disk_stops_the_run_and_the_next_completes_it(void **state) {
  (void)state;
  /* A store that may grow by two pages (8 KiB) only: SQLite itself fails a
   * commit with SQLITE_FULL, part way through the 40 tasks. */
  char *db;
  char *dir = dir_with_a_store("disk-full", &db);
  struct stat st;
  assert_int_equal(stat(db, &st), 0);
  char fault[32];
  snprintf(fault, sizeof fault, "pages:%lld", (long long)st.st_size / 4096 + 2);
  write_failure(dir, fault, "state store write failed: database or disk is full (" STATE ")");
  free(db);
}

/* ---- SIGINT, then resume ----------------------------------------------------------- */

/* a -> c -> d, b alone; c ignores SIGTERM (so only the SIGKILL after --grace
 * stops it) until DIR/gate exists; d prints its input. */
static const char stubborn_job[] =
    "{\"name\": \"stubborn\", \"tasks\": [\n"
    " {\"name\": \"a\", \"cmd\": \"echo \\\"a $SPE_ATTEMPT\\\" >> log; echo 1\","
    " \"enables\": [\"c\"]},\n"
    " {\"name\": \"b\", \"cmd\": \"echo \\\"b $SPE_ATTEMPT\\\" >> log; echo 2\"},\n"
    " {\"name\": \"c\", \"cmd\": \"echo \\\"c $SPE_ATTEMPT\\\" >> log; if [ -e gate ]; then echo 3;"
    " exit 0; fi; trap '' TERM; echo $$ > c.pid; exec sleep 30\", \"enables\": [\"d\"]},\n"
    " {\"name\": \"d\", \"cmd\": \"echo \\\"d $SPE_ATTEMPT\\\" >> log; cat\"}]}\n";

static void sigint_stops_and_the_next_run_resumes(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("sigint-resume");
  char *job = write_job(dir, "stubborn.json", stubborn_job);
  const char *args1[] = {"run", "--workers", "2", "--grace", "300ms", "--state", STATE,
                         "--events", "events.1", job, NULL};
  pid_t spe = cli_spawn(dir, args1, NULL, NULL, -1);
  /* Before c ends, the only events are: submitted, started, a and b started
   * and terminated, c started. */
  pid_t c = wait_running(dir, "events.1", 7, "c.pid", spe);
  int64_t t0 = cli_mono_ms();
  assert_int_equal(kill(spe, SIGINT), 0);
  struct cli_result r;
  cli_finish(&r, spe, dir);
  int64_t took = cli_mono_ms() - t0;
  assert_int_equal(r.status, 130);
  assert_contains(r.err, "spe: interrupted; running tasks were stopped");
  /* c shrugged off SIGTERM: SIGKILL came after the grace time. */
  assert_true(took >= 300);
  assert_true(took < 5000);
  assert_true(cli_process_gone(c));
  cli_result_free(&r);
  char *events_path = cli_path_join(dir, "events.1");
  json_t *events = events_file_read(events_path);
  json_t *c_end = cli_events_where(events, "task_terminated", NULL, "c");
  assert_int_equal(json_array_size(c_end), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(c_end, 0), "status")),
                      "interrupted");
  const char *id = json_string_value(json_object_get(json_array_get(events, 0), "job"));
  char resume_line[200];
  snprintf(resume_line, sizeof resume_line,
           "resuming job %s \"stubborn\" from the store: 2 of 4 tasks already done", id);

  touch(dir, "gate");
  const char *args2[] = {"run", "--workers", "2", "--state", STATE, "--json", job, NULL};
  run_expect(&r, dir, args2, NULL, 0);
  assert_contains(r.err, resume_line);
  json_t *result = the_job(&r);
  assert_string_equal(id_of(result), id);
  assert_string_equal(json_string_value(json_object_get(result, "status")), "succeeded");
  /* The finished tasks did not run again; the interrupted one did, under the
   * same attempt number (an interruption does not count); d got everything. */
  assert_int_equal(log_count(dir, "a 1"), 1);
  assert_int_equal(log_count(dir, "b 1"), 1);
  assert_int_equal(log_count(dir, "c 1"), 2);
  assert_int_equal(log_count(dir, "d 1"), 1);
  assert_int_equal(cli_task_int(result, "c", "attempts"), 1);
  json_t *want_d = json_pack("{s:i, s:i}", "a", 1, "c", 3);
  assert_true(json_equal(cli_task_result(result, "d"), want_d));
  json_decref(want_d);
  json_decref(result);
  json_decref(c_end);
  json_decref(events);
  free(events_path);
  cli_result_free(&r);
  free(job);
  free(dir);
}

/* ---- The lost-attempt limit --------------------------------------------------------- */

/* a -> b -> c, and free alone; b never ends by itself. */
static const char fragile_job[] =
    "{\"name\": \"fragile\", \"tasks\": [\n"
    " {\"name\": \"a\", \"cmd\": \"echo \\\"a $SPE_ATTEMPT\\\" >> log; echo 1\","
    " \"enables\": [\"b\"]},\n"
    " {\"name\": \"b\", \"cmd\": \"echo \\\"b $SPE_ATTEMPT\\\" >> log; echo $$ > b.pid;"
    " exec sleep 30\", \"enables\": [\"c\"]},\n"
    " {\"name\": \"c\", \"cmd\": \"echo \\\"c $SPE_ATTEMPT\\\" >> log; echo 3\"},\n"
    " {\"name\": \"free\", \"cmd\": \"echo \\\"free $SPE_ATTEMPT\\\" >> log; echo 4\"}]}\n";

/* Kill spe `kills` times while b runs, then run once more with `limit_args`:
 * b fails as lost after `kills` attempts. */
static void lost_after(const char *name, int kills, const char *const *limit_args) {
  char *dir = cli_fresh_dir(name);
  char *job = write_job(dir, "fragile.json", fragile_job);
  char *db = cli_path_join(dir, "st/state.db");
  int64_t t0 = cli_wall_ms();
  for (int k = 1; k <= kills; k++) {
    const char *args[16] = {"run", "--state", STATE, "--events", "events", job};
    size_t n = 6;
    for (const char *const *a = limit_args; *a != NULL; a++) args[n++] = *a;
    args[n] = NULL;
    remove_file(dir, "b.pid");
    pid_t spe = cli_spawn(dir, args, NULL, NULL, -1);
    /* The first run: submitted, started, a and free started and terminated,
     * b started; later runs resume the job and start b at once. */
    pid_t b = wait_running(dir, "events", k == 1 ? 7 : 1, "b.pid", spe);
    kill_nine(spe, b, dir);
  }
  const char *args[16] = {"run", "--state", STATE, "--json", job};
  size_t n = 5;
  for (const char *const *a = limit_args; *a != NULL; a++) args[n++] = *a;
  args[n] = NULL;
  struct cli_result r;
  run_expect(&r, dir, args, NULL, 1);
  assert_contains(r.err, "from the store: 4 of 4 tasks already done, 1 failed, 1 not run");
  json_t *result = the_job(&r);
  assert_string_equal(json_string_value(json_object_get(result, "status")), "failed");
  assert_string_equal(cli_task_status(result, "b"), "failed");
  assert_string_equal(cli_error_kind(result, "b"), "lost");
  assert_int_equal(cli_task_int(result, "b", "attempts"), kills);
  assert_string_equal(cli_task_status(result, "c"), "not_run");
  assert_string_equal(json_string_value(json_object_get(cli_task(result, "c"), "blocked_by")),
                      "b");
  assert_string_equal(cli_task_status(result, "a"), "succeeded");
  assert_string_equal(cli_task_status(result, "free"), "succeeded");
  /* Only b ran more than once, once per run; c never. */
  assert_int_equal(log_count(dir, "a 1"), 1);
  assert_int_equal(log_count(dir, "free 1"), 1);
  for (int k = 1; k <= kills; k++) {
    char line[16];
    snprintf(line, sizeof line, "b %d", k);
    assert_int_equal(log_count(dir, line), 1);
  }
  assert_int_equal(log_count(dir, "c 1"), 0);
  assert_int_equal(store_query_int(db, "SELECT lost FROM tasks WHERE idx = 1"), kills);
  check_store_event_log(db, t0);
  json_decref(result);
  cli_result_free(&r);
  free(db);
  free(job);
  free(dir);
}

static void a_task_cut_short_by_three_crashes_fails_as_lost(void **state) {
  (void)state;
  const char *no_args[] = {NULL};
  lost_after("lost-default", 3, no_args); /* the default limit: 3 */
}

static void lost_limit_one(void **state) {
  (void)state;
  const char *limit[] = {"--lost-limit", "1", NULL};
  lost_after("lost-limit-1", 1, limit);
}

/* A task that kills spe itself, at once: a crash loop must end at the limit.
 * The first run may die before the task's start was committed (tasks of a
 * fresh job may start while their start is being committed); from then on the
 * job was recovered, its starts are committed first, and each crash counts. So
 * with --lost-limit 2 there are at most 3 crashed runs, and the next run fails
 * the task as lost. */
static void a_task_that_kills_spe_ends_at_the_limit(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("poison");
  char *job = write_job(dir, "poison.json",
                        "{\"name\": \"poison\", \"tasks\": [{\"name\": \"p\","
                        " \"cmd\": \"echo run >> log; kill -9 $PPID; sleep 5\"}]}\n");
  const char *args[] = {"run", "--state", STATE, "--lost-limit", "2", "--json", job, NULL};
  struct cli_result r;
  int crashed = 0;
  for (;;) {
    cli_run(&r, dir, args);
    if (r.status != 128 + SIGKILL) break;
    crashed++;
    cli_result_free(&r);
    if (crashed > 3) fail_msg("spe was killed %d times: the crash loop did not end", crashed);
  }
  if (r.status != 1) fail_msg("exit %d, stderr:\n%s", r.status, r.err);
  assert_true(crashed >= 2 && crashed <= 3);
  json_t *result = the_job(&r);
  assert_string_equal(cli_error_kind(result, "p"), "lost");
  assert_int_equal(log_count(dir, "run"), crashed);
  json_decref(result);
  cli_result_free(&r);
  free(job);
  free(dir);
}

/* ---- Resume, --fresh, and a finished job ------------------------------------------- */

static int lines_with(const char *dir, const char *task, const char *id) {
  char line[64];
  int n = 0;
  for (int attempt = 1; attempt <= 3; attempt++) {
    snprintf(line, sizeof line, "%s %d %s", task, attempt, id);
    n += log_count(dir, line);
  }
  return n;
}

static void resume_against_fresh_against_finished(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("resume-fresh");
  char *job = write_job(dir, "gated.json", gated_job);
  char *db = cli_path_join(dir, "st/state.db");

  /* 1. Interrupted while b runs: the job stays unfinished. */
  const char *args1[] = {"run", "--state", STATE, "--events", "events", job, NULL};
  pid_t spe = cli_spawn(dir, args1, NULL, NULL, -1);
  wait_running(dir, "events", GATED_UNTIL_B, "b.pid", spe);
  assert_int_equal(kill(spe, SIGINT), 0);
  struct cli_result r;
  cli_finish(&r, spe, dir);
  assert_int_equal(r.status, 130);
  cli_result_free(&r);
  char *events_path = cli_path_join(dir, "events");
  json_t *events = events_file_read(events_path);
  char id1[32];
  snprintf(id1, sizeof id1, "%s",
           json_string_value(json_object_get(json_array_get(events, 0), "job")));
  json_decref(events);
  touch(dir, "gate");

  /* 2. --fresh: a new job that runs every task; the old one is left alone. */
  const char *fresh[] = {"run", "--state", STATE, "--json", "--fresh", job, NULL};
  run_expect(&r, dir, fresh, NULL, 0);
  assert_lacks(r.err, "resuming");
  json_t *result = the_job(&r);
  char id2[32];
  snprintf(id2, sizeof id2, "%s", id_of(result));
  assert_string_not_equal(id2, id1);
  assert_int_equal(lines_with(dir, "a", id2), 1);
  assert_int_equal(lines_with(dir, "b", id2), 1);
  assert_int_equal(lines_with(dir, "c", id2), 1);
  assert_int_equal(lines_with(dir, "b", id1), 1); /* only run 1's */
  assert_int_equal(lines_with(dir, "c", id1), 0);
  json_decref(result);
  cli_result_free(&r);
  char *rows = store_query(db, "SELECT id || ' ' || status FROM jobs ORDER BY seq");
  char want[128];
  snprintf(want, sizeof want, "%s running\n%s succeeded\n", id1, id2);
  assert_string_equal(rows, want);
  free(rows);

  /* 3. Without --fresh: the unfinished job resumes; a does not run again. */
  const char *plain[] = {"run", "--state", STATE, "--json", job, NULL};
  run_expect(&r, dir, plain, NULL, 0);
  char line[160];
  snprintf(line, sizeof line,
           "resuming job %s \"gated\" from the store: 1 of 3 tasks already done", id1);
  assert_contains(r.err, line);
  result = the_job(&r);
  assert_string_equal(id_of(result), id1);
  assert_string_equal(json_string_value(json_object_get(result, "status")), "succeeded");
  assert_int_equal(lines_with(dir, "a", id1), 1);
  assert_int_equal(lines_with(dir, "b", id1), 2); /* interrupted, then again */
  assert_int_equal(lines_with(dir, "c", id1), 1);
  json_decref(result);
  cli_result_free(&r);

  /* 4. Every job of the file has finished: a new job, a new id. */
  run_expect(&r, dir, plain, NULL, 0);
  assert_lacks(r.err, "resuming");
  result = the_job(&r);
  char id3[32];
  snprintf(id3, sizeof id3, "%s", id_of(result));
  assert_string_not_equal(id3, id1);
  assert_string_not_equal(id3, id2);
  assert_int_equal(lines_with(dir, "a", id3), 1);
  assert_int_equal(lines_with(dir, "c", id3), 1);
  json_decref(result);
  cli_result_free(&r);

  /* The finished jobs stay in the store. */
  rows = store_query(db, "SELECT id || ' ' || status FROM jobs ORDER BY seq");
  snprintf(want, sizeof want, "%s succeeded\n%s succeeded\n%s succeeded\n", id1, id2, id3);
  assert_string_equal(rows, want);
  free(rows);
  free(events_path);
  free(db);
  free(job);
  free(dir);
}

/* ---- The default store ---------------------------------------------------------------- */

static void spe_run_keeps_its_state_in_dot_spe_by_default(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("default-store");
  char *marker = write_job(dir, "marker.json", marker_job);
  const char *args[] = {"run", "--json", marker, NULL};
  struct cli_result r;
  run_expect(&r, dir, args, NULL, 0);
  json_t *result = the_job(&r);
  char *db = cli_path_join(dir, ".spe/state.db");
  assert_true(file_exists(db));
  char *rows = store_query(db, "SELECT id || ' ' || status FROM jobs");
  char want[64];
  snprintf(want, sizeof want, "%s succeeded\n", id_of(result));
  assert_string_equal(rows, want);
  free(rows);
  json_decref(result);
  cli_result_free(&r);
  free(db);
  free(marker);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_second_owner_is_refused_at_once),
      cmocka_unit_test(a_stale_lock_is_taken_over),
      cmocka_unit_test(a_file_of_random_bytes_is_refused_untouched),
      cmocka_unit_test(an_sqlite_file_of_another_application_is_refused_untouched),
      cmocka_unit_test(a_truncated_store_is_refused_untouched),
      cmocka_unit_test(a_store_of_a_newer_schema_is_refused_untouched),
      cmocka_unit_test(a_failed_commit_stops_the_run_and_the_next_completes_it),
      cmocka_unit_test(a_full_disk_stops_the_run_and_the_next_completes_it),
      cmocka_unit_test(sigint_stops_and_the_next_run_resumes),
      cmocka_unit_test(a_task_cut_short_by_three_crashes_fails_as_lost),
      cmocka_unit_test(lost_limit_one),
      cmocka_unit_test(a_task_that_kills_spe_ends_at_the_limit),
      cmocka_unit_test(resume_against_fresh_against_finished),
      cmocka_unit_test(spe_run_keeps_its_state_in_dot_spe_by_default),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
