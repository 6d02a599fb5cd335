/*
 * v1_store_memory_tomb.c -- the memory store's tombstones: word left for
 * the owner of a request taken away from it (control tombstones, keyed
 * node NUL request_id), and nodes recently removed whose credential still
 * answers /control (node tombstones). Both lists are in expiry order.
 */
#include "store/v1_store_memory_int.h"

#include <stdlib.h>
#include <string.h>

void
relay_v1mem_tomb_free(struct mem *m, struct tomb *t)
{
	relay_hashtab_del(&m->tombs, &t->h);
	dl_unlink(&t->fifo);
	m->ntomb--;
	free(t);
}

struct tomb *
relay_v1mem_tomb_find(struct mem *m, int64_t now, const char *node,
    size_t node_len, const char *id, size_t id_len)
{
	struct relay_hnode *h;
	struct tomb *t;
	size_t klen;
	char *k = relay_v1mem_join_key(node, node_len, id, id_len, &klen);

	if (k == NULL)
		return NULL;
	h = relay_hashtab_get(&m->tombs, k, klen);
	free(k);
	if (h == NULL)
		return NULL;
	t = container_of(h, struct tomb, h);
	if (t->expires <= now) {
		relay_v1mem_tomb_free(m, t);
		return NULL;
	}
	return t;
}

/*
 * Leaves word for the owner of a request taken away from it. Best effort:
 * without memory the owner learns "completed/unavailable" instead.
 */
void
relay_v1mem_tomb_add(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    const struct node *owner, const struct req *r, const char *status,
    struct relay_v1_effects *fx)
{
	struct tomb *t = relay_v1mem_tomb_find(m, now, owner->key, owner->key_len,
	    relay_v1mem_req_id(r), r->id_len);
	size_t klen = owner->key_len + 1 + r->id_len;

	if (t == NULL) {
		t = malloc(sizeof(*t) + klen + 1);
		if (t == NULL)
			return;
		memcpy(t->key, owner->key, owner->key_len);
		t->key[owner->key_len] = '\0';
		memcpy(t->key + owner->key_len + 1, relay_v1mem_req_id(r), r->id_len);
		t->key[klen] = '\0';
		t->key_len = klen;
		relay_hashtab_put(&m->tombs, &t->h);
		m->ntomb++;
	} else {
		dl_unlink(&t->fifo);
	}
	dl_push_tail(&m->tomb_list, &t->fifo);
	t->expires = now + lim->tombstone_ttl_ms;
	t->deadline = r->deadline;
	t->status = status;
	memcpy(t->digest, owner->digest, TP_SHA256_LEN);
	while (m->ntomb > lim->max_tombstones && !dl_empty(&m->tomb_list)) {
		relay_v1mem_tomb_free(m, container_of(m->tomb_list.next,
		    struct tomb, fifo));
		if (fx)
			fx->dropped_tombstones++;
	}
}

void
relay_v1mem_ntomb_free(struct mem *m, struct ntomb *t)
{
	relay_hashtab_del(&m->ntombs, &t->h);
	dl_unlink(&t->fifo);
	free(t);
}

struct ntomb *
relay_v1mem_ntomb_find(struct mem *m, int64_t now, const char *key, size_t key_len)
{
	struct relay_hnode *h = relay_hashtab_get(&m->ntombs, key, key_len);
	struct ntomb *t;

	if (h == NULL)
		return NULL;
	t = container_of(h, struct ntomb, h);
	if (t->expires <= now) {
		relay_v1mem_ntomb_free(m, t);
		return NULL;
	}
	return t;
}

void
relay_v1mem_ntomb_add(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    const struct node *n)
{
	struct ntomb *t = relay_v1mem_ntomb_find(m, now, n->key, n->key_len);

	if (t == NULL) {
		t = malloc(sizeof(*t) + n->key_len + 1);
		if (t == NULL)
			return;
		memcpy(t->key, n->key, n->key_len);
		t->key[n->key_len] = '\0';
		t->key_len = n->key_len;
		relay_hashtab_put(&m->ntombs, &t->h);
	} else {
		dl_unlink(&t->fifo);
	}
	dl_push_tail(&m->ntomb_list, &t->fifo);
	t->expires = now + lim->node_tombstone_ttl_ms;
	memcpy(t->digest, n->digest, TP_SHA256_LEN);
}
