/* Freeing a job_def, and looking a task up by name. */
#include "job/job_internal.h"

#include <stdlib.h>
#include <string.h>

static void free_strv(char **v) {
  if (v == NULL) return;
  for (char **s = v; *s != NULL; s++) free(*s);
  free(v);
}

/* A job_def built by hand has no string store: each string is its own block. */
static void free_loose_strings(struct job_def *def) {
  free(def->name);
  free(def->description);
  free(def->cwd);
  free_strv(def->env);
  for (uint32_t i = 0; def->tasks != NULL && i < def->ntasks; i++) {
    struct task_def *t = &def->tasks[i];
    free(t->name);
    free(t->cmd);
    free_strv(t->argv);
    free(t->cwd);
    free_strv(t->env);
    free(t->description);
  }
}

void spe__job_free(struct job_def *def) {
  if (def == NULL) return;
  if (def->strings != NULL) spe__job_strings_free(def->strings);
  else free_loose_strings(def);
  for (uint32_t i = 0; def->tasks != NULL && i < def->ntasks; i++) json_decref(def->tasks[i].arg);
  free(def->tasks);
  free(def->succ_off);
  free(def->succ);
  free(def->pred_off);
  free(def->pred);
  free(def->priority);
  free(def->rank);
  free(def->canonical);
  free(def);
}

int64_t spe__job_find_task(const struct job_def *def, const char *name) {
  for (uint32_t i = 0; i < def->ntasks; i++) {
    if (strcmp(def->tasks[i].name, name) == 0) return i;
  }
  return -1;
}
