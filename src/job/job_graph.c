/*
 * The job's graph: `enables` names resolved to task indexes through the name
 * index, the CSR edge arrays both ways, `priority` and the start ranks, and the
 * cycle check through the planner. Every step is O(tasks + edges).
 *
 * Duplicates inside one `enables` list (and in `priority`) are dropped with a
 * stamp array: stamp[t] holds the last list that named t, so "seen in this list"
 * is one comparison and the array never needs clearing.
 */
#include "job/job_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/msg.h"
#include "plan/plan.h"
#include "spe.h"

static uint32_t *new_stamps(uint32_t n) {
  uint32_t *stamp = malloc((size_t)n * sizeof *stamp);
  if (stamp != NULL) memset(stamp, 0xff, (size_t)n * sizeof *stamp);
  return stamp;
}

/* Resolve task i's `enables` into succ[*len ...), skipping duplicates. */
static int resolve_enables(struct job_parse *p, uint32_t i, uint32_t *stamp, uint32_t *succ,
                           size_t *len) {
  json_t *list = p->enables[i];
  size_t k;
  json_t *s;
  json_array_foreach(list, k, s) {
    int64_t t = spe__job_names_find(&p->names, json_string_value(s), json_string_length(s));
    if (t < 0) {
      struct job_quoted q;
      return spe__job_error(p, i, "enables unknown task %s",
                            spe__job_quote(&q, json_string_value(s), json_string_length(s)));
    }
    if (stamp[t] == i) continue;
    stamp[t] = i;
    succ[(*len)++] = (uint32_t)t;
  }
  return 0;
}

/* Predecessors by counting sort of the successor lists on their target, which
 * leaves each task's predecessors in index order. */
static int build_preds(struct job_def *def) {
  uint32_t n = def->ntasks;
  def->pred_off = calloc((size_t)n + 1, sizeof *def->pred_off);
  def->pred = malloc(((size_t)def->nedges + 1) * sizeof *def->pred);
  if (def->pred_off == NULL || def->pred == NULL) return SPE_ENOMEM;
  for (uint32_t e = 0; e < def->nedges; e++) def->pred_off[def->succ[e] + 1]++;
  for (uint32_t i = 0; i < n; i++) def->pred_off[i + 1] += def->pred_off[i];
  /* Visiting sources in index order fills each range in rising source order. */
  uint32_t *next = malloc(((size_t)n + 1) * sizeof *next);
  if (next == NULL) return SPE_ENOMEM;
  memcpy(next, def->pred_off, ((size_t)n + 1) * sizeof *next);
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t e = def->succ_off[i]; e < def->succ_off[i + 1]; e++)
      def->pred[next[def->succ[e]]++] = i;
  }
  free(next);
  return 0;
}

int spe__job_build_edges(struct job_parse *p) {
  struct job_def *def = p->def;
  uint32_t n = def->ntasks;
  size_t bound = 0;
  for (uint32_t i = 0; i < n; i++) bound += p->enables[i] ? json_array_size(p->enables[i]) : 0;
  if (bound > UINT32_MAX - 1)
    return spe__job_error(p, JOB_LEVEL, "too many dependencies (at most %u)", UINT32_MAX - 1);
  def->succ_off = malloc(((size_t)n + 1) * sizeof *def->succ_off);
  def->succ = malloc((bound + 1) * sizeof *def->succ);
  uint32_t *stamp = new_stamps(n);
  if (def->succ_off == NULL || def->succ == NULL || stamp == NULL) {
    free(stamp);
    return spe__job_nomem(p);
  }
  size_t len = 0;
  int rc = 0;
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    def->succ_off[i] = (uint32_t)len;
    if (p->enables[i] != NULL) rc = resolve_enables(p, i, stamp, def->succ, &len);
  }
  free(stamp);
  if (rc < 0) return rc;
  def->succ_off[n] = (uint32_t)len;
  def->nedges = (uint32_t)len;
  if (len < bound) { /* duplicates were dropped: give the slack back */
    uint32_t *shrunk = realloc(def->succ, (len + 1) * sizeof *def->succ);
    if (shrunk != NULL) def->succ = shrunk;
  }
  return build_preds(def) < 0 ? spe__job_nomem(p) : 0;
}

static int resolve_priority(struct job_parse *p, uint32_t *stamp) {
  struct job_def *def = p->def;
  size_t k;
  json_t *s;
  json_array_foreach(p->priority, k, s) {
    int64_t t = spe__job_names_find(&p->names, json_string_value(s), json_string_length(s));
    if (t < 0) {
      struct job_quoted q;
      return spe__job_error(p, JOB_LEVEL, "\"priority\" names unknown task %s",
                            spe__job_quote(&q, json_string_value(s), json_string_length(s)));
    }
    if (stamp[t] == 0) continue;
    stamp[t] = 0;
    def->priority[def->npriority++] = (uint32_t)t;
  }
  return 0;
}

int spe__job_build_ranks(struct job_parse *p) {
  struct job_def *def = p->def;
  uint32_t n = def->ntasks;
  size_t np = p->priority != NULL ? json_array_size(p->priority) : 0;
  def->rank = malloc((size_t)n * sizeof *def->rank);
  def->priority = malloc((np + 1) * sizeof *def->priority);
  uint32_t *stamp = new_stamps(n);
  if (def->rank == NULL || def->priority == NULL || stamp == NULL) {
    free(stamp);
    return spe__job_nomem(p);
  }
  int rc = p->priority != NULL ? resolve_priority(p, stamp) : 0;
  free(stamp);
  if (rc < 0) return rc;
  /* Priority tasks first, in priority order; then the others in file order. */
  uint32_t next = def->npriority;
  for (uint32_t i = 0; i < n; i++) def->rank[i] = UINT32_MAX;
  for (uint32_t k = 0; k < def->npriority; k++) def->rank[def->priority[k]] = k;
  for (uint32_t i = 0; i < n; i++) {
    if (def->rank[i] == UINT32_MAX) def->rank[i] = next++;
  }
  return 0;
}

/* "dependency cycle: a -> b -> a"; a long cycle shows its first names, how many
 * are left out, and its closing name. */
static int cycle_error(struct job_parse *p, const uint32_t *cycle, uint32_t len) {
  enum { SHOWN = 20 };
  char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&text, &size);
  if (f == NULL) return spe__job_nomem(p);
  fputs("dependency cycle: ", f);
  for (uint32_t k = 0; k < len; k++) {
    if (k > 0) fputs(" -> ", f);
    if (len > SHOWN + 1 && k == SHOWN) {
      fprintf(f, "... (%u more tasks) -> ", len - 1 - SHOWN);
      k = len - 1;
    }
    const char *name = p->def->tasks[cycle[k]].name;
    struct job_quoted q;
    fputs(spe__job_escape(&q, name, strlen(name)), f);
  }
  if (fclose(f) != 0) {
    free(text);
    return spe__job_nomem(p);
  }
  spe__msg_give(p->msg, text);
  return SPE_EJOB;
}

int spe__job_check_cycles(struct job_parse *p) {
  struct job_def *def = p->def;
  struct plan plan;
  uint32_t *cycle = NULL, len = 0;
  int rc = spe__plan_build(def->ntasks, def->succ_off, def->succ, &plan, &cycle, &len);
  if (rc == 0) {
    spe__plan_free(&plan);
    return 0;
  }
  if (rc == SPE_EJOB && cycle != NULL) rc = cycle_error(p, cycle, len);
  else if (rc == SPE_ENOMEM) rc = spe__job_nomem(p);
  else rc = spe__job_error(p, JOB_LEVEL, "dependency cycle");
  free(cycle);
  return rc;
}
