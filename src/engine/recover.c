/*
 * Recovery: on open, before the engine thread starts, every unfinished job in
 * the store is read back and resumed (SPEC §5).
 *
 * Tasks that had finished keep their status and result and never run again.
 * Tasks recorded as running were cut short by a crash: each such crash counts
 * against the task's lost-attempt limit; under it, the task is pending again and
 * its next attempt gets the next number; at it, the task fails with kind "lost"
 * and its downstream becomes not_run. Submitted jobs stay submitted. Each job
 * publishes job_recovered. The changes are committed like any round.
 */
#include "engine/engine_impl.h"

#include "base/clock.h"
#include "base/msg.h"

#include <stdlib.h>
#include <string.h>

struct recovery {
  struct engine *eng;
  uint32_t jobs, skipped;
};

/* Put a stored task's state back (also for a job read from the store by
 * spe_job_get). Returns 1 if it was cut short by a crash. */
int spe__job_run_restore_task(struct job_run *job, const struct task_rec *r) {
  struct task_state *ts = &job->tasks[r->index];
  job->hot[r->index].status = (uint8_t)r->status;
  ts->attempts = r->attempts;
  ts->lost = r->lost;
  ts->started_ms = r->started_ms;
  ts->finished_ms = r->finished_ms;
  ts->blocked_by = r->blocked_by >= 0 && (uint32_t)r->blocked_by < job->def->ntasks
                       ? r->blocked_by
                       : -1;
  if (r->status == TASK_SUCCEEDED) ts->result = json_incref(r->result ? r->result : json_null());
  if (r->status == TASK_FAILED && r->error) ts->error = json_incref(r->error);
  if (spe__task_finished(r->status)) {
    job->remaining--;
    if (r->status == TASK_FAILED) job->failed++;
  }
  return r->status == TASK_RUNNING;
}

/* A task the crash cut short: run it again, or give it up as lost. */
static void restart_or_lose(struct engine *eng, struct job_run *job, uint32_t t,
                            uint32_t *restarted, uint32_t *lost) {
  struct task_state *ts = &job->tasks[t];
  const char *name = job->def->tasks[t].name;
  /* Saturate: a stored count at the top must not wrap to 0 and run again. */
  if (ts->lost < UINT32_MAX) ts->lost++;
  if (ts->lost < eng->cfg.lost_limit) {
    job->hot[t].status = TASK_PENDING;
    (*restarted)++;
    spe__log(&eng->cfg.log, SPE_LOG_INFO,
             "recovery: job %s task \"%s\" was running at the crash; it runs again "
             "(interrupted %u time(s), limit %u)",
             job->id, name, ts->lost, eng->cfg.lost_limit);
    spe__record_task(eng, job, t);
    /* The crashed attempt ends here, in the event log too: every attempt has
     * one task_started and one task_terminated (SPEC §4). Unlike an
     * interruption by a shutdown, it keeps its number: the next is one more. */
    json_t *ev = spe__event_new(eng, job, "task_terminated");
    json_object_set_new(ev, "task", json_string(name));
    json_object_set_new(ev, "attempt", json_integer(ts->attempts));
    json_object_set_new(ev, "status", json_string("interrupted"));
    json_object_set_new(ev, "crashed", json_true());
    spe__record_event(eng, ev);
    return;
  }
  job->hot[t].status = TASK_FAILED;
  ts->error = spe__error_new("lost", "interrupted by a crash of the executor %u time(s)", ts->lost);
  ts->finished_ms = spe__now_ms();
  job->failed++;
  job->remaining--;
  eng->stats.tasks_failed++;
  (*lost)++;
  spe__log(&eng->cfg.log, SPE_LOG_INFO,
           "recovery: job %s task \"%s\" was interrupted by crashes %u time(s); it fails as lost", job->id,
           name, ts->lost);
  spe__record_task(eng, job, t);
  json_t *ev = spe__event_new(eng, job, "task_terminated");
  json_object_set_new(ev, "task", json_string(name));
  json_object_set_new(ev, "attempt", json_integer(ts->attempts));
  json_object_set_new(ev, "status", json_string("failed"));
  json_object_set(ev, "error", ts->error);
  spe__record_event(eng, ev);
  spe__engine_block_downstream(eng, job, t);
}

/* Queue every pending task of a resumed job whose upstream has succeeded. */
static void queue_ready(struct engine *eng, struct job_run *job) {
  for (uint32_t t = 0; t < job->def->ntasks; t++)
    if (job->hot[t].status == TASK_PENDING && job->wait[t] == 0)
      spe__engine_push_ready(eng, job, t, 0);
}

int spe__job_run_from_stored(const struct stored_job *sj, uint32_t order,
                             const struct logger *lg, struct job_run **out,
                             uint32_t *cut_short, char **msg) {
  *out = NULL;
  *cut_short = 0;
  struct job_def *def = NULL;
  /* Held to no limit: the job was accepted once, and a build with stricter
   * limits must not leave it behind. */
  if (spe__job_parse_text_limits(sj->job.canonical, sj->job.canonical_len,
                                 &spe__job_limits_none, &def, msg) != 0)
    return SPE_ESTORE;
  if (strlen(sj->job.id) != SPE_ULID_LEN) {
    spe__job_free(def);
    spe__msg_set(msg, "bad id");
    return SPE_ESTORE;
  }
  struct job_run *job = spe__job_run_new(def, order);
  if (job == NULL) {
    spe__job_free(def);
    return SPE_ENOMEM;
  }
  memcpy(job->id, sj->job.id, SPE_ULID_LEN + 1);
  job->status = job->visible = sj->job.status;
  job->submitted_ms = sj->job.submitted_ms;
  job->started_ms = sj->job.started_ms;
  job->finished_ms = sj->job.finished_ms;
  for (uint32_t i = 0; i < sj->ntasks; i++) {
    if (sj->tasks[i].index < def->ntasks)
      *cut_short += (uint32_t)spe__job_run_restore_task(job, &sj->tasks[i]);
    else if (lg != NULL) /* this build never writes one: say so, keep the rest */
      spe__log(lg, SPE_LOG_WARN, "recovery: job %s: stored task %u lies beyond its %u tasks; "
               "it is ignored", job->id, sj->tasks[i].index, def->ntasks);
  }
  *out = job;
  return 0;
}

static int recover_job(void *ctx, const struct stored_job *sj) {
  struct recovery *rc = ctx;
  struct engine *eng = rc->eng;
  struct job_run *job = NULL;
  char *msg = NULL;
  uint32_t cut_short = 0;
  int err = spe__job_run_from_stored(sj, eng->job_order, &eng->cfg.log, &job, &cut_short, &msg);
  if (err == SPE_ESTORE) {
    spe__log(&eng->cfg.log, SPE_LOG_ERROR,
             "recovery: job %s cannot be read back (%s); it is left in the store as it is",
             sj->job.id, msg ? msg : "bad description");
    free(msg);
    rc->skipped++;
    return 0;
  }
  free(msg);
  if (err != 0) return err;
  eng->job_order++;
  const struct job_def *def = job->def;

  /* First every stored state (above), then readiness: a task is waiting for
   * each upstream task that has not succeeded. */
  for (uint32_t t = 0; t < def->ntasks; t++) {
    uint32_t waiting = 0;
    for (uint32_t e = def->pred_off[t]; e < def->pred_off[t + 1]; e++)
      waiting += job->hot[def->pred[e]].status != TASK_SUCCEEDED;
    spe__wait_set(job, t, waiting);
  }
  if (spe__strmap_put(&eng->jobs, job->id, job) != 0) {
    spe__job_run_free(job);
    return SPE_ENOMEM;
  }
  /* Counted against max_unfinished_jobs, but never refused: it is stored. */
  eng->unfinished++;
  uint32_t done = def->ntasks - job->remaining, restarted = 0, lost = 0;
  if (cut_short > 0)
    for (uint32_t t = 0; t < def->ntasks; t++)
      if (job->hot[t].status == TASK_RUNNING) restart_or_lose(eng, job, t, &restarted, &lost);

  json_t *ev = spe__event_new(eng, job, "job_recovered");
  json_object_set_new(ev, "status", json_string(spe__job_status_name(job->status)));
  json_object_set_new(ev, "tasks_done", json_integer(done));
  json_object_set_new(ev, "tasks_total", json_integer(def->ntasks));
  json_object_set_new(ev, "tasks_restarted", json_integer(restarted));
  json_object_set_new(ev, "tasks_lost", json_integer(lost));
  spe__record_event(eng, ev);
  spe__log(&eng->cfg.log, SPE_LOG_INFO,
           "recovery: job %s \"%s\" (%s): %u of %u tasks already done, %u to run again, "
           "%u lost",
           job->id, def->name, spe__job_status_name(job->status), done, def->ntasks, restarted,
           lost);

  /* Any recovered job may hold the task that crashed the executor: none of
   * its tasks starts before its start is committed (spe__engine_pick). */
  job->careful = 1;
  if (job->status == JOB_RUNNING) {
    /* A program that runs only the jobs it is given (spe run) holds every
     * recovered job until it resumes and starts it: the others stay in the
     * store as they are, for a later run to resume. */
    if (eng->cfg.hold_recovered)
      job->held = 1;
    else
      queue_ready(eng, job);
    spe__engine_finish_if_done(eng, job);
  }
  rc->jobs++;
  return 0;
}

void spe__engine_release_held(struct engine *eng, struct job_run *job) {
  if (!job->held) return;
  job->held = 0;
  if (job->status == JOB_RUNNING) queue_ready(eng, job);
}

int spe__engine_recover(struct engine *eng, char **msg) {
  struct recovery rc = {.eng = eng};
  int64_t t0 = spe__mono_ms();
  int err = eng->store->ops->load_unfinished(eng->store, recover_job, &rc, msg);
  if (err != 0) return err;
  if (rc.jobs > 0 || rc.skipped > 0)
    spe__log(&eng->cfg.log, SPE_LOG_INFO, "recovery: %u unfinished job(s) restored in %lld ms%s",
             rc.jobs, (long long)(spe__mono_ms() - t0),
             rc.skipped ? " (some could not be read back: see above)" : "");
  return 0;
}
