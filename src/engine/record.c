/* The round's changes: store records and events, gathered in the engine's batch
 * and committed together at the end of the round. */
#include "engine/engine_impl.h"

#include "base/clock.h"

void spe__record_job(struct engine *eng, struct job_run *job) {
  if (!eng->store->ops->keeps_state) return;
  struct job_rec r = {
      .id = job->id,
      .name = job->def->name,
      .canonical = job->def->canonical,
      .canonical_len = job->def->canonical_len,
      .status = job->status,
      .submitted_ms = job->submitted_ms,
      .started_ms = job->started_ms,
      .finished_ms = job->finished_ms,
  };
  if (spe__batch_job(&eng->fill->batch, &r) != 0)
    spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory recording job %s", job->id);
}

void spe__record_task_row(struct engine *eng, struct job_run *job, uint32_t t) {
  const struct task_state *ts = &job->tasks[t];
  struct task_rec r = {
      .job_id = job->id,
      .index = t,
      .status = job->hot[t].status,
      .attempts = ts->attempts,
      .result = ts->result,
      .error = ts->error,
      .started_ms = ts->started_ms,
      .finished_ms = ts->finished_ms,
      .blocked_by = ts->blocked_by,
      .lost = ts->lost,
  };
  /* A task that starts and ends within one batch (tasks shorter than a
   * commit) needs one row, not two. */
  struct store_batch *b = &eng->fill->batch;
  struct task_state *st = &job->tasks[t];
  if (st->row_gen == eng->fill->gen && st->row < b->ntasks) {
    spe__batch_task_replace(b, st->row, &r);
  } else if (spe__batch_task(b, &r) == 0) {
    st->row_gen = eng->fill->gen;
    st->row = b->ntasks - 1;
  } else {
    spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory recording job %s", job->id);
  }
}

void spe__record_event(struct engine *eng, json_t *ev) {
  if (ev != NULL && spe__batch_event(&eng->fill->batch, ev) != 0)
    spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory recording an event");
}

json_t *spe__event_new(struct engine *eng, const struct job_run *job, const char *type) {
  return spe__events_on(eng) ? spe__event_build(eng, job, type, spe__now_ms()) : NULL;
}

json_t *spe__event_build(struct engine *eng, const struct job_run *job, const char *type,
                         int64_t at_ms) {
  /* A subscription made while this round runs may miss the round's events:
   * they report changes made before it existed (spe_subscribe). */
  /* "seq" comes first, a placeholder the store's commit sets in place. */
  json_t *ev = json_pack("{s:I, s:I, s:s, s:s}", "seq", (json_int_t)0, "time_ms", (json_int_t)at_ms,
                         "job", job->id, "type", type);
  if (ev == NULL) spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory recording an event");
  return ev;
}
