/*
 * clock.c - monotonic, CPU and wall clocks, and RFC 3339 timestamps.
 *
 * Every reader is one clock_gettime call converted to nanoseconds; a clock
 * the OS cannot read yields 0, as clock.h promises. Formatting splits a
 * wall time with floor division, so times before the epoch land on the
 * right second (-1 ns is 1969-12-31T23:59:59.999Z, not 1970-...-00.-001)
 * and the milliseconds are always in [0, 999]. The digits are written by
 * hand: the output has a fixed width for every year an int64_t of
 * nanoseconds can reach (1677..2262), so it can never outgrow the buffer.
 */
#include <time.h>

#include "twin/clock.h"

#define NS_PER_SEC 1000000000LL

/* Reads clock id as nanoseconds; 0 if the clock is unavailable. */
static int64_t read_clock(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0)
    return 0;
  return (int64_t)ts.tv_sec * NS_PER_SEC + (int64_t)ts.tv_nsec;
}

uint64_t tw_clock_mono_ns(void) {
  return (uint64_t)read_clock(CLOCK_MONOTONIC);
}

uint64_t tw_clock_thread_cpu_ns(void) {
  return (uint64_t)read_clock(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t tw_clock_process_cpu_ns(void) {
  return (uint64_t)read_clock(CLOCK_PROCESS_CPUTIME_ID);
}

int64_t tw_clock_wall_ns(void) { return read_clock(CLOCK_REALTIME); }

/* Writes v as exactly width decimal digits (v must fit). */
static char *put_digits(char *p, unsigned v, int width) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = (char)('0' + v % 10);
    v /= 10;
  }
  return p + width;
}

size_t tw_clock_format_rfc3339(int64_t wall_ns, char *out) {
  /* Floor division: C division truncates toward zero, which would give a
   * negative remainder for times before the epoch. */
  int64_t secs = wall_ns / NS_PER_SEC;
  int64_t rem = wall_ns % NS_PER_SEC;
  if (rem < 0) {
    secs -= 1;
    rem += NS_PER_SEC;
  }
  time_t t = (time_t)secs;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 ||
      tm.tm_year + 1900 > 9999) {
    /* Unreachable on 64-bit time_t for an int64_t of nanoseconds; keep the
     * fixed width anyway. */
    static const char epoch[] = "1970-01-01T00:00:00.000Z";
    for (size_t i = 0; i < sizeof epoch; i++)
      out[i] = epoch[i];
    return sizeof epoch - 1;
  }
  char *p = out;
  p = put_digits(p, (unsigned)(tm.tm_year + 1900), 4);
  *p++ = '-';
  p = put_digits(p, (unsigned)(tm.tm_mon + 1), 2);
  *p++ = '-';
  p = put_digits(p, (unsigned)tm.tm_mday, 2);
  *p++ = 'T';
  p = put_digits(p, (unsigned)tm.tm_hour, 2);
  *p++ = ':';
  p = put_digits(p, (unsigned)tm.tm_min, 2);
  *p++ = ':';
  /* tm_sec can be 60 only for leap seconds, which gmtime never produces
   * from POSIX time; two digits hold it either way. */
  p = put_digits(p, (unsigned)tm.tm_sec, 2);
  *p++ = '.';
  p = put_digits(p, (unsigned)(rem / 1000000), 3);
  *p++ = 'Z';
  *p = '\0';
  return (size_t)(p - out);
}
