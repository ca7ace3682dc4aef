/*
 * The server of `spe serve` (src/server) in the test process, over an
 * executor opened with limits that the program has no option to lower: what a
 * client sees when the executor holds its most unfinished jobs (429
 * too_many_jobs, nothing stored), and that a submit succeeds again once one of
 * them has finished.
 */
#include "server/server.h"
#include "support/cli_util.h"
#include "support/curl_util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct served {
  char *dir, sock[512];
  spe_executor *ex;
  struct server *srv;
};

/* An executor on the memory store that keeps at most `max_unfinished` jobs
 * unfinished, served on a Unix socket in a fresh folder. */
static void serve(struct served *s, size_t max_unfinished) {
  s->dir = cli_fresh_dir("server_limits");
  int n = snprintf(s->sock, sizeof s->sock, "%s/spe.sock", s->dir);
  assert_true(n > 0 && (size_t)n < sizeof s->sock);
  spe_options o;
  spe_options_init(&o);
  o.workers = 1;
  o.max_unfinished_jobs = max_unfinished;
  char *msg = NULL;
  if (spe_open(&s->ex, &o, &msg) != 0) fail_msg("spe_open: %s", msg);
  struct server_config cfg;
  server_config_init(&cfg);
  cfg.socket_path = s->sock;
  if (server_bind(&s->srv, &cfg, &msg) != 0) fail_msg("server_bind: %s", msg);
  if (server_start(s->srv, s->ex, &msg) != 0) fail_msg("server_start: %s", msg);
}

static void unserve(struct served *s) {
  server_stop(s->srv);
  spe_close(s->ex);
  cli_remove_dir(s->dir);
  free(s->dir);
}

static const char job_text[] = "{\"name\":\"j\",\"tasks\":[{\"name\":\"t\",\"argv\":[\"true\"]}]}";

/* The job's id from a 201 or 200 answer. */
static char *id_of(json_t *answer) {
  const char *id = json_string_value(json_object_get(answer, "id"));
  assert_non_null(id);
  return strdup(id);
}

static void test_too_many_unfinished_jobs(void **state) {
  struct served s;
  serve(&s, 1);
  json_t *out = NULL;
  /* Submitted, not started: unfinished. */
  assert_int_equal(hc_request(s.sock, "POST", "/v1/jobs", job_text, &out), 201);
  char *first = id_of(out);
  json_decref(out);

  /* The limit is reached: refused with 429 and its code, nothing stored. */
  assert_int_equal(hc_request(s.sock, "POST", "/v1/jobs?start=true", job_text, &out), 429);
  json_t *err = json_object_get(out, "error");
  assert_string_equal(json_string_value(json_object_get(err, "code")), "too_many_jobs");
  assert_non_null(json_string_value(json_object_get(err, "message")));
  json_decref(out);
  json_t *page = NULL;
  assert_int_equal(spe_jobs_list(s.ex, NULL, NULL, 10, &page, NULL), 0);
  assert_int_equal(json_array_size(page), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(page, 0), "id")), first);
  json_decref(page);

  /* Once that job has finished (cancelled), a submit is taken again. */
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s/cancel", first);
  assert_int_equal(hc_request(s.sock, "POST", path, NULL, NULL), 200);
  assert_int_equal(spe_wait(s.ex, first, 10000), 0);
  assert_int_equal(hc_request(s.sock, "POST", "/v1/jobs?start=true", job_text, &out), 201);
  char *second = id_of(out);
  json_decref(out);
  assert_int_equal(spe_wait(s.ex, second, 10000), 0);
  json_t *job = NULL;
  assert_int_equal(spe_job_get(s.ex, second, &job, NULL), 0);
  assert_string_equal(json_string_value(json_object_get(job, "status")), "succeeded");
  json_decref(job);
  free(first);
  free(second);
  unserve(&s);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_too_many_unfinished_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
