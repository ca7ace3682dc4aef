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
  } else {
    /* CLD_EXITED: si_status is the exit status; CLD_KILLED or CLD_DUMPED: the signal. */
    out->error = spe__error_ended(info->si_code, info->si_status, "exit", NULL);
  }
  out->succeeded = out->result != NULL;

  if (out->error != NULL) {
    json_t *tail = spe__ring_string(&run->err);
    if (tail != NULL) json_object_set_new(out->error, "stderr", tail);
  }
}
