/* The ready queue: tasks whose upstream tasks have all succeeded, waiting for a
 * worker. A 4-ary min-heap on (rank within the job, job order): among ready
 * tasks, those named in `priority` start first, then the others in file order;
 * between jobs, the lower rank first, then the job submitted first. */
#ifndef SPE_ENGINE_READY_QUEUE_H
#define SPE_ENGINE_READY_QUEUE_H

#include <stdint.h>

struct job_run;

/* An entry's `task` for a job's cursor over its root tasks (engine.h's
 * job_run.roots): one entry stands for all of them, keyed by the next. */
#define READY_CURSOR UINT32_MAX

struct ready_entry {
  uint64_t key;         /* rank << 32 | job order */
  struct job_run *job;
  uint32_t task;        /* or READY_CURSOR */
  uint32_t round;       /* the commit set (round_set.gen) whose commit makes
                           the task's inputs durable; 0 when they already are */
};

struct ready_queue {
  struct ready_entry *heap;
  uint32_t len, cap;
};

void spe__ready_init(struct ready_queue *q);
void spe__ready_free(struct ready_queue *q);
int spe__ready_push(struct ready_queue *q, struct job_run *job, uint32_t task,
                    uint32_t rank, uint32_t job_order, uint32_t round);
/* The first entry, left in the queue; NULL when the queue is empty. */
const struct ready_entry *spe__ready_peek(const struct ready_queue *q);
/* Give the first entry a new rank (not lower) and put it back in its place. */
void spe__ready_rekey_top(struct ready_queue *q, uint32_t rank);
/* Remove the first entry into *out; 0 when the queue is empty. */
int spe__ready_pop(struct ready_queue *q, struct ready_entry *out);
/* Remove every entry for which drop(entry, ctx) is non-zero (prune: entries of
 * jobs about to be freed). O(length). */
void spe__ready_drop(struct ready_queue *q, int (*drop)(const struct ready_entry *, void *),
                     void *ctx);

#endif
