/*
 * keyname: the fixed-length names the Redis stores give to what a client
 * or a node chose (a public key, a request id, a model id).
 *
 * Rule (docs/store-redis.md, "Key names"): no Redis key and no Pub/Sub
 * channel name is ever built from a string a client or a node sent. Such a
 * string becomes a digest first, so it can never equal (or overlap) a
 * store's own structure ("resp:exp", "queued", ...), carry a hash tag, a
 * glob or a line break, or make a key name as long as the string; the full
 * string stays inside the record and every lookup compares it, so a digest
 * collision can never hand one client's data to another.
 */
#ifndef RELAY_KEYNAME_H
#define RELAY_KEYNAME_H

#include <stddef.h>

#define RELAY_KEYNAME_LEN 32

/*
 * The name of s[0..len): the first 32 hex digits (lower case) of its
 * SHA-256, NUL-terminated in out. Never fails; s may hold any bytes.
 */
void relay_keyname(const char *s, size_t len,
    char out[RELAY_KEYNAME_LEN + 1]);

/*
 * The name of a pair: the same digest of a NUL b (a, b any bytes), so
 * ("ab", "c") and ("a", "bc") get different names. Never fails.
 */
void relay_keyname2(const char *a, size_t alen, const char *b, size_t blen,
    char out[RELAY_KEYNAME_LEN + 1]);

#endif /* RELAY_KEYNAME_H */
