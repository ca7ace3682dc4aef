/*
 * Job files as `spe run` and `spe validate` take them: read whole into memory
 * ("-" is standard input), at most SPE_MAX_JOB_BYTES of them, then checked with
 * spe_validate_text() so that every file is known good before anything runs.
 */
#ifndef SPE_CLI_JOB_FILE_H
#define SPE_CLI_JOB_FILE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct job_file {
  const char *path;  /* as given on the command line (borrowed from argv) */
  char *text;        /* the file's bytes, NUL-terminated; owned */
  size_t len;
  json_t *levels;    /* the plan: array of arrays of task names; owned */
  uint64_t ntasks;   /* tasks in the job */
};

/* Read and validate `path` into *jf (which it fills; free with job_file_free).
 * On failure prints "spe: PATH: MESSAGE" on stderr and returns -1. */
int job_file_load(struct job_file *jf, const char *path);

void job_file_free(struct job_file *jf);

/* Read `path` ("-": standard input) whole into *text (malloc'd, NUL-terminated),
 * without checking it (`spe submit` leaves that to the server). On failure
 * prints "spe: PATH: MESSAGE" and returns -1. */
int job_file_read(const char *path, char **text, size_t *len);

#endif
