/* The engine thread's event loop. See loop.h. */
#include "loop/loop.h"

#include "base/clock.h"
#include "spe.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 256

int spe__loop_init(struct loop *lp) {
  lp->heap = NULL;
  lp->nheap = lp->capheap = 0;
  lp->timer_seq = 0;
  lp->deferred = NULL;
  lp->ndeferred = lp->capdeferred = 0;
  lp->now_ms = spe__mono_ms();
  lp->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (lp->epfd < 0) return SPE_ESYS;
  lp->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (lp->wakefd < 0) {
    close(lp->epfd);
    return SPE_ESYS;
  }
  /* The wake-up descriptor is registered with a NULL pointer: poll tells it
   * apart from watchers that way. */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->wakefd, &ev) < 0) {
    close(lp->wakefd);
    close(lp->epfd);
    return SPE_ESYS;
  }
  return 0;
}

static void run_deferred(struct loop *lp) {
  /* A deferred call may defer more: loop until none is left. */
  for (uint32_t i = 0; i < lp->ndeferred; i++) lp->deferred[i].fn(lp->deferred[i].arg);
  lp->ndeferred = 0;
}

int spe__loop_defer(struct loop *lp, void (*fn)(void *arg), void *arg) {
  if (lp->ndeferred == lp->capdeferred) {
    uint32_t cap = lp->capdeferred ? lp->capdeferred * 2 : 32;
    struct deferred *d = realloc(lp->deferred, cap * sizeof *d);
    if (d == NULL) return SPE_ENOMEM;
    lp->deferred = d;
    lp->capdeferred = cap;
  }
  lp->deferred[lp->ndeferred++] = (struct deferred){fn, arg};
  return 0;
}

void spe__loop_close(struct loop *lp) {
  if (lp->epfd >= 0) close(lp->epfd);
  if (lp->wakefd >= 0) close(lp->wakefd);
  lp->epfd = lp->wakefd = -1;
  free(lp->heap);
  lp->heap = NULL;
  run_deferred(lp);
  free(lp->deferred);
  lp->deferred = NULL;
  lp->capdeferred = 0; /* else a later spe__loop_defer() would write through NULL */
  lp->nheap = lp->capheap = 0;
}

int spe__io_start(struct loop *lp, struct io_watch *w, int fd, uint32_t events,
                  io_cb cb, void *data) {
  w->fd = fd;
  w->cb = cb;
  w->data = data;
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    w->fd = -1;
    return SPE_ESYS;
  }
  return 0;
}

void spe__io_stop(struct loop *lp, struct io_watch *w) {
  if (w->fd < 0) return;
  epoll_ctl(lp->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  w->fd = -1;
}

/* ---- timer heap ---- */

static int timer_less(const struct timer *a, const struct timer *b) {
  return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->order < b->order);
}

static void heap_set(struct loop *lp, uint32_t i, struct timer *t) {
  lp->heap[i] = t;
  t->slot = i;
}

static void heap_up(struct loop *lp, uint32_t i) {
  struct timer *t = lp->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!timer_less(t, lp->heap[parent])) break;
    heap_set(lp, i, lp->heap[parent]);
    i = parent;
  }
  heap_set(lp, i, t);
}

static void heap_down(struct loop *lp, uint32_t i) {
  struct timer *t = lp->heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= lp->nheap) break;
    if (child + 1 < lp->nheap && timer_less(lp->heap[child + 1], lp->heap[child])) child++;
    if (!timer_less(lp->heap[child], t)) break;
    heap_set(lp, i, lp->heap[child]);
    i = child;
  }
  heap_set(lp, i, t);
}

void spe__timer_init(struct timer *t) {
  t->slot = UINT32_MAX;
  t->due_ms = 0;
  t->order = 0;
  t->cb = NULL;
  t->data = NULL;
}

int spe__timer_start(struct loop *lp, struct timer *t, int64_t delay_ms, timer_cb cb,
                     void *data) {
  if (spe__timer_active(t)) spe__timer_stop(lp, t);
  if (lp->nheap == lp->capheap) {
    uint32_t cap = lp->capheap ? lp->capheap * 2 : 64;
    struct timer **h = realloc(lp->heap, cap * sizeof *h);
    if (h == NULL) return SPE_ENOMEM;
    lp->heap = h;
    lp->capheap = cap;
  }
  int64_t now = spe__mono_ms();
  if (delay_ms < 0) delay_ms = 0;
  t->due_ms = delay_ms > INT64_MAX - now ? INT64_MAX : now + delay_ms;
  t->order = lp->timer_seq++;
  t->cb = cb;
  t->data = data;
  heap_set(lp, lp->nheap++, t);
  heap_up(lp, t->slot);
  return 0;
}

void spe__timer_stop(struct loop *lp, struct timer *t) {
  if (!spe__timer_active(t)) return;
  uint32_t i = t->slot;
  t->slot = UINT32_MAX;
  struct timer *last = lp->heap[--lp->nheap];
  if (last == t) return;
  heap_set(lp, i, last);
  heap_down(lp, i);
  heap_up(lp, last->slot);
}

static void run_due_timers(struct loop *lp) {
  lp->now_ms = spe__mono_ms();
  while (lp->nheap > 0 && lp->heap[0]->due_ms <= lp->now_ms) {
    struct timer *t = lp->heap[0];
    spe__timer_stop(lp, t);
    t->cb(lp, t); /* may restart t or start others */
  }
}

int spe__loop_poll(struct loop *lp, int max_wait_ms) {
  struct epoll_event evs[MAX_EVENTS];
  int wait = max_wait_ms;
  lp->io_ns = spe__mono_ns();
  lp->now_ms = (int64_t)(lp->io_ns / 1000000u);
  if (lp->nheap > 0) {
    int64_t until = lp->heap[0]->due_ms - lp->now_ms;
    if (until < 0) until = 0;
    if (wait < 0 || until < wait) wait = (int)(until > 1000000 ? 1000000 : until);
  }
  int n = epoll_wait(lp->epfd, evs, MAX_EVENTS, wait);
  if (n < 0 && errno != EINTR) return SPE_ESYS;
  int woken = 0;
  for (int i = 0; i < n; i++) {
    struct io_watch *w = evs[i].data.ptr;
    if (w == NULL) {
      uint64_t v;
      while (read(lp->wakefd, &v, sizeof v) == sizeof v) {
      }
      woken = 1;
      continue;
    }
    /* A callback earlier in this batch may have stopped this watcher. */
    if (w->fd >= 0) w->cb(lp, w, evs[i].events);
  }
  run_due_timers(lp);
  run_deferred(lp);
  return woken;
}

/* 50 us: a round of tiny tasks takes about 10 (bench_functions wide), and an
 * epoll_wait() a good part of one. */
#define LOOP_BUSY_IO_NS 50000u

int spe__loop_poll_busy(struct loop *lp) {
  uint64_t ns = spe__mono_ns();
  if (ns - lp->io_ns >= LOOP_BUSY_IO_NS) return spe__loop_poll(lp, 0);
  lp->now_ms = (int64_t)(ns / 1000000u);
  run_due_timers(lp);
  run_deferred(lp);
  return 0;
}

void spe__loop_wake(struct loop *lp) {
  uint64_t one = 1;
  ssize_t r = write(lp->wakefd, &one, sizeof one);
  (void)r; /* EAGAIN means a wake-up is already pending: that is enough */
}
