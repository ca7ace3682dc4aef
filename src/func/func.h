/*
 * The executor of `exec` tasks: C functions the embedding program registered
 * (include/spe.h, "C functions"), run in worker processes (process isolation,
 * proc_*.c and forkserver.c) or on a thread pool (thread isolation,
 * thread_pool.c). The engine sees one interface, shaped like the command
 * executor's (exec/cmd.h): start an attempt, signal it, learn its outcome
 * through a callback on the loop's thread.
 *
 * Outcomes (struct task_outcome, exec/exec.h):
 *   - the function returned a value: succeeded, `result` = the value (JSON null
 *     when it returned NULL);
 *   - it called spe_call_fail(): kind "error" with its message;
 *   - process isolation, its worker died: kind "crashed" with "signal" (killed
 *     by a signal) or "exit_code" (it called exit()), and a message saying which;
 *   - it ran past the task's timeout: kind "timeout" ("ran past N ms");
 *   - signalled with a kind ("cancelled"): that kind, however it ended;
 *     signalled without one when no worker or thread had begun the call yet
 *     (thread isolation: at any time): kind "cancelled", "interrupted";
 *   - a result larger than max_result_bytes as JSON text (process isolation,
 *     where it crosses as text): kind "error".
 *
 * Threads: every function here is called on the loop's thread, and the done
 * callback is called there, from spe__loop_poll(), never from inside a call.
 */
#ifndef SPE_FUNC_FUNC_H
#define SPE_FUNC_FUNC_H

#include "base/log.h"
#include "exec/cmd.h"
#include "exec/exec.h"
#include "func/registry.h"
#include "loop/loop.h"

struct func_exec;
struct func_run;
struct fork_server;

/* Thread isolation, runs queued ahead: the call of the attempt `task_ctx`
 * began at started_ms (wall clock). Called on the loop's thread, before the
 * attempt's outcome, for a call found under way (a call that takes a while);
 * a call that began and ended between two looks at the pool gets no started
 * call: the done callback is the first news of it, and its outcome's
 * started_ms says when it began (the caller notes both at once). Starts and
 * ends come in an order that never shows one thread in two calls at once. */
typedef void (*func_started_fn)(void *ctx, void *task_ctx, int64_t started_ms);

/* What a thread-isolated call started with spe__func_call() needs to know of
 * its task, asked for on its own thread (func_exec_config.describe_fn). */
struct call_desc {
  const char *function;   /* the function's name */
  const json_t *arg;      /* the task's `arg`, or NULL */
  const char *job_id, *job_name, *task_name;
  /* Where `function` lives: as long as it is the same pointer from the same
   * (owner, owner_id), it is the same name, and the pool need not compare
   * the text again. owner_id must never repeat for an owner at the same
   * address while calls run (the engine: the job and its submission order). */
  const void *owner;
  uint64_t owner_id;
};

struct func_exec_config {
  int isolation;                  /* SPE_ISOLATION_PROCESS or _THREAD */
  uint32_t workers;               /* the most calls running at once; UINT32_MAX =
                                     unbound (thread isolation then uses one
                                     thread per online CPU) */
  size_t max_result_bytes;        /* process isolation: cap on a result's text */
  const struct spe_registry *reg; /* the functions; borrowed, outlives the executor */
  struct fork_server *fs;         /* process isolation: the fork server that
                                     spe_open() started (borrowed); NULL = none
                                     (then every start fails with kind "error") */
  func_started_fn started;        /* thread isolation: starts of runs queued
                                     ahead; NULL when none are */
  _Atomic long *slots;            /* thread isolation: the free slots shared
                                     with the caller (borrowed, outlives the
                                     executor), or NULL (no gate but the
                                     threads). A run queued ahead takes one
                                     when its call begins; every run gives
                                     its slot back when its call returns (a
                                     run not queued ahead holds one that the
                                     caller took for it). */
  /* Thread isolation, for spe__func_call(): the caller's callbacks, called
   * with a call's `ctx` and `task` (struct call_req). describe_fn and
   * input_fn run on the calling thread, and read only what the caller keeps
   * alive and unchanged for the call until release_fn(ctx), which runs on
   * the loop's thread once the run is over. */
  void (*describe_fn)(void *ctx, uint32_t task, struct call_desc *d);
  json_t *(*input_fn)(void *ctx, uint32_t task); /* builds the input (a new
                                     reference) on the call's first
                                     spe_call_input(), when req->input is NULL */
  void (*release_fn)(void *ctx);
};

/* A thread-isolated call by reference (spe__func_call). */
struct call_req {
  void *ctx;              /* the caller's, for the callbacks above */
  uint32_t task;
  uint32_t attempt;       /* spe_call_attempt() */
  uint64_t timeout_ms;    /* 0: none */
  json_t *input;          /* borrowed until release_fn; NULL: built by input_fn */
  int ahead;              /* queued ahead of a slot (as launch->ahead) */
};

/* Create the executor on a loop. `done` receives every outcome (same contract
 * as for the command executor: the callee takes the references in `out`). */
int spe__func_exec_new(struct func_exec **out, const struct func_exec_config *cfg,
                       struct loop *lp, const struct logger *lg, cmd_done_fn done, void *ctx);

/* Start an attempt of launch->function with launch->input_json (an object -
 * the engine shares one {} among the tasks without upstream; process
 * isolation encodes it at the start) and launch->arg (may be NULL). Thread
 * isolation: launch->release_fn is required; the run borrows the strings, arg
 * and input until it calls release_fn, and the input may be built by the call
 * (input_fn); exec/exec.h.
 * launch->cmd/argv/cwd/env/input are ignored. Returns 0 and *run, or a
 * negative code with *run NULL and `failed` filled (kind "error": no such
 * function, no fork server, out of memory...); then the done callback is not
 * called. Otherwise the done callback is called later, exactly once. */
int spe__func_start(struct func_exec *fx, const struct task_launch *launch, void *task_ctx,
                    struct func_run **run, struct task_outcome *failed);

/* Thread isolation: start a call as spe__func_start() does, the task lent
 * by reference: the function's name, arg and names come from describe_fn on
 * the calling thread (a function not registered fails the call, kind
 * "error"), and nothing is copied. On failure release_fn is not called (the
 * caller still holds what it lent). The short way for the many tiny calls of
 * big jobs: the loop's thread writes a few fields a call. */
int spe__func_call(struct func_exec *fx, const struct call_req *req, void *task_ctx,
                   struct func_run **run, struct task_outcome *failed);

/* Take a free slot of `slots` (func_exec_config.slots); 0 when none is free. */
int spe__slot_take(_Atomic long *slots);

/* Thread isolation, a run started with launch->ahead: take it back if its
 * call has not begun. Returns 1 if it was withdrawn (it will never be called
 * nor reported: the done callback is not called for it), 0 if its call has
 * begun: then *started_ms is its start, and the started callback is not
 * called for it (the caller notes the start itself). Process isolation, or a
 * run not queued ahead: returns 0 with *started_ms 0. */
int spe__func_withdraw(struct func_exec *fx, struct func_run *run, int64_t *started_ms);

/* A slot of cfg->slots was given back by the caller: a pool thread may take
 * it for a run queued ahead. */
void spe__func_slot_freed(struct func_exec *fx);

/* Thread isolation: runs started with launch->ahead are handed to the pool
 * here, all at once (so that a round's worth costs one lock); call it after
 * a series of starts. Otherwise a no-op. */
void spe__func_flush(struct func_exec *fx);

/* Thread isolation: the pool does not wake an awake loop for each call that
 * begins or ends. The loop reports them from spe__func_poll(), which it calls
 * in every round, and brackets its sleep with spe__func_sleep_begin() (which
 * returns 1 when it should not sleep: something waits) and
 * spe__func_sleep_end(), between which the pool wakes it: at the first call
 * that begins or ends, or with `until_dry` only once no call waits in the
 * pool's queue (for a loop that something else will wake in time, and that
 * has nothing to do with the calls' ends before then but hand over more). A
 * loop that never calls spe__func_sleep_end() is woken for every batch of
 * notes. No-ops (0) for process isolation. */
void spe__func_poll(struct func_exec *fx);
/* Whether spe__func_poll() has something to report. A slot taken from
 * cfg->slots was given back after the end of its call was noted: so a caller
 * that took one and then finds nothing here has seen every end before it. */
int spe__func_has_notes(struct func_exec *fx);
int spe__func_sleep_begin(struct func_exec *fx, int until_dry);
void spe__func_sleep_end(struct func_exec *fx);

/* Stop an attempt. Process isolation: send `sig` to the worker's process group
 * (the worker is not reused). Thread isolation: the function cannot be
 * stopped; the attempt is reported at once (from the next poll), its late
 * result discarded, and spe_call_cancelled() becomes 1 for it. If `kind` is not
 * NULL, the attempt is reported as failed with that kind whatever happens.
 * Harmless on an attempt that has ended but not yet been reported. */
void spe__func_signal(struct func_exec *fx, struct func_run *run, int sig, const char *kind);

/* The loop is about to sleep. Thread isolation with calls in flight: spin
 * (yielding) up to max_ns for one to end first. A call of a tiny function ends
 * within microseconds, and going to sleep and being woken costs more than that
 * (two context switches and an eventfd write per round trip); without this the
 * loop would sleep and wake once per handful of tasks. Otherwise a no-op. */
void spe__func_spin(struct func_exec *fx, int64_t max_ns);

/* Whether a commit runs on another thread (the store's committer). Thread
 * isolation: while one does, a pool thread without a run spins only briefly
 * before it sleeps, leaving the CPU to the committer. A no-op otherwise. */
void spe__func_committing(struct func_exec *fx, int on);

/* Kill (process) or abandon (thread) every running attempt without reporting
 * it, then free. Thread isolation waits for running functions to return.
 * NULL is a no-op. Same rules as spe__cmd_exec_free(). */
void spe__func_exec_free(struct func_exec *fx);

#endif
