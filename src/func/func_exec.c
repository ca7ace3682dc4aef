/* The facade of func/func.h: one executor of `exec` tasks, whichever isolation
 * the executor was opened with. */
#include "func/func.h"

#include "func/impl.h"

#include <stdlib.h>

struct func_exec {
  struct proc_exec *proc;   /* SPE_ISOLATION_PROCESS */
  struct thread_exec *thr;  /* SPE_ISOLATION_THREAD */
};

int spe__func_exec_new(struct func_exec **out, const struct func_exec_config *cfg,
                       struct loop *lp, const struct logger *lg, cmd_done_fn done, void *ctx) {
  struct func_exec *fx = calloc(1, sizeof *fx);
  if (fx == NULL) return SPE_ENOMEM;
  int rc = cfg->isolation == SPE_ISOLATION_THREAD
               ? spe__thread_exec_new(&fx->thr, cfg, lp, lg, done, ctx)
               : spe__proc_exec_new(&fx->proc, cfg, lp, lg, done, ctx);
  if (rc != 0) {
    free(fx);
    return rc;
  }
  *out = fx;
  return 0;
}

int spe__func_start(struct func_exec *fx, const struct task_launch *launch, void *task_ctx,
                    struct func_run **run, struct task_outcome *failed) {
  return fx->thr ? spe__thread_exec_start(fx->thr, launch, task_ctx, run, failed)
                 : spe__proc_start(fx->proc, launch, task_ctx, run, failed);
}

int spe__func_call(struct func_exec *fx, const struct call_req *req, void *task_ctx,
                   struct func_run **run, struct task_outcome *failed) {
  if (fx->thr) return spe__thread_exec_call(fx->thr, req, task_ctx, run, failed);
  *run = NULL;
  spe__outcome_failed(failed, spe__error_new("error", "calls by reference need thread isolation"));
  return SPE_EINVAL;
}

void spe__func_signal(struct func_exec *fx, struct func_run *run, int sig, const char *kind) {
  if (fx->thr) spe__thread_exec_signal(fx->thr, run, sig, kind);
  else spe__proc_signal(fx->proc, run, sig, kind);
}

int spe__func_withdraw(struct func_exec *fx, struct func_run *run, int64_t *started_ms) {
  *started_ms = 0;
  return fx->thr ? spe__thread_exec_withdraw(fx->thr, run, started_ms) : 0;
}

void spe__func_slot_freed(struct func_exec *fx) {
  if (fx->thr) spe__thread_exec_slot_freed(fx->thr);
}

void spe__func_flush(struct func_exec *fx) {
  if (fx->thr) spe__thread_exec_flush(fx->thr);
}

void spe__func_poll(struct func_exec *fx) {
  if (fx->thr) spe__thread_exec_poll(fx->thr);
}

int spe__func_has_notes(struct func_exec *fx) {
  return fx->thr ? spe__thread_exec_has_notes(fx->thr) : 0;
}

int spe__func_sleep_begin(struct func_exec *fx, int until_dry) {
  return fx->thr ? spe__thread_exec_sleep_begin(fx->thr, until_dry) : 0;
}

void spe__func_sleep_end(struct func_exec *fx) {
  if (fx->thr) spe__thread_exec_sleep_end(fx->thr);
}

void spe__func_spin(struct func_exec *fx, int64_t max_ns) {
  if (fx->thr) spe__thread_exec_spin(fx->thr, max_ns);
}

void spe__func_committing(struct func_exec *fx, int on) {
  if (fx->thr) spe__thread_exec_committing(fx->thr, on);
}

void spe__func_exec_free(struct func_exec *fx) {
  if (fx == NULL) return;
  if (fx->thr) spe__thread_exec_free(fx->thr);
  else spe__proc_exec_free(fx->proc);
  free(fx);
}
