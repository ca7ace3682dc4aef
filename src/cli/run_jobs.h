/* The body of `spe run`, once its options are parsed and its files loaded. */
#ifndef SPE_CLI_RUN_JOBS_H
#define SPE_CLI_RUN_JOBS_H

#include "cli/job_file.h"

#include <stddef.h>

struct run_opts {
  int workers;             /* spe_options.workers */
  const char *state_url;
  int json;                /* --json */
  const char *events_path; /* --events, or NULL */
  int fresh;               /* --fresh */
  int log_level;           /* the library's level (SPE_LOG_*) */
  int grace_ms;            /* --grace */
  int lost_limit;          /* --lost-limit */
};

/* Run every job of `files` (valid, loaded) to the end in one executor and
 * return the exit status (0, 1, 2, 3 or 130; see docs/cli.md). */
int run_jobs(const struct run_opts *o, struct job_file *files, size_t nfiles);

#endif
