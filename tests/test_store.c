/* The store plumbing: opening by URL, the memory store's seq numbering, and the
 * batch a round fills. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spe.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct store *open_ok(const char *url) {
  struct store *st = NULL;
  char *msg = (char *)"untouched";
  assert_int_equal(spe__store_open(&st, url, NULL, &msg), 0);
  assert_null(msg);
  assert_non_null(st);
  return st;
}

static void assert_open_fails(const char *url, int code, const char *want_msg) {
  struct store *st = (struct store *)1;
  char *msg = NULL;
  assert_int_equal(spe__store_open(&st, url, NULL, &msg), code);
  assert_null(st);
  assert_non_null(msg);
  assert_string_equal(msg, want_msg);
  free(msg);
  /* The message is optional. */
  assert_int_equal(spe__store_open(&st, url, NULL, NULL), code);
}

static void test_open_memory(void **state) {
  struct store *st = open_ok("memory:");
  assert_string_equal(st->ops->scheme, "memory");
  spe__store_close(st);
  spe__store_close(NULL);
}

static void test_open_refuses_unknown_urls(void **state) {
  assert_open_fails("foo:bar", SPE_EURL,
                    "unknown state store URL \"foo:bar\" (expected memory: or sqlite:PATH)");
  assert_open_fails("state.db", SPE_EURL,
                    "unknown state store URL \"state.db\" (expected memory: or sqlite:PATH)");
  assert_open_fails("", SPE_EURL,
                    "unknown state store URL \"\" (expected memory: or sqlite:PATH)");
  /* The scheme is matched whole, not as a prefix. */
  assert_open_fails("mem:", SPE_EURL,
                    "unknown state store URL \"mem:\" (expected memory: or sqlite:PATH)");
  assert_open_fails("memoryx:", SPE_EURL,
                    "unknown state store URL \"memoryx:\" (expected memory: or sqlite:PATH)");
  assert_open_fails("memory:x", SPE_EURL,
                    "the memory store takes no path: \"memory:x\" (write memory:)");
  assert_open_fails(NULL, SPE_EURL, "no state store URL");
}

/* The sqlite backend is reached by its URL; its behaviour is test_sqlite_store's. */
static void test_open_sqlite(void **state) {
  assert_open_fails("sqlite:", SPE_EURL, "the sqlite store needs a path: sqlite:PATH");
  const char *tmp = getenv("SPE_TEST_TMP");
  char dir[4096], url[4200];
  snprintf(dir, sizeof dir, "%s/test_store.%ld", tmp ? tmp : "/tmp", (long)getpid());
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir); /* the folder is created */
  struct store *st = open_ok(url);
  assert_string_equal(st->ops->scheme, "sqlite");
  spe__store_close(st);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static json_t *event(const char *type) {
  json_t *e = json_object();
  json_object_set_new(e, "type", json_string(type));
  return e;
}

static json_int_t seq_of(const json_t *e) {
  json_t *v = json_object_get(e, "seq");
  assert_true(json_is_integer(v));
  return json_integer_value(v);
}

static void test_memory_commit_numbers_events_across_batches(void **state) {
  struct store *st = open_ok("memory:");
  struct store_batch b = {0};
  json_t *kept[5];
  for (int i = 0; i < 5; i++) {
    kept[i] = event("task_started");
    json_incref(kept[i]); /* to look at them after the batch is cleared */
  }

  for (int i = 0; i < 3; i++) assert_int_equal(spe__batch_event(&b, kept[i]), 0);
  assert_int_equal(spe__store_commit(st, &b, NULL), 0);
  spe__batch_clear(&b);

  /* A round without events uses no numbers. */
  assert_int_equal(spe__store_commit(st, &b, NULL), 0);

  for (int i = 3; i < 5; i++) assert_int_equal(spe__batch_event(&b, kept[i]), 0);
  assert_int_equal(spe__store_commit(st, &b, NULL), 0);
  spe__batch_free(&b);

  for (int i = 0; i < 5; i++) {
    assert_int_equal(seq_of(kept[i]), i + 1);
    json_decref(kept[i]);
  }
  spe__store_close(st);
}

static void test_each_memory_store_numbers_from_one(void **state) {
  struct store *a = open_ok("memory:"), *b = open_ok("memory:");
  struct store_batch batch = {0};
  json_t *e = event("job_submitted");
  json_incref(e);
  assert_int_equal(spe__batch_event(&batch, e), 0);
  assert_int_equal(spe__store_commit(a, &batch, NULL), 0);
  assert_int_equal(spe__store_commit(a, &batch, NULL), 0);
  assert_int_equal(seq_of(e), 2);
  assert_int_equal(spe__store_commit(b, &batch, NULL), 0);
  assert_int_equal(seq_of(e), 1);
  spe__batch_free(&batch);
  json_decref(e);
  spe__store_close(a);
  spe__store_close(b);
}

static void test_batch_helpers(void **state) {
  struct store_batch b = {0};
  enum { N = 1000 };
  for (uint32_t i = 0; i < N; i++) {
    struct job_rec j = {.id = "J", .name = "job", .status = JOB_RUNNING, .submitted_ms = i};
    struct task_rec t = {.job_id = "J", .index = i, .status = TASK_SUCCEEDED, .blocked_by = -1};
    assert_int_equal(spe__batch_job(&b, &j), 0);
    assert_int_equal(spe__batch_task(&b, &t), 0);
    assert_int_equal(spe__batch_event(&b, event("task_terminated")), 0);
  }
  assert_int_equal(b.njobs, N);
  assert_int_equal(b.ntasks, N);
  assert_int_equal(b.nevents, N);
  for (uint32_t i = 0; i < N; i++) {
    assert_int_equal(b.jobs[i].submitted_ms, i);
    assert_string_equal(b.jobs[i].name, "job");
    assert_int_equal(b.tasks[i].index, i);
    assert_int_equal(b.tasks[i].blocked_by, -1);
    assert_string_equal(json_string_value(json_object_get(b.events[i], "type")),
                        "task_terminated");
  }
  /* Geometric growth: a few reallocations, not one per append. */
  assert_true(b.capjobs >= N && b.capjobs < 2 * N);
  assert_true(b.capevents >= N && b.capevents < 2 * N);

  /* Clear drops the events and keeps the arrays for the next round. */
  json_t *watched = event("job_finished");
  json_incref(watched);
  assert_int_equal(spe__batch_event(&b, watched), 0);
  uint32_t capjobs = b.capjobs, captasks = b.captasks, capevents = b.capevents;
  struct job_rec *jobs = b.jobs;
  spe__batch_clear(&b);
  assert_int_equal(watched->refcount, 1);
  assert_int_equal(b.njobs, 0);
  assert_int_equal(b.ntasks, 0);
  assert_int_equal(b.nevents, 0);
  assert_int_equal(b.capjobs, capjobs);
  assert_int_equal(b.captasks, captasks);
  assert_int_equal(b.capevents, capevents);
  assert_ptr_equal(b.jobs, jobs);

  assert_int_equal(spe__batch_event(&b, watched), 0); /* steals the last reference */
  spe__batch_free(&b);
  assert_null(b.jobs);
  assert_null(b.tasks);
  assert_null(b.events);
  assert_int_equal(b.capevents, 0);
  assert_int_equal(b.nevents, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_memory),
      cmocka_unit_test(test_open_refuses_unknown_urls),
      cmocka_unit_test(test_open_sqlite),
      cmocka_unit_test(test_memory_commit_numbers_events_across_batches),
      cmocka_unit_test(test_each_memory_store_numbers_from_one),
      cmocka_unit_test(test_batch_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
