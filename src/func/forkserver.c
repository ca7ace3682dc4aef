/*
 * The fork server of process isolation (forkserver.h; the protocol is in
 * proc_protocol.h).
 *
 * Why a server: the executor runs threads (the engine, the bus, the
 * embedder's own), and a fork of a threaded process may copy a lock held by
 * another thread into a child that can then never take it. The server is
 * forked by spe_open() before the library starts any thread, so it is a
 * single-threaded copy of the program holding the registered functions, and
 * forking the workers from it is safe. It is also small in what it does: a
 * poll loop over the control socket, a signalfd for SIGCHLD, and (where the
 * kernel has pidfds) a pidfd of the executor.
 *
 * Its setting, chosen so that it lives exactly as long as its executor and
 * never acts on a signal meant for the program:
 *  - its own process group: a Ctrl-C or a kill of the program's group is the
 *    program's to handle (say, by a graceful shutdown that lets the tasks
 *    finish), not the server's;
 *  - it dies with the executor: a pidfd of the executor process (readable once
 *    the whole process has exited, whichever thread forked the server), and
 *    PR_SET_PDEATHSIG(SIGKILL) when the server was forked by the main thread
 *    (the death signal follows the forking *thread*, so from another thread it
 *    would fire when that thread ends); end of file on the control socket, or
 *    CTL_QUIT, ends it too;
 *  - every signal back to its default action (a handler of the embedding
 *    program must not run in the server or a worker: it would act on shared
 *    descriptors as if it were the program) and an empty mask, but SIGCHLD,
 *    blocked for the signalfd;
 *  - descriptors: its own are close-on-exec and closed in each worker; those
 *    the program had open at spe_open() stay open in the server and the
 *    workers, as after any fork: a function may use them.
 *
 * Each worker is reaped here. When one has exited, and while it is still an
 * unreaped zombie (so its pid, also its group's id, cannot be reused), its
 * process group is sent SIGKILL, so that nothing a function started outlives
 * it; then it is reaped and CTL_EXITED reports how it ended. A CTL_KILL is only
 * carried out for a worker not yet reaped.
 */
#include "func/forkserver.h"

#include "base/msg.h"
#include "func/proc_protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long spe__forkserver_stop() waits for the server to kill and reap its
 * workers before it kills the server itself. */
#define STOP_WAIT_MS 5000

/* ---- the server process ---- */

struct server {
  int ctl;          /* the control socket (blocking) */
  int sigfd;        /* SIGCHLD */
  int parentfd;     /* pidfd of the executor, or -1 */
  pid_t self;
  const struct spe_registry *reg;
  size_t memory_limit;
  pid_t *live;      /* workers forked and not yet reaped */
  size_t nlive, caplive;
};

/* Kill every worker not yet reaped, reap them, leave. */
static void quit(struct server *s) __attribute__((noreturn));
static void quit(struct server *s) {
  for (size_t i = 0; i < s->nlive; i++) {
    kill(s->live[i], SIGKILL);
    killpg(s->live[i], SIGKILL);
  }
  for (size_t i = 0; i < s->nlive; i++)
    while (waitpid(s->live[i], NULL, 0) < 0 && errno == EINTR) {
    }
  _exit(0);
}

static void reply(struct server *s, uint32_t type, pid_t pid, int value, int value2) {
  struct ctl_msg m = {type, pid, value, value2};
  for (;;) {
    if (send(s->ctl, &m, sizeof m, MSG_NOSIGNAL) >= 0) return;
    if (errno != EINTR) quit(s); /* the executor is gone: so are we */
  }
}

static ssize_t find_live(const struct server *s, pid_t pid) {
  for (size_t i = 0; i < s->nlive; i++)
    if (s->live[i] == pid) return (ssize_t)i;
  return -1;
}

static void send_spawned(struct server *s, pid_t pid, int fd) {
  struct ctl_msg m = {CTL_SPAWNED, pid, 0, 0};
  struct iovec iov = {&m, sizeof m};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } c;
  memset(&c, 0, sizeof c);
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                      .msg_controllen = sizeof c.buf};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  for (;;) {
    if (sendmsg(s->ctl, &mh, MSG_NOSIGNAL) >= 0) return;
    if (errno != EINTR) quit(s);
  }
}

static void spawn(struct server *s) {
  if (s->nlive == s->caplive) {
    size_t cap = s->caplive ? s->caplive * 2 : 16;
    pid_t *p = realloc(s->live, cap * sizeof *p);
    if (p == NULL) {
      reply(s, CTL_SPAWN_FAILED, 0, ENOMEM, 0);
      return;
    }
    s->live = p;
    s->caplive = cap;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    reply(s, CTL_SPAWN_FAILED, 0, errno, 0);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(sv[0]);
    close(sv[1]);
    reply(s, CTL_SPAWN_FAILED, 0, e, 0);
    return;
  }
  if (pid == 0) {
    close(s->ctl);
    close(s->sigfd);
    if (s->parentfd >= 0) close(s->parentfd);
    close(sv[0]);
    spe__worker_main(sv[1], s->reg, s->memory_limit, s->self);
  }
  close(sv[1]);
  /* The worker does this too; whichever runs first, the group exists before
   * a CTL_KILL can be carried out. */
  setpgid(pid, pid);
  s->live[s->nlive++] = pid;
  send_spawned(s, pid, sv[0]);
  close(sv[0]);
}

static void kill_worker(struct server *s, pid_t pid, int sig) {
  if (find_live(s, pid) < 0) return; /* reaped already: the pid may be another's */
  kill(pid, sig);      /* the worker, even if a function moved it to another group */
  killpg(pid, sig);    /* and whatever it started */
}

/* Reap every worker that has exited, and report it. */
static void reap(struct server *s) {
  struct signalfd_siginfo si;
  while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
  }
  for (;;) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    killpg(pid, SIGKILL); /* the zombie still holds the group id */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    ssize_t i = find_live(s, pid);
    if (i >= 0) s->live[i] = s->live[--s->nlive];
    reply(s, CTL_EXITED, pid, info.si_code, info.si_status);
  }
}

/* Handle every control message waiting. */
static void serve_ctl(struct server *s) {
  for (;;) {
    struct ctl_msg m;
    ssize_t n = recv(s->ctl, &m, sizeof m, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) quit(s); /* end of file or a broken socket: the executor is gone */
    if ((size_t)n != sizeof m) continue;
    switch (m.type) {
    case CTL_SPAWN: spawn(s); break;
    case CTL_KILL: kill_worker(s, m.pid, m.value); break;
    case CTL_QUIT: quit(s);
    default: break;
    }
  }
}

static void reset_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL); /* EINVAL for libc's own */
}

static void server_main(int ctl, const struct spe_registry *reg, size_t memory_limit,
                        pid_t parent, int forked_by_main_thread) __attribute__((noreturn));
static void server_main(int ctl, const struct spe_registry *reg, size_t memory_limit,
                        pid_t parent, int forked_by_main_thread) {
  setpgid(0, 0);
  if (forked_by_main_thread) prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);
  prctl(PR_SET_NAME, "spe-forkserver"); /* what ps and top show */
  struct server s = {.ctl = ctl, .reg = reg, .memory_limit = memory_limit, .self = getpid()};
  s.parentfd = pidfd_open(parent, 0); /* close-on-exec, always */

  reset_signals();
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_SETMASK, &chld, NULL);
  s.sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s.sigfd < 0) _exit(1); /* the executor sees end of file and reports it */

  for (;;) {
    struct pollfd p[3] = {{ctl, POLLIN, 0}, {s.sigfd, POLLIN, 0}, {s.parentfd, POLLIN, 0}};
    int n = poll(p, s.parentfd >= 0 ? 3 : 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) quit(&s);
    if (s.parentfd >= 0 && p[2].revents != 0) quit(&s);
    if (p[1].revents != 0) reap(&s);
    if (p[0].revents != 0) serve_ctl(&s);
  }
}

/* ---- the executor's side ---- */

int spe__forkserver_start(struct fork_server **out, const struct spe_registry *reg,
                          size_t memory_limit, const struct logger *lg, char **msg) {
  *out = NULL;
  struct fork_server *fs = calloc(1, sizeof *fs);
  if (fs == NULL) {
    spe__msg_set(msg, "out of memory starting the fork server");
    return SPE_ENOMEM;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    spe__msg_set(msg, "cannot create the fork server's socket: %s", strerror(errno));
    free(fs);
    return SPE_ESYS;
  }
  pid_t parent = getpid();
  int main_thread = (pid_t)syscall(SYS_gettid) == parent;
  /* What the program has buffered in stdio would otherwise be copied into the
   * server and every worker, and written again by any worker that calls exit(). */
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    spe__msg_set(msg, "cannot fork the fork server: %s", strerror(errno));
    close(sv[0]);
    close(sv[1]);
    free(fs);
    return SPE_ESYS;
  }
  if (pid == 0) {
    close(sv[0]);
    server_main(sv[1], reg, memory_limit, parent, main_thread);
  }
  close(sv[1]);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  fs->pid = pid;
  fs->ctl = sv[0];
  fs->lg = lg;
  spe__log(lg, SPE_LOG_DEBUG, "fork server %d started", (int)pid);
  *out = fs;
  return 0;
}

/* Reap the server, waiting at most STOP_WAIT_MS for it to exit. It exits
 * within a millisecond or so of CTL_QUIT, so a few polls with growing pauses
 * cost nothing (and work where there are no pidfds, as under valgrind).
 * Returns 0 and *status once reaped, -1 if it is still running. */
static int reap_server(pid_t pid, int *status) {
  long pause_us = 100;
  for (long waited_us = 0; waited_us < STOP_WAIT_MS * 1000L; waited_us += pause_us) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return 0; /* reaped, or not ours to reap */
    struct timespec ts = {0, pause_us * 1000};
    nanosleep(&ts, NULL);
    if (pause_us < 10000) pause_us *= 2;
  }
  return -1;
}

void spe__forkserver_stop(struct fork_server *fs) {
  if (fs == NULL) return;
  struct ctl_msg q = {CTL_QUIT, 0, 0, 0};
  if (send(fs->ctl, &q, sizeof q, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
    spe__log(fs->lg, SPE_LOG_DEBUG, "fork server: cannot send quit: %s", strerror(errno));
  close(fs->ctl); /* end of file, should the quit not fit in the socket */
  int status = 0;
  if (reap_server(fs->pid, &status) != 0) {
    spe__log(fs->lg, SPE_LOG_WARN, "fork server %d did not stop in %d ms: killed",
             (int)fs->pid, STOP_WAIT_MS);
    kill(fs->pid, SIGKILL); /* its workers die with it (their death signal) */
    while (waitpid(fs->pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFSIGNALED(status))
    spe__log(fs->lg, SPE_LOG_DEBUG, "fork server %d was killed by signal %d", (int)fs->pid,
             WTERMSIG(status));
  free(fs);
}
