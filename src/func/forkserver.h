/*
 * The fork server of process isolation: a small process forked by spe_open()
 * before the library starts any thread, holding the registered functions, which
 * forks the worker processes that run them. Forking from it is safe where
 * forking the (multi-threaded) executor is not.
 *
 * spe__forkserver_start() is called on the thread that calls spe_open(), first
 * thing; the handle is then used by the process-isolation executor
 * (proc_*.c) on the engine thread, and stopped by spe_close() after the engine
 * is gone. The protocol between them is private to forkserver.c and proc_*.c.
 */
#ifndef SPE_FUNC_FORKSERVER_H
#define SPE_FUNC_FORKSERVER_H

#include "base/log.h"
#include "func/registry.h"

#include <stddef.h>

struct fork_server;

/* Fork the server with the functions of `reg` (the executor's copy) and the
 * address-space limit of each worker (bytes; SIZE_MAX = none). Returns 0,
 * SPE_ESYS (with *msg) or SPE_ENOMEM. */
int spe__forkserver_start(struct fork_server **out, const struct spe_registry *reg,
                          size_t memory_limit, const struct logger *lg, char **msg);

/* Stop the server and every worker it still has (SIGKILL), reap it, free.
 * NULL is a no-op. */
void spe__forkserver_stop(struct fork_server *fs);

#endif
