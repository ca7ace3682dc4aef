/*
 * What memory costs on this machine, for reading the other benchmarks
 * (docs/benchmarks.md, "C function tasks"):
 *
 *   build-rel/bench/bench_memory
 *
 * - one cache line passed between two threads: a ping-pong of a counter, each
 *   side waiting for the other's write (what a line written on one CPU and
 *   read on another costs, as the engine and a pool thread do for every call);
 * - a random read in a working set of 16 KiB to 64 MiB: a chase through a
 *   random cycle of cache lines, each read's address in the line before, so
 *   that the reads cannot overlap (what a scattered access costs once the set
 *   outgrows each level of cache, the TLB's reach included).
 *
 * Not timed by CTest; the figures move with the neighbours on a shared machine.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* ---- a line between two threads ---- */

#define ROUND_TRIPS 2000000L

static _Alignas(64) atomic_long ping;
static _Alignas(64) atomic_long pong;

static void *ponger(void *arg) {
  (void)arg;
  for (long i = 1; i <= ROUND_TRIPS; i++) {
    while (atomic_load_explicit(&ping, memory_order_acquire) != i) {
    }
    atomic_store_explicit(&pong, i, memory_order_release);
  }
  return NULL;
}

static void line_between_threads(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, ponger, NULL) != 0) {
    fprintf(stderr, "bench_memory: cannot start a thread\n");
    exit(1);
  }
  double t0 = now_ns();
  for (long i = 1; i <= ROUND_TRIPS; i++) {
    atomic_store_explicit(&ping, i, memory_order_release);
    while (atomic_load_explicit(&pong, memory_order_acquire) != i) {
    }
  }
  double rt = (now_ns() - t0) / (double)ROUND_TRIPS;
  pthread_join(t, NULL);
  printf("a cache line passed between two threads: %.1f ns a round trip, %.1f ns a pass\n", rt,
         rt / 2);
}

/* ---- random reads ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static double chase(size_t bytes) {
  size_t n = bytes / 64;
  uint64_t *lines = aligned_alloc(64, n * 64);
  size_t *order = malloc(n * sizeof *order);
  if (lines == NULL || order == NULL) {
    fprintf(stderr, "bench_memory: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) order[i] = i;
  for (size_t i = n - 1; i > 0; i--) { /* a random cycle through every line */
    size_t j = (size_t)(rng_next() % (i + 1)), x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  for (size_t i = 0; i < n; i++) lines[order[i] * 8] = order[(i + 1) % n] * 8;
  size_t p = 0;
  for (size_t i = 0; i < n; i++) p = lines[p]; /* once round: in cache if it fits */
  long steps = 10000000;
  double t0 = now_ns();
  for (long i = 0; i < steps; i++) p = lines[p];
  double ns = (now_ns() - t0) / (double)steps;
  if (p == SIZE_MAX) printf("?"); /* keeps the chase */
  free(lines);
  free(order);
  return ns;
}

int main(void) {
  line_between_threads();
  printf("a random read in a working set of (one cache line each, dependent reads):\n");
  size_t kib[] = {16, 128, 512, 1024, 4096, 16384, 65536};
  for (size_t i = 0; i < sizeof kib / sizeof kib[0]; i++)
    printf("  %6zu KiB: %6.1f ns\n", kib[i], chase(kib[i] * 1024));
  return 0;
}
