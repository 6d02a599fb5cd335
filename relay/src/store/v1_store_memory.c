/*
 * v1_store_memory.c -- the embedded relay_v1_store: all API v1 state in
 * this process under one mutex.
 *
 * Operations are short: hash lookups, list splices and scans of one node's
 * queue and claims (at most max_concurrency <= 128 entries, since a node
 * never holds more than that). Caller-sized copies (work, responses,
 * progress) are made before the lock is taken. Lists whose entries all
 * share one TTL (responses, terminal records, tombstones) are kept in
 * time order, so expiring them costs only what expires; requests have
 * their own deadlines and are scanned by sweep().
 *
 * This file holds the records' life (nodes, requests, tombstones) and the
 * operations on one node or one request; the operations that look across
 * them (select, list_nodes, list_models, sweep, stats) are in
 * v1_store_memory_scan.c, and the records in v1_store_memory_int.h.
 */
#include "store/v1_store_memory_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/random.h"

/* ---- lists and keys ------------------------------------------------------ */

static const char *
node_hkey(const struct relay_hnode *n, size_t *len)
{
	const struct node *x = const_container_of(n, struct node, h);

	*len = x->key_len;
	return x->key;
}

static const char *
req_hkey(const struct relay_hnode *n, size_t *len)
{
	const struct req *r = const_container_of(n, struct req, h);

	*len = r->client_len + 1 + r->id_len;
	return r->bytes;
}

static const char *
tomb_hkey(const struct relay_hnode *n, size_t *len)
{
	const struct tomb *t = const_container_of(n, struct tomb, h);

	*len = t->key_len;
	return t->key;
}

static const char *
ntomb_hkey(const struct relay_hnode *n, size_t *len)
{
	const struct ntomb *t = const_container_of(n, struct ntomb, h);

	*len = t->key_len;
	return t->key;
}

/*
 * Composite hash keys: a NUL b (cJSON strings never contain NUL, so the
 * pair is unambiguous). Returns a malloc'd key and its length, or NULL.
 */
char *
relay_v1mem_join_key(const char *a, size_t alen, const char *b, size_t blen, size_t *len)
{
	char *k = malloc(alen + 1 + blen + 1);

	if (k == NULL)
		return NULL;
	memcpy(k, a, alen);
	k[alen] = '\0';
	memcpy(k + alen + 1, b, blen);
	k[alen + 1 + blen] = '\0';
	*len = alen + 1 + blen;
	return k;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static bool
digest_ok(const unsigned char *given, const unsigned char *stored)
{
	return given != NULL && tp_sha256_equal(given, stored);
}

/* ---- capabilities ---------------------------------------------------------- */

static struct caps *
caps_copy(const struct tp_v1_caps *c)
{
	struct caps *k = malloc(sizeof(*k) + c->models_len + 1);

	if (k == NULL)
		return NULL;
	k->tier = c->tier;
	k->max_context = c->max_context_tokens;
	k->max_conc = c->max_concurrency;
	k->nmodels = c->nmodels;
	k->models_len = c->models_len;
	memcpy(k->models, c->models, c->models_len);
	k->models[c->models_len] = '\0';
	return k;
}

/* ---- requests ------------------------------------------------------------------- */

/* Takes r out of every list and out of its state's count. */
static void
req_unlink(struct mem *m, struct req *r)
{
	dl_unlink(&r->link);
	dl_unlink(&r->live);
	dl_unlink(&r->rlink);
	switch (r->state) {
	case RS_QUEUED:
		r->node->nqueued--;
		m->nlive--;
		break;
	case RS_IN_FLIGHT:
		r->node->nclaimed--;
		m->nlive--;
		break;
	case RS_READY:
		m->nready--;
		break;
	case RS_TERMINAL:
		m->nterminal--;
		break;
	}
}

void
relay_v1mem_req_free(struct mem *m, struct req *r)
{
	relay_hashtab_del(&m->reqs, &r->h);
	req_unlink(m, r);
	free(r->work);
	free(r->body);
	free(r);
}

/*
 * Moves a request to TERMINAL with a status and reason (static strings),
 * counting `outcome` unless it is V1_OUTCOME_COUNT (already counted).
 */
static void
terminalize(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    struct req *r, const char *status, const char *reason,
    enum relay_v1_outcome outcome, struct relay_v1_effects *fx)
{
	req_unlink(m, r);
	free(r->work);
	r->work = NULL;
	free(r->body);
	r->body = NULL;
	r->node = NULL;
	r->state = RS_TERMINAL;
	r->t_status = status;
	r->t_reason = reason;
	r->until = now + lim->terminal_ttl_ms;
	dl_push_tail(&m->terminal_list, &r->link);
	m->nterminal++;
	if (fx != NULL && outcome < V1_OUTCOME_COUNT)
		fx->outcomes[outcome]++;
	/* r is the newest record, so with max_terminal >= 1 it stays. */
	while (m->nterminal > lim->max_terminal && m->nterminal > 1) {
		relay_v1mem_req_free(m, container_of(m->terminal_list.next,
		    struct req, link));
		if (fx)
			fx->dropped_terminal++;
	}
}

/* A claimed request past its deadline: terminal, owner told by tombstone. */
static void
expire_claim(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    struct req *r, struct relay_v1_effects *fx)
{
	relay_v1mem_tomb_add(m, lim, now, r->node, r, "expired", fx);
	terminalize(m, lim, now, r, "expired", "provider_timeout",
	    V1_OUTCOME_EXPIRED, fx);
}

/* Applies r's expiries; returns r, or NULL when the record is gone. */
struct req *
relay_v1mem_req_expire(struct mem *m, const struct relay_v1_limits *lim,
    int64_t now, struct req *r, struct relay_v1_effects *fx)
{
	switch (r->state) {
	case RS_QUEUED:
		if (r->deadline <= now)
			terminalize(m, lim, now, r, "expired", "provider_timeout",
			    V1_OUTCOME_EXPIRED, fx);
		return r;
	case RS_IN_FLIGHT:
		if (r->deadline <= now)
			expire_claim(m, lim, now, r, fx);
		return r;
	case RS_READY:
		if (r->until <= now) {
			terminalize(m, lim, now, r, "expired",
			    "response_ttl_exceeded", V1_OUTCOME_COUNT, fx);
			if (fx)
				fx->expired_responses++;
		}
		return r;
	case RS_TERMINAL:
		if (r->until <= now) {
			relay_v1mem_req_free(m, r);
			return NULL;
		}
		return r;
	}
	return r;
}

static struct req *
req_find(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    const char *client, size_t client_len, const char *id, size_t id_len,
    struct relay_v1_effects *fx)
{
	struct relay_hnode *h;
	size_t klen;
	char *k = relay_v1mem_join_key(client, client_len, id, id_len, &klen);

	if (k == NULL)
		return NULL;
	h = relay_hashtab_get(&m->reqs, k, klen);
	free(k);
	if (h == NULL)
		return NULL;
	return relay_v1mem_req_expire(m, lim, now, container_of(h, struct req,
	    h), fx);
}

/* ---- nodes ------------------------------------------------------------------------ */

uint64_t
relay_v1mem_live_claims(const struct node *n, int64_t now)
{
	const struct dlink *e;
	uint64_t c = 0;

	for (e = n->claims.next; e != &n->claims; e = e->next)
		if (const_container_of(e, struct req, link)->claim_expires > now)
			c++;
	return c;
}

void
relay_v1mem_prune_reservations(struct node *n, int64_t now)
{
	size_t i = 0;

	while (i < n->nres) {
		if (n->res[i] <= now)
			n->res[i] = n->res[--n->nres];
		else
			i++;
	}
}

/* Capacity in use: queued + live claims + live reservations. */
uint64_t
relay_v1mem_node_used(struct node *n, int64_t now)
{
	relay_v1mem_prune_reservations(n, now);
	return n->nqueued + relay_v1mem_live_claims(n, now) + n->nres;
}

/*
 * Stale: silent past its lease, not in a long poll, and no claim with a
 * live lease (a node busy with a long generation renews its claim).
 */
bool
relay_v1mem_node_stale(const struct node *n, const struct relay_v1_limits *lim,
    int64_t now)
{
	return now - n->last_seen > lim->lease_ms && n->polling_until <= now &&
	    relay_v1mem_live_claims(n, now) == 0;
}

/* Unregisters or evicts n: its work becomes terminal, owners are told. */
void
relay_v1mem_node_remove(struct mem *m, const struct relay_v1_limits *lim,
    int64_t now, struct node *n, bool evicted, struct relay_v1_effects *fx)
{
	while (!dl_empty(&n->queue))
		terminalize(m, lim, now, container_of(n->queue.next, struct req,
		    link), "cancelled", "server_unregistered",
		    V1_OUTCOME_CANCELLED, fx);
	while (!dl_empty(&n->claims)) {
		struct req *r = container_of(n->claims.next, struct req, link);

		relay_v1mem_tomb_add(m, lim, now, n, r, "cancelled", fx);
		terminalize(m, lim, now, r, "cancelled", "server_unregistered",
		    V1_OUTCOME_CANCELLED, fx);
	}
	relay_v1mem_ntomb_add(m, lim, now, n);
	relay_v1_model_index_leave(&m->models, n->mref);
	relay_hashtab_del(&m->nodes, &n->h);
	dl_unlink(&n->all);
	m->nnodes--;
	if (fx) {
		if (evicted)
			fx->evicted_nodes++;
		else
			fx->unregistered_nodes++;
	}
	free(n->caps);
	free(n);
}

/* The registered node `key`, evicting it first if its lease lapsed. */
static struct node *
node_get(struct mem *m, const struct relay_v1_limits *lim, int64_t now,
    const char *key, size_t key_len, struct relay_v1_effects *fx)
{
	struct relay_hnode *h = relay_hashtab_get(&m->nodes, key, key_len);
	struct node *n;

	if (h == NULL)
		return NULL;
	n = container_of(h, struct node, h);
	if (relay_v1mem_node_stale(n, lim, now)) {
		relay_v1mem_node_remove(m, lim, now, n, true, fx);
		return NULL;
	}
	return n;
}

/*
 * Authenticates a node's credential digest: the live node's, or for a
 * node that is gone, its tombstone's. Returns true when it matches.
 */
static bool
node_auth(struct mem *m, int64_t now, struct node *n, const char *key,
    size_t key_len, const unsigned char *digest)
{
	struct ntomb *t;

	if (n != NULL)
		return digest_ok(digest, n->digest);
	t = relay_v1mem_ntomb_find(m, now, key, key_len);
	return t != NULL && digest_ok(digest, t->digest);
}

/*
 * Gives n the capabilities *c (taken: *c becomes NULL) and files it under
 * their models. V1_E_NOMEM leaves n and *c as they were.
 */
static enum relay_v1_rc
set_caps(struct mem *m, struct node *n, struct caps **c)
{
	struct relay_v1_model_ref *ref = relay_v1_model_index_join(&m->models,
	    n, (*c)->models, (*c)->nmodels);

	if (ref == NULL)
		return V1_E_NOMEM;
	relay_v1_model_index_leave(&m->models, n->mref);
	n->mref = ref;
	free(n->caps);
	n->caps = *c;
	*c = NULL;
	return V1_OK;
}

/* ---- operations ------------------------------------------------------------ */

static enum relay_v1_rc
mem_register(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const unsigned char new_digest[TP_SHA256_LEN],
    const struct tp_v1_caps *caps, bool *created, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct caps *c = caps_copy(caps);
	struct node *n, *fresh = malloc(sizeof(*fresh) + key_len + 1);
	struct ntomb *t;
	enum relay_v1_rc rc = V1_OK;

	*created = false;
	if (c == NULL || fresh == NULL) {
		free(c);
		free(fresh);
		return V1_E_NOMEM;
	}
	pthread_mutex_lock(&m->mu);
	n = node_get(m, lim, now, key, key_len, fx);
	if (n != NULL) {
		rc = set_caps(m, n, &c);
		if (rc == V1_OK)
			n->last_seen = now;
		goto out;
	}
	if (m->nnodes >= lim->max_nodes) {
		rc = V1_E_NODES_FULL;
		goto out;
	}
	n = fresh;
	fresh = NULL;
	memset(n, 0, sizeof(*n));
	memcpy(n->key, key, key_len);
	n->key[key_len] = '\0';
	n->key_len = key_len;
	dl_init(&n->queue);
	dl_init(&n->claims);
	if (set_caps(m, n, &c) != V1_OK) {
		fresh = n;	/* freed below, never linked */
		rc = V1_E_NOMEM;
		goto out;
	}
	memcpy(n->digest, new_digest, TP_SHA256_LEN);
	n->last_seen = now;
	relay_hashtab_put(&m->nodes, &n->h);
	dl_push_tail(&m->node_list, &n->all);
	m->nnodes++;
	t = relay_v1mem_ntomb_find(m, now, key, key_len);
	if (t != NULL)
		relay_v1mem_ntomb_free(m, t);
	*created = true;
out:
	pthread_mutex_unlock(&m->mu);
	free(c);
	free(fresh);
	return rc;
}

static enum relay_v1_rc
mem_poll(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const struct tp_v1_caps *caps, int64_t polling_until,
    struct relay_v1_work *work, bool *has_work, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct caps *c = caps ? caps_copy(caps) : NULL;
	struct node *n;
	struct req *r;

	*has_work = false;
	memset(work, 0, sizeof(*work));
	if (caps != NULL && c == NULL)
		return V1_E_NOMEM;
	pthread_mutex_lock(&m->mu);
	n = node_get(m, lim, now, key, key_len, fx);
	if (n == NULL) {
		pthread_mutex_unlock(&m->mu);
		free(c);
		return V1_E_UNKNOWN_NODE;
	}
	if (c != NULL && set_caps(m, n, &c) != V1_OK) {
		pthread_mutex_unlock(&m->mu);
		free(c);
		return V1_E_NOMEM;
	}
	n->last_seen = now;
	if (polling_until > n->polling_until)
		n->polling_until = polling_until;
	while (!dl_empty(&n->queue)) {
		r = container_of(n->queue.next, struct req, link);
		if (r->deadline <= now) {
			terminalize(m, lim, now, r, "expired", "provider_timeout",
			    V1_OUTCOME_EXPIRED, fx);
			continue;
		}
		dl_unlink(&r->link);
		n->nqueued--;
		dl_push_tail(&n->claims, &r->link);
		n->nclaimed++;
		r->state = RS_IN_FLIGHT;
		r->claimed_at = now;
		r->claim_expires = min64(now + lim->in_flight_ttl_ms, r->deadline);
		r->generation = ++m->generation;
		work->envelope.data = r->work;
		work->envelope.len = r->work_len;
		work->envelope.mem = r->work;
		work->deadline_ms = r->deadline;
		work->generation = r->generation;
		r->work = NULL;
		r->work_len = 0;
		*has_work = true;
		break;
	}
	pthread_mutex_unlock(&m->mu);
	return V1_OK;
}

/* True when another client's live request on n uses this request_id. */
static bool
id_taken_on_node(const struct node *n, const char *id, size_t id_len)
{
	const struct dlink *lists[2] = { &n->queue, &n->claims };
	size_t i;

	for (i = 0; i < 2; i++) {
		const struct dlink *e;

		for (e = lists[i]->next; e != lists[i]; e = e->next) {
			const struct req *r = const_container_of(e, struct req,
			    link);

			if (r->id_len == id_len && memcmp(relay_v1mem_req_id(r), id, id_len) == 0)
				return true;
		}
	}
	return false;
}

static enum relay_v1_rc
mem_enqueue(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const struct relay_v1_enqueue_in *in, bool *duplicate,
    int64_t *deadline_ms, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	size_t blen = in->client_len + 1 + in->request_id_len + 1 + in->node_len + 1;
	struct req *r = malloc(sizeof(*r) + blen);
	char *work = malloc(in->work_len + 1);
	struct req *old;
	struct node *n;
	enum relay_v1_rc rc = V1_OK;

	*duplicate = false;
	*deadline_ms = in->deadline_ms;
	if (r == NULL || work == NULL) {
		free(r);
		free(work);
		return V1_E_NOMEM;
	}
	memcpy(work, in->work, in->work_len);
	work[in->work_len] = '\0';
	memset(r, 0, sizeof(*r));
	dl_init(&r->rlink);
	memcpy(r->bytes, in->client, in->client_len);
	r->bytes[in->client_len] = '\0';
	memcpy(r->bytes + in->client_len + 1, in->request_id, in->request_id_len);
	r->bytes[in->client_len + 1 + in->request_id_len] = '\0';
	memcpy(r->bytes + in->client_len + 1 + in->request_id_len + 1, in->node,
	    in->node_len);
	r->bytes[blen - 1] = '\0';
	r->client_len = in->client_len;
	r->id_len = in->request_id_len;
	r->owner_len = in->node_len;

	pthread_mutex_lock(&m->mu);
	n = node_get(m, lim, now, in->node, in->node_len, fx);
	if (n == NULL) {
		rc = V1_E_UNKNOWN_NODE;
		goto out;
	}
	old = req_find(m, lim, now, in->client, in->client_len, in->request_id,
	    in->request_id_len, fx);
	if (old != NULL) {
		/* A retry of the same live request is answered, not queued twice. */
		if ((old->state == RS_QUEUED || old->state == RS_IN_FLIGHT) &&
		    old->owner_len == in->node_len &&
		    memcmp(relay_v1mem_req_owner(old), in->node, in->node_len) == 0) {
			*duplicate = true;
			*deadline_ms = old->deadline;
		} else {
			rc = V1_E_CONFLICT;
		}
		goto out;
	}
	if (id_taken_on_node(n, in->request_id, in->request_id_len)) {
		rc = V1_E_CONFLICT;
		goto out;
	}
	if (m->nlive + m->nready >= lim->max_requests) {
		rc = V1_E_REQUESTS_FULL;
		goto out;
	}
	/* Reservation and enqueue are one step: capacity can never overflow. */
	relay_v1mem_prune_reservations(n, now);
	if (n->nres > 0) {
		size_t i, first = 0;

		for (i = 1; i < n->nres; i++)
			if (n->res[i] < n->res[first])
				first = i;
		n->res[first] = n->res[--n->nres];
	} else if (relay_v1mem_node_used(n,
	    now) >= (uint64_t)n->caps->max_conc) {
		rc = V1_E_NO_CAPACITY;
		goto out;
	}
	r->state = RS_QUEUED;
	r->node = n;
	r->admitted = now;
	r->deadline = in->deadline_ms;
	r->work = work;
	r->work_len = in->work_len;
	work = NULL;
	if (in->cancel_digest != NULL) {
		r->cancellable = true;
		memcpy(r->cancel, in->cancel_digest, TP_SHA256_LEN);
	}
	relay_hashtab_put(&m->reqs, &r->h);
	dl_push_tail(&n->queue, &r->link);
	dl_push_tail(&m->live_list, &r->live);
	n->nqueued++;
	m->nlive++;
	r = NULL;
out:
	pthread_mutex_unlock(&m->mu);
	free(r);
	free(work);
	return rc;
}

static struct req *
claim_on_node(struct node *n, const char *id, size_t id_len)
{
	struct dlink *e;

	for (e = n->claims.next; e != &n->claims; e = e->next) {
		struct req *r = container_of(e, struct req, link);

		if (r->id_len == id_len && memcmp(relay_v1mem_req_id(r), id, id_len) == 0)
			return r;
	}
	return NULL;
}

static enum relay_v1_rc
mem_control(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const unsigned char *digest, const char *id, size_t id_len, bool ack,
    enum relay_v1_control_state *state, int64_t *deadline_ms,
    struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct node *n;
	struct req *r;
	struct tomb *t;
	enum relay_v1_rc rc = V1_OK;

	*state = V1_CTL_COMPLETED;
	*deadline_ms = 0;
	pthread_mutex_lock(&m->mu);
	n = node_get(m, lim, now, key, key_len, fx);
	if (!node_auth(m, now, n, key, key_len, digest)) {
		rc = V1_E_FORBIDDEN;
		goto out;
	}
	r = n != NULL ? claim_on_node(n, id, id_len) : NULL;
	if (r != NULL) {
		*deadline_ms = r->deadline;
		if (r->deadline <= now) {
			if (!ack)
				relay_v1mem_tomb_add(m, lim, now, n, r, "expired", fx);
			terminalize(m, lim, now, r, "expired", "provider_timeout",
			    V1_OUTCOME_EXPIRED, fx);
			*state = V1_CTL_EXPIRED;
			goto out;
		}
		r->claim_expires = min64(now + lim->in_flight_ttl_ms, r->deadline);
		n->last_seen = now;
		*state = V1_CTL_ACTIVE;
		if (fx)
			fx->lease_renewals++;
		goto out;
	}
	t = relay_v1mem_tomb_find(m, now, key, key_len, id, id_len);
	if (t == NULL && n == NULL) {
		/* a gone node has nothing to learn but its tombstones */
		rc = V1_E_FORBIDDEN;
		goto out;
	}
	if (t != NULL) {
		*state = strcmp(t->status, "expired") == 0 ? V1_CTL_EXPIRED :
		    V1_CTL_CANCELLED;
		*deadline_ms = t->deadline;
		if (ack) {
			relay_v1mem_tomb_free(m, t);
			if (fx)
				fx->acknowledged++;
		}
	}
	if (n != NULL)
		n->last_seen = now;
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static enum relay_v1_rc
mem_cancel(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *client, size_t client_len, const char *id,
    size_t id_len, const unsigned char *token_digest,
    enum tp_v1_status status, const char *reason, int *removed,
    struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct req *r;
	const char *sname = tp_v1_status_name(status);
	enum relay_v1_outcome oc = status == TP_V1_EXPIRED ?
	    V1_OUTCOME_EXPIRED : V1_OUTCOME_CANCELLED;
	enum relay_v1_rc rc = V1_OK;

	*removed = 0;
	pthread_mutex_lock(&m->mu);
	r = req_find(m, lim, now, client, client_len, id, id_len, fx);
	if (r == NULL || (r->state != RS_QUEUED && r->state != RS_IN_FLIGHT) ||
	    !r->cancellable || !digest_ok(token_digest, r->cancel)) {
		rc = V1_E_FORBIDDEN;
		goto out;
	}
	if (r->state == RS_QUEUED)
		*removed = 1;
	else
		relay_v1mem_tomb_add(m, lim, now, r->node, r, sname, fx);
	terminalize(m, lim, now, r, sname, reason, oc, fx);
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static enum relay_v1_rc
mem_accept_response(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const struct relay_v1_response_in *in, bool *duplicate,
    const char **gone, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	char *body = malloc(in->response_len + 1);
	struct node *n = NULL, *owner;
	struct req *r;
	enum relay_v1_rc rc = V1_OK;

	*duplicate = false;
	*gone = NULL;
	if (body == NULL)
		return V1_E_NOMEM;
	memcpy(body, in->response, in->response_len);
	body[in->response_len] = '\0';
	if (in->node == NULL && in->require_proof) {
		free(body);
		return V1_E_FORBIDDEN;
	}
	pthread_mutex_lock(&m->mu);
	if (in->node != NULL) {
		n = node_get(m, lim, now, in->node, in->node_len, fx);
		if (!node_auth(m, now, n, in->node, in->node_len,
		    in->cred_digest)) {
			rc = V1_E_FORBIDDEN;
			goto out;
		}
	}
	r = req_find(m, lim, now, in->client, in->client_len, in->request_id,
	    in->request_id_len, fx);
	if (r == NULL) {
		*gone = "gone";
		rc = V1_E_GONE;
		goto out;
	}
	if (in->node != NULL && (r->owner_len != in->node_len ||
	    memcmp(relay_v1mem_req_owner(r), in->node, in->node_len) != 0)) {
		rc = V1_E_FORBIDDEN;
		goto out;
	}
	if (r->state == RS_TERMINAL) {
		*gone = r->t_status;
		rc = V1_E_GONE;
		goto out;
	}
	if (r->state == RS_READY) {
		*duplicate = true;
		goto out;
	}
	owner = r->node;
	dl_unlink(&r->link);
	dl_unlink(&r->live);
	if (r->state == RS_QUEUED)
		owner->nqueued--;
	else
		owner->nclaimed--;
	m->nlive--;
	/* The node just answered: it is alive (PROTOCOL.md 4.8b). */
	owner->last_seen = now;
	free(r->work);
	r->work = NULL;
	free(r->body);
	r->body = body;
	r->body_len = in->response_len;
	body = NULL;
	r->node = NULL;
	r->state = RS_READY;
	r->until = now + lim->response_ttl_ms;
	dl_push_tail(&m->ready_list, &r->link);
	m->nready++;
	if (fx)
		fx->outcomes[V1_OUTCOME_COMPLETED]++;
out:
	pthread_mutex_unlock(&m->mu);
	free(body);
	return rc;
}

static enum relay_v1_rc
mem_progress(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len, const unsigned char *digest,
    const char *client, size_t client_len, const char *id, size_t id_len,
    const char *envelope, size_t envelope_len, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	char *copy = malloc(envelope_len + 1);
	struct relay_hnode *h;
	struct node *n;
	struct req *r;
	size_t klen;
	char *k;
	enum relay_v1_rc rc = V1_OK;

	k = relay_v1mem_join_key(client, client_len, id, id_len, &klen);
	if (copy == NULL || k == NULL) {
		free(copy);
		free(k);
		return V1_E_NOMEM;
	}
	memcpy(copy, envelope, envelope_len);
	copy[envelope_len] = '\0';
	pthread_mutex_lock(&m->mu);
	n = node_get(m, lim, now, key, key_len, fx);
	if (n == NULL || !digest_ok(digest, n->digest)) {
		rc = V1_E_FORBIDDEN;
		goto out;
	}
	h = relay_hashtab_get(&m->reqs, k, klen);
	r = h ? container_of(h, struct req, h) : NULL;
	if (r != NULL && r->state == RS_IN_FLIGHT && r->node == n) {
		if (r->deadline <= now) {
			expire_claim(m, lim, now, r, fx);
			rc = V1_E_EXPIRED;
			goto out;
		}
		free(r->body);
		r->body = copy;
		r->body_len = envelope_len;
		copy = NULL;
		n->last_seen = now;
		goto out;
	}
	if (r != NULL && r->state == RS_TERMINAL &&
	    strcmp(r->t_reason, "provider_timeout") == 0 &&
	    r->owner_len == key_len && memcmp(relay_v1mem_req_owner(r), key, key_len) == 0)
		rc = V1_E_EXPIRED;
	else
		rc = V1_E_NOT_ACTIVE;
out:
	pthread_mutex_unlock(&m->mu);
	free(copy);
	free(k);
	return rc;
}

static enum relay_v1_rc
mem_retrieve(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *client, size_t client_len, const char *id,
    size_t id_len, struct relay_v1_retrieval *out, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	enum relay_v1_rc rc = V1_OK;
	struct req *r;

	memset(out, 0, sizeof(*out));
	out->kind = V1_RET_UNKNOWN;
	pthread_mutex_lock(&m->mu);
	r = req_find(m, lim, now, client, client_len, id, id_len, fx);
	if (r == NULL)
		goto out;
	switch (r->state) {
	case RS_TERMINAL:
		if (strcmp(r->t_status, "completed") != 0) {
			out->kind = V1_RET_TERMINAL;
			out->status = r->t_status;
			out->reason = r->t_reason;
		} else if (r->body != NULL && r->redeliver_until > now) {
			/* Its first copy may not have reached the client. */
			if (relay_blob_copy(&out->body, r->body, r->body_len) != 0) {
				rc = V1_E_NOMEM;
				break;
			}
			out->kind = V1_RET_RESPONSE;
			if (fx)
				fx->redelivered++;
		}
		break;		/* else delivered before: unknown, as HEAD */
	case RS_READY: {
		char *body = r->body;
		size_t len = r->body_len;

		if (lim->redeliver_ms > 0 &&
		    relay_blob_copy(&out->body, body, len) != 0) {
			rc = V1_E_NOMEM;
			break;
		}
		r->body = NULL;
		terminalize(m, lim, now, r, "completed", "delivered",
		    V1_OUTCOME_COUNT, fx);
		out->kind = V1_RET_RESPONSE;
		if (lim->redeliver_ms > 0) {
			r->body = body;
			r->body_len = len;
			r->redeliver_until = now + lim->redeliver_ms;
			dl_push_tail(&m->redeliver_list, &r->rlink);
		} else {
			out->body.data = out->body.mem = body;
			out->body.len = len;
		}
		break;
	}
	case RS_QUEUED:
	case RS_IN_FLIGHT:
		out->kind = V1_RET_PENDING;
		out->deadline_ms = r->deadline;
		if (r->body != NULL) {
			out->body.data = out->body.mem = r->body;
			out->body.len = r->body_len;
			r->body = NULL;
		}
		break;
	}
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static enum relay_v1_rc
mem_unregister(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len, const unsigned char *digest,
    bool *removed, struct relay_v1_effects *fx)
{
	struct mem *m = M(s);
	struct relay_hnode *h;
	enum relay_v1_rc rc = V1_OK;

	*removed = false;
	pthread_mutex_lock(&m->mu);
	h = relay_hashtab_get(&m->nodes, key, key_len);
	if (h != NULL) {
		struct node *n = container_of(h, struct node, h);

		if (!digest_ok(digest, n->digest)) {
			rc = V1_E_FORBIDDEN;
		} else {
			relay_v1mem_node_remove(m, lim, now, n, false, fx);
			*removed = true;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static bool
mem_node_exists(struct relay_v1_store *s, const char *key, size_t key_len)
{
	struct mem *m = M(s);
	bool found;

	pthread_mutex_lock(&m->mu);
	found = relay_hashtab_get(&m->nodes, key, key_len) != NULL;
	pthread_mutex_unlock(&m->mu);
	return found;
}

static void
mem_destroy(struct relay_v1_store *s)
{
	struct mem *m = M(s);

	while (!dl_empty(&m->live_list))
		relay_v1mem_req_free(m, container_of(m->live_list.next,
		    struct req, live));
	while (!dl_empty(&m->ready_list))
		relay_v1mem_req_free(m, container_of(m->ready_list.next,
		    struct req, link));
	while (!dl_empty(&m->terminal_list))
		relay_v1mem_req_free(m, container_of(m->terminal_list.next,
		    struct req, link));
	while (!dl_empty(&m->tomb_list))
		relay_v1mem_tomb_free(m, container_of(m->tomb_list.next,
		    struct tomb, fifo));
	while (!dl_empty(&m->ntomb_list))
		relay_v1mem_ntomb_free(m, container_of(m->ntomb_list.next,
		    struct ntomb, fifo));
	while (!dl_empty(&m->node_list)) {
		struct node *n = container_of(m->node_list.next, struct node, all);

		dl_unlink(&n->all);
		relay_v1_model_index_leave(&m->models, n->mref);
		free(n->caps);
		free(n);
	}
	relay_v1_model_index_destroy(&m->models);
	relay_hashtab_destroy(&m->nodes);
	relay_hashtab_destroy(&m->reqs);
	relay_hashtab_destroy(&m->tombs);
	relay_hashtab_destroy(&m->ntombs);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static const struct relay_v1_store_ops mem_ops = {
	.name = "memory",
	.register_node = mem_register,
	.poll = mem_poll,
	.select = relay_v1mem_select,
	.enqueue = mem_enqueue,
	.control = mem_control,
	.cancel = mem_cancel,
	.accept_response = mem_accept_response,
	.progress = mem_progress,
	.retrieve = mem_retrieve,
	.unregister = mem_unregister,
	.node_exists = mem_node_exists,
	.list_nodes = relay_v1mem_list_nodes,
	.list_models = relay_v1mem_list_models,
	.sweep = relay_v1mem_sweep,
	.stats = relay_v1mem_stats,
	.destroy = mem_destroy,
};

struct relay_v1_store *
relay_v1_store_memory_new(void)
{
	struct mem *m = calloc(1, sizeof(*m));
	uint64_t k[4][2];
	int i;

	if (m == NULL)
		return NULL;
	for (i = 0; i < 4; i++)
		if (relay_random_bytes(k[i], 2 * sizeof(uint64_t)) != 0) {
			free(m);
			return NULL;
		}
	if (relay_hashtab_init(&m->nodes, node_hkey, k[0][0], k[0][1]) != 0)
		goto fail0;
	if (relay_hashtab_init(&m->reqs, req_hkey, k[1][0], k[1][1]) != 0)
		goto fail1;
	if (relay_hashtab_init(&m->tombs, tomb_hkey, k[2][0], k[2][1]) != 0)
		goto fail2;
	if (relay_hashtab_init(&m->ntombs, ntomb_hkey, k[3][0], k[3][1]) != 0)
		goto fail3;
	if (relay_v1_model_index_init(&m->models) != 0)
		goto fail4;
	pthread_mutex_init(&m->mu, NULL);
	dl_init(&m->node_list);
	dl_init(&m->live_list);
	dl_init(&m->ready_list);
	dl_init(&m->terminal_list);
	dl_init(&m->redeliver_list);
	dl_init(&m->tomb_list);
	dl_init(&m->ntomb_list);
	m->pub.ops = &mem_ops;
	m->pub.state = m;
	return &m->pub;
fail4:
	relay_hashtab_destroy(&m->ntombs);
fail3:
	relay_hashtab_destroy(&m->tombs);
fail2:
	relay_hashtab_destroy(&m->reqs);
fail1:
	relay_hashtab_destroy(&m->nodes);
fail0:
	free(m);
	return NULL;
}
