/*
 * The command executor's overhead: N `true` tasks through the executor (argv
 * ["true"], PATH searched, 2 in flight: each outcome starts the next one),
 * against N raw posix_spawn + waitpid of /bin/true, 2 in flight. Both run in
 * the same process, in alternating rounds, so that both see the same machine.
 *
 * usage: bench_spawn [N [ROUNDS]]   (defaults 2000 and 4)
 */
#include "base/clock.h"
#include "exec/cmd.h"
#include "loop/loop.h"

#include <spawn.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

#define IN_FLIGHT 2

struct bench {
  struct loop lp;
  struct cmd_exec *ex;
  int total, started, done, failures;
};

static char *true_argv[] = {"true", NULL};

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
                          .task_name = "t", .attempt = 1, .argv = true_argv,
                          .input = "{}", .input_len = 2};
  struct cmd_run *run;
  struct task_outcome failed;
  b->started++;
  if (spe__cmd_start(b->ex, &l, NULL, &run, &failed) != 0) {
    json_decref(failed.error);
    b->failures++;
    b->done++;
  }
}

/* CPU seconds this process used so far (the children's not included; the
 * vfork children's time before their exec is counted as ours). */
static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Returns the seconds taken. */
static double run_executor(struct bench *b, int n) {
  b->total = n;
  b->started = b->done = 0;
  uint64_t t0 = spe__mono_ns();
  while (b->started < IN_FLIGHT && b->started < n) start_one(b);
  while (b->done < n) {
    if (spe__loop_poll(&b->lp, -1) < 0) break;
    /* A start that failed outside a callback leaves a slot to refill. */
    while (b->started < n && b->started - b->done < IN_FLIGHT) start_one(b);
  }
  return (double)(spe__mono_ns() - t0) / 1e9;
}

static int spawn_true(void) {
  char *argv[] = {"true", NULL};
  pid_t pid;
  return posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
}

static double run_raw(int n, int *failures) {
  int started = 0, done = 0;
  uint64_t t0 = spe__mono_ns();
  for (; started < IN_FLIGHT && started < n; started++)
    if (spawn_true() != 0) (*failures)++, done++;
  while (done < n) {
    int st;
    if (waitpid(-1, &st, 0) < 0) break;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) (*failures)++;
    done++;
    if (started < n) {
      started++;
      if (spawn_true() != 0) (*failures)++, done++;
    }
  }
  return (double)(spe__mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  int rounds = argc > 2 ? atoi(argv[2]) : 4;
  if (n <= 0 || rounds <= 0 || n < rounds) {
    fprintf(stderr, "usage: bench_spawn [N [ROUNDS]]\n");
    return 2;
  }
  struct bench b = {0};
  if (spe__loop_init(&b.lp) != 0 || spe__cmd_exec_new(&b.ex, &b.lp, NULL, on_done, &b) != 0) {
    fprintf(stderr, "bench_spawn: cannot set up the executor\n");
    return 1;
  }
  double t_exec = 0, t_raw = 0, cpu_exec = 0, cpu_raw = 0;
  int raw_failures = 0;
  for (int r = 0; r < rounds; r++) {
    int share = n / rounds + (r < n % rounds);
    /* Alternate which goes first, so neither always gets a warmer machine. */
    for (int k = 0; k < 2; k++) {
      double c0 = cpu_self();
      if ((k + r) % 2 == 0) {
        t_exec += run_executor(&b, share);
        cpu_exec += cpu_self() - c0;
      } else {
        t_raw += run_raw(share, &raw_failures);
        cpu_raw += cpu_self() - c0;
      }
    }
  }
  spe__cmd_exec_free(b.ex);
  spe__loop_close(&b.lp);

  double exec_rate = n / t_exec, raw_rate = n / t_raw;
  printf("executor (argv [\"true\"], %d in flight): %6d tasks in %.3f s = %7.0f tasks/s\n",
         IN_FLIGHT, n, t_exec, exec_rate);
  printf("raw posix_spawn+waitpid /bin/true:     %6d tasks in %.3f s = %7.0f tasks/s\n", n,
         t_raw, raw_rate);
  printf("parent CPU per task: executor %.0f us, raw %.0f us\n", cpu_exec / n * 1e6,
         cpu_raw / n * 1e6);
  printf("ratio executor/raw: %.2f\n", exec_rate / raw_rate);
  if (b.failures || raw_failures)
    printf("failures: executor %d, raw %d\n", b.failures, raw_failures);
  return b.failures || raw_failures ? 1 : 0;
}
