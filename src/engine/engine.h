/*
 * The engine: the one owner of every job's and task's state. The public API
 * (src/api) calls these functions from any thread; they hand their work to the
 * engine thread through a command queue and wait for its answer.
 */
#ifndef SPE_ENGINE_ENGINE_H
#define SPE_ENGINE_ENGINE_H

#include "base/log.h"
#include "events/bus.h"
#include "job/job.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>

struct engine;
struct fork_server;
struct spe_registry;

struct engine_config {
  uint32_t workers;          /* tasks running at once; UINT32_MAX = unbound */
  size_t max_result_bytes;   /* cap on a command's stdout */
  size_t max_unfinished;     /* submits beyond this many unfinished jobs: SPE_EBUSY */
  int backoff_base_ms;       /* retry backoff: base * 2^(attempt-1) ... */
  int backoff_max_ms;        /* ... at most this */
  int grace_ms;              /* SIGTERM → SIGKILL delay on cancel and shutdown */
  uint32_t lost_limit;       /* a task cut short by this many crashes fails as "lost" */
  int hold_recovered;        /* recovered running jobs wait for spe__engine_start */
  int isolation;             /* where exec functions run: SPE_ISOLATION_* */
  const struct spe_registry *functions; /* exec functions; borrowed, outlives
                                           the engine (may be empty) */
  struct fork_server *fork_server;      /* process isolation: borrowed, or NULL */
  struct logger log;
};

/* Start the engine thread on an open store and bus (both borrowed: they must
 * outlive the engine). */
int spe__engine_new(struct engine **out, const struct engine_config *cfg,
                    struct store *st, struct event_bus *bus, char **msg);

/* Store a new submitted job; takes ownership of def (even on failure). Returns
 * once the job is committed. With resume set: if a recovered, not yet resumed
 * job (unfinished in the store at open) has the same name and canonical text,
 * hand out its id (and set *resumed) instead. With SPE_SUBMIT_START, a new
 * job is started in the same round (one commit for both). */
int spe__engine_submit_ex(struct engine *eng, struct job_def *def, unsigned flags,
                          char id[27], int *resumed, char **msg);
/* Start a submitted job, or let a held recovered one go on. */
int spe__engine_start(struct engine *eng, const char *id, char **msg);
int spe__engine_cancel(struct engine *eng, const char *id, char **msg);
/* The job in SPEC §3 shape; *out is a new reference. A job the engine does
 * not hold (finished in an earlier run) is read from the store. */
int spe__engine_get(struct engine *eng, const char *id, json_t **out, char **msg);

/* The engine's counters since it started (spe_stats_get), as of the end of
 * its last round or commit. */
struct engine_stats {
  uint64_t tasks_running;        /* attempts running (or picked) */
  uint64_t tasks_ready;          /* entries in the ready queue */
  uint64_t tasks_succeeded, tasks_failed, tasks_not_run; /* tasks that ended so */
  uint64_t commits;              /* store commits that wrote something */
  double commit_seconds_total, commit_seconds_max;
  uint64_t events_published;
};
void spe__engine_stats(struct engine *eng, struct engine_stats *out);

/* A page of jobs (spe_jobs_list): *out is a new array of summaries. From the
 * store on the caller's thread, or from the engine's jobs for a store that
 * keeps none. */
int spe__engine_list(struct engine *eng, const struct job_query *q, json_t **out, char **msg);
/* Jobs by status (indexed by enum job_status), from the same place. */
int spe__engine_count(struct engine *eng, uint64_t counts[JOB_STATUS_COUNT], char **msg);
/* Remove the finished jobs that finished before before_ms, from the store (in
 * a batch) and from the engine; *pruned gets how many. */
int spe__engine_prune(struct engine *eng, int64_t before_ms, uint64_t *pruned, char **msg);
/* 0 when the job has finished, SPE_ETIMEDOUT, SPE_ENOJOB, SPE_ECLOSED, or
 * SPE_ESTORE when the store failed and the engine stopped. */
int spe__engine_wait(struct engine *eng, const char *id, int timeout_ms);

/* 0, or the error that stopped the engine (SPE_ESTORE, SPE_ESYS). Any thread. */
int spe__engine_failure(struct engine *eng);
/* Begin an orderly stop; returns at once. */
void spe__engine_shutdown(struct engine *eng);
/* Stop, wait for the engine thread, free. NULL is a no-op. */
void spe__engine_free(struct engine *eng);

#endif
