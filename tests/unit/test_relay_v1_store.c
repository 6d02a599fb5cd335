/*
 * test_relay_v1_store.c -- the API v1 request lifecycle on both stores
 * (the memory store, then the Redis store on a redis-server this test
 * starts: one suite, two groups), driven by an explicit clock (now_ms is an argument of every
 * call): leases and eviction, deadlines mid-flight, cancellation before
 * and after a claim, tombstones and acknowledgement, unregistration with
 * queued and claimed work, re-registration, duplicate/late responses,
 * pending retrieval with progress, reservations and max_concurrency,
 * owner-fenced responses and the response TTL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis/redis.h"
#include "redis_server.h"
#include "store/v1_store.h"

#define S 1000		/* ms per second */

static const struct relay_v1_limits lim = {
	.lease_ms = 30 * S,
	.in_flight_ttl_ms = 30 * S,
	.tombstone_ttl_ms = 60 * S,
	.node_tombstone_ttl_ms = 300 * S,
	.terminal_ttl_ms = 300 * S,
	.response_ttl_ms = 100 * S,
	.reservation_ttl_ms = 15 * S,
	.max_nodes = 8,
	.max_requests = 64,
	.max_terminal = 64,
	.max_tombstones = 64,
};

struct t {
	struct relay_v1_store *s;
	struct relay_redis *r;
	struct relay_v1_effects fx;
};

static unsigned char cred_a[TP_SHA256_LEN], cred_b[TP_SHA256_LEN];
static unsigned char tok[TP_SHA256_LEN], bad[TP_SHA256_LEN];

/* The schema version the Redis group stores (model set names differ). */
static const char *schema = "1";

static int
layout2_group_setup(void **state)
{
	schema = "2";
	return test_redis_group_setup(state);
}

static int
layout2_group_teardown(void **state)
{
	schema = "1";
	return test_redis_group_teardown(state);
}

static void
store_schema(struct relay_redis *r)
{
	const char *key = relay_redis_prefix(r);
	size_t keylen = strlen(key), vlen = strlen(schema);
	struct relay_redis_reply rep;
	int id;

	id = relay_redis_script(r, "set_schema", "#!lua\n"
	    "return redis.call('SET', KEYS[1] .. 'schema', ARGV[1])\n");
	assert_true(id >= 0);
	assert_int_equal(relay_redis_eval(r, id, 1, &key, &keylen, 1, &schema,
	    &vlen, &rep), RELAY_REDIS_OK);
	relay_redis_reply_free(&rep);
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	if (test_redis_active) {
		struct relay_redis_config cfg;
		char err[256];

		/* a fresh key prefix per test: nothing carries over */
		test_redis_config(&test_redis_group, &cfg);
		t->r = relay_redis_new(&cfg, NULL, err, sizeof(err));
		assert_non_null(t->r);
		store_schema(t->r);
		t->s = relay_v1_store_redis_new(t->r);
	} else {
		t->s = relay_v1_store_memory_new();
	}
	assert_non_null(t->s);
	assert_string_equal(t->s->ops->name, test_redis_active ? "redis" : "memory");
	tp_sha256("cred-a", 6, cred_a);
	tp_sha256("cred-b", 6, cred_b);
	tp_sha256("token", 5, tok);
	tp_sha256("wrong", 5, bad);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	relay_v1_store_free(t->s);
	relay_redis_free(t->r);
	free(t);
	return 0;
}

static void
caps_for(struct tp_v1_caps *c, enum tp_v1_tier tier, int64_t conc,
    const char *model)
{
	tp_v1_caps_default(c);
	c->tier = tier;
	c->max_context_tokens = tp_v1_tier_tokens(tier);
	c->max_concurrency = conc;
	strcpy(c->models, model);
	c->models_len = strlen(model) + 1;
	c->nmodels = 1;
}

static bool
reg(struct t *t, int64_t now, const char *key, const unsigned char *digest,
    enum tp_v1_tier tier, int64_t conc)
{
	struct tp_v1_caps *c = malloc(sizeof(*c));
	bool created = false;

	assert_non_null(c);
	caps_for(c, tier, conc, "m");
	assert_int_equal(t->s->ops->register_node(t->s, &lim, now, key,
	    strlen(key), digest, c, &created, &t->fx), V1_OK);
	free(c);
	return created;
}

static enum relay_v1_rc
enq(struct t *t, int64_t now, const char *node, const char *client,
    const char *id, bool cancellable, int64_t deadline)
{
	struct relay_v1_enqueue_in in;
	bool dup;
	int64_t d;
	char work[64];

	snprintf(work, sizeof(work), "\"w\":\"%s/%s\"", client, id);
	memset(&in, 0, sizeof(in));
	in.node = node;
	in.node_len = strlen(node);
	in.client = client;
	in.client_len = strlen(client);
	in.request_id = id;
	in.request_id_len = strlen(id);
	in.work = work;
	in.work_len = strlen(work);
	in.cancel_digest = cancellable ? tok : NULL;
	in.deadline_ms = deadline;
	return t->s->ops->enqueue(t->s, &lim, now, &in, &dup, &d, &t->fx);
}

/* Polls; returns the work text (caller frees) or NULL. */
static char *
poll_work(struct t *t, int64_t now, const char *node, enum relay_v1_rc *rc)
{
	struct relay_v1_work w;
	bool has = false;
	enum relay_v1_rc r;
	char *out = NULL;

	r = t->s->ops->poll(t->s, &lim, now, node, strlen(node), NULL, 0, &w,
	    &has, &t->fx);
	if (rc != NULL)
		*rc = r;
	else
		assert_int_equal(r, V1_OK);
	if (has) {
		out = strndup(w.envelope.data, w.envelope.len);
		relay_blob_free(&w.envelope);
	}
	return out;
}

static enum relay_v1_control_state
control(struct t *t, int64_t now, const char *node, const unsigned char *d,
    const char *id, bool ack, enum relay_v1_rc *rc)
{
	enum relay_v1_control_state st = V1_CTL_COUNT;
	int64_t dl;

	*rc = t->s->ops->control(t->s, &lim, now, node, strlen(node), d, id,
	    strlen(id), ack, &st, &dl, &t->fx);
	return st;
}

static enum relay_v1_rc
respond(struct t *t, int64_t now, const char *client, const char *id,
    const char *node, const unsigned char *d, bool require, bool *dup,
    const char **gone)
{
	struct relay_v1_response_in in;

	memset(&in, 0, sizeof(in));
	in.client = client;
	in.client_len = strlen(client);
	in.request_id = id;
	in.request_id_len = strlen(id);
	in.response = "\"r\":1";
	in.response_len = 5;
	in.node = node;
	in.node_len = node ? strlen(node) : 0;
	in.cred_digest = d;
	in.require_proof = require;
	return t->s->ops->accept_response(t->s, &lim, now, &in, dup, gone,
	    &t->fx);
}

static struct relay_v1_retrieval
retrieve(struct t *t, int64_t now, const char *client, const char *id)
{
	struct relay_v1_retrieval r;

	assert_int_equal(t->s->ops->retrieve(t->s, &lim, now, client,
	    strlen(client), id, strlen(id), &r, &t->fx), V1_OK);
	return r;
}

static enum relay_v1_rc
cancel(struct t *t, int64_t now, const char *client, const char *id,
    const unsigned char *d, int *removed)
{
	return t->s->ops->cancel(t->s, &lim, now, client, strlen(client), id,
	    strlen(id), d, TP_V1_CANCELLED, "requester_cancelled", removed,
	    &t->fx);
}

static struct relay_v1_stats
stats(struct t *t, int64_t now)
{
	struct relay_v1_stats st;

	assert_int_equal(t->s->ops->stats(t->s, &lim, now, &st, &t->fx), V1_OK);
	return st;
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_register_once_and_limits(void **state)
{
	struct t *t = *state;
	enum relay_v1_rc rc;
	char key[8];
	int i;

	assert_true(reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1));
	/* renewal keeps the first credential: cred_b does not authenticate */
	assert_false(reg(t, 1 * S, "A", cred_b, TP_V1_TIER_8K, 1));
	(void)control(t, 2 * S, "A", cred_b, "x", false, &rc);
	assert_int_equal(rc, V1_E_FORBIDDEN);
	(void)control(t, 2 * S, "A", NULL, "x", false, &rc);
	assert_int_equal(rc, V1_E_FORBIDDEN);
	assert_int_equal(control(t, 2 * S, "A", cred_a, "x", false, &rc),
	    V1_CTL_COMPLETED);
	assert_int_equal(rc, V1_OK);
	for (i = 1; i < 8; i++) {
		snprintf(key, sizeof(key), "N%d", i);
		assert_true(reg(t, 3 * S, key, cred_a, TP_V1_TIER_8K, 1));
	}
	{
		struct tp_v1_caps c;
		bool created;

		caps_for(&c, TP_V1_TIER_8K, 1, "m");
		assert_int_equal(t->s->ops->register_node(t->s, &lim, 3 * S, "Z",
		    1, cred_a, &c, &created, &t->fx), V1_E_NODES_FULL);
	}
	assert_int_equal(stats(t, 3 * S).nodes, 8);
}

static void
test_lease_expiry_evicts_and_cancels_queue(void **state)
{
	struct t *t = *state;
	struct relay_v1_selection sel;
	struct relay_v1_retrieval r;
	enum relay_v1_rc rc;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 2);
	assert_int_equal(enq(t, 1 * S, "A", "C", "q1", true, 480 * S), V1_OK);
	/* exactly at the lease it is still fine, a millisecond later stale */
	assert_int_equal(t->s->ops->select(t->s, &lim, 30 * S, "m",
	    TP_V1_TIER_8K, false, &sel, &t->fx), V1_OK);
	relay_v1_selection_free(&sel);
	assert_int_equal(t->s->ops->select(t->s, &lim, 30 * S + 1, "m",
	    TP_V1_TIER_8K, false, &sel, &t->fx), V1_E_NO_NODES);
	assert_int_equal(t->fx.evicted_nodes, 1);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_CANCELLED], 1);
	r = retrieve(t, 31 * S, "C", "q1");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	assert_string_equal(r.status, "cancelled");
	assert_string_equal(r.reason, "server_unregistered");
	/* its poll now says: register again */
	assert_null(poll_work(t, 32 * S, "A", &rc));
	assert_int_equal(rc, V1_E_UNKNOWN_NODE);
}

static void
test_long_poll_and_live_claim_protect_from_eviction(void **state)
{
	struct t *t = *state;
	struct relay_v1_work w;
	enum relay_v1_rc rc;
	bool has;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	/* a poll waiting until 50 s keeps the node past its 30 s lease */
	assert_int_equal(t->s->ops->poll(t->s, &lim, 10 * S, "A", 1, NULL,
	    50 * S, &w, &has, &t->fx), V1_OK);
	assert_false(has);
	t->s->ops->sweep(t->s, &lim, 45 * S, &t->fx);
	assert_int_equal(stats(t, 45 * S).nodes, 1);
	/* a claim renewed by control keeps it too, though the node is silent */
	assert_int_equal(enq(t, 46 * S, "A", "C", "r", false, 480 * S), V1_OK);
	work = poll_work(t, 47 * S, "A", NULL);
	assert_non_null(work);
	assert_non_null(strstr(work, "C/r"));
	free(work);
	assert_int_equal(control(t, 70 * S, "A", cred_a, "r", false, &rc),
	    V1_CTL_ACTIVE);
	assert_int_equal(t->fx.lease_renewals, 1);
	t->s->ops->sweep(t->s, &lim, 99 * S, &t->fx);
	assert_int_equal(stats(t, 99 * S).nodes, 1);
	assert_int_equal(stats(t, 99 * S).in_flight, 1);
	/* claim lapsed (renewed at 70 s for 30 s) and silent: evicted */
	t->s->ops->sweep(t->s, &lim, 100 * S + 1, &t->fx);
	assert_int_equal(stats(t, 100 * S + 1).nodes, 0);
	assert_int_equal(t->fx.evicted_nodes, 1);
	/* the claim's owner can still learn what happened, with its credential */
	assert_int_equal(control(t, 101 * S, "A", cred_a, "r", true, &rc),
	    V1_CTL_CANCELLED);
	assert_int_equal(rc, V1_OK);
	assert_int_equal(t->fx.acknowledged, 1);
	/* acknowledged and gone: a removed node has nothing more to read */
	(void)control(t, 102 * S, "A", cred_a, "r", false, &rc);
	assert_int_equal(rc, V1_E_FORBIDDEN);
}

static void
test_deadline_expires_mid_flight(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	enum relay_v1_rc rc;
	const char *gone;
	bool dup;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "d", true, 20 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	assert_non_null(work);
	free(work);
	/* the lease is never renewed past the deadline */
	assert_int_equal(control(t, 10 * S, "A", cred_a, "d", false, &rc),
	    V1_CTL_ACTIVE);
	r = retrieve(t, 19 * S, "C", "d");
	assert_int_equal(r.kind, V1_RET_PENDING);
	assert_int_equal(r.deadline_ms, 20 * S);
	/* deadline passes while the node is generating */
	assert_int_equal(control(t, 20 * S, "A", cred_a, "d", false, &rc),
	    V1_CTL_EXPIRED);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_EXPIRED], 1);
	/* the tombstone answers until acknowledged */
	assert_int_equal(control(t, 21 * S, "A", cred_a, "d", true, &rc),
	    V1_CTL_EXPIRED);
	assert_int_equal(control(t, 22 * S, "A", cred_a, "d", false, &rc),
	    V1_CTL_COMPLETED);
	r = retrieve(t, 22 * S, "C", "d");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	assert_string_equal(r.status, "expired");
	assert_string_equal(r.reason, "provider_timeout");
	assert_int_equal(respond(t, 23 * S, "C", "d", NULL, NULL, false, &dup,
	    &gone), V1_E_GONE);
	assert_string_equal(gone, "expired");
	/* counted once however often it is looked at */
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_EXPIRED], 1);
}

static void
test_queued_past_deadline_is_skipped_by_poll(void **state)
{
	struct t *t = *state;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 2);
	assert_int_equal(enq(t, 0, "A", "C", "old", false, 5 * S), V1_OK);
	assert_int_equal(enq(t, 1 * S, "A", "C", "new", false, 50 * S), V1_OK);
	work = poll_work(t, 6 * S, "A", NULL);
	assert_non_null(work);
	assert_non_null(strstr(work, "C/new"));
	free(work);
	assert_int_equal(retrieve(t, 7 * S, "C", "old").kind, V1_RET_TERMINAL);
}

static void
test_cancel_before_claim(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	int removed = -1;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "c1", true, 480 * S), V1_OK);
	assert_int_equal(cancel(t, 1 * S, "C", "c1", bad, &removed),
	    V1_E_FORBIDDEN);
	assert_int_equal(cancel(t, 1 * S, "C", "c1", NULL, &removed),
	    V1_E_FORBIDDEN);
	assert_int_equal(cancel(t, 1 * S, "OTHER", "c1", tok, &removed),
	    V1_E_FORBIDDEN);
	assert_int_equal(cancel(t, 1 * S, "C", "c1", tok, &removed), V1_OK);
	assert_int_equal(removed, 1);
	assert_null(poll_work(t, 2 * S, "A", NULL));
	r = retrieve(t, 2 * S, "C", "c1");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	assert_string_equal(r.status, "cancelled");
	assert_string_equal(r.reason, "requester_cancelled");
	/* no longer live: a second cancel is refused */
	assert_int_equal(cancel(t, 3 * S, "C", "c1", tok, &removed),
	    V1_E_FORBIDDEN);
	/* a request without a cancel token cannot be cancelled */
	assert_int_equal(enq(t, 4 * S, "A", "C", "c2", false, 480 * S), V1_OK);
	assert_int_equal(cancel(t, 4 * S, "C", "c2", tok, &removed),
	    V1_E_FORBIDDEN);
	/* the slot was freed by the cancel: c2 took it */
	assert_int_equal(stats(t, 4 * S).queued, 1);
}

static void
test_cancel_after_claim_tombstone_and_ack(void **state)
{
	struct t *t = *state;
	enum relay_v1_rc rc;
	const char *gone;
	bool dup;
	int removed = -1;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "k", true, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	assert_int_equal(cancel(t, 2 * S, "C", "k", tok, &removed), V1_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(stats(t, 2 * S).tombstones, 1);
	/* the owner learns it, also without acknowledging, until it does */
	assert_int_equal(control(t, 3 * S, "A", cred_a, "k", false, &rc),
	    V1_CTL_CANCELLED);
	(void)control(t, 4 * S, "A", cred_b, "k", false, &rc);
	assert_int_equal(rc, V1_E_FORBIDDEN);
	assert_int_equal(control(t, 5 * S, "A", cred_a, "k", true, &rc),
	    V1_CTL_CANCELLED);
	assert_int_equal(stats(t, 5 * S).tombstones, 0);
	assert_int_equal(control(t, 6 * S, "A", cred_a, "k", false, &rc),
	    V1_CTL_COMPLETED);
	/* its response comes too late */
	assert_int_equal(respond(t, 7 * S, "C", "k", NULL, NULL, false, &dup,
	    &gone), V1_E_GONE);
	assert_string_equal(gone, "cancelled");
}

static void
test_tombstone_ttl(void **state)
{
	struct t *t = *state;
	enum relay_v1_rc rc;
	int removed;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "k", true, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	assert_int_equal(cancel(t, 2 * S, "C", "k", tok, &removed), V1_OK);
	assert_int_equal(control(t, 61 * S, "A", cred_a, "k", false, &rc),
	    V1_CTL_CANCELLED);
	/* 60 s after it was made it is gone (the node itself stays alive) */
	assert_int_equal(control(t, 62 * S, "A", cred_a, "k", false, &rc),
	    V1_CTL_COMPLETED);
}

static void
test_unregister_with_queued_and_in_flight(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	enum relay_v1_rc rc;
	bool removed;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 2);
	assert_int_equal(enq(t, 0, "A", "C", "q", true, 480 * S), V1_OK);
	assert_int_equal(enq(t, 0, "A", "D", "f", true, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	assert_non_null(strstr(work, "C/q"));
	free(work);
	/* wrong or missing credential changes nothing */
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 2 * S, "A", 1,
	    cred_b, &removed, &t->fx), V1_E_FORBIDDEN);
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 2 * S, "A", 1,
	    NULL, &removed, &t->fx), V1_E_FORBIDDEN);
	assert_int_equal(stats(t, 2 * S).nodes, 1);
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 3 * S, "A", 1,
	    cred_a, &removed, &t->fx), V1_OK);
	assert_true(removed);
	assert_int_equal(t->fx.unregistered_nodes, 1);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_CANCELLED], 2);
	r = retrieve(t, 4 * S, "C", "q");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	assert_string_equal(r.reason, "server_unregistered");
	r = retrieve(t, 4 * S, "D", "f");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	/* the claimed one left a tombstone the gone node can read */
	assert_int_equal(control(t, 5 * S, "A", cred_a, "q", true, &rc),
	    V1_CTL_CANCELLED);
	/* idempotent */
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 6 * S, "A", 1,
	    cred_a, &removed, &t->fx), V1_OK);
	assert_false(removed);
}

static void
test_reregistration_gets_new_credential(void **state)
{
	struct t *t = *state;
	enum relay_v1_rc rc;
	bool removed;

	assert_true(reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1));
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 1 * S, "A", 1,
	    cred_a, &removed, &t->fx), V1_OK);
	/* a new registration after removal is a new node with a new secret */
	assert_true(reg(t, 2 * S, "A", cred_b, TP_V1_TIER_8K, 1));
	assert_int_equal(control(t, 3 * S, "A", cred_b, "x", false, &rc),
	    V1_CTL_COMPLETED);
	(void)control(t, 3 * S, "A", cred_a, "x", false, &rc);
	assert_int_equal(rc, V1_E_FORBIDDEN);
	/* after eviction too */
	assert_true(reg(t, 100 * S, "A", cred_a, TP_V1_TIER_8K, 1));
	assert_int_equal(t->fx.evicted_nodes, 1);
}

static void
test_responses_duplicate_late_unknown(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	const char *gone;
	bool dup;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "x", false, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	assert_int_equal(respond(t, 2 * S, "C", "x", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	assert_false(dup);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_COMPLETED], 1);
	assert_int_equal(respond(t, 3 * S, "C", "x", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	assert_true(dup);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_COMPLETED], 1);
	r = retrieve(t, 4 * S, "C", "x");
	assert_int_equal(r.kind, V1_RET_RESPONSE);
	assert_memory_equal(r.body.data, "\"r\":1", 5);
	relay_blob_free(&r.body);
	/* one-shot: the pickup is gone, a late copy is 410 completed */
	assert_int_equal(retrieve(t, 5 * S, "C", "x").kind, V1_RET_UNKNOWN);
	assert_int_equal(respond(t, 6 * S, "C", "x", NULL, NULL, false, &dup,
	    &gone), V1_E_GONE);
	assert_string_equal(gone, "completed");
	assert_int_equal(respond(t, 6 * S, "C", "never", NULL, NULL, false,
	    &dup, &gone), V1_E_GONE);
	assert_string_equal(gone, "gone");
	/* the node's answer kept it alive (PROTOCOL.md 4.8b): 2 s + 30 s */
	t->s->ops->sweep(t->s, &lim, 32 * S, &t->fx);
	assert_int_equal(stats(t, 32 * S).nodes, 1);
}

/*
 * A delivered response whose reply was lost on the way: the same client
 * key and request_id get it again within the redelivery window (counted,
 * the outcome still counted once), nobody else does, and after the
 * window it is forgotten (unknown, as before the window existed).
 */
static void
test_delivered_response_redelivered_within_window(void **state)
{
	struct t *t = *state;
	struct relay_v1_limits wl = lim;
	struct relay_v1_retrieval r;
	const char *gone;
	bool dup;
	char *work;

	wl.redeliver_ms = 30 * S;
	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "x", false, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	assert_int_equal(respond(t, 2 * S, "C", "x", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(t->s->ops->retrieve(t->s, &wl, (4 + i * 10) * S,
		    "C", 1, "x", 1, &r, &t->fx), V1_OK);
		assert_int_equal(r.kind, V1_RET_RESPONSE);
		assert_int_equal(r.body.len, 5);
		assert_memory_equal(r.body.data, "\"r\":1", 5);
		relay_blob_free(&r.body);
	}
	assert_int_equal(t->fx.redelivered, 2);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_COMPLETED], 1);
	/* another client key with the same request_id learns nothing */
	assert_int_equal(t->s->ops->retrieve(t->s, &wl, 25 * S, "D", 1, "x", 1,
	    &r, &t->fx), V1_OK);
	assert_int_equal(r.kind, V1_RET_UNKNOWN);
	/* a late copy from the node is still 410 completed */
	assert_int_equal(respond(t, 26 * S, "C", "x", NULL, NULL, false, &dup,
	    &gone), V1_E_GONE);
	assert_string_equal(gone, "completed");
	/* past the window (the sweep drops the body): unknown */
	t->s->ops->sweep(t->s, &wl, 34 * S + 1, &t->fx);
	assert_int_equal(t->s->ops->retrieve(t->s, &wl, 34 * S + 2, "C", 1,
	    "x", 1, &r, &t->fx), V1_OK);
	assert_int_equal(r.kind, V1_RET_UNKNOWN);
	/* without a sweep, the lookup alone ends the window */
	reg(t, 40 * S, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 40 * S, "A", "C", "y", false, 480 * S), V1_OK);
	work = poll_work(t, 41 * S, "A", NULL);
	free(work);
	assert_int_equal(respond(t, 42 * S, "C", "y", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	assert_int_equal(t->s->ops->retrieve(t->s, &wl, 43 * S, "C", 1, "y", 1,
	    &r, &t->fx), V1_OK);
	assert_int_equal(r.kind, V1_RET_RESPONSE);
	relay_blob_free(&r.body);
	assert_int_equal(t->s->ops->retrieve(t->s, &wl, 73 * S, "C", 1, "y", 1,
	    &r, &t->fx), V1_OK);
	assert_int_equal(r.kind, V1_RET_UNKNOWN);
	assert_int_equal(t->fx.redelivered, 2);
}

/*
 * A node that claims a request and dies: the client learns a terminal
 * answer (cancelled, server_unregistered) once the claim's lease and the
 * node's lease have lapsed and a sweep ran, not at the request's deadline.
 */
static void
test_dead_node_ends_its_claims_at_eviction(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "z", false, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	assert_non_null(work);
	free(work);
	/* claim lease 1 + 30 s, node lease 1 + 30 s: still pending before */
	t->s->ops->sweep(t->s, &lim, 31 * S, &t->fx);
	r = retrieve(t, 31 * S, "C", "z");
	assert_int_equal(r.kind, V1_RET_PENDING);
	relay_blob_free(&r.body);
	/* (the Redis store sweeps at most once per 250 ms, cluster-wide) */
	t->s->ops->sweep(t->s, &lim, 32 * S, &t->fx);
	assert_int_equal(t->fx.evicted_nodes, 1);
	r = retrieve(t, 32 * S, "C", "z");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	assert_string_equal(r.status, "cancelled");
	assert_string_equal(r.reason, "server_unregistered");
}

static void
test_owner_fenced_responses(void **state)
{
	struct t *t = *state;
	const char *gone;
	bool dup;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	reg(t, 0, "B", cred_b, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "o", false, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	/* B, with its own valid credential, cannot answer A's request */
	assert_int_equal(respond(t, 2 * S, "C", "o", "B", cred_b, false, &dup,
	    &gone), V1_E_FORBIDDEN);
	/* A with B's credential neither */
	assert_int_equal(respond(t, 2 * S, "C", "o", "A", cred_b, false, &dup,
	    &gone), V1_E_FORBIDDEN);
	/* proof required: no proof, no answer */
	assert_int_equal(respond(t, 2 * S, "C", "o", NULL, NULL, true, &dup,
	    &gone), V1_E_FORBIDDEN);
	assert_int_equal(stats(t, 2 * S).in_flight, 1);
	assert_int_equal(respond(t, 3 * S, "C", "o", "A", cred_a, true, &dup,
	    &gone), V1_OK);
	assert_false(dup);
	assert_int_equal(respond(t, 3 * S, "C", "o", "B", cred_b, false, &dup,
	    &gone), V1_E_FORBIDDEN);
}

static void
test_pending_retrieval_with_progress(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	enum relay_v1_rc rc;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	reg(t, 0, "B", cred_b, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "p", false, 40 * S), V1_OK);
	/* queued: not active for progress yet */
	assert_int_equal(t->s->ops->progress(t->s, &lim, 1 * S, "A", 1, cred_a,
	    "C", 1, "p", 1, "\"g\":0", 5, &t->fx), V1_E_NOT_ACTIVE);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	rc = t->s->ops->progress(t->s, &lim, 2 * S, "A", 1, cred_a, "C", 1,
	    "p", 1, "\"g\":1", 5, &t->fx);
	assert_int_equal(rc, V1_OK);
	rc = t->s->ops->progress(t->s, &lim, 3 * S, "A", 1, cred_a, "C", 1,
	    "p", 1, "\"g\":2", 5, &t->fx);
	assert_int_equal(rc, V1_OK);
	/* other node, or bad credential */
	assert_int_equal(t->s->ops->progress(t->s, &lim, 3 * S, "B", 1, cred_b,
	    "C", 1, "p", 1, "\"g\":9", 5, &t->fx), V1_E_NOT_ACTIVE);
	assert_int_equal(t->s->ops->progress(t->s, &lim, 3 * S, "A", 1, cred_b,
	    "C", 1, "p", 1, "\"g\":9", 5, &t->fx), V1_E_FORBIDDEN);
	/* only the latest is kept, handed over once */
	r = retrieve(t, 4 * S, "C", "p");
	assert_int_equal(r.kind, V1_RET_PENDING);
	assert_int_equal(r.deadline_ms, 40 * S);
	assert_int_equal(r.body.len, 5);
	assert_memory_equal(r.body.data, "\"g\":2", 5);
	relay_blob_free(&r.body);
	r = retrieve(t, 5 * S, "C", "p");
	assert_int_equal(r.kind, V1_RET_PENDING);
	assert_null(r.body.data);
	/* control keeps node and claim alive, but not past the deadline */
	assert_int_equal(control(t, 25 * S, "A", cred_a, "p", false, &rc),
	    V1_CTL_ACTIVE);
	assert_int_equal(t->s->ops->progress(t->s, &lim, 40 * S, "A", 1, cred_a,
	    "C", 1, "p", 1, "\"g\":3", 5, &t->fx), V1_E_EXPIRED);
	assert_int_equal(t->s->ops->progress(t->s, &lim, 41 * S, "A", 1, cred_a,
	    "C", 1, "p", 1, "\"g\":3", 5, &t->fx), V1_E_EXPIRED);
	assert_int_equal(retrieve(t, 41 * S, "C", "unknown").kind, V1_RET_UNKNOWN);
}

static void
test_reservation_and_concurrency(void **state)
{
	struct t *t = *state;
	struct relay_v1_selection sel;
	const char *gone;
	bool dup;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 2);
	/* two selections reserve both units of A's capacity */
	assert_int_equal(t->s->ops->select(t->s, &lim, 0, "m", TP_V1_TIER_8K,
	    true, &sel, &t->fx), V1_OK);
	relay_v1_selection_free(&sel);
	assert_int_equal(t->s->ops->select(t->s, &lim, 0, "m", TP_V1_TIER_8K,
	    true, &sel, &t->fx), V1_OK);
	assert_true(sel.load_score > 0.49 && sel.load_score < 0.51);
	relay_v1_selection_free(&sel);
	assert_int_equal(t->s->ops->select(t->s, &lim, 0, "m", TP_V1_TIER_8K,
	    true, &sel, &t->fx), V1_E_NO_CAPACITY);
	assert_int_equal(stats(t, 0).reservations, 2);
	/* enqueues consume them; a third request finds no capacity */
	assert_int_equal(enq(t, 1 * S, "A", "C", "1", false, 480 * S), V1_OK);
	assert_int_equal(enq(t, 1 * S, "A", "C", "2", false, 480 * S), V1_OK);
	assert_int_equal(enq(t, 1 * S, "A", "C", "3", false, 480 * S),
	    V1_E_NO_CAPACITY);
	assert_int_equal(stats(t, 1 * S).reservations, 0);
	/* claimed work still counts; an answer frees the unit */
	work = poll_work(t, 2 * S, "A", NULL);
	free(work);
	assert_int_equal(enq(t, 2 * S, "A", "C", "3", false, 480 * S),
	    V1_E_NO_CAPACITY);
	assert_int_equal(respond(t, 3 * S, "C", "1", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	assert_int_equal(enq(t, 3 * S, "A", "C", "3", false, 480 * S), V1_OK);
	/* an unused reservation lapses after its TTL */
	assert_int_equal(respond(t, 4 * S, "C", "2", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	assert_int_equal(t->s->ops->select(t->s, &lim, 5 * S, "m",
	    TP_V1_TIER_8K, true, &sel, &t->fx), V1_OK);
	relay_v1_selection_free(&sel);
	assert_int_equal(t->s->ops->select(t->s, &lim, 5 * S, "m",
	    TP_V1_TIER_8K, true, &sel, &t->fx), V1_E_NO_CAPACITY);
	assert_int_equal(t->s->ops->select(t->s, &lim, 20 * S, "m",
	    TP_V1_TIER_8K, true, &sel, &t->fx), V1_OK);
	relay_v1_selection_free(&sel);
}

static void
test_selection_ranking(void **state)
{
	struct t *t = *state;
	struct relay_v1_selection sel;
	char first[8] = "", seen[4][8];
	int i;

	reg(t, 0, "BIG", cred_a, TP_V1_TIER_64K, 4);
	reg(t, 0, "S1", cred_a, TP_V1_TIER_8K, 2);
	reg(t, 0, "S2", cred_a, TP_V1_TIER_8K, 2);
	/* no model match */
	assert_int_equal(t->s->ops->select(t->s, &lim, 0, "other",
	    TP_V1_TIER_8K, false, &sel, &t->fx), V1_E_NO_MATCH);
	/* 64k only BIG, with spillover=false since it is the tier asked */
	assert_int_equal(t->s->ops->select(t->s, &lim, 0, "m", TP_V1_TIER_64K,
	    false, &sel, &t->fx), V1_OK);
	assert_string_equal(sel.key.data, "BIG");
	assert_false(sel.spillover);
	assert_int_equal(sel.eligible_nodes, 1);
	relay_v1_selection_free(&sel);
	/* 8k: the small nodes first, alternating (round robin among ties) */
	for (i = 0; i < 4; i++) {
		assert_int_equal(t->s->ops->select(t->s, &lim, 1, "m",
		    TP_V1_TIER_8K, false, &sel, &t->fx), V1_OK);
		snprintf(seen[i], sizeof(seen[i]), "%s", sel.key.data);
		assert_int_equal(sel.eligible_nodes, 3);
		assert_int_equal(sel.eligible_per_tier[TP_V1_TIER_8K], 2);
		assert_int_equal(sel.eligible_per_tier[TP_V1_TIER_64K], 1);
		relay_v1_selection_free(&sel);
	}
	snprintf(first, sizeof(first), "%s", seen[0]);
	assert_true(first[0] == 'S');
	assert_string_not_equal(seen[0], seen[1]);
	assert_string_equal(seen[0], seen[2]);
	assert_string_equal(seen[1], seen[3]);
	/* least loaded wins over round robin */
	assert_int_equal(enq(t, 2, "S1", "C", "a", false, 480 * S), V1_OK);
	for (i = 0; i < 2; i++) {
		assert_int_equal(t->s->ops->select(t->s, &lim, 3, "m",
		    TP_V1_TIER_8K, false, &sel, &t->fx), V1_OK);
		assert_string_equal(sel.key.data, "S2");
		relay_v1_selection_free(&sel);
	}
	/* small nodes full: spill over to the 64k node */
	assert_int_equal(enq(t, 4, "S1", "C", "b", false, 480 * S), V1_OK);
	assert_int_equal(enq(t, 4, "S2", "C", "c", false, 480 * S), V1_OK);
	assert_int_equal(enq(t, 4, "S2", "C", "d", false, 480 * S), V1_OK);
	assert_int_equal(t->s->ops->select(t->s, &lim, 5, "m", TP_V1_TIER_8K,
	    false, &sel, &t->fx), V1_OK);
	assert_string_equal(sel.key.data, "BIG");
	assert_true(sel.spillover);
	assert_int_equal(sel.nmodels, 1);
	assert_string_equal(sel.models.data, "m");
	relay_v1_selection_free(&sel);
}

static void
test_enqueue_duplicate_and_conflict(void **state)
{
	struct t *t = *state;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 4);
	reg(t, 0, "B", cred_b, TP_V1_TIER_8K, 4);
	assert_int_equal(enq(t, 0, "A", "C", "same", false, 480 * S), V1_OK);
	/* a retry to the same node is the same request */
	assert_int_equal(enq(t, 1 * S, "A", "C", "same", false, 999 * S), V1_OK);
	assert_int_equal(stats(t, 1 * S).queued, 1);
	/* the same pair aimed elsewhere is a conflict */
	assert_int_equal(enq(t, 1 * S, "B", "C", "same", false, 480 * S),
	    V1_E_CONFLICT);
	/* the same id from another client on the same node too */
	assert_int_equal(enq(t, 1 * S, "A", "D", "same", false, 480 * S),
	    V1_E_CONFLICT);
	assert_int_equal(enq(t, 1 * S, "Z", "D", "z", false, 480 * S),
	    V1_E_UNKNOWN_NODE);
}

static void
test_response_ttl_expires_undelivered(void **state)
{
	struct t *t = *state;
	struct relay_v1_retrieval r;
	const char *gone;
	bool dup;
	char *work;

	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	assert_int_equal(enq(t, 0, "A", "C", "t", false, 480 * S), V1_OK);
	work = poll_work(t, 1 * S, "A", NULL);
	free(work);
	assert_int_equal(respond(t, 2 * S, "C", "t", NULL, NULL, false, &dup,
	    &gone), V1_OK);
	assert_int_equal(stats(t, 101 * S).responses, 1);
	assert_int_equal(stats(t, 102 * S).responses, 0);
	assert_int_equal(t->fx.expired_responses, 1);
	r = retrieve(t, 103 * S, "C", "t");
	assert_int_equal(r.kind, V1_RET_TERMINAL);
	assert_string_equal(r.status, "expired");
	assert_string_equal(r.reason, "response_ttl_exceeded");
	/* counted completed once, expired never (it was answered) */
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_COMPLETED], 1);
	assert_int_equal(t->fx.outcomes[V1_OUTCOME_EXPIRED], 0);
}

static void
test_terminal_records_bounded(void **state)
{
	struct t *t = *state;
	struct relay_v1_limits small = lim;
	int removed, i;
	char id[16];

	small.max_terminal = 3;
	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 1);
	for (i = 0; i < 5; i++) {
		struct relay_v1_enqueue_in in;
		bool dup;
		int64_t d;

		snprintf(id, sizeof(id), "r%d", i);
		memset(&in, 0, sizeof(in));
		in.node = "A";
		in.node_len = 1;
		in.client = "C";
		in.client_len = 1;
		in.request_id = id;
		in.request_id_len = strlen(id);
		in.work = "\"w\":1";
		in.work_len = 5;
		in.cancel_digest = tok;
		in.deadline_ms = 480 * S;
		assert_int_equal(t->s->ops->enqueue(t->s, &small, i, &in, &dup,
		    &d, &t->fx), V1_OK);
		assert_int_equal(t->s->ops->cancel(t->s, &small, i, "C", 1, id,
		    strlen(id), tok, TP_V1_CANCELLED, "cancelled", &removed,
		    &t->fx), V1_OK);
	}
	assert_int_equal(t->fx.dropped_terminal, 2);
	assert_int_equal(stats(t, 10).terminal, 3);
	/* the oldest were forgotten, the newest remain */
	assert_int_equal(retrieve(t, 10, "C", "r0").kind, V1_RET_UNKNOWN);
	assert_int_equal(retrieve(t, 10, "C", "r4").kind, V1_RET_TERMINAL);
}

/* list_nodes: expiries first, registration order, capped listing, models. */
static void
test_list_nodes(void **state)
{
	struct t *t = *state;
	struct relay_v1_node_list l;
	struct tp_v1_caps *c = malloc(sizeof(*c));
	bool created;

	assert_non_null(c);
	assert_int_equal(t->s->ops->list_nodes(t->s, &lim, 0, 10, true, &l,
	    &t->fx), V1_OK);
	assert_int_equal(l.total, 0);
	assert_int_equal(l.n, 0);
	relay_v1_node_list_free(&l);
	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 2);
	/* B serves two models. */
	caps_for(c, TP_V1_TIER_64K, 3, "m1");
	strcpy(c->models + c->models_len, "m2");
	c->models_len += 3;
	c->nmodels = 2;
	assert_int_equal(t->s->ops->register_node(t->s, &lim, 10 * S, "B", 1,
	    cred_b, c, &created, &t->fx), V1_OK);
	free(c);
	assert_int_equal(enq(t, 10 * S, "A", "C", "q1", false, 480 * S), V1_OK);
	assert_int_equal(t->s->ops->list_nodes(t->s, &lim, 20 * S, 10, true,
	    &l, &t->fx), V1_OK);
	assert_int_equal(l.total, 2);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.nodes[0].key, "A");
	assert_int_equal(l.nodes[0].age_ms, 20 * S);
	assert_int_equal(l.nodes[0].queued, 1);
	assert_int_equal(l.nodes[0].max_concurrency, 2);
	assert_int_equal(l.nodes[0].nmodels, 1);
	assert_string_equal(l.nodes[0].models, "m");
	assert_string_equal(l.nodes[1].key, "B");
	assert_int_equal(l.nodes[1].tier, TP_V1_TIER_64K);
	assert_int_equal(l.nodes[1].nmodels, 2);
	assert_memory_equal(l.nodes[1].models, "m1\0m2\0", 6);
	relay_v1_node_list_free(&l);
	/* Capped and without keys: the total stays exact. */
	assert_int_equal(t->s->ops->list_nodes(t->s, &lim, 20 * S, 1, false,
	    &l, &t->fx), V1_OK);
	assert_int_equal(l.total, 2);
	assert_int_equal(l.n, 1);
	assert_null(l.nodes[0].key);
	relay_v1_node_list_free(&l);
	/* A's lease lapses: evicted before the listing, its request cancelled. */
	assert_int_equal(t->s->ops->list_nodes(t->s, &lim, 30 * S + 1, 10, true,
	    &l, &t->fx), V1_OK);
	assert_int_equal(t->fx.evicted_nodes, 1);
	assert_int_equal(l.total, 1);
	assert_string_equal(l.nodes[0].key, "B");
	relay_v1_node_list_free(&l);
}

/*
 * Redis only: after a full lifecycle (queued, claimed, answered, retrieved,
 * cancelled, unregistered with work), every key under the prefix carries
 * a TTL backstop except the sequence counters, and no key outlives its
 * logical lifetime by more than the grace (the longest here: a node
 * tombstone, 300 s, plus the 60 s grace plus the node's own lease).
 */
static const char keys_lua[] =
    "local out = {}\n"
    "for _, k in ipairs(redis.call('KEYS', KEYS[1] .. '*')) do\n"
    "  out[#out + 1] = k\n"
    "  out[#out + 1] = redis.call('PTTL', k)\n"
    "end\n"
    "return out\n";

static void
test_every_key_has_a_backstop(void **state)
{
	struct t *t = *state;
	struct relay_redis_reply rep;
	const char *key;
	size_t keylen, i, counters = 0;
	bool removed, dup;
	const char *gone;
	int id, n;
	char *w;

	if (!test_redis_active)
		skip();
	reg(t, 0, "A", cred_a, TP_V1_TIER_8K, 4);
	reg(t, 0, "B", cred_b, TP_V1_TIER_8K, 4);
	assert_int_equal(enq(t, 1, "A", "C", "1", true, 480 * S), V1_OK);
	assert_int_equal(enq(t, 1, "A", "C", "2", true, 480 * S), V1_OK);
	assert_int_equal(enq(t, 1, "B", "C", "3", true, 480 * S), V1_OK);
	assert_int_equal(enq(t, 1, "B", "C", "4", true, 480 * S), V1_OK);
	w = poll_work(t, 2, "A", NULL);
	assert_non_null(w);
	free(w);
	w = poll_work(t, 2, "B", NULL);
	assert_non_null(w);
	free(w);
	assert_int_equal(respond(t, 3, "C", "1", "A", cred_a, true, &dup, &gone),
	    V1_OK);
	assert_int_equal(cancel(t, 3, "C", "2", tok, &n), V1_OK);
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 4, "B", 1, cred_b,
	    &removed, &t->fx), V1_OK);
	assert_true(removed);

	id = relay_redis_script(t->r, "test_keys", keys_lua);
	assert_true(id >= 0);
	key = relay_redis_prefix(t->r);
	keylen = strlen(key);
	assert_int_equal(relay_redis_eval(t->r, id, 1, &key, &keylen, 0, NULL,
	    NULL, &rep), RELAY_REDIS_OK);
	assert_int_equal(rep.type, RELAY_REDIS_ARRAY);
	assert_true(rep.n > 20);
	for (i = 0; i + 1 < rep.n; i += 2) {
		const char *k = rep.elem[i].str;
		long long ttl = rep.elem[i + 1].integer;
		const char *tail = strrchr(k, ':');
		size_t klen = strlen(k);

		if (klen >= 6 && strcmp(k + klen - 6, "schema") == 0)
			continue;	/* the layout version: no TTL */

		if (tail != NULL && (strcmp(tail, ":gen") == 0 ||
		    strcmp(tail, ":selseq") == 0 || strcmp(tail, ":regseq") == 0 ||
		    strcmp(tail, ":rseq") == 0)) {
			assert_int_equal(ttl, -1);	/* never goes backwards */
			counters++;
			continue;
		}
		if (ttl <= 0 || ttl > (480 + 300 + 300 + 300 + 60) * S)
			fail_msg("%s: pttl %lld", k, ttl);
	}
	assert_true(counters >= 2);
	relay_redis_reply_free(&rep);
}

static const char wipe_lua[] =
    "for _, k in ipairs(redis.call('KEYS', KEYS[1] .. '*')) do\n"
    "  redis.call('DEL', k)\n"
    "end\n"
    "return 0\n";

static uint64_t
claim_generation(struct t *t, int64_t now, const char *id)
{
	struct relay_v1_work w;
	bool has = false;
	uint64_t g;

	assert_int_equal(enq(t, now, "A", "C", id, false, now + 480 * S), V1_OK);
	assert_int_equal(t->s->ops->poll(t->s, &lim, now, "A", 1, NULL, 0, &w,
	    &has, &t->fx), V1_OK);
	assert_true(has);
	g = w.generation;
	relay_blob_free(&w.envelope);
	return g;
}

/*
 * Claim generations only grow; under Redis also after the server lost
 * everything (the counter restarts above every earlier value).
 */
static void
test_generations_never_go_back(void **state)
{
	struct t *t = *state;
	struct relay_redis_reply rep;
	uint64_t g1, g2, g3;
	const char *key;
	size_t keylen;
	int id;

	reg(t, 1000 * S, "A", cred_a, TP_V1_TIER_8K, 4);
	g1 = claim_generation(t, 1000 * S, "1");
	g2 = claim_generation(t, 1000 * S, "2");
	assert_true(g2 > g1);
	if (!test_redis_active)
		return;
	id = relay_redis_script(t->r, "test_wipe", wipe_lua);
	assert_true(id >= 0);
	key = relay_redis_prefix(t->r);
	keylen = strlen(key);
	assert_int_equal(relay_redis_eval(t->r, id, 1, &key, &keylen, 0, NULL,
	    NULL, &rep), RELAY_REDIS_OK);
	relay_redis_reply_free(&rep);
	/* an empty store, one second later */
	reg(t, 1001 * S, "A", cred_a, TP_V1_TIER_8K, 4);
	g3 = claim_generation(t, 1001 * S, "3");
	assert_true(g3 > g2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_once_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_expiry_evicts_and_cancels_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_poll_and_live_claim_protect_from_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_expires_mid_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_past_deadline_is_skipped_by_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_before_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_after_claim_tombstone_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tombstone_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_with_queued_and_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reregistration_gets_new_credential, setup, teardown),
		cmocka_unit_test_setup_teardown(test_responses_duplicate_late_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delivered_response_redelivered_within_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_node_ends_its_claims_at_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_fenced_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_retrieval_with_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reservation_and_concurrency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_selection_ranking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enqueue_duplicate_and_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_ttl_expires_undelivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_terminal_records_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_key_has_a_backstop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generations_never_go_back, setup, teardown),
	};

	int failed;

	failed = cmocka_run_group_tests_name("v1_store_memory", tests, NULL,
	    NULL);
	failed += cmocka_run_group_tests_name("v1_store_redis", tests,
	    test_redis_group_setup, test_redis_group_teardown);
	failed += cmocka_run_group_tests_name("v1_store_redis_layout2", tests,
	    layout2_group_setup, layout2_group_teardown);
	return failed;
}
