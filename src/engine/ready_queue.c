#include "engine/ready_queue.h"

#include "spe.h"

#include <stdlib.h>

/* Children per node. A heap of a hundred thousand ready tasks (100 random
 * DAGs) is deeper than the caches: four children per node halve the levels a
 * pop walks down, and the four sit side by side (bench_functions dag). */
#define ARITY 4

void spe__ready_init(struct ready_queue *q) {
  q->heap = NULL;
  q->len = q->cap = 0;
}

void spe__ready_free(struct ready_queue *q) {
  free(q->heap);
  spe__ready_init(q);
}

int spe__ready_push(struct ready_queue *q, struct job_run *job, uint32_t task,
                    uint32_t rank, uint32_t job_order, uint32_t round) {
  if (q->len == q->cap) {
    uint32_t cap = q->cap ? q->cap * 2 : 256;
    struct ready_entry *h = realloc(q->heap, cap * sizeof *h);
    if (h == NULL) return SPE_ENOMEM;
    q->heap = h;
    q->cap = cap;
  }
  struct ready_entry e = {((uint64_t)rank << 32) | job_order, job, task, round};
  uint32_t i = q->len++;
  while (i > 0) {
    uint32_t parent = (i - 1) / ARITY;
    if (q->heap[parent].key <= e.key) break;
    q->heap[i] = q->heap[parent];
    i = parent;
  }
  q->heap[i] = e;
  return 0;
}

/* Put `last` at hole i (the root of a sub-heap) and sift it down. */
static void sift_down(struct ready_queue *q, uint32_t i, struct ready_entry last) {
  for (;;) {
    uint32_t first = ARITY * i + 1;
    if (first >= q->len) break;
    uint32_t end = first + ARITY < q->len ? first + ARITY : q->len, child = first;
    for (uint32_t c = first + 1; c < end; c++)
      if (q->heap[c].key < q->heap[child].key) child = c;
    if (last.key <= q->heap[child].key) break;
    q->heap[i] = q->heap[child];
    i = child;
  }
  q->heap[i] = last;
}

const struct ready_entry *spe__ready_peek(const struct ready_queue *q) {
  return q->len > 0 ? &q->heap[0] : NULL;
}

void spe__ready_rekey_top(struct ready_queue *q, uint32_t rank) {
  struct ready_entry top = q->heap[0];
  top.key = ((uint64_t)rank << 32) | (top.key & 0xffffffffu);
  sift_down(q, 0, top);
}

int spe__ready_pop(struct ready_queue *q, struct ready_entry *out) {
  if (q->len == 0) return 0;
  *out = q->heap[0];
  struct ready_entry last = q->heap[--q->len];
  if (q->len > 0) sift_down(q, 0, last);
  return 1;
}

void spe__ready_drop(struct ready_queue *q, int (*drop)(const struct ready_entry *, void *),
                     void *ctx) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < q->len; i++)
    if (!drop(&q->heap[i], ctx)) q->heap[n++] = q->heap[i];
  if (n == q->len) return;
  q->len = n;
  /* Heapify bottom-up: each parent sifted down, from the last one. */
  for (uint32_t i = n > 1 ? (n - 2) / ARITY + 1 : 0; i-- > 0;) sift_down(q, i, q->heap[i]);
}
