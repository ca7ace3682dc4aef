/*
 * `spe status [ID]`: how a job is doing, for people. With an id, one line on
 * the job, then a table of its tasks:
 *
 *     01JD7... "nightly-etl": failed in 0.219 s (4 tasks: 2 succeeded, 1 failed, 1 not run)
 *     TASK    STATUS     ATTEMPTS  TOOK     RESULT OR ERROR
 *     fetch   succeeded  1         0.120 s  "data.csv"
 *     count   failed     1         0.008 s  exit: exited with status 3
 *     report  not_run    -         -        blocked by count
 *
 * Without one, the most recent jobs, as `spe list` shows them. With --json, the
 * job as `spe result` prints it (and the list as `spe list --json`).
 */
#include "base/clock.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/event_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many jobs `spe status` without an id shows. */
#define STATUS_RECENT_JOBS 20
/* At most this many bytes of a result or error in a table cell. */
#define DETAIL_MAX 72

static const char status_usage[] =
    "usage: spe status [OPTION...] [ID]\n"
    "\n"
    "With a job id: how the job is doing, with a table of its tasks (status,\n"
    "attempts, time taken, result or error). Without: the most recent jobs.\n"
    "\n"
    "Options:\n" CLIENT_OPTIONS_HELP
    "\n" CLIENT_EXIT_HELP;

static int64_t int_field(const json_t *obj, const char *key) {
  return (int64_t)json_integer_value(json_object_get(obj, key));
}

static const char *str_field(const json_t *obj, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(obj, key));
  return s != NULL ? s : dflt;
}

int client_print_job_line(const json_t *job) {
  const char *status = str_field(job, "status", "?");
  int64_t submitted = int_field(job, "submitted_ms"), started = int_field(job, "started_ms"),
          finished = int_field(job, "finished_ms");
  char when[64], span[32], counts[160], *line = NULL;
  if (finished > 0) {
    client_format_duration(started > 0 ? started : submitted, finished, span);
    snprintf(when, sizeof when, " in %s", span);
  } else if (started > 0) {
    client_format_duration(started, spe__now_ms(), span);
    snprintf(when, sizeof when, " for %s", span);
  } else {
    client_format_time(submitted, span);
    snprintf(when, sizeof when, " at %s", span);
  }
  event_log_count_tasks(json_object_get(job, "tasks"), counts, sizeof counts);
  if (asprintf(&line, "%s \"%s\": %s%s (%s)", str_field(job, "id", "?"),
               str_field(job, "name", "?"), status, when, counts) < 0)
    return CLIENT_EXIT_SERVER;
  int rc = client_print_text(line);
  free(line);
  return rc;
}

/* What a task's last column says: its result, its error or why it did not run. */
static void task_detail(const json_t *task, char *out, size_t cap) {
  const char *status = str_field(task, "status", "");
  const json_t *error = json_object_get(task, "error");
  out[0] = '\0';
  if (strcmp(status, "succeeded") == 0) {
    client_format_json(json_object_get(task, "result"), out,
                       cap < DETAIL_MAX + 1 ? cap : DETAIL_MAX + 1);
  } else if (error != NULL) {
    char msg[DETAIL_MAX + 1];
    const char *text = str_field(error, "message", "");
    snprintf(msg, sizeof msg, "%s", text);
    snprintf(out, cap, "%s: %s%s", str_field(error, "kind", "?"), msg,
             strlen(text) > DETAIL_MAX ? "..." : "");
  } else if (json_object_get(task, "blocked_by") != NULL) {
    snprintf(out, cap, "blocked by %s", str_field(task, "blocked_by", "?"));
  }
}

static int print_job(const json_t *job) {
  int rc = client_print_job_line(job);
  if (rc != 0) return rc;
  static const char *const headers[] = {"TASK", "STATUS", "ATTEMPTS", "TOOK", "RESULT OR ERROR"};
  struct table *t = table_new(5, headers);
  const char *name;
  json_t *task;
  json_object_foreach(json_object_get(job, "tasks"), name, task) {
    char attempts[24] = "-", took[32], detail[DETAIL_MAX + 96];
    if (json_is_integer(json_object_get(task, "attempts")))
      snprintf(attempts, sizeof attempts, "%" PRId64, int_field(task, "attempts"));
    int64_t started = int_field(task, "started_ms"), finished = int_field(task, "finished_ms");
    client_format_duration(started, finished > 0 ? finished : (started > 0 ? spe__now_ms() : 0),
                           took);
    task_detail(task, detail, sizeof detail);
    const char *row[] = {name, str_field(task, "status", "?"), attempts, took, detail};
    table_add(t, row);
  }
  table_print_free(t);
  return fflush(stdout) == 0 ? 0 : client_print_text(NULL);
}

int cmd_status(int argc, char **argv) {
  struct client_args a;
  int rc = client_parse_args("spe status", status_usage, argc, argv, NULL, NULL, NULL, &a);
  if (rc >= 0) return rc;
  struct client *c = NULL;
  json_t *got = NULL;
  if (a.noperands > 1) {
    rc = args_usage_error("spe status", "one job id at a time");
  } else if ((rc = client_open(&c, "spe status", &a.opts)) != 0) {
    /* reported */
  } else if (a.noperands == 1) {
    if ((rc = client_get_job(c, a.operands[0], &got)) == 0)
      rc = a.opts.json ? client_print_json(got) : print_job(got);
  } else if ((rc = client_list_jobs(c, NULL, STATUS_RECENT_JOBS, &got)) == 0) {
    rc = client_print_jobs(got, a.opts.json);
  }
  json_decref(got);
  client_close(c);
  free(a.operands);
  return rc;
}
