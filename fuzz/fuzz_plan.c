/*
 * Fuzz target: the planner (spe__plan_build) on graphs decoded from the bytes.
 *
 * Input: byte 0 is the number of nodes n (0..255), byte 1 a set of mode bits,
 * and every following pair of bytes (u, v) an edge u -> v, both taken modulo n.
 * Duplicate edges and self-loops are kept: the planner must cope with both.
 * Mode bits:
 *   1  orient every edge from the lower node to the higher and drop
 *      self-loops: an acyclic graph, so that large graphs without a cycle
 *      come up often (random edges almost always close one);
 *   2  keep each target byte as it is (not modulo n): a target >= n must be
 *      refused with SPE_EINVAL;
 *   4  also plan without asking for the cycle (cycle == NULL);
 *   8  make the offsets decrease once: SPE_EINVAL.
 *
 * Properties, against a plain recursive depth-first search:
 *  - a cycle is reported (SPE_EJOB) exactly when the graph has one; the cycle
 *    returned is a real one: every step is an edge, it ends where it starts,
 *    it visits no node twice, and it starts at its lowest node;
 *  - otherwise the order is a permutation in which every edge goes forwards,
 *    level[v] is 0 without predecessors and else 1 + the highest level of
 *    its predecessors (so level[v] > level[u] for every edge u -> v), and the
 *    level offsets cut the order into the levels, each in node index order.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"
#include "spe.h"

enum { M_FORWARD = 1, M_RAW_TARGETS = 2, M_NO_CYCLE_OUT = 4, M_BAD_OFFSETS = 8 };

struct graph {
  uint32_t n, nedges;
  uint32_t off[257]; /* n + 1 entries */
  uint32_t *succ;
  int bad_target, bad_offsets; /* what makes the graph invalid (SPE_EINVAL) */
};

/* Edges grouped by source, each group in input order (a counting sort). */
static void decode(const uint8_t *data, size_t size, struct graph *g) {
  memset(g, 0, sizeof *g);
  g->n = size > 0 ? data[0] : 0;
  unsigned mode = size > 1 ? data[1] : 0;
  size_t pairs = g->n > 0 && size > 2 ? (size - 2) / 2 : 0;
  const uint8_t *p = data + 2;
  uint32_t *from = malloc((pairs + 1) * sizeof *from), *to = malloc((pairs + 1) * sizeof *to);
  g->succ = malloc((pairs + 1) * sizeof *g->succ);
  FUZZ_CHECK(from && to && g->succ, "out of memory");
  for (size_t k = 0; k < pairs; k++) {
    uint32_t u = p[2 * k] % g->n, v = mode & M_RAW_TARGETS ? p[2 * k + 1] : p[2 * k + 1] % g->n;
    if (mode & M_FORWARD) {
      if (u == v) continue;
      if (u > v && v < g->n) {
        uint32_t t = u;
        u = v;
        v = t;
      }
    }
    g->bad_target |= v >= g->n;
    from[g->nedges] = u;
    to[g->nedges++] = v;
  }
  for (uint32_t e = 0; e < g->nedges; e++) g->off[from[e] + 1]++;
  for (uint32_t i = 0; i < g->n; i++) g->off[i + 1] += g->off[i];
  uint32_t next[257];
  memcpy(next, g->off, sizeof next);
  for (uint32_t e = 0; e < g->nedges; e++) g->succ[next[from[e]]++] = to[e];
  free(from);
  free(to);
  if ((mode & M_BAD_OFFSETS) && g->n >= 1) {
    /* The last node's range ends before it starts; the edge count stays. */
    g->off[g->n - 1] = g->off[g->n] + 1;
    g->bad_offsets = 1;
  }
}

enum { WHITE, GREY, BLACK };

static int dfs_finds_cycle(const struct graph *g, uint8_t *color, uint32_t u) {
  color[u] = GREY;
  for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
    uint32_t v = g->succ[e];
    if (color[v] == GREY) return 1;
    if (color[v] == WHITE && dfs_finds_cycle(g, color, v)) return 1;
  }
  color[u] = BLACK;
  return 0;
}

static int has_cycle(const struct graph *g) {
  uint8_t color[256] = {0};
  for (uint32_t u = 0; u < g->n; u++)
    if (color[u] == WHITE && dfs_finds_cycle(g, color, u)) return 1;
  return 0;
}

static int has_edge(const struct graph *g, uint32_t u, uint32_t v) {
  for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++)
    if (g->succ[e] == v) return 1;
  return 0;
}

static void check_cycle(const struct graph *g, const uint32_t *c, uint32_t len) {
  FUZZ_CHECK(c != NULL && len >= 2, "cycle missing or too short (%u)", len);
  FUZZ_CHECK(c[0] == c[len - 1], "cycle does not end where it starts");
  uint8_t seen[256] = {0};
  for (uint32_t k = 0; k + 1 < len; k++) {
    FUZZ_CHECK(c[k] < g->n, "cycle node %u beyond %u nodes", c[k], g->n);
    FUZZ_CHECK(!seen[c[k]], "cycle visits node %u twice", c[k]);
    seen[c[k]] = 1;
    FUZZ_CHECK(c[k] >= c[0], "cycle does not start at its lowest node");
    FUZZ_CHECK(has_edge(g, c[k], c[k + 1]), "cycle step %u -> %u is no edge", c[k], c[k + 1]);
  }
}

static void check_plan(const struct graph *g, const struct plan *p) {
  uint32_t n = g->n;
  FUZZ_CHECK(p->n == n, "plan of %u nodes for %u", p->n, n);
  uint32_t pos[256], expect[256] = {0}, top = 0;
  memset(pos, 0xff, sizeof pos);
  for (uint32_t k = 0; k < n; k++) {
    FUZZ_CHECK(p->order[k] < n && pos[p->order[k]] == UINT32_MAX, "order is no permutation");
    pos[p->order[k]] = k;
  }
  for (uint32_t u = 0; u < n; u++) {
    for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
      uint32_t v = g->succ[e];
      FUZZ_CHECK(pos[u] < pos[v], "edge %u -> %u goes backwards in the order", u, v);
      FUZZ_CHECK(p->level[v] > p->level[u], "edge %u -> %u: level %u <= %u", u, v, p->level[v],
                 p->level[u]);
      if (expect[v] < p->level[u] + 1) expect[v] = p->level[u] + 1;
    }
  }
  for (uint32_t v = 0; v < n; v++) {
    FUZZ_CHECK(p->level[v] == expect[v], "node %u: level %u, expected %u", v, p->level[v],
               expect[v]);
    if (p->level[v] > top) top = p->level[v];
  }
  FUZZ_CHECK(p->nlevels == (n == 0 ? 0 : top + 1), "%u levels, expected %u", p->nlevels,
             n == 0 ? 0 : top + 1);
  FUZZ_CHECK(p->level_off[0] == 0 && p->level_off[p->nlevels] == n, "level offsets do not span");
  for (uint32_t k = 0; k < p->nlevels; k++) {
    FUZZ_CHECK(p->level_off[k] < p->level_off[k + 1], "level %u is empty", k);
    for (uint32_t at = p->level_off[k]; at < p->level_off[k + 1]; at++) {
      FUZZ_CHECK(p->level[p->order[at]] == k, "order[%u] is not on level %u", at, k);
      FUZZ_CHECK(at == p->level_off[k] || p->order[at - 1] < p->order[at],
                 "level %u not in index order", k);
    }
  }
}

void spe__fuzz_plan_check(const uint8_t *data, size_t size) {
  struct graph g;
  decode(data, size, &g);
  unsigned mode = size > 1 ? data[1] : 0;
  struct plan p;
  uint32_t *cycle = (uint32_t *)1, len = 7;
  int rc = spe__plan_build(g.n, g.off, g.succ, &p, &cycle, &len);
  if (g.bad_target || g.bad_offsets) {
    FUZZ_CHECK(rc == SPE_EINVAL, "invalid graph: %d, not SPE_EINVAL", rc);
    FUZZ_CHECK(cycle == NULL && len == 0 && p.order == NULL, "invalid graph left output");
  } else if (has_cycle(&g)) {
    FUZZ_CHECK(rc == SPE_EJOB, "graph with a cycle: %d, not SPE_EJOB", rc);
    check_cycle(&g, cycle, len);
    FUZZ_CHECK(p.order == NULL && p.level == NULL, "a refused plan left arrays");
  } else {
    FUZZ_CHECK(rc == 0, "acyclic graph refused (%d)", rc);
    FUZZ_CHECK(cycle == NULL && len == 0, "acyclic graph with a cycle");
    check_plan(&g, &p);
  }
  spe__plan_free(&p);
  free(cycle);
  if (mode & M_NO_CYCLE_OUT) {
    int again = spe__plan_build(g.n, g.off, g.succ, &p, NULL, NULL);
    FUZZ_CHECK(again == rc, "without the cycle output: %d, with it %d", again, rc);
    spe__plan_free(&p);
  }
  free(g.succ);
}

SPE_FUZZ_ENTRY(spe__fuzz_plan_check)
