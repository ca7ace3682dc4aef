#include "base/thread.h"

#include <signal.h>

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
