/*
 * The executor's end of the control socket to the fork server
 * (proc_protocol.h): SPAWN and KILL requests sent without ever blocking the
 * loop, and SPAWNED, SPAWN_FAILED and EXITED handled as they come.
 *
 * Requests are not queued as messages but kept as state: a count of SPAWN
 * requests to send, and on each worker the set of signals to ask for. Sending
 * them needs no memory, so a timeout or a cancel is never lost to a failed
 * allocation, and a signal asked for twice is sent once. When the socket is
 * full the rest waits for EPOLLOUT.
 *
 * End of file or an error on the socket means the server is gone (it only
 * exits when told to, or when killed): every attempt ends at once.
 */
#include "func/proc_internal.h"
#include "spe.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_ctl(struct loop *lp, struct io_watch *w, uint32_t events);

static int ctl_fd(const struct proc_exec *px) { return px->fs->ctl; }

static void set_events(struct proc_exec *px, uint32_t events) {
  if (px->ctl_events == events || px->gone) return;
  spe__io_stop(px->lp, &px->ctl_w);
  if (spe__io_start(px->lp, &px->ctl_w, ctl_fd(px), events, on_ctl, px) != 0) {
    spe__log(px->lg, SPE_LOG_ERROR, "cannot watch the fork server's socket");
    spe__proc_server_lost(px);
    return;
  }
  px->ctl_events = events;
}

int spe__proc_ctl_open(struct proc_exec *px) {
  px->ctl_w.fd = -1;
  int rc = spe__io_start(px->lp, &px->ctl_w, ctl_fd(px), EPOLLIN, on_ctl, px);
  if (rc == 0) px->ctl_events = EPOLLIN;
  return rc;
}

void spe__proc_ctl_close(struct proc_exec *px) { spe__io_stop(px->lp, &px->ctl_w); }

/* Send one message. 0, 1 when the socket is full, -1 when the server is gone. */
static int send_msg(struct proc_exec *px, uint32_t type, pid_t pid, int value) {
  struct ctl_msg m = {type, pid, value, 0};
  for (;;) {
    if (send(ctl_fd(px), &m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 1;
    return -1;
  }
}

/* The next signal of a worker to send: SIGKILL last, so that it is not
 * followed by one that could never act. */
static int next_sig(uint64_t sigs) {
  uint64_t others = sigs & ~(UINT64_C(1) << (SIGKILL - 1));
  return others ? __builtin_ctzll(others) + 1 : SIGKILL;
}

void spe__proc_ctl_flush(struct proc_exec *px) {
  if (px->gone || px->fs == NULL) return;
  int rc = 0;
  while (rc == 0 && px->spawn_unsent > 0) {
    rc = send_msg(px, CTL_SPAWN, 0, 0);
    if (rc == 0) {
      px->spawn_unsent--;
      px->spawning++;
    }
  }
  while (rc == 0 && px->kills != NULL) {
    struct proc_worker *wk = px->kills;
    while (rc == 0 && wk->kill_sigs != 0) {
      int sig = next_sig(wk->kill_sigs);
      rc = send_msg(px, CTL_KILL, wk->pid, sig);
      if (rc == 0) wk->kill_sigs &= ~(UINT64_C(1) << (sig - 1));
    }
    if (wk->kill_sigs == 0) {
      px->kills = wk->kill_next;
      wk->kill_next = NULL;
      wk->in_kills = 0;
    }
  }
  if (rc < 0) {
    spe__proc_server_lost(px);
    return;
  }
  set_events(px, rc == 1 ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

void spe__proc_ctl_spawn(struct proc_exec *px) {
  px->spawn_unsent++;
  spe__proc_ctl_flush(px);
}

void spe__proc_ctl_kill(struct proc_worker *wk, int sig) {
  if (sig < 1 || sig > 64) return;
  uint64_t bit = UINT64_C(1) << (sig - 1);
  if (wk->sent_sigs & bit) return;
  wk->sent_sigs |= bit;
  wk->kill_sigs |= bit;
  if (!wk->in_kills) {
    wk->in_kills = 1;
    wk->kill_next = wk->px->kills;
    wk->px->kills = wk;
  }
  spe__proc_ctl_flush(wk->px);
}

/* No worker came: fail the oldest waiting attempt, if no other worker is on
 * its way for it. */
static void spawn_failed(struct proc_exec *px, int err) {
  spe__log(px->lg, SPE_LOG_ERROR, "cannot start a worker process: %s", strerror(err));
  if (px->pending_head == NULL || px->npending <= px->spawning + px->spawn_unsent) return;
  spe__proc_finish(px->pending_head,
                   spe__error_new("error", "cannot start a worker process: %s", strerror(err)));
}

static void spawned(struct proc_exec *px, pid_t pid, int fd) {
  if (px->spawning > 0) px->spawning--;
  if (fd < 0) { /* the descriptor did not fit: we are out of them */
    spawn_failed(px, EMFILE);
    return;
  }
  struct proc_worker *wk = spe__proc_worker_new(px, pid, fd);
  if (wk == NULL) {
    spawn_failed(px, ENOMEM);
    return;
  }
  spe__proc_worker_free_up(wk);
}

/* One message: 1 if one was handled, 0 when none is waiting, -1 when the
 * server is gone. */
static int receive_one(struct proc_exec *px) {
  struct ctl_msg m;
  struct iovec iov = {&m, sizeof m};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } c;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                      .msg_controllen = sizeof c.buf};
  ssize_t n;
  while ((n = recvmsg(ctl_fd(px), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  if (n <= 0) return -1;
  int fd = -1;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  if (cm != NULL && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
      cm->cmsg_len == CMSG_LEN(sizeof(int)))
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  if ((size_t)n != sizeof m) m.type = 0;
  switch (m.type) {
  case CTL_SPAWNED:
    spawned(px, m.pid, fd);
    return 1;
  case CTL_SPAWN_FAILED:
    if (px->spawning > 0) px->spawning--;
    spawn_failed(px, m.value);
    break;
  case CTL_EXITED:
    spe__proc_worker_exited(px, m.pid, m.value, m.value2);
    break;
  default:
    break;
  }
  if (fd >= 0) close(fd);
  return 1;
}

static void on_ctl(struct loop *lp, struct io_watch *w, uint32_t events) {
  struct proc_exec *px = w->data;
  if (events & EPOLLOUT) spe__proc_ctl_flush(px);
  int rc = 1;
  while (!px->gone && (rc = receive_one(px)) == 1) {
  }
  if (rc < 0 && !px->gone) spe__proc_server_lost(px);
  spe__proc_schedule(px);
}

void spe__proc_server_lost(struct proc_exec *px) {
  if (px->gone) return;
  px->gone = 1;
  spe__log(px->lg, SPE_LOG_ERROR,
           "the fork server is gone: exec tasks in process isolation fail from now on");
  spe__io_stop(px->lp, &px->ctl_w);
  px->spawn_unsent = px->spawning = 0;
  for (struct proc_worker *wk = px->kills, *next; wk != NULL; wk = next) {
    next = wk->kill_next;
    wk->kill_next = NULL;
    wk->in_kills = 0;
    wk->kill_sigs = 0;
  }
  px->kills = NULL;
  while (px->pending_head != NULL)
    spe__proc_finish(px->pending_head, spe__error_new("error", "the fork server is gone"));
  /* A response already in a socket still counts. */
  for (struct proc_worker *wk = px->workers, *next; wk != NULL; wk = next) {
    next = wk->next;
    if (wk->run != NULL && wk->fd >= 0) spe__proc_worker_read(wk);
  }
  while (px->workers != NULL) {
    struct proc_worker *wk = px->workers;
    if (wk->run != NULL)
      spe__proc_finish(wk->run,
                       spe__error_new("error", "the fork server died while the function ran"));
    spe__proc_worker_drop(wk);
  }
}
