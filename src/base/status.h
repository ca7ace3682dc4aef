/* Job and task statuses (SPEC §3) and their names. */
#ifndef SPE_BASE_STATUS_H
#define SPE_BASE_STATUS_H

enum job_status {
  JOB_SUBMITTED,
  JOB_RUNNING,
  JOB_SUCCEEDED,
  JOB_FAILED,
  JOB_CANCELLED
};

enum task_status {
  TASK_PENDING,  /* not started yet, or waiting for a retry */
  TASK_RUNNING,
  TASK_SUCCEEDED,
  TASK_FAILED,
  TASK_NOT_RUN   /* an upstream task failed */
};

const char *spe__job_status_name(enum job_status s);
const char *spe__task_status_name(enum task_status s);
/* -1 for an unknown name. */
int spe__job_status_parse(const char *name);
int spe__task_status_parse(const char *name);

static inline int spe__job_finished(enum job_status s) { return s >= JOB_SUCCEEDED; }
static inline int spe__task_finished(enum task_status s) { return s >= TASK_SUCCEEDED; }

#endif
