/*
 * Running the jobs of `spe run` in one executor.
 *
 * The order of things matters:
 *  1. SIGINT and SIGTERM are blocked before spe_open(), so that every thread
 *     the library starts inherits the mask; signals.c takes them on a thread of
 *     its own and stops the executor.
 *  2. The subscription to every job's events is made before the first submit,
 *     so that the events file, the progress line and the log lines miss
 *     nothing.
 *  3. Every job is submitted before any is started: a job refused at submit
 *     (which validation already ruled out) then still means nothing ran.
 *     Unless --fresh, a submit resumes an unfinished job of the same name and
 *     description that the store brought back (SPEC §5), and says so.
 *  4. The main thread waits for the jobs in file order, ticking the progress
 *     line while it waits, then reads each job's result.
 *  5. spe_close() delivers every event already published, so the events file
 *     is complete (every job_finished in it) once it returns; only then is the
 *     file closed and the results printed.
 */
#include "cli/run_jobs.h"

#include "base/clock.h"
#include "cli/console.h"
#include "cli/event_log.h"
#include "cli/events_out.h"
#include "cli/log_sink.h"
#include "cli/progress.h"
#include "cli/signals.h"
#include "spe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often the progress line's clock moves while nothing happens. */
#define TICK_MS 100

struct run {
  const struct run_opts *o;
  struct job_file *files;
  size_t nfiles;
  char (*ids)[SPE_ID_SIZE]; /* one per file */
  json_t **results;         /* spe_job_get of each, once finished */
  spe_executor *ex;
  struct events_out *events;
  struct event_log *log;
};

/* The subscriber to every event: on the library's delivery thread. */
static void on_event(void *ctx, const json_t *event) {
  struct run *r = ctx;
  events_out_write(r->events, event);
  progress_on_event(event);
  event_log_write(r->log, event);
}

/* The exit status for a failure of the library: 130 if a signal stopped the
 * executor, else 3 (after printing what failed). */
static int library_failure(const char *what, const char *path, int rc, char *msg) {
  int status = 3;
  if (signals_caught() != 0 && rc == SPE_ECLOSED) {
    status = 130;
  } else {
    progress_stop();
    fprintf(stderr, "spe: %s%s%s: %s\n", path != NULL ? path : "", path != NULL ? ": " : "",
            what, msg != NULL ? msg : spe_strerror(rc));
  }
  free(msg);
  return status;
}

static int open_executor(struct run *r) {
  spe_options opt;
  spe_options_init(&opt);
  opt.workers = r->o->workers;
  opt.store_url = r->o->state_url;
  opt.log = log_sink_library;
  opt.log_ctx = NULL;
  opt.log_level = r->o->log_level;
  opt.grace_ms = r->o->grace_ms;
  opt.lost_attempt_limit = r->o->lost_limit;
  /* Only the jobs named on the command line run: an unfinished job of some
   * other file stays in the store as it is, untouched, until a run of its own
   * file resumes it. A resumed job waits for its spe_start(), like a new one. */
  opt.hold_recovered = 1;
  char *msg = NULL;
  int rc = spe_open(&r->ex, &opt, &msg);
  if (rc != 0) {
    fprintf(stderr, "spe: cannot open the state store \"%s\": %s\n", r->o->state_url,
            msg != NULL ? msg : spe_strerror(rc));
    free(msg);
    return 3;
  }
  return -1;
}

/* A job the store brought back and this run resumes instead of starting it
 * anew: say so, and name it for the log (its job_submitted event came before
 * this run subscribed). The executor holds a resumed job until spe_start()
 * (hold_recovered), so the counts read here are those the store had, and
 * every later change comes as an event. Returns 1 if there is nothing to
 * start (the job has finished already: recovery failed a task at its
 * lost-attempt limit), 0 if it needs spe_start(). */
static int resumed(struct run *r, size_t i) {
  json_t *job = NULL;
  if (spe_job_get(r->ex, r->ids[i], &job, NULL) != 0) return 0;
  const char *name = json_string_value(json_object_get(job, "name"));
  const char *status = json_string_value(json_object_get(job, "status"));
  int finished = status != NULL && strcmp(status, "submitted") != 0 &&
                 strcmp(status, "running") != 0;
  if (name != NULL) event_log_name(r->log, r->ids[i], name);
  /* Its tasks that finished before the restart send no more events. */
  uint64_t done = 0, failed = 0, not_run = 0, total = 0;
  const char *key;
  json_t *task;
  json_object_foreach(json_object_get(job, "tasks"), key, task) {
    total++;
    const char *st = json_string_value(json_object_get(task, "status"));
    if (st == NULL) continue;
    failed += strcmp(st, "failed") == 0;
    not_run += strcmp(st, "not_run") == 0;
    done += strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
            strcmp(st, "not_run") == 0;
  }
  progress_add_finished(done, failed, not_run);
  if (log_sink_enabled(SPE_LOG_WARN)) {
    char line[600], more[64] = "";
    if (failed > 0 || not_run > 0)
      snprintf(more, sizeof more, ", %llu failed, %llu not run", (unsigned long long)failed,
               (unsigned long long)not_run);
    snprintf(line, sizeof line,
             "spe: %s: resuming job %s \"%.200s\" from the store: %llu of %llu tasks "
             "already done%s (--fresh starts anew)",
             r->files[i].path, r->ids[i], name != NULL ? name : "?", (unsigned long long)done,
             (unsigned long long)total, more);
    console_line(line);
  }
  json_decref(job);
  return finished;
}

/* Submit every job; mark in finished[] those resumed that have nothing left
 * to run. Returns -1 to go on, else an exit status. */
static int submit_all(struct run *r, int *finished) {
  unsigned flags = r->o->fresh ? 0 : SPE_SUBMIT_RESUME;
  for (size_t i = 0; i < r->nfiles; i++) {
    struct job_file *jf = &r->files[i];
    char *msg = NULL;
    int was_resumed = 0;
    int rc = spe_submit_ex(r->ex, jf->text, jf->len, flags, r->ids[i], &was_resumed, &msg);
    /* SPE_EBUSY: too many unfinished jobs in the executor; SPE_ELIMIT: a
     * size limit (met by the validation before, so not expected): the jobs
     * given are the problem. */
    if (rc == SPE_EJOB || rc == SPE_ELIMIT || rc == SPE_EBUSY) {
      progress_stop();
      fprintf(stderr, "spe: %s: %s\n", jf->path, msg != NULL ? msg : spe_strerror(rc));
      free(msg);
      return 2;
    }
    if (rc != 0) return library_failure("cannot submit", jf->path, rc, msg);
    if (was_resumed) finished[i] = resumed(r, i);
  }
  return -1;
}

/* Submit every job, then start every job. Returns -1 to go on, else an exit
 * status. */
static int submit_and_start(struct run *r) {
  int *finished = calloc(r->nfiles, sizeof *finished);
  if (finished == NULL) return library_failure("cannot submit", NULL, SPE_ENOMEM, NULL);
  int status = submit_all(r, finished);
  for (size_t i = 0; status < 0 && i < r->nfiles; i++) {
    if (finished[i]) continue;
    char *msg = NULL;
    int rc = spe_start(r->ex, r->ids[i], &msg);
    if (rc != 0) status = library_failure("cannot start", r->files[i].path, rc, msg);
  }
  free(finished);
  return status;
}

/* Wait for every job and collect its result. Returns 0 (all succeeded), 1, or
 * the status of a failure. */
static int wait_all(struct run *r) {
  int status = 0;
  int tick = console_is_tty() ? TICK_MS : -1;
  for (size_t i = 0; i < r->nfiles; i++) {
    int rc;
    while ((rc = spe_wait(r->ex, r->ids[i], tick)) == SPE_ETIMEDOUT) progress_tick();
    if (rc != 0) return library_failure("waiting for the job", r->files[i].path, rc, NULL);
    char *msg = NULL;
    rc = spe_job_get(r->ex, r->ids[i], &r->results[i], &msg);
    if (rc != 0) return library_failure("cannot read the result", r->files[i].path, rc, msg);
    const char *st = json_string_value(json_object_get(r->results[i], "status"));
    if (st == NULL || strcmp(st, "succeeded") != 0) status = 1;
  }
  return status;
}

static int print_results(struct run *r) {
  for (size_t i = 0; i < r->nfiles; i++) {
    if (json_dumpf(r->results[i], stdout, JSON_COMPACT) != 0 || putchar('\n') == EOF) break;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("spe: --json: standard output");
    return 3;
  }
  return 0;
}

/* On a terminal, where the info lines are replaced by the progress line, one
 * line to say how it ended. */
static void print_summary(struct run *r, int64_t started_ms) {
  if (!console_is_tty() || !log_sink_enabled(SPE_LOG_WARN)) return;
  size_t ok = 0;
  for (size_t i = 0; i < r->nfiles; i++) {
    const char *st = json_string_value(json_object_get(r->results[i], "status"));
    if (st != NULL && strcmp(st, "succeeded") == 0) ok++;
  }
  int64_t ms = spe__mono_ms() - started_ms;
  char line[200];
  snprintf(line, sizeof line, "spe: %zu job%s: %zu succeeded, %zu failed (%lld.%01lld s)",
           r->nfiles, r->nfiles == 1 ? "" : "s", ok, r->nfiles - ok, (long long)(ms / 1000),
           (long long)(ms % 1000 / 100));
  console_line(line);
}

static int run_all(struct run *r, int64_t started_ms) {
  int status = open_executor(r);
  if (status >= 0) return status;
  if (signals_watch(r->ex) != 0) {
    status = 3;
  } else {
    spe_subscription *sub = NULL;
    int rc = spe_subscribe(r->ex, NULL, on_event, r, &sub);
    if (rc != 0) {
      status = library_failure("cannot subscribe to events", NULL, rc, NULL);
    } else {
      uint64_t total = 0;
      for (size_t i = 0; i < r->nfiles; i++) total += r->files[i].ntasks;
      progress_start(total, console_is_tty());
      status = submit_and_start(r);
      if (status < 0) status = wait_all(r);
    }
  }
  /* Whatever happened, close the executor: it stops what still runs and
   * delivers the last events. A signal seen until now makes it an
   * interruption. */
  int interrupted = signals_caught() != 0;
  signals_detach();
  spe_close(r->ex);
  signals_unwatch();
  progress_stop();
  if (interrupted) {
    fprintf(stderr, "spe: interrupted; running tasks were stopped\n");
    return 130;
  }
  if (status <= 1) print_summary(r, started_ms);
  return status;
}

int run_jobs(const struct run_opts *o, struct job_file *files, size_t nfiles) {
  int64_t started_ms = spe__mono_ms();
  struct run r = {.o = o, .files = files, .nfiles = nfiles};
  r.ids = calloc(nfiles, sizeof *r.ids);
  r.results = calloc(nfiles, sizeof *r.results);
  int status;
  if (r.ids == NULL || r.results == NULL || event_log_new(&r.log) != 0) {
    fprintf(stderr, "spe: out of memory\n");
    status = 3;
  } else if (o->events_path != NULL && events_out_open(&r.events, o->events_path) != 0) {
    status = 2;
  } else if (signals_block() != 0) {
    fprintf(stderr, "spe: cannot block SIGINT and SIGTERM\n");
    status = 3;
  } else {
    status = run_all(&r, started_ms);
  }
  if (o->json && status >= 0 && status <= 1 && print_results(&r) != 0) status = 3;
  /* The events file is complete only now that the executor is closed. */
  if (events_out_close(r.events) != 0 && status != 130) status = 3;
  for (size_t i = 0; r.results != NULL && i < nfiles; i++) json_decref(r.results[i]);
  free(r.results);
  free(r.ids);
  event_log_free(r.log);
  return status;
}
