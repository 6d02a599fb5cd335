/* backoff.c -- exponential restart delay; see backoff.h. */
#include "backoff.h"

int64_t
gpuhost_backoff_next(struct gpuhost_backoff *b, int64_t ran_ms)
{
	int64_t d = b->initial_ms;

	if (ran_ms >= b->stable_ms)
		b->failures = 0;
	if (b->failures < 63)
		b->failures++;
	for (unsigned i = 1; i < b->failures && d < b->max_ms; i++)
		d *= 2;
	return d < b->max_ms ? d : b->max_ms;
}
