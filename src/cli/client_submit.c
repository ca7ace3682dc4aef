/*
 * `spe submit FILE... [--start] [--wait]`: send job files to the server, which
 * validates them (an invalid job is refused with the server's message, naming
 * the file), and print each new job's id, one per line, in the order of the
 * files. Every file is tried, even after one was refused.
 *
 * --wait follows each job's events until it finishes, then prints a line per
 * job (or, with --json, the job in the shape of SPEC §3). It implies --start:
 * a job that nobody starts never finishes.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/job_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char submit_usage[] =
    "usage: spe submit [OPTION...] JOB.json...\n"
    "\n"
    "Submits each job file to the server (which validates it) and prints the new\n"
    "job's id, one line per file. A file name \"-\" reads the job from standard input.\n"
    "\n"
    "Options:\n"
    "  --start              start each job too\n"
    "  --wait               start each job and wait until every one has finished;\n"
    "                       print how each went (with --json: each job as\n"
    "                       `spe result` prints it)\n" CLIENT_OPTIONS_HELP
    "\n"
    "Exit status: 0 done (with --wait: every job succeeded); 1 a job failed or\n"
    "was cancelled (--wait); 2 bad usage, an unreadable file or a job the server\n"
    "refused; 3 the server cannot be reached or failed.\n";

enum { OPT_START = 1, OPT_WAIT };

struct submit_opts {
  int start, wait;
};

static int on_opt(void *ctx, int id, const char *value) {
  struct submit_opts *so = ctx;
  (void)value;
  if (id == OPT_START) so->start = 1;
  if (id == OPT_WAIT) so->wait = so->start = 1;
  return 0;
}

/* The worse of two exit statuses: 3 > 2 > 1 > 0. */
static int worse(int a, int b) { return a > b ? a : b; }

/* Submit one file; on success *id is the new job's id (malloc'd). */
static int submit_file(struct client *c, const char *file, int start, char **id) {
  char *text = NULL;
  size_t len = 0;
  *id = NULL;
  if (job_file_read(file, &text, &len) != 0) return CLIENT_EXIT_USAGE;
  struct client_reply r;
  int rc = client_request(c, "POST", start ? "/v1/jobs?start=true" : "/v1/jobs", text, len,
                          file, &r);
  free(text);
  if (rc != 0) return rc;
  const char *got = json_string_value(json_object_get(r.body, "id"));
  if (got == NULL) {
    fprintf(stderr, "%s: %s: the server's answer has no job id\n", client_cmd(c), file);
    rc = CLIENT_EXIT_SERVER;
  } else if ((*id = strdup(got)) == NULL) {
    rc = CLIENT_EXIT_SERVER;
  }
  client_reply_free(&r);
  return rc;
}

static int stop_at_finish(void *ctx, json_t *event) {
  (void)ctx;
  const char *type = json_string_value(json_object_get(event, "type"));
  return type != NULL && strcmp(type, "job_finished") == 0 ? FOLLOW_STOP : FOLLOW_GO_ON;
}

/* Wait until job `id` has finished, then print it. Returns its exit status. */
static int wait_job(struct client *c, const char *id, int json) {
  struct client_follow_opts fo = {.job = id, .after = 0};
  int rc = client_follow(c, &fo, stop_at_finish, NULL);
  if (rc != 0) return rc;
  json_t *job = NULL;
  if ((rc = client_get_job(c, id, &job)) != 0) return rc;
  rc = json ? client_print_json(job) : client_print_job_line(job);
  if (rc == 0) rc = client_job_exit(job);
  json_decref(job);
  return rc;
}

int cmd_submit(int argc, char **argv) {
  static const struct opt_spec own[] = {
      {"start", 0, 0, OPT_START}, {"wait", 0, 0, OPT_WAIT}, {NULL, 0, 0, 0}};
  struct submit_opts so = {0};
  struct client_args a;
  int rc = client_parse_args("spe submit", submit_usage, argc, argv, own, on_opt, &so, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  char **ids = calloc((size_t)a.noperands + 1, sizeof *ids);
  if (a.noperands == 0) {
    rc = args_usage_error("spe submit", "no job file given");
  } else if (ids == NULL) {
    rc = CLIENT_EXIT_SERVER;
  } else {
    rc = client_open(&c, "spe submit", &a.opts);
  }
  for (int i = 0; c != NULL && rc != CLIENT_EXIT_SERVER && i < a.noperands; i++) {
    int one = submit_file(c, a.operands[i], so.start, &ids[i]);
    rc = worse(rc, one);
    if (one != 0) continue;
    if (!a.opts.json) {
      rc = worse(rc, client_print_text(ids[i]));
    } else if (!so.wait) {
      /* With --wait --json, the jobs printed at the end are the output. */
      json_t *line = json_pack("{s:s, s:s}", "file", a.operands[i], "id", ids[i]);
      rc = worse(rc, client_print_json(line));
      json_decref(line);
    }
  }
  for (int i = 0; so.wait && rc != CLIENT_EXIT_SERVER && i < a.noperands; i++)
    if (ids[i] != NULL) rc = worse(rc, wait_job(c, ids[i], a.opts.json));
  for (int i = 0; ids != NULL && i < a.noperands; i++) free(ids[i]);
  free(ids);
  free(a.operands);
  client_close(c);
  return rc;
}
