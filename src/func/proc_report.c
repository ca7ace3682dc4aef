/*
 * How an attempt of process isolation ends: its outcome settled (a forced
 * kind first, then what the function's response said, then how its worker
 * died) and queued, and the one deferred call per poll that hands the queue
 * to the done callback and frees the workers let go meanwhile. See
 * proc_internal.h.
 */
#include "base/clock.h"
#include "func/proc_internal.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void spe__proc_finish(struct func_run *run, json_t *fallback) {
  struct proc_exec *px = run->px;
  if (run->state == RUN_DONE) {
    json_decref(fallback);
    return;
  }
  spe__timer_stop(px->lp, &run->timer);
  if (run->state == RUN_PENDING) spe__proc_pending_remove(run);
  if (run->wk != NULL) run->wk->run = NULL;
  run->wk = NULL;
  run->state = RUN_DONE;

  struct task_outcome *o = &run->out;
  if (spe__forced(&run->forced)) {
    json_decref(o->result);
    json_decref(o->error);
    json_decref(fallback);
    o->result = NULL;
    o->error = spe__forced_error(&run->forced);
    o->succeeded = 0;
  } else if (run->responded) {
    json_decref(fallback);
  } else {
    o->succeeded = 0;
    o->result = NULL;
    o->error = fallback;
  }
  o->started_ms = run->started_ms;
  o->finished_ms = spe__now_ms();

  run->prev = px->done_tail;
  run->next = NULL;
  if (px->done_tail) px->done_tail->next = run;
  else px->done_head = run;
  px->done_tail = run;
  spe__proc_schedule(px);
}

void spe__proc_run_free(struct func_run *run) {
  if (run == NULL) return;
  spe__buf_free(&run->req);
  json_decref(run->out.result);
  json_decref(run->out.error);
  free(run);
}

static void free_dead(struct proc_exec *px) {
  while (px->dead != NULL) {
    struct proc_worker *wk = px->dead;
    px->dead = wk->dead_next;
    spe__proc_worker_destroy(wk);
  }
}

/* The deferred call: report every finished attempt, free the dead workers. */
static void flush(void *arg) {
  struct proc_exec *px = arg;
  px->flush_scheduled = 0;
  if (px->freed) { /* spe__proc_exec_free() left the rest to us */
    free(px);
    return;
  }
  /* The done callback may start attempts, which may finish more: take them
   * from the head until none is left. */
  while (px->done_head != NULL) {
    struct func_run *run = px->done_head;
    px->done_head = run->next;
    if (px->done_head == NULL) px->done_tail = NULL;
    px->nrunning--;
    struct task_outcome out = run->out;
    memset(&run->out, 0, sizeof run->out); /* the callee takes the references */
    px->done(px->ctx, run->task_ctx, &out);
    spe__proc_run_free(run);
  }
  free_dead(px);
}

void spe__proc_schedule(struct proc_exec *px) {
  if (px->flush_scheduled || (px->done_head == NULL && px->dead == NULL)) return;
  /* Out of memory, the reports wait for the next event of this executor,
   * which tries again. */
  if (spe__loop_defer(px->lp, flush, px) == 0) px->flush_scheduled = 1;
}
