/*
 * Validation and planning of a large job: a random DAG of 100,000 tasks and
 * 300,000 edges (edges go from a lower to a higher hidden id, and tasks are
 * written in shuffled order so that the file is not already sorted), parsed by
 * spe__job_parse_text (JSON, every check, name resolution, the cycle check, the
 * canonical text) and planned by spe__plan_build. Prints one figure per line and
 * the job model's memory per task, measured with mallinfo2() around the parse
 * (the JSON text itself excluded).
 *
 * Usage: bench_plan [TASKS [EDGES]]
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job/job.h"
#include "job/job_internal.h"
#include "plan/plan.h"
#include "spe.h"

enum { ROUNDS = 3 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t bound) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % bound);
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* `m` distinct edges (a << 32 | b) with a < b, sorted. */
static uint64_t *random_dag(uint32_t n, uint32_t m) {
  uint64_t *e = malloc((size_t)m * sizeof *e);
  uint32_t have = 0;
  while (have < m) {
    for (uint32_t k = have; k < m; k++) {
      uint32_t a = rnd(n - 1), b = a + 1 + rnd(n - 1 - a);
      e[k] = (uint64_t)a << 32 | b;
    }
    qsort(e, m, sizeof *e, compare_u64);
    have = 0;
    for (uint32_t k = 0; k < m; k++) {
      if (have == 0 || e[k] != e[have - 1]) e[have++] = e[k];
    }
  }
  return e;
}

struct text {
  char *s;
  size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    t->cap = t->cap * 2 + 4096;
    t->s = realloc(t->s, t->cap);
  }
}

/* The job as JSON text: task ids 0..n-1 named "task-ID", written in a random
 * order, each with its `enables` list. */
static struct text job_text(uint32_t n, uint32_t m) {
  uint64_t *edges = random_dag(n, m);
  uint32_t *off = calloc((size_t)n + 1, sizeof *off);
  for (uint32_t k = 0; k < m; k++) off[(edges[k] >> 32) + 1]++;
  for (uint32_t i = 0; i < n; i++) off[i + 1] += off[i];
  uint32_t *order = malloc((size_t)n * sizeof *order);
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  for (uint32_t i = n; i-- > 1;) {
    uint32_t j = rnd(i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  struct text t = {NULL, 0, 0};
  put(&t, "{\"name\": \"bench\", \"tasks\": [\n");
  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = order[k];
    put(&t, "  {\"name\": \"task-%u\", \"cmd\": \"true\"", i);
    if (off[i] < off[i + 1]) {
      put(&t, ", \"enables\": [");
      for (uint32_t e = off[i]; e < off[i + 1]; e++)
        put(&t, "%s\"task-%u\"", e > off[i] ? ", " : "", (uint32_t)edges[e]);
      put(&t, "]");
    }
    put(&t, "}%s\n", k + 1 < n ? "," : "");
  }
  put(&t, "]}\n");
  free(order);
  free(off);
  free(edges);
  return t;
}

static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv) {
  uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 100000;
  uint32_t m = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 300000;
  if (n < 2 || (uint64_t)m > (uint64_t)n * (n - 1) / 4) {
    fprintf(stderr, "usage: bench_plan [TASKS >= 2 [EDGES <= TASKS*(TASKS-1)/4]]\n");
    return 2;
  }
  struct text t = job_text(n, m);
  printf("job text: %u tasks, %u edges, %.1f MB of JSON\n", n, m, (double)t.len / 1e6);

  double best_load = 1e9, best_parse = 1e9, best_plan = 1e9, best_total = 1e9;
  size_t model_bytes = 0, store_bytes = 0, canonical_bytes = 0;
  uint32_t nlevels = 0;
  for (int round = 0; round < ROUNDS; round++) {
    /* jansson alone, to show how much of the parse is JSON decoding. */
    double t0 = now_s();
    json_t *doc = json_loadb(t.s, t.len, JSON_REJECT_DUPLICATES, NULL);
    double t1 = now_s();
    json_decref(doc);
    if (t1 - t0 < best_load) best_load = t1 - t0;

    size_t before = heap_in_use();
    struct job_def *def;
    char *msg = NULL;
    t0 = now_s();
    int rc = spe__job_parse_text(t.s, t.len, &def, &msg);
    t1 = now_s();
    if (rc != 0) {
      fprintf(stderr, "bench_plan: the job was refused: %s\n", msg);
      return 1;
    }
    model_bytes = heap_in_use() - before;
    store_bytes = spe__job_strings_bytes(def->strings);
    canonical_bytes = def->canonical_len + 1;
    struct plan plan;
    rc = spe__plan_build(def->ntasks, def->succ_off, def->succ, &plan, NULL, NULL);
    double t2 = now_s();
    if (rc != 0) {
      fprintf(stderr, "bench_plan: planning failed: %s\n", spe_strerror(rc));
      return 1;
    }
    nlevels = plan.nlevels;
    spe__plan_free(&plan);
    spe__job_free(def);
    if (t1 - t0 < best_parse) best_parse = t1 - t0;
    if (t2 - t1 < best_plan) best_plan = t2 - t1;
    if (t2 - t0 < best_total) best_total = t2 - t0;
  }
  printf("best of %d rounds each:\n", ROUNDS);
  printf("json_loadb alone (for comparison): %.3f s\n", best_load);
  printf("spe__job_parse_text (JSON, checks, names, edges, cycle check, canonical): %.3f s\n",
         best_parse);
  printf("spe__plan_build: %.3f s (%u levels)\n", best_plan, nlevels);
  printf("job model memory: %.1f MB, %.0f bytes per task (%.0f of it the canonical text, "
         "%.0f the string store, %.0f the edge arrays)\n",
         (double)model_bytes / 1e6, (double)model_bytes / n, (double)canonical_bytes / n,
         (double)store_bytes / n, (double)m * 8 / n);
  printf("validate+plan %u tasks %u edges: %.3f s (target < 0.5 s)\n", n, m, best_total);

  /* The engine's memory for the job: the model plus the run state of every
   * task, as held by an executor once the job is submitted (before results). */
  spe_executor *ex = NULL;
  spe_options opt;
  spe_options_init(&opt);
  opt.workers = 1;
  if (spe_open(&ex, &opt, NULL) != 0) {
    fprintf(stderr, "bench_plan: cannot open an executor\n");
    return 1;
  }
  char id[SPE_ID_SIZE];
  size_t before = heap_in_use();
  if (spe_submit_text(ex, t.s, t.len, id, NULL) != 0) {
    fprintf(stderr, "bench_plan: the executor refused the job\n");
    return 1;
  }
  size_t engine_bytes = heap_in_use() - before;
  spe_close(ex);
  printf("engine memory per task before results: %.0f bytes (target < 1024)\n",
         (double)engine_bytes / n);
  free(t.s);
  return 0;
}
