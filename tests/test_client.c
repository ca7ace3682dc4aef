/*
 * The client subcommands against a real `spe serve` (issue 5): the seed
 * scenarios submitted with `spe submit --start --wait` and read back with
 * `spe result`, `status`, `list`, `watch`, `start`, `cancel` and `prune`, the
 * errors a user meets (an invalid job, an unknown id, a server that is not
 * there, a wrong token), and a kill -9 of the server with jobs running: after
 * a restart on the same store every job completes, no task whose end was
 * recorded runs again, and a `spe watch` that followed the whole time saw
 * every event of the store exactly once.
 *
 * One server (SQLite store, 4 workers) serves every test but the kill -9 one,
 * which has its own. Tasks that must be caught running wait for a marker file
 * the test creates.
 */
#include "support/cli_util.h"
#include "support/curl_util.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* The shared server. */
static struct {
  char *dir, *socket, *server_env, *token_file;
  pid_t pid;
  int port;
  char tcp_address[64];
} srv;

static const char *const *client_env(void) {
  static const char *env[2];
  env[0] = srv.server_env;
  env[1] = NULL;
  return env;
}

/* Run `spe ARGS...` (NULL-terminated) as a client of the shared server. */
static void spe(struct cli_result *r, const char *first, ...) {
  const char *args[32];
  size_t n = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a != NULL && n < 31; a = va_arg(ap, const char *)) args[n++] = a;
  va_end(ap);
  args[n] = NULL;
  cli_run_env(r, srv.dir, args, client_env());
}

static void expect_status(const struct cli_result *r, int want, const char *what) {
  if (r->status != want)
    fail_msg("%s exited with %d (want %d); stdout:\n%.2000s\nstderr:\n%.2000s", what, r->status,
             want, r->out, r->err);
}

/* A TCP port that was free a moment ago. */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static char *job_file(const char *name) { return cli_job_path(name); }

static int setup_server(void **state) {
  (void)state;
  srv.dir = cli_fresh_dir("client");
  srv.socket = cli_path_join(srv.dir, "spe.sock");
  srv.token_file = cli_path_join(srv.dir, "token");
  cli_write_file(srv.token_file, "s3cret-token-for-tests\n");
  chmod(srv.token_file, 0600);
  size_t n = strlen(srv.socket) + 32;
  srv.server_env = malloc(n);
  snprintf(srv.server_env, n, "SPE_SERVER=unix:%s", srv.socket);
  srv.port = free_port();
  snprintf(srv.tcp_address, sizeof srv.tcp_address, "127.0.0.1:%d", srv.port);
  const char *args[] = {"--state", "sqlite:state.db", "--workers", "4", "--listen",
                        srv.tcp_address, "--token-file", srv.token_file, NULL};
  srv.pid = hc_server_start(srv.dir, srv.socket, args);
  return 0;
}

static int teardown_server(void **state) {
  (void)state;
  int status = hc_server_stop(srv.pid, SIGTERM);
  if (status != 0) fprintf(stderr, "spe serve exited with %d after SIGTERM\n", status);
  free(srv.dir);
  free(srv.socket);
  free(srv.server_env);
  free(srv.token_file);
  return status == 0 ? 0 : -1;
}

/* ---- The seed scenarios, through submit --start --wait ------------------------- */

static const char *const seed_files[] = {"good.json",   "returns-3.json",  "failing.json",
                                         "blocked.json", "downstream.json", "two-upstreams.json",
                                         "chain.json",  "timed-out-upstream.json"};
enum { S_GOOD, S_RETURNS_3, S_FAILING, S_BLOCKED, S_DOWNSTREAM, S_TWO_UP, S_CHAIN, S_TIMED_OUT,
       S_COUNT };
static json_t *seed_jobs; /* submit --wait --json's lines, in file order */

static const char *jid(const json_t *job) { return json_string_value(json_object_get(job, "id")); }

static void assert_job(const json_t *job, const char *name, const char *status) {
  assert_string_equal(json_string_value(json_object_get(job, "name")), name);
  assert_string_equal(json_string_value(json_object_get(job, "status")), status);
}

static void seed_scenarios_submitted_and_waited_for(void **state) {
  (void)state;
  const char *args[S_COUNT + 8];
  char *paths[S_COUNT];
  size_t n = 0;
  args[n++] = "submit";
  args[n++] = "--wait";
  args[n++] = "--json";
  for (int i = 0; i < S_COUNT; i++) args[n++] = paths[i] = job_file(seed_files[i]);
  args[n] = NULL;
  struct cli_result r;
  cli_run_env(&r, srv.dir, args, client_env());
  for (int i = 0; i < S_COUNT; i++) free(paths[i]);
  expect_status(&r, 1, "spe submit --wait (some seed jobs fail)");
  seed_jobs = cli_parse_ndjson(r.out);
  assert_int_equal(json_array_size(seed_jobs), S_COUNT);
  cli_result_free(&r);

  json_t *good = json_array_get(seed_jobs, S_GOOD);
  assert_job(good, "good", "succeeded");
  assert_int_equal(strlen(jid(good)), 26);
  assert_string_equal(json_string_value(cli_task_result(good, "hello")), "hello");
  json_t *shout = cli_task_result(good, "shout");
  assert_string_equal(json_string_value(json_object_get(shout, "HELLO")), "HELLO");

  json_t *three = json_array_get(seed_jobs, S_RETURNS_3);
  assert_job(three, "returns-3", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(three, "three")), 3);

  json_t *failing = json_array_get(seed_jobs, S_FAILING);
  assert_job(failing, "failing", "failed");
  assert_string_equal(cli_error_kind(failing, "fail"), "exit");
  assert_int_equal(cli_error_int(failing, "fail", "exit_code"), 1);

  json_t *blocked = json_array_get(seed_jobs, S_BLOCKED);
  assert_job(blocked, "blocked", "failed");
  assert_string_equal(cli_task_status(blocked, "down"), "not_run");
  assert_string_equal(cli_task_status(blocked, "further"), "not_run");
  assert_int_equal(json_integer_value(cli_task_result(blocked, "aside")), 4);

  json_t *down = json_array_get(seed_jobs, S_DOWNSTREAM);
  assert_job(down, "downstream", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(down, "nine")), 9);

  json_t *two = json_array_get(seed_jobs, S_TWO_UP);
  assert_job(two, "two-upstreams", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(two, "sum")), 26);

  json_t *chain = json_array_get(seed_jobs, S_CHAIN);
  assert_job(chain, "chain", "succeeded");
  assert_int_equal(json_integer_value(cli_task_result(chain, "third")), 40);

  json_t *timed = json_array_get(seed_jobs, S_TIMED_OUT);
  assert_job(timed, "timed-out-upstream", "failed");
  assert_string_equal(cli_error_kind(timed, "slow"), "timeout");
  assert_string_equal(cli_task_status(timed, "after"), "not_run");
  /* The timeout is 200 ms; the task's own times say it was stopped then. */
  json_int_t took = cli_task_int(timed, "slow", "finished_ms") -
                    cli_task_int(timed, "slow", "started_ms");
  assert_true(took >= 190 && took < 1500);
}

/* Without --json, submit prints the ids; with --wait, then a line per job. */
static void submit_prints_ids_then_how_each_went(void **state) {
  (void)state;
  char *good = job_file("good.json"), *failing = job_file("failing.json");
  struct cli_result r;
  spe(&r, "submit", "--wait", good, failing, NULL);
  expect_status(&r, 1, "spe submit --wait good failing");
  char id1[27] = "", id2[27] = "";
  assert_int_equal(sscanf(r.out, "%26s\n%26s\n", id1, id2), 2);
  assert_int_equal(strlen(id1), 26);
  assert_non_null(strstr(r.out, "\"good\": succeeded in "));
  assert_non_null(strstr(r.out, "\"failing\": failed in "));
  assert_non_null(strstr(r.out, "(1 task: 1 failed)"));
  cli_result_free(&r);
  free(good);
  free(failing);
}

static void result_prints_the_job_and_exits_by_its_status(void **state) {
  (void)state;
  assert_non_null(seed_jobs);
  struct cli_result r;
  json_t *good = json_array_get(seed_jobs, S_GOOD);
  spe(&r, "result", jid(good), NULL);
  expect_status(&r, 0, "spe result (good)");
  json_t *got = json_loads(r.out, 0, NULL);
  assert_true(json_equal(got, good));
  json_decref(got);
  cli_result_free(&r);

  spe(&r, "result", jid(json_array_get(seed_jobs, S_FAILING)), NULL);
  expect_status(&r, 1, "spe result (failing)");
  got = json_loads(r.out, 0, NULL);
  assert_job(got, "failing", "failed");
  json_decref(got);
  cli_result_free(&r);

  /* A watch that starts after the job's end prints nothing and ends at once,
   * by the job's status. */
  spe(&r, "watch", "--after", "999999999", jid(json_array_get(seed_jobs, S_FAILING)), NULL);
  expect_status(&r, 1, "spe watch --after (a failed job that ended before)");
  assert_string_equal(r.out, "");
  cli_result_free(&r);
}

static void status_shows_the_tasks_as_a_table(void **state) {
  (void)state;
  assert_non_null(seed_jobs);
  json_t *blocked = json_array_get(seed_jobs, S_BLOCKED);
  struct cli_result r;
  spe(&r, "status", jid(blocked), NULL);
  expect_status(&r, 0, "spe status ID");
  /* The job's line, then the table in file order. */
  assert_non_null(strstr(r.out, "\"blocked\": failed in "));
  assert_non_null(strstr(r.out, "(4 tasks: 1 succeeded, 1 failed, 2 not run)"));
  const char *header = strstr(r.out, "TASK ");
  assert_non_null(header);
  const char *up = strstr(header, "\nup "), *down = strstr(header, "\ndown "),
             *further = strstr(header, "\nfurther "), *aside = strstr(header, "\naside ");
  assert_true(up != NULL && down > up && further > down && aside > further);
  assert_non_null(strstr(up, "failed"));
  assert_non_null(strstr(down, "blocked by up"));
  assert_non_null(strstr(aside, "succeeded"));
  cli_result_free(&r);

  spe(&r, "status", "--json", jid(blocked), NULL);
  expect_status(&r, 0, "spe status --json ID");
  json_t *got = json_loads(r.out, 0, NULL);
  assert_true(json_equal(got, blocked));
  json_decref(got);
  cli_result_free(&r);

  /* Without an id: the recent jobs. */
  spe(&r, "status", NULL);
  expect_status(&r, 0, "spe status");
  assert_non_null(strstr(r.out, "ID "));
  assert_non_null(strstr(r.out, jid(blocked)));
  cli_result_free(&r);
}

/* Whether `jobs` (summaries) holds a job with this id. */
static int has_id(const json_t *jobs, const char *id) {
  size_t i;
  json_t *j;
  json_array_foreach(jobs, i, j) if (strcmp(jid(j), id) == 0) return 1;
  return 0;
}

static void list_shows_jobs_newest_first_and_filters_them(void **state) {
  (void)state;
  assert_non_null(seed_jobs);
  struct cli_result r;
  spe(&r, "list", "--json", "--limit", "1000", NULL);
  expect_status(&r, 0, "spe list --json");
  json_t *all = cli_parse_ndjson(r.out);
  cli_result_free(&r);
  size_t i;
  json_t *j;
  json_array_foreach(seed_jobs, i, j) assert_true(has_id(all, jid(j)));
  /* Newest first: ids (ULIDs) fall. */
  for (i = 1; i < json_array_size(all); i++)
    assert_true(strcmp(jid(json_array_get(all, i - 1)), jid(json_array_get(all, i))) > 0);
  json_t *first = json_array_get(all, 0);
  assert_non_null(json_object_get(first, "submitted_ms"));
  assert_non_null(json_object_get(first, "name"));

  spe(&r, "list", "--json", "--status", "failed", "--limit", "1000", NULL);
  expect_status(&r, 0, "spe list --status failed");
  json_t *failed = cli_parse_ndjson(r.out);
  cli_result_free(&r);
  assert_true(json_array_size(failed) >= 3);
  json_array_foreach(failed, i, j)
    assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
  assert_true(has_id(failed, jid(json_array_get(seed_jobs, S_BLOCKED))));
  assert_false(has_id(failed, jid(json_array_get(seed_jobs, S_GOOD))));

  spe(&r, "list", "--limit", "2", NULL);
  expect_status(&r, 0, "spe list --limit 2");
  /* A header and two rows: the two newest jobs. */
  assert_non_null(strstr(r.out, "ID "));
  assert_non_null(strstr(r.out, jid(json_array_get(all, 0))));
  assert_non_null(strstr(r.out, jid(json_array_get(all, 1))));
  int lines = 0;
  for (const char *p = r.out; *p != '\0'; p++) lines += *p == '\n';
  assert_int_equal(lines, 3);
  cli_result_free(&r);

  spe(&r, "list", "--status", "bogus", NULL);
  expect_status(&r, 2, "spe list --status bogus");
  cli_result_free(&r);
  json_decref(all);
  json_decref(failed);
}

/* Start `spe watch ARGS...` in the background in dir/NAME; its output goes to
 * dir/NAME/.stdout. */
static pid_t spawn_watch(const char *name, char **dir_out, const char *const *args) {
  char *dir = cli_path_join(srv.dir, name);
  mkdir(dir, 0755);
  *dir_out = dir;
  return cli_spawn(dir, args, client_env(), NULL, -1);
}

struct file_has {
  const char *path, *needle;
};

static int file_has(void *ctx) {
  struct file_has *f = ctx;
  char *text = cli_read_file(f->path, NULL);
  int yes = text != NULL && strstr(text, f->needle) != NULL;
  free(text);
  return yes;
}

static void submit_then_start_while_watching(void **state) {
  (void)state;
  char *good = job_file("good.json");
  struct cli_result r;
  spe(&r, "submit", good, NULL);
  expect_status(&r, 0, "spe submit good.json");
  char id[27];
  assert_int_equal(sscanf(r.out, "%26s", id), 1);
  cli_result_free(&r);
  free(good);

  char *wdir;
  const char *wargs[] = {"watch", "--json", id, NULL};
  pid_t watch = spawn_watch("watch-start", &wdir, wargs);

  spe(&r, "status", "--json", id, NULL);
  expect_status(&r, 0, "spe status (submitted)");
  json_t *job = json_loads(r.out, 0, NULL);
  assert_job(job, "good", "submitted");
  json_decref(job);
  cli_result_free(&r);

  spe(&r, "start", id, NULL);
  expect_status(&r, 0, "spe start");
  assert_non_null(strstr(r.out, "started"));
  cli_result_free(&r);
  spe(&r, "start", id, NULL);
  expect_status(&r, 2, "spe start (a second time)");
  assert_non_null(strstr(r.err, "spe start: "));
  assert_non_null(strstr(r.err, id));
  cli_result_free(&r);

  /* The watch ends with the job, by its status, and saw its whole story. */
  struct cli_result w;
  cli_finish(&w, watch, wdir);
  expect_status(&w, 0, "spe watch ID");
  json_t *events = cli_parse_ndjson(w.out);
  size_t n = json_array_size(events);
  assert_true(n >= 7);
  assert_string_equal(json_string_value(json_object_get(json_array_get(events, 0), "type")),
                      "job_submitted");
  assert_string_equal(json_string_value(json_object_get(json_array_get(events, n - 1), "type")),
                      "job_finished");
  json_int_t prev = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev) {
    assert_string_equal(json_string_value(json_object_get(ev, "job")), id);
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    assert_true(seq > prev);
    prev = seq;
  }
  json_t *started = cli_events_where(events, "task_started", id, NULL);
  assert_int_equal(json_array_size(started), 2);
  json_decref(started);
  json_decref(events);
  cli_result_free(&w);

  /* The same history, as lines for people. */
  const char *largs[] = {"watch", id, NULL};
  cli_run_env(&w, srv.dir, largs, client_env());
  expect_status(&w, 0, "spe watch ID (text)");
  assert_non_null(strstr(w.out, ": task \"hello\" succeeded (attempt 1"));
  assert_non_null(strstr(w.out, ": finished: succeeded in "));
  cli_result_free(&w);
  free(wdir);
}

static void cancel_a_running_job(void **state) {
  (void)state;
  char *file = cli_path_join(srv.dir, "hang.json");
  cli_write_file(file,
                 "{\"name\": \"hang\", \"tasks\": ["
                 "{\"name\": \"wait\", \"cmd\": \"while [ ! -e never-made ]; do sleep 0.05; done\","
                 " \"enables\": [\"after\"]},"
                 "{\"name\": \"after\", \"cmd\": \"echo never\"}]}");
  struct cli_result r;
  spe(&r, "submit", "--start", file, NULL);
  expect_status(&r, 0, "spe submit --start hang.json");
  char id[27];
  assert_int_equal(sscanf(r.out, "%26s", id), 1);
  cli_result_free(&r);

  char *wdir;
  const char *wargs[] = {"watch", "--json", id, NULL};
  pid_t watch = spawn_watch("watch-cancel", &wdir, wargs);
  char *wout = cli_path_join(wdir, ".stdout");
  struct file_has running = {wout, "\"task_started\""};
  assert_true(cli_poll_until(file_has, &running, 10000));

  spe(&r, "cancel", id, NULL);
  expect_status(&r, 0, "spe cancel");
  cli_result_free(&r);
  struct cli_result w;
  cli_finish(&w, watch, wdir);
  expect_status(&w, 1, "spe watch of a cancelled job");
  assert_non_null(strstr(w.out, "\"job_cancelled\""));
  cli_result_free(&w);

  spe(&r, "result", id, NULL);
  expect_status(&r, 1, "spe result (cancelled)");
  json_t *job = json_loads(r.out, 0, NULL);
  assert_job(job, "hang", "cancelled");
  assert_string_equal(cli_error_kind(job, "wait"), "cancelled");
  assert_string_equal(cli_task_status(job, "after"), "not_run");
  json_decref(job);
  cli_result_free(&r);

  spe(&r, "cancel", id, NULL);
  expect_status(&r, 2, "spe cancel (a finished job)");
  cli_result_free(&r);
  free(wout);
  free(wdir);
  free(file);
}

static void refused_requests_name_the_problem(void **state) {
  (void)state;
  struct cli_result r;
  char *cycle = job_file("invalid-cycle.json");
  spe(&r, "submit", cycle, NULL);
  expect_status(&r, 2, "spe submit (a cycle)");
  assert_non_null(strstr(r.err, "invalid-cycle.json: "));
  assert_non_null(strstr(r.err, "cycle"));
  assert_string_equal(r.out, "");
  cli_result_free(&r);
  free(cycle);

  spe(&r, "result", "01NOSUCHJOB000000000000000", NULL);
  expect_status(&r, 2, "spe result (unknown id)");
  assert_non_null(strstr(r.err, "spe result: "));
  cli_result_free(&r);

  spe(&r, "submit", "no-such-file.json", NULL);
  expect_status(&r, 2, "spe submit (no such file)");
  assert_non_null(strstr(r.err, "no-such-file.json"));
  cli_result_free(&r);

  /* No server there: 3, naming the address. */
  const char *args[] = {"list", "--server", "unix:/nonexistent/spe.sock", NULL};
  cli_run(&r, srv.dir, args);
  expect_status(&r, 3, "spe list (no server)");
  assert_non_null(strstr(r.err, "cannot reach the server at unix:/nonexistent/spe.sock"));
  cli_result_free(&r);

  spe(&r, "watch", "--server", "ftp://x", NULL);
  expect_status(&r, 2, "spe watch --server ftp://x");
  cli_result_free(&r);
  spe(&r, "prune", NULL);
  expect_status(&r, 2, "spe prune without --older-than");
  cli_result_free(&r);
}

static void a_token_over_tcp(void **state) {
  (void)state;
  char server[96];
  snprintf(server, sizeof server, "http://%s", srv.tcp_address);
  struct cli_result r;
  spe(&r, "list", "--server", server, NULL);
  expect_status(&r, 2, "spe list over TCP without a token");
  assert_non_null(strstr(r.err, "spe list: "));
  cli_result_free(&r);

  char *wrong = cli_path_join(srv.dir, "wrong-token");
  cli_write_file(wrong, "not-the-token-but-long-enough\n");
  spe(&r, "list", "--server", server, "--token-file", wrong, NULL);
  expect_status(&r, 2, "spe list over TCP with a wrong token");
  cli_result_free(&r);
  free(wrong);

  spe(&r, "list", "--json", "--server", server, "--token-file", srv.token_file, NULL);
  expect_status(&r, 0, "spe list over TCP with the token");
  json_t *jobs = cli_parse_ndjson(r.out);
  assert_true(json_array_size(jobs) > 0);
  json_decref(jobs);
  cli_result_free(&r);
}

static void prune_removes_finished_jobs_only(void **state) {
  (void)state;
  char *good = job_file("good.json");
  struct cli_result r;
  spe(&r, "submit", good, NULL); /* stays submitted: never pruned */
  expect_status(&r, 0, "spe submit");
  char kept[27];
  assert_int_equal(sscanf(r.out, "%26s", kept), 1);
  cli_result_free(&r);
  free(good);

  /* The endpoint refuses an age that is not a number of milliseconds. */
  assert_int_equal(hc_request(srv.socket, "POST", "/v1/prune?older_than_ms=soon", NULL, NULL),
                   400);
  assert_int_equal(hc_request(srv.socket, "POST", "/v1/prune", NULL, NULL), 400);

  spe(&r, "prune", "--older-than", "1d", NULL);
  expect_status(&r, 0, "spe prune --older-than 1d");
  assert_string_equal(r.out, "pruned 0 jobs\n");
  cli_result_free(&r);

  spe(&r, "list", "--json", "--limit", "1000", NULL);
  json_t *before = cli_parse_ndjson(r.out);
  cli_result_free(&r);
  spe(&r, "prune", "--older-than", "0s", "--json", NULL);
  expect_status(&r, 0, "spe prune --older-than 0s");
  json_t *answer = json_loads(r.out, 0, NULL);
  assert_int_equal(json_integer_value(json_object_get(answer, "pruned")),
                   json_array_size(before) - 1);
  json_decref(answer);
  cli_result_free(&r);

  spe(&r, "list", "--json", NULL);
  json_t *after = cli_parse_ndjson(r.out);
  assert_int_equal(json_array_size(after), 1);
  assert_string_equal(jid(json_array_get(after, 0)), kept);
  cli_result_free(&r);
  spe(&r, "result", jid(json_array_get(seed_jobs, S_GOOD)), NULL);
  expect_status(&r, 2, "spe result of a pruned job");
  cli_result_free(&r);
  json_decref(before);
  json_decref(after);
}

/* ---- kill -9 of the server ------------------------------------------------------ */

#define K_JOBS 4

/* Each task appends "JOB TASK ATTEMPT" to log.txt when it starts; b waits for
 * the file "go", and writes its shell's pid (its process group) first. */
static const char kill9_job[] =
    "{\"name\": \"%s\", \"tasks\": ["
    "{\"name\": \"a\", \"cmd\": \"echo \\\"$SPE_JOB_NAME a $SPE_ATTEMPT\\\" >> log.txt; echo 1\","
    " \"enables\": [\"b\"]},"
    "{\"name\": \"b\", \"cmd\": \"echo \\\"$SPE_JOB_NAME b $SPE_ATTEMPT\\\" >> log.txt;"
    " echo $$ > pid-$SPE_JOB_NAME-$SPE_ATTEMPT; while [ ! -e go ]; do sleep 0.02; done; echo 2\","
    " \"enables\": [\"c\"]},"
    "{\"name\": \"c\", \"cmd\": \"echo \\\"$SPE_JOB_NAME c $SPE_ATTEMPT\\\" >> log.txt; echo 3\"}]}";

struct kill9 {
  char *dir, *socket, *env;
  char *watch_out;
  char ids[K_JOBS + 1][27]; /* the last one is submitted but not started */
};

static void k_spe(struct kill9 *k, struct cli_result *r, const char *const *args) {
  const char *env[] = {k->env, NULL};
  cli_run_env(r, k->dir, args, env);
}

/* The watch's output holds, for every started job, a's success and b's start;
 * with `finished`, every job's job_finished. */
struct k_wait {
  struct kill9 *k;
  int finished;
};

/* The complete lines of a file another process is writing, as JSON objects. */
static json_t *complete_lines(const char *path) {
  char *text = cli_read_file(path, NULL);
  if (text == NULL) return json_array();
  char *end = strrchr(text, '\n');
  if (end == NULL) end = text;
  *end = '\0';
  json_t *all = cli_parse_ndjson(text);
  free(text);
  return all;
}

static int has_event(const json_t *events, const char *job, const char *type, const char *task) {
  json_t *found = cli_events_where(events, type, job, task);
  int yes = json_array_size(found) > 0;
  json_decref(found);
  return yes;
}

static int watch_saw(void *ctx) {
  struct k_wait *w = ctx;
  json_t *events = complete_lines(w->k->watch_out);
  int n = 0, njobs = w->finished ? K_JOBS + 1 : K_JOBS;
  for (int j = 0; j < njobs; j++) {
    const char *id = w->k->ids[j];
    if (w->finished ? has_event(events, id, "job_finished", NULL)
                    : has_event(events, id, "task_terminated", "a") &&
                          has_event(events, id, "task_started", "b"))
      n++;
  }
  json_decref(events);
  return n == njobs;
}

/* Count the lines of log.txt equal to "NAME TASK ATTEMPT". */
static int log_lines(const char *log, const char *line) {
  int n = 0;
  size_t len = strlen(line);
  for (const char *p = log; (p = strstr(p, line)) != NULL; p += len)
    if ((p == log || p[-1] == '\n') && p[len] == '\n') n++;
  return n;
}

static int all_finished(void *ctx, const json_t *events) {
  int *want = ctx, n = 0;
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev)
    n += strcmp(json_string_value(json_object_get(ev, "type")), "job_finished") == 0;
  return n == *want;
}

static void kill_leftover_tasks(struct kill9 *k) {
  for (int j = 0; j < K_JOBS; j++) {
    char name[64];
    snprintf(name, sizeof name, "pid-k%d-1", j);
    char *path = cli_path_join(k->dir, name);
    char *text = cli_read_file(path, NULL);
    if (text != NULL && atoi(text) > 0) kill(-atoi(text), SIGKILL);
    free(text);
    free(path);
  }
}

static void kill9_of_the_server_with_jobs_running(void **state) {
  (void)state;
  struct kill9 k = {0};
  k.dir = cli_fresh_dir("client-kill9");
  k.socket = cli_path_join(k.dir, "spe.sock");
  size_t n = strlen(k.socket) + 32;
  k.env = malloc(n);
  snprintf(k.env, n, "SPE_SERVER=unix:%s", k.socket);
  const char *sargs[] = {"--state", "sqlite:state.db", "--workers", "8", NULL};
  pid_t server = hc_server_start(k.dir, k.socket, sargs);

  /* A watch of every event from the first, before anything happens. */
  char *wdir = cli_path_join(k.dir, "watch");
  mkdir(wdir, 0755);
  k.watch_out = cli_path_join(wdir, ".stdout");
  const char *wargs[] = {"watch", "--json", "--after", "0", NULL};
  const char *env[] = {k.env, NULL};
  pid_t watch = cli_spawn(wdir, wargs, env, NULL, -1);

  for (int j = 0; j <= K_JOBS; j++) {
    char name[16], file[32], text[sizeof kill9_job + 16];
    snprintf(name, sizeof name, "k%d", j);
    snprintf(file, sizeof file, "%s.json", name);
    snprintf(text, sizeof text, kill9_job, name);
    char *path = cli_path_join(k.dir, file);
    cli_write_file(path, text);
    const char *args[] = {"submit", j < K_JOBS ? "--start" : "--json", path, NULL};
    struct cli_result r;
    k_spe(&k, &r, args);
    expect_status(&r, 0, "spe submit");
    if (j < K_JOBS) {
      assert_int_equal(sscanf(r.out, "%26s", k.ids[j]), 1);
    } else {
      json_t *line = json_loads(r.out, 0, NULL);
      snprintf(k.ids[j], sizeof k.ids[j], "%s", json_string_value(json_object_get(line, "id")));
      json_decref(line);
    }
    cli_result_free(&r);
    free(path);
  }

  /* Every a has ended (recorded: its event was published) and every b runs. */
  struct k_wait running = {&k, 0};
  assert_true(cli_poll_until(watch_saw, &running, 20000));
  assert_int_equal(hc_server_stop(server, SIGKILL), 128 + SIGKILL);
  /* The machine went down with it: so do the tasks it had started. */
  kill_leftover_tasks(&k);

  server = hc_server_start(k.dir, k.socket, sargs);
  char *go = cli_path_join(k.dir, "go");
  cli_write_file(go, "");
  struct cli_result r;
  const char *start[] = {"start", k.ids[K_JOBS], NULL};
  k_spe(&k, &r, start);
  expect_status(&r, 0, "spe start after the restart");
  cli_result_free(&r);

  struct k_wait done = {&k, 1};
  assert_true(cli_poll_until(watch_saw, &done, 30000));
  kill(watch, SIGTERM);
  struct cli_result w;
  cli_finish(&w, watch, wdir);
  json_t *seen = cli_parse_ndjson(w.out);
  cli_result_free(&w);

  /* Every job completed, with every result. */
  for (int j = 0; j <= K_JOBS; j++) {
    const char *args[] = {"result", k.ids[j], NULL};
    k_spe(&k, &r, args);
    expect_status(&r, 0, "spe result after the restart");
    json_t *job = json_loads(r.out, 0, NULL);
    assert_int_equal(json_integer_value(cli_task_result(job, "c")), 3);
    assert_int_equal(cli_task_int(job, "b", "attempts"), j < K_JOBS ? 2 : 1);
    json_decref(job);
    cli_result_free(&r);
  }

  /* No task whose end was recorded ran again: a once; b cut short once. */
  char *log_path = cli_path_join(k.dir, "log.txt");
  char *log = cli_read_file(log_path, NULL);
  assert_non_null(log);
  for (int j = 0; j <= K_JOBS; j++) {
    char line[64];
    snprintf(line, sizeof line, "k%d a 1", j);
    assert_int_equal(log_lines(log, line), 1);
    snprintf(line, sizeof line, "k%d a 2", j);
    assert_int_equal(log_lines(log, line), 0);
    snprintf(line, sizeof line, "k%d b 1", j);
    assert_int_equal(log_lines(log, line), 1);
    snprintf(line, sizeof line, "k%d b 2", j);
    assert_int_equal(log_lines(log, line), j < K_JOBS ? 1 : 0);
    snprintf(line, sizeof line, "k%d c 1", j);
    assert_int_equal(log_lines(log, line), 1);
  }

  /* The watch saw the store's whole event log, once: the same seqs, rising by
   * one from 1, across the restart (it holds the recovery's events). */
  int want = K_JOBS + 1;
  json_t *log_events = hc_read_events(k.socket, NULL, 0, all_finished, &want, 10000);
  assert_int_equal(json_array_size(seen), json_array_size(log_events));
  size_t i;
  json_t *ev;
  json_array_foreach(seen, i, ev) {
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), (json_int_t)i + 1);
    assert_true(json_equal(ev, json_array_get(log_events, i)));
  }
  json_t *recovered = cli_events_where(seen, "job_recovered", NULL, NULL);
  assert_int_equal(json_array_size(recovered), K_JOBS + 1);
  json_decref(recovered);
  cli_check_event_stream(seen, 0, INT64_MAX / 2);

  assert_int_equal(hc_server_stop(server, SIGTERM), 0);
  json_decref(seen);
  json_decref(log_events);
  free(log);
  free(log_path);
  free(go);
  free(wdir);
  free(k.watch_out);
  free(k.env);
  free(k.socket);
  free(k.dir);
}

int main(void) {
  const struct CMUnitTest shared[] = {
      cmocka_unit_test(seed_scenarios_submitted_and_waited_for),
      cmocka_unit_test(submit_prints_ids_then_how_each_went),
      cmocka_unit_test(result_prints_the_job_and_exits_by_its_status),
      cmocka_unit_test(status_shows_the_tasks_as_a_table),
      cmocka_unit_test(list_shows_jobs_newest_first_and_filters_them),
      cmocka_unit_test(submit_then_start_while_watching),
      cmocka_unit_test(cancel_a_running_job),
      cmocka_unit_test(refused_requests_name_the_problem),
      cmocka_unit_test(a_token_over_tcp),
      cmocka_unit_test(prune_removes_finished_jobs_only),
  };
  const struct CMUnitTest own_server[] = {
      cmocka_unit_test(kill9_of_the_server_with_jobs_running),
  };
  int failed = cmocka_run_group_tests_name("client", shared, setup_server, teardown_server);
  failed += cmocka_run_group_tests_name("client_kill9", own_server, NULL, NULL);
  json_decref(seed_jobs);
  return failed;
}
