/*
 * The `spe` program: global options and the dispatch to subcommands.
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
    "Clients of `spe serve` (--server unix:PATH|http://HOST:PORT):\n"
    "  submit JOB.json...     submit jobs (--start, --wait); prints their ids\n"
    "  start ID...            start submitted jobs\n"
    "  status [ID]            a job and its tasks; without ID, the recent jobs\n"
    "  list                   the jobs the server holds (--status, --limit)\n"
    "  watch [ID]             follow events as they happen\n"
    "  result ID              a job's result as JSON; exit 0 if it succeeded\n"
    "  cancel ID...           cancel jobs\n"
    "  prune --older-than D   remove jobs that finished longer ago than D\n"
    "\n"
    "Options:\n"
    "  -h, --help      show this help; `spe COMMAND --help` shows a command's\n"
    "  --version       print the version\n"
    "\n"
    "Documentation: README.md (the job format), docs/cli.md (this program).\n";

static const struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
} commands[] = {{"run", cmd_run},       {"validate", cmd_validate}, {"serve", cmd_serve},
                {"submit", cmd_submit}, {"start", cmd_start},       {"status", cmd_status},
                {"list", cmd_list},     {"watch", cmd_watch},       {"result", cmd_result},
                {"cancel", cmd_cancel}, {"prune", cmd_prune},       {NULL, NULL}};

static const struct command *find_command(const char *name) {
  for (const struct command *c = commands; c->name != NULL; c++)
    if (strcmp(c->name, name) == 0) return c;
  return NULL;
}

/* Refuse a name that is not a command. */
static int not_a_command(const char *cmd) {
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
  const struct command *c = find_command(cmd);
  return c != NULL ? c->fn(2, help_argv) : not_a_command(cmd);
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
  const struct command *c = find_command(cmd);
  if (c != NULL) return c->fn(argc - 1, argv + 1);
  if (strcmp(cmd, "help") == 0) return help(argc > 2 ? argv[2] : NULL);
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) return help(NULL);
  if (strcmp(cmd, "--version") == 0) {
    printf("spe %s\n", SPE_VERSION);
    return 0;
  }
  return not_a_command(cmd);
}
