/*
 * The client side of `spe serve`: what the subcommands submit, start, status,
 * list, watch, result, cancel and prune share (docs/cli.md, docs/server.md).
 *
 * Each subcommand is a short program: parse its arguments (the common options
 * --server, --token-file, --json and --help, plus its own), open a client
 * (one libcurl easy handle, so that the requests of one command reuse one
 * connection), make one or a few requests, print, and turn what happened into
 * the exit status:
 *
 *   0  done (for result, watch and submit --wait: the job succeeded)
 *   1  the job failed or was cancelled (result, watch, submit --wait)
 *   2  bad usage, or a request the server refused (HTTP 4xx: an invalid job, an
 *      unknown id, a job in the wrong state, a wrong token)
 *   3  the server cannot be reached, failed (HTTP 5xx) or answered something
 *      that is not the API
 *
 * Every error is one line on stderr that starts with the command ("spe
 * start: ...") and names the problem: the address that could not be reached,
 * or the server's own message.
 *
 * Everything here runs on the main thread of the program; nothing is shared.
 */
#ifndef SPE_CLI_CLIENT_H
#define SPE_CLI_CLIENT_H

#include "cli/args.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum { CLIENT_EXIT_OK = 0, CLIENT_EXIT_FAILED = 1, CLIENT_EXIT_USAGE = 2, CLIENT_EXIT_SERVER = 3 };

/* ---- Options (client_opts.c) ------------------------------------------------ */

/* Option ids of the common options; a command's own ids stay below them. */
enum { COPT_SERVER = 1000, COPT_TOKEN_FILE, COPT_JSON, COPT_HELP };

struct client_opts {
  const char *server;     /* --server, or NULL for the default */
  const char *token_file; /* --token-file, or NULL */
  int json;               /* --json */
};

/* A command's arguments after client_parse_args(). */
struct client_args {
  struct client_opts opts;
  const char **operands; /* malloc'd array of borrowed strings; free it */
  int noperands;
};

/* Scan a command's arguments: the common options into args->opts, the
 * command's own options (`own`, ending with a NULL long_name; may be NULL)
 * handed to on_opt(ctx, id, value) (NULL when `own` is), which returns 0 or
 * prints an error and returns 2. `usage` is printed for --help. Returns -1 to go on, else the exit
 * status to end with (0 after --help, 2 after a usage error). */
int client_parse_args(const char *cmd, const char *usage, int argc, char **argv,
                      const struct opt_spec *own,
                      int (*on_opt)(void *ctx, int id, const char *value), void *ctx,
                      struct client_args *args);

/* The server address when --server is not given: $SPE_SERVER, else
 * unix: and the socket `spe serve` listens on by default
 * (cli_default_socket_path()). Malloc'd. */
char *client_default_server(void);

/* The help text lines of the common options, for each command's usage. */
#define CLIENT_OPTIONS_HELP                                                          \
  "  --server ADDRESS     unix:PATH or http://HOST:PORT (default: $SPE_SERVER, else\n" \
  "                       unix:$XDG_RUNTIME_DIR/spe.sock, else unix:.spe/spe.sock)\n"  \
  "  --token-file FILE    send the bearer token in FILE (for a server that wants one)\n" \
  "  --json               print JSON for scripts instead of text for people\n"         \
  "  -h, --help           show this help\n"

#define CLIENT_EXIT_HELP                                                              \
  "Exit status: 2 bad usage or a request the server refused, 3 the server cannot\n" \
  "be reached or failed.\n"

/* ---- Connection and requests (client_http.c) -------------------------------- */

struct client;

/* Open a client for command `cmd` ("spe start", for messages) on the address
 * and token of `o`. Connects lazily, at the first request. On failure (a bad
 * address, an unreadable token file) prints the error and returns the exit
 * status (2); else 0. */
int client_open(struct client **out, const char *cmd, const struct client_opts *o);
void client_close(struct client *c);

const char *client_cmd(const struct client *c);

/* A request's outcome. */
struct client_reply {
  json_t *body;  /* the parsed JSON body, or NULL (not JSON, or none) */
};

/* Make a request: `method` "GET" or "POST", `path` from "/v1/..." on (with its
 * query), `body` (may be NULL) sent as application/json. When the server
 * answered with a 2xx status and a JSON body, fills *reply and returns 0.
 * Otherwise prints the error (unreachable: the address and why; an HTTP error:
 * the server's message; else what was wrong) and returns the exit status for
 * it (2 for a 4xx, 3 otherwise); *reply is then empty. `what` (may be NULL)
 * prefixes the server's message, e.g. the file a submit came from. */
int client_request(struct client *c, const char *method, const char *path, const char *body,
                   size_t body_len, const char *what, struct client_reply *reply);
void client_reply_free(struct client_reply *r);

/* `s` escaped for a URL path segment or query value, into a malloc'd string;
 * NULL when out of memory. */
char *client_escape(struct client *c, const char *s);

/* ---- Events: a Server-Sent Events stream that survives restarts (client_sse.c) */

/* Called with each event (borrowed); returns FOLLOW_GO_ON, or FOLLOW_STOP to
 * end the stream. */
typedef int (*client_event_fn)(void *ctx, json_t *event);

enum { FOLLOW_GO_ON = 0, FOLLOW_STOP = 1 };

struct client_follow_opts {
  const char *job;       /* follow one job (NULL: every job) */
  int64_t after;         /* start after this seq; -1: the server's default (from now) */
};

/* Follow the event stream: each event (a JSON object with "seq") goes to
 * on_event(ctx, event) once, in seq order, until on_event returns FOLLOW_STOP
 * (or, following one job, until the server ends the stream of a job that had
 * finished before `after`: then 0 is returned without its job_finished).
 * When the stream ends (the server closed it, restarted or dropped a slow
 * reader), reconnects with Last-Event-ID = the last seq seen, backing off from
 * 100 ms to 2 s between tries, and goes on without losing or repeating an
 * event. Returns 0 after FOLLOW_STOP; otherwise prints the error and returns
 * the exit status (3: the first connection failed, or no connection for
 * 60 s; 2: the server refused the request). */
int client_follow(struct client *c, const struct client_follow_opts *fo, client_event_fn on_event,
                  void *ctx);

/* ---- Text output (client_table.c) ------------------------------------------ */

struct table;

/* A table of `ncols` columns with these headers. NULL when out of memory. */
struct table *table_new(int ncols, const char *const *headers);
/* Append a row of ncols cells (copied). */
void table_add(struct table *t, const char *const *cells);
/* Print it on stdout, columns padded to their widest cell, and free it. */
void table_print_free(struct table *t);

/* "2026-11-27 06:50:37" (local time) for ms since the epoch, "-" for 0. */
void client_format_time(int64_t ms, char out[32]);
/* "0.120 s", "2m 03s", "1h 02m", "3d 04h" for a duration in ms; "-" when
 * either end is 0. */
void client_format_duration(int64_t from_ms, int64_t to_ms, char out[32]);
/* One-line, at most `max` bytes, text of a JSON value ("..." when cut). */
void client_format_json(const json_t *v, char *out, size_t max);

/* Print a line (a newline is added) on stdout and flush. Returns 0, or 3 after
 * reporting a write error. */
int client_print_text(const char *line);
/* Print a JSON value on stdout, compact on one line. Returns 0 or 3 as above. */
int client_print_json(const json_t *v);

/* ---- Shared by several commands --------------------------------------------- */

/* GET /v1/jobs/ID: 0 with *out the job (SPEC §3, a new reference), or the exit
 * status after printing the error (client_result.c). */
int client_get_job(struct client *c, const char *id, json_t **out);

/* The exit status for a job's final status: 0 succeeded, 1 otherwise
 * (client_result.c). */
int client_job_exit(const json_t *job);

/* One line on a finished job, e.g. `01JD... "etl": failed in 0.219 s (4 tasks:
 * 2 succeeded, 1 failed, 1 not run)`. Returns 0 or 3 (client_status.c). */
int client_print_job_line(const json_t *job);

/* Print job summaries (the items of a list page) as a table, or NDJSON with
 * `json`. Returns 0 or 3 (client_list.c). */
int client_print_jobs(const json_t *jobs, int json);

/* Fetch up to `limit` jobs, newest first, with `status` (NULL: any), paging
 * through the server's pages. Returns 0 with *out a new array, or an exit
 * status after printing the error. */
int client_list_jobs(struct client *c, const char *status, size_t limit, json_t **out);

#endif
