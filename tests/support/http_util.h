/*
 * Test helpers for `spe serve` end to end: start and stop a real server
 * process, talk to it with the curl program (a real HTTP client), and, where
 * a test needs to misbehave on purpose or follow an event stream, with a raw
 * socket of our own.
 *
 * Every helper fails the running cmocka test on an unexpected error.
 */
#ifndef SPE_TESTS_HTTP_UTIL_H
#define SPE_TESTS_HTTP_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

/* A server under test. */
struct test_server {
  pid_t pid;
  char *dir;   /* its working directory (stdout and stderr are captured there) */
  char *sock;  /* its Unix socket */
  char *url;   /* "http://127.0.0.1:PORT" when it listens on TCP, else NULL */
};

/* Start `spe serve --socket DIR/spe.sock --state sqlite:DIR/state.db ARGS...`
 * (args NULL-terminated, may be NULL) and wait until GET /v1/health answers
 * 200. With `--listen` among the args, s->url is read from its log. */
void srv_start(struct test_server *s, const char *dir, const char *const *args);
/* The same without the default --socket/--state (the args give them). */
void srv_start_raw(struct test_server *s, const char *dir, const char *const *args);
/* Send `sig` and wait for the exit; returns the exit status (128 + signal if
 * killed). The server's stderr is in *err if err is not NULL (malloc'd). */
int srv_stop(struct test_server *s, int sig, char **err);
void srv_free(struct test_server *s);
/* SIGKILL and reap every server still running: a cmocka teardown, so that a
 * test that fails half-way leaves no server behind. Returns 0. */
int srv_kill_all(void **state);

/* One HTTP exchange through curl. */
struct http_reply {
  int status;       /* the HTTP status, 0 if there was no answer */
  char *body;       /* NUL-terminated */
  char *headers;    /* the response's header block */
  json_t *json;     /* the body parsed, or NULL if it is not JSON */
};

/* curl over the server's Unix socket: METHOD PATH (e.g. "/v1/jobs?start=true"),
 * with `body` (may be NULL) sent as application/json unless `content_type`
 * says otherwise ("" sends no Content-Type), and `extra` curl arguments
 * (NULL-terminated, may be NULL). */
void http_call(struct http_reply *r, const struct test_server *s, const char *method,
               const char *path, const char *body, const char *content_type,
               const char *const *extra);
/* The same over TCP (s->url), with `token` as a bearer token (NULL: none). */
void http_call_tcp(struct http_reply *r, const struct test_server *s, const char *method,
                   const char *path, const char *token);
void http_reply_free(struct http_reply *r);
/* The "error"."code" of an error body, or "" */
const char *http_error_code(const struct http_reply *r);
/* A header's value in r->headers (case-insensitive name), malloc'd, or NULL. */
char *http_header(const struct http_reply *r, const char *name);

/* Submit a job file from tests/jobs/run (start it too if `start`); returns
 * its id (malloc'd). */
char *http_submit_file(const struct test_server *s, const char *job_file, int start);
/* Submit a job text; returns its id (malloc'd). */
char *http_submit_text(const struct test_server *s, const char *text, int start);
/* GET /v1/jobs/ID (a new reference). */
json_t *http_get_job(const struct test_server *s, const char *id);

/* A raw connection to the Unix socket. */
int raw_connect(const char *sock);
void raw_send(int fd, const char *text);
/* Read until the peer closes or timeout_ms pass; returns what came (malloc'd)
 * and sets *closed to 1 if the peer closed. */
char *raw_read_all(int fd, int timeout_ms, int *closed);

/* A client of GET /v1/events, reading Server-Sent Events from the socket
 * (HTTP/1.0, so that the body is the plain stream). */
struct sse_client {
  int fd;
  char *buf;
  size_t len, cap;
  int eof;
};
/* Open PATH_AND_QUERY (e.g. "/v1/events?job=ID"), with a Last-Event-ID header
 * unless last_id is NULL; fails the test unless the answer is 200. */
void sse_open_stream(struct sse_client *c, const struct test_server *s, const char *path,
                     const char *last_id);
/* The next event (a new reference), skipping comments; NULL once the server
 * ended the stream. Fails the test if nothing comes within timeout_ms. The
 * "id:" line is checked against the event's seq. */
json_t *sse_next(struct sse_client *c, int timeout_ms);
/* Read every event until the stream ends (a new array). */
json_t *sse_read_to_end(struct sse_client *c, int timeout_ms);
void sse_close_stream(struct sse_client *c);

#endif
