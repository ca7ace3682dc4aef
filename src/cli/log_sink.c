#include "cli/log_sink.h"

#include "base/clock.h"
#include "cli/console.h"
#include "spe.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int threshold = SPE_LOG_INFO;

void log_sink_set_level(int level) { atomic_store(&threshold, level); }
int log_sink_level(void) { return atomic_load(&threshold); }

static const char *level_name(int level) {
  switch (level) {
    case SPE_LOG_ERROR: return "error";
    case SPE_LOG_WARN: return "warn ";
    case SPE_LOG_INFO: return "info ";
    default: return "debug";
  }
}

void log_sink_timestamp(int64_t time_ms, char out[64]) {
  time_t secs = (time_t)(time_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(time_ms % 1000));
}

static void emit(int level, int64_t time_ms, const char *msg) {
  char stamp[64];
  log_sink_timestamp(time_ms, stamp);
  char small[1024];
  int n = snprintf(small, sizeof small, "%s %s %s", stamp, level_name(level), msg);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    console_line(small);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    console_line(small); /* truncated is better than nothing */
    return;
  }
  snprintf(big, (size_t)n + 1, "%s %s %s", stamp, level_name(level), msg);
  console_line(big);
  free(big);
}

void log_sink_library(void *ctx, int level, const char *msg) {
  (void)ctx;
  if (log_sink_enabled(level)) emit(level, spe__now_ms(), msg);
}

void log_sink_line(int level, int64_t time_ms, const char *fmt, ...) {
  if (!log_sink_enabled(level)) return;
  char small[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    emit(level, time_ms, small);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (big == NULL) {
    emit(level, time_ms, small);
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  emit(level, time_ms, big);
  free(big);
}
