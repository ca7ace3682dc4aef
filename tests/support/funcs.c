#include "support/funcs.h"

#include "support/api_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static json_int_t numbers_in(const json_t *v) {
  if (json_is_integer(v)) return json_integer_value(v);
  json_int_t n = 0;
  size_t i;
  json_t *x;
  if (json_is_array(v)) json_array_foreach(v, i, x) n += numbers_in(x);
  return n;
}

static json_t *fn_sum(void *ctx, spe_call *call) {
  (void)ctx;
  json_int_t n = numbers_in(spe_call_arg(call));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)spe_call_input(call), k, v) n += numbers_in(v);
  return json_integer(n);
}

static json_t *fn_div(void *ctx, spe_call *call) {
  (void)ctx;
  const json_t *arg = spe_call_arg(call);
  json_int_t a = json_integer_value(json_array_get(arg, 0));
  json_int_t b = json_integer_value(json_array_get(arg, 1));
  if (b == 0) return spe_call_fail(call, "division by zero: %lld/0", (long long)a);
  return json_integer(a / b);
}

static json_t *fn_fail(void *ctx, spe_call *call) {
  (void)ctx;
  return spe_call_fail(call, "failed on purpose");
}

static json_t *fn_kill_self(void *ctx, spe_call *call) {
  (void)ctx;
  (void)call;
  raise(SIGKILL);
  return NULL;
}

static json_t *fn_abort(void *ctx, spe_call *call) {
  (void)ctx;
  (void)call;
  abort();
}

static json_t *fn_exit1(void *ctx, spe_call *call) {
  (void)ctx;
  (void)call;
  exit(1);
}

static json_t *fn_loop(void *ctx, spe_call *call) {
  (void)ctx;
  /* Short naps rather than a hot spin: the machine running the tests is small,
   * and the loop is endless all the same. */
  while (!spe_call_cancelled(call)) sleep_ms(1);
  return json_string("stopped");
}

static json_t *fn_sleep(void *ctx, spe_call *call) {
  (void)ctx;
  sleep_ms((long)json_integer_value(spe_call_arg(call)));
  return json_deep_copy(spe_call_arg(call));
}

static json_t *fn_context(void *ctx, spe_call *call) {
  (void)ctx;
  return json_pack("{s:s, s:s, s:s, s:i}", "job_id", spe_call_job_id(call), "job_name",
                   spe_call_job_name(call), "task", spe_call_task(call), "attempt",
                   (int)spe_call_attempt(call));
}

static json_t *fn_flaky(void *ctx, spe_call *call) {
  if (spe_call_attempt(call) == 1) return spe_call_fail(call, "attempt 1 fails");
  return fn_context(ctx, call);
}

static json_t *fn_input(void *ctx, spe_call *call) {
  (void)ctx;
  return json_deep_copy(spe_call_input(call));
}

/* late_input: the gate it waits on once cancelled, and what it read. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int released;
  char *read;
} late = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};

void tf_late_reset(void) {
  pthread_mutex_lock(&late.mu);
  late.released = 0;
  free(late.read);
  late.read = NULL;
  pthread_mutex_unlock(&late.mu);
}

void tf_late_release(void) {
  pthread_mutex_lock(&late.mu);
  late.released = 1;
  pthread_cond_broadcast(&late.cv);
  pthread_mutex_unlock(&late.mu);
}

char *tf_late_read(void) {
  pthread_mutex_lock(&late.mu);
  char *s = late.read ? strdup(late.read) : NULL;
  pthread_mutex_unlock(&late.mu);
  return s;
}

static json_t *fn_late_input(void *ctx, spe_call *call) {
  (void)ctx;
  while (!spe_call_cancelled(call)) sleep_ms(1);
  pthread_mutex_lock(&late.mu);
  while (!late.released) pthread_cond_wait(&late.cv, &late.mu);
  pthread_mutex_unlock(&late.mu);
  char *text = json_dumps(spe_call_input(call), JSON_COMPACT | JSON_SORT_KEYS);
  pthread_mutex_lock(&late.mu);
  free(late.read);
  late.read = text;
  pthread_mutex_unlock(&late.mu);
  return json_string("late");
}

static json_t *fn_null(void *ctx, spe_call *call) {
  (void)ctx;
  (void)call;
  return NULL;
}

static const struct {
  const char *name;
  spe_function fn;
} functions[] = {
    {"sum", fn_sum},         {"div", fn_div},         {"fail", fn_fail},
    {"kill_self", fn_kill_self}, {"abort", fn_abort}, {"exit1", fn_exit1},
    {"loop", fn_loop},       {"sleep", fn_sleep},     {"context", fn_context},
    {"flaky", fn_flaky},     {"input", fn_input},     {"null", fn_null},
    {"late_input", fn_late_input},
};

int tf_register(spe_registry *reg, const char *name) {
  for (size_t i = 0; i < sizeof functions / sizeof *functions; i++)
    if (strcmp(functions[i].name, name) == 0)
      return spe_register(reg, name, functions[i].fn, NULL, NULL);
  return -1;
}

spe_registry *tf_registry(void) {
  spe_registry *reg = NULL;
  assert_int_equal(spe_registry_new(&reg), 0);
  for (size_t i = 0; i < sizeof functions / sizeof *functions; i++)
    assert_int_equal(tf_register(reg, functions[i].name), 0);
  return reg;
}

void tf_open(struct harness *h, int workers, int isolation) {
  spe_registry *reg = tf_registry();
  h_open_funcs(h, workers, isolation, reg);
  spe_registry_free(reg); /* spe_open() copied it */
}
