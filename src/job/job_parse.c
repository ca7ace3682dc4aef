/*
 * From job description text to a job_def: the JSON syntax, the job's own fields
 * and the walk over its tasks, then the graph steps and the canonical text.
 * Checks run in the order a reader would fix them, and the first broken rule is
 * reported, as one line.
 */
#include "job/job_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "base/msg.h"
#include "spe.h"

/* The most tasks the model can hold, whatever the limits: the name index
 * doubles its size and keeps 32-bit slots. */
enum { MODEL_MAX_TASKS = 1 << 30 };

const struct job_limits spe__job_limits_default = {
    .text_bytes = SPE_MAX_JOB_BYTES,
    .tasks = SPE_MAX_TASKS,
    .edges = SPE_MAX_EDGES,
    .name_bytes = SPE_MAX_NAME_BYTES,
    .arg_bytes = SPE_MAX_ARG_STRING_BYTES,
    .command_bytes = SPE_MAX_COMMAND_BYTES,
    .env_vars = SPE_MAX_ENV_VARS,
};

const struct job_limits spe__job_limits_none = {
    .text_bytes = SIZE_MAX,
    .tasks = MODEL_MAX_TASKS,
    .edges = UINT32_MAX - 1,
    .name_bytes = SIZE_MAX,
    .arg_bytes = SIZE_MAX,
    .command_bytes = SIZE_MAX,
    .env_vars = UINT32_MAX,
};

enum { F_NAME, F_TASKS, F_PRIORITY, F_CWD, F_ENV, F_DESCRIPTION, F_COUNT };
static const char *const job_fields[F_COUNT] = {
    [F_NAME] = "name", [F_TASKS] = "tasks", [F_PRIORITY] = "priority",
    [F_CWD] = "cwd",   [F_ENV] = "env",     [F_DESCRIPTION] = "description"};

static int parse_job_name(struct job_parse *p, json_t *v) {
  if (v == NULL) return spe__job_error(p, JOB_LEVEL, "\"name\" is missing");
  int rc = spe__job_get_string(p, JOB_LEVEL, "name", v, 1, &p->def->name);
  return rc < 0 ? rc : spe__job_check_name(p, JOB_LEVEL, json_string_length(v));
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
  uint32_t most = p->lim->tasks < MODEL_MAX_TASKS ? p->lim->tasks : MODEL_MAX_TASKS;
  if (n > most)
    return spe__job_limit_error(p, JOB_LEVEL, "\"tasks\" has %zu tasks; the limit is %u", n,
                                most);
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
  if ((rc = spe__job_get_env(p, JOB_LEVEL, f[F_ENV], &def->env, &p->job_env_bytes)) < 0)
    return rc;
  if ((rc = parse_priority(p, f[F_PRIORITY])) < 0) return rc;
  if ((rc = parse_tasks(p, f[F_TASKS])) < 0) return rc;
  if ((rc = spe__job_build_edges(p)) < 0) return rc;
  if ((rc = spe__job_build_ranks(p)) < 0) return rc;
  if ((rc = spe__job_check_cycles(p)) < 0) return rc;
  return spe__job_canonicalize(p, doc);
}

/* A document given already parsed has no text of its own: its size is that of
 * its canonical text, which is what the store keeps. */
static int check_canonical_size(struct job_parse *p) {
  if (p->def->canonical_len <= p->lim->text_bytes) return 0;
  return spe__job_limit_error(p, JOB_LEVEL, "the job description is %zu bytes (as canonical "
                              "JSON); the limit is %zu", p->def->canonical_len,
                              p->lim->text_bytes);
}

static int parse(json_t *doc, int copy_args, size_t size_hint, const struct job_limits *lim,
                 struct job_def **out, char **msg) {
  *out = NULL;
  if (msg != NULL) *msg = NULL;
  struct job_parse p = {.msg = msg, .copy_args = copy_args, .size_hint = size_hint, .lim = lim};
  p.def = calloc(1, sizeof *p.def);
  if (p.def == NULL) return spe__job_nomem(&p);
  p.def->strings = spe__job_strings_new();
  int rc = p.def->strings == NULL ? spe__job_nomem(&p) : parse_doc(&p, doc);
  if (rc == 0 && copy_args) rc = check_canonical_size(&p);
  free(p.enables);
  spe__job_names_free(&p.names);
  if (rc < 0) {
    spe__job_free(p.def);
    return rc;
  }
  *out = p.def;
  return 0;
}

int spe__job_parse_json_limits(json_t *doc, const struct job_limits *lim,
                               struct job_def **out, char **msg) {
  return parse(doc, 1, 0, lim, out, msg);
}

int spe__job_parse_json(json_t *doc, struct job_def **out, char **msg) {
  return spe__job_parse_json_limits(doc, &spe__job_limits_default, out, msg);
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

int spe__job_parse_text_limits(const char *text, size_t len, const struct job_limits *lim,
                               struct job_def **out, char **msg) {
  *out = NULL;
  if (msg != NULL) *msg = NULL;
  /* Before anything else, and before jansson builds a document several times
   * the text's size. */
  if (text != NULL && len > lim->text_bytes) {
    spe__msg_set(msg, "the job description is %zu bytes; the limit is %zu", len,
                 lim->text_bytes);
    return SPE_ELIMIT;
  }
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
  int rc = parse(doc, 0, len, lim, out, msg);
  json_decref(doc);
  return rc;
}

int spe__job_parse_text(const char *text, size_t len, struct job_def **out, char **msg) {
  return spe__job_parse_text_limits(text, len, &spe__job_limits_default, out, msg);
}
