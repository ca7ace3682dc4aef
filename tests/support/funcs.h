/*
 * The C functions that the tests of `exec` tasks register: small, each doing one
 * thing a test asks of a task (add numbers, divide, crash in a chosen way, loop,
 * sleep, report its call context). Shared by tests/test_functions*.c,
 * tests/test_subscriptions.c and tests/test_api_misuse.c.
 *
 *   sum        the numbers in `arg` (a number or an array of numbers) plus every
 *              number among the input's values: arg 3 → 3, arg [1,2] → 3, and
 *              downstream of a (7) with arg 2 → 9
 *   div        arg [a, b] → a / b (integers); b = 0 reports "division by zero: a/0"
 *   fail       reports "failed on purpose" (kind "error")
 *   kill_self  raise(SIGKILL) on itself
 *   abort      abort()
 *   exit1      exit(1)
 *   loop       an endless loop that only returns once spe_call_cancelled() says
 *              nobody waits any more (thread isolation; under process isolation
 *              the worker is killed instead)
 *   sleep      sleeps `arg` milliseconds, returns arg
 *   context    {"job_id", "job_name", "task", "attempt"} of its call
 *   flaky      reports a failure on attempt 1; on later attempts returns what
 *              `context` returns
 *   input      a copy of its input object
 *   null       returns NULL (the task's result is JSON null)
 *   late_input thread isolation: waits until spe_call_cancelled(), then until
 *              tf_late_release(), then reads its input (kept as text for
 *              tf_late_read()) and returns "late"
 */
#ifndef SPE_TESTS_FUNCS_H
#define SPE_TESTS_FUNCS_H

#include "spe.h"

/* A new registry with every function above. Fails the test on error. */
spe_registry *tf_registry(void);
/* Add one of the functions above, by name, to `reg` (for a program that
 * registers only some). Returns spe_register()'s code; -1 for an unknown name. */
int tf_register(spe_registry *reg, const char *name);

struct harness;
/* h_open_funcs() with every function above, `workers` workers (0 = per CPU)
 * in `isolation` (SPE_ISOLATION_PROCESS or _THREAD). Fails the test on error. */
void tf_open(struct harness *h, int workers, int isolation);

/* late_input's gate and what it read (compact, keys sorted; malloc'd, NULL if
 * nothing yet). */
void tf_late_reset(void);
void tf_late_release(void);
char *tf_late_read(void);

#endif
