/* The engine's ready queue: pops in (rank, job order) order, with pushes,
 * pops and new ranks mixed, and after entries are dropped from the middle
 * of the heap (prune). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/ready_queue.h"

#include <stdlib.h>

static int drop_odd_tasks(const struct ready_entry *e, void *ctx) {
  ++*(int *)ctx;
  return e->task % 2 == 1;
}

static void test_drop_keeps_the_order(void **state) {
  struct ready_queue q;
  spe__ready_init(&q);
  /* Keys out of order, 1000 of them, the task number being the key. */
  for (uint32_t i = 0; i < 1000; i++) {
    uint32_t k = (i * 7919) % 1000;
    assert_int_equal(spe__ready_push(&q, NULL, k, 0, k, 0), 0);
  }
  int asked = 0;
  spe__ready_drop(&q, drop_odd_tasks, &asked);
  assert_int_equal(asked, 1000);
  assert_int_equal(q.len, 500);
  struct ready_entry e;
  for (uint32_t want = 0; want < 1000; want += 2) {
    assert_true(spe__ready_pop(&q, &e));
    assert_int_equal(e.task, want);
  }
  assert_false(spe__ready_pop(&q, &e));
  /* Dropping nothing, and from an empty queue, is fine. */
  spe__ready_drop(&q, drop_odd_tasks, &asked);
  assert_int_equal(spe__ready_push(&q, NULL, 4, 0, 4, 0), 0);
  spe__ready_drop(&q, drop_odd_tasks, &asked);
  assert_true(spe__ready_pop(&q, &e));
  assert_int_equal(e.task, 4);
  spe__ready_free(&q);
}

/* Pushes, pops and new ranks for the first entry, mixed at random, against a
 * plain array: every pop is the smallest (rank, job order) present. */
static void test_pops_the_smallest(void **state) {
  struct ready_queue q;
  spe__ready_init(&q);
  uint64_t ref[4000];
  uint32_t nref = 0, seed = 12345;
  for (int step = 0; step < 20000; step++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t r = seed >> 8, op = r % 8;
    if (op < 4 && nref < 4000) {
      uint32_t rank = r % 97, order = (r / 97) % 13;
      assert_int_equal(spe__ready_push(&q, NULL, rank, rank, order, 0), 0);
      ref[nref++] = (uint64_t)rank << 32 | order;
      continue;
    }
    if (nref == 0) {
      assert_null(spe__ready_peek(&q));
      continue;
    }
    uint32_t min = 0;
    for (uint32_t i = 1; i < nref; i++)
      if (ref[i] < ref[min]) min = i;
    assert_int_equal(spe__ready_peek(&q)->key, ref[min]);
    if (op == 7) { /* a cursor moving on: the same entry, a higher rank */
      uint32_t rank = (uint32_t)(ref[min] >> 32) + 1 + r % 5;
      spe__ready_rekey_top(&q, rank);
      ref[min] = (uint64_t)rank << 32 | (ref[min] & 0xffffffffu);
      continue;
    }
    struct ready_entry e;
    assert_true(spe__ready_pop(&q, &e));
    assert_int_equal(e.key, ref[min]);
    ref[min] = ref[--nref];
  }
  assert_int_equal(q.len, nref);
  spe__ready_free(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_drop_keeps_the_order),
      cmocka_unit_test(test_pops_the_smallest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
