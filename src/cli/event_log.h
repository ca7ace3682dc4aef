/*
 * Event lines: each event of a run (SPEC §4) turned into one log line, e.g.
 *
 *     job 01JD7... "nightly": task "fetch" succeeded (attempt 1, 120 ms)
 *     job 01JD7... "nightly": task "check" failed: exited with status 3 (attempt 1, 8 ms); stderr: "bad row 7"
 *
 * Failures (a task that failed for good, a job that did not succeed) are
 * warnings; everything else is info.
 *
 * It keeps what later events do not repeat: each job's name (from its
 * job_submitted event, the first of every job) and when each task's current
 * attempt and each job started (for durations). All of that is touched only on
 * the library's event delivery thread, one event at a time. The one exception
 * is a job resumed from the store, whose job_submitted event was published
 * before this run subscribed: the main thread names it with event_log_name(),
 * in a table of its own under `names_lock`.
 */
#ifndef SPE_CLI_EVENT_LOG_H
#define SPE_CLI_EVENT_LOG_H

#include <jansson.h>

struct event_log;

int event_log_new(struct event_log **out);
void event_log_free(struct event_log *el);

/* Name a job whose job_submitted event this run did not see (a job resumed
 * from the store). Main thread. */
void event_log_name(struct event_log *el, const char *id, const char *name);

/* Print the line for one event, if its level is enabled. */
void event_log_write(struct event_log *el, const json_t *event);

/* "6 tasks: 5 succeeded, 1 failed": how many tasks of a SPEC §3 `tasks` object
 * are in each status (succeeded, failed, not run, running, pending; those at 0
 * left out), into out[cap]. The line of a job_finished event, and of
 * `spe status`. */
void event_log_count_tasks(const json_t *tasks, char *out, size_t cap);

#endif
