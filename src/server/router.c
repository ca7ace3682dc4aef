/*
 * The access handler: every request goes through here, in three steps, as
 * libmicrohttpd calls it:
 *
 *  1. the headers have arrived (*req_cls is NULL): find the route, then check
 *     what can be refused before any body is read: the token (401), the path
 *     (404), the method (405), and for a submit the length (411), the type
 *     (415) and the size (413). A refusal here is queued at once, and MHD
 *     closes the connection rather than read a body nobody wants;
 *  2. a piece of body: gathered (upload.c);
 *  3. the end of the request (no more body): the handler of the route.
 *
 * A client that goes away mid-body never reaches step 3, so a truncated
 * submit creates nothing. MHD then calls router_completed(), which frees the
 * request in every case.
 *
 * 411: libmicrohttpd reads a body only when the request has a Content-Length
 * or is chunked; a POST with neither has, for it, no body at all (anything
 * sent after the headers would be read as the next request). A submit is
 * refused with 411 in that case, since it cannot be meant; start and cancel,
 * which take no body, are accepted without one (`curl -X POST` sends none).
 */
#include "server/server_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum route parse_route(const char *url, char id[64]) {
  if (strcmp(url, "/v1/jobs") == 0) return ROUTE_JOBS;
  if (strcmp(url, "/v1/events") == 0) return ROUTE_EVENTS;
  if (strcmp(url, "/v1/prune") == 0) return ROUTE_PRUNE;
  if (strcmp(url, "/v1/health") == 0) return ROUTE_HEALTH;
  if (strcmp(url, "/metrics") == 0) return ROUTE_METRICS;
  if (strncmp(url, "/v1/jobs/", 9) != 0) return ROUTE_NONE;
  const char *p = url + 9;
  const char *slash = strchr(p, '/');
  size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
  if (n == 0 || n >= 64) return ROUTE_NONE;
  memcpy(id, p, n);
  id[n] = '\0';
  if (slash == NULL) return ROUTE_JOB;
  if (strcmp(slash, "/start") == 0) return ROUTE_JOB_START;
  if (strcmp(slash, "/cancel") == 0) return ROUTE_JOB_CANCEL;
  return ROUTE_NONE;
}

/* The methods a route takes, as a set of bits: one source for the check and
 * for the Allow header (which lists them in this order). */
enum { M_GET = 1u, M_HEAD = 2u, M_POST = 4u };

static const struct {
  const char *name;
  unsigned bit;
} methods[] = {{MHD_HTTP_METHOD_GET, M_GET}, {MHD_HTTP_METHOD_HEAD, M_HEAD},
               {MHD_HTTP_METHOD_POST, M_POST}};

static unsigned route_methods(enum route r) {
  switch (r) {
    case ROUTE_JOBS: return M_GET | M_HEAD | M_POST;
    case ROUTE_JOB_START:
    case ROUTE_JOB_CANCEL:
    case ROUTE_PRUNE: return M_POST;
    case ROUTE_EVENTS: return M_GET;
    default: return M_GET | M_HEAD;
  }
}

static int method_allowed(enum route r, const char *method) {
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (strcmp(method, methods[i].name) == 0) return (route_methods(r) & methods[i].bit) != 0;
  return 0;
}

/* The Allow header of a route, e.g. "GET, HEAD, POST", into out[32]. */
static void allowed_methods(enum route r, char out[32]) {
  unsigned mask = route_methods(r);
  size_t n = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (mask & methods[i].bit)
      n += (size_t)snprintf(out + n, 32 - n, "%s%s", n > 0 ? ", " : "", methods[i].name);
}

/* "application/json", with parameters or not ("; charset=utf-8"). */
static int is_json_type(const char *type) {
  if (type == NULL) return 0;
  while (*type == ' ') type++;
  static const char json[] = "application/json";
  size_t n = sizeof json - 1;
  return strncasecmp(type, json, n) == 0 &&
         (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

static int is_chunked(struct MHD_Connection *c) {
  const char *te =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  return te != NULL && strcasestr(te, "chunked") != NULL;
}

/* The checks on a POST's body that need only its headers. Returns 1 with
 * *res set when the request is refused. */
static int refuse_body(struct server *s, struct MHD_Connection *c, struct request *r,
                       enum MHD_Result *res) {
  const char *cl =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (r->route == ROUTE_JOBS) {
    if (cl == NULL && !is_chunked(c)) {
      *res = reply_error(c, MHD_HTTP_LENGTH_REQUIRED, "length_required", NULL, NULL,
                         "a job description needs a Content-Length (or chunked encoding)");
      return 1;
    }
    const char *type =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_json_type(type)) {
      *res = reply_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                         NULL, "a job description must be sent as application/json, not %s",
                         type != NULL ? type : "without a Content-Type");
      return 1;
    }
  }
  /* MHD has checked that Content-Length is a number. */
  if (cl != NULL && strtoull(cl, NULL, 10) > s->cfg.max_body) {
    *res = reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL, NULL,
                       "the body is %s bytes; the limit is %zu", cl, s->cfg.max_body);
    return 1;
  }
  return 0;
}

/* Step 1. Returns 1 with *res set when the request is refused. */
static int refuse_early(struct listener *l, struct MHD_Connection *c, const char *url,
                        const char *method, struct request *r, enum MHD_Result *res) {
  struct server *s = l->srv;
  if (l->needs_token && r->route != ROUTE_HEALTH && !auth_ok(s, c)) {
    int sent = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_AUTHORIZATION) != NULL;
    *res = reply_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                       MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                       sent ? "Bearer realm=\"spe\", error=\"invalid_token\""
                            : "Bearer realm=\"spe\"",
                       sent ? "the bearer token is wrong"
                            : "this listener needs \"Authorization: Bearer TOKEN\"");
    return 1;
  }
  if (r->route == ROUTE_NONE) {
    *res = reply_error(c, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL, "no such path: %s", url);
    return 1;
  }
  if (!method_allowed(r->route, method)) {
    char allow[32];
    allowed_methods(r->route, allow);
    *res = reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                       MHD_HTTP_HEADER_ALLOW, allow, "%s takes %s, not %s", url, allow, method);
    return 1;
  }
  if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) return refuse_body(s, c, r, res);
  return 0;
}

/* Step 3. */
static enum MHD_Result dispatch(struct server *s, struct MHD_Connection *c, const char *method,
                                struct request *r) {
  if (r->body.too_large)
    return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL, NULL,
                       "the body is over the limit of %zu bytes", s->cfg.max_body);
  switch (r->route) {
    case ROUTE_JOBS:
      return strcmp(method, MHD_HTTP_METHOD_POST) == 0 ? jobs_submit(s, c, r) : jobs_list(s, c);
    case ROUTE_JOB: return jobs_get(s, c, r->id);
    case ROUTE_JOB_START: return jobs_start(s, c, r->id);
    case ROUTE_JOB_CANCEL: return jobs_cancel(s, c, r->id);
    case ROUTE_PRUNE: return jobs_prune(s, c);
    case ROUTE_EVENTS: return sse_open(s, c);
    case ROUTE_HEALTH: return health_reply(s, c);
    case ROUTE_METRICS: return metrics_reply(s, c);
    case ROUTE_NONE: break;
  }
  return MHD_NO;
}

enum MHD_Result router_handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **req_cls) {
  (void)version;
  struct listener *l = cls;
  struct request *r = *req_cls;
  if (r == NULL) {
    r = calloc(1, sizeof *r);
    if (r == NULL) return MHD_NO;
    *req_cls = r;
    r->body.limit = l->srv->cfg.max_body;
    r->route = parse_route(url, r->id);
    enum MHD_Result res;
    if (refuse_early(l, c, url, method, r, &res)) {
      r->answered = 1;
      return res;
    }
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->answered) return MHD_YES;
    return upload_append(&r->body, upload_data, n) == 0 ? MHD_YES : MHD_NO;
  }
  if (r->answered) return MHD_YES;
  r->answered = 1;
  server_log(l->srv, SPE_LOG_DEBUG, "%s %s on %s", method, url, l->shown);
  return dispatch(l->srv, c, method, r);
}

void router_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)c, (void)toe;
  struct request *r = *req_cls;
  if (r == NULL) return;
  upload_free(&r->body);
  free(r);
  *req_cls = NULL;
}
