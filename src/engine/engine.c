/*
 * The engine thread and its rounds, and the calls other threads make into it.
 * The design is described in engine_impl.h.
 */
#include "engine/engine_impl.h"
#include "base/thread.h"

#include "base/clock.h"
#include "base/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- commands (engine thread) ---- */

void spe__engine_answer(struct engine *eng, struct command *c, int rc) {
  c->rc = rc;
  /* Answers wait for the round's commit: a submitted or started job must be
   * durable before its caller hears about it. */
  c->next = eng->fill->replies;
  eng->fill->replies = c;
}

static struct job_run *find_job(struct engine *eng, struct command *c) {
  struct job_run *job = spe__strmap_get(&eng->jobs, c->id);
  if (job == NULL) spe__msg_set(&c->msg, "no job with id \"%s\"", c->id);
  return job;
}

/* A recovered job nobody has resumed yet with the same name and description.
 * A scan of the jobs in memory: resuming happens once per job file.
 *
 * Every unclaimed job was unfinished in the store when the executor opened
 * (submitted jobs are claimed at once), but it may have finished since:
 * recovery itself fails a task at its lost-attempt limit, which can finish the
 * job, and a recovered running job goes on by itself between spe_open() and
 * the submit. It is still the run the caller asked for, so it is resumed all
 * the same; a new job would run again every task whose completion the store
 * had recorded. */
static struct job_run *find_resumable(struct engine *eng, const struct job_def *def) {
  for (size_t i = 0; i < eng->jobs.cap; i++) {
    struct job_run *j = eng->jobs.slots[i].value;
    if (eng->jobs.slots[i].key == NULL || j->claimed) continue;
    if (j->def->canonical_len == def->canonical_len && strcmp(j->def->name, def->name) == 0 &&
        memcmp(j->def->canonical, def->canonical, def->canonical_len) == 0)
      return j;
  }
  return NULL;
}

static void do_submit(struct engine *eng, struct command *c) {
  struct job_run *found = c->resume ? find_resumable(eng, c->def) : NULL;
  if (found != NULL) {
    found->claimed = 1;
    spe__job_free(c->def);
    c->def = NULL;
    memcpy(c->id, found->id, sizeof found->id);
    c->resumed = 1;
    spe__log(&eng->cfg.log, SPE_LOG_INFO, "job %s \"%s\" resumed from the store", found->id,
             found->def->name);
    spe__engine_answer(eng, c, 0);
    return;
  }
  /* The limit on unfinished jobs (docs/limits.md): each keeps its model and
   * run state in memory until it ends, so a flood of submits meets a clear
   * refusal rather than exhausting memory. Nothing of the job is stored. */
  if (eng->unfinished >= eng->cfg.max_unfinished) {
    spe__job_free(c->def);
    c->def = NULL;
    spe__msg_set(&c->msg, "too many unfinished jobs (%zu; the limit is %zu); wait for some to "
                 "finish", eng->unfinished, eng->cfg.max_unfinished);
    spe__engine_answer(eng, c, SPE_EBUSY);
    return;
  }
  struct job_run *job = spe__job_run_new(c->def, eng->job_order++);
  if (job == NULL) {
    spe__job_free(c->def);
    c->def = NULL;
    spe__engine_answer(eng, c, SPE_ENOMEM);
    return;
  }
  c->def = NULL;
  job->claimed = 1;
  spe__ulid_new(job->id);
  memcpy(c->id, job->id, sizeof job->id);
  job->submitted_ms = spe__now_ms();
  pthread_mutex_lock(&eng->lock);
  int rc = spe__strmap_put(&eng->jobs, job->id, job);
  pthread_mutex_unlock(&eng->lock);
  if (rc != 0) {
    spe__job_run_free(job);
    spe__engine_answer(eng, c, rc);
    return;
  }
  eng->unfinished++;
  spe__record_job(eng, job);
  json_t *ev = spe__event_new(eng, job, "job_submitted");
  json_object_set_new(ev, "name", json_string(job->def->name));
  json_object_set_new(ev, "tasks", json_integer(job->def->ntasks));
  spe__record_event(eng, ev);
  spe__log(&eng->cfg.log, SPE_LOG_DEBUG, "job %s \"%s\" submitted (%u tasks)", job->id,
           job->def->name, job->def->ntasks);
  /* Submitted and started in one round: one commit holds both, and the caller
   * waits for one fsync instead of two. */
  if (c->start) spe__engine_job_start(eng, job);
  spe__engine_answer(eng, c, 0);
}

static void do_command(struct engine *eng, struct command *c) {
  switch (c->type) {
    case CMD_SUBMIT: do_submit(eng, c); return;
    case CMD_LIST: spe__engine_do_list(eng, c); return;
    case CMD_COUNT: spe__engine_do_count(eng, c); return;
    case CMD_PRUNE: spe__engine_do_prune(eng, c); return;
    default: break;
  }
  struct job_run *job = find_job(eng, c);
  if (job == NULL) {
    spe__engine_answer(eng, c, SPE_ENOJOB);
    return;
  }
  switch (c->type) {
    case CMD_START:
      if (job->held) { /* a recovered running job, held until now */
        spe__engine_release_held(eng, job);
        spe__engine_answer(eng, c, 0);
        return;
      }
      if (job->status != JOB_SUBMITTED) {
        spe__msg_set(&c->msg, "job %s is %s, not submitted", job->id,
                     spe__job_status_name(job->status));
        spe__engine_answer(eng, c, SPE_ESTATE);
        return;
      }
      spe__engine_job_start(eng, job);
      spe__engine_answer(eng, c, 0);
      return;
    case CMD_CANCEL:
      if (spe__job_finished(job->status)) {
        spe__msg_set(&c->msg, "job %s has already finished (%s)", job->id,
                     spe__job_status_name(job->status));
        spe__engine_answer(eng, c, SPE_ESTATE);
        return;
      }
      spe__engine_job_cancel(eng, job);
      spe__engine_answer(eng, c, 0);
      return;
    case CMD_GET:
      c->json = spe__job_json(job);
      spe__engine_answer(eng, c, c->json ? 0 : SPE_ENOMEM);
      return;
    default:
      break;
  }
}

/* Under eng->lock: a command was queued or a stop asked for. */
static void post_mail(struct engine *eng) {
  atomic_store_explicit(&eng->mail, 1, memory_order_release);
}

/* Take the whole queue of commands at once, and whether a stop was asked for
 * (*stop). A round with no mail takes no lock. */
static struct command *take_mail(struct engine *eng, int *stop) {
  *stop = 0;
  if (!atomic_load_explicit(&eng->mail, memory_order_acquire)) return NULL;
  pthread_mutex_lock(&eng->lock);
  atomic_store_explicit(&eng->mail, 0, memory_order_relaxed);
  *stop = eng->stopping;
  struct command *c = eng->cmd_head;
  eng->cmd_head = eng->cmd_tail = NULL;
  pthread_mutex_unlock(&eng->lock);
  return c;
}

/* Answer each command of a list taken by take_mail(). */
static void run_commands(struct engine *eng, struct command *c) {
  while (c != NULL) {
    struct command *next = c->next;
    do_command(eng, c);
    c = next;
  }
}

/* ---- the round ---- */

static int set_empty(const struct round_set *set) {
  /* A set may hold nothing for the store (the memory store gets no rows, and
   * no events when nobody can see them) and still have jobs whose end it
   * must make visible to their waiters. */
  return !(spe__batch_writes(&set->batch) || set->replies || set->waiting.len || set->finished);
}

static int has_work(struct engine *eng) {
  if (!eng->flight && !set_empty(eng->fill)) return 1;
  if (eng->stop_seen) return 0;
  return spe__engine_can_pick(eng);
}

/* The counters as other threads see them (spe_stats_get); under eng->lock. */
static void stats_seen_locked(struct engine *eng) {
  eng->stats.tasks_running = eng->running - eng->queued;
  eng->stats.tasks_ready = eng->ready.count;
  eng->stats_seen = eng->stats;
  eng->stats_ms = eng->loop.now_ms;
}

static void publish_stats(struct engine *eng) {
  pthread_mutex_lock(&eng->lock);
  stats_seen_locked(eng);
  pthread_mutex_unlock(&eng->lock);
}

/* A commit took `seconds`; count it if it wrote anything. */
static void count_commit(struct engine *eng, const struct store_batch *b, double seconds) {
  if (!spe__batch_writes(b)) return;
  eng->stats.commits++;
  eng->stats.commit_seconds_total += seconds;
  if (seconds > eng->stats.commit_seconds_max) eng->stats.commit_seconds_max = seconds;
}

/* A set's commit is over: on success let the world see it (events, answers,
 * finished jobs) and start what waited for it; on failure nothing of it may be
 * seen or started, and the engine stops. The store keeps its last consistent
 * state for the next run. */
static void finish_set(struct engine *eng, struct round_set *set, int rc, char *msg) {
  struct store_batch *b = &set->batch;
  spe__engine_prune_done(eng, set, rc);
  if (rc != 0) {
    if (!eng->fatal)
      spe__log(&eng->cfg.log, SPE_LOG_ERROR, "state store commit failed: %s; stopping",
               msg ? msg : spe_strerror(rc));
    spe__engine_drop_list(eng, &set->waiting);
    set->finished = NULL;
    for (struct command *c = set->replies; c; c = c->next)
      if (c->rc == 0) c->rc = SPE_ESTORE;
    pthread_mutex_lock(&eng->lock);
    eng->fatal = SPE_ESTORE;
    eng->stopping = 1;
    post_mail(eng);
    pthread_cond_broadcast(&eng->finished_cond);
    pthread_mutex_unlock(&eng->lock);
  } else {
    eng->durable_gen = set->gen;
    /* Publish the events in order; the bus takes the references. */
    if (b->nevents) spe__bus_publish(eng->bus, b->events, b->nevents);
    eng->stats.events_published += b->nevents;
    b->nevents = 0;
  }
  free(msg);
  spe__batch_clear(b);

  pthread_mutex_lock(&eng->lock);
  for (struct job_run *j = set->finished; j; j = j->next_finished) j->visible = j->status;
  if (set->finished) pthread_cond_broadcast(&eng->finished_cond);
  for (struct command *c = set->replies; c; c = c->next) c->done = 1;
  if (set->replies) pthread_cond_broadcast(&eng->reply_cond);
  /* A caller told its job finished or its submit is durable sees the
   * counters of that commit. */
  stats_seen_locked(eng);
  pthread_mutex_unlock(&eng->lock);
  set->finished = NULL;
  set->replies = NULL;
  if (rc == 0) spe__engine_spawn_list(eng, &set->waiting);
}

/* Commit the current set: on this thread for a fast store, else through the
 * committer, at most one set in flight. */
static void flush(struct engine *eng) {
  if (eng->flight || set_empty(eng->fill)) return;
  struct round_set *set = eng->fill;
  if (eng->fatal) {
    finish_set(eng, set, eng->fatal, NULL);
  } else if (eng->async) {
    eng->flight = set;
    spe__func_committing(eng->func, 1);
    eng->fill = set == &eng->sets[0] ? &eng->sets[1] : &eng->sets[0];
    eng->fill->gen = set->gen + 1;
    spe__committer_submit(&eng->committer, &set->batch);
  } else {
    char *msg = NULL;
    uint64_t t0 = spe__mono_ns();
    int rc = spe__store_commit(eng->store, &set->batch, &msg);
    count_commit(eng, &set->batch, (double)(spe__mono_ns() - t0) / 1e9);
    finish_set(eng, set, rc, msg);
    set->gen++; /* the same set gathers the next round */
  }
  /* A prune that waited for a batch without one takes the new one. */
  spe__engine_prune_next(eng);
}

static void on_commit_done(struct loop *lp, struct io_watch *w, uint32_t events) {
  struct engine *eng = w->data;
  (void)lp;
  (void)events;
  char *msg = NULL;
  double seconds = 0;
  int rc = spe__committer_result(&eng->committer, &msg, &seconds);
  struct round_set *set = eng->flight;
  eng->flight = NULL;
  spe__func_committing(eng->func, 0);
  count_commit(eng, &set->batch, seconds);
  finish_set(eng, set, rc, msg);
}

/* How long the engine waits for thread-isolated calls in flight to end before
 * it sleeps (spe__func_spin). */
#define FUNC_SPIN_NS 50000

static void *engine_main(void *arg) {
  struct engine *eng = arg;
  for (;;) {
    int busy = has_work(eng);
    /* Not while a commit is in flight: then the committer needs the CPU. */
    if (!busy && !eng->flight) spe__func_spin(eng->func, FUNC_SPIN_NS);
    /* While a commit is in flight, what calls report can be seen only after
     * it (and its end wakes the loop): the pool need wake it only to be
     * given more calls. One wake-up per few tasks cost the engine more than
     * the tasks. */
    if (!busy) busy = spe__func_sleep_begin(eng->func, eng->flight != NULL);
    /* The counters other threads see (spe_stats_get): before the engine
     * sleeps, at most once a millisecond while it works (and at every
     * commit, finish_set) - a lock a round cost more than short rounds. */
    if (!busy || eng->loop.now_ms != eng->stats_ms) publish_stats(eng);
    int rc = busy ? spe__loop_poll_busy(&eng->loop) : spe__loop_poll(&eng->loop, -1);
    spe__func_sleep_end(eng->func);
    /* Calls that began or ended without waking the loop. */
    spe__func_poll(eng->func);
    if (rc < 0) {
      spe__log(&eng->cfg.log, SPE_LOG_ERROR, "event loop failed: %s", strerror(errno));
      pthread_mutex_lock(&eng->lock);
      eng->fatal = SPE_ESYS;
      eng->stopping = 1;
      post_mail(eng);
      pthread_mutex_unlock(&eng->lock);
    }
    int stop;
    struct command *cmds = take_mail(eng, &stop);
    if (!eng->stop_seen && stop) {
      eng->stop_seen = 1;
      spe__engine_stop_tasks(eng);
    }
    run_commands(eng, cmds);
    if (!eng->stop_seen) {
      spe__engine_pick(eng);
      /* Tasks whose inputs are already durable start now, so that their
       * workers are busy while the round commits. */
      spe__engine_spawn_list(eng, &eng->early);
    }
    flush(eng);
    if (eng->stop_seen && eng->running == 0 && !eng->flight && set_empty(eng->fill)) break;
  }

  /* Answer whatever arrived after the stop (a prune waiting for a batch
   * cannot be left: it is moved into the fill set, which then is not empty,
   * but it costs nothing to be sure). */
  pthread_mutex_lock(&eng->lock);
  stats_seen_locked(eng);
  eng->exited = 1;
  for (struct command *c = eng->prune_wait; c; c = c->next) {
    c->rc = SPE_ECLOSED;
    c->done = 1;
  }
  eng->prune_wait = NULL;
  for (struct command *c = eng->cmd_head; c; c = c->next) {
    if (c->type == CMD_SUBMIT) {
      spe__job_free(c->def);
      c->def = NULL;
    }
    c->rc = SPE_ECLOSED;
    c->done = 1;
  }
  eng->cmd_head = eng->cmd_tail = NULL;
  pthread_cond_broadcast(&eng->reply_cond);
  pthread_cond_broadcast(&eng->finished_cond);
  pthread_mutex_unlock(&eng->lock);
  return NULL;
}

/* ---- calls from other threads ---- */

int spe__engine_call(struct engine *eng, struct command *c, char **msg) {
  pthread_mutex_lock(&eng->lock);
  if (eng->stopping || eng->exited) {
    int rc = eng->fatal ? eng->fatal : SPE_ECLOSED;
    pthread_mutex_unlock(&eng->lock);
    if (c->def) spe__job_free(c->def);
    spe__msg_set(msg, "%s", rc == SPE_ECLOSED ? "the executor is shutting down"
                                              : "the engine stopped after a failure");
    return rc;
  }
  c->next = NULL;
  c->done = 0;
  if (eng->cmd_tail) eng->cmd_tail->next = c;
  else eng->cmd_head = c;
  eng->cmd_tail = c;
  post_mail(eng);
  spe__loop_wake(&eng->loop);
  while (!c->done) pthread_cond_wait(&eng->reply_cond, &eng->lock);
  pthread_mutex_unlock(&eng->lock);
  if (c->rc != 0 && c->msg == NULL) spe__msg_set(&c->msg, "%s", spe_strerror(c->rc));
  spe__msg_give(msg, c->rc != 0 ? c->msg : NULL);
  if (c->rc == 0) free(c->msg);
  return c->rc;
}

static int id_command(struct engine *eng, enum command_type type, const char *id,
                      json_t **json, char **msg) {
  struct command c = {.type = type};
  if (id == NULL || strlen(id) > SPE_ULID_LEN) {
    spe__msg_set(msg, "no job with id \"%s\"", id ? id : "(null)");
    return id ? SPE_ENOJOB : SPE_EINVAL;
  }
  strcpy(c.id, id);
  int rc = spe__engine_call(eng, &c, msg);
  if (json) *json = c.json;
  else json_decref(c.json);
  return rc;
}

int spe__engine_submit_ex(struct engine *eng, struct job_def *def, unsigned flags,
                          char id[27], int *resumed, char **msg) {
  struct command c = {.type = CMD_SUBMIT,
                      .def = def,
                      .resume = (flags & SPE_SUBMIT_RESUME) != 0,
                      .start = (flags & SPE_SUBMIT_START) != 0};
  int rc = spe__engine_call(eng, &c, msg);
  if (rc == 0) memcpy(id, c.id, SPE_ULID_LEN + 1);
  if (resumed) *resumed = rc == 0 && c.resumed;
  return rc;
}

int spe__engine_start(struct engine *eng, const char *id, char **msg) {
  return id_command(eng, CMD_START, id, NULL, msg);
}

int spe__engine_cancel(struct engine *eng, const char *id, char **msg) {
  return id_command(eng, CMD_CANCEL, id, NULL, msg);
}

int spe__engine_get(struct engine *eng, const char *id, json_t **out, char **msg) {
  *out = NULL;
  int rc = id_command(eng, CMD_GET, id, out, msg);
  /* A job of an earlier run, finished (only unfinished ones are recovered),
   * or pruned from memory while still in the store. */
  if (rc == SPE_ENOJOB && eng->store->ops->keeps_state && strlen(id) == SPE_ULID_LEN)
    rc = spe__engine_get_stored(eng, id, out, msg);
  if (rc == 0) spe__msg_give(msg, NULL); /* the engine's "no job" is moot */
  return rc;
}

void spe__engine_stats(struct engine *eng, struct engine_stats *out) {
  pthread_mutex_lock(&eng->lock);
  *out = eng->stats_seen;
  pthread_mutex_unlock(&eng->lock);
}

int spe__engine_wait(struct engine *eng, const char *id, int timeout_ms) {
  struct timespec deadline = spe__deadline_after(CLOCK_MONOTONIC, timeout_ms >= 0 ? timeout_ms : 0);
  int rc = 0;
  pthread_mutex_lock(&eng->lock);
  struct job_run *job = spe__strmap_get(&eng->jobs, id);
  if (job == NULL) rc = SPE_ENOJOB;
  while (rc == 0 && !spe__job_finished(job->visible)) {
    if (eng->stopping || eng->exited) {
      rc = eng->fatal ? eng->fatal : SPE_ECLOSED;
      break;
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&eng->finished_cond, &eng->lock);
    } else if (pthread_cond_timedwait(&eng->finished_cond, &eng->lock, &deadline) ==
               ETIMEDOUT) {
      if (!spe__job_finished(job->visible)) rc = SPE_ETIMEDOUT;
      break;
    }
  }
  pthread_mutex_unlock(&eng->lock);
  return rc;
}

int spe__engine_failure(struct engine *eng) {
  pthread_mutex_lock(&eng->lock);
  int f = eng->fatal;
  pthread_mutex_unlock(&eng->lock);
  return f;
}

void spe__engine_shutdown(struct engine *eng) {
  pthread_mutex_lock(&eng->lock);
  eng->stopping = 1;
  post_mail(eng);
  pthread_cond_broadcast(&eng->finished_cond);
  pthread_mutex_unlock(&eng->lock);
  spe__loop_wake(&eng->loop);
}

/* ---- life cycle ---- */

/* Thread-isolated calls queued ahead of the free slots: per slot, and in all.
 * Enough that a pool thread returning from a call finds the next one waiting
 * (the engine hands them over in batches, once per round), few enough that a
 * cancel or a shutdown withdraws them at once. */
#define AHEAD_PER_WORKER 64
#define AHEAD_MAX 4096

/* Free everything the engine holds; its thread is not running. */
static void release(struct engine *eng) {
  if (eng->commit_w.fd >= 0) spe__io_stop(&eng->loop, &eng->commit_w);
  spe__committer_stop(&eng->committer);
  spe__cmd_exec_free(eng->cmd);
  spe__func_exec_free(eng->func);
  json_decref(eng->empty_input);
  if (eng->loop.epfd > 0) spe__loop_close(&eng->loop);
  for (size_t i = 0; i < eng->jobs.cap; i++)
    if (eng->jobs.slots[i].key) spe__job_run_free(eng->jobs.slots[i].value);
  spe__strmap_free(&eng->jobs);
  spe__ready_free(&eng->ready);
  for (int i = 0; i < 2; i++) {
    spe__engine_free_pruned(&eng->sets[i]);
    spe__batch_free(&eng->sets[i].batch);
    free(eng->sets[i].waiting.items);
  }
  free(eng->early.items);
  spe__engine_free_attempts(eng);
  pthread_mutex_destroy(&eng->lock);
  pthread_cond_destroy(&eng->reply_cond);
  pthread_cond_destroy(&eng->finished_cond);
  free(eng);
}

int spe__engine_new(struct engine **out, const struct engine_config *cfg,
                    struct store *st, struct event_bus *bus, char **msg) {
  *out = NULL;
  struct engine *eng = calloc(1, sizeof *eng);
  if (eng == NULL) return SPE_ENOMEM;
  eng->cfg = *cfg;
  eng->store = st;
  eng->bus = bus;
  eng->keeps_state = st->ops->keeps_state;
  eng->keeps_events = st->keeps_events;
  eng->nsubs = spe__bus_nsubs(bus);
  spe__ready_init(&eng->ready);
  spe__strmap_init(&eng->jobs);
  eng->fill = &eng->sets[0];
  eng->fill->gen = 1;
  eng->committer.donefd = -1;
  eng->commit_w.fd = -1;
  spe__timer_init(&eng->grace_timer);
  pthread_mutex_init(&eng->lock, NULL);
  pthread_cond_init(&eng->reply_cond, NULL);
  spe__cond_init_monotonic(&eng->finished_cond);
  int rc = spe__loop_init(&eng->loop);
  if (rc != 0) {
    spe__msg_set(msg, "cannot create the event loop: %s", strerror(errno));
    goto fail;
  }
  rc = spe__cmd_exec_new(&eng->cmd, &eng->loop, &eng->cfg.log, spe__engine_on_done, eng);
  if (rc != 0) {
    spe__msg_set(msg, "cannot create the command executor: %s", spe_strerror(rc));
    goto fail;
  }
  eng->empty_input = json_object();
  if (eng->empty_input == NULL) {
    rc = SPE_ENOMEM;
    goto fail;
  }
  /* `workers` slots (UINT32_MAX: unbound); thread isolation queues up to
   * AHEAD_PER_WORKER calls per slot ahead (struct attempt). */
  atomic_init(&eng->slots, (long)cfg->workers);
  eng->thread_iso = cfg->isolation == SPE_ISOLATION_THREAD;
  eng->ahead_cap = cfg->workers >= AHEAD_MAX / AHEAD_PER_WORKER ? AHEAD_MAX
                                                                 : cfg->workers * AHEAD_PER_WORKER;
  struct func_exec_config fcfg = {
      .isolation = cfg->isolation,
      .workers = cfg->workers,
      .max_result_bytes = cfg->max_result_bytes,
      .reg = cfg->functions,
      .fs = cfg->fork_server,
      .started = spe__engine_on_started,
      .slots = eng->thread_iso ? &eng->slots : NULL,
      .describe_fn = spe__input_describe,
      .input_fn = spe__input_for_call,
      .release_fn = spe__input_release,
  };
  rc = spe__func_exec_new(&eng->func, &fcfg, &eng->loop, &eng->cfg.log, spe__engine_on_done,
                          eng);
  if (rc != 0) {
    spe__msg_set(msg, "cannot create the executor of exec functions: %s", spe_strerror(rc));
    goto fail;
  }
  /* Recover before anything runs: the unfinished jobs of the store are back in
   * memory, and their changes committed, before open returns. */
  rc = spe__engine_recover(eng, msg);
  if (rc == 0) {
    flush(eng);
    if (eng->fatal) {
      spe__msg_set(msg, "the state store failed while recovering (see the log)");
      rc = eng->fatal;
    }
  }
  if (rc == 0 && st->ops->slow_commit) {
    rc = spe__committer_start(&eng->committer, st);
    if (rc == 0) {
      rc = spe__io_start(&eng->loop, &eng->commit_w, eng->committer.donefd, EPOLLIN,
                         on_commit_done, eng);
      if (rc != 0) spe__committer_stop(&eng->committer);
    }
    if (rc != 0) spe__msg_set(msg, "cannot start the commit thread");
    eng->async = rc == 0;
  }
  if (rc != 0) goto fail;
  rc = spe__thread_start(&eng->thread, "spe-engine", engine_main, eng);
  if (rc != 0) {
    spe__msg_set(msg, "cannot start the engine thread: %s", strerror(rc));
    rc = SPE_ESYS;
    goto fail;
  }
  *out = eng;
  return 0;
fail:
  release(eng);
  return rc;
}

void spe__engine_free(struct engine *eng) {
  if (eng == NULL) return;
  spe__engine_shutdown(eng);
  pthread_join(eng->thread, NULL);
  release(eng);
}
