/*
 * The live progress line of `spe run` on a terminal:
 *
 *     done 12/40  running 2  failed 1  not run 3  elapsed 3.4s
 *
 * "done" counts tasks that reached their final status (succeeded, failed or
 * not run) out of all tasks of all jobs of the run; "failed" and "not run"
 * appear once non-zero. Counts change on events (event delivery thread); the
 * main thread calls progress_tick() while it waits so that "elapsed" moves
 * while nothing happens. Redraws are limited to one per 50 ms.
 */
#ifndef SPE_CLI_PROGRESS_H
#define SPE_CLI_PROGRESS_H

#include <jansson.h>
#include <stdint.h>

/* Start counting; `enabled` 0 makes every call below a no-op. */
void progress_start(uint64_t total_tasks, int enabled);
/* Account for one event (SPEC §4). */
void progress_on_event(const json_t *event);
/* Count tasks that had finished before this run saw any event of theirs (a job
 * resumed from the store): `failed` and `not_run` of them are also counted as
 * such. */
void progress_add_finished(uint64_t done, uint64_t failed, uint64_t not_run);
/* Redraw if due. */
void progress_tick(void);
/* Erase the line for good. */
void progress_stop(void);

#endif
