/* Error messages handed to callers: malloc'd strings the caller frees. */
#ifndef SPE_BASE_MSG_H
#define SPE_BASE_MSG_H

#include <stdarg.h>

/* A new malloc'd string formatted like printf, or NULL when out of memory. */
char *spe__msg_new(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *spe__msg_newv(const char *fmt, va_list ap);

/* If out is not NULL, free *out and set it to a new formatted message. */
void spe__msg_set(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* If out is not NULL, free *out and hand it `msg` (taking ownership); else free
 * msg. */
void spe__msg_give(char **out, char *msg);

#endif
