/* Driving `spe serve` from tests: the server process, curl, raw sockets. */
#include "support/http_util.h"

#include "support/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

/* ---- raw sockets ---- */

int raw_connect(const char *sock) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

void raw_send(int fd, const char *text) {
  size_t n = strlen(text), at = 0;
  while (at < n) {
    ssize_t w = send(fd, text + at, n - at, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail_msg("send: %s", strerror(errno));
    at += (size_t)w;
  }
}

char *raw_read_all(int fd, int timeout_ms, int *closed) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  int64_t deadline = cli_mono_ms() + timeout_ms;
  *closed = 0;
  for (;;) {
    int64_t left = deadline - cli_mono_ms();
    if (left <= 0) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) <= 0) continue;
    if (cap - len < 1024) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      *closed = 1;
      break;
    }
    len += (size_t)r;
  }
  buf[len] = '\0';
  return buf;
}

/* ---- running curl ---- */

static char *tmp_path(const char *what) {
  static int counter;
  const char *tmp = getenv("SPE_TEST_TMP");
  if (tmp == NULL) fail_msg("$SPE_TEST_TMP is not set");
  char name[96];
  snprintf(name, sizeof name, "http-%d-%d.%s", (int)getpid(), ++counter, what);
  return cli_path_join(tmp, name);
}

/* Run argv (argv[0] found in PATH) with stdout into `out_path`; returns the
 * exit status. */
static int run_program(char *const *argv, const char *out_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) fail_msg("cannot run %s: %s", argv[0], strerror(rc));
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) fail_msg("waitpid: %s", strerror(errno));
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

#define MAX_ARGS 40

static void curl(struct http_reply *r, const char *sock, const char *url, const char *method,
                 const char *body, const char *content_type, const char *token,
                 const char *const *extra) {
  memset(r, 0, sizeof *r);
  char *out = tmp_path("body"), *hdr = tmp_path("headers"), *code = tmp_path("code");
  char *in = NULL;
  char *argv[MAX_ARGS];
  char auth[512], type[256], data[600];
  int n = 0;
  argv[n++] = "curl";
  argv[n++] = "-sS";
  argv[n++] = "--max-time";
  argv[n++] = "30";
  argv[n++] = "-o";
  argv[n++] = out;
  argv[n++] = "-D";
  argv[n++] = hdr;
  argv[n++] = "-w";
  argv[n++] = "%{http_code}";
  argv[n++] = "-X";
  argv[n++] = (char *)method;
  if (sock != NULL) {
    argv[n++] = "--unix-socket";
    argv[n++] = (char *)sock;
  }
  if (token != NULL) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    argv[n++] = "-H";
    argv[n++] = auth;
  }
  if (body != NULL) {
    in = tmp_path("in");
    cli_write_file(in, body);
    snprintf(data, sizeof data, "@%s", in);
    argv[n++] = "--data-binary";
    argv[n++] = data;
    snprintf(type, sizeof type, "Content-Type:%s%s",
             content_type != NULL && content_type[0] == '\0' ? "" : " ",
             content_type != NULL ? content_type : "application/json");
    argv[n++] = "-H";
    argv[n++] = type;
  }
  for (size_t i = 0; extra != NULL && extra[i] != NULL && n < MAX_ARGS - 2; i++)
    argv[n++] = (char *)extra[i];
  argv[n++] = (char *)url;
  argv[n] = NULL;
  run_program(argv, code);
  char *status = cli_read_file(code, NULL);
  r->status = status != NULL ? atoi(status) : 0;
  free(status);
  r->body = cli_read_file(out, NULL);
  if (r->body == NULL) r->body = strdup("");
  r->headers = cli_read_file(hdr, NULL);
  if (r->headers == NULL) r->headers = strdup("");
  r->json = json_loads(r->body, JSON_DECODE_ANY, NULL);
  unlink(out), unlink(hdr), unlink(code);
  if (in != NULL) unlink(in);
  free(out), free(hdr), free(code), free(in);
}

void http_call(struct http_reply *r, const struct test_server *s, const char *method,
               const char *path, const char *body, const char *content_type,
               const char *const *extra) {
  char url[1024];
  snprintf(url, sizeof url, "http://localhost%s", path);
  curl(r, s->sock, url, method, body, content_type, NULL, extra);
}

void http_call_tcp(struct http_reply *r, const struct test_server *s, const char *method,
                   const char *path, const char *token) {
  assert_non_null(s->url);
  char url[1024];
  snprintf(url, sizeof url, "%s%s", s->url, path);
  curl(r, NULL, url, method, NULL, NULL, token, NULL);
}

void http_reply_free(struct http_reply *r) {
  free(r->body);
  free(r->headers);
  json_decref(r->json);
  memset(r, 0, sizeof *r);
}

const char *http_error_code(const struct http_reply *r) {
  const char *code =
      json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
  return code != NULL ? code : "";
}

char *http_header(const struct http_reply *r, const char *name) {
  size_t n = strlen(name);
  for (const char *line = r->headers; line != NULL && *line != '\0';) {
    const char *end = strstr(line, "\r\n");
    if (end == NULL) end = line + strlen(line);
    if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
      const char *v = line + n + 1;
      while (*v == ' ') v++;
      return strndup(v, (size_t)(end - v));
    }
    line = *end != '\0' ? end + 2 : end;
  }
  return NULL;
}

char *http_submit_text(const struct test_server *s, const char *text, int start) {
  struct http_reply r;
  http_call(&r, s, "POST", start ? "/v1/jobs?start=true" : "/v1/jobs", text, NULL, NULL);
  if (r.status != 201) fail_msg("submit: %d %s", r.status, r.body);
  char *id = strdup(json_string_value(json_object_get(r.json, "id")));
  http_reply_free(&r);
  return id;
}

char *http_submit_file(const struct test_server *s, const char *job_file, int start) {
  char *path = cli_job_path(job_file);
  char *text = cli_read_file(path, NULL);
  if (text == NULL) fail_msg("cannot read %s", path);
  char *id = http_submit_text(s, text, start);
  free(text);
  free(path);
  return id;
}

json_t *http_get_job(const struct test_server *s, const char *id) {
  char path[128];
  snprintf(path, sizeof path, "/v1/jobs/%s", id);
  struct http_reply r;
  http_call(&r, s, "GET", path, NULL, NULL, NULL);
  if (r.status != 200 || r.json == NULL) fail_msg("GET %s: %d %s", path, r.status, r.body);
  json_t *job = json_incref(r.json);
  http_reply_free(&r);
  return job;
}

/* ---- the server process ---- */

/* Servers started and not yet stopped, for srv_kill_all(). */
#define MAX_LIVE 16
static pid_t live[MAX_LIVE];

static void live_add(pid_t pid) {
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i] == 0) {
      live[i] = pid;
      return;
    }
}

static void live_remove(pid_t pid) {
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i] == pid) live[i] = 0;
}

int srv_kill_all(void **state) {
  (void)state;
  for (int i = 0; i < MAX_LIVE; i++)
    if (live[i] > 0) {
      kill(live[i], SIGKILL);
      waitpid(live[i], NULL, 0);
      live[i] = 0;
    }
  return 0;
}

static int healthy(void *ctx) {
  const struct test_server *s = ctx;
  if (cli_process_gone(s->pid)) return 1;
  int fd = raw_connect(s->sock);
  if (fd < 0) return 0;
  raw_send(fd, "GET /v1/health HTTP/1.0\r\n\r\n");
  int closed;
  char *got = raw_read_all(fd, 2000, &closed);
  close(fd);
  int ok = strncmp(got, "HTTP/1.0 200", 12) == 0 || strncmp(got, "HTTP/1.1 200", 12) == 0;
  free(got);
  return ok;
}

/* "listening on http://HOST:PORT" in the server's log. */
static int tcp_url_logged(void *ctx) {
  struct test_server *s = ctx;
  char *err_path = cli_path_join(s->dir, ".stderr");
  char *log = cli_read_file(err_path, NULL);
  free(err_path);
  const char *at = log != NULL ? strstr(log, "listening on http://") : NULL;
  if (at != NULL) {
    at += strlen("listening on ");
    size_t n = strcspn(at, " \n");
    s->url = strndup(at, n);
  }
  free(log);
  return s->url != NULL || cli_process_gone(s->pid);
}

void srv_start_raw(struct test_server *s, const char *dir, const char *const *args) {
  memset(s, 0, sizeof *s);
  s->dir = strdup(dir);
  const char *argv[48];
  size_t n = 0;
  int tcp = 0;
  argv[n++] = "serve";
  for (size_t i = 0; args != NULL && args[i] != NULL && n < 46; i++) {
    if (strcmp(args[i], "--socket") == 0 && args[i + 1] != NULL) s->sock = strdup(args[i + 1]);
    if (strcmp(args[i], "--listen") == 0) tcp = 1;
    argv[n++] = args[i];
  }
  argv[n] = NULL;
  s->pid = cli_spawn(dir, argv, NULL, NULL, -1);
  live_add(s->pid);
  if (tcp && !cli_poll_until(tcp_url_logged, s, 20000)) fail_msg("no TCP address logged");
  if (s->sock != NULL && !cli_poll_until(healthy, s, 20000)) fail_msg("server not ready");
  if (cli_process_gone(s->pid)) {
    char *err_path = cli_path_join(dir, ".stderr");
    char *log = cli_read_file(err_path, NULL);
    fail_msg("the server exited at its start: %s", log != NULL ? log : "");
  }
}

void srv_start(struct test_server *s, const char *dir, const char *const *args) {
  char *sock = cli_path_join(dir, "spe.sock");
  char *db = cli_path_join(dir, "state.db");
  char state[1024];
  snprintf(state, sizeof state, "sqlite:%s", db);
  const char *argv[48] = {"--socket", sock, "--state", state};
  size_t n = 4;
  for (size_t i = 0; args != NULL && args[i] != NULL && n < 47; i++) argv[n++] = args[i];
  argv[n] = NULL;
  srv_start_raw(s, dir, argv);
  free(sock);
  free(db);
}

int srv_stop(struct test_server *s, int sig, char **err) {
  if (s->pid <= 0) return -1;
  kill(s->pid, sig);
  struct cli_result r;
  cli_finish(&r, s->pid, s->dir);
  live_remove(s->pid);
  s->pid = 0;
  int status = r.status;
  if (err != NULL) *err = strdup(r.err);
  cli_result_free(&r);
  return status;
}

void srv_free(struct test_server *s) {
  if (s->pid > 0) srv_stop(s, SIGKILL, NULL);
  free(s->dir);
  free(s->sock);
  free(s->url);
  memset(s, 0, sizeof *s);
}

/* ---- Server-Sent Events ---- */

/* Read more into the buffer; 0 on data, -1 on EOF. Fails on timeout. */
static int sse_fill(struct sse_client *c, int64_t deadline) {
  if (c->eof) return -1;
  for (;;) {
    int64_t left = deadline - cli_mono_ms();
    if (left <= 0) fail_msg("no event within the time allowed");
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) <= 0) continue;
    if (c->cap - c->len < 4096) {
      c->cap = c->cap * 2 + 8192;
      c->buf = realloc(c->buf, c->cap);
      assert_non_null(c->buf);
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == ECONNRESET) r = 0;
    if (r < 0) fail_msg("recv: %s", strerror(errno));
    if (r == 0) {
      c->eof = 1;
      return -1;
    }
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    return 0;
  }
}

static void sse_consume(struct sse_client *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
  c->buf[c->len] = '\0';
}

void sse_open_stream(struct sse_client *c, const struct test_server *s, const char *path,
                     const char *last_id) {
  memset(c, 0, sizeof *c);
  c->fd = raw_connect(s->sock);
  if (c->fd < 0) fail_msg("connect %s: %s", s->sock, strerror(errno));
  char req[1024];
  snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n%s%s%s\r\n", path,
           last_id != NULL ? "Last-Event-ID: " : "", last_id != NULL ? last_id : "",
           last_id != NULL ? "\r\n" : "");
  raw_send(c->fd, req);
  int64_t deadline = cli_mono_ms() + 10000;
  char *end;
  while (c->buf == NULL || (end = strstr(c->buf, "\r\n\r\n")) == NULL)
    if (sse_fill(c, deadline) != 0) fail_msg("the stream closed before its headers");
  if (strncmp(c->buf, "HTTP/1.0 200", 12) != 0 && strncmp(c->buf, "HTTP/1.1 200", 12) != 0)
    fail_msg("GET %s: %s", path, c->buf);
  if (strcasestr(c->buf, "Content-Type: text/event-stream") == NULL)
    fail_msg("not an event stream: %s", c->buf);
  sse_consume(c, (size_t)(end + 4 - c->buf));
}

/* One message (up to its blank line), as a malloc'd string, or NULL at EOF. */
static char *sse_message(struct sse_client *c, int64_t deadline) {
  for (;;) {
    char *end = c->buf != NULL ? strstr(c->buf, "\n\n") : NULL;
    if (end != NULL) {
      char *m = strndup(c->buf, (size_t)(end - c->buf));
      sse_consume(c, (size_t)(end + 2 - c->buf));
      return m;
    }
    if (sse_fill(c, deadline) != 0) {
      if (c->len != 0) fail_msg("the stream ended in the middle of a message: %s", c->buf);
      return NULL;
    }
  }
}

json_t *sse_next(struct sse_client *c, int timeout_ms) {
  int64_t deadline = cli_mono_ms() + timeout_ms;
  for (;;) {
    char *m = sse_message(c, deadline);
    if (m == NULL) return NULL;
    if (m[0] == ':') {
      free(m);
      continue;
    }
    long long id = -1;
    const char *data = NULL;
    for (char *line = m; line != NULL;) {
      char *nl = strchr(line, '\n');
      if (nl != NULL) *nl = '\0';
      if (strncmp(line, "id: ", 4) == 0) id = atoll(line + 4);
      if (strncmp(line, "data: ", 6) == 0) data = line + 6;
      line = nl != NULL ? nl + 1 : NULL;
    }
    if (data == NULL) {
      free(m);
      continue; /* e.g. "retry:" */
    }
    json_error_t err;
    json_t *ev = json_loads(data, 0, &err);
    if (ev == NULL) fail_msg("event data is not JSON (%s): %s", err.text, data);
    if (json_integer_value(json_object_get(ev, "seq")) != id)
      fail_msg("id %lld differs from the event's seq: %s", id, data);
    free(m);
    return ev;
  }
}

json_t *sse_read_to_end(struct sse_client *c, int timeout_ms) {
  json_t *all = json_array();
  json_t *ev;
  while ((ev = sse_next(c, timeout_ms)) != NULL) json_array_append_new(all, ev);
  return all;
}

void sse_close_stream(struct sse_client *c) {
  if (c->fd >= 0) close(c->fd);
  free(c->buf);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}
