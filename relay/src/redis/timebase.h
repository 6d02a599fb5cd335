/*
 * relay_timebase: the clock every replica shares when the state lives in
 * Redis/Valkey. A replica's CLOCK_MONOTONIC starts at an arbitrary point
 * (its boot), so deadlines and expiry times written by one replica would
 * mean nothing to another. The time base is instead the Redis server's
 * TIME, sampled every few seconds, plus this host's monotonic clock since
 * the sample:
 *
 *   now = server_ms_at_sample + (mono_now - mono_at_sample)
 *
 * where mono_at_sample is the middle of the TIME round trip (the error of
 * one sample is at most half the round trip; once a sample exists, an
 * answer slower than 250 ms is not used). The value handed out never
 * decreases: a sample that would move the clock back holds it still until
 * the estimate catches up. Before the first sample the estimate is the
 * wall clock (the server's TIME is also milliseconds since the epoch).
 *
 * Thread safe: relay_timebase_now() is lock-free (two atomics) and may be
 * called from any thread; samples come from one thread (state_redis.c).
 */
#ifndef RELAY_TIMEBASE_H
#define RELAY_TIMEBASE_H

#include <stdint.h>

struct relay_timebase;

/* A time base estimating from the wall clock until the first sample. */
struct relay_timebase *relay_timebase_new(void);

void relay_timebase_free(struct relay_timebase *tb);

/*
 * Takes one sample: the server said `server_ms` between the local
 * monotonic times mono_before_ms and mono_after_ms.
 */
void relay_timebase_sample(struct relay_timebase *tb, int64_t server_ms,
    int64_t mono_before_ms, int64_t mono_after_ms);

/* Milliseconds since the epoch in the shared base, never decreasing. */
int64_t relay_timebase_now(struct relay_timebase *tb);

/* The same as a relay_clock_fn / relay_v1_clock_fn (arg: the time base). */
int64_t relay_timebase_clock(void *arg);

/* Offset from the last sample to the wall clock (server minus local, ms). */
int64_t relay_timebase_skew_ms(struct relay_timebase *tb);

#endif /* RELAY_TIMEBASE_H */
