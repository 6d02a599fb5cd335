/*
 * keyname.c -- digests that stand for client- or node-chosen strings in
 * Redis key and channel names (see keyname.h). Shared by the legacy store
 * (store_redis.c), the API v1 store (v1_store_redis.c) and the API v1
 * broker, which files long polls under the same name as the wake-up
 * channel carries.
 */
#include "core/keyname.h"

#include "tokenplace/sha256.h"

static void
hex_prefix(const unsigned char d[TP_SHA256_LEN],
    char out[RELAY_KEYNAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < RELAY_KEYNAME_LEN / 2; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[RELAY_KEYNAME_LEN] = '\0';
}

void
relay_keyname(const char *s, size_t len, char out[RELAY_KEYNAME_LEN + 1])
{
	unsigned char d[TP_SHA256_LEN];

	tp_sha256(s, len, d);
	hex_prefix(d, out);
}

void
relay_keyname2(const char *a, size_t alen, const char *b, size_t blen,
    char out[RELAY_KEYNAME_LEN + 1])
{
	struct tp_sha256 h;
	unsigned char d[TP_SHA256_LEN];

	tp_sha256_init(&h);
	tp_sha256_update(&h, a, alen);
	tp_sha256_update(&h, "", 1);
	tp_sha256_update(&h, b, blen);
	tp_sha256_final(&h, d);
	hex_prefix(d, out);
}
