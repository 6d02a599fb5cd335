/*
 * v1_model_index.c -- model id -> nodes serving it, for the memory
 * store's model list (v1_model_index.h).
 *
 * A model is a hash entry with an intrusive list of memberships; a node
 * holds one membership per model it advertises (struct relay_v1_model_ref),
 * so leaving costs what joining did. A model whose last member leaves is
 * freed at once, so the index never holds more models than live nodes
 * advertise (at most max_nodes x TP_V1_MAX_MODELS).
 */
#include "store/v1_model_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/random.h"

struct model {
	struct relay_hnode h;
	struct dlink all;
	struct dlink members;
	size_t len;
	char id[];
};

struct member {
	struct dlink link;
	struct model *m;
	void *owner;
};

struct relay_v1_model_ref {
	size_t n;			/* members joined so far */
	struct member mem[];
};

static const char *
model_hkey(const struct relay_hnode *n, size_t *len)
{
	const struct model *m = const_container_of(n, struct model, h);

	*len = m->len;
	return m->id;
}

int
relay_v1_model_index_init(struct relay_v1_model_index *ix)
{
	uint64_t k[2];

	memset(ix, 0, sizeof(*ix));
	if (relay_random_bytes(k, sizeof(k)) != 0)
		return -1;
	if (relay_hashtab_init(&ix->tab, model_hkey, k[0], k[1]) != 0)
		return -1;
	dl_init(&ix->all);
	return 0;
}

void
relay_v1_model_index_destroy(struct relay_v1_model_index *ix)
{
	/* Models exist only while members do; free any a caller left. */
	while (!dl_empty(&ix->all)) {
		struct model *m = container_of(ix->all.next, struct model, all);

		while (!dl_empty(&m->members))
			dl_unlink(m->members.next);
		dl_unlink(&m->all);
		free(m);
	}
	relay_hashtab_destroy(&ix->tab);
}

static void
model_drop_if_empty(struct relay_v1_model_index *ix, struct model *m)
{
	if (!dl_empty(&m->members))
		return;
	relay_hashtab_del(&ix->tab, &m->h);
	dl_unlink(&m->all);
	ix->count--;
	free(m);
}

void
relay_v1_model_index_leave(struct relay_v1_model_index *ix,
    struct relay_v1_model_ref *ref)
{
	if (ref == NULL)
		return;
	for (size_t i = 0; i < ref->n; i++) {
		dl_unlink(&ref->mem[i].link);
		model_drop_if_empty(ix, ref->mem[i].m);
	}
	free(ref);
}

struct relay_v1_model_ref *
relay_v1_model_index_join(struct relay_v1_model_index *ix, void *owner,
    const char *models, size_t nmodels)
{
	struct relay_v1_model_ref *ref;
	const char *p = models;

	ref = malloc(sizeof(*ref) + nmodels * sizeof(ref->mem[0]));
	if (ref == NULL)
		return NULL;
	ref->n = 0;
	for (size_t i = 0; i < nmodels; i++) {
		size_t len = strlen(p);
		struct relay_hnode *h = relay_hashtab_get(&ix->tab, p, len);
		struct model *m;

		if (h != NULL) {
			m = container_of(h, struct model, h);
		} else {
			m = malloc(sizeof(*m) + len + 1);
			if (m == NULL) {
				/* undo: nothing changed for the caller */
				relay_v1_model_index_leave(ix, ref);
				return NULL;
			}
			memcpy(m->id, p, len + 1);
			m->len = len;
			dl_init(&m->members);
			relay_hashtab_put(&ix->tab, &m->h);
			dl_push_tail(&ix->all, &m->all);
			ix->count++;
		}
		ref->mem[i].m = m;
		ref->mem[i].owner = owner;
		dl_push_tail(&m->members, &ref->mem[i].link);
		ref->n = i + 1;
		p += len + 1;
	}
	return ref;
}

/* Does a member `live` accepts serve m? Stops at the first one. */
static bool
served(const struct model *m, relay_v1_model_live_fn live, void *arg)
{
	for (const struct dlink *e = m->members.next; e != &m->members;
	    e = e->next)
		if (live(const_container_of(e, struct member, link)->owner, arg))
			return true;
	return false;
}

static int
cmp_model(const void *a, const void *b)
{
	const struct model *x = *(const struct model *const *)a;
	const struct model *y = *(const struct model *const *)b;

	/* ids hold no NUL: strcmp is byte order, as in the Redis store */
	return strcmp(x->id, y->id);
}

/* Packs the ids of pick[0..n) into out. */
static enum relay_v1_rc
pack(struct model **pick, size_t n, struct relay_v1_model_list *out)
{
	size_t len = 0, o = 0;

	for (size_t i = 0; i < n; i++)
		len += pick[i]->len + 1;
	if (n == 0)
		return V1_OK;
	out->ids = malloc(len);
	if (out->ids == NULL)
		return V1_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(out->ids + o, pick[i]->id, pick[i]->len + 1);
		o += pick[i]->len + 1;
	}
	out->ids_len = len;
	out->n = n;
	return V1_OK;
}

enum relay_v1_rc
relay_v1_model_index_list(struct relay_v1_model_index *ix, size_t max,
    const char *only, size_t only_len, relay_v1_model_live_fn live, void *arg,
    struct relay_v1_model_list *out)
{
	struct model **all = NULL;
	size_t n = 0, k = 0;
	enum relay_v1_rc rc;

	memset(out, 0, sizeof(*out));
	if (only != NULL) {
		struct relay_hnode *h = relay_hashtab_get(&ix->tab, only, only_len);
		struct model *m = h ? container_of(h, struct model, h) : NULL;

		if (m == NULL || !served(m, live, arg))
			return V1_OK;
		return pack(&m, 1, out);
	}
	if (ix->count == 0)
		return V1_OK;
	all = malloc(ix->count * sizeof(*all));
	if (all == NULL)
		return V1_E_NOMEM;
	for (struct dlink *e = ix->all.next; e != &ix->all; e = e->next)
		all[n++] = container_of(e, struct model, all);
	qsort(all, n, sizeof(*all), cmp_model);
	/* Listed ones are compacted to the front of the same array. */
	for (size_t i = 0; i < n; i++) {
		if (!served(all[i], live, arg))
			continue;
		if (k == max) {
			out->more = true;
			break;
		}
		all[k++] = all[i];
	}
	rc = pack(all, k, out);
	free(all);
	return rc;
}
