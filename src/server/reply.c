/*
 * Responses: JSON bodies, and errors in the one shape every endpoint uses,
 *
 *     {"error": {"code": "unknown_job", "message": "no such job: 01JD..."}}
 *
 * `code` is for programs (a fixed set, docs/server.md), `message` for people.
 * Every body ends with a newline, for the terminal of whoever runs curl.
 */
#include "server/server_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *resp) {
  if (resp == NULL) return MHD_NO; /* out of memory: MHD closes the connection */
  enum MHD_Result rc = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static struct MHD_Response *text_response(const char *content_type, char *text, size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (resp == NULL) {
    free(text);
    return NULL;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  return resp;
}

enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *content_type,
                           char *text, size_t len) {
  return queue(c, status, text_response(content_type, text, len));
}

/* The body of a JSON response: compact, with a final newline. */
static char *json_text(json_t *body, size_t *len) {
  char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(body);
  if (text == NULL) return NULL;
  size_t n = strlen(text);
  char *with_nl = realloc(text, n + 2);
  if (with_nl == NULL) {
    free(text);
    return NULL;
  }
  with_nl[n] = '\n';
  with_nl[n + 1] = '\0';
  *len = n + 1;
  return with_nl;
}

static struct MHD_Response *json_response(json_t *body) {
  size_t len = 0;
  char *text = body != NULL ? json_text(body, &len) : NULL;
  if (text == NULL) return NULL;
  return text_response("application/json", text, len);
}

enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body) {
  return queue(c, status, json_response(body));
}

static enum MHD_Result error_v(struct MHD_Connection *c, unsigned status, const char *code,
                               const char *header, const char *value, const char *fmt,
                               va_list ap) {
  char small[512];
  char *big = NULL;
  const char *message = small;
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  if (n >= (int)sizeof small && (big = malloc((size_t)n + 1)) != NULL) {
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    message = big;
  }
  json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
  free(big);
  struct MHD_Response *resp = json_response(body);
  if (resp != NULL && header != NULL) MHD_add_response_header(resp, header, value);
  return queue(c, status, resp);
}

enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                            const char *header, const char *value, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  enum MHD_Result rc = error_v(c, status, code, header, value, fmt, ap);
  va_end(ap);
  return rc;
}

/* How each library error is answered (with a header for some). */
static const struct {
  int rc;
  unsigned status;
  const char *code;
  const char *header, *value;
} spe_errors[] = {
    {SPE_EINVAL, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, NULL},
    {SPE_EJOB, MHD_HTTP_BAD_REQUEST, "invalid_job", NULL, NULL},
    {SPE_ELIMIT, MHD_HTTP_BAD_REQUEST, "limit_exceeded", NULL, NULL},
    /* Too many unfinished jobs is the server's state, not the job's fault:
     * 429, to be tried again later. */
    {SPE_EBUSY, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_jobs", MHD_HTTP_HEADER_RETRY_AFTER, "1"},
    {SPE_ENOJOB, MHD_HTTP_NOT_FOUND, "unknown_job", NULL, NULL},
    {SPE_ESTATE, MHD_HTTP_CONFLICT, "wrong_state", NULL, NULL},
    {SPE_ECLOSED, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", NULL, NULL},
    {SPE_ENOMEM, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory", NULL, NULL},
    {SPE_ETIMEDOUT, MHD_HTTP_GATEWAY_TIMEOUT, "timed_out", NULL, NULL},
    {SPE_ENOTSUP, MHD_HTTP_NOT_IMPLEMENTED, "not_supported", NULL, NULL},
    {SPE_ESTORE, MHD_HTTP_INTERNAL_SERVER_ERROR, "store_failed", NULL, NULL},
};

enum MHD_Result reply_spe_error(struct MHD_Connection *c, int rc, char *msg) {
  unsigned status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  const char *code = "internal_error";
  const char *header = NULL, *value = NULL;
  for (size_t i = 0; i < sizeof spe_errors / sizeof *spe_errors; i++)
    if (spe_errors[i].rc == rc) {
      status = spe_errors[i].status;
      code = spe_errors[i].code;
      header = spe_errors[i].header;
      value = spe_errors[i].value;
    }
  enum MHD_Result res =
      reply_error(c, status, code, header, value, "%s", msg != NULL ? msg : spe_strerror(rc));
  free(msg);
  return res;
}
