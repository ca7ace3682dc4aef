/*
 * What happens to tasks: jobs start and are cancelled, ready tasks are picked
 * and spawned, outcomes are applied (success frees successors, failure retries
 * or marks everything downstream not_run), jobs finish. Engine thread only.
 */
#include "engine/engine_impl.h"

#include "base/clock.h"
#include "base/msg.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char empty_input[] = "{}";

/* ---- job runs ---- */

struct job_run *spe__job_run_new(struct job_def *def, uint32_t order) {
  /* Aligned as its first line asks (struct job_run). */
  struct job_run *job = aligned_alloc(_Alignof(struct job_run), sizeof *job);
  if (job == NULL) return NULL;
  memset(job, 0, sizeof *job);
  job->tasks = calloc(def->ntasks, sizeof *job->tasks);
  job->hot = calloc(def->ntasks ? def->ntasks : 1, sizeof *job->hot);
  job->wait = calloc(def->ntasks ? def->ntasks : 1, 1);
  job->block_round = calloc(def->ntasks / 64 + 1, sizeof *job->block_round);
  /* Counts that do not fit a byte, if some task has that many upstream. */
  int big = 0;
  for (uint32_t t = 0; t < def->ntasks && !big; t++)
    big = def->pred_off[t + 1] - def->pred_off[t] >= SPE_WAIT_BIG;
  if (big) job->wait_big = calloc(def->ntasks, sizeof *job->wait_big);
  if (def->npriority > 0 && (job->by_rank = malloc(def->ntasks * sizeof *job->by_rank)) != NULL)
    for (uint32_t t = 0; t < def->ntasks; t++) job->by_rank[def->rank[t]] = t;
  if (job->tasks == NULL || job->hot == NULL || job->wait == NULL || job->block_round == NULL ||
      (big && job->wait_big == NULL) || (def->npriority > 0 && job->by_rank == NULL) ||
      spe__ready_set_init(&job->ready, job, def->ntasks, order, job->by_rank) != 0) {
    free(job->tasks);
    free(job->hot);
    free(job->wait);
    free(job->wait_big);
    free(job->block_round);
    free(job->by_rank);
    free(job);
    return NULL;
  }
  job->def = def;
  job->order = order;
  job->status = job->visible = JOB_SUBMITTED;
  job->remaining = def->ntasks;
  job->all_exec = 1;
  for (uint32_t t = 0; t < def->ntasks; t++) {
    if (def->tasks[t].body != TASK_EXEC) job->all_exec = 0;
    if (def->tasks[t].timeout_ms > 0) job->any_timeout = 1;
    job->hot[t].status = TASK_PENDING;
    job->tasks[t].blocked_by = -1;
    spe__wait_set(job, t, def->pred_off[t + 1] - def->pred_off[t]);
  }
  return job;
}

void spe__job_run_free(struct job_run *job) {
  if (job == NULL) return;
  for (uint32_t t = 0; t < job->def->ntasks; t++) {
    json_decref(job->tasks[t].result);
    json_decref(job->tasks[t].error);
  }
  free(job->tasks);
  free(job->hot);
  free(job->wait);
  free(job->wait_big);
  free(job->block_round);
  spe__ready_set_free(&job->ready); /* out of the queue (a prune, or the end) */
  free(job->by_rank);
  spe__job_free(job->def);
  free(job);
}

/* Task t's rank: without priorities, its index (job_graph.c). */
static inline uint32_t task_rank(const struct job_run *job, uint32_t t) {
  return job->def->npriority > 0 ? job->def->rank[t] : t;
}

/* The round a ready task of rank `rank` waits for: its block's
 * (job_run.block_round). */
static inline uint32_t *block_round(const struct job_run *job, uint32_t rank) {
  return &job->block_round[rank / 64];
}

void spe__engine_push_ready(struct engine *eng, struct job_run *job, uint32_t t,
                            uint32_t round) {
  uint32_t rank = task_rank(job, t);
  /* 0 for every task whose inputs are durable: a job's million roots are
   * queued without writing a round. */
  uint32_t *r = block_round(job, rank);
  if (round > *r) *r = round;
  if (spe__ready_push(&eng->ready, &job->ready, rank) != 0)
    spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory queueing task \"%s\"",
             job->def->tasks[t].name);
}

static void retry_unlink(struct engine *eng, struct retry_timer *r) {
  if (r->prev) r->prev->next = r->next;
  else eng->retries = r->next;
  if (r->next) r->next->prev = r->prev;
}

/* ---- job life cycle ---- */

void spe__engine_finish_if_done(struct engine *eng, struct job_run *job) {
  if (job->remaining > 0 || spe__job_finished(job->status)) return;
  job->status = job->cancelling ? JOB_CANCELLED : job->failed ? JOB_FAILED : JOB_SUCCEEDED;
  job->finished_ms = spe__now_ms();
  eng->unfinished--; /* counted on submit or recovery */
  spe__record_job(eng, job);
  json_t *ev = spe__event_new(eng, job, "job_finished");
  if (ev) {
    json_object_set_new(ev, "status", json_string(spe__job_status_name(job->status)));
    json_object_set_new(ev, "tasks", spe__tasks_json(job));
    spe__record_event(eng, ev);
  }
  job->next_finished = eng->fill->finished;
  eng->fill->finished = job;
  spe__log(&eng->cfg.log, SPE_LOG_DEBUG, "job %s \"%s\" %s", job->id, job->def->name,
           spe__job_status_name(job->status));
}

/* Queue a starting job's roots (its tasks without upstream tasks). Without
 * priorities rank and task are the same: 64 at a time (a million roots are
 * queued in a millisecond, not in tens). */
static void queue_roots(struct engine *eng, struct job_run *job) {
  uint32_t n = job->def->ntasks;
  if (job->def->npriority > 0) {
    for (uint32_t t = 0; t < n; t++)
      if (job->wait[t] == 0) spe__engine_push_ready(eng, job, t, 0);
    return;
  }
  for (uint32_t base = 0; base < n; base += 64) {
    uint32_t end = n - base < 64 ? n - base : 64;
    uint64_t mask = 0;
    for (uint32_t i = 0; i < end; i++) mask |= (uint64_t)(job->wait[base + i] == 0) << i;
    if (mask != 0 && spe__ready_push_word(&eng->ready, &job->ready, base / 64, mask) != 0) {
      spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory queueing the tasks of job %s",
               job->id);
      return;
    }
  }
}

/* A ready entry left over from a job that will not start it (cancelled, or
 * the task is no longer pending): dropped when it comes to the top. */
static int entry_stale(const struct job_run *job, uint32_t t) {
  return job->status != JOB_RUNNING || job->cancelling || job->hot[t].status != TASK_PENDING;
}

/* The round a ready task waits for (spe__engine_push_ready). */
static uint32_t take_round(const struct job_run *job, uint32_t t) {
  return *block_round(job, task_rank(job, t));
}

/* A task taken off the ready queue. */
struct ready_pick {
  struct job_run *job;
  uint32_t task, round;
};

/* Take the first ready task into *e. */
static void take_top(struct engine *eng, struct ready_pick *e) {
  struct ready_set *set = spe__ready_peek(&eng->ready, &e->task);
  e->job = set->job;
  e->round = take_round(e->job, e->task);
  spe__ready_pop(&eng->ready);
}

/* Drop the first ready task, stale: a job that will start nothing more loses
 * all its ready tasks at once. */
static void drop_top(struct engine *eng) {
  uint32_t t;
  struct ready_set *set = spe__ready_peek(&eng->ready, &t);
  struct job_run *job = set->job;
  if (job->status != JOB_RUNNING || job->cancelling) {
    /* Its blocks' rounds stay: rounds only grow, so an old one reads as
     * durable if a task is ever queued there again. */
    spe__ready_remove(&eng->ready, set);
    return;
  }
  spe__ready_pop(&eng->ready);
}

void spe__engine_job_start(struct engine *eng, struct job_run *job) {
  job->status = JOB_RUNNING;
  job->started_ms = spe__now_ms();
  spe__record_job(eng, job);
  spe__record_event(eng, spe__event_new(eng, job, "job_started"));
  queue_roots(eng, job);
}

static void mark_not_run(struct engine *eng, struct job_run *job, uint32_t t, int32_t by) {
  struct task_state *ts = &job->tasks[t];
  job->hot[t].status = TASK_NOT_RUN;
  ts->blocked_by = by;
  job->remaining--;
  eng->stats.tasks_not_run++;
  spe__record_task(eng, job, t);
  json_t *ev = spe__event_new(eng, job, "task_not_run");
  if (ev) {
    json_object_set_new(ev, "task", json_string(job->def->tasks[t].name));
    if (by >= 0) json_object_set_new(ev, "blocked_by", json_string(job->def->tasks[by].name));
    spe__record_event(eng, ev);
  }
}

/* Everything downstream of failed task f that has not run becomes not_run. Each
 * task is visited once: O(downstream edges). */
void spe__engine_block_downstream(struct engine *eng, struct job_run *job, uint32_t f) {
  const struct job_def *def = job->def;
  uint32_t cap = 16, len = 0;
  uint32_t *stack = malloc(cap * sizeof *stack);
  if (stack == NULL) return;
  stack[len++] = f;
  while (len > 0) {
    uint32_t u = stack[--len];
    for (uint32_t e = def->succ_off[u]; e < def->succ_off[u + 1]; e++) {
      uint32_t s = def->succ[e];
      if (job->hot[s].status != TASK_PENDING) continue;
      mark_not_run(eng, job, s, (int32_t)f);
      if (len == cap) {
        uint32_t *bigger = realloc(stack, (cap *= 2) * sizeof *stack);
        if (bigger == NULL) break;
        stack = bigger;
      }
      stack[len++] = s;
    }
  }
  free(stack);
}

/* ---- slots and attempts queued ahead (struct attempt) ---- */

/* Whether task t is a thread-isolated call (all_exec spares reading its
 * definition). */
static int thread_call(const struct engine *eng, const struct job_run *job, uint32_t t) {
  return eng->thread_iso && (job->all_exec || job->def->tasks[t].body == TASK_EXEC);
}

static int goes_ahead(const struct engine *eng, const struct job_run *job, uint32_t t) {
  return !job->careful && thread_call(eng, job, t);
}

static void slot_give(struct engine *eng) {
  atomic_fetch_add_explicit(&eng->slots, 1, memory_order_release);
  if (eng->queued > 0) spe__func_slot_freed(eng->func); /* a run may take it */
}

/* Attempts are recycled: a stream of tiny tasks then allocates none. */
#define FREE_ATTEMPTS_MAX 4096

static struct attempt *attempt_new(struct engine *eng) {
  struct attempt *a = eng->free_attempts;
  if (a == NULL) return calloc(1, sizeof *a);
  eng->free_attempts = a->next;
  eng->nfree_attempts--;
  memset(a, 0, sizeof *a);
  return a;
}

static void attempt_free(struct engine *eng, struct attempt *a) {
  if (eng->nfree_attempts >= FREE_ATTEMPTS_MAX) {
    free(a);
    return;
  }
  a->next = eng->free_attempts;
  eng->free_attempts = a;
  eng->nfree_attempts++;
}

void spe__engine_free_attempts(struct engine *eng) {
  while (eng->free_attempts != NULL) {
    struct attempt *a = eng->free_attempts;
    eng->free_attempts = a->next;
    free(a);
  }
  eng->nfree_attempts = 0;
}

static void attempt_unlink(struct engine *eng, struct attempt *a) {
  if (a->prev) a->prev->next = a->next;
  else eng->attempts = a->next;
  if (a->next) a->next->prev = a->prev;
}

/* An attempt is over (or was never begun): out of the engine's list and its
 * counts, its slot given back if the engine holds one. Not freed. */
static void attempt_end(struct engine *eng, struct attempt *a) {
  attempt_unlink(eng, a);
  eng->running--;
  if (a->queued) eng->queued--;
  if (a->slot) slot_give(eng);
}

/* The record of a start: its row, if the store keeps them, and task_started,
 * if anyone can see it. Out of line, like every record on a hot path: with
 * the memory store and nobody subscribed, the path that calls it then needs
 * no stack frame (a tenth of the engine's instructions went to frames kept
 * for calls never made). */
static __attribute__((noinline)) void record_start(struct engine *eng, struct job_run *job,
                                                   uint32_t t, int64_t at_ms) {
  spe__record_task(eng, job, t);
  json_t *ev = spe__event_new_at(eng, job, "task_started", at_ms);
  if (ev) {
    json_object_set_new(ev, "task", json_string(job->def->tasks[t].name));
    json_object_set_new(ev, "attempt", json_integer(job->tasks[t].attempts));
    spe__record_event(eng, ev);
  }
}

static __attribute__((noinline)) void drop_error(struct task_state *ts) {
  json_decref(ts->error);
  ts->error = NULL;
}

/* Task t starts its next attempt at `at_ms`. */
static void mark_started(struct engine *eng, struct job_run *job, uint32_t t, int64_t at_ms) {
  struct task_state *ts = &job->tasks[t];
  job->hot[t].status = TASK_RUNNING;
  ts->attempts++;
  ts->started_ms = at_ms;
  if (ts->error != NULL) drop_error(ts); /* the last attempt's */
  if (eng->keeps_state || spe__events_on(eng)) record_start(eng, job, t, at_ms);
}

/* An attempt queued ahead has started (once; later notes are no-ops). */
static void note_started(struct engine *eng, struct attempt *a, int64_t at_ms) {
  if (!a->queued) return;
  a->queued = 0;
  eng->queued--;
  mark_started(eng, a->job, a->task, at_ms > 0 ? at_ms : spe__now_ms());
}

void spe__engine_on_started(void *ctx, void *task_ctx, int64_t started_ms) {
  note_started(ctx, task_ctx, started_ms);
}

/* Take back an attempt queued ahead. Returns 1 if it had not started: it is
 * gone (the task stays pending, nothing was recorded); 0 if its call had
 * begun: its start is noted and it runs like any other. */
static int unqueue(struct engine *eng, struct attempt *a) {
  int64_t started = 0;
  if (a->frun != NULL && !spe__func_withdraw(eng->func, a->frun, &started)) {
    note_started(eng, a, started);
    return 0;
  }
  attempt_end(eng, a);
  if (a->frun != NULL) attempt_free(eng, a);
  else a->withdrawn = 1; /* still on a list of attempts to spawn, which drops it */
  return 1;
}

/* Withdraw every attempt of `job` (or of every job, NULL) queued ahead whose
 * call has not begun. */
static void unqueue_all(struct engine *eng, const struct job_run *job) {
  if (eng->queued == 0) return;
  for (struct attempt *a = eng->attempts, *next; a; a = next) {
    next = a->next;
    if (a->queued && (job == NULL || a->job == job)) unqueue(eng, a);
  }
}

int spe__engine_can_pick(struct engine *eng) {
  uint32_t t;
  const struct ready_set *set = spe__ready_peek(&eng->ready, &t);
  if (set == NULL) return 0;
  const struct job_run *job = set->job;
  if (entry_stale(job, t)) return 1; /* the pick drops it */
  if (goes_ahead(eng, job, t)) return eng->queued < eng->ahead_cap;
  return atomic_load_explicit(&eng->slots, memory_order_relaxed) > 0;
}

/* Signal a spawned attempt, whichever executor runs it; 0 if not spawned yet. */
static int signal_attempt(struct engine *eng, struct attempt *a, int sig, const char *kind) {
  if (a->run) spe__cmd_signal(eng->cmd, a->run, sig, kind);
  else if (a->frun) spe__func_signal(eng->func, a->frun, sig, kind);
  else return 0;
  return 1;
}

/* Stop the retry timers of `job`, or of every job (NULL). */
static void retries_stop(struct engine *eng, const struct job_run *job) {
  for (struct retry_timer *r = eng->retries, *next; r; r = next) {
    next = r->next;
    if (job != NULL && r->job != job) continue;
    spe__timer_stop(&eng->loop, &r->timer);
    retry_unlink(eng, r);
    free(r);
  }
}

void spe__engine_job_cancel(struct engine *eng, struct job_run *job) {
  if (job->cancelling) return;
  job->cancelling = 1;
  spe__record_event(eng, spe__event_new(eng, job, "job_cancelled"));
  if (job->status == JOB_SUBMITTED) job->status = JOB_RUNNING; /* so that it can finish */
  /* Calls queued ahead and not begun are taken back: those tasks never
   * started. Those that have begun are running tasks like the others. */
  unqueue_all(eng, job);
  /* Tasks not started (including those waiting out a retry) will never run. */
  retries_stop(eng, job);
  for (uint32_t t = 0; t < job->def->ntasks; t++)
    if (job->hot[t].status == TASK_PENDING) mark_not_run(eng, job, t, -1);
  int signalled = 0;
  for (struct attempt *a = eng->attempts; a; a = a->next) {
    if (a->job != job || a->cancelled) continue;
    a->cancelled = 1;
    signal_attempt(eng, a, SIGTERM, "cancelled");
    signalled = 1;
  }
  if (signalled && !spe__timer_active(&eng->grace_timer)) {
    spe__timer_start(&eng->loop, &eng->grace_timer, eng->cfg.grace_ms,
                     spe__engine_grace_expired, eng);
  }
  spe__engine_finish_if_done(eng, job);
}

/* The grace period after SIGTERM is over: SIGKILL what is still there. */
void spe__engine_grace_expired(struct loop *lp, struct timer *t) {
  struct engine *eng = t->data;
  (void)lp;
  for (struct attempt *a = eng->attempts; a; a = a->next)
    if (a->cancelled || a->interrupted)
      signal_attempt(eng, a, SIGKILL, a->cancelled ? "cancelled" : NULL);
}

void spe__engine_stop_tasks(struct engine *eng) {
  /* Tasks waiting out a backoff stay pending: a later run starts them. */
  retries_stop(eng, NULL);
  /* Calls queued ahead and not begun are taken back: they stay pending. */
  unqueue_all(eng, NULL);
  int signalled = 0;
  for (struct attempt *a = eng->attempts; a; a = a->next) {
    if (a->cancelled) continue;
    a->interrupted = 1;
    if (signal_attempt(eng, a, SIGTERM, NULL)) signalled = 1;
  }
  if (signalled) {
    spe__log(&eng->cfg.log, SPE_LOG_INFO,
             "stopping: sent SIGTERM to %u running task(s), SIGKILL in %d ms", eng->running,
             eng->cfg.grace_ms);
    spe__timer_start(&eng->loop, &eng->grace_timer, eng->cfg.grace_ms,
                     spe__engine_grace_expired, eng);
  }
}

/* ---- picking and spawning ---- */

static int list_add(struct attempt_list *l, struct attempt *a) {
  if (l->len == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 64;
    struct attempt **items = realloc(l->items, cap * sizeof *items);
    if (items == NULL) return SPE_ENOMEM;
    l->items = items;
    l->cap = cap;
  }
  l->items[l->len++] = a;
  return 0;
}

/* A picked task becomes an attempt. `round`: the round it waits for
 * (take_round). 0, or
 * SPE_ENOMEM (the task is not picked). Inline: a call of its own in
 * pick_ahead's loop cost a tenth of the engine's instructions a task. */
static inline int add_attempt(struct engine *eng, struct job_run *job, uint32_t t,
                              uint32_t round, int ahead) {
  struct attempt *a = attempt_new(eng);
  if (a == NULL) return SPE_ENOMEM;
  /* A task whose inputs a committed set recorded may start at once: nothing
   * it depends on can be lost. One freed by a set not yet durable waits for
   * that set (it is the current one, or the one in flight). Its own start is
   * committed with the current set: a crash before that re-runs it (at
   * least once), uncounted. So a job recovered from a crash - which may have
   * been caused by one of its tasks - starts nothing early: each start is
   * durable first, and a task that keeps killing the executor reaches the
   * lost-attempt limit. */
  struct attempt_list *l = job->careful                 ? &eng->fill->waiting
                           : round <= eng->durable_gen ? &eng->early
                           : round == eng->fill->gen   ? &eng->fill->waiting
                                                       : &eng->flight->waiting;
  if (list_add(l, a) != 0) {
    attempt_free(eng, a);
    return SPE_ENOMEM;
  }
  a->job = job;
  a->task = t;
  a->next = eng->attempts;
  if (eng->attempts) eng->attempts->prev = a;
  eng->attempts = a;
  eng->running++;
  if (ahead) {
    /* Nothing changes until the pool says the call began. */
    a->queued = 1;
    eng->queued++;
  } else {
    a->slot = 1; /* the caller took it */
  }
  return 0;
}

/* Pick the first ready tasks of a job whose every task goes ahead (thread
 * isolation, all `exec`, running, not careful), many at once: up to the room
 * left ahead, and as long as they come before every other job's. A million
 * tiny tasks cost one bit each here, not a trip through the heap. Returns 0
 * when the room is full. */
static int pick_ahead(struct engine *eng, struct job_run *job) {
  uint32_t tasks[64];
  uint32_t room = eng->ahead_cap - eng->queued;
  if (room == 0) return 0;
  uint32_t n = spe__ready_take(&eng->ready, tasks, room < 64 ? room : 64);
  /* What the picks read, and what the spawn and the outcome a round trip
   * later read, is scattered over the job (and each job in turn is another
   * few hundred KiB): cache misses, and each one a task waited for, one
   * after the other, was most of a pick. Asked for a whole batch at a time,
   * stage by stage (each stage's addresses are read from the last one's
   * lines), they are fetched together. */
  const struct job_def *def = job->def;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t t = tasks[i];
    __builtin_prefetch(&job->hot[t], 1);
    __builtin_prefetch(&def->succ_off[t]);
    /* The spawn's: whether the task has an input, and its attempts (a
     * 56-byte record: half of them begin on one line and go on on the
     * next, where `attempts` is). */
    __builtin_prefetch(&def->pred_off[t]);
    __builtin_prefetch(&job->tasks[t], 1);
    __builtin_prefetch(&job->tasks[t].attempts, 1);
  }
  for (uint32_t i = 0; i < n; i++) __builtin_prefetch(&def->succ[def->succ_off[tasks[i]]]);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t t = tasks[i];
    uint32_t round = take_round(job, t);
    /* The outcome's: the successors' counts. */
    for (uint32_t e = def->succ_off[t]; e < def->succ_off[t + 1]; e++)
      __builtin_prefetch(&job->wait[def->succ[e]], 1);
    if (job->hot[t].status != TASK_PENDING) continue; /* a stale entry: dropped */
    if (add_attempt(eng, job, t, round, 1) != 0) {
      /* Put back what was taken and not picked (their blocks keep their
       * rounds). */
      for (uint32_t k = i; k < n; k++)
        if (job->hot[tasks[k]].status == TASK_PENDING)
          spe__engine_push_ready(eng, job, tasks[k], 0);
      spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory picking tasks");
      return 0;
    }
  }
  return 1;
}

void spe__engine_pick(struct engine *eng) {
  const struct ready_set *top;
  struct ready_pick e;
  uint32_t t;
  int ahead = 0, have_slot = 0; /* a slot taken for the task at the top */
  while ((top = spe__ready_peek(&eng->ready, &t)) != NULL) {
    struct job_run *job = top->job;
    /* Entries of cancelled jobs stay in the heap and are dropped here. */
    if (entry_stale(job, t)) {
      drop_top(eng);
      continue;
    }
    if (eng->thread_iso && job->all_exec && !job->careful) {
      if (have_slot) { /* what was ready changed while it was held */
        slot_give(eng);
        have_slot = 0;
      }
      if (!pick_ahead(eng, job)) return;
      continue;
    }
    ahead = goes_ahead(eng, job, t);
    if (ahead && have_slot) { /* what was ready changed while it was held */
      slot_give(eng);
      have_slot = 0;
    }
    if (ahead && eng->queued >= eng->ahead_cap) return;
    if (!ahead && !have_slot) {
      if (!spe__slot_take(&eng->slots)) return;
      have_slot = 1;
      if (eng->thread_iso && spe__func_has_notes(eng->func)) {
        /* The slot may be one a call just gave back: record that call's end
         * (and whatever else the pool noted) before this task's start, so
         * that the events, in seq order, never show more than `workers` at
         * once. That may change what is ready: look again from the top,
         * keeping the slot. */
        spe__func_poll(eng->func);
        continue;
      }
    }
    take_top(eng, &e);
    /* Its spawn, after this round's picks, reads its definition and record:
     * in a big job (or many jobs at once) cache misses, fetched now in the
     * background rather than then, one after the other. */
    __builtin_prefetch(&job->def->tasks[e.task]);
    __builtin_prefetch(&job->tasks[e.task], 1);
    if (add_attempt(eng, job, e.task, e.round, ahead) != 0) goto nomem;
    if (!ahead) {
      have_slot = 0; /* the attempt holds it */
      mark_started(eng, job, e.task, spe__now_ms());
    }
  }
  if (have_slot) slot_give(eng); /* the task it was for went away */
  return;
nomem:
  if (have_slot) slot_give(eng);
  spe__engine_push_ready(eng, e.job, e.task, e.round);
  spe__log(&eng->cfg.log, SPE_LOG_ERROR, "out of memory picking tasks");
}

/* Start a thread-isolated call. It borrows from the job, which outlives it
 * (input.c): it reads its task's definition, and builds its input if it
 * asks, itself, on its own thread. */
static int spawn_call(struct engine *eng, struct attempt *a, uint32_t attempt,
                      uint64_t timeout_ms, struct task_outcome *failed) {
  struct job_run *job = a->job;
  struct call_req req = {
      .ctx = job,
      .task = a->task,
      .attempt = attempt,
      .timeout_ms = timeout_ms,
      .input = spe__input_none(job, a->task) ? eng->empty_input : NULL,
      .ahead = a->queued,
  };
  int rc = spe__func_call(eng->func, &req, a, &a->frun, failed);
  if (rc != 0) return rc;
  job->calls++;
  a->slot = 0; /* the call gives its slot back itself when it returns */
  return 0;
}

/* Start an exec task in a worker process. */
static int spawn_function(struct engine *eng, struct attempt *a, struct task_launch *launch,
                          struct task_outcome *failed) {
  launch->ahead = a->queued;
  const struct task_def *td = &a->job->def->tasks[a->task];
  launch->function = td->cmd;
  launch->arg = td->arg;
  launch->input_json = spe__input_none(a->job, a->task) ? json_incref(eng->empty_input)
                                                        : spe__input_build(a->job, a->task);
  if (launch->input_json == NULL) {
    failed->error = spe__error_new("error", "out of memory building the task's input");
    return SPE_ENOMEM;
  }
  int rc = spe__func_start(eng->func, launch, a, &a->frun, failed);
  json_decref(launch->input_json);
  return rc;
}

static void apply_outcome(struct engine *eng, struct attempt *a, struct task_outcome *out);

/* An attempt that could not start: it failed at once, with failed->error
 * (a generic one if that is NULL). */
static __attribute__((noinline)) void spawn_failed(struct engine *eng, struct attempt *a,
                                                   struct task_outcome *failed) {
  if (failed->error == NULL) failed->error = spe__error_new("error", "cannot start the task");
  failed->started_ms = failed->finished_ms = spe__now_ms();
  apply_outcome(eng, a, failed);
}

/* Start an attempt that is not a thread-isolated call: a command, or a
 * function in a worker process. Out of line: the thread-isolated calls of
 * spawn_one are the ones that come by the million. */
static __attribute__((noinline)) void spawn_other(struct engine *eng, struct attempt *a) {
  struct job_run *job = a->job;
  struct task_outcome failed = {0};
  const struct task_def *td = &job->def->tasks[a->task];
  struct task_launch launch = {
      .job_id = job->id,
      .job_name = job->def->name,
      .task_name = td->name,
      /* An attempt queued ahead is counted when it starts. */
      .attempt = job->tasks[a->task].attempts + a->queued,
      .timeout_ms = td->timeout_ms,
      .max_result_bytes = eng->cfg.max_result_bytes,
  };
  if (td->body == TASK_EXEC) {
    if (spawn_function(eng, a, &launch, &failed) == 0) return;
    spawn_failed(eng, a, &failed);
    return;
  }
  size_t input_len = sizeof empty_input - 1;
  char *input = spe__input_none(job, a->task) ? (char *)empty_input
                                              : spe__input_text(job, a->task, &input_len);
  if (input == NULL) {
    failed.error = spe__error_new("error", "out of memory building the task's input");
    spawn_failed(eng, a, &failed);
    return;
  }
  launch.cmd = td->body == TASK_CMD ? td->cmd : NULL;
  launch.argv = td->body == TASK_ARGV ? td->argv : NULL;
  launch.cwd = td->cwd ? td->cwd : job->def->cwd;
  launch.env_job = job->def->env;
  launch.env_task = td->env;
  launch.input = input;
  launch.input_len = input_len;
  int rc = spe__cmd_start(eng->cmd, &launch, a, &a->run, &failed);
  if (input != empty_input) free(input);
  if (rc != 0) spawn_failed(eng, a, &failed);
}

static void spawn_one(struct engine *eng, struct attempt *a) {
  struct job_run *job = a->job;
  if (a->withdrawn) { /* taken back before its turn came: already forgotten */
    attempt_free(eng, a);
    return;
  }
  if (a->cancelled || a->interrupted) {
    /* Cancelled or stopped while it waited for its inputs' commit. */
    struct task_outcome failed = {0};
    failed.error = spe__error_new("cancelled", "the job was cancelled");
    spawn_failed(eng, a, &failed);
    return;
  }
  if (!thread_call(eng, job, a->task)) {
    spawn_other(eng, a);
    return;
  }
  /* The call reads its task's definition itself (spawn_call): here only the
   * timeout, if the job has any. An attempt queued ahead is counted when it
   * starts. */
  struct task_outcome failed;
  if (spawn_call(eng, a, job->tasks[a->task].attempts + a->queued,
                 job->any_timeout ? job->def->tasks[a->task].timeout_ms : 0, &failed) != 0)
    spawn_failed(eng, a, &failed);
}

void spe__engine_spawn_list(struct engine *eng, struct attempt_list *l) {
  /* spawn_one may pick nothing and add to no list, so iterating is safe. */
  for (uint32_t i = 0; i < l->len; i++) spawn_one(eng, l->items[i]);
  if (l->len > 0) spe__func_flush(eng->func);
  l->len = 0;
}

void spe__engine_drop_list(struct engine *eng, struct attempt_list *l) {
  for (uint32_t i = 0; i < l->len; i++) {
    struct attempt *a = l->items[i];
    if (a->withdrawn) {
      attempt_free(eng, a);
      continue;
    }
    if (!a->queued) {
      a->job->hot[a->task].status = TASK_PENDING;
      a->job->tasks[a->task].attempts--;
    }
    attempt_end(eng, a);
    attempt_free(eng, a);
  }
  l->len = 0;
}

/* ---- outcomes ---- */

static void retry_fire(struct loop *lp, struct timer *t) {
  struct retry_timer *r = (struct retry_timer *)t;
  struct engine *eng = r->eng;
  (void)lp;
  retry_unlink(eng, r);
  if (r->job->hot[r->task].status == TASK_PENDING && !r->job->cancelling)
    spe__engine_push_ready(eng, r->job, r->task, 0);
  free(r);
}

static int schedule_retry(struct engine *eng, struct job_run *job, uint32_t t, int64_t *delay) {
  struct retry_timer *r = calloc(1, sizeof *r);
  if (r == NULL) return -1;
  uint32_t n = job->tasks[t].attempts; /* the attempt that just failed */
  int64_t d = eng->cfg.backoff_base_ms;
  for (uint32_t i = 1; i < n && d < eng->cfg.backoff_max_ms; i++) d *= 2;
  if (d > eng->cfg.backoff_max_ms) d = eng->cfg.backoff_max_ms;
  *delay = d;
  r->eng = eng;
  r->job = job;
  r->task = t;
  spe__timer_init(&r->timer);
  if (spe__timer_start(&eng->loop, &r->timer, d, retry_fire, r) != 0) {
    free(r);
    return -1;
  }
  r->next = eng->retries;
  if (eng->retries) eng->retries->prev = r;
  eng->retries = r;
  return 0;
}

/* task_terminated, dated when the attempt ended (its outcome's end). */
static json_t *terminated_event(struct engine *eng, struct job_run *job, uint32_t t,
                                const char *status, const struct task_outcome *out) {
  json_t *ev = spe__event_new_at(eng, job, "task_terminated",
                                 out->finished_ms > 0 ? out->finished_ms : spe__now_ms());
  if (ev == NULL) return NULL;
  json_object_set_new(ev, "task", json_string(job->def->tasks[t].name));
  json_object_set_new(ev, "attempt", json_integer(job->tasks[t].attempts));
  json_object_set_new(ev, "status", json_string(status));
  return ev;
}

static void apply_failure(struct engine *eng, struct attempt *a, struct task_outcome *out) {
  struct job_run *job = a->job;
  uint32_t t = a->task;
  struct task_state *ts = &job->tasks[t];
  const struct task_def *td = &job->def->tasks[t];
  json_t *ev = terminated_event(eng, job, t, "failed", out);
  if (ev) json_object_set(ev, "error", out->error);
  int64_t delay = 0;
  if (!a->cancelled && !job->cancelling && ts->attempts <= td->retries &&
      schedule_retry(eng, job, t, &delay) == 0) {
    /* Not failed yet: the task waits for its next attempt as pending. */
    json_object_set_new(ev, "retry_in_ms", json_integer(delay));
    job->hot[t].status = TASK_PENDING;
    json_decref(out->error);
    spe__record_task(eng, job, t);
    spe__record_event(eng, ev);
    return;
  }
  job->hot[t].status = TASK_FAILED;
  ts->error = out->error;
  ts->finished_ms = out->finished_ms;
  job->failed++;
  job->remaining--;
  eng->stats.tasks_failed++;
  spe__record_task(eng, job, t);
  spe__record_event(eng, ev);
  spe__engine_block_downstream(eng, job, t);
}

/* Stopped by a shutdown: the attempt does not count; a later run starts the
 * task again. */
static __attribute__((noinline)) void apply_interrupted(struct engine *eng, struct attempt *a,
                                                        struct task_outcome *out) {
  struct job_run *job = a->job;
  uint32_t t = a->task;
  spe__record_event(eng, terminated_event(eng, job, t, "interrupted", out));
  job->hot[t].status = TASK_PENDING;
  job->tasks[t].attempts--;
  json_decref(out->result);
  json_decref(out->error);
  spe__record_task(eng, job, t);
}

/* A failure, or an attempt of a cancelled job (which fails as cancelled,
 * however it ended). */
static __attribute__((noinline)) void apply_failed(struct engine *eng, struct attempt *a,
                                                   struct task_outcome *out) {
  if (out->succeeded || a->cancelled) {
    json_decref(out->result);
    json_decref(out->error);
    out->error = spe__error_new("cancelled", "the job was cancelled");
  }
  apply_failure(eng, a, out);
}

/* The record of a success: its row and task_terminated (as record_start). */
static __attribute__((noinline)) void record_success(struct engine *eng, struct job_run *job,
                                                     uint32_t t, const struct task_outcome *out) {
  spe__record_task(eng, job, t);
  json_t *ev = terminated_event(eng, job, t, "succeeded", out);
  if (ev) json_object_set(ev, "result", job->tasks[t].result);
  spe__record_event(eng, ev);
}

static void apply_outcome(struct engine *eng, struct attempt *a, struct task_outcome *out) {
  struct job_run *job = a->job;
  uint32_t t = a->task;
  /* One that failed to start, queued ahead: it started, and ended at once. */
  note_started(eng, a, out->started_ms);
  attempt_end(eng, a);

  if (a->interrupted && !a->cancelled) {
    apply_interrupted(eng, a, out);
  } else if (out->succeeded && !a->cancelled) {
    struct task_state *ts = &job->tasks[t];
    job->hot[t].status = TASK_SUCCEEDED;
    ts->result = out->result ? out->result : json_null();
    ts->finished_ms = out->finished_ms;
    job->remaining--;
    eng->stats.tasks_succeeded++;
    if (eng->keeps_state || spe__events_on(eng)) record_success(eng, job, t, out);
    const struct job_def *def = job->def;
    uint32_t first = def->succ_off[t], end = def->succ_off[t + 1];
    /* The successors' counts were asked for at the pick (pick_ahead). */
    for (uint32_t e = first; e < end; e++) {
      uint32_t s = def->succ[e];
      /* Its status is not read here: a task whose count reaches 0 is
       * pending, unless its job was cancelled (or a recovered job's records
       * disagree), and the pick drops what is not pending (entry_stale).
       * The read was a miss for every task freed, when the statuses were in
       * 12-byte records. */
      if (spe__wait_drop(job, s)) spe__engine_push_ready(eng, job, s, eng->fill->gen);
    }
  } else {
    apply_failed(eng, a, out);
  }
  attempt_free(eng, a);
  if (job->remaining == 0) spe__engine_finish_if_done(eng, job);
}

void spe__engine_on_done(void *ctx, void *task_ctx, struct task_outcome *out) {
  apply_outcome(ctx, task_ctx, out);
}
