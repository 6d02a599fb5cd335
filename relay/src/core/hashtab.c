/*
 * hashtab.c -- intrusive chained hash table over SipHash-2-4.
 *
 * SipHash-2-4 as specified by Aumasson and Bernstein ("SipHash: a fast
 * short-input PRF", 2012), written from the paper's description.
 */
#include "core/hashtab.h"

#include <stdlib.h>
#include <string.h>

#define HT_MIN_BUCKETS 64

static inline uint64_t
rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t
load_le64(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	    (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define SIPROUND do {							\
	v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);	\
	v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);	\
} while (0)

uint64_t
relay_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
	const unsigned char *p = data;
	const unsigned char *end = p + (len - len % 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	size_t left = len % 8, i;

	for (; p != end; p += 8) {
		m = load_le64(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (i = 0; i < left; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int
relay_hashtab_init(struct relay_hashtab *t, relay_hkey_fn key, uint64_t k0,
    uint64_t k1)
{
	memset(t, 0, sizeof(*t));
	t->buckets = calloc(HT_MIN_BUCKETS, sizeof(*t->buckets));
	if (t->buckets == NULL)
		return -1;
	t->mask = HT_MIN_BUCKETS - 1;
	t->k0 = k0;
	t->k1 = k1;
	t->key = key;
	return 0;
}

void
relay_hashtab_destroy(struct relay_hashtab *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->count = 0;
}

uint64_t
relay_hashtab_hash(const struct relay_hashtab *t, const char *key, size_t len)
{
	return relay_siphash(t->k0, t->k1, key, len);
}

struct relay_hnode *
relay_hashtab_get(const struct relay_hashtab *t, const char *key, size_t len)
{
	uint64_t h = relay_siphash(t->k0, t->k1, key, len);
	struct relay_hnode *n;
	const char *k;
	size_t klen;

	for (n = t->buckets[h & t->mask]; n != NULL; n = n->next) {
		if (n->hash != h)
			continue;
		k = t->key(n, &klen);
		if (klen == len && memcmp(k, key, len) == 0)
			return n;
	}
	return NULL;
}

/* Doubles or halves the bucket array; keeps the old one on failure. */
static void
resize(struct relay_hashtab *t, size_t nbuckets)
{
	struct relay_hnode **nb, *n, *next;
	size_t i;

	nb = calloc(nbuckets, sizeof(*nb));
	if (nb == NULL)
		return;
	for (i = 0; i <= t->mask; i++) {
		for (n = t->buckets[i]; n != NULL; n = next) {
			next = n->next;
			n->next = nb[n->hash & (nbuckets - 1)];
			nb[n->hash & (nbuckets - 1)] = n;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = nbuckets - 1;
}

void
relay_hashtab_put(struct relay_hashtab *t, struct relay_hnode *n)
{
	const char *k;
	size_t klen;

	k = t->key(n, &klen);
	n->hash = relay_siphash(t->k0, t->k1, k, klen);
	n->next = t->buckets[n->hash & t->mask];
	t->buckets[n->hash & t->mask] = n;
	t->count++;
	if (t->count > t->mask + 1 && t->mask < SIZE_MAX / 4)
		resize(t, (t->mask + 1) * 2);
}

void
relay_hashtab_del(struct relay_hashtab *t, struct relay_hnode *n)
{
	struct relay_hnode **pp = &t->buckets[n->hash & t->mask];

	while (*pp != NULL && *pp != n)
		pp = &(*pp)->next;
	if (*pp == NULL)
		return;
	*pp = n->next;
	n->next = NULL;
	t->count--;
	/* Shrink when a burst has passed, so drained tables give memory back. */
	if (t->mask + 1 > HT_MIN_BUCKETS && t->count < (t->mask + 1) / 8)
		resize(t, (t->mask + 1) / 2);
}
