/* The planner on bare graphs: order, levels, and cycles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan/plan.h"
#include "spe.h"

/* A graph in CSR form built from an edge list. */
struct graph {
  uint32_t n;
  uint32_t *off;
  uint32_t *succ;
};

static struct graph graph_new(uint32_t n, const uint32_t (*edges)[2], size_t nedges) {
  struct graph g = {n, calloc(n + 1, sizeof(uint32_t)), calloc(nedges + 1, sizeof(uint32_t))};
  for (size_t e = 0; e < nedges; e++) g.off[edges[e][0] + 1]++;
  for (uint32_t i = 0; i < n; i++) g.off[i + 1] += g.off[i];
  uint32_t *next = malloc((n + 1) * sizeof *next);
  memcpy(next, g.off, (n + 1) * sizeof *next);
  for (size_t e = 0; e < nedges; e++) g.succ[next[edges[e][0]]++] = edges[e][1];
  free(next);
  return g;
}

static void graph_free(struct graph *g) {
  free(g->off);
  free(g->succ);
}

/* Everything a correct plan must satisfy, checked against the graph itself. */
static void assert_valid_plan(const struct graph *g, const struct plan *p) {
  assert_int_equal(p->n, g->n);
  uint32_t *pos = malloc((g->n + 1) * sizeof *pos);
  uint8_t *seen = calloc(g->n + 1, 1);
  for (uint32_t k = 0; k < g->n; k++) {
    assert_true(p->order[k] < g->n);
    assert_false(seen[p->order[k]]);
    seen[p->order[k]] = 1;
    pos[p->order[k]] = k;
  }
  /* Levels: offsets cover the order, each level in index order, each node in
   * the level its level[] says. */
  assert_int_equal(p->level_off[0], 0);
  assert_int_equal(p->level_off[p->nlevels], g->n);
  for (uint32_t k = 0; k < p->nlevels; k++) {
    assert_true(p->level_off[k] < p->level_off[k + 1]);
    for (uint32_t at = p->level_off[k]; at < p->level_off[k + 1]; at++) {
      assert_int_equal(p->level[p->order[at]], k);
      if (at > p->level_off[k]) assert_true(p->order[at - 1] < p->order[at]);
    }
  }
  /* Every edge goes forwards, and each level is 1 + the highest predecessor
   * level (0 without predecessors). */
  uint32_t *want = calloc(g->n + 1, sizeof *want);
  for (uint32_t u = 0; u < g->n; u++) {
    for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
      uint32_t v = g->succ[e];
      assert_true(pos[u] < pos[v]);
      assert_true(p->level[v] > p->level[u]);
      if (want[v] < p->level[u] + 1) want[v] = p->level[u] + 1;
    }
  }
  for (uint32_t i = 0; i < g->n; i++) assert_int_equal(p->level[i], want[i]);
  free(want);
  free(seen);
  free(pos);
}

static int has_edge(const struct graph *g, uint32_t u, uint32_t v) {
  for (uint32_t e = g->off[u]; e < g->off[u + 1]; e++) {
    if (g->succ[e] == v) return 1;
  }
  return 0;
}

/* A cycle a0 -> ... -> ak == a0 along real edges, no node twice before the end. */
static void assert_valid_cycle(const struct graph *g, const uint32_t *c, uint32_t len) {
  assert_true(len >= 2);
  assert_int_equal(c[0], c[len - 1]);
  for (uint32_t k = 0; k + 1 < len; k++) {
    assert_true(has_edge(g, c[k], c[k + 1]));
    for (uint32_t j = 0; j < k; j++) assert_int_not_equal(c[j], c[k]);
  }
}

#define GRAPH(n, ...)                                                          \
  graph_new(n, (const uint32_t[][2]){__VA_ARGS__},                             \
            sizeof((const uint32_t[][2]){__VA_ARGS__}) / sizeof(uint32_t[2]))

static void plan_ok(struct graph *g, struct plan *p) {
  uint32_t *cycle = NULL, len = 0;
  assert_int_equal(spe__plan_build(g->n, g->off, g->succ, p, &cycle, &len), 0);
  assert_null(cycle);
  assert_valid_plan(g, p);
}

static void test_chain(void **state) {
  struct graph g = GRAPH(4, {2, 3}, {0, 1}, {1, 2});
  struct plan p;
  plan_ok(&g, &p);
  assert_int_equal(p.nlevels, 4);
  for (uint32_t k = 0; k < 4; k++) assert_int_equal(p.order[k], k);
  spe__plan_free(&p);
  graph_free(&g);
}

static void test_diamond(void **state) {
  struct graph g = GRAPH(4, {0, 2}, {0, 1}, {1, 3}, {2, 3});
  struct plan p;
  plan_ok(&g, &p);
  assert_int_equal(p.nlevels, 3);
  uint32_t want[] = {0, 1, 2, 3}, off[] = {0, 1, 3, 4};
  assert_memory_equal(p.order, want, sizeof want);
  assert_memory_equal(p.level_off, off, sizeof off);
  spe__plan_free(&p);
  graph_free(&g);
}

/* Nodes discovered in another order than their index still come out sorted
 * within their level. */
static void test_levels_in_index_order(void **state) {
  struct graph g = GRAPH(5, {4, 0}, {3, 1}, {2, 0}, {4, 1});
  struct plan p;
  plan_ok(&g, &p);
  uint32_t want[] = {2, 3, 4, 0, 1};
  assert_memory_equal(p.order, want, sizeof want);
  assert_int_equal(p.nlevels, 2);
  spe__plan_free(&p);
  graph_free(&g);
}

static void test_wide(void **state) {
  enum { N = 1000 };
  struct graph g = graph_new(N, NULL, 0);
  struct plan p;
  plan_ok(&g, &p);
  assert_int_equal(p.nlevels, 1);
  for (uint32_t k = 0; k < N; k++) assert_int_equal(p.order[k], k);
  spe__plan_free(&p);
  graph_free(&g);
}

static void test_empty_graph(void **state) {
  struct graph g = graph_new(0, NULL, 0);
  struct plan p;
  assert_int_equal(spe__plan_build(0, g.off, g.succ, &p, NULL, NULL), 0);
  assert_int_equal(p.nlevels, 0);
  assert_int_equal(p.level_off[0], 0);
  spe__plan_free(&p);
  graph_free(&g);
}

static void expect_cycle(struct graph *g, const uint32_t *want, uint32_t want_len) {
  struct plan p;
  uint32_t *cycle = NULL, len = 0;
  assert_int_equal(spe__plan_build(g->n, g->off, g->succ, &p, &cycle, &len), SPE_EJOB);
  assert_non_null(cycle);
  assert_valid_cycle(g, cycle, len);
  assert_int_equal(len, want_len);
  assert_memory_equal(cycle, want, want_len * sizeof *want);
  free(cycle);
  graph_free(g);
}

static void test_self_loop(void **state) {
  struct graph g = GRAPH(3, {0, 1}, {1, 1}, {1, 2});
  uint32_t want[] = {1, 1};
  expect_cycle(&g, want, 2);
}

static void test_two_cycle(void **state) {
  struct graph g = GRAPH(2, {1, 0}, {0, 1});
  uint32_t want[] = {0, 1, 0};
  expect_cycle(&g, want, 3);
}

/* A cycle behind an acyclic prefix, with an exit: 0 -> 1 -> 2 -> 3 -> 4 -> 2,
 * 4 -> 5. The cycle starts at its lowest node. */
static void test_cycle_behind_chain(void **state) {
  struct graph g = GRAPH(6, {0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 2}, {4, 5});
  uint32_t want[] = {2, 3, 4, 2};
  expect_cycle(&g, want, 4);
}

/* Node 0 is downstream of the cycle 1 <-> 2 and has no successor: a walk that
 * started there would dead-end. */
static void test_cycle_with_dead_end_below(void **state) {
  struct graph g = GRAPH(3, {2, 0}, {1, 2}, {2, 1});
  uint32_t want[] = {1, 2, 1};
  expect_cycle(&g, want, 3);
}

static void test_bad_edge(void **state) {
  struct graph g = GRAPH(2, {0, 2});
  struct plan p;
  assert_int_equal(spe__plan_build(g.n, g.off, g.succ, &p, NULL, NULL), SPE_EINVAL);
  graph_free(&g);
}

static uint32_t rnd(uint64_t *s) {
  *s = *s * 6364136223846793005u + 1442695040888963407u;
  return (uint32_t)(*s >> 33);
}

/* Random DAGs under a random labelling: the plan is valid. */
static void test_random_dags(void **state) {
  uint64_t seed = 42;
  for (int round = 0; round < 200; round++) {
    uint32_t n = 1 + rnd(&seed) % 60, m = rnd(&seed) % (3 * n + 1);
    uint32_t *label = malloc(n * sizeof *label);
    for (uint32_t i = 0; i < n; i++) label[i] = i;
    for (uint32_t i = n; i-- > 1;) {
      uint32_t j = rnd(&seed) % (i + 1), t = label[i];
      label[i] = label[j];
      label[j] = t;
    }
    uint32_t (*edges)[2] = malloc((m + 1) * sizeof *edges);
    uint32_t k = 0;
    for (uint32_t e = 0; e < m; e++) {
      uint32_t a = rnd(&seed) % n, b = rnd(&seed) % n;
      if (a == b) continue;
      if (a > b) {
        uint32_t t = a;
        a = b;
        b = t;
      }
      edges[k][0] = label[a];
      edges[k++][1] = label[b];
    }
    struct graph g = graph_new(n, (const uint32_t(*)[2])edges, k);
    struct plan p;
    plan_ok(&g, &p);
    spe__plan_free(&p);
    graph_free(&g);
    free(edges);
    free(label);
  }
}

/* Random graphs, some cyclic: a cycle is reported exactly when the transitive
 * closure has a node reaching itself, and it is a real cycle. */
static void test_random_graphs_cycles(void **state) {
  enum { MAXN = 24 };
  uint64_t seed = 7;
  int cyclic = 0, acyclic = 0;
  for (int round = 0; round < 400; round++) {
    uint32_t n = 1 + rnd(&seed) % MAXN, m = rnd(&seed) % (n + n / 2 + 1);
    uint32_t(*edges)[2] = malloc((m + 1) * sizeof *edges);
    uint8_t reach[MAXN][MAXN] = {{0}};
    for (uint32_t e = 0; e < m; e++) {
      edges[e][0] = rnd(&seed) % n;
      edges[e][1] = rnd(&seed) % n;
      reach[edges[e][0]][edges[e][1]] = 1;
    }
    for (uint32_t k = 0; k < n; k++)
      for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n; j++)
          if (reach[i][k] && reach[k][j]) reach[i][j] = 1;
    int has_cycle = 0;
    for (uint32_t i = 0; i < n; i++) has_cycle |= reach[i][i];
    struct graph g = graph_new(n, (const uint32_t(*)[2])edges, m);
    struct plan p;
    uint32_t *cycle = NULL, len = 0;
    int rc = spe__plan_build(n, g.off, g.succ, &p, &cycle, &len);
    if (has_cycle) {
      cyclic++;
      assert_int_equal(rc, SPE_EJOB);
      assert_valid_cycle(&g, cycle, len);
      free(cycle);
    } else {
      acyclic++;
      assert_int_equal(rc, 0);
      assert_valid_plan(&g, &p);
      spe__plan_free(&p);
    }
    graph_free(&g);
    free(edges);
  }
  /* Both kinds were exercised. */
  assert_true(cyclic > 50);
  assert_true(acyclic > 50);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chain),
      cmocka_unit_test(test_diamond),
      cmocka_unit_test(test_levels_in_index_order),
      cmocka_unit_test(test_wide),
      cmocka_unit_test(test_empty_graph),
      cmocka_unit_test(test_self_loop),
      cmocka_unit_test(test_two_cycle),
      cmocka_unit_test(test_cycle_behind_chain),
      cmocka_unit_test(test_cycle_with_dead_end_below),
      cmocka_unit_test(test_bad_edge),
      cmocka_unit_test(test_random_dags),
      cmocka_unit_test(test_random_graphs_cycles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
