/*
 * The `spe` program: global options and the dispatch to subcommands.
 *
 * The server's clients (submit, start, ...) are named in SPEC §6 but arrive
 * in a later version; until then they are refused with a message that says so
 * rather than "unknown command".
 */
#include "cli/args.h"
#include "cli/cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char main_usage[] =
    "usage: spe COMMAND [OPTION...] [ARG...]\n"
    "\n"
    "SPE, the Scalable Parallel Executor, runs jobs: named tasks joined by\n"
    "dependencies, in parallel on a bounded pool of workers.\n"
    "\n"
    "Commands:\n"
    "  run JOB.json...        run jobs to the end and report how they went\n"
    "  validate JOB.json...   check jobs and print their plans; runs nothing\n"
    "  serve                  the server: takes jobs over HTTP (docs/server.md)\n"
    "\n"
    "Options:\n"
    "  -h, --help      show this help; `spe COMMAND --help` shows a command's\n"
    "  --version       print the version\n"
    "\n"
    "Documentation: README.md (the job format), docs/cli.md (this program).\n";

static const char *const later_commands[] = {"submit", "start",  "status", "list", "watch",
                                             "result", "cancel", "prune",  NULL};

/* Refuse a name that is not a command: the server's commands with a note that
 * they come later, anything else as unknown. */
static int not_a_command(const char *cmd) {
  for (const char *const *c = later_commands; *c != NULL; c++)
    if (strcmp(cmd, *c) == 0) {
      fprintf(stderr, "spe: \"%s\" is not available in this version (see \"spe --help\")\n",
              cmd);
      return 2;
    }
  if (cmd[0] == '-') return args_usage_error("spe", "unknown option \"%s\"", cmd);
  return args_usage_error("spe", "unknown command \"%s\"", cmd);
}

/* `spe help [COMMAND]`. */
static int help(const char *cmd) {
  char *help_argv[] = {(char *)cmd, "--help", NULL};
  if (cmd == NULL) {
    fputs(main_usage, stdout);
    return 0;
  }
  if (strcmp(cmd, "run") == 0) return cmd_run(2, help_argv);
  if (strcmp(cmd, "validate") == 0) return cmd_validate(2, help_argv);
  if (strcmp(cmd, "serve") == 0) return cmd_serve(2, help_argv);
  return not_a_command(cmd);
}

int main(int argc, char **argv) {
  /* A closed stdout or events pipe must turn into a write error that is
   * reported, not kill the program. */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(main_usage, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "validate") == 0) return cmd_validate(argc - 1, argv + 1);
  if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
  if (strcmp(cmd, "help") == 0) return help(argc > 2 ? argv[2] : NULL);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) return help(NULL);
  if (strcmp(cmd, "--version") == 0) {
    printf("spe %s\n", SPE_VERSION);
    return 0;
  }
  return not_a_command(cmd);
}
