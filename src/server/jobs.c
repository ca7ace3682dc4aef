/*
 * The jobs endpoints: submit, start, cancel, list, get, prune. Each is one library
 * call (two for a submit that starts), made on the connection's thread; the
 * library answers once the change is durable, so a 201 or 200 means that the
 * job, or its start or cancel, survives a crash of the server.
 */
#include "server/server_impl.h"

#include "base/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *query(struct MHD_Connection *c, const char *key) {
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ?start=true|false (also 1|0). Returns 0/1, or -1 for anything else. */
static int start_flag(struct MHD_Connection *c) {
  const char *v = query(c, "start");
  if (v == NULL || strcmp(v, "false") == 0 || strcmp(v, "0") == 0) return 0;
  if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) return 1;
  return -1;
}

enum MHD_Result jobs_submit(struct server *s, struct MHD_Connection *c, struct request *r) {
  int start = start_flag(c);
  if (start < 0)
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, NULL,
                       "start: expected true or false, got \"%s\"", query(c, "start"));
  if (r->body.buf.len == 0)
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad_json", NULL, NULL,
                       "the body is empty; expected a job description");
  /* Parsed here, so that a body that is not JSON at all (bad_json) is told
   * apart from a job that breaks a rule of SPEC §1 (invalid_job). The flags
   * are those of the library's own parser. */
  json_error_t err;
  json_t *doc = json_loadb(r->body.buf.data, r->body.buf.len,
                           JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
  if (doc == NULL)
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad_json", NULL, NULL,
                       "invalid JSON at line %d, column %d: %s", err.line, err.column, err.text);
  json_decref(doc);
  char id[SPE_ID_SIZE];
  char *msg = NULL;
  /* ?start=true: submitted and started in one commit (SPE_SUBMIT_START), so
   * the client waits for one fsync, not two. */
  int rc = spe_submit_ex(s->ex, r->body.buf.data, r->body.buf.len, start ? SPE_SUBMIT_START : 0, id,
                         NULL, &msg);
  if (rc != 0) {
    return reply_spe_error(c, rc, msg);
  }
  return reply_json(c, MHD_HTTP_CREATED, json_pack("{s:s}", "id", id));
}

/* Answer {"id": id} for a change made, or the error. */
static enum MHD_Result done_or_error(struct MHD_Connection *c, const char *id, int rc,
                                     char *msg) {
  if (rc != 0) return reply_spe_error(c, rc, msg);
  free(msg);
  return reply_json(c, MHD_HTTP_OK, json_pack("{s:s}", "id", id));
}

enum MHD_Result jobs_start(struct server *s, struct MHD_Connection *c, const char *id) {
  char *msg = NULL;
  int rc = spe_start(s->ex, id, &msg);
  return done_or_error(c, id, rc, msg);
}

enum MHD_Result jobs_cancel(struct server *s, struct MHD_Connection *c, const char *id) {
  char *msg = NULL;
  int rc = spe_cancel(s->ex, id, &msg);
  return done_or_error(c, id, rc, msg);
}

enum MHD_Result jobs_get(struct server *s, struct MHD_Connection *c, const char *id) {
  json_t *job = NULL;
  char *msg = NULL;
  int rc = spe_job_get(s->ex, id, &job, &msg);
  if (rc != 0) return done_or_error(c, id, rc, msg);
  return reply_json(c, MHD_HTTP_OK, job);
}

#define LIST_DEFAULT 100
#define LIST_MAX 1000

enum MHD_Result jobs_list(struct server *s, struct MHD_Connection *c) {
  const char *limit_text = query(c, "limit");
  size_t limit = LIST_DEFAULT;
  if (limit_text != NULL) {
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(limit_text, &end, 10);
    if (*end != '\0' || errno != 0 || v < 1 || v > LIST_MAX || limit_text[0] == '-')
      return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, NULL,
                         "limit: expected a whole number from 1 to %d, got \"%s\"", LIST_MAX,
                         limit_text);
    limit = v;
  }
  json_t *jobs = NULL;
  char *msg = NULL;
  int rc = spe_jobs_list(s->ex, query(c, "status"), query(c, "after"), limit, &jobs, &msg);
  if (rc != 0) {
    return reply_spe_error(c, rc, msg);
  }
  /* A full page may have a next one: its cursor is the page's last id. */
  json_t *next = json_null();
  size_t n = json_array_size(jobs);
  if (n == limit) {
    json_t *id = json_object_get(json_array_get(jobs, n - 1), "id");
    if (json_is_string(id)) next = json_incref(id);
  }
  return reply_json(c, MHD_HTTP_OK, json_pack("{s:o,s:o}", "jobs", jobs, "next", next));
}

/* POST /v1/prune?older_than_ms=N: remove the jobs that finished more than N ms
 * ago (0: every finished job), with their tasks and events; answers
 * {"pruned": how many}. `spe prune --older-than DURATION` asks this. */
enum MHD_Result jobs_prune(struct server *s, struct MHD_Connection *c) {
  const char *text = query(c, "older_than_ms");
  char *end = NULL;
  errno = 0;
  long long age = text != NULL ? strtoll(text, &end, 10) : -1;
  if (text == NULL || *end != '\0' || errno != 0 || age < 0 || text[0] == '-')
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, NULL,
                       "older_than_ms: expected a whole number of milliseconds, 0 or more, "
                       "got \"%s\"", text != NULL ? text : "");
  size_t pruned = 0;
  char *msg = NULL;
  int rc = spe_prune(s->ex, spe__now_ms() - (int64_t)age, &pruned, &msg);
  if (rc != 0) {
    return reply_spe_error(c, rc, msg);
  }
  return reply_json(c, MHD_HTTP_OK, json_pack("{s:I}", "pruned", (json_int_t)pruned));
}
