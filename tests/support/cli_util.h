/*
 * Test helpers for driving the `spe` program ($SPE_BIN) end to end: run it with
 * arguments in a directory of its own, capture its stdout, stderr and exit
 * status, and read what it wrote (NDJSON events, --json results) with jansson.
 *
 * Every helper fails the running cmocka test on an unexpected error, so tests
 * read as a list of what a user would check.
 */
#ifndef SPE_TESTS_CLI_UTIL_H
#define SPE_TESTS_CLI_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How one run of `spe` ended. */
struct cli_result {
  int status;       /* exit status, or 128 + signal if it was killed */
  char *out;        /* all of stdout, NUL-terminated */
  size_t out_len;
  char *err;        /* all of stderr */
  size_t err_len;
  int64_t wall_ms;  /* from spawn to exit */
  int64_t start_ms, end_ms; /* wall-clock times (ms since the epoch) */
};

/* Clocks, in milliseconds: wall-clock (since the epoch, as events' time_ms)
 * and monotonic (for deadlines and durations). */
int64_t cli_wall_ms(void);
int64_t cli_mono_ms(void);

/* Paths. Results are malloc'd; the caller frees them. */
const char *cli_bin(void);                 /* $SPE_BIN */
char *cli_source_path(const char *rel);    /* $SPE_SOURCE_DIR/rel */
char *cli_job_path(const char *name);      /* $SPE_SOURCE_DIR/tests/jobs/run/name */
/* A fresh, empty directory $SPE_TEST_TMP/name (removed first if present). */
char *cli_fresh_dir(const char *name);
/* Remove `dir` and everything in it (nothing if it is not there); fails the
 * test if it is still there afterwards. */
void cli_remove_dir(const char *dir);
char *cli_path_join(const char *dir, const char *name);

/* Run `spe ARGS...` (args NULL-terminated, without the program name) with `dir`
 * as its working directory, stdin from /dev/null, stdout and stderr captured
 * (in dir/.stdout and dir/.stderr). Waits for it to end. */
void cli_run(struct cli_result *r, const char *dir, const char *const *args);
/* The same with extra environment entries ("K=V", NULL-terminated; or NULL). */
void cli_run_env(struct cli_result *r, const char *dir, const char *const *args,
                 const char *const *env);
void cli_result_free(struct cli_result *r);

/* Start `spe ARGS...` in the background the same way, with stdin read from
 * `stdin_path` (NULL: /dev/null) and stderr on `stderr_fd` (-1: captured into
 * dir/.stderr); collect it with cli_finish(). */
pid_t cli_spawn(const char *dir, const char *const *args, const char *const *env,
                const char *stdin_path, int stderr_fd);
void cli_finish(struct cli_result *r, pid_t pid, const char *dir);

/* Files. */
char *cli_read_file(const char *path, size_t *len); /* NULL if it cannot be read */
void cli_write_file(const char *path, const char *text);

/* JSON. */
/* Each non-empty line of `text` parsed as one JSON object; fails the test on a
 * line that is not one. Returns a new array. */
json_t *cli_parse_ndjson(const char *text);
/* The subset of `events` with the given type (NULL: any), job id (NULL: any)
 * and task (NULL: any), as a new array of borrowed-then-increfed events. */
json_t *cli_events_where(const json_t *events, const char *type, const char *job,
                         const char *task);
/* The `time_ms` of the single event matching (type, job, task); fails the test
 * if there is not exactly one. */
int64_t cli_event_time(const json_t *events, const char *type, const char *job,
                       const char *task);
/* Check what SPEC §4 promises of an event stream: seq strictly rising by one,
 * time_ms within [from_ms - 1000, to_ms + 1000], per job one task_started and
 * one task_terminated per attempt (started first) and exactly one job_finished
 * (the job's last event). */
void cli_check_event_stream(const json_t *events, int64_t from_ms, int64_t to_ms);

/* Task lookups in a job object (SPEC §3); the results are borrowed. */
json_t *cli_task(const json_t *job, const char *task);
const char *cli_task_status(const json_t *job, const char *task);
json_t *cli_task_result(const json_t *job, const char *task);
const char *cli_error_kind(const json_t *job, const char *task);
json_int_t cli_task_int(const json_t *job, const char *task, const char *field);
json_int_t cli_error_int(const json_t *job, const char *task, const char *field);

/* Whether process `pid` is gone (exited, or a zombie no one has reaped yet). */
int cli_process_gone(pid_t pid);
/* Fail the test unless process `pid` (not necessarily our child) is gone or
 * goes within timeout_ms: awaited through a pidfd, which turns readable when
 * it exits; under valgrind, which knows no pidfd_open, by looking in /proc
 * every millisecond. */
void cli_assert_dies(pid_t pid, int timeout_ms);
/* Wait until `pred(ctx)` holds, checking every 10 ms, at most timeout_ms.
 * Returns 1 if it came true. For waiting on another process's files, where no
 * event can be awaited directly. */
int cli_poll_until(int (*pred)(void *ctx), void *ctx, int timeout_ms);

#endif
