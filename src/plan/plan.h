/*
 * The planner: topological order and levels of a dependency graph by Kahn's
 * algorithm, and the path of a cycle when there is one. O(nodes + edges).
 *
 * The graph is given in CSR form (see job_def): the successors of node i are
 * succ[off[i] .. off[i+1]). The planner knows nothing about jobs, so that it can be
 * tested and fuzzed on bare graphs.
 */
#ifndef SPE_PLAN_PLAN_H
#define SPE_PLAN_PLAN_H

#include <stdint.h>

struct plan {
  uint32_t n;         /* number of nodes */
  uint32_t *order;    /* n node indexes: a topological order (every edge goes
                         forwards), level by level, nodes of one level in index
                         order */
  uint32_t *level;    /* level[i]: 0 for nodes without predecessors, else 1 + the
                         highest level of its predecessors */
  uint32_t nlevels;   /* number of levels (1 + the highest level) */
  uint32_t *level_off; /* nlevels + 1 offsets into `order`: level k is
                          order[level_off[k] .. level_off[k+1]) */
};

/* Plan the graph. Returns 0 and fills *out (free with spe__plan_free), or, if the
 * graph has a cycle, returns SPE_EJOB and, if cycle is not NULL, sets *cycle to a
 * malloc'd array of *cycle_len node indexes a0, a1, ..., ak with an edge from each
 * to the next and ak == a0 (a self-loop gives [a, a]). SPE_ENOMEM when out of
 * memory; SPE_EINVAL when an edge names a node >= n or the offsets decrease. */
int spe__plan_build(uint32_t n, const uint32_t *off, const uint32_t *succ,
                    struct plan *out, uint32_t **cycle, uint32_t *cycle_len);

/* Free what spe__plan_build put in *p (not p itself). */
void spe__plan_free(struct plan *p);

#endif
