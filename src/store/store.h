/*
 * The state store interface: a table of operations, one implementation per URL
 * scheme ("memory:" now, "sqlite:" and "postgresql:" behind the same table later).
 * SQL and every other backend detail stay inside the backend's file.
 *
 * The engine is the only writer. It gathers every change of one scheduling round
 * into a store_batch and commits it with one call: one transaction, one fsync
 * (group commit). Only after the commit returns does the engine publish the
 * round's events or start anything that depends on the changes (SPEC §5, the
 * durability rule).
 *
 * Threads: open, commit, load_unfinished and close are called by one thread at
 * a time (the engine's, or the committer's while a batch is in flight). The
 * reads a server needs (load_job, list_jobs, count_jobs, events_since) may be
 * called from any thread, at the same time as each other and as a commit: they
 * see what was committed, never a part of a batch. Prune is a write: it rides
 * in a batch (store_batch.prune_before_ms).
 */
#ifndef SPE_STORE_STORE_H
#define SPE_STORE_STORE_H

#include "base/log.h"
#include "base/status.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A job as stored. All pointers are borrowed from the engine for the call. */
struct job_rec {
  const char *id;
  const char *name;
  const char *canonical;   /* the description, canonical JSON */
  size_t canonical_len;
  enum job_status status;
  int64_t submitted_ms, started_ms, finished_ms; /* 0 = not yet */
};

/* A task's state as stored; borrowed like job_rec, except that a batch holds
 * its own references to `result` and `error`. */
struct task_rec {
  const char *job_id;
  uint32_t index;          /* position in the job's `tasks` */
  enum task_status status;
  uint32_t attempts;       /* attempts started so far */
  json_t *result;          /* succeeded: the result, else NULL */
  json_t *error;           /* failed: the error object, else NULL */
  int64_t started_ms, finished_ms;
  int32_t blocked_by;      /* not_run: index of the failed task, else -1 */
  uint32_t lost;           /* attempts cut short by a crash of the executor
                              (counted by recovery against the attempt limit) */
};

/* A job read back from the store (recovery, or a lookup of a job not in
 * memory). Everything it points to belongs to the store and is valid only for
 * the duration of the callback it is passed to; json_incref what you keep. */
struct stored_job {
  struct job_rec job;
  struct task_rec *tasks;  /* the tasks ever recorded, in index order; a task
                              never recorded is pending with no attempts */
  uint32_t ntasks;
};

/* Called once per job read back. A non-zero return stops the reading and is
 * returned by the load call. */
typedef int (*stored_job_fn)(void *ctx, const struct stored_job *job);

/* Called once per job listed: the job's row without its description
 * (canonical is NULL). Borrowed for the call; non-zero stops the listing and
 * is returned by it. */
typedef int (*job_rec_fn)(void *ctx, const struct job_rec *job);

/* A page of jobs, newest first (by id: ULIDs rise with submission time). */
struct job_query {
  int status;            /* an enum job_status, or -1 for any */
  const char *before_id; /* only jobs whose id sorts before this one, or NULL */
  uint32_t limit;        /* at most this many (> 0) */
};

#define JOB_STATUS_COUNT (JOB_CANCELLED + 1)

/* Everything one round changes. The engine owns the arrays. */
struct store_batch {
  struct job_rec *jobs;    /* new jobs and jobs whose status or times changed */
  uint32_t njobs, capjobs;
  struct task_rec *tasks;  /* tasks whose state changed */
  uint32_t ntasks, captasks;
  json_t **events;         /* events to log, in order; the commit gives each its
                              "seq" (the store's next numbers, rising by one)
                              with spe__event_set_seq() */
  uint32_t nevents, capevents;
  int64_t prune_before_ms; /* > 0: after the rows above, the same transaction
                              deletes every finished job (succeeded, failed,
                              cancelled) whose finished_ms is before this, with
                              its tasks and events */
  uint64_t pruned;         /* set by a commit that pruned: how many jobs it
                              deleted (a store that keeps no jobs: 0) */
};

struct store;

struct store_ops {
  const char *scheme; /* "memory", "sqlite" */
  int slow_commit;    /* 1: a commit waits for the disk, so the engine commits
                         on a thread of its own while it goes on scheduling */
  int keeps_state;    /* 1: the store keeps jobs, tasks and events. 0 (the
                         memory store): a commit reads only the batch's events,
                         and the engine leaves jobs and tasks out of it */
  /* Open the store at `where` (the URL after "scheme:"). */
  int (*open)(struct store **out, const char *where, const struct logger *lg, char **msg);
  /* Write the batch in one transaction and number its events. On failure
   * nothing of the batch is kept, the events' seq is unset, and the code says
   * why (SPE_ESTORE). */
  int (*commit)(struct store *st, struct store_batch *b, char **msg);
  /* Recovery: every job whose status is submitted or running, oldest first
   * (submission order). The memory store has none. */
  int (*load_unfinished)(struct store *st, stored_job_fn fn, void *ctx, char **msg);
  /* One job by id, whatever its status; SPE_ENOJOB if the store has none.
   * Any thread. */
  int (*load_job)(struct store *st, const char *id, stored_job_fn fn, void *ctx, char **msg);
  /* A page of jobs (job_query), newest first. Any thread. NULL for a store
   * that keeps no jobs (memory): the engine's jobs are all there is. */
  int (*list_jobs)(struct store *st, const struct job_query *q, job_rec_fn fn, void *ctx,
                   char **msg);
  /* How many jobs the store holds in each status (indexed by enum
   * job_status). Any thread. NULL like list_jobs. */
  int (*count_jobs)(struct store *st, uint64_t counts[JOB_STATUS_COUNT], char **msg);
  /* Append to the array `out` the events with seq > after_seq, oldest first,
   * at most `limit`, of job `job_id` (NULL: of every job), each a new object;
   * *last_seq (may be NULL) gets the newest seq in the log (0: none), from the
   * same snapshot. SPE_ENOTSUP when the store keeps no events; SPE_ELIMIT when
   * some after after_seq were forgotten (memory: the history is full; the
   * message names the oldest seq kept). Any thread. */
  int (*events_since)(struct store *st, const char *job_id, int64_t after_seq, uint32_t limit,
                      json_t *out, int64_t *last_seq, char **msg);
  /* Keep the newest `n` committed events for events_since (memory only: a
   * store with an event log keeps them all). NULL where it means nothing.
   * Before the engine starts. */
  int (*keep_events)(struct store *st, size_t n, char **msg);
  void (*close)(struct store *st);
};

struct store {
  const struct store_ops *ops;
  int keeps_events; /* events committed can be read back (events_since): the
                       engine must build them even when nobody subscribes.
                       Set at open (or by keep_events), constant after. */
};

/* Open the store a URL names: "memory:" or "sqlite:PATH". SPE_EURL for an unknown
 * scheme, with the message naming it. */
int spe__store_open(struct store **out, const char *url, const struct logger *lg,
                    char **msg);
static inline int spe__store_commit(struct store *st, struct store_batch *b, char **msg) {
  return st->ops->commit(st, b, msg);
}
/* NULL is a no-op. */
void spe__store_close(struct store *st);
/* Keep the newest n events (store_ops.keep_events); 0 for a store where it
 * means nothing (SQLite keeps every event). */
int spe__store_keep_events(struct store *st, size_t n, char **msg);

/* Batch helpers: append (growing the arrays geometrically), and empty the batch
 * (dropping the event references, keeping the arrays' capacity). The append
 * functions return 0 or SPE_ENOMEM; spe__batch_event steals `ev` even when it
 * fails. spe__batch_free also releases the arrays and zeroes the batch. */
int spe__batch_job(struct store_batch *b, const struct job_rec *r);
int spe__batch_task(struct store_batch *b, const struct task_rec *r);
/* Overwrite task row `row` of the batch with a newer state of the same task:
 * rows are upserts, so a batch needs only a task's last state. */
void spe__batch_task_replace(struct store_batch *b, uint32_t row, const struct task_rec *r);
int spe__batch_event(struct store_batch *b, json_t *ev /* stolen */);
void spe__batch_clear(struct store_batch *b);
void spe__batch_free(struct store_batch *b);

extern const struct store_ops spe__store_memory_ops;
extern const struct store_ops spe__store_sqlite_ops;

/* Whether a batch gives the store anything to write. */
static inline int spe__batch_writes(const struct store_batch *b) {
  return b->njobs || b->ntasks || b->nevents || b->prune_before_ms > 0;
}

/* Give an event its "seq": in place when its "seq" is an integer already
 * (the engine makes its events with a placeholder 0, so that a commit on the
 * committer thread allocates nothing that the engine thread frees later:
 * cross-thread frees fight over malloc's arena locks), else as a new member.
 * Returns 0, or -1 when out of memory. What an event had before, for undoing:
 * SEQ_NONE, SEQ_NULL (or another non-integer) or SEQ_PLACEHOLDER. */
enum { SEQ_NONE, SEQ_NULL, SEQ_PLACEHOLDER };
int spe__event_set_seq(json_t *ev, int64_t seq, uint8_t *had);
/* Put back what spe__event_set_seq() found. */
void spe__event_unset_seq(json_t *ev, uint8_t had);

#endif
