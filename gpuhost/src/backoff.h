/*
 * backoff.h -- restart delays: initial * 2^(failures-1), capped; a worker
 * that ran at least `stable_after` resets the count. Pure.
 */
#ifndef GPUHOST_BACKOFF_H
#define GPUHOST_BACKOFF_H

#include <stdint.h>

struct gpuhost_backoff {
	int64_t initial_ms, max_ms, stable_ms;
	unsigned failures;	/* consecutive unexpected exits */
};

/*
 * Records an unexpected exit of a worker that ran `ran_ms` and returns
 * the delay before the next start, in milliseconds.
 */
int64_t gpuhost_backoff_next(struct gpuhost_backoff *b, int64_t ran_ms);

#endif
