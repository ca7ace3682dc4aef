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

/* Resolving `enables`: a pipeline of lookups. Each name is hashed and its slot
 * prefetched AHEAD lookups before it is resolved, and the name in the slot is
 * prefetched halfway, so that the two cache misses of a lookup overlap with
 * other lookups instead of adding up. Lookups are resolved in file order, so
 * edges and the first unknown name come out as a plain loop would give them. */
enum { AHEAD = 16 };

struct lookup {
  json_t *name;  /* a string of an `enables` list */
  uint32_t hash;
  uint32_t from; /* the task whose list it is */
};

struct resolver {
  struct job_parse *p;
  uint32_t *stamp;   /* stamp[t] == i: task i already enables t */
  uint32_t *succ;    /* the successor array being filled */
  size_t len;        /* edges so far */
  uint32_t next_off; /* the next task whose succ_off is to be set */
  size_t produced, resolved;
  struct lookup ring[AHEAD];
};

static int resolve_next(struct resolver *r) {
  struct lookup *l = &r->ring[r->resolved++ % AHEAD];
  struct job_def *def = r->p->def;
  const char *s = json_string_value(l->name);
  size_t slen = json_string_length(l->name);
  int64_t t = spe__job_names_find(&r->p->names, s, slen, l->hash);
  if (t < 0) {
    struct job_quoted q;
    return spe__job_error(r->p, l->from, "enables unknown task %s", spe__job_quote(&q, s, slen));
  }
  while (r->next_off <= l->from) def->succ_off[r->next_off++] = (uint32_t)r->len;
  if (r->stamp[t] == l->from) return 0;
  r->stamp[t] = l->from;
  r->succ[r->len++] = (uint32_t)t;
  return 0;
}

static int push_lookup(struct resolver *r, json_t *name, uint32_t from) {
  const struct job_names *ix = &r->p->names;
  struct lookup *l = &r->ring[r->produced++ % AHEAD];
  l->name = name;
  l->from = from;
  l->hash = spe__job_names_hash(json_string_value(name), json_string_length(name));
  spe__job_names_prefetch_slot(ix, l->hash);
  if (r->produced - r->resolved > AHEAD / 2)
    spe__job_names_prefetch_name(ix, r->ring[(r->produced - 1 - AHEAD / 2) % AHEAD].hash);
  return r->produced - r->resolved == AHEAD ? resolve_next(r) : 0;
}

static int resolve_all(struct resolver *r) {
  struct job_def *def = r->p->def;
  for (uint32_t i = 0; i < def->ntasks; i++) {
    json_t *list = r->p->enables[i];
    if (list == NULL) continue;
    size_t k;
    json_t *name;
    json_array_foreach(list, k, name) {
      int rc = push_lookup(r, name, i);
      if (rc < 0) return rc;
    }
  }
  while (r->resolved < r->produced) {
    int rc = resolve_next(r);
    if (rc < 0) return rc;
  }
  while (r->next_off <= def->ntasks) def->succ_off[r->next_off++] = (uint32_t)r->len;
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
  struct resolver r = {.p = p, .stamp = stamp, .succ = def->succ};
  int rc = resolve_all(&r);
  free(stamp);
  if (rc < 0) return rc;
  size_t len = r.len;
  if (len > p->lim->edges)
    return spe__job_limit_error(p, JOB_LEVEL, "the job has %zu dependencies (distinct "
                                "\"enables\" entries); the limit is %u", len, p->lim->edges);
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
    const char *name = json_string_value(s);
    size_t len = json_string_length(s);
    int64_t t = spe__job_names_find(&p->names, name, len, spe__job_names_hash(name, len));
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
