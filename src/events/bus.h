/*
 * The event bus: hands published events to subscribers on a delivery thread of
 * its own, so that a slow subscriber delays other events, never the engine.
 *
 * The engine publishes a round's events (already numbered by the store's commit)
 * in one call; the delivery thread passes each, in publication order, to every
 * subscriber whose filter (one job id, or all) matches.
 *
 * Threads and locks: `lock` guards the pending queue and the subscriber list;
 * callbacks run on the delivery thread with the lock released. unsubscribe waits
 * until the subscription's callback is not running (unless called from that
 * callback, where it only marks it).
 */
#ifndef SPE_EVENTS_BUS_H
#define SPE_EVENTS_BUS_H

#include "spe.h"

#include <jansson.h>
#include <stdatomic.h>

struct event_bus;
struct bus_sub;

int spe__bus_new(struct event_bus **out);

/* Queue n events for delivery; steals the references. Any thread. Never blocks
 * on subscribers. Returns 0 or SPE_ENOMEM (then the references are dropped).
 * Each event is a JSON object; its "job" string names the job it belongs to (an
 * event without one goes to all-jobs subscribers only). Events are read by the
 * delivery thread and the subscribers afterwards: do not modify them once
 * published. One lock acquisition and at most one signal per call. */
int spe__bus_publish(struct event_bus *bus, json_t **events, unsigned n);

/* Subscribe to one job's events (job_id, copied) or to all (NULL). The
 * subscription receives exactly the events published after the call. Returns 0,
 * SPE_EINVAL (fn NULL) or SPE_ENOMEM. May be called from a callback. */
int spe__bus_subscribe(struct event_bus *bus, const char *job_id, spe_event_fn fn, void *ctx,
                       struct bus_sub **out);
/* Once this returns, fn is not running and is never called again for `sub`;
 * waits for a callback in progress on the delivery thread. From inside a
 * callback (its own or another's) it returns at once. NULL is a no-op. */
void spe__bus_unsubscribe(struct event_bus *bus, struct bus_sub *sub);

/* The count of live subscriptions (any thread may read it). The engine
 * builds no events while it is 0 and the store keeps no event log: nobody
 * could ever see them. It checks for every event it might build: an inline
 * atomic load, not a call. */
const atomic_uint *spe__bus_nsubs(const struct event_bus *bus);

/* Wait until every event published before the call has been delivered (every
 * callback for it has returned, and the bus has dropped its reference to it).
 * From inside a callback it returns at once: the delivery thread cannot wait
 * for itself. */
void spe__bus_flush(struct event_bus *bus);

/* Deliver what is pending, stop the thread, drop all subscriptions. NULL no-op.
 * Not from a callback, and no publish may follow or race with it. */
void spe__bus_free(struct event_bus *bus);

#endif
