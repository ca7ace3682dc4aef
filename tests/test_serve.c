/*
 * `spe serve` end to end (issue 5): a real server process on a Unix socket
 * (and TCP for the token checks), real HTTP clients (the curl program, and
 * raw sockets where a client must misbehave on purpose or follow an event
 * stream).
 *
 *  - the seed scenarios submitted over HTTP, results read back with GET,
 *    timings taken from the event stream;
 *  - submit, start, cancel, list and their errors; every error status;
 *  - a body over the limit, a truncated body, a client that sends nothing,
 *    the token on TCP, the socket's permissions, a second server;
 *  - event streams: resuming with Last-Event-ID, keep-alive comments, a slow
 *    reader ended and resumed without a lost or repeated event;
 *  - SIGTERM: exit 0, the running task recorded as interrupted and run again
 *    by the next server on the same store.
 *
 * Timeouts are short (options of `spe serve`) so that each test takes a
 * second or two.
 */
#include "support/cli_util.h"
#include "support/http_util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *str(const json_t *o, const char *key) {
  return json_string_value(json_object_get(o, key));
}

static json_int_t num(const json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* Read `stream` until every job in `ids` has its job_finished. Returns the
 * events read (a new array). */
static json_t *events_until_finished(struct sse_client *c, const char *const *ids, size_t n) {
  json_t *events = json_array();
  size_t done = 0;
  while (done < n) {
    json_t *ev = sse_next(c, 20000);
    if (ev == NULL) fail_msg("the stream ended before every job finished");
    if (strcmp(str(ev, "type"), "job_finished") == 0)
      for (size_t i = 0; i < n; i++)
        if (strcmp(str(ev, "job"), ids[i]) == 0) done++;
    json_array_append_new(events, ev);
  }
  return events;
}

/* The time_ms of the one event (type, job, task). */
static int64_t at(const json_t *events, const char *type, const char *job, const char *task) {
  return cli_event_time(events, type, job, task);
}

static void expect_error(const struct http_reply *r, int status, const char *code) {
  if (r->status != status || strcmp(http_error_code(r), code) != 0)
    fail_msg("want %d %s, got %d %s", status, code, r->status, r->body);
  /* Every error carries a message for people. */
  const char *msg = str(json_object_get(r->json, "error"), "message");
  assert_true(msg != NULL && msg[0] != '\0');
}

/* ---- the seed scenarios over HTTP ---------------------------------------- */

enum { J_GOOD, J_FAILING, J_BLOCKED, J_TIMED_OUT, J_DOWNSTREAM, J_TWO_SLEEPS, J_COUNT };

static void seed_scenarios_over_http(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-seed");
  struct test_server s;
  const char *args[] = {"--workers", "4", NULL};
  srv_start(&s, dir, args);
  int64_t from = cli_wall_ms();

  /* Following every job from before the first submit: the whole story. */
  struct sse_client c;
  sse_open_stream(&c, &s, "/v1/events", NULL);
  static const char *const files[J_COUNT] = {"good.json",    "failing.json",
                                             "blocked.json", "timed-out-upstream.json",
                                             "downstream.json", "two-sleeps.json"};
  char *ids[J_COUNT];
  for (int i = 0; i < J_COUNT; i++) ids[i] = http_submit_file(&s, files[i], 1);
  json_t *events = events_until_finished(&c, (const char *const *)ids, J_COUNT);
  cli_check_event_stream(events, from, cli_wall_ms());
  sse_close_stream(&c);

  json_t *job = http_get_job(&s, ids[J_GOOD]);
  assert_string_equal(str(job, "status"), "succeeded");
  assert_string_equal(str(job, "id"), ids[J_GOOD]);
  assert_string_equal(json_string_value(cli_task_result(job, "hello")), "hello");
  assert_string_equal(str(cli_task_result(job, "shout"), "HELLO"), "HELLO");
  json_decref(job);

  job = http_get_job(&s, ids[J_FAILING]);
  assert_string_equal(str(job, "status"), "failed");
  assert_string_equal(cli_error_kind(job, "fail"), "exit");
  assert_int_equal(cli_error_int(job, "fail", "exit_code"), 1);
  json_decref(job);

  job = http_get_job(&s, ids[J_BLOCKED]);
  assert_string_equal(str(job, "status"), "failed");
  assert_string_equal(cli_task_status(job, "down"), "not_run");
  assert_string_equal(cli_task_status(job, "further"), "not_run");
  assert_string_equal(str(cli_task(job, "further"), "blocked_by"), "up");
  assert_int_equal(json_integer_value(cli_task_result(job, "aside")), 4);
  json_decref(job);

  job = http_get_job(&s, ids[J_TIMED_OUT]);
  assert_string_equal(cli_error_kind(job, "slow"), "timeout");
  assert_string_equal(cli_task_status(job, "after"), "not_run");
  json_decref(job);

  job = http_get_job(&s, ids[J_DOWNSTREAM]);
  assert_int_equal(json_integer_value(cli_task_result(job, "nine")), 9);
  json_decref(job);

  /* Timings, from the stream: the timeout cut "slow" (sleep 2) at 200 ms;
   * the two sleeps of 0.5 s ran side by side. */
  int64_t ran = at(events, "task_terminated", ids[J_TIMED_OUT], "slow") -
                at(events, "task_started", ids[J_TIMED_OUT], "slow");
  if (ran < 190 || ran > 1500) fail_msg("\"slow\" ran %lld ms (timeout 200)", (long long)ran);
  const char *ts = ids[J_TWO_SLEEPS];
  int64_t s1 = at(events, "task_started", ts, "s1"), s2 = at(events, "task_started", ts, "s2");
  int64_t e1 = at(events, "task_terminated", ts, "s1");
  int64_t e2 = at(events, "task_terminated", ts, "s2");
  assert_true(e1 - s1 >= 490 && e2 - s2 >= 490);
  assert_true(s2 < e1 && s1 < e2); /* they overlapped */
  int64_t whole = at(events, "job_finished", ts, NULL) - at(events, "job_started", ts, NULL);
  if (whole > 1000) fail_msg("two 0.5 s sleeps on 4 workers took %lld ms", (long long)whole);

  json_decref(events);
  for (int i = 0; i < J_COUNT; i++) free(ids[i]);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* ---- jobs: submit, start, cancel, list ----------------------------------- */

static void submit_start_cancel(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-jobs");
  struct test_server s;
  srv_start(&s, dir, NULL);

  /* Submitted, not started: it waits. */
  char *id = http_submit_file(&s, "good.json", 0);
  json_t *job = http_get_job(&s, id);
  assert_string_equal(str(job, "status"), "submitted");
  assert_string_equal(cli_task_status(job, "hello"), "pending");
  json_decref(job);

  char path[128];
  struct http_reply r;
  snprintf(path, sizeof path, "/v1/jobs/%s/start", id);
  http_call(&r, &s, "POST", path, NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(str(r.json, "id"), id);
  http_reply_free(&r);
  http_call(&r, &s, "POST", path, NULL, NULL, NULL);
  expect_error(&r, 409, "wrong_state");
  http_reply_free(&r);

  /* The job-only stream ends after the job's job_finished. */
  char epath[128];
  snprintf(epath, sizeof epath, "/v1/events?job=%s", id);
  struct sse_client c;
  sse_open_stream(&c, &s, epath, NULL);
  json_t *events = sse_read_to_end(&c, 10000);
  sse_close_stream(&c);
  json_t *last = json_array_get(events, json_array_size(events) - 1);
  assert_string_equal(str(last, "type"), "job_finished");
  assert_string_equal(str(last, "status"), "succeeded");
  json_decref(events);

  /* Cancel a running job: its task fails as cancelled. */
  char *slow = http_submit_text(
      &s, "{\"name\": \"slow\", \"tasks\": [{\"name\": \"nap\", \"cmd\": \"sleep 30\"}]}", 1);
  snprintf(epath, sizeof epath, "/v1/events?job=%s", slow);
  sse_open_stream(&c, &s, epath, NULL);
  json_t *ev;
  while ((ev = sse_next(&c, 10000)) != NULL && strcmp(str(ev, "type"), "task_started") != 0)
    json_decref(ev);
  assert_non_null(ev);
  json_decref(ev);
  snprintf(path, sizeof path, "/v1/jobs/%s/cancel", slow);
  http_call(&r, &s, "POST", path, NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  http_reply_free(&r);
  events = sse_read_to_end(&c, 10000);
  sse_close_stream(&c);
  json_decref(events);
  job = http_get_job(&s, slow);
  assert_string_equal(str(job, "status"), "cancelled");
  assert_string_equal(cli_error_kind(job, "nap"), "cancelled");
  json_decref(job);
  http_call(&r, &s, "POST", path, NULL, NULL, NULL);
  expect_error(&r, 409, "wrong_state");
  http_reply_free(&r);

  /* The list: newest first, in pages. */
  char *third = http_submit_file(&s, "failing.json", 0);
  http_call(&r, &s, "GET", "/v1/jobs?limit=2", NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  json_t *jobs = json_object_get(r.json, "jobs");
  assert_int_equal(json_array_size(jobs), 2);
  assert_string_equal(str(json_array_get(jobs, 0), "id"), third);
  assert_string_equal(str(json_array_get(jobs, 1), "id"), slow);
  assert_string_equal(str(json_array_get(jobs, 1), "status"), "cancelled");
  char next[128];
  snprintf(next, sizeof next, "/v1/jobs?limit=2&after=%s", str(r.json, "next"));
  http_reply_free(&r);
  http_call(&r, &s, "GET", next, NULL, NULL, NULL);
  jobs = json_object_get(r.json, "jobs");
  assert_int_equal(json_array_size(jobs), 1);
  assert_string_equal(str(json_array_get(jobs, 0), "id"), id);
  assert_true(json_is_null(json_object_get(r.json, "next")));
  http_reply_free(&r);
  http_call(&r, &s, "GET", "/v1/jobs?status=submitted", NULL, NULL, NULL);
  jobs = json_object_get(r.json, "jobs");
  assert_int_equal(json_array_size(jobs), 1);
  assert_string_equal(str(json_array_get(jobs, 0), "id"), third);
  http_reply_free(&r);

  free(id);
  free(slow);
  free(third);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* ---- every error status --------------------------------------------------- */

static void error_statuses(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-errors");
  struct test_server s;
  const char *args[] = {"--max-body", "1K", NULL};
  srv_start(&s, dir, args);
  struct http_reply r;

  http_call(&r, &s, "POST", "/v1/jobs", "{\"name\": ", NULL, NULL);
  expect_error(&r, 400, "bad_json");
  http_reply_free(&r);

  http_call(&r, &s, "POST", "/v1/jobs",
            "{\"name\": \"x\", \"tasks\": [{\"name\": \"t1\", \"cmd\": \"true\", "
            "\"enables\": [\"t9\"]}]}",
            NULL, NULL);
  expect_error(&r, 400, "invalid_job");
  assert_non_null(strstr(r.body, "task \\\"t1\\\": enables unknown task \\\"t9\\\""));
  http_reply_free(&r);

  http_call(&r, &s, "GET", "/v1/jobs?limit=5000", NULL, NULL, NULL);
  expect_error(&r, 400, "bad_request");
  http_reply_free(&r);
  http_call(&r, &s, "GET", "/v1/events?after=soon", NULL, NULL, NULL);
  expect_error(&r, 400, "bad_request");
  http_reply_free(&r);

  static const char *const unknown[][2] = {
      {"GET", "/v1/jobs/01JD7ZZZZZZZZZZZZZZZZZZZZZ"},
      {"POST", "/v1/jobs/01JD7ZZZZZZZZZZZZZZZZZZZZZ/start"},
      {"POST", "/v1/jobs/01JD7ZZZZZZZZZZZZZZZZZZZZZ/cancel"},
      {"GET", "/v1/events?job=01JD7ZZZZZZZZZZZZZZZZZZZZZ"}};
  for (size_t i = 0; i < 4; i++) {
    http_call(&r, &s, unknown[i][0], unknown[i][1], NULL, NULL, NULL);
    expect_error(&r, 404, "unknown_job");
    http_reply_free(&r);
  }
  http_call(&r, &s, "GET", "/v2/jobs", NULL, NULL, NULL);
  expect_error(&r, 404, "not_found");
  http_reply_free(&r);

  http_call(&r, &s, "DELETE", "/v1/jobs", NULL, NULL, NULL);
  expect_error(&r, 405, "method_not_allowed");
  char *allow = http_header(&r, "Allow");
  assert_non_null(allow);
  assert_string_equal(allow, "GET, HEAD, POST");
  free(allow);
  http_reply_free(&r);
  http_call(&r, &s, "GET", "/v1/jobs/01JD7ZZZZZZZZZZZZZZZZZZZZZ/start", NULL, NULL, NULL);
  expect_error(&r, 405, "method_not_allowed");
  http_reply_free(&r);

  /* A POST with neither Content-Length nor chunked encoding (curl -X POST
   * without data sends neither). */
  const char *json_type[] = {"-H", "Content-Type: application/json", NULL};
  http_call(&r, &s, "POST", "/v1/jobs", NULL, NULL, json_type);
  expect_error(&r, 411, "length_required");
  http_reply_free(&r);

  char *good_path = cli_job_path("good.json");
  char *good = cli_read_file(good_path, NULL);
  http_call(&r, &s, "POST", "/v1/jobs", good, "text/plain", NULL);
  expect_error(&r, 415, "unsupported_media_type");
  http_reply_free(&r);
  http_call(&r, &s, "POST", "/v1/jobs", good, "", NULL);
  expect_error(&r, 415, "unsupported_media_type");
  http_reply_free(&r);
  /* The same body as JSON, with a charset, is fine. */
  http_call(&r, &s, "POST", "/v1/jobs", good, "application/json; charset=utf-8", NULL);
  assert_int_equal(r.status, 201);
  http_reply_free(&r);

  /* Over the limit of 1 KiB: known from Content-Length, or found while
   * reading a chunked body. */
  char big[2048];
  snprintf(big, sizeof big, "{\"name\": \"%01900d\", \"tasks\": []}", 0);
  http_call(&r, &s, "POST", "/v1/jobs", big, NULL, NULL);
  expect_error(&r, 413, "body_too_large");
  http_reply_free(&r);
  const char *chunked[] = {"-H", "Transfer-Encoding: chunked", NULL};
  http_call(&r, &s, "POST", "/v1/jobs", big, NULL, chunked);
  expect_error(&r, 413, "body_too_large");
  http_reply_free(&r);
  /* A small chunked body is fine. */
  http_call(&r, &s, "POST", "/v1/jobs", good, NULL, chunked);
  assert_int_equal(r.status, 201);
  http_reply_free(&r);

  free(good);
  free(good_path);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* ---- misbehaving clients --------------------------------------------------- */

static void truncated_body_and_silent_client(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-truncated");
  struct test_server s;
  const char *args[] = {"--idle-timeout", "1s", NULL};
  srv_start(&s, dir, args);

  /* Promises 200 bytes, sends 30, hangs up: no job. */
  int fd = raw_connect(s.sock);
  assert_true(fd >= 0);
  raw_send(fd, "POST /v1/jobs?start=true HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
               "{\"name\": \"cut\", \"tasks\": [{");
  close(fd);

  /* Connects and sends nothing: dropped after the idle timeout (1 s). */
  int64_t t0 = cli_mono_ms();
  fd = raw_connect(s.sock);
  int closed = 0;
  char *got = raw_read_all(fd, 5000, &closed);
  int64_t waited = cli_mono_ms() - t0;
  close(fd);
  assert_true(closed);
  assert_string_equal(got, "");
  free(got);
  if (waited < 800 || waited > 3500) fail_msg("dropped after %lld ms", (long long)waited);

  /* Half a request line, then silence: dropped the same way. */
  fd = raw_connect(s.sock);
  raw_send(fd, "GET /v1/hea");
  got = raw_read_all(fd, 5000, &closed);
  close(fd);
  assert_true(closed);
  free(got);

  /* The truncated submit left nothing behind. */
  struct http_reply r;
  http_call(&r, &s, "GET", "/v1/jobs", NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 0);
  http_reply_free(&r);

  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* ---- the socket ---------------------------------------------------------- */

static void socket_is_private_and_has_one_server(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-socket");
  char *sub = cli_path_join(dir, "run");
  char *sock = cli_path_join(sub, "spe.sock");
  char *db = cli_path_join(dir, "state.db");
  char store[1024];
  snprintf(store, sizeof store, "sqlite:%s", db);
  const char *args[] = {"--socket", sock, "--state", store, NULL};
  struct test_server s;
  srv_start_raw(&s, dir, args);

  struct stat st;
  assert_int_equal(stat(sock, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);

  /* A second server on the same socket is refused (before it opens a store). */
  char *dir2 = cli_fresh_dir("serve-socket-2");
  const char *args2[] = {"serve", "--socket", sock, "--state", "memory:", NULL};
  struct cli_result r2;
  cli_run(&r2, dir2, args2);
  assert_int_equal(r2.status, 3);
  assert_non_null(strstr(r2.err, "another server is listening on"));
  cli_result_free(&r2);

  /* Killed, the server leaves its socket file; the next one replaces it. */
  assert_int_equal(srv_stop(&s, SIGKILL, NULL), 128 + SIGKILL);
  assert_int_equal(lstat(sock, &st), 0);
  srv_free(&s);
  srv_start_raw(&s, dir, args);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  /* A clean stop removes it. */
  assert_int_equal(lstat(sock, &st), -1);
  srv_free(&s);

  /* A file that is not a socket is never replaced. */
  cli_write_file(sock, "precious\n");
  cli_run(&r2, dir2, args2);
  assert_int_equal(r2.status, 3);
  assert_non_null(strstr(r2.err, "is not a socket"));
  cli_result_free(&r2);
  char *kept = cli_read_file(sock, NULL);
  assert_string_equal(kept, "precious\n");
  free(kept);

  free(dir2);
  free(sub);
  free(sock);
  free(db);
  free(dir);
}

/* ---- the token on TCP ----------------------------------------------------- */

static void tcp_needs_the_token(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-tcp");
  static const char token[] = "0123456789abcdef-the-token";
  char *token_file = cli_path_join(dir, "token");
  cli_write_file(token_file, "0123456789abcdef-the-token\n");
  const char *args[] = {"--listen", "127.0.0.1:0", "--token-file", token_file, NULL};
  struct test_server s;
  srv_start(&s, dir, args);
  assert_non_null(s.url);

  struct http_reply r;
  http_call_tcp(&r, &s, "GET", "/v1/jobs", NULL);
  expect_error(&r, 401, "unauthorized");
  char *h = http_header(&r, "WWW-Authenticate");
  assert_non_null(h);
  assert_true(strncmp(h, "Bearer", 6) == 0);
  free(h);
  http_reply_free(&r);
  http_call_tcp(&r, &s, "GET", "/v1/jobs", "0123456789abcdef-the-tokeN");
  expect_error(&r, 401, "unauthorized");
  http_reply_free(&r);
  http_call_tcp(&r, &s, "GET", "/v1/jobs", "0123456789abcdef-the-token-and-more");
  expect_error(&r, 401, "unauthorized");
  http_reply_free(&r);
  http_call_tcp(&r, &s, "GET", "/v1/jobs", token);
  assert_int_equal(r.status, 200);
  http_reply_free(&r);
  /* Health is open, for load balancers and probes. */
  http_call_tcp(&r, &s, "GET", "/v1/health", NULL);
  assert_int_equal(r.status, 200);
  http_reply_free(&r);
  /* The Unix socket (mode 0600) asks for none. */
  http_call(&r, &s, "GET", "/v1/jobs", NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  http_reply_free(&r);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);

  /* A token too short to be one is refused at the start. */
  cli_write_file(token_file, "short\n");
  struct cli_result r2;
  const char *bad[] = {"serve", "--listen", "127.0.0.1:0", "--token-file", token_file,
                       "--state", "memory:", NULL};
  cli_run(&r2, dir, bad);
  assert_int_equal(r2.status, 2);
  assert_non_null(strstr(r2.err, "at least 16"));
  cli_result_free(&r2);
  free(token_file);
  free(dir);
}

/* ---- event streams -------------------------------------------------------- */

static void events_resume_and_keep_alive(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-events");
  struct test_server s;
  const char *args[] = {"--keepalive", "100ms", NULL};
  srv_start(&s, dir, args);
  char *id = http_submit_file(&s, "downstream.json", 1);
  char path[128];
  snprintf(path, sizeof path, "/v1/events?job=%s", id);
  struct sse_client c;
  sse_open_stream(&c, &s, path, NULL);
  json_t *all = sse_read_to_end(&c, 10000);
  sse_close_stream(&c);
  size_t n = json_array_size(all);
  assert_true(n >= 6);
  assert_string_equal(str(json_array_get(all, 0), "type"), "job_submitted");

  /* From the middle, by Last-Event-ID and by ?after=: exactly the rest. */
  json_int_t mid = num(json_array_get(all, 2), "seq");
  char mid_text[32];
  snprintf(mid_text, sizeof mid_text, "%lld", (long long)mid);
  for (int way = 0; way < 2; way++) {
    char p[192];
    snprintf(p, sizeof p, "/v1/events?job=%s%s%s", id, way ? "&after=" : "",
             way ? mid_text : "");
    sse_open_stream(&c, &s, p, way ? NULL : mid_text);
    json_t *rest = sse_read_to_end(&c, 10000);
    sse_close_stream(&c);
    assert_int_equal(json_array_size(rest), n - 3);
    for (size_t i = 0; i < n - 3; i++)
      assert_int_equal(num(json_array_get(rest, i), "seq"), num(json_array_get(all, i + 3), "seq"));
    json_decref(rest);
  }

  /* An idle stream speaks every 100 ms. */
  int fd = raw_connect(s.sock);
  raw_send(fd, "GET /v1/events HTTP/1.0\r\n\r\n");
  int closed;
  char *got = raw_read_all(fd, 450, &closed);
  close(fd);
  int comments = 0;
  for (const char *p = got; (p = strstr(p, ": keep-alive\n\n")) != NULL; p++) comments++;
  if (comments < 2) fail_msg("%d keep-alive comments in 450 ms: %s", comments, got);
  free(got);

  json_decref(all);
  free(id);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

static int job_finished_cb(void *ctx) {
  const void *const *p = ctx;
  json_t *job = http_get_job(p[0], p[1]);
  const char *status = str(job, "status");
  int done = strcmp(status, "submitted") != 0 && strcmp(status, "running") != 0;
  json_decref(job);
  return done;
}

/* A client that does not read while its job runs: its stream is ended once
 * the queue (one event here) overflows; what it got, and what it gets by
 * resuming with Last-Event-ID, are every event once. */
static void slow_reader_is_ended_and_resumes(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-slow");
  struct test_server s;
  const char *args[] = {"--stream-queue", "1", "--idle-timeout", "20s", NULL};
  srv_start(&s, dir, args);
  struct sse_client c;
  sse_open_stream(&c, &s, "/v1/events", NULL);
  /* Three tasks in a chain, each writing 300 KB: more than the socket holds,
   * so the stream's thread blocks while later events arrive. */
  char *id = http_submit_text(
      &s,
      "{\"name\": \"wordy\", \"tasks\": ["
      "{\"name\": \"a\", \"cmd\": \"head -c 300000 /dev/zero | tr '\\\\0' a\", \"enables\": [\"b\"]},"
      "{\"name\": \"b\", \"cmd\": \"cat > /dev/null; head -c 300000 /dev/zero | tr '\\\\0' b\","
      " \"enables\": [\"c\"]},"
      "{\"name\": \"c\", \"cmd\": \"cat > /dev/null; head -c 300000 /dev/zero | tr '\\\\0' c\"}]}",
      1);
  const void *ctx[2] = {&s, id};
  assert_true(cli_poll_until(job_finished_cb, ctx, 20000));

  json_t *first = sse_read_to_end(&c, 10000);
  sse_close_stream(&c);
  size_t n = json_array_size(first);
  assert_true(n > 0);
  json_t *last = json_array_get(first, n - 1);
  if (strcmp(str(last, "type"), "job_finished") == 0)
    fail_msg("the stream was not ended: %zu events, the last is job_finished", n);

  char last_id[32];
  snprintf(last_id, sizeof last_id, "%lld", (long long)num(last, "seq"));
  char path[128];
  snprintf(path, sizeof path, "/v1/events?job=%s", id);
  sse_open_stream(&c, &s, path, last_id);
  json_t *rest = sse_read_to_end(&c, 10000);
  sse_close_stream(&c);
  json_array_extend(first, rest);
  json_decref(rest);
  /* Every event of the job, once, in order (the server is new: seq 1...). */
  cli_check_event_stream(first, cli_wall_ms() - 60000, cli_wall_ms());
  assert_int_equal(num(json_array_get(first, 0), "seq"), 1);
  last = json_array_get(first, json_array_size(first) - 1);
  assert_string_equal(str(last, "type"), "job_finished");

  json_decref(first);
  free(id);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* ---- health and metrics --------------------------------------------------- */

static void health_and_metrics(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-metrics");
  struct test_server s;
  srv_start(&s, dir, NULL);
  struct http_reply r;
  http_call(&r, &s, "GET", "/v1/health", NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(str(r.json, "status"), "ok");
  http_reply_free(&r);

  char *id = http_submit_file(&s, "blocked.json", 1);
  char path[128];
  snprintf(path, sizeof path, "/v1/events?job=%s", id);
  struct sse_client c;
  sse_open_stream(&c, &s, path, NULL);
  json_decref(sse_read_to_end(&c, 10000));
  sse_close_stream(&c);

  http_call(&r, &s, "GET", "/metrics", NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  char *type = http_header(&r, "Content-Type");
  assert_non_null(strstr(type, "text/plain; version=0.0.4"));
  free(type);
  static const char *const want[] = {
      "spe_jobs{status=\"failed\"} 1\n",
      "spe_jobs{status=\"running\"} 0\n",
      "spe_tasks_running 0\n",
      "spe_tasks_ready 0\n",
      "spe_tasks_finished_total{status=\"succeeded\"} 1\n",
      "spe_tasks_finished_total{status=\"failed\"} 1\n",
      "spe_tasks_finished_total{status=\"not_run\"} 2\n",
      "# TYPE spe_commit_seconds summary\n",
      "spe_commit_seconds_count ",
      "spe_events_published_total ",
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    if (strstr(r.body, want[i]) == NULL) fail_msg("no \"%s\" in:\n%s", want[i], r.body);
  http_reply_free(&r);
  free(id);
  assert_int_equal(srv_stop(&s, SIGTERM, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* ---- SIGTERM and the next start ------------------------------------------ */

static int file_exists(void *path) { return access(path, F_OK) == 0; }

static void sigterm_interrupts_and_restart_reruns(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-sigterm");
  struct test_server s;
  const char *args[] = {"--grace", "2s", NULL};
  srv_start(&s, dir, args);
  /* First run: leaves a marker and sleeps; the run after the restart sees
   * the marker and finishes at once. */
  char *id = http_submit_text(
      &s,
      "{\"name\": \"resumable\", \"tasks\": [{\"name\": \"once\", \"cmd\": "
      "\"if [ -e marker ]; then echo again; else touch marker; sleep 30; fi\"}]}",
      1);
  char path[128];
  snprintf(path, sizeof path, "/v1/events?job=%s", id);
  struct sse_client c;
  sse_open_stream(&c, &s, path, NULL);
  json_t *ev;
  while ((ev = sse_next(&c, 10000)) != NULL && strcmp(str(ev, "type"), "task_started") != 0)
    json_decref(ev);
  assert_non_null(ev);
  json_decref(ev);
  /* The task is running once its shell has made the marker. */
  char *marker = cli_path_join(dir, "marker");
  assert_true(cli_poll_until(file_exists, marker, 10000));
  free(marker);

  int64_t t0 = cli_mono_ms();
  char *err = NULL;
  assert_int_equal(srv_stop(&s, SIGTERM, &err), 0);
  int64_t took = cli_mono_ms() - t0;
  /* sleep takes SIGTERM at once: no need to wait for the grace period. */
  if (took > 1900) fail_msg("SIGTERM took %lld ms", (long long)took);
  assert_non_null(strstr(err, "stopping on SIGTERM"));
  free(err);
  /* The stream was ended by the stop. */
  json_decref(sse_read_to_end(&c, 5000));
  sse_close_stream(&c);
  srv_free(&s);

  /* The next server on the store runs the task again, by itself. */
  srv_start(&s, dir, args);
  sse_open_stream(&c, &s, path, NULL);
  json_t *events = sse_read_to_end(&c, 10000);
  sse_close_stream(&c);
  int interrupted = 0, recovered = 0, starts = 0;
  size_t i;
  json_array_foreach(events, i, ev) {
    const char *type = str(ev, "type");
    if (strcmp(type, "task_terminated") == 0 && strcmp(str(ev, "status"), "interrupted") == 0)
      interrupted++;
    if (strcmp(type, "job_recovered") == 0) recovered++;
    if (strcmp(type, "task_started") == 0) starts++;
  }
  assert_int_equal(interrupted, 1);
  assert_int_equal(recovered, 1);
  assert_int_equal(starts, 2);
  json_decref(events);
  json_t *job = http_get_job(&s, id);
  assert_string_equal(str(job, "status"), "succeeded");
  assert_string_equal(json_string_value(cli_task_result(job, "once")), "again");
  json_decref(job);
  free(id);
  assert_int_equal(srv_stop(&s, SIGINT, NULL), 0);
  srv_free(&s);
  free(dir);
}

/* A store that cannot commit any more stops the server with exit status 3 (a
 * supervisor then sees it), instead of a server that answers 500 forever. */
static void store_failure_exits_3(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("serve-store-fails");
  struct test_server s;
  setenv("SPE_STORE_FAULT", "commit:2+", 1);
  srv_start(&s, dir, NULL);
  unsetenv("SPE_STORE_FAULT");
  static const char job[] = "{\"name\": \"j\", \"tasks\": [{\"name\": \"a\", \"cmd\": \"true\"}]}";
  struct http_reply r;
  int refused = 0;
  for (int i = 0; i < 5 && !refused; i++) {
    http_call(&r, &s, "POST", "/v1/jobs", job, NULL, NULL);
    refused = r.status != 201;
    if (refused) assert_int_equal(r.status, 500);
    http_reply_free(&r);
  }
  assert_true(refused);
  char *err = NULL;
  assert_int_equal(srv_stop(&s, 0, &err), 3); /* no signal: it exits by itself */
  assert_non_null(strstr(err, "state store write failed"));
  assert_non_null(strstr(err, "stopping: the state store failed"));
  free(err);
  srv_free(&s);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(seed_scenarios_over_http, srv_kill_all),
      cmocka_unit_test_teardown(submit_start_cancel, srv_kill_all),
      cmocka_unit_test_teardown(error_statuses, srv_kill_all),
      cmocka_unit_test_teardown(truncated_body_and_silent_client, srv_kill_all),
      cmocka_unit_test_teardown(socket_is_private_and_has_one_server, srv_kill_all),
      cmocka_unit_test_teardown(tcp_needs_the_token, srv_kill_all),
      cmocka_unit_test_teardown(events_resume_and_keep_alive, srv_kill_all),
      cmocka_unit_test_teardown(slow_reader_is_ended_and_resumes, srv_kill_all),
      cmocka_unit_test_teardown(health_and_metrics, srv_kill_all),
      cmocka_unit_test_teardown(sigterm_interrupts_and_restart_reruns, srv_kill_all),
      cmocka_unit_test_teardown(store_failure_exits_3, srv_kill_all),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
