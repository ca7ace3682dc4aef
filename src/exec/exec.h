/*
 * What every executor (commands: exec/cmd.h; C functions in processes or
 * threads: func/func.h) takes to run one attempt of a task, and what it reports
 * back.
 */
#ifndef SPE_EXEC_EXEC_H
#define SPE_EXEC_EXEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* SPE_STDERR_KEEP (the stderr kept in an error) and SPE_DEFAULT_MAX_RESULT
 * (the default cap on a command's stdout) are with the other limits. */
#include "base/limits.h"

/* One attempt of one task. Everything is borrowed: it need only stay valid for
 * the duration of the start call (the executor copies or references what it
 * keeps) - except under thread isolation, where the run borrows the strings,
 * arg and input until release_fn (below). */
struct task_launch {
  const char *job_id;     /* SPE_JOB_ID */
  const char *job_name;   /* SPE_JOB_NAME */
  const char *task_name;  /* SPE_TASK */
  uint32_t attempt;       /* SPE_ATTEMPT, 1 for the first */

  const char *cmd;        /* for /bin/sh -c, or NULL */
  char *const *argv;      /* run directly (PATH searched), or NULL; exactly one of
                             cmd and argv is set */
  const char *cwd;        /* working directory or NULL (the process's) */
  char *const *env_job;   /* extra "K=V" strings, NULL-terminated, or NULL */
  char *const *env_task;  /* more of them, applied after env_job, or NULL */

  const char *input;      /* the input object as JSON text: the task's stdin */
  size_t input_len;

  const char *function;   /* `exec` tasks (func/func.h): the function's name */
  const json_t *arg;      /* `exec`: the task's `arg`, or NULL */
  json_t *input_json;     /* `exec`: the input object (process isolation
                             encodes it at the start; thread isolation
                             borrows it, below); `input` is then unused */
  int ahead;              /* `exec`, thread isolation: queued ahead of a slot
                             (func/func.h, spe__func_withdraw) */
  /* `exec`, thread isolation: release_fn is required (a start without it
   * fails). The caller keeps job_id, job_name, task_name, arg, input_json
   * and what input_fn reads alive and unchanged until the executor calls
   * release_fn(release_ctx), on the loop's thread, once the run is over (not
   * when the start fails): the run borrows them instead of copying.
   * input_json may be NULL: the call builds its input on its first
   * spe_call_input(), on its own thread, with input_fn(release_ctx,
   * input_task). Process isolation ignores the four. */
  void (*release_fn)(void *ctx);
  void *release_ctx;
  json_t *(*input_fn)(void *ctx, uint32_t task);
  uint32_t input_task;

  uint64_t timeout_ms;    /* 0 = none; at most INT64_MAX (a job's timeout is) */
  size_t max_result_bytes;/* stdout beyond this fails the attempt */
};

/* How an attempt ended. Produced by the executor, handed to the engine, which
 * takes ownership of the references in it. */
struct task_outcome {
  int succeeded;      /* 1: `result` is set; 0: `error` is set */
  json_t *result;     /* success: the result (SPEC §2: stdout as JSON, or as a
                         string with one trailing newline removed) */
  json_t *error;      /* failure: an object with at least "kind" (one of "exit",
                         "crashed", "timeout", "error", "cancelled") and
                         "message"; "exit" adds "exit_code", "crashed" adds
                         "signal"; both add "stderr" (the last 4 KiB) when the
                         task wrote any */
  int64_t started_ms; /* wall-clock time of the spawn */
  int64_t finished_ms;/* wall-clock time the task was seen to end */
};

/* An outcome decided before an attempt ended (a timeout, a cancel, a result
 * over the cap): it is reported whatever the attempt does afterwards, and the
 * first reason given stands. Every executor keeps one per attempt. */
struct forced_outcome {
  char kind[16];  /* "" = none */
  char msg[128];
};

/* Set it, unless a reason is set already. */
void spe__forced_set(struct forced_outcome *f, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The timeout's reason: kind "timeout", "ran past N ms". */
void spe__forced_timeout(struct forced_outcome *f, uint64_t ms);
static inline int spe__forced(const struct forced_outcome *f) { return f->kind[0] != '\0'; }
/* Its error object {"kind", "message"}: a new reference (NULL if out of memory). */
json_t *spe__forced_error(const struct forced_outcome *f);

/* The outcome of a start that failed: not succeeded, `error` (taken over;
 * NULL only when out of memory), started and finished now. */
void spe__outcome_failed(struct task_outcome *out, json_t *error);

/* Build a failure outcome's error object: {"kind": kind, "message": message}.
 * Returns a new reference (NULL only when out of memory). */
json_t *spe__error_new(const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* How a process ended, as an error object: code CLD_EXITED (status: the exit
 * status) gives kind `exit_kind`, "<who> exited with status N" and
 * "exit_code"; any other code (status: the signal) gives kind "crashed",
 * "<who> was killed by signal N (SIGABBR)" and "signal". `who` NULL: the
 * messages start at "exited"/"killed". A new reference (NULL if out of memory). */
json_t *spe__error_ended(int code, int status, const char *exit_kind, const char *who);

#endif
