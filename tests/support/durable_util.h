/*
 * Test helpers for the durability tests (tests/test_durability.c): looking into
 * a state store with libsqlite3 without disturbing it, waiting for a running
 * `spe` to reach the K-th line of its events file, telling what a process is
 * doing at the moment it is killed, and a seeded random number generator whose
 * seed a failing run prints so that it can be replayed.
 *
 * Like cli_util.h, every helper fails the running cmocka test on an unexpected
 * error.
 */
#ifndef SPE_TESTS_DURABLE_UTIL_H
#define SPE_TESTS_DURABLE_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- The store, through libsqlite3 ---- */

/* Run `sql` on a copy of the SQLite store at db_path (the database and its
 * -wal, if there is one, copied beside it as PATH.peek): the store itself is
 * never opened, so a test can look at it between two runs of `spe` — even
 * after a kill -9, with a WAL that the next run must replay — without changing
 * a byte of it. Returns the first column of every row as text, one row per
 * line (NULL as ""), malloc'd. */
char *store_query(const char *db_path, const char *sql);
/* The same as one integer (the first row's first column; the test fails if
 * there is none). */
long long store_query_int(const char *db_path, const char *sql);
/* Create a plain SQLite database at `path` and run `sql` in it (rollback
 * journal, no WAL): a file of another application, or an edit of a store that
 * no process has open. */
void sqlite_exec_file(const char *path, const char *sql);

/* ---- A running `spe` ---- */

/* The number of complete lines in the file at `path` (0 if it is missing). */
size_t file_lines(const char *path);
/* Wait until the file at `path` has at least `k` complete lines, or process
 * `pid` has exited, or timeout_ms has passed; woken by inotify on every write
 * in the file's folder, so that it returns within microseconds of the K-th
 * line. Returns the number of lines last seen. */
size_t wait_for_lines(const char *path, size_t k, pid_t pid, int timeout_ms);

/* What a process is doing now, from /proc/PID/task/TID/syscall of each of its
 * threads: PHASE_COMMIT if one is flushing a file (fsync, fdatasync: the store
 * committing a round), PHASE_SPAWN if one is creating a process (clone, clone3,
 * vfork: a task being started), else PHASE_OTHER. PHASE_UNKNOWN where /proc
 * does not tell. */
enum proc_phase { PHASE_OTHER, PHASE_COMMIT, PHASE_SPAWN, PHASE_UNKNOWN };
enum proc_phase proc_phase_of(pid_t pid);
const char *proc_phase_name(enum proc_phase p);
/* Wait, spinning (the moment is the point), until `pid` is in `want`, at most
 * timeout_ms or until it exits. Returns 1 if it got there. */
int wait_for_phase(pid_t pid, enum proc_phase want, int timeout_ms);

/* ---- Seeded randomness ---- */

/* The seed: $SPE_TEST_SEED if set, else one from the clock and the pid. The
 * caller prints it. */
uint64_t test_seed(void);
/* splitmix64: the next number of the sequence in *state. */
uint64_t rng_next(uint64_t *state);
/* A number in [lo, hi] (inclusive). */
long rng_range(uint64_t *state, long lo, long hi);

/* ---- Files ---- */

/* Copy a file byte for byte (the test fails if it cannot). */
void copy_file(const char *from, const char *to);
/* Whether two files hold the same bytes (a missing file equals only a missing
 * file). */
int same_bytes(const char *a, const char *b);
int file_exists(const char *path);

#endif
