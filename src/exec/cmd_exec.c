/* The command executor object and the start of an attempt. See cmd.h. */
#include "base/clock.h"
#include "exec/cmd_internal.h"
#include "spe.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int spe__cmd_exec_new(struct cmd_exec **out, struct loop *lp, const struct logger *lg,
                      cmd_done_fn done, void *ctx) {
  *out = NULL;
  struct cmd_exec *ex = calloc(1, sizeof *ex);
  if (ex == NULL) return SPE_ENOMEM;
  int rc = spe__cmd_attr_init(&ex->attr);
  if (rc != 0) {
    free(ex);
    return rc;
  }
  ex->lp = lp;
  ex->lg = lg;
  ex->done = done;
  ex->ctx = ctx;
  *out = ex;
  return 0;
}

static struct cmd_run *run_new(struct cmd_exec *ex, const struct task_launch *l, void *task_ctx) {
  struct cmd_run *run = calloc(1, sizeof *run);
  if (run == NULL) return NULL;
  run->ex = ex;
  run->task_ctx = task_ctx;
  run->pidfd = run->out_fd = run->err_fd = -1;
  run->out_w.fd = run->err_w.fd = run->exit_w.fd = -1;
  spe__timer_init(&run->timer);
  spe__timer_init(&run->exit_poll);
  run->timeout_ms = l->timeout_ms;
  run->max_out = l->max_result_bytes ? l->max_result_bytes : SPE_DEFAULT_MAX_RESULT;
  return run;
}

int spe__cmd_start(struct cmd_exec *ex, const struct task_launch *launch, void *task_ctx,
                   struct cmd_run **out, struct task_outcome *failed) {
  *out = NULL;
  int64_t started_ms = spe__now_ms();
  struct cmd_run *run = run_new(ex, launch, task_ctx);
  if (run == NULL) {
    spe__outcome_failed(failed, spe__error_new("error", "out of memory"));
    return SPE_ENOMEM;
  }
  run->started_ms = started_ms;

  char *msg = NULL;
  struct spawned sp;
  int rc = spe__cmd_spawn(ex, launch, &sp, &msg);
  if (rc != 0) {
    spe__log(ex->lg, SPE_LOG_DEBUG, "task %s: %s", launch->task_name ? launch->task_name : "?",
             msg ? msg : "out of memory");
    spe__outcome_failed(failed, spe__error_new("error", "%s", msg ? msg : "out of memory"));
    free(msg);
    spe__cmd_run_free(run);
    return rc;
  }
  run->pid = sp.pid;
  run->pidfd = sp.pidfd;
  run->out_fd = sp.out_fd;
  run->err_fd = sp.err_fd;

  rc = spe__cmd_supervise(run);
  if (rc != 0) {
    spe__cmd_release(run); /* stops what was registered; closes the pidfd */
    spe__cmd_kill_reap(run->pid, -1);
    const char *why =
        rc == SPE_ENOMEM ? "out of memory watching the process" : "cannot watch the process";
    spe__outcome_failed(failed, spe__error_new("error", "%s", why));
    spe__cmd_run_free(run);
    return rc;
  }
  run->next = ex->runs;
  if (ex->runs) ex->runs->prev = run;
  ex->runs = run;
  ex->nrunning++;
  *out = run;
  return 0;
}

uint32_t spe__cmd_running(const struct cmd_exec *ex) { return ex->nrunning; }

void spe__cmd_exec_free(struct cmd_exec *ex) {
  if (ex == NULL) return;
  while (ex->runs != NULL) {
    struct cmd_run *run = ex->runs;
    ex->runs = run->next;
    killpg(run->pid, SIGKILL);
    spe__cmd_release(run);
    spe__cmd_kill_reap(run->pid, -1);
    spe__cmd_run_free(run);
  }
  for (struct cmd_run *r = ex->graveyard, *next; r != NULL; r = next) {
    next = r->dead_next;
    spe__cmd_run_free(r);
  }
  posix_spawnattr_destroy(&ex->attr);
  free(ex);
}
