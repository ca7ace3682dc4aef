/*
 * A task's input: an object mapping the name of every ancestor (every task
 * upstream of it) to its result, keys in file order (SPEC §2). The results are
 * shared (referenced), not copied.
 *
 * Built on the engine thread for commands (as text, their stdin) and for
 * functions in worker processes; built lazily on the calling pool thread for
 * thread-isolated functions, and only if the function asks for it
 * (spe_call_input): walking a deep DAG's ancestors is the largest part of a
 * task's cost, and it then runs in parallel, off the engine thread, or not at
 * all.
 *
 * The lazy walk reads what cannot change while the call runs: the job's
 * definition and the results of the task's ancestors (all succeeded before
 * the task was ready, and a success is final). The job itself is kept alive
 * by `calls` (engine thread): a prune leaves a job whose calls still run.
 * Thread-isolated calls also borrow the job's id, name, task name and arg
 * rather than copying them.
 */
#include "engine/engine_impl.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Whether p was seen in this walk (and mark it): in the bitmap `seen` if
 * given, else in the job's marks (engine thread only). */
static int seen_before(struct job_run *job, uint8_t *seen, uint32_t p) {
  if (seen != NULL) {
    uint8_t bit = (uint8_t)(1u << (p & 7));
    if (seen[p >> 3] & bit) return 1;
    seen[p >> 3] |= bit;
    return 0;
  }
  if (job->tasks[p].mark == job->walk) return 1;
  job->tasks[p].mark = job->walk;
  return 0;
}

static json_t *build(struct job_run *job, uint32_t t, uint8_t *seen) {
  const struct job_def *def = job->def;
  uint32_t cap = 16, n = 0, head = 0;
  uint32_t *found = malloc(cap * sizeof *found);
  if (found == NULL) return NULL;
  /* Breadth-first over predecessors; `found` doubles as the queue. */
  for (uint32_t cur = t;;) {
    for (uint32_t e = def->pred_off[cur]; e < def->pred_off[cur + 1]; e++) {
      uint32_t p = def->pred[e];
      if (seen_before(job, seen, p)) continue;
      if (n == cap) {
        uint32_t *bigger = realloc(found, (cap *= 2) * sizeof *found);
        if (bigger == NULL) {
          free(found);
          return NULL;
        }
        found = bigger;
      }
      found[n++] = p;
    }
    if (head == n) break;
    cur = found[head++];
  }
  qsort(found, n, sizeof *found, cmp_u32); /* keys in file order */
  json_t *obj = json_object();
  for (uint32_t i = 0; obj && i < n; i++) {
    json_t *r = job->tasks[found[i]].result;
    if (json_object_set(obj, def->tasks[found[i]].name, r ? r : json_null()) != 0) {
      json_decref(obj);
      obj = NULL;
    }
  }
  free(found);
  return obj;
}

json_t *spe__input_build(struct job_run *job, uint32_t t) {
  if (++job->walk == 0) { /* the walk counter wrapped: forget old marks */
    for (uint32_t i = 0; i < job->def->ntasks; i++) job->tasks[i].mark = 0;
    job->walk = 1;
  }
  return build(job, t, NULL);
}

char *spe__input_text(struct job_run *job, uint32_t t, size_t *len) {
  json_t *obj = spe__input_build(job, t);
  char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (text) *len = strlen(text);
  return text;
}

/* The callbacks of thread-isolated calls (func_exec_config), called with
 * the job as ctx: the call borrows from the job, counted in job->calls from
 * its start (spawn_call, dispatch.c) until release, and the job's definition does not change
 * while it has calls. */

/* The input built by the call, on its own thread, if it asks. */
json_t *spe__input_for_call(void *ctx, uint32_t t) {
  struct job_run *job = ctx;
  uint8_t *seen = calloc((job->def->ntasks + 7) / 8, 1);
  if (seen == NULL) return NULL;
  json_t *obj = build(job, t, seen);
  free(seen);
  return obj;
}

/* What the call needs to know of its task, on its own thread. */
void spe__input_describe(void *ctx, uint32_t t, struct call_desc *d) {
  const struct job_run *job = ctx;
  const struct task_def *td = &job->def->tasks[t];
  d->function = td->cmd;
  d->arg = td->arg;
  d->job_id = job->id;
  d->job_name = job->def->name;
  d->task_name = td->name;
  d->owner = job;
  d->owner_id = job->order;
}

/* The call is over: it borrows nothing from the job any more. */
void spe__input_release(void *ctx) {
  struct job_run *job = ctx;
  job->calls--;
}
