/*
 * The process-isolation executor's insides (func/impl.h: spe__proc_*), on the
 * engine's loop. Its files:
 *   proc_exec.c    the executor object, start, signal, free (glue)
 *   proc_ctl.c     the control socket to the fork server: requests sent without
 *                  ever blocking, SPAWNED / SPAWN_FAILED / EXITED received
 *   proc_run.c     an attempt on a worker: the request written, the response
 *                  read, the worker's death, timeouts
 *   proc_report.c  outcomes, and reporting them through the done callback
 *   proc_worker.c  the other side: the worker process itself
 *
 * Life of an attempt. start() builds the request frame at once (the launch is
 * borrowed), then gives it to an idle worker, or queues it (`pending`) and
 * asks the server for a new worker when fewer are on their way than attempts
 * wait. A worker that finishes an attempt takes the oldest pending one, or
 * goes idle (at most idle_max are kept; one more is let go by closing its
 * socket, at which it exits). An attempt ends:
 *   - with its response, from a healthy worker: reported at once;
 *   - with its worker's death, reported by the server (CTL_EXITED): "crashed";
 *   - on a "doomed" worker (one that was signalled for a timeout or cancel, or
 *     broke the protocol): when the server reports the worker's exit, so that
 *     its process group is gone before the attempt is reported — as for
 *     commands; a response that comes first is kept and the worker killed;
 *   - when the server is gone: at once, for every attempt.
 * A worker is never reused once doomed, dead, or at end of file.
 *
 * Reporting. The done callback is only ever called from one deferred call per
 * poll (spe__loop_defer), which reports every attempt finished since: never
 * from inside start or signal, never in the middle of handling an event. The
 * same deferred call frees workers let go during the poll (another event of
 * the batch may still point at their watcher).
 *
 * Nothing allocates to send a control message: SPAWN requests are a count
 * and KILL requests a bit set of signals on the worker, on an intrusive list,
 * so a timeout or a cancel can always be carried out.
 *
 * Threads: everything runs on the loop's thread; nothing takes a lock.
 */
#ifndef SPE_FUNC_PROC_INTERNAL_H
#define SPE_FUNC_PROC_INTERNAL_H

#include "func/func.h"
#include "func/impl.h"
#include "func/proc_protocol.h"

#include <sys/types.h>

struct proc_worker {
  struct proc_exec *px;
  struct proc_worker *prev, *next; /* px->workers: every worker we hold a socket to */
  struct proc_worker *idle_next;   /* px->idle */
  struct proc_worker *kill_next;   /* px->kills, while `kill_sigs` is not empty */
  struct proc_worker *dead_next;   /* px->dead: let go, to be freed */
  pid_t pid;
  int fd;                     /* our end of its socket; -1 once closed */
  struct io_watch w;
  uint32_t events;            /* what `w` watches */
  struct func_run *run;       /* the attempt it runs, or NULL */
  struct spe_buf out;            /* a request not yet fully written */
  size_t out_off;
  struct spe_buf in;             /* the response being read */
  uint64_t kill_sigs;         /* signals (bit sig-1) to ask the server for */
  uint64_t sent_sigs;         /* signals asked for already */
  unsigned idle : 1;          /* on px->idle */
  unsigned doomed : 1;        /* never reused; its attempt ends with its exit */
  unsigned eof : 1;           /* its socket reached end of file */
  unsigned exited : 1;        /* the server reported its exit */
  unsigned in_kills : 1;      /* on px->kills */
  unsigned dropped : 1;       /* let go: on px->dead */
};

enum run_state { RUN_PENDING, RUN_ON_WORKER, RUN_DONE };

struct func_run {
  struct proc_exec *px;
  struct func_run *prev, *next; /* px->pending, or px->done_* once finished */
  struct proc_worker *wk;            /* RUN_ON_WORKER */
  enum run_state state;
  void *task_ctx;
  struct spe_buf req;              /* RUN_PENDING: the request, until a worker comes */
  struct timer timer;           /* the timeout */
  uint64_t timeout_ms;
  size_t max_result;            /* a longer result (as JSON text) fails it */
  int64_t started_ms;
  int responded;                /* `out` holds what the response said */
  struct task_outcome out;
  /* When set, the attempt fails with this kind and message however it ends:
   * a timeout, a cancel, a broken response. The first reason wins. */
  struct forced_outcome forced;
};

struct proc_exec {
  struct loop *lp;
  const struct logger *lg;
  cmd_done_fn done;
  void *ctx;
  const struct spe_registry *reg;
  struct fork_server *fs;        /* NULL: every start fails */
  size_t max_result;             /* the default of an attempt's max_result */
  uint32_t idle_max;             /* idle workers kept at most */

  struct io_watch ctl_w;
  uint32_t ctl_events;
  int gone;                      /* the fork server is gone */
  uint32_t spawn_unsent;         /* SPAWN requests not yet sent */
  uint32_t spawning;             /* SPAWN requests sent and not yet answered */
  struct proc_worker *kills;          /* workers with signals not yet asked for */

  struct proc_worker *workers;        /* all workers with a socket */
  struct proc_worker *idle;           /* a stack: the most recently used is warmest */
  uint32_t nidle;
  struct func_run *pending_head, *pending_tail;
  uint32_t npending;

  struct func_run *done_head, *done_tail; /* finished, to be reported */
  struct proc_worker *dead;           /* let go, to be freed */
  int flush_scheduled;           /* the deferred report is queued on the loop */
  int freed;                     /* spe__proc_exec_free() ran while it was */
  uint32_t nrunning;             /* started and not yet reported */
  struct spe_buf scratch;           /* where start() builds a request */
};

/* ---- control socket (proc_ctl.c) ---- */

int spe__proc_ctl_open(struct proc_exec *px);
void spe__proc_ctl_close(struct proc_exec *px);
/* Ask for one more worker. */
void spe__proc_ctl_spawn(struct proc_exec *px);
/* Ask the server to send `sig` to the worker and its process group (once per
 * signal and worker). */
void spe__proc_ctl_kill(struct proc_worker *wk, int sig);
/* Send what is queued, as far as the socket takes it. */
void spe__proc_ctl_flush(struct proc_exec *px);
/* The server is gone: end every attempt and let every worker go. */
void spe__proc_server_lost(struct proc_exec *px);

/* ---- workers and attempts on them (proc_run.c) ---- */

/* A new worker from the server. Returns it, or NULL after closing `fd`. */
struct proc_worker *spe__proc_worker_new(struct proc_exec *px, pid_t pid, int fd);
/* A worker is free: hand it the oldest pending attempt, keep it idle, or let
 * it go. */
void spe__proc_worker_free_up(struct proc_worker *wk);
/* Take an idle worker, or NULL. */
struct proc_worker *spe__proc_idle_pop(struct proc_exec *px);
/* Start writing `req` to `wk` for `run` (the buffer's memory may be swapped
 * with the worker's). */
void spe__proc_dispatch(struct func_run *run, struct proc_worker *wk, struct spe_buf *req);
/* Mark the worker as never to be reused and ask for `sig` on its group. */
void spe__proc_doom(struct proc_worker *wk, int sig);
/* The server reaped worker `pid`. */
void spe__proc_worker_exited(struct proc_exec *px, pid_t pid, int code, int status);
/* Stop watching, close, unlink, and free the worker from the deferred call. */
void spe__proc_worker_drop(struct proc_worker *wk);
/* Read what a worker has sent, to the end of its response at most. */
void spe__proc_worker_read(struct proc_worker *wk);
void spe__proc_worker_destroy(struct proc_worker *wk);
void spe__proc_pending_remove(struct func_run *run);

/* ---- outcomes and reports (proc_report.c) ---- */

/* The attempt has ended: stop its timer, settle its outcome (the forced one;
 * else what its response said; else `fallback`, an error object taken over,
 * which may be NULL only if one of the first two is there) and queue it for
 * the done callback. */
void spe__proc_finish(struct func_run *run, json_t *fallback);
/* Queue the deferred report (and frees) if it is not yet. */
void spe__proc_schedule(struct proc_exec *px);
void spe__proc_run_free(struct func_run *run);

#endif
