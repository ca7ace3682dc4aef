/*
 * Workers as the executor sees them, and an attempt on one: the request
 * written (at once if the socket takes it, the rest on EPOLLOUT), the response
 * read as it comes, the worker's end of file and its exit as the server
 * reports it, and the timeout. See proc_internal.h for when an attempt ends.
 *
 * A worker's socket stays registered for EPOLLIN from its arrival to its
 * end, idle or not, so that a task costs no epoll_ctl call, and an idle
 * worker that dies is noticed.
 */
#include "func/proc_internal.h"
#include "spe.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_worker(struct loop *lp, struct io_watch *w, uint32_t events);

struct proc_worker *spe__proc_worker_new(struct proc_exec *px, pid_t pid, int fd) {
  struct proc_worker *wk = calloc(1, sizeof *wk);
  if (wk == NULL) goto fail; /* every send and recv on fd passes MSG_DONTWAIT */
  wk->px = px;
  wk->pid = pid;
  wk->fd = fd;
  wk->w.fd = -1;
  if (spe__io_start(px->lp, &wk->w, fd, EPOLLIN, on_worker, wk) != 0) goto fail;
  wk->events = EPOLLIN;
  wk->next = px->workers;
  if (px->workers) px->workers->prev = wk;
  px->workers = wk;
  return wk;
fail:
  free(wk);
  close(fd); /* the worker sees end of file and exits */
  return NULL;
}

void spe__proc_worker_destroy(struct proc_worker *wk) {
  spe__buf_free(&wk->in);
  spe__buf_free(&wk->out);
  free(wk);
}

static void unlink_from(struct proc_worker **head, struct proc_worker *wk, size_t link_off) {
  for (struct proc_worker **p = head; *p != NULL;
       p = (struct proc_worker **)((char *)*p + link_off)) {
    if (*p == wk) {
      *p = *(struct proc_worker **)((char *)wk + link_off);
      return;
    }
  }
}

void spe__proc_worker_drop(struct proc_worker *wk) {
  struct proc_exec *px = wk->px;
  if (wk->dropped) return;
  wk->dropped = 1;
  if (wk->idle) {
    unlink_from(&px->idle, wk, offsetof(struct proc_worker, idle_next));
    wk->idle = 0;
    px->nidle--;
  }
  if (wk->in_kills) {
    unlink_from(&px->kills, wk, offsetof(struct proc_worker, kill_next));
    wk->in_kills = 0;
  }
  spe__io_stop(px->lp, &wk->w);
  if (wk->fd >= 0) close(wk->fd); /* an idle worker sees end of file and exits */
  wk->fd = -1;
  if (wk->prev) wk->prev->next = wk->next;
  else px->workers = wk->next;
  if (wk->next) wk->next->prev = wk->prev;
  wk->prev = wk->next = NULL;
  wk->dead_next = px->dead;
  px->dead = wk;
  spe__proc_schedule(px);
}

struct proc_worker *spe__proc_idle_pop(struct proc_exec *px) {
  struct proc_worker *wk = px->idle;
  if (wk == NULL) return NULL;
  px->idle = wk->idle_next;
  wk->idle_next = NULL;
  wk->idle = 0;
  px->nidle--;
  return wk;
}

void spe__proc_pending_remove(struct func_run *run) {
  struct proc_exec *px = run->px;
  if (run->prev) run->prev->next = run->next;
  else px->pending_head = run->next;
  if (run->next) run->next->prev = run->prev;
  else px->pending_tail = run->prev;
  run->prev = run->next = NULL;
  px->npending--;
}

void spe__proc_worker_free_up(struct proc_worker *wk) {
  struct proc_exec *px = wk->px;
  if (px->gone || wk->doomed || wk->eof || wk->exited) {
    spe__proc_worker_drop(wk);
  } else if (px->pending_head != NULL) {
    struct func_run *run = px->pending_head;
    spe__proc_pending_remove(run);
    spe__proc_dispatch(run, wk, &run->req);
  } else if (px->nidle < px->idle_max) {
    wk->idle = 1;
    wk->idle_next = px->idle;
    px->idle = wk;
    px->nidle++;
  } else {
    spe__proc_worker_drop(wk);
  }
}

void spe__proc_doom(struct proc_worker *wk, int sig) {
  wk->doomed = 1;
  spe__proc_ctl_kill(wk, sig);
}

static void set_events(struct proc_worker *wk, uint32_t events) {
  if (wk->events == events || wk->fd < 0) return;
  struct proc_exec *px = wk->px;
  spe__io_stop(px->lp, &wk->w);
  if (spe__io_start(px->lp, &wk->w, wk->fd, events, on_worker, wk) != 0) {
    /* Unwatched, the worker can only be killed; its exit ends the attempt. */
    if (wk->run) spe__forced_set(&wk->run->forced, "error", "cannot watch the function's worker");
    wk->events = 0;
    spe__proc_doom(wk, SIGKILL);
    return;
  }
  wk->events = events;
}

/* Nothing more will be read from or written to the worker. */
static void stop_io(struct proc_worker *wk) {
  spe__io_stop(wk->px->lp, &wk->w);
  wk->events = 0;
  wk->eof = 1;
  spe__buf_reset(&wk->out);
  wk->out_off = 0;
}

/* Write what is left of the request. */
static void write_more(struct proc_worker *wk) {
  while (wk->out_off < wk->out.len) {
    ssize_t n = send(wk->fd, wk->out.data + wk->out_off, wk->out.len - wk->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      wk->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_events(wk, EPOLLIN | EPOLLOUT);
      return;
    }
    /* The worker is gone or has closed its socket: its exit (or a response
     * it sent before leaving) ends the attempt. */
    spe__buf_reset(&wk->out);
    wk->out_off = 0;
    set_events(wk, EPOLLIN);
    spe__proc_doom(wk, SIGKILL);
    return;
  }
  spe__buf_reset(&wk->out);
  wk->out_off = 0;
  set_events(wk, EPOLLIN);
}

void spe__proc_dispatch(struct func_run *run, struct proc_worker *wk, struct spe_buf *req) {
  run->state = RUN_ON_WORKER;
  run->wk = wk;
  wk->run = run;
  /* The request's buffer becomes the worker's (and the worker's empty one
   * goes back to the caller): no copy, whether it is written now or later. */
  struct spe_buf t = wk->out;
  wk->out = *req;
  *req = t;
  req->len = 0;
  wk->out_off = 0;
  write_more(wk);
}

/* The worker broke the protocol: it is killed, and the attempt fails. */
static void broken(struct proc_worker *wk, const char *what) {
  spe__log(wk->px->lg, SPE_LOG_ERROR, "worker %d: %s", (int)wk->pid, what);
  stop_io(wk);
  if (wk->run == NULL) {
    spe__proc_ctl_kill(wk, SIGKILL);
    spe__proc_worker_drop(wk);
    return;
  }
  spe__forced_set(&wk->run->forced, "error", "the function's worker %s", what);
  spe__proc_doom(wk, SIGKILL);
}

/* A whole response is in wk->in. */
static void response(struct proc_worker *wk, const struct resp_head *h) {
  struct func_run *run = wk->run;
  const char *text = wk->in.data + sizeof *h;
  struct task_outcome *o = &run->out;
  if (h->status == RESP_OK) {
    json_error_t e;
    o->result = json_loadb(text, h->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    o->succeeded = o->result != NULL;
    if (o->result == NULL)
      o->error = spe__error_new("error", "the function's result cannot be read back: %s", e.text);
  } else {
    o->succeeded = 0;
    o->error = spe__error_new("error", "%.*s", (int)h->len, text);
  }
  run->responded = 1;
  int retire = (h->flags & RESP_F_RETIRE) != 0;
  spe__buf_reset(&wk->in);
  if (wk->doomed && !retire) {
    /* Signalled: the attempt ends when the worker does. It may have caught
     * the signal and be waiting for more: make sure it goes. */
    spe__proc_ctl_kill(wk, SIGKILL);
    return;
  }
  spe__proc_finish(run, NULL);
  if (retire) spe__proc_worker_drop(wk);
  else spe__proc_worker_free_up(wk);
}

void spe__proc_worker_read(struct proc_worker *wk) {
  const size_t hs = sizeof(struct resp_head);
  for (;;) {
    size_t want = hs;
    if (wk->in.len >= hs) {
      struct resp_head h;
      memcpy(&h, wk->in.data, hs);
      if (wk->run == NULL) {
        broken(wk, "sent a response to no request");
        return;
      }
      size_t cap = h.status == RESP_OK ? wk->run->max_result : RESP_MAX_MESSAGE;
      if (h.magic != RESP_MAGIC || h.len > cap ||
          (h.status != RESP_OK && h.status != RESP_ERROR)) {
        broken(wk, "sent a broken response");
        return;
      }
      want = hs + (size_t)h.len;
      if (wk->in.len > want) {
        broken(wk, "sent more than one response");
        return;
      }
      if (wk->in.len == want) {
        response(wk, &h);
        return;
      }
    }
    if (spe__buf_reserve(&wk->in, want - wk->in.len) != 0) {
      if (wk->run) spe__forced_set(&wk->run->forced, "error", "out of memory reading the result");
      broken(wk, "sent a response too big for the memory left");
      return;
    }
    /* Before the header is known, read what fits (a small response comes
     * whole in one read); after, exactly the rest of the frame. */
    size_t room = wk->in.len < hs ? wk->in.cap - wk->in.len : want - wk->in.len;
    ssize_t n = recv(wk->fd, wk->in.data + wk->in.len, room, MSG_DONTWAIT);
    if (n > 0) {
      wk->in.len += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    /* End of file (or a reset): the worker is gone or going. */
    stop_io(wk);
    if (wk->run == NULL) {
      spe__proc_worker_drop(wk);
      return;
    }
    /* Its exit report ends the attempt; make sure there is one to come (a
     * function may have closed the socket and gone on running). */
    spe__proc_doom(wk, SIGKILL);
    return;
  }
}

static void on_worker(struct loop *lp, struct io_watch *w, uint32_t events) {
  struct proc_worker *wk = w->data;
  struct proc_exec *px = wk->px;
  if ((events & EPOLLOUT) && wk->out_off < wk->out.len) write_more(wk);
  if (wk->fd >= 0 && !wk->eof && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    spe__proc_worker_read(wk);
  spe__proc_schedule(px);
}

void spe__proc_worker_exited(struct proc_exec *px, pid_t pid, int code, int status) {
  struct proc_worker *wk = px->workers;
  while (wk != NULL && wk->pid != pid) wk = wk->next;
  if (wk == NULL) return; /* one we let go, or one of an earlier executor */
  wk->exited = 1;
  /* What it wrote before it died is all in the socket now. */
  if (wk->run != NULL && !wk->eof) spe__proc_worker_read(wk);
  if (wk->run != NULL) spe__proc_finish(wk->run, spe__error_ended(code, status, "crashed", "the function's worker"));
  spe__proc_worker_drop(wk);
}
