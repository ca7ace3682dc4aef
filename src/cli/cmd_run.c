/*
 * `spe run`: options, logging set-up and the job files; run_jobs.c does the
 * running. Every file is read and validated before anything is opened, so an
 * invalid job means that nothing ran (exit 2).
 */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/console.h"
#include "cli/job_file.h"
#include "cli/log_sink.h"
#include "cli/run_jobs.h"
#include "spe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: spe run [OPTION...] JOB.json...\n"
    "\n"
    "Validates every job file (nothing runs if one is invalid), then runs all the\n"
    "jobs to the end in one executor. A file name \"-\" reads the job from standard\n"
    "input. On a terminal, progress is shown on stderr; otherwise one log line per\n"
    "event.\n"
    "\n"
    "Options:\n"
    "  -w, --workers N|unbound  how many tasks may run at once, across all jobs\n"
    "                           (default: the number of online CPUs)\n"
    "  --state URL              the state store: memory: or sqlite:PATH\n"
    "                           (default: " CLI_DEFAULT_STATE_URL ")\n"
    "  --json                   print each job's result on stdout, one JSON object\n"
    "                           per line, in the order of the files\n"
    "  --events FILE|-          write every event to FILE (\"-\": stdout) as NDJSON\n"
    "  --fresh                  start every job anew, never resume an unfinished one\n"
    "                           from the store (meaningful with a durable store)\n"
    "  --grace DURATION         on SIGINT/SIGTERM, running tasks get SIGTERM, then\n"
    "                           SIGKILL after this long (default 5s; e.g. 500ms, 2s)\n"
    "  --lost-limit N           a task cut short by N crashes of SPE fails as \"lost\"\n"
    "                           instead of running again (default 3)\n"
    "  --log-level LEVEL        error, warn, info or debug (default: $SPE_LOG, else\n"
    "                           info; on a terminal, warnings only unless asked)\n"
    "  -h, --help               show this help\n"
    "\n"
    "Exit status: 0 every job succeeded; 1 a job failed or was cancelled; 2 bad\n"
    "usage or an invalid job (nothing was run); 3 the state store or the system\n"
    "failed; 130 interrupted by SIGINT or SIGTERM (running tasks were stopped).\n";

enum {
  OPT_WORKERS = 1,
  OPT_STATE,
  OPT_JSON,
  OPT_EVENTS,
  OPT_FRESH,
  OPT_LOG_LEVEL,
  OPT_GRACE,
  OPT_LOST_LIMIT,
  OPT_HELP
};

static const struct opt_spec run_specs[] = {
    {"workers", 'w', 1, OPT_WORKERS}, {"state", 0, 1, OPT_STATE},
    {"json", 0, 0, OPT_JSON},         {"events", 0, 1, OPT_EVENTS},
    {"fresh", 0, 0, OPT_FRESH},       {"log-level", 0, 1, OPT_LOG_LEVEL},
    {"grace", 0, 1, OPT_GRACE},       {"lost-limit", 0, 1, OPT_LOST_LIMIT},
    {"help", 'h', 0, OPT_HELP},       {NULL, 0, 0, 0}};

/* Parse the options into *o and collect the operands into files[] (which has
 * room for argc entries). Returns -1 to go on, else an exit status. */
static int parse(int argc, char **argv, struct run_opts *o, const char **level_name,
                 const char **files, size_t *nfiles) {
  struct arg_iter it;
  args_init(&it, "spe run", argc, argv, 1);
  int k;
  const char *v;
  while ((k = args_next(&it, run_specs, &v)) != ARGS_END) {
    switch (k) {
      case ARGS_ERROR: return 2;
      case ARGS_OPERAND: files[(*nfiles)++] = v; break;
      case OPT_HELP: fputs(run_usage, stdout); return 0;
      case OPT_WORKERS:
        switch (args_parse_workers(v, &o->workers)) {
          case 0: break;
          case -2:
            return args_usage_error("spe run", "--workers: at most %d, got \"%s\" (\"unbound\" "
                                    "means no limit)", ARGS_MAX_WORKERS, v);
          default:
            return args_usage_error("spe run",
                                    "--workers: expected a positive integer or \"unbound\", "
                                    "got \"%s\"", v);
        }
        break;
      case OPT_STATE: o->state_url = v; break;
      case OPT_JSON: o->json = 1; break;
      case OPT_EVENTS: o->events_path = v; break;
      case OPT_FRESH: o->fresh = 1; break;
      case OPT_LOG_LEVEL: *level_name = v; break;
      case OPT_GRACE:
        if (args_parse_duration_ms(v, &o->grace_ms) != 0)
          return args_usage_error("spe run", "--grace: expected a duration such as 5s or "
                                  "500ms (at most a day), got \"%s\"", v);
        break;
      case OPT_LOST_LIMIT:
        if (args_parse_count(v, 1, 1000000, &o->lost_limit) != 0)
          return args_usage_error("spe run", "--lost-limit: expected a whole number from 1, "
                                  "got \"%s\"", v);
        break;
    }
  }
  if (*nfiles == 0) return args_usage_error("spe run", "no job file given");
  if (o->json && o->events_path != NULL && strcmp(o->events_path, "-") == 0)
    return args_usage_error("spe run", "--json and --events - would both write to stdout; "
                                       "give --events a file");
  return -1;
}

/* Choose the level: --log-level, else $SPE_LOG, else info. On a terminal the
 * progress line stands in for the info lines, unless a level was asked for. */
static int set_up_logging(const char *level_name, struct run_opts *o) {
  int level, asked;
  int status = args_log_level("spe run", level_name, &level, &asked);
  if (status >= 0) return status;
  if (!asked && console_is_tty()) level = SPE_LOG_WARN;
  o->log_level = level;
  log_sink_set_level(level);
  return -1;
}

int cmd_run(int argc, char **argv) {
  struct run_opts o = {
      .workers = 0, .state_url = CLI_DEFAULT_STATE_URL, .grace_ms = 5000, .lost_limit = 3};
  const char *level_name = NULL;
  const char **paths = calloc((size_t)argc, sizeof *paths);
  struct job_file *files = calloc((size_t)argc, sizeof *files);
  size_t nfiles = 0, loaded = 0;
  int status = 2;
  if (paths == NULL || files == NULL) {
    fprintf(stderr, "spe: out of memory\n");
    status = 3;
    goto out;
  }
  if ((status = parse(argc, argv, &o, &level_name, paths, &nfiles)) >= 0) goto out;
  if ((status = set_up_logging(level_name, &o)) >= 0) goto out;

  /* Every file is read and checked, and every problem reported, before
   * anything runs. */
  int invalid = 0;
  for (size_t i = 0; i < nfiles; i++) {
    if (job_file_load(&files[loaded], paths[i]) == 0)
      loaded++;
    else
      invalid = 1;
  }
  status = invalid ? 2 : run_jobs(&o, files, loaded);
out:
  for (size_t i = 0; i < loaded; i++) job_file_free(&files[i]);
  free(files);
  free(paths);
  return status;
}
