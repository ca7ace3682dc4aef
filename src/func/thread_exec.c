/*
 * Thread isolation's executor (func/impl.h, contract in func/func.h): `exec`
 * tasks called on the pool of thread_pool.c, reported on the loop.
 *
 * Everything here runs on the loop's thread. A started run is reported exactly
 * once, through one of three paths:
 *   - its call returned: the loop takes the pool's notes at once (in every
 *     round, spe__thread_exec_poll, or when the eventfd wakes it, on_wake)
 *     and reports each, in order (a run queued ahead found under way by an
 *     earlier take had its start reported then, through the `started`
 *     callback; otherwise its outcome's started_ms tells it: func.h);
 *   - its timeout passed (on_timeout, a loop timer): reported "timeout" there
 *     and then, with `cancelled` set for the function to notice;
 *   - it was signalled: `cancelled` is set and the run joins the list of early
 *     reports, made from the next on_wake (the eventfd is written so that the
 *     loop wakes even when nothing else happens) - never inside the signal call.
 * `reported` says the first path taken; the others then only free the run
 * (when its call is over: a function cannot be stopped, so a run reported early
 * lives until it returns, and its late result is dropped). A run signalled
 * with a kind is reported with that kind whatever the call did.
 *
 * A run queued ahead may instead be withdrawn before its call begins
 * (spe__thread_exec_withdraw): then it is never reported, and only put away
 * when the pool hands it back.
 *
 * The timeout counts from the moment the function was called, not from the
 * start request: a run that waits in the queue behind busy threads has not
 * used any of its time yet.
 */
#include "func/thread_internal.h"

#include "base/clock.h"
#include "spe.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void on_wake(struct loop *lp, struct io_watch *w, uint32_t events);

int spe__thread_exec_new(struct thread_exec **out, const struct func_exec_config *cfg,
                         struct loop *lp, const struct logger *lg, cmd_done_fn done, void *ctx) {
  *out = NULL;
  struct thread_exec *tx = calloc(1, sizeof *tx);
  if (tx == NULL) return SPE_ENOMEM;
  uint32_t threads = cfg->workers;
  if (threads == UINT32_MAX) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (uint32_t)n : 1;
  }
  tx->lp = lp;
  tx->lg = lg;
  tx->done = done;
  tx->started = cfg->started;
  tx->input_fn = cfg->input_fn;
  tx->release_fn = cfg->release_fn;
  tx->ctx = ctx;
  tx->wake_w.fd = -1;
  int rc = spe__tpool_init(&tx->pool, threads, cfg->slots, cfg->reg, cfg->describe_fn);
  if (rc == 0) {
    rc = spe__io_start(lp, &tx->wake_w, tx->pool.efd, EPOLLIN | EPOLLET, on_wake, tx);
    if (rc != 0) spe__tpool_destroy(&tx->pool);
  }
  if (rc != 0) {
    free(tx);
    return rc;
  }
  *out = tx;
  return 0;
}

/* A run queued ahead whose call has begun: report its start, once. */
static void report_start(struct thread_exec *tx, struct func_run *run) {
  if (!run->ahead || run->start_reported || run->reported ||
      atomic_load_explicit(&run->state, memory_order_acquire) != RUN_CALLING)
    return;
  run->start_reported = 1;
  if (tx->started != NULL)
    tx->started(tx->ctx, run->task_ctx,
                atomic_load_explicit(&run->started_ms, memory_order_relaxed));
}

/* Report a run (not reported yet) to the done callback. A start not reported
 * yet is not reported apart: the outcome's started_ms says it (func.h). */
static void report(struct thread_exec *tx, struct func_run *run, int64_t now_ms) {
  run->start_reported = 1;
  struct task_outcome out;
  spe__trun_outcome(run, now_ms, &out);
  if (spe__timer_active(&run->timer)) spe__timer_stop(tx->lp, &run->timer);
  run->reported = 1;
  tx->nrunning--;
  tx->done(tx->ctx, run->task_ctx, &out);
}

static void on_timeout(struct loop *lp, struct timer *t) {
  struct func_run *run = t->data;
  int64_t limit = (int64_t)run->timeout_ms;
  int64_t begun = atomic_load_explicit(&run->begun_mono, memory_order_relaxed);
  int64_t ended = atomic_load_explicit(&run->ended_mono, memory_order_relaxed);
  /* The timer has just left the loop's heap: restarting it needs no memory. */
  if (begun == 0) {
    /* Still queued (or being taken off the queue right now). */
    spe__timer_start(lp, t, limit, on_timeout, run);
    return;
  }
  if (ended != 0 && ended - begun <= limit) return; /* returned in time: on_wake reports */
  if (ended == 0 && lp->now_ms - begun < limit) {
    spe__timer_start(lp, t, limit - (lp->now_ms - begun), on_timeout, run);
    return;
  }
  spe__forced_timeout(&run->forced, run->timeout_ms); /* unless a signal came first */
  /* Nobody waits for the call's result any more: spe_call_cancelled(). */
  atomic_store_explicit(&run->cancelled, 1, memory_order_relaxed);
  report(run->tx, run, spe__now_ms());
}

/* The early reports asked for by signals. */
static void report_forced(struct thread_exec *tx) {
  struct func_run *run;
  while ((run = tx->forced_head) != NULL) {
    tx->forced_head = run->forced_next;
    if (tx->forced_head == NULL) tx->forced_tail = NULL;
    run->forced_queued = 0;
    if (!run->reported) report(tx, run, spe__now_ms());
    if (run->finished) spe__trun_put(tx, run);
  }
}

/* A run is back from the pool: its call is over (or was skipped). */
static void finish(struct thread_exec *tx, struct func_run *run, int64_t now_ms) {
  run->finished = 1;
  if (!run->reported) report(tx, run, now_ms);
  if (!run->forced_queued) spe__trun_put(tx, run);
}

/* Report what the pool noted, and the early reports. */
static void take_notes(struct thread_exec *tx) {
  struct func_run *calling;
  struct func_run *done = spe__tpool_take_notes(&tx->pool, &calling);
  report_forced(tx);
  tx->last_taken = 0;
  if (done != NULL) {
    int64_t now = spe__now_ms();
    for (struct func_run *run = done, *next; run != NULL; run = next) {
      tx->last_taken++;
      next = run->done_next; /* the callbacks may reuse the run once it is put back */
      /* The list is a chain of lines a pool thread wrote last: each one
       * read only when its turn comes is a miss to another CPU's cache, one
       * after the other. Asked for now, the next one's comes while this run
       * is reported - to be written: its report and its reuse write it. */
      if (next != NULL) spe__prefetch_write(&next->done_next);
      finish(tx, run, now);
    }
  }
  /* Calls that began after those ended (thread_internal.h). */
  for (struct func_run *run = calling; run != NULL; run = run->start_next) report_start(tx, run);
  /* Signals sent by the done callbacks: no need to wait for another wake-up. */
  report_forced(tx);
}

static void on_wake(struct loop *lp, struct io_watch *w, uint32_t events) {
  take_notes(w->data);
}

int spe__thread_exec_has_notes(struct thread_exec *tx) {
  return spe__tpool_has_notes(&tx->pool) || tx->forced_head != NULL;
}

int spe__thread_exec_sleep_begin(struct thread_exec *tx, int until_dry) {
  return spe__tpool_sleep_begin(&tx->pool, until_dry);
}

void spe__thread_exec_sleep_end(struct thread_exec *tx) { spe__tpool_sleep_end(&tx->pool); }

static void warn_threads(struct thread_exec *tx, char *msg) {
  if (msg == NULL) return;
  spe__log(tx->lg, SPE_LOG_WARN, "thread isolation: %s; going on with %u threads", msg,
           tx->pool.nthreads);
  free(msg);
}

void spe__thread_exec_poll(struct thread_exec *tx) {
  if (spe__thread_exec_has_notes(tx)) take_notes(tx);
  char *msg = NULL;
  spe__tpool_check_stall(&tx->pool, tx->lp->now_ms, &msg);
  warn_threads(tx, msg);
}

void spe__thread_exec_flush(struct thread_exec *tx) {
  if (tx->staged_head == NULL) return;
  char *msg = NULL;
  spe__tpool_submit_list(&tx->pool, tx->staged_head, tx->staged_tail, tx->nstaged, &msg);
  tx->staged_head = tx->staged_tail = NULL;
  tx->nstaged = 0;
  warn_threads(tx, msg);
}

/* A start that failed: `error` (the error object, may be NULL) goes to `failed`. */
static int fail_start(struct task_outcome *failed, int rc, json_t *error) {
  spe__outcome_failed(failed, error);
  return rc;
}

/* Hand a filled run to the pool (or stage it, when queued ahead). */
static int hand_over(struct thread_exec *tx, struct func_run *run, struct func_run **out,
                     struct task_outcome *failed) {
  int rc = 0;
  if (run->timeout_ms > 0) {
    atomic_store_explicit(&run->begun_mono, 0, memory_order_relaxed);
    atomic_store_explicit(&run->ended_mono, 0, memory_order_relaxed);
    rc = spe__timer_start(tx->lp, &run->timer, (int64_t)run->timeout_ms, on_timeout, run);
  }
  if (rc != 0) {
    run->release_fn = NULL; /* a start that fails leaves all to the caller */
    spe__trun_put(tx, run);
    return fail_start(failed, rc, spe__error_new("error", "out of memory starting a call"));
  }
  if (run->ahead && tx->pool.nthreads > 0) {
    /* Handed over with the others of this round (spe__thread_exec_flush). */
    run->next = NULL;
    if (tx->staged_tail) tx->staged_tail->next = run;
    else tx->staged_head = run;
    tx->staged_tail = run;
    tx->nstaged++;
    tx->nrunning++;
    *out = run;
    return 0;
  }
  char *msg = NULL;
  rc = spe__tpool_submit(&tx->pool, run, &msg);
  if (rc == 0) {
    warn_threads(tx, msg);
    msg = NULL;
  }
  if (rc != 0) {
    spe__timer_stop(tx->lp, &run->timer);
    run->release_fn = NULL;
    spe__trun_put(tx, run);
    rc = fail_start(failed, rc,
                    spe__error_new("error", "%s", msg ? msg : "cannot start a thread"));
    free(msg);
    return rc;
  }
  tx->nrunning++;
  *out = run;
  return 0;
}

int spe__thread_exec_start(struct thread_exec *tx, const struct task_launch *launch,
                           void *task_ctx, struct func_run **out, struct task_outcome *failed) {
  *out = NULL;
  const char *name = launch->function ? launch->function : "";
  if (launch->release_fn == NULL) /* required: the run borrows (exec/exec.h) */
    return fail_start(failed, SPE_EINVAL,
                      spe__error_new("error", "a call started without a release function"));
  const struct func_entry *fn = tx->last_fn = spe__fn_find(tx->pool.reg, tx->last_fn, name);
  if (fn == NULL)
    return fail_start(failed, SPE_EINVAL,
                      spe__error_new("error", "no function \"%s\" is registered", name));
  struct func_run *run = spe__trun_get(tx);
  if (run == NULL)
    return fail_start(failed, SPE_ENOMEM, spe__error_new("error", "out of memory starting a call"));
  run->task_ctx = task_ctx;
  spe__trun_fill(run, launch, fn);
  return hand_over(tx, run, out, failed);
}

int spe__thread_exec_call(struct thread_exec *tx, const struct call_req *req, void *task_ctx,
                          struct func_run **out, struct task_outcome *failed) {
  *out = NULL;
  if (tx->pool.describe_fn == NULL || tx->release_fn == NULL)
    return fail_start(failed, SPE_EINVAL,
                      spe__error_new("error", "calls by reference need the executor's callbacks"));
  struct func_run *run = spe__trun_get(tx);
  if (run == NULL)
    return fail_start(failed, SPE_ENOMEM, spe__error_new("error", "out of memory starting a call"));
  run->task_ctx = task_ctx;
  run->fn = NULL; /* found by the calling thread (describe_fn) */
  run->by_ref = 1;
  run->input = req->input;
  run->input_fn = req->input != NULL ? NULL : tx->input_fn;
  run->release_fn = tx->release_fn;
  run->release_ctx = req->ctx;
  run->input_task = req->task;
  run->attempt = req->attempt;
  run->timeout_ms = req->timeout_ms;
  run->ahead = req->ahead != 0;
  return hand_over(tx, run, out, failed);
}

void spe__thread_exec_signal(struct thread_exec *tx, struct func_run *run, int sig,
                             const char *kind) {
  /* A thread cannot be interrupted: `sig` has nothing to act on. The call is
   * given up instead (a signal without a kind means the same to the engine). */
  if (run == NULL || run->reported) return;
  if (kind != NULL) spe__forced_set(&run->forced, kind, "%s", kind);
  else spe__forced_set(&run->forced, "cancelled", "interrupted");
  atomic_store_explicit(&run->cancelled, 1, memory_order_relaxed); /* as above */
  if (run->forced_queued) return;
  run->forced_queued = 1;
  run->forced_next = NULL;
  if (tx->forced_tail != NULL) {
    tx->forced_tail->forced_next = run;
  } else {
    tx->forced_head = run;
    spe__tpool_notify(&tx->pool); /* the report comes from the next poll */
  }
  tx->forced_tail = run;
}

uint32_t spe__thread_exec_running(const struct thread_exec *tx) { return tx->nrunning; }

int spe__thread_exec_withdraw(struct thread_exec *tx, struct func_run *run, int64_t *started_ms) {
  *started_ms = 0;
  if (run == NULL || !run->ahead || run->reported) return 0;
  int queued = RUN_QUEUED;
  if (atomic_compare_exchange_strong_explicit(&run->state, &queued, RUN_WITHDRAWN,
                                              memory_order_acq_rel, memory_order_acquire)) {
    /* Never called, never reported: the pool hands it back (its end note)
     * and finish() only puts it away. */
    spe__timer_stop(tx->lp, &run->timer);
    run->reported = 1;
    tx->nrunning--;
    return 1;
  }
  /* Its call has begun: the caller notes the start, the note is skipped. */
  run->start_reported = 1;
  *started_ms = atomic_load_explicit(&run->started_ms, memory_order_relaxed);
  return 0;
}

void spe__thread_exec_slot_freed(struct thread_exec *tx) {
  char *msg = NULL;
  spe__tpool_kick(&tx->pool, &msg);
  warn_threads(tx, msg);
}

/* Once news came, how long the spin goes on gathering more: with tiny calls
 * one comes every few hundred nanoseconds, and a round taken for each one or
 * two spent more on the round than on the calls (and took the pool's mutex
 * from the calling thread as often). But not when the last take found
 * GATHER_ENOUGH or more: the calls end faster than the loop reports them
 * (100 random DAGs), news piles up by itself, and the loop's time is what
 * each round waited (a microsecond a round was a sixth of its time). */
#define GATHER_NS 1000
#define GATHER_ENOUGH 16

void spe__thread_exec_spin(struct thread_exec *tx, int64_t max_ns) {
  if (tx->nrunning > 0 && tx->forced_head == NULL)
    spe__tpool_spin_for_notes(&tx->pool, max_ns,
                              tx->last_taken >= GATHER_ENOUGH ? 0 : GATHER_NS);
}

void spe__thread_exec_committing(struct thread_exec *tx, int on) {
  atomic_store_explicit(&tx->pool.committing, on, memory_order_relaxed);
}

void spe__thread_exec_free(struct thread_exec *tx) {
  if (tx == NULL) return;
  spe__io_stop(tx->lp, &tx->wake_w);
  /* Early reports not made: a run there whose call is over is held by nobody
   * else; the others are still the pool's. */
  for (struct func_run *run = tx->forced_head, *next; run != NULL; run = next) {
    next = run->forced_next;
    if (run->finished) spe__trun_free(run);
  }
  for (struct func_run *run = tx->staged_head, *next; run != NULL; run = next) {
    next = run->next;
    spe__timer_stop(tx->lp, &run->timer);
    spe__trun_free(run);
  }
  struct func_run *held = spe__tpool_stop(&tx->pool);
  for (struct func_run *run = held, *next; run != NULL; run = next) {
    next = run->next;
    spe__timer_stop(tx->lp, &run->timer);
    spe__trun_free(run);
  }
  for (struct func_run *run = tx->free_runs, *next; run != NULL; run = next) {
    next = run->next;
    spe__trun_free(run);
  }
  spe__tpool_destroy(&tx->pool);
  free(tx);
}
