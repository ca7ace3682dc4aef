/* Talking to a real `spe serve` from tests: process, requests, event stream. */
#include "support/curl_util.h"
#include "support/cli_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static const char *server_bin(void) {
  const char *s = getenv("SPE_SERVER_BIN");
  return s != NULL && s[0] != '\0' ? s : cli_bin();
}

struct health_ctx {
  const char *socket;
  pid_t pid;
};

static int healthy(void *ctx) {
  struct health_ctx *h = ctx;
  if (cli_process_gone(h->pid)) return 1; /* checked by the caller */
  return hc_request(h->socket, "GET", "/v1/health", NULL, NULL) == 200;
}

pid_t hc_server_start(const char *dir, const char *socket, const char *const *args) {
  const char *argv[64];
  size_t n = 0;
  argv[n++] = server_bin();
  argv[n++] = "serve";
  argv[n++] = "--socket";
  argv[n++] = socket;
  while (args != NULL && *args != NULL && n < 62) argv[n++] = *args++;
  argv[n] = NULL;
  char *log = cli_path_join(dir, "server.log");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addchdir_np(&fa, dir);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) fail_msg("cannot start %s: %s", argv[0], strerror(rc));
  struct health_ctx h = {socket, pid};
  int up = cli_poll_until(healthy, &h, 20000);
  if (!up || cli_process_gone(pid)) {
    char *text = cli_read_file(log, NULL);
    fail_msg("spe serve did not come up on %s; its log:\n%.3000s", socket,
             text != NULL ? text : "");
  }
  free(log);
  return pid;
}

int hc_server_stop(pid_t pid, int sig) {
  kill(pid, sig);
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

struct hc_client {
  CURL *curl;
  char *socket;
  double last_us;
};

struct hc_buf {
  char *p;
  size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *ud) {
  struct hc_buf *b = ud;
  char *bigger = realloc(b->p, b->len + size * n + 1);
  if (bigger == NULL) return 0;
  b->p = bigger;
  memcpy(b->p + b->len, p, size * n);
  b->len += size * n;
  b->p[b->len] = '\0';
  return size * n;
}

struct hc_client *hc_client_new(const char *socket) {
  pthread_once(&curl_once, curl_init);
  struct hc_client *hc = calloc(1, sizeof *hc);
  assert_non_null(hc);
  hc->curl = curl_easy_init();
  hc->socket = strdup(socket);
  assert_non_null(hc->curl);
  return hc;
}

void hc_client_free(struct hc_client *hc) {
  if (hc == NULL) return;
  curl_easy_cleanup(hc->curl);
  free(hc->socket);
  free(hc);
}

double hc_client_last_us(const struct hc_client *hc) { return hc->last_us; }

static void setup(CURL *c, const char *socket, const char *path, struct curl_slist *headers) {
  char url[1024];
  snprintf(url, sizeof url, "http://localhost%s", path);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
}

long hc_client_request(struct hc_client *hc, const char *method, const char *path,
                       const char *body, json_t **out) {
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  struct hc_buf got = {0};
  setup(hc->curl, hc->socket, path, headers);
  curl_easy_setopt(hc->curl, CURLOPT_TIMEOUT_MS, 60000L);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(hc->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(hc->curl, CURLOPT_POSTFIELDS, body != NULL ? body : "");
    curl_easy_setopt(hc->curl, CURLOPT_POSTFIELDSIZE, (long)(body != NULL ? strlen(body) : 0));
  }
  curl_easy_setopt(hc->curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(hc->curl, CURLOPT_WRITEDATA, &got);
  CURLcode rc = curl_easy_perform(hc->curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(hc->curl, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t us = 0;
  curl_easy_getinfo(hc->curl, CURLINFO_TOTAL_TIME_T, &us);
  hc->last_us = (double)us;
  curl_slist_free_all(headers);
  if (out != NULL) *out = got.len > 0 ? json_loadb(got.p, got.len, 0, NULL) : NULL;
  free(got.p);
  return status;
}

long hc_request(const char *socket, const char *method, const char *path, const char *body,
                json_t **out) {
  struct hc_client *hc = hc_client_new(socket);
  long status = hc_client_request(hc, method, path, body, out);
  hc_client_free(hc);
  return status;
}

/* The event stream, parsed as it arrives. */
struct sse_read {
  struct hc_buf line, data;
  json_t *events;
  int (*done)(void *ctx, const json_t *events);
  void *ctx;
  int finished;
};

static int sse_line(struct sse_read *s, const char *line, size_t len) {
  if (len == 0) {
    if (s->data.len == 0) return 0;
    json_t *ev = json_loadb(s->data.p, s->data.len, 0, NULL);
    if (ev == NULL) fail_msg("an event that is not JSON: %s", s->data.p);
    json_array_append_new(s->events, ev);
    s->data.len = 0;
    if (s->done(s->ctx, s->events)) s->finished = 1;
    return s->finished;
  }
  if (len >= 5 && memcmp(line, "data:", 5) == 0) {
    const char *v = line + 5;
    if (*v == ' ') v++;
    collect((char *)v, 1, len - (size_t)(v - line), &s->data);
  }
  return 0;
}

static size_t sse_bytes(char *p, size_t size, size_t n, void *ud) {
  struct sse_read *s = ud;
  for (size_t i = 0; i < size * n; i++) {
    if (p[i] != '\n') {
      collect(p + i, 1, 1, &s->line);
      continue;
    }
    size_t len = s->line.len;
    if (len > 0 && s->line.p[len - 1] == '\r') len--;
    s->line.len = 0;
    if (sse_line(s, s->line.p != NULL ? s->line.p : "", len)) return 0;
  }
  return size * n;
}

json_t *hc_read_events(const char *socket, const char *job, int64_t after,
                       int (*done)(void *ctx, const json_t *events), void *ctx,
                       int timeout_ms) {
  pthread_once(&curl_once, curl_init);
  CURL *c = curl_easy_init();
  assert_non_null(c);
  char path[256];
  snprintf(path, sizeof path, "/v1/events?after=%lld%s%s", (long long)after,
           job != NULL ? "&job=" : "", job != NULL ? job : "");
  struct curl_slist *headers = curl_slist_append(NULL, "Accept: text/event-stream");
  struct sse_read s = {.events = json_array(), .done = done, .ctx = ctx};
  setup(c, socket, path, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_bytes);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  free(s.line.p);
  free(s.data.p);
  if (!s.finished)
    fail_msg("the event stream ended (%s) before the expected events came; %zu events read",
             curl_easy_strerror(rc), json_array_size(s.events));
  return s.events;
}

long hc_rss_kb(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  char *text = cli_read_file(path, NULL);
  if (text == NULL) return -1;
  const char *line = strstr(text, "VmRSS:");
  long kb = line != NULL ? strtol(line + 6, NULL, 10) : -1;
  free(text);
  return kb;
}
