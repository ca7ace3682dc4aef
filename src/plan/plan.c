/*
 * Kahn's algorithm with levels, and the path of a cycle when Kahn gets stuck.
 *
 * Levels come out of Kahn's algorithm directly: when a node's last predecessor is
 * removed, every predecessor has its final level, so the node's level (1 + the
 * highest of them) is known too. The order is then a counting sort of the nodes
 * by level, scanning nodes in index order, which keeps each level in index order
 * without a comparison sort: the whole plan costs O(nodes + edges).
 *
 * When some nodes are never removed, the graph has a cycle among them. A plain
 * walk along remaining successors could dead-end on a node that merely sits
 * downstream of a cycle (it stays unremoved, yet may have no unremoved
 * successor), so the cycle is found by a depth-first search restricted to the
 * unremoved nodes: the first edge back to a node on the search path closes a
 * cycle. Every node and edge is visited at most once, so this is O(nodes + edges)
 * too. The cycle is rotated to start at its lowest node index, so that the same
 * graph always reports the same cycle, starting from the earliest node.
 */
#include "plan/plan.h"

#include <stdlib.h>
#include <string.h>

#include "spe.h"

void spe__plan_free(struct plan *p) {
  if (p == NULL) return;
  free(p->order);
  free(p->level);
  free(p->level_off);
  memset(p, 0, sizeof *p);
}

static int check_targets(uint32_t n, const uint32_t *off, const uint32_t *succ) {
  for (uint32_t i = 0; i < n; i++) {
    if (off[i] > off[i + 1]) return SPE_EINVAL;
  }
  for (uint32_t e = 0; e < off[n]; e++) {
    if (succ[e] >= n) return SPE_EINVAL;
  }
  return 0;
}

/* Kahn's algorithm: fills level[] for every removed node and returns how many
 * nodes were removed (n when the graph is acyclic). `indeg` and `queue` are
 * scratch arrays of n entries; on return indeg[i] > 0 exactly for the nodes that
 * were not removed. */
static uint32_t kahn(uint32_t n, const uint32_t *off, const uint32_t *succ,
                     uint32_t *indeg, uint32_t *queue, uint32_t *level) {
  memset(indeg, 0, (size_t)n * sizeof *indeg);
  for (uint32_t e = 0; e < off[n]; e++) indeg[succ[e]]++;
  uint32_t head = 0, tail = 0;
  for (uint32_t i = 0; i < n; i++) {
    level[i] = 0;
    if (indeg[i] == 0) queue[tail++] = i;
  }
  while (head < tail) {
    uint32_t u = queue[head++];
    for (uint32_t e = off[u]; e < off[u + 1]; e++) {
      uint32_t v = succ[e];
      if (level[v] < level[u] + 1) level[v] = level[u] + 1;
      if (--indeg[v] == 0) queue[tail++] = v;
    }
  }
  return tail;
}

/* Fill the plan's level offsets and order from level[]: a counting sort by
 * level, stable in node index. */
static int sort_by_level(uint32_t n, struct plan *p) {
  uint32_t top = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (p->level[i] > top) top = p->level[i];
  }
  p->nlevels = n == 0 ? 0 : top + 1;
  p->level_off = calloc((size_t)p->nlevels + 1, sizeof *p->level_off);
  if (p->level_off == NULL) return SPE_ENOMEM;
  for (uint32_t i = 0; i < n; i++) p->level_off[p->level[i] + 1]++;
  for (uint32_t k = 0; k < p->nlevels; k++) p->level_off[k + 1] += p->level_off[k];
  /* Place each node at the next free slot of its level; the running slots need
   * their own copy of the level starts. */
  uint32_t *next = malloc(((size_t)p->nlevels + 1) * sizeof *next);
  if (next == NULL) return SPE_ENOMEM;
  memcpy(next, p->level_off, ((size_t)p->nlevels + 1) * sizeof *next);
  for (uint32_t i = 0; i < n; i++) p->order[next[p->level[i]]++] = i;
  free(next);
  return 0;
}

/* Node colours of the cycle search. Nodes Kahn removed are DONE from the start:
 * they cannot be on a cycle. */
enum { WHITE = 0, ON_PATH = 1, DONE = 2 };

/* Copy path[from .. depth) closed by its first node into a new array rotated to
 * start at its lowest index. */
static int close_cycle(const uint32_t *path, uint32_t from, uint32_t depth,
                       uint32_t **cycle, uint32_t *cycle_len) {
  uint32_t len = depth - from;
  uint32_t low = 0;
  for (uint32_t k = 1; k < len; k++) {
    if (path[from + k] < path[from + low]) low = k;
  }
  uint32_t *c = malloc(((size_t)len + 1) * sizeof *c);
  if (c == NULL) return SPE_ENOMEM;
  for (uint32_t k = 0; k < len; k++) c[k] = path[from + (low + k) % len];
  c[len] = c[0];
  *cycle = c;
  *cycle_len = len + 1;
  return 0;
}

/* Depth-first search over the nodes with remaining[i] != 0 (Kahn's leftover
 * in-degrees); at least one such node exists and every one of them has an
 * unremoved predecessor, so a cycle exists among them. `color` and `path` are
 * scratch arrays of n entries, `edge` holds the next edge to try per path
 * entry. */
static int find_cycle(uint32_t n, const uint32_t *off, const uint32_t *succ,
                      const uint32_t *remaining, uint32_t *scratch,
                      uint32_t **cycle, uint32_t *cycle_len) {
  uint8_t *color = malloc(n);
  if (color == NULL) return SPE_ENOMEM;
  uint32_t *path = scratch;
  uint32_t *edge = malloc((size_t)n * sizeof *edge);
  if (edge == NULL) {
    free(color);
    return SPE_ENOMEM;
  }
  for (uint32_t i = 0; i < n; i++) color[i] = remaining[i] ? WHITE : DONE;
  int rc = SPE_EINVAL; /* unreachable when the caller's premise holds */
  for (uint32_t root = 0; root < n && rc == SPE_EINVAL; root++) {
    if (color[root] != WHITE) continue;
    uint32_t depth = 0;
    path[depth] = root;
    edge[depth++] = off[root];
    color[root] = ON_PATH;
    while (depth > 0) {
      uint32_t u = path[depth - 1];
      if (edge[depth - 1] == off[u + 1]) {
        color[u] = DONE;
        depth--;
        continue;
      }
      uint32_t v = succ[edge[depth - 1]++];
      if (color[v] == WHITE) {
        color[v] = ON_PATH;
        path[depth] = v;
        edge[depth++] = off[v];
      } else if (color[v] == ON_PATH) {
        uint32_t from = depth - 1;
        while (path[from] != v) from--;
        rc = close_cycle(path, from, depth, cycle, cycle_len);
        break;
      }
    }
  }
  free(edge);
  free(color);
  return rc;
}

int spe__plan_build(uint32_t n, const uint32_t *off, const uint32_t *succ,
                    struct plan *out, uint32_t **cycle, uint32_t *cycle_len) {
  memset(out, 0, sizeof *out);
  if (cycle != NULL) *cycle = NULL;
  if (cycle_len != NULL) *cycle_len = 0;
  int rc = check_targets(n, off, succ);
  if (rc < 0) return rc;

  size_t bytes = ((size_t)n + 1) * sizeof(uint32_t);
  uint32_t *indeg = malloc(bytes);
  out->order = malloc(bytes);
  out->level = malloc(bytes);
  if (indeg == NULL || out->order == NULL || out->level == NULL) {
    rc = SPE_ENOMEM;
    goto done;
  }
  out->n = n;
  /* `order` serves as Kahn's queue; it is rewritten by level afterwards. */
  if (kahn(n, off, succ, indeg, out->order, out->level) == n) {
    rc = sort_by_level(n, out);
  } else {
    rc = SPE_EJOB;
    if (cycle != NULL) {
      uint32_t *c = NULL, clen = 0;
      int frc = find_cycle(n, off, succ, indeg, out->order, &c, &clen);
      if (frc == SPE_ENOMEM) rc = SPE_ENOMEM;
      *cycle = c;
      if (cycle_len != NULL) *cycle_len = clen;
    }
  }
done:
  free(indeg);
  if (rc < 0) spe__plan_free(out);
  return rc;
}
