#include "base/thread.h"

#include <signal.h>
#include <time.h>

int spe__thread_start(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg) {
  /* A thread inherits its creator's mask: block everything around the
   * creation, then put the creator's mask back. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(thread, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  /* For top -H, ps -L, gdb and perf; a name that is refused changes nothing. */
  if (rc == 0) (void)pthread_setname_np(*thread, name);
  return rc;
}

int spe__cond_init_monotonic(pthread_cond_t *c) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
  return rc;
}
