/* clock.h - the monotonic clock in milliseconds, the one time base for
 * deadlines, backoff and freshness (wall-clock time is only for what a
 * server or a file's mtime says). */
#ifndef RS_CLOCK_H
#define RS_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
long long clock_mono_ms(void);
/* CLOCK_MONOTONIC in microseconds (durations for metrics). */
long long clock_mono_us(void);
/* CLOCK_REALTIME in milliseconds (only for showing when something happened). */
long long clock_real_ms(void);
/* Milliseconds since a CLOCK_MONOTONIC timestamp. */
long long clock_elapsed_ms(const struct timespec *since);

#endif
