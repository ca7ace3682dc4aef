/*
 * Process isolation's throughput: N no-op C function tasks through the
 * process-isolation executor (src/func/proc_*.c) directly on a loop, with
 * W workers and W attempts in flight (each outcome starts the next one), as
 * the engine would keep them. The workers are forked on the first tasks and
 * reused after; the figure is tasks per second over the whole run, forks
 * included. Each round uses a new executor on the same fork server.
 *
 * usage: bench_proc [N [W [ROUNDS]]]   (defaults 200000, 2 and 3)
 */
#include "base/clock.h"
#include "func/forkserver.h"
#include "func/impl.h"
#include "loop/loop.h"

#include <stdio.h>
#include <stdlib.h>

struct bench {
  struct loop lp;
  struct proc_exec *px;
  json_t *input;  /* {}, as the engine gives a task without upstream */
  long total, started, done, failures;
};

static json_t *noop(void *ctx, spe_call *call) { return NULL; }

static void start_one(struct bench *b);

static void on_done(void *ctx, void *task_ctx, struct task_outcome *out) {
  struct bench *b = ctx;
  if (!out->succeeded) b->failures++;
  json_decref(out->result);
  json_decref(out->error);
  b->done++;
  if (b->started < b->total) start_one(b);
}

static void start_one(struct bench *b) {
  struct task_launch l = {.job_id = "01JBENCH000000000000000000", .job_name = "bench",
                          .task_name = "t", .attempt = 1, .function = "noop",
                          .input_json = b->input};
  struct func_run *run;
  struct task_outcome failed;
  b->started++;
  if (spe__proc_start(b->px, &l, NULL, &run, &failed) != 0) {
    json_decref(failed.error);
    b->failures++;
    b->done++;
  }
}

static double round_once(struct fork_server *fs, const spe_registry *reg, long n, uint32_t w) {
  struct bench b = {.total = n, .input = json_object()};
  if (spe__loop_init(&b.lp) != 0) exit(1);
  struct func_exec_config cfg = {.workers = w, .reg = reg, .fs = fs};
  if (spe__proc_exec_new(&b.px, &cfg, &b.lp, NULL, on_done, &b) != 0) exit(1);
  int64_t t0 = spe__mono_ms();
  for (uint32_t i = 0; i < w && b.started < n; i++) start_one(&b);
  while (b.done < n)
    if (spe__loop_poll(&b.lp, 1000) < 0) exit(1);
  int64_t ms = spe__mono_ms() - t0;
  spe__proc_exec_free(b.px);
  spe__loop_close(&b.lp);
  json_decref(b.input);
  if (b.failures) fprintf(stderr, "bench_proc: %ld tasks failed\n", b.failures);
  return (double)n * 1000.0 / (double)(ms > 0 ? ms : 1);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  uint32_t w = argc > 2 ? (uint32_t)atol(argv[2]) : 2;
  int rounds = argc > 3 ? atoi(argv[3]) : 3;
  spe_registry *reg;
  if (spe_registry_new(&reg) != 0 || spe_register(reg, "noop", noop, NULL, NULL) != 0) return 1;
  struct fork_server *fs;
  char *msg = NULL;
  if (spe__forkserver_start(&fs, reg, SIZE_MAX, NULL, &msg) != 0) {
    fprintf(stderr, "bench_proc: %s\n", msg);
    return 1;
  }
  double best = 0;
  for (int r = 0; r < rounds; r++) {
    double rate = round_once(fs, reg, n, w);
    printf("process isolation, %ld no-op tasks, %u workers: %.0f tasks/s\n", n, w, rate);
    if (rate > best) best = rate;
  }
  printf("best: %.0f tasks/s (%.2f us per task)\n", best, 1e6 / best);
  spe__forkserver_stop(fs);
  spe_registry_free(reg);
  return 0;
}
