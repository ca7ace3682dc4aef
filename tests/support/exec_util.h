/*
 * Test helpers shared by the tests that drive an executor directly on a loop
 * (tests/test_cmd.c, test_func_proc.c, test_func_thread.c): count the open
 * descriptors, poll the loop until an outcome arrives, the engine's empty input
 * and whether the test runs under valgrind.
 */
#ifndef SPE_TESTS_EXEC_UTIL_H
#define SPE_TESTS_EXEC_UTIL_H

#include <jansson.h>

#include "loop/loop.h"

/* The number of descriptors open in this process (fails the test if
 * /proc/self/fd cannot be read). */
int xu_count_fds(void);
/* Poll `lp` until *done is set, failing the test after timeout_ms. */
void xu_await_done(struct loop *lp, const int *done, int timeout_ms);
/* The input of a task without upstream tasks, as the engine gives it: one {}
 * for all (kept for the whole program). */
json_t *xu_empty_input(void);
/* Whether valgrind runs this process (it preloads its vgpreload library).
 * Valgrind runs children itself: it knows no pidfd_open, and glibc's
 * posix_spawn cannot report a failed exec through it (the child exits 127). */
int xu_under_valgrind(void);

#endif
