/*
 * The limits of docs/limits.md end to end through `spe`, at their real values:
 * a job file of exactly 64 MiB runs and one byte more is refused (exit 2, the
 * message names the size and the limit, nothing is stored); a task name at and
 * past 1024 bytes; a result at and past the default 16 MiB.
 */
#include "support/cli_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/limits.h"

static void assert_run(struct cli_result *r, const char *dir, const char *const *args,
                       int want_status) {
  cli_run(r, dir, args);
  if (r->status != want_status)
    fail_msg("spe %s ...: exit %d (want %d)\nstdout: %.2000s\nstderr: %.2000s", args[0],
             r->status, want_status, r->out, r->err);
}

static int exists(const char *dir, const char *name) {
  char *path = cli_path_join(dir, name);
  struct stat st;
  int yes = stat(path, &st) == 0;
  free(path);
  return yes;
}

static void remove_file(const char *dir, const char *name) {
  char *path = cli_path_join(dir, name);
  unlink(path);
  free(path);
}

/* Write `job` padded with spaces to exactly `size` bytes. */
static void write_padded(const char *dir, const char *name, const char *job, size_t size) {
  char *path = cli_path_join(dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(job, 1, strlen(job), f), strlen(job));
  static char spaces[65536];
  memset(spaces, ' ', sizeof spaces);
  for (size_t left = size - strlen(job); left > 0;) {
    size_t n = left < sizeof spaces ? left : sizeof spaces;
    assert_int_equal(fwrite(spaces, 1, n, f), n);
    left -= n;
  }
  assert_int_equal(fclose(f), 0);
  free(path);
}

static void job_file_size_at_the_edge(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("limits-file");
  const char *job = "{\"name\":\"big\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"touch ran\"}]}";
  write_padded(dir, "at.json", job, SPE_MAX_JOB_BYTES);
  write_padded(dir, "past.json", job, SPE_MAX_JOB_BYTES + 1);

  /* One past: refused by its size, nothing runs and nothing is stored (the
   * default store would be .spe/state.db). */
  struct cli_result r;
  const char *past[] = {"run", "past.json", NULL};
  assert_run(&r, dir, past, 2);
  assert_string_equal(r.err, "spe: past.json: job file is 67108865 bytes; the limit is 67108864\n");
  assert_int_equal(r.out_len, 0);
  assert_false(exists(dir, "ran"));
  assert_false(exists(dir, ".spe"));
  cli_result_free(&r);

  /* Through a pipe the size is not known up front: it is read up to the
   * limit. */
  char *cmd = NULL;
  assert_true(asprintf(&cmd, "cd '%s' && cat past.json | '%s' validate - 2>pipe.err", dir,
                       cli_bin()) > 0);
  int st = system(cmd);
  free(cmd);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 2);
  char *path = cli_path_join(dir, "pipe.err");
  char *err = cli_read_file(path, NULL);
  assert_string_equal(err, "spe: -: job file is more than 67108864 bytes; the limit is 67108864\n");
  free(err);
  free(path);

  /* Exactly at the limit: it runs. */
  const char *at[] = {"run", "at.json", NULL};
  assert_run(&r, dir, at, 0);
  assert_true(exists(dir, "ran"));
  cli_result_free(&r);
  remove_file(dir, "at.json"); /* 128 MiB is not worth keeping */
  remove_file(dir, "past.json");
  free(dir);
}

static const char name_job[] =
    "{\"name\":\"j\",\"tasks\":[{\"name\":\"%s\",\"cmd\":\"touch ran\"}]}";

static void task_name_at_the_edge(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("limits-name");
  char name[SPE_MAX_NAME_BYTES + 2];
  memset(name, 'n', sizeof name);
  name[SPE_MAX_NAME_BYTES + 1] = '\0';
  char *text = NULL;
  assert_true(asprintf(&text, name_job, name) > 0);
  char *path = cli_path_join(dir, "long.json");
  cli_write_file(path, text);
  free(path);
  free(text);

  struct cli_result r;
  const char *run[] = {"run", "--state", "memory:", "long.json", NULL};
  assert_run(&r, dir, run, 2);
  assert_string_equal(r.err,
                      "spe: long.json: tasks[0]: \"name\" is 1025 bytes; the limit is 1024\n");
  assert_false(exists(dir, "ran"));
  cli_result_free(&r);

  name[SPE_MAX_NAME_BYTES] = '\0';
  assert_true(asprintf(&text, name_job, name) > 0);
  path = cli_path_join(dir, "long.json");
  cli_write_file(path, text);
  free(path);
  free(text);
  assert_run(&r, dir, run, 0);
  assert_true(exists(dir, "ran"));
  cli_result_free(&r);
  free(dir);
}

/* The default result limit, 16 MiB, through `spe run`: a task that prints
 * exactly that much succeeds with all of it, one byte more fails naming the
 * limit. */
static void result_size_at_the_default_limit(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("limits-result");
  char *path = cli_path_join(dir, "r.json");
  cli_write_file(path, "{\"name\":\"r\",\"tasks\":["
                       "{\"name\":\"at\",\"cmd\":\"head -c 16777216 /dev/zero | tr '\\\\0' x\"},"
                       "{\"name\":\"past\",\"cmd\":\"head -c 16777217 /dev/zero | tr '\\\\0' x\"}"
                       "]}");
  free(path);
  struct cli_result r;
  const char *run[] = {"run", "--state", "memory:", "--json", "r.json", NULL};
  assert_run(&r, dir, run, 1);
  json_error_t jerr;
  json_t *job = json_loads(r.out, 0, &jerr);
  if (job == NULL) fail_msg("--json output: %s", jerr.text);
  json_t *tasks = json_object_get(job, "tasks");
  json_t *at = json_object_get(tasks, "at"), *past = json_object_get(tasks, "past");
  assert_string_equal(json_string_value(json_object_get(at, "status")), "succeeded");
  assert_int_equal(json_string_length(json_object_get(at, "result")), SPE_DEFAULT_MAX_RESULT);
  assert_string_equal(json_string_value(json_object_get(past, "status")), "failed");
  json_t *err = json_object_get(past, "error");
  assert_string_equal(json_string_value(json_object_get(err, "kind")), "error");
  assert_string_equal(json_string_value(json_object_get(err, "message")),
                      "stdout passed the result limit of 16777216 bytes (max_result_bytes)");
  json_decref(job);
  cli_result_free(&r);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(job_file_size_at_the_edge),
      cmocka_unit_test(task_name_at_the_edge),
      cmocka_unit_test(result_size_at_the_default_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
