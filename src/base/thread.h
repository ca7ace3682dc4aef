/* The library's threads. */
#ifndef SPE_BASE_THREAD_H
#define SPE_BASE_THREAD_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread: signals belong to
 * the application's threads, never to the library's. `name` (at most 15
 * characters) is what top -H and gdb show. Returns pthread_create's result (0
 * or an errno value). */
int spe__thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg);

#endif
