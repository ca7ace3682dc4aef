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
 * pool's queue, a pool thread (while it is called), or the pool's list of
 * runs done. Only the loop's thread moves it from that list back to the free
 * list, so a run reported early (a timeout, a cancel) lives on until its call
 * returns.
 *
 * Runs queued ahead (launch->ahead, func/func.h): the engine hands more runs
 * to the pool than `workers`, and the pool bounds the calls instead. A run's
 * `state` decides, once, whether it is called (a pool thread moves it from
 * QUEUED to CALLING, after taking a slot) or withdrawn (the loop's thread
 * moves it from QUEUED to WITHDRAWN): whoever wins the compare-and-swap.
 *
 * What the loop learns (spe__tpool_take_notes): the runs done, in the order
 * their calls ended, and the runs being called at that moment. Each run's
 * start is reported before its end: from its place in the list of runs done
 * if its call began and ended between two takes (tiny calls, most of them:
 * one fact per run to pass between threads, not two), else when a take finds
 * it being called. Both come from one moment under the pool's mutex, so the
 * reports never show a thread in two calls at once: a thread's previous call
 * ended (and is in the list, or an earlier one) before it began the next.
 */
#ifndef SPE_FUNC_THREAD_INTERNAL_H
#define SPE_FUNC_THREAD_INTERNAL_H

#include "func/impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

enum run_state { RUN_QUEUED, RUN_CALLING, RUN_WITHDRAWN };

/* One attempt of an `exec` task.
 *
 * Its fields are grouped by who writes them, each group on cache lines of its
 * own (the run is allocated on a line boundary): handing a run from one CPU
 * to another costs a cache miss per line that changed hands, and with tiny
 * calls those misses are most of what a call costs, on both sides. The pool
 * thread reads the first two lines and writes the next two; the last ones
 * only the loop's thread touches. */
struct func_run {
  /* What the call needs: set on the loop's thread before the run is queued,
   * read-only until it comes back (but `cancelled`). One line. */
  _Alignas(64) struct func_run *next; /* the queue, the free list, or the list
                               spe__tpool_stop() returns */
  const struct func_entry *fn; /* NULL for a call by reference (by_ref) */
  json_t *input;            /* borrowed (release_fn); NULL when built
                               lazily by input_fn */
  void *release_ctx;
  json_t *(*input_fn)(void *ctx, uint32_t task);
  uint64_t timeout_ms;      /* 0: none */
  uint32_t input_task;
  uint32_t attempt;
  atomic_int cancelled;     /* spe_call_cancelled(); set on the loop's thread
                               (relaxed: a fact on its own) */
  uint8_t ahead;            /* queued ahead: a pool thread takes a slot for the
                               call, and its start is reported (started_fn);
                               otherwise the caller took the slot already */
  uint8_t by_ref;           /* spe__thread_exec_call: the calling thread finds
                               the function, arg and names (the pool's
                               describe_fn); else they are the fields below */
  /* A call started with a launch (not by_ref): */
  _Alignas(64) json_t *arg; /* borrowed; json_null() when the task has none */
  const char *job_id, *job_name, *task; /* borrowed */

  /* Written on the pool thread (one line), read on the loop's thread. The
   * answer is read after the run was handed over through the list of runs
   * done (under the pool's mutex); the atomics (relaxed: each is a fact on
   * its own) also before. */
  _Alignas(64) struct func_run *done_next; /* the pool's list of runs done */
  atomic_int state;         /* enum run_state (acquire/release: see above) */
  _Atomic int64_t started_ms;  /* wall clock when the call began, 0 before
                                  (written before `state` becomes CALLING) */
  _Atomic int64_t ended_ms;    /* wall clock when it returned, 0 before */
  json_t *result;           /* the call's answer: a new reference, or NULL */
  char *error;              /* spe_call_fail()'s message, or NULL */
  /* Timed runs only, on the pool thread: */
  _Alignas(64) _Atomic int64_t begun_mono; /* monotonic ms of the call's start */
  _Atomic int64_t ended_mono;  /*   and of its return; 0 until then */

  /* The loop's thread only. */
  _Alignas(64) void (*release_fn)(void *ctx); /* strings, arg and input are
                               borrowed until the run is put away
                               (exec/exec.h); NULL once called, or when the
                               start failed */
  struct thread_exec *tx;
  void *task_ctx;
  struct timer timer;       /* the timeout */
  struct func_run *forced_next; /* the executor's list of early reports */
  struct func_run *start_next; /* a take's list of runs being called */
  uint8_t reported;         /* the done callback has had it (or it was
                               withdrawn: it never will) */
  uint8_t start_reported;   /* an ahead run: its start was reported */
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
  struct fn_cache {        /* this thread only (spe__trun_call): */
    const struct func_entry *fn; /* the function it found last, */
    const char *name;       /* for a call by reference, by this pointer */
    const void *owner;      /* of this owner (struct call_desc) */
    uint64_t owner_id;
  } last;
  atomic_int claimed;       /* spinning: a submit counts on it to take a run */
  /* The loop's thread only: */
  struct pool_worker *next; /* every thread started */
};

/* What the loop is doing, for put_news: awake (it reads the notes itself),
 * asleep (the first note wakes it), or asleep until the queue runs dry (a
 * note wakes it only when no run waits: it has nothing to hand over, and
 * something else - a commit's end - wakes it for the rest). */
enum { LOOP_AWAKE, LOOP_SLEEPS, LOOP_SLEEPS_UNTIL_DRY };

/* The threads and their queues. */
/* The threads and their queues. The fields are grouped by who writes them,
 * each group on cache lines of its own (the padding): a field written at every
 * call must not share a line with one another thread reads in a loop, or each
 * write costs a cache miss (false sharing: the loop spins on `has_notes`
 * while the threads note calls). */
struct thread_pool {
  /* Under mu (the threads and the loop): */
  pthread_mutex_t mu;
  struct func_run *head, *tail;           /* to call: runs holding a slot
                                             first, then first in first out */
  struct func_run *done_head, *done_tail; /* runs done, in the order their
                                calls ended (or were skipped) */
  int notified;              /* the eventfd was written since the loop last took
                                the notes */
  int stopping;
  struct pool_worker *idle;  /* threads asleep, the last to sleep on top */
  struct pool_worker *spinner; /* the thread spinning for a run, if any */
  uint32_t nlooking;         /* threads claimed or woken, not at the queue yet */
  uint32_t ncalling;         /* threads between taking a run and noting its end */
  atomic_uint queued;        /* runs in the queue: written under mu, read by the
                                loop without it */
  char pad_mu[64];
  /* Written by the loop (a few times a round), read by the threads: */
  _Atomic long *slots;       /* free slots shared with the engine (borrowed),
                                or NULL: calls are bounded by the threads only */
  const struct spe_registry *reg; /* where calls by reference find their
                                function (read-only) */
  void (*describe_fn)(void *ctx, uint32_t task, struct call_desc *d); /* theirs
                                (func_exec_config; read-only) */
  atomic_int loop_sleeping;  /* LOOP_*: whether notes must wake the loop
                                (put_news) */
  atomic_int committing;     /* a commit runs on another thread: a thread
                                without a run spins briefly (spin_wait) */
  char pad_loop[64];
  /* Written under mu by the first news after a take, and by the loop's
   * take; read by the loop without mu, also while it spins: */
  atomic_int has_notes;      /* a run is done, or a call began, since the
                                loop's last take */
  char pad_notes[64];
  /* The loop's thread only: */
  int64_t empty_ms;          /* when the loop last saw the queue empty
                                (spe__tpool_check_stall) */
  struct pool_worker *all;
  uint32_t nthreads, max_threads;
  int efd;                   /* readable when notes may wait for a sleeping
                                loop */
};

int spe__tpool_init(struct thread_pool *p, uint32_t max_threads, _Atomic long *slots,
                    const struct spe_registry *reg,
                    void (*describe_fn)(void *ctx, uint32_t task, struct call_desc *d));
/* Queue a run (one that holds its slot before every run that does not);
 * hand it to the spinning thread, or wake a sleeping one, or start one more
 * if none sleeps and fewer than max_threads run - unless it needs a slot and
 * none is free (whoever frees one comes back to the queue: a pool thread
 * after its call, the engine through spe__tpool_kick). Fails (and
 * does not queue the run) only when no thread at all could be started:
 * SPE_ESYS or SPE_ENOMEM, *msg says why. When one more thread could not be
 * started but others run, returns 0 with *msg set, and the pool stays at the
 * threads it has. */
int spe__tpool_submit(struct thread_pool *p, struct func_run *run, char **msg);
/* Queue n runs queued ahead, chained through `next`, at once (one lock for a
 * round's worth). At least one thread must have been started (a first
 * spe__tpool_submit): then it cannot fail; *msg may say why no more threads
 * could be started. */
void spe__tpool_submit_list(struct thread_pool *p, struct func_run *head, struct func_run *tail,
                            unsigned n, char **msg);
/* A slot was freed outside the pool: make sure a thread comes if runs wait
 * (*msg as for spe__tpool_submit_list). */
void spe__tpool_kick(struct thread_pool *p, char **msg);
/* The loop is about to sleep: from now on notes wake it (with until_dry, only
 * once no run waits in the queue). Returns 1 if notes that would wake it are
 * waiting already (then it should not sleep). */
int spe__tpool_sleep_begin(struct thread_pool *p, int until_dry);
void spe__tpool_sleep_end(struct thread_pool *p);
/* Once a round, the loop's thread: if the queue has not been seen empty for
 * STALL_MS or more (the threads calling do not keep up: long calls), bring
 * another thread (*msg as for spe__tpool_submit_list). While the loop is awake, a second thread is not
 * brought for runs that a thread in a call will come back for: with tiny
 * calls the loop is the bottleneck, and that thread would take its CPU. Going
 * to sleep (spe__tpool_sleep_begin) brings every thread runs need. */
void spe__tpool_check_stall(struct thread_pool *p, int64_t now_ms, char **msg);
/* Whether news waits: a run done or a call begun since the last take
 * (without the lock; after taking a slot, all news from before it was given
 * back is seen). */
int spe__tpool_has_notes(struct thread_pool *p);
/* The loop's thread: take the runs done, in the order their calls ended
 * (chained through `done_next`), and into *calling the runs queued ahead
 * being called now whose start was not reported (`start_reported`), chained
 * through `start_next`. */
struct func_run *spe__tpool_take_notes(struct thread_pool *p, struct func_run **calling);
/* Spin (yielding the CPU) until news comes (has_notes) or max_ns passed; once
 * news came, go on for gather_ns more, gathering more news for the same
 * round. */
void spe__tpool_spin_for_notes(struct thread_pool *p, int64_t max_ns, int64_t gather_ns);
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
  const struct func_entry *last_fn; /* the last found in pool.reg (the
                                executor's copy: its entries never move) */
  cmd_done_fn done;
  func_started_fn started;  /* may be NULL */
  /* spe__func_call's callbacks (func_exec_config), or NULL (describe_fn:
   * pool.describe_fn): */
  json_t *(*input_fn)(void *ctx, uint32_t task);
  void (*release_fn)(void *ctx);
  void *ctx;
  struct io_watch wake_w;   /* on pool.efd */
  uint32_t nrunning;        /* started and not reported (nor withdrawn) */
  struct func_run *forced_head, *forced_tail; /* early reports to make */
  struct func_run *staged_head, *staged_tail; /* runs queued ahead, handed to
                                the pool at the next flush, */
  unsigned nstaged;         /* this many */
  struct func_run *free_runs; /* ready for reuse */
  uint32_t nfree;
  uint32_t last_taken;      /* runs done that the last take of notes found */
};

/* Ask for the cache line at p, to be written: in the exclusive state, so that
 * the writes that follow need not go back to the CPU that wrote it last.
 * GCC emits PREFETCHW for __builtin_prefetch(p, 1) only when told the CPU has
 * it (-mprfchw); every x86-64 CPU runs the instruction (those before it
 * as a no-op). */
static inline void spe__prefetch_write(const void *p) {
#if defined(__x86_64__)
  __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 1);
#endif
}

/* The function named `name`: `last` if it is that one (the calls of a job
 * mostly go to one function: a compare on a warm entry instead of a hash
 * lookup), else the registry's entry, or NULL. */
static inline const struct func_entry *spe__fn_find(const struct spe_registry *reg,
                                                    const struct func_entry *last,
                                                    const char *name) {
  return last != NULL && strcmp(last->name, name) == 0 ? last : spe__registry_find(reg, name);
}

/* thread_run.c */
struct func_run *spe__trun_get(struct thread_exec *tx);
/* Fill a run from a launch (release_fn set): it borrows the strings, input
 * and arg until release_fn is called. */
void spe__trun_fill(struct func_run *run, const struct task_launch *l,
                    const struct func_entry *fn);
/* Drop what the run references and keep it for reuse (or free it). */
void spe__trun_put(struct thread_exec *tx, struct func_run *run);
void spe__trun_free(struct func_run *run);
/* On a pool thread: call the function, unless the run was cancelled before
 * (returns 0); records the wall-clock start unless already set (the caller
 * records the end: its clock reading also dates the next call it begins). A
 * call by reference finds its function in the pool's registry (*last: the
 * thread's last find, tried first). */
struct fn_cache;
int spe__trun_call(struct func_run *run, const struct thread_pool *p, struct fn_cache *last);
/* The outcome of a run whose call is over, or that is forced (finished at now_ms,
 * wall clock). Hands the result over. */
void spe__trun_outcome(struct func_run *run, int64_t now_ms, struct task_outcome *out);

#endif
