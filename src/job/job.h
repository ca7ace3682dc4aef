/*
 * The job model: a job description (SPEC §1) parsed, validated and turned into a
 * compact, immutable graph the engine runs.
 *
 * A job_def is built once on submit and never changes; the engine keeps its
 * per-run state (status, attempts, results) in its own arrays indexed like
 * `tasks`. Edges are stored twice in CSR form (successors and predecessors),
 * 4 bytes per edge each way, so that readiness counting and ancestor walks cost
 * O(edges) and the model stays small for 100,000-task jobs.
 *
 * Ownership: a job_def owns everything it points to (strings, arrays, the
 * jansson `arg` values) and is freed whole by spe__job_free(). It holds no
 * reference to the jansson document it was parsed from.
 */
#ifndef SPE_JOB_JOB_H
#define SPE_JOB_JOB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum task_body {
  TASK_CMD,  /* `cmd`: a string run by /bin/sh -c */
  TASK_ARGV, /* `argv`: run directly, no shell */
  TASK_EXEC  /* `exec`: a C function registered by the embedding program */
};

/* Fields are ordered so that the struct has no padding (72 bytes). */
struct task_def {
  char *name;           /* unique within the job, non-empty */
  char *cmd;            /* TASK_CMD: the command line; TASK_EXEC: the function name */
  char **argv;          /* TASK_ARGV: NULL-terminated, argv[0] non-NULL; else NULL */
  json_t *arg;          /* `arg` (any JSON) or NULL; owned reference */
  char *cwd;            /* task `cwd` or NULL (then the job's, then the process's) */
  char **env;           /* task `env` as NULL-terminated "KEY=VALUE" strings, or NULL */
  char *description;    /* or NULL */
  uint64_t timeout_ms;  /* 0 = infinity */
  enum task_body body;  /* which of cmd, argv, exec */
  uint32_t retries;     /* extra attempts after a failed one */
};

struct job_def {
  char *name;         /* non-empty */
  char *description;  /* or NULL */
  char *cwd;          /* job `cwd` or NULL */
  char **env;         /* job `env` as NULL-terminated "KEY=VALUE" strings, or NULL */

  uint32_t ntasks;          /* >= 1 */
  struct task_def *tasks;   /* in file order */

  /* Edges in CSR form: the successors of task i (the tasks it enables) are
   * succ[succ_off[i] .. succ_off[i+1]), its predecessors (the tasks that enable
   * it) pred[pred_off[i] .. pred_off[i+1]). Both offset arrays have ntasks + 1
   * entries; both edge arrays have nedges. Duplicate entries in one `enables`
   * list are kept once. */
  uint32_t nedges;
  uint32_t *succ_off, *succ;
  uint32_t *pred_off, *pred;

  /* `priority`: task indexes in priority order (duplicates kept once). */
  uint32_t npriority;
  uint32_t *priority;

  /* The start rank of every task: tasks named in `priority` get 0..npriority-1
   * in that order, the others npriority + their position among the non-priority
   * tasks in file order. Among ready tasks, the lowest rank starts first. */
  uint32_t *rank;

  /* The description as canonical JSON: compact, keys sorted. Two descriptions
   * that mean the same thing have the same text (used to recognise a job to
   * resume, and stored so that a job can be rebuilt on recovery). */
  char *canonical;
  size_t canonical_len;

  /* Private to src/job. A parsed job_def keeps every string and string array
   * above (names, commands, argv, env, cwd, descriptions; not `canonical`) in
   * this one block store, which saves a malloc and its overhead per string.
   * NULL in a job_def built by hand, whose strings spe__job_free() then frees
   * one by one. */
  struct job_strings *strings;
};

/* The size limits a description is held to (src/base/limits.h says why each
 * value; docs/limits.md what a user sees). A parameter rather than constants so
 * that tests can try each limit at its edge with small values, and so that a
 * job read back from the store is held to none. */
struct job_limits {
  size_t text_bytes;     /* the text; for a parsed document, its canonical text */
  uint32_t tasks;        /* tasks in the job */
  uint32_t edges;        /* distinct dependencies */
  size_t name_bytes;     /* a job's or task's name */
  size_t arg_bytes;      /* one `cmd`, `argv` element, or `env` KEY=VALUE */
  size_t command_bytes;  /* a task's argv and env strings, as execve counts them */
  uint32_t env_vars;     /* entries of one `env` object */
};

/* The limits of src/base/limits.h: what every description from a user meets. */
extern const struct job_limits spe__job_limits_default;
/* No limit beyond what the model can represent (2^30 tasks, 2^32 - 2 edges):
 * for descriptions already accepted once, such as a stored job on recovery. */
extern const struct job_limits spe__job_limits_none;

/* Parse and validate a job description held in memory (the bytes of a job
 * file), under the default limits. On success returns 0 and *out is a new
 * job_def. On failure returns SPE_EJOB (invalid job, including JSON syntax
 * errors with line and column, and an empty text), SPE_ELIMIT (a valid job past
 * one of the limits) or SPE_ENOMEM, and sets *msg (if msg is not NULL) to one
 * line naming the problem, e.g.
 *     task "t1": enables unknown task "t9"
 *     duplicate task name "t0"
 *     dependency cycle: t1 -> t2 -> t1
 *     tasks[3]: "name" is 2000 bytes; the limit is 1024
 * The whole of SPEC §1 is checked, including cycles (through the planner). */
int spe__job_parse_text(const char *text, size_t len, struct job_def **out, char **msg);

/* The same for a description already parsed by jansson; `doc` is borrowed and
 * not referenced afterwards (`arg` values are copied), so the caller may change
 * or free it. */
int spe__job_parse_json(json_t *doc, struct job_def **out, char **msg);

/* The two above under the given limits. */
int spe__job_parse_text_limits(const char *text, size_t len, const struct job_limits *lim,
                               struct job_def **out, char **msg);
int spe__job_parse_json_limits(json_t *doc, const struct job_limits *lim,
                               struct job_def **out, char **msg);

/* Free a job_def and everything it owns. NULL is a no-op. */
void spe__job_free(struct job_def *def);

/* Index of the task called `name`, or -1. O(tasks): for tools and tests, not for
 * the engine's hot paths. */
int64_t spe__job_find_task(const struct job_def *def, const char *name);

#endif
