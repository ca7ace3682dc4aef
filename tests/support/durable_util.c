/* Helpers for the durability tests: see durable_util.h. */
#include "support/durable_util.h"

#include "support/cli_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

/* ---- files ---- */

int file_exists(const char *path) { return access(path, F_OK) == 0; }

void copy_file(const char *from, const char *to) {
  size_t len;
  char *bytes = cli_read_file(from, &len);
  if (bytes == NULL) fail_msg("cannot read %s: %s", from, strerror(errno));
  FILE *f = fopen(to, "we");
  if (f == NULL) fail_msg("cannot write %s: %s", to, strerror(errno));
  assert_int_equal(fwrite(bytes, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
  free(bytes);
}

int same_bytes(const char *a, const char *b) {
  size_t la, lb;
  char *x = cli_read_file(a, &la), *y = cli_read_file(b, &lb);
  int same = (x == NULL && y == NULL) ||
             (x != NULL && y != NULL && la == lb && memcmp(x, y, la) == 0);
  free(x);
  free(y);
  return same;
}

/* ---- the store ---- */

static char *suffixed(const char *path, const char *suffix) {
  size_t n = strlen(path) + strlen(suffix) + 1;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s%s", path, suffix);
  return p;
}

char *store_query(const char *db_path, const char *sql) {
  char *copy = suffixed(db_path, ".peek");
  char *copy_wal = suffixed(copy, "-wal");
  char *copy_shm = suffixed(copy, "-shm");
  char *wal = suffixed(db_path, "-wal");
  unlink(copy_wal);
  unlink(copy_shm);
  copy_file(db_path, copy);
  /* The WAL holds committed rounds not yet in the database: a copy without
   * it would show an older store. (-shm is only an index SQLite rebuilds.) */
  if (file_exists(wal)) copy_file(wal, copy_wal);

  sqlite3 *db = NULL;
  if (sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    fail_msg("cannot open a copy of %s: %s", db_path, sqlite3_errmsg(db));
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s: %s", db_path, sql, sqlite3_errmsg(db));
  size_t cap = 256, len = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  out[0] = '\0';
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(st, 0);
    size_t n = t != NULL ? strlen(t) : 0;
    if (len + n + 2 > cap) {
      while (len + n + 2 > cap) cap *= 2;
      out = realloc(out, cap);
      assert_non_null(out);
    }
    if (n > 0) memcpy(out + len, t, n);
    len += n;
    out[len++] = '\n';
    out[len] = '\0';
  }
  if (rc != SQLITE_DONE) fail_msg("%s: %s: %s", db_path, sql, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  unlink(copy);
  unlink(copy_wal);
  unlink(copy_shm);
  free(copy);
  free(copy_wal);
  free(copy_shm);
  free(wal);
  return out;
}

long long store_query_int(const char *db_path, const char *sql) {
  char *text = store_query(db_path, sql);
  if (text[0] == '\0') fail_msg("%s: %s: no row", db_path, sql);
  long long v = strtoll(text, NULL, 10);
  free(text);
  return v;
}

void sqlite_exec_file(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
    fail_msg("cannot open %s: %s", path, sqlite3_errmsg(db));
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    fail_msg("%s: %s: %s", path, sql, err ? err : "?");
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* ---- a running spe ---- */

size_t file_lines(const char *path) {
  char *text = cli_read_file(path, NULL);
  if (text == NULL) return 0;
  size_t n = 0;
  for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++) n++;
  free(text);
  return n;
}

size_t wait_for_lines(const char *path, size_t k, pid_t pid, int timeout_ms) {
  /* Watch the folder: the file may not exist yet, and `spe` truncates it on
   * open. Every write in the folder wakes us; we then count again. */
  char *dir = strdup(path);
  assert_non_null(dir);
  char *slash = strrchr(dir, '/');
  if (slash != NULL) *slash = '\0';
  int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) fail_msg("inotify_init1: %s", strerror(errno));
  if (inotify_add_watch(fd, slash != NULL ? dir : ".", IN_MODIFY | IN_CREATE) < 0)
    fail_msg("inotify_add_watch %s: %s", dir, strerror(errno));
  free(dir);
  int64_t deadline = cli_mono_ms() + timeout_ms;
  size_t seen;
  for (;;) {
    seen = file_lines(path);
    if (seen >= k || cli_process_gone(pid) || cli_mono_ms() >= deadline) break;
    /* Short waits also notice an exit, which writes nothing. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5) > 0) {
      char buf[4096];
      while (read(fd, buf, sizeof buf) > 0) {
      }
    }
  }
  close(fd);
  return seen;
}

static int in_set(long nr, const long *set, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (set[i] == nr) return 1;
  return 0;
}

static const long commit_calls[] = {SYS_fsync, SYS_fdatasync};
static const long spawn_calls[] = {
    SYS_clone,
#ifdef SYS_clone3
    SYS_clone3,
#endif
#ifdef SYS_vfork
    SYS_vfork,
#endif
};

enum proc_phase proc_phase_of(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL) return PHASE_UNKNOWN;
  enum proc_phase phase = PHASE_OTHER;
  int readable = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char file[PATH_MAX];
    snprintf(file, sizeof file, "/proc/%d/task/%s/syscall", (int)pid, e->d_name);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    readable = 1;
    buf[n] = '\0';
    /* "NR arg..." while in a system call; "running" or "-1 ..." otherwise. */
    if (buf[0] < '0' || buf[0] > '9') continue;
    long nr = strtol(buf, NULL, 10);
    if (in_set(nr, commit_calls, sizeof commit_calls / sizeof *commit_calls))
      phase = PHASE_COMMIT;
    else if (phase == PHASE_OTHER &&
             in_set(nr, spawn_calls, sizeof spawn_calls / sizeof *spawn_calls))
      phase = PHASE_SPAWN;
  }
  closedir(d);
  return readable ? phase : PHASE_UNKNOWN;
}

const char *proc_phase_name(enum proc_phase p) {
  switch (p) {
    case PHASE_COMMIT: return "commit";
    case PHASE_SPAWN: return "spawn";
    case PHASE_OTHER: return "between";
    case PHASE_UNKNOWN: break;
  }
  return "unknown";
}

int wait_for_phase(pid_t pid, enum proc_phase want, int timeout_ms) {
  int64_t deadline = cli_mono_ms() + timeout_ms;
  for (unsigned i = 0;; i++) {
    enum proc_phase p = proc_phase_of(pid);
    if (p == want) return 1;
    if (p == PHASE_UNKNOWN || cli_mono_ms() >= deadline || cli_process_gone(pid)) return 0;
    /* Give the other core to spe now and then: it has work to do before it
     * gets where we want it. */
    if (i % 8 == 7) sched_yield();
  }
}

/* ---- randomness ---- */

uint64_t test_seed(void) {
  const char *s = getenv("SPE_TEST_SEED");
  if (s != NULL && s[0] != '\0') return strtoull(s, NULL, 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

long rng_range(uint64_t *state, long lo, long hi) {
  if (hi <= lo) return lo;
  return lo + (long)(rng_next(state) % (uint64_t)(hi - lo + 1));
}
