/*
 * The engine's private state, shared by the files of src/engine/.
 *
 * DESIGN
 * One thread (the engine thread) owns every job_run and task_state: it alone
 * reads and writes them, so they need no lock. Other threads reach the engine
 * through `commands` (guarded by `lock`), and wake it through the loop's eventfd.
 *
 * The thread runs rounds (engine.c). In a round it
 *   1. polls the loop: finished commands come back through the command
 *      executor's callback, retry timers and the grace timer fire;
 *   2. takes the queued API commands and applies them;
 *   3. picks ready tasks up to the free workers (dispatch.c);
 *   4. commits everything the round changed to the store in ONE transaction;
 *   5. only then publishes the round's events, answers the commands waiting for
 *      durability, and spawns the picked tasks.
 * While a commit or a spawn is in progress, finished tasks pile up in the kernel
 * (pidfds become readable) and the next round takes them all at once: group
 * commit comes from the shape of the loop.
 *
 * Readiness is counted: each task keeps the number of upstream tasks that have
 * not yet succeeded; a success decrements its successors' counts. A failure walks
 * its downstream tasks once to mark them not_run. So scheduling a task costs
 * O(its edges), never a scan of the job.
 *
 * Lock order: `lock` is a leaf lock (nothing else is taken while holding it).
 * Under `lock`: the command queue, `jobs` (inserted into only by the engine
 * thread, which may read it without the lock), every job_run's `visible`
 * status, `stopping`, `fatal`, `exited`.
 */
#ifndef SPE_ENGINE_ENGINE_IMPL_H
#define SPE_ENGINE_ENGINE_IMPL_H

#include "base/strmap.h"
#include "base/ulid.h"
#include "engine/committer.h"
#include "engine/engine.h"
#include "engine/ready_queue.h"
#include "exec/cmd.h"
#include "func/func.h"
#include "loop/loop.h"

#include <pthread.h>

/* The run state of one task. Persistent fields (mirrored in the store) first,
 * then bookkeeping. */
struct task_state {
  json_t *result;          /* succeeded: the result */
  json_t *error;           /* failed: the error of the last attempt */
  int64_t started_ms;      /* last attempt's start, 0 = never */
  int64_t finished_ms;     /* 0 = not finished */
  uint32_t attempts;       /* attempts started */
  uint32_t lost;           /* attempts cut short by a crash of the executor */
  int32_t blocked_by;      /* not_run: the failed task, else -1 */
                           /* its status: job_run.hot[t] */

  uint32_t row_gen;        /* the round set whose batch holds this task's row, */
  uint32_t row;            /* at this index (a later change replaces it) */
  uint32_t mark;           /* ancestor walks: visited in walk number `mark` */
                           /* while ready, the round it waits for:
                              job_run.block_round */
};

/* A task's status, apart from the 56-byte task_state, in a dense array
 * (job_run.hot): the picks read it for every task, in rank order, and with a
 * byte a task the statuses of a hundred 10,000-task jobs stay in the CPU's
 * cache. So do the counts (job_run.wait, below) and the rounds of the
 * ready tasks (job_run.block_round). */
struct task_hot {
  uint8_t status;          /* enum task_status */
};

/* A task's count of upstream tasks not yet succeeded, in a byte
 * (job_run.wait), or SPE_WAIT_BIG when it does not fit: then the count is in
 * job_run.wait_big. A success decrements each successor's count, scattered
 * over the job: with a byte a task, the counts of a 10,000-task job take
 * 10 KiB, and those of a hundred such jobs run together stay in the CPU's
 * cache, where 12-byte records (12 MB) were a memory access each. */
#define SPE_WAIT_BIG 255

/* One attempt in flight: from the pick to its outcome.
 *
 * Slots: at most `workers` tasks run at once, commands and functions
 * together, counted by eng->slots (free slots). A command, a function in a
 * worker process, and a function of a recovered job take a slot when they
 * are picked. Other thread-isolated functions are queued ahead (`queued`):
 * handed to the pool without a slot, up to eng->ahead_cap of them; a pool
 * thread takes a slot when it calls one, and only when the pool reports that
 * start does the task become running (its attempt counted, task_started
 * published with the real start time). One withdrawn before its call
 * (cancel, shutdown) never started: the task stays pending, no event. Every
 * thread-isolated call gives its slot back when it returns (a pool thread
 * does); the engine gives back the slots of the others. */
struct attempt {
  struct attempt *prev, *next; /* eng->attempts */
  struct job_run *job;
  uint32_t task;
  int cancelled;               /* cancelled: report kind "cancelled" */
  int interrupted;             /* shutdown: put the task back to pending */
  uint8_t queued;              /* queued ahead, its start not yet noted */
  uint8_t withdrawn;           /* queued ahead and taken back before it was
                                  handed over: dropped when its list is spawned */
  uint8_t slot;                /* the engine took a slot it gives back */
  struct cmd_run *run;         /* once spawned: a command, */
  struct func_run *frun;       /* or an exec function */
};

struct job_run {
  /* What thread-isolated calls read on their own threads (input.c), and the
   * engine does not write while the job runs: a line of its own. A counter
   * the engine writes at every task (`remaining`) on the same line took it
   * from the calling thread's cache, and back again at the next call: a
   * miss on each side for every task. */
  _Alignas(64) char id[SPE_ULID_LEN + 1];
  struct job_def *def;     /* owned */
  uint32_t order;          /* submission order within this engine */
  /* The engine thread's (but `visible`): */
  _Alignas(64) enum job_status status;
  enum job_status visible; /* under eng->lock: the committed status, for waiters */
  int64_t submitted_ms, started_ms, finished_ms;
  uint32_t remaining;      /* tasks not yet succeeded, failed or not_run */
  uint32_t failed;         /* tasks failed */
  uint32_t walk;           /* the last ancestor-walk number */
  int cancelling;          /* cancel requested: finishes as cancelled */
  int claimed;             /* submitted here, or already resumed by a caller */
  int careful;             /* recovered: no task starts before its start is
                              committed (see spe__engine_pick) */
  int held;                /* recovered running, waiting for a start
                              (cfg.hold_recovered): none of its tasks is queued */
  struct task_state *tasks;/* def->ntasks of them */
  struct task_hot *hot;    /* def->ntasks of them (above) */
  uint8_t *wait;           /* def->ntasks counts (SPE_WAIT_BIG, above) */
  uint32_t *wait_big;      /* def->ntasks counts, for those that do not fit
                              a byte; NULL when none has that many upstream
                              tasks */
  uint32_t *block_round;   /* for each 64 ranks (a word of the ready
                              bitmap): the newest round whose commit makes the
                              inputs of a task queued there durable
                              (spe__engine_push_ready) - a task taken from the
                              block waits for it, which is never too early
                              (rounds only grow) and at worst one commit
                              late; 0 when none had to wait */
  int all_exec;            /* every task is an `exec` task */
  int any_timeout;         /* some task has a timeout */
  struct ready_set ready;  /* its ready tasks (ready_queue.h) */
  uint32_t *by_rank;       /* the task of each rank, when the job names
                              priorities (else rank and task are the same) */
  struct job_run *next_finished; /* this round's finished jobs */
  uint32_t calls;          /* thread-isolated calls that borrow from this
                              job (input.c): it is not pruned before they
                              are over */
  int pruned;              /* taken out by a prune, freed with its batch */
  struct job_run *next_pruned;   /* round_set.pruned */
};

/* Set task t's count of upstream tasks not yet succeeded (n is at most its
 * number of upstream tasks: wait_big exists when that many do not fit a
 * byte). Whether the count is 0 is job->wait[t] == 0. */
static inline void spe__wait_set(struct job_run *job, uint32_t t, uint32_t n) {
  if (job->wait[t] == SPE_WAIT_BIG || n >= SPE_WAIT_BIG) {
    job->wait[t] = SPE_WAIT_BIG;
    job->wait_big[t] = n;
  } else {
    job->wait[t] = (uint8_t)n;
  }
}

/* One upstream task of t succeeded: whether t waits for none any more. */
static inline int spe__wait_drop(struct job_run *job, uint32_t t) {
  uint8_t *w = &job->wait[t];
  if (*w != SPE_WAIT_BIG) return --*w == 0;
  return --job->wait_big[t] == 0;
}

/* CMD_LIST and CMD_COUNT only for a store that keeps no jobs (queries.c). */
enum command_type { CMD_SUBMIT, CMD_START, CMD_CANCEL, CMD_GET, CMD_LIST, CMD_COUNT, CMD_PRUNE };

/* An API call waiting for the engine thread. Lives on the caller's stack; the
 * caller waits on eng->reply_cond until `done`. */
struct command {
  struct command *next;
  enum command_type type;
  char id[SPE_ULID_LEN + 1];
  struct job_def *def;     /* CMD_SUBMIT: handed over to the engine */
  int resume;              /* CMD_SUBMIT: resume a recovered job if one matches */
  int resumed;             /* CMD_SUBMIT: answered with a recovered job */
  int start;               /* CMD_SUBMIT: start a new job in the same round */
  int rc;
  char *msg;               /* failure message for the caller */
  json_t *json;            /* CMD_GET, CMD_LIST: the answer */
  const struct job_query *query; /* CMD_LIST */
  uint64_t *counts;        /* CMD_COUNT: JOB_STATUS_COUNT of them, filled */
  int64_t before_ms;       /* CMD_PRUNE: the cutoff */
  uint64_t pruned;         /* CMD_PRUNE: the answer */
  int done;                /* under lock */
};

/* A task waiting out its retry backoff. */
struct retry_timer {
  struct timer timer;
  struct retry_timer *prev, *next; /* eng->retries */
  struct engine *eng;
  struct job_run *job;
  uint32_t task;
};

struct attempt_list {
  struct attempt **items;
  uint32_t len, cap;
};

/* One batch of changes and what waits for it to be durable. */
struct round_set {
  struct store_batch batch;        /* the store changes and events */
  struct command *replies;         /* commands answered once it is durable */
  struct job_run *finished;        /* jobs whose end it records */
  struct attempt_list waiting;     /* attempts that start once it is durable:
                                      their inputs are results it records */
  uint32_t gen;                    /* its number; tasks freed by it carry it */
  struct job_run *pruned;          /* jobs its prune took out, freed when it
                                      is over (queries.c) */
};

struct engine {
  struct engine_config cfg;
  struct loop loop;
  struct store *store;     /* borrowed */
  struct event_bus *bus;   /* borrowed */
  struct cmd_exec *cmd;
  struct func_exec *func;  /* exec tasks */
  json_t *empty_input;     /* {}: the input of every exec task without
                              upstream tasks (read-only, shared) */
  pthread_t thread;

  /* Engine thread only. */
  struct ready_queue ready;
  uint32_t running;                /* attempts picked and not ended, all jobs
                                      (queued ahead included) */
  uint32_t queued;                 /* of them, queued ahead, not yet started */
  uint32_t ahead_cap;              /* the most attempts queued ahead */
  int thread_iso;                  /* exec tasks run in thread isolation */
  /* Free slots (see struct attempt). Written by pool threads at every
   * thread-isolated call: on a cache line of its own, apart from the engine
   * thread's counters around it, which every such write would otherwise
   * take away from the engine's cache (false sharing). */
  char slots_pad0[64];
  _Atomic long slots;
  char slots_pad1[64];
  uint32_t job_order;              /* next job's submission order */
  size_t unfinished;               /* jobs in `jobs` not finished (the limit
                                      cfg.max_unfinished is checked on submit) */
  struct round_set sets[2];        /* `fill` is one of them, `flight` the other */
  struct round_set *fill;          /* gathering this round's changes */
  struct round_set *flight;        /* being committed by the committer, or NULL */
  uint32_t durable_gen;            /* the newest set known to be committed */
  int async;                       /* commits go through `committer` */
  struct committer committer;
  struct io_watch commit_w;        /* the committer's donefd */
  struct attempt_list early;       /* picked attempts that may start at once */
  struct attempt *attempts;        /* every attempt picked and not yet ended */
  struct attempt *free_attempts;   /* ended, kept for reuse (dispatch.c) */
  uint32_t nfree_attempts;
  struct retry_timer *retries;     /* every task waiting out a backoff */
  struct timer grace_timer;        /* SIGKILL after SIGTERM on cancel/shutdown */
  int stop_seen;                   /* the engine thread has begun stopping */
  struct command *prune_wait;      /* prunes for the next batches, one each */
  int keeps_state;                 /* the store keeps jobs and tasks */
  int keeps_events;                /* the store keeps events */
  const atomic_uint *nsubs;        /* the bus's count of subscriptions */
  struct engine_stats stats;       /* counters; copied to `stats_seen` */
  int64_t stats_ms;                /* when they were last copied (loop time) */

  /* Shared, under `lock`. */
  pthread_mutex_t lock;
  pthread_cond_t reply_cond;       /* a command was answered */
  pthread_cond_t finished_cond;    /* a job finished, or the engine stops */
  struct command *cmd_head, *cmd_tail;
  struct strmap jobs;              /* id → job_run (written by the engine thread) */
  struct engine_stats stats_seen;  /* `stats` as of the end of a round or a
                                      commit, for spe_stats_get */
  int stopping;                    /* shutdown requested */
  int fatal;                       /* 0, or the error that stopped the engine */
  int exited;                      /* the engine thread has left its loop */
  atomic_int mail;                 /* set under `lock` with every command
                                      queued and every stop asked for; the
                                      engine clears it when it takes them: a
                                      round without mail takes no lock */
};

/* dispatch.c */
/* Queue a task as ready. `round`: the round whose commit makes its inputs
 * durable (the current one, for a task freed by a success of this round), or 0
 * when they are durable already. */
void spe__engine_push_ready(struct engine *eng, struct job_run *job, uint32_t t,
                            uint32_t round);
void spe__engine_finish_if_done(struct engine *eng, struct job_run *job);
void spe__engine_block_downstream(struct engine *eng, struct job_run *job, uint32_t f);
void spe__engine_job_start(struct engine *eng, struct job_run *job);
void spe__engine_job_cancel(struct engine *eng, struct job_run *job);
void spe__engine_pick(struct engine *eng);
/* Spawn the attempts of a list, and empty it. */
void spe__engine_spawn_list(struct engine *eng, struct attempt_list *l);
/* Put the attempts of a list back as if never picked (their batch failed). */
void spe__engine_drop_list(struct engine *eng, struct attempt_list *l);
void spe__engine_on_done(void *ctx, void *task_ctx, struct task_outcome *out);
void spe__engine_free_attempts(struct engine *eng);
/* The function executor: an attempt queued ahead has started. */
void spe__engine_on_started(void *ctx, void *task_ctx, int64_t started_ms);
/* Whether the first ready task could be picked now (a slot, or room to queue
 * it ahead); 1 also for a stale one, which a pick drops. */
int spe__engine_can_pick(struct engine *eng);
void spe__engine_stop_tasks(struct engine *eng);
void spe__engine_grace_expired(struct loop *lp, struct timer *t);
struct job_run *spe__job_run_new(struct job_def *def, uint32_t order);
void spe__job_run_free(struct job_run *job);

/* engine.c: answering commands. */
/* Answer a command once the current set is durable. */
void spe__engine_answer(struct engine *eng, struct command *c, int rc);
/* Queue a command for the engine thread and wait for its answer (other
 * threads). The message of a failure goes to *msg. */
int spe__engine_call(struct engine *eng, struct command *c, char **msg);

/* queries.c: list, count and prune on the engine thread. */
void spe__engine_do_list(struct engine *eng, struct command *c);
void spe__engine_do_count(struct engine *eng, struct command *c);
void spe__engine_do_prune(struct engine *eng, struct command *c);
/* Give the fill set the next waiting prune, if it has none. */
void spe__engine_prune_next(struct engine *eng);
/* A set's commit is over (rc): the prune's count, then free its pruned jobs. */
void spe__engine_prune_done(struct engine *eng, struct round_set *set, int rc);
void spe__engine_free_pruned(struct round_set *set);
/* A job the engine does not hold, read from the store (other threads). */
int spe__engine_get_stored(struct engine *eng, const char *id, json_t **out, char **msg);

/* input.c: a task's input (every ancestor's result). */
/* Whether task t has no upstream task (its input is {}). */
static inline int spe__input_none(const struct job_run *job, uint32_t t) {
  return job->def->pred_off[t] == job->def->pred_off[t + 1];
}
/* As an object (a new reference) or as text (malloc'd), on the engine
 * thread; NULL when out of memory. */
json_t *spe__input_build(struct job_run *job, uint32_t t);
char *spe__input_text(struct job_run *job, uint32_t t, size_t *len);
/* The callbacks of thread-isolated calls (struct call_req, func/func.h), with
 * the job as ctx: the call borrows from the job (counted in job->calls until
 * release), reads its function's name, arg and names itself, and builds its
 * input itself, on its own thread, if it asks. */
json_t *spe__input_for_call(void *ctx, uint32_t t);
void spe__input_describe(void *ctx, uint32_t t, struct call_desc *d);
void spe__input_release(void *ctx);

/* recover.c */
/* A job_run from a job read back from the store, its tasks' stored states
 * restored (readiness not computed). 0; SPE_ESTORE when the stored job cannot
 * be read back (*msg says why); SPE_ENOMEM. Stored tasks beyond the job's are
 * ignored, with a warning on `lg` if not NULL. *cut_short: tasks recorded as
 * running. */
int spe__job_run_from_stored(const struct stored_job *sj, uint32_t order,
                             const struct logger *lg, struct job_run **out,
                             uint32_t *cut_short, char **msg);
int spe__engine_recover(struct engine *eng, char **msg);
/* Put a stored task's state back into a job read from the store (r->index <
 * the job's tasks). Returns 1 if it was recorded as running. */
int spe__job_run_restore_task(struct job_run *job, const struct task_rec *r);
void spe__engine_release_held(struct engine *eng, struct job_run *job);

/* record.c: the round's changes (store batch + events). The checks whether
 * there is anything to record are inline: with the memory store and nobody
 * subscribed, a million tiny tasks record nothing, and calls that find so
 * were a tenth of the engine's instructions. */
void spe__record_job(struct engine *eng, struct job_run *job);
void spe__record_task_row(struct engine *eng, struct job_run *job, uint32_t t);
static inline void spe__record_task(struct engine *eng, struct job_run *job, uint32_t t) {
  if (eng->keeps_state) spe__record_task_row(eng, job, t);
}
void spe__record_event(struct engine *eng, json_t *ev);
/* Whether an event could be seen: the store keeps it (an event log, or the
 * memory store's event history for spe_events_since), or a subscriber
 * receives it (spe_subscribe: one made while a change happens may or may not
 * see it). */
static inline int spe__events_on(const struct engine *eng) {
  return eng->keeps_events || atomic_load_explicit(eng->nsubs, memory_order_acquire) != 0;
}
json_t *spe__event_build(struct engine *eng, const struct job_run *job, const char *type,
                         int64_t at_ms);
/* A new event of `type` for `job`, for a change that happened at `at_ms`
 * (wall clock), or NULL when nobody could see it (building it would be
 * wasted) or memory ran out. Every field added to NULL is dropped by jansson;
 * spe__record_event(NULL) does nothing. Guard costly fields with `if (ev)`. */
static inline json_t *spe__event_new_at(struct engine *eng, const struct job_run *job,
                                        const char *type, int64_t at_ms) {
  return spe__events_on(eng) ? spe__event_build(eng, job, type, at_ms) : NULL;
}
/* The same, for a change that happens now. */
json_t *spe__event_new(struct engine *eng, const struct job_run *job, const char *type);

/* snapshot.c: the SPEC §3 view. */
json_t *spe__job_json(const struct job_run *job);
json_t *spe__tasks_json(const struct job_run *job);
json_t *spe__task_json(const struct job_run *job, uint32_t t);

#endif
