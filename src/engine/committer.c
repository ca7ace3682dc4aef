/* The committer thread. See committer.h. */
#include "engine/committer.h"
#include "base/clock.h"
#include "base/thread.h"

#include "spe.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void *committer_main(void *arg) {
  struct committer *c = arg;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    while (c->batch == NULL && !c->quit) pthread_cond_wait(&c->cond, &c->lock);
    if (c->batch == NULL) break; /* quit, nothing in flight */
    struct store_batch *b = c->batch;
    pthread_mutex_unlock(&c->lock);
    char *msg = NULL;
    uint64_t t0 = spe__mono_ns();
    int rc = spe__store_commit(c->store, b, &msg);
    double seconds = (double)(spe__mono_ns() - t0) / 1e9;
    pthread_mutex_lock(&c->lock);
    c->batch = NULL;
    c->rc = rc;
    c->msg = msg;
    c->seconds = seconds;
    c->done = 1;
    uint64_t one = 1;
    ssize_t w = write(c->donefd, &one, sizeof one);
    (void)w; /* an eventfd write of 1 cannot fail short of overflow */
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

int spe__committer_start(struct committer *c, struct store *st) {
  c->store = st;
  c->batch = NULL;
  c->done = c->quit = 0;
  c->rc = 0;
  c->msg = NULL;
  c->donefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->donefd < 0) return SPE_ESYS;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  int rc = spe__thread_start(&c->thread, "spe-commit", committer_main, c);
  if (rc != 0) {
    close(c->donefd);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    c->donefd = -1;
    return SPE_ESYS;
  }
  return 0;
}

void spe__committer_submit(struct committer *c, struct store_batch *b) {
  pthread_mutex_lock(&c->lock);
  c->batch = b;
  c->done = 0;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

int spe__committer_result(struct committer *c, char **msg, double *seconds) {
  uint64_t v;
  ssize_t r = read(c->donefd, &v, sizeof v);
  (void)r;
  pthread_mutex_lock(&c->lock);
  int rc = c->rc;
  *msg = c->msg;
  c->msg = NULL;
  *seconds = c->seconds;
  c->done = 0;
  pthread_mutex_unlock(&c->lock);
  return rc;
}

void spe__committer_stop(struct committer *c) {
  if (c->donefd < 0) return;
  pthread_mutex_lock(&c->lock);
  c->quit = 1;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  pthread_join(c->thread, NULL);
  free(c->msg);
  close(c->donefd);
  c->donefd = -1;
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
}
