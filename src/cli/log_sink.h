/*
 * Where log lines go: stderr, one line each, in the format documented in
 * docs/cli.md:
 *
 *     2026-11-27T04:05:06.123Z info  job 01JD7... "nightly": task "fetch" succeeded (attempt 1, 120 ms)
 *
 * The time is UTC with milliseconds (the event's own time for event lines), the
 * level is padded to five characters so that messages line up.
 *
 * How much is shown: `--log-level`, else $SPE_LOG, else info. On a terminal the
 * progress line replaces the per-event lines, so unless a level was asked for
 * explicitly only warnings and errors are printed as lines there.
 */
#ifndef SPE_CLI_LOG_SINK_H
#define SPE_CLI_LOG_SINK_H

#include <stdint.h>

/* Set the threshold: the most verbose level printed (SPE_LOG_*). */
void log_sink_set_level(int level);
int log_sink_level(void);
static inline int log_sink_enabled(int level) { return level <= log_sink_level(); }

/* The library's log callback (spe_options.log): prints `msg` at `level` with
 * the current time. Any thread. */
void log_sink_library(void *ctx, int level, const char *msg);

/* Print one line at `level` stamped with `time_ms` (ms since the epoch), if the
 * level is enabled. */
void log_sink_line(int level, int64_t time_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write "YYYY-MM-DDTHH:MM:SS.mmmZ" for time_ms into out[64]. */
void log_sink_timestamp(int64_t time_ms, char out[64]);

#endif
