/*
 * Watching a running attempt from the loop.
 *
 * Three watchers and a timer per attempt: the stdout pipe (appended to a buffer
 * up to the result cap), the stderr pipe (into a ring of the last 4 KiB), the
 * pidfd, and the timeout (where the kernel has no pidfds, a timer polls for the
 * exit instead). Output is read as it arrives, so a task writing
 * megabytes never blocks on a full pipe.
 *
 * An attempt is over when its own process exits — not when its pipes reach
 * EOF, which a background child holding them could delay forever. Then, while
 * the process is still an unreaped zombie (so its pid, which is its group's id,
 * cannot have been reused), the whole group is sent SIGKILL; what is already
 * in the pipes is read without waiting for EOF; the process is reaped through
 * its pidfd; and the outcome is reported through the done callback.
 *
 * A run's memory is freed through spe__loop_defer: another event of the same
 * epoll batch may still point at one of its watchers. When deferring fails (out
 * of memory), the run waits in the executor's graveyard and is freed with the
 * next run whose freeing can be deferred, or with the executor.
 */
#include "exec/cmd_internal.h"
#include "spe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* glibc 2.36 declares P_PIDFD as an enumerator of idtype_t, not as a macro;
 * older headers lack it. Defining the macro covers both (it only shadows the
 * enumerator, with the same value). */
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* How much a read takes from a pipe at once: a whole default pipe buffer. */
#define READ_CHUNK 65536
/* At most this much is read from one pipe per event, so that a task writing
 * as fast as we read cannot keep the loop from everything else (epoll is
 * level-triggered: the rest is read on the next round). */
#define READ_BUDGET (1u << 20)
/* After the task's process ended, at most this much stderr is read: only an
 * escaped process (one that left the group) can still be writing then, and
 * only the last 4 KiB are kept anyway. Stdout is read to the end or to the
 * result cap, whichever comes first. */
#define STDERR_DRAIN_MAX (1u << 20)

static void kill_group(struct cmd_run *run, int sig) {
  /* Only while the process is unreaped is its group id sure to be ours. */
  if (!run->ended) killpg(run->pid, sig);
}

static void close_pipe(struct cmd_run *run, struct io_watch *w, int *fd) {
  spe__io_stop(run->ex->lp, w);
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Read stdout until it would block, or `max` bytes. Past the cap the group is
 * killed at once and reading stops: the attempt has failed, and more bytes
 * would only cost memory. */
static void drain_stdout(struct cmd_run *run, size_t max) {
  char buf[READ_CHUNK];
  size_t got = 0;
  while (run->out_fd >= 0) {
    if (got >= max) return;
    ssize_t n = read(run->out_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break; /* EOF or a read error: nothing more will come */
    got += (size_t)n;
    if ((size_t)n > run->max_out - run->out.len) {
      spe__forced_set(&run->forced, "error", "stdout passed the result limit of %zu bytes (max_result_bytes)",
            run->max_out);
      kill_group(run, SIGKILL);
      break;
    }
    if (spe__buf_append(&run->out, buf, (size_t)n) != 0) {
      spe__forced_set(&run->forced, "error", "out of memory reading stdout");
      kill_group(run, SIGKILL);
      break;
    }
  }
  close_pipe(run, &run->out_w, &run->out_fd);
}

/* Read stderr into the ring until it would block, or `max` bytes. */
static void drain_stderr(struct cmd_run *run, size_t max) {
  char buf[READ_CHUNK];
  size_t got = 0;
  while (run->err_fd >= 0) {
    if (got >= max) return;
    ssize_t n = read(run->err_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break;
    spe__ring_append(&run->err, buf, (size_t)n);
    got += (size_t)n;
  }
  close_pipe(run, &run->err_w, &run->err_fd);
}

static void on_stdout(struct loop *lp, struct io_watch *w, uint32_t events) {
  drain_stdout(w->data, READ_BUDGET);
}

static void on_stderr(struct loop *lp, struct io_watch *w, uint32_t events) {
  drain_stderr(w->data, READ_BUDGET);
}

static void on_timeout(struct loop *lp, struct timer *t) {
  struct cmd_run *run = t->data;
  spe__forced_timeout(&run->forced, run->timeout_ms);
  kill_group(run, SIGKILL);
  /* The pidfd reports the end, which comes at once after SIGKILL. */
}

static void free_chain(void *arg) {
  for (struct cmd_run *r = arg, *next; r != NULL; r = next) {
    next = r->dead_next;
    spe__cmd_run_free(r);
  }
}

static void unlink_run(struct cmd_exec *ex, struct cmd_run *run) {
  if (run->prev) run->prev->next = run->next;
  else ex->runs = run->next;
  if (run->next) run->next->prev = run->prev;
  run->prev = run->next = NULL;
  ex->nrunning--;
}

/* Reap the exited process through its pidfd. Returns 0 or an errno. */
static int reap(struct cmd_run *run, siginfo_t *info) {
  memset(info, 0, sizeof *info);
  for (;;) {
    if (run->pidfd >= 0 && waitid((idtype_t)P_PIDFD, (id_t)run->pidfd, info, WEXITED) == 0)
      return 0;
    /* Without a pidfd, or on Linux 5.3, which has pidfds but not P_PIDFD. */
    if ((run->pidfd < 0 || errno == EINVAL) && waitid(P_PID, (id_t)run->pid, info, WEXITED) == 0)
      return 0;
    if (errno == EINTR) continue;
    return errno;
  }
}

/* The task's own process has exited (and is not reaped yet): finish the run. */
static void process_ended(struct cmd_run *run) {
  struct cmd_exec *ex = run->ex;
  struct loop *lp = ex->lp;
  /* The task's own process has ended; whatever it left running in its group
   * goes now, while the zombie still pins the group id. */
  kill_group(run, SIGKILL);
  if (run->out_fd >= 0) drain_stdout(run, SIZE_MAX);
  if (run->err_fd >= 0) drain_stderr(run, STDERR_DRAIN_MAX);
  siginfo_t info;
  int e = reap(run, &info);
  if (e != 0) spe__forced_set(&run->forced, "error", "cannot learn how the process ended: %s", strerror(e));
  run->ended = 1;
  spe__cmd_release(run);

  struct task_outcome out;
  spe__cmd_outcome(run, &info, &out);
  spe__log(ex->lg, SPE_LOG_DEBUG, "process %d ended: %s", (int)run->pid,
           out.succeeded ? "succeeded" : spe__forced(&run->forced) ? run->forced.kind : "failed");
  unlink_run(ex, run);
  run->dead_next = ex->graveyard;
  if (spe__loop_defer(lp, free_chain, run) == 0) ex->graveyard = NULL;
  else ex->graveyard = run;
  ex->done(ex->ctx, run->task_ctx, &out);
}

static void on_process_exit(struct loop *lp, struct io_watch *w, uint32_t events) {
  process_ended(w->data);
}

/* Without a pidfd: look for the exit with WNOWAIT, which leaves the process a
 * zombie (so its group id stays ours until process_ended reaps it), first
 * after 1 ms, then at intervals doubling up to 50 ms. */
#define EXIT_POLL_MAX_MS 50

static void on_exit_poll(struct loop *lp, struct timer *t) {
  struct cmd_run *run = t->data;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)run->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid == run->pid) {
    process_ended(run);
    return;
  }
  run->poll_ms = run->poll_ms * 2 > EXIT_POLL_MAX_MS ? EXIT_POLL_MAX_MS : run->poll_ms * 2;
  /* The timer has just left the heap, so restarting it needs no memory. */
  spe__timer_start(lp, t, run->poll_ms, on_exit_poll, run);
}

int spe__cmd_supervise(struct cmd_run *run) {
  struct loop *lp = run->ex->lp;
  int rc;
  if ((rc = spe__io_start(lp, &run->out_w, run->out_fd, EPOLLIN, on_stdout, run)) != 0 ||
      (rc = spe__io_start(lp, &run->err_w, run->err_fd, EPOLLIN, on_stderr, run)) != 0 ||
      (run->pidfd >= 0 &&
       (rc = spe__io_start(lp, &run->exit_w, run->pidfd, EPOLLIN, on_process_exit, run)) != 0))
    return rc;
  if (run->pidfd < 0) {
    run->poll_ms = 1;
    if ((rc = spe__timer_start(lp, &run->exit_poll, run->poll_ms, on_exit_poll, run)) != 0)
      return rc;
  }
  if (run->timeout_ms > 0) {
    if ((rc = spe__timer_start(lp, &run->timer, (int64_t)run->timeout_ms, on_timeout, run)) != 0)
      return rc;
  }
  return 0;
}

void spe__cmd_release(struct cmd_run *run) {
  struct loop *lp = run->ex->lp;
  spe__timer_stop(lp, &run->timer);
  spe__timer_stop(lp, &run->exit_poll);
  close_pipe(run, &run->out_w, &run->out_fd);
  close_pipe(run, &run->err_w, &run->err_fd);
  spe__io_stop(lp, &run->exit_w);
  if (run->pidfd >= 0) close(run->pidfd);
  run->pidfd = -1;
}

void spe__cmd_run_free(struct cmd_run *run) {
  if (run == NULL) return;
  spe__buf_free(&run->out);
  free(run);
}

void spe__cmd_signal(struct cmd_exec *ex, struct cmd_run *run, int sig, const char *kind) {
  if (run == NULL || run->ended) return;
  if (kind != NULL) spe__forced_set(&run->forced, kind, "%s", kind);
  kill_group(run, sig);
}
