/*
 * The command executor: runs `cmd` and `argv` tasks as child processes and
 * supervises them from the engine's loop.
 *
 * Each attempt is started with posix_spawn (never fork: the executor may be a
 * large, threaded process) in a process group of its own, with its input in a
 * pipe (small) or memfd (large) as stdin and its stdout and stderr on non-blocking pipes read as data
 * arrives. Its end is seen through a pidfd. When the task's own process exits,
 * whatever is left of its process group is killed, its buffered output read, the
 * child reaped, and the outcome reported. A timeout kills the whole group at
 * once. Nothing here blocks the loop, and no zombie is left behind.
 * docs/commands.md describes all of it for users.
 *
 * The embedding program must not reap children it did not start (no
 * waitpid(-1), no SIGCHLD set to SIG_IGN): an attempt's unreaped process is
 * what keeps its process group id from being reused before the group is killed.
 *
 * Threads: everything runs on the loop's thread.
 */
#ifndef SPE_EXEC_CMD_H
#define SPE_EXEC_CMD_H

#include "base/log.h"
#include "exec/exec.h"
#include "loop/loop.h"

struct cmd_exec;  /* the executor */
struct cmd_run;   /* one running attempt */

/* Called on the loop's thread, outside of any other executor call, when an
 * attempt has ended for good. `out` is the executor's: the callee takes the
 * references in it (result/error) and must not keep the pointer. `run` is no
 * longer valid after the call. `task_ctx` is what was given to spe__cmd_start. */
typedef void (*cmd_done_fn)(void *ctx, void *task_ctx, struct task_outcome *out);

/* Create the executor on a loop. `done` receives every outcome. */
int spe__cmd_exec_new(struct cmd_exec **out, struct loop *lp, const struct logger *lg,
                      cmd_done_fn done, void *ctx);

/* Start an attempt. On success returns 0 and *run identifies it (for signals).
 * If the command cannot be started at all (no such program or directory, too
 * many processes...), returns a negative code, sets *run to NULL, and fills
 * `failed` with an outcome of kind "error" naming the problem
 * (its `error` is NULL only when even that could not be allocated); the done
 * callback is not called then. The done callback of a started attempt is
 * always called later, from spe__loop_poll(), never from inside this call.
 * An `argv` program without a slash is searched in the PATH of this process,
 * not in a PATH given through env_job or env_task. */
int spe__cmd_start(struct cmd_exec *ex, const struct task_launch *launch, void *task_ctx,
                   struct cmd_run **run, struct task_outcome *failed);

/* Send `sig` to the attempt's whole process group. If `kind` is not NULL, the
 * attempt will be reported as failed with that kind ("cancelled") whatever its
 * exit status. Harmless on an attempt that has already ended but not yet been
 * reported. */
void spe__cmd_signal(struct cmd_exec *ex, struct cmd_run *run, int sig, const char *kind);

/* Number of attempts started and not yet reported. */
uint32_t spe__cmd_running(const struct cmd_exec *ex);

/* Kill every running attempt's process group with SIGKILL, reap them without
 * reporting, and free the executor. NULL is a no-op. Call it while the loop is
 * still open, and not from inside one of the loop's callbacks (an event of the
 * current batch could still point at a freed attempt). */
void spe__cmd_exec_free(struct cmd_exec *ex);

#endif
