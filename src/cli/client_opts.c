/*
 * The options every client subcommand takes, and the default server address.
 * A command's own options and the common ones are scanned in one pass, so that
 * they may come in any order, before, between or after the operands.
 */
#include "cli/cli.h"
#include "cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct opt_spec common_specs[] = {{"server", 0, 1, COPT_SERVER},
                                               {"token-file", 0, 1, COPT_TOKEN_FILE},
                                               {"json", 0, 0, COPT_JSON},
                                               {"help", 'h', 0, COPT_HELP}};
#define NCOMMON (sizeof common_specs / sizeof *common_specs)

/* own + common + the terminator, malloc'd. */
static struct opt_spec *merge_specs(const struct opt_spec *own) {
  size_t nown = 0;
  while (own != NULL && own[nown].long_name != NULL) nown++;
  struct opt_spec *all = calloc(nown + NCOMMON + 1, sizeof *all);
  if (all == NULL) return NULL;
  if (nown > 0) memcpy(all, own, nown * sizeof *own);
  memcpy(all + nown, common_specs, sizeof common_specs);
  return all;
}

int client_parse_args(const char *cmd, const char *usage, int argc, char **argv,
                      const struct opt_spec *own,
                      int (*on_opt)(void *ctx, int id, const char *value), void *ctx,
                      struct client_args *args) {
  memset(args, 0, sizeof *args);
  struct opt_spec *specs = merge_specs(own);
  args->operands = calloc((size_t)argc + 1, sizeof *args->operands);
  if (specs == NULL || args->operands == NULL) {
    fprintf(stderr, "%s: out of memory\n", cmd);
    free(specs);
    free(args->operands);
    args->operands = NULL;
    return CLIENT_EXIT_SERVER;
  }
  struct arg_iter it;
  args_init(&it, cmd, argc, argv, 1);
  int k, help = 0, rc = -1;
  const char *v;
  while (rc < 0 && (k = args_next(&it, specs, &v)) != ARGS_END) {
    switch (k) {
      case ARGS_ERROR: rc = CLIENT_EXIT_USAGE; break;
      case ARGS_OPERAND: args->operands[args->noperands++] = v; break;
      case COPT_SERVER: args->opts.server = v; break;
      case COPT_TOKEN_FILE: args->opts.token_file = v; break;
      case COPT_JSON: args->opts.json = 1; break;
      case COPT_HELP: help = 1; break;
      default:
        if (on_opt != NULL && on_opt(ctx, k, v) != 0) rc = CLIENT_EXIT_USAGE;
    }
  }
  free(specs);
  /* --help wins over everything but an option the command does not know. */
  if (help && rc < 0) {
    fputs(usage, stdout);
    rc = CLIENT_EXIT_OK;
  }
  if (rc >= 0) {
    free(args->operands);
    args->operands = NULL;
  }
  return rc;
}

char *client_default_server(void) {
  const char *env = getenv("SPE_SERVER");
  if (env != NULL && env[0] != '\0') return strdup(env);
  char *path = cli_default_socket_path();
  if (path == NULL) return NULL;
  size_t n = strlen(path) + sizeof "unix:";
  char *s = malloc(n);
  if (s != NULL) snprintf(s, n, "unix:%s", path);
  free(path);
  return s;
}
