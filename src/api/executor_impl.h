/*
 * The executor handle's insides, shared by the files of src/api: executor.c
 * (open, close, jobs, callback subscriptions), queue.c (event queues) and
 * queries.c (pages of jobs, prune, replay, counters).
 *
 * Locks: `subs_lock` guards the lists of subscriptions and queues and the
 * `stopped` flag. Lock order: subs_lock, then a queue's own lock, then the
 * bus's lock (taken inside spe__bus_subscribe/unsubscribe). Event callbacks run
 * on the bus's delivery thread and take a queue's lock only, never subs_lock.
 */
#ifndef SPE_API_EXECUTOR_IMPL_H
#define SPE_API_EXECUTOR_IMPL_H

#include "spe.h"

#include "base/log.h"

#include <pthread.h>
#include <stdbool.h>

struct spe_executor {
  struct logger log;
  struct store *store;
  struct event_bus *bus;
  struct engine *engine;
  struct spe_registry *functions;  /* the copy of spe_options.functions */
  struct fork_server *fork_server; /* process isolation with functions */
  pthread_mutex_t subs_lock; /* guards subs, queues and stopped */
  struct spe_subscription *subs;
  struct spe_queue *queues; /* open queues, so that spe_close frees them */
  bool stopped;             /* spe_shutdown or spe_close began: queues get no
                               more events, and no queue opens any more */
};

/* queue.c. Called by spe_shutdown() and at the start of spe_close(): mark every
 * open queue closed (it receives no further event; spe_queue_next() returns
 * what it holds, then SPE_ECLOSED; its fd becomes readable) and refuse new
 * queues. Idempotent. */
void spe__queues_stop(spe_executor *ex);
/* Called by spe_close() once the bus is gone (no callback runs any more): wait
 * until no thread is inside spe_queue_next() on a queue left open, then free
 * every such queue and its events. */
void spe__queues_free(spe_executor *ex);
/* How many threads are inside spe_queue_next() on q: for tests, which must
 * know that a reader waits before they close under it. */
unsigned spe__queue_users(const spe_queue *q);

#endif
