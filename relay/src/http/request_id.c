/*
 * request_id.c -- request ids (see request_id.h).
 */
#include "http/request_id.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>

#include "core/clock.h"

bool
relay_request_id_acceptable(const char *id)
{
	size_t n = 0;

	if (id == NULL || id[0] == '\0')
		return false;
	for (; id[n] != '\0'; n++) {
		if (n >= RELAY_REQUEST_ID_MAX || id[n] < 0x21 || id[n] > 0x7e)
			return false;
	}
	return true;
}

/*
 * Request ids need uniqueness, not secrecy: a per-thread splitmix64 seeded
 * once from getrandom() spares a system call per request.
 */
static uint64_t
next_random(void)
{
	static _Thread_local uint64_t state;
	static _Thread_local bool seeded;
	uint64_t z;

	if (!seeded) {
		if (getrandom(&state, sizeof(state), 0) != (ssize_t)sizeof(state))
			state = (uint64_t)(relay_mono_s() * 1e9) ^
			    (uint64_t)(uintptr_t)&state;
		seeded = true;
	}
	z = (state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
relay_request_id_generate(char out[RELAY_REQUEST_ID_GENERATED + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t r = next_random();

	for (int i = RELAY_REQUEST_ID_GENERATED - 1; i >= 0; i--) {
		out[i] = hex[r & 0xf];
		r >>= 4;
	}
	out[RELAY_REQUEST_ID_GENERATED] = '\0';
}
