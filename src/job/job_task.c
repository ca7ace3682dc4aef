/*
 * One task of a job description (SPEC §1): its name first, so that every later
 * message can name the task, then unknown fields (a typo must not silently
 * change a job), then the body and the optional fields. `enables` is only
 * checked for shape here; its names are resolved once every task is known
 * (job_graph.c).
 */
#include "job/job_internal.h"

#include <string.h>

#include "base/limits.h"
#include "spe.h"

enum {
  F_NAME, F_CMD, F_ARGV, F_EXEC, F_ENABLES, F_TIMEOUT, F_RETRIES, F_ARG, F_CWD, F_ENV,
  F_DESCRIPTION, F_COUNT
};
static const char *const task_fields[F_COUNT] = {
    [F_NAME] = "name",       [F_CMD] = "cmd",         [F_ARGV] = "argv",
    [F_EXEC] = "exec",       [F_ENABLES] = "enables", [F_TIMEOUT] = "timeout",
    [F_RETRIES] = "retries", [F_ARG] = "arg",         [F_CWD] = "cwd",
    [F_ENV] = "env",         [F_DESCRIPTION] = "description"};

static int parse_name(struct job_parse *p, uint32_t i, json_t *v) {
  if (v == NULL) return spe__job_error(p, i, "missing \"name\"");
  if (!json_is_string(v) || json_string_length(v) == 0)
    return spe__job_error(p, i, "\"name\" must be a non-empty string");
  if (spe__job_has_nul(v))
    return spe__job_error(p, i, "\"name\" must not contain a NUL character");
  int rc = spe__job_check_name(p, i, json_string_length(v));
  if (rc < 0) return rc;
  struct task_def *t = &p->def->tasks[i];
  t->name = spe__job_strings_dup(p->def->strings, json_string_value(v), json_string_length(v));
  if (t->name == NULL) return spe__job_nomem(p);
  if (spe__job_names_add(&p->names, t->name, i) >= 0) {
    struct job_quoted q;
    return spe__job_error(p, JOB_LEVEL, "duplicate task name %s",
                          spe__job_quote(&q, t->name, strlen(t->name)));
  }
  return 0;
}

static int parse_argv(struct job_parse *p, uint32_t i, json_t *v) {
  size_t n = json_is_array(v) ? json_array_size(v) : 0;
  if (n == 0) return spe__job_error(p, i, "\"argv\" must be a non-empty array of strings");
  char **argv = spe__job_strings_alloc(p->def->strings, (n + 1) * sizeof *argv);
  if (argv == NULL) return spe__job_nomem(p);
  for (size_t k = 0; k < n; k++) {
    json_t *s = json_array_get(v, k);
    if (!json_is_string(s))
      return spe__job_error(p, i, "\"argv\" must be a non-empty array of strings");
    if (k == 0 && json_string_length(s) == 0)
      return spe__job_error(p, i, "\"argv\"[0], the program, must not be empty");
    if (spe__job_has_nul(s))
      return spe__job_error(p, i, "\"argv\"[%zu] must not contain a NUL character", k);
    if (json_string_length(s) > p->lim->arg_bytes)
      return spe__job_limit_error(p, i, "\"argv\"[%zu] is %zu bytes; the limit is %zu", k,
                                  json_string_length(s), p->lim->arg_bytes);
    argv[k] = spe__job_strings_dup(p->def->strings, json_string_value(s), json_string_length(s));
    if (argv[k] == NULL) return spe__job_nomem(p);
  }
  argv[n] = NULL;
  p->def->tasks[i].argv = argv;
  return 0;
}

static int parse_body(struct job_parse *p, uint32_t i, json_t **f) {
  if ((f[F_CMD] != NULL) + (f[F_ARGV] != NULL) + (f[F_EXEC] != NULL) != 1)
    return spe__job_error(p, i, "needs exactly one of \"cmd\", \"argv\", \"exec\"");
  struct task_def *t = &p->def->tasks[i];
  if (f[F_ARGV] != NULL) {
    t->body = TASK_ARGV;
    return parse_argv(p, i, f[F_ARGV]);
  }
  if (f[F_CMD] != NULL) {
    t->body = TASK_CMD;
    int rc = spe__job_get_string(p, i, "cmd", f[F_CMD], 1, &t->cmd);
    if (rc == 0 && json_string_length(f[F_CMD]) > p->lim->arg_bytes)
      rc = spe__job_limit_error(p, i, "\"cmd\" is %zu bytes; the limit is %zu",
                                json_string_length(f[F_CMD]), p->lim->arg_bytes);
    return rc;
  }
  t->body = TASK_EXEC;
  /* Tasks of a job mostly call one function: one copy of its name, shared
   * by a run of tasks naming it (a million tasks, 5 MB less; and the engine
   * finds the function by a warm name, thread_exec.c). The block store frees
   * it once. */
  const struct task_def *prev = i > 0 ? &p->def->tasks[i - 1] : NULL;
  json_t *v = f[F_EXEC];
  if (prev != NULL && prev->body == TASK_EXEC && p->def->strings != NULL && json_is_string(v) &&
      strlen(prev->cmd) == json_string_length(v) &&
      memcmp(prev->cmd, json_string_value(v), json_string_length(v)) == 0) {
    t->cmd = prev->cmd;
    return 0;
  }
  return spe__job_get_string(p, i, "exec", f[F_EXEC], 1, &t->cmd);
}

static int parse_enables(struct job_parse *p, uint32_t i, json_t *v) {
  if (v == NULL) return 0;
  if (!json_is_array(v)) return spe__job_error(p, i, "\"enables\" must be an array of task names");
  size_t k;
  json_t *s;
  json_array_foreach(v, k, s) {
    if (!json_is_string(s))
      return spe__job_error(p, i, "\"enables\" must be an array of task names");
    if (spe__job_has_nul(s))
      return spe__job_error(p, i, "\"enables\"[%zu] must not contain a NUL character", k);
  }
  p->enables[i] = v;
  return 0;
}

static int parse_timeout(struct job_parse *p, uint32_t i, json_t *v) {
  struct task_def *t = &p->def->tasks[i];
  t->timeout_ms = 0;
  if (v == NULL) return 0;
  if (json_is_integer(v) && json_integer_value(v) > 0) {
    t->timeout_ms = (uint64_t)json_integer_value(v);
    return 0;
  }
  if (json_is_string(v) && json_string_length(v) == strlen("infinity") &&
      memcmp(json_string_value(v), "infinity", strlen("infinity")) == 0)
    return 0;
  return spe__job_error(p, i,
                        "\"timeout\" must be a positive integer (milliseconds) or \"infinity\"");
}

static int parse_retries(struct job_parse *p, uint32_t i, json_t *v) {
  if (v == NULL) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return spe__job_error(p, i, "\"retries\" must be a non-negative integer");
  if (json_integer_value(v) > UINT32_MAX)
    return spe__job_error(p, i, "\"retries\" is too large (at most %u)", UINT32_MAX);
  p->def->tasks[i].retries = (uint32_t)json_integer_value(v);
  return 0;
}

static int parse_arg(struct job_parse *p, uint32_t i, json_t *v) {
  if (v == NULL) return 0;
  /* A document we parsed ourselves dies at the end of the parse, so sharing the
   * subtree is safe; a caller's document may change later, so copy it. */
  v = p->copy_args ? json_deep_copy(v) : json_incref(v);
  if (v == NULL) return spe__job_nomem(p);
  p->def->tasks[i].arg = v;
  return 0;
}

/* What the task's command line and environment weigh against the kernel's
 * ARG_MAX, counted as execve counts them (src/base/limits.h). A `cmd` runs as
 * "sh" "-c" CMD. The job's `env` counts in full even where the task's replaces
 * some of it: the count is a bound. An `exec` task runs no program. */
static int check_command(struct job_parse *p, uint32_t i, size_t env_bytes) {
  const struct task_def *t = &p->def->tasks[i];
  if (t->body == TASK_EXEC) return 0;
  size_t n = p->job_env_bytes + env_bytes;
  if (t->body == TASK_CMD) {
    n += strlen("sh") + strlen("-c") + strlen(t->cmd) + 3 * SPE_ARG_OVERHEAD_BYTES;
  } else {
    for (char **a = t->argv; *a != NULL; a++) n += strlen(*a) + SPE_ARG_OVERHEAD_BYTES;
  }
  if (n <= p->lim->command_bytes) return 0;
  return spe__job_limit_error(p, i, "the command line and environment take %zu bytes (as "
                              "execve counts them); the limit is %zu", n,
                              p->lim->command_bytes);
}

int spe__job_parse_task(struct job_parse *p, uint32_t i, json_t *task) {
  if (!json_is_object(task)) return spe__job_error(p, i, "a task must be a JSON object");
  json_t *f[F_COUNT];
  struct job_members m = {.values = f};
  spe__job_members(task, task_fields, F_COUNT, &m);
  struct task_def *t = &p->def->tasks[i];
  int rc;
  if ((rc = parse_name(p, i, f[F_NAME])) < 0) return rc;
  if (m.unknown != NULL) return spe__job_unknown_field(p, i, &m);
  if ((rc = parse_body(p, i, f)) < 0) return rc;
  if ((rc = parse_enables(p, i, f[F_ENABLES])) < 0) return rc;
  if ((rc = parse_timeout(p, i, f[F_TIMEOUT])) < 0) return rc;
  if ((rc = parse_retries(p, i, f[F_RETRIES])) < 0) return rc;
  if ((rc = parse_arg(p, i, f[F_ARG])) < 0) return rc;
  if ((rc = spe__job_get_string(p, i, "cwd", f[F_CWD], 1, &t->cwd)) < 0) return rc;
  size_t env_bytes;
  if ((rc = spe__job_get_env(p, i, f[F_ENV], &t->env, &env_bytes)) < 0) return rc;
  if ((rc = check_command(p, i, env_bytes)) < 0) return rc;
  return spe__job_get_string(p, i, "description", f[F_DESCRIPTION], 0, &t->description);
}
