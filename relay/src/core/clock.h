/*
 * clock.h -- the relay's one monotonic clock, for deadlines and durations
 * (never the wall clock, which NTP may step).
 */
#ifndef RELAY_CLOCK_H
#define RELAY_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Seconds since an arbitrary point, never decreasing. */
static inline double
relay_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds since an arbitrary point, never decreasing. */
static inline int64_t
relay_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The time `ms` of relay_mono_ms() as a timespec, for a
 * pthread_cond_timedwait() whose condition variable uses CLOCK_MONOTONIC.
 */
static inline struct timespec
relay_mono_timespec(int64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	return ts;
}

#endif /* RELAY_CLOCK_H */
