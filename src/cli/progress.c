#include "cli/progress.h"

#include "base/clock.h"
#include "cli/console.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t progress_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int enabled;
  uint64_t total, done, running, failed, not_run;
  int64_t started_mono_ms, drawn_mono_ms;
} pg;

#define REDRAW_EVERY_MS 50

void progress_start(uint64_t total_tasks, int enabled) {
  pthread_mutex_lock(&progress_lock);
  memset(&pg, 0, sizeof pg);
  pg.enabled = enabled;
  pg.total = total_tasks;
  pg.started_mono_ms = spe__mono_ms();
  pg.drawn_mono_ms = pg.started_mono_ms - REDRAW_EVERY_MS;
  pthread_mutex_unlock(&progress_lock);
  progress_tick();
}

/* Format the line and hand it to the console, drawn if `draw` or if the last
 * drawing is REDRAW_EVERY_MS old; progress_lock held. */
static void update(int draw) {
  int64_t now = spe__mono_ms();
  if (now - pg.drawn_mono_ms >= REDRAW_EVERY_MS) draw = 1;
  char line[200];
  int64_t el = now - pg.started_mono_ms;
  int n = snprintf(line, sizeof line, "done %llu/%llu  running %llu",
                   (unsigned long long)pg.done, (unsigned long long)pg.total,
                   (unsigned long long)pg.running);
  if (pg.failed > 0 && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, "  failed %llu",
                  (unsigned long long)pg.failed);
  if (pg.not_run > 0 && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, "  not run %llu",
                  (unsigned long long)pg.not_run);
  if (n < (int)sizeof line)
    snprintf(line + n, sizeof line - (size_t)n, "  elapsed %lld.%llds", (long long)(el / 1000),
             (long long)(el % 1000 / 100));
  console_status(line, draw);
  if (draw) pg.drawn_mono_ms = now;
}

void progress_on_event(const json_t *event) {
  const char *type = json_string_value(json_object_get(event, "type"));
  if (type == NULL) return;
  pthread_mutex_lock(&progress_lock);
  if (!pg.enabled) {
    pthread_mutex_unlock(&progress_lock);
    return;
  }
  if (strcmp(type, "task_started") == 0) {
    pg.running++;
  } else if (strcmp(type, "task_terminated") == 0) {
    if (pg.running > 0) pg.running--;
    const char *st = json_string_value(json_object_get(event, "status"));
    /* A failed attempt that will be retried carries retry_in_ms; an
     * interrupted one will run again later: neither is done. */
    if (st != NULL && strcmp(st, "succeeded") == 0) {
      pg.done++;
    } else if (st != NULL && strcmp(st, "failed") == 0 &&
               json_object_get(event, "retry_in_ms") == NULL) {
      pg.done++;
      pg.failed++;
    }
  } else if (strcmp(type, "task_not_run") == 0) {
    pg.done++;
    pg.not_run++;
  }
  update(0);
  pthread_mutex_unlock(&progress_lock);
}

void progress_add_finished(uint64_t done, uint64_t failed, uint64_t not_run) {
  pthread_mutex_lock(&progress_lock);
  pg.done += done;
  pg.failed += failed;
  pg.not_run += not_run;
  pthread_mutex_unlock(&progress_lock);
}

void progress_tick(void) {
  pthread_mutex_lock(&progress_lock);
  if (pg.enabled) update(0);
  pthread_mutex_unlock(&progress_lock);
}

void progress_stop(void) {
  pthread_mutex_lock(&progress_lock);
  if (pg.enabled) console_status(NULL, 1);
  pg.enabled = 0;
  pthread_mutex_unlock(&progress_lock);
}
