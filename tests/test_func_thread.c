/*
 * Thread isolation's executor (func/impl.h), driven directly on a loop like the
 * command executor in test_cmd.c: every test starts calls of registered C
 * functions, polls the loop until their outcomes arrive, and checks what the
 * engine would see. Functions that must stay busy wait on a gate the test
 * opens, or for spe_call_cancelled(); nothing here sleeps to let time pass
 * except where a test is about time (the timeout).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/clock.h"
#include "func/impl.h"
#include "func/registry.h"
#include "loop/loop.h"
#include "spe.h"
#include "support/exec_util.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- gates: where a function waits until the test lets it go ---- */

struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open;
  int entered;       /* calls that reached the function */
  int saw_cancel;    /* calls that saw spe_call_cancelled() */
  int returned;      /* calls that returned */
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

static void gate_reset(void) {
  pthread_mutex_lock(&gate.mu);
  gate.open = gate.entered = gate.saw_cancel = gate.returned = 0;
  pthread_mutex_unlock(&gate.mu);
}

static void gate_bump(int *field) {
  pthread_mutex_lock(&gate.mu);
  (*field)++;
  pthread_cond_broadcast(&gate.cv);
  pthread_mutex_unlock(&gate.mu);
}

static int gate_get(const int *field) {
  pthread_mutex_lock(&gate.mu);
  int v = *field;
  pthread_mutex_unlock(&gate.mu);
  return v;
}

static void gate_open(void) {
  pthread_mutex_lock(&gate.mu);
  gate.open = 1;
  pthread_cond_broadcast(&gate.cv);
  pthread_mutex_unlock(&gate.mu);
}

/* Wait (on the test's thread) until *field reaches n, at most 10 s. */
static void gate_await(const int *field, int n) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&gate.mu);
  int rc = 0;
  while (*field < n && rc == 0) rc = pthread_cond_timedwait(&gate.cv, &gate.mu, &until);
  int v = *field;
  pthread_mutex_unlock(&gate.mu);
  assert_true(v >= n);
}

/* Until cancelled; then wait for the gate; then return a (late) result. */
static json_t *fn_until_cancelled(void *ctx, spe_call *call) {
  gate_bump(&gate.entered);
  while (!spe_call_cancelled(call)) sched_yield();
  gate_bump(&gate.saw_cancel);
  pthread_mutex_lock(&gate.mu);
  while (!gate.open) pthread_cond_wait(&gate.cv, &gate.mu);
  pthread_mutex_unlock(&gate.mu);
  gate_bump(&gate.returned);
  return json_string("late");
}

/* Until cancelled, then return at once. */
static json_t *fn_spin(void *ctx, spe_call *call) {
  gate_bump(&gate.entered);
  while (!spe_call_cancelled(call)) sched_yield();
  gate_bump(&gate.returned);
  return json_integer(0);
}

/* ---- plain functions ---- */

static atomic_int ncalls;     /* fn_count's calls */
static atomic_int returned_5; /* fn_five has returned (or is about to) */

static json_t *fn_three(void *ctx, spe_call *call) { return json_integer(3); }

static json_t *fn_count(void *ctx, spe_call *call) {
  atomic_fetch_add(&ncalls, 1);
  return json_integer(1);
}

static json_t *fn_five(void *ctx, spe_call *call) {
  atomic_store(&returned_5, 1);
  return json_integer(5);
}

/* The sum of the input's numbers (the results of the task's ancestors). */
static json_t *fn_sum(void *ctx, spe_call *call) {
  json_int_t sum = 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)spe_call_input(call), key, v) sum += json_integer_value(v);
  return json_integer(sum);
}

static json_t *fn_arg_twice(void *ctx, spe_call *call) {
  const json_t *arg = spe_call_arg(call);
  if (json_is_null(arg)) return json_string("no arg");
  return json_integer(2 * json_integer_value(json_object_get(arg, "n")));
}

static json_t *fn_null(void *ctx, spe_call *call) { return NULL; }

static json_t *fn_string(void *ctx, spe_call *call) { return json_string((const char *)ctx); }

static json_t *fn_who(void *ctx, spe_call *call) {
  return json_pack("{s:s?, s:s?, s:s?, s:i}", "job_id", spe_call_job_id(call), "job_name",
                   spe_call_job_name(call), "task", spe_call_task(call), "attempt",
                   (int)spe_call_attempt(call));
}

static json_t *fn_fail(void *ctx, spe_call *call) {
  return spe_call_fail(call, "cannot divide %d by %d", 1, 0);
}

/* Fails without a message, and returns a value anyway (released, ignored). */
static json_t *fn_fail_quiet(void *ctx, spe_call *call) {
  spe_call_fail(call, NULL);
  return json_pack("{s:i}", "ignored", 1);
}

/* ---- the barrier: N calls succeed only if they run at the same time ---- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int arrived, need;
} barrier = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static json_t *fn_barrier(void *ctx, spe_call *call) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10;
  pthread_mutex_lock(&barrier.mu);
  barrier.arrived++;
  pthread_cond_broadcast(&barrier.cv);
  int rc = 0;
  while (barrier.arrived < barrier.need && rc == 0)
    rc = pthread_cond_timedwait(&barrier.cv, &barrier.mu, &until);
  int arrived = barrier.arrived;
  pthread_mutex_unlock(&barrier.mu);
  if (arrived < barrier.need)
    return spe_call_fail(call, "only %d of %d calls ran at once", arrived, barrier.need);
  return json_true();
}

/* ---- how many calls run at once ---- */

static atomic_int now_running, most_running;

static json_t *fn_overlap(void *ctx, spe_call *call) {
  int n = atomic_fetch_add(&now_running, 1) + 1;
  int m = atomic_load(&most_running);
  while (n > m && !atomic_compare_exchange_weak(&most_running, &m, n)) {
  }
  int64_t until = (int64_t)spe__mono_ns() + 2000000; /* 2 ms of work */
  while ((int64_t)spe__mono_ns() < until) sched_yield();
  atomic_fetch_sub(&now_running, 1);
  return json_integer(n);
}

/* ---- fixture ---- */

struct slot {
  int done;
  struct task_outcome out;
  struct func_run *run;
  int started;        /* the started callback came (runs queued ahead) */
  int64_t started_ms; /*   with this time */
};

/* A run queued ahead was seen to start: by the started callback, or by its
 * outcome alone (a call that began and ended between two looks). */
static int start_known(const struct slot *s) {
  return s->started || (s->done && s->out.started_ms > 0);
}

struct fx {
  struct loop lp;
  struct thread_exec *tx;
  spe_registry *reg;
  int in_call;  /* set around executor calls: done must never be called then */
  int ndone;
  _Atomic long slots; /* free slots (open_exec_slots): the pool borrows them,
                         so they live until the teardown frees it, also when
                         a test fails midway */
};

static void on_done(void *ctx, void *task_ctx, struct task_outcome *out) {
  struct fx *f = ctx;
  struct slot *s = task_ctx;
  assert_false(f->in_call);
  assert_false(s->done); /* exactly once */
  s->done = 1;
  s->out = *out;
  f->ndone++;
}

/* Runs queued ahead: a start is reported once, before the outcome. */
static void on_started(void *ctx, void *task_ctx, int64_t started_ms) {
  struct fx *f = ctx;
  struct slot *s = task_ctx;
  assert_false(f->in_call);
  assert_false(s->started);
  assert_false(s->done);
  assert_true(started_ms > 0);
  s->started = 1;
  s->started_ms = started_ms;
}

static void reg_add(spe_registry *reg, const char *name, spe_function fn, void *ctx) {
  assert_int_equal(spe_register(reg, name, fn, ctx, NULL), 0);
}

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(spe__loop_init(&f->lp), 0);
  assert_int_equal(spe_registry_new(&f->reg), 0);
  reg_add(f->reg, "three", fn_three, NULL);
  reg_add(f->reg, "count", fn_count, NULL);
  reg_add(f->reg, "five", fn_five, NULL);
  reg_add(f->reg, "sum", fn_sum, NULL);
  reg_add(f->reg, "arg_twice", fn_arg_twice, NULL);
  reg_add(f->reg, "null", fn_null, NULL);
  reg_add(f->reg, "hello", fn_string, "hello, world");
  reg_add(f->reg, "who", fn_who, NULL);
  reg_add(f->reg, "fail", fn_fail, NULL);
  reg_add(f->reg, "fail_quiet", fn_fail_quiet, NULL);
  reg_add(f->reg, "until_cancelled", fn_until_cancelled, NULL);
  reg_add(f->reg, "spin", fn_spin, NULL);
  reg_add(f->reg, "barrier", fn_barrier, NULL);
  reg_add(f->reg, "overlap", fn_overlap, NULL);
  gate_reset();
  atomic_store(&ncalls, 0);
  atomic_store(&returned_5, 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fx *f = *state;
  gate_open(); /* a test that failed midway must not leave a call blocked */
  spe__thread_exec_free(f->tx);
  spe__loop_close(&f->lp);
  spe_registry_free(f->reg);
  free(f);
  return 0;
}

static void open_exec(struct fx *f, uint32_t workers) {
  struct func_exec_config cfg = {
      .isolation = SPE_ISOLATION_THREAD, .workers = workers, .reg = f->reg};
  assert_int_equal(spe__thread_exec_new(&f->tx, &cfg, &f->lp, NULL, on_done, f), 0);
}

/* Thread isolation as the engine drives it: `threads` threads, the calls
 * bounded by `slots` free slots (f->slots), starts reported. */
static void open_exec_slots(struct fx *f, uint32_t threads, long slots) {
  atomic_store(&f->slots, slots);
  struct func_exec_config cfg = {.isolation = SPE_ISOLATION_THREAD,
                                 .workers = threads,
                                 .reg = f->reg,
                                 .started = on_started,
                                 .slots = &f->slots};
  assert_int_equal(spe__thread_exec_new(&f->tx, &cfg, &f->lp, NULL, on_done, f), 0);
}

/* The input of a task without upstream tasks, as the engine gives it: one {}
 * for all (kept for the whole program). */
static json_t *empty_input(void) {
  static json_t *empty;
  if (empty == NULL) empty = json_object();
  return empty;
}

/* A run borrows its launch's strings, arg and input until it calls this:
 * the strings are literals and empty_input() lives on. */
static void release_nothing(void *ctx) {}

/* The same for an input or arg of its own: the run's reference goes with it. */
static void release_ref(void *ctx) { json_decref(ctx); }

static struct task_launch launch_fn(const char *function) {
  return (struct task_launch){.job_id = "01JTESTJOBID0000000000000A",
                              .job_name = "testjob",
                              .task_name = "t",
                              .attempt = 1,
                              .function = function,
                              .input_json = empty_input(),
                              .release_fn = release_nothing};
}

static void start(struct fx *f, const struct task_launch *l, struct slot *s) {
  struct task_outcome failed = {0};
  f->in_call = 1;
  int rc = spe__thread_exec_start(f->tx, l, s, &s->run, &failed);
  f->in_call = 0;
  if (rc != 0)
    fail_msg("start failed: %s", json_string_value(json_object_get(failed.error, "message")));
  assert_non_null(s->run);
}

static void start_fn(struct fx *f, const char *function, struct slot *s) {
  struct task_launch l = launch_fn(function);
  start(f, &l, s);
}

/* Queue a run ahead of the slots and hand it over, as the engine does. */
static void start_ahead(struct fx *f, const char *function, struct slot *s) {
  struct task_launch l = launch_fn(function);
  l.ahead = 1;
  start(f, &l, s);
  spe__thread_exec_flush(f->tx);
}

static int withdraw(struct fx *f, struct slot *s, int64_t *started_ms) {
  f->in_call = 1;
  int rc = spe__thread_exec_withdraw(f->tx, s->run, started_ms);
  f->in_call = 0;
  return rc;
}

static void signal_run(struct fx *f, struct slot *s, const char *kind) {
  f->in_call = 1;
  spe__thread_exec_signal(f->tx, s->run, SIGTERM, kind);
  f->in_call = 0;
}

/* Poll until `s` is done, failing after 20 s. */
static void wait_for(struct fx *f, struct slot *s) { xu_await_done(&f->lp, &s->done, 20000); }

static void slot_clear(struct slot *s) {
  json_decref(s->out.result);
  json_decref(s->out.error);
  memset(s, 0, sizeof *s);
}

static json_t *result_of(struct slot *s) {
  if (!s->out.succeeded) fail_msg("failed: %s", json_dumps(s->out.error, 0));
  assert_null(s->out.error);
  assert_non_null(s->out.result);
  return s->out.result;
}

static const char *err_field(const struct slot *s, const char *key) {
  assert_false(s->out.succeeded);
  assert_null(s->out.result);
  assert_non_null(s->out.error);
  return json_string_value(json_object_get(s->out.error, key));
}

/* ---- results ---- */

static void test_results(void **state) {
  struct fx *f = *state;
  open_exec(f, 2);
  struct slot s = {0};

  int64_t before = spe__now_ms();
  start_fn(f, "three", &s);
  wait_for(f, &s);
  assert_int_equal(json_integer_value(result_of(&s)), 3);
  assert_true(s.out.started_ms >= before);
  assert_true(s.out.finished_ms >= s.out.started_ms);
  assert_true(s.out.finished_ms <= spe__now_ms());
  slot_clear(&s);

  /* 1 + 2, from the results of two upstream tasks. */
  struct task_launch l = launch_fn("sum");
  l.input_json = json_pack("{s:i, s:i}", "one", 1, "two", 2);
  l.release_fn = release_ref; /* the run holds it until then */
  l.release_ctx = l.input_json;
  start(f, &l, &s);
  wait_for(f, &s);
  assert_int_equal(json_integer_value(result_of(&s)), 3);
  slot_clear(&s);

  /* No input at all: the function sees {}. */
  start_fn(f, "sum", &s);
  wait_for(f, &s);
  assert_int_equal(json_integer_value(result_of(&s)), 0);
  slot_clear(&s);

  l = launch_fn("arg_twice");
  json_t *arg = json_pack("{s:i}", "n", 21);
  l.arg = arg;
  l.release_fn = release_ref; /* the run holds it until then */
  l.release_ctx = arg;
  start(f, &l, &s);
  wait_for(f, &s);
  assert_int_equal(json_integer_value(result_of(&s)), 42);
  slot_clear(&s);

  start_fn(f, "arg_twice", &s); /* no arg: JSON null */
  wait_for(f, &s);
  assert_string_equal(json_string_value(result_of(&s)), "no arg");
  slot_clear(&s);

  start_fn(f, "null", &s);
  wait_for(f, &s);
  assert_true(json_is_null(result_of(&s)));
  slot_clear(&s);

  start_fn(f, "hello", &s);
  wait_for(f, &s);
  assert_string_equal(json_string_value(result_of(&s)), "hello, world");
  slot_clear(&s);

  l = launch_fn("who");
  l.attempt = 3;
  start(f, &l, &s);
  wait_for(f, &s);
  json_t *want = json_pack("{s:s, s:s, s:s, s:i}", "job_id", "01JTESTJOBID0000000000000A",
                           "job_name", "testjob", "task", "t", "attempt", 3);
  assert_true(json_equal(result_of(&s), want));
  json_decref(want);
  slot_clear(&s);
  assert_int_equal(spe__thread_exec_running(f->tx), 0);
}

static void test_fail(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct slot s = {0};
  start_fn(f, "fail", &s);
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_string_equal(err_field(&s, "message"), "cannot divide 1 by 0");
  slot_clear(&s);

  start_fn(f, "fail_quiet", &s);
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "error");
  assert_string_equal(err_field(&s, "message"), "the function reported a failure");
  slot_clear(&s);
}

static void test_unknown_function(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct task_launch l = launch_fn("no_such_function");
  struct task_outcome failed = {0};
  struct func_run *run = (struct func_run *)&l; /* must be cleared */
  f->in_call = 1;
  int rc = spe__thread_exec_start(f->tx, &l, NULL, &run, &failed);
  f->in_call = 0;
  assert_int_equal(rc, SPE_EINVAL);
  assert_null(run);
  assert_false(failed.succeeded);
  assert_string_equal(json_string_value(json_object_get(failed.error, "kind")), "error");
  const char *msg = json_string_value(json_object_get(failed.error, "message"));
  assert_non_null(strstr(msg, "\"no_such_function\""));
  json_decref(failed.error);
  assert_int_equal(spe__thread_exec_running(f->tx), 0);
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_int_equal(f->ndone, 0); /* nothing reported for a start that failed */
}

/* ---- soft timeouts and cancels ---- */

static void test_timeout(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct slot s = {0}, after = {0};
  struct task_launch l = launch_fn("until_cancelled");
  l.timeout_ms = 200;
  int64_t t0 = spe__mono_ms();
  start(f, &l, &s);
  wait_for(f, &s);
  int64_t took = spe__mono_ms() - t0;
  assert_string_equal(err_field(&s, "kind"), "timeout");
  assert_string_equal(err_field(&s, "message"), "ran past 200 ms");
  assert_true(took >= 200);
  assert_true(took < 1500);
  /* Reported while the function still runs: it is held at the gate. */
  assert_int_equal(gate_get(&gate.returned), 0);
  assert_int_equal(spe__thread_exec_running(f->tx), 0);

  /* Once it returns, its late result is dropped: the next call on the same
   * thread comes back after it, and nothing else is reported. */
  gate_await(&gate.saw_cancel, 1);
  gate_open();
  start_fn(f, "three", &after);
  wait_for(f, &after);
  assert_int_equal(json_integer_value(result_of(&after)), 3);
  assert_int_equal(gate_get(&gate.returned), 1);
  assert_int_equal(f->ndone, 2);
  slot_clear(&s);
  slot_clear(&after);
}

/* A timeout counts from the call, not from the start request: a run queued
 * behind a busy thread is not timed out for waiting. */
static void test_timeout_counts_from_the_call(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct slot busy = {0}, queued = {0};
  start_fn(f, "until_cancelled", &busy);
  struct task_launch l = launch_fn("three");
  l.timeout_ms = 50;
  start(f, &l, &queued);
  gate_await(&gate.entered, 1);
  /* Let the queued run's timer pass its due time at least once. */
  int64_t until = spe__mono_ms() + 120;
  while (spe__mono_ms() < until) assert_true(spe__loop_poll(&f->lp, 20) >= 0);
  assert_false(queued.done);
  signal_run(f, &busy, "cancelled");
  wait_for(f, &busy);
  gate_open();
  wait_for(f, &queued);
  assert_int_equal(json_integer_value(result_of(&queued)), 3);
  slot_clear(&busy);
  slot_clear(&queued);
}

static void test_cancel_running(void **state) {
  struct fx *f = *state;
  open_exec(f, 2);
  struct slot a = {0}, b = {0};
  start_fn(f, "until_cancelled", &a);
  start_fn(f, "until_cancelled", &b);
  gate_await(&gate.entered, 2);

  signal_run(f, &a, "cancelled");
  signal_run(f, &b, NULL);
  signal_run(f, &b, "cancelled"); /* twice: harmless */
  assert_false(a.done); /* never from inside the call */
  wait_for(f, &a);
  wait_for(f, &b);
  assert_string_equal(err_field(&a, "kind"), "cancelled");
  assert_string_equal(err_field(&a, "message"), "cancelled");
  /* Without a kind: given up all the same (a thread cannot be interrupted). */
  assert_string_equal(err_field(&b, "kind"), "cancelled");
  /* Both reported before their functions returned; both see the cancel. */
  assert_int_equal(gate_get(&gate.returned), 0);
  gate_await(&gate.saw_cancel, 2);
  assert_int_equal(spe__thread_exec_running(f->tx), 0);
  gate_open();
  slot_clear(&a);
  slot_clear(&b);
}

static void test_cancel_queued(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct slot busy = {0}, queued = {0}, after = {0};
  start_fn(f, "until_cancelled", &busy);
  start_fn(f, "count", &queued);
  gate_await(&gate.entered, 1);
  signal_run(f, &queued, "cancelled");
  wait_for(f, &queued);
  assert_string_equal(err_field(&queued, "kind"), "cancelled");
  assert_false(busy.done);

  signal_run(f, &busy, "cancelled");
  wait_for(f, &busy);
  gate_open();
  start_fn(f, "three", &after);
  wait_for(f, &after);
  assert_int_equal(atomic_load(&ncalls), 0); /* the cancelled run was never called */
  assert_int_equal(f->ndone, 3);
  slot_clear(&busy);
  slot_clear(&queued);
  slot_clear(&after);
}

/* Signalled after its function returned, before the loop saw it: the kind
 * given wins. */
static void test_cancel_after_return(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct slot s = {0};
  start_fn(f, "five", &s);
  while (!atomic_load(&returned_5)) sched_yield();
  signal_run(f, &s, "cancelled");
  wait_for(f, &s);
  assert_string_equal(err_field(&s, "kind"), "cancelled");
  slot_clear(&s);
}

/* ---- threads ---- */

static void run_barrier(struct fx *f, int n) {
  pthread_mutex_lock(&barrier.mu);
  barrier.arrived = 0;
  barrier.need = n;
  pthread_mutex_unlock(&barrier.mu);
  struct slot *s = calloc((size_t)n, sizeof *s);
  assert_non_null(s);
  for (int i = 0; i < n; i++) start_fn(f, "barrier", &s[i]);
  for (int i = 0; i < n; i++) wait_for(f, &s[i]);
  for (int i = 0; i < n; i++) {
    assert_true(json_is_true(result_of(&s[i])));
    slot_clear(&s[i]);
  }
  free(s);
}

static void test_concurrent(void **state) {
  struct fx *f = *state;
  open_exec(f, 4);
  run_barrier(f, 4);
  run_barrier(f, 4); /* the same threads again */
}

static void test_unbound_is_per_cpu(void **state) {
  struct fx *f = *state;
  open_exec(f, UINT32_MAX);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  run_barrier(f, cpus > 0 ? (int)cpus : 1);
}

static void test_workers_bound(void **state) {
  struct fx *f = *state;
  open_exec(f, 2);
  atomic_store(&now_running, 0);
  atomic_store(&most_running, 0);
  struct slot s[8] = {{0}};
  for (int i = 0; i < 8; i++) start_fn(f, "overlap", &s[i]);
  assert_int_equal(spe__thread_exec_running(f->tx), 8);
  for (int i = 0; i < 8; i++) wait_for(f, &s[i]);
  for (int i = 0; i < 8; i++) {
    assert_true(json_integer_value(result_of(&s[i])) <= 2);
    slot_clear(&s[i]);
  }
  assert_true(atomic_load(&most_running) <= 2);
}

/* A long call holds one thread: calls started meanwhile run on the other,
 * whether it is new, spinning or asleep, and never wait for the long one. */
static void test_runs_beside_a_long_call(void **state) {
  struct fx *f = *state;
  open_exec(f, 2);
  struct slot long_call = {0};
  start_fn(f, "until_cancelled", &long_call);
  gate_await(&gate.entered, 1);
  for (int i = 0; i < 5; i++) {
    struct slot s = {0};
    start_fn(f, "three", &s);
    wait_for(f, &s);
    assert_int_equal(json_integer_value(result_of(&s)), 3);
    slot_clear(&s);
    if (i == 2) {
      /* Long enough for the other thread to stop spinning and sleep. */
      struct timespec ts = {0, 5 * 1000000};
      nanosleep(&ts, NULL);
    }
  }
  assert_false(long_call.done);
  signal_run(f, &long_call, "cancelled");
  wait_for(f, &long_call);
  gate_open();
  slot_clear(&long_call);
}

/* Many calls, some cancelled: each reported exactly once (on_done checks),
 * with the right outcome. */
static void test_many_exactly_once(void **state) {
  struct fx *f = *state;
  open_exec(f, 3);
  enum { N = 6000, IN_FLIGHT = 64 };
  struct slot *s = calloc(N, sizeof *s);
  assert_non_null(s);
  json_t *input = json_pack("{s:i, s:i}", "a", 1, "b", 2);
  int started = 0, finished = 0;
  int64_t deadline = spe__mono_ms() + 60000;
  while (finished < N) {
    while (started < N && started - finished < IN_FLIGHT) {
      struct task_launch l = launch_fn(started % 2 ? "sum" : "three");
      l.input_json = json_incref(input); /* a cancelled call may outlive the loop */
      l.release_fn = release_ref;
      l.release_ctx = l.input_json;
      start(f, &l, &s[started]);
      if (started % 13 == 0) signal_run(f, &s[started], "cancelled");
      started++;
    }
    assert_true(spe__loop_poll(&f->lp, 200) >= 0);
    assert_true(spe__mono_ms() < deadline);
    finished = f->ndone;
  }
  for (int i = 0; i < N; i++) {
    assert_true(s[i].done);
    if (i % 13 == 0) assert_string_equal(err_field(&s[i], "kind"), "cancelled");
    else assert_int_equal(json_integer_value(result_of(&s[i])), 3);
    slot_clear(&s[i]);
  }
  assert_int_equal(spe__thread_exec_running(f->tx), 0);
  json_decref(input);
  free(s);
}

/* ---- runs queued ahead of the slots ---- */

/* Three threads but one slot: calls queued ahead never overlap, each start is
 * reported (before its outcome, or with it) with the call's own times, and
 * every slot is back at the end. */
static void test_ahead_bounded_by_slots(void **state) {
  struct fx *f = *state;
  open_exec_slots(f, 3, 1);
  atomic_store(&now_running, 0);
  atomic_store(&most_running, 0);
  struct slot s[8] = {{0}};
  for (int i = 0; i < 8; i++) start_ahead(f, "overlap", &s[i]);
  for (int i = 0; i < 8; i++) wait_for(f, &s[i]);
  for (int i = 0; i < 8; i++) {
    assert_true(start_known(&s[i]));
    if (s[i].started) assert_int_equal(s[i].out.started_ms, s[i].started_ms);
    assert_true(s[i].out.finished_ms >= s[i].out.started_ms);
    assert_int_equal(json_integer_value(result_of(&s[i])), 1);
    slot_clear(&s[i]);
  }
  assert_int_equal(atomic_load(&most_running), 1);
  assert_int_equal(atomic_load(&f->slots), 1);
}

/* A run queued while the only slot is busy is not called: withdrawn, it is
 * never called nor reported. One whose call has begun cannot be withdrawn:
 * its start comes back instead (and no started callback after that). */
static void test_withdraw(void **state) {
  struct fx *f = *state;
  open_exec_slots(f, 2, 1);
  struct slot busy = {0}, waiting = {0};
  start_ahead(f, "until_cancelled", &busy);
  gate_await(&gate.entered, 1);
  start_ahead(f, "count", &waiting);
  int64_t started = -1;
  assert_int_equal(withdraw(f, &waiting, &started), 1);
  assert_int_equal(started, 0);
  assert_int_equal(spe__thread_exec_running(f->tx), 1);

  int64_t before = spe__now_ms();
  assert_int_equal(withdraw(f, &busy, &started), 0);
  assert_true(started > 0 && started <= before);
  signal_run(f, &busy, "cancelled");
  wait_for(f, &busy);
  assert_false(busy.started); /* the caller noted it */
  assert_string_equal(err_field(&busy, "kind"), "cancelled");
  gate_open();
  /* The busy call returns and gives its slot back; the withdrawn run then
   * leaves the queue uncalled. Awaited: the slot comes back. */
  int64_t deadline = spe__mono_ms() + 10000;
  while (atomic_load(&f->slots) != 1) {
    assert_true(spe__mono_ms() < deadline);
    assert_true(spe__loop_poll(&f->lp, 10) >= 0);
  }
  spe__thread_exec_free(f->tx); /* waits for the threads: the queue is gone */
  f->tx = NULL;
  assert_int_equal(atomic_load(&ncalls), 0);
  assert_false(waiting.done);
  slot_clear(&busy);
}

/* Every slot held elsewhere (the engine's commands): a run queued ahead waits;
 * the slot given back with spe__thread_exec_slot_freed() lets it run. */
static void test_ahead_waits_for_a_freed_slot(void **state) {
  struct fx *f = *state;
  open_exec_slots(f, 2, 0);
  struct slot s = {0};
  start_ahead(f, "five", &s);
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_false(s.started);
  atomic_fetch_add(&f->slots, 1);
  spe__thread_exec_slot_freed(f->tx);
  wait_for(f, &s);
  assert_true(start_known(&s));
  assert_int_equal(json_integer_value(result_of(&s)), 5);
  slot_clear(&s);
  assert_int_equal(atomic_load(&f->slots), 1);
}

/* A run that comes with the slot its caller took (a recovered job's) goes
 * before the runs queued ahead, which wait for a slot: on one thread, behind
 * them, it would never run. Its slot is given back when it returns. */
static void test_slot_holder_goes_first(void **state) {
  struct fx *f = *state;
  open_exec_slots(f, 1, 1);
  struct slot ahead = {0}, holder = {0};
  assert_int_equal(spe__slot_take(&f->slots), 1); /* the caller's, for `holder` */
  start_ahead(f, "five", &ahead);
  start_fn(f, "three", &holder);
  wait_for(f, &holder);
  wait_for(f, &ahead);
  assert_false(holder.started); /* not queued ahead: its start is the caller's */
  assert_int_equal(json_integer_value(result_of(&holder)), 3);
  assert_int_equal(json_integer_value(result_of(&ahead)), 5);
  assert_true(start_known(&ahead));
  assert_true(holder.out.finished_ms <= ahead.out.started_ms);
  slot_clear(&holder);
  slot_clear(&ahead);
  assert_int_equal(atomic_load(&f->slots), 1);
}

/* A loop sleeping "until dry" (the engine while a commit is in flight) is not
 * woken by a call that begins while more wait in the queue; it is woken once
 * the last one is taken, and then learns everything in order. */
static void test_sleep_until_dry(void **state) {
  struct fx *f = *state;
  open_exec_slots(f, 1, 0); /* both are queued before either can begin */
  assert_int_equal(spe__thread_exec_sleep_begin(f->tx, 1), 0); /* nothing yet */
  struct slot first = {0}, second = {0};
  start_ahead(f, "until_cancelled", &first);
  start_ahead(f, "five", &second);
  atomic_fetch_add(&f->slots, 1);
  spe__thread_exec_slot_freed(f->tx);
  gate_await(&gate.entered, 1);
  /* `first` has begun, `second` waits: its start was not announced. */
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_false(first.started);
  assert_int_equal(spe__thread_exec_sleep_begin(f->tx, 1), 0); /* notes, but runs wait */
  assert_int_equal(spe__thread_exec_sleep_begin(f->tx, 0), 1); /* would wake a plain sleep */
  assert_int_equal(spe__thread_exec_sleep_begin(f->tx, 1), 0);
  signal_run(f, &first, "cancelled");
  wait_for(f, &first); /* the early report comes from the loop itself */
  assert_true(start_known(&first));
  gate_open();
  /* `first` returns, `second` is taken - the queue is dry: that wakes it. */
  wait_for(f, &second);
  assert_true(start_known(&second));
  assert_int_equal(json_integer_value(result_of(&second)), 5);
  slot_clear(&first);
  slot_clear(&second);
}

/* Two threads, 2 slots, the loop awake (as the engine has it while it works
 * on a round): a call that runs until cancelled, begun, and a quick one
 * queued beside it. */
static void beside_a_long_call(struct fx *f, struct slot *long_call, struct slot *quick) {
  open_exec_slots(f, 2, 2);
  spe__thread_exec_sleep_end(f->tx);
  start_ahead(f, "until_cancelled", long_call);
  gate_await(&gate.entered, 1);
  start_ahead(f, "five", quick);
}

/* As the engine drives the pool: while the loop is awake, a run queued beside
 * a thread in a call is left to that thread (with tiny calls a second thread
 * would only take the loop's CPU). If the queue stays non-empty - the call is
 * long - a round of the loop brings another thread within a few ms. */
static void test_awake_loop_brings_a_thread_for_a_stall(void **state) {
  struct fx *f = *state;
  struct slot long_call = {0}, quick = {0};
  beside_a_long_call(f, &long_call, &quick); /* the loop stays awake: rounds below */
  int64_t until = spe__mono_ms() + 10000;
  while (!quick.done && spe__mono_ms() < until) {
    assert_true(spe__loop_poll(&f->lp, 1) >= 0);
    spe__thread_exec_poll(f->tx);
  }
  assert_true(quick.done);
  assert_int_equal(json_integer_value(result_of(&quick)), 5);
  assert_false(long_call.done);
  signal_run(f, &long_call, "cancelled");
  spe__thread_exec_poll(f->tx);
  assert_true(long_call.done);
  gate_open();
  slot_clear(&long_call);
  slot_clear(&quick);
}

/* The loop going to sleep brings every thread the queued runs need. */
static void test_sleeping_loop_brings_threads(void **state) {
  struct fx *f = *state;
  struct slot long_call = {0}, quick = {0};
  beside_a_long_call(f, &long_call, &quick);
  spe__thread_exec_poll(f->tx); /* the long call's start */
  assert_true(long_call.started);
  assert_int_equal(spe__thread_exec_sleep_begin(f->tx, 0), 0);
  wait_for(f, &quick); /* a sleeping loop: the notes wake it */
  assert_int_equal(json_integer_value(result_of(&quick)), 5);
  signal_run(f, &long_call, "cancelled");
  wait_for(f, &long_call);
  gate_open();
  slot_clear(&long_call);
  slot_clear(&quick);
}

/* ---- freeing the executor ---- */

/* Queued runs are dropped uncalled, a running call is told it is cancelled and
 * waited for, an early report not yet made is not made: nothing is reported. */
static void test_free_with_runs(void **state) {
  struct fx *f = *state;
  open_exec(f, 1);
  struct slot running = {0}, queued[3] = {{0}};
  start_fn(f, "spin", &running);
  for (int i = 0; i < 3; i++) start_fn(f, "count", &queued[i]);
  gate_await(&gate.entered, 1);
  signal_run(f, &queued[1], "cancelled");
  spe__thread_exec_free(f->tx);
  f->tx = NULL;
  assert_int_equal(gate_get(&gate.returned), 1); /* waited for */
  assert_int_equal(atomic_load(&ncalls), 0);
  assert_true(spe__loop_poll(&f->lp, 0) >= 0);
  assert_int_equal(f->ndone, 0);
}

static void *open_gate_soon(void *arg) {
  /* Nothing to await here: the point is that free blocks until this runs. */
  struct timespec ts = {0, 20 * 1000000};
  nanosleep(&ts, NULL);
  gate_open();
  return NULL;
}

/* A call reported early (timed out) is still running when the executor is
 * freed: free waits for it to return, and drops its result. */
static void test_free_waits_for_late_calls(void **state) {
  struct fx *f = *state;
  open_exec(f, 2);
  struct slot late = {0}, done = {0};
  struct task_launch l = launch_fn("until_cancelled");
  l.timeout_ms = 10;
  start(f, &l, &late);
  start_fn(f, "five", &done);
  wait_for(f, &late);
  wait_for(f, &done);
  assert_string_equal(err_field(&late, "kind"), "timeout");
  gate_await(&gate.saw_cancel, 1);
  pthread_t opener;
  assert_int_equal(pthread_create(&opener, NULL, open_gate_soon, NULL), 0);
  spe__thread_exec_free(f->tx);
  f->tx = NULL;
  assert_int_equal(gate_get(&gate.returned), 1);
  pthread_join(opener, NULL);
  slot_clear(&late);
  slot_clear(&done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_function, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_counts_from_the_call, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_running, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_after_return, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unbound_is_per_cpu, setup, teardown),
      cmocka_unit_test_setup_teardown(test_workers_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runs_beside_a_long_call, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_exactly_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ahead_bounded_by_slots, setup, teardown),
      cmocka_unit_test_setup_teardown(test_withdraw, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ahead_waits_for_a_freed_slot, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slot_holder_goes_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sleep_until_dry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_awake_loop_brings_a_thread_for_a_stall, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_sleeping_loop_brings_threads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_with_runs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_free_waits_for_late_calls, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
