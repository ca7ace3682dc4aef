/*
 * How an attempt ended, as a task_outcome: success with the result parsed from
 * stdout, or an error object of kind "exit", "crashed", or one forced by the
 * supervisor ("timeout", "error", "cancelled"). Every error carries the tail of
 * stderr when the task wrote any.
 */
#include "base/clock.h"
#include "exec/cmd_internal.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static json_t *exit_error(int status) {
  json_t *err = spe__error_new("exit", "exited with status %d", status);
  if (err != NULL) json_object_set_new(err, "exit_code", json_integer(status));
  return err;
}

static json_t *signal_error(int sig) {
  const char *abbrev = sigabbrev_np(sig);
  json_t *err = abbrev != NULL
                    ? spe__error_new("crashed", "killed by signal %d (SIG%s)", sig, abbrev)
                    : spe__error_new("crashed", "killed by signal %d", sig);
  if (err != NULL) json_object_set_new(err, "signal", json_integer(sig));
  return err;
}

void spe__cmd_outcome(const struct cmd_run *run, const siginfo_t *info, struct task_outcome *out) {
  out->started_ms = run->started_ms;
  out->finished_ms = spe__now_ms();
  out->result = NULL;
  out->error = NULL;

  if (spe__forced(&run->forced)) {
    out->error = spe__forced_error(&run->forced);
  } else if (info->si_code == CLD_EXITED && info->si_status == 0) {
    out->result = spe__cmd_result_parse(run->out.data ? run->out.data : "", run->out.len);
    if (out->result == NULL) out->error = spe__error_new("error", "out of memory reading the result");
  } else if (info->si_code == CLD_EXITED) {
    out->error = exit_error(info->si_status);
  } else {
    /* CLD_KILLED or CLD_DUMPED: si_status is the signal. */
    out->error = signal_error(info->si_status);
  }
  out->succeeded = out->result != NULL;

  if (out->error != NULL) {
    json_t *tail = spe__ring_string(&run->err);
    if (tail != NULL) json_object_set_new(out->error, "stderr", tail);
  }
}
