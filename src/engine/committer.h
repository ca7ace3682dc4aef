/*
 * The committer: a thread that commits the engine's batches to a store whose
 * commits wait for the disk (store_ops.slow_commit), so that the engine goes on
 * scheduling — applying outcomes, starting tasks whose inputs are durable,
 * gathering the next batch — while one batch is being made durable.
 *
 * At most one batch is in flight. The engine hands it over with
 * spe__committer_submit(); the committer commits it and pokes `donefd` (an
 * eventfd the engine's loop watches); the engine then takes the result with
 * spe__committer_result(). Between those two calls the engine must not touch
 * the batch. `lock` guards `batch`, `done`, `rc`, `msg` and `quit`.
 */
#ifndef SPE_ENGINE_COMMITTER_H
#define SPE_ENGINE_COMMITTER_H

#include "store/store.h"

#include <pthread.h>

struct committer {
  struct store *store;       /* borrowed */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct store_batch *batch; /* handed over, not yet committed, or NULL */
  int done;                  /* the last batch handed over is committed (or failed) */
  int rc;                    /* its result */
  char *msg;                 /* its failure message */
  double seconds;            /* how long its commit took */
  int quit;
  int donefd;                /* eventfd: readable when `done` was set */
};

int spe__committer_start(struct committer *c, struct store *st);
/* Hand a batch over; it must not be touched until the result is taken. */
void spe__committer_submit(struct committer *c, struct store_batch *b);
/* After donefd became readable: the commit's result (0 or SPE_ESTORE), its
 * message (malloc'd, for the caller) and how many seconds it took. Drains
 * donefd. */
int spe__committer_result(struct committer *c, char **msg, double *seconds);
/* Stop the thread (no batch may be in flight). */
void spe__committer_stop(struct committer *c);

#endif
