/* The engine's ready queue: pops in (rank, job order) order, also after
 * entries are dropped from the middle of the heap (prune). */
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_drop_keeps_the_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
