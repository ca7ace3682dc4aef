#include "engine/ready_queue.h"

#include "spe.h"

#include <stdlib.h>
#include <string.h>

/* Children per node of the heap of jobs. */
#define ARITY 4

int spe__ready_set_init(struct ready_set *s, struct job_run *job, uint32_t ntasks,
                        uint32_t order, const uint32_t *by_rank) {
  memset(s, 0, sizeof *s);
  s->nwords = ntasks > 0 ? (ntasks + 63) / 64 : 1;
  s->nsum = (s->nwords + 63) / 64;
  s->bits = calloc(s->nwords, sizeof *s->bits);
  s->sum = calloc(s->nsum, sizeof *s->sum);
  if (s->bits == NULL || s->sum == NULL) {
    spe__ready_set_free(s);
    return SPE_ENOMEM;
  }
  s->order = order;
  s->by_rank = by_rank;
  s->job = job;
  return 0;
}

void spe__ready_set_free(struct ready_set *s) {
  free(s->bits);
  free(s->sum);
  s->bits = s->sum = NULL;
  s->count = 0;
}

void spe__ready_init(struct ready_queue *q) { memset(q, 0, sizeof *q); }

void spe__ready_free(struct ready_queue *q) {
  free(q->heap);
  spe__ready_init(q);
}

/* A set's place among the sets: the block of its first ready rank, then its
 * order (unique among sets). */
static uint64_t key_of(const struct ready_set *s, uint32_t rank) {
  return (uint64_t)(rank / SPE_READY_BLOCK) << 32 | s->order;
}

/* ---- the heap of sets ---- */

static void place(struct ready_queue *q, uint32_t i, struct ready_heap_entry e) {
  q->heap[i] = e;
  e.set->pos = i;
}

static void sift_up(struct ready_queue *q, uint32_t i, struct ready_heap_entry e) {
  while (i > 0) {
    uint32_t parent = (i - 1) / ARITY;
    if (q->heap[parent].key <= e.key) break;
    place(q, i, q->heap[parent]);
    i = parent;
  }
  place(q, i, e);
}

static void sift_down(struct ready_queue *q, uint32_t i, struct ready_heap_entry e) {
  for (;;) {
    uint32_t first = ARITY * i + 1;
    if (first >= q->len) break;
    uint32_t end = first + ARITY < q->len ? first + ARITY : q->len, child = first;
    for (uint32_t c = first + 1; c < end; c++)
      if (q->heap[c].key < q->heap[child].key) child = c;
    if (e.key <= q->heap[child].key) break;
    place(q, i, q->heap[child]);
    i = child;
  }
  place(q, i, e);
}

/* Take the entry at i out of the heap. */
static void remove_at(struct ready_queue *q, uint32_t i) {
  struct ready_heap_entry last = q->heap[--q->len];
  if (i == q->len) return;
  if (i > 0 && last.key < q->heap[(i - 1) / ARITY].key) sift_up(q, i, last);
  else sift_down(q, i, last);
}

/* ---- the bitmap of one set ---- */

/* The lowest set rank >= from, or UINT32_MAX. */
static uint32_t next_set(const struct ready_set *s, uint32_t from) {
  uint32_t w = from / 64;
  if (w >= s->nwords) return UINT32_MAX;
  uint64_t m = s->bits[w] & (~0ull << (from % 64));
  if (m != 0) return w * 64 + (uint32_t)__builtin_ctzll(m);
  w++; /* the next word with a bit, through the summary */
  for (uint32_t k = w / 64; k < s->nsum; k++) {
    uint64_t sm = s->sum[k];
    if (k == w / 64) sm &= ~0ull << (w % 64);
    if (sm != 0) {
      uint32_t word = k * 64 + (uint32_t)__builtin_ctzll(sm);
      return word * 64 + (uint32_t)__builtin_ctzll(s->bits[word]);
    }
  }
  return UINT32_MAX;
}

/* ---- the queue ---- */

/* Queue the new ranks of `mask` (none queued yet) in word w of set s: n of
 * them, the lowest `low`. */
static inline int add_bits(struct ready_queue *q, struct ready_set *s, uint32_t w, uint64_t mask,
                           uint32_t n, uint32_t low) {
  if (s->count == 0 && q->len == q->cap) {
    uint32_t cap = q->cap ? q->cap * 2 : 64;
    struct ready_heap_entry *h = realloc(q->heap, cap * sizeof *h);
    if (h == NULL) return SPE_ENOMEM;
    q->heap = h;
    q->cap = cap;
  }
  s->bits[w] |= mask;
  s->sum[w / 64] |= 1ull << (w % 64);
  q->count += n;
  uint32_t before = s->count;
  s->count += n;
  if (before == 0) {
    s->first = low;
    sift_up(q, q->len++, (struct ready_heap_entry){key_of(s, low), s});
  } else if (low < s->first) {
    s->first = low;
    struct ready_heap_entry e = {key_of(s, low), s};
    if (e.key < q->heap[s->pos].key) sift_up(q, s->pos, e);
  }
  return 0;
}

int spe__ready_push_word(struct ready_queue *q, struct ready_set *s, uint32_t w, uint64_t mask) {
  mask &= ~s->bits[w];
  if (mask == 0) return 0;
  uint32_t n = 0; /* counted here: a popcount is a library call on plain x86-64 */
  for (uint64_t m = mask; m != 0; m &= m - 1) n++;
  return add_bits(q, s, w, mask, n, w * 64 + (uint32_t)__builtin_ctzll(mask));
}

int spe__ready_push(struct ready_queue *q, struct ready_set *s, uint32_t rank) {
  uint64_t bit = 1ull << (rank % 64);
  if (s->bits[rank / 64] & bit) return 0;
  return add_bits(q, s, rank / 64, bit, 1, rank);
}

struct ready_set *spe__ready_peek(const struct ready_queue *q, uint32_t *task) {
  if (q->len == 0) return NULL;
  struct ready_set *s = q->heap[0].set;
  *task = s->by_rank ? s->by_rank[s->first] : s->first;
  return s;
}

/* The top set's first rank moved up to s->first: its key may have grown. */
static void top_moved(struct ready_queue *q, struct ready_set *s) {
  struct ready_heap_entry top = {key_of(s, s->first), s};
  if (top.key != q->heap[0].key) sift_down(q, 0, top); /* higher: it goes down */
}

void spe__ready_pop(struct ready_queue *q) {
  struct ready_set *s = q->heap[0].set;
  uint32_t rank = s->first, w = rank / 64;
  s->bits[w] &= ~(1ull << (rank % 64));
  if (s->bits[w] == 0) s->sum[w / 64] &= ~(1ull << (w % 64));
  q->count--;
  if (--s->count == 0) {
    remove_at(q, 0);
    return;
  }
  s->first = next_set(s, rank + 1);
  top_moved(q, s);
}

uint32_t spe__ready_take(struct ready_queue *q, uint32_t *tasks, uint32_t max) {
  if (q->len == 0 || max == 0) return 0;
  struct ready_set *s = q->heap[0].set;
  /* The first of every other set: the lowest key among the root's children.
   * While the top set's next key is below it, the top set stays first, and
   * its tasks are taken without touching the heap: up to rank `last`, the
   * end of the block before that key's (or of its block, for an earlier
   * set). */
  uint64_t bound = UINT64_MAX;
  for (uint32_t c = 1; c <= ARITY && c < q->len; c++)
    if (q->heap[c].key < bound) bound = q->heap[c].key;
  uint32_t last = UINT32_MAX;
  if (bound != UINT64_MAX) {
    uint32_t block = (uint32_t)(bound >> 32);
    last = s->order < (uint32_t)bound ? block * SPE_READY_BLOCK + (SPE_READY_BLOCK - 1)
                                       : block * SPE_READY_BLOCK - 1; /* block > 0 here */
  }
  uint32_t rank = s->first, n = 0;
  /* A word at a time: its bits from `rank` up to `last`, at most max - n. */
  while (n < max && rank != UINT32_MAX && rank <= last) {
    uint32_t w = rank / 64;
    uint64_t m = s->bits[w] & (~0ull << (rank % 64)), taken = 0;
    if (last / 64 == w && last % 64 != 63) m &= (2ull << (last % 64)) - 1;
    uint32_t k = 0; /* counted here: a popcount is a library call on plain x86-64 */
    while (m != 0 && n < max) {
      uint64_t low = m & -m;
      uint32_t r = w * 64 + (uint32_t)__builtin_ctzll(m);
      tasks[n++] = s->by_rank ? s->by_rank[r] : r;
      taken |= low;
      m ^= low;
      k++;
    }
    s->bits[w] &= ~taken;
    if (s->bits[w] == 0) s->sum[w / 64] &= ~(1ull << (w % 64));
    q->count -= k;
    s->count -= k;
    if (s->count == 0) {
      remove_at(q, 0);
      return n;
    }
    rank = next_set(s, w * 64); /* the lowest left in this word or after */
  }
  s->first = rank;
  top_moved(q, s);
  return n;
}

void spe__ready_remove(struct ready_queue *q, struct ready_set *s) {
  if (s->count == 0) return;
  q->count -= s->count;
  s->count = 0;
  memset(s->bits, 0, s->nwords * sizeof *s->bits);
  memset(s->sum, 0, s->nsum * sizeof *s->sum);
  remove_at(q, s->pos);
}
