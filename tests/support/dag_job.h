/*
 * The job the durability tests kill and resume: 40 short command tasks in six
 * levels, each task enabling a few of the next level and the last two fanning
 * in every task of the level before.
 *
 * Each task (the script task.sh, written beside the job) first appends
 * "NAME ATTEMPT\n" to tasks.log in the folder `spe` runs in (one short
 * O_APPEND write: whole lines, whatever gets killed when), sleeps 1–4 ms, then
 * prints its own number plus the sum of its input's numbers, i.e. of the
 * results of all its ancestors. Task names hold no digit, so every number in
 * the input is a result, and a final result is right only if every ancestor's
 * result reached it intact, through every restart.
 */
#ifndef SPE_TESTS_DAG_JOB_H
#define SPE_TESTS_DAG_JOB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define DAG_TASKS 40

struct dag_job {
  char names[DAG_TASKS][4];        /* "naa", "nab", ... in file order */
  long long expected[DAG_TASKS];   /* each task's right result */
  char *job_path;                  /* DIR/job.json */
};

/* Write DIR/job.json and DIR/task.sh, and fill *d. */
void dag_job_write(struct dag_job *d, const char *dir);
void dag_job_free(struct dag_job *d);
/* The index of a task name, or -1. */
int dag_task_index(const struct dag_job *d, const char *name);

/* One line of tasks.log: which attempt of which task started, and where the
 * line begins in the file. */
struct log_line {
  int task;       /* index */
  long attempt;
  size_t offset;
};
/* Read DIR/tasks.log (missing: no lines). Every line must name a task of the
 * job and an attempt; the test fails otherwise. *out is malloc'd. */
size_t dag_log_read(const struct dag_job *d, const char *dir, struct log_line **out);
/* The size of DIR/tasks.log now (0 if missing). */
size_t dag_log_size(const char *dir);

/* Check a --json job object against the job: succeeded, every task succeeded
 * with its right result. */
void dag_check_result(const struct dag_job *d, const json_t *job);

/* The events in a file `spe` wrote, up to its last complete line: a run killed
 * while writing may have left half a line at the end. */
json_t *events_file_read(const char *path);

#endif
