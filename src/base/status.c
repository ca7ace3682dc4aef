#include "base/status.h"

#include <string.h>

static const char *const job_names[] = {"submitted", "running", "succeeded", "failed",
                                        "cancelled"};
static const char *const task_names[] = {"pending", "running", "succeeded", "failed",
                                         "not_run"};

const char *spe__job_status_name(enum job_status s) {
  return (unsigned)s < sizeof job_names / sizeof *job_names ? job_names[s] : "unknown";
}

const char *spe__task_status_name(enum task_status s) {
  return (unsigned)s < sizeof task_names / sizeof *task_names ? task_names[s] : "unknown";
}

int spe__job_status_parse(const char *name) {
  for (unsigned i = 0; i < sizeof job_names / sizeof *job_names; i++)
    if (strcmp(name, job_names[i]) == 0) return (int)i;
  return -1;
}

int spe__task_status_parse(const char *name) {
  for (unsigned i = 0; i < sizeof task_names / sizeof *task_names; i++)
    if (strcmp(name, task_names[i]) == 0) return (int)i;
  return -1;
}
