/* The durability tests' job: see dag_job.h. */
#include "support/dag_job.h"

#include "support/cli_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const int level_sizes[] = {8, 8, 8, 8, 6, 2};
#define LEVELS (sizeof level_sizes / sizeof *level_sizes)

static const char task_script[] =
    "# A task of the durability tests' job: $1 is its number.\n"
    "echo \"$SPE_TASK $SPE_ATTEMPT\" >> tasks.log\n"
    "sleep 0.00$(( $1 % 4 + 1 ))\n"
    "tr -c '0-9\\n' ' ' | awk -v add=\"$1\" "
    "'{ for (i = 1; i <= NF; i++) s += $i } END { printf \"%d\\n\", s + add }'\n";

/* pred[k]: bit p set when p enables k. */
static void build_edges(uint64_t pred[DAG_TASKS]) {
  int first[LEVELS + 1];
  first[0] = 0;
  for (size_t l = 0; l < LEVELS; l++) first[l + 1] = first[l] + level_sizes[l];
  assert_int_equal(first[LEVELS], DAG_TASKS);
  memset(pred, 0, DAG_TASKS * sizeof *pred);
  for (size_t l = 1; l < LEVELS; l++) {
    int m = level_sizes[l - 1], base = first[l - 1];
    for (int j = 0; j < level_sizes[l]; j++) {
      int t = first[l] + j;
      if (l == LEVELS - 1) { /* the last level fans in the whole level before */
        for (int p = 0; p < m; p++) pred[t] |= 1ull << (base + p);
      } else {
        pred[t] |= 1ull << (base + j % m);
        pred[t] |= 1ull << (base + (j + 1) % m);
        pred[t] |= 1ull << (base + j * 3 % m);
      }
    }
  }
}

void dag_job_write(struct dag_job *d, const char *dir) {
  memset(d, 0, sizeof *d);
  uint64_t pred[DAG_TASKS], anc[DAG_TASKS];
  build_edges(pred);
  for (int k = 0; k < DAG_TASKS; k++) {
    snprintf(d->names[k], sizeof d->names[k], "n%c%c", 'a' + k / 26, 'a' + k % 26);
    /* Predecessors come earlier in the file, so their ancestors are known. */
    anc[k] = 0;
    for (int p = 0; p < k; p++)
      if (pred[k] >> p & 1) anc[k] |= anc[p] | 1ull << p;
    d->expected[k] = k + 1;
    for (int p = 0; p < k; p++)
      if (anc[k] >> p & 1) d->expected[k] += d->expected[p];
  }

  json_t *tasks = json_array();
  for (int k = 0; k < DAG_TASKS; k++) {
    json_t *enables = json_array();
    for (int s = k + 1; s < DAG_TASKS; s++)
      if (pred[s] >> k & 1) json_array_append_new(enables, json_string(d->names[s]));
    char cmd[64];
    snprintf(cmd, sizeof cmd, "sh ./task.sh %d", k + 1);
    json_array_append_new(tasks, json_pack("{s:s, s:s, s:o}", "name", d->names[k], "cmd", cmd,
                                           "enables", enables));
  }
  json_t *job = json_pack("{s:s, s:o}", "name", "dag", "tasks", tasks);
  d->job_path = cli_path_join(dir, "job.json");
  assert_int_equal(json_dump_file(job, d->job_path, JSON_INDENT(1)), 0);
  json_decref(job);
  char *script = cli_path_join(dir, "task.sh");
  cli_write_file(script, task_script);
  free(script);
}

void dag_job_free(struct dag_job *d) {
  free(d->job_path);
  d->job_path = NULL;
}

int dag_task_index(const struct dag_job *d, const char *name) {
  for (int k = 0; k < DAG_TASKS; k++)
    if (strcmp(d->names[k], name) == 0) return k;
  return -1;
}

size_t dag_log_read(const struct dag_job *d, const char *dir, struct log_line **out) {
  char *path = cli_path_join(dir, "tasks.log");
  char *text = cli_read_file(path, NULL);
  free(path);
  *out = NULL;
  if (text == NULL) return 0;
  size_t n = 0, cap = 0;
  char *line = text;
  char *nl;
  while ((nl = strchr(line, '\n')) != NULL) {
    *nl = '\0';
    char name[16];
    long attempt;
    int task = -1;
    if (sscanf(line, "%15s %ld", name, &attempt) == 2) task = dag_task_index(d, name);
    if (task < 0 || attempt < 1) fail_msg("tasks.log: a line that no task wrote: \"%s\"", line);
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      *out = realloc(*out, cap * sizeof **out);
      assert_non_null(*out);
    }
    (*out)[n++] = (struct log_line){task, attempt, (size_t)(line - text)};
    line = nl + 1;
  }
  free(text);
  return n;
}

size_t dag_log_size(const char *dir) {
  char *path = cli_path_join(dir, "tasks.log");
  size_t len = 0;
  char *text = cli_read_file(path, &len);
  free(path);
  free(text);
  return text != NULL ? len : 0;
}

void dag_check_result(const struct dag_job *d, const json_t *job) {
  assert_non_null(job);
  assert_string_equal(json_string_value(json_object_get(job, "status")), "succeeded");
  assert_int_equal(json_object_size(json_object_get(job, "tasks")), DAG_TASKS);
  for (int k = 0; k < DAG_TASKS; k++) {
    const char *status = cli_task_status(job, d->names[k]);
    if (status == NULL || strcmp(status, "succeeded") != 0)
      fail_msg("task %s is %s, not succeeded", d->names[k], status ? status : "(none)");
    json_t *r = cli_task_result(job, d->names[k]);
    if (!json_is_integer(r) || json_integer_value(r) != d->expected[k])
      fail_msg("task %s: result %lld, expected %lld", d->names[k],
               (long long)json_integer_value(r), d->expected[k]);
  }
}

json_t *events_file_read(const char *path) {
  char *text = cli_read_file(path, NULL);
  if (text == NULL) return json_array();
  char *last = strrchr(text, '\n');
  if (last != NULL)
    last[1] = '\0';
  else
    text[0] = '\0';
  json_t *events = cli_parse_ndjson(text);
  free(text);
  return events;
}
