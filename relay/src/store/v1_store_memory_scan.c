/*
 * v1_store_memory_scan.c -- the memory store's operations that look
 * across nodes and requests rather than at one of them: node selection
 * (GET /servers/next), the node and model listings, the sweep and the
 * counts. Each runs under the store's one mutex like the rest of the
 * store (v1_store_memory.c); the model list reads the per-model index
 * (v1_model_index.c), not the nodes.
 */
#include <stdlib.h>
#include <string.h>

#include "store/v1_store_memory_int.h"

/* Everything due at now; called with the lock held. */
static void
sweep_locked(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    struct relay_v1_effects *fx)
{
	struct dlink *e, *next;

	for (e = m->node_list.next; e != &m->node_list; e = next) {
		struct node *n = container_of(e, struct node, all);

		next = e->next;
		if (relay_v1mem_node_stale(n, lim, now))
			relay_v1mem_node_remove(m, lim, now, n, true, fx);
		else
			relay_v1mem_prune_reservations(n, now);
	}
	for (e = m->live_list.next; e != &m->live_list; e = next) {
		next = e->next;
		(void)relay_v1mem_req_expire(m, lim, now, container_of(e,
		    struct req, live),
		    fx);
	}
	while (!dl_empty(&m->ready_list)) {
		struct req *r = container_of(m->ready_list.next, struct req, link);

		if (r->until > now)
			break;
		(void)relay_v1mem_req_expire(m, lim, now, r, fx);
	}
	while (!dl_empty(&m->terminal_list)) {
		struct req *r = container_of(m->terminal_list.next, struct req,
		    link);

		if (r->until > now)
			break;
		relay_v1mem_req_free(m, r);
	}
	while (!dl_empty(&m->redeliver_list)) {
		struct req *r = container_of(m->redeliver_list.next, struct req,
		    rlink);

		if (r->redeliver_until > now)
			break;
		dl_unlink(&r->rlink);
		free(r->body);
		r->body = NULL;
	}
	while (!dl_empty(&m->tomb_list)) {
		struct tomb *t = container_of(m->tomb_list.next, struct tomb, fifo);

		if (t->expires > now)
			break;
		relay_v1mem_tomb_free(m, t);
	}
	while (!dl_empty(&m->ntomb_list)) {
		struct ntomb *t = container_of(m->ntomb_list.next, struct ntomb,
		    fifo);

		if (t->expires > now)
			break;
		relay_v1mem_ntomb_free(m, t);
	}
}

/* Ranking among nodes with free capacity: lower is better. */
static bool
better(const struct node *a, double la, const struct node *b, double lb)
{
	if (a->caps->tier != b->caps->tier)
		return a->caps->tier < b->caps->tier;
	if (la != lb)
		return la < lb;
	/* round robin: the least recently selected; ties keep registration order */
	return a->last_selected < b->last_selected;
}

enum relay_v1_rc
relay_v1mem_select(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *model, enum tp_v1_tier tier, bool reserve,
    struct relay_v1_selection *out, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct dlink *e, *next;
	struct node *best = NULL;
	double best_load = 0;
	uint64_t best_used = 0;
	size_t matching = 0;
	enum relay_v1_rc rc = V1_OK;
	char *key = NULL, *models = NULL;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	for (e = m->node_list.next; e != &m->node_list; e = next) {
		struct node *n = container_of(e, struct node, all);
		uint64_t used;
		double load;

		next = e->next;
		if (relay_v1mem_node_stale(n, lim, now)) {
			relay_v1mem_node_remove(m, lim, now, n, true, fx);
			continue;
		}
		if (n->caps->tier < tier ||
		    !tp_v1_models_has(n->caps->models, n->caps->nmodels, model) ||
		    n->caps->max_context < tp_v1_tier_tokens(tier))
			continue;
		matching++;
		out->eligible_per_tier[n->caps->tier]++;
		used = relay_v1mem_node_used(n, now);
		if (used >= (uint64_t)n->caps->max_conc)
			continue;
		load = (double)used / (double)n->caps->max_conc;
		if (best == NULL || better(n, load, best, best_load)) {
			best = n;
			best_load = load;
			best_used = used;
		}
	}
	out->eligible_nodes = matching;
	if (best == NULL) {
		rc = m->nnodes == 0 ? V1_E_NO_NODES :
		    matching == 0 ? V1_E_NO_MATCH : V1_E_NO_CAPACITY;
		goto out;
	}
	key = malloc(best->key_len + 1);
	models = malloc(best->caps->models_len + 1);
	if (key == NULL || models == NULL) {
		rc = V1_E_NOMEM;
		goto out;
	}
	memcpy(key, best->key, best->key_len + 1);
	memcpy(models, best->caps->models, best->caps->models_len + 1);
	out->key.data = out->key.mem = key;
	out->key.len = best->key_len;
	out->models.data = out->models.mem = models;
	out->models.len = best->caps->models_len;
	key = models = NULL;
	out->nmodels = best->caps->nmodels;
	out->tier = best->caps->tier;
	out->context_tokens = best->caps->max_context;
	out->queue_depth = best->nqueued;
	out->in_flight = relay_v1mem_live_claims(best, now);
	out->load_score = best_load;
	out->spillover = best->caps->tier > tier;
	best->last_selected = ++m->select_seq;
	if (reserve && lim->reservation_ttl_ms > 0 &&
	    best_used < (uint64_t)best->caps->max_conc &&
	    best->nres < TP_V1_MAX_CONCURRENCY)
		best->res[best->nres++] = now + lim->reservation_ttl_ms;
out:
	pthread_mutex_unlock(&m->mu);
	free(key);
	free(models);
	return rc;
}

enum relay_v1_rc
relay_v1mem_list_nodes(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now, size_t max, bool keys,
    struct relay_v1_node_list *out, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct dlink *e;
	size_t cap;
	enum relay_v1_rc rc = V1_OK;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	sweep_locked(m, lim, now, fx);
	out->total = m->nnodes;
	cap = m->nnodes < max ? (size_t)m->nnodes : max;
	if (cap > 0) {
		out->nodes = calloc(cap, sizeof(out->nodes[0]));
		if (out->nodes == NULL)
			rc = V1_E_NOMEM;
	}
	for (e = m->node_list.next; rc == V1_OK && e != &m->node_list &&
	    out->n < cap; e = e->next) {
		struct node *n = container_of(e, struct node, all);
		struct relay_v1_node_info *i = &out->nodes[out->n++];

		i->age_ms = now > n->last_seen ? now - n->last_seen : 0;
		i->queued = n->nqueued;
		i->in_flight = relay_v1mem_live_claims(n, now);
		i->reserved = n->nres;
		i->max_concurrency = n->caps->max_conc;
		i->tier = n->caps->tier;
		i->max_context = n->caps->max_context;
		i->nmodels = n->caps->nmodels;
		i->models_len = n->caps->models_len;
		i->models = malloc(n->caps->models_len + 1);
		if (i->models != NULL)
			memcpy(i->models, n->caps->models,
			    n->caps->models_len + 1);
		if (keys) {
			i->key = malloc(n->key_len + 1);
			if (i->key != NULL) {
				memcpy(i->key, n->key, n->key_len + 1);
				i->key_len = n->key_len;
			}
		}
		if (i->models == NULL || (keys && i->key == NULL))
			rc = V1_E_NOMEM;
	}
	pthread_mutex_unlock(&m->mu);
	if (rc != V1_OK)
		relay_v1_node_list_free(out);
	return rc;
}

struct live_arg {
	struct mem *m;
	const struct relay_v1_limits *lim;
	int64_t now;
	struct node *stale;		/* found stale on the way */
};

/* The index's liveness test: a stale node is noted, evicted afterwards. */
static bool
model_member_live(void *owner, void *arg)
{
	struct node *n = owner;
	struct live_arg *a = arg;

	if (n->stale_marked)
		return false;
	if (!relay_v1mem_node_stale(n, a->lim, a->now))
		return true;
	n->stale_marked = true;
	n->next_stale = a->stale;
	a->stale = n;
	return false;
}

enum relay_v1_rc
relay_v1mem_list_models(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now, size_t max,
    const char *only, size_t only_len, struct relay_v1_model_list *out,
    struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct live_arg a = { m, lim, now, NULL };
	enum relay_v1_rc rc;

	pthread_mutex_lock(&m->mu);
	rc = relay_v1_model_index_list(&m->models, max, only, only_len,
	    model_member_live, &a, out);
	while (a.stale != NULL) {
		struct node *n = a.stale;

		a.stale = n->next_stale;
		relay_v1mem_node_remove(m, lim, now, n, true, fx);
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

enum relay_v1_rc
relay_v1mem_sweep(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);

	pthread_mutex_lock(&m->mu);
	sweep_locked(m, lim, now, fx);
	pthread_mutex_unlock(&m->mu);
	return V1_OK;
}

enum relay_v1_rc
relay_v1mem_stats(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, struct relay_v1_stats *out, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct dlink *e;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	sweep_locked(m, lim, now, fx);
	out->nodes = m->nnodes;
	out->responses = m->nready;
	out->terminal = m->nterminal;
	out->tombstones = m->ntomb;
	for (e = m->node_list.next; e != &m->node_list; e = e->next)
		out->reservations += container_of(e, struct node, all)->nres;
	for (e = m->live_list.next; e != &m->live_list; e = e->next) {
		const struct req *r = container_of(e, struct req, live);

		if (r->state == RS_QUEUED) {
			out->queued++;
			if (now - r->admitted > out->oldest_queued_ms)
				out->oldest_queued_ms = now - r->admitted;
		} else if (r->claim_expires > now) {
			out->in_flight++;
			if (now - r->claimed_at > out->oldest_in_flight_ms)
				out->oldest_in_flight_ms = now - r->claimed_at;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return V1_OK;
}

