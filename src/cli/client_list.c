/*
 * `spe list [--status S] [--limit N]`: the jobs the server's store holds,
 * newest first, as a table (ID, NAME, STATUS, SUBMITTED, TOOK) or, with
 * --json, one job summary per line ({"id", "name", "status", "submitted_ms",
 * "started_ms", "finished_ms"}).
 *
 * The server answers in pages of at most 1,000 jobs; a larger --limit is
 * fetched page after page, each starting after the last id of the one before.
 */
#include "base/status.h"
#include "cli/cli.h"
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT_LIMIT 20
#define LIST_MAX_LIMIT 1000000
#define SERVER_PAGE_MAX 1000

static const char list_usage[] =
    "usage: spe list [OPTION...]\n"
    "\n"
    "Lists the jobs the server holds, newest first.\n"
    "\n"
    "Options:\n"
    "  --status STATUS      only jobs in this status: submitted, running,\n"
    "                       succeeded, failed or cancelled\n"
    "  --limit N            at most N jobs (default 20)\n" CLIENT_OPTIONS_HELP
    "\n" CLIENT_EXIT_HELP;

enum { OPT_STATUS = 1, OPT_LIMIT };

struct list_opts {
  const char *status;
  int limit;
};

static int on_opt(void *ctx, int id, const char *value) {
  struct list_opts *lo = ctx;
  if (id == OPT_LIMIT && args_parse_count(value, 1, LIST_MAX_LIMIT, &lo->limit) != 0)
    return args_usage_error("spe list", "--limit \"%s\": expected a number from 1 to %d", value,
                            LIST_MAX_LIMIT);
  if (id == OPT_STATUS) {
    if (spe__job_status_parse(value) >= 0) lo->status = value;
    if (lo->status != value)
      return args_usage_error("spe list",
                              "--status \"%s\": expected submitted, running, succeeded, "
                              "failed or cancelled",
                              value);
  }
  return 0;
}

/* The array of jobs in a page: the answer itself, or its "jobs" member. */
static json_t *page_jobs(json_t *body) {
  if (json_is_array(body)) return body;
  json_t *jobs = json_object_get(body, "jobs");
  return json_is_array(jobs) ? jobs : NULL;
}

/* GET one page into `all`; *got receives how many jobs it held. */
static int get_page(struct client *c, const char *status, const char *after, size_t limit,
                    json_t *all, size_t *got) {
  char path[256];
  int n = snprintf(path, sizeof path, "/v1/jobs?limit=%zu", limit);
  if (status != NULL) n += snprintf(path + n, sizeof path - (size_t)n, "&status=%s", status);
  char *eafter = after != NULL ? client_escape(c, after) : NULL;
  if (eafter != NULL && strlen(eafter) < 128)
    snprintf(path + n, sizeof path - (size_t)n, "&after=%s", eafter);
  free(eafter);
  struct client_reply r;
  int rc = client_request(c, "GET", path, NULL, 0, NULL, &r);
  if (rc != 0) return rc;
  json_t *jobs = page_jobs(r.body);
  if (jobs == NULL) {
    fprintf(stderr, "%s: the server's answer to a job list is not one\n", client_cmd(c));
    client_reply_free(&r);
    return CLIENT_EXIT_SERVER;
  }
  *got = json_array_size(jobs);
  json_array_extend(all, jobs);
  client_reply_free(&r);
  return 0;
}

int client_list_jobs(struct client *c, const char *status, size_t limit, json_t **out) {
  json_t *all = json_array();
  *out = NULL;
  if (all == NULL) return CLIENT_EXIT_SERVER;
  while (json_array_size(all) < limit) {
    size_t want = limit - json_array_size(all), got = 0;
    if (want > SERVER_PAGE_MAX) want = SERVER_PAGE_MAX;
    const json_t *last = json_array_get(all, json_array_size(all) - 1);
    const char *after = json_string_value(json_object_get(last, "id"));
    int rc = get_page(c, status, after, want, all, &got);
    if (rc != 0) {
      json_decref(all);
      return rc;
    }
    if (got < want) break; /* the last page */
  }
  *out = all;
  return 0;
}

int client_print_jobs(const json_t *jobs, int json) {
  size_t i;
  json_t *job;
  if (json) {
    json_array_foreach(jobs, i, job) {
      int rc = client_print_json(job);
      if (rc != 0) return rc;
    }
    return 0;
  }
  static const char *const headers[] = {"ID", "NAME", "STATUS", "SUBMITTED", "TOOK"};
  struct table *t = table_new(5, headers);
  json_array_foreach(jobs, i, job) {
    char submitted[32], took[32];
    int64_t sub = (int64_t)json_integer_value(json_object_get(job, "submitted_ms"));
    int64_t start = (int64_t)json_integer_value(json_object_get(job, "started_ms"));
    int64_t end = (int64_t)json_integer_value(json_object_get(job, "finished_ms"));
    client_format_time(sub, submitted);
    client_format_duration(start > 0 ? start : sub, end, took);
    const char *row[] = {json_string_value(json_object_get(job, "id")),
                         json_string_value(json_object_get(job, "name")),
                         json_string_value(json_object_get(job, "status")), submitted, took};
    table_add(t, row);
  }
  table_print_free(t);
  return fflush(stdout) == 0 ? 0 : client_print_text(NULL);
}

int cmd_list(int argc, char **argv) {
  static const struct opt_spec own[] = {
      {"status", 0, 1, OPT_STATUS}, {"limit", 0, 1, OPT_LIMIT}, {NULL, 0, 0, 0}};
  struct list_opts lo = {NULL, LIST_DEFAULT_LIMIT};
  struct client_args a;
  int rc = client_parse_args("spe list", list_usage, argc, argv, own, on_opt, &lo, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  json_t *jobs = NULL;
  if (a.noperands > 0)
    rc = args_usage_error("spe list", "unexpected argument \"%s\"", a.operands[0]);
  else if ((rc = client_open(&c, "spe list", &a.opts)) == 0 &&
           (rc = client_list_jobs(c, lo.status, (size_t)lo.limit, &jobs)) == 0)
    rc = client_print_jobs(jobs, a.opts.json);
  json_decref(jobs);
  client_close(c);
  free(a.operands);
  return rc;
}
