/*
 * Load (issue 5): 8 concurrent HTTP clients (threads, one libcurl connection
 * each) submit and start 1,000 jobs of 5 tasks between them on one `spe serve`
 * with the SQLite store. Every job must complete: each one's job_finished is
 * read from the event stream, the job list of succeeded jobs holds every id,
 * and each job read back has its 5 tasks succeeded with their results. Nothing
 * is lost, nothing is extra. The server's resident memory before and after is
 * printed, with the time it all took.
 */
#include "support/cli_util.h"
#include "support/curl_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define CLIENTS 8
#define JOBS 1000
#define TASKS 5

/* Five tasks, a diamond and a tail: a -> (b, c) -> d -> e. */
static const char job_text[] =
    "{\"name\": \"load-%d\", \"tasks\": ["
    "{\"name\": \"a\", \"argv\": [\"true\"], \"enables\": [\"b\", \"c\"]},"
    "{\"name\": \"b\", \"argv\": [\"echo\", \"%d\"], \"enables\": [\"d\"]},"
    "{\"name\": \"c\", \"argv\": [\"true\"], \"enables\": [\"d\"]},"
    "{\"name\": \"d\", \"argv\": [\"echo\", \"d\"], \"enables\": [\"e\"]},"
    "{\"name\": \"e\", \"argv\": [\"true\"]}]}";

static const char *socket_path;
static char ids[JOBS][27];

struct submitter {
  pthread_t thread;
  int first, count; /* the jobs [first, first + count) */
  int failures;
  char error[256];
};

static void *submit_jobs(void *arg) {
  struct submitter *s = arg;
  struct hc_client *hc = hc_client_new(socket_path);
  for (int i = s->first; i < s->first + s->count; i++) {
    char body[sizeof job_text + 32];
    snprintf(body, sizeof body, job_text, i, i);
    json_t *reply = NULL;
    long status = hc_client_request(hc, "POST", "/v1/jobs?start=true", body, &reply);
    const char *id = json_string_value(json_object_get(reply, "id"));
    if (status != 201 || id == NULL || strlen(id) != 26) {
      if (s->failures++ == 0)
        snprintf(s->error, sizeof s->error, "job %d: HTTP %ld", i, status);
    } else {
      memcpy(ids[i], id, 27);
    }
    json_decref(reply);
  }
  hc_client_free(hc);
  return NULL;
}

static int all_finished(void *ctx, const json_t *events) {
  (void)ctx;
  static size_t counted, finished; /* the stream only grows */
  for (; counted < json_array_size(events); counted++) {
    const json_t *ev = json_array_get(events, counted);
    finished += strcmp(json_string_value(json_object_get(ev, "type")), "job_finished") == 0;
  }
  return finished == JOBS;
}

/* The index of `id` among the submitted jobs, or -1. */
static int index_of(json_t *by_id, const char *id) {
  json_t *i = json_object_get(by_id, id);
  return i != NULL ? (int)json_integer_value(i) : -1;
}

static void a_thousand_jobs_from_eight_clients(void **state) {
  (void)state;
  char *dir = cli_fresh_dir("load");
  char *sock = cli_path_join(dir, "spe.sock");
  socket_path = sock;
  const char *args[] = {"--state", "sqlite:state.db", "--workers", "4", NULL};
  pid_t server = hc_server_start(dir, sock, args);
  long rss_before = hc_rss_kb(server);

  int64_t t0 = cli_mono_ms();
  struct submitter subs[CLIENTS];
  for (int c = 0; c < CLIENTS; c++) {
    subs[c] = (struct submitter){.first = c * (JOBS / CLIENTS), .count = JOBS / CLIENTS};
    assert_int_equal(pthread_create(&subs[c].thread, NULL, submit_jobs, &subs[c]), 0);
  }
  int failures = 0;
  for (int c = 0; c < CLIENTS; c++) {
    pthread_join(subs[c].thread, NULL);
    if (subs[c].failures > 0) fprintf(stderr, "client %d: %s\n", c, subs[c].error);
    failures += subs[c].failures;
  }
  assert_int_equal(failures, 0);
  int64_t t_submitted = cli_mono_ms();

  /* Every job's end, from the store's event log and then live. */
  json_t *events = hc_read_events(sock, NULL, 0, all_finished, NULL, 50000);
  int64_t t_done = cli_mono_ms();
  json_t *by_id = json_object();
  for (int i = 0; i < JOBS; i++) json_object_set_new(by_id, ids[i], json_integer(i));
  assert_int_equal(json_object_size(by_id), JOBS); /* all distinct */
  int finished[JOBS] = {0};
  size_t k;
  json_t *ev;
  json_array_foreach(events, k, ev) {
    if (strcmp(json_string_value(json_object_get(ev, "type")), "job_finished") != 0) continue;
    int i = index_of(by_id, json_string_value(json_object_get(ev, "job")));
    assert_true(i >= 0);
    assert_string_equal(json_string_value(json_object_get(ev, "status")), "succeeded");
    finished[i]++;
  }
  for (int i = 0; i < JOBS; i++) assert_int_equal(finished[i], 1);
  cli_check_event_stream(events, 0, INT64_MAX / 2);

  /* The API agrees: every job listed as succeeded, each with its 5 results. */
  json_t *page = NULL;
  assert_int_equal(hc_request(sock, "GET", "/v1/jobs?status=succeeded&limit=1000", NULL, &page),
                   200);
  json_t *jobs = json_object_get(page, "jobs");
  assert_int_equal(json_array_size(jobs), JOBS);
  json_t *job;
  json_array_foreach(jobs, k, job)
    assert_true(index_of(by_id, json_string_value(json_object_get(job, "id"))) >= 0);
  struct hc_client *hc = hc_client_new(sock);
  for (int i = 0; i < JOBS; i++) {
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
    json_t *got = NULL;
    assert_int_equal(hc_client_request(hc, "GET", path, NULL, &got), 200);
    assert_string_equal(json_string_value(json_object_get(got, "status")), "succeeded");
    assert_int_equal(json_object_size(json_object_get(got, "tasks")), TASKS);
    assert_int_equal(json_integer_value(cli_task_result(got, "b")), i);
    assert_string_equal(json_string_value(cli_task_result(got, "d")), "d");
    json_decref(got);
  }
  hc_client_free(hc);
  int64_t t_checked = cli_mono_ms();
  long rss_after = hc_rss_kb(server);

  printf("load: %d jobs of %d tasks from %d clients: submitted and started in %lld ms, "
         "all finished after %lld ms (%.0f jobs/s), checked in %lld ms\n",
         JOBS, TASKS, CLIENTS, (long long)(t_submitted - t0), (long long)(t_done - t0),
         JOBS * 1000.0 / (double)(t_done - t0), (long long)(t_checked - t_done));
  printf("load: server RSS %ld KiB before, %ld KiB after\n", rss_before, rss_after);
  assert_int_equal(hc_server_stop(server, SIGTERM), 0);
  json_decref(page);
  json_decref(events);
  json_decref(by_id);
  free(sock);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(a_thousand_jobs_from_eight_clients)};
  return cmocka_run_group_tests_name("load", tests, NULL, NULL);
}
