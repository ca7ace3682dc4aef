/*
 * The registered functions (the public spe_registry) and one call of one
 * (the public spe_call), shared by both isolations: a worker process and a pool
 * thread both end in spe__call_run().
 */
#ifndef SPE_FUNC_REGISTRY_H
#define SPE_FUNC_REGISTRY_H

#include "spe.h"

#include "base/strmap.h"

#include <stdatomic.h>
#include <stdint.h>

struct func_entry {
  char *name;
  spe_function fn;
  void *ctx;
};

struct spe_registry {
  struct func_entry **items;  /* in registration order */
  uint32_t len, cap;
  struct strmap by_name;      /* name → func_entry */
};

/* A copy of `src` (NULL: an empty registry). */
int spe__registry_copy(struct spe_registry **out, const struct spe_registry *src);
/* The function registered under `name`, or NULL. `reg` may be NULL. */
const struct func_entry *spe__registry_find(const struct spe_registry *reg, const char *name);

struct spe_call {
  const json_t *input;        /* an object; NULL until built when lazy: */
  json_t *(*build_input)(void *ctx, uint32_t task); /* on the first
                                 spe_call_input(), on the calling thread */
  void *build_ctx;
  uint32_t build_task;
  json_t *built;              /* what build_input made: the caller of the
                                 function releases it after the call */
  const json_t *arg;          /* never NULL: json_null() when the task has none */
  const char *job_id, *job_name, *task;
  unsigned attempt;
  const atomic_int *cancelled;/* thread isolation: set when nobody waits any
                                 more; NULL under process isolation */
  int failed;                 /* spe_call_fail() was called */
  char *error;                /* its message (malloc'd; NULL if out of memory) */
};

/* Call f with `call` (`failed` 0, `error` NULL). On return either *result is
 * set (a new reference; JSON null when the function returned NULL), or the
 * function failed and *error is its malloc'd message - NULL only when no
 * memory was left even for a message: the caller then reports a fixed one. */
void spe__call_run(const struct func_entry *f, struct spe_call *call, json_t **result,
                   char **error);

#endif
