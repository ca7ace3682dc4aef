/*
 * SIGINT and SIGTERM during `spe run`.
 *
 * The signals are blocked in the main thread before the executor is opened, so
 * that every thread the library starts inherits the mask and none of them is
 * interrupted by a handler; one thread of ours takes them with sigwait() and
 * asks the executor to stop (spe_shutdown, which must not be called from a
 * signal handler). The main thread, waiting in spe_wait(), then gets
 * SPE_ECLOSED, closes the executor (which stops the running tasks) and exits
 * with 130. A second signal ends the program at once, without waiting for the
 * tasks to stop.
 *
 * `watch_lock` guards the function called and its context (the executor), so
 * that a signal arriving while the main thread closes the executor never
 * touches a freed handle.
 */
#ifndef SPE_CLI_SIGNALS_H
#define SPE_CLI_SIGNALS_H

#include "spe.h"

/* Block SIGINT and SIGTERM in the calling thread. Returns 0 or -1. */
int signals_block(void);

/* Start the thread that waits for the signals and stops `ex`. Returns 0 or -1
 * (with a message printed). */
int signals_watch(spe_executor *ex);

/* The same, but the first signal calls fn(ctx) on the signal thread instead of
 * stopping an executor (`spe serve` stops its listeners before the executor).
 * fn must be quick and must not wait for the program. */
int signals_watch_call(void (*fn)(void *ctx), void *ctx);

/* The signal that asked us to stop, or 0. */
int signals_caught(void);

/* Forget the executor (call before spe_close): the thread never touches it
 * again. A signal after this is still counted, and a second one still ends the
 * program at once, so that an impatient user is not held up by a slow close. */
void signals_detach(void);

/* Stop the thread and join it. Harmless if signals_watch() was not called. */
void signals_unwatch(void);

#endif
