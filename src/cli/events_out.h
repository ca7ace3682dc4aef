/*
 * `spe run --events FILE|-`: every event of the run as one compact JSON object
 * per line (NDJSON), in `seq` order.
 *
 * Each line is flushed as soon as it is written, whatever the destination, so
 * that a reader following the file (tail -f, a test waiting for task_started)
 * sees an event as soon as it happens; an event costs one write(2), which is
 * small next to what a task costs. After a write error nothing more is written;
 * the error is reported once, by events_out_close().
 *
 * Threads: events_out_write() runs on the library's event delivery thread, the
 * others on the main thread before the subscription starts and after the
 * executor is closed, so no lock is needed.
 */
#ifndef SPE_CLI_EVENTS_OUT_H
#define SPE_CLI_EVENTS_OUT_H

#include <jansson.h>

struct events_out;

/* Open `path` for writing (truncated), or standard output for "-". On failure
 * prints "spe: PATH: REASON" and returns -1. */
int events_out_open(struct events_out **out, const char *path);

void events_out_write(struct events_out *eo, const json_t *event);

/* Flush and close. Returns 0, or -1 after printing the first write error.
 * NULL is a no-op returning 0. */
int events_out_close(struct events_out *eo);

#endif
