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
  X(ELIMIT, -13, "a limit was exceeded")                                      \
  X(EBUSY, -14, "too many unfinished jobs; try again once some finish")

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
struct spe_registry;

/* Isolation of `exec` functions (spe_options.isolation).
 *
 * SPE_ISOLATION_PROCESS: every function runs in a worker process. A function
 * that crashes, calls abort() or exit(), kills itself, loops or leaks costs only
 * its own task (kind "crashed" with its "signal" or "exit_code", or "timeout");
 * the worker is replaced and the executor goes on. Workers are forked by a small
 * fork server that spe_open() forks first, before the library starts any thread,
 * from the functions registered then; inputs and results cross a socket as JSON
 * text, so a result must be JSON-encodable (a bare number, string, etc. is fine).
 * Workers are reused from task to task: a function must not rely on a fresh
 * process, only on a healthy one. A timeout or a cancel kills the worker's
 * process group (SIGTERM, then SIGKILL after grace_ms, for a cancel; SIGKILL at
 * once for a timeout).
 *   Forking a program that already runs threads of its own is only safe if no
 *   other thread holds a lock that the functions need in the worker (glibc's
 *   malloc is safe): open executors that use process isolation early, before
 *   starting threads.
 *
 * SPE_ISOLATION_THREAD: functions run on a pool of threads inside the process,
 * as many as `workers` (the online CPUs when workers is unbound). Much cheaper
 * per task, and no protection at all: a crash of a function is a crash of the
 * program. Timeouts and cancels are soft: the task is reported as "timeout" or
 * "cancelled" on time, but the function runs on until it returns, its result
 * then discarded; spe_call_cancelled() lets a long function notice and return
 * early. spe_close() waits for running functions to return. For trusted, small
 * tasks. */
#define SPE_ISOLATION_PROCESS 0
#define SPE_ISOLATION_THREAD 1

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
   * once, recovered ones included. A submit beyond returns SPE_EBUSY; jobs
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
  /* The C functions that `exec` tasks may name (see "C functions" below), or
   * NULL for none. Copied by spe_open(): the registry may be changed or freed
   * afterwards without effect on the executor. A job naming a function that is
   * not in it is refused on submit (SPE_EJOB); a recovered task whose function
   * is no longer registered fails with kind "error". Default NULL. */
  const struct spe_registry *functions;
  /* Where `exec` functions run: SPE_ISOLATION_PROCESS (the default) or
   * SPE_ISOLATION_THREAD. See "Isolation" below. */
  int isolation;
  /* Process isolation: the most address space (RLIMIT_AS, bytes) one worker
   * process may map, so that a function that leaks or runs away with memory
   * fails its own task instead of exhausting the machine. 0 = the default,
   * 4 GiB; SIZE_MAX for no limit. */
  size_t function_memory_limit;
  /* "memory:" only: how many of the newest events the executor keeps for
   * spe_events_since() (a server that lets clients reconnect wants some). 0,
   * the default, keeps none (a durable store keeps them all, until pruned). */
  size_t event_history;
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

/* 0 while the executor works; once a failure has stopped it (a store commit
 * failed: SPE_ESTORE; its event loop failed: SPE_ESYS), that code, for good:
 * no task starts any more, running ones are stopped as by spe_shutdown(), and
 * every spe_wait() returns the code. The log says what failed. A long-running
 * program (a server) polls this to exit rather than go on answering with an
 * executor that cannot record anything. NULL: SPE_EINVAL. */
SPE_EXPORT int spe_failure(spe_executor *ex);

/* Stop (as spe_shutdown) and wait for it, deliver every event already
 * published, close the store and free the executor. What is unfinished stays in
 * the store. NULL is a no-op. The handle must not be used afterwards. */
SPE_EXPORT void spe_close(spe_executor *ex);

/* ---- Jobs ------------------------------------------------------------------ */

/* Validate a job description (SPEC §1) and store it as a submitted job. Returns
 * once the job is durable. `id` receives its id. An invalid job returns SPE_EJOB
 * with the validation message in *msg, and nothing is stored. A job past one of
 * the size limits (docs/limits.md: bytes, tasks, dependencies, names, command
 * lines) returns SPE_ELIMIT with a message naming the limit; a submit while
 * max_unfinished_jobs jobs are unfinished returns SPE_EBUSY (the executor's
 * state, not the job's fault: it may be tried again once some finish). In
 * either case nothing is stored. */
SPE_EXPORT int spe_submit_text(spe_executor *ex, const char *text, size_t len,
                               char id[SPE_ID_SIZE], char **msg);
/* The same for a description already parsed; `desc` is borrowed. */
SPE_EXPORT int spe_submit_json(spe_executor *ex, json_t *desc, char id[SPE_ID_SIZE],
                               char **msg);

/* Flags for spe_submit_ex(). */
#define SPE_SUBMIT_RESUME 1u
#define SPE_SUBMIT_START 2u

/* spe_submit_text() with flags. With SPE_SUBMIT_RESUME: if the executor holds a
 * job recovered from the store (one that was submitted or running there when
 * spe_open() ran) with the same name and the same description (compared as
 * canonical JSON), and no earlier call has resumed it, nothing new is
 * submitted: `id` receives that job's id and *resumed is set to 1. A running job
 * goes on by itself (with hold_recovered, once spe_start() is called); a
 * submitted one still needs spe_start(). The job may have finished since the
 * open (recovery fails a task at its lost-attempt limit, which may end the
 * job): it is resumed all the same, and spe_wait() returns at once. Otherwise
 * the job is submitted as new and *resumed is 0. `resumed` may be NULL.
 * With SPE_SUBMIT_START, a job submitted as new is also started, in the same
 * commit as its submission: the call returns once both are durable, after one
 * commit instead of the two of a submit and a spe_start() (a server's
 * "submit and start"). A resumed job is left as the text above says. */
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

/* The job in the shape of SPEC §3, also while it runs, and also a finished job
 * of an earlier run that is still in the store (until pruned). *out is a new
 * reference. SPE_ENOJOB for an id neither the executor nor its store knows. */
SPE_EXPORT int spe_job_get(spe_executor *ex, const char *id, json_t **out, char **msg);

/* A page of the jobs the store holds (the memory store: those of this
 * executor), newest first (jobs are ordered by id, which rises with submission
 * time). `status` (NULL: any) keeps only jobs in that status ("submitted",
 * "running", "succeeded", "failed", "cancelled"; another string is SPE_EINVAL).
 * `before_id` (NULL: from the newest) starts after that job: pass the last id
 * of a page to get the next one. `limit`: 1 to 1000 jobs, 0 for 100. *out is a
 * new JSON array of summaries: {"id", "name", "status", "submitted_ms",
 * "started_ms", "finished_ms"} (times 0 when not yet), the caller's reference. */
SPE_EXPORT int spe_jobs_list(spe_executor *ex, const char *status, const char *before_id,
                             size_t limit, json_t **out, char **msg);

/* Remove finished jobs (succeeded, failed, cancelled) that finished before
 * `finished_before_ms` (Unix ms) from the store and from the executor, with
 * their tasks and events. *pruned (may be NULL) receives how many. Unfinished
 * jobs are never pruned. */
SPE_EXPORT int spe_prune(spe_executor *ex, int64_t finished_before_ms, size_t *pruned,
                         char **msg);

/* ---- Events ------------------------------------------------------------------ */

typedef struct spe_subscription spe_subscription;

/* Called once per event (SPEC §4), in `seq` order, on the library's event
 * delivery thread (never on the caller's thread, never concurrently for one
 * executor). `event` is borrowed for the duration of the call: json_incref it to
 * keep it. A slow callback delays later events, never the engine. The callback
 * must not call spe_close(). */
typedef void (*spe_event_fn)(void *ctx, const json_t *event);

/* Subscribe to one job's events (job_id) or to every job's (job_id NULL).
 * The event of every change made after the call returns is delivered (one of a
 * change made while the call runs may or may not be). While nobody subscribes
 * and the store keeps no events ("memory:" with no event_history), the
 * executor builds no events at all: they cost nothing when nobody can see
 * them. *out is released with
 * spe_unsubscribe(); once that returns, the callback is not running and will not
 * be called again. It must be called before spe_close(), or not at all:
 * subscriptions left open are released by spe_close(). */
SPE_EXPORT int spe_subscribe(spe_executor *ex, const char *job_id, spe_event_fn fn,
                             void *ctx, spe_subscription **out);
SPE_EXPORT void spe_unsubscribe(spe_subscription *sub);

/* Replay: the events with seq > after_seq, oldest first, at most `limit` (1 to
 * 10,000; 0 for 1,000), of one job (job_id) or all (NULL), from the store's
 * event log. *out is a new JSON array (empty when there are none yet). With
 * "memory:", only the last spe_options.event_history events are kept:
 * SPE_ENOTSUP when that is 0, SPE_ELIMIT (with the oldest seq still kept in
 * *msg) when events after after_seq have been forgotten. Every event in the log
 * has been published, so a subscriber that subscribes first and then replays up
 * to the newest event it receives live misses none and can drop duplicates by
 * seq. *last_seq (may be NULL) receives the newest seq in the log (0: none). */
SPE_EXPORT int spe_events_since(spe_executor *ex, const char *job_id, int64_t after_seq,
                                size_t limit, json_t **out, int64_t *last_seq, char **msg);

/* ---- Monitoring ------------------------------------------------------------- */

typedef struct spe_stats {
  uint64_t jobs_submitted, jobs_running, jobs_succeeded, jobs_failed, jobs_cancelled;
                                  /* jobs in the store (memory: this executor) by status */
  uint64_t tasks_running;         /* attempts running now */
  uint64_t tasks_ready;           /* ready tasks waiting for a worker (queue depth) */
  uint64_t tasks_succeeded, tasks_failed, tasks_not_run;
                                  /* tasks that ended so, since spe_open() */
  uint64_t commits;               /* store commits since spe_open() */
  double commit_seconds_total;    /* their total duration, seconds */
  double commit_seconds_max;      /* the longest one */
  uint64_t events_published;      /* events published since spe_open() */
} spe_stats;

/* Fill *out with the executor's counters (a consistent snapshot of the engine's,
 * plus the store's job counts). The engine's are as of its last commit, or its
 * last pause: while it works without a pause they lag by at most a
 * millisecond. A job that spe_wait() saw finish is counted in them. */
SPE_EXPORT int spe_stats_get(spe_executor *ex, spe_stats *out);

/* A pollable queue of events, for programs with an event loop of their own:
 * events are appended to it (on the delivery thread) and read with
 * spe_queue_next() on any thread; spe_queue_fd() becomes readable while events
 * are waiting. The queue is unbounded: read it. */
typedef struct spe_queue spe_queue;

/* Open a queue of one job's events (job_id) or every job's (NULL): it receives
 * the events published after the call. Released with spe_queue_close(), before
 * spe_close() or not at all (spe_close() then releases it; the handle must not
 * be used afterwards). */
SPE_EXPORT int spe_queue_open(spe_executor *ex, const char *job_id, spe_queue **out);
/* A file descriptor to poll for reading (POLLIN/EPOLLIN): readable while the
 * queue holds events, and once the executor closes it. Owned by the queue: do not
 * read or close it. */
SPE_EXPORT int spe_queue_fd(const spe_queue *q);
/* Take the oldest event: 0 and *event (a new reference, json_decref() it), or
 * SPE_ETIMEDOUT when none came within timeout_ms (0: do not wait; negative: no
 * limit), or SPE_ECLOSED once the queue is empty and the executor has stopped
 * delivering events (spe_shutdown()/spe_close()). */
SPE_EXPORT int spe_queue_next(spe_queue *q, int timeout_ms, json_t **event);
/* How many events wait in the queue. */
SPE_EXPORT size_t spe_queue_length(const spe_queue *q);
/* Release the queue and the events still in it. NULL is a no-op. */
SPE_EXPORT void spe_queue_close(spe_queue *q);

/* ---- C functions ------------------------------------------------------------- */

/* An `exec` task's call of a registered function: what it receives. Valid only
 * during the call, on the thread that runs it. */
typedef struct spe_call spe_call;

/* A registered function. `ctx` is the pointer given to spe_register().
 * Return the task's result as a new reference (the library steals it; NULL
 * means JSON null), or report a failure with spe_call_fail() (kind "error";
 * whatever is returned then is released and ignored). Under process isolation
 * the function runs in a worker process: `ctx` is the worker's copy of what it
 * pointed to when the fork server was forked (in spe_open()). */
typedef json_t *(*spe_function)(void *ctx, spe_call *call);

/* The task's input: an object mapping the name of every task upstream of it (every
 * ancestor) to its result; {} for a task with none. Borrowed, read-only (under
 * thread isolation it shares results with other tasks running at the same time:
 * never modify it, json_deep_copy() what you want to change), valid until the
 * function returns. Under thread isolation it is built on the first call, on the
 * calling thread (a function that never asks pays nothing); NULL only when memory
 * ran out building it. */
SPE_EXPORT const json_t *spe_call_input(const spe_call *call);
/* The task's `arg` (any JSON; JSON null when the task has none). Borrowed,
 * read-only. */
SPE_EXPORT const json_t *spe_call_arg(const spe_call *call);
/* The job's id and name, the task's name: borrowed for the call. */
SPE_EXPORT const char *spe_call_job_id(const spe_call *call);
SPE_EXPORT const char *spe_call_job_name(const spe_call *call);
SPE_EXPORT const char *spe_call_task(const spe_call *call);
/* The attempt: 1 for the first, more on retries and after a crash. */
SPE_EXPORT unsigned spe_call_attempt(const spe_call *call);
/* 1 once nobody waits for this call's result any more (thread isolation: the task
 * timed out, was cancelled or the executor is stopping), else 0. A long function
 * may poll it and return early. Always 0 under process isolation, where such a
 * call is killed instead. */
SPE_EXPORT int spe_call_cancelled(const spe_call *call);
/* Report failure: the task fails with kind "error" and this message (printf
 * format). Returns NULL, so that a function can `return spe_call_fail(...)`. */
SPE_EXPORT json_t *spe_call_fail(spe_call *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A set of named functions, given to spe_open() through spe_options.functions. */
typedef struct spe_registry spe_registry;

SPE_EXPORT int spe_registry_new(spe_registry **out);
/* NULL is a no-op. */
SPE_EXPORT void spe_registry_free(spe_registry *reg);
/* Register `fn` under `name` (copied; non-empty, at most 1,024 bytes) with the
 * context handed to it. SPE_EINVAL for NULLs, an empty or too long name, or a
 * name already registered (*msg says which). */
SPE_EXPORT int spe_register(spe_registry *reg, const char *name, spe_function fn, void *ctx,
                            char **msg);

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
