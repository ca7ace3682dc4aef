/*
 * Recovery of an embedding program killed with SIGKILL in the middle of a job
 * (tests/embed_child.c, found through $SPE_EMBED_CHILD): the program is run,
 * killed with its whole process group once its `gate` task is running, and run
 * again on the same SQLite store. The rerun resumes the same job, finishes it
 * with the right results, and runs again only the task that was cut short:
 * every task that had completed before the kill ran exactly once (counted from
 * the lines the functions append to a log). Rerun by a program that lacks one
 * function, the task that needs it fails with kind "error" naming it.
 */
#include "support/cli_util.h"
#include "support/durable_util.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

struct child_paths {
  char *dir, *db, *log, *marker, *idfile, *out, *err;
};

static void paths_init(struct child_paths *p, const char *name) {
  p->dir = cli_fresh_dir(name);
  p->db = cli_path_join(p->dir, "state.db");
  p->log = cli_path_join(p->dir, "calls.log");
  p->marker = cli_path_join(p->dir, "marker");
  p->idfile = cli_path_join(p->dir, "id");
  p->out = cli_path_join(p->dir, "stdout");
  p->err = cli_path_join(p->dir, "stderr");
}

static void paths_free(struct child_paths *p) {
  free(p->dir);
  free(p->db);
  free(p->log);
  free(p->marker);
  free(p->idfile);
  free(p->out);
  free(p->err);
}

/* Start embed_child on the paths, stdout and stderr to files, in a process
 * group of its own (set on both sides of the fork, so that a kill of the group
 * right after this returns cannot miss it). */
static pid_t spawn_child(const struct child_paths *p, const char *without) {
  const char *bin = getenv("SPE_EMBED_CHILD");
  if (bin == NULL) fail_msg("SPE_EMBED_CHILD is not set (run the test through ctest)");
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    setpgid(0, 0);
    int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0) _exit(126);
    dup2(out, 1);
    dup2(err, 2);
    if (without)
      execl(bin, bin, p->db, p->log, p->marker, p->idfile, "--without", without, (char *)NULL);
    else
      execl(bin, bin, p->db, p->log, p->marker, p->idfile, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid); /* EACCES once the child has exec'd: then it did it itself */
  return pid;
}

static int wait_status(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* How many lines of the log name `task`; *pid gets the pid of the last one. */
static int calls_of(const char *log, const char *task, int *pid) {
  char *text = cli_read_file(log, NULL);
  assert_non_null(text);
  int n = 0;
  size_t tlen = strlen(task);
  for (char *line = text; *line;) {
    char *nl = strchr(line, '\n');
    if (nl == NULL) break;
    if (strncmp(line, task, tlen) == 0 && line[tlen] == ' ') {
      n++;
      if (pid) *pid = atoi(strrchr(line, ' ') + 1);
    }
    line = nl + 1;
  }
  free(text);
  return n;
}

static int gone(void *ctx) { return cli_process_gone(*(pid_t *)ctx); }

/* Run the child until its gate task runs (a, b and c done), then kill its whole
 * process group with SIGKILL; check that no worker outlives it; create the
 * marker that lets gate finish next time. */
static void run_and_kill(const struct child_paths *p) {
  pid_t pid = spawn_child(p, NULL);
  size_t lines = wait_for_lines(p->log, 4, pid, 30000);
  if (lines < 4) {
    kill(-pid, SIGKILL);
    wait_status(pid);
    char *err = cli_read_file(p->err, NULL);
    fail_msg("the log has %zu lines, not 4; stderr: %s", lines, err ? err : "");
  }
  int gate_pid = 0;
  assert_int_equal(calls_of(p->log, "gate", &gate_pid), 1);
  assert_int_equal(kill(-pid, SIGKILL), 0);
  assert_int_equal(wait_status(pid), 128 + SIGKILL);
  /* The worker that runs gate is not the child's: it must not outlive the
   * program that it works for (it would hold on to the function's resources
   * and, unkilled, finish a task that the rerun runs again). */
  pid_t worker = gate_pid;
  if (!cli_poll_until(gone, &worker, 5000)) {
    kill(worker, SIGKILL);
    fail_msg("the worker process %d running gate outlived the killed program", (int)worker);
  }
  assert_int_equal(calls_of(p->log, "a", NULL), 1);
  assert_int_equal(calls_of(p->log, "b", NULL), 1);
  assert_int_equal(calls_of(p->log, "c", NULL), 1);
  assert_int_equal(calls_of(p->log, "e", NULL), 0);
  cli_write_file(p->marker, "go\n");
}

static json_t *child_job(const struct child_paths *p) {
  char *out = cli_read_file(p->out, NULL);
  assert_non_null(out);
  json_error_t e;
  json_t *job = json_loads(out, 0, &e);
  if (job == NULL) fail_msg("stdout is not a job: %s (%s)", out, e.text);
  free(out);
  return job;
}

static void killed_mid_job_resumes(void **state) {
  (void)state;
  struct child_paths p;
  paths_init(&p, "embed_recovery");
  run_and_kill(&p);
  char *id_before = cli_read_file(p.idfile, NULL);
  assert_non_null(id_before);

  pid_t pid = spawn_child(&p, NULL);
  int status = wait_status(pid);
  if (status != 0) {
    char *err = cli_read_file(p.err, NULL);
    fail_msg("the rerun exited with %d; stderr: %s", status, err ? err : "");
  }
  json_t *job = child_job(&p);
  assert_string_equal(json_string_value(json_object_get(job, "id")), id_before);
  assert_string_equal(cli_task_status(job, "f"), "succeeded");
  assert_string_equal(json_string_value(json_object_get(job, "status")), "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(job, "a")), 1);
  assert_int_equal(json_integer_value(cli_task_result(job, "b")), 11);
  assert_int_equal(json_integer_value(cli_task_result(job, "c")), 101);
  assert_int_equal(json_integer_value(cli_task_result(job, "gate")), 113);
  assert_int_equal(json_integer_value(cli_task_result(job, "e")), 226);
  assert_int_equal(json_integer_value(cli_task_result(job, "f")), 452);
  /* What had completed ran once; gate, cut short, twice; the rest once. */
  assert_int_equal(calls_of(p.log, "a", NULL), 1);
  assert_int_equal(calls_of(p.log, "b", NULL), 1);
  assert_int_equal(calls_of(p.log, "c", NULL), 1);
  assert_int_equal(calls_of(p.log, "gate", NULL), 2);
  assert_int_equal(calls_of(p.log, "e", NULL), 1);
  assert_int_equal(calls_of(p.log, "f", NULL), 1);
  assert_int_equal(cli_task_int(job, "a", "attempts"), 1);
  json_decref(job);

  /* A third run finds the job finished: nothing is resumed, a new job runs. */
  pid = spawn_child(&p, NULL);
  assert_int_equal(wait_status(pid), 0);
  job = child_job(&p);
  assert_string_not_equal(json_string_value(json_object_get(job, "id")), id_before);
  assert_int_equal(json_integer_value(cli_task_result(job, "f")), 452);
  json_decref(job);
  assert_int_equal(calls_of(p.log, "a", NULL), 2);
  free(id_before);
  paths_free(&p);
}

static void rerun_without_a_function(void **state) {
  (void)state;
  struct child_paths p;
  paths_init(&p, "embed_recovery_without");
  run_and_kill(&p);

  pid_t pid = spawn_child(&p, "finish");
  int status = wait_status(pid);
  if (status != 1) {
    char *err = cli_read_file(p.err, NULL);
    fail_msg("the rerun exited with %d, want 1 (job failed); stderr: %s", status,
             err ? err : "");
  }
  json_t *job = child_job(&p);
  assert_string_equal(json_string_value(json_object_get(job, "status")), "failed");
  assert_int_equal(json_integer_value(cli_task_result(job, "gate")), 113);
  assert_int_equal(json_integer_value(cli_task_result(job, "e")), 226);
  assert_string_equal(cli_task_status(job, "f"), "failed");
  assert_string_equal(cli_error_kind(job, "f"), "error");
  const char *msg =
      json_string_value(json_object_get(json_object_get(cli_task(job, "f"), "error"), "message"));
  assert_non_null(msg);
  if (strstr(msg, "finish") == NULL) fail_msg("message \"%s\" does not name the function", msg);
  assert_int_equal(calls_of(p.log, "a", NULL), 1);
  assert_int_equal(calls_of(p.log, "gate", NULL), 2);
  assert_int_equal(calls_of(p.log, "f", NULL), 0);
  json_decref(job);
  paths_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(killed_mid_job_resumes),
      cmocka_unit_test(rerun_without_a_function),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
