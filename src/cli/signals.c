#include "cli/signals.h"


#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*watched_fn)(void *); /* guarded by watch_lock */
static void *watched_ctx;      /* guarded by watch_lock */
static int quitting;           /* guarded by watch_lock */
static atomic_int caught;
static pthread_t watcher;
static int watcher_running;    /* main thread only */

static void stop_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
}

int signals_block(void) {
  sigset_t set;
  stop_set(&set);
  return pthread_sigmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : -1;
}

static void *watch_main(void *arg) {
  (void)arg;
  sigset_t set;
  stop_set(&set);
  for (;;) {
    int sig;
    if (sigwait(&set, &sig) != 0) continue;
    pthread_mutex_lock(&watch_lock);
    if (quitting) {
      pthread_mutex_unlock(&watch_lock);
      return NULL;
    }
    int first = atomic_load(&caught) == 0;
    if (first) {
      atomic_store(&caught, sig);
      if (watched_fn != NULL) watched_fn(watched_ctx);
    }
    pthread_mutex_unlock(&watch_lock);
    if (!first) {
      static const char msg[] =
          "\nspe: interrupted again; exiting without waiting for tasks to stop\n";
      ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
      (void)ignored;
      _exit(130);
    }
  }
}

static int start_watcher(void) {
  int rc = pthread_create(&watcher, NULL, watch_main, NULL);
  if (rc != 0) {
    fprintf(stderr, "spe: cannot start the signal thread: %s\n", strerror(rc));
    return -1;
  }
  watcher_running = 1;
  return 0;
}

int signals_watch_call(void (*fn)(void *ctx), void *ctx) {
  pthread_mutex_lock(&watch_lock);
  watched_fn = fn;
  watched_ctx = ctx;
  quitting = 0;
  pthread_mutex_unlock(&watch_lock);
  return start_watcher();
}

static void shut_down(void *ex) { spe_shutdown(ex); }

int signals_watch(spe_executor *ex) { return signals_watch_call(shut_down, ex); }

int signals_caught(void) { return atomic_load(&caught); }

void signals_detach(void) {
  pthread_mutex_lock(&watch_lock);
  watched_fn = NULL;
  pthread_mutex_unlock(&watch_lock);
}

void signals_unwatch(void) {
  if (!watcher_running) return;
  pthread_mutex_lock(&watch_lock);
  watched_fn = NULL;
  quitting = 1;
  pthread_mutex_unlock(&watch_lock);
  /* Wake the thread from sigwait(); it sees `quitting` and returns. */
  pthread_kill(watcher, SIGTERM);
  pthread_join(watcher, NULL);
  watcher_running = 0;
}
