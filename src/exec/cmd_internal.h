/*
 * The command executor's insides, shared by its files:
 *   cmd_exec.c      the executor object and spe__cmd_start (glue)
 *   cmd_env.c       the child's environment
 *   cmd_spawn.c     starting the child: descriptors, posix_spawn, pidfd
 *   cmd_supervise.c watching a running attempt: output, exit, timeout, signals
 *   cmd_output.c    the stdout buffer and the stderr ring
 *   cmd_outcome.c   turning how an attempt ended into a task_outcome
 *   cmd_result.c    turning stdout into a result (SPEC §2)
 * Everything runs on the loop's thread; nothing here takes a lock.
 */
#ifndef SPE_EXEC_CMD_INTERNAL_H
#define SPE_EXEC_CMD_INTERNAL_H

#include "base/buf.h"
#include "exec/cmd.h"

#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- output buffers (cmd_output.c) ---- */

/* The last SPE_STDERR_KEEP bytes written to stderr. */
struct err_ring {
  char data[SPE_STDERR_KEEP];
  uint64_t total; /* bytes ever written; data[total % KEEP] is the oldest kept */
};

void spe__ring_append(struct err_ring *r, const char *p, size_t n);
/* The kept bytes as a JSON string (invalid UTF-8 replaced), NULL if none were
 * written or out of memory. */
json_t *spe__ring_string(const struct err_ring *r);

/* ---- one attempt ---- */

struct cmd_run {
  struct cmd_exec *ex;
  struct cmd_run *prev, *next; /* the executor's list of attempts not yet reported */
  struct cmd_run *dead_next;   /* reported, waiting to be freed (see cmd_supervise.c) */
  void *task_ctx;

  pid_t pid;   /* the task's own process; also its process group id */
  int pidfd;   /* readable once `pid` has exited; -1 once reaped, or when the
                  kernel has no pidfds (then exit_poll polls for the exit) */
  int out_fd;  /* read ends of the stdout and stderr pipes, -1 once closed */
  int err_fd;
  struct io_watch out_w, err_w, exit_w;
  struct timer timer;     /* the timeout */
  struct timer exit_poll; /* only without a pidfd */
  int poll_ms;            /* exit_poll's current interval */

  uint64_t timeout_ms;   /* 0: none */
  size_t max_out;        /* stdout beyond this fails the attempt */
  struct spe_buf out;       /* everything it wrote to stdout (base/buf.h) */
  struct err_ring err;
  int64_t started_ms;

  int ended;             /* the process was reaped: signals are no longer sent */
  /* When set, the attempt fails with this kind and message whatever its exit
   * status: a timeout, the stdout cap, or a cancel. The first reason wins. */
  struct forced_outcome forced;
};

/* ---- the executor ---- */

struct cmd_exec {
  struct loop *lp;
  const struct logger *lg;
  cmd_done_fn done;
  void *ctx;
  struct cmd_run *runs;      /* attempts started and not yet reported */
  uint32_t nrunning;
  struct cmd_run *graveyard; /* reported attempts whose freeing could not be deferred */
  posix_spawnattr_t attr;    /* the same for every child: built once */
};

/* ---- environment (cmd_env.c) ---- */

struct cmd_env {
  char **envp; /* NULL-terminated; entries point into environ, the launch or `own` */
  char *own;   /* the SPE_* strings */
};

/* Build the child's environment: environ, then SPE_JOB_ID, SPE_JOB_NAME,
 * SPE_TASK, SPE_ATTEMPT, then env_job, then env_task, a later entry replacing an
 * earlier one with the same name. Returns 0 or SPE_ENOMEM. */
int spe__cmd_env_build(const struct task_launch *l, struct cmd_env *env);
void spe__cmd_env_free(struct cmd_env *env);

/* ---- spawning (cmd_spawn.c) ---- */

int spe__cmd_attr_init(posix_spawnattr_t *attr);

struct spawned {
  pid_t pid;
  int pidfd;  /* -1 when the kernel has no pidfds */
  int out_fd; /* non-blocking read ends */
  int err_fd;
};

/* Start the child of `l`. On failure returns SPE_ESYS or SPE_ENOMEM, sets *msg
 * (malloc'd, may be NULL when out of memory) to a message like
 * `cannot run "x": No such file or directory`, and leaves no descriptor open
 * and no child behind. */
int spe__cmd_spawn(const struct cmd_exec *ex, const struct task_launch *l, struct spawned *sp,
                   char **msg);

/* Kill and reap a child that cannot be supervised (blocking: it was sent SIGKILL). */
void spe__cmd_kill_reap(pid_t pid, int pidfd);

/* ---- supervision (cmd_supervise.c) ---- */

/* Register the watchers and the timer of a freshly spawned run. Returns 0, or a
 * negative code after which the caller kills and frees the run. */
int spe__cmd_supervise(struct cmd_run *run);
/* Stop watching and close every descriptor of the run. */
void spe__cmd_release(struct cmd_run *run);
void spe__cmd_run_free(struct cmd_run *run);

/* ---- outcomes (cmd_outcome.c, cmd_result.c) ---- */

/* Build the outcome of a reaped run from its wait status. */
void spe__cmd_outcome(const struct cmd_run *run, const siginfo_t *info, struct task_outcome *out);
/* stdout as a result: JSON when the whole of it is one JSON value, else a string
 * with one trailing newline removed. NULL only when out of memory. */
json_t *spe__cmd_result_parse(const char *buf, size_t len);

#endif
