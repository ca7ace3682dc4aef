/* Misuse of the public API: every wrong call returns an error code (with a
 * message where the call takes one), never crashes, never aborts — NULLs
 * everywhere, unknown ids, wrong states, calls after shutdown, bad registrations
 * and options, destroy functions given NULL. */
#include "support/api_util.h"
#include "support/funcs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define UNKNOWN_ID "01ARZ3NDEKTSV4RRFFQ69G5FAV" /* a well-formed ULID nobody made */

static const char *JOB = "{\"name\":\"j\",\"tasks\":[{\"name\":\"t\",\"exec\":\"sum\",\"arg\":3}]}";

/* rc is `want` and *msg a message (then freed). */
static void expect_msg(int rc, int want, char **msg, const char *what) {
  if (rc != want) fail_msg("%s: %s, want %s", what, spe_err_name(rc), spe_err_name(want));
  if (*msg == NULL) fail_msg("%s: no message", what);
  free(*msg);
  *msg = NULL;
}

static void null_arguments(void **state) {
  (void)state;
  char *msg = NULL;
  expect_msg(spe_open(NULL, NULL, &msg), SPE_EINVAL, &msg, "spe_open(NULL out)");
  spe_options_init(NULL);

  struct harness h;
  tf_open(&h, 2, SPE_ISOLATION_PROCESS);
  spe_executor *ex = h.ex;
  char id[SPE_ID_SIZE];
  size_t len = strlen(JOB);
  json_t *desc = json_loads(JOB, 0, NULL);
  json_t *out = (json_t *)1;
  spe_subscription *sub = (spe_subscription *)1;
  spe_queue *q = (spe_queue *)1;

  /* No executor. */
  expect_msg(spe_submit_text(NULL, JOB, len, id, &msg), SPE_EINVAL, &msg, "submit_text");
  expect_msg(spe_submit_json(NULL, desc, id, &msg), SPE_EINVAL, &msg, "submit_json");
  expect_msg(spe_submit_ex(NULL, JOB, len, 0, id, NULL, &msg), SPE_EINVAL, &msg, "submit_ex");
  expect_msg(spe_start(NULL, UNKNOWN_ID, &msg), SPE_EINVAL, &msg, "start");
  expect_msg(spe_cancel(NULL, UNKNOWN_ID, &msg), SPE_EINVAL, &msg, "cancel");
  assert_int_equal(spe_wait(NULL, UNKNOWN_ID, 0), SPE_EINVAL);
  expect_msg(spe_job_get(NULL, UNKNOWN_ID, &out, &msg), SPE_EINVAL, &msg, "job_get");
  assert_null(out);
  assert_int_equal(spe_subscribe(NULL, NULL, h_record, &h.rec, &sub), SPE_EINVAL);
  assert_null(sub);
  assert_int_equal(spe_queue_open(NULL, NULL, &q), SPE_EINVAL);
  assert_null(q);
  assert_int_equal(spe_shutdown(NULL), SPE_EINVAL);

  /* No id. */
  expect_msg(spe_start(ex, NULL, &msg), SPE_EINVAL, &msg, "start(NULL id)");
  expect_msg(spe_cancel(ex, NULL, &msg), SPE_EINVAL, &msg, "cancel(NULL id)");
  assert_int_equal(spe_wait(ex, NULL, 0), SPE_EINVAL);
  expect_msg(spe_job_get(ex, NULL, &out, &msg), SPE_EINVAL, &msg, "job_get(NULL id)");

  /* No text: NULL with a length is a bad argument; NULL with length 0 is the
   * empty text, an invalid job. No description. */
  expect_msg(spe_submit_text(ex, NULL, 5, id, &msg), SPE_EINVAL, &msg, "submit_text(NULL, 5)");
  expect_msg(spe_submit_text(ex, NULL, 0, id, &msg), SPE_EJOB, &msg, "submit_text(NULL, 0)");
  expect_msg(spe_submit_ex(ex, NULL, 5, 0, id, NULL, &msg), SPE_EINVAL, &msg, "submit_ex(NULL)");
  expect_msg(spe_submit_json(ex, NULL, id, &msg), SPE_EINVAL, &msg, "submit_json(NULL)");

  /* No place for the answer. */
  expect_msg(spe_submit_text(ex, JOB, len, NULL, &msg), SPE_EINVAL, &msg, "submit_text(NULL id)");
  expect_msg(spe_submit_json(ex, desc, NULL, &msg), SPE_EINVAL, &msg, "submit_json(NULL id)");
  expect_msg(spe_submit_ex(ex, JOB, len, SPE_SUBMIT_RESUME, NULL, NULL, &msg), SPE_EINVAL, &msg,
             "submit_ex(NULL id)");
  expect_msg(spe_submit_ex(ex, JOB, len, 0x80, id, NULL, &msg), SPE_EINVAL, &msg,
             "submit_ex(unknown flag)");
  expect_msg(spe_job_get(ex, UNKNOWN_ID, NULL, &msg), SPE_EINVAL, &msg, "job_get(NULL out)");
  assert_int_equal(spe_subscribe(ex, NULL, h_record, &h.rec, NULL), SPE_EINVAL);
  sub = (spe_subscription *)1;
  assert_int_equal(spe_subscribe(ex, NULL, NULL, NULL, &sub), SPE_EINVAL);
  assert_null(sub);
  assert_int_equal(spe_queue_open(ex, NULL, NULL), SPE_EINVAL);
  assert_int_equal(spe_registry_new(NULL), SPE_EINVAL);
  json_t *ev = (json_t *)1;
  assert_int_equal(spe_queue_next(NULL, 0, &ev), SPE_EINVAL);
  assert_int_equal(spe_queue_open(ex, NULL, &q), 0);
  assert_int_equal(spe_queue_next(q, 0, NULL), SPE_EINVAL);
  spe_queue_close(q);

  /* Nothing of the above was stored: the next job is the only one published. */
  json_t *job = h_run(&h, JOB);
  assert_int_equal(json_integer_value(h_task_result(job, "t")), 3);
  assert_int_equal(h_await_events(&h, NULL, "job_finished", 1, 5000), 1);
  assert_int_equal(h_count_events(&h, NULL, "job_submitted", NULL), 1);
  json_decref(job);
  json_decref(desc);
  h_close(&h);
}

static void unknown_ids_and_wrong_states(void **state) {
  (void)state;
  struct harness h;
  tf_open(&h, 2, SPE_ISOLATION_PROCESS);
  char *msg = NULL;
  json_t *out = NULL;
  const char *unknown[] = {UNKNOWN_ID, "nope", ""};
  for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
    expect_msg(spe_start(h.ex, unknown[i], &msg), SPE_ENOJOB, &msg, "start(unknown)");
    expect_msg(spe_cancel(h.ex, unknown[i], &msg), SPE_ENOJOB, &msg, "cancel(unknown)");
    assert_int_equal(spe_wait(h.ex, unknown[i], 0), SPE_ENOJOB);
    assert_int_equal(spe_wait(h.ex, unknown[i], -1), SPE_ENOJOB);
    expect_msg(spe_job_get(h.ex, unknown[i], &out, &msg), SPE_ENOJOB, &msg, "job_get(unknown)");
    assert_null(out);
  }

  char id[SPE_ID_SIZE];
  assert_int_equal(spe_submit_text(h.ex, JOB, strlen(JOB), id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 10), SPE_ETIMEDOUT); /* submitted, not started */
  assert_int_equal(spe_start(h.ex, id, NULL), 0);
  expect_msg(spe_start(h.ex, id, &msg), SPE_ESTATE, &msg, "start twice");
  assert_int_equal(spe_wait(h.ex, id, 10000), 0);
  expect_msg(spe_start(h.ex, id, &msg), SPE_ESTATE, &msg, "start a finished job");
  expect_msg(spe_cancel(h.ex, id, &msg), SPE_ESTATE, &msg, "cancel a finished job");
  assert_int_equal(spe_job_get(h.ex, id, &out, NULL), 0);
  assert_string_equal(h_job_status(out), "succeeded");
  json_decref(out);

  /* A cancelled job cannot be started or cancelled again. */
  assert_int_equal(spe_submit_text(h.ex, JOB, strlen(JOB), id, NULL), 0);
  assert_int_equal(spe_cancel(h.ex, id, NULL), 0);
  assert_int_equal(spe_wait(h.ex, id, 5000), 0);
  expect_msg(spe_start(h.ex, id, &msg), SPE_ESTATE, &msg, "start a cancelled job");
  expect_msg(spe_cancel(h.ex, id, &msg), SPE_ESTATE, &msg, "cancel a cancelled job");
  h_close(&h);
}

static void calls_after_shutdown(void **state) {
  (void)state;
  struct harness h;
  tf_open(&h, 2, SPE_ISOLATION_PROCESS);
  char *msg = NULL;
  char id[SPE_ID_SIZE], later[SPE_ID_SIZE];
  assert_int_equal(spe_submit_text(h.ex, JOB, strlen(JOB), id, NULL), 0);
  assert_int_equal(spe_shutdown(h.ex), 0);
  assert_int_equal(spe_shutdown(h.ex), 0); /* idempotent */
  expect_msg(spe_submit_text(h.ex, JOB, strlen(JOB), later, &msg), SPE_ECLOSED, &msg,
             "submit_text after shutdown");
  json_t *desc = json_loads(JOB, 0, NULL);
  expect_msg(spe_submit_json(h.ex, desc, later, &msg), SPE_ECLOSED, &msg,
             "submit_json after shutdown");
  json_decref(desc);
  expect_msg(spe_submit_ex(h.ex, JOB, strlen(JOB), SPE_SUBMIT_RESUME, later, NULL, &msg),
             SPE_ECLOSED, &msg, "submit_ex after shutdown");
  expect_msg(spe_start(h.ex, id, &msg), SPE_ECLOSED, &msg, "start after shutdown");
  assert_int_equal(spe_wait(h.ex, id, 1000), SPE_ECLOSED);
  h_close(&h);
}

static json_t *noop(void *ctx, spe_call *call) {
  (void)ctx;
  (void)call;
  return NULL;
}

static void bad_registrations(void **state) {
  (void)state;
  spe_registry *reg = NULL;
  assert_int_equal(spe_registry_new(&reg), 0);
  char *msg = NULL;
  expect_msg(spe_register(NULL, "f", noop, NULL, &msg), SPE_EINVAL, &msg, "register(NULL reg)");
  expect_msg(spe_register(reg, NULL, noop, NULL, &msg), SPE_EINVAL, &msg, "register(NULL name)");
  expect_msg(spe_register(reg, "f", NULL, NULL, &msg), SPE_EINVAL, &msg, "register(NULL fn)");
  expect_msg(spe_register(reg, "", noop, NULL, &msg), SPE_EINVAL, &msg, "register(\"\")");
  assert_int_equal(spe_register(reg, "f", noop, NULL, &msg), 0);
  assert_null(msg);
  assert_int_equal(spe_register(reg, "f", noop, NULL, &msg), SPE_EINVAL);
  assert_non_null(msg);
  if (strstr(msg, "\"f\"") == NULL) fail_msg("duplicate: message \"%s\"", msg);
  free(msg);
  msg = NULL;
  /* Names up to 1,024 bytes. */
  char name[1026];
  memset(name, 'n', 1025);
  name[1025] = '\0';
  expect_msg(spe_register(reg, name, noop, NULL, &msg), SPE_EINVAL, &msg, "register(1025 bytes)");
  name[1024] = '\0';
  assert_int_equal(spe_register(reg, name, noop, NULL, NULL), 0);
  spe_registry_free(reg);
}

static void bad_options(void **state) {
  (void)state;
  spe_options o;
  const int isolations[] = {2, -1, 100};
  for (size_t i = 0; i < sizeof isolations / sizeof *isolations; i++) {
    spe_options_init(&o);
    o.isolation = isolations[i];
    spe_executor *ex = (spe_executor *)1;
    char *msg = NULL;
    int rc = spe_open(&ex, &o, &msg);
    if (rc != SPE_EINVAL) {
      if (rc == 0) spe_close(ex);
      fail_msg("isolation %d: %s, want SPE_EINVAL", isolations[i], spe_err_name(rc));
    }
    assert_null(ex);
    assert_non_null(msg);
    if (strstr(msg, "isolation") == NULL) fail_msg("message \"%s\"", msg);
    free(msg);
  }
}

/* An executor without functions refuses every exec task, naming it. */
static void exec_without_registry(void **state) {
  (void)state;
  spe_executor *ex = NULL;
  assert_int_equal(spe_open(&ex, NULL, NULL), 0);
  char id[SPE_ID_SIZE];
  char *msg = NULL;
  assert_int_equal(spe_submit_text(ex, JOB, strlen(JOB), id, &msg), SPE_EJOB);
  if (strstr(msg, "\"sum\"") == NULL) fail_msg("message \"%s\"", msg);
  free(msg);
  spe_close(ex);
}

static void null_destroys_and_calls(void **state) {
  (void)state;
  spe_close(NULL);
  spe_registry_free(NULL);
  spe_unsubscribe(NULL);
  spe_queue_close(NULL);
  /* The call accessors given no call answer nothing. */
  assert_null(spe_call_input(NULL));
  assert_null(spe_call_arg(NULL));
  assert_null(spe_call_job_id(NULL));
  assert_null(spe_call_job_name(NULL));
  assert_null(spe_call_task(NULL));
  assert_int_equal(spe_call_attempt(NULL), 0);
  assert_int_equal(spe_call_cancelled(NULL), 0);
  assert_null(spe_call_fail(NULL, "x"));
  assert_string_equal(spe_strerror(12345), "unknown error");
  assert_string_equal(spe_strerror(SPE_ECLOSED), "the executor is closed or shutting down");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(null_arguments),
      cmocka_unit_test(unknown_ids_and_wrong_states),
      cmocka_unit_test(calls_after_shutdown),
      cmocka_unit_test(bad_registrations),
      cmocka_unit_test(bad_options),
      cmocka_unit_test(exec_without_registry),
      cmocka_unit_test(null_destroys_and_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
