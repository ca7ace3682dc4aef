/*
 * What a server asks about jobs beyond one running job: a page of jobs, the
 * counts by status, a job the engine no longer holds, and prune.
 *
 * Where the answer comes from depends on the store. A store that keeps jobs
 * (SQLite) answers reads itself, on the caller's thread, through its own
 * reader (store.h): they never wait for the engine thread. The memory store
 * keeps no jobs: the engine's jobs are all there are, so the engine thread
 * answers (commands CMD_LIST and CMD_COUNT), as it does for a job it holds.
 *
 * Prune is a write. The engine thread takes it as a command: it puts the
 * cutoff into the round's batch, which the store commits with the round's
 * rows, and drops the same jobs from its memory. Only jobs whose end is
 * durable (`visible` finished) are dropped, so that no waiter and no batch
 * still refers to them; they are freed once the batch holding the prune is
 * over (finish_set), after anything in flight before it. One prune per batch:
 * a second one waits for the next batch (eng->prune_wait), so that each is
 * answered with its own count.
 */
#include "engine/engine_impl.h"

#include "base/msg.h"

#include <stdlib.h>
#include <string.h>

/* ---- summaries ---- */

/* {"id", "name", "status", "submitted_ms", "started_ms", "finished_ms"}, times
 * 0 when not yet (spe_jobs_list). */
static json_t *summary_json(const struct job_rec *r) {
  return json_pack("{s:s, s:s?, s:s, s:I, s:I, s:I}", "id", r->id, "name", r->name, "status",
                   spe__job_status_name(r->status), "submitted_ms", (json_int_t)r->submitted_ms,
                   "started_ms", (json_int_t)r->started_ms, "finished_ms",
                   (json_int_t)r->finished_ms);
}

static struct job_rec rec_of(const struct job_run *job) {
  return (struct job_rec){.id = job->id,
                          .name = job->def->name,
                          .status = job->status,
                          .submitted_ms = job->submitted_ms,
                          .started_ms = job->started_ms,
                          .finished_ms = job->finished_ms};
}

static int append_summary(void *ctx, const struct job_rec *r) {
  json_t *s = summary_json(r);
  return s != NULL && json_array_append_new(ctx, s) == 0 ? 0 : SPE_ENOMEM;
}

/* ---- the engine thread's answers (memory store) ---- */

static int newer(const struct job_run *a, const struct job_run *b) {
  return strcmp(a->id, b->id) > 0;
}

void spe__engine_do_list(struct engine *eng, struct command *c) {
  const struct job_query *q = c->query;
  /* The newest `limit` matching jobs, kept sorted newest first: a job enters
   * only if it is newer than the oldest kept, so a scan in any order does few
   * insertions. */
  struct job_run **top = malloc(q->limit * sizeof *top);
  uint32_t n = 0;
  int rc = top ? 0 : SPE_ENOMEM;
  for (size_t i = 0; rc == 0 && i < eng->jobs.cap; i++) {
    struct job_run *j = eng->jobs.slots[i].value;
    if (eng->jobs.slots[i].key == NULL) continue;
    if (q->status >= 0 && j->status != (enum job_status)q->status) continue;
    if (q->before_id && strcmp(j->id, q->before_id) >= 0) continue;
    if (n == q->limit && !newer(j, top[n - 1])) continue;
    uint32_t at = n < q->limit ? n++ : n - 1;
    while (at > 0 && newer(j, top[at - 1])) {
      top[at] = top[at - 1];
      at--;
    }
    top[at] = j;
  }
  c->json = rc == 0 ? json_array() : NULL;
  for (uint32_t k = 0; c->json && k < n; k++) {
    struct job_rec r = rec_of(top[k]);
    if (append_summary(c->json, &r) != 0) {
      json_decref(c->json);
      c->json = NULL;
    }
  }
  free(top);
  spe__engine_answer(eng, c, c->json ? 0 : SPE_ENOMEM);
}

void spe__engine_do_count(struct engine *eng, struct command *c) {
  memset(c->counts, 0, JOB_STATUS_COUNT * sizeof *c->counts);
  for (size_t i = 0; i < eng->jobs.cap; i++)
    if (eng->jobs.slots[i].key) c->counts[((struct job_run *)eng->jobs.slots[i].value)->status]++;
  spe__engine_answer(eng, c, 0);
}

/* ---- prune (engine thread) ---- */

/* Take every finished job whose end is durable and older than the cutoff out
 * of the engine: out of the map and the ready queue (a cancelled job's ready
 * tasks stay there until picked; a cancel stops the job's retry timers). They go on
 * the fill set's list, freed when its batch is over. Returns how many. */
static uint64_t drop_finished(struct engine *eng, int64_t before_ms) {
  struct job_run *list = NULL;
  uint64_t n = 0;
  for (size_t i = 0; i < eng->jobs.cap; i++) {
    struct job_run *j = eng->jobs.slots[i].value;
    /* A job whose abandoned calls (timed out, cancelled) still run waits
     * for a later prune: they may still read its results. */
    if (eng->jobs.slots[i].key == NULL || !spe__job_finished(j->visible) ||
        j->finished_ms >= before_ms || j->calls > 0)
      continue;
    j->pruned = 1;
    j->next_pruned = list;
    list = j;
    n++;
  }
  if (n == 0) return 0;
  pthread_mutex_lock(&eng->lock);
  for (struct job_run *j = list; j; j = j->next_pruned) spe__strmap_del(&eng->jobs, j->id);
  pthread_mutex_unlock(&eng->lock);
  for (struct job_run *j = list; j; j = j->next_pruned) spe__ready_remove(&eng->ready, &j->ready);
  struct job_run **tail = &eng->fill->pruned;
  while (*tail) tail = &(*tail)->next_pruned;
  *tail = list;
  return n;
}

void spe__engine_do_prune(struct engine *eng, struct command *c) {
  struct store_batch *b = &eng->fill->batch;
  if (b->prune_before_ms > 0) { /* this batch has one: wait for the next */
    c->next = NULL;
    struct command **tail = &eng->prune_wait;
    while (*tail) tail = &(*tail)->next;
    *tail = c;
    return;
  }
  b->prune_before_ms = c->before_ms;
  /* The memory store keeps no jobs: the ones dropped here are the count. A
   * store that keeps jobs counts its own (older runs' jobs too), once the
   * batch is committed (spe__engine_prune_done). */
  c->pruned = drop_finished(eng, c->before_ms);
  spe__engine_answer(eng, c, 0);
}

void spe__engine_prune_next(struct engine *eng) {
  if (eng->prune_wait == NULL || eng->fill->batch.prune_before_ms > 0) return;
  struct command *c = eng->prune_wait;
  eng->prune_wait = c->next;
  spe__engine_do_prune(eng, c);
}

void spe__engine_prune_done(struct engine *eng, struct round_set *set, int rc) {
  if (rc == 0 && eng->store->ops->keeps_state)
    for (struct command *c = set->replies; c; c = c->next)
      if (c->type == CMD_PRUNE) c->pruned = set->batch.pruned;
  spe__engine_free_pruned(set);
}

void spe__engine_free_pruned(struct round_set *set) {
  while (set->pruned) {
    struct job_run *j = set->pruned;
    set->pruned = j->next_pruned;
    spe__job_run_free(j);
  }
}

/* ---- calls from other threads ---- */

int spe__engine_list(struct engine *eng, const struct job_query *q, json_t **out, char **msg) {
  *out = NULL;
  if (eng->store->ops->list_jobs == NULL) {
    struct command c = {.type = CMD_LIST, .query = q};
    int rc = spe__engine_call(eng, &c, msg);
    *out = c.json;
    return rc;
  }
  json_t *page = json_array();
  if (page == NULL) return SPE_ENOMEM;
  int rc = eng->store->ops->list_jobs(eng->store, q, append_summary, page, msg);
  if (rc != 0) {
    json_decref(page);
    return rc;
  }
  *out = page;
  return 0;
}

int spe__engine_count(struct engine *eng, uint64_t counts[JOB_STATUS_COUNT], char **msg) {
  if (eng->store->ops->count_jobs != NULL)
    return eng->store->ops->count_jobs(eng->store, counts, msg);
  struct command c = {.type = CMD_COUNT, .counts = counts};
  return spe__engine_call(eng, &c, msg);
}

int spe__engine_prune(struct engine *eng, int64_t before_ms, uint64_t *pruned, char **msg) {
  struct command c = {.type = CMD_PRUNE, .before_ms = before_ms};
  int rc = spe__engine_call(eng, &c, msg);
  *pruned = rc == 0 ? c.pruned : 0;
  return rc;
}

/* A job read back from the store: its §3 view, through a job_run built for
 * the moment. */
struct from_store {
  json_t *json;
  int rc;
  char *msg;
};

static int stored_json(void *ctx, const struct stored_job *sj) {
  struct from_store *fs = ctx;
  struct job_run *job = NULL;
  uint32_t cut_short;
  char *why = NULL;
  fs->rc = spe__job_run_from_stored(sj, 0, NULL, &job, &cut_short, &why);
  if (fs->rc == SPE_ESTORE)
    fs->msg = spe__msg_new("job %s in the store cannot be read back: %s", sj->job.id,
                           why ? why : "bad description");
  free(why);
  if (fs->rc != 0) return 0;
  fs->json = spe__job_json(job);
  fs->rc = fs->json ? 0 : SPE_ENOMEM;
  spe__job_run_free(job);
  return 0;
}

int spe__engine_get_stored(struct engine *eng, const char *id, json_t **out, char **msg) {
  struct from_store fs = {0};
  int rc = eng->store->ops->load_job(eng->store, id, stored_json, &fs, msg);
  if (rc == 0) rc = fs.rc;
  if (rc == 0) {
    *out = fs.json;
  } else if (fs.msg) {
    spe__msg_give(msg, fs.msg);
    fs.msg = NULL;
  }
  free(fs.msg);
  return rc;
}
