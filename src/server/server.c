/*
 * The server's life: bind, start one libmicrohttpd daemon per listener, stop.
 *
 * Each listener is a daemon of its own (MHD serves one listening socket per
 * daemon), so that a request can be told by where it came: the TCP listener
 * asks for the token, the Unix socket does not. The daemons run in
 * thread-per-connection mode with an internal thread that accepts
 * (MHD_USE_INTERNAL_POLLING_THREAD), polling with poll() (no FD_SETSIZE
 * limit), and an inter-thread channel (MHD_USE_ITC) that
 * MHD_quiesce_daemon() needs.
 */
#include "server/server_impl.h"

#include "base/clock.h"
#include "base/msg.h"
#include "server/listen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The memory MHD gives each connection for its headers and buffers (its
 * default is 32 KiB). Headers larger than about half of it are refused by MHD
 * with 431. Bodies are gathered by us, outside it (upload.c). */
#define CONNECTION_MEMORY (64 * 1024)

void server_config_init(struct server_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_body = SERVER_DEFAULT_MAX_BODY;
  cfg->idle_timeout_s = SERVER_DEFAULT_IDLE_TIMEOUT_S;
  cfg->keepalive_ms = SERVER_DEFAULT_KEEPALIVE_MS;
  cfg->stream_queue = SERVER_DEFAULT_STREAM_QUEUE;
  cfg->max_connections = SERVER_DEFAULT_MAX_CONNECTIONS;
  cfg->log_level = SPE_LOG_INFO;
}

void server_log(const struct server *s, int level, const char *fmt, ...) {
  if (s->cfg.log == NULL || level > s->cfg.log_level) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s->cfg.log(s->cfg.log_ctx, level, line);
}

/* MHD's own complaints (MHD_USE_ERROR_LOG): bad requests from clients, mostly. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
  const struct server *s = cls;
  if (s->cfg.log == NULL || s->cfg.log_level < SPE_LOG_DEBUG) return;
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
  char prefixed[1100];
  snprintf(prefixed, sizeof prefixed, "http: %s", line);
  s->cfg.log(s->cfg.log_ctx, SPE_LOG_DEBUG, prefixed);
}

static struct server *server_new(const struct server_config *cfg, char **msg) {
  struct server *s = calloc(1, sizeof *s);
  if (s == NULL) {
    spe__msg_set(msg, "out of memory");
    return NULL;
  }
  s->cfg = *cfg;
  s->cfg.socket_path = NULL;
  s->cfg.listen_addr = NULL;
  s->cfg.token = NULL;
  pthread_mutex_init(&s->streams_lock, NULL);
  for (int i = 0; i < 2; i++) s->listeners[i].fd = -1;
  /* A stream must speak before the idle timeout closes it. */
  int half_idle = (int)(cfg->idle_timeout_s * 1000u / 2u);
  if (cfg->idle_timeout_s > 0 && s->cfg.keepalive_ms > half_idle) s->cfg.keepalive_ms = half_idle;
  if (s->cfg.keepalive_ms < 10) s->cfg.keepalive_ms = 10;
  if (cfg->token != NULL) {
    s->token = strdup(cfg->token);
    if (s->token == NULL) {
      spe__msg_set(msg, "out of memory");
      server_stop(s);
      return NULL;
    }
    s->token_len = strlen(s->token);
  }
  return s;
}

static int bind_unix(struct server *s, const char *path, char **msg) {
  struct listener *l = &s->listeners[s->nlisteners];
  l->srv = s;
  l->unix_path = strdup(path);
  if (l->unix_path == NULL) {
    spe__msg_set(msg, "out of memory");
    return -1;
  }
  s->nlisteners++;
  snprintf(l->shown, sizeof l->shown, "unix:%s", path);
  l->fd = listen_unix(path, msg);
  if (l->fd < 0) {
    free(l->unix_path);
    l->unix_path = NULL; /* not ours to remove */
    return -1;
  }
  return 0;
}

static int bind_tcp(struct server *s, const char *addr, char **msg) {
  struct listener *l = &s->listeners[s->nlisteners++];
  l->srv = s;
  l->needs_token = 1;
  l->fd = listen_tcp(addr, l->shown, sizeof l->shown, msg);
  return l->fd < 0 ? -1 : 0;
}

int server_bind(struct server **out, const struct server_config *cfg, char **msg) {
  *out = NULL;
  if (cfg->socket_path == NULL && cfg->listen_addr == NULL) {
    spe__msg_set(msg, "no address to listen on");
    return -1;
  }
  if (cfg->listen_addr != NULL && cfg->token == NULL) {
    spe__msg_set(msg, "a TCP listener needs a bearer token (--token-file)");
    return -1;
  }
  struct server *s = server_new(cfg, msg);
  if (s == NULL) return -1;
  if ((cfg->socket_path != NULL && bind_unix(s, cfg->socket_path, msg) != 0) ||
      (cfg->listen_addr != NULL && bind_tcp(s, cfg->listen_addr, msg) != 0)) {
    server_stop(s);
    return -1;
  }
  *out = s;
  return 0;
}

static int start_daemon(struct server *s, struct listener *l, char **msg) {
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                   MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  l->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, router_handle, l,
      MHD_OPTION_LISTEN_SOCKET, (MHD_socket)l->fd,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->cfg.idle_timeout_s,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)s->cfg.max_connections,
      MHD_OPTION_NOTIFY_COMPLETED, router_completed, (void *)NULL,
      MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)s,
      MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
      MHD_OPTION_END);
  if (l->daemon == NULL) {
    spe__msg_set(msg, "cannot start the HTTP server on %s", l->shown);
    return -1;
  }
  return 0;
}

int server_start(struct server *s, spe_executor *ex, char **msg) {
  s->ex = ex;
  s->started_ms = spe__now_ms();
  for (int i = 0; i < s->nlisteners; i++) {
    if (start_daemon(s, &s->listeners[i], msg) != 0) return -1;
    server_log(s, SPE_LOG_INFO, "listening on %s%s", s->listeners[i].shown,
               s->listeners[i].needs_token ? " (bearer token required)" : "");
  }
  return 0;
}

void server_quiesce(struct server *s) {
  if (s == NULL || s->quiesced) return;
  s->quiesced = 1;
  for (int i = 0; i < s->nlisteners; i++) {
    struct listener *l = &s->listeners[i];
    /* The listening socket stays open until MHD_stop_daemon() (a connection
     * thread may still use it), but the file goes now: a client then fails
     * at once instead of waiting in a backlog nobody accepts from. */
    if (l->daemon != NULL) MHD_quiesce_daemon(l->daemon);
    if (l->unix_path != NULL) {
      unlink(l->unix_path);
      free(l->unix_path);
      l->unix_path = NULL;
    }
  }
}

void server_end_streams(struct server *s) {
  if (s != NULL) sse_end_all(s);
}

void server_stop(struct server *s) {
  if (s == NULL) return;
  /* Streams that still wait for events must not hold MHD_stop_daemon up. */
  sse_end_all(s);
  server_quiesce(s);
  for (int i = 0; i < s->nlisteners; i++) {
    struct listener *l = &s->listeners[i];
    if (l->daemon != NULL) MHD_stop_daemon(l->daemon);
    if (l->fd >= 0) close(l->fd);
  }
  pthread_mutex_destroy(&s->streams_lock);
  free(s->token);
  free(s);
}
