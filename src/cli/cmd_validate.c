/*
 * `spe validate FILE...`: check job files and print each one's plan, the levels
 * of tasks that can run together:
 *
 *     examples/stats.json: valid, 6 tasks in 3 levels
 *       level 0: count-src, count-tests, count-include, markers
 *       level 1: sum
 *       level 2: report
 *
 * A level lists at most LEVEL_NAMES_SHOWN names, then "... and N more", so that
 * a job of 100,000 tasks does not print a megabyte. Invalid files are reported
 * on stderr ("spe: FILE: MESSAGE"); every file is checked either way, and the
 * exit status is 2 if any was invalid.
 */
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/job_file.h"

#include <stdio.h>
#include <string.h>

#define LEVEL_NAMES_SHOWN 20

static const char validate_usage[] =
    "usage: spe validate [OPTION...] JOB.json...\n"
    "\n"
    "Checks each job file as `spe run` would, without running anything, and prints\n"
    "its plan: the levels of tasks that can run together. A file name \"-\" reads\n"
    "the job from standard input.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n"
    "\n"
    "Exit status: 0 every file is valid, 2 bad usage or an invalid file.\n";

static void print_plan(const struct job_file *jf) {
  size_t nlevels = json_array_size(jf->levels);
  printf("%s: valid, %llu task%s in %zu level%s\n", jf->path, (unsigned long long)jf->ntasks,
         jf->ntasks == 1 ? "" : "s", nlevels, nlevels == 1 ? "" : "s");
  size_t i;
  json_t *level;
  json_array_foreach(jf->levels, i, level) {
    printf("  level %zu: ", i);
    size_t j;
    json_t *name;
    json_array_foreach(level, j, name) {
      if (j == LEVEL_NAMES_SHOWN) {
        printf(", ... and %zu more", json_array_size(level) - j);
        break;
      }
      printf("%s%s", j > 0 ? ", " : "", json_string_value(name));
    }
    putchar('\n');
  }
}

int cmd_validate(int argc, char **argv) {
  enum { OPT_HELP = 1 };
  static const struct opt_spec specs[] = {{"help", 'h', 0, OPT_HELP}, {NULL, 0, 0, 0}};
  struct arg_iter it;
  args_init(&it, "spe validate", argc, argv, 1);
  int nfiles = 0, invalid = 0, k;
  const char *v;
  /* First pass: options only, so that `--help` anywhere wins and a bad option
   * is reported before any file is read. */
  while ((k = args_next(&it, specs, &v)) != ARGS_END) {
    if (k == ARGS_ERROR) return 2;
    if (k == OPT_HELP) {
      fputs(validate_usage, stdout);
      return 0;
    }
    nfiles++;
  }
  if (nfiles == 0) return args_usage_error("spe validate", "no job file given");
  args_init(&it, "spe validate", argc, argv, 1);
  while ((k = args_next(&it, specs, &v)) != ARGS_END) {
    struct job_file jf;
    if (job_file_load(&jf, v) != 0) {
      invalid = 1;
      continue;
    }
    print_plan(&jf);
    job_file_free(&jf);
  }
  if (fflush(stdout) != 0) {
    perror("spe validate: standard output");
    return 3;
  }
  return invalid ? 2 : 0;
}
