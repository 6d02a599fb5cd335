/*
 * test_relay_broker.c -- relay semantics without HTTP, one suite run on the
 * memory store and again on the Redis store (a redis-server this test
 * starts), with the test's clock: the legacy cycle, eviction, every limit, TTLs,
 * streams, tokens, the /faucet rate limit behind proxies, metrics, and a
 * multi-threaded producer/consumer run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "legacy/broker.h"
#include "redis/redis.h"
#include "redis_server.h"
#include "settings.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

struct fixture {
	struct relay_settings s;
	struct relay_redis *redis;	/* Redis group: a fresh key prefix per start() */
	struct relay_store *store;
	struct relay_broker *b;
	struct tp_metrics_registry *reg;
	_Atomic int64_t now;
};

static int64_t
fake_clock(void *arg)
{
	struct fixture *f = arg;

	return atomic_load(&f->now);
}

static void
default_settings(struct relay_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->server_token = "";
	s->server_tokens = "";
	s->trusted_proxies = "";
	s->legacy_routes = true;
	s->server_ttl_s = 30;
	s->max_servers = 16;
	s->queue_per_server = 8;
	s->queue_total = 12;
	s->response_ttl_s = 600;
	s->max_responses = 4;
	s->max_stream_sessions = 4;
	s->max_stream_chunks = 3;
	s->stream_session_ttl_s = 60;
	s->max_key_bytes = 64;
	s->faucet_rate_limit = 0;
	s->faucet_rate_window_s = 60;
	s->faucet_rate_clients = 100;
}

/* A store of the running group; *redis gets the adapter (Redis group). */
static struct relay_store *
new_store(struct relay_redis **redis)
{
	struct relay_redis_config cfg;
	char err[256];

	*redis = NULL;
	if (!test_redis_active)
		return relay_store_memory_new();
	test_redis_config(&test_redis_group, &cfg);
	*redis = relay_redis_new(&cfg, NULL, err, sizeof(err));
	if (*redis == NULL)
		fail_msg("relay_redis_new: %s", err);
	return relay_store_redis_new(*redis);
}

/* (Re)creates the broker from f->s. */
static void
start(struct fixture *f)
{
	relay_broker_free(f->b);
	tp_metrics_registry_free(f->reg);
	relay_store_free(f->store);
	relay_redis_free(f->redis);
	f->redis = NULL;
	f->store = new_store(&f->redis);
	f->reg = tp_metrics_registry_new();
	assert_non_null(f->store);
	assert_non_null(f->reg);
	f->b = relay_broker_new(&f->s, f->store, f->reg);
	assert_non_null(f->b);
	relay_broker_set_clock(f->b, fake_clock, f);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	default_settings(&f->s);
	atomic_store(&f->now, 1000000);
	start(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	relay_broker_free(f->b);
	tp_metrics_registry_free(f->reg);
	relay_store_free(f->store);
	relay_redis_free(f->redis);
	free(f);
	return 0;
}

static void
advance(struct fixture *f, int64_t ms)
{
	atomic_fetch_add(&f->now, ms);
}

static struct tp_str
S(const char *s)
{
	return (struct tp_str){ s, s ? strlen(s) : 0 };
}

static enum relay_status
sink(struct fixture *f, const char *key, int64_t max, struct relay_poll_result *r)
{
	struct tp_sink_request sr = { S(key), max, max > 1 };

	return relay_broker_sink(f->b, &sr, r);
}

static enum relay_status
faucet(struct fixture *f, const char *server, const char *ch, const char *client,
    bool stream)
{
	struct tp_faucet_request fr = { S(server), S(ch), S("k"), S("i"),
	    S(client), stream };

	return relay_broker_faucet(f->b, &fr);
}

static enum relay_status
source(struct fixture *f, const char *client, const char *ch)
{
	struct tp_source_request sr = { S(client), S(ch), S("rk"), S("ri") };

	return relay_broker_source(f->b, &sr);
}

static enum relay_status
retrieve(struct fixture *f, const char *client, struct relay_blob *out)
{
	struct tp_client_request cr = { S(client) };

	return relay_broker_retrieve(f->b, &cr, out);
}

/* Renders the registry and returns the value of a sample line, or -1. */
static double
metric(struct fixture *f, const char *sample)
{
	size_t len, n = strlen(sample);
	char *text = tp_metrics_render(f->reg, &len);
	const char *p;
	double v = -1;

	assert_non_null(text);
	for (p = text; (p = strstr(p, sample)) != NULL; p += n) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ') {
			v = strtod(p + n + 1, NULL);
			break;
		}
	}
	free(text);
	return v;
}

static void
expect_blob(const char *data, size_t len, const char *want)
{
	assert_int_equal(len, strlen(want));
	assert_memory_equal(data, want, len);
}

static void
test_legacy_cycle(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	struct relay_blob b;

	assert_int_equal(relay_broker_next_server(f->b, &b), RELAY_E_NO_SERVERS);
	assert_int_equal(faucet(f, "S", "c", "C", false), RELAY_E_UNKNOWN_SERVER);
	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	assert_true(r.registered);
	assert_int_equal(relay_broker_next_server(f->b, &b), RELAY_OK);
	assert_int_equal(b.len, 1);
	assert_memory_equal(b.data, "S", 1);
	relay_blob_free(&b);

	assert_int_equal(faucet(f, "S", "c1", "C", false), RELAY_OK);
	assert_int_equal(faucet(f, "S", "c2", NULL, false), RELAY_OK);
	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	assert_int_equal(r.n, 1);
	expect_blob(r.jobs[0].blob.data, r.jobs[0].blob.len,
	    "\"chat_history\":\"c1\",\"cipherkey\":\"k\",\"client_public_key\":\"C\",\"iv\":\"i\"");
	relay_poll_result_free(&r);
	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	assert_int_equal(r.n, 1);
	expect_blob(r.jobs[0].blob.data, r.jobs[0].blob.len,
	    "\"chat_history\":\"c2\",\"cipherkey\":\"k\",\"client_public_key\":null,\"iv\":\"i\"");
	relay_poll_result_free(&r);

	assert_int_equal(retrieve(f, "C", &b), RELAY_E_NO_RESPONSE);
	assert_int_equal(source(f, "C", "answer"), RELAY_OK);
	assert_int_equal(retrieve(f, "C", &b), RELAY_OK);
	expect_blob(b.data, b.len,
	    "\"chat_history\":\"answer\",\"cipherkey\":\"rk\",\"iv\":\"ri\"");
	relay_blob_free(&b);
	assert_int_equal(retrieve(f, "C", &b), RELAY_E_NO_RESPONSE);
}

static void
test_batch_capped_by_queue_bound(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	char ch[8];
	int i;

	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	for (i = 0; i < 8; i++) {
		snprintf(ch, sizeof(ch), "c%d", i);
		assert_int_equal(faucet(f, "S", ch, "C", false), RELAY_OK);
	}
	assert_int_equal(sink(f, "S", INT64_MAX, &r), RELAY_OK);
	assert_int_equal(r.n, 8);
	for (i = 0; i < 8; i++) {
		snprintf(ch, sizeof(ch), "c%d\"", i);
		assert_non_null(memmem(r.jobs[i].blob.data, r.jobs[i].blob.len,
		    ch, strlen(ch)));
	}
	relay_poll_result_free(&r);
}

static void
test_batch_reply_bytes_capped_by_body_limit(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	int i;

	/* each encoded job here is 68 bytes: two fit in 150, three do not */
	f->s.max_body_bytes = 150;
	start(f);
	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	for (i = 0; i < 3; i++)
		assert_int_equal(faucet(f, "S", "cc", "C", false), RELAY_OK);
	assert_int_equal(sink(f, "S", 8, &r), RELAY_OK);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.jobs[0].blob.len, 68);
	relay_poll_result_free(&r);
	assert_int_equal(sink(f, "S", 8, &r), RELAY_OK);
	assert_int_equal(r.n, 1);
	relay_poll_result_free(&r);
}

static void
test_eviction_and_metrics(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	struct relay_blob b;

	assert_int_equal(sink(f, "A", 1, &r), RELAY_OK);
	assert_int_equal(sink(f, "B", 1, &r), RELAY_OK);
	assert_int_equal(faucet(f, "A", "x", "C", false), RELAY_OK);
	assert_int_equal(faucet(f, "A", "y", "C", false), RELAY_OK);
	assert_true(metric(f, "tokenplace_relay_known_servers") == 2);
	assert_true(metric(f, "tokenplace_relay_queued_requests") == 2);
	assert_true(metric(f, "tokenplace_relay_evictions_total") == 0);

	advance(f, 20000);
	assert_int_equal(sink(f, "B", 1, &r), RELAY_OK);
	advance(f, 10001);	/* A silent for 30.001 s, B for 10.001 s */
	assert_int_equal(faucet(f, "A", "z", "C", false), RELAY_E_UNKNOWN_SERVER);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(relay_broker_next_server(f->b, &b), RELAY_OK);
		assert_memory_equal(b.data, "B", 1);
		relay_blob_free(&b);
	}
	assert_true(metric(f, "tokenplace_relay_known_servers") == 1);
	assert_true(metric(f, "tokenplace_relay_queued_requests") == 0);
	assert_true(metric(f, "tokenplace_relay_evictions_total") == 1);
	assert_true(metric(f, "tokenplace_relay_dropped_requests_total") == 2);
	/* the evicted node comes back by polling, with an empty queue */
	assert_int_equal(sink(f, "A", 4, &r), RELAY_OK);
	assert_true(r.registered);
	assert_int_equal(r.n, 0);
}

static void
test_every_limit(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	char key[8];
	int i;

	/* queue_per_server 8, queue_total 12 */
	assert_int_equal(sink(f, "A", 1, &r), RELAY_OK);
	assert_int_equal(sink(f, "B", 1, &r), RELAY_OK);
	for (i = 0; i < 8; i++)
		assert_int_equal(faucet(f, "A", "a", "C", false), RELAY_OK);
	assert_int_equal(faucet(f, "A", "a", "C", false), RELAY_E_QUEUE_FULL);
	assert_string_equal(relay_status_limit(RELAY_E_QUEUE_FULL), "queue_per_server");
	for (i = 0; i < 4; i++)
		assert_int_equal(faucet(f, "B", "b", "C", false), RELAY_OK);
	assert_int_equal(faucet(f, "B", "b", "C", false), RELAY_E_QUEUE_TOTAL);
	assert_string_equal(relay_status_limit(RELAY_E_QUEUE_TOTAL), "queue_total");

	/* max_servers 16 */
	for (i = 2; i < 16; i++) {
		snprintf(key, sizeof(key), "N%d", i);
		assert_int_equal(sink(f, key, 1, &r), RELAY_OK);
	}
	assert_int_equal(sink(f, "late", 1, &r), RELAY_E_SERVERS_FULL);
	assert_string_equal(relay_status_limit(RELAY_E_SERVERS_FULL), "max_servers");

	/* max_responses 4; overwriting an unread one always works */
	for (i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "C%d", i);
		assert_int_equal(source(f, key, "r"), RELAY_OK);
	}
	assert_int_equal(source(f, "C9", "r"), RELAY_E_RESPONSES_FULL);
	assert_int_equal(source(f, "C0", "r2"), RELAY_OK);
	assert_true(metric(f, "tokenplace_relay_replaced_total{kind=\"response\"}") == 1);
	assert_string_equal(relay_status_limit(RELAY_E_RESPONSES_FULL), "max_responses");
	assert_string_equal(relay_status_limit(RELAY_E_CHUNKS_FULL), "max_stream_chunks");
	assert_string_equal(relay_status_limit(RELAY_E_RATE_LIMITED), "faucet_rate_limit");
	assert_null(relay_status_limit(RELAY_E_NO_RESPONSE));
	assert_null(relay_status_limit(RELAY_OK));
}

static void
test_response_ttl(void **state)
{
	struct fixture *f = *state;
	struct relay_blob b;

	assert_int_equal(source(f, "C", "r"), RELAY_OK);
	assert_true(metric(f, "tokenplace_relay_pending_responses") == 1);
	advance(f, 600000);
	assert_int_equal(retrieve(f, "C", &b), RELAY_OK);
	relay_blob_free(&b);
	assert_int_equal(source(f, "C", "r"), RELAY_OK);
	advance(f, 600001);
	assert_int_equal(retrieve(f, "C", &b), RELAY_E_NO_RESPONSE);
	assert_true(metric(f, "tokenplace_relay_expired_total{kind=\"response\"}") == 1);
	assert_true(metric(f, "tokenplace_relay_pending_responses") == 0);
}

static void
test_streams_through_broker(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	struct relay_drain_result d;
	struct tp_client_request cr = { S("C") };
	struct tp_stream_source_request ss;
	cJSON *chunk = cJSON_Parse("{\"iv\":\"v\",\"ciphertext\":\"x\"}");
	char sid[RELAY_SESSION_ID_LEN + 1];
	int i;

	assert_non_null(chunk);
	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	assert_int_equal(faucet(f, "S", "c", "C", true), RELAY_OK);
	assert_int_equal(relay_broker_stream_retrieve(f->b, &cr, &d), RELAY_E_NO_STREAM);
	assert_int_equal(sink(f, "S", 2, &r), RELAY_OK);
	assert_int_equal(r.n, 1);
	assert_true(r.jobs[0].stream);
	memcpy(sid, r.jobs[0].session_id, sizeof(sid));
	relay_poll_result_free(&r);
	assert_true(metric(f, "tokenplace_relay_stream_sessions") == 1);

	ss = (struct tp_stream_source_request){ S(sid), chunk, false };
	for (i = 0; i < 3; i++)
		assert_int_equal(relay_broker_stream_source(f->b, &ss), RELAY_OK);
	assert_int_equal(relay_broker_stream_source(f->b, &ss), RELAY_E_CHUNKS_FULL);
	assert_true(metric(f, "tokenplace_relay_stream_chunks") == 3);
	assert_int_equal(relay_broker_stream_retrieve(f->b, &cr, &d), RELAY_OK);
	assert_int_equal(d.n, 3);
	expect_blob(d.chunks[0].data, d.chunks[0].len,
	    "{\"ciphertext\":\"x\",\"iv\":\"v\"}");
	assert_false(d.final);
	assert_string_equal(d.session_id, sid);
	relay_drain_result_free(&d);
	ss.final = true;
	assert_int_equal(relay_broker_stream_source(f->b, &ss), RELAY_OK);
	assert_int_equal(relay_broker_stream_retrieve(f->b, &cr, &d), RELAY_OK);
	assert_true(d.final);
	relay_drain_result_free(&d);
	assert_int_equal(relay_broker_stream_retrieve(f->b, &cr, &d), RELAY_E_NO_STREAM);
	ss.session_id = S("unknown");
	assert_int_equal(relay_broker_stream_source(f->b, &ss), RELAY_E_UNKNOWN_SESSION);

	/* an idle session expires after stream_session_ttl (60 s) */
	assert_int_equal(faucet(f, "S", "c", "C", true), RELAY_OK);
	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	relay_poll_result_free(&r);
	advance(f, 60001);
	assert_int_equal(relay_broker_stream_retrieve(f->b, &cr, &d), RELAY_E_NO_STREAM);
	assert_true(metric(f, "tokenplace_relay_expired_total{kind=\"stream_session\"}") == 1);
	cJSON_Delete(chunk);
}

static void
test_session_limit_keeps_job_queued(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	char client[8];
	int i;

	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	for (i = 0; i < 5; i++) {
		snprintf(client, sizeof(client), "C%d", i);
		assert_int_equal(faucet(f, "S", "c", client, true), RELAY_OK);
	}
	assert_int_equal(sink(f, "S", 8, &r), RELAY_OK);
	assert_int_equal(r.n, 4);
	assert_true(r.session_limited);
	relay_poll_result_free(&r);
	assert_true(metric(f, "tokenplace_relay_queued_requests") == 1);
}

static void
test_unregister(void **state)
{
	struct fixture *f = *state;
	struct relay_poll_result r;
	struct tp_unregister_request ur = { S("S") };
	bool removed;

	assert_int_equal(sink(f, "S", 1, &r), RELAY_OK);
	assert_int_equal(faucet(f, "S", "c", "C", false), RELAY_OK);
	assert_int_equal(relay_broker_unregister(f->b, &ur, &removed), RELAY_OK);
	assert_true(removed);
	assert_int_equal(relay_broker_unregister(f->b, &ur, &removed), RELAY_OK);
	assert_false(removed);
	assert_int_equal(faucet(f, "S", "c", "C", false), RELAY_E_UNKNOWN_SERVER);
	assert_true(metric(f, "tokenplace_relay_dropped_requests_total") == 1);
}

static void
test_tokens(void **state)
{
	struct fixture *f = *state;

	assert_true(relay_broker_node_authorized(f->b, NULL));
	assert_true(relay_broker_node_authorized(f->b, "anything"));
	f->s.server_token = "  s3cret\n";
	f->s.server_tokens = "alpha, beta\ngamma,,";
	start(f);
	assert_false(relay_broker_node_authorized(f->b, NULL));
	assert_false(relay_broker_node_authorized(f->b, ""));
	assert_false(relay_broker_node_authorized(f->b, "s3cre"));
	assert_false(relay_broker_node_authorized(f->b, "s3cret2"));
	assert_false(relay_broker_node_authorized(f->b, "S3CRET"));
	assert_true(relay_broker_node_authorized(f->b, "s3cret"));
	assert_true(relay_broker_node_authorized(f->b, " s3cret\t"));
	assert_true(relay_broker_node_authorized(f->b, "alpha"));
	assert_true(relay_broker_node_authorized(f->b, "beta"));
	assert_true(relay_broker_node_authorized(f->b, "gamma"));
	assert_false(relay_broker_node_authorized(f->b, "alpha, beta"));
}

static void
test_faucet_rate_limit(void **state)
{
	struct fixture *f = *state;
	int64_t wait;

	/* off by default */
	for (int i = 0; i < 100; i++)
		assert_int_equal(relay_broker_faucet_admit(f->b, "10.0.0.1", NULL,
		    &wait), RELAY_OK);
	f->s.faucet_rate_limit = 2;
	f->s.faucet_rate_window_s = 60;
	f->s.trusted_proxies = "10.1.0.0/16, 192.168.7.7";
	start(f);
	atomic_store(&f->now, 60000 * 100 + 15000);	/* 15 s into a window */
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.0.0.1", NULL, &wait), RELAY_OK);
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.0.0.1", NULL, &wait), RELAY_OK);
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.0.0.1", NULL, &wait),
	    RELAY_E_RATE_LIMITED);
	assert_int_equal(wait, 45);
	/* an untrusted peer cannot pick its identity with X-Forwarded-For */
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.0.0.1", "1.2.3.4", &wait),
	    RELAY_E_RATE_LIMITED);
	/* through a trusted proxy, each forwarded client has its own budget */
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.1.2.3", "10.0.0.9", &wait), RELAY_OK);
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.1.2.3", "10.0.0.9", &wait), RELAY_OK);
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.1.2.3", "10.0.0.9", &wait),
	    RELAY_E_RATE_LIMITED);
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.1.2.3",
	    "6.6.6.6, 10.0.0.8, 192.168.7.7", &wait), RELAY_OK);
	/* the next window starts fresh */
	advance(f, 45000);
	assert_int_equal(relay_broker_faucet_admit(f->b, "10.0.0.1", NULL, &wait), RELAY_OK);
}

static void
test_bad_trusted_proxies_refused(void **state)
{
	struct fixture *f = *state;
	struct relay_redis *redis;
	struct relay_store *st = new_store(&redis);

	f->s.trusted_proxies = "10.0.0.0/33";
	assert_null(relay_broker_new(&f->s, st, NULL));
	relay_store_free(st);
	relay_redis_free(redis);
}

/* ---- concurrency ---------------------------------------------------------- */

#define NSERVERS 8
#define NPROD 8
#define NCONS 8
#define PER_PROD 2000
#define TOTAL (NPROD * PER_PROD)

struct mt {
	struct relay_broker *b;
	_Atomic int received;
	_Atomic int errors;
	_Atomic unsigned char seen[TOTAL];
};

struct mt_arg {
	struct mt *mt;
	int id;
};

static void *
producer(void *p)
{
	struct mt_arg *a = p;
	char ch[32], key[8];
	struct tp_faucet_request fr;
	int i;

	for (i = 0; i < PER_PROD; i++) {
		snprintf(ch, sizeof(ch), "%d:%d", a->id, i);
		snprintf(key, sizeof(key), "S%d", (a->id + i) % NSERVERS);
		fr = (struct tp_faucet_request){ S(key), S(ch), S("k"), S("i"),
		    S("C"), false };
		if (relay_broker_faucet(a->mt->b, &fr) != RELAY_OK)
			atomic_fetch_add(&a->mt->errors, 1);
	}
	return NULL;
}

static void *
consumer(void *p)
{
	struct mt_arg *a = p;
	struct mt *mt = a->mt;
	struct relay_poll_result r;
	struct tp_sink_request sr;
	int last[NPROD];
	char key[8], buf[128];
	const char *q;
	int prod, seq;
	size_t i;

	for (i = 0; i < NPROD; i++)
		last[i] = -1;
	snprintf(key, sizeof(key), "S%d", a->id);
	sr = (struct tp_sink_request){ S(key), 3, true };
	while (atomic_load(&mt->received) < TOTAL && atomic_load(&mt->errors) == 0) {
		if (relay_broker_sink(mt->b, &sr, &r) != RELAY_OK) {
			atomic_fetch_add(&mt->errors, 1);
			break;
		}
		if (r.n == 0)
			sched_yield();
		for (i = 0; i < r.n; i++) {
			if (r.jobs[i].blob.len >= sizeof(buf)) {
				atomic_fetch_add(&mt->errors, 1);
				continue;
			}
			memcpy(buf, r.jobs[i].blob.data, r.jobs[i].blob.len);
			buf[r.jobs[i].blob.len] = '\0';
			q = strstr(buf, "\"chat_history\":\"");
			if (q == NULL || sscanf(q + 16, "%d:%d", &prod, &seq) != 2 ||
			    prod < 0 || prod >= NPROD || seq < 0 || seq >= PER_PROD ||
			    (prod + seq) % NSERVERS != a->id || seq <= last[prod]) {
				atomic_fetch_add(&mt->errors, 1);
				continue;
			}
			last[prod] = seq;
			atomic_fetch_add(&mt->seen[prod * PER_PROD + seq], 1);
			atomic_fetch_add(&mt->received, 1);
		}
		relay_poll_result_free(&r);
	}
	return NULL;
}

static void
test_mt_producers_consumers(void **state)
{
	struct fixture *f = *state;
	struct mt *mt = calloc(1, sizeof(*mt));
	pthread_t pt[NPROD], ct[NCONS];
	struct mt_arg pa[NPROD], ca[NCONS];
	struct relay_poll_result r;
	char key[8];
	int i;

	assert_non_null(mt);
	f->s.queue_per_server = TOTAL;
	f->s.queue_total = TOTAL;
	start(f);
	mt->b = f->b;
	for (i = 0; i < NSERVERS; i++) {
		snprintf(key, sizeof(key), "S%d", i);
		assert_int_equal(sink(f, key, 1, &r), RELAY_OK);
	}
	for (i = 0; i < NCONS; i++) {
		ca[i] = (struct mt_arg){ mt, i };
		assert_int_equal(pthread_create(&ct[i], NULL, consumer, &ca[i]), 0);
	}
	for (i = 0; i < NPROD; i++) {
		pa[i] = (struct mt_arg){ mt, i };
		assert_int_equal(pthread_create(&pt[i], NULL, producer, &pa[i]), 0);
	}
	for (i = 0; i < NPROD; i++)
		pthread_join(pt[i], NULL);
	for (i = 0; i < NCONS; i++)
		pthread_join(ct[i], NULL);
	assert_int_equal(atomic_load(&mt->errors), 0);
	assert_int_equal(atomic_load(&mt->received), TOTAL);
	for (i = 0; i < TOTAL; i++)
		assert_int_equal(atomic_load(&mt->seen[i]), 1);
	assert_true(metric(f, "tokenplace_relay_queued_requests") == 0);
	free(mt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_legacy_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_capped_by_queue_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_reply_bytes_capped_by_body_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_and_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streams_through_broker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_limit_keeps_job_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faucet_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_trusted_proxies_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mt_producers_consumers, setup, teardown),
	};

	/* Registrations and evictions log at INFO; keep the test output short. */
	tp_log_init("test_relay_broker", TP_LOG_CRITICAL, 1);
	int failed;

	failed = cmocka_run_group_tests_name("memory", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("redis", tests, test_redis_group_setup,
	    test_redis_group_teardown);
	return failed;
}
