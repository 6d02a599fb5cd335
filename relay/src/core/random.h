/*
 * relay_random: the kernel's CSPRNG, for session ids, credentials and hash
 * seeds.
 */
#ifndef RELAY_RANDOM_H
#define RELAY_RANDOM_H

#include <stddef.h>

/* Fills buf with len random bytes. Returns 0, or -1 when none can be had. */
int relay_random_bytes(void *buf, size_t len);

#endif /* RELAY_RANDOM_H */
