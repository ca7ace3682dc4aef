/*
 * The environment of a command: the process's own environment, then the
 * SPE_* variables of the attempt, then the job's `env`, then the task's `env`.
 * A later entry replaces an earlier one of the same name, keeping the earlier
 * one's position. Names are matched through a small open-addressing hash table,
 * so building it costs O(entries), however large the environment.
 */
#include "exec/cmd_internal.h"
#include "spe.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static size_t count_strings(char *const *v) {
  size_t n = 0;
  if (v != NULL)
    while (v[n] != NULL) n++;
  return n;
}

/* The name part of "NAME=value" (all of it when there is no '='). */
static size_t name_len(const char *s) {
  const char *eq = strchr(s, '=');
  return eq ? (size_t)(eq - s) : strlen(s);
}

static uint64_t name_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

struct env_table {
  uint32_t *slots; /* index into envp + 1; 0 = empty */
  size_t mask;
  char **envp;
  size_t n;
};

static void env_put(struct env_table *t, char *entry) {
  size_t len = name_len(entry);
  for (size_t i = name_hash(entry, len) & t->mask;; i = (i + 1) & t->mask) {
    uint32_t s = t->slots[i];
    if (s == 0) {
      t->envp[t->n] = entry;
      t->slots[i] = (uint32_t)++t->n;
      return;
    }
    char *old = t->envp[s - 1];
    if (name_len(old) == len && memcmp(old, entry, len) == 0) {
      t->envp[s - 1] = entry;
      return;
    }
  }
}

static void env_put_all(struct env_table *t, char *const *v) {
  if (v == NULL) return;
  for (size_t i = 0; v[i] != NULL; i++) env_put(t, v[i]);
}

/* The four SPE_* strings, one after the other in one allocation. */
static char *spe_vars(const struct task_launch *l, char *vars[4]) {
  const char *id = l->job_id ? l->job_id : "";
  const char *job = l->job_name ? l->job_name : "";
  const char *task = l->task_name ? l->task_name : "";
  size_t size = strlen(id) + strlen(job) + strlen(task) + 96;
  char *own = malloc(size);
  if (own == NULL) return NULL;
  char *p = own;
  const char *names[3] = {"SPE_JOB_ID", "SPE_JOB_NAME", "SPE_TASK"};
  const char *values[3] = {id, job, task};
  for (int i = 0; i < 3; i++) {
    vars[i] = p;
    p += sprintf(p, "%s=%s", names[i], values[i]) + 1;
  }
  vars[3] = p;
  sprintf(p, "SPE_ATTEMPT=%" PRIu32, l->attempt);
  return own;
}

int spe__cmd_env_build(const struct task_launch *l, struct cmd_env *env) {
  env->envp = NULL;
  char *vars[5] = {NULL};
  env->own = spe_vars(l, vars);
  if (env->own == NULL) return SPE_ENOMEM;

  size_t total = count_strings(environ) + 4 + count_strings(l->env_job) +
                 count_strings(l->env_task);
  size_t size = 16;
  while (size < 2 * total) size *= 2;
  struct env_table t = {.slots = calloc(size, sizeof(uint32_t)), .mask = size - 1,
                        .envp = malloc((total + 1) * sizeof(char *)), .n = 0};
  if (t.slots == NULL || t.envp == NULL) {
    free(t.slots);
    free(t.envp);
    spe__cmd_env_free(env);
    return SPE_ENOMEM;
  }
  env_put_all(&t, environ);
  env_put_all(&t, vars);
  env_put_all(&t, l->env_job);
  env_put_all(&t, l->env_task);
  t.envp[t.n] = NULL;
  free(t.slots);
  env->envp = t.envp;
  return 0;
}

void spe__cmd_env_free(struct cmd_env *env) {
  free(env->envp);
  free(env->own);
  env->envp = NULL;
  env->own = NULL;
}
