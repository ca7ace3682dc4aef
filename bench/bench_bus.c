/* The event bus's costs: what publishing costs the publisher (the engine), and
 * how fast the delivery thread fans events out to subscribers that filter by job.
 *
 *   bench_bus [EVENTS [BATCH [JOB_SUBSCRIBERS]]]     defaults 200000 64 100
 *
 * Events are built before the clock starts; one all-jobs subscriber counts
 * every event, and JOB_SUBSCRIBERS subscribers follow jobs the events are
 * spread over, so each event is compared against every subscriber. */
#include "base/clock.h"
#include "events/bus.h"

#include <stdio.h>
#include <stdlib.h>

static void count(void *ctx, const json_t *ev) { (*(unsigned long *)ctx)++; }

int main(int argc, char **argv) {
  unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 200000;
  unsigned batch = argc > 2 ? (unsigned)atoi(argv[2]) : 64;
  unsigned nsubs = argc > 3 ? (unsigned)atoi(argv[3]) : 100;
  if (n == 0 || batch == 0) return 2;

  json_t **evs = malloc(n * sizeof *evs);
  char job[32];
  for (unsigned i = 0; i < n; i++) {
    snprintf(job, sizeof job, "job-%u", i % (nsubs ? nsubs : 1));
    evs[i] = json_pack("{s:s, s:s, s:i}", "job", job, "type", "task_started", "seq", (int)i);
  }

  struct event_bus *bus;
  if (spe__bus_new(&bus) != 0) return 1;
  unsigned long all = 0, followed = 0;
  struct bus_sub *s;
  spe__bus_subscribe(bus, NULL, count, &all, &s);
  for (unsigned j = 0; j < nsubs; j++) {
    snprintf(job, sizeof job, "job-%u", j);
    spe__bus_subscribe(bus, job, count, &followed, &s);
  }

  uint64_t t0 = spe__mono_ns(), in_publish = 0;
  for (unsigned i = 0; i < n; i += batch) {
    unsigned k = n - i < batch ? n - i : batch;
    uint64_t p0 = spe__mono_ns();
    spe__bus_publish(bus, evs + i, k);
    in_publish += spe__mono_ns() - p0;
  }
  spe__bus_flush(bus);
  uint64_t total = spe__mono_ns() - t0;
  spe__bus_free(bus);

  printf("events %u, batch %u, job subscribers %u\n", n, batch, nsubs);
  printf("publish: %.1f ns/event (publisher's time in spe__bus_publish)\n",
         (double)in_publish / n);
  printf("delivered: %.0f events/s end to end (%lu to all-jobs, %lu to job subscribers)\n",
         n / ((double)total / 1e9), all, followed);
  free(evs);
  return all == n ? 0 : 1;
}
