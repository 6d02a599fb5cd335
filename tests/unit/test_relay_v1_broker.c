/*
 * test_relay_v1_broker.c -- the API v1 broker with real threads: a long
 * poll is woken by an enqueue for its node (and only then), by the node's
 * unregistration and by draining; polls over max_long_polls are answered
 * at once; credentials are revealed once and only their digest kept; the
 * client's cancel_token never reaches the node; max_concurrency holds
 * under clients racing on several threads. Waits are bounded by
 * deadlines, never by fixed sleeps deciding an outcome.
 *
 * One suite, two groups: the memory store, then the Redis store on a
 * redis-server this test starts. In the Redis group, "replica" A and B
 * are two brokers, each with its own adapter and subscriber thread, on
 * one key prefix, as two relay processes would be: a node long-polls on
 * A while a client enqueues on B. In the memory group A and B are the
 * same broker.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/clock.h"
#include "redis/redis.h"
#include "redis_server.h"
#include "state_redis.h"
#include "v1/v1_broker.h"

/* A broker with what it runs on: its adapter and wake-up link (Redis). */
struct replica {
	struct relay_v1 *b;
	struct relay_redis *r;
	struct relay_v1_link link;
};

#define MAX_REPLICAS 4
static struct replica replicas[MAX_REPLICAS];
static size_t nreplicas;

static struct relay_v1 *
open_replica(const struct relay_v1_config *cfg,
    const struct relay_redis_config *rcfg)
{
	struct replica *p;
	struct relay_v1_store *st = NULL;
	char err[256];

	assert_true(nreplicas < MAX_REPLICAS);
	p = &replicas[nreplicas++];
	memset(p, 0, sizeof(*p));
	if (test_redis_active) {
		p->r = relay_redis_new(rcfg, NULL, err, sizeof(err));
		assert_non_null(p->r);
		st = relay_v1_store_redis_new(p->r);
		assert_non_null(st);
	}
	p->b = relay_v1_new(cfg, st, NULL);
	assert_non_null(p->b);
	if (test_redis_active) {
		relay_v1_link_init(&p->link, p->b, p->r);
		assert_int_equal(relay_redis_subscribe(p->r,
		    relay_v1_link_on_message, relay_v1_link_on_subscribed,
		    &p->link), RELAY_REDIS_OK);
	}
	return p->b;
}

/* A broker on a store of its own (a fresh key prefix under Redis). */
static struct relay_v1 *
open_broker(const struct relay_v1_config *cfg)
{
	struct relay_redis_config rcfg;

	memset(&rcfg, 0, sizeof(rcfg));
	if (test_redis_active)
		test_redis_config(&test_redis_group, &rcfg);
	return open_replica(cfg, &rcfg);
}

/*
 * Two replicas on one store: *a and *b (the same broker under the memory
 * store, which one process owns).
 */
static void
open_pair(const struct relay_v1_config *cfg, struct relay_v1 **a,
    struct relay_v1 **b)
{
	struct relay_redis_config rcfg;

	memset(&rcfg, 0, sizeof(rcfg));
	if (!test_redis_active) {
		*a = *b = open_replica(cfg, &rcfg);
		return;
	}
	test_redis_config(&test_redis_group, &rcfg);
	*a = open_replica(cfg, &rcfg);
	*b = open_replica(cfg, &rcfg);
}

/* Frees broker b (and, under Redis, its adapter and link) in the safe order. */
static void
close_broker(struct relay_v1 *b)
{
	size_t i;

	for (i = 0; i < nreplicas; i++) {
		struct replica *p = &replicas[i];

		if (p->b != b)
			continue;
		if (p->r != NULL)
			relay_v1_link_clear(&p->link);
		relay_v1_free(p->b);
		if (p->r != NULL) {
			relay_redis_free(p->r);
			relay_v1_link_destroy(&p->link);
		}
		replicas[i] = replicas[--nreplicas];
		return;
	}
	fail_msg("close_broker: not a replica of this test");
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct relay_v1_config
config(int64_t wait_ms, int64_t max_polls)
{
	struct relay_v1_config c;

	memset(&c, 0, sizeof(c));
	c.lim.lease_ms = 30000;
	c.lim.in_flight_ttl_ms = 30000;
	c.lim.tombstone_ttl_ms = 60000;
	c.lim.node_tombstone_ttl_ms = 300000;
	c.lim.terminal_ttl_ms = 300000;
	c.lim.response_ttl_ms = 300000;
	c.lim.reservation_ttl_ms = 15000;
	c.lim.max_nodes = 64;
	c.lim.max_requests = 256;
	c.lim.max_terminal = 256;
	c.lim.max_tombstones = 256;
	c.poll_wait_ms = wait_ms;
	c.deadline_ms = 480000;
	c.busy_retry_s = 2;
	c.max_long_polls = max_polls;
	c.sweeper = true;
	return c;
}

static struct tp_v1_caps *
caps(int64_t conc)
{
	struct tp_v1_caps *c = malloc(sizeof(*c));

	assert_non_null(c);
	tp_v1_caps_default(c);
	strcpy(c->models, TP_V1_DEFAULT_MODEL);
	c->models_len = sizeof(TP_V1_DEFAULT_MODEL);
	c->nmodels = 1;
	c->max_concurrency = conc;
	return c;
}

static void
register_node(struct relay_v1 *b, const char *key, char cred[44])
{
	struct tp_v1_caps *c = caps(4);
	bool created = false;

	assert_int_equal(relay_v1_register(b, key, strlen(key), c, cred,
	    &created), V1_OK);
	assert_true(created);
	free(c);
}

static struct tp_v1_envelope
envelope(const char *node, const char *client, const char *id,
    const char *cancel)
{
	struct tp_v1_envelope e;

	memset(&e, 0, sizeof(e));
	e.server_public_key = (struct tp_str){ node, strlen(node) };
	e.client_public_key = (struct tp_str){ client, strlen(client) };
	e.ciphertext = (struct tp_str){ "CT", 2 };
	e.cipherkey = (struct tp_str){ "CK", 2 };
	e.iv = (struct tp_str){ "IV", 2 };
	e.request_id = (struct tp_str){ id, strlen(id) };
	if (cancel != NULL)
		e.cancel_token = (struct tp_str){ cancel, strlen(cancel) };
	return e;
}

struct poller {
	struct relay_v1 *b;
	const char *key;
	pthread_t th;
	enum relay_v1_rc rc;
	struct relay_v1_poll_result res;
	int64_t took_ms;
};

static void *
poll_main(void *arg)
{
	struct poller *p = arg;
	int64_t t0 = relay_mono_ms();

	p->rc = relay_v1_poll(p->b, p->key, strlen(p->key), NULL, &p->res);
	p->took_ms = relay_mono_ms() - t0;
	return NULL;
}

static void
start_poller(struct poller *p, struct relay_v1 *b, const char *key)
{
	memset(p, 0, sizeof(*p));
	p->b = b;
	p->key = key;
	assert_int_equal(pthread_create(&p->th, NULL, poll_main, p), 0);
}

/* Waits (bounded) until n polls are waiting in the broker. */
static void
await_long_polls(struct relay_v1 *b, long n)
{
	int64_t until = relay_mono_ms() + 10000;

	while (relay_v1_long_polls(b) != n) {
		assert_true(relay_mono_ms() < until);
		nap_ms(2);
	}
}

static void
test_long_poll_woken_by_enqueue_for_its_node_only(void **state)
{
	struct relay_v1_config cfg = config(8000, 8);
	struct relay_v1 *b = open_broker(&cfg);
	struct poller pa, pb;
	struct tp_v1_envelope e;
	char ca[44], cb[44];
	int64_t deadline;
	bool dup;

	(void)state;
	assert_non_null(b);
	register_node(b, "A", ca);
	register_node(b, "B", cb);
	start_poller(&pa, b, "A");
	start_poller(&pb, b, "B");
	await_long_polls(b, 2);
	e = envelope("A", "C", "r1", "secret-cancel");
	assert_int_equal(relay_v1_enqueue(b, &e, &deadline, &dup), V1_OK);
	pthread_join(pa.th, NULL);
	assert_int_equal(pa.rc, V1_OK);
	assert_true(pa.res.has_work);
	assert_true(pa.took_ms < 4000);
	/* nodes get only what they need: never the client's cancel token */
	assert_null(memmem(pa.res.work.envelope.data, pa.res.work.envelope.len,
	    "secret-cancel", 13));
	assert_null(memmem(pa.res.work.envelope.data, pa.res.work.envelope.len,
	    "cancel_token", 12));
	assert_non_null(memmem(pa.res.work.envelope.data,
	    pa.res.work.envelope.len, "\"request_id\":\"r1\"", 17));
	relay_blob_free(&pa.res.work.envelope);
	/* B was not woken: it is still waiting */
	assert_int_equal(relay_v1_long_polls(b), 1);
	relay_v1_drain(b);
	pthread_join(pb.th, NULL);
	assert_false(pb.res.has_work);
	assert_true(pb.res.draining);
	/* after drain, polls answer at once */
	start_poller(&pb, b, "B");
	pthread_join(pb.th, NULL);
	assert_true(pb.res.draining);
	assert_true(pb.took_ms < 1000);
	close_broker(b);
}

static void
test_long_poll_times_out_and_unregister_wakes(void **state)
{
	struct relay_v1_config cfg = config(300, 8);
	struct relay_v1 *b = open_broker(&cfg);
	struct tp_v1_unregister u;
	struct poller p;
	char cred[44];
	bool removed;

	(void)state;
	assert_non_null(b);
	register_node(b, "A", cred);
	start_poller(&p, b, "A");
	pthread_join(p.th, NULL);
	assert_int_equal(p.rc, V1_OK);
	assert_false(p.res.has_work);
	assert_false(p.res.busy);
	assert_true(p.took_ms >= 250);

	close_broker(b);
	cfg = config(20000, 8);
	b = open_broker(&cfg);
	assert_non_null(b);
	register_node(b, "A", cred);
	start_poller(&p, b, "A");
	await_long_polls(b, 1);
	memset(&u, 0, sizeof(u));
	u.server_public_key = (struct tp_str){ "A", 1 };
	u.control_credential = (struct tp_str){ cred, strlen(cred) };
	assert_int_equal(relay_v1_unregister(b, &u, &removed), V1_OK);
	assert_true(removed);
	pthread_join(p.th, NULL);
	assert_int_equal(p.rc, V1_E_UNKNOWN_NODE);
	assert_true(p.took_ms < 10000);
	close_broker(b);
}

static void
test_polls_over_the_cap_answer_at_once(void **state)
{
	struct relay_v1_config cfg = config(20000, 1);
	struct relay_v1 *b = open_broker(&cfg);
	struct poller p1, p2;
	struct tp_v1_envelope e;
	char ca[44], cb[44];
	int64_t deadline;
	bool dup;

	(void)state;
	assert_non_null(b);
	register_node(b, "A", ca);
	register_node(b, "B", cb);
	start_poller(&p1, b, "A");
	await_long_polls(b, 1);
	start_poller(&p2, b, "B");
	pthread_join(p2.th, NULL);
	assert_int_equal(p2.rc, V1_OK);
	assert_true(p2.res.busy);
	assert_false(p2.res.has_work);
	assert_true(p2.took_ms < 5000);
	/* over the cap, queued work is still handed out at once */
	e = envelope("B", "C", "rb", NULL);
	assert_int_equal(relay_v1_enqueue(b, &e, &deadline, &dup), V1_OK);
	start_poller(&p2, b, "B");
	pthread_join(p2.th, NULL);
	assert_true(p2.res.has_work);
	relay_blob_free(&p2.res.work.envelope);
	relay_v1_drain(b);
	pthread_join(p1.th, NULL);
	assert_int_equal(relay_v1_long_polls(b), 0);
	close_broker(b);
}

static void
test_credential_revealed_once_and_controls(void **state)
{
	struct relay_v1_config cfg = config(0, 8);
	struct relay_v1 *b = open_broker(&cfg);
	struct tp_v1_caps *c = caps(1);
	struct relay_v1_poll_result pr;
	struct tp_v1_envelope e;
	struct tp_v1_control ctl;
	struct tp_v1_cancel cn;
	enum relay_v1_control_state st;
	char cred[44], again[44];
	int64_t deadline;
	bool created, dup;
	int removed;
	size_t i;

	(void)state;
	assert_non_null(b);
	assert_int_equal(relay_v1_register(b, "N", 1, c, cred, &created), V1_OK);
	assert_true(created);
	assert_int_equal(strlen(cred), RELAY_V1_CREDENTIAL_LEN);
	for (i = 0; i < RELAY_V1_CREDENTIAL_LEN; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
		    "qrstuvwxyz0123456789-_", cred[i]));
	assert_int_equal(relay_v1_register(b, "N", 1, c, again, &created), V1_OK);
	assert_false(created);
	assert_string_equal(again, "");
	free(c);

	e = envelope("N", "C", "x", "tok");
	assert_int_equal(relay_v1_enqueue(b, &e, &deadline, &dup), V1_OK);
	/* poll wait 0: no waiting at all */
	assert_int_equal(relay_v1_poll(b, "N", 1, NULL, &pr), V1_OK);
	assert_true(pr.has_work);
	relay_blob_free(&pr.work.envelope);
	memset(&ctl, 0, sizeof(ctl));
	ctl.server_public_key = (struct tp_str){ "N", 1 };
	ctl.request_id = (struct tp_str){ "x", 1 };
	ctl.control_credential = (struct tp_str){ cred, strlen(cred) };
	assert_int_equal(relay_v1_control(b, &ctl, &st, &deadline), V1_OK);
	assert_int_equal(st, V1_CTL_ACTIVE);
	memset(&cn, 0, sizeof(cn));
	cn.client_public_key = (struct tp_str){ "C", 1 };
	cn.request_id = (struct tp_str){ "x", 1 };
	cn.cancel_token = (struct tp_str){ "tok", 3 };
	cn.status = TP_V1_CANCELLED;
	cn.reason = "requester_cancelled";
	assert_int_equal(relay_v1_cancel(b, &cn, &removed), V1_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(relay_v1_control(b, &ctl, &st, &deadline), V1_OK);
	assert_int_equal(st, V1_CTL_CANCELLED);
	ctl.control_credential = (struct tp_str){ "forged", 6 };
	assert_int_equal(relay_v1_control(b, &ctl, &st, &deadline),
	    V1_E_FORBIDDEN);
	close_broker(b);
}

static void
test_next_poll_hint(void **state)
{
	struct relay_v1_config cfg = config(10000, 8);
	struct relay_v1 *b;

	(void)state;
	cfg.sweeper = false;
	b = open_broker(&cfg);
	assert_non_null(b);
	assert_int_equal(relay_v1_next_poll_seconds(b), 10);
	close_broker(b);
	cfg.lim.in_flight_ttl_ms = 4000;
	b = open_broker(&cfg);
	assert_int_equal(relay_v1_next_poll_seconds(b), 2);
	close_broker(b);
	cfg.poll_wait_ms = 0;
	b = open_broker(&cfg);
	assert_int_equal(relay_v1_next_poll_seconds(b), 1);
	close_broker(b);
}

static void
test_long_poll_on_one_replica_woken_from_the_other(void **state)
{
	struct relay_v1_config cfg = config(20000, 8);
	struct relay_v1 *a, *b;
	struct tp_v1_envelope e;
	struct tp_v1_unregister u;
	struct poller p;
	char cred[44];
	int64_t deadline;
	bool dup, removed;

	(void)state;
	open_pair(&cfg, &a, &b);
	register_node(a, "A", cred);
	/* the node waits on replica a; the client comes through replica b */
	start_poller(&p, a, "A");
	await_long_polls(a, 1);
	e = envelope("A", "C", "r1", NULL);
	assert_int_equal(relay_v1_enqueue(b, &e, &deadline, &dup), V1_OK);
	pthread_join(p.th, NULL);
	assert_int_equal(p.rc, V1_OK);
	assert_true(p.res.has_work);
	/*
	 * Woken, not answered by the end of its 20 s wait (which would also
	 * find the work). The bound is 50 ms; the margin here is
	 * generous on purpose (a busy CI machine), the figure is make bench's.
	 */
	assert_true(p.took_ms < 10000);
	assert_non_null(memmem(p.res.work.envelope.data, p.res.work.envelope.len,
	    "\"request_id\":\"r1\"", 17));
	relay_blob_free(&p.res.work.envelope);
	/* unregistration through b ends a's poll with 404 */
	start_poller(&p, a, "A");
	await_long_polls(a, 1);
	memset(&u, 0, sizeof(u));
	u.server_public_key = (struct tp_str){ "A", 1 };
	u.control_credential = (struct tp_str){ cred, strlen(cred) };
	assert_int_equal(relay_v1_unregister(b, &u, &removed), V1_OK);
	assert_true(removed);
	pthread_join(p.th, NULL);
	assert_int_equal(p.rc, V1_E_UNKNOWN_NODE);
	assert_true(p.took_ms < 10000);		/* woken, as above */
	if (b != a)
		close_broker(b);
	close_broker(a);
}

/* ---- concurrency: clients and nodes on both replicas at once ------------- */

#define RACERS 8
#define TRIES 16

struct racer {
	struct relay_v1 *b;
	pthread_t th;
	int index;
	int admitted;
};

/* select (which reserves) then enqueue, TRIES times; counts admissions */
static void *
racer_main(void *arg)
{
	struct racer *r = arg;
	int i;

	for (i = 0; i < TRIES; i++) {
		struct relay_v1_selection sel;
		struct tp_v1_envelope e;
		char id[32];
		int64_t deadline;
		bool dup;

		if (relay_v1_select(r->b, TP_V1_DEFAULT_MODEL, TP_V1_TIER_8K,
		    &sel) != V1_OK)
			continue;
		relay_v1_selection_free(&sel);
		snprintf(id, sizeof(id), "r%d-%d", r->index, i);
		e = envelope("N", "C", id, NULL);
		if (relay_v1_enqueue(r->b, &e, &deadline, &dup) == V1_OK)
			r->admitted++;
	}
	return NULL;
}

static void
test_max_concurrency_holds_with_clients_on_both_replicas(void **state)
{
	struct relay_v1_config cfg = config(0, 8);
	struct racer racers[RACERS];
	struct relay_v1 *a, *b;
	struct relay_v1_stats st;
	char cred[44];
	int i, total = 0;

	(void)state;
	open_pair(&cfg, &a, &b);
	register_node(a, "N", cred);	/* max_concurrency 4 */
	for (i = 0; i < RACERS; i++) {
		racers[i].b = i % 2 ? b : a;
		racers[i].index = i;
		racers[i].admitted = 0;
		assert_int_equal(pthread_create(&racers[i].th, NULL, racer_main,
		    &racers[i]), 0);
	}
	for (i = 0; i < RACERS; i++) {
		pthread_join(racers[i].th, NULL);
		total += racers[i].admitted;
	}
	/* every selection that reserved was admitted, and never one more */
	assert_int_equal(total, 4);
	assert_int_equal(relay_v1_stats(b, &st), V1_OK);
	assert_int_equal(st.queued, 4);
	if (b != a)
		close_broker(b);
	close_broker(a);
}

#define PRODUCERS 4
#define JOBS_EACH 32
#define POLLERS 4

struct shared_seen {
	pthread_mutex_t mu;
	int seen[PRODUCERS * JOBS_EACH];
	int claimed;
	int bad;
};

struct producer {
	struct relay_v1 *b;
	pthread_t th;
	int index;
	int failed;
};

struct consumer {
	struct relay_v1 *b;
	pthread_t th;
	struct shared_seen *seen;
};

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	int i;

	for (i = 0; i < JOBS_EACH; i++) {
		struct tp_v1_envelope e;
		char id[32];
		int64_t deadline;
		bool dup;

		snprintf(id, sizeof(id), "j%d", p->index * JOBS_EACH + i);
		e = envelope("N", "C", id, NULL);
		if (relay_v1_enqueue(p->b, &e, &deadline, &dup) != V1_OK || dup)
			p->failed++;
	}
	return NULL;
}

static void *
consumer_main(void *arg)
{
	struct consumer *c = arg;
	int64_t until = relay_mono_ms() + 60000;

	while (relay_mono_ms() < until) {
		struct relay_v1_poll_result pr;
		const char *at;
		int n;

		pthread_mutex_lock(&c->seen->mu);
		n = c->seen->claimed;
		pthread_mutex_unlock(&c->seen->mu);
		if (n >= PRODUCERS * JOBS_EACH)
			break;
		if (relay_v1_poll(c->b, "N", 1, NULL, &pr) != V1_OK)
			break;
		if (pr.draining)
			break;
		if (!pr.has_work)
			continue;
		at = memmem(pr.work.envelope.data, pr.work.envelope.len,
		    "\"request_id\":\"j", 15);
		pthread_mutex_lock(&c->seen->mu);
		if (at == NULL) {
			c->seen->bad++;
		} else {
			n = atoi(at + 15);
			if (n < 0 || n >= PRODUCERS * JOBS_EACH)
				c->seen->bad++;
			else
				c->seen->seen[n]++;
		}
		c->seen->claimed++;
		pthread_mutex_unlock(&c->seen->mu);
		relay_blob_free(&pr.work.envelope);
	}
	return NULL;
}

static void
test_each_job_claimed_once_with_nodes_and_clients_on_both(void **state)
{
	struct relay_v1_config cfg = config(500, 8);
	struct producer prod[PRODUCERS];
	struct consumer cons[POLLERS];
	struct shared_seen seen;
	struct tp_v1_caps *c = caps(TP_V1_MAX_CONCURRENCY);
	struct relay_v1 *a, *b;
	char cred[44];
	bool created;
	int i;

	(void)state;
	memset(&seen, 0, sizeof(seen));
	pthread_mutex_init(&seen.mu, NULL);
	open_pair(&cfg, &a, &b);
	assert_int_equal(relay_v1_register(a, "N", 1, c, cred, &created), V1_OK);
	free(c);
	for (i = 0; i < POLLERS; i++) {
		cons[i].b = i % 2 ? b : a;
		cons[i].seen = &seen;
		assert_int_equal(pthread_create(&cons[i].th, NULL, consumer_main,
		    &cons[i]), 0);
	}
	for (i = 0; i < PRODUCERS; i++) {
		prod[i].b = i % 2 ? a : b;
		prod[i].index = i;
		prod[i].failed = 0;
		assert_int_equal(pthread_create(&prod[i].th, NULL, producer_main,
		    &prod[i]), 0);
	}
	for (i = 0; i < PRODUCERS; i++) {
		pthread_join(prod[i].th, NULL);
		assert_int_equal(prod[i].failed, 0);
	}
	for (i = 0; i < POLLERS; i++)
		pthread_join(cons[i].th, NULL);
	/* 0 lost, 0 duplicated, 0 foreign */
	assert_int_equal(seen.bad, 0);
	assert_int_equal(seen.claimed, PRODUCERS * JOBS_EACH);
	for (i = 0; i < PRODUCERS * JOBS_EACH; i++)
		assert_int_equal(seen.seen[i], 1);
	pthread_mutex_destroy(&seen.mu);
	if (b != a)
		close_broker(b);
	close_broker(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_long_poll_woken_by_enqueue_for_its_node_only),
		cmocka_unit_test(test_long_poll_times_out_and_unregister_wakes),
		cmocka_unit_test(test_polls_over_the_cap_answer_at_once),
		cmocka_unit_test(test_credential_revealed_once_and_controls),
		cmocka_unit_test(test_next_poll_hint),
		cmocka_unit_test(test_long_poll_on_one_replica_woken_from_the_other),
		cmocka_unit_test(test_max_concurrency_holds_with_clients_on_both_replicas),
		cmocka_unit_test(test_each_job_claimed_once_with_nodes_and_clients_on_both),
	};
	int failed;

	failed = cmocka_run_group_tests_name("v1_broker_memory", tests, NULL,
	    NULL);
	failed += cmocka_run_group_tests_name("v1_broker_redis", tests,
	    test_redis_group_setup, test_redis_group_teardown);
	return failed;
}
