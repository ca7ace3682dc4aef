/* The SPEC §3 view of a job: what spe_job_get, `spe run --json` and the
 * job_finished event show. Times not reached yet are left out. */
#include "engine/engine_impl.h"

static void set_time(json_t *obj, const char *key, int64_t ms) {
  if (ms > 0) json_object_set_new(obj, key, json_integer(ms));
}

json_t *spe__task_json(const struct job_run *job, uint32_t t) {
  const struct task_state *ts = &job->tasks[t];
  uint8_t status = job->hot[t].status;
  json_t *o = json_object();
  if (o == NULL) return NULL;
  json_object_set_new(o, "status", json_string(spe__task_status_name(status)));
  if (status == TASK_SUCCEEDED) json_object_set(o, "result", ts->result);
  if (status == TASK_FAILED && ts->error) json_object_set(o, "error", ts->error);
  if (status == TASK_NOT_RUN) {
    if (ts->blocked_by >= 0)
      json_object_set_new(o, "blocked_by", json_string(job->def->tasks[ts->blocked_by].name));
  } else if (ts->attempts > 0) {
    json_object_set_new(o, "attempts", json_integer(ts->attempts));
    set_time(o, "started_ms", ts->started_ms);
    set_time(o, "finished_ms", ts->finished_ms);
  }
  return o;
}

json_t *spe__tasks_json(const struct job_run *job) {
  json_t *tasks = json_object();
  for (uint32_t t = 0; tasks && t < job->def->ntasks; t++)
    json_object_set_new(tasks, job->def->tasks[t].name, spe__task_json(job, t));
  return tasks;
}

json_t *spe__job_json(const struct job_run *job) {
  json_t *o = json_object();
  if (o == NULL) return NULL;
  json_object_set_new(o, "id", json_string(job->id));
  json_object_set_new(o, "name", json_string(job->def->name));
  json_object_set_new(o, "status", json_string(spe__job_status_name(job->status)));
  set_time(o, "submitted_ms", job->submitted_ms);
  set_time(o, "started_ms", job->started_ms);
  set_time(o, "finished_ms", job->finished_ms);
  json_object_set_new(o, "tasks", spe__tasks_json(job));
  return o;
}
