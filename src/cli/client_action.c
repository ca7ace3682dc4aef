/*
 * `spe start ID...` and `spe cancel ID...`: one POST per job
 * (/v1/jobs/ID/start, /v1/jobs/ID/cancel). Each job is tried even after one
 * was refused (unknown, already started, already finished), and the exit
 * status is the worst of them. Prints "ID started" / "ID cancelled" per job,
 * or the server's answer as JSON with --json.
 */
#include "cli/cli.h"
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char start_usage[] =
    "usage: spe start [OPTION...] ID...\n"
    "\n"
    "Starts submitted jobs (`spe submit` without --start).\n"
    "\n"
    "Options:\n" CLIENT_OPTIONS_HELP
    "\n"
    "Exit status: 0 every job started; 2 bad usage, an unknown job or one that\n"
    "was already started; 3 the server cannot be reached or failed.\n";

static const char cancel_usage[] =
    "usage: spe cancel [OPTION...] ID...\n"
    "\n"
    "Cancels jobs: running tasks are stopped (SIGTERM to their process groups,\n"
    "SIGKILL after the grace time) and fail with kind \"cancelled\", tasks not yet\n"
    "run become not_run, and the job finishes as cancelled.\n"
    "\n"
    "Options:\n" CLIENT_OPTIONS_HELP
    "\n"
    "Exit status: 0 every job was cancelled; 2 bad usage, an unknown job or one\n"
    "that had already finished; 3 the server cannot be reached or failed.\n";

/* POST /v1/jobs/ID/VERB and print what happened. */
static int act(struct client *c, const char *id, const char *verb, const char *done, int json) {
  char *eid = client_escape(c, id);
  char *path = NULL;
  if (eid == NULL || asprintf(&path, "/v1/jobs/%s/%s", eid, verb) < 0) {
    free(eid);
    return CLIENT_EXIT_SERVER;
  }
  free(eid);
  struct client_reply r;
  int rc = client_request(c, "POST", path, NULL, 0, NULL, &r);
  free(path);
  if (rc != 0) return rc;
  if (json && r.body != NULL) {
    rc = client_print_json(r.body);
  } else if (json) {
    json_t *line = json_pack("{s:s}", "id", id);
    rc = client_print_json(line);
    json_decref(line);
  } else {
    char *line = NULL;
    rc = asprintf(&line, "%s %s", id, done) < 0 ? CLIENT_EXIT_SERVER : client_print_text(line);
    free(line);
  }
  client_reply_free(&r);
  return rc;
}

static int run(const char *cmd, const char *usage, const char *verb, const char *done, int argc,
               char **argv) {
  struct client_args a;
  int rc = client_parse_args(cmd, usage, argc, argv, NULL, NULL, NULL, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  if (a.noperands == 0) {
    rc = args_usage_error(cmd, "no job id given");
  } else if ((rc = client_open(&c, cmd, &a.opts)) == 0) {
    for (int i = 0; i < a.noperands && rc != CLIENT_EXIT_SERVER; i++) {
      int one = act(c, a.operands[i], verb, done, a.opts.json);
      if (one > rc) rc = one;
    }
  }
  client_close(c);
  free(a.operands);
  return rc;
}

int cmd_start(int argc, char **argv) {
  return run("spe start", start_usage, "start", "started", argc, argv);
}

int cmd_cancel(int argc, char **argv) {
  return run("spe cancel", cancel_usage, "cancel", "cancelled", argc, argv);
}
