/* spe_validate_text: a job's validation and plan, without an executor. */
#include <stdlib.h>

#include "base/msg.h"
#include "job/job.h"
#include "plan/plan.h"
#include "spe.h"

/* The plan's levels as a JSON array of arrays of task names. */
static json_t *levels_json(const struct job_def *def, const struct plan *plan) {
  json_t *levels = json_array();
  for (uint32_t k = 0; levels != NULL && k < plan->nlevels; k++) {
    json_t *level = json_array();
    if (level == NULL || json_array_append_new(levels, level) < 0) {
      json_decref(levels);
      return NULL;
    }
    for (uint32_t at = plan->level_off[k]; at < plan->level_off[k + 1]; at++) {
      if (json_array_append_new(level, json_string(def->tasks[plan->order[at]].name)) < 0) {
        json_decref(levels);
        return NULL;
      }
    }
  }
  return levels;
}

SPE_EXPORT int spe_validate_text(const char *text, size_t len, json_t **levels_out,
                                 char **msg) {
  if (msg != NULL) *msg = NULL;
  if (levels_out == NULL) {
    spe__msg_set(msg, "levels_out must not be NULL");
    return SPE_EINVAL;
  }
  *levels_out = NULL;
  struct job_def *def;
  int rc = spe__job_parse_text(text, len, &def, msg);
  if (rc < 0) return rc;
  struct plan plan;
  /* The parse already proved the graph acyclic, so only memory can fail. */
  rc = spe__plan_build(def->ntasks, def->succ_off, def->succ, &plan, NULL, NULL);
  if (rc == 0) {
    *levels_out = levels_json(def, &plan);
    if (*levels_out == NULL) rc = SPE_ENOMEM;
    spe__plan_free(&plan);
  }
  if (rc < 0) spe__msg_set(msg, "%s", spe_strerror(rc));
  spe__job_free(def);
  return rc;
}
