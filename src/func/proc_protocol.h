/*
 * What crosses between the executor, the fork server and the workers of
 * process isolation (forkserver.c, proc_worker.c, proc_*.c). Private: the
 * three sides are always the same build, so nothing here is versioned.
 *
 * The process tree:
 *
 *   executor process (the embedding program; any number of threads)
 *    └─ fork server       own process group; single-threaded; forked by
 *       │                 spe_open() before the library starts a thread
 *       ├─ worker         own process group; runs one call at a time
 *       │   └─ ...        whatever a function spawned (same group)
 *       └─ worker ...
 *
 * Two kinds of channels:
 *
 *  - The control socket (AF_UNIX, SOCK_SEQPACKET: one message per send, so no
 *    framing) between the executor and the server carries fixed-size struct
 *    ctl_msg records. Executor → server: SPAWN (fork a worker), KILL (signal
 *    a worker's process group), QUIT. Server → executor: SPAWNED (with the
 *    executor's end of the worker's socket attached as SCM_RIGHTS),
 *    SPAWN_FAILED, EXITED (a worker was reaped: how it ended). The server
 *    signals only workers it has not reaped yet, so a pid is never reused
 *    under a KILL.
 *
 *  - One stream socket (AF_UNIX, SOCK_STREAM) per worker, between the worker
 *    and the executor, never passing through the server. Each task is one
 *    request frame (executor → worker) and one response frame back, each a
 *    fixed header and then its text, written with one write where it fits.
 */
#ifndef SPE_FUNC_PROC_PROTOCOL_H
#define SPE_FUNC_PROC_PROTOCOL_H

#include "base/buf.h"
#include "base/log.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the handle of forkserver.h ---- */

struct fork_server {
  pid_t pid;      /* the server, a child of this process */
  int ctl;        /* our end of the control socket: non-blocking, close-on-exec */
  const struct logger *lg;
};

/* ---- control messages ---- */

enum ctl_type {
  CTL_SPAWN = 1,    /* →server: fork a worker */
  CTL_KILL,         /* →server: send `value` to worker `pid` and its group */
  CTL_QUIT,         /* →server: kill every worker, reap them, exit */
  CTL_SPAWNED,      /* →executor: worker `pid` is up; its socket is attached */
  CTL_SPAWN_FAILED, /* →executor: fork or socketpair failed with errno `value` */
  CTL_EXITED,       /* →executor: worker `pid` was reaped: `value` is the
                       siginfo si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED),
                       `value2` the exit status or the signal */
};

struct ctl_msg {
  uint32_t type;  /* enum ctl_type */
  int32_t pid;
  int32_t value;
  int32_t value2;
};

/* ---- frames on a worker's socket ---- */

#define REQ_MAGIC 0x53504551u  /* "SPEQ" */
#define RESP_MAGIC 0x53504552u /* "SPER" */

/* A request: this header, then six fields, each followed by a NUL byte so that
 * the worker can use them in place: job id, job name, task name, function
 * name, the input object as JSON text, the arg as JSON text. */
struct req_head {
  uint32_t magic;
  uint32_t attempt;
  uint32_t job_id_len, job_name_len, task_len, func_len;
  uint64_t input_len, arg_len;
  uint64_t max_result; /* a result longer than this as text is refused by the worker */
};

enum resp_status {
  RESP_OK = 0,    /* the text is the result as JSON */
  RESP_ERROR = 1, /* the text is the failure's message (kind "error") */
};

/* The worker is about to exit (it could not go on: out of memory, a broken
 * frame): the executor must not give it another task. */
#define RESP_F_RETIRE 1u

/* A response: this header, then `len` bytes of text (no NUL). */
struct resp_head {
  uint32_t magic;
  uint16_t status; /* enum resp_status */
  uint16_t flags;  /* RESP_F_* */
  uint64_t len;
};

/* An error message longer than this is cut by the worker: a message explains a
 * failure; it is not a way around max_result_bytes. */
#define RESP_MAX_MESSAGE ((size_t)64 * 1024)

/* ---- the worker's side (proc_worker.c) ---- */

/* The life of a worker process, forked by the server: `sock` is its socket to
 * the executor. Serves requests until EOF, then _exits; never returns. */
void spe__worker_main(int sock, const struct spe_registry *reg, size_t memory_limit,
                      pid_t server) __attribute__((noreturn));

#endif
