/* Clocks. Wall time (for results and events) and monotonic time (for timeouts,
 * backoff and durations, which must not jump when the wall clock is set). */
#ifndef SPE_BASE_CLOCK_H
#define SPE_BASE_CLOCK_H
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch. */
int64_t spe__now_ms(void);
/* Monotonic milliseconds and nanoseconds, from an arbitrary origin. */
int64_t spe__mono_ms(void);
uint64_t spe__mono_ns(void);
/* The absolute time `ms` (>= 0) milliseconds from now on `clock`: a deadline
 * for pthread_cond_timedwait() (CLOCK_MONOTONIC conditions) or sem_timedwait()
 * (CLOCK_REALTIME). */
struct timespec spe__deadline_after(clockid_t clock, int64_t ms);

#endif
