/* Thread isolation's executor alone (func/thread_*.c, no engine), against a
 * plain mutex-and-condition-variable thread pool calling the same no-op
 * function.
 *
 *   bench_threads [TASKS [WORKERS [IN_FLIGHT...]]]    defaults 200000 2 WORKERS 64 1024
 *   SPE_BENCH_LOOP_NS=1000 bench_threads ...          the loop busy for 1 us per start
 *
 * The executor runs on a loop the way the engine drives it: after each poll,
 * start tasks until IN_FLIGHT are started and not yet reported (IN_FLIGHT =
 * WORKERS is what an engine that counts running calls against `workers`
 * does; more lets runs queue ahead of the threads). Each IN_FLIGHT given is
 * one measurement. SPE_BENCH_LOOP_NS stands for the engine's own work per
 * task: a busy wait before each start, which makes the loop the bottleneck,
 * as it is in the engine.
 *
 * The plain pool gets all TASKS queued one by one (a lock, a push and a signal
 * each) by the main thread, and counts completions under the same lock; the
 * main thread waits for the last.
 *
 * Printed, per task: the elapsed time, the CPU time of every thread, and the
 * CPU time of the main thread (the loop, or the plain pool's producer) - the
 * last is what the executor costs the engine's thread. */
#include "base/clock.h"
#include "func/impl.h"
#include "func/registry.h"
#include "loop/loop.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static json_t *noop(void *ctx, spe_call *call) { return NULL; }

/* The run borrows the launch's literals and input, which outlive it. */
static void release_nothing(void *ctx) {}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread), in ns. */
static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* ---- the executor ---- */

struct run_state {
  unsigned long reported, failed;
};

static void on_done(void *ctx, void *task_ctx, struct task_outcome *out) {
  struct run_state *st = ctx;
  st->reported++;
  if (!out->succeeded) st->failed++;
  json_decref(out->result);
  json_decref(out->error);
}

static void burn(uint64_t ns) {
  if (ns == 0) return;
  uint64_t until = spe__mono_ns() + ns;
  while (spe__mono_ns() < until) {
  }
}

struct cost {
  double wall, cpu, main; /* ns per task: elapsed, CPU time of all threads, and of
                             the main thread (the loop, or the plain pool's
                             producer) */
};

static const struct cost failed_run = {-1, -1, -1};

static struct cost bench_exec(const spe_registry *reg, unsigned long n, uint32_t workers,
                         unsigned long in_flight, uint64_t loop_ns) {
  struct loop lp;
  if (spe__loop_init(&lp) != 0) return failed_run;
  struct run_state st = {0};
  struct func_exec_config cfg = {.isolation = SPE_ISOLATION_THREAD, .workers = workers, .reg = reg};
  struct thread_exec *tx;
  if (spe__thread_exec_new(&tx, &cfg, &lp, NULL, on_done, &st) != 0) return failed_run;
  json_t *input = json_object();
  struct task_launch l = {.job_id = "01JBENCHJOB000000000000000", .job_name = "bench",
                          .task_name = "t", .attempt = 1, .function = "noop",
                          .input_json = input, .release_fn = release_nothing};
  unsigned long started = 0;
  uint64_t t0 = spe__mono_ns(), c0 = cpu_ns(), m0 = thread_cpu_ns();
  while (st.reported < n) {
    while (started < n && started - st.reported < in_flight) {
      struct func_run *run;
      struct task_outcome failed;
      burn(loop_ns);
      if (spe__thread_exec_start(tx, &l, NULL, &run, &failed) != 0) return failed_run;
      started++;
    }
    if (spe__loop_poll(&lp, -1) < 0) return failed_run;
  }
  struct cost c = {(double)(spe__mono_ns() - t0) / (double)n, (double)(cpu_ns() - c0) / (double)n,
                   (double)(thread_cpu_ns() - m0) / (double)n};
  spe__thread_exec_free(tx);
  spe__loop_close(&lp);
  json_decref(input);
  if (st.failed) fprintf(stderr, "%lu tasks failed\n", st.failed);
  return c;
}

/* ---- the plain pool ---- */

struct plain_pool {
  pthread_mutex_t mu;
  pthread_cond_t work, all_done;
  unsigned long *ring;  /* queued task numbers: head..tail */
  unsigned long head, tail, done, n;
  const struct func_entry *fn;
};

static void *plain_worker(void *arg) {
  struct plain_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->head == p->tail && p->done < p->n)
      pthread_cond_wait(&p->work, &p->mu);
    if (p->head == p->tail) break; /* all done */
    p->head++;
    pthread_mutex_unlock(&p->mu);
    spe_call call = {.input = NULL, .arg = json_null()};
    json_decref(p->fn->fn(p->fn->ctx, &call));
    pthread_mutex_lock(&p->mu);
    if (++p->done == p->n) {
      pthread_cond_signal(&p->all_done);
      pthread_cond_broadcast(&p->work); /* let the others see the end */
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static struct cost bench_plain(const spe_registry *reg, unsigned long n, uint32_t workers) {
  struct plain_pool p = {.n = n, .fn = spe__registry_find(reg, "noop")};
  pthread_mutex_init(&p.mu, NULL);
  pthread_cond_init(&p.work, NULL);
  pthread_cond_init(&p.all_done, NULL);
  p.ring = malloc(n * sizeof *p.ring);
  pthread_t *th = malloc(workers * sizeof *th);
  if (p.ring == NULL || th == NULL) return failed_run;
  for (uint32_t i = 0; i < workers; i++) pthread_create(&th[i], NULL, plain_worker, &p);
  uint64_t t0 = spe__mono_ns(), c0 = cpu_ns(), m0 = thread_cpu_ns();
  for (unsigned long i = 0; i < n; i++) {
    pthread_mutex_lock(&p.mu);
    p.ring[p.tail++] = i;
    pthread_cond_signal(&p.work);
    pthread_mutex_unlock(&p.mu);
  }
  pthread_mutex_lock(&p.mu);
  while (p.done < n) pthread_cond_wait(&p.all_done, &p.mu);
  pthread_mutex_unlock(&p.mu);
  struct cost c = {(double)(spe__mono_ns() - t0) / (double)n, (double)(cpu_ns() - c0) / (double)n,
                   (double)(thread_cpu_ns() - m0) / (double)n};
  for (uint32_t i = 0; i < workers; i++) pthread_join(th[i], NULL);
  free(th);
  free(p.ring);
  return c;
}

int main(int argc, char **argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
  uint32_t workers = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 2;
  unsigned long depths[16] = {workers, 64, 1024};
  int ndepths = 3;
  if (argc > 3) {
    ndepths = 0;
    for (int i = 3; i < argc && ndepths < 16; i++) depths[ndepths++] = strtoul(argv[i], NULL, 10);
  }
  if (n == 0 || workers == 0) return 2;
  spe_registry *reg;
  if (spe_registry_new(&reg) != 0 || spe_register(reg, "noop", noop, NULL, NULL) != 0) return 1;

  const char *e = getenv("SPE_BENCH_LOOP_NS");
  uint64_t loop_ns = e ? strtoull(e, NULL, 10) : 0;
  struct cost plain = bench_plain(reg, n, workers);
  if (plain.wall < 0) return 1;
  printf("tasks %lu, workers %u, loop work %" PRIu64 " ns/task\n", n, workers, loop_ns);
  printf("%-34s %9s %9s %9s\n", "ns per task", "elapsed", "CPU", "main");
  printf("%-34s %9.1f %9.1f %9.1f\n", "plain mutex+condvar pool", plain.wall, plain.cpu,
         plain.main);
  for (int i = 0; i < ndepths; i++) {
    struct cost c = bench_exec(reg, n, workers, depths[i], loop_ns);
    if (c.wall < 0) return 1;
    char what[64];
    snprintf(what, sizeof what, "thread executor, %lu in flight", depths[i]);
    printf("%-34s %9.1f %9.1f %9.1f  %.2fx the plain pool\n", what, c.wall, c.cpu, c.main,
           c.wall / plain.wall);
  }
  spe_registry_free(reg);
  return 0;
}
