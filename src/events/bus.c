/*
 * The event bus. See bus.h for the contract; this essay is about how it holds.
 *
 * Shape. Publishers append event pointers to `pending` under `lock`: one lock
 * acquisition, an amortised O(n) copy and at most one signal per batch (only when
 * the delivery thread sleeps, and only the first publisher that finds it asleep
 * signals). The delivery thread takes the whole pending array at once by swapping
 * it with an empty array of its own, so that in a steady state nothing is
 * allocated. It then delivers the batch event by event: with the lock held it
 * walks the subscriber list, and it releases the lock only around each callback.
 * Each event is numbered by its position in publication order (1 = the first ever
 * published), which is how `flush` knows when "everything published before the
 * call" is done and how a new subscription skips events published before it.
 *
 * Threads. Any thread publishes, subscribes, unsubscribes and flushes. Callbacks
 * run only on the delivery thread, one at a time. The delivery thread is created
 * with every signal blocked, so that signals go to the application's threads.
 *
 * Memory. `pending` holds what was published and not yet delivered: a slow
 * callback holds up the whole queue, and the queue grows by what is published
 * meanwhile, never by more. Per-subscriber bounded queues that tell a subscriber
 * that fell behind to re-read from the store by seq are for later (DESIGN-NOTES,
 * "Events").
 *
 * Lock invariants (`lock` is the only lock):
 *  1. `lock` guards pending/npending/cappending, published, delivered,
 *     flush_wake_at, thread_waiting, stopping, the subscriber list (head, tail and
 *     every prev/next) and every subscription's running, dead and awaited flags.
 *     A subscription's job_id, fn, ctx and first_after never change after
 *     subscribe returns.
 *  2. No callback runs with the lock held. Only the delivery thread calls
 *     callbacks, so at most one subscription is `running` at any time.
 *  3. A subscription stays linked, and its memory valid, while it is `running`.
 *     Exactly one party unlinks and frees it:
 *       - unsubscribe on another thread, after waiting until it is not running;
 *       - unsubscribe on the delivery thread (from inside a callback) of a
 *         subscription that is not running: at once;
 *       - the delivery thread, when a callback that unsubscribed its own
 *         subscription returns (dead and not awaited);
 *       - spe__bus_free, after the delivery thread has been joined.
 *  4. The delivery thread reads a subscription's `next` only with the lock held,
 *     after the callback returned, and uses the pointer before it releases the
 *     lock again: a neighbour unlinked meanwhile is never touched.
 *  5. delivered <= published. Event k goes to subscription s iff k > s->first_after
 *     and s is not dead when the walk reaches it.
 *  6. Every flusher waiting on `progress` has a target >= flush_wake_at. The
 *     delivery thread broadcasts `progress` when `delivered` reaches flush_wake_at
 *     (and resets it; the woken flushers that are not done lower it again), and
 *     when a callback that an unsubscriber awaits returns.
 */
#include "events/bus.h"
#include "base/thread.h"

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct bus_sub {
  struct bus_sub *prev, *next; /* the bus's list, in subscription order */
  char *job_id;                /* the job it follows; NULL: every job */
  spe_event_fn fn;
  void *ctx;
  uint64_t first_after; /* events numbered above this one are for it */
  bool running;         /* its callback runs now, on the delivery thread */
  bool dead;            /* unsubscribed: never called again */
  bool awaited;         /* an unsubscriber on another thread waits for the
                           callback to return, and frees the subscription */
};

struct event_bus {
  pthread_mutex_t lock;
  pthread_cond_t wake;     /* to the delivery thread: events, or stop */
  pthread_cond_t progress; /* from it: flush targets reached, awaited callbacks done */
  pthread_t thread;

  json_t **pending; /* published, not yet taken by the delivery thread */
  size_t npending, cappending;
  uint64_t published;     /* events ever published */
  uint64_t delivered;     /* events ever delivered to every subscriber */
  uint64_t flush_wake_at; /* wake flushers when delivered reaches this */
  bool thread_waiting;    /* the delivery thread sleeps on `wake` */
  bool stopping;          /* spe__bus_free: drain, then exit */
  struct bus_sub *head, *tail;
  atomic_uint nsubs;      /* live subscriptions (read without the lock) */

  /* The delivery thread's spare array, swapped with `pending` when it takes a
   * batch. Only the delivery thread touches it, and bus_new/bus_free when the
   * thread does not run. */
  json_t **spare;
  size_t capspare;
};

/* Which bus the current thread delivers for: set on each delivery thread, so
 * that unsubscribe and flush know when they are called from a callback. */
static _Thread_local struct event_bus *delivering_for;

static void unlink_sub(struct event_bus *bus, struct bus_sub *s) {
  if (s->prev) s->prev->next = s->next;
  else bus->head = s->next;
  if (s->next) s->next->prev = s->prev;
  else bus->tail = s->prev;
}

static void free_sub(struct bus_sub *s) {
  free(s->job_id);
  free(s);
}

static bool wants(const struct bus_sub *s, const char *job) {
  if (s->job_id == NULL) return true;
  return job != NULL && strcmp(s->job_id, job) == 0;
}

/* Hand event number `number` to every subscription that wants it. Called and
 * returns with the lock held; releases it around each callback (invariant 4). */
static void deliver_one(struct event_bus *bus, const json_t *ev, const char *job,
                        uint64_t number) {
  struct bus_sub *s = bus->head;
  while (s != NULL) {
    if (s->dead || number <= s->first_after || !wants(s, job)) {
      s = s->next;
      continue;
    }
    s->running = true;
    pthread_mutex_unlock(&bus->lock);
    s->fn(s->ctx, ev);
    pthread_mutex_lock(&bus->lock);
    s->running = false;
    struct bus_sub *next = s->next;
    if (s->dead) {
      if (s->awaited) {
        pthread_cond_broadcast(&bus->progress);
      } else {
        unlink_sub(bus, s);
        free_sub(s);
      }
    }
    s = next;
  }
}

/* Deliver a batch taken from `pending`. Called and returns with the lock held;
 * drops it for each event's callbacks and reference. */
static void deliver_batch(struct event_bus *bus, json_t **batch, size_t n) {
  for (size_t i = 0; i < n; i++) {
    json_t *ev = batch[i];
    const char *job = json_string_value(json_object_get(ev, "job"));
    deliver_one(bus, ev, job, bus->delivered + 1);
    /* The bus's reference goes before the event counts as delivered, so that a
     * flush that returns leaves the bus holding nothing it waited for: an
     * event shares its results with the engine's records, and the engine may
     * release those once a flush returned (spe_close). */
    pthread_mutex_unlock(&bus->lock);
    json_decref(ev);
    pthread_mutex_lock(&bus->lock);
    bus->delivered++;
    if (bus->delivered >= bus->flush_wake_at) {
      bus->flush_wake_at = UINT64_MAX;
      pthread_cond_broadcast(&bus->progress);
    }
  }
}

static void *delivery_main(void *arg) {
  struct event_bus *bus = arg;
  delivering_for = bus;
  json_t **batch = bus->spare;
  size_t capbatch = bus->capspare;

  pthread_mutex_lock(&bus->lock);
  for (;;) {
    while (bus->npending == 0 && !bus->stopping) {
      bus->thread_waiting = true;
      pthread_cond_wait(&bus->wake, &bus->lock);
    }
    bus->thread_waiting = false;
    if (bus->npending == 0) break; /* stopping, and everything is delivered */

    /* Take the whole pending batch, leaving our empty array in its place. */
    json_t **events = bus->pending;
    size_t n = bus->npending, cap = bus->cappending;
    bus->pending = batch;
    bus->cappending = capbatch;
    bus->npending = 0;
    batch = events;
    capbatch = cap;

    deliver_batch(bus, batch, n);
  }
  pthread_mutex_unlock(&bus->lock);

  bus->spare = batch;
  bus->capspare = capbatch;
  return NULL;
}

int spe__bus_new(struct event_bus **out) {
  *out = NULL;
  struct event_bus *bus = calloc(1, sizeof *bus);
  if (bus == NULL) return SPE_ENOMEM;
  bus->flush_wake_at = UINT64_MAX;
  pthread_mutex_init(&bus->lock, NULL);
  pthread_cond_init(&bus->wake, NULL);
  pthread_cond_init(&bus->progress, NULL);

  int rc = spe__thread_start(&bus->thread, "spe-events", delivery_main, bus);
  if (rc != 0) {
    pthread_cond_destroy(&bus->progress);
    pthread_cond_destroy(&bus->wake);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
    return SPE_ESYS;
  }
  pthread_setname_np(bus->thread, "spe-events");
  *out = bus;
  return 0;
}

/* Make room for `more` pending events. Lock held. */
static int reserve_pending(struct event_bus *bus, size_t more) {
  size_t need = bus->npending + more;
  if (need <= bus->cappending) return 0;
  size_t cap = bus->cappending ? bus->cappending * 2 : 64;
  if (cap < need) cap = need;
  json_t **p = realloc(bus->pending, cap * sizeof *p);
  if (p == NULL) return SPE_ENOMEM;
  bus->pending = p;
  bus->cappending = cap;
  return 0;
}

int spe__bus_publish(struct event_bus *bus, json_t **events, unsigned n) {
  if (n == 0) return 0;
  pthread_mutex_lock(&bus->lock);
  if (atomic_load_explicit(&bus->nsubs, memory_order_relaxed) == 0 && bus->npending == 0 &&
      bus->delivered == bus->published) {
    /* Nobody could receive them (a subscriber added later starts after
     * `published`), and the delivery thread is idle: they count as published
     * and delivered at once (rule 5 holds; flushers wait for nothing), and
     * are released here, on the publisher's thread, where they were made.
     * Handing them to the delivery thread only to free them there cost it
     * more than the engine spent making them, with malloc's arena lock
     * contended between the two threads. */
    bus->published += n;
    bus->delivered += n;
    pthread_mutex_unlock(&bus->lock);
    for (unsigned i = 0; i < n; i++) json_decref(events[i]);
    return 0;
  }
  if (reserve_pending(bus, n) != 0) {
    pthread_mutex_unlock(&bus->lock);
    for (unsigned i = 0; i < n; i++) json_decref(events[i]);
    return SPE_ENOMEM;
  }
  memcpy(bus->pending + bus->npending, events, n * sizeof *events);
  bus->npending += n;
  bus->published += n;
  if (bus->thread_waiting) {
    bus->thread_waiting = false; /* later publishers need not signal again */
    pthread_cond_signal(&bus->wake);
  }
  pthread_mutex_unlock(&bus->lock);
  return 0;
}

int spe__bus_subscribe(struct event_bus *bus, const char *job_id, spe_event_fn fn, void *ctx,
                       struct bus_sub **out) {
  *out = NULL;
  if (fn == NULL) return SPE_EINVAL;
  struct bus_sub *s = calloc(1, sizeof *s);
  if (s == NULL) return SPE_ENOMEM;
  if (job_id != NULL && (s->job_id = strdup(job_id)) == NULL) {
    free(s);
    return SPE_ENOMEM;
  }
  s->fn = fn;
  s->ctx = ctx;

  pthread_mutex_lock(&bus->lock);
  s->first_after = bus->published;
  s->prev = bus->tail;
  if (bus->tail) bus->tail->next = s;
  else bus->head = s;
  bus->tail = s;
  atomic_fetch_add_explicit(&bus->nsubs, 1, memory_order_release);
  pthread_mutex_unlock(&bus->lock);
  *out = s;
  return 0;
}

const atomic_uint *spe__bus_nsubs(const struct event_bus *bus) { return &bus->nsubs; }

void spe__bus_unsubscribe(struct event_bus *bus, struct bus_sub *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&bus->lock);
  s->dead = true;
  atomic_fetch_sub_explicit(&bus->nsubs, 1, memory_order_release);
  if (s->running) {
    if (delivering_for == bus) {
      /* Called from its own callback (only one runs at a time): the delivery
       * thread frees it when the callback returns. */
      pthread_mutex_unlock(&bus->lock);
      return;
    }
    s->awaited = true;
    while (s->running) pthread_cond_wait(&bus->progress, &bus->lock);
  }
  unlink_sub(bus, s);
  pthread_mutex_unlock(&bus->lock);
  free_sub(s);
}

void spe__bus_flush(struct event_bus *bus) {
  /* A callback cannot wait for the delivery thread it runs on. */
  if (delivering_for == bus) return;
  pthread_mutex_lock(&bus->lock);
  uint64_t target = bus->published;
  while (bus->delivered < target) {
    if (target < bus->flush_wake_at) bus->flush_wake_at = target;
    pthread_cond_wait(&bus->progress, &bus->lock);
  }
  pthread_mutex_unlock(&bus->lock);
}

void spe__bus_free(struct event_bus *bus) {
  if (bus == NULL) return;
  pthread_mutex_lock(&bus->lock);
  bus->stopping = true;
  pthread_cond_signal(&bus->wake);
  pthread_mutex_unlock(&bus->lock);
  pthread_join(bus->thread, NULL);

  /* The thread delivered everything before it exited; nothing else runs now. */
  for (size_t i = 0; i < bus->npending; i++) json_decref(bus->pending[i]);
  free(bus->pending);
  free(bus->spare);
  struct bus_sub *s = bus->head;
  while (s != NULL) {
    struct bus_sub *next = s->next;
    free_sub(s);
    s = next;
  }
  pthread_cond_destroy(&bus->progress);
  pthread_cond_destroy(&bus->wake);
  pthread_mutex_destroy(&bus->lock);
  free(bus);
}
