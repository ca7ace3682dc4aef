/* The library's logger: a callback and a level (spe_options). The library never
 * prints; the embedding program decides where lines go. */
#ifndef SPE_BASE_LOG_H
#define SPE_BASE_LOG_H

#include "spe.h"

struct logger {
  spe_log_fn fn; /* NULL: log nothing */
  void *ctx;
  int level; /* the most verbose level passed on */
};

/* Format and pass one line on if `level` is enabled. */
void spe__log(const struct logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int spe__log_enabled(const struct logger *lg, int level) {
  return lg != NULL && lg->fn != NULL && level <= lg->level;
}

#endif
