/*
 * clock.h - clocks for timing, accounting and timestamps.
 *
 * Monotonic time measures intervals (never goes back); thread CPU time is
 * what resource accounting charges to a block; wall time stamps logs and
 * recordings. All values are nanoseconds. If the OS cannot read a clock the
 * function returns 0 (this does not happen on Linux).
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef TWIN_CLOCK_H
#define TWIN_CLOCK_H

#include "twin/common.h"

TW_EXTERN_C_BEGIN

TW_API uint64_t tw_clock_mono_ns(void);        /* CLOCK_MONOTONIC */
TW_API uint64_t tw_clock_thread_cpu_ns(void);  /* CLOCK_THREAD_CPUTIME_ID */
TW_API uint64_t tw_clock_process_cpu_ns(void); /* CLOCK_PROCESS_CPUTIME_ID */
TW_API int64_t tw_clock_wall_ns(void);         /* CLOCK_REALTIME, Unix epoch */

/* Formats a wall time as RFC 3339 UTC with milliseconds,
 * "2026-11-30T03:10:00.123Z", into out (at least TW_CLOCK_RFC3339_LEN bytes,
 * NUL-terminated). Returns the length written. */
#define TW_CLOCK_RFC3339_LEN 32
TW_API size_t tw_clock_format_rfc3339(int64_t wall_ns, char *out);

TW_EXTERN_C_END

#endif /* TWIN_CLOCK_H */
