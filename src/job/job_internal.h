/*
 * What the files of the job model share while they parse one description:
 * the parse state, the string store, the task name index and the error
 * helpers. Nothing here is used outside src/job.
 *
 * A parse runs in this order, each step in its own file:
 *   job_parse.c      the JSON text, the job's own fields, the walk over tasks
 *   job_task.c       one task's fields
 *   job_fields.c     checks shared by job and task (unknown fields, strings, env)
 *   job_graph.c      names to indexes, the CSR edge arrays, priority and ranks,
 *                    the cycle check through the planner
 *   job_canonical.c  the canonical JSON text
 * with job_strings.c (the string store), job_names.c (the name index) and
 * job_errors.c (messages) as helpers.
 */
#ifndef SPE_JOB_JOB_INTERNAL_H
#define SPE_JOB_JOB_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "job/job.h"

/* ---- String store (job_strings.c) ---------------------------------------- */

/* An append-only store of blocks that a job_def's strings and string arrays are
 * carved from, freed all at once. Blocks grow from 1 KiB to 64 KiB, so a small
 * job costs little and a large one few allocations. */
struct job_strings;

struct job_strings *spe__job_strings_new(void);
/* `size` bytes aligned for a pointer, or NULL when out of memory. */
void *spe__job_strings_alloc(struct job_strings *js, size_t size);
/* A NUL-terminated copy of s[0 .. len), or NULL when out of memory. */
char *spe__job_strings_dup(struct job_strings *js, const char *s, size_t len);
/* How many bytes the store holds from malloc (for measurements). */
size_t spe__job_strings_bytes(const struct job_strings *js);
void spe__job_strings_free(struct job_strings *js);

/* ---- Task name index (job_names.c) --------------------------------------- */

/* An open-addressing hash table from task name to task index, built during the
 * parse and dropped at its end. Names are borrowed (they live in the string
 * store). */
struct job_name_slot {
  const char *name;
  uint32_t hash; /* spe__job_names_hash(name); 0 = empty slot */
  uint32_t task;
};
struct job_names {
  struct job_name_slot *slots;
  uint32_t mask; /* capacity - 1; capacity is a power of two */
};

/* An index for up to n names. SPE_ENOMEM when out of memory. */
int spe__job_names_init(struct job_names *ix, uint32_t n);
/* The hash of s[0 .. len) that lookups take; never 0. */
uint32_t spe__job_names_hash(const char *s, size_t len);
/* Add `name` (borrowed) for `task`. Returns -1 when added, else the task that
 * already has this name (nothing is added then). */
int64_t spe__job_names_add(struct job_names *ix, const char *name, uint32_t task);
/* The task called s[0 .. len), or -1; `hash` is spe__job_names_hash(s, len). */
int64_t spe__job_names_find(const struct job_names *ix, const char *s, size_t len,
                            uint32_t hash);
/* Hints that a lookup of `hash` is coming: first the slot, later the name in
 * it (which reads the slot, so issue it once the slot has had time to arrive). */
void spe__job_names_prefetch_slot(const struct job_names *ix, uint32_t hash);
void spe__job_names_prefetch_name(const struct job_names *ix, uint32_t hash);
void spe__job_names_free(struct job_names *ix);

/* ---- Parse state ---------------------------------------------------------- */

struct job_parse {
  struct job_def *def;    /* being built; freed whole on failure */
  char **msg;             /* where the error message goes, or NULL */
  int copy_args;          /* deep-copy `arg` values: the document is the caller's */
  json_t **enables;       /* per task, its `enables` array (borrowed from the
                             document, already checked to hold strings) or NULL */
  json_t *priority;       /* the job's `priority` array (borrowed) or NULL */
  struct job_names names; /* every task name seen so far */
  size_t size_hint;       /* the length of the JSON text, when there is one */
  const struct job_limits *lim; /* the limits the description is held to */
  size_t job_env_bytes;   /* the job's `env` as execve counts it (limits.h) */
};

/* The "no task" value of the `task` arguments below: a job-level field. */
#define JOB_LEVEL (-1)

/* ---- Messages (job_errors.c) ---------------------------------------------- */

/* Set the parse's message to one line and return SPE_EJOB. With task >= 0 the
 * line starts with `task "NAME": ` or, while the task has no valid name yet,
 * `tasks[I]: `. */
int spe__job_error(struct job_parse *p, int64_t task, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a valid description past one of its limits: returns
 * SPE_ELIMIT. */
int spe__job_limit_error(struct job_parse *p, int64_t task, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set the message "out of memory" and return SPE_ENOMEM. */
int spe__job_nomem(struct job_parse *p);

/* A name or key as it appears in a message: JSON-escaped so that the message
 * stays one line, and cut after 200 bytes. The text goes into `buf`. */
struct job_quoted {
  char s[200 * 6 + 16];
};
const char *spe__job_quote(struct job_quoted *buf, const char *s, size_t len);
/* The same without the surrounding quotes. */
const char *spe__job_escape(struct job_quoted *buf, const char *s, size_t len);

/* ---- Field checks (job_fields.c) ------------------------------------------ */

/* The members of an object sorted out in one pass over its keys: values[k] is
 * the value of the field called names[k] (NULL when absent), and `unknown` the
 * first key that is none of them (NULL when there is none). One pass instead of
 * a json_object_get() per field matters at 100,000 tasks. */
struct job_members {
  json_t **values;
  const char *unknown;
  size_t unknown_len;
};
void spe__job_members(json_t *obj, const char *const *names, size_t n, struct job_members *m);
/* The error for m->unknown: `unknown field "KEY"`. */
int spe__job_unknown_field(struct job_parse *p, int64_t task, const struct job_members *m);

/* The value `v` of `field` (NULL when absent) must be a string without NUL
 * bytes, and non-empty if `nonempty`; *out is its copy in the string store, or
 * NULL when absent. */
int spe__job_get_string(struct job_parse *p, int64_t task, const char *field, json_t *v,
                        int nonempty, char **out);
/* `env` (the value `v`, or NULL when absent): an object of strings, turned into
 * NULL-terminated "KEY=VALUE" strings in the string store; *out NULL when
 * absent or empty. *bytes (if not NULL) receives what the entries weigh
 * against the command limit (SPE_MAX_COMMAND_BYTES). */
int spe__job_get_env(struct job_parse *p, int64_t task, json_t *v, char ***out, size_t *bytes);
/* A name (of the job or a task) within the name limit. */
int spe__job_check_name(struct job_parse *p, int64_t task, size_t len);
/* Whether a JSON string holds a NUL byte (jansson allows \u0000). */
int spe__job_has_nul(const json_t *string);

/* ---- Steps ------------------------------------------------------------------ */

int spe__job_parse_task(struct job_parse *p, uint32_t i, json_t *task);   /* job_task.c */
int spe__job_build_edges(struct job_parse *p);                            /* job_graph.c */
int spe__job_build_ranks(struct job_parse *p);                            /* job_graph.c */
int spe__job_check_cycles(struct job_parse *p);                           /* job_graph.c */
int spe__job_canonicalize(struct job_parse *p, json_t *doc);              /* job_canonical.c */

/* The canonical text of any JSON document (job_canonical.c): the text of
 * json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS), malloc'd, into *text and
 * *len. `size_hint` is a guess of its length (0: none). SPE_ENOMEM, or
 * SPE_EJOB with *why set to a static reason (a string that is not UTF-8, a
 * document nested too deeply). */
int spe__job_canonical_text(json_t *doc, size_t size_hint, char **text, size_t *len,
                            const char **why);

#endif
