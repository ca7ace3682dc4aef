/*
 * libspe — the Scalable Parallel Executor as a C library.
 *
 * An executor runs jobs: named tasks joined by dependencies, on a bounded pool of
 * workers, with every change of state kept in a state store. The contract
 * (job format, semantics, result and event shapes) is SPEC.md; this header is its
 * C face.
 *
 * Conventions, stated once:
 *  - Every call that can fail returns int: 0 on success or a negative SPE_E... code.
 *    spe_strerror() names a code. Where a call takes `char **msg`, it may be NULL;
 *    otherwise, on failure *msg is set to a message naming the problem (which task,
 *    which field), allocated with malloc: the caller owns it and frees it with
 *    free(). On success *msg is set to NULL.
 *  - Handles are opaque. Every create has a destroy; destroy accepts NULL.
 *  - JSON values cross the API as jansson json_t with jansson's reference rules:
 *    a json_t passed *in* is borrowed (the caller keeps its reference) unless the
 *    function says it steals it; a json_t handed *out* through a `json_t **` is a
 *    new reference the caller must json_decref().
 *  - Strings passed in are borrowed and copied if kept. Strings handed out through
 *    fixed-size buffers (job ids) are NUL-terminated.
 *  - The library never prints and never exits: it logs through the callback in
 *    spe_options, and reports everything else through return codes.
 *  - All functions on one spe_executor are safe to call from any thread, except
 *    spe_close(), which must be the last call on the handle.
 */
#ifndef SPE_H
#define SPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SPE_BUILDING_LIBRARY) && defined(__GNUC__)
#define SPE_EXPORT __attribute__((visibility("default")))
#else
#define SPE_EXPORT
#endif

/* ---- Errors ------------------------------------------------------------- */

/* One table: the codes, their names and their messages. */
#define SPE_ERRNO_MAP(X)                                                       \
  X(EINVAL, -1, "invalid argument")                                            \
  X(EJOB, -2, "invalid job description")                                       \
  X(ENOJOB, -3, "no such job")                                                 \
  X(ESTATE, -4, "the job is not in a state that allows this")                  \
  X(ESTORE, -5, "the state store failed")                                      \
  X(ELOCKED, -6, "the state store is in use by another process")              \
  X(ENOMEM, -7, "out of memory")                                               \
  X(ESYS, -8, "a system call failed")                                          \
  X(ECLOSED, -9, "the executor is closed or shutting down")                   \
  X(ETIMEDOUT, -10, "timed out")                                               \
  X(ENOTSUP, -11, "not supported")                                             \
  X(EURL, -12, "unknown or malformed state store URL")                         \
  X(ELIMIT, -13, "a limit was exceeded")

enum {
#define SPE_ERRNO_ENUM(name, value, text) SPE_##name = (value),
  SPE_ERRNO_MAP(SPE_ERRNO_ENUM)
#undef SPE_ERRNO_ENUM
};

/* A static message for an error code ("unknown error" for anything else). */
SPE_EXPORT const char *spe_strerror(int code);
/* The code's name, e.g. "SPE_ENOJOB". */
SPE_EXPORT const char *spe_err_name(int code);

/* ---- Logging ------------------------------------------------------------ */

enum spe_log_level {
  SPE_LOG_ERROR = 0,
  SPE_LOG_WARN = 1,
  SPE_LOG_INFO = 2,
  SPE_LOG_DEBUG = 3
};

/* Called for every log line at or below the configured level, from any of the
 * library's threads (calls may be concurrent). `msg` is borrowed for the call and
 * carries no trailing newline. */
typedef void (*spe_log_fn)(void *ctx, int level, const char *msg);

/* ---- Executor ------------------------------------------------------------ */

typedef struct spe_executor spe_executor;

#define SPE_WORKERS_UNBOUND (-1)
#define SPE_ID_SIZE 27 /* a job id: 26 characters (a ULID) and the NUL */

typedef struct spe_options {
  /* How many tasks may run at once across all jobs: a positive number,
   * SPE_WORKERS_UNBOUND for no limit, or 0 for the number of online CPUs.
   * Default 0. */
  int workers;
  /* The state store: "memory:" (nothing kept) or "sqlite:PATH". Borrowed for
   * the duration of spe_open(). Default "memory:". */
  const char *store_url;
  /* Log callback and its context; NULL logs nothing. Default NULL. */
  spe_log_fn log;
  void *log_ctx;
  /* The most verbose level passed to `log`. Default SPE_LOG_INFO. */
  int log_level;
  /* A command's stdout larger than this fails the task (kind "error").
   * 0 = the default, 16 MiB. */
  size_t max_result_bytes;
  /* How many jobs may be unfinished (submitted or running) in the executor at
   * once, recovered ones included. A submit beyond returns SPE_ELIMIT; jobs
   * recovered from the store are never refused. 0 = the default, 100,000;
   * SIZE_MAX for no limit. docs/limits.md lists every limit. */
  size_t max_unfinished_jobs;
  /* Retry backoff: attempt n+1 starts base * 2^(n-1) ms after attempt n failed,
   * at most max ms. Defaults 100 and 30000. */
  int retry_backoff_ms;
  int retry_backoff_max_ms;
  /* On shutdown, running tasks get SIGTERM, then SIGKILL after this many ms.
   * Default 5000. */
  int grace_ms;
  /* A task that was running when the executor crashed is started again on
   * recovery, unless this many of its attempts have been cut short by crashes:
   * then it fails with kind "lost". Interruptions by spe_shutdown() do not
   * count. Default 3. */
  int lost_attempt_limit;
  /* 0: every running job recovered from the store goes on by itself as soon as
   * spe_open() returns (what a server wants). 1: a recovered running job waits
   * until it is resumed (spe_submit_ex() with SPE_SUBMIT_RESUME) and then
   * started (spe_start()), like a submitted one; a job never resumed runs no
   * task and stays in the store as it was, for a later executor (what a
   * program that runs only the jobs it is given wants, such as `spe run`).
   * Recovery itself (job_recovered, lost tasks) is the same either way.
   * Default 0. */
  int hold_recovered;
} spe_options;

/* Fill `opt` with the defaults above. */
SPE_EXPORT void spe_options_init(spe_options *opt);

/* Open an executor: open (and recover) the store, start the engine.
 * `opt` may be NULL for the defaults; it is only read during the call.
 * On success *out is a new executor, released with spe_close(). */
SPE_EXPORT int spe_open(spe_executor **out, const spe_options *opt, char **msg);

/* Begin an orderly stop, from any thread (not from a signal handler): no task
 * starts any more, running tasks get SIGTERM then SIGKILL after grace_ms and are
 * recorded as interrupted, so that a later run starts them again. Every spe_wait()
 * in progress or to come returns SPE_ECLOSED. Returns at once; idempotent. */
SPE_EXPORT int spe_shutdown(spe_executor *ex);

/* Stop (as spe_shutdown) and wait for it, deliver every event already
 * published, close the store and free the executor. What is unfinished stays in
 * the store. NULL is a no-op. The handle must not be used afterwards. */
SPE_EXPORT void spe_close(spe_executor *ex);

/* ---- Jobs ------------------------------------------------------------------ */

/* Validate a job description (SPEC §1) and store it as a submitted job. Returns
 * once the job is durable. `id` receives its id. An invalid job returns SPE_EJOB
 * with the validation message in *msg, and nothing is stored. A job past one of
 * the size limits (docs/limits.md: bytes, tasks, dependencies, names, command
 * lines), or a submit while max_unfinished_jobs jobs are unfinished, returns
 * SPE_ELIMIT with a message naming the limit, and nothing is stored. */
SPE_EXPORT int spe_submit_text(spe_executor *ex, const char *text, size_t len,
                               char id[SPE_ID_SIZE], char **msg);
/* The same for a description already parsed; `desc` is borrowed. */
SPE_EXPORT int spe_submit_json(spe_executor *ex, json_t *desc, char id[SPE_ID_SIZE],
                               char **msg);

/* Flags for spe_submit_ex(). */
#define SPE_SUBMIT_RESUME 1u

/* spe_submit_text() with flags. With SPE_SUBMIT_RESUME: if the executor holds a
 * job recovered from the store (one that was submitted or running there when
 * spe_open() ran) with the same name and the same description (compared as
 * canonical JSON), and no earlier call has resumed it, nothing new is
 * submitted: `id` receives that job's id and *resumed is set to 1. A running job
 * goes on by itself (with hold_recovered, once spe_start() is called); a
 * submitted one still needs spe_start(). The job may have finished since the
 * open (recovery fails a task at its lost-attempt limit, which may end the
 * job): it is resumed all the same, and spe_wait() returns at once. Otherwise
 * the job is submitted as new and *resumed is 0. `resumed` may be NULL. */
SPE_EXPORT int spe_submit_ex(spe_executor *ex, const char *text, size_t len, unsigned flags,
                             char id[SPE_ID_SIZE], int *resumed, char **msg);

/* Start a submitted job, or (with hold_recovered) let a held recovered job go
 * on. SPE_ENOJOB for an unknown id, SPE_ESTATE if it was already started. */
SPE_EXPORT int spe_start(spe_executor *ex, const char *id, char **msg);

/* Cancel a job: its running tasks are terminated and fail with kind
 * "cancelled", the tasks not yet run become not_run, the job becomes
 * "cancelled". SPE_ESTATE if it has already finished. */
SPE_EXPORT int spe_cancel(spe_executor *ex, const char *id, char **msg);

/* Wait until the job has finished (succeeded, failed or cancelled), at most
 * timeout_ms milliseconds (negative: no limit). Returns 0, SPE_ETIMEDOUT,
 * SPE_ENOJOB or SPE_ECLOSED (the executor is stopping). */
SPE_EXPORT int spe_wait(spe_executor *ex, const char *id, int timeout_ms);

/* The job in the shape of SPEC §3, also while it runs. *out is a new reference. */
SPE_EXPORT int spe_job_get(spe_executor *ex, const char *id, json_t **out, char **msg);

/* ---- Events ------------------------------------------------------------------ */

typedef struct spe_subscription spe_subscription;

/* Called once per event (SPEC §4), in `seq` order, on the library's event
 * delivery thread (never on the caller's thread, never concurrently for one
 * executor). `event` is borrowed for the duration of the call: json_incref it to
 * keep it. A slow callback delays later events, never the engine. The callback
 * must not call spe_close(). */
typedef void (*spe_event_fn)(void *ctx, const json_t *event);

/* Subscribe to one job's events (job_id) or to every job's (job_id NULL).
 * Events published after the call are delivered. *out is released with
 * spe_unsubscribe(); once that returns, the callback is not running and will not
 * be called again. It must be called before spe_close(), or not at all:
 * subscriptions left open are released by spe_close(). */
SPE_EXPORT int spe_subscribe(spe_executor *ex, const char *job_id, spe_event_fn fn,
                             void *ctx, spe_subscription **out);
SPE_EXPORT void spe_unsubscribe(spe_subscription *sub);

/* ---- Jobs without an executor ------------------------------------------------ */

/* Validate a job description and compute its plan without running anything:
 * *levels_out receives a new JSON array of arrays of task names, each inner array
 * a level of tasks that can run together once the levels before it are done.
 * Returns SPE_EJOB with the message on an invalid job, SPE_ELIMIT on a job past
 * a size limit (as spe_submit_text() would). */
SPE_EXPORT int spe_validate_text(const char *text, size_t len, json_t **levels_out,
                                 char **msg);

#ifdef __cplusplus
}
#endif
#endif /* SPE_H */
