/*
 * `spe serve`: open the executor (which recovers the store), serve its HTTP
 * API (src/server, docs/server.md) until SIGTERM or SIGINT, then stop in the
 * order server.h gives: no new connections, event streams ended, running
 * tasks stopped (recorded as interrupted, so that the next start runs them
 * again), connections closed, store closed; exit 0.
 *
 * The listeners are bound before the store is opened, so that a second
 * server on the same socket is refused before it touches anything; clients
 * that connect during a long recovery wait in the backlog until the server
 * answers.
 */
#include "base/clock.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/log_sink.h"
#include "cli/signals.h"
#include "server/server.h"
#include "spe.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Events the memory store keeps for clients that reconnect (GET /v1/events
 * with a cursor); a durable store keeps them all until pruned. */
#define SERVE_EVENT_HISTORY ((size_t)100000)

static const char serve_usage[] =
    "usage: spe serve [OPTION...]\n"
    "\n"
    "Recovers the state store, then serves the HTTP API (docs/server.md) until\n"
    "SIGTERM or SIGINT. Jobs recovered from the store go on by themselves.\n"
    "\n"
    "Options:\n"
    "  --socket PATH            listen on a Unix socket, created with mode 0600\n"
    "                           (default: $XDG_RUNTIME_DIR/spe.sock, else\n"
    "                           .spe/spe.sock; not used when only --listen is given)\n"
    "  --listen HOST:PORT       listen on TCP too (or instead, without --socket);\n"
    "                           needs --token-file\n"
    "  --token-file FILE        the bearer token that TCP clients must send\n"
    "                           (\"Authorization: Bearer TOKEN\"); at least 16\n"
    "                           visible characters\n"
    "  -w, --workers N|unbound  how many tasks may run at once, across all jobs\n"
    "                           (default: the number of online CPUs)\n"
    "  --state URL              the state store: memory: or sqlite:PATH\n"
    "                           (default: " CLI_DEFAULT_STATE_URL ")\n"
    "  --grace DURATION         on SIGINT/SIGTERM, running tasks get SIGTERM, then\n"
    "                           SIGKILL after this long (default 5s)\n"
    "  --lost-limit N           a task cut short by N crashes of SPE fails as \"lost\"\n"
    "                           (default 3)\n"
    "  --max-body SIZE          the largest request body, e.g. 16M, 512K, 1000\n"
    "                           (default 16M); larger: 413\n"
    "  --idle-timeout DURATION  close a connection silent this long (default 30s,\n"
    "                           at least 1s)\n"
    "  --keepalive DURATION     comment lines on an idle event stream (default 15s,\n"
    "                           at most half the idle timeout)\n"
    "  --stream-queue N         live events an event stream may hold for a slow\n"
    "                           client before it is ended (default 10000)\n"
    "  --max-connections N      connections at once, per listener (default 1000)\n"
    "  --log-level LEVEL        error, warn, info or debug (default: $SPE_LOG, else\n"
    "                           info)\n"
    "  -h, --help               show this help\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM or SIGINT; 2 bad usage; 3 the address, the\n"
    "state store or the system failed.\n";

enum {
  OPT_SOCKET = 1,
  OPT_LISTEN,
  OPT_TOKEN_FILE,
  OPT_WORKERS,
  OPT_STATE,
  OPT_GRACE,
  OPT_LOST_LIMIT,
  OPT_MAX_BODY,
  OPT_IDLE_TIMEOUT,
  OPT_KEEPALIVE,
  OPT_STREAM_QUEUE,
  OPT_MAX_CONNECTIONS,
  OPT_LOG_LEVEL,
  OPT_HELP
};

static const struct opt_spec serve_specs[] = {
    {"socket", 0, 1, OPT_SOCKET},
    {"listen", 0, 1, OPT_LISTEN},
    {"token-file", 0, 1, OPT_TOKEN_FILE},
    {"workers", 'w', 1, OPT_WORKERS},
    {"state", 0, 1, OPT_STATE},
    {"grace", 0, 1, OPT_GRACE},
    {"lost-limit", 0, 1, OPT_LOST_LIMIT},
    {"max-body", 0, 1, OPT_MAX_BODY},
    {"idle-timeout", 0, 1, OPT_IDLE_TIMEOUT},
    {"keepalive", 0, 1, OPT_KEEPALIVE},
    {"stream-queue", 0, 1, OPT_STREAM_QUEUE},
    {"max-connections", 0, 1, OPT_MAX_CONNECTIONS},
    {"log-level", 0, 1, OPT_LOG_LEVEL},
    {"help", 'h', 0, OPT_HELP},
    {NULL, 0, 0, 0}};

struct serve_opts {
  struct server_config cfg;
  const char *token_file;
  const char *state_url;
  const char *level_name;
  int workers, grace_ms, lost_limit;
  char *default_socket; /* malloc'd, when --socket was not given */
};

#define CMD "spe serve"

/* A size in bytes: digits with an optional K, M or G (powers of 1024). */
static int parse_size(const char *s, size_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno != 0 || s[0] == '-') return -1;
  unsigned long long scale = 1;
  if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) scale = 1024;
  else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) scale = 1024 * 1024;
  else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) scale = 1024 * 1024 * 1024;
  else if (*end != '\0') return -1;
  if (v == 0 || v > SIZE_MAX / 2 / scale) return -1;
  *out = (size_t)(v * scale);
  return 0;
}

char *cli_default_socket_path(void) {
  const char *run = getenv("XDG_RUNTIME_DIR");
  if (run == NULL || run[0] != '/') return strdup(".spe/spe.sock");
  size_t n = strlen(run) + sizeof "/spe.sock";
  char *p = malloc(n);
  if (p != NULL) snprintf(p, n, "%s/spe.sock", run);
  return p;
}

static int parse_value(struct serve_opts *o, int k, const char *v) {
  int n;
  switch (k) {
    case OPT_SOCKET: o->cfg.socket_path = v; return -1;
    case OPT_LISTEN: o->cfg.listen_addr = v; return -1;
    case OPT_TOKEN_FILE: o->token_file = v; return -1;
    case OPT_STATE: o->state_url = v; return -1;
    case OPT_LOG_LEVEL: o->level_name = v; return -1;
    case OPT_WORKERS:
      switch (args_parse_workers(v, &o->workers)) {
        case 0: return -1;
        case -2:
          return args_usage_error(CMD, "--workers: at most %d, got \"%s\" (\"unbound\" means no "
                                  "limit)", ARGS_MAX_WORKERS, v);
        default:
          return args_usage_error(CMD, "--workers: expected a positive integer or \"unbound\", "
                                  "got \"%s\"", v);
      }
    case OPT_GRACE:
      if (args_parse_duration_ms(v, &o->grace_ms) == 0) return -1;
      return args_usage_error(CMD, "--grace: expected a duration such as 5s or 500ms, got "
                              "\"%s\"", v);
    case OPT_LOST_LIMIT:
      if (args_parse_count(v, 1, 1000000, &o->lost_limit) == 0) return -1;
      return args_usage_error(CMD, "--lost-limit: expected a whole number from 1, got \"%s\"", v);
    case OPT_MAX_BODY:
      if (parse_size(v, &o->cfg.max_body) == 0) return -1;
      return args_usage_error(CMD, "--max-body: expected a size such as 16M, 512K or 1000, got "
                              "\"%s\"", v);
    case OPT_IDLE_TIMEOUT:
      /* libmicrohttpd counts it in whole seconds. */
      if (args_parse_duration_ms(v, &n) == 0 && n >= 1000) {
        o->cfg.idle_timeout_s = (unsigned)((n + 999) / 1000);
        return -1;
      }
      return args_usage_error(CMD, "--idle-timeout: expected a duration of at least 1s, got "
                              "\"%s\"", v);
    case OPT_KEEPALIVE:
      if (args_parse_duration_ms(v, &o->cfg.keepalive_ms) == 0 && o->cfg.keepalive_ms >= 10)
        return -1;
      return args_usage_error(CMD, "--keepalive: expected a duration of at least 10ms, got "
                              "\"%s\"", v);
    case OPT_STREAM_QUEUE:
      if (args_parse_count(v, 1, 100000000, &n) == 0) {
        o->cfg.stream_queue = (size_t)n;
        return -1;
      }
      return args_usage_error(CMD, "--stream-queue: expected a whole number from 1, got \"%s\"",
                              v);
    case OPT_MAX_CONNECTIONS:
      if (args_parse_count(v, 1, 100000, &n) == 0) {
        o->cfg.max_connections = (unsigned)n;
        return -1;
      }
      return args_usage_error(CMD, "--max-connections: expected a whole number from 1 to "
                              "100000, got \"%s\"", v);
  }
  return -1;
}

/* Returns -1 to go on, else an exit status. */
static int parse(int argc, char **argv, struct serve_opts *o) {
  struct arg_iter it;
  args_init(&it, CMD, argc, argv, 1);
  int k;
  const char *v;
  while ((k = args_next(&it, serve_specs, &v)) != ARGS_END) {
    if (k == ARGS_ERROR) return 2;
    if (k == ARGS_OPERAND) return args_usage_error(CMD, "unexpected argument \"%s\"", v);
    if (k == OPT_HELP) {
      fputs(serve_usage, stdout);
      return 0;
    }
    int status = parse_value(o, k, v);
    if (status >= 0) return status;
  }
  /* "Any TCP listener requires --token-file": loopback ones too, since any
   * local user can reach a loopback port, unlike a 0600 socket. */
  if (o->cfg.listen_addr != NULL && o->token_file == NULL)
    return args_usage_error(CMD, "--listen needs --token-file: every TCP listener, loopback "
                                 "included, asks its clients for a bearer token");
  if (o->cfg.socket_path == NULL && o->cfg.listen_addr == NULL) {
    o->default_socket = cli_default_socket_path();
    if (o->default_socket == NULL) {
      fprintf(stderr, "spe: out of memory\n");
      return 3;
    }
    o->cfg.socket_path = o->default_socket;
  }
  return -1;
}

static int set_up_logging(const char *level_name) {
  int level, asked;
  int status = args_log_level(CMD, level_name, &level, &asked);
  if (status >= 0) return status;
  log_sink_set_level(level);
  return -1;
}

static int fail(const char *what, char *msg) {
  fprintf(stderr, "spe: serve: %s%s%s\n", what, msg != NULL ? ": " : "", msg != NULL ? msg : "");
  free(msg);
  return 3;
}

static int open_executor(const struct serve_opts *o, spe_executor **ex) {
  spe_options opt;
  spe_options_init(&opt);
  opt.workers = o->workers;
  opt.store_url = o->state_url;
  opt.log = log_sink_library;
  opt.log_level = log_sink_level();
  opt.grace_ms = o->grace_ms;
  opt.lost_attempt_limit = o->lost_limit;
  /* A server has no job files to wait for: recovered jobs go on by
   * themselves. */
  opt.hold_recovered = 0;
  opt.event_history = SERVE_EVENT_HISTORY;
  char *msg = NULL;
  int rc = spe_open(ex, &opt, &msg);
  if (rc == 0) return 0;
  if (msg == NULL) msg = strdup(spe_strerror(rc));
  return fail("cannot open the state store", msg);
}

static void wake(void *ctx) { sem_post(ctx); }

/* Serve until a signal, then stop in order. */
static int serve(struct serve_opts *o, struct server *srv, spe_executor *ex) {
  sem_t stop;
  sem_init(&stop, 0, 0);
  if (signals_watch_call(wake, &stop) != 0) return 3;
  char *msg = NULL;
  if (server_start(srv, ex, &msg) != 0) {
    server_stop(srv);
    spe_close(ex);
    signals_unwatch();
    sem_destroy(&stop);
    return fail("cannot serve", msg);
  }
  log_sink_line(SPE_LOG_INFO, spe__now_ms(), "serving (pid %d, state %s)", (int)getpid(), o->state_url);
  /* Until a signal, or until the executor fails (its store cannot commit):
   * then exit 3, so that a supervisor (systemd) sees the failure and can
   * restart the server, instead of a server answering 500 forever. */
  int failed = 0;
  for (;;) {
    struct timespec until = spe__deadline_after(CLOCK_REALTIME, 200);
    if (sem_timedwait(&stop, &until) == 0) break;
    if (errno == ETIMEDOUT && (failed = spe_failure(ex)) != 0) break;
  }
  if (failed) {
    log_sink_line(SPE_LOG_ERROR, spe__now_ms(),
                  "stopping: %s (see above); running tasks get SIGTERM", spe_strerror(failed));
  } else {
    int sig = signals_caught();
    log_sink_line(SPE_LOG_INFO, spe__now_ms(),
                  "stopping on %s: no new connections, running tasks get SIGTERM",
                  sig == SIGINT ? "SIGINT" : "SIGTERM");
  }
  server_quiesce(srv);
  server_end_streams(srv);
  spe_shutdown(ex);
  server_stop(srv);
  spe_close(ex);
  signals_unwatch();
  sem_destroy(&stop);
  log_sink_line(SPE_LOG_INFO, spe__now_ms(), "stopped");
  return failed ? 3 : 0;
}

int cmd_serve(int argc, char **argv) {
  struct serve_opts o;
  memset(&o, 0, sizeof o);
  server_config_init(&o.cfg);
  o.cfg.log = log_sink_library;
  o.state_url = CLI_DEFAULT_STATE_URL;
  o.grace_ms = 5000;
  o.lost_limit = 3;
  char *token = NULL, *msg = NULL;
  struct server *srv = NULL;
  spe_executor *ex = NULL;
  int status = parse(argc, argv, &o);
  if (status < 0) status = set_up_logging(o.level_name);
  o.cfg.log_level = log_sink_level();
  if (status < 0 && o.token_file != NULL && server_read_token(o.token_file, &token, &msg) != 0) {
    fprintf(stderr, "spe: serve: %s\n", msg);
    free(msg);
    status = 2;
  }
  o.cfg.token = token;
  if (status < 0 && signals_block() != 0) status = fail("cannot block signals", NULL);
  if (status < 0 && server_bind(&srv, &o.cfg, &msg) != 0) status = fail("cannot listen", msg);
  if (status < 0 && open_executor(&o, &ex) != 0) {
    server_stop(srv);
    status = 3;
  }
  if (status < 0) status = serve(&o, srv, ex);
  free(token);
  free(o.default_socket);
  return status;
}
