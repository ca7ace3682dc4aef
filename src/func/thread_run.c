/*
 * One attempt under thread isolation: its memory, its call on a pool thread,
 * and its outcome.
 *
 * Runs are recycled through the executor's free list, so that a steady
 * stream of tasks allocates nothing per task. A run borrows the launch's
 * strings, arg and input until it calls the launch's release_fn.
 * Everything here runs on the loop's thread except spe__trun_call().
 */
#include "func/thread_internal.h"

#include "base/clock.h"
#include "base/msg.h"
#include "spe.h"

#include <stdlib.h>
#include <string.h>

/* Runs kept for reuse at most: enough for every thread and a deep queue,
 * little memory (a few hundred bytes each) once a burst is over. */
#define FREE_RUNS_MAX 4096

struct func_run *spe__trun_get(struct thread_exec *tx) {
  struct func_run *run = tx->free_runs;
  if (run != NULL) {
    tx->free_runs = run->next;
    tx->nfree--;
  } else {
    /* On a cache line boundary (struct func_run). */
    run = aligned_alloc(_Alignof(struct func_run), sizeof *run);
    if (run == NULL) return NULL;
    memset(run, 0, sizeof *run);
    spe__timer_init(&run->timer);
    run->tx = tx;
  }
  /* Put away, a run holds no result, error or borrowed pointer (release);
   * the times of a timed call are reset when its timer starts. */
  run->next = NULL;
  run->reported = run->finished = run->forced_queued = run->start_reported = 0;
  run->forced.kind[0] = '\0';
  /* Relaxed is enough: the run reaches a pool thread through the pool's mutex. */
  atomic_store_explicit(&run->cancelled, 0, memory_order_relaxed);
  atomic_store_explicit(&run->state, RUN_QUEUED, memory_order_relaxed);
  atomic_store_explicit(&run->started_ms, 0, memory_order_relaxed);
  atomic_store_explicit(&run->ended_ms, 0, memory_order_relaxed);
  return run;
}

void spe__trun_fill(struct func_run *run, const struct task_launch *l,
                    const struct func_entry *fn) {
  run->fn = fn;
  run->by_ref = 0;
  run->attempt = l->attempt;
  run->timeout_ms = l->timeout_ms;
  run->ahead = l->ahead != 0;
  run->input_fn = l->input_fn;
  run->input_task = l->input_task;
  /* The caller keeps all of it alive until release_fn. */
  run->job_id = l->job_id;
  run->job_name = l->job_name;
  run->task = l->task_name;
  run->input = l->input_json;
  run->arg = l->arg ? (json_t *)l->arg : json_null();
  run->release_fn = l->release_fn;
  run->release_ctx = l->release_ctx;
}

static void release(struct func_run *run) {
  if (run->release_fn != NULL) {
    /* No call can use what it borrowed any more. (NULL: a start that failed,
     * which leaves all to the caller.) */
    run->release_fn(run->release_ctx);
    run->release_fn = NULL;
  }
  run->input_fn = NULL;
  if (run->result != NULL) {
    json_decref(run->result);
    run->result = NULL;
  }
  if (run->error != NULL) {
    free(run->error);
    run->error = NULL;
  }
  run->input = run->arg = NULL;
}

void spe__trun_put(struct thread_exec *tx, struct func_run *run) {
  release(run);
  if (tx->nfree >= FREE_RUNS_MAX) {
    spe__trun_free(run);
    return;
  }
  run->next = tx->free_runs;
  tx->free_runs = run;
  tx->nfree++;
}

void spe__trun_free(struct func_run *run) {
  if (run == NULL) return;
  release(run);
  free(run);
}

/* A monotonic time that is never 0 (0 means "not yet"). */
static int64_t mono_mark(void) {
  int64_t t = spe__mono_ms();
  return t > 0 ? t : 1;
}

int spe__trun_call(struct func_run *run, const struct thread_pool *p, struct fn_cache *last) {
  /* Cancelled while it waited in the queue: already reported, nobody waits. */
  if (atomic_load_explicit(&run->cancelled, memory_order_relaxed)) return 0;
  if (!run->ahead) atomic_store_explicit(&run->started_ms, spe__now_ms(), memory_order_relaxed);
  int timed = run->timeout_ms > 0;
  if (timed) atomic_store_explicit(&run->begun_mono, mono_mark(), memory_order_relaxed);
  struct spe_call call = {
      .input = run->input,
      .build_input = run->input_fn,
      .build_ctx = run->release_ctx,
      .build_task = run->input_task,
      .attempt = run->attempt,
      .cancelled = &run->cancelled,
  };
  const struct func_entry *fn = run->fn;
  if (run->by_ref) {
    struct call_desc d;
    p->describe_fn(run->release_ctx, run->input_task, &d);
    call.arg = d.arg ? d.arg : json_null();
    call.job_id = d.job_id;
    call.job_name = d.job_name;
    call.task = d.task_name;
    const char *name = d.function ? d.function : "";
    fn = last->fn;
    /* The same name as last time: the same pointer of the same owner (no
     * compare at all: neighbouring tasks share one copy of the name), or the
     * same text. */
    if (fn == NULL || name != last->name || d.owner != last->owner ||
        d.owner_id != last->owner_id) {
      fn = spe__fn_find(p->reg, fn, name);
      *last = (struct fn_cache){fn, name, d.owner, d.owner_id};
    }
    if (fn == NULL) {
      /* Its job was recovered after the program stopped registering it. */
      run->result = NULL;
      run->error = spe__msg_new("no function \"%s\" is registered", name);
      if (timed) atomic_store_explicit(&run->ended_mono, mono_mark(), memory_order_relaxed);
      return 1;
    }
  } else {
    call.arg = run->arg;
    call.job_id = run->job_id;
    call.job_name = run->job_name;
    call.task = run->task;
  }
  spe__call_run(fn, &call, &run->result, &run->error);
  json_decref(call.built);
  if (timed) atomic_store_explicit(&run->ended_mono, mono_mark(), memory_order_relaxed);
  return 1;
}

void spe__trun_outcome(struct func_run *run, int64_t now_ms, struct task_outcome *out) {
  int64_t started = atomic_load_explicit(&run->started_ms, memory_order_relaxed);
  int64_t ended = atomic_load_explicit(&run->ended_ms, memory_order_relaxed);
  out->started_ms = started != 0 ? started : now_ms;
  /* When the call returned, if it is over and its outcome is its own. */
  out->finished_ms = ended != 0 && !spe__forced(&run->forced) ? ended : now_ms;
  out->result = NULL;
  out->error = NULL;
  if (spe__forced(&run->forced)) {
    out->error = spe__forced_error(&run->forced);
  } else if (run->result != NULL) {
    out->result = run->result; /* the done callback takes it */
    run->result = NULL;
  } else {
    /* spe__call_run() leaves both NULL only when the function failed and no
     * memory was left for its message. */
    out->error = spe__error_new("error", "%s",
                                run->error ? run->error : "the function reported a failure");
  }
  out->succeeded = out->result != NULL;
}
