/* The event bus: order, filtering, flush, unsubscribe races, slow subscribers,
 * volume, and delivery on free. Callbacks run on the bus's thread, where cmocka's
 * asserts must not be used: they record what they see, and the test thread
 * asserts after a flush (which orders the callbacks before it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "events/bus.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers --------------------------------------------------------------- */

static json_t *ev_new(const char *job, int n) {
  json_t *e = json_object();
  if (job != NULL) json_object_set_new(e, "job", json_string(job));
  json_object_set_new(e, "n", json_integer(n));
  return e;
}

static int ev_n(const json_t *e) { return (int)json_integer_value(json_object_get(e, "n")); }

static void publish_one(struct event_bus *bus, const char *job, int n) {
  json_t *e = ev_new(job, n);
  assert_int_equal(spe__bus_publish(bus, &e, 1), 0);
}

/* What one subscription received: the "n" of each event, in order. */
struct recorder {
  int *ns;
  size_t count, cap;
};

static void record(void *ctx, const json_t *ev) {
  struct recorder *r = ctx;
  if (r->count == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->ns = realloc(r->ns, r->cap * sizeof *r->ns);
  }
  r->ns[r->count++] = ev_n(ev);
}

static void assert_received(const struct recorder *r, const int *want, size_t nwant) {
  assert_int_equal(r->count, nwant);
  for (size_t i = 0; i < nwant; i++) assert_int_equal(r->ns[i], want[i]);
}

/* A gate a callback waits at until the test opens it. */
struct gate {
  pthread_mutex_t m;
  pthread_cond_t c;
  bool entered, open;
};
#define GATE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false}

static void gate_enter(struct gate *g) {
  pthread_mutex_lock(&g->m);
  g->entered = true;
  pthread_cond_broadcast(&g->c);
  while (!g->open) pthread_cond_wait(&g->c, &g->m);
  pthread_mutex_unlock(&g->m);
}

static void gate_await_entered(struct gate *g) {
  pthread_mutex_lock(&g->m);
  while (!g->entered) pthread_cond_wait(&g->c, &g->m);
  pthread_mutex_unlock(&g->m);
}

static void gate_open(struct gate *g) {
  pthread_mutex_lock(&g->m);
  g->open = true;
  pthread_cond_broadcast(&g->c);
  pthread_mutex_unlock(&g->m);
}

/* Records, but waits at the gate on the first event. */
struct gated {
  struct gate gate;
  struct recorder rec;
};

static void gated_record(void *ctx, const json_t *ev) {
  struct gated *g = ctx;
  if (g->rec.count == 0) gate_enter(&g->gate);
  record(&g->rec, ev);
}

static struct event_bus *bus_new_ok(void) {
  struct event_bus *bus = NULL;
  assert_int_equal(spe__bus_new(&bus), 0);
  assert_non_null(bus);
  return bus;
}

/* ---- order and filtering --------------------------------------------------- */

static void test_delivers_batches_in_publication_order(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct recorder r = {0};
  struct bus_sub *s;
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &r, &s), 0);

  int n = 0;
  for (unsigned size = 1; size <= 10; size += 3) {
    json_t *evs[10];
    for (unsigned i = 0; i < size; i++) evs[i] = ev_new("J", n++);
    assert_int_equal(spe__bus_publish(bus, evs, size), 0);
  }
  spe__bus_flush(bus);
  int want[22];
  for (int i = 0; i < n; i++) want[i] = i;
  assert_received(&r, want, (size_t)n);

  spe__bus_free(bus);
  free(r.ns);
}

static void test_filters_by_job(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct recorder ra = {0}, rb = {0}, rall = {0};
  struct bus_sub *sa, *sb, *sall;
  assert_int_equal(spe__bus_subscribe(bus, "A", record, &ra, &sa), 0);
  assert_int_equal(spe__bus_subscribe(bus, "B", record, &rb, &sb), 0);
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &rall, &sall), 0);

  json_t *evs[] = {ev_new("A", 0), ev_new("B", 1), ev_new(NULL, 2), ev_new("A", 3),
                   ev_new("AB", 4)};
  assert_int_equal(spe__bus_publish(bus, evs, 5), 0);
  spe__bus_flush(bus);

  assert_received(&ra, (int[]){0, 3}, 2);
  assert_received(&rb, (int[]){1}, 1);
  assert_received(&rall, (int[]){0, 1, 2, 3, 4}, 5);
  spe__bus_free(bus);
  free(ra.ns);
  free(rb.ns);
  free(rall.ns);
}

static void test_subscription_gets_only_later_events(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct gated first = {GATE_INIT, {0}};
  struct recorder late = {0};
  struct bus_sub *s1, *s2;
  assert_int_equal(spe__bus_subscribe(bus, NULL, gated_record, &first, &s1), 0);
  publish_one(bus, "J", 0);
  publish_one(bus, "J", 1);
  /* Event 0 is being delivered and event 1 is still queued when s2 arrives. */
  gate_await_entered(&first.gate);
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &late, &s2), 0);
  publish_one(bus, "J", 2);
  gate_open(&first.gate);
  spe__bus_flush(bus);

  assert_received(&first.rec, (int[]){0, 1, 2}, 3);
  assert_received(&late, (int[]){2}, 1);
  spe__bus_free(bus);
  free(first.rec.ns);
  free(late.ns);
}

/* With nobody subscribed, a publish releases the events at once (the bus keeps
 * no reference), a flush has nothing to wait for, and a subscriber added next
 * gets only what is published after it - also when earlier events are still
 * being delivered to a subscriber that has just left. */
static void test_publish_without_subscribers(void **state) {
  struct event_bus *bus = bus_new_ok();
  json_t *kept = ev_new("J", 0);
  json_incref(kept);
  assert_int_equal(spe__bus_publish(bus, &kept, 1), 0);
  assert_int_equal(kept->refcount, 1); /* the bus let go of it already */
  json_decref(kept);
  spe__bus_flush(bus);

  struct recorder rec = {0};
  struct bus_sub *s;
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &rec, &s), 0);
  publish_one(bus, "J", 1);
  publish_one(bus, "J", 2);
  spe__bus_unsubscribe(bus, s);
  publish_one(bus, "J", 3); /* nobody again */
  struct recorder again = {0};
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &again, &s), 0);
  publish_one(bus, "J", 4);
  spe__bus_flush(bus);
  assert_received(&again, (int[]){4}, 1);
  assert_true(rec.count <= 2); /* 1 and 2 at most: it left before 3 */
  for (size_t i = 0; i < rec.count; i++) assert_int_equal(rec.ns[i], (int)i + 1);
  spe__bus_free(bus);
  free(rec.ns);
  free(again.ns);
}

/* ---- flush ------------------------------------------------------------------- */

struct flusher {
  struct event_bus *bus;
  const char *job;
  struct recorder rec;
  int rounds;
  int short_flushes; /* flushes that returned before its events were delivered */
};

static void *flusher_main(void *arg) {
  struct flusher *f = arg;
  int n = 0;
  for (int round = 0; round < f->rounds; round++) {
    json_t *evs[8];
    for (int i = 0; i < 8; i++) evs[i] = ev_new(f->job, n++);
    spe__bus_publish(f->bus, evs, 8);
    spe__bus_flush(f->bus);
    if (f->rec.count != (size_t)n) f->short_flushes++;
  }
  return NULL;
}

static void test_flush_waits_for_events_published_before(void **state) {
  struct event_bus *bus = bus_new_ok();
  spe__bus_flush(bus); /* nothing published: returns */

  /* Two threads publish and flush at once; each checks after every flush that
   * its own events have all arrived. */
  struct flusher f[2] = {{bus, "A", {0}, 200, 0}, {bus, "B", {0}, 200, 0}};
  struct bus_sub *s[2];
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    assert_int_equal(spe__bus_subscribe(bus, f[i].job, record, &f[i].rec, &s[i]), 0);
    assert_int_equal(pthread_create(&t[i], NULL, flusher_main, &f[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(f[i].short_flushes, 0);
    assert_int_equal(f[i].rec.count, 200 * 8);
  }
  spe__bus_free(bus);
  free(f[0].rec.ns);
  free(f[1].rec.ns);
}

/* ---- unsubscribe ------------------------------------------------------------- */

/* A subscription's view, for the unsubscribe races: calls after unsubscribe
 * returned, and calls that were in progress when it returned. */
struct watched {
  atomic_int calls;
  atomic_int in_callback;
  atomic_bool closed;
  atomic_int late_calls;
  pthread_mutex_t m;
  pthread_cond_t c;
};

static void watched_cb(void *ctx, const json_t *ev) {
  struct watched *w = ctx;
  atomic_store(&w->in_callback, 1);
  if (atomic_load(&w->closed)) atomic_fetch_add(&w->late_calls, 1);
  pthread_mutex_lock(&w->m);
  atomic_fetch_add(&w->calls, 1);
  pthread_cond_broadcast(&w->c);
  pthread_mutex_unlock(&w->m);
  atomic_store(&w->in_callback, 0);
}

struct publisher {
  struct event_bus *bus;
  atomic_bool stop;
  int published;
};

static void *publisher_main(void *arg) {
  struct publisher *p = arg;
  while (!atomic_load(&p->stop)) {
    json_t *evs[10];
    for (int i = 0; i < 10; i++) evs[i] = ev_new("J", p->published++);
    spe__bus_publish(p->bus, evs, 10);
    spe__bus_flush(p->bus); /* keep the queue short */
  }
  return NULL;
}

static void test_unsubscribe_while_events_flow(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct publisher p = {.bus = bus};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, publisher_main, &p), 0);

  enum { ROUNDS = 200 };
  struct watched *ws = calloc(ROUNDS, sizeof *ws);
  int running_at_return = 0;
  for (int i = 0; i < ROUNDS; i++) {
    struct watched *w = &ws[i];
    pthread_mutex_init(&w->m, NULL);
    pthread_cond_init(&w->c, NULL);
    struct bus_sub *s;
    assert_int_equal(spe__bus_subscribe(bus, i % 2 ? "J" : NULL, watched_cb, w, &s), 0);
    pthread_mutex_lock(&w->m);
    while (atomic_load(&w->calls) == 0) pthread_cond_wait(&w->c, &w->m);
    pthread_mutex_unlock(&w->m);
    spe__bus_unsubscribe(bus, s);
    if (atomic_load(&w->in_callback)) running_at_return++;
    atomic_store(&w->closed, true);
  }
  atomic_store(&p.stop, true);
  pthread_join(t, NULL);
  spe__bus_flush(bus);

  assert_int_equal(running_at_return, 0);
  for (int i = 0; i < ROUNDS; i++) {
    assert_int_equal(atomic_load(&ws[i].late_calls), 0);
    pthread_mutex_destroy(&ws[i].m);
    pthread_cond_destroy(&ws[i].c);
  }
  spe__bus_free(bus);
  free(ws);
}

/* Unsubscribes itself on its third event; unsubscribes `victim` on its second. */
struct unsubscriber {
  struct event_bus *bus;
  struct bus_sub *self, *victim;
  struct recorder rec;
};

static void unsubscribing_cb(void *ctx, const json_t *ev) {
  struct unsubscriber *u = ctx;
  record(&u->rec, ev);
  if (u->rec.count == 2 && u->victim != NULL) spe__bus_unsubscribe(u->bus, u->victim);
  if (u->rec.count == 3 && u->self != NULL) {
    spe__bus_unsubscribe(u->bus, u->self);
    spe__bus_flush(u->bus); /* from a callback: returns at once */
  }
}

static void test_unsubscribe_from_inside_a_callback(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct unsubscriber self = {.bus = bus}, killer = {.bus = bus};
  struct recorder victim = {0}, bystander = {0};
  struct bus_sub *sk, *sv, *sb;
  assert_int_equal(spe__bus_subscribe(bus, NULL, unsubscribing_cb, &self, &self.self), 0);
  assert_int_equal(spe__bus_subscribe(bus, NULL, unsubscribing_cb, &killer, &sk), 0);
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &victim, &sv), 0);
  assert_int_equal(spe__bus_subscribe(bus, NULL, record, &bystander, &sb), 0);
  killer.victim = sv;

  json_t *evs[6];
  for (int i = 0; i < 6; i++) evs[i] = ev_new("J", i);
  assert_int_equal(spe__bus_publish(bus, evs, 6), 0);
  spe__bus_flush(bus);

  assert_received(&self.rec, (int[]){0, 1, 2}, 3);
  assert_received(&killer.rec, (int[]){0, 1, 2, 3, 4, 5}, 6);
  /* The killer runs before the victim for each event: on event 1 the victim is
   * gone before its turn. */
  assert_received(&victim, (int[]){0}, 1);
  assert_received(&bystander, (int[]){0, 1, 2, 3, 4, 5}, 6);
  spe__bus_free(bus);
  free(self.rec.ns);
  free(killer.rec.ns);
  free(victim.ns);
  free(bystander.ns);
}

/* ---- slow subscribers --------------------------------------------------------- */

static double seconds_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_slow_subscriber_does_not_block_publish(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct gated slow = {GATE_INIT, {0}};
  struct recorder other = {0};
  struct bus_sub *ss, *so;
  assert_int_equal(spe__bus_subscribe(bus, NULL, gated_record, &slow, &ss), 0);
  assert_int_equal(spe__bus_subscribe(bus, "X", record, &other, &so), 0);
  publish_one(bus, "J", 0);
  gate_await_entered(&slow.gate);

  /* The callback is stuck until the gate opens: if publishing waited for it,
   * this would never return. */
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int n = 1;
  for (int batch = 0; batch < 100; batch++) {
    json_t *evs[100];
    for (int i = 0; i < 100; i++) evs[i] = ev_new("J", n++);
    assert_int_equal(spe__bus_publish(bus, evs, 100), 0);
  }
  assert_true(seconds_since(&t0) < 2.0);
  /* Unsubscribing a subscription whose callback is not running does not wait
   * for the stuck one either. */
  spe__bus_unsubscribe(bus, so);

  gate_open(&slow.gate);
  spe__bus_flush(bus);
  assert_int_equal(slow.rec.count, (size_t)n);
  for (int i = 0; i < n; i++) assert_int_equal(slow.rec.ns[i], i);
  assert_int_equal(other.count, 0);
  spe__bus_free(bus);
  free(slow.rec.ns);
}

/* ---- volume --------------------------------------------------------------------- */

enum { PER_JOB = 50000 };

/* Checks, per job, that events arrive exactly once and in order. */
struct sequence_check {
  int next[2]; /* the next "n" expected of job A and job B */
  int errors;
};

static void sequence_cb(void *ctx, const json_t *ev) {
  struct sequence_check *c = ctx;
  const char *job = json_string_value(json_object_get(ev, "job"));
  int j = job[0] == 'A' ? 0 : 1;
  if (ev_n(ev) != c->next[j]) c->errors++;
  c->next[j] = ev_n(ev) + 1;
}

struct volume_publisher {
  struct event_bus *bus;
  const char *job;
};

static void *volume_main(void *arg) {
  struct volume_publisher *p = arg;
  json_t *evs[97];
  int n = 0;
  while (n < PER_JOB) {
    unsigned size = 1 + (unsigned)(n % 97); /* batches of varying size */
    if (size > (unsigned)(PER_JOB - n)) size = (unsigned)(PER_JOB - n);
    for (unsigned i = 0; i < size; i++) evs[i] = ev_new(p->job, n++);
    spe__bus_publish(p->bus, evs, size);
  }
  return NULL;
}

static void test_many_events_delivered_once_in_order(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct sequence_check all = {{0, 0}, 0}, only_a = {{0, 0}, 0}, only_b = {{0, 0}, 0};
  struct bus_sub *s;
  assert_int_equal(spe__bus_subscribe(bus, NULL, sequence_cb, &all, &s), 0);
  assert_int_equal(spe__bus_subscribe(bus, "A", sequence_cb, &only_a, &s), 0);
  assert_int_equal(spe__bus_subscribe(bus, "B", sequence_cb, &only_b, &s), 0);

  struct volume_publisher p[2] = {{bus, "A"}, {bus, "B"}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, volume_main, &p[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  spe__bus_flush(bus);

  assert_int_equal(all.errors, 0);
  assert_int_equal(all.next[0], PER_JOB);
  assert_int_equal(all.next[1], PER_JOB);
  assert_int_equal(only_a.errors, 0);
  assert_int_equal(only_a.next[0], PER_JOB);
  assert_int_equal(only_a.next[1], 0);
  assert_int_equal(only_b.errors, 0);
  assert_int_equal(only_b.next[0], 0);
  assert_int_equal(only_b.next[1], PER_JOB);
  spe__bus_free(bus); /* frees the subscriptions left open */
}

/* ---- free, threads, edge cases ------------------------------------------------ */

static void test_free_delivers_pending_events(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct gated g = {GATE_INIT, {0}};
  struct bus_sub *s;
  assert_int_equal(spe__bus_subscribe(bus, NULL, gated_record, &g, &s), 0);
  publish_one(bus, "J", 0);
  gate_await_entered(&g.gate);
  json_t *evs[999];
  for (int i = 0; i < 999; i++) evs[i] = ev_new("J", i + 1);
  assert_int_equal(spe__bus_publish(bus, evs, 999), 0);
  /* 999 events are queued behind the stuck callback when free begins. */
  gate_open(&g.gate);
  spe__bus_free(bus);

  assert_int_equal(g.rec.count, 1000);
  for (int i = 0; i < 1000; i++) assert_int_equal(g.rec.ns[i], i);
  free(g.rec.ns);

  /* Free right after publishing, most often before the delivery thread has
   * even woken up. */
  for (int round = 0; round < 20; round++) {
    bus = bus_new_ok();
    struct recorder r = {0};
    assert_int_equal(spe__bus_subscribe(bus, NULL, record, &r, &s), 0);
    for (int i = 0; i < 100; i++) evs[i] = ev_new("J", i);
    assert_int_equal(spe__bus_publish(bus, evs, 100), 0);
    spe__bus_free(bus);
    assert_int_equal(r.count, 100);
    free(r.ns);
  }
}

struct mask_seen {
  int blocked; /* SIGINT, SIGTERM and SIGCHLD all blocked on the delivery thread */
};

static void mask_cb(void *ctx, const json_t *ev) {
  struct mask_seen *m = ctx;
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  m->blocked = sigismember(&cur, SIGINT) && sigismember(&cur, SIGTERM) &&
               sigismember(&cur, SIGCHLD);
}

static void test_delivery_thread_blocks_signals(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct mask_seen m = {0};
  struct bus_sub *s;
  assert_int_equal(spe__bus_subscribe(bus, NULL, mask_cb, &m, &s), 0);
  publish_one(bus, "J", 0);
  spe__bus_flush(bus);
  assert_true(m.blocked);

  /* The creating thread's own mask is left as it was. */
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  assert_false(sigismember(&cur, SIGINT));
  spe__bus_free(bus);
}

static void test_edge_cases(void **state) {
  struct event_bus *bus = bus_new_ok();
  struct bus_sub *s = (struct bus_sub *)1;
  assert_int_equal(spe__bus_subscribe(bus, NULL, NULL, NULL, &s), SPE_EINVAL);
  assert_null(s);
  assert_int_equal(spe__bus_publish(bus, NULL, 0), 0);
  spe__bus_unsubscribe(bus, NULL);

  /* The references given to publish are the bus's: it drops them once
   * delivered. */
  json_t *e = ev_new("J", 0);
  json_incref(e);
  assert_int_equal(spe__bus_publish(bus, &e, 1), 0);
  spe__bus_flush(bus);
  spe__bus_free(bus);
  assert_int_equal(e->refcount, 1);
  json_decref(e);
  spe__bus_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_delivers_batches_in_publication_order),
      cmocka_unit_test(test_filters_by_job),
      cmocka_unit_test(test_subscription_gets_only_later_events),
      cmocka_unit_test(test_publish_without_subscribers),
      cmocka_unit_test(test_flush_waits_for_events_published_before),
      cmocka_unit_test(test_unsubscribe_while_events_flow),
      cmocka_unit_test(test_unsubscribe_from_inside_a_callback),
      cmocka_unit_test(test_slow_subscriber_does_not_block_publish),
      cmocka_unit_test(test_many_events_delivered_once_in_order),
      cmocka_unit_test(test_free_delivers_pending_events),
      cmocka_unit_test(test_delivery_thread_blocks_signals),
      cmocka_unit_test(test_edge_cases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
