/*
 * The SQLite store's owner lock, and the fault-injection setting read when the
 * store is opened.
 *
 * One process owns a store: it holds an exclusive, non-blocking flock on
 * PATH.lock, a file beside the database that holds the owner's pid, so that a
 * second process can be told who has the store. The kernel drops a flock when
 * its process dies, so a lock left by a dead process is simply free; the pid
 * still written in it (a clean close empties the file) tells the next owner
 * that the last one died, which is logged.
 */
#include "store/store_sqlite.h"

#include "base/msg.h"
#include "spe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* ---- fault injection (a testing aid, docs/store.md) ---- */

int spe__store_sqlite_parse_fault(struct sqlite_store *ss, char **msg) {
  const char *v = getenv("SPE_STORE_FAULT");
  if (v == NULL || v[0] == '\0') return 0;
  char *end = NULL;
  unsigned long long n = 0;
  if (strncmp(v, "commit:", 7) == 0) {
    n = strtoull(v + 7, &end, 10);
    ss->fail_after = *end == '+';
    if (ss->fail_after) end++;
    ss->fail_at = n;
  } else if (strncmp(v, "pages:", 6) == 0) {
    n = strtoull(v + 6, &end, 10);
    ss->max_pages = (int64_t)n;
  }
  if (end == NULL || *end != '\0' || n == 0 || n > INT64_MAX) {
    spe__msg_set(msg,
                 "SPE_STORE_FAULT=\"%s\" is not understood (expected commit:N, commit:N+ or "
                 "pages:N, N >= 1)",
                 v);
    return SPE_EINVAL;
  }
  spe__log(&ss->log, SPE_LOG_WARN, "state store %s: fault injection SPE_STORE_FAULT=%s", ss->url,
           v);
  return 0;
}

/* ---- the lock ---- */

/* The pid written in the lock file, or 0. */
static long read_pid(int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  long pid = strtol(buf, NULL, 10);
  return pid > 0 ? pid : 0;
}

/* flock, with one allowance: if the owner named in the file is dead, the lock
 * can still be held for a moment by a child it was spawning when it died (a
 * child holds a copy of its parent's descriptors between clone and exec, where
 * close-on-exec drops them). Such a child execs within milliseconds, so wait
 * up to a second for it rather than refuse a store nobody owns. */
static int take_lock(int fd) {
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
  int e = errno;
  long pid = read_pid(fd);
  if (e != EWOULDBLOCK || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) {
    errno = e;
    return -1;
  }
  for (int i = 0; i < 100; i++) {
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno != EWOULDBLOCK) return -1;
  }
  errno = EWOULDBLOCK;
  return -1;
}

int spe__store_sqlite_lock(struct sqlite_store *ss, char **msg) {
  char *lockpath = spe__msg_new("%s.lock", ss->path);
  if (lockpath == NULL) return SPE_ENOMEM;
  /* Close-on-exec: a task's process must never inherit (and keep) the lock. */
  int fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    spe__msg_set(msg, "cannot open state store %s: cannot open its lock file %s: %s", ss->url,
                 lockpath, strerror(errno));
    free(lockpath);
    return SPE_ESTORE;
  }
  free(lockpath);
  if (take_lock(fd) != 0) {
    int e = errno;
    long pid = read_pid(fd);
    close(fd);
    if (e != EWOULDBLOCK) {
      spe__msg_set(msg, "cannot lock state store %s: %s", ss->url, strerror(e));
      return SPE_ESTORE;
    }
    /* No pid yet: the owner is between its flock and its write. */
    if (pid > 0)
      spe__msg_set(msg, "state store %s is in use by process %ld", ss->url, pid);
    else
      spe__msg_set(msg, "state store %s is in use by another process", ss->url);
    return SPE_ELOCKED;
  }
  ss->lock_fd = fd;
  /* A clean close empties the file; a pid still in it is an owner that died. */
  long stale = read_pid(fd);
  if (stale > 0)
    spe__log(&ss->log, SPE_LOG_INFO,
             "state store %s: took over the lock of process %ld, which is gone", ss->url, stale);
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
    spe__msg_set(msg, "cannot open state store %s: cannot write its lock file: %s", ss->url,
                 strerror(errno));
    return SPE_ESTORE;
  }
  return 0;
}

void spe__store_sqlite_unlock(struct sqlite_store *ss) {
  if (ss->lock_fd < 0) return;
  /* Emptied, so that the next owner knows this one closed cleanly. The file
   * itself stays: unlinking a lock file lets two processes lock two inodes. */
  if (ftruncate(ss->lock_fd, 0) != 0)
    spe__log(&ss->log, SPE_LOG_WARN,
             "state store %s: cannot empty its lock file (%s); the next owner will think this "
             "one died",
             ss->url, strerror(errno));
  close(ss->lock_fd);
  ss->lock_fd = -1;
}
