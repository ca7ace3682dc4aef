/*
 * C function (`exec`) tasks through the public API, against the simplest thing
 * that runs the same functions (issue 4, "How well"). One program, one mode per
 * run, each with its baseline measured in the same process:
 *
 *   wide     N no-op tasks in ONE job (default 1,000,000: the job limit),
 *            thread isolation, memory store, against a mutex + condition
 *            variable thread pool running the same function N times.
 *            Target: spe within 2 x the pool's time per task.
 *   dag      JOBS random DAGs of N/JOBS tasks each (default 100 x 10,000), each
 *            task with 0..MAXPRED random predecessors among the earlier tasks of
 *            its job (or among the WINDOW previous ones), seeded; same pool.
 *   process  N no-op tasks (default 200,000 in 20 jobs), process isolation,
 *            against raw round trips of small JSON texts (parsed and dumped
 *            with jansson at both ends) to WORKERS forked processes over
 *            socketpairs, one in flight each, on a poll loop.
 *            Target: >= 20,000 tasks/s.
 *   durable  N no-op tasks (default 200,000 in 20 jobs), thread isolation, the
 *            SQLite store in a temporary folder, against the memory store in
 *            the same run. Target: >= 50,000 tasks/s.
 *   pool     the pool alone.
 *
 *   bench_functions MODE [tasks=N] [jobs=J] [workers=W] [seed=S] [maxpred=P]
 *                        [window=K] [rounds=R] [check=0]
 *   bench_functions      (no mode: every mode with its defaults, in turn)
 *
 * Only the run is timed: from the first spe_start() to the return of the last
 * spe_wait(). Building the job text and submitting it (validation, store) are
 * reported apart. The pool is timed from its first push to the return of its
 * wait for all. In `wide` and `dag`, spe runs ROUNDS/2 times (at most 5), each
 * after a round of the pool, and the pool runs ROUNDS times in all: each side's
 * figure is its median run. Each line gives wall time per task and the CPU time of the
 * whole process per task (every thread, from getrusage), which moves less
 * than wall time on a shared machine. A final `summary` line per mode is for
 * bench/functions.sh.
 */
#include "spe.h"

#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- options and small helpers ---- */

struct opts {
  long tasks, jobs, workers, maxpred, window, rounds, check;
  unsigned long long seed;
};

static void die(const char *what, const char *msg) {
  fflush(stdout);
  fprintf(stderr, "bench_functions: %s: %s\n", what, msg ? msg : "failed");
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process so far, every thread, user and system. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* xorshift64*: a small seeded generator, so that a DAG can be made again. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

/* A growing text buffer. */
struct buf {
  char *p;
  size_t len, cap;
};

static void buf_printf(struct buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) die("vsnprintf", NULL);
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    b->cap = b->cap ? b->cap * 2 : 1 << 20;
    while (b->cap - b->len <= (size_t)n) b->cap *= 2;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL) die("realloc", NULL);
  }
}

/* ---- the no-op function, for spe and the pool alike ---- */

static json_t *noop(void *ctx, spe_call *call) {
  (void)ctx;
  (void)call;
  return NULL;
}

/* ---- the baseline: a plain mutex + condition variable pool ---- */

struct pool_task {
  spe_function fn;
  void *ctx;
};

struct pool {
  pthread_mutex_t lock;
  pthread_cond_t work;       /* a task was pushed, or stop */
  pthread_cond_t idle;       /* pending reached 0 */
  struct pool_task *fifo;    /* a ring of `cap` tasks */
  size_t head, len, cap;
  size_t pending;            /* pushed and not yet finished */
  int stop;
  pthread_t *threads;
  int nthreads;
};

static void *pool_main(void *arg) {
  struct pool *p = arg;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (p->len == 0 && !p->stop) pthread_cond_wait(&p->work, &p->lock);
    if (p->len == 0) break;
    struct pool_task t = p->fifo[p->head];
    p->head = (p->head + 1) % p->cap;
    p->len--;
    pthread_mutex_unlock(&p->lock);
    t.fn(t.ctx, NULL);
    pthread_mutex_lock(&p->lock);
    if (--p->pending == 0) pthread_cond_broadcast(&p->idle);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

static void pool_init(struct pool *p, int nthreads, size_t cap) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->idle, NULL);
  p->cap = cap;
  p->fifo = malloc(cap * sizeof *p->fifo);
  p->threads = calloc((size_t)nthreads, sizeof *p->threads);
  if (p->fifo == NULL || p->threads == NULL) die("pool", "out of memory");
  memset(p->fifo, 0, cap * sizeof *p->fifo); /* its pages faulted in before the clock */
  p->nthreads = nthreads;
  for (int i = 0; i < nthreads; i++)
    if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0) die("pthread_create", NULL);
}

static void pool_push(struct pool *p, spe_function fn, void *ctx) {
  pthread_mutex_lock(&p->lock);
  while (p->len == p->cap) { /* never with cap >= tasks; kept for safety */
    pthread_mutex_unlock(&p->lock);
    sched_yield();
    pthread_mutex_lock(&p->lock);
  }
  p->fifo[(p->head + p->len) % p->cap] = (struct pool_task){fn, ctx};
  p->len++;
  p->pending++;
  pthread_cond_signal(&p->work);
  pthread_mutex_unlock(&p->lock);
}

static void pool_wait(struct pool *p) {
  pthread_mutex_lock(&p->lock);
  while (p->pending > 0) pthread_cond_wait(&p->idle, &p->lock);
  pthread_mutex_unlock(&p->lock);
}

static void pool_free(struct pool *p) {
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->lock);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  free(p->fifo);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->idle);
}

struct timing {
  double wall, cpu; /* seconds */
};

/* One round of the pool: every task pushed, then waited for. The function
 * pointer goes through a volatile so that the compiler cannot see the call
 * does nothing. */
static struct timing pool_round(int nthreads, long tasks) {
  static spe_function volatile fn = noop;
  struct pool p;
  pool_init(&p, nthreads, (size_t)tasks);
  double c0 = cpu_s(), t0 = now_s();
  for (long i = 0; i < tasks; i++) pool_push(&p, fn, NULL);
  pool_wait(&p);
  struct timing t = {now_s() - t0, cpu_s() - c0};
  pool_free(&p);
  return t;
}

/* ---- jobs ---- */

/* `jobs` jobs of `per` independent tasks each. */
static char **wide_jobs(long jobs, long per, const char *fn) {
  char **texts = calloc((size_t)jobs, sizeof *texts);
  for (long j = 0; j < jobs; j++) {
    struct buf b = {0};
    buf_printf(&b, "{\"name\":\"wide-%ld\",\"tasks\":[", j);
    for (long i = 0; i < per; i++)
      buf_printf(&b, "%s{\"name\":\"t%ld\",\"exec\":\"%s\"}", i ? "," : "", i, fn);
    buf_printf(&b, "]}");
    texts[j] = b.p;
  }
  return texts;
}

struct dag_stats {
  long edges, roots, depth;
  double ancestors; /* mean ancestors per task (the size of a task's input) */
};

/* Ancestor counts and depth of one job's DAG, given each task's predecessors
 * (pred[i*maxpred..], npred[i]): bit sets, n^2/8 bytes. */
static void dag_measure(long n, long maxpred, const int32_t *pred, const uint8_t *npred,
                        struct dag_stats *st) {
  size_t words = ((size_t)n + 63) / 64;
  uint64_t *anc = calloc((size_t)n * words, sizeof *anc);
  long *depth = calloc((size_t)n, sizeof *depth);
  if (anc == NULL || depth == NULL) die("dag", "out of memory");
  double total = 0;
  for (long i = 0; i < n; i++) {
    uint64_t *a = anc + (size_t)i * words;
    depth[i] = 1;
    for (int k = 0; k < npred[i]; k++) {
      long p = pred[i * maxpred + k];
      const uint64_t *ap = anc + (size_t)p * words;
      for (size_t w = 0; w < words; w++) a[w] |= ap[w];
      a[p / 64] |= 1ull << (p % 64);
      if (depth[p] + 1 > depth[i]) depth[i] = depth[p] + 1;
    }
    for (size_t w = 0; w < words; w++) total += __builtin_popcountll(a[w]);
    if (depth[i] > st->depth) st->depth = depth[i];
  }
  st->ancestors = total / (double)n;
  free(anc);
  free(depth);
}

/* One random DAG: task i gets 0..maxpred distinct predecessors among tasks
 * [i - window, i) (window 0: among all earlier tasks), and each predecessor
 * `enables` it. */
static char *dag_job(long j, long n, long maxpred, long window, uint64_t *rng,
                     struct dag_stats *st, int measure) {
  int32_t *pred = malloc((size_t)n * (size_t)maxpred * sizeof *pred);
  uint8_t *npred = calloc((size_t)n, 1);
  long *nsucc = calloc((size_t)n + 1, sizeof *nsucc);
  if (pred == NULL || npred == NULL || nsucc == NULL) die("dag", "out of memory");
  for (long i = 0; i < n; i++) {
    long lo = window > 0 && i > window ? i - window : 0, range = i - lo;
    long want = (long)(rng_next(rng) % (uint64_t)(maxpred + 1));
    if (want > range) want = range;
    while (npred[i] < want) {
      int32_t p = (int32_t)(lo + (long)(rng_next(rng) % (uint64_t)range));
      int dup = 0;
      for (int k = 0; k < npred[i]; k++) dup |= pred[i * maxpred + k] == p;
      if (!dup) {
        pred[i * maxpred + npred[i]++] = p;
        nsucc[p + 1]++;
      }
    }
    st->edges += npred[i];
    st->roots += npred[i] == 0;
  }
  /* Successor lists, CSR. */
  for (long i = 0; i < n; i++) nsucc[i + 1] += nsucc[i];
  int32_t *succ = malloc((size_t)(nsucc[n] + 1) * sizeof *succ);
  long *fill = calloc((size_t)n, sizeof *fill);
  for (long i = 0; i < n; i++)
    for (int k = 0; k < npred[i]; k++) {
      long p = pred[i * maxpred + k];
      succ[nsucc[p] + fill[p]++] = (int32_t)i;
    }
  if (measure) dag_measure(n, maxpred, pred, npred, st);

  struct buf b = {0};
  buf_printf(&b, "{\"name\":\"dag-%ld\",\"tasks\":[", j);
  for (long i = 0; i < n; i++) {
    buf_printf(&b, "%s{\"name\":\"t%ld\",\"exec\":\"noop\"", i ? "," : "", i);
    if (nsucc[i + 1] > nsucc[i]) {
      buf_printf(&b, ",\"enables\":[");
      for (long e = nsucc[i]; e < nsucc[i + 1]; e++)
        buf_printf(&b, "%s\"t%d\"", e > nsucc[i] ? "," : "", succ[e]);
      buf_printf(&b, "]");
    }
    buf_printf(&b, "}");
  }
  buf_printf(&b, "]}");
  free(pred);
  free(npred);
  free(nsucc);
  free(succ);
  free(fill);
  return b.p;
}

/* ---- running jobs through spe ---- */

struct spe_figures {
  double submit;    /* seconds to submit every job (validate, plan, store) */
  uint64_t commits; /* store commits that wrote anything, during the run */
  struct timing run;
};

static spe_executor *open_executor(const struct opts *o, int isolation, const char *url) {
  spe_registry *reg = NULL;
  char *msg = NULL;
  if (spe_registry_new(&reg) != 0) die("spe_registry_new", NULL);
  if (spe_register(reg, "noop", noop, NULL, &msg) != 0) die("spe_register", msg);
  spe_options opt;
  spe_options_init(&opt);
  opt.workers = (int)o->workers;
  opt.store_url = url;
  opt.functions = reg;
  opt.isolation = isolation;
  opt.log_level = SPE_LOG_WARN;
  spe_executor *ex = NULL;
  if (spe_open(&ex, &opt, &msg) != 0) die("spe_open", msg);
  spe_registry_free(reg);
  return ex;
}

/* ---- per thread: where the run's CPU went ---- */

/* CPU time, time runnable but waiting for a CPU (/proc/.../schedstat, in
 * ns), and voluntary context switches (sleeps) of every thread of this
 * process named spe-* (the library's threads name themselves), summed by
 * name. The wait shows a thread that the others crowd out of the CPUs: with
 * more busy threads than CPUs, the engine's wait is time it could not work. */
#define THREAD_KINDS 8
struct thread_use {
  char name[16];
  long long run_ns, wait_ns;
  long sleeps;
  int n;
};

static int read_threads(struct thread_use *out) {
  int kinds = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == NULL) return 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] == '.') continue;
    char path[300], buf[1024], name[16] = "";
    long sleeps = 0;
    long long run_ns = 0, wait_ns = 0;
    snprintf(path, sizeof path, "/proc/self/task/%s/stat", de->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (open == NULL || close == NULL || close - open - 1 >= (long)sizeof name) continue;
    memcpy(name, open + 1, (size_t)(close - open - 1));
    name[close - open - 1] = '\0';
    if (strncmp(name, "spe-", 4) != 0) continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", de->d_name);
    f = fopen(path, "r");
    if (f != NULL && fscanf(f, "%lld %lld", &run_ns, &wait_ns) != 2) run_ns = wait_ns = 0;
    if (f != NULL) fclose(f);
    snprintf(path, sizeof path, "/proc/self/task/%s/status", de->d_name);
    f = fopen(path, "r");
    while (f != NULL && fgets(buf, sizeof buf, f) != NULL)
      if (sscanf(buf, "voluntary_ctxt_switches: %ld", &sleeps) == 1) break;
    if (f != NULL) fclose(f);
    int k = 0;
    while (k < kinds && strcmp(out[k].name, name) != 0) k++;
    if (k == kinds) {
      if (kinds == THREAD_KINDS) continue;
      memset(&out[k], 0, sizeof out[k]);
      snprintf(out[k].name, sizeof out[k].name, "%s", name);
      kinds++;
    }
    out[k].run_ns += run_ns;
    out[k].wait_ns += wait_ns;
    out[k].sleeps += sleeps;
    out[k].n++;
  }
  closedir(d);
  return kinds;
}

/* The library's threads before and after the last run_jobs(). */
static struct {
  struct thread_use before[THREAD_KINDS], after[THREAD_KINDS];
  int nbefore, nafter;
} run_threads;

/* What each kind of thread used during the last run, per task. */
static void print_threads(long tasks) {
  const struct thread_use *a = run_threads.before, *b = run_threads.after;
  int na = run_threads.nbefore, nb = run_threads.nafter;
  for (int i = 0; i < nb; i++) {
    long long run_ns = b[i].run_ns, wait_ns = b[i].wait_ns;
    long sleeps = b[i].sleeps;
    for (int j = 0; j < na; j++)
      if (strcmp(a[j].name, b[i].name) == 0) {
        run_ns -= a[j].run_ns;
        wait_ns -= a[j].wait_ns;
        sleeps -= a[j].sleeps;
      }
    printf("    thread %-11s x%d  cpu %6.0f ns/task  waited for a CPU %6.0f ns/task  "
           "sleeps %8ld (%.3f per task)\n",
           b[i].name, b[i].n, (double)run_ns / (double)tasks, (double)wait_ns / (double)tasks,
           sleeps, (double)sleeps / (double)tasks);
  }
}

/* With BENCH_PERF_CTL set to the control fifo of `perf record
 * --control=fifo:CTL --delay=-1`, only the timed run is recorded:
 *   mkfifo /tmp/ctl; BENCH_PERF_CTL=/tmp/ctl perf record -g -D -1 \
 *     --control=fifo:/tmp/ctl build-rel/bench/bench_functions wide */
static void perf_ctl(const char *cmd) {
  const char *path = getenv("BENCH_PERF_CTL");
  if (path == NULL || path[0] == '\0') return;
  FILE *f = fopen(path, "w");
  if (f == NULL) die("BENCH_PERF_CTL", strerror(errno));
  fprintf(f, "%s\n", cmd);
  fclose(f);
}

/* Submit every job, then start them all and wait for each: only the second
 * part is the run. Every job must succeed (checked with spe_job_get() after
 * the clock stops, unless `check` is 0: a profile of the run then shows only
 * the run). */
static struct spe_figures run_jobs(spe_executor *ex, char **texts, long jobs, int check) {
  struct spe_figures f;
  char (*ids)[SPE_ID_SIZE] = calloc((size_t)jobs, sizeof *ids);
  char *msg = NULL;
  double t0 = now_s();
  for (long j = 0; j < jobs; j++)
    if (spe_submit_text(ex, texts[j], strlen(texts[j]), ids[j], &msg) != 0)
      die("spe_submit_text", msg);
  f.submit = now_s() - t0;

  spe_stats s0, s1;
  if (spe_stats_get(ex, &s0) != 0) die("spe_stats_get", NULL);
  run_threads.nbefore = read_threads(run_threads.before);
  perf_ctl("enable");
  double c1 = cpu_s(), t1 = now_s();
  for (long j = 0; j < jobs; j++)
    if (spe_start(ex, ids[j], &msg) != 0) die("spe_start", msg);
  for (long j = 0; j < jobs; j++) {
    int rc = spe_wait(ex, ids[j], -1);
    if (rc != 0) die("spe_wait", spe_strerror(rc));
  }
  f.run = (struct timing){now_s() - t1, cpu_s() - c1};
  perf_ctl("disable");
  run_threads.nafter = read_threads(run_threads.after);
  if (spe_stats_get(ex, &s1) != 0) die("spe_stats_get", NULL);
  f.commits = s1.commits - s0.commits;

  for (long j = 0; check && j < jobs; j++) {
    json_t *job = NULL;
    if (spe_job_get(ex, ids[j], &job, &msg) != 0) die("spe_job_get", msg);
    const char *status = json_string_value(json_object_get(job, "status"));
    if (status == NULL || strcmp(status, "succeeded") != 0) {
      json_t *tasks = json_object_get(job, "tasks");
      const char *name;
      json_t *t;
      json_object_foreach(tasks, name, t) {
        const char *ts = json_string_value(json_object_get(t, "status"));
        if (ts && strcmp(ts, "succeeded") != 0) {
          char *text = json_dumps(t, JSON_COMPACT);
          fprintf(stderr, "bench_functions: task %s: %s\n", name, text);
          free(text);
          break;
        }
      }
      die("job", status ? status : "no status");
    }
    json_decref(job);
  }
  free(ids);
  return f;
}

static void free_texts(char **texts, long jobs) {
  for (long j = 0; j < jobs; j++) free(texts[j]);
  free(texts);
}

/* ---- printing ---- */

static void line(const char *what, struct timing t, long tasks) {
  printf("  %-38s %8.3f s %9.0f ns/task %10.0f tasks/s   cpu %7.0f ns/task\n", what, t.wall,
         t.wall * 1e9 / (double)tasks, (double)tasks / t.wall, t.cpu * 1e9 / (double)tasks);
}

/* Rounds of the pool, into all[from..from+n). */
static void pool_rounds(const struct opts *o, struct timing *all, int from, int n) {
  for (int i = from; i < from + n; i++) all[i] = pool_round((int)o->workers, o->tasks);
}

static int cmp_wall(const void *a, const void *b) {
  double x = ((const struct timing *)a)->wall, y = ((const struct timing *)b)->wall;
  return (x > y) - (x < y);
}

/* The median of n runs (the pool's, or spe's). The pool's rounds spread widely (from about
 * 30 to 200 ns per task here): when the pushing thread outruns the workers,
 * a round is little more than a million uncontended lock/unlock pairs; when
 * they contend, each push wakes a worker. The median is the usual case. */
static struct timing median_run(const struct timing *all, int n) {
  struct timing s[16];
  memcpy(s, all, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_wall);
  if (n % 2) return s[n / 2];
  return (struct timing){(s[n / 2 - 1].wall + s[n / 2].wall) / 2,
                         (s[n / 2 - 1].cpu + s[n / 2].cpu) / 2};
}

static struct timing print_pool(const struct opts *o, const struct timing *all, int n) {
  struct timing med = median_run(all, n);
  char what[64];
  snprintf(what, sizeof what, "pool, mutex+condvar, %ld threads", o->workers);
  line(what, med, o->tasks);
  printf("  %-38s", "  its rounds (wall ns/task; median)");
  for (int i = 0; i < n; i++) printf(" %.0f", all[i].wall * 1e9 / (double)o->tasks);
  printf("\n");
  return med;
}

/* ---- modes ---- */

static void mode_pool(const struct opts *o) {
  printf("pool: %ld no-op tasks through a mutex+condvar pool of %ld threads, %ld rounds\n",
         o->tasks, o->workers, o->rounds);
  struct timing all[16];
  int n = (int)o->rounds;
  pool_rounds(o, all, 0, n);
  struct timing med = print_pool(o, all, n);
  printf("summary pool tasks=%ld pool_ns=%.0f\n", o->tasks, med.wall * 1e9 / (double)o->tasks);
}

/* The thread-isolation modes: the pool, the spe run, the pool again. */
static void thread_vs_pool(const char *mode, const struct opts *o, char **texts, long jobs) {
  /* spe and the pool take turns (a pool round before each spe run, the rest
   * of the pool's rounds after), so that both sample the same moods of a
   * shared machine; each side's figure is its median. */
  enum { MAX_SPE = 5 };
  struct timing all[16], runs[MAX_SPE];
  struct spe_figures f[MAX_SPE];
  int m = o->rounds > 1 ? (int)(o->rounds / 2) : 1;
  if (m > MAX_SPE) m = MAX_SPE;
  int npool = (int)o->rounds > m + 1 ? (int)o->rounds : m + 1;
  double closed = 0;
  for (int i = 0; i < m; i++) {
    pool_rounds(o, all, i, 1);
    spe_executor *ex = open_executor(o, SPE_ISOLATION_THREAD, "memory:");
    f[i] = run_jobs(ex, texts, jobs, (int)o->check);
    runs[i] = f[i].run;
    double c0 = now_s();
    spe_close(ex);
    closed = now_s() - c0;
  }
  pool_rounds(o, all, m, npool - m);

  struct timing run = median_run(runs, m);
  printf("  %-38s %8.3f s %9.0f ns/task\n", "submit (validate, plan, store)", f[m - 1].submit,
         f[m - 1].submit * 1e9 / (double)o->tasks);
  line("spe run (spe_start .. spe_wait)", run, o->tasks);
  printf("  %-38s", "  its runs (wall ns/task; median)");
  for (int i = 0; i < m; i++) printf(" %.0f", runs[i].wall * 1e9 / (double)o->tasks);
  printf("\n    the last run's threads:\n");
  print_threads(o->tasks);
  struct timing pool = print_pool(o, all, npool);
  double ratio = run.wall / pool.wall;
  printf("  ratio spe / pool: %.1f (wall), %.1f (cpu)   target <= 2   [spe_close %.3f s]\n",
         ratio, run.cpu / pool.cpu, closed);
  printf("summary %s tasks=%ld spe_ns=%.0f spe_cpu_ns=%.0f pool_ns=%.0f ratio=%.2f "
         "submit_s=%.3f\n",
         mode, o->tasks, run.wall * 1e9 / (double)o->tasks, run.cpu * 1e9 / (double)o->tasks,
         pool.wall * 1e9 / (double)o->tasks, ratio, f[m - 1].submit);
}

static void mode_wide(const struct opts *o) {
  long per = o->tasks / o->jobs;
  printf("wide: %ld no-op exec tasks in %ld job(s) of %ld independent tasks, thread isolation, "
         "memory store, workers %ld\n",
         per * o->jobs, o->jobs, per, o->workers);
  double t0 = now_s();
  char **texts = wide_jobs(o->jobs, per, "noop");
  printf("  %-38s %8.3f s\n", "job text built", now_s() - t0);
  struct opts o2 = *o;
  o2.tasks = per * o->jobs;
  thread_vs_pool("wide", &o2, texts, o->jobs);
  free_texts(texts, o->jobs);
}

static void mode_dag(const struct opts *o) {
  long per = o->tasks / o->jobs;
  char among[64] = "the earlier tasks";
  if (o->window) snprintf(among, sizeof among, "the %ld previous tasks", o->window);
  printf("dag: %ld random DAGs of %ld no-op exec tasks, 0..%ld predecessors each among %s, "
         "seed %llu, thread isolation, memory store, workers %ld\n",
         o->jobs, per, o->maxpred, among, o->seed, o->workers);
  double t0 = now_s();
  uint64_t rng = o->seed ? o->seed : 1;
  char **texts = calloc((size_t)o->jobs, sizeof *texts);
  struct dag_stats st = {0}, first = {0};
  for (long j = 0; j < o->jobs; j++)
    texts[j] = dag_job(j, per, o->maxpred, o->window, &rng, j == 0 ? &first : &st, j == 0);
  st.edges += first.edges;
  st.roots += first.roots;
  printf("  %-38s %8.3f s: %ld edges, %ld tasks without predecessors; job 0: depth %ld, "
         "%.1f ancestors per task (the input's entries)\n",
         "jobs built", now_s() - t0, st.edges, st.roots, first.depth, first.ancestors);
  struct opts o2 = *o;
  o2.tasks = per * o->jobs;
  thread_vs_pool("dag", &o2, texts, o->jobs);
  free_texts(texts, o->jobs);
}

/* A plain baseline of process isolation: small JSON requests and replies,
 * dumped and parsed with jansson at both ends, over socketpairs to forked
 * processes that call the function; one in flight per worker. A worker reads
 * a request, calls, writes its reply and blocks in read again: each task
 * costs both sides a wake-up. */
static void raw_child(int fd) {
  char in[4096];
  for (;;) {
    ssize_t n = read(fd, in, sizeof in);
    if (n <= 0) _exit(0);
    json_t *req = json_loadb(in, (size_t)n, 0, NULL);
    json_t *res = noop(NULL, NULL);
    json_t *rep = json_pack("{s:o}", "result", res ? res : json_null());
    char *text = json_dumps(rep, JSON_COMPACT);
    if (write(fd, text, strlen(text)) < 0) _exit(1);
    free(text);
    json_decref(rep);
    json_decref(req);
  }
}

/* A request as an executor would write it: the function, the task, the
 * input and the arg, as JSON text. */
static void raw_send(int fd) {
  json_t *req = json_pack("{s:s, s:s, s:i, s:{}, s:n}", "function", "noop", "task", "t",
                          "attempt", 1, "input", "arg");
  char *text = json_dumps(req, JSON_COMPACT);
  if (write(fd, text, strlen(text)) < 0) die("write", strerror(errno));
  free(text);
  json_decref(req);
}

static struct timing raw_process(const struct opts *o) {
  int nw = (int)o->workers;
  struct pollfd *pfd = calloc((size_t)nw, sizeof *pfd);
  int *fds = calloc((size_t)nw, sizeof *fds);
  pid_t *pids = calloc((size_t)nw, sizeof *pids);
  for (int w = 0; w < nw; w++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair", NULL);
    pids[w] = fork();
    if (pids[w] < 0) die("fork", NULL);
    if (pids[w] == 0) {
      /* Without exec, close-on-exec closes nothing: drop the parent's ends of
       * the earlier workers' sockets, or they would never see end-of-file. */
      for (int e = 0; e < w; e++) close(fds[e]);
      close(sv[0]);
      raw_child(sv[1]);
    }
    close(sv[1]);
    fds[w] = sv[0];
    pfd[w] = (struct pollfd){.fd = sv[0], .events = POLLIN};
  }
  /* Every worker kept busy: a request to each, then the next request to
   * whichever replied, as an executor on an event loop does. */
  double c0 = cpu_s(), t0 = now_s();
  long sent = 0, received = 0;
  char reply[4096];
  for (int w = 0; w < nw && sent < o->tasks; w++, sent++) raw_send(fds[w]);
  while (received < o->tasks) {
    if (poll(pfd, (nfds_t)nw, -1) < 0) die("poll", strerror(errno));
    for (int w = 0; w < nw; w++) {
      if (!(pfd[w].revents & POLLIN)) continue;
      ssize_t n = read(fds[w], reply, sizeof reply);
      if (n <= 0) die("read", NULL);
      json_t *rep = json_loadb(reply, (size_t)n, 0, NULL);
      if (rep == NULL) die("reply", "not JSON");
      json_decref(rep);
      received++;
      if (sent < o->tasks) {
        raw_send(fds[w]);
        sent++;
      }
    }
  }
  struct timing t = {now_s() - t0, cpu_s() - c0};
  for (int w = 0; w < nw; w++) close(fds[w]);
  for (int w = 0; w < nw; w++) waitpid(pids[w], NULL, 0);
  free(pfd);
  free(fds);
  free(pids);
  return t;
}

static void mode_process(const struct opts *o) {
  long per = o->tasks / o->jobs;
  long total = per * o->jobs;
  printf("process: %ld no-op exec tasks in %ld jobs of %ld, process isolation, memory store, "
         "workers %ld\n",
         total, o->jobs, per, o->workers);
  char **texts = wide_jobs(o->jobs, per, "noop");
  /* The executor first: its fork server must be forked before any thread. */
  spe_executor *ex = open_executor(o, SPE_ISOLATION_PROCESS, "memory:");
  struct opts o2 = *o;
  o2.tasks = total;
  struct timing raw = raw_process(&o2);
  struct spe_figures f = run_jobs(ex, texts, o->jobs, (int)o->check);
  spe_close(ex);
  free_texts(texts, o->jobs);
  printf("  %-38s %8.3f s\n", "submit (validate, plan, store)", f.submit);
  line("spe run (spe_start .. spe_wait)", f.run, total);
  line("raw: JSON over socketpairs, forked", raw, total);
  printf("  spe: %.0f tasks/s (target >= 20000); spe / raw round trips: %.2f\n",
         (double)total / f.run.wall, raw.wall / f.run.wall);
  printf("summary process tasks=%ld spe_tps=%.0f raw_tps=%.0f submit_s=%.3f\n", total,
         (double)total / f.run.wall, (double)total / raw.wall, f.submit);
}

/* A temporary folder for the SQLite store, removed afterwards. */
static void remove_store(const char *dir) {
  const char *files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db-journal",
                         "state.db.lock"};
  char path[4200];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  if (rmdir(dir) != 0) fprintf(stderr, "bench_functions: could not remove %s\n", dir);
}

static void mode_durable(const struct opts *o) {
  long per = o->tasks / o->jobs;
  long total = per * o->jobs;
  printf("durable: %ld no-op exec tasks in %ld jobs of %ld, thread isolation, workers %ld: "
         "SQLite store against the memory store\n",
         total, o->jobs, per, o->workers);
  char **texts = wide_jobs(o->jobs, per, "noop");
  char dir[] = "/tmp/spe-bench-XXXXXX";
  if (mkdtemp(dir) == NULL) die("mkdtemp", strerror(errno));
  char url[4200];
  snprintf(url, sizeof url, "sqlite:%s/state.db", dir);

  spe_executor *ex = open_executor(o, SPE_ISOLATION_THREAD, "memory:");
  struct spe_figures mem = run_jobs(ex, texts, o->jobs, (int)o->check);
  spe_close(ex);
  ex = open_executor(o, SPE_ISOLATION_THREAD, url);
  struct spe_figures sql = run_jobs(ex, texts, o->jobs, (int)o->check);
  spe_close(ex);
  remove_store(dir);
  free_texts(texts, o->jobs);

  printf("  %-38s %8.3f s (sqlite), %.3f s (memory)\n", "submit (validate, plan, store)",
         sql.submit, mem.submit);
  line("spe run, sqlite store", sql.run, total);
  print_threads(total); /* those of the SQLite run, the last one */
  printf("    commits %llu: %.1f tasks per fsync'd transaction\n", (unsigned long long)sql.commits,
         (double)total / (double)(sql.commits ? sql.commits : 1));
  line("spe run, memory store", mem.run, total);
  printf("  sqlite: %.0f tasks/s (target >= 50000); sqlite / memory: %.2f\n",
         (double)total / sql.run.wall, mem.run.wall / sql.run.wall);
  printf("summary durable tasks=%ld sqlite_tps=%.0f memory_tps=%.0f ratio=%.2f "
         "submit_sqlite_s=%.3f\n",
         total, (double)total / sql.run.wall, (double)total / mem.run.wall,
         mem.run.wall / sql.run.wall, sql.submit);
}

/* ---- main ---- */

static void defaults(const char *mode, struct opts *o) {
  *o = (struct opts){.tasks = 1000000, .jobs = 1, .workers = 2, .maxpred = 3, .window = 0,
                     .rounds = 6, .check = 1, .seed = 42};
  if (strcmp(mode, "dag") == 0) o->jobs = 100;
  if (strcmp(mode, "process") == 0 || strcmp(mode, "durable") == 0) {
    o->tasks = 200000;
    o->jobs = 20;
  }
}

static void parse(int argc, char **argv, struct opts *o) {
  for (int i = 2; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (eq == NULL) die("usage", "options are key=value");
    *eq = '\0';
    const char *k = argv[i];
    long v = atol(eq + 1);
    if (strcmp(k, "tasks") == 0) o->tasks = v;
    else if (strcmp(k, "jobs") == 0) o->jobs = v;
    else if (strcmp(k, "workers") == 0) o->workers = v;
    else if (strcmp(k, "maxpred") == 0) o->maxpred = v;
    else if (strcmp(k, "window") == 0) o->window = v;
    else if (strcmp(k, "rounds") == 0) o->rounds = v;
    else if (strcmp(k, "check") == 0) o->check = v;
    else if (strcmp(k, "seed") == 0) o->seed = strtoull(eq + 1, NULL, 10);
    else die("usage", "unknown option (tasks jobs workers maxpred window rounds check seed)");
  }
  if (o->tasks < 1 || o->jobs < 1 || o->jobs > o->tasks || o->workers < 1 || o->maxpred < 0 ||
      o->maxpred > 255 || o->window < 0 || o->rounds < 1 || o->rounds > 16)
    die("usage", "an option is out of range");
}

static void run_mode(const char *mode, int argc, char **argv) {
  struct opts o;
  defaults(mode, &o);
  parse(argc, argv, &o);
  if (strcmp(mode, "wide") == 0) mode_wide(&o);
  else if (strcmp(mode, "dag") == 0) mode_dag(&o);
  else if (strcmp(mode, "process") == 0) mode_process(&o);
  else if (strcmp(mode, "durable") == 0) mode_durable(&o);
  else if (strcmp(mode, "pool") == 0) mode_pool(&o);
  else die("usage", "bench_functions [wide|dag|process|durable|pool] [key=value...]");
  fflush(stdout);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1) {
    run_mode(argv[1], argc, argv);
    return 0;
  }
  /* Every mode with its defaults; process first, whose fork server wants a
   * process without threads (each mode closes its threads before the next). */
  const char *modes[] = {"process", "wide", "dag", "durable"};
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    if (i) printf("\n");
    run_mode(modes[i], 1, argv);
  }
  return 0;
}
