/*
 * What the fuzz targets share: the property checks of each target as plain
 * functions, and the entry point libFuzzer calls.
 *
 * Each fuzz/fuzz_*.c holds one target: a check function that takes any bytes,
 * runs one component on them and verifies its properties, and the
 * LLVMFuzzerTestOneInput that calls it. The same check functions run in the
 * ordinary test suite (tests/test_fuzz_regressions.c, built with
 * SPE_FUZZ_NO_ENTRY so that the files can share one program) over every
 * file of fuzz/corpus/ and fuzz/regressions/: whatever a fuzzer once found
 * stays checked without libFuzzer.
 *
 * A broken property calls spe__fuzz_fail(), which aborts by default, so that
 * libFuzzer records the input as a crash; the test program sets its own
 * handler, which fails the cmocka test instead.
 */
#ifndef SPE_FUZZ_FUZZ_H
#define SPE_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* The targets' checks. Any input is fine; they return normally when every
 * property holds. */
void spe__fuzz_job_check(const uint8_t *data, size_t size);      /* fuzz_job.c */
void spe__fuzz_plan_check(const uint8_t *data, size_t size);     /* fuzz_plan.c */
void spe__fuzz_recovery_check(const uint8_t *data, size_t size); /* fuzz_recovery.c */
void spe__fuzz_http_check(const uint8_t *data, size_t size);     /* fuzz_http.c */

/* Where a target makes its scratch folders: $SPE_FUZZ_TMP, else /dev/shm if
 * writable, else $TMPDIR, else /tmp. */
const char *spe__fuzz_scratch_base(void);

/* Report a broken property (printf-style) and abort, or call the handler. */
void spe__fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Called by spe__fuzz_fail with the message instead of aborting, when set; it
 * must not return (cmocka's fail_msg does not). */
extern void (*spe__fuzz_fail_handler)(const char *msg);

#define FUZZ_CHECK(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) spe__fuzz_fail(__VA_ARGS__);                                 \
  } while (0)

#ifdef SPE_FUZZ_NO_ENTRY
#define SPE_FUZZ_ENTRY(check)
#else
#define SPE_FUZZ_ENTRY(check)                                                 \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);               \
  int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {              \
    check(data, size);                                                        \
    return 0;                                                                 \
  }
#endif

#endif
