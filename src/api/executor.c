/* The public executor API (include/spe.h): argument checks, then the store, the
 * event bus and the engine. */
#include "spe.h"

#include "api/executor_impl.h"
#include "base/limits.h"
#include "base/msg.h"
#include "engine/engine.h"
#include "events/bus.h"
#include "exec/exec.h"
#include "func/forkserver.h"
#include "func/registry.h"
#include "job/job.h"
#include "store/store.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct spe_subscription {
  spe_executor *ex;
  struct bus_sub *sub;
  struct spe_subscription *prev, *next; /* ex->subs, so that spe_close frees it */
};

SPE_EXPORT void spe_options_init(spe_options *opt) {
  if (opt == NULL) return;
  memset(opt, 0, sizeof *opt);
  opt->workers = 0;
  opt->store_url = "memory:";
  opt->log_level = SPE_LOG_INFO;
  opt->max_result_bytes = SPE_DEFAULT_MAX_RESULT;
  opt->max_unfinished_jobs = SPE_DEFAULT_MAX_UNFINISHED_JOBS;
  opt->retry_backoff_ms = 100;
  opt->retry_backoff_max_ms = 30000;
  opt->grace_ms = 5000;
  opt->lost_attempt_limit = 3;
  opt->isolation = SPE_ISOLATION_PROCESS;
  opt->function_memory_limit = SPE_DEFAULT_FUNCTION_MEMORY;
}

static int check_options(const spe_options *o, char **msg) {
  if (o->workers < 0 && o->workers != SPE_WORKERS_UNBOUND) {
    spe__msg_set(msg, "workers must be a positive number, 0 (one per CPU) or unbound");
    return SPE_EINVAL;
  }
  if (o->lost_attempt_limit < 1) {
    spe__msg_set(msg, "lost_attempt_limit must be at least 1");
    return SPE_EINVAL;
  }
  if (o->retry_backoff_ms < 0 || o->retry_backoff_max_ms < 0 || o->grace_ms < 0) {
    spe__msg_set(msg, "retry backoff and grace times must not be negative");
    return SPE_EINVAL;
  }
  if (o->isolation != SPE_ISOLATION_PROCESS && o->isolation != SPE_ISOLATION_THREAD) {
    spe__msg_set(msg, "isolation must be SPE_ISOLATION_PROCESS or SPE_ISOLATION_THREAD");
    return SPE_EINVAL;
  }
  if (o->log_level < SPE_LOG_ERROR || o->log_level > SPE_LOG_DEBUG) {
    spe__msg_set(msg, "log_level must be one of SPE_LOG_ERROR..SPE_LOG_DEBUG");
    return SPE_EINVAL;
  }
  return 0;
}

SPE_EXPORT int spe_open(spe_executor **out, const spe_options *opt, char **msg) {
  spe__msg_give(msg, NULL);
  if (out == NULL) {
    spe__msg_set(msg, "spe_open: out is NULL");
    return SPE_EINVAL;
  }
  *out = NULL;
  spe_options o;
  spe_options_init(&o);
  if (opt != NULL) o = *opt;
  int rc = check_options(&o, msg);
  if (rc != 0) return rc;

  spe_executor *ex = calloc(1, sizeof *ex);
  if (ex == NULL) return SPE_ENOMEM;
  ex->log = (struct logger){o.log, o.log_ctx, o.log_level};
  pthread_mutex_init(&ex->subs_lock, NULL);
  rc = spe__registry_copy(&ex->functions, o.functions);
  /* The fork server first, while the library has started no thread: forking a
   * process whose other threads may hold locks is what it exists to avoid. */
  if (rc == 0 && o.isolation == SPE_ISOLATION_PROCESS && ex->functions->len > 0) {
    size_t limit = o.function_memory_limit ? o.function_memory_limit
                                           : SPE_DEFAULT_FUNCTION_MEMORY;
    rc = spe__forkserver_start(&ex->fork_server, ex->functions, limit, &ex->log, msg);
  }
  if (rc != 0) {
    spe_registry_free(ex->functions);
    pthread_mutex_destroy(&ex->subs_lock);
    free(ex);
    return rc;
  }

  struct engine_config cfg = {
      .max_result_bytes = o.max_result_bytes ? o.max_result_bytes : SPE_DEFAULT_MAX_RESULT,
      .max_unfinished = o.max_unfinished_jobs ? o.max_unfinished_jobs
                                              : SPE_DEFAULT_MAX_UNFINISHED_JOBS,
      .backoff_base_ms = o.retry_backoff_ms,
      .backoff_max_ms = o.retry_backoff_max_ms,
      .grace_ms = o.grace_ms,
      .lost_limit = (uint32_t)o.lost_attempt_limit,
      .hold_recovered = o.hold_recovered != 0,
      .isolation = o.isolation,
      .functions = ex->functions,
      .fork_server = ex->fork_server,
      .log = ex->log,
  };
  if (o.workers == SPE_WORKERS_UNBOUND) {
    cfg.workers = UINT32_MAX;
  } else if (o.workers == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.workers = n > 0 ? (uint32_t)n : 1;
  } else {
    cfg.workers = (uint32_t)o.workers;
  }

  rc = spe__store_open(&ex->store, o.store_url ? o.store_url : "memory:", &ex->log, msg);
  /* Before the engine starts: it builds events only when someone can see them. */
  if (rc == 0) rc = spe__store_keep_events(ex->store, o.event_history, msg);
  if (rc == 0) {
    rc = spe__bus_new(&ex->bus);
    if (rc != 0) spe__msg_set(msg, "cannot start the event bus: %s", spe_strerror(rc));
  }
  if (rc == 0) rc = spe__engine_new(&ex->engine, &cfg, ex->store, ex->bus, msg);
  if (rc != 0) {
    spe__bus_free(ex->bus);
    spe__store_close(ex->store);
    spe__forkserver_stop(ex->fork_server);
    spe_registry_free(ex->functions);
    pthread_mutex_destroy(&ex->subs_lock);
    free(ex);
    return rc;
  }
  *out = ex;
  return 0;
}

SPE_EXPORT int spe_failure(spe_executor *ex) {
  return ex == NULL ? SPE_EINVAL : spe__engine_failure(ex->engine);
}

SPE_EXPORT int spe_shutdown(spe_executor *ex) {
  if (ex == NULL) return SPE_EINVAL;
  spe__queues_stop(ex);
  spe__engine_shutdown(ex->engine);
  return 0;
}

SPE_EXPORT void spe_close(spe_executor *ex) {
  if (ex == NULL) return;
  /* Queue readers learn at once that no more events come. Then the engine
   * stops (it publishes its last events), then the bus delivers them, then the
   * store goes. The flush between the engine's stop and its free lets the bus
   * release the events already published before the engine releases the
   * results they share with its records: jansson's reference counts order the
   * last release after the others only if something else does (here, the
   * bus's lock). */
  spe__queues_stop(ex);
  spe__engine_shutdown(ex->engine);
  spe__bus_flush(ex->bus);
  spe__engine_free(ex->engine);
  spe__bus_free(ex->bus);
  spe__store_close(ex->store);
  spe__forkserver_stop(ex->fork_server);
  spe_registry_free(ex->functions);
  spe__queues_free(ex);
  while (ex->subs) {
    struct spe_subscription *s = ex->subs;
    ex->subs = s->next;
    free(s);
  }
  pthread_mutex_destroy(&ex->subs_lock);
  free(ex);
}

/* ---- jobs ---- */

static int submit_def(spe_executor *ex, struct job_def *def, unsigned flags,
                      char id[SPE_ID_SIZE], int *resumed, char **msg) {
  /* An exec task naming a function this executor does not have could never
   * run: refuse the job now rather than fail it later. */
  const char *found = NULL; /* tasks naming one function share its name */
  for (uint32_t t = 0; t < def->ntasks; t++) {
    if (def->tasks[t].body != TASK_EXEC || def->tasks[t].cmd == found) continue;
    found = def->tasks[t].cmd;
    if (spe__registry_find(ex->functions, found) == NULL) {
      spe__msg_set(msg, "task \"%s\": exec function \"%s\" is not registered",
                   def->tasks[t].name, def->tasks[t].cmd);
      spe__job_free(def);
      return SPE_EJOB;
    }
  }
  char tmp[SPE_ID_SIZE];
  int rc = spe__engine_submit_ex(ex->engine, def, flags, tmp,
                                 resumed, msg);
  if (rc == 0) memcpy(id, tmp, SPE_ID_SIZE);
  return rc;
}

SPE_EXPORT int spe_submit_text(spe_executor *ex, const char *text, size_t len,
                               char id[SPE_ID_SIZE], char **msg) {
  spe__msg_give(msg, NULL);
  if (ex == NULL || (text == NULL && len > 0) || id == NULL) {
    spe__msg_set(msg, "spe_submit_text: executor, text and id must not be NULL");
    return SPE_EINVAL;
  }
  struct job_def *def = NULL;
  int rc = spe__job_parse_text(text ? text : "", len, &def, msg);
  if (rc != 0) return rc;
  return submit_def(ex, def, 0, id, NULL, msg);
}

SPE_EXPORT int spe_submit_ex(spe_executor *ex, const char *text, size_t len, unsigned flags,
                             char id[SPE_ID_SIZE], int *resumed, char **msg) {
  spe__msg_give(msg, NULL);
  if (resumed) *resumed = 0;
  if (ex == NULL || (text == NULL && len > 0) || id == NULL || (flags & ~(SPE_SUBMIT_RESUME | SPE_SUBMIT_START))) {
    spe__msg_set(msg, "spe_submit_ex: executor, text and id must not be NULL, flags known");
    return SPE_EINVAL;
  }
  struct job_def *def = NULL;
  int rc = spe__job_parse_text(text ? text : "", len, &def, msg);
  if (rc != 0) return rc;
  return submit_def(ex, def, flags, id, resumed, msg);
}

SPE_EXPORT int spe_submit_json(spe_executor *ex, json_t *desc, char id[SPE_ID_SIZE],
                               char **msg) {
  spe__msg_give(msg, NULL);
  if (ex == NULL || desc == NULL || id == NULL) {
    spe__msg_set(msg, "spe_submit_json: executor, description and id must not be NULL");
    return SPE_EINVAL;
  }
  struct job_def *def = NULL;
  int rc = spe__job_parse_json(desc, &def, msg);
  if (rc != 0) return rc;
  return submit_def(ex, def, 0, id, NULL, msg);
}

SPE_EXPORT int spe_start(spe_executor *ex, const char *id, char **msg) {
  spe__msg_give(msg, NULL);
  if (ex == NULL || id == NULL) {
    spe__msg_set(msg, "spe_start: executor and id must not be NULL");
    return SPE_EINVAL;
  }
  return spe__engine_start(ex->engine, id, msg);
}

SPE_EXPORT int spe_cancel(spe_executor *ex, const char *id, char **msg) {
  spe__msg_give(msg, NULL);
  if (ex == NULL || id == NULL) {
    spe__msg_set(msg, "spe_cancel: executor and id must not be NULL");
    return SPE_EINVAL;
  }
  return spe__engine_cancel(ex->engine, id, msg);
}

SPE_EXPORT int spe_wait(spe_executor *ex, const char *id, int timeout_ms) {
  if (ex == NULL || id == NULL) return SPE_EINVAL;
  return spe__engine_wait(ex->engine, id, timeout_ms);
}

SPE_EXPORT int spe_job_get(spe_executor *ex, const char *id, json_t **out, char **msg) {
  spe__msg_give(msg, NULL);
  if (out != NULL) *out = NULL;
  if (ex == NULL || id == NULL || out == NULL) {
    spe__msg_set(msg, "spe_job_get: executor, id and out must not be NULL");
    return SPE_EINVAL;
  }
  return spe__engine_get(ex->engine, id, out, msg);
}

/* ---- events ---- */

SPE_EXPORT int spe_subscribe(spe_executor *ex, const char *job_id, spe_event_fn fn, void *ctx,
                             spe_subscription **out) {
  if (out != NULL) *out = NULL;
  if (ex == NULL || fn == NULL || out == NULL) return SPE_EINVAL;
  spe_subscription *s = calloc(1, sizeof *s);
  if (s == NULL) return SPE_ENOMEM;
  s->ex = ex;
  int rc = spe__bus_subscribe(ex->bus, job_id, fn, ctx, &s->sub);
  if (rc != 0) {
    free(s);
    return rc;
  }
  pthread_mutex_lock(&ex->subs_lock);
  s->next = ex->subs;
  if (ex->subs) ex->subs->prev = s;
  ex->subs = s;
  pthread_mutex_unlock(&ex->subs_lock);
  *out = s;
  return 0;
}

SPE_EXPORT void spe_unsubscribe(spe_subscription *sub) {
  if (sub == NULL) return;
  spe_executor *ex = sub->ex;
  spe__bus_unsubscribe(ex->bus, sub->sub);
  pthread_mutex_lock(&ex->subs_lock);
  if (sub->prev) sub->prev->next = sub->next;
  else ex->subs = sub->next;
  if (sub->next) sub->next->prev = sub->prev;
  pthread_mutex_unlock(&ex->subs_lock);
  free(sub);
}
