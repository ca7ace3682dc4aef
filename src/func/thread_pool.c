/*
 * The pool of threads that calls the functions of thread isolation.
 *
 * What it owns: the threads (started on demand, up to max_threads, and kept
 * until the pool stops), the queue of runs to call, the list of notes for the
 * loop (a call began; a call is over), and an eventfd watched on the loop.
 *
 * Threads and locks: the loop's thread queues runs (spe__tpool_submit, or a
 * round's worth at once with spe__tpool_submit_list) and takes the notes
 * (spe__tpool_take_notes); each pool thread takes a run from the queue, notes
 * its start, calls it, and notes its end. One mutex, `mu`, guards the queue,
 * the notes, the idle stack, the spinner, `nlooking` and each thread's
 * `woken`, `counted` and `current`. Nothing else is locked, and condition
 * variables are signalled and the eventfd written after `mu` is released.
 *
 * Slots: when the pool is given the engine's count of free slots (`slots`),
 * a run queued ahead is called only once its thread has taken a slot, and
 * every call gives its slot back when it returns; a run that holds a slot
 * already (taken by the engine) goes before every run that waits for one.
 * Whoever frees a slot comes back to the queue: a pool thread after its call,
 * the engine through spe__tpool_kick. A run withdrawn by the loop (its state
 * moved to WITHDRAWN before a thread moved it to CALLING) is taken off the
 * queue without a slot and only noted as over.
 *
 * Wake-ups are what costs: handing a run to a sleeping thread, or telling a
 * sleeping loop about a result, takes tens of microseconds here, a queue
 * operation a hundred nanoseconds. So both directions are batched:
 *   - Towards the threads: a thread that finishes a call takes the next run
 *     without sleeping. A thread that finds the queue empty first spins a
 *     while (SPIN_NS, or SPIN_AWAKE_NS while the loop works on a round and
 *     no commit is in flight; yielding the CPU as it goes) as the pool's one
 *     `spinner`: a submit that finds a spinner only sets its `claimed` flag -
 *     no system call on the loop's thread, where a wake-up would cost more
 *     than the task. Then it sleeps: it pushes itself on the idle stack and
 *     waits on its own condition variable until someone sets its `woken`
 *     flag; that someone (a submit, a kick, a thread, or the stop) also takes
 *     it off the stack. `nlooking` counts the threads claimed or woken that
 *     have not yet come to the queue: a submit wakes a thread only when none
 *     is on its way, and a thread that takes a run while more wait and none
 *     is on its way wakes the next one itself, before its call (so a burst
 *     spreads over the threads, and the wake-ups are paid by the threads, not
 *     by the loop). A spurious wake-up is never taken for a real one, and the
 *     last thread to sleep is the first woken (its cache is the warmest).
 *     But while the loop is awake (working on a round), runs beside a
 *     thread in a call are left to that thread (`lazy`): with tiny calls the
 *     loop is the bottleneck and a second thread calling would take its CPU.
 *     The loop brings the others when it goes to sleep, and when it sees the
 *     queue stay non-empty for STALL_MS (spe__tpool_check_stall, once a
 *     round). The invariant: whenever runs wait, a thread is on its way, or
 *     every thread is busy in a call and will come back, or no slot is free
 *     and whoever frees one comes back, or the loop is awake and a thread in
 *     a call will come back (and the loop brings more as above).
 *   - Towards the loop: the loop reads the notes in every round, and the
 *     eventfd is written only when it sleeps (`loop_sleeping`, see put_news),
 *     by the first note after it last took them (`notified`); it takes the
 *     whole list at once, so a note added after the take comes with a new
 *     write if it sleeps. The loop watches the eventfd edge-triggered, where
 *     every write is an event, and never reads it: that saves a system call
 *     per batch (the counter would take millennia to overflow).
 * In the steady state of a busy pool, a task costs one short critical section
 * on its thread, a share of the loop's one per round, and no system call.
 *
 * Spinning is bounded to one thread at a time so that it never takes more
 * than one CPU from the loop and the threads that work.
 */
#include "func/thread_internal.h"

#include "base/clock.h"
#include "base/msg.h"
#include "base/thread.h"
#include "spe.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int spe__tpool_init(struct thread_pool *p, uint32_t max_threads, _Atomic long *slots,
                    const struct spe_registry *reg,
                    void (*describe_fn)(void *ctx, uint32_t task, struct call_desc *d)) {
  memset(p, 0, sizeof *p);
  p->max_threads = max_threads > 0 ? max_threads : 1;
  p->slots = slots;
  p->reg = reg;
  p->describe_fn = describe_fn;
  /* Until the loop says it is awake (spe__tpool_sleep_end), every first
   * note wakes it: a loop that never brackets its sleeps is always told. */
  atomic_init(&p->loop_sleeping, LOOP_SLEEPS);
  p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->efd < 0) return SPE_ESYS;
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    close(p->efd);
    p->efd = -1;
    return SPE_ESYS;
  }
  return 0;
}

int spe__slot_take(_Atomic long *slots) {
  long n = atomic_load_explicit(slots, memory_order_relaxed);
  while (n > 0)
    if (atomic_compare_exchange_weak_explicit(slots, &n, n - 1, memory_order_acquire,
                                              memory_order_relaxed))
      return 1;
  return 0;
}

static void slot_give(struct thread_pool *p) {
  if (p->slots) atomic_fetch_add_explicit(p->slots, 1, memory_order_release);
}

static int slot_free(const struct thread_pool *p) {
  return p->slots == NULL || atomic_load_explicit(p->slots, memory_order_relaxed) > 0;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

void spe__tpool_spin_for_notes(struct thread_pool *p, int64_t max_ns, int64_t gather_ns) {
  uint64_t now = spe__mono_ns(), until = now + (uint64_t)max_ns, news = 0;
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (atomic_load_explicit(&p->has_notes, memory_order_acquire)) break;
      cpu_relax();
    }
    now = spe__mono_ns();
    if (atomic_load_explicit(&p->has_notes, memory_order_relaxed)) {
      if (news == 0) news = now;
      if (now - news >= (uint64_t)gather_ns || now > until) return;
      cpu_relax();
      continue;
    }
    if (now > until) return;
    sched_yield(); /* on a machine with few cores the pool needs this one */
  }
}

void spe__tpool_notify(struct thread_pool *p) {
  uint64_t one = 1;
  ssize_t r = write(p->efd, &one, sizeof one);
  (void)r; /* it cannot fail short of a counter near 2^64 (see the top) */
}

/* Under mu: news for the loop (a run done, or a call begun). Returns 1 if
 * the loop must be told: it sleeps, or is about to, and nobody told it yet.
 * An awake loop looks at `has_notes` before it sleeps
 * (spe__tpool_sleep_begin): each side writes its flag, then reads the
 * other's, both sequentially consistent, so that at least one of them sees
 * the other's and no news is left unseen. Only the first news after a take
 * writes the flag (a write to the line the loop reads while it spins is a
 * cache miss); once set, it stays set until the loop, which alone clears it,
 * takes the news, so the loop sees it before it sleeps. */
static int put_news(struct thread_pool *p) {
  if (!atomic_load_explicit(&p->has_notes, memory_order_relaxed))
    atomic_store_explicit(&p->has_notes, 1, memory_order_seq_cst);
  int sleeping = atomic_load_explicit(&p->loop_sleeping, memory_order_seq_cst);
  if (p->notified || sleeping == LOOP_AWAKE) return 0;
  /* A loop that asked to sleep until the queue runs dry is not woken while
   * threads still have runs to take (the run just taken included). */
  if (sleeping == LOOP_SLEEPS_UNTIL_DRY && p->head != NULL) return 0;
  p->notified = 1;
  return 1;
}

/* Under mu: a run is done (its call is over, or it was skipped). */
static int put_done(struct thread_pool *p, struct func_run *run) {
  run->done_next = NULL;
  if (p->done_tail) p->done_tail->done_next = run;
  else p->done_head = run;
  p->done_tail = run;
  return put_news(p);
}

static int come_for_queue(struct thread_pool *p, int force, char **msg);

/* The loop is about to sleep: bring every thread the queued runs need
 * (while it was awake, runs beside a thread in a call were left to that
 * thread: see `lazy`). */
static void bring_all(struct thread_pool *p) {
  if (atomic_load_explicit(&p->queued, memory_order_relaxed) == 0) return;
  char *msg = NULL;
  pthread_mutex_lock(&p->mu);
  (void)come_for_queue(p, 1, &msg); /* a thread runs: it cannot fail */
  free(msg);
}

int spe__tpool_sleep_begin(struct thread_pool *p, int until_dry) {
  /* News waits already (a busy pipeline, most rounds): the loop will not
   * sleep, and says so without a word to the threads - one that saw it
   * "sleeping" for that moment would wake a helper it does not need. */
  if (!until_dry && atomic_load_explicit(&p->has_notes, memory_order_acquire)) return 1;
  atomic_store_explicit(&p->loop_sleeping, until_dry ? LOOP_SLEEPS_UNTIL_DRY : LOOP_SLEEPS,
                        memory_order_seq_cst);
  int awake = 0;
  if (atomic_load_explicit(&p->has_notes, memory_order_seq_cst)) {
    awake = 1;
    if (until_dry) {
      /* Notes wait: they wake it only if no run waits (put_news's rule). */
      pthread_mutex_lock(&p->mu);
      awake = p->head == NULL;
      pthread_mutex_unlock(&p->mu);
    }
  }
  if (awake) atomic_store_explicit(&p->loop_sleeping, LOOP_AWAKE, memory_order_relaxed);
  else bring_all(p);
  return awake;
}

/* How long the queue may stay non-empty, as the loop sees it once a round,
 * before another thread is brought for its runs. */
#define STALL_MS 1

void spe__tpool_check_stall(struct thread_pool *p, int64_t now_ms, char **msg) {
  if (atomic_load_explicit(&p->queued, memory_order_relaxed) == 0 || p->empty_ms == 0) {
    p->empty_ms = now_ms; /* (0: never looked before) */
    return;
  }
  if (now_ms - p->empty_ms < STALL_MS) return;
  p->empty_ms = now_ms;
  pthread_mutex_lock(&p->mu);
  (void)come_for_queue(p, 1, msg);
}

void spe__tpool_sleep_end(struct thread_pool *p) {
  atomic_store_explicit(&p->loop_sleeping, LOOP_AWAKE, memory_order_relaxed);
}

int spe__tpool_has_notes(struct thread_pool *p) {
  return atomic_load_explicit(&p->has_notes, memory_order_acquire);
}

/* Under mu: whether the first run of the queue can be taken now. A run queued
 * ahead needs a free slot, which is then taken (*slot = 1) - unless it was
 * withdrawn, and is taken only to be given back. */
static int head_ready(struct thread_pool *p, int *slot) {
  struct func_run *run = p->head;
  *slot = 0;
  if (run == NULL) return 0;
  if (!run->ahead || p->slots == NULL) return 1;
  if (atomic_load_explicit(&run->state, memory_order_relaxed) == RUN_WITHDRAWN) return 1;
  if (!spe__slot_take(p->slots)) return 0;
  *slot = 1;
  return 1;
}

/* How long a thread with nothing to do looks for a run before it sleeps:
 * SPIN_NS while the loop sleeps (nothing will come before something wakes
 * it), up to SPIN_AWAKE_NS while it is awake - a round in progress most
 * likely ends by handing over more runs, and a round of a hundred random
 * DAGs takes longer than SPIN_NS: sleeping through each one cost a wake-up
 * per round on both sides (bench_functions dag, docs/benchmarks.md). But
 * SPIN_NS only while a commit runs on another thread: there the committer
 * needs the CPU (bench_functions durable lost a fifth to the spinning). */
#define SPIN_NS 20000
#define SPIN_AWAKE_NS 200000

/* Without the lock: until a submit claims this spinner, or the time above.
 * The CPU is yielded between short bursts of polling, so that a spinner
 * sharing a CPU with the loop does not hold it back. */
static void spin_wait(struct thread_pool *p, struct pool_worker *w) {
  uint64_t begun = spe__mono_ns();
  for (unsigned i = 1; !atomic_load_explicit(&w->claimed, memory_order_acquire); i++) {
    if (i % 16 != 0) {
      cpu_relax();
      continue;
    }
    uint64_t spun = spe__mono_ns() - begun;
    if (spun > SPIN_AWAKE_NS ||
        (spun > SPIN_NS &&
         (atomic_load_explicit(&p->loop_sleeping, memory_order_relaxed) != LOOP_AWAKE ||
          atomic_load_explicit(&p->committing, memory_order_relaxed))))
      return;
    sched_yield();
  }
}

/* Under mu: `w` is no longer on its way to the queue. */
static void stop_looking(struct thread_pool *p, struct pool_worker *w) {
  if (!w->counted) return;
  w->counted = 0;
  p->nlooking--;
}

/* Under mu: take a sleeping thread off the idle stack and count it as looking;
 * the caller signals it once mu is released. NULL if none sleeps. */
static struct pool_worker *take_idle(struct thread_pool *p) {
  struct pool_worker *w = p->idle;
  if (w == NULL) return NULL;
  p->idle = w->next_idle;
  w->woken = 1;
  w->counted = 1;
  p->nlooking++;
  return w;
}

/* Under mu: whether to leave queued runs to a thread that is in a call, rather
 * than bring another: while the loop is awake (working on a round). With
 * tiny calls the loop is the bottleneck, and a second thread calling would
 * take the CPU it needs (on 2 CPUs, bench_functions wide: 189-309 ns a task
 * with both threads busy, 192-221 this way); with long calls the loop soon
 * sleeps, or sees the queue stall, and brings the others then. */
static int lazy(const struct thread_pool *p) {
  return p->ncalling > 0 &&
         atomic_load_explicit(&p->loop_sleeping, memory_order_relaxed) == LOOP_AWAKE;
}

/* Under mu: the counts the loop reads without it. */
static void queue_added(struct thread_pool *p, unsigned n) {
  atomic_store_explicit(&p->queued, atomic_load_explicit(&p->queued, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

static void queue_taken(struct thread_pool *p) {
  atomic_store_explicit(&p->queued, atomic_load_explicit(&p->queued, memory_order_relaxed) - 1,
                        memory_order_relaxed);
}

/* Under mu: wait until the queue holds a run this thread can take (*slot:
 * its slot was taken) or the pool stops; first tell the loop about notes if
 * *tell_loop, then spin once, then sleep. */
static void wait_for_run(struct thread_pool *p, struct pool_worker *w, int *tell_loop,
                         int *slot, int64_t *now_ms) {
  int spun = 0;
  while (!p->stopping && !head_ready(p, slot)) {
    stop_looking(p, w); /* it found nothing */
    *now_ms = 0;        /* and the time it read is going stale */
    if (*tell_loop) {
      pthread_mutex_unlock(&p->mu);
      spe__tpool_notify(p);
      *tell_loop = 0;
      pthread_mutex_lock(&p->mu);
    } else if (!spun && p->spinner == NULL && !lazy(p)) {
      /* (While runs are left to a thread in a call, nobody would claim a
       * spinner: it would only take CPU from the loop and that thread.) */
      p->spinner = w;
      atomic_store_explicit(&w->claimed, 0, memory_order_relaxed);
      pthread_mutex_unlock(&p->mu);
      spin_wait(p, w);
      pthread_mutex_lock(&p->mu);
      if (p->spinner == w) p->spinner = NULL; /* not claimed */
      spun = 1;
    } else {
      w->woken = 0;
      w->next_idle = p->idle;
      p->idle = w;
      while (!w->woken) pthread_cond_wait(&w->wake, &p->mu);
    }
  }
}

/* Under mu, `run` just taken off the queue: whether to call it. A run queued
 * ahead is called only if this thread moves it from QUEUED to CALLING (the
 * loop may have withdrawn it); its start is then noted for the loop. */
static int begin(struct thread_pool *p, struct func_run *run, int *tell_loop, int64_t now_ms) {
  if (!run->ahead) return 1;
  /* The start time is written before the state says CALLING: a loop that
   * loses the race to withdraw the run reads it after its failed exchange.
   * A thread that takes a run right after its last call dates it with the
   * time that call ended (read a moment ago): one clock reading a task. */
  atomic_store_explicit(&run->started_ms, now_ms != 0 ? now_ms : spe__now_ms(),
                        memory_order_relaxed);
  int queued = RUN_QUEUED;
  if (!atomic_compare_exchange_strong_explicit(&run->state, &queued, RUN_CALLING,
                                               memory_order_acq_rel, memory_order_acquire))
    return 0;
  if (put_news(p)) *tell_loop = 1;
  return 1;
}

/* The run this thread most likely takes next (while the loop is awake, one
 * thread takes them all: `lazy`): the loop wrote it on another CPU, and
 * reading it is a cache miss per line. Asked for now, its lines come while
 * this thread calls the run it took - only the two a pool thread touches
 * (struct func_run): the call's, and the one it writes back. The others are
 * the loop's own, and asking for them would take them from its cache. */
static void prefetch_run(const struct func_run *run) {
  __builtin_prefetch(run);
  spe__prefetch_write(&run->done_next);
}

static void *worker_main(void *arg) {
  struct pool_worker *w = arg;
  struct thread_pool *p = w->pool;
  int tell_loop = 0, slot = 0;
  int64_t now_ms = 0; /* when the last call ended, while fresh */
  pthread_mutex_lock(&p->mu);
  for (;;) {
    wait_for_run(p, w, &tell_loop, &slot, &now_ms);
    if (p->stopping) break;
    stop_looking(p, w);
    struct func_run *run = p->head;
    p->head = run->next;
    if (p->head == NULL) p->tail = NULL;
    else prefetch_run(p->head);
    queue_taken(p);
    int call = begin(p, run, &tell_loop, now_ms);
    w->current = run;
    p->ncalling++;
    /* More runs wait and no other thread is on its way: wake one now, before
     * a call that may be long (this is how a burst of submits spreads over
     * the threads without the loop paying for the wake-ups) - unless the loop
     * is awake (`lazy`). */
    struct pool_worker *helper =
        p->head != NULL && p->nlooking == 0 && slot_free(p) && !lazy(p) ? take_idle(p) : NULL;
    pthread_mutex_unlock(&p->mu);
    if (helper != NULL) pthread_cond_signal(&helper->wake);
    /* Notes already made reach the loop before this call, however long it
     * takes. */
    if (tell_loop) spe__tpool_notify(p);
    tell_loop = 0;
    now_ms = 0;
    if (call && spe__trun_call(run, p, &w->last)) {
      now_ms = spe__now_ms();
      atomic_store_explicit(&run->ended_ms, now_ms, memory_order_relaxed);
    }
    pthread_mutex_lock(&p->mu);
    tell_loop = put_done(p, run);
    p->ncalling--;
    /* The slot goes back after the end is noted: whoever takes it (the
     * engine, for a command) finds the note there and records that end
     * before its own start (spe__func_has_notes). A run not queued ahead
     * came with the slot its caller took. */
    if (slot || !run->ahead) slot_give(p);
    w->current = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  if (tell_loop) spe__tpool_notify(p);
  return NULL;
}

static int start_thread(struct thread_pool *p, char **msg) {
  struct pool_worker *w = calloc(1, sizeof *w);
  if (w == NULL) {
    spe__msg_set(msg, "out of memory starting a thread");
    return SPE_ENOMEM;
  }
  w->pool = p;
  int e = pthread_cond_init(&w->wake, NULL);
  if (e == 0) {
    e = spe__thread_start(&w->thread, "spe-call", worker_main, w);
    if (e != 0) pthread_cond_destroy(&w->wake);
  }
  if (e != 0) {
    free(w);
    spe__msg_set(msg, "cannot start a thread: %s", strerror(e));
    return SPE_ESYS;
  }
  w->next = p->all;
  p->all = w;
  p->nthreads++;
  return 0;
}

/* Take `run` back out of the queue (the loop's thread; no thread runs). */
static void unqueue(struct thread_pool *p, struct func_run *run) {
  pthread_mutex_lock(&p->mu);
  struct func_run **link = &p->head, *prev = NULL;
  while (*link != NULL && *link != run) {
    prev = *link;
    link = &prev->next;
  }
  if (*link == run) {
    *link = run->next;
    if (p->tail == run) p->tail = prev;
    queue_taken(p);
  }
  pthread_mutex_unlock(&p->mu);
}

/* Under mu, runs wait: the thread to wake for them, if one should be woken
 * (the spinner is only claimed: it sees its flag within a microsecond, and no
 * system call is made); *none_idle says whether every thread is busy. */
static struct pool_worker *wake_for_queue(struct thread_pool *p, int *none_idle) {
  *none_idle = 0;
  struct pool_worker *spinner = p->spinner;
  if (spinner != NULL) {
    p->spinner = NULL;
    spinner->counted = 1;
    p->nlooking++;
    atomic_store_explicit(&spinner->claimed, 1, memory_order_release);
    return NULL;
  }
  /* A thread already on its way to the queue takes this run too, or wakes
   * another for it (worker_main): only when none is is one woken here. */
  struct pool_worker *w = p->nlooking == 0 ? take_idle(p) : NULL;
  *none_idle = w == NULL && p->idle == NULL && p->nlooking == 0;
  return w;
}

/* Under mu: whether a thread could take the first run now (without taking
 * anything). */
static int runnable(const struct thread_pool *p) {
  const struct func_run *run = p->head;
  if (run == NULL) return 0;
  if (!run->ahead || slot_free(p)) return 1;
  return atomic_load_explicit(&run->state, memory_order_relaxed) == RUN_WITHDRAWN;
}

/* Entered with mu held, runs just queued; releases mu. Makes sure a thread
 * comes for them: the spinner, a sleeping thread, or a new one if none
 * sleeps and fewer than max_threads run - unless the first run needs a slot
 * and none is free (a thread that returns from its call comes back to the
 * queue, and a slot freed elsewhere comes with a kick). */
static int come_for_queue(struct thread_pool *p, int force, char **msg) {
  if (!runnable(p) || (!force && lazy(p))) {
    pthread_mutex_unlock(&p->mu);
    return 0;
  }
  int none_idle;
  struct pool_worker *w = wake_for_queue(p, &none_idle);
  pthread_mutex_unlock(&p->mu);
  if (w != NULL) {
    pthread_cond_signal(&w->wake);
    return 0;
  }
  /* No thread sleeps: every one is busy or on its way, or there is none
   * yet. While there may be more threads, one more is what `workers` asks
   * for: a busy thread may be busy for long. */
  if (!none_idle || p->nthreads >= p->max_threads) return 0;
  int rc = start_thread(p, msg);
  if (rc == 0) return 0;
  if (p->nthreads > 0) {
    /* The threads there are will do (*msg says why there are no more), and
     * no more are tried: the system said no. */
    p->max_threads = p->nthreads;
    return 0;
  }
  return rc;
}

int spe__tpool_submit(struct thread_pool *p, struct func_run *run, char **msg) {
  pthread_mutex_lock(&p->mu);
  if (!run->ahead && p->slots != NULL) {
    /* It holds its slot: before every run that waits for one. */
    run->next = p->head;
    p->head = run;
    if (p->tail == NULL) p->tail = run;
  } else {
    run->next = NULL;
    if (p->tail) p->tail->next = run;
    else p->head = run;
    p->tail = run;
  }
  queue_added(p, 1);
  int rc = come_for_queue(p, 0, msg);
  if (rc != 0) unqueue(p, run);
  return rc;
}

void spe__tpool_submit_list(struct thread_pool *p, struct func_run *head, struct func_run *tail,
                            unsigned n, char **msg) {
  tail->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->tail) p->tail->next = head;
  else p->head = head;
  p->tail = tail;
  queue_added(p, n);
  (void)come_for_queue(p, 0, msg); /* a thread runs already: it cannot fail */
}

void spe__tpool_kick(struct thread_pool *p, char **msg) {
  pthread_mutex_lock(&p->mu);
  (void)come_for_queue(p, 0, msg);
}

struct func_run *spe__tpool_take_notes(struct thread_pool *p, struct func_run **calling) {
  *calling = NULL;
  pthread_mutex_lock(&p->mu);
  struct func_run *list = p->done_head;
  p->done_head = p->done_tail = NULL;
  p->notified = 0;
  atomic_store_explicit(&p->has_notes, 0, memory_order_relaxed);
  /* The calls under way: their threads' previous calls are in the list (or
   * an earlier one). `start_reported` and `start_next` are the loop's own. */
  if (p->ncalling > 0) {
    for (struct pool_worker *w = p->all; w != NULL; w = w->next) {
      struct func_run *run = w->current;
      if (run == NULL || !run->ahead || run->start_reported) continue;
      run->start_next = *calling;
      *calling = run;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return list;
}

struct func_run *spe__tpool_stop(struct thread_pool *p) {
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  struct func_run *queued = p->head;
  p->head = p->tail = NULL;
  atomic_store_explicit(&p->queued, 0, memory_order_relaxed);
  for (struct pool_worker *w = p->all; w != NULL; w = w->next)
    if (w->current != NULL) atomic_store_explicit(&w->current->cancelled, 1, memory_order_relaxed);
  for (struct pool_worker *w = p->idle; w != NULL; w = w->next_idle) w->woken = 1;
  p->idle = NULL;
  if (p->spinner != NULL) atomic_store_explicit(&p->spinner->claimed, 1, memory_order_release);
  p->spinner = NULL;
  pthread_mutex_unlock(&p->mu);

  for (struct pool_worker *w = p->all; w != NULL; w = w->next) pthread_cond_signal(&w->wake);
  for (struct pool_worker *w = p->all; w != NULL; w = w->next) pthread_join(w->thread, NULL);

  /* Every thread has ended: the lists are ours. Every run taken off the
   * queue is in the list of runs done. */
  struct func_run *list = queued;
  for (struct func_run *run = p->done_head, *next; run != NULL; run = next) {
    next = run->done_next;
    run->next = list;
    list = run;
  }
  p->done_head = p->done_tail = NULL;
  return list;
}

void spe__tpool_destroy(struct thread_pool *p) {
  for (struct pool_worker *w = p->all, *next; w != NULL; w = next) {
    next = w->next;
    pthread_cond_destroy(&w->wake);
    free(w);
  }
  p->all = NULL;
  p->nthreads = 0;
  pthread_mutex_destroy(&p->mu);
  if (p->efd >= 0) close(p->efd);
  p->efd = -1;
}
