/*
 * Test helpers for `spe serve` end to end: start and stop a real server
 * process, talk HTTP to it over its Unix socket with libcurl (requests, and
 * the event stream read until a condition holds), and read a process's memory.
 *
 * The server program is $SPE_SERVER_BIN when set (to try the clients against
 * a server built elsewhere), else $SPE_BIN. Every helper fails the running
 * cmocka test on an unexpected error.
 */
#ifndef SPE_TESTS_CURL_UTIL_H
#define SPE_TESTS_CURL_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Start `spe serve --socket SOCKET ARGS...` (args NULL-terminated, may be
 * NULL) with `dir` as its working directory, stdout and stderr appended to
 * dir/server.log, and wait until GET /v1/health answers on the socket (at most
 * 20 s). Returns its pid. */
pid_t hc_server_start(const char *dir, const char *socket, const char *const *args);

/* Send `sig` to the server and reap it; returns its exit status (128 + signal
 * when killed). */
int hc_server_stop(pid_t pid, int sig);

/* One HTTP request over the Unix socket: `method` "GET" or "POST", `path` from
 * "/v1..." on, `body` (NULL: none) sent as application/json. Returns the HTTP
 * status; *out (may be NULL) receives the parsed JSON body or NULL. Thread-safe
 * (a handle per call, or the caller's: see hc_client). */
long hc_request(const char *socket, const char *method, const char *path, const char *body,
                json_t **out);

/* A reusable connection, for many requests from one thread. */
struct hc_client;
struct hc_client *hc_client_new(const char *socket);
long hc_client_request(struct hc_client *hc, const char *method, const char *path,
                       const char *body, json_t **out);
/* Microseconds the last request took, from its start to the whole answer. */
double hc_client_last_us(const struct hc_client *hc);
void hc_client_free(struct hc_client *hc);

/* Read GET /v1/events?after=AFTER[&job=JOB] and collect its events until
 * done(ctx, events) returns 1 (called after each event with every event so
 * far) or timeout_ms passes. Returns the events (a new array, in the order
 * received); fails the test on a timeout. */
json_t *hc_read_events(const char *socket, const char *job, int64_t after,
                       int (*done)(void *ctx, const json_t *events), void *ctx,
                       int timeout_ms);

/* VmRSS of a process in KiB (from /proc/PID/status), -1 if unknown. */
long hc_rss_kb(pid_t pid);

#endif
