/*
 * `spe prune --older-than DURATION`: remove from the server's store the jobs
 * that finished (succeeded, failed or cancelled) longer ago than DURATION,
 * with their tasks and events. Unfinished jobs are never removed.
 */
#include "cli/cli.h"
#include "cli/client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char prune_usage[] =
    "usage: spe prune --older-than DURATION [OPTION...]\n"
    "\n"
    "Removes the jobs that finished longer ago than DURATION (e.g. 7d, 12h, 30m,\n"
    "90s; 0 removes every finished job) from the server's store, with their\n"
    "tasks and events. Unfinished jobs are kept. Prints how many were removed.\n"
    "\n"
    "Options:\n"
    "  --older-than DURATION  required: a whole number and d, h, m, s or ms\n" CLIENT_OPTIONS_HELP
    "\n" CLIENT_EXIT_HELP;

enum { OPT_OLDER_THAN = 1 };

struct prune_opts {
  int64_t older_than_ms; /* -1: not given */
};

static int on_opt(void *ctx, int id, const char *value) {
  struct prune_opts *po = ctx;
  if (id == OPT_OLDER_THAN && args_parse_age_ms(value, &po->older_than_ms) != 0)
    return args_usage_error("spe prune",
                            "--older-than \"%s\": expected a duration such as 7d, 12h, 30m "
                            "or 90s",
                            value);
  return 0;
}

int cmd_prune(int argc, char **argv) {
  static const struct opt_spec own[] = {{"older-than", 0, 1, OPT_OLDER_THAN}, {NULL, 0, 0, 0}};
  struct prune_opts po = {-1};
  struct client_args a;
  int rc = client_parse_args("spe prune", prune_usage, argc, argv, own, on_opt, &po, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  struct client_reply r = {0};
  char path[64];
  snprintf(path, sizeof path, "/v1/prune?older_than_ms=%" PRId64, po.older_than_ms);
  if (a.noperands > 0)
    rc = args_usage_error("spe prune", "unexpected argument \"%s\"", a.operands[0]);
  else if (po.older_than_ms < 0)
    rc = args_usage_error("spe prune", "--older-than is required (e.g. --older-than 7d)");
  else if ((rc = client_open(&c, "spe prune", &a.opts)) == 0 &&
           (rc = client_request(c, "POST", path, NULL, 0, NULL, &r)) == 0) {
    json_t *pruned = json_object_get(r.body, "pruned");
    if (!json_is_integer(pruned)) {
      fprintf(stderr, "spe prune: the server's answer does not say how many jobs it removed\n");
      rc = CLIENT_EXIT_SERVER;
    } else if (a.opts.json) {
      rc = client_print_json(r.body);
    } else {
      json_int_t n = json_integer_value(pruned);
      char line[64];
      snprintf(line, sizeof line, "pruned %" JSON_INTEGER_FORMAT " job%s", n, n == 1 ? "" : "s");
      rc = client_print_text(line);
    }
  }
  client_reply_free(&r);
  client_close(c);
  free(a.operands);
  return rc;
}
