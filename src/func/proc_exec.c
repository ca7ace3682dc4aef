/* The process-isolation executor: its object, starting and signalling an
 * attempt, freeing it. See proc_internal.h for how the pieces fit. */
#include "base/clock.h"
#include "func/proc_internal.h"
#include "spe.h"

#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int spe__proc_exec_new(struct proc_exec **out, const struct func_exec_config *cfg,
                       struct loop *lp, const struct logger *lg, cmd_done_fn done, void *ctx) {
  *out = NULL;
  struct proc_exec *px = calloc(1, sizeof *px);
  if (px == NULL) return SPE_ENOMEM;
  px->lp = lp;
  px->lg = lg;
  px->done = done;
  px->ctx = ctx;
  px->reg = cfg->reg;
  px->fs = cfg->fs;
  px->max_result = cfg->max_result_bytes ? cfg->max_result_bytes : SPE_DEFAULT_MAX_RESULT;
  /* Idle workers are kept for the next attempts, as many as may run at once;
   * with no bound, one per CPU: more would only hold memory. */
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  px->idle_max = cfg->workers != 0 && cfg->workers != UINT32_MAX ? cfg->workers
                 : cpus > 0                                     ? (uint32_t)cpus
                                                                : 1;
  px->ctl_w.fd = -1;
  if (px->fs != NULL) {
    int rc = spe__proc_ctl_open(px);
    if (rc != 0) {
      free(px);
      return rc;
    }
  }
  *out = px;
  return 0;
}

static int append_str(struct spe_buf *b, const char *s, uint32_t *len) {
  size_t n = s ? strlen(s) : 0;
  if (n > UINT32_MAX) return -1;
  *len = (uint32_t)n;
  return spe__buf_append(b, s ? s : "", n + 1); /* with its NUL */
}

/* A dump callback that tells running out of memory apart from a value
 * jansson refuses to dump (a string that is not UTF-8, say). */
struct dump_ctx {
  struct spe_buf *b;
  int nomem;
};

static int dump_cb(const char *p, size_t n, void *data) {
  struct dump_ctx *d = data;
  if (spe__buf_append(d->b, p, n) == 0) return 0;
  d->nomem = 1;
  return -1;
}

/* 0, SPE_ENOMEM, or SPE_EINVAL when the value cannot be dumped. */
static int append_json(struct spe_buf *b, const json_t *v, uint64_t *len) {
  size_t start = b->len;
  struct dump_ctx d = {b, 0};
  if (json_dump_callback(v, dump_cb, &d, JSON_ENCODE_ANY | JSON_COMPACT) != 0)
    return d.nomem ? SPE_ENOMEM : SPE_EINVAL;
  *len = b->len - start;
  return spe__buf_append(b, "", 1) == 0 ? 0 : SPE_ENOMEM;
}

/* The request frame of `l` in `b` (proc_protocol.h). Returns 0, SPE_ENOMEM,
 * or SPE_EINVAL when the input or the arg cannot be dumped as JSON. */
static int build_request(struct spe_buf *b, const struct task_launch *l, size_t max_result) {
  struct req_head h = {.magic = REQ_MAGIC, .attempt = l->attempt, .max_result = max_result};
  b->len = 0;
  if (spe__buf_reserve(b, sizeof h) != 0) return SPE_ENOMEM;
  b->len = sizeof h;
  int rc = append_str(b, l->job_id, &h.job_id_len) != 0 ||
                   append_str(b, l->job_name, &h.job_name_len) != 0 ||
                   append_str(b, l->task_name, &h.task_len) != 0 ||
                   append_str(b, l->function, &h.func_len) != 0
               ? SPE_ENOMEM
               : 0;
  if (rc == 0) rc = append_json(b, l->input_json, &h.input_len);
  if (rc == 0) rc = append_json(b, l->arg ? l->arg : json_null(), &h.arg_len);
  if (rc == 0) memcpy(b->data, &h, sizeof h);
  return rc;
}

static struct func_run *run_new(struct proc_exec *px, const struct task_launch *l,
                                void *task_ctx, int64_t started_ms) {
  struct func_run *run = calloc(1, sizeof *run);
  if (run == NULL) return NULL;
  run->px = px;
  run->task_ctx = task_ctx;
  run->state = RUN_PENDING;
  run->timeout_ms = l->timeout_ms;
  run->max_result = l->max_result_bytes ? l->max_result_bytes : px->max_result;
  run->started_ms = started_ms;
  spe__timer_init(&run->timer);
  return run;
}

static void on_timeout(struct loop *lp, struct timer *t) {
  struct func_run *run = t->data;
  spe__forced_timeout(&run->forced, run->timeout_ms);
  if (run->state == RUN_PENDING) spe__proc_finish(run, NULL);
  else if (run->state == RUN_ON_WORKER) spe__proc_doom(run->wk, SIGKILL);
  /* The server reports the worker's exit at once after SIGKILL. (What ends
   * here is reported by the deferred call spe__proc_finish schedules.) */
}

/* Why an attempt cannot start at all (and its code), or NULL if it can. */
static json_t *refusal(const struct proc_exec *px, const struct task_launch *l, int *code) {
  if (l->function == NULL || spe__registry_find(px->reg, l->function) == NULL) {
    *code = SPE_EINVAL;
    return spe__error_new("error", "no function \"%s\" is registered",
                          l->function ? l->function : "");
  }
  *code = SPE_ESYS;
  if (px->fs == NULL)
    return spe__error_new("error", "process isolation is not available: no fork server");
  if (px->gone) return spe__error_new("error", "the fork server is gone");
  return NULL;
}

int spe__proc_start(struct proc_exec *px, const struct task_launch *launch, void *task_ctx,
                    struct func_run **out, struct task_outcome *failed) {
  *out = NULL;
  int64_t started_ms = spe__now_ms();
  int code;
  json_t *no = refusal(px, launch, &code);
  if (no != NULL) {
    spe__outcome_failed(failed, no);
    return code;
  }
  struct func_run *run = run_new(px, launch, task_ctx, started_ms);
  int rc = run ? build_request(&px->scratch, launch, run->max_result) : SPE_ENOMEM;
  if (rc != 0) {
    spe__buf_reset(&px->scratch);
    free(run);
    spe__outcome_failed(failed,
                        spe__error_new("error", "%s",
                                       rc == SPE_ENOMEM
                                           ? "out of memory building the function's input"
                                           : "the task's input or arg cannot be encoded as JSON"));
    return rc;
  }
  if (run->timeout_ms > 0) {
    if (spe__timer_start(px->lp, &run->timer, (int64_t)run->timeout_ms, on_timeout, run) != 0) {
      spe__buf_reset(&px->scratch);
      free(run);
      spe__outcome_failed(failed, spe__error_new("error", "out of memory"));
      return SPE_ENOMEM;
    }
  }
  px->nrunning++;
  *out = run;
  struct proc_worker *wk = spe__proc_idle_pop(px);
  if (wk != NULL) {
    spe__proc_dispatch(run, wk, &px->scratch);
    spe__buf_reset(&px->scratch);
    return 0;
  }
  /* No worker free: wait for one, and ask for one more if fewer are on their
   * way than attempts wait. */
  run->req = px->scratch;
  memset(&px->scratch, 0, sizeof px->scratch);
  run->prev = px->pending_tail;
  if (px->pending_tail) px->pending_tail->next = run;
  else px->pending_head = run;
  px->pending_tail = run;
  px->npending++;
  if (px->npending > px->spawning + px->spawn_unsent) spe__proc_ctl_spawn(px);
  return 0;
}

void spe__proc_signal(struct proc_exec *px, struct func_run *run, int sig, const char *kind) {
  if (run == NULL || run->state == RUN_DONE) return;
  if (kind != NULL) spe__forced_set(&run->forced, kind, "%s", kind);
  if (run->state == RUN_PENDING) {
    /* No worker has it yet: it ends here, given up as thread isolation gives
     * up a call (a signal without a kind: the run is interrupted). */
    spe__forced_set(&run->forced, "cancelled", "interrupted");
    spe__proc_finish(run, NULL);
    return;
  }
  spe__proc_doom(run->wk, sig);
}

uint32_t spe__proc_running(const struct proc_exec *px) { return px->nrunning; }

/* Send the kills asked for, waiting for room in the socket up to 1 s: a
 * worker stuck in a function ends only that way. */
static void flush_kills(struct proc_exec *px) {
  for (int waited = 0; waited < 1000 && !px->gone && px->kills != NULL; waited += 10) {
    spe__proc_ctl_flush(px);
    if (px->kills == NULL || px->gone) break;
    struct pollfd p = {px->fs->ctl, POLLOUT, 0};
    poll(&p, 1, 10);
  }
}

void spe__proc_exec_free(struct proc_exec *px) {
  if (px == NULL) return;
  /* Nothing is to be deferred from here on. */
  int was_scheduled = px->flush_scheduled;
  px->flush_scheduled = 1;
  for (struct proc_worker *wk = px->workers; wk != NULL; wk = wk->next)
    if (wk->run != NULL || wk->doomed) spe__proc_ctl_kill(wk, SIGKILL);
  flush_kills(px);
  /* Every attempt goes without a report. */
  while (px->pending_head != NULL) {
    struct func_run *run = px->pending_head;
    spe__proc_pending_remove(run);
    spe__timer_stop(px->lp, &run->timer);
    spe__proc_run_free(run);
  }
  while (px->workers != NULL) {
    struct proc_worker *wk = px->workers;
    if (wk->run != NULL) {
      spe__timer_stop(px->lp, &wk->run->timer);
      spe__proc_run_free(wk->run);
      wk->run = NULL;
    }
    spe__proc_worker_drop(wk);
  }
  while (px->done_head != NULL) {
    struct func_run *run = px->done_head;
    px->done_head = run->next;
    spe__proc_run_free(run);
  }
  px->done_tail = NULL;
  while (px->dead != NULL) {
    struct proc_worker *wk = px->dead;
    px->dead = wk->dead_next;
    spe__proc_worker_destroy(wk);
  }
  if (px->fs != NULL) spe__proc_ctl_close(px);
  spe__buf_free(&px->scratch);
  /* A deferred report still holds px: it frees it. */
  if (was_scheduled) px->freed = 1;
  else free(px);
}
