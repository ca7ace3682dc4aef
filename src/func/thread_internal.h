/*
 * Thread isolation's private types, shared by its three files:
 *   thread_pool.c  the threads, the queue of runs to call and the list of runs
 *                  called (one mutex), and the eventfd that tells the loop;
 *   thread_run.c   one attempt: its memory (recycled), the call on a pool
 *                  thread, and its outcome;
 *   thread_exec.c  the executor of impl.h on the loop: starts, timeouts,
 *                  signals, reporting.
 *
 * A run belongs to exactly one place at a time: the executor's free list, the
 * pool's queue, a pool thread (while it is called), or the pool's done list.
 * Only the loop's thread moves it from the done list back to the free list, so
 * a run reported early (a timeout, a cancel) lives on until its call returns.
 */
#ifndef SPE_FUNC_THREAD_INTERNAL_H
#define SPE_FUNC_THREAD_INTERNAL_H

#include "func/impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* One attempt of an `exec` task. */
struct func_run {
  /* The queue, the done list or the free list (whoever holds the run). */
  struct func_run *next;

  /* What the call needs: set on the loop's thread before the run is queued,
   * read-only until it comes back. */
  const struct func_entry *fn;
  json_t *input;            /* referenced */
  json_t *arg;              /* referenced; json_null() when the task has none */
  const char *job_id, *job_name, *task; /* in `strs` */
  char *strs;               /* the three strings; kept across reuse */
  size_t strs_cap;
  uint32_t attempt;
  uint64_t timeout_ms;      /* 0: none */

  /* Shared with the pool thread (atomics, relaxed: each is a fact on its own). */
  atomic_int cancelled;     /* spe_call_cancelled(); set on the loop's thread */
  _Atomic int64_t started_ms;  /* wall clock when the call began, 0 before */
  _Atomic int64_t begun_mono;  /* timed runs: monotonic ms of the call's start */
  _Atomic int64_t ended_mono;  /*   and of its return; 0 until then */

  /* The call's answer: written on the pool thread, read on the loop's thread
   * after the done list handed the run over (under the pool's mutex). */
  json_t *result;           /* a new reference, or NULL */
  char *error;              /* spe_call_fail()'s message, or NULL */

  /* The loop's thread only. */
  struct thread_exec *tx;
  void *task_ctx;
  struct timer timer;       /* the timeout */
  struct func_run *forced_next; /* the executor's list of early reports */
  uint8_t reported;         /* the done callback has had it */
  uint8_t finished;         /* back from the pool: its call is over */
  uint8_t forced_queued;    /* on the list of early reports */
  struct forced_outcome forced; /* when set, the outcome whatever the call did */
};

/* A pool thread. */
struct pool_worker {
  struct thread_pool *pool;
  pthread_t thread;
  pthread_cond_t wake;      /* this thread sleeps on it, alone */
  /* Under the pool's mutex: */
  int woken;                /* set by whoever took it off the idle stack */
  int counted;              /* claimed or woken, counted in nlooking */
  struct pool_worker *next_idle;
  struct func_run *current; /* the run being called, or NULL */
  atomic_int claimed;       /* spinning: a submit counts on it to take a run */
  /* The loop's thread only: */
  struct pool_worker *next; /* every thread started */
};

/* The threads and their queues. */
struct thread_pool {
  pthread_mutex_t mu;
  /* Under mu: */
  struct func_run *head, *tail;           /* to call, first in first out */
  struct func_run *done_head, *done_tail; /* called, in the order they returned */
  int notified;              /* the eventfd was written since the loop last took
                                the done list */
  atomic_int has_done;       /* the done list is not empty (read without mu by
                                a loop spinning for it) */
  int stopping;
  struct pool_worker *idle;  /* threads asleep, the last to sleep on top */
  struct pool_worker *spinner; /* the thread spinning for a run, if any */
  uint32_t nlooking;         /* threads claimed or woken, not at the queue yet */
  /* The loop's thread only: */
  struct pool_worker *all;
  uint32_t nthreads, max_threads;
  int efd;                   /* readable when the done list may hold runs */
};

int spe__tpool_init(struct thread_pool *p, uint32_t max_threads);
/* Queue a run; hand it to the spinning thread, or wake a sleeping one, or
 * start one more if none sleeps and fewer than max_threads run. Fails (and
 * does not queue the run) only when no thread at all could be started:
 * SPE_ESYS or SPE_ENOMEM, *msg says why. When one more thread could not be
 * started but others run, returns 0 with *msg set, and the pool stays at the
 * threads it has. */
int spe__tpool_submit(struct thread_pool *p, struct func_run *run, char **msg);
/* Take every run whose call is over, in order (chained through `next`). */
struct func_run *spe__tpool_take_done(struct thread_pool *p);
/* Spin (yielding the CPU) until the done list holds a run or max_ns passed. */
void spe__tpool_spin_for_done(struct thread_pool *p, int64_t max_ns);
/* Make the eventfd readable (the loop's own early reports use it too). */
void spe__tpool_notify(struct thread_pool *p);
/* Drop the queue, set `cancelled` on the runs being called, wait for every
 * thread to end, and return every run the pool still held (chained). */
struct func_run *spe__tpool_stop(struct thread_pool *p);
void spe__tpool_destroy(struct thread_pool *p);

/* The executor (thread_exec.c). */
struct thread_exec {
  struct thread_pool pool;
  struct loop *lp;
  const struct logger *lg;
  const struct spe_registry *reg;
  cmd_done_fn done;
  void *ctx;
  struct io_watch wake_w;   /* on pool.efd */
  uint32_t nrunning;        /* started and not reported */
  struct func_run *forced_head, *forced_tail; /* early reports to make */
  struct func_run *free_runs; /* ready for reuse */
  uint32_t nfree;
};

/* thread_run.c */
struct func_run *spe__trun_get(struct thread_exec *tx);
/* Fill a run from a launch: copies the strings, references input and arg.
 * 0 or SPE_ENOMEM. */
int spe__trun_fill(struct func_run *run, const struct thread_exec *tx,
                   const struct task_launch *l, const struct func_entry *fn);
/* Drop what the run references and keep it for reuse (or free it). */
void spe__trun_put(struct thread_exec *tx, struct func_run *run);
void spe__trun_free(struct func_run *run);
/* On a pool thread: call the function, unless the run was cancelled before. */
void spe__trun_call(struct func_run *run);
/* The outcome of a run whose call is over, or that is forced (finished at now_ms,
 * wall clock). Hands the result over. */
void spe__trun_outcome(struct func_run *run, int64_t now_ms, struct task_outcome *out);

#endif
