/*
 * The `spe` program as a command: usage, help, `spe validate`, exit statuses,
 * invalid jobs, signals, the events file's errors, log levels and the progress
 * line on a terminal. The scenarios of running jobs are in test_run.c.
 */
#include "support/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Run spe with `args` in a fresh directory and check the exit status. */
static void run_in(struct cli_result *r, const char *dirname, const char *const *args,
                   int want_status) {
  char *dir = cli_fresh_dir(dirname);
  cli_run(r, dir, args);
  if (r->status != want_status)
    fail_msg("spe %s ...: exit %d (want %d)\nstdout: %.2000s\nstderr: %.2000s", args[0],
             r->status, want_status, r->out, r->err);
  free(dir);
}

static void assert_contains(const char *text, const char *part) {
  if (strstr(text, part) == NULL) fail_msg("\"%s\" not found in:\n%.3000s", part, text);
}

static int count_lines(const char *text) {
  int n = 0;
  for (; *text != '\0'; text++) n += *text == '\n';
  return n;
}

/* ---- Help, version, usage errors ----------------------------------------- */

static void help_for_every_command(void **state) {
  (void)state;
  static const struct { const char *args[3]; const char *want; } cases[] = {
      {{"--help", NULL}, "usage: spe COMMAND"},
      {{"-h", NULL}, "usage: spe COMMAND"},
      {{"run", "--help", NULL}, "usage: spe run"},
      {{"run", "-h", NULL}, "--workers N|unbound"},
      {{"validate", "--help", NULL}, "usage: spe validate"},
      {{"help", "run", NULL}, "usage: spe run"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct cli_result r;
    run_in(&r, "help", cases[i].args, 0);
    assert_contains(r.out, cases[i].want);
    assert_int_equal(r.err_len, 0);
    cli_result_free(&r);
  }
  struct cli_result r;
  const char *version[] = {"--version", NULL};
  run_in(&r, "help", version, 0);
  assert_true(strncmp(r.out, "spe ", 4) == 0 && count_lines(r.out) == 1);
  cli_result_free(&r);
}

static void usage_errors_exit_2_with_one_line(void **state) {
  (void)state;
  char *good = cli_job_path("good.json");
  const struct { const char *args[6]; const char *want; } cases[] = {
      {{NULL}, "usage: spe COMMAND"},
      {{"frobnicate", NULL}, "spe: unknown command \"frobnicate\" (see \"spe --help\")"},
      {{"--frob", NULL}, "spe: unknown option \"--frob\""},
      {{"serve", "--listen", "127.0.0.1:0", NULL},
       "spe serve: --listen needs --token-file"},
      {{"serve", "--max-body", "lots", NULL}, "spe serve: --max-body: expected a size"},
      {{"status", "x", "y", NULL}, "spe status: one job id at a time"},
      {{"prune", NULL}, "spe prune: --older-than is required"},
      {{"prune", "--older-than", "soon", NULL}, "spe prune: --older-than \"soon\""},
      {{"list", "--limit", "0", NULL}, "spe list: --limit \"0\": expected a number"},
      {{"submit", "--server", "ftp://x", good, NULL}, "spe submit: --server \"ftp://x\""},
      {{"run", NULL}, "spe run: no job file given (see \"spe run --help\")"},
      {{"run", "--workers", "0", good, NULL},
       "spe run: --workers: expected a positive integer or \"unbound\", got \"0\""},
      {{"run", "--workers", "abc", good, NULL}, "got \"abc\""},
      {{"run", "--workers=-3", good, NULL}, "got \"-3\""},
      {{"run", "-w", "99999999", good, NULL}, "--workers: at most 1000000, got \"99999999\""},
      {{"run", "--workers", NULL}, "spe run: option --workers needs a value"},
      {{"run", "--bogus", good, NULL}, "spe run: unknown option \"--bogus\""},
      {{"run", "--json=yes", good, NULL}, "option --json takes no value"},
      {{"run", "--log-level", "loud", good, NULL}, "--log-level: unknown level \"loud\""},
      {{"run", "--json", "--events", "-", good, NULL}, "would both write to stdout"},
      {{"validate", NULL}, "spe validate: no job file given"},
      {{"validate", "-x", good, NULL}, "spe validate: unknown option \"-x\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct cli_result r;
    const char *const *args = cases[i].args;
    char *dir = cli_fresh_dir("usage");
    cli_run(&r, dir, args);
    if (r.status != 2) fail_msg("case %zu: exit %d, stderr %s", i, r.status, r.err);
    assert_contains(r.err, cases[i].want);
    if (args[0] != NULL) assert_int_equal(count_lines(r.err), 1);
    assert_int_equal(r.out_len, 0);
    cli_result_free(&r);
    free(dir);
  }
  /* A bad $SPE_LOG is a usage error too. */
  struct cli_result r;
  char *dir = cli_fresh_dir("usage");
  const char *args[] = {"run", good, NULL};
  const char *env[] = {"SPE_LOG=loud", NULL};
  cli_run_env(&r, dir, args, env);
  assert_int_equal(r.status, 2);
  assert_contains(r.err, "SPE_LOG: unknown level \"loud\"");
  cli_result_free(&r);
  free(dir);
  free(good);
}

/* ---- validate ---------------------------------------------------------------- */

static void validate_prints_the_plan(void **state) {
  (void)state;
  char *chain = cli_job_path("chain.json");
  char *two = cli_job_path("two-upstreams.json");
  char *prio = cli_job_path("priority.json");
  const char *args[] = {"validate", chain, two, prio, NULL};
  struct cli_result r;
  run_in(&r, "validate", args, 0);
  char want[4096];
  snprintf(want, sizeof want,
           "%s: valid, 3 tasks in 3 levels\n"
           "  level 0: first\n"
           "  level 1: second\n"
           "  level 2: third\n"
           "%s: valid, 3 tasks in 2 levels\n"
           "  level 0: a, b\n"
           "  level 1: sum\n"
           "%s: valid, 6 tasks in 2 levels\n"
           "  level 0: a, b, c, d, e\n"
           "  level 1: f\n",
           chain, two, prio);
  assert_string_equal(r.out, want);
  assert_int_equal(r.err_len, 0);
  cli_result_free(&r);
  free(chain);
  free(two);
  free(prio);
}

static void validate_reports_every_invalid_file(void **state) {
  (void)state;
  char *good = cli_job_path("good.json");
  char *cycle = cli_job_path("invalid-cycle.json");
  char *unknown = cli_job_path("invalid-unknown-enables.json");
  const char *args[] = {"validate", cycle, good, unknown, NULL};
  struct cli_result r;
  run_in(&r, "validate-invalid", args, 2);
  char want[1024];
  snprintf(want, sizeof want, "spe: %s: dependency cycle: a -> b -> a\n", cycle);
  assert_contains(r.err, want);
  snprintf(want, sizeof want, "spe: %s: task \"t1\": enables unknown task \"t9\"\n", unknown);
  assert_contains(r.err, want);
  assert_int_equal(count_lines(r.err), 2);
  /* The valid file in between is still checked and printed. */
  snprintf(want, sizeof want, "%s: valid, 2 tasks in 2 levels\n", good);
  assert_contains(r.out, want);
  cli_result_free(&r);
  free(good);
  free(cycle);
  free(unknown);
}

/* Every case of the job model's corpus of invalid jobs, through the program:
 * "spe: FILE: " and the expected message. */
static void the_invalid_job_corpus_is_refused(void **state) {
  (void)state;
  char *pattern = cli_source_path("tests/jobs/invalid/*.json");
  glob_t g;
  int rc = glob(pattern, 0, NULL, &g);
  free(pattern);
  if (rc != 0) skip();
  for (size_t i = 0; i < g.gl_pathc; i++) {
    const char *path = g.gl_pathv[i];
    char expect_path[4096];
    snprintf(expect_path, sizeof expect_path, "%.*s.expect", (int)(strlen(path) - 5), path);
    char *expect = cli_read_file(expect_path, NULL);
    if (expect == NULL) continue;
    expect[strcspn(expect, "\n")] = '\0';
    const char *args[] = {"run", path, NULL};
    struct cli_result r;
    char *dir = cli_fresh_dir("corpus");
    cli_run(&r, dir, args);
    /* An .expect file holds the exact message, or "contains: TEXT". */
    static const char contains[] = "contains: ";
    int partial = strncmp(expect, contains, sizeof contains - 1) == 0;
    char want[8192];
    snprintf(want, sizeof want, "spe: %s: %s", path,
             partial ? expect + sizeof contains - 1 : expect);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "spe: %s: ", path);
    int ok = r.status == 2 && count_lines(r.err) == 1 &&
             (partial ? strncmp(r.err, prefix, strlen(prefix)) == 0 &&
                            strstr(r.err, want + strlen(prefix)) != NULL
                      : strcmp(r.err, want) == 0 || (strncmp(r.err, want, strlen(want)) == 0 &&
                                                     strcmp(r.err + strlen(want), "\n") == 0));
    if (!ok) fail_msg("%s: exit %d, stderr:\n%s\nwant:\n%s", path, r.status, r.err, want);
    cli_result_free(&r);
    free(dir);
    free(expect);
  }
  globfree(&g);
}

/* ---- Exit statuses ------------------------------------------------------------ */

static void an_invalid_job_means_nothing_runs(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("nothing-runs");
  static const char *const bad[] = {"invalid-cycle.json", "invalid-syntax.json",
                                    "invalid-empty.json", "invalid-duplicate.json",
                                    "invalid-field.json"};
  char *marker = cli_job_path("marker.json");
  char *paths[5];
  const char *args[8] = {"run", marker};
  for (size_t i = 0; i < 5; i++) args[2 + i] = paths[i] = cli_job_path(bad[i]);
  args[7] = NULL;
  struct cli_result r;
  cli_run(&r, dir, args);
  assert_int_equal(r.status, 2);
  assert_int_equal(r.out_len, 0);
  /* One line per invalid file, each naming the file. */
  assert_int_equal(count_lines(r.err), 5);
  for (size_t i = 0; i < 5; i++) {
    char want[4096];
    snprintf(want, sizeof want, "spe: %s: ", paths[i]);
    assert_contains(r.err, want);
    free(paths[i]);
  }
  assert_contains(r.err, "line 2");             /* the syntax error says where */
  assert_contains(r.err, "duplicate task name \"t0\"");
  assert_contains(r.err, "timout");             /* the unknown field is named */
  char *ran = cli_path_join(dir, "ran.marker");
  assert_int_equal(access(ran, F_OK), -1);
  free(ran);
  free(marker);
  cli_result_free(&r);
  free(dir);
}

static void exit_statuses(void **state) {
  (void)state;
  char *good = cli_job_path("good.json");
  char *failing = cli_job_path("failing.json");
  char *missing = cli_job_path("no-such-file.json");
  struct cli_result r;

  const char *ok[] = {"run", good, NULL};
  run_in(&r, "exit-0", ok, 0);
  cli_result_free(&r);

  const char *one_fails[] = {"run", good, failing, NULL};
  run_in(&r, "exit-1", one_fails, 1);
  cli_result_free(&r);

  const char *no_file[] = {"run", missing, NULL};
  run_in(&r, "exit-2", no_file, 2);
  assert_contains(r.err, "no-such-file.json: cannot read: No such file or directory");
  cli_result_free(&r);

  const char *bad_store[] = {"run", "--state", "bogus:", good, NULL};
  run_in(&r, "exit-3", bad_store, 3);
  assert_contains(r.err, "spe: cannot open the state store \"bogus:\": ");
  assert_int_equal(count_lines(r.err), 1);
  cli_result_free(&r);

  /* The events file cannot be created: bad usage, nothing ran. */
  const char *bad_events[] = {"run", "--events", "/nonexistent/dir/ev.ndjson", good, NULL};
  run_in(&r, "exit-2-events", bad_events, 2);
  assert_contains(r.err, "spe: --events /nonexistent/dir/ev.ndjson: cannot open: ");
  cli_result_free(&r);

  /* It cannot be written: the jobs ran, but the record is lost: 3. */
  if (access("/dev/full", W_OK) == 0) {
    const char *full[] = {"run", "--events", "/dev/full", good, NULL};
    run_in(&r, "exit-3-events", full, 3);
    assert_contains(r.err, "spe: --events /dev/full: cannot write: No space left on device");
    cli_result_free(&r);
  }
  free(good);
  free(failing);
  free(missing);
}

static void a_job_from_standard_input(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("stdin");
  char *good = cli_job_path("good.json");
  const char *args[] = {"run", "--json", "-", NULL};
  pid_t pid = cli_spawn(dir, args, NULL, good, -1);
  struct cli_result r;
  cli_finish(&r, pid, dir);
  assert_int_equal(r.status, 0);
  json_t *jobs = cli_parse_ndjson(r.out);
  assert_int_equal(json_array_size(jobs), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 0), "status")),
                      "succeeded");
  json_decref(jobs);
  cli_result_free(&r);
  free(good);
  free(dir);
}

/* ---- Log levels ---------------------------------------------------------------- */

static void log_levels(void **state) {
  (void)state;
  char *good = cli_job_path("good.json");
  char *failing = cli_job_path("failing.json");
  struct cli_result r;

  const char *warn[] = {"run", "--log-level", "warn", good, failing, NULL};
  run_in(&r, "log-warn", warn, 1);
  assert_null(strstr(r.err, " info  "));
  assert_contains(r.err, " warn  job ");
  cli_result_free(&r);

  char *dir = cli_fresh_dir("log-env");
  const char *quiet[] = {"run", good, failing, NULL};
  const char *env_error[] = {"SPE_LOG=error", NULL};
  cli_run_env(&r, dir, quiet, env_error);
  assert_int_equal(r.status, 1);
  assert_int_equal(r.err_len, 0);
  cli_result_free(&r);

  /* --log-level wins over $SPE_LOG. */
  const char *info[] = {"run", "--log-level=info", good, NULL};
  cli_run_env(&r, dir, info, env_error);
  assert_int_equal(r.status, 0);
  assert_contains(r.err, " info  job ");
  cli_result_free(&r);

  const char *debug[] = {"run", "--log-level", "debug", good, NULL};
  cli_run(&r, dir, debug);
  assert_int_equal(r.status, 0);
  assert_contains(r.err, "\"good\": finished: succeeded in ");
  cli_result_free(&r);
  free(dir);
  free(good);
  free(failing);
}

/* ---- Signals ------------------------------------------------------------------- */

struct wait_started {
  const char *events_path;
  const char *pid_path;
};

static int task_started_and_pid_written(void *ctx) {
  struct wait_started *w = ctx;
  char *events = cli_read_file(w->events_path, NULL);
  int started = events != NULL && strstr(events, "\"type\":\"task_started\"") != NULL;
  free(events);
  if (!started) return 0;
  char *pid = cli_read_file(w->pid_path, NULL);
  int written = pid != NULL && strchr(pid, '\n') != NULL;
  free(pid);
  return written;
}

static int process_gone(void *ctx) { return cli_process_gone(*(pid_t *)ctx); }

static void interrupted_by(int sig) {
  char *dir = cli_fresh_dir(sig == SIGINT ? "sigint" : "sigterm");
  char *job = cli_job_path("interruptible.json");
  const char *args[] = {"run", "--events", "events.ndjson", job, NULL};
  pid_t spe = cli_spawn(dir, args, NULL, NULL, -1);
  struct wait_started w = {cli_path_join(dir, "events.ndjson"), cli_path_join(dir, "task.pid")};
  /* Wait for the task to be running (its task_started event and its pid),
   * not for a guessed time. */
  if (!cli_poll_until(task_started_and_pid_written, &w, 10000)) {
    kill(spe, SIGKILL);
    fail_msg("the task did not start within 10 s");
  }
  char *pid_text = cli_read_file(w.pid_path, NULL);
  pid_t task = (pid_t)atoi(pid_text);
  free(pid_text);
  assert_true(task > 0);
  assert_false(cli_process_gone(task));

  assert_int_equal(kill(spe, sig), 0);
  struct cli_result r;
  cli_finish(&r, spe, dir);
  assert_int_equal(r.status, 130);
  assert_contains(r.err, "spe: interrupted; running tasks were stopped\n");
  /* The task's process was stopped with the program. */
  assert_true(cli_poll_until(process_gone, &task, 2000));
  assert_true(r.wall_ms < 5000);
  /* The events file is complete: the attempt ended as interrupted (a later
   * run on a durable store starts it again), and the job did not finish. */
  char *events_text = cli_read_file(w.events_path, NULL);
  json_t *events = cli_parse_ndjson(events_text);
  json_t *ends = cli_events_where(events, "task_terminated", NULL, "long");
  assert_int_equal(json_array_size(ends), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(ends, 0), "status")),
                      "interrupted");
  json_t *finished = cli_events_where(events, "job_finished", NULL, NULL);
  assert_int_equal(json_array_size(finished), 0);
  json_decref(finished);
  json_decref(ends);
  json_decref(events);
  free(events_text);
  cli_result_free(&r);
  free((char *)w.events_path);
  free((char *)w.pid_path);
  free(job);
  free(dir);
}

static void sigint_stops_the_run(void **state) {
  (void)state;
  interrupted_by(SIGINT);
}

static void sigterm_stops_the_run(void **state) {
  (void)state;
  interrupted_by(SIGTERM);
}

/* ---- Progress on a terminal ------------------------------------------------------ */

static void progress_on_a_terminal(void **state) {
  (void)state;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) skip();
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  assert_true(slave >= 0);
  char *dir = cli_fresh_dir("progress");
  char *good = cli_job_path("good.json");
  char *failing = cli_job_path("failing.json");
  const char *args[] = {"run", good, failing, NULL};
  pid_t pid = cli_spawn(dir, args, NULL, NULL, slave);
  close(slave);
  /* Read the terminal until the program has closed it (EIO). */
  char buf[16384];
  size_t n = 0;
  for (;;) {
    ssize_t got = read(master, buf + n, sizeof buf - 1 - n);
    if (got > 0) {
      n += (size_t)got;
      if (n == sizeof buf - 1) break;
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  buf[n] = '\0';
  close(master);
  struct cli_result r;
  cli_finish(&r, pid, dir);
  assert_int_equal(r.status, 1);
  assert_contains(buf, "done ");
  assert_contains(buf, "/3  running ");
  assert_contains(buf, "\r\033[K");
  /* Warnings are still printed as lines; info lines are not. */
  assert_contains(buf, "\"failing\": task \"fail\" failed: ");
  assert_null(strstr(buf, " info  "));
  assert_contains(buf, "spe: 2 jobs: 1 succeeded, 1 failed");
  cli_result_free(&r);
  free(good);
  free(failing);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_for_every_command),
      cmocka_unit_test(usage_errors_exit_2_with_one_line),
      cmocka_unit_test(validate_prints_the_plan),
      cmocka_unit_test(validate_reports_every_invalid_file),
      cmocka_unit_test(the_invalid_job_corpus_is_refused),
      cmocka_unit_test(an_invalid_job_means_nothing_runs),
      cmocka_unit_test(exit_statuses),
      cmocka_unit_test(a_job_from_standard_input),
      cmocka_unit_test(log_levels),
      cmocka_unit_test(sigint_stops_the_run),
      cmocka_unit_test(sigterm_stops_the_run),
      cmocka_unit_test(progress_on_a_terminal),
  };
  return cmocka_run_group_tests_name("spe command line", tests, NULL, NULL);
}
