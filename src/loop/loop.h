/*
 * The event loop of the engine thread: epoll over file descriptors, a heap of
 * timers, and a wake-up descriptor other threads can poke.
 *
 * One loop belongs to one thread. Every function here except spe__loop_wake()
 * must be called on that thread; callbacks run on it too, from
 * spe__loop_poll(). Watchers and timers are embedded in the caller's structs
 * (no allocation per registration) and must stay valid while registered.
 */
#ifndef SPE_LOOP_LOOP_H
#define SPE_LOOP_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct io_watch;
struct timer;

typedef void (*io_cb)(struct loop *lp, struct io_watch *w, uint32_t events);
typedef void (*timer_cb)(struct loop *lp, struct timer *t);

struct io_watch {
  int fd;        /* the watched descriptor, -1 when not registered */
  io_cb cb;      /* called with the epoll events that fired */
  void *data;    /* for the owner */
};

struct timer {
  int64_t due_ms;  /* monotonic time at which it fires */
  uint64_t order;  /* ties between equal due times fire in start order */
  uint32_t slot;   /* position in the heap, UINT32_MAX when not started */
  timer_cb cb;
  void *data;      /* for the owner */
};

struct loop {
  int epfd;
  int wakefd;                  /* eventfd poked by spe__loop_wake() */
  struct timer **heap;         /* min-heap on (due_ms, order) */
  uint32_t nheap, capheap;
  uint64_t timer_seq;
  int64_t now_ms;              /* monotonic time cached at the start of a poll */
  uint64_t io_ns;              /* monotonic time of the last look at the
                                  descriptors (spe__loop_poll_busy) */
  struct deferred *deferred;   /* calls to make when the current poll ends */
  uint32_t ndeferred, capdeferred;
};

struct deferred {
  void (*fn)(void *arg);
  void *arg;
};

int spe__loop_init(struct loop *lp);
/* Frees the loop's own resources. Registered watchers are not closed. */
void spe__loop_close(struct loop *lp);

/* Watch fd for `events` (EPOLLIN, EPOLLOUT, ...). Returns 0 or SPE_ESYS. */
int spe__io_start(struct loop *lp, struct io_watch *w, int fd, uint32_t events,
                  io_cb cb, void *data);
/* Stop watching (call before closing the fd). A no-op if not started. */
void spe__io_stop(struct loop *lp, struct io_watch *w);

void spe__timer_init(struct timer *t);
/* (Re)start a timer to fire once, delay_ms from now (a negative delay: at
 * once; one too large for the clock: never, in practice - the due time is
 * capped at INT64_MAX). Returns 0 or SPE_ENOMEM. */
int spe__timer_start(struct loop *lp, struct timer *t, int64_t delay_ms, timer_cb cb,
                     void *data);
/* Stop a timer; a no-op if it is not running. */
void spe__timer_stop(struct loop *lp, struct timer *t);
static inline int spe__timer_active(const struct timer *t) { return t->slot != UINT32_MAX; }

/* Wait for events, at most max_wait_ms (negative: until a watcher, a timer or a
 * wake-up), then run the callbacks of every ready watcher and every due timer.
 * Returns 1 if it was woken by spe__loop_wake() since the last poll, 0 if not, or
 * SPE_ESYS. */
int spe__loop_poll(struct loop *lp, int max_wait_ms);
/* For a thread with work to do, polling between short rounds: the same as
 * spe__loop_poll(lp, 0), except that the descriptors are looked at (a system
 * call) only if they were not in the last LOOP_BUSY_IO_NS; due timers and
 * deferred calls always run. Events on descriptors then wait that long at
 * most. */
int spe__loop_poll_busy(struct loop *lp);

/* Call fn(arg) once every callback of the current poll has run (or at the end
 * of the next poll if called outside one). This is how a watcher's
 * memory is freed from inside a callback: another event of the same batch may
 * still point at it. Returns 0 or SPE_ENOMEM (then nothing is deferred). */
int spe__loop_defer(struct loop *lp, void (*fn)(void *arg), void *arg);

/* Make the loop's current or next poll return at once. Any thread; async-signal
 * safe. */
void spe__loop_wake(struct loop *lp);

#endif
