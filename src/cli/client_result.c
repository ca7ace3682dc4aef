/*
 * `spe result ID`: the job in the shape of SPEC §3 on stdout, one line of
 * JSON (the same as `spe run --json` prints), also while it runs. The exit
 * status says how it ended: 0 succeeded, 1 anything else (failed, cancelled,
 * or not finished yet).
 */
#include "cli/cli.h"
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char result_usage[] =
    "usage: spe result [OPTION...] ID\n"
    "\n"
    "Prints the job ID as JSON (SPEC §3: its status, times, and each task's status,\n"
    "result or error), also while it runs.\n"
    "\n"
    "Options:\n" CLIENT_OPTIONS_HELP
    "\n"
    "Exit status: 0 the job succeeded; 1 it failed, was cancelled or has not\n"
    "finished; 2 bad usage or an unknown job; 3 the server cannot be reached or\n"
    "failed.\n";

int client_get_job(struct client *c, const char *id, json_t **out) {
  *out = NULL;
  char *eid = client_escape(c, id);
  if (eid == NULL) return CLIENT_EXIT_SERVER;
  size_t n = strlen(eid) + 16;
  char *path = malloc(n);
  if (path == NULL) {
    free(eid);
    return CLIENT_EXIT_SERVER;
  }
  snprintf(path, n, "/v1/jobs/%s", eid);
  free(eid);
  struct client_reply r;
  int rc = client_request(c, "GET", path, NULL, 0, NULL, &r);
  free(path);
  if (rc != 0) return rc;
  if (!json_is_object(r.body) || !json_is_object(json_object_get(r.body, "tasks"))) {
    fprintf(stderr, "%s: the server's answer for job %s is not a job\n", client_cmd(c), id);
    client_reply_free(&r);
    return CLIENT_EXIT_SERVER;
  }
  *out = r.body;
  return 0;
}

int client_job_exit(const json_t *job) {
  const char *st = json_string_value(json_object_get(job, "status"));
  return st != NULL && strcmp(st, "succeeded") == 0 ? CLIENT_EXIT_OK : CLIENT_EXIT_FAILED;
}

int cmd_result(int argc, char **argv) {
  struct client_args a;
  int rc = client_parse_args("spe result", result_usage, argc, argv, NULL, NULL, NULL, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  json_t *job = NULL;
  if (a.noperands != 1)
    rc = args_usage_error("spe result", a.noperands == 0 ? "no job id given"
                                                         : "one job id at a time");
  else if ((rc = client_open(&c, "spe result", &a.opts)) == 0 &&
           (rc = client_get_job(c, a.operands[0], &job)) == 0 &&
           (rc = client_print_json(job)) == 0)
    rc = client_job_exit(job);
  json_decref(job);
  client_close(c);
  free(a.operands);
  return rc;
}
