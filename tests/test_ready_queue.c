/* The engine's ready queue: pops and takes in (block of ranks, job order,
 * rank) order
 * whatever the mix of pushes (one or a word's worth), pops, takes of many and
 * jobs removed whole; far-apart ranks in a big job; the task of a rank in a
 * job with priorities. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/ready_queue.h"

#include <stdlib.h>
#include <string.h>

/* Jobs of 1, 130 and 4,500 tasks (more than 64 words: the summary is used),
 * given as job orders 7, 3 and 5; the job pointers are stand-ins. */
#define NSETS 3
static const uint32_t sizes[NSETS] = {1, 130, 4500};
static const uint32_t orders[NSETS] = {7, 3, 5};

/* The order of the queue: (block of 64 ranks, job order, rank). */
static uint64_t ref_key(int s, uint32_t k) {
  return (uint64_t)(k / SPE_READY_BLOCK) << 40 | (uint64_t)orders[s] << 20 | k;
}

/* The reference's first: the set and rank of the smallest key queued, or
 * -1. */
static int ref_first(uint8_t *ready[NSETS], uint32_t *rank) {
  uint64_t best = UINT64_MAX;
  int bi = -1;
  for (int s = 0; s < NSETS; s++)
    for (uint32_t k = 0; k < sizes[s]; k++)
      if (ready[s][k] && ref_key(s, k) < best) {
        best = ref_key(s, k);
        bi = s;
        *rank = k;
      }
  return bi;
}

static void test_pops_the_smallest(void **state) {
  struct ready_queue q;
  struct ready_set sets[NSETS];
  uint8_t *ready[NSETS]; /* the reference: which ranks are queued */
  spe__ready_init(&q);
  for (int i = 0; i < NSETS; i++) {
    assert_int_equal(spe__ready_set_init(&sets[i], (struct job_run *)&sets[i], sizes[i],
                                         orders[i], NULL),
                     0);
    ready[i] = calloc(sizes[i], 1);
  }
  uint64_t count = 0;
  uint32_t seed = 12345;
  for (int step = 0; step < 6000; step++) {
    seed = seed * 1103515245u + 12345u;
    uint32_t r = seed >> 8, op = r % 16, i = (r / 16) % NSETS;
    if (op < 8) { /* push, sometimes a task queued already */
      uint32_t rank = (r / 64) % sizes[i];
      assert_int_equal(spe__ready_push(&q, &sets[i], rank), 0);
      count += !ready[i][rank];
      ready[i][rank] = 1;
    } else if (op == 8) { /* a word's worth at once, some queued already */
      uint32_t w = (r / 64) % ((sizes[i] + 63) / 64);
      seed = seed * 1103515245u + 12345u;
      uint64_t mask = ((uint64_t)seed << 32 | (seed * 2654435761u)) & ((uint64_t)r * 0x9E3779B97F4A7C15ull);
      if (sizes[i] - w * 64 < 64) mask &= (1ull << (sizes[i] - w * 64)) - 1;
      assert_int_equal(spe__ready_push_word(&q, &sets[i], w, mask), 0);
      for (uint32_t b = 0; b < 64; b++)
        if (mask >> b & 1) {
          count += !ready[i][w * 64 + b];
          ready[i][w * 64 + b] = 1;
        }
    } else if (op == 10 || op == 11) { /* take many: the first ones, of one set */
      uint32_t max = 1 + (r / 64) % 100, got[100], rank;
      uint32_t n = spe__ready_take(&q, got, max);
      int first = ref_first(ready, &rank);
      assert_int_equal(n == 0, first < 0);
      for (uint32_t k = 0; k < n; k++) {
        int bi = ref_first(ready, &rank);
        assert_int_equal(bi, first); /* every one of the first set */
        assert_int_equal(got[k], rank);
        ready[bi][rank] = 0;
        count--;
      }
      /* It stopped at max, at an empty set, or at another set's first. */
      if (n > 0 && n < max) assert_true(ref_first(ready, &rank) != first);
    } else if (op == 9 && step % 7 == 0) { /* a job removed whole */
      for (uint32_t k = 0; k < sizes[i]; k++) count -= ready[i][k];
      memset(ready[i], 0, sizes[i]);
      spe__ready_remove(&q, &sets[i]);
    } else { /* the first is the smallest (rank, order) of the reference */
      uint32_t best;
      int bi = ref_first(ready, &best);
      uint32_t task = UINT32_MAX;
      struct ready_set *top = spe__ready_peek(&q, &task);
      if (bi < 0) {
        assert_null(top);
        continue;
      }
      assert_ptr_equal(top, &sets[bi]);
      assert_ptr_equal(top->job, (struct job_run *)&sets[bi]);
      assert_int_equal(task, best);
      spe__ready_pop(&q);
      ready[bi][task] = 0;
      count--;
    }
    assert_int_equal(q.count, count);
  }
  for (int i = 0; i < NSETS; i++) {
    spe__ready_remove(&q, &sets[i]);
    spe__ready_set_free(&sets[i]);
    free(ready[i]);
  }
  assert_int_equal(q.count, 0);
  uint32_t task;
  assert_null(spe__ready_peek(&q, &task));
  spe__ready_free(&q);
}

/* Two ready tasks 300,000 ranks apart: the next after the first is found
 * through the summary words. */
static void test_far_apart(void **state) {
  struct ready_queue q;
  struct ready_set s;
  spe__ready_init(&q);
  assert_int_equal(spe__ready_set_init(&s, NULL, 1000000, 0, NULL), 0);
  static const uint32_t ranks[] = {999999, 5, 300005, 262144, 262143};
  for (size_t i = 0; i < sizeof ranks / sizeof *ranks; i++)
    assert_int_equal(spe__ready_push(&q, &s, ranks[i]), 0);
  static const uint32_t want[] = {5, 262143, 262144, 300005, 999999};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    uint32_t task;
    assert_ptr_equal(spe__ready_peek(&q, &task), &s);
    assert_int_equal(task, want[i]);
    spe__ready_pop(&q);
  }
  uint32_t task;
  assert_null(spe__ready_peek(&q, &task));
  spe__ready_set_free(&s);
  spe__ready_free(&q);
}

/* With priorities, ranks are not tasks: the queue hands back the task. */
static void test_task_of_a_rank(void **state) {
  struct ready_queue q;
  struct ready_set s;
  static const uint32_t by_rank[] = {3, 0, 2, 1}; /* rank 0 is task 3, ... */
  spe__ready_init(&q);
  assert_int_equal(spe__ready_set_init(&s, NULL, 4, 0, by_rank), 0);
  assert_int_equal(spe__ready_push(&q, &s, 2), 0); /* task 2 */
  assert_int_equal(spe__ready_push(&q, &s, 0), 0); /* task 3 */
  uint32_t task;
  assert_non_null(spe__ready_peek(&q, &task));
  assert_int_equal(task, 3);
  spe__ready_pop(&q);
  assert_non_null(spe__ready_peek(&q, &task));
  assert_int_equal(task, 2);
  spe__ready_remove(&q, &s);
  assert_null(spe__ready_peek(&q, &task));
  spe__ready_set_free(&s);
  spe__ready_free(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pops_the_smallest),
      cmocka_unit_test(test_far_apart),
      cmocka_unit_test(test_task_of_a_rank),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
