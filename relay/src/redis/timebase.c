/*
 * timebase.c -- the shared time base (see timebase.h).
 */
#include "redis/timebase.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"

/*
 * A TIME answer slower than this is not used once a sample exists: its
 * error (up to half the round trip) would be larger than the drift it
 * corrects.
 */
#define MAX_SAMPLE_RTT_MS 250

struct relay_timebase {
	_Atomic int64_t offset;		/* shared time = mono + offset */
	_Atomic int64_t last;		/* highest value handed out */
	_Atomic int64_t skew;		/* server - local wall clock at the last sample */
	_Atomic int64_t samples;	/* samples taken */
};

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct relay_timebase *
relay_timebase_new(void)
{
	struct relay_timebase *tb = calloc(1, sizeof(*tb));

	if (tb == NULL)
		return NULL;
	atomic_store(&tb->offset, wall_ms() - relay_mono_ms());
	return tb;
}

void
relay_timebase_free(struct relay_timebase *tb)
{
	free(tb);
}

void
relay_timebase_sample(struct relay_timebase *tb, int64_t server_ms,
    int64_t mono_before_ms, int64_t mono_after_ms)
{
	int64_t mid = mono_before_ms + (mono_after_ms - mono_before_ms) / 2;

	if (mono_after_ms - mono_before_ms > MAX_SAMPLE_RTT_MS &&
	    atomic_load(&tb->samples) > 0)
		return;
	atomic_fetch_add(&tb->samples, 1);
	atomic_store(&tb->offset, server_ms - mid);
	atomic_store(&tb->skew, server_ms - (wall_ms() -
	    (relay_mono_ms() - mid)));
}

int64_t
relay_timebase_now(struct relay_timebase *tb)
{
	int64_t est = relay_mono_ms() + atomic_load(&tb->offset);
	int64_t last = atomic_load(&tb->last);

	while (est > last) {
		if (atomic_compare_exchange_weak(&tb->last, &last, est))
			return est;
	}
	/* Held still until the estimate passes what was handed out. */
	return last;
}

int64_t
relay_timebase_clock(void *arg)
{
	return relay_timebase_now(arg);
}

int64_t
relay_timebase_skew_ms(struct relay_timebase *tb)
{
	return atomic_load(&tb->skew);
}
