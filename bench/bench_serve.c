/*
 * `spe serve` under load: CLIENTS threads, each with one HTTP connection over
 * the Unix socket, submit JOBS one-task jobs ({"argv": ["true"]}) between them
 * with POST /v1/jobs?start=true, as fast as the answers come back; one more
 * connection follows GET /v1/events and notes when each job_finished arrives.
 * Run once with the memory store and once with SQLite, side by side:
 *
 *   build/bench/bench_serve [JOBS [CLIENTS [WORKERS]]]     (defaults 4000 8 2)
 *
 * Printed per store:
 *   - submit: the latency of POST ?start=true (until the 201, i.e. until the
 *     job and its start are durable), median and p99;
 *   - done: from the moment a job's POST was sent to its job_finished on the
 *     event stream, median and p99;
 *   - jobs/s: JOBS over the time from the first POST to the last job_finished
 *     (submitted, run and completed).
 *
 * The server is $SPE_BIN, else the `spe` of this build (../spe beside
 * bench/). Each store gets a fresh scratch folder, removed afterwards.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct bench {
  const char *spe, *store;
  char dir[PATH_MAX], sock[PATH_MAX];
  int jobs, clients, workers;
  pid_t server;
  /* Per job, by its index: */
  int64_t *sent_us, *answered_us, *finished_us;
  /* job id -> index, filled by the submitters, read by the event reader. */
  pthread_mutex_t lock;
  json_t *index;
  json_t *early; /* id -> finish time of a job_finished seen before its 201 */
  int finished, failures;
  int64_t first_sent_us, last_finished_us;
  double server_cpu0; /* the server's CPU seconds when it came up */
};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what) {
  fprintf(stderr, "bench_serve: %s\n", what);
  exit(1);
}

static CURL *connect_handle(struct bench *b, const char *path) {
  CURL *c = curl_easy_init();
  char url[256];
  snprintf(url, sizeof url, "http://localhost%s", path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, b->sock);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  return c;
}

struct body {
  char buf[256];
  size_t len;
};

static size_t keep(char *p, size_t size, size_t n, void *ud) {
  struct body *bd = ud;
  size_t add = size * n;
  size_t room = sizeof bd->buf - 1 - bd->len;
  memcpy(bd->buf + bd->len, p, add < room ? add : room);
  bd->len += add < room ? add : room;
  bd->buf[bd->len] = '\0';
  return add;
}

struct submitter {
  struct bench *b;
  int first, count;
  pthread_t thread;
};

/* Note job i's id; a job_finished that came first is matched now. */
static void note_id(struct bench *b, int i, const char *id) {
  pthread_mutex_lock(&b->lock);
  json_object_set_new(b->index, id, json_integer(i));
  json_t *early = json_object_get(b->early, id);
  if (early != NULL) b->finished_us[i] = (int64_t)json_integer_value(early);
  pthread_mutex_unlock(&b->lock);
}

static void *submit(void *arg) {
  struct submitter *s = arg;
  struct bench *b = s->b;
  static const char job[] = "{\"name\": \"bench\", \"tasks\": [{\"name\": \"t\", \"argv\": [\"true\"]}]}";
  CURL *c = connect_handle(b, "/v1/jobs?start=true");
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, job);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(sizeof job - 1));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
  for (int i = s->first; i < s->first + s->count; i++) {
    struct body bd = {.len = 0};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bd);
    b->sent_us[i] = now_us();
    CURLcode rc = curl_easy_perform(c);
    b->answered_us[i] = now_us();
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    json_t *reply = rc == CURLE_OK && status == 201 ? json_loads(bd.buf, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(reply, "id"));
    if (id != NULL) {
      note_id(b, i, id);
    } else {
      pthread_mutex_lock(&b->lock);
      if (b->failures++ == 0)
        fprintf(stderr, "bench_serve: a submit failed: %s, HTTP %ld %s\n", curl_easy_strerror(rc),
                status, bd.buf);
      b->finished++; /* it will never finish: do not wait for it */
      pthread_mutex_unlock(&b->lock);
    }
    json_decref(reply);
  }
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  return NULL;
}

/* The event stream: find "job_finished" events, note their arrival. */
struct reader {
  struct bench *b;
  char line[65536];
  size_t len;
  pthread_t thread;
};

static void on_data_line(struct reader *r, const char *data) {
  if (strstr(data, "\"job_finished\"") == NULL) return;
  int64_t t = now_us();
  json_t *ev = json_loads(data, 0, NULL);
  const char *id = json_string_value(json_object_get(ev, "job"));
  struct bench *b = r->b;
  pthread_mutex_lock(&b->lock);
  json_t *i = id != NULL ? json_object_get(b->index, id) : NULL;
  if (i != NULL)
    b->finished_us[json_integer_value(i)] = t;
  else if (id != NULL)
    json_object_set_new(b->early, id, json_integer(t));
  b->finished++;
  b->last_finished_us = t;
  pthread_mutex_unlock(&b->lock);
  json_decref(ev);
}

static size_t on_stream(char *p, size_t size, size_t n, void *ud) {
  struct reader *r = ud;
  for (size_t k = 0; k < size * n; k++) {
    if (p[k] != '\n') {
      if (r->len < sizeof r->line - 1) r->line[r->len++] = p[k];
      continue;
    }
    r->line[r->len] = '\0';
    if (strncmp(r->line, "data:", 5) == 0) on_data_line(r, r->line + 5);
    r->len = 0;
  }
  pthread_mutex_lock(&r->b->lock);
  int done = r->b->finished >= r->b->jobs;
  pthread_mutex_unlock(&r->b->lock);
  return done ? 0 : size * n; /* 0 ends the transfer */
}

static void *read_events(void *arg) {
  struct reader *r = arg;
  CURL *c = connect_handle(r->b, "/v1/events?after=0");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
  curl_easy_perform(c);
  curl_easy_cleanup(c);
  return NULL;
}

/* The server's commit counters from GET /metrics: how many, their total and
 * longest duration in seconds. */
static void commit_stats(struct bench *b, double *count, double *sum, double *max) {
  static char text[65536];
  memset(text, 0, sizeof text);
  CURL *c = connect_handle(b, "/metrics");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, NULL);
  FILE *f = fmemopen(text, sizeof text - 1, "w");
  curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
  curl_easy_perform(c);
  curl_easy_cleanup(c);
  fclose(f);
  *count = *sum = *max = 0;
  const char *p;
  if ((p = strstr(text, "\nspe_commit_seconds_count ")) != NULL) *count = atof(p + 27);
  if ((p = strstr(text, "\nspe_commit_seconds_sum ")) != NULL) *sum = atof(p + 25);
  if ((p = strstr(text, "\nspe_commit_seconds_max ")) != NULL) *max = atof(p + 25);
}

/* CPU seconds (user + system) a process has used, from /proc/PID/stat. */
static double cpu_seconds(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  unsigned long utime = 0, stime = 0;
  /* After ")": state, then fields 4..13, then utime (14) and stime (15). */
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                          &stime) != 2)
    return 0;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int healthy(struct bench *b) {
  CURL *c = connect_handle(b, "/v1/health");
  struct body bd = {.len = 0};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &bd);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return status == 200;
}

static void start_server(struct bench *b) {
  char workers[16], state[PATH_MAX + 16];
  snprintf(workers, sizeof workers, "%d", b->workers);
  snprintf(state, sizeof state, strcmp(b->store, "sqlite") == 0 ? "sqlite:%s/state.db" : "memory:",
           b->dir);
  char *argv[] = {(char *)b->spe, "serve", "--socket", b->sock, "--state", state, "--workers",
                  workers, "--log-level", "warn", NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (posix_spawn(&b->server, b->spe, &fa, NULL, argv, environ) != 0) die("cannot start spe serve");
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 2000 && !healthy(b); i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (!healthy(b)) die("spe serve did not answer on its socket");
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Median and p99 of the durations end[i] - start[i], in ms. */
static void percentiles(const int64_t *start, const int64_t *end, int n, double *p50,
                        double *p99) {
  int64_t *d = malloc((size_t)n * sizeof *d);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (end[i] > 0) d[m++] = end[i] - start[i];
  qsort(d, (size_t)m, sizeof *d, cmp64);
  *p50 = m > 0 ? d[m / 2] / 1000.0 : 0;
  *p99 = m > 0 ? d[(int)(m * 0.99) < m ? (int)(m * 0.99) : m - 1] / 1000.0 : 0;
  free(d);
}

static void run(struct bench *b) {
  char tmpl[] = "/tmp/spe-bench-serve-XXXXXX";
  if (mkdtemp(tmpl) == NULL) die("cannot make a scratch folder");
  snprintf(b->dir, sizeof b->dir, "%s", tmpl);
  snprintf(b->sock, sizeof b->sock, "%s/spe.sock", tmpl);
  b->sent_us = calloc((size_t)b->jobs, sizeof *b->sent_us);
  b->answered_us = calloc((size_t)b->jobs, sizeof *b->answered_us);
  b->finished_us = calloc((size_t)b->jobs, sizeof *b->finished_us);
  b->index = json_object();
  b->early = json_object();
  pthread_mutex_init(&b->lock, NULL);
  start_server(b);
  b->server_cpu0 = cpu_seconds(b->server);

  struct reader *r = calloc(1, sizeof *r);
  r->b = b;
  pthread_create(&r->thread, NULL, read_events, r);
  struct submitter *subs = calloc((size_t)b->clients, sizeof *subs);
  b->first_sent_us = now_us();
  for (int c = 0; c < b->clients; c++) {
    int per = b->jobs / b->clients, extra = c < b->jobs % b->clients;
    subs[c] = (struct submitter){b, c * per + (c < b->jobs % b->clients ? c : b->jobs % b->clients),
                                 per + extra, 0};
    pthread_create(&subs[c].thread, NULL, submit, &subs[c]);
  }
  for (int c = 0; c < b->clients; c++) pthread_join(subs[c].thread, NULL);
  int64_t submitted_us = now_us();
  pthread_join(r->thread, NULL);

  double s50, s99, d50, d99;
  percentiles(b->sent_us, b->answered_us, b->jobs, &s50, &s99);
  percentiles(b->sent_us, b->finished_us, b->jobs, &d50, &d99);
  double total_s = (b->last_finished_us - b->first_sent_us) / 1e6;
  double commits, commit_s, commit_max;
  commit_stats(b, &commits, &commit_s, &commit_max);
  double server_cpu = cpu_seconds(b->server) - b->server_cpu0;
  printf("  %-7s  submit p50 %6.2f ms  p99 %6.2f ms   done p50 %7.2f ms  p99 %7.2f ms   "
         "%6.0f jobs/s (all submitted in %.2f s, finished in %.2f s)%s\n",
         b->store, s50, s99, d50, d99, b->jobs / total_s,
         (submitted_us - b->first_sent_us) / 1e6, total_s,
         b->failures > 0 ? "  SUBMITS FAILED" : "");
  printf("           server CPU %.2f s (%.0f %% of one core), %.0f commits (mean %.2f ms, max "
         "%.1f ms, %.1f jobs per commit)\n",
         server_cpu, 100 * server_cpu / total_s, commits,
         commits > 0 ? 1000 * commit_s / commits : 0, 1000 * commit_max,
         commits > 0 ? b->jobs / commits : 0);
  fflush(stdout);

  kill(b->server, SIGTERM);
  waitpid(b->server, NULL, 0);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
  if (system(cmd) != 0) fprintf(stderr, "bench_serve: could not remove %s\n", b->dir);
  json_decref(b->index);
  json_decref(b->early);
  free(b->sent_us);
  free(b->answered_us);
  free(b->finished_us);
  free(subs);
  free(r);
}

int main(int argc, char **argv) {
  static char spe[PATH_MAX];
  const char *env = getenv("SPE_BIN");
  if (env != NULL && env[0] != '\0') {
    snprintf(spe, sizeof spe, "%s", env);
  } else {
    ssize_t n = readlink("/proc/self/exe", spe, sizeof spe - 8);
    if (n <= 0) die("cannot find the spe program: set SPE_BIN");
    spe[n] = '\0';
    char *slash = strrchr(spe, '/');
    *slash = '\0';
    slash = strrchr(spe, '/');
    snprintf(slash, sizeof spe - (size_t)(slash - spe), "/spe");
  }
  int jobs = argc > 1 ? atoi(argv[1]) : 4000;
  int clients = argc > 2 ? atoi(argv[2]) : 8;
  int workers = argc > 3 ? atoi(argv[3]) : 2;
  if (jobs < 1 || clients < 1 || workers < 1) die("usage: bench_serve [JOBS [CLIENTS [WORKERS]]]");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  printf("spe serve: %d one-task jobs ({\"argv\": [\"true\"]}) submitted with ?start=true by %d "
         "clients over the Unix socket, %d workers\n",
         jobs, clients, workers);
  const char *stores[] = {"memory", "sqlite"};
  for (int i = 0; i < 2; i++) {
    struct bench b = {.spe = spe, .store = stores[i], .jobs = jobs, .clients = clients,
                      .workers = workers};
    run(&b);
  }
  curl_global_cleanup();
  return 0;
}
