/*
 * Every limit of docs/limits.md at its edge: exactly at the limit is accepted,
 * one past is refused with a message that names the limit and the offending
 * thing, and nothing already stored is lost.
 *
 * The job model's limits are a parameter (struct job_limits), so the tasks and
 * dependency limits are tried at their edge with small values; the real
 * constants are tried where that is cheap (one past the task limit is refused
 * before any task is read; names and command lines are small). A job file at
 * the real 64 MiB limit is tried end to end in test_limits_cli.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/limits.h"
#include "job/job.h"
#include "spe.h"
#include "support/api_util.h"

/* ---- helpers ---------------------------------------------------------------- */

/* n copies of c, NUL-terminated. */
static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* Free a message and forget it: the API frees what *msg held before. */
static void drop(char **msg) {
  free(*msg);
  *msg = NULL;
}

static json_t *cmd_task(const char *name, const char *cmd) {
  return json_pack("{s:s, s:s}", "name", name, "cmd", cmd);
}

/* {"name": name, "tasks": [task]}; steals `task`. */
static json_t *one_task_job(const char *name, json_t *task) {
  return json_pack("{s:s, s:[o]}", "name", name, "tasks", task);
}

static char *dump(const json_t *doc) {
  char *text = json_dumps(doc, JSON_COMPACT);
  assert_non_null(text);
  return text;
}

/* The job is accepted by spe_validate_text(), under the default limits. */
static void assert_valid(const json_t *doc) {
  char *text = dump(doc), *msg = NULL;
  json_t *levels = NULL;
  int rc = spe_validate_text(text, strlen(text), &levels, &msg);
  if (rc != 0) fail_msg("refused (%s): %s", spe_err_name(rc), msg ? msg : "");
  json_decref(levels);
  free(text);
}

/* The job is refused by spe_validate_text() with SPE_ELIMIT and exactly `want`. */
static void assert_limit(const json_t *doc, const char *want) {
  char *text = dump(doc), *msg = NULL;
  json_t *levels = NULL;
  int rc = spe_validate_text(text, strlen(text), &levels, &msg);
  if (rc != SPE_ELIMIT) fail_msg("%s (want SPE_ELIMIT): %s", spe_err_name(rc), msg ? msg : "");
  assert_null(levels);
  assert_non_null(msg);
  assert_string_equal(msg, want);
  drop(&msg);
  free(text);
}

/* The same with a parse under `lim`: 0, or SPE_ELIMIT and `want`. */
static void parse_under(const json_t *doc, const struct job_limits *lim, const char *want) {
  char *text = dump(doc), *msg = NULL;
  struct job_def *def = NULL;
  int rc = spe__job_parse_text_limits(text, strlen(text), lim, &def, &msg);
  if (want == NULL) {
    if (rc != 0) fail_msg("refused (%s): %s", spe_err_name(rc), msg ? msg : "");
    assert_non_null(def);
  } else {
    if (rc != SPE_ELIMIT) fail_msg("%s (want SPE_ELIMIT): %s", spe_err_name(rc), msg ? msg : "");
    assert_null(def);
    assert_string_equal(msg, want);
  }
  spe__job_free(def);
  drop(&msg);
  free(text);
}

/* A chain job t0 -> t1 -> ... of n tasks, each also enabling the last task
 * (so n tasks and 2n - 3 distinct dependencies for n >= 3), with `dups`
 * repeated entries in t0's list, which count once. */
static json_t *chain_job(int n, int dups) {
  json_t *tasks = json_array();
  for (int i = 0; i < n; i++) {
    char name[32], next[32], last[32];
    snprintf(name, sizeof name, "t%d", i);
    snprintf(next, sizeof next, "t%d", i + 1);
    snprintf(last, sizeof last, "t%d", n - 1);
    json_t *t = cmd_task(name, "true");
    json_t *en = json_array();
    if (i + 1 < n) json_array_append_new(en, json_string(next));
    if (i + 2 < n) json_array_append_new(en, json_string(last));
    for (int d = 0; i == 0 && d < dups && n > 1; d++) json_array_append_new(en, json_string(next));
    json_object_set_new(t, "enables", en);
    json_array_append_new(tasks, t);
  }
  return json_pack("{s:s, s:o}", "name", "chain", "tasks", tasks);
}

/* ---- the description's size --------------------------------------------------- */

static void text_size_at_the_edge(void **state) {
  (void)state;
  /* Small limit: the same job padded with spaces to exactly the limit, then
   * one byte more. */
  const char *job = "{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"true\"}]}";
  struct job_limits lim = spe__job_limits_default;
  lim.text_bytes = 100;
  char text[102];
  memset(text, ' ', sizeof text);
  memcpy(text, job, strlen(job));
  struct job_def *def = NULL;
  char *msg = NULL;
  assert_int_equal(spe__job_parse_text_limits(text, 100, &lim, &def, &msg), 0);
  spe__job_free(def);
  assert_int_equal(spe__job_parse_text_limits(text, 101, &lim, &def, &msg), SPE_ELIMIT);
  assert_null(def);
  assert_string_equal(msg, "the job description is 101 bytes; the limit is 100");
  drop(&msg);

  /* The real limit, one past, through the API: refused before it is parsed. */
  size_t len = SPE_MAX_JOB_BYTES + 1;
  char *big = repeat(' ', len);
  memcpy(big, job, strlen(job));
  json_t *levels = NULL;
  assert_int_equal(spe_validate_text(big, len, &levels, &msg), SPE_ELIMIT);
  assert_string_equal(msg, "the job description is 67108865 bytes; the limit is 67108864");
  drop(&msg);

  struct harness h;
  h_open(&h, 1);
  char id[SPE_ID_SIZE];
  assert_int_equal(spe_submit_text(h.ex, big, len, id, &msg), SPE_ELIMIT);
  assert_string_equal(msg, "the job description is 67108865 bytes; the limit is 67108864");
  drop(&msg);
  assert_int_equal(spe_submit_ex(h.ex, big, len, SPE_SUBMIT_RESUME, id, NULL, &msg),
                   SPE_ELIMIT);
  drop(&msg);
  /* Nothing was stored: the next job is the first one published. */
  json_t *done = h_run(&h, job);
  assert_string_equal(h_job_status(done), "succeeded");
  json_decref(done);
  assert_int_equal(h_await_events(&h, NULL, "job_finished", 1, 10000), 1);
  assert_int_equal(h_count_events(&h, NULL, "job_submitted", NULL), 1);
  h_close(&h);
  free(big);
}

/* A document given already parsed is measured by its canonical text. */
static void canonical_size_at_the_edge(void **state) {
  (void)state;
  json_t *doc = one_task_job("j", cmd_task("a", "true"));
  struct job_def *def = NULL;
  assert_int_equal(spe__job_parse_json_limits(doc, &spe__job_limits_none, &def, NULL), 0);
  struct job_limits lim = spe__job_limits_default;
  lim.text_bytes = def->canonical_len;
  spe__job_free(def);
  char *msg = NULL;
  assert_int_equal(spe__job_parse_json_limits(doc, &lim, &def, &msg), 0);
  spe__job_free(def);
  lim.text_bytes--;
  assert_int_equal(spe__job_parse_json_limits(doc, &lim, &def, &msg), SPE_ELIMIT);
  char want[128];
  snprintf(want, sizeof want,
           "the job description is %zu bytes (as canonical JSON); the limit is %zu",
           lim.text_bytes + 1, lim.text_bytes);
  assert_string_equal(msg, want);
  drop(&msg);
  json_decref(doc);
}

/* ---- tasks and dependencies --------------------------------------------------- */

static void tasks_at_the_edge(void **state) {
  (void)state;
  struct job_limits lim = spe__job_limits_default;
  lim.tasks = 5;
  json_t *at = chain_job(5, 0), *past = chain_job(6, 0);
  parse_under(at, &lim, NULL);
  parse_under(past, &lim, "\"tasks\" has 6 tasks; the limit is 5");
  json_decref(at);
  json_decref(past);

  /* The real limit, one past: counted before any task is read, so a million
   * placeholders are enough. */
  json_t *tasks = json_array();
  for (uint32_t i = 0; i < SPE_MAX_TASKS + 1; i++) json_array_append_new(tasks, json_null());
  json_t *doc = json_pack("{s:s, s:o}", "name", "big", "tasks", tasks);
  struct job_def *def = NULL;
  char *msg = NULL;
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), SPE_ELIMIT);
  assert_string_equal(msg, "\"tasks\" has 1000001 tasks; the limit is 1000000");
  drop(&msg);
  /* At the limit, the count passes and the first placeholder is what is
   * refused: an invalid task, not a limit. */
  json_array_remove(tasks, 0);
  assert_int_equal(spe__job_parse_json(doc, &def, &msg), SPE_EJOB);
  assert_string_equal(msg, "tasks[0]: a task must be a JSON object");
  drop(&msg);
  json_decref(doc);
}

static void edges_at_the_edge(void **state) {
  (void)state;
  struct job_limits lim = spe__job_limits_default;
  lim.edges = 7; /* chain_job(5): 4 + 3 dependencies */
  json_t *at = chain_job(5, 3), *past = chain_job(6, 0);
  parse_under(at, &lim, NULL); /* t0's repeated entries count once */
  parse_under(past, &lim,
              "the job has 9 dependencies (distinct \"enables\" entries); the limit is 7");
  json_decref(at);
  json_decref(past);
}

/* ---- names ---------------------------------------------------------------------- */

static void names_at_the_edge(void **state) {
  (void)state;
  char *at = repeat('n', SPE_MAX_NAME_BYTES), *past = repeat('n', SPE_MAX_NAME_BYTES + 1);

  json_t *doc = one_task_job(at, cmd_task(at, "true"));
  assert_valid(doc);
  json_decref(doc);

  doc = one_task_job("j", cmd_task(past, "true"));
  assert_limit(doc, "tasks[0]: \"name\" is 1025 bytes; the limit is 1024");
  /* A job read back from the store is held to no limit. */
  parse_under(doc, &spe__job_limits_none, NULL);
  json_decref(doc);

  doc = one_task_job(past, cmd_task("a", "true"));
  assert_limit(doc, "\"name\" is 1025 bytes; the limit is 1024");
  json_decref(doc);

  /* Submitting it is refused the same way, and nothing is stored. */
  struct harness h;
  h_open(&h, 1);
  doc = one_task_job("j", cmd_task(past, "true"));
  char id[SPE_ID_SIZE], *msg = NULL;
  assert_int_equal(spe_submit_json(h.ex, doc, id, &msg), SPE_ELIMIT);
  assert_string_equal(msg, "tasks[0]: \"name\" is 1025 bytes; the limit is 1024");
  drop(&msg);
  char *text = dump(doc);
  assert_int_equal(spe_submit_text(h.ex, text, strlen(text), id, &msg), SPE_ELIMIT);
  drop(&msg);
  free(text);
  json_decref(doc);
  json_t *ok = h_run(&h, "{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"true\"}]}");
  json_decref(ok);
  assert_int_equal(h_await_events(&h, NULL, "job_finished", 1, 10000), 1);
  assert_int_equal(h_count_events(&h, NULL, "job_submitted", NULL), 1);
  h_close(&h);
  free(at);
  free(past);
}

/* ---- command lines and environments ---------------------------------------- */

/* A `cmd`, an `argv` element and an `env` entry of exactly the kernel's
 * per-string limit are accepted and really run; one byte more is refused. */
static void arg_strings_at_the_edge(void **state) {
  (void)state;
  const size_t at = SPE_MAX_ARG_STRING_BYTES;
  struct harness h;
  h_open(&h, 2);

  /* cmd: "printf ok #xxx...": a comment pads it. */
  char *cmd = repeat('x', at);
  memcpy(cmd, "printf ok #", strlen("printf ok #"));
  json_t *doc = one_task_job("j", cmd_task("t", cmd));
  char *text = dump(doc);
  json_t *job = h_run(&h, text);
  assert_string_equal(h_task_status(job, "t"), "succeeded");
  assert_string_equal(json_string_value(h_task_result(job, "t")), "ok");
  json_decref(job);
  free(text);
  json_decref(doc);
  char *cmd_past = repeat('x', at + 1);
  memcpy(cmd_past, "printf ok #", strlen("printf ok #"));
  doc = one_task_job("j", cmd_task("t", cmd_past));
  assert_limit(doc, "task \"t\": \"cmd\" is 131072 bytes; the limit is 131071");
  json_decref(doc);

  /* argv[1] */
  char *arg = repeat('a', at), *arg_past = repeat('a', at + 1);
  doc = json_pack("{s:s, s:[{s:s, s:[s, s, s, s]}]}", "name", "j", "tasks", "name", "t", "argv",
                  "sh", "-c", "printf %s ${#0}", arg);
  text = dump(doc);
  job = h_run(&h, text);
  assert_string_equal(h_task_status(job, "t"), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "t")), at);
  json_decref(job);
  free(text);
  json_decref(doc);
  doc = json_pack("{s:s, s:[{s:s, s:[s, s, s, s]}]}", "name", "j", "tasks", "name", "t", "argv",
                  "sh", "-c", "printf %s ${#0}", arg_past);
  assert_limit(doc, "task \"t\": \"argv\"[3] is 131072 bytes; the limit is 131071");
  json_decref(doc);

  /* env: "V=" and the value make the entry. */
  doc = json_pack("{s:s, s:[{s:s, s:s, s:{s:s}}]}", "name", "j", "tasks", "name", "t", "cmd",
                  "printf %s ${#V}", "env", "V", arg + 2);
  text = dump(doc);
  job = h_run(&h, text);
  assert_string_equal(h_task_status(job, "t"), "succeeded");
  assert_int_equal(json_integer_value(h_task_result(job, "t")), at - 2);
  json_decref(job);
  free(text);
  json_decref(doc);
  doc = json_pack("{s:s, s:{s:s}, s:[{s:s, s:s}]}", "name", "j", "env", "V", arg_past + 2,
                  "tasks", "name", "t", "cmd", "true");
  assert_limit(doc, "\"env\" entry \"V\" is 131072 bytes (as KEY=VALUE); the limit is 131071");
  json_decref(doc);

  h_close(&h);
  free(cmd);
  free(cmd_past);
  free(arg);
  free(arg_past);
}

/* argv + env of one task as execve counts them: each string's bytes, its NUL
 * and its pointer. */
static json_t *argv_job(size_t total, const char *job_env_value) {
  const size_t cost = SPE_ARG_OVERHEAD_BYTES;
  json_t *argv = json_pack("[s]", "true");
  size_t used = strlen("true") + cost;
  if (job_env_value != NULL) used += strlen("E=") + strlen(job_env_value) + cost;
  while (used < total) {
    size_t len = total - used - cost;
    if (len > 100000) len = 100000;
    char *s = repeat('a', len);
    json_array_append_new(argv, json_string(s));
    free(s);
    used += len + cost;
  }
  assert_int_equal(used, total);
  json_t *doc = json_pack("{s:s, s:[{s:s, s:o}]}", "name", "j", "tasks", "name", "t", "argv",
                          argv);
  if (job_env_value != NULL)
    json_object_set_new(doc, "env", json_pack("{s:s}", "E", job_env_value));
  return doc;
}

static void command_size_at_the_edge(void **state) {
  (void)state;
  json_t *at = argv_job(SPE_MAX_COMMAND_BYTES, NULL);
  assert_valid(at);
  /* And the kernel takes it. */
  struct harness h;
  h_open(&h, 1);
  char *text = dump(at);
  json_t *job = h_run(&h, text);
  assert_string_equal(h_task_status(job, "t"), "succeeded");
  json_decref(job);
  free(text);
  h_close(&h);
  json_decref(at);

  json_t *past = argv_job(SPE_MAX_COMMAND_BYTES + 1, NULL);
  assert_limit(past, "task \"t\": the command line and environment take 1048577 bytes (as "
                     "execve counts them); the limit is 1048576");
  json_decref(past);
  /* The job's env counts for each of its tasks. */
  past = argv_job(SPE_MAX_COMMAND_BYTES + 1, "value");
  assert_limit(past, "task \"t\": the command line and environment take 1048577 bytes (as "
                     "execve counts them); the limit is 1048576");
  json_decref(past);
}

static json_t *env_of(size_t n) {
  json_t *env = json_object();
  for (size_t i = 0; i < n; i++) {
    char key[32];
    snprintf(key, sizeof key, "V%zu", i);
    json_object_set_new(env, key, json_string("1"));
  }
  return env;
}

static void env_vars_at_the_edge(void **state) {
  (void)state;
  json_t *task = cmd_task("t", "true");
  json_object_set_new(task, "env", env_of(SPE_MAX_ENV_VARS));
  json_t *doc = one_task_job("j", task);
  json_object_set_new(doc, "env", env_of(SPE_MAX_ENV_VARS));
  assert_valid(doc);
  json_object_set_new(task, "env", env_of(SPE_MAX_ENV_VARS + 1));
  assert_limit(doc, "task \"t\": \"env\" has 1025 variables; the limit is 1024");
  json_object_set_new(doc, "env", env_of(SPE_MAX_ENV_VARS + 1));
  assert_limit(doc, "\"env\" has 1025 variables; the limit is 1024");
  json_decref(doc);
}

/* ---- JSON depth ----------------------------------------------------------------- */

/* A job whose task `arg` is `depth` nested arrays. */
static char *nested_arg_job(int depth) {
  const char *head = "{\"name\":\"j\",\"tasks\":[{\"name\":\"t\",\"cmd\":\"true\",\"arg\":";
  size_t n = strlen(head) + 2 * (size_t)depth + 4;
  char *text = malloc(n);
  assert_non_null(text);
  char *p = text + sprintf(text, "%s", head);
  for (int i = 0; i < depth; i++) *p++ = '[';
  for (int i = 0; i < depth; i++) *p++ = ']';
  strcpy(p, "}]}");
  return text;
}

/* jansson's parser nests at most 2048 deep; the job's object, its tasks array
 * and the task object take three of them. */
static void json_depth_at_the_edge(void **state) {
  (void)state;
  char *at = nested_arg_job(SPE_MAX_JSON_DEPTH - 3), *past = nested_arg_job(SPE_MAX_JSON_DEPTH - 2);
  json_t *levels = NULL;
  char *msg = NULL;
  assert_int_equal(spe_validate_text(at, strlen(at), &levels, &msg), 0);
  json_decref(levels);
  assert_int_equal(spe_validate_text(past, strlen(past), &levels, &msg), SPE_EJOB);
  assert_non_null(strstr(msg, "maximum parsing depth reached"));
  drop(&msg);
  free(at);
  free(past);
}

/* ---- what a command gives back --------------------------------------------------- */

static void result_size_at_the_edge(void **state) {
  (void)state;
  spe_options o;
  spe_options_init(&o);
  assert_int_equal(o.max_result_bytes, SPE_DEFAULT_MAX_RESULT);
  o.workers = 2;
  o.max_result_bytes = 1000;
  struct harness h;
  h_open_opts(&h, &o);
  json_t *job = h_run(&h, "{\"name\":\"j\",\"tasks\":["
                          "{\"name\":\"at\","
                          "\"cmd\":\"head -c 1000 /dev/zero | tr '\\\\0' x\"},"
                          "{\"name\":\"past\","
                          "\"cmd\":\"head -c 1001 /dev/zero | tr '\\\\0' x\"}]}");
  assert_string_equal(h_task_status(job, "at"), "succeeded");
  assert_int_equal(json_string_length(h_task_result(job, "at")), 1000);
  assert_string_equal(h_task_status(job, "past"), "failed");
  assert_string_equal(h_task_error_kind(job, "past"), "error");
  json_t *err = json_object_get(json_object_get(json_object_get(job, "tasks"), "past"), "error");
  assert_string_equal(json_string_value(json_object_get(err, "message")),
                      "stdout passed the result limit of 1000 bytes (max_result_bytes)");
  json_decref(job);
  h_close(&h);
}

static const char *stderr_of(const json_t *job, const char *task) {
  json_t *err = json_object_get(json_object_get(json_object_get(job, "tasks"), task), "error");
  const char *s = json_string_value(json_object_get(err, "stderr"));
  assert_non_null(s);
  return s;
}

static void stderr_kept_at_the_edge(void **state) {
  (void)state;
  struct harness h;
  h_open(&h, 2);
  /* 4096 bytes: all kept. 4097 (an "a" then 4096 "b"): the last 4096. */
  json_t *job = h_run(&h, "{\"name\":\"j\",\"tasks\":["
                          "{\"name\":\"at\",\"cmd\":\"head -c 4096 /dev/zero | tr '\\\\0' e >&2; "
                          "exit 1\"},"
                          "{\"name\":\"past\",\"cmd\":\"printf a >&2; head -c 4096 /dev/zero | "
                          "tr '\\\\0' b >&2; exit 1\"}]}");
  char *es = repeat('e', SPE_STDERR_KEEP), *bs = repeat('b', SPE_STDERR_KEEP);
  assert_int_equal(SPE_STDERR_KEEP, 4096);
  assert_string_equal(stderr_of(job, "at"), es);
  assert_string_equal(stderr_of(job, "past"), bs);
  free(es);
  free(bs);
  json_decref(job);
  h_close(&h);
}

/* ---- unfinished jobs ------------------------------------------------------------ */

static const char small_job[] = "{\"name\":\"j\",\"tasks\":[{\"name\":\"a\",\"cmd\":\"true\"}]}";

static void submit_ok(spe_executor *ex, char id[SPE_ID_SIZE]) {
  char *msg = NULL;
  int rc = spe_submit_text(ex, small_job, strlen(small_job), id, &msg);
  if (rc != 0) fail_msg("submit: %s: %s", spe_err_name(rc), msg ? msg : "");
}

static void assert_refused(spe_executor *ex, const char *want) {
  char id[SPE_ID_SIZE], *msg = NULL;
  assert_int_equal(spe_submit_text(ex, small_job, strlen(small_job), id, &msg), SPE_EBUSY);
  assert_string_equal(msg, want);
  drop(&msg);
}

static void assert_status(spe_executor *ex, const char *id, const char *want) {
  json_t *job = NULL;
  assert_int_equal(spe_job_get(ex, id, &job, NULL), 0);
  assert_string_equal(h_job_status(job), want);
  json_decref(job);
}

static void unfinished_jobs_at_the_edge(void **state) {
  (void)state;
  spe_options o;
  spe_options_init(&o);
  assert_int_equal(o.max_unfinished_jobs, SPE_DEFAULT_MAX_UNFINISHED_JOBS);
  assert_int_equal(o.max_unfinished_jobs, 100000);
  o.workers = 1;
  o.max_unfinished_jobs = 3;
  struct harness h;
  h_open_opts(&h, &o);
  char ids[3][SPE_ID_SIZE];
  for (int i = 0; i < 3; i++) submit_ok(h.ex, ids[i]);
  assert_refused(h.ex, "too many unfinished jobs (3; the limit is 3); wait for some to finish");
  /* The jobs there are untouched; once one finishes, a submit goes through. */
  for (int i = 0; i < 3; i++) assert_status(h.ex, ids[i], "submitted");
  assert_int_equal(spe_start(h.ex, ids[0], NULL), 0);
  assert_int_equal(spe_wait(h.ex, ids[0], 30000), 0);
  assert_status(h.ex, ids[0], "succeeded");
  char more[SPE_ID_SIZE];
  submit_ok(h.ex, more);
  assert_refused(h.ex, "too many unfinished jobs (3; the limit is 3); wait for some to finish");
  /* A cancelled job is finished too. */
  assert_int_equal(spe_cancel(h.ex, ids[1], NULL), 0);
  assert_int_equal(spe_wait(h.ex, ids[1], 30000), 0);
  submit_ok(h.ex, more);
  h_close(&h);
}

/* Jobs recovered from the store count against the limit but are never
 * refused: a lower limit on the next open loses none of them. */
static void recovered_jobs_are_kept_past_the_limit(void **state) {
  (void)state;
  const char *tmp = getenv("SPE_TEST_TMP");
  assert_non_null(tmp);
  char dir[4096], url[4200];
  snprintf(dir, sizeof dir, "%s/limits", tmp);
  char *cmd = NULL;
  assert_true(asprintf(&cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir) > 0);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir);

  spe_options o;
  spe_options_init(&o);
  o.workers = 1;
  o.store_url = url;
  struct harness h;
  h_open_opts(&h, &o);
  char ids[3][SPE_ID_SIZE];
  for (int i = 0; i < 3; i++) submit_ok(h.ex, ids[i]);
  h_close(&h);

  o.max_unfinished_jobs = 2;
  h_open_opts(&h, &o);
  for (int i = 0; i < 3; i++) assert_status(h.ex, ids[i], "submitted");
  assert_refused(h.ex, "too many unfinished jobs (3; the limit is 2); wait for some to finish");
  for (int i = 0; i < 2; i++) {
    assert_int_equal(spe_start(h.ex, ids[i], NULL), 0);
    assert_int_equal(spe_wait(h.ex, ids[i], 30000), 0);
  }
  char more[SPE_ID_SIZE];
  submit_ok(h.ex, more);
  assert_refused(h.ex, "too many unfinished jobs (2; the limit is 2); wait for some to finish");
  h_close(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(text_size_at_the_edge),
      cmocka_unit_test(canonical_size_at_the_edge),
      cmocka_unit_test(tasks_at_the_edge),
      cmocka_unit_test(edges_at_the_edge),
      cmocka_unit_test(names_at_the_edge),
      cmocka_unit_test(arg_strings_at_the_edge),
      cmocka_unit_test(command_size_at_the_edge),
      cmocka_unit_test(env_vars_at_the_edge),
      cmocka_unit_test(json_depth_at_the_edge),
      cmocka_unit_test(result_size_at_the_edge),
      cmocka_unit_test(stderr_kept_at_the_edge),
      cmocka_unit_test(unfinished_jobs_at_the_edge),
      cmocka_unit_test(recovered_jobs_are_kept_past_the_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
