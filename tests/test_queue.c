/* Event queues (spe_queue_*): what a program with its own event loop sees. One
 * job's events or every job's, in order with rising seq; the fd wakes poll()
 * and stays readable exactly while events wait; timeouts; SPE_ECLOSED after a
 * shutdown or close, also for a reader already waiting; queues left open with
 * events in them (the valgrind build checks that nothing leaks); misuse. */
#include "spe.h"
#include "support/cli_util.h"

#include "api/executor_impl.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define CHAIN_JOB                                                                  \
  "{\"name\":\"chain\",\"tasks\":["                                                \
  "{\"name\":\"a\",\"cmd\":\"echo 1\",\"enables\":[\"b\"]},"                       \
  "{\"name\":\"b\",\"cmd\":\"echo 2\"}]}"

static spe_executor *open_executor(void) {
  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  spe_executor *ex = NULL;
  char *msg = NULL;
  int rc = spe_open(&ex, &o, &msg);
  if (rc != 0) fail_msg("spe_open: %s", msg ? msg : spe_strerror(rc));
  return ex;
}

static void submit(spe_executor *ex, char *id) {
  char *msg = NULL;
  int rc = spe_submit_text(ex, CHAIN_JOB, strlen(CHAIN_JOB), id, &msg);
  if (rc != 0) fail_msg("submit: %s: %s", spe_err_name(rc), msg ? msg : "");
}

static void start(spe_executor *ex, const char *id) {
  char *msg = NULL;
  int rc = spe_start(ex, id, &msg);
  if (rc != 0) fail_msg("start: %s: %s", spe_err_name(rc), msg ? msg : "");
}

static const char *type_of(const json_t *ev) {
  return json_string_value(json_object_get(ev, "type"));
}

static json_int_t seq_of(const json_t *ev) {
  return json_integer_value(json_object_get(ev, "seq"));
}

/* 1 if the fd polls readable right now. */
static int readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, 0);
  assert_true(n >= 0);
  return n == 1 && (p.revents & POLLIN);
}

/* Read events (waiting at most 10 s for each) into an array, up to and
 * including the `count`-th job_finished. */
static json_t *read_until_finished(spe_queue *q, int count) {
  json_t *events = json_array();
  int finished = 0;
  while (finished < count) {
    json_t *ev = NULL;
    int rc = spe_queue_next(q, 10000, &ev);
    if (rc != 0) fail_msg("spe_queue_next: %s after %zu events", spe_err_name(rc),
                          json_array_size(events));
    if (strcmp(type_of(ev), "job_finished") == 0) finished++;
    json_array_append_new(events, ev);
  }
  return events;
}

static void one_job_in_order(void **state) {
  spe_executor *ex = open_executor();
  char id[SPE_ID_SIZE], other[SPE_ID_SIZE];
  submit(ex, id);
  submit(ex, other);
  spe_queue *q = NULL;
  assert_int_equal(spe_queue_open(ex, id, &q), 0);
  start(ex, other);
  start(ex, id);
  json_t *events = read_until_finished(q, 1);

  /* Only this job's events, from its start (its job_submitted came before the
   * queue opened) to its end, with seq rising. */
  static const char *const want[] = {"job_started",     "task_started", "task_terminated",
                                     "task_started",    "task_terminated", "job_finished"};
  assert_int_equal(json_array_size(events), sizeof want / sizeof *want);
  size_t i;
  json_t *ev;
  json_int_t last = 0;
  json_array_foreach(events, i, ev) {
    assert_string_equal(type_of(ev), want[i]);
    assert_string_equal(json_string_value(json_object_get(ev, "job")), id);
    assert_true(seq_of(ev) > last);
    last = seq_of(ev);
  }
  assert_string_equal(json_string_value(json_object_get(json_array_get(events, 1), "task")), "a");
  assert_string_equal(json_string_value(json_object_get(json_array_get(events, 3), "task")), "b");
  json_decref(events);

  /* Nothing else came: the other job's events are not in this queue. */
  assert_int_equal(spe_wait(ex, other, 10000), 0);
  json_t *none = NULL;
  assert_int_equal(spe_queue_next(q, 0, &none), SPE_ETIMEDOUT);
  assert_null(none);
  spe_queue_close(q);
  spe_close(ex);
}

static void all_jobs_with_seq_rising_by_one(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *q = NULL;
  assert_int_equal(spe_queue_open(ex, NULL, &q), 0);
  char a[SPE_ID_SIZE], b[SPE_ID_SIZE];
  submit(ex, a);
  submit(ex, b);
  start(ex, a);
  start(ex, b);
  json_t *events = read_until_finished(q, 2);

  /* Every event of the store, numbered one after the other, both jobs'. */
  size_t i;
  json_t *ev;
  int submitted = 0, of_a = 0, of_b = 0;
  json_array_foreach(events, i, ev) {
    if (i > 0) assert_int_equal(seq_of(ev), seq_of(json_array_get(events, i - 1)) + 1);
    const char *job = json_string_value(json_object_get(ev, "job"));
    of_a += strcmp(job, a) == 0;
    of_b += strcmp(job, b) == 0;
    submitted += strcmp(type_of(ev), "job_submitted") == 0;
  }
  assert_int_equal(submitted, 2);
  assert_int_equal(of_a, 7);
  assert_int_equal(of_b, 7);
  assert_string_equal(type_of(json_array_get(events, 0)), "job_submitted");
  json_decref(events);
  spe_queue_close(q);
  spe_close(ex);
}

static void the_fd_follows_the_queue(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *q = NULL, *after = NULL;
  assert_int_equal(spe_queue_open(ex, NULL, &q), 0);
  assert_int_equal(spe_queue_open(ex, NULL, &after), 0);
  int fd = spe_queue_fd(q);
  assert_true(fd >= 0);
  assert_false(readable(fd));

  char id[SPE_ID_SIZE];
  submit(ex, id);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 10000), 1);
  assert_true(p.revents & POLLIN);
  assert_true(spe_queue_length(q) >= 1);

  /* Once `after` (subscribed later) has the job's end, `q` has every event of
   * the job: it is readable while events remain, and not once the last one is
   * taken. */
  start(ex, id);
  json_decref(read_until_finished(after, 1));
  assert_int_equal(spe_queue_length(q), 7);
  while (spe_queue_length(q) > 0) {
    assert_true(readable(fd));
    json_t *ev = NULL;
    assert_int_equal(spe_queue_next(q, 0, &ev), 0);
    json_decref(ev);
  }
  assert_false(readable(fd));
  spe_queue_close(after);
  spe_queue_close(q);
  spe_close(ex);
}

static void timeouts(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *q = NULL;
  assert_int_equal(spe_queue_open(ex, NULL, &q), 0);
  json_t *ev = NULL;

  int64_t t0 = cli_mono_ms();
  assert_int_equal(spe_queue_next(q, 0, &ev), SPE_ETIMEDOUT);
  assert_null(ev);
  int64_t t1 = cli_mono_ms();
  assert_int_equal(spe_queue_next(q, 120, &ev), SPE_ETIMEDOUT);
  int64_t t2 = cli_mono_ms();
  assert_null(ev);
  assert_true(t1 - t0 < 100);
  assert_true(t2 - t1 >= 120);

  /* A positive timeout returns the event as soon as it comes. */
  char id[SPE_ID_SIZE];
  submit(ex, id);
  assert_int_equal(spe_queue_next(q, 10000, &ev), 0);
  assert_string_equal(type_of(ev), "job_submitted");
  assert_true(cli_mono_ms() - t2 < 5000);
  json_decref(ev);
  spe_queue_close(q);
  spe_close(ex);
}

/* A reader on its own thread, blocked in spe_queue_next() without a limit. */
struct reader {
  spe_queue *q;
  pthread_t thread;
  int events, rc;
};

static void *reader_main(void *arg) {
  struct reader *r = arg;
  json_t *ev = NULL;
  while ((r->rc = spe_queue_next(r->q, -1, &ev)) == 0) {
    r->events++;
    json_decref(ev);
  }
  assert_null(ev);
  return NULL;
}

static void start_reader(struct reader *r, spe_queue *q) {
  memset(r, 0, sizeof *r);
  r->q = q;
  assert_int_equal(pthread_create(&r->thread, NULL, reader_main, r), 0);
}

/* Wait until the reader is inside spe_queue_next(), so that the close below
 * happens under a waiting reader, not before it calls. */
static void await_waiting(const spe_queue *q) {
  int64_t deadline = cli_mono_ms() + 10000;
  while (spe__queue_users(q) == 0) {
    assert_true(cli_mono_ms() < deadline);
    sched_yield();
  }
}

static void shutdown_ends_waiting_readers(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *q = NULL;
  assert_int_equal(spe_queue_open(ex, NULL, &q), 0);
  char id[SPE_ID_SIZE];
  submit(ex, id);
  struct reader r;
  start_reader(&r, q);
  await_waiting(q);

  assert_int_equal(spe_shutdown(ex), 0);
  assert_int_equal(pthread_join(r.thread, NULL), 0);
  assert_int_equal(r.rc, SPE_ECLOSED);
  assert_true(r.events <= 1); /* job_submitted, if it came before the reader */

  /* Closed for good: readable, SPE_ECLOSED without waiting, no new queue. */
  assert_true(readable(spe_queue_fd(q)));
  json_t *ev = NULL;
  assert_int_equal(spe_queue_next(q, -1, &ev), SPE_ECLOSED);
  assert_null(ev);
  spe_queue *late = q;
  assert_int_equal(spe_queue_open(ex, NULL, &late), SPE_ECLOSED);
  assert_null(late);
  spe_queue_close(q);
  spe_close(ex);
}

static void close_ends_waiting_readers(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *q = NULL;
  assert_int_equal(spe_queue_open(ex, NULL, &q), 0);
  struct reader r;
  start_reader(&r, q);
  await_waiting(q);
  /* The queue is left open: spe_close wakes the reader, waits for it to leave
   * and frees the queue. */
  spe_close(ex);
  assert_int_equal(pthread_join(r.thread, NULL), 0);
  assert_int_equal(r.rc, SPE_ECLOSED);
  assert_int_equal(r.events, 0);
}

static void events_left_behind_are_released(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *first = NULL, *read = NULL, *kept = NULL, *closed_early = NULL;
  assert_int_equal(spe_queue_open(ex, NULL, &first), 0);
  assert_int_equal(spe_queue_open(ex, NULL, &read), 0);
  assert_int_equal(spe_queue_open(ex, NULL, &kept), 0);
  assert_int_equal(spe_queue_open(ex, NULL, &closed_early), 0);
  char id[SPE_ID_SIZE];
  submit(ex, id);
  start(ex, id);
  json_decref(read_until_finished(read, 1));
  /* `read` is the second subscriber: every event it has was delivered to
   * `first` before it, and all but the last to the ones after it. */
  assert_int_equal(spe_queue_length(first), 7);
  assert_true(spe_queue_length(kept) >= 6);

  /* After a shutdown the events still waiting are handed out, then
   * SPE_ECLOSED. */
  assert_int_equal(spe_shutdown(ex), 0);
  json_t *ev = NULL;
  assert_int_equal(spe_queue_next(first, -1, &ev), 0);
  assert_string_equal(type_of(ev), "job_submitted");
  json_decref(ev);
  spe_queue_close(closed_early); /* with events in it */
  spe_close(ex);                 /* `first` and `kept` are left open, with events */
}

static void misuse_is_refused(void **state) {
  spe_executor *ex = open_executor();
  spe_queue *q = (spe_queue *)&q;
  assert_int_equal(spe_queue_open(NULL, NULL, &q), SPE_EINVAL);
  assert_null(q);
  assert_int_equal(spe_queue_open(ex, NULL, NULL), SPE_EINVAL);
  assert_int_equal(spe_queue_fd(NULL), SPE_EINVAL);
  json_t *ev = json_null();
  assert_int_equal(spe_queue_next(NULL, 0, &ev), SPE_EINVAL);
  assert_null(ev);
  assert_int_equal(spe_queue_length(NULL), 0);
  spe_queue_close(NULL);

  assert_int_equal(spe_queue_open(ex, "no-such-job", &q), 0);
  assert_int_equal(spe_queue_next(q, 0, NULL), SPE_EINVAL);
  assert_int_equal(spe_queue_next(q, 0, &ev), SPE_ETIMEDOUT);
  spe_queue_close(q);
  spe_close(ex);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_job_in_order),
      cmocka_unit_test(all_jobs_with_seq_rising_by_one),
      cmocka_unit_test(the_fd_follows_the_queue),
      cmocka_unit_test(timeouts),
      cmocka_unit_test(shutdown_ends_waiting_readers),
      cmocka_unit_test(close_ends_waiting_readers),
      cmocka_unit_test(events_left_behind_are_released),
      cmocka_unit_test(misuse_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
