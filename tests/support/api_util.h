/* Test helpers for driving an executor through the public API: open one with an
 * event recorder, run a job to the end, look at its result and its events. */
#ifndef SPE_TESTS_API_UTIL_H
#define SPE_TESTS_API_UTIL_H

#include "spe.h"

#include <pthread.h>

struct recorder {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  json_t *events;  /* array of every event received, in order */
};

/* A recorder is also a subscriber of its own: spe_subscribe(ex, job, h_record, &r,
 * &sub) after h_recorder_init(&r). */
void h_recorder_init(struct recorder *r);
void h_recorder_free(struct recorder *r);
void h_record(void *ctx, const json_t *event);
/* h_await_events and h_events on a recorder of one's own. */
int h_recorder_await(struct recorder *r, const char *job, const char *type, int count,
                     int timeout_ms);
json_t *h_recorder_events(struct recorder *r, const char *job, const char *type,
                          const char *task);

struct harness {
  spe_executor *ex;
  spe_subscription *sub;
  struct recorder rec;
};

/* Open an executor with `workers` (0 = per CPU) on the memory store, recording
 * every event. Fails the test on error. */
void h_open(struct harness *h, int workers);
void h_open_opts(struct harness *h, const spe_options *opt);
/* The same with C functions: `reg` (copied by spe_open) in `isolation`
 * (SPE_ISOLATION_PROCESS or _THREAD), retry backoff 50 ms. */
void h_open_funcs(struct harness *h, int workers, int isolation, const spe_registry *reg);
void h_close(struct harness *h);

/* Submit and start a job given as JSON text (fails the test if refused) and
 * return its id in id[SPE_ID_SIZE]. */
void h_submit_start(struct harness *h, const char *job_text, char *id);
/* Submit, start, wait (at most 30 s) and return the job (new reference). */
json_t *h_run(struct harness *h, const char *job_text);
/* Wait (at most timeout_ms) until job `id` ends and return it (new reference);
 * fails the test unless spe_wait and spe_job_get both return 0. */
json_t *h_wait_job(spe_executor *ex, const char *id, int timeout_ms);
/* The same for a job given with single quotes instead of double quotes, which
 * keeps job texts in C readable: 'a' becomes "a". A literal ' cannot appear. */
json_t *h_runq(struct harness *h, const char *job_text_single_quoted);
char *h_unquote(const char *single_quoted);

/* Lookups in a job object (SPEC §3). */
const char *h_job_status(const json_t *job);
const char *h_task_status(const json_t *job, const char *task);
json_t *h_task_result(const json_t *job, const char *task);
const char *h_task_error_kind(const json_t *job, const char *task);
json_int_t h_task_int(const json_t *job, const char *task, const char *field);
/* The task's "error" object (borrowed), or NULL; and one integer field of it
 * (the test fails if it is missing). */
json_t *h_task_error(const json_t *job, const char *task);
json_int_t h_error_int(const json_t *job, const char *task, const char *field);
/* The "id" of a job object (borrowed). */
const char *h_job_id(const json_t *job);

/* Wait until `count` events of `type` (and `job`, unless NULL) have been
 * recorded, at most timeout_ms; returns how many there are. */
int h_await_events(struct harness *h, const char *job, const char *type, int count,
                   int timeout_ms);
/* The time_ms of the first event of `type` for `task` in `job`, or -1. */
json_int_t h_event_time(struct harness *h, const char *job, const char *type,
                        const char *task);
/* Number of recorded events matching (job or NULL, type or NULL, task or NULL). */
int h_count_events(struct harness *h, const char *job, const char *type, const char *task);
/* The recorded events matching (job, type, task; NULL = any), in order, as a new
 * array. */
json_t *h_events(struct harness *h, const char *job, const char *type, const char *task);

#endif
