/* The error object of a failed attempt: {"kind": ..., "message": ...}, and
 * the outcome forced on an attempt before it ended. */
#include "exec/exec.h"

#include "base/clock.h"
#include "exec/utf8.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

json_t *spe__error_new(const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = NULL;
  int n = vasprintf(&text, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;

  json_t *err = json_object();
  /* A message may quote a file name or program name that is not UTF-8: keep it
   * readable rather than failing to build the error. */
  json_t *msg = spe__json_string_lossy(text, (size_t)n);
  free(text);
  if (err == NULL || msg == NULL) {
    json_decref(err);
    json_decref(msg);
    return NULL;
  }
  /* json_object_set_new() takes the value's reference even when it fails. */
  if (json_object_set_new(err, "kind", json_string(kind)) < 0) {
    json_decref(msg);
    json_decref(err);
    return NULL;
  }
  if (json_object_set_new(err, "message", msg) < 0) {
    json_decref(err);
    return NULL;
  }
  return err;
}

void spe__forced_set(struct forced_outcome *f, const char *kind, const char *fmt, ...) {
  if (spe__forced(f)) return; /* the first reason stands */
  snprintf(f->kind, sizeof f->kind, "%s", kind);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->msg, sizeof f->msg, fmt, ap);
  va_end(ap);
}

void spe__forced_timeout(struct forced_outcome *f, uint64_t ms) {
  spe__forced_set(f, "timeout", "ran past %" PRIu64 " ms", ms);
}

json_t *spe__forced_error(const struct forced_outcome *f) {
  return spe__error_new(f->kind, "%s", f->msg);
}

json_t *spe__error_ended(int code, int status, const char *exit_kind, const char *who) {
  const char *sep = who != NULL ? " " : "";
  if (who == NULL) who = "";
  json_t *err;
  if (code == CLD_EXITED) {
    err = spe__error_new(exit_kind, "%s%sexited with status %d", who, sep, status);
    if (err != NULL) json_object_set_new(err, "exit_code", json_integer(status));
    return err;
  }
  /* CLD_KILLED or CLD_DUMPED: the status is the signal. */
  const char *was = *who != '\0' ? "was " : "";
  const char *abbrev = sigabbrev_np(status);
  err = abbrev != NULL ? spe__error_new("crashed", "%s%s%skilled by signal %d (SIG%s)", who, sep,
                                        was, status, abbrev)
                       : spe__error_new("crashed", "%s%s%skilled by signal %d", who, sep, was,
                                        status);
  if (err != NULL) json_object_set_new(err, "signal", json_integer(status));
  return err;
}

void spe__outcome_failed(struct task_outcome *out, json_t *error) {
  out->succeeded = 0;
  out->result = NULL;
  out->error = error;
  out->started_ms = out->finished_ms = spe__now_ms();
}
