/*
 * test_relay_store.c -- every relay_store, one suite run twice: against
 * the embedded memory store and against the Redis store (on a
 * redis-server this test starts, tests/unit/redis_server.c), there once
 * per key layout (schema 1 and 2, docs/store-redis.md). FIFO per server,
 * at-most-once delivery, batches, stream sessions, eviction, every bound,
 * TTL expiry (time is passed in, so the clock is the test's), and a
 * multi-threaded run where nothing may be lost, duplicated or reordered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "redis/redis.h"
#include "redis_server.h"
#include "store/store.h"

static const struct relay_store_limits base_lim = {
	.server_ttl_ms = 30000,
	.response_ttl_ms = 600000,
	.session_ttl_ms = 600000,
	.max_servers = 16,
	.queue_per_server = 100,
	.queue_total = 1000,
	.max_responses = 100,
	.max_stream_sessions = 100,
	.max_stream_chunks = 100,
};

static struct relay_redis *adapter;	/* of the running test (Redis group) */
static const char *schema = "1";	/* the version the Redis fixture stores */

/* Writes the schema version the running group tests under the prefix. */
static int
store_schema(struct relay_redis *r)
{
	const char *key = relay_redis_prefix(r);
	size_t keylen = strlen(key), vlen = strlen(schema);
	struct relay_redis_reply rep;
	int id;

	id = relay_redis_script(r, "set_schema", "#!lua\n"
	    "return redis.call('SET', KEYS[1] .. 'schema', ARGV[1])\n");
	if (id < 0 || relay_redis_eval(r, id, 1, &key, &keylen, 1, &schema,
	    &vlen, &rep) != RELAY_REDIS_OK)
		return -1;
	relay_redis_reply_free(&rep);
	return 0;
}

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

static int
setup(void **state)
{
	struct relay_redis_config cfg;
	char err[256];

	if (!test_redis_active) {
		*state = relay_store_memory_new();
		return *state == NULL ? -1 : 0;
	}
	/* A fresh prefix per test: the tests never see each other's keys. */
	test_redis_config(&test_redis_group, &cfg);
	adapter = relay_redis_new(&cfg, NULL, err, sizeof(err));
	if (adapter == NULL) {
		fprintf(stderr, "relay_redis_new: %s\n", err);
		return -1;
	}
	if (store_schema(adapter) != 0)
		return -1;
	*state = relay_store_redis_new(adapter);
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	relay_store_free(*state);
	relay_redis_free(adapter);
	adapter = NULL;
	return 0;
}

static enum relay_status
poll_s(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t max, struct relay_poll_result *out,
    struct relay_store_effects *fx)
{
	return s->ops->poll(s, lim, now, key, strlen(key), max, SIZE_MAX, out, fx);
}

static enum relay_status
enq(struct relay_store *s, const struct relay_store_limits *lim, int64_t now,
    const char *key, const char *data)
{
	struct relay_job_in in = { data, strlen(data), false, NULL, 0 };

	return s->ops->enqueue(s, lim, now, key, strlen(key), &in, NULL);
}

static enum relay_status
enq_stream(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, const char *data, const char *owner)
{
	struct relay_job_in in = { data, strlen(data), true, owner, strlen(owner) };

	return s->ops->enqueue(s, lim, now, key, strlen(key), &in, NULL);
}

static void
expect_job(const struct relay_job *j, const char *data)
{
	assert_int_equal(j->blob.len, strlen(data));
	assert_memory_equal(j->blob.data, data, strlen(data));
}

static void
test_fifo_per_server_and_at_most_once(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_true(r.registered);
	assert_int_equal(r.n, 0);
	assert_int_equal(poll_s(s, &base_lim, 0, "B", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 1, "A", "a1"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 1, "B", "b1"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 1, "A", "a2"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 1, "A", "a3"), RELAY_OK);

	assert_int_equal(poll_s(s, &base_lim, 2, "A", 1, &r, NULL), RELAY_OK);
	assert_false(r.registered);
	assert_int_equal(r.n, 1);
	expect_job(&r.jobs[0], "a1");
	assert_false(r.jobs[0].stream);
	assert_string_equal(r.jobs[0].session_id, "");
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(s, &base_lim, 2, "B", 5, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 1);
	expect_job(&r.jobs[0], "b1");
	relay_poll_result_free(&r);
	/* batch: up to N in order, then the queue is empty */
	assert_int_equal(poll_s(s, &base_lim, 3, "A", 5, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 2);
	expect_job(&r.jobs[0], "a2");
	expect_job(&r.jobs[1], "a3");
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(s, &base_lim, 3, "A", 5, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 0);
	assert_null(r.jobs);
	/* unknown server */
	assert_int_equal(enq(s, &base_lim, 3, "C", "x"), RELAY_E_UNKNOWN_SERVER);
}

static void
test_poll_bytes_cap(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "0123456789"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "01234"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "01234"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "0"), RELAY_OK);
	/* the first job always goes, even when larger than the cap */
	assert_int_equal(s->ops->poll(s, &base_lim, 0, "A", 1, 10, 4, &r, NULL),
	    RELAY_OK);
	assert_int_equal(r.n, 1);
	expect_job(&r.jobs[0], "0123456789");
	relay_poll_result_free(&r);
	/* 5 + 5 fit in 10; the next one would not */
	assert_int_equal(s->ops->poll(s, &base_lim, 0, "A", 1, 10, 10, &r, NULL),
	    RELAY_OK);
	assert_int_equal(r.n, 2);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->poll(s, &base_lim, 0, "A", 1, 10, 10, &r, NULL),
	    RELAY_OK);
	assert_int_equal(r.n, 1);
	expect_job(&r.jobs[0], "0");
	relay_poll_result_free(&r);
}

static void
test_keys_are_exact_bytes(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_blob b;

	/* Keys that differ only in a trailing byte or contain NUL stay apart. */
	assert_int_equal(s->ops->poll(s, &base_lim, 0, "K\0x", 3, 1, SIZE_MAX, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "K", "x"), RELAY_E_UNKNOWN_SERVER);
	assert_int_equal(s->ops->pick_server(s, &base_lim, 0, &b, NULL), RELAY_OK);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "K\0x", 3);
	relay_blob_free(&b);
}

static void
test_pick_server_uniform_and_live_only(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_store_effects fx = { 0 };
	struct relay_blob b;
	int counts[4] = { 0 };
	int i;
	char key[2] = "0";

	assert_int_equal(s->ops->pick_server(s, &base_lim, 0, &b, NULL),
	    RELAY_E_NO_SERVERS);
	for (i = 0; i < 4; i++) {
		key[0] = (char)('0' + i);
		assert_int_equal(poll_s(s, &base_lim, 0, key, 1, &r, NULL), RELAY_OK);
	}
	for (i = 0; i < 4000; i++) {
		assert_int_equal(s->ops->pick_server(s, &base_lim, 0, &b, NULL), RELAY_OK);
		assert_int_equal(b.len, 1);
		counts[b.data[0] - '0']++;
		relay_blob_free(&b);
	}
	/* expected 1000 each, sd ~27: 800 is more than 7 sd away */
	for (i = 0; i < 4; i++)
		assert_true(counts[i] > 800);

	/* "0" and "1" keep polling; "2" and "3" go silent and are evicted */
	assert_int_equal(poll_s(s, &base_lim, 20000, "0", 1, &r, NULL), RELAY_OK);
	assert_int_equal(poll_s(s, &base_lim, 20000, "1", 1, &r, NULL), RELAY_OK);
	for (i = 0; i < 200; i++) {
		assert_int_equal(s->ops->pick_server(s, &base_lim, 30001, &b, &fx),
		    RELAY_OK);
		assert_true(b.data[0] == '0' || b.data[0] == '1');
		relay_blob_free(&b);
	}
	assert_int_equal(fx.evicted_servers, 2);
	assert_int_equal(s->ops->pick_server(s, &base_lim, 50001, &b, &fx),
	    RELAY_E_NO_SERVERS);
	assert_int_equal(fx.evicted_servers, 4);
}

static void
test_eviction_drops_queue_and_reregisters_empty(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_store_effects fx = { 0 };
	struct relay_store_stats st;

	assert_int_equal(poll_s(s, &base_lim, 1000, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 1000, "A", "j1"), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 1000, "A", "j2"), RELAY_OK);
	/* exactly server_ttl of silence is still alive */
	assert_int_equal(enq(s, &base_lim, 31000, "A", "j3"), RELAY_OK);
	assert_int_equal(s->ops->stats(s, &base_lim, 31000, &st, &fx), RELAY_OK);
	assert_int_equal(st.servers, 1);
	assert_int_equal(st.queued, 3);
	/* one millisecond more and it is gone, with its jobs */
	assert_int_equal(s->ops->stats(s, &base_lim, 31001, &st, &fx), RELAY_OK);
	assert_int_equal(st.servers, 0);
	assert_int_equal(st.queued, 0);
	assert_int_equal(fx.evicted_servers, 1);
	assert_int_equal(fx.dropped_jobs, 3);
	assert_int_equal(enq(s, &base_lim, 31001, "A", "j4"), RELAY_E_UNKNOWN_SERVER);
	assert_int_equal(poll_s(s, &base_lim, 31002, "A", 4, &r, NULL), RELAY_OK);
	assert_true(r.registered);
	assert_int_equal(r.n, 0);
}

/*
 * A node that took work is busy (a legacy node does not poll while it
 * infers): it gets server_busy_ttl_ms of silence, and nodes that expire
 * sooner are still evicted on time around it.
 */
static void
test_busy_node_outlives_server_ttl(void **state)
{
	struct relay_store *s = *state;
	struct relay_store_limits lim = base_lim;
	struct relay_poll_result r;
	struct relay_store_stats st;

	lim.server_busy_ttl_ms = 120000;
	assert_int_equal(poll_s(s, &lim, 0, "B", 1, &r, NULL), RELAY_OK);
	assert_int_equal(poll_s(s, &lim, 500, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &lim, 600, "A", "j1"), RELAY_OK);
	assert_int_equal(enq(s, &lim, 600, "A", "j2"), RELAY_OK);
	assert_int_equal(poll_s(s, &lim, 1000, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 1);
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(s, &lim, 2000, "C", 1, &r, NULL), RELAY_OK);
	/* B (30 s) and C (32 s) expire before busy A (121 s) */
	assert_int_equal(s->ops->stats(s, &lim, 30001, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 2);
	assert_int_equal(s->ops->stats(s, &lim, 32001, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 1);
	/* A keeps its queued job through a long inference */
	assert_int_equal(s->ops->stats(s, &lim, 121000, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 1);
	assert_int_equal(st.queued, 1);
	/* an empty poll brings A back to the normal lease */
	assert_int_equal(poll_s(s, &lim, 121000, "A", 0, &r, NULL), RELAY_OK);
	assert_int_equal(s->ops->stats(s, &lim, 151000, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 1);
	assert_int_equal(s->ops->stats(s, &lim, 151001, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 0);
}

static void
test_enqueue_eviction_is_checked_at_call_time(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_store_effects fx = { 0 };

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(s->ops->enqueue(s, &base_lim, 30001, "A", 1,
	    &(struct relay_job_in){ "x", 1, false, NULL, 0 }, &fx),
	    RELAY_E_UNKNOWN_SERVER);
	assert_int_equal(fx.evicted_servers, 1);
}

static void
test_queue_bounds(void **state)
{
	struct relay_store *s = *state;
	struct relay_store_limits lim = base_lim;
	struct relay_poll_result r;
	int i;

	lim.queue_per_server = 3;
	lim.queue_total = 5;
	assert_int_equal(poll_s(s, &lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(poll_s(s, &lim, 0, "B", 1, &r, NULL), RELAY_OK);
	for (i = 0; i < 3; i++)
		assert_int_equal(enq(s, &lim, 0, "A", "a"), RELAY_OK);
	assert_int_equal(enq(s, &lim, 0, "A", "a"), RELAY_E_QUEUE_FULL);
	assert_int_equal(enq(s, &lim, 0, "B", "b"), RELAY_OK);
	assert_int_equal(enq(s, &lim, 0, "B", "b"), RELAY_OK);
	assert_int_equal(enq(s, &lim, 0, "B", "b"), RELAY_E_QUEUE_TOTAL);
	/* draining makes room again */
	assert_int_equal(poll_s(s, &lim, 0, "A", 1, &r, NULL), RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(enq(s, &lim, 0, "B", "b"), RELAY_OK);
}

static void
test_max_servers(void **state)
{
	struct relay_store *s = *state;
	struct relay_store_limits lim = base_lim;
	struct relay_poll_result r;

	lim.max_servers = 2;
	assert_int_equal(poll_s(s, &lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(poll_s(s, &lim, 0, "B", 1, &r, NULL), RELAY_OK);
	assert_int_equal(poll_s(s, &lim, 0, "C", 1, &r, NULL), RELAY_E_SERVERS_FULL);
	/* known servers keep polling */
	assert_int_equal(poll_s(s, &lim, 10, "A", 1, &r, NULL), RELAY_OK);
	/* a stale one frees its place */
	assert_int_equal(poll_s(s, &lim, 30005, "C", 1, &r, NULL), RELAY_OK);
	assert_true(r.registered);
}

static void
test_responses_take_once_overwrite_ttl_and_bound(void **state)
{
	struct relay_store *s = *state;
	struct relay_store_limits lim = base_lim;
	struct relay_store_effects fx = { 0 };
	struct relay_blob b;

	lim.max_responses = 2;
	lim.response_ttl_ms = 1000;
	assert_int_equal(s->ops->take_response(s, &lim, 0, "C", 1, &b, NULL),
	    RELAY_E_NO_RESPONSE);
	assert_int_equal(s->ops->put_response(s, &lim, 0, "C", 1, "r1", 2, &fx), RELAY_OK);
	assert_int_equal(s->ops->put_response(s, &lim, 0, "C", 1, "r2", 2, &fx), RELAY_OK);
	assert_int_equal(fx.replaced_responses, 1);
	assert_int_equal(s->ops->put_response(s, &lim, 0, "D", 1, "d", 1, &fx), RELAY_OK);
	assert_int_equal(s->ops->put_response(s, &lim, 0, "E", 1, "e", 1, &fx),
	    RELAY_E_RESPONSES_FULL);
	/* overwriting needs no new slot even when full */
	assert_int_equal(s->ops->put_response(s, &lim, 500, "D", 1, "d2", 2, &fx), RELAY_OK);
	assert_int_equal(s->ops->take_response(s, &lim, 1, "C", 1, &b, NULL), RELAY_OK);
	assert_int_equal(b.len, 2);
	assert_memory_equal(b.data, "r2", 2);
	relay_blob_free(&b);
	assert_int_equal(s->ops->take_response(s, &lim, 1, "C", 1, &b, NULL),
	    RELAY_E_NO_RESPONSE);
	/* TTL counts from the last write: D was rewritten at 500 */
	assert_int_equal(s->ops->take_response(s, &lim, 1501, "D", 1, &b, &fx),
	    RELAY_E_NO_RESPONSE);
	assert_int_equal(fx.expired_responses, 1);
	assert_int_equal(s->ops->put_response(s, &lim, 1501, "E", 1, "e", 1, &fx), RELAY_OK);
	assert_int_equal(s->ops->take_response(s, &lim, 2501, "E", 1, &b, &fx), RELAY_OK);
	relay_blob_free(&b);
}

static bool
is_b64url(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

static void
test_stream_sessions(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_drain_result d;
	struct relay_store_effects fx = { 0 };
	char sid[RELAY_SESSION_ID_LEN + 1], sid2[RELAY_SESSION_ID_LEN + 1];

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 0, "C", 1, &d, NULL),
	    RELAY_E_NO_STREAM);
	assert_int_equal(enq_stream(s, &base_lim, 0, "A", "job", "C"), RELAY_OK);
	/* no session until the node takes the job */
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 0, "C", 1, &d, NULL),
	    RELAY_E_NO_STREAM);
	assert_int_equal(poll_s(s, &base_lim, 1, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 1);
	assert_true(r.jobs[0].stream);
	expect_job(&r.jobs[0], "job");
	assert_int_equal(strlen(r.jobs[0].session_id), RELAY_SESSION_ID_LEN);
	assert_true(is_b64url(r.jobs[0].session_id, RELAY_SESSION_ID_LEN));
	memcpy(sid, r.jobs[0].session_id, sizeof(sid));
	relay_poll_result_free(&r);

	/* empty drain of an open session */
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 2, "C", 1, &d, NULL), RELAY_OK);
	assert_int_equal(d.n, 0);
	assert_false(d.final);
	assert_string_equal(d.session_id, sid);
	relay_drain_result_free(&d);

	assert_int_equal(s->ops->stream_append(s, &base_lim, 3, sid,
	    RELAY_SESSION_ID_LEN, "\"a\"", 3, false, NULL), RELAY_OK);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 3, sid,
	    RELAY_SESSION_ID_LEN, "\"b\"", 3, false, NULL), RELAY_OK);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 3, "nope", 4, "1", 1,
	    false, NULL), RELAY_E_UNKNOWN_SESSION);
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 4, "C", 1, &d, NULL), RELAY_OK);
	assert_int_equal(d.n, 2);
	assert_memory_equal(d.chunks[0].data, "\"a\"", 3);
	assert_memory_equal(d.chunks[1].data, "\"b\"", 3);
	assert_false(d.final);
	relay_drain_result_free(&d);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 5, sid,
	    RELAY_SESSION_ID_LEN, "\"c\"", 3, true, NULL), RELAY_OK);
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 6, "C", 1, &d, NULL), RELAY_OK);
	assert_int_equal(d.n, 1);
	assert_true(d.final);
	relay_drain_result_free(&d);
	/* closed and drained: gone */
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 7, "C", 1, &d, NULL),
	    RELAY_E_NO_STREAM);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 7, sid,
	    RELAY_SESSION_ID_LEN, "1", 1, false, NULL), RELAY_E_UNKNOWN_SESSION);

	/* a second stream for the same client replaces the first session */
	assert_int_equal(enq_stream(s, &base_lim, 8, "A", "j1", "C"), RELAY_OK);
	assert_int_equal(enq_stream(s, &base_lim, 8, "A", "j2", "C"), RELAY_OK);
	assert_int_equal(poll_s(s, &base_lim, 9, "A", 1, &r, &fx), RELAY_OK);
	memcpy(sid, r.jobs[0].session_id, sizeof(sid));
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 9, sid,
	    RELAY_SESSION_ID_LEN, "1", 1, false, NULL), RELAY_OK);
	assert_int_equal(poll_s(s, &base_lim, 10, "A", 1, &r, &fx), RELAY_OK);
	memcpy(sid2, r.jobs[0].session_id, sizeof(sid2));
	relay_poll_result_free(&r);
	assert_string_not_equal(sid, sid2);
	assert_int_equal(fx.replaced_sessions, 1);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 10, sid,
	    RELAY_SESSION_ID_LEN, "1", 1, false, NULL), RELAY_E_UNKNOWN_SESSION);
	assert_int_equal(s->ops->stream_drain(s, &base_lim, 11, "C", 1, &d, NULL), RELAY_OK);
	assert_string_equal(d.session_id, sid2);
	assert_int_equal(d.n, 0);
	relay_drain_result_free(&d);
}

static void
test_stream_limits_and_idle_ttl(void **state)
{
	struct relay_store *s = *state;
	struct relay_store_limits lim = base_lim;
	struct relay_poll_result r;
	struct relay_drain_result d;
	struct relay_store_effects fx = { 0 };
	struct relay_store_stats st;
	char sid[RELAY_SESSION_ID_LEN + 1];

	lim.max_stream_sessions = 1;
	lim.max_stream_chunks = 2;
	lim.session_ttl_ms = 1000;
	assert_int_equal(poll_s(s, &lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq_stream(s, &lim, 0, "A", "s1", "C1"), RELAY_OK);
	assert_int_equal(enq_stream(s, &lim, 0, "A", "s2", "C2"), RELAY_OK);
	assert_int_equal(enq(s, &lim, 0, "A", "plain"), RELAY_OK);
	/* batch of 3: s1 gets the only session, s2 must wait, FIFO holds */
	assert_int_equal(poll_s(s, &lim, 1, "A", 3, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 1);
	assert_true(r.session_limited);
	expect_job(&r.jobs[0], "s1");
	memcpy(sid, r.jobs[0].session_id, sizeof(sid));
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(s, &lim, 2, "A", 3, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 0);
	assert_true(r.session_limited);

	assert_int_equal(s->ops->stream_append(s, &lim, 500, sid,
	    RELAY_SESSION_ID_LEN, "1", 1, false, NULL), RELAY_OK);
	assert_int_equal(s->ops->stream_append(s, &lim, 500, sid,
	    RELAY_SESSION_ID_LEN, "2", 1, false, NULL), RELAY_OK);
	assert_int_equal(s->ops->stream_append(s, &lim, 500, sid,
	    RELAY_SESSION_ID_LEN, "3", 1, true, NULL), RELAY_E_CHUNKS_FULL);
	assert_int_equal(s->ops->stats(s, &lim, 500, &st, NULL), RELAY_OK);
	assert_int_equal(st.sessions, 1);
	assert_int_equal(st.chunks, 2);
	/* activity at 500 keeps it until 1500 */
	assert_int_equal(s->ops->stream_drain(s, &lim, 1400, "C1", 2, &d, NULL), RELAY_OK);
	assert_int_equal(d.n, 2);
	relay_drain_result_free(&d);
	/* idle past the TTL: expired, which frees the session slot for s2 */
	assert_int_equal(poll_s(s, &lim, 2401, "A", 3, &r, &fx), RELAY_OK);
	assert_int_equal(fx.expired_sessions, 1);
	assert_int_equal(r.n, 2);
	expect_job(&r.jobs[0], "s2");
	expect_job(&r.jobs[1], "plain");
	assert_false(r.session_limited);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->stream_drain(s, &lim, 2401, "C1", 2, &d, NULL),
	    RELAY_E_NO_STREAM);
}

static void
test_unregister_drops_queue(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_store_effects fx = { 0 };
	struct relay_blob b;
	bool removed;

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "x"), RELAY_OK);
	assert_int_equal(s->ops->unregister(s, &base_lim, 0, "A", 1, &removed, &fx),
	    RELAY_OK);
	assert_true(removed);
	assert_int_equal(fx.dropped_jobs, 1);
	assert_int_equal(s->ops->unregister(s, &base_lim, 0, "A", 1, &removed, &fx),
	    RELAY_OK);
	assert_false(removed);
	assert_int_equal(s->ops->pick_server(s, &base_lim, 0, &b, NULL),
	    RELAY_E_NO_SERVERS);
}

static void
test_sweep_removes_everything_expired(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_store_effects fx = { 0 };
	struct relay_store_stats st;

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq_stream(s, &base_lim, 0, "A", "s", "C"), RELAY_OK);
	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->put_response(s, &base_lim, 0, "C", 1, "r", 1, NULL),
	    RELAY_OK);
	assert_int_equal(s->ops->sweep(s, &base_lim, 600001, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 1);
	assert_int_equal(fx.expired_responses, 1);
	assert_int_equal(fx.expired_sessions, 1);
	assert_int_equal(s->ops->stats(s, &base_lim, 600001, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers + st.queued + st.responses + st.sessions + st.chunks, 0);
}

/* ---- concurrency ---------------------------------------------------------- */

#define NSERVERS 8
#define NPROD 8
#define NCONS 8
#define PER_PROD 4000
#define TOTAL (NPROD * PER_PROD)

struct mt {
	struct relay_store *s;
	struct relay_store_limits lim;
	bool dedicated;			/* consumer c polls only server c */
	_Atomic int received;
	_Atomic unsigned char seen[TOTAL];	/* delivery count per job */
	_Atomic int errors;
};

struct mt_arg {
	struct mt *mt;
	int id;
};

static void *
producer(void *p)
{
	struct mt_arg *a = p;
	struct mt *mt = a->mt;
	char data[32], key[8];
	struct relay_job_in in;
	int i, n;

	for (i = 0; i < PER_PROD; i++) {
		n = snprintf(data, sizeof(data), "%d:%d", a->id, i);
		snprintf(key, sizeof(key), "S%d", (a->id + i) % NSERVERS);
		in = (struct relay_job_in){ data, (size_t)n, false, NULL, 0 };
		if (mt->s->ops->enqueue(mt->s, &mt->lim, 0, key, strlen(key), &in,
		    NULL) != RELAY_OK)
			atomic_fetch_add(&mt->errors, 1);
	}
	return NULL;
}

static void *
consumer(void *p)
{
	struct mt_arg *a = p;
	struct mt *mt = a->mt;
	struct relay_poll_result r;
	/* last sequence seen per (server, producer) by this consumer */
	int last[NSERVERS][NPROD];
	unsigned rnd = (unsigned)a->id * 2654435761u + 1;
	int srv, prod, seq, k;
	size_t i, max;
	char key[8], buf[32];

	for (srv = 0; srv < NSERVERS; srv++)
		for (prod = 0; prod < NPROD; prod++)
			last[srv][prod] = -1;
	while (atomic_load(&mt->received) < TOTAL && atomic_load(&mt->errors) == 0) {
		rnd = rnd * 1103515245u + 12345u;
		srv = mt->dedicated ? a->id : (int)((rnd >> 16) % NSERVERS);
		max = 1 + (rnd >> 8) % 4;
		snprintf(key, sizeof(key), "S%d", srv);
		if (mt->s->ops->poll(mt->s, &mt->lim, 0, key, strlen(key), max,
		    SIZE_MAX, &r, NULL) != RELAY_OK) {
			atomic_fetch_add(&mt->errors, 1);
			break;
		}
		if (r.n == 0)
			sched_yield();
		for (i = 0; i < r.n; i++) {
			memcpy(buf, r.jobs[i].blob.data, r.jobs[i].blob.len);
			buf[r.jobs[i].blob.len] = '\0';
			if (sscanf(buf, "%d:%d", &prod, &seq) != 2 ||
			    (prod + seq) % NSERVERS != srv) {
				atomic_fetch_add(&mt->errors, 1);
				continue;
			}
			/* per producer, a server hands jobs out in order */
			if (seq <= last[srv][prod])
				atomic_fetch_add(&mt->errors, 1);
			last[srv][prod] = seq;
			k = prod * PER_PROD + seq;
			atomic_fetch_add(&mt->seen[k], 1);
			atomic_fetch_add(&mt->received, 1);
		}
		relay_poll_result_free(&r);
	}
	return NULL;
}

static void
run_mt(struct relay_store *s, bool dedicated)
{
	struct mt *mt = calloc(1, sizeof(*mt));
	pthread_t pt[NPROD], ct[NCONS];
	struct mt_arg pa[NPROD], ca[NCONS];
	struct relay_poll_result r;
	struct relay_store_stats st;
	char key[8];
	int i;

	assert_non_null(mt);
	mt->s = s;
	mt->lim = base_lim;
	mt->lim.queue_per_server = TOTAL;
	mt->lim.queue_total = TOTAL;
	mt->dedicated = dedicated;
	for (i = 0; i < NSERVERS; i++) {
		snprintf(key, sizeof(key), "S%d", i);
		assert_int_equal(s->ops->poll(s, &mt->lim, 0, key, strlen(key), 1,
		    SIZE_MAX, &r, NULL), RELAY_OK);
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
	assert_int_equal(s->ops->stats(s, &mt->lim, 0, &st, NULL), RELAY_OK);
	assert_int_equal(st.queued, 0);
	free(mt);
}

static void
test_mt_shared_consumers_lose_and_duplicate_nothing(void **state)
{
	run_mt(*state, false);
}

static void
test_mt_dedicated_consumers_see_fifo(void **state)
{
	run_mt(*state, true);
}

/* list_servers: evicts first, caps the listing, counts every live one. */
static void
test_list_servers(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_server_list l;
	struct relay_store_effects fx = { 0 };
	int seen_a = 0, seen_b = 0;

	assert_int_equal(s->ops->list_servers(s, &base_lim, 0, 10, true, &l,
	    NULL), RELAY_OK);
	assert_int_equal(l.total, 0);
	assert_int_equal(l.n, 0);
	relay_server_list_free(&l);
	assert_int_equal(poll_s(s, &base_lim, 0, "A", 10, &r, NULL), RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(s, &base_lim, 10000, "B", 10, &r, NULL),
	    RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(enq(s, &base_lim, 10000, "B", "job"), RELAY_OK);
	assert_int_equal(s->ops->list_servers(s, &base_lim, 20000, 10, true,
	    &l, NULL), RELAY_OK);
	assert_int_equal(l.total, 2);
	assert_int_equal(l.n, 2);
	for (size_t i = 0; i < l.n; i++) {
		if (strcmp(l.servers[i].key, "A") == 0) {
			seen_a++;
			assert_int_equal(l.servers[i].age_ms, 20000);
			assert_int_equal(l.servers[i].queued, 0);
		} else if (strcmp(l.servers[i].key, "B") == 0) {
			seen_b++;
			assert_int_equal(l.servers[i].age_ms, 10000);
			assert_int_equal(l.servers[i].queued, 1);
		}
		assert_int_equal(l.servers[i].key_len, 1);
	}
	assert_int_equal(seen_a + seen_b, 2);
	relay_server_list_free(&l);
	/* Without keys, and capped: the total stays exact. */
	assert_int_equal(s->ops->list_servers(s, &base_lim, 20000, 1, false,
	    &l, NULL), RELAY_OK);
	assert_int_equal(l.total, 2);
	assert_int_equal(l.n, 1);
	assert_null(l.servers[0].key);
	relay_server_list_free(&l);
	/* A lapses (30 s of silence): it is evicted before the listing. */
	assert_int_equal(s->ops->list_servers(s, &base_lim, 30001, 10, true,
	    &l, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 1);
	assert_int_equal(l.total, 1);
	assert_string_equal(l.servers[0].key, "B");
	relay_server_list_free(&l);
}

/* ---- Redis only: what the memory store has no counterpart for --------- */

/* A second store on the same server and prefix: another replica. */
static struct relay_store *
replica(struct relay_redis **r2)
{
	struct relay_redis_config cfg;
	char err[256];

	test_redis_config(&test_redis_group, &cfg);
	snprintf(cfg.prefix, sizeof(cfg.prefix), "%s",
	    relay_redis_prefix(adapter) + 1);
	cfg.prefix[strlen(cfg.prefix) - 1] = '\0';	/* "{p}" -> "p" */
	*r2 = relay_redis_new(&cfg, NULL, err, sizeof(err));
	assert_non_null(*r2);
	return relay_store_redis_new(*r2);
}

static void
test_redis_replicas_share_state(void **state)
{
	struct relay_store *a = *state, *b;
	struct relay_redis *r2;
	struct relay_poll_result r;
	struct relay_blob blob;

	b = replica(&r2);
	assert_int_equal(poll_s(a, &base_lim, 0, "N", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(b, &base_lim, 1, "N", "job"), RELAY_OK);
	assert_int_equal(b->ops->pick_server(b, &base_lim, 1, &blob, NULL),
	    RELAY_OK);
	assert_memory_equal(blob.data, "N", 1);
	relay_blob_free(&blob);
	assert_int_equal(poll_s(a, &base_lim, 2, "N", 4, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 1);
	expect_job(&r.jobs[0], "job");
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(b, &base_lim, 2, "N", 4, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 0);
	relay_store_free(b);
	relay_redis_free(r2);
}

static void
test_redis_sweep_runs_once_per_interval_cluster_wide(void **state)
{
	struct relay_store *a = *state, *b;
	struct relay_redis *r2;
	struct relay_store_effects fx = { 0 };
	struct relay_poll_result r;

	b = replica(&r2);
	assert_int_equal(poll_s(a, &base_lim, 0, "X", 1, &r, NULL), RELAY_OK);
	assert_int_equal(poll_s(a, &base_lim, 0, "Y", 1, &r, NULL), RELAY_OK);
	assert_int_equal(a->ops->sweep(a, &base_lim, 10, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 0);
	/* Both expired now; B's sweep within A's interval does nothing... */
	assert_int_equal(b->ops->sweep(b, &base_lim, 30005, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 2);
	assert_int_equal(poll_s(a, &base_lim, 30005, "Z", 1, &r, NULL), RELAY_OK);
	assert_int_equal(a->ops->sweep(a, &base_lim, 31000, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 2);
	/* ...and the next interval's sweep runs wherever it is asked first. */
	assert_int_equal(a->ops->sweep(a, &base_lim, 61006, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 3);
	relay_store_free(b);
	relay_redis_free(r2);
}

static void
test_redis_expiry_work_is_bounded_per_call(void **state)
{
	struct relay_store *s = *state;
	struct relay_store_limits lim = base_lim;
	struct relay_store_effects fx = { 0 };
	struct relay_store_stats st;
	struct relay_poll_result r;
	struct relay_job_in in = { "j", 1, false, NULL, 0 };
	char key[16];
	int i;

	lim.max_servers = 1000;
	for (i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "S%d", i);
		assert_int_equal(poll_s(s, &lim, 0, key, 1, &r, NULL), RELAY_OK);
	}
	assert_int_equal(poll_s(s, &lim, 20000, "live", 1, &r, NULL), RELAY_OK);
	/* 300 servers expired: an enqueue removes one bounded batch only... */
	assert_int_equal(s->ops->enqueue(s, &lim, 40000, "live", 4, &in, &fx),
	    RELAY_OK);
	assert_int_equal(fx.evicted_servers, 64);
	/* ...yet counts and limits already see only the live server. */
	assert_int_equal(s->ops->stats(s, &lim, 40000, &st, &fx), RELAY_OK);
	assert_int_equal(st.servers, 1);
	assert_int_equal(st.queued, 1);
	assert_int_equal(fx.evicted_servers, 128);
	/* The sweep takes the rest (its batch is larger). */
	assert_int_equal(s->ops->sweep(s, &lim, 40000, &fx), RELAY_OK);
	assert_int_equal(fx.evicted_servers, 300);
}

static void
test_redis_every_key_has_a_backstop_ttl(void **state)
{
	struct relay_store *s = *state;
	struct relay_poll_result r;
	struct relay_redis_reply rep;
	const char *prefix = relay_redis_prefix(adapter);
	size_t plen = strlen(prefix);
	int id;

	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "x"), RELAY_OK);
	assert_int_equal(enq_stream(s, &base_lim, 0, "A", "s", "C"), RELAY_OK);
	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(poll_s(s, &base_lim, 0, "A", 1, &r, NULL), RELAY_OK);
	assert_int_equal(r.n, 1);
	assert_int_equal(s->ops->stream_append(s, &base_lim, 1,
	    r.jobs[0].session_id, RELAY_SESSION_ID_LEN, "c", 1, false, NULL),
	    RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->put_response(s, &base_lim, 0, "C", 1, "r", 1,
	    NULL), RELAY_OK);
	assert_int_equal(enq(s, &base_lim, 0, "A", "y"), RELAY_OK);
	assert_int_equal(s->ops->sweep(s, &base_lim, 5, NULL), RELAY_OK);
	/* Keys of this prefix without a TTL (but the schema version). */
	id = relay_redis_script(adapter, "ttl_check",
	    "#!lua flags=no-writes\n"
	    "local out, n = {}, 0\n"
	    "for _, k in ipairs(redis.call('KEYS', KEYS[1] .. '*')) do\n"
	    "  n = n + 1\n"
	    "  if redis.call('PTTL', k) < 0 and k ~= KEYS[1] .. 'schema' then\n"
	    "    out[#out + 1] = k\n"
	    "  end\n"
	    "end\n"
	    "return {n, out}\n");
	assert_int_equal(relay_redis_eval(adapter, id, 1, &prefix, &plen, 0,
	    NULL, NULL, &rep), RELAY_REDIS_OK);
	assert_int_equal(rep.type, RELAY_REDIS_ARRAY);
	assert_true(rep.elem[0].integer >= 10);
	if (rep.elem[1].n != 0)
		fail_msg("key without TTL: %s", rep.elem[1].elem[0].str);
	relay_redis_reply_free(&rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fifo_per_server_and_at_most_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_are_exact_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_bytes_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pick_server_uniform_and_live_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_drops_queue_and_reregisters_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_node_outlives_server_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enqueue_eviction_is_checked_at_call_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_responses_take_once_overwrite_ttl_and_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_limits_and_idle_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_drops_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_removes_everything_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mt_shared_consumers_lose_and_duplicate_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mt_dedicated_consumers_see_fifo, setup, teardown),
	};
	const struct CMUnitTest redis_only[] = {
		cmocka_unit_test_setup_teardown(test_redis_replicas_share_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_sweep_runs_once_per_interval_cluster_wide, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_expiry_work_is_bounded_per_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_every_key_has_a_backstop_ttl, setup, teardown),
	};
	int failed;

	failed = cmocka_run_group_tests_name("memory", tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("redis", tests, test_redis_group_setup,
	    test_redis_group_teardown);
	failed += cmocka_run_group_tests_name("redis_only", redis_only,
	    test_redis_group_setup, test_redis_group_teardown);
	failed += cmocka_run_group_tests_name("redis_layout2", tests,
	    layout2_group_setup, layout2_group_teardown);
	failed += cmocka_run_group_tests_name("redis_only_layout2", redis_only,
	    layout2_group_setup, layout2_group_teardown);
	return failed;
}
