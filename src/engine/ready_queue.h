/* The ready queue: tasks whose upstream tasks have all succeeded, waiting for a
 * worker. Within a job they are taken in rank order: those named in
 * `priority` first, then the others in file order. Between jobs, by blocks of
 * SPE_READY_BLOCK ranks: the job whose first ready task is in the lower block
 * first, then the job submitted first - so a job started later, whose first
 * tasks have low ranks, does not wait behind a big one (at most behind the
 * tasks of one block of each job before it), and the first job takes its
 * ready tasks of a block in one go rather than one each in turn with the
 * others (100 random DAGs: a task cost a trip through the heap).
 *
 * Two levels. Each job keeps its ready tasks as a bitmap by rank (struct
 * ready_set: a bit a task, and a summary bit a 64-bit word), so that queueing
 * a task sets a bit and the job's next task is its next set bit - a job of a
 * million roots costs 125 KiB, not a million entries. A heap orders the jobs
 * that have ready tasks by (block of their first ready rank, job order): as
 * many entries as such jobs, small enough to stay in cache, where one heap of
 * every ready task (135,000 for 100 random DAGs) walked its levels out of
 * cache.
 *
 * Ranks are 0..ntasks-1 within a job (struct job_def). */
#ifndef SPE_ENGINE_READY_QUEUE_H
#define SPE_ENGINE_READY_QUEUE_H

#include <stdint.h>

/* Ranks per block of the order between jobs (a word of the bitmap). */
#define SPE_READY_BLOCK 64

struct job_run;

/* One job's ready tasks. */
struct ready_set {
  uint64_t *bits;          /* bit r: the task of rank r is ready */
  uint64_t *sum;           /* bit w: bits[w] is not 0 */
  uint32_t nwords, nsum;
  uint32_t count;          /* bits set */
  uint32_t first;          /* the lowest rank set, while count > 0 */
  uint32_t pos;            /* index in the queue's heap while count > 0 */
  uint32_t order;          /* the job's order */
  const uint32_t *by_rank; /* the task of each rank (borrowed); NULL when
                              rank and task are the same */
  struct job_run *job;     /* what the queue hands back */
};

struct ready_heap_entry {
  uint64_t key;            /* the block of the set's first ready rank << 32 |
                              job order */
  struct ready_set *set;
};

struct ready_queue {
  struct ready_heap_entry *heap; /* the sets with ready tasks */
  uint32_t len, cap;
  uint64_t count;          /* ready tasks, all jobs */
};

/* A set for a job of ntasks tasks; SPE_ENOMEM or 0. */
int spe__ready_set_init(struct ready_set *s, struct job_run *job, uint32_t ntasks,
                        uint32_t order, const uint32_t *by_rank);
/* Free a set that is in no queue (spe__ready_remove first). */
void spe__ready_set_free(struct ready_set *s);

void spe__ready_init(struct ready_queue *q);
void spe__ready_free(struct ready_queue *q);
/* Queue the task of rank `rank` of set s (queued already: nothing changes).
 * SPE_ENOMEM only when the set joins the heap and the heap cannot grow. */
int spe__ready_push(struct ready_queue *q, struct ready_set *s, uint32_t rank);
/* Queue the tasks of ranks 64 * w + i for every bit i of mask at once (those
 * queued already stay so). SPE_ENOMEM as for spe__ready_push. */
int spe__ready_push_word(struct ready_queue *q, struct ready_set *s, uint32_t w, uint64_t mask);
/* The first task (left in the queue): its set, and the task in *task; NULL
 * when the queue is empty. */
struct ready_set *spe__ready_peek(const struct ready_queue *q, uint32_t *task);
/* Remove the first task (the queue must not be empty). */
void spe__ready_pop(struct ready_queue *q);
/* Take (remove) up to max tasks at once, the first ones, all of the first set:
 * as many of its tasks as come before every other set's first. Their tasks
 * go to tasks[], in order; returns how many (0: the queue is empty). The set
 * is the one spe__ready_peek() returned. */
uint32_t spe__ready_take(struct ready_queue *q, uint32_t *tasks, uint32_t max);
/* Remove every task of set s (a cancelled or pruned job). */
void spe__ready_remove(struct ready_queue *q, struct ready_set *s);

#endif
