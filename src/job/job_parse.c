/*
 * From job description text to a job_def: the JSON syntax, the job's own fields
 * and the walk over its tasks, then the graph steps and the canonical text.
 * Checks run in the order a reader would fix them, and the first broken rule is
 * reported, as one line.
 */
#include "job/job_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/msg.h"
#include "spe.h"

/* The most tasks a job may have: the name index doubles its size and keeps
 * 32-bit slots, and no real job comes near. */
enum { MAX_TASKS = 1 << 30 };

enum { F_NAME, F_TASKS, F_PRIORITY, F_CWD, F_ENV, F_DESCRIPTION, F_COUNT };
static const char *const job_fields[F_COUNT] = {
    [F_NAME] = "name", [F_TASKS] = "tasks", [F_PRIORITY] = "priority",
    [F_CWD] = "cwd",   [F_ENV] = "env",     [F_DESCRIPTION] = "description"};

static int parse_job_name(struct job_parse *p, json_t *v) {
  if (v == NULL) return spe__job_error(p, JOB_LEVEL, "\"name\" is missing");
  return spe__job_get_string(p, JOB_LEVEL, "name", v, 1, &p->def->name);
}

static int parse_priority(struct job_parse *p, json_t *v) {
  if (v == NULL) return 0;
  if (!json_is_array(v))
    return spe__job_error(p, JOB_LEVEL, "\"priority\" must be an array of task names");
  size_t k;
  json_t *s;
  json_array_foreach(v, k, s) {
    if (!json_is_string(s))
      return spe__job_error(p, JOB_LEVEL, "\"priority\" must be an array of task names");
    if (spe__job_has_nul(s))
      return spe__job_error(p, JOB_LEVEL, "\"priority\"[%zu] must not contain a NUL character", k);
  }
  p->priority = v;
  return 0;
}

static int parse_tasks(struct job_parse *p, json_t *tasks) {
  if (!json_is_array(tasks) || json_array_size(tasks) == 0)
    return spe__job_error(p, JOB_LEVEL, "\"tasks\" must be a non-empty array");
  size_t n = json_array_size(tasks);
  if (n > MAX_TASKS)
    return spe__job_error(p, JOB_LEVEL, "\"tasks\" holds too many tasks (at most %d)", MAX_TASKS);
  struct job_def *def = p->def;
  def->tasks = calloc(n, sizeof *def->tasks);
  p->enables = calloc(n, sizeof *p->enables);
  if (def->tasks == NULL || p->enables == NULL) return spe__job_nomem(p);
  def->ntasks = (uint32_t)n;
  if (spe__job_names_init(&p->names, def->ntasks) < 0) return spe__job_nomem(p);
  for (uint32_t i = 0; i < def->ntasks; i++) {
    int rc = spe__job_parse_task(p, i, json_array_get(tasks, i));
    if (rc < 0) return rc;
  }
  return 0;
}

static int parse_doc(struct job_parse *p, json_t *doc) {
  if (!json_is_object(doc)) return spe__job_error(p, JOB_LEVEL, "a job must be a JSON object");
  json_t *f[F_COUNT];
  struct job_members m = {.values = f};
  spe__job_members(doc, job_fields, F_COUNT, &m);
  if (m.unknown != NULL) return spe__job_unknown_field(p, JOB_LEVEL, &m);
  struct job_def *def = p->def;
  int rc;
  if ((rc = parse_job_name(p, f[F_NAME])) < 0) return rc;
  if ((rc = spe__job_get_string(p, JOB_LEVEL, "description", f[F_DESCRIPTION], 0,
                                &def->description)) < 0)
    return rc;
  if ((rc = spe__job_get_string(p, JOB_LEVEL, "cwd", f[F_CWD], 1, &def->cwd)) < 0) return rc;
  if ((rc = spe__job_get_env(p, JOB_LEVEL, f[F_ENV], &def->env)) < 0) return rc;
  if ((rc = parse_priority(p, f[F_PRIORITY])) < 0) return rc;
  if ((rc = parse_tasks(p, f[F_TASKS])) < 0) return rc;
  if ((rc = spe__job_build_edges(p)) < 0) return rc;
  if ((rc = spe__job_build_ranks(p)) < 0) return rc;
  if ((rc = spe__job_check_cycles(p)) < 0) return rc;
  return spe__job_canonicalize(p, doc);
}

static int parse(json_t *doc, int copy_args, size_t size_hint, struct job_def **out,
                 char **msg) {
  *out = NULL;
  if (msg != NULL) *msg = NULL;
  struct job_parse p = {.msg = msg, .copy_args = copy_args, .size_hint = size_hint};
  p.def = calloc(1, sizeof *p.def);
  if (p.def == NULL) return spe__job_nomem(&p);
  p.def->strings = spe__job_strings_new();
  int rc = p.def->strings == NULL ? spe__job_nomem(&p) : parse_doc(&p, doc);
  free(p.enables);
  spe__job_names_free(&p.names);
  if (rc < 0) {
    spe__job_free(p.def);
    return rc;
  }
  *out = p.def;
  return 0;
}

int spe__job_parse_json(json_t *doc, struct job_def **out, char **msg) {
  return parse(doc, 1, 0, out, msg);
}

static int is_blank(const char *text, size_t len) {
  for (size_t k = 0; k < len; k++) {
    if (strchr(" \t\r\n", text[k]) == NULL || text[k] == '\0') return 0;
  }
  return 1;
}

/* jansson's message quotes the text near the error, which may hold line breaks
 * and other control characters; a message must stay one line. */
static void one_line(char *out, const char *text) {
  for (; *text != '\0'; text++) {
    unsigned char c = (unsigned char)*text;
    if (c == '\n' || c == '\r' || c == '\t') {
      *out++ = '\\';
      *out++ = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else {
      *out++ = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
  }
  *out = '\0';
}

int spe__job_parse_text(const char *text, size_t len, struct job_def **out, char **msg) {
  *out = NULL;
  if (msg != NULL) *msg = NULL;
  if (text == NULL || is_blank(text, len)) {
    spe__msg_set(msg, "the job description is empty");
    return SPE_EJOB;
  }
  /* JSON_ALLOW_NUL lets \u0000 through the parser so that our own checks can
   * say which field holds it, instead of jansson's less telling refusal. */
  json_error_t err;
  json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                           &err);
  if (doc == NULL) {
    if (json_error_code(&err) == json_error_out_of_memory) {
      spe__msg_set(msg, "out of memory");
      return SPE_ENOMEM;
    }
    char why[2 * JSON_ERROR_TEXT_LENGTH + 1];
    one_line(why, err.text);
    spe__msg_set(msg, "invalid JSON at line %d, column %d: %s", err.line, err.column, why);
    return SPE_EJOB;
  }
  int rc = parse(doc, 0, len, out, msg);
  json_decref(doc);
  return rc;
}
