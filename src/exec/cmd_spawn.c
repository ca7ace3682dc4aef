/*
 * Starting a command's process.
 *
 * The child is made with posix_spawn, never fork: the executor may be a large,
 * threaded process, and glibc's posix_spawn (clone with CLONE_VM|CLONE_VFORK)
 * neither copies page tables nor runs anything of ours in the child. It also
 * reports a failed exec — and a failed file action such as the chdir to the
 * task's cwd — as its return value, so no error pipe of our own is needed.
 *
 * The child gets:
 *  - stdin: a memfd holding the input JSON, rewound. Writing it never blocks,
 *    however large the input and however slowly the task reads it.
 *  - stdout, stderr: the write ends of two pipes; we keep the read ends, made
 *    non-blocking. The child's ends stay blocking: O_NONBLOCK belongs to the
 *    shared file description, and most programs do not expect EAGAIN on write.
 *  - no other descriptor: every descriptor from 3 up is closed in the child,
 *    so descriptors the embedding program forgot to mark close-on-exec do not
 *    leak into tasks (and do not hold pipes open).
 *  - its own process group, an empty signal mask (the engine may block SIGINT
 *    and SIGTERM in all its threads; children must not inherit that), and every
 *    signal at its default action (a parent ignoring SIGPIPE must not make
 *    `yes | head` loop).
 *  - the environment of cmd_env.c and the task's cwd.
 * Then a pidfd is opened on it, which tells the loop when it exits (where
 * pidfds are missing, the supervisor polls instead: see cmd_supervise.c).
 */
#include "base/msg.h"
#include "exec/cmd_internal.h"
#include "spe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

int spe__cmd_attr_init(posix_spawnattr_t *attr) {
  /* An empty mask and default dispositions for every signal. (glibc's child
   * visits all 64 signals anyway, whatever set is given here, so asking for all
   * costs nothing more.) */
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (posix_spawnattr_init(attr) != 0) return SPE_ENOMEM;
  if (posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF) != 0 ||
      posix_spawnattr_setpgroup(attr, 0) != 0 || posix_spawnattr_setsigmask(attr, &none) != 0 ||
      posix_spawnattr_setsigdefault(attr, &all) != 0) {
    posix_spawnattr_destroy(attr);
    return SPE_ESYS;
  }
  return 0;
}

/* The descriptors of one spawn; -1 when not open. */
struct child_fds {
  int in;     /* memfd: the child's stdin */
  int out[2]; /* stdout pipe: [0] ours, [1] the child's */
  int err[2]; /* stderr pipe */
};

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void close_all(struct child_fds *c) {
  close_fd(&c->in);
  close_fd(&c->out[0]);
  close_fd(&c->out[1]);
  close_fd(&c->err[0]);
  close_fd(&c->err[1]);
}

/* Move a descriptor out of 0..2. When the embedding program runs with stdin or
 * stdout closed, a new descriptor can land there, and the child's dup2 onto
 * 0..2 would then clobber one of its own sources. Returns 0 or an errno. */
static int lift_fd(int *fd) {
  if (*fd > 2) return 0;
  int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  close(*fd);
  *fd = nfd;
  return nfd < 0 ? e : 0;
}

/* Write at explicit offsets, so that the file position stays at 0 for the child
 * without an lseek. */
static int write_all(int fd, const char *p, size_t n) {
  off_t at = 0;
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, at);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    at += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Open the five descriptors. Returns 0 or an errno, with *step naming what failed. */
static int open_fds(const struct task_launch *l, struct child_fds *c, const char **step) {
  *step = "writing its input";
  size_t len = l->input ? l->input_len : 0;
  int e;
  if (len <= PIPE_BUF) {
    /* A small input goes through a pipe, written whole before the spawn: an
     * empty pipe always takes PIPE_BUF bytes without blocking, and a pipe is
     * cheaper to make than a memfd. The write end is closed at once, so the
     * task reads its input, then end of file. */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return errno;
    c->in = p[0];
    ssize_t w = len ? write(p[1], l->input, len) : 0;
    e = w < 0 ? errno : (size_t)w != len ? EIO : 0;
    close(p[1]);
    if (e != 0) return e;
  } else {
    /* A larger one goes into a memfd, which holds any size without a reader. */
    c->in = memfd_create("spe-input", MFD_CLOEXEC);
    if (c->in < 0) return errno;
    e = write_all(c->in, l->input, len);
    if (e != 0) return e;
  }

  *step = "creating its output pipes";
  if (pipe2(c->out, O_CLOEXEC) < 0 || pipe2(c->err, O_CLOEXEC) < 0) return errno;
  if (fcntl(c->out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(c->err[0], F_SETFL, O_NONBLOCK) < 0)
    return errno;
  int *all[5] = {&c->in, &c->out[0], &c->out[1], &c->err[0], &c->err[1]};
  for (int i = 0; i < 5; i++)
    if ((e = lift_fd(all[i])) != 0) return e;
  return 0;
}

/* Returns 0 or an errno. */
static int build_actions(posix_spawn_file_actions_t *fa, const struct child_fds *c,
                         const char *cwd) {
  int e;
  if ((e = posix_spawn_file_actions_adddup2(fa, c->in, 0)) != 0 ||
      (e = posix_spawn_file_actions_adddup2(fa, c->out[1], 1)) != 0 ||
      (e = posix_spawn_file_actions_adddup2(fa, c->err[1], 2)) != 0 ||
      (e = posix_spawn_file_actions_addclosefrom_np(fa, 3)) != 0)
    return e;
  if (cwd != NULL && (e = posix_spawn_file_actions_addchdir_np(fa, cwd)) != 0) return e;
  return 0;
}

/* posix_spawn returns one errno for a failed chdir and a failed exec alike.
 * Tell them apart by looking at the directory from here: if we could not
 * change to it either, the directory was the problem. Returns that errno or 0. */
static int cwd_problem(const char *cwd) {
  if (cwd == NULL) return 0;
  int fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  close(fd);
  if (access(cwd, X_OK) < 0) return errno;
  return 0;
}

static const char *program_name(const struct task_launch *l) {
  return l->argv != NULL ? l->argv[0] : "/bin/sh";
}

static int code_of(int e) { return e == ENOMEM ? SPE_ENOMEM : SPE_ESYS; }

static int do_spawn(const struct cmd_exec *ex, const struct task_launch *l,
                    const struct child_fds *c, pid_t *pid, char **msg) {
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0) {
    spe__msg_set(msg, "cannot run \"%s\": %s", program_name(l), strerror(ENOMEM));
    return SPE_ENOMEM;
  }
  struct cmd_env env = {NULL, NULL};
  int e = build_actions(&fa, c, l->cwd);
  if (e == 0 && spe__cmd_env_build(l, &env) != 0) e = ENOMEM;
  if (e == 0) {
    if (l->argv != NULL) {
      e = posix_spawnp(pid, l->argv[0], &fa, &ex->attr, l->argv, env.envp);
    } else {
      char *sh_argv[] = {"sh", "-c", (char *)l->cmd, NULL};
      e = posix_spawn(pid, "/bin/sh", &fa, &ex->attr, sh_argv, env.envp);
    }
    int dir_e = e != 0 ? cwd_problem(l->cwd) : 0;
    if (dir_e != 0)
      spe__msg_set(msg, "cannot change to directory \"%s\": %s", l->cwd, strerror(dir_e));
    else if (e != 0)
      spe__msg_set(msg, "cannot run \"%s\": %s", program_name(l), strerror(e));
  } else {
    spe__msg_set(msg, "cannot run \"%s\": %s", program_name(l), strerror(e));
  }
  spe__cmd_env_free(&env);
  posix_spawn_file_actions_destroy(&fa);
  return e == 0 ? 0 : code_of(e);
}

void spe__cmd_kill_reap(pid_t pid, int pidfd) {
  killpg(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
}

int spe__cmd_spawn(const struct cmd_exec *ex, const struct task_launch *l, struct spawned *sp,
                   char **msg) {
  if ((l->cmd == NULL) == (l->argv == NULL) || (l->argv != NULL && l->argv[0] == NULL)) {
    spe__msg_set(msg, "a command task needs exactly one of cmd and a non-empty argv");
    return SPE_EINVAL;
  }
  struct child_fds c = {-1, {-1, -1}, {-1, -1}};
  const char *step;
  int e = open_fds(l, &c, &step);
  if (e != 0) {
    spe__msg_set(msg, "cannot run \"%s\": %s (%s)", program_name(l), strerror(e), step);
    close_all(&c);
    return code_of(e);
  }
  pid_t pid;
  int rc = do_spawn(ex, l, &c, &pid, msg);
  /* The child has its copies (or there is no child): ours go. */
  close_fd(&c.in);
  close_fd(&c.out[1]);
  close_fd(&c.err[1]);
  if (rc != 0) {
    close_all(&c);
    return rc;
  }
  /* Without pidfds (Linux < 5.3, or valgrind, which does not know the call)
   * the supervisor polls for the exit instead. */
  int pidfd = pidfd_open(pid, 0);
  if (pidfd < 0 && errno != ENOSYS) {
    e = errno;
    spe__cmd_kill_reap(pid, -1);
    spe__msg_set(msg, "cannot run \"%s\": %s (watching its process)", program_name(l),
                 strerror(e));
    close_all(&c);
    return code_of(e);
  }
  *sp = (struct spawned){.pid = pid, .pidfd = pidfd, .out_fd = c.out[0], .err_fd = c.err[0]};
  return 0;
}
