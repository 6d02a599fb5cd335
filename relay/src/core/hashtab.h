/*
 * relay_hashtab: an intrusive chained hash table keyed by byte strings,
 * hashed with SipHash-2-4 under a random per-table key so that clients
 * choosing public keys cannot force collisions.
 *
 * Entries embed a struct relay_hnode and keep their own key bytes; the
 * table never allocates entries and never frees them. It is not thread
 * safe: the owner locks.
 */
#ifndef RELAY_HASHTAB_H
#define RELAY_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_hnode {
	struct relay_hnode *next;
	uint64_t hash;
};

/* Returns the key bytes of the entry holding `n`. */
typedef const char *(*relay_hkey_fn)(const struct relay_hnode *n, size_t *len);

struct relay_hashtab {
	struct relay_hnode **buckets;
	size_t mask;		/* buckets - 1 (a power of two minus one) */
	size_t count;
	uint64_t k0, k1;	/* SipHash key */
	relay_hkey_fn key;
};

/* SipHash-2-4 of data under (k0, k1). */
uint64_t relay_siphash(uint64_t k0, uint64_t k1, const void *data, size_t len);

/*
 * Prepares an empty table with the given SipHash key. Returns 0, or -1
 * when out of memory.
 */
int relay_hashtab_init(struct relay_hashtab *t, relay_hkey_fn key,
    uint64_t k0, uint64_t k1);

/* Frees the bucket array (not the entries). */
void relay_hashtab_destroy(struct relay_hashtab *t);

/* Hash of a key as this table computes it. */
uint64_t relay_hashtab_hash(const struct relay_hashtab *t, const char *key,
    size_t len);

/* Returns the entry with this key, or NULL. */
struct relay_hnode *relay_hashtab_get(const struct relay_hashtab *t,
    const char *key, size_t len);

/*
 * Links `n` (whose key must not be in the table yet; n->hash is set
 * here). Grows the table when it gets crowded; if growing fails the entry
 * is still linked, only lookups get slower.
 */
void relay_hashtab_put(struct relay_hashtab *t, struct relay_hnode *n);

/* Unlinks `n`, which must be in the table. */
void relay_hashtab_del(struct relay_hashtab *t, struct relay_hnode *n);

#endif /* RELAY_HASHTAB_H */
