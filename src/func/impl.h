/*
 * The two implementations behind func/func.h. Each defines `struct func_run`
 * (one running attempt) privately in its own files; the facade (func_exec.c)
 * only passes the pointers through. Same contracts as the spe__func_*
 * functions of func.h.
 */
#ifndef SPE_FUNC_IMPL_H
#define SPE_FUNC_IMPL_H

#include "func/func.h"

/* Process isolation: proc_*.c, on the fork server of forkserver.h. */
struct proc_exec;
int spe__proc_exec_new(struct proc_exec **out, const struct func_exec_config *cfg,
                       struct loop *lp, const struct logger *lg, cmd_done_fn done, void *ctx);
int spe__proc_start(struct proc_exec *px, const struct task_launch *launch, void *task_ctx,
                    struct func_run **run, struct task_outcome *failed);
void spe__proc_signal(struct proc_exec *px, struct func_run *run, int sig, const char *kind);
uint32_t spe__proc_running(const struct proc_exec *px);
void spe__proc_exec_free(struct proc_exec *px);

/* Thread isolation: thread_*.c. (Named spe__thread_exec_*: spe__thread_start
 * is base/thread.h's.) */
struct thread_exec;
int spe__thread_exec_new(struct thread_exec **out, const struct func_exec_config *cfg,
                         struct loop *lp, const struct logger *lg, cmd_done_fn done, void *ctx);
int spe__thread_exec_start(struct thread_exec *tx, const struct task_launch *launch,
                           void *task_ctx, struct func_run **run, struct task_outcome *failed);
int spe__thread_exec_call(struct thread_exec *tx, const struct call_req *req, void *task_ctx,
                          struct func_run **out, struct task_outcome *failed);
void spe__thread_exec_signal(struct thread_exec *tx, struct func_run *run, int sig,
                             const char *kind);
uint32_t spe__thread_exec_running(const struct thread_exec *tx);
int spe__thread_exec_withdraw(struct thread_exec *tx, struct func_run *run, int64_t *started_ms);
void spe__thread_exec_slot_freed(struct thread_exec *tx);
void spe__thread_exec_flush(struct thread_exec *tx);
void spe__thread_exec_poll(struct thread_exec *tx);
int spe__thread_exec_has_notes(struct thread_exec *tx);
int spe__thread_exec_sleep_begin(struct thread_exec *tx, int until_dry);
void spe__thread_exec_sleep_end(struct thread_exec *tx);
void spe__thread_exec_spin(struct thread_exec *tx, int64_t max_ns);
void spe__thread_exec_committing(struct thread_exec *tx, int on);
void spe__thread_exec_free(struct thread_exec *tx);

#endif
