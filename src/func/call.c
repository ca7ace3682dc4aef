/* One call of a registered function, and what the function can ask of it
 * (spe_call_*). The same code runs in a worker process and on a pool thread. */
#include "func/registry.h"

#include "base/msg.h"

#include <stdarg.h>
#include <stdlib.h>

SPE_EXPORT const json_t *spe_call_input(const spe_call *call) {
  if (call == NULL) return NULL;
  if (call->input == NULL && call->build_input != NULL && call->built == NULL) {
    /* Lazy (thread isolation): built once, by the thread that asks. The
     * call belongs to that thread; only the caller's view of it is const. */
    struct spe_call *c = (struct spe_call *)call;
    c->built = c->build_input(c->build_ctx, c->build_task);
    c->input = c->built;
  }
  return call->input;
}
SPE_EXPORT const json_t *spe_call_arg(const spe_call *call) { return call ? call->arg : NULL; }
SPE_EXPORT const char *spe_call_job_id(const spe_call *call) {
  return call ? call->job_id : NULL;
}
SPE_EXPORT const char *spe_call_job_name(const spe_call *call) {
  return call ? call->job_name : NULL;
}
SPE_EXPORT const char *spe_call_task(const spe_call *call) { return call ? call->task : NULL; }
SPE_EXPORT unsigned spe_call_attempt(const spe_call *call) { return call ? call->attempt : 0; }

SPE_EXPORT int spe_call_cancelled(const spe_call *call) {
  return call && call->cancelled &&
         atomic_load_explicit(call->cancelled, memory_order_relaxed) != 0;
}

SPE_EXPORT json_t *spe_call_fail(spe_call *call, const char *fmt, ...) {
  if (call == NULL) return NULL;
  char *text = NULL;
  if (fmt != NULL) {
    va_list ap;
    va_start(ap, fmt);
    text = spe__msg_newv(fmt, ap);
    va_end(ap);
  }
  free(call->error);
  call->error = text;
  call->failed = 1; /* even when the message could not be allocated */
  return NULL;
}

void spe__call_run(const struct func_entry *f, struct spe_call *call, json_t **result,
                   char **error) {
  *result = NULL;
  *error = NULL;
  json_t *value = f->fn(f->ctx, call);
  if (call->failed) {
    json_decref(value);
    *error = call->error ? call->error : spe__msg_new("the function reported a failure");
    call->error = NULL;
    return;
  }
  *result = value ? value : json_null();
}
