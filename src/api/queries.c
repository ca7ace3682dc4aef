/* The public calls a server needs beyond running jobs (include/spe.h): pages
 * of jobs, prune, replay of the event log, the counters. Argument checks
 * here; the answers come from the engine (src/engine/queries.c) or, for the
 * event log, straight from the store, which any thread may read. */
#include "spe.h"

#include "api/executor_impl.h"
#include "base/limits.h"
#include "base/msg.h"
#include "engine/engine.h"
#include "store/store.h"

#include <string.h>

SPE_EXPORT int spe_jobs_list(spe_executor *ex, const char *status, const char *before_id,
                             size_t limit, json_t **out, char **msg) {
  spe__msg_give(msg, NULL);
  if (out != NULL) *out = NULL;
  if (ex == NULL || out == NULL) {
    spe__msg_set(msg, "spe_jobs_list: executor and out must not be NULL");
    return SPE_EINVAL;
  }
  int s = status ? spe__job_status_parse(status) : -1;
  if (status != NULL && s < 0) {
    spe__msg_set(msg, "unknown job status \"%s\" (expected submitted, running, succeeded, "
                      "failed or cancelled)", status);
    return SPE_EINVAL;
  }
  if (limit > SPE_MAX_LIST_JOBS) {
    spe__msg_set(msg, "a page holds 1 to %u jobs, not %zu", SPE_MAX_LIST_JOBS, limit);
    return SPE_EINVAL;
  }
  struct job_query q = {s, before_id, limit ? (uint32_t)limit : SPE_DEFAULT_LIST_JOBS};
  return spe__engine_list(ex->engine, &q, out, msg);
}

SPE_EXPORT int spe_prune(spe_executor *ex, int64_t finished_before_ms, size_t *pruned,
                         char **msg) {
  spe__msg_give(msg, NULL);
  if (pruned != NULL) *pruned = 0;
  if (ex == NULL) {
    spe__msg_set(msg, "spe_prune: executor must not be NULL");
    return SPE_EINVAL;
  }
  /* Nothing finished before the epoch: nothing to do, and a batch's cutoff of
   * 0 means "no prune". */
  if (finished_before_ms <= 0) return 0;
  uint64_t n = 0;
  int rc = spe__engine_prune(ex->engine, finished_before_ms, &n, msg);
  if (rc == 0 && pruned != NULL) *pruned = (size_t)n;
  return rc;
}

SPE_EXPORT int spe_events_since(spe_executor *ex, const char *job_id, int64_t after_seq,
                                size_t limit, json_t **out, int64_t *last_seq, char **msg) {
  spe__msg_give(msg, NULL);
  if (out != NULL) *out = NULL;
  if (last_seq != NULL) *last_seq = 0;
  if (ex == NULL || out == NULL) {
    spe__msg_set(msg, "spe_events_since: executor and out must not be NULL");
    return SPE_EINVAL;
  }
  if (after_seq < 0) {
    spe__msg_set(msg, "after_seq must not be negative (0: from the first event)");
    return SPE_EINVAL;
  }
  if (limit > SPE_MAX_REPLAY_EVENTS) {
    spe__msg_set(msg, "a replay returns 1 to %u events, not %zu", SPE_MAX_REPLAY_EVENTS, limit);
    return SPE_EINVAL;
  }
  struct store *st = ex->store;
  json_t *events = json_array();
  if (events == NULL) return SPE_ENOMEM;
  int rc = st->ops->events_since(st, job_id, after_seq, limit ? (uint32_t)limit : SPE_DEFAULT_REPLAY_EVENTS,
                                 events, last_seq, msg);
  if (rc != 0) {
    json_decref(events);
    if (last_seq != NULL) *last_seq = 0;
    return rc;
  }
  *out = events;
  return 0;
}

SPE_EXPORT int spe_stats_get(spe_executor *ex, spe_stats *out) {
  if (ex == NULL || out == NULL) return SPE_EINVAL;
  struct engine *eng = ex->engine;
  uint64_t counts[JOB_STATUS_COUNT];
  int rc = spe__engine_count(eng, counts, NULL);
  if (rc != 0) return rc;
  struct engine_stats es;
  spe__engine_stats(eng, &es);
  memset(out, 0, sizeof *out);
  out->jobs_submitted = counts[JOB_SUBMITTED];
  out->jobs_running = counts[JOB_RUNNING];
  out->jobs_succeeded = counts[JOB_SUCCEEDED];
  out->jobs_failed = counts[JOB_FAILED];
  out->jobs_cancelled = counts[JOB_CANCELLED];
  out->tasks_running = es.tasks_running;
  out->tasks_ready = es.tasks_ready;
  out->tasks_succeeded = es.tasks_succeeded;
  out->tasks_failed = es.tasks_failed;
  out->tasks_not_run = es.tasks_not_run;
  out->commits = es.commits;
  out->commit_seconds_total = es.commit_seconds_total;
  out->commit_seconds_max = es.commit_seconds_max;
  out->events_published = es.events_published;
  return 0;
}
