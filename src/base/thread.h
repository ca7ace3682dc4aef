/* The library's threads. */
#ifndef SPE_BASE_THREAD_H
#define SPE_BASE_THREAD_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread: signals belong to
 * the application's threads, never to the library's. `name` (at most 15
 * characters) is what top -H and gdb show. Returns pthread_create's result (0
 * or an errno value). */
int spe__thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg);

/* A condition variable whose timed waits count on CLOCK_MONOTONIC (the clock
 * of spe__deadline_after), so that setting the wall clock does not move a
 * timeout. Returns pthread_cond_init's result. */
int spe__cond_init_monotonic(pthread_cond_t *c);

#endif
