/*
 * Event queues (include/spe.h, spe_queue_*): the events of one job or of all,
 * kept for a program that reads them when it likes, on a thread of its own or
 * from its own poll/epoll loop.
 *
 * Shape. A queue is a bus subscription whose callback appends the event (a
 * copy, see below) to a FIFO, a ring that doubles when full. Readers pop from
 * it in spe_queue_next(), waiting on a condition variable if asked to.
 *
 * The file descriptor is an eventfd kept in step with the FIFO: its counter is
 * non-zero exactly while the FIFO is not empty or the queue is closed, so that
 * poll() reports it readable then and only then. Every change of the counter
 * happens under the queue's lock together with the change of the FIFO that
 * causes it: the push that makes the FIFO non-empty writes 1, the pop that
 * empties it reads the counter back to 0, closing writes 1 if the FIFO is
 * empty, and nothing reads it after that. The reader never has to touch the fd.
 *
 * Copies. Each queue holds its own deep copy of each event, made on the
 * delivery thread, rather than a new reference to the published object. The
 * reader releases its events on a thread of its own while the delivery thread
 * and the engine still hold references to the same objects (an event's result
 * is the engine's own result object), and jansson's reference counts do not
 * make that safe: the decrement is a release without an acquire, so the thread
 * that frees an object is not ordered after the others' last use of it (the
 * ThreadSanitizer build reports exactly that). A copy handed over under the
 * queue's lock is touched by no other thread once it is in the queue. Events
 * are small next to the work that produces them; a job_finished event carries
 * every task's result once more.
 *
 * Closing. spe_shutdown() and spe_close() mark every open queue closed
 * (spe__queues_stop): from then on the callback drops events, and readers take
 * what is left, then get SPE_ECLOSED. spe_close() frees the queues left open
 * (spe__queues_free) after the bus is gone; a thread may still be inside
 * spe_queue_next() then (woken by the close), so `users` counts the threads in
 * it, and the queue is freed only once it drops to 0.
 *
 * Locks. `lock` guards the FIFO, `closed` and the eventfd's counter. The
 * delivery thread takes it in the callback; readers and spe__queues_stop
 * (under the executor's subs_lock: order subs_lock, then lock) take it too.
 * Nothing is called with it held but eventfd reads and writes, and no log
 * line is written under it (the log callback is the application's).
 */
#include "spe.h"

#include "api/executor_impl.h"
#include "base/thread.h"
#include "base/clock.h"
#include "events/bus.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct spe_queue {
  spe_executor *ex;
  struct bus_sub *sub;
  struct spe_queue *prev, *next; /* ex->queues, under ex->subs_lock */
  int efd;                       /* readable while `count` > 0 or `closed` */
  atomic_uint users;             /* threads inside spe_queue_next() */

  pthread_mutex_t lock;    /* guards everything below */
  pthread_cond_t arrived;  /* an event was appended, or the queue closed */
  pthread_cond_t left;     /* `users` fell, while closed */
  json_t **ring;           /* the FIFO: `count` events from `head`, wrapping */
  size_t cap, head, count;
  bool closed;             /* no more events will come */
};

/* The eventfd's counter: up by 1 (fd readable) or back to 0 (not). With the
 * queue's lock held. Neither can fail on an eventfd that only we touch, whose
 * counter never exceeds 1; a failure would only leave poll() too eager or too
 * late, never the FIFO wrong. */
static void fd_raise(struct spe_queue *q) {
  uint64_t one = 1;
  ssize_t n = write(q->efd, &one, sizeof one);
  (void)n;
}

static void fd_lower(struct spe_queue *q) {
  uint64_t value;
  ssize_t n = read(q->efd, &value, sizeof value);
  (void)n;
}

/* Append an event (a reference we own). With the lock held. */
static int push(struct spe_queue *q, json_t *ev) {
  if (q->count == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 64;
    json_t **ring = malloc(cap * sizeof *ring);
    if (ring == NULL) return SPE_ENOMEM;
    for (size_t i = 0; i < q->count; i++) ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
  }
  q->ring[(q->head + q->count) % q->cap] = ev;
  q->count++;
  return 0;
}

/* Take the oldest event (the FIFO is not empty). With the lock held. */
static json_t *pop(struct spe_queue *q) {
  json_t *ev = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->count--;
  return ev;
}

/* The bus callback, on the delivery thread. */
static void on_event(void *ctx, const json_t *event) {
  struct spe_queue *q = ctx;
  /* A copy, not a new reference: see "Copies" above. Made before taking the
   * lock, so that readers do not wait for it. */
  json_t *ev = json_deep_copy(event);
  bool lost = ev == NULL;
  pthread_mutex_lock(&q->lock);
  if (q->closed) {
    lost = false; /* dropped on purpose */
  } else if (!lost && push(q, ev) == 0) {
    if (q->count == 1) fd_raise(q);
    pthread_cond_signal(&q->arrived);
    ev = NULL;
  } else {
    lost = true;
  }
  pthread_mutex_unlock(&q->lock);
  json_decref(ev);
  if (lost)
    spe__log(&q->ex->log, SPE_LOG_ERROR, "event queue: out of memory, event seq %lld dropped",
             (long long)json_integer_value(json_object_get(event, "seq")));
}

/* Close one queue: no more events, readers woken, fd readable. */
static void close_queue(struct spe_queue *q) {
  pthread_mutex_lock(&q->lock);
  if (!q->closed) {
    q->closed = true;
    if (q->count == 0) fd_raise(q);
    pthread_cond_broadcast(&q->arrived);
  }
  pthread_mutex_unlock(&q->lock);
}

static void free_queue(struct spe_queue *q) {
  while (q->count > 0) json_decref(pop(q));
  free(q->ring);
  if (q->efd >= 0) close(q->efd);
  pthread_cond_destroy(&q->left);
  pthread_cond_destroy(&q->arrived);
  pthread_mutex_destroy(&q->lock);
  free(q);
}

static struct spe_queue *new_queue(spe_executor *ex) {
  struct spe_queue *q = calloc(1, sizeof *q);
  if (q == NULL) return NULL;
  q->ex = ex;
  atomic_init(&q->users, 0);
  pthread_mutex_init(&q->lock, NULL);
  spe__cond_init_monotonic(&q->arrived);
  pthread_cond_init(&q->left, NULL);
  q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return q;
}

SPE_EXPORT int spe_queue_open(spe_executor *ex, const char *job_id, spe_queue **out) {
  if (out != NULL) *out = NULL;
  if (ex == NULL || out == NULL) return SPE_EINVAL;
  struct spe_queue *q = new_queue(ex);
  if (q == NULL) return SPE_ENOMEM;
  if (q->efd < 0) {
    int rc = errno == ENOMEM ? SPE_ENOMEM : SPE_ESYS;
    free_queue(q);
    return rc;
  }
  /* Subscribing under subs_lock makes "not stopped" and "subscribed" one step:
   * a concurrent spe_shutdown() either refuses the queue or closes it. */
  pthread_mutex_lock(&ex->subs_lock);
  int rc = ex->stopped ? SPE_ECLOSED : spe__bus_subscribe(ex->bus, job_id, on_event, q, &q->sub);
  if (rc == 0) {
    q->next = ex->queues;
    if (ex->queues) ex->queues->prev = q;
    ex->queues = q;
  }
  pthread_mutex_unlock(&ex->subs_lock);
  if (rc != 0) {
    free_queue(q);
    return rc;
  }
  *out = q;
  return 0;
}

SPE_EXPORT int spe_queue_fd(const spe_queue *q) {
  if (q == NULL) return SPE_EINVAL;
  return q->efd;
}

SPE_EXPORT int spe_queue_next(spe_queue *q, int timeout_ms, json_t **event) {
  if (event != NULL) *event = NULL;
  if (q == NULL || event == NULL) return SPE_EINVAL;
  /* Counted before the lock, so that spe__queues_free() also waits for a
   * thread that is still blocked on it. */
  atomic_fetch_add(&q->users, 1);
  struct timespec deadline = {0, 0};
  if (timeout_ms > 0) deadline = spe__deadline_after(CLOCK_MONOTONIC, timeout_ms);

  pthread_mutex_lock(&q->lock);
  int rc = 0;
  while (q->count == 0 && !q->closed && rc == 0) {
    if (timeout_ms == 0) rc = SPE_ETIMEDOUT;
    else if (timeout_ms < 0) pthread_cond_wait(&q->arrived, &q->lock);
    else if (pthread_cond_timedwait(&q->arrived, &q->lock, &deadline) == ETIMEDOUT)
      rc = q->count == 0 && !q->closed ? SPE_ETIMEDOUT : 0;
  }
  if (rc == 0) {
    if (q->count > 0) {
      *event = pop(q);
      if (q->count == 0 && !q->closed) fd_lower(q);
    } else {
      rc = SPE_ECLOSED;
    }
  }
  atomic_fetch_sub(&q->users, 1);
  if (q->closed) pthread_cond_broadcast(&q->left);
  pthread_mutex_unlock(&q->lock);
  return rc;
}

SPE_EXPORT size_t spe_queue_length(const spe_queue *q) {
  if (q == NULL) return 0;
  /* The lock is part of the queue's state, not of its value: taking it does not
   * change what a const caller sees. */
  struct spe_queue *mq = (struct spe_queue *)q;
  pthread_mutex_lock(&mq->lock);
  size_t n = mq->count;
  pthread_mutex_unlock(&mq->lock);
  return n;
}

SPE_EXPORT void spe_queue_close(spe_queue *q) {
  if (q == NULL) return;
  spe_executor *ex = q->ex;
  /* Once this returns, on_event is not running and never runs again for q. */
  spe__bus_unsubscribe(ex->bus, q->sub);
  pthread_mutex_lock(&ex->subs_lock);
  if (q->prev) q->prev->next = q->next;
  else ex->queues = q->next;
  if (q->next) q->next->prev = q->prev;
  pthread_mutex_unlock(&ex->subs_lock);
  free_queue(q);
}

unsigned spe__queue_users(const spe_queue *q) {
  return atomic_load(&q->users);
}

void spe__queues_stop(spe_executor *ex) {
  pthread_mutex_lock(&ex->subs_lock);
  ex->stopped = true;
  for (struct spe_queue *q = ex->queues; q != NULL; q = q->next) close_queue(q);
  pthread_mutex_unlock(&ex->subs_lock);
}

void spe__queues_free(spe_executor *ex) {
  while (ex->queues != NULL) {
    struct spe_queue *q = ex->queues;
    ex->queues = q->next;
    pthread_mutex_lock(&q->lock);
    while (atomic_load(&q->users) > 0) pthread_cond_wait(&q->left, &q->lock);
    pthread_mutex_unlock(&q->lock);
    free_queue(q);
  }
}
