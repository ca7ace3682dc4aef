/*
 * Fuzz target: the job description parser and validator
 * (spe__job_parse_text), on any bytes.
 *
 * Properties:
 *  - a refusal is SPE_EJOB (or SPE_ENOMEM) with a one-line message and no
 *    job_def; an acceptance has no message;
 *  - an accepted job is well formed: unique non-empty names, one body per
 *    task, CSR edge arrays whose offsets rise to nedges, whose indexes are
 *    < ntasks, whose successor lists hold no duplicate, and whose successor
 *    and predecessor arrays mirror each other; priority and ranks form a
 *    permutation; the graph is acyclic (the planner agrees);
 *  - round trip: the canonical text parses again, to the same canonical text
 *    and the same model;
 *  - the canonical text is exactly jansson's compact, key-sorted dump (its
 *    documented contract);
 *  - spe__job_parse_json on the same document decides the same way, with the
 *    same message or the same canonical text;
 *  - under small limits (struct job_limits), an accepted job is within every
 *    one of them and is the job the default limits accept; a job valid under
 *    the default limits is refused only with SPE_ELIMIT, never as invalid.
 * Leaks are caught by LeakSanitizer (libFuzzer checks each input).
 */
#include "fuzz.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"
#include "job/job.h"
#include "plan/plan.h"
#include "spe.h"

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_names(const struct job_def *def) {
  FUZZ_CHECK(def->name != NULL && def->name[0] != '\0', "accepted job without a name");
  const char **names = malloc(def->ntasks * sizeof *names);
  FUZZ_CHECK(names != NULL, "out of memory");
  for (uint32_t i = 0; i < def->ntasks; i++) {
    const struct task_def *t = &def->tasks[i];
    FUZZ_CHECK(t->name != NULL && t->name[0] != '\0', "task %u without a name", i);
    switch (t->body) {
      case TASK_ARGV:
        FUZZ_CHECK(t->argv != NULL && t->argv[0] != NULL && t->argv[0][0] != '\0' &&
                       t->cmd == NULL,
                   "task %u: bad argv body", i);
        break;
      case TASK_CMD:
      case TASK_EXEC:
        FUZZ_CHECK(t->cmd != NULL && t->cmd[0] != '\0' && t->argv == NULL,
                   "task %u: bad cmd/exec body", i);
        break;
      default: spe__fuzz_fail("task %u: body %d", i, (int)t->body);
    }
    names[i] = t->name;
  }
  qsort(names, def->ntasks, sizeof *names, compare_strings);
  for (uint32_t i = 1; i < def->ntasks; i++)
    FUZZ_CHECK(strcmp(names[i - 1], names[i]) != 0, "duplicate task name accepted");
  free(names);
}

/* Offsets start at 0, never decrease and end at nedges; entries < n. */
static void check_csr(const char *what, uint32_t n, uint32_t nedges, const uint32_t *off,
                      const uint32_t *to) {
  FUZZ_CHECK(off != NULL && to != NULL, "%s: missing arrays", what);
  FUZZ_CHECK(off[0] == 0 && off[n] == nedges, "%s: offsets span %u..%u, not 0..%u", what,
             off[0], off[n], nedges);
  for (uint32_t i = 0; i < n; i++)
    FUZZ_CHECK(off[i] <= off[i + 1], "%s: offsets decrease at %u", what, i);
  for (uint32_t e = 0; e < nedges; e++)
    FUZZ_CHECK(to[e] < n, "%s[%u] = %u, beyond %u tasks", what, e, to[e], n);
}

static int has_pred(const struct job_def *def, uint32_t v, uint32_t u) {
  uint32_t lo = def->pred_off[v], hi = def->pred_off[v + 1];
  while (lo < hi) { /* pred lists are sorted (checked below) */
    uint32_t mid = lo + (hi - lo) / 2;
    if (def->pred[mid] == u) return 1;
    if (def->pred[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

static void check_edges(const struct job_def *def) {
  uint32_t n = def->ntasks;
  check_csr("succ", n, def->nedges, def->succ_off, def->succ);
  check_csr("pred", n, def->nedges, def->pred_off, def->pred);
  for (uint32_t v = 0; v < n; v++)
    for (uint32_t e = def->pred_off[v] + 1; e < def->pred_off[v + 1]; e++)
      FUZZ_CHECK(def->pred[e - 1] < def->pred[e], "pred list of %u not strictly rising", v);
  /* No duplicate in a successor list, and each edge u->v is mirrored as v<-u.
   * With equal totals and no duplicates either side, the two sets are equal. */
  uint32_t *stamp = malloc(((size_t)n + 1) * sizeof *stamp);
  FUZZ_CHECK(stamp != NULL, "out of memory");
  memset(stamp, 0xff, ((size_t)n + 1) * sizeof *stamp);
  for (uint32_t u = 0; u < n; u++) {
    for (uint32_t e = def->succ_off[u]; e < def->succ_off[u + 1]; e++) {
      uint32_t v = def->succ[e];
      FUZZ_CHECK(stamp[v] != u, "task %u enables %u twice", u, v);
      stamp[v] = u;
      FUZZ_CHECK(has_pred(def, v, u), "edge %u->%u missing from pred", u, v);
    }
  }
  free(stamp);
}

static void check_ranks(const struct job_def *def) {
  uint32_t n = def->ntasks;
  FUZZ_CHECK(def->npriority <= n && def->rank != NULL, "priority longer than the tasks");
  uint8_t *seen = calloc(n, 1);
  FUZZ_CHECK(seen != NULL, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    FUZZ_CHECK(def->rank[i] < n && !seen[def->rank[i]], "ranks are not a permutation");
    seen[def->rank[i]] = 1;
  }
  for (uint32_t k = 0; k < def->npriority; k++)
    FUZZ_CHECK(def->priority[k] < n && def->rank[def->priority[k]] == k,
               "priority[%u] does not have rank %u", k, k);
  /* The others follow in file order. */
  uint32_t last = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (def->rank[i] < def->npriority) continue;
    FUZZ_CHECK(def->rank[i] >= last, "non-priority ranks out of file order");
    last = def->rank[i];
  }
  free(seen);
}

static void check_model(const struct job_def *def) {
  FUZZ_CHECK(def->ntasks >= 1 && def->tasks != NULL, "accepted job without tasks");
  check_names(def);
  check_edges(def);
  check_ranks(def);
  FUZZ_CHECK(def->canonical != NULL && strlen(def->canonical) == def->canonical_len,
             "canonical text has a NUL byte or a wrong length");
  struct plan plan;
  uint32_t *cycle = NULL, len = 0;
  int rc = spe__plan_build(def->ntasks, def->succ_off, def->succ, &plan, &cycle, &len);
  FUZZ_CHECK(rc == 0, "accepted job whose graph the planner refuses (%d)", rc);
  spe__plan_free(&plan);
  free(cycle);
}

static int same_strings(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_vectors(char *const *a, char *const *b) {
  if (a == NULL || b == NULL) return a == b;
  for (; *a != NULL && *b != NULL; a++, b++)
    if (strcmp(*a, *b) != 0) return 0;
  return *a == NULL && *b == NULL;
}

/* `env` keeps the document's key order, which the canonical text sorts: the
 * same variables in any order. */
static int same_env(char *const *a, char *const *b) {
  if (a == NULL || b == NULL) return a == b;
  size_t na = 0, nb = 0;
  while (a[na] != NULL) na++;
  while (b[nb] != NULL) nb++;
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++) {
    size_t j = 0;
    while (j < nb && strcmp(a[i], b[j]) != 0) j++;
    if (j == nb) return 0;
  }
  return 1;
}

static int same_json(json_t *a, json_t *b) {
  return a == NULL || b == NULL ? a == b : json_equal(a, b);
}

static int same_u32(const uint32_t *a, const uint32_t *b, size_t n) {
  return n == 0 || memcmp(a, b, n * sizeof *a) == 0;
}

/* The model parsed back from the canonical text is the same model. */
static void check_same_model(const struct job_def *a, const struct job_def *b) {
  FUZZ_CHECK(a->ntasks == b->ntasks && a->nedges == b->nedges && a->npriority == b->npriority,
             "re-parse changed the counts");
  FUZZ_CHECK(same_strings(a->name, b->name) && same_strings(a->description, b->description) &&
                 same_strings(a->cwd, b->cwd) && same_env(a->env, b->env),
             "re-parse changed the job's fields");
  for (uint32_t i = 0; i < a->ntasks; i++) {
    const struct task_def *s = &a->tasks[i], *t = &b->tasks[i];
    FUZZ_CHECK(same_strings(s->name, t->name) && s->body == t->body &&
                   same_strings(s->cmd, t->cmd) && same_vectors(s->argv, t->argv) &&
                   same_env(s->env, t->env) && s->timeout_ms == t->timeout_ms &&
                   s->retries == t->retries && same_strings(s->cwd, t->cwd) &&
                   same_strings(s->description, t->description) && same_json(s->arg, t->arg),
               "re-parse changed task %u", i);
  }
  size_t n1 = (size_t)a->ntasks + 1;
  FUZZ_CHECK(same_u32(a->succ_off, b->succ_off, n1) && same_u32(a->succ, b->succ, a->nedges) &&
                 same_u32(a->pred_off, b->pred_off, n1) &&
                 same_u32(a->pred, b->pred, a->nedges) &&
                 same_u32(a->priority, b->priority, a->npriority) &&
                 same_u32(a->rank, b->rank, a->ntasks),
             "re-parse changed the graph or the ranks");
}

static void check_round_trip(const struct job_def *def) {
  struct job_def *again = NULL;
  char *msg = NULL;
  int rc = spe__job_parse_text(def->canonical, def->canonical_len, &again, &msg);
  FUZZ_CHECK(rc == 0, "canonical text refused: %s", msg ? msg : "?");
  FUZZ_CHECK(again->canonical_len == def->canonical_len &&
                 memcmp(again->canonical, def->canonical, def->canonical_len) == 0,
             "canonical text is not a fixed point");
  check_same_model(def, again);
  spe__job_free(again);
}

enum { LOAD_FLAGS = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL };

/* Against jansson's own writer, and against the parse of the document. */
static void check_against_json(const uint8_t *data, size_t size, int rc,
                               const struct job_def *def, const char *msg) {
  json_t *doc = json_loadb((const char *)data, size, LOAD_FLAGS, NULL);
  if (doc == NULL) {
    FUZZ_CHECK(rc != 0, "accepted a text jansson cannot load");
    return;
  }
  if (rc == 0) {
    char *dump = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    FUZZ_CHECK(dump != NULL && strlen(dump) == def->canonical_len &&
                   memcmp(dump, def->canonical, def->canonical_len) == 0,
               "canonical text differs from json_dumps");
    free(dump);
  }
  struct job_def *other = NULL;
  char *other_msg = NULL;
  int other_rc = spe__job_parse_json(doc, &other, &other_msg);
  FUZZ_CHECK(other_rc == rc, "parse_json returned %d, parse_text %d", other_rc, rc);
  if (rc == 0)
    FUZZ_CHECK(other->canonical_len == def->canonical_len &&
                   memcmp(other->canonical, def->canonical, def->canonical_len) == 0,
               "parse_json gives another canonical text");
  else
    FUZZ_CHECK(same_strings(msg, other_msg), "parse_json says \"%s\", parse_text \"%s\"",
               other_msg ? other_msg : "(null)", msg ? msg : "(null)");
  spe__job_free(other);
  free(other_msg);
  json_decref(doc);
}

/* Small enough that inputs of a few hundred bytes meet every one. */
static const struct job_limits small = {
    .text_bytes = 600, .tasks = 5, .edges = 6, .name_bytes = 12,
    .arg_bytes = 24, .command_bytes = 160, .env_vars = 3};

/* An `env` within the limits; adds what it weighs for execve to *bytes. */
static void check_env_limits(char *const *env, size_t *bytes) {
  size_t n = 0;
  for (; env != NULL && env[n] != NULL; n++) {
    FUZZ_CHECK(strlen(env[n]) <= small.arg_bytes, "env entry past the limit accepted");
    *bytes += strlen(env[n]) + SPE_ARG_OVERHEAD_BYTES;
  }
  FUZZ_CHECK(n <= small.env_vars, "%zu env entries accepted", n);
}

/* Every limit, counted as src/base/limits.h says. */
static void check_within(const struct job_def *def, size_t size) {
  FUZZ_CHECK(size <= small.text_bytes && def->ntasks <= small.tasks &&
                 def->nedges <= small.edges && strlen(def->name) <= small.name_bytes,
             "a job past the text, task, edge or name limit accepted");
  size_t job_env = 0;
  check_env_limits(def->env, &job_env);
  for (uint32_t i = 0; i < def->ntasks; i++) {
    const struct task_def *t = &def->tasks[i];
    FUZZ_CHECK(strlen(t->name) <= small.name_bytes, "task %u: name past the limit", i);
    size_t bytes = job_env;
    check_env_limits(t->env, &bytes);
    if (t->body == TASK_CMD) {
      FUZZ_CHECK(strlen(t->cmd) <= small.arg_bytes, "task %u: cmd past the limit", i);
      bytes += strlen("sh") + strlen("-c") + strlen(t->cmd) + 3 * SPE_ARG_OVERHEAD_BYTES;
    } else if (t->body == TASK_ARGV) {
      for (char **a = t->argv; *a != NULL; a++) {
        FUZZ_CHECK(strlen(*a) <= small.arg_bytes, "task %u: argv past the limit", i);
        bytes += strlen(*a) + SPE_ARG_OVERHEAD_BYTES;
      }
    }
    FUZZ_CHECK(t->body == TASK_EXEC || bytes <= small.command_bytes,
               "task %u: %zu command bytes accepted", i, bytes);
  }
}

static void check_limits(const uint8_t *data, size_t size, int rc, const struct job_def *def) {
  struct job_def *lim_def = NULL;
  char *msg = NULL;
  int lim_rc = spe__job_parse_text_limits((const char *)data, size, &small, &lim_def, &msg);
  FUZZ_CHECK(lim_rc == 0 || lim_rc == SPE_EJOB || lim_rc == SPE_ELIMIT || lim_rc == SPE_ENOMEM,
             "parse under limits returned %d", lim_rc);
  if (lim_rc == 0) {
    FUZZ_CHECK(rc == 0 && lim_def->canonical_len == def->canonical_len &&
                   memcmp(lim_def->canonical, def->canonical, def->canonical_len) == 0,
               "accepted under small limits, not the same under the default ones");
    check_within(lim_def, size);
  } else {
    FUZZ_CHECK(msg != NULL && strpbrk(msg, "\n\r") == NULL, "a refusal without a one-line message");
    if (rc == 0)
      FUZZ_CHECK(lim_rc == SPE_ELIMIT, "a valid job refused as invalid under limits: %s", msg);
  }
  spe__job_free(lim_def);
  free(msg);
}

void spe__fuzz_job_check(const uint8_t *data, size_t size) {
  struct job_def *def = (struct job_def *)1;
  char *msg = (char *)1;
  int rc = spe__job_parse_text((const char *)data, size, &def, &msg);
  if (rc != 0) {
    FUZZ_CHECK(rc == SPE_EJOB || rc == SPE_ELIMIT || rc == SPE_ENOMEM, "parse returned %d", rc);
    FUZZ_CHECK(def == NULL, "a refused job left a job_def");
    FUZZ_CHECK(msg != NULL && msg[0] != '\0', "a refusal without a message");
    FUZZ_CHECK(strpbrk(msg, "\n\r") == NULL, "the message is not one line: %s", msg);
  } else {
    FUZZ_CHECK(def != NULL && msg == NULL, "an acceptance with a message or no job_def");
    check_model(def);
    check_round_trip(def);
  }
  check_against_json(data, size, rc, def, msg);
  check_limits(data, size, rc, def);
  spe__job_free(def);
  free(msg);
}

SPE_FUZZ_ENTRY(spe__fuzz_job_check)
