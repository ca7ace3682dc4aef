/*
 * Fuzz target: the HTTP layer of `spe serve` (src/server/). One server runs in
 * this process for the whole run, as the program would start it: a memory
 * store keeping the last events (event_history), 2 workers, a 64 KiB body
 * limit, a 1 s idle timeout, on a Unix socket in a scratch folder. Each input
 * is the raw byte stream of one client connection: possibly several pipelined
 * HTTP/1.1 requests, possibly malformed. The harness connects, writes the
 * input (reading whatever comes back meanwhile, since the server may answer
 * and stop reading before the input is all written), shuts its write side
 * down and reads until the server closes the connection.
 *
 * An event stream (GET /v1/events) never ends by itself: once a response with
 * Content-Type text/event-stream has begun, the harness reads for 100 ms more
 * and then closes the connection, as a client that goes away.
 *
 * Properties:
 *  - everything the server sends is a sequence of well-formed responses: a
 *    status line "HTTP/1.x NNN reason" (NNN from 100 to 599), headers ending
 *    with an empty line, a body framed by its Content-Length or by chunks
 *    (a response to HEAD has no body), or the rest of the stream;
 *  - a body sent as application/json is JSON, and an error (4xx/5xx) sent as
 *    application/json is {"error": {"code": "...", "message": "..."}} (the
 *    answers libmicrohttpd makes itself for requests it cannot parse are
 *    HTML, and not checked);
 *  - the connection ends within 5 s of the client's last byte unless it is an
 *    event stream (the server neither hangs on a request nor leaks a
 *    connection that waits for nothing);
 *  - the server still answers GET /v1/health with 200 on a new connection;
 *  - no crash, no leak, no sanitizer report (in the server's threads too).
 *
 * Jobs that an input submits and starts run for real, with /bin/sh. So that
 * a mutated command can do little harm, PATH points to the empty scratch
 * folder (only shell builtins and absolute paths run), and fuzz/run.sh runs
 * the target from the scratch folder (what a builtin redirection writes lands
 * there). Every 200 inputs the harness cancels every unfinished job and
 * prunes the finished ones, so that memory stays flat and the limit of
 * unfinished jobs is not reached by accumulation.
 */
#include "fuzz.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"
#include "spe.h"

enum {
  STREAM_GRACE_MS = 100,     /* how long an event stream is read */
  HANG_MS = 5000,            /* a connection still open after this hangs */
  MAX_REPLY = 1 << 20,       /* what is kept of the server's answer */
  CLEANUP_EVERY = 200,       /* inputs between two cancel + prune rounds */
};

/* ---- the server, started once per process ---- */

struct harness {
  char dir[256];
  char sock[300];
  spe_executor *ex;
  struct server *srv;
  unsigned inputs;
};

static struct harness *h;

static void stop_harness(void) {
  if (h == NULL) return;
  server_quiesce(h->srv);
  server_end_streams(h->srv);
  spe_shutdown(h->ex);
  server_stop(h->srv);
  spe_close(h->ex);
  rmdir(h->dir);
  free(h);
  h = NULL;
}

static void start_harness(void) {
  h = calloc(1, sizeof *h);
  FUZZ_CHECK(h != NULL, "out of memory");
  snprintf(h->dir, sizeof h->dir, "%s/spe-fuzz-http-XXXXXX", spe__fuzz_scratch_base());
  FUZZ_CHECK(mkdtemp(h->dir) != NULL, "cannot make a folder in %s", spe__fuzz_scratch_base());
  snprintf(h->sock, sizeof h->sock, "%s/s.sock", h->dir);
  FUZZ_CHECK(strlen(h->sock) < sizeof(((struct sockaddr_un *)0)->sun_path),
             "socket path too long: %s", h->sock);
  /* Commands find no program by name (see above). */
  setenv("PATH", h->dir, 1);
  /* A connection the server closed while we still write must not kill us. */
  signal(SIGPIPE, SIG_IGN);

  spe_options o;
  spe_options_init(&o);
  o.workers = 2;
  o.event_history = 1000;
  o.max_unfinished_jobs = 1000;
  o.grace_ms = 100;
  char *msg = NULL;
  int rc = spe_open(&h->ex, &o, &msg);
  FUZZ_CHECK(rc == 0, "spe_open: %s", msg != NULL ? msg : "?");

  struct server_config cfg;
  server_config_init(&cfg);
  cfg.socket_path = h->sock;
  cfg.max_body = 64 * 1024;
  cfg.idle_timeout_s = 1;
  cfg.stream_queue = 64;
  rc = server_bind(&h->srv, &cfg, &msg);
  FUZZ_CHECK(rc == 0, "server_bind: %s", msg != NULL ? msg : "?");
  rc = server_start(h->srv, h->ex, &msg);
  FUZZ_CHECK(rc == 0, "server_start: %s", msg != NULL ? msg : "?");
  atexit(stop_harness);
}

/* Cancel every unfinished job and prune the finished ones. */
static void cleanup_jobs(void) {
  static const char *const unfinished[] = {"submitted", "running"};
  for (size_t i = 0; i < 2; i++) {
    json_t *list = NULL;
    if (spe_jobs_list(h->ex, unfinished[i], NULL, 1000, &list, NULL) != 0) continue;
    size_t k;
    json_t *job;
    json_array_foreach(list, k, job) {
      const char *id = json_string_value(json_object_get(job, "id"));
      if (id != NULL) spe_cancel(h->ex, id, NULL);
    }
    json_decref(list);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  spe_prune(h->ex, (int64_t)ts.tv_sec * 1000 + 1000, NULL, NULL);
}

/* ---- one connection ---- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct reply {
  char *data;
  size_t len;
  int closed;  /* the server closed the connection (EOF or reset) */
  int stream;  /* an event stream began */
};

static int connect_server(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, h->sock, strlen(h->sock) + 1); /* checked to fit */
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  FUZZ_CHECK(rc == 0, "connect %s: %s", h->sock, strerror(errno));
  return fd;
}

/* Read what is there; sets r->closed at EOF. */
static void read_some(int fd, struct reply *r) {
  for (;;) {
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      size_t keep = (size_t)n;
      if (keep > MAX_REPLY - r->len) keep = MAX_REPLY - r->len;
      memcpy(r->data + r->len, buf, keep);
      r->len += keep;
      r->data[r->len] = '\0';
      if (!r->stream && strcasestr(r->data, "\ncontent-type: text/event-stream") != NULL)
        r->stream = 1;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) r->closed = 1;
    return;
  }
}

/* Send `data`, then read until the server closes, the stream grace has
 * passed, or HANG_MS: returns 1 if it hung. */
static int exchange(const uint8_t *data, size_t size, struct reply *r) {
  int fd = connect_server();
  size_t sent = 0;
  int wr_open = 1;
  int64_t start = mono_ms(), idle_since = start, stream_since = 0;
  int hung = 0;
  while (!r->closed) {
    if (wr_open && sent == size) {
      shutdown(fd, SHUT_WR);
      wr_open = 0;
      idle_since = mono_ms();
    }
    struct pollfd p = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
    poll(&p, 1, 10);
    if (p.revents & POLLOUT) {
      ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += (size_t)n;
      else if (n < 0 && errno != EAGAIN && errno != EINTR) sent = size; /* closed */
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_some(fd, r);
    int64_t now = mono_ms();
    if (r->stream && stream_since == 0) stream_since = now;
    if (stream_since != 0 && now - stream_since >= STREAM_GRACE_MS) break;
    if (now - (wr_open ? start : idle_since) >= HANG_MS) {
      hung = 1;
      break;
    }
  }
  close(fd);
  return hung;
}

/* ---- the checks on what came back ---- */

static int has_prefix_ci(const char *p, const char *end, const char *prefix) {
  size_t n = strlen(prefix);
  return (size_t)(end - p) >= n && strncasecmp(p, prefix, n) == 0;
}

/* The value of header `name` in [p, end) (lines ending with CRLF), or NULL;
 * *len gets its length. */
static const char *header(const char *p, const char *end, const char *name, size_t *len) {
  size_t n = strlen(name);
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL) eol = end;
    if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (v < eol && *v == ' ') v++;
      *len = (size_t)(eol - v);
      return v;
    }
    p = eol + 2;
  }
  return NULL;
}

static void check_error_body(const char *body, size_t len, unsigned status) {
  json_error_t err;
  json_t *doc = json_loadb(body, len, 0, &err);
  FUZZ_CHECK(doc != NULL, "a %u answer as application/json is not JSON: %s", status, err.text);
  if (status >= 400) {
    json_t *e = json_object_get(doc, "error");
    FUZZ_CHECK(json_is_object(e) && json_is_string(json_object_get(e, "code")) &&
                   json_is_string(json_object_get(e, "message")),
               "a %u answer is not {\"error\": {\"code\", \"message\"}}: %.*s", status, (int)len,
               body);
  }
  json_decref(doc);
}

/* Decode a chunked body at [p, end) into *out (malloc'd). Returns the end of
 * the body, or NULL if it is cut short. A malformed chunk breaks a property. */
static const char *dechunk(const char *p, const char *end, char **out, size_t *out_len) {
  char *buf = NULL;
  size_t len = 0;
  for (;;) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (eol == NULL) break;
    char *stop;
    unsigned long n = strtoul(p, &stop, 16);
    FUZZ_CHECK(stop > p && (stop == eol || *stop == ';'), "a malformed chunk size");
    p = eol + 2;
    if (n == 0) {
      /* Trailers, then an empty line. */
      const char *fin = memmem(p - 2, (size_t)(end - p + 2), "\r\n\r\n", 4);
      if (fin == NULL) break;
      *out = buf;
      *out_len = len;
      return fin + 4;
    }
    if ((size_t)(end - p) < n + 2) break;
    FUZZ_CHECK(p[n] == '\r' && p[n + 1] == '\n', "a chunk does not end with CRLF");
    char *grown = realloc(buf, len + n + 1);
    FUZZ_CHECK(grown != NULL, "out of memory");
    buf = grown;
    memcpy(buf + len, p, n);
    len += n;
    p += n + 2;
  }
  free(buf);
  return NULL;
}

/* One response at p; returns where the next begins, or NULL when the rest is
 * not checkable (a stream, a body cut short by our deadline). `head`: the
 * input has a HEAD request in it. */
static const char *check_response(const char *p, const char *end, int closed, int head) {
  /* "HTTP/1.1 200 OK\r\n", or a prefix of it if the answer is cut short. */
  const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
  size_t line = eol != NULL ? (size_t)(eol - p) : (size_t)(end - p);
  static const char pattern[] = "HTTP/1.d ddd ";
  for (size_t i = 0; i < sizeof pattern - 1 && i < line; i++) {
    int ok = pattern[i] == 'd' ? (p[i] >= '0' && p[i] <= '9') : p[i] == pattern[i];
    FUZZ_CHECK(ok, "not a status line: %.*s", (int)(line < 80 ? line : 80), p);
  }
  FUZZ_CHECK(eol != NULL || !closed || line >= sizeof pattern - 1,
             "the connection closed in a status line");
  if (eol == NULL) return NULL;
  FUZZ_CHECK(line >= sizeof pattern - 1, "a short status line: %.*s", (int)line, p);
  unsigned status = (unsigned)atoi(p + 9);
  FUZZ_CHECK(status >= 100 && status <= 599, "status %u", status);

  const char *hdr = eol + 2;
  const char *hend = memmem(eol, (size_t)(end - eol), "\r\n\r\n", 4);
  if (hend == NULL) {
    FUZZ_CHECK(!closed, "the connection closed in the headers of a %u answer", status);
    return NULL;
  }
  const char *body = hend + 4;
  hend += 2; /* the last header line's CRLF is part of the headers */
  if (status < 200) return body;

  size_t tlen = 0, cllen = 0, telen = 0;
  const char *type = header(hdr, hend, "Content-Type", &tlen);
  const char *cl = header(hdr, hend, "Content-Length", &cllen);
  const char *te = header(hdr, hend, "Transfer-Encoding", &telen);
  int json = type != NULL && has_prefix_ci(type, type + tlen, "application/json");
  if (type != NULL && has_prefix_ci(type, type + tlen, "text/event-stream")) return NULL;

  /* A response to HEAD has the headers of a GET but no body: what follows
   * is the next response (no body of ours begins like a status line), or
   * the end of the connection. */
  if (status == 204 || status == 304 || has_prefix_ci(body, end, "HTTP/1.") ||
      (head && closed && body == end))
    return body;

  char *content = NULL;
  size_t content_len = 0;
  const char *next;
  if (te != NULL && has_prefix_ci(te, te + telen, "chunked")) {
    next = dechunk(body, end, &content, &content_len);
    if (next == NULL) {
      FUZZ_CHECK(!closed, "the connection closed in the chunked body of a %u answer", status);
      return NULL;
    }
  } else if (cl != NULL) {
    char *stop;
    unsigned long long n = strtoull(cl, &stop, 10);
    FUZZ_CHECK(stop == cl + cllen, "a bad Content-Length: %.*s", (int)cllen, cl);
    if ((unsigned long long)(end - body) < n) {
      FUZZ_CHECK(!closed, "the connection closed %zu bytes into a body of %llu",
                 (size_t)(end - body), n);
      return NULL;
    }
    content_len = (size_t)n;
    next = body + n;
  } else {
    /* The body runs to the end of the connection. */
    if (!closed) return NULL;
    content_len = (size_t)(end - body);
    next = end;
  }
  if (json) check_error_body(content != NULL ? content : body, content_len, status);
  free(content);
  return next;
}

static void check_replies(const struct reply *r, int head) {
  const char *p = r->data, *end = r->data + r->len;
  /* What was cut at MAX_REPLY is not a closed connection. */
  int closed = r->closed && r->len < MAX_REPLY;
  while (p != NULL && p < end) p = check_response(p, end, closed, head);
}

static void check_health(void) {
  static const char req[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  struct reply r = {.data = malloc(MAX_REPLY + 1)};
  FUZZ_CHECK(r.data != NULL, "out of memory");
  r.data[0] = '\0';
  int hung = exchange((const uint8_t *)req, sizeof req - 1, &r);
  FUZZ_CHECK(!hung && r.closed, "GET /v1/health did not end");
  FUZZ_CHECK(strncmp(r.data, "HTTP/1.1 200 ", 13) == 0, "GET /v1/health answered: %.60s",
             r.data);
  check_replies(&r, 0);
  free(r.data);
}

void spe__fuzz_http_check(const uint8_t *data, size_t size) {
  if (h == NULL) start_harness();
  struct reply r = {.data = malloc(MAX_REPLY + 1)};
  FUZZ_CHECK(r.data != NULL, "out of memory");
  r.data[0] = '\0';
  int hung = exchange(data, size, &r);
  FUZZ_CHECK(!hung || r.stream, "the connection was still open %d ms after the request",
             HANG_MS);
  check_replies(&r, memmem(data, size, "HEAD", 4) != NULL);
  free(r.data);
  check_health();
  if (++h->inputs % CLEANUP_EVERY == 0) cleanup_jobs();
}

SPE_FUZZ_ENTRY(spe__fuzz_http_check)
