/*
 * test_relay_store_keys.c -- the legacy Redis store's key names
 * (docs/store-redis.md, "Key names"), on a redis-server this test starts.
 *
 * - Client and server keys equal to the store's own key suffixes and
 *   index names, globs, CR/LF, hash tags and 6,000-byte strings are data:
 *   on layout 2 each one runs a full cycle, and afterwards a response
 *   stored before is still handed over, another node and client still
 *   complete a cycle, and no key name holds any of those strings. On
 *   layout 1 (kept for rolling upgrades) the one value that named a
 *   structure ("exp": "resp:exp") is refused instead of breaking the store.
 * - A digest collision never hands one key's data to another (simulated:
 *   the record under a key's name is made another key's).
 * - The switch from layout 1 to 2 (schema 1 -> 2) keeps what the layout-1
 *   relays stored: a node known only there is picked and sent work, its
 *   old queue is drained first, a waiting response is handed over, and a
 *   store that still guessed layout 1 follows the switch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/keyname.h"
#include "redis/redis.h"
#include "redis_server.h"
#include "store/store.h"

static const struct relay_store_limits lim = {
	.server_ttl_ms = 30000,
	.server_busy_ttl_ms = 30000,
	.response_ttl_ms = 600000,
	.session_ttl_ms = 600000,
	.max_servers = 1000,
	.queue_per_server = 100,
	.queue_total = 1000,
	.max_responses = 1000,
	.max_stream_sessions = 1000,
	.max_stream_chunks = 100,
};

struct fx {
	struct relay_redis *r;
	struct relay_store *s;
};

/* Runs one Lua snippet on the fixture's prefix with up to 3 arguments. */
static void
lua(struct relay_redis *r, const char *code, int argc, const char *a0,
    const char *a1, const char *a2, struct relay_redis_reply *out)
{
	const char *key = relay_redis_prefix(r);
	size_t keylen = strlen(key);
	const char *argv[3] = { a0, a1, a2 };
	size_t lens[3] = { a0 ? strlen(a0) : 0, a1 ? strlen(a1) : 0,
	    a2 ? strlen(a2) : 0 };
	struct relay_redis_reply rep;
	int id;

	id = relay_redis_script(r, "test", code);
	assert_true(id >= 0);
	assert_int_equal(relay_redis_eval(r, id, 1, &key, &keylen,
	    (size_t)argc, argv, lens, &rep), RELAY_REDIS_OK);
	if (out != NULL)
		*out = rep;
	else
		relay_redis_reply_free(&rep);
}

static void
set_schema(struct relay_redis *r, const char *v)
{
	lua(r, "#!lua\nreturn redis.call('SET', KEYS[1] .. 'schema', ARGV[1])\n",
	    1, v, NULL, NULL, NULL);
}

static struct fx *
open_store(const char *schema)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct relay_redis_config cfg;
	char err[256];

	assert_non_null(f);
	test_redis_config(&test_redis_group, &cfg);
	f->r = relay_redis_new(&cfg, NULL, err, sizeof(err));
	assert_non_null(f->r);
	if (schema != NULL)
		set_schema(f->r, schema);
	f->s = relay_store_redis_new(f->r);
	assert_non_null(f->s);
	return f;
}

/* A second replica on the same prefix as f. */
static struct fx *
replica_of(const struct fx *f)
{
	struct fx *g = calloc(1, sizeof(*g));
	struct relay_redis_config cfg;
	char err[256];

	assert_non_null(g);
	test_redis_config(&test_redis_group, &cfg);
	snprintf(cfg.prefix, sizeof(cfg.prefix), "%s",
	    relay_redis_prefix(f->r) + 1);
	cfg.prefix[strlen(cfg.prefix) - 1] = '\0';	/* "{p}" -> "p" */
	g->r = relay_redis_new(&cfg, NULL, err, sizeof(err));
	assert_non_null(g->r);
	assert_string_equal(relay_redis_prefix(g->r), relay_redis_prefix(f->r));
	g->s = relay_store_redis_new(g->r);
	assert_non_null(g->s);
	return g;
}

static void
close_store(struct fx *f)
{
	relay_store_free(f->s);
	relay_redis_free(f->r);
	free(f);
}

static enum relay_status
poll_k(struct relay_store *s, const char *k, size_t klen, int64_t now,
    struct relay_poll_result *out)
{
	return s->ops->poll(s, &lim, now, k, klen, 10, SIZE_MAX, out, NULL);
}

static enum relay_status
enq(struct relay_store *s, const char *k, size_t klen, int64_t now,
    const char *data, const char *owner, size_t owner_len)
{
	struct relay_job_in in = { data, strlen(data), owner != NULL, owner,
	    owner_len };

	return s->ops->enqueue(s, &lim, now, k, klen, &in, NULL);
}

static void
expect_take(struct relay_store *s, const char *k, size_t klen, int64_t now,
    const char *want)
{
	struct relay_blob b;

	assert_int_equal(s->ops->take_response(s, &lim, now, k, klen, &b, NULL),
	    RELAY_OK);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	relay_blob_free(&b);
}

/* A node and a client that never met the hostile keys: a whole cycle. */
static void
clean_cycle(struct relay_store *s, int64_t now)
{
	struct relay_poll_result r;
	struct relay_blob b;

	assert_int_equal(poll_k(s, "clean-node", 10, now, &r), RELAY_OK);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->pick_server(s, &lim, now, &b, NULL), RELAY_OK);
	relay_blob_free(&b);
	assert_int_equal(enq(s, "clean-node", 10, now, "job", NULL, 0), RELAY_OK);
	assert_int_equal(poll_k(s, "clean-node", 10, now, &r), RELAY_OK);
	assert_int_equal(r.n, 1);
	assert_memory_equal(r.jobs[0].blob.data, "job", 3);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->put_response(s, &lim, now, "clean-client", 12,
	    "answer", 6, NULL), RELAY_OK);
	expect_take(s, "clean-client", 12, now, "answer");
}

#define NHOSTILE 40
static char big[6000];

/* Every fixed suffix and index name of both layouts, and worse. */
static size_t
hostile(const char *out[NHOSTILE], size_t lens[NHOSTILE])
{
	static const char *const fixed[] = {
		"exp", "seen", "q", "queued", "resp", "resp:exp", "srv",
		"srv:exp", "srv:seen", "sess", "sess:exp", "s", "sc", "sby",
		"chunks", "sweep:due", "sweep", "due", "schema", "key", "by",
		"r", "l2:", "l2:resp", "l2:srv", "l2:by", "wake:x", "v1:nodes",
		"*", "?", "[a-z]*", "{x}", "}{", "{tokenplace:}resp:exp",
		"a\r\nb", "\r\n", "", ":",
	};
	size_t n = 0, i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		out[n] = fixed[i];
		lens[n++] = strlen(fixed[i]);
	}
	memset(big, 'K', sizeof(big));
	out[n] = big;
	lens[n++] = sizeof(big);
	assert_true(n <= NHOSTILE);
	return n;
}

/* Every key name under the prefix: none holds a hostile string. */
static void
key_names_are_ours(struct relay_redis *r, bool layout2)
{
	struct relay_redis_reply rep;
	size_t plen = strlen(relay_redis_prefix(r)), i;

	lua(r, "#!lua flags=no-writes\n"
	    "return redis.call('KEYS', KEYS[1] .. '*')\n", 0, NULL, NULL, NULL,
	    &rep);
	assert_int_equal(rep.type, RELAY_REDIS_ARRAY);
	assert_true(rep.n > 5);
	for (i = 0; i < rep.n; i++) {
		const char *k = rep.elem[i].str + plen;
		size_t n = rep.elem[i].len - plen, j, h = 0;
		static const char *const fixed[] = {
			"schema", "l2:srv", "l2:seen", "l2:key", "l2:queued",
			"l2:resp", "l2:sess", "l2:by", "l2:chunks",
			"l2:sweep:due",
		};
		bool ok = false;

		for (j = 0; j < sizeof(fixed) / sizeof(fixed[0]); j++)
			ok = ok || strcmp(k, fixed[j]) == 0;
		/* l2:q:<32 hex>, l2:r:<32 hex>, l2:s:<22>, l2:sc:<22> */
		if (!ok && n > 5 && memcmp(k, "l2:", 3) == 0) {
			const char *t = strchr(k + 3, ':');

			if (t != NULL) {
				for (j = 1; t[j] != '\0'; j++)
					h += strchr("0123456789abcdefghijklmnop"
					    "qrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
					    "YZ-_", t[j]) != NULL;
				ok = (h == 32 || h == 22) && h == j - 1;
			}
		}
		if (layout2 && (!ok || n >= 64))
			fail_msg("key name not of the layout: %.80s",
			    rep.elem[i].str);
	}
	relay_redis_reply_free(&rep);
}

static void
hostile_keys(const char *schema)
{
	struct fx *f = open_store(schema);
	struct relay_store *s = f->s;
	bool l2 = strcmp(schema, "2") == 0;
	const char *h[NHOSTILE];
	size_t hl[NHOSTILE], n = hostile(h, hl), i;
	struct relay_store_stats st;
	struct relay_server_list list;
	struct relay_poll_result r;
	struct relay_drain_result d;

	/* Stored before any hostile key arrives. */
	assert_int_equal(s->ops->put_response(s, &lim, 1, "victim", 6, "kept",
	    4, NULL), RELAY_OK);
	for (i = 0; i < n; i++) {
		bool exp = hl[i] == 3 && memcmp(h[i], "exp", 3) == 0;
		struct relay_blob b;

		assert_int_equal(poll_k(s, h[i], hl[i], 2, &r), RELAY_OK);
		relay_poll_result_free(&r);
		assert_int_equal(enq(s, h[i], hl[i], 2, "plain", NULL, 0),
		    RELAY_OK);
		assert_int_equal(enq(s, h[i], hl[i], 2, "streamed", h[i], hl[i]),
		    RELAY_OK);
		assert_int_equal(poll_k(s, h[i], hl[i], 3, &r), RELAY_OK);
		assert_int_equal(r.n, 2);
		assert_true(r.jobs[1].stream);
		assert_int_equal(s->ops->stream_append(s, &lim, 3,
		    r.jobs[1].session_id, RELAY_SESSION_ID_LEN, "chunk", 5, true,
		    NULL), RELAY_OK);
		relay_poll_result_free(&r);
		assert_int_equal(s->ops->stream_drain(s, &lim, 4, h[i], hl[i], &d,
		    NULL), RELAY_OK);
		assert_int_equal(d.n, 1);
		assert_true(d.final);
		relay_drain_result_free(&d);
		/* a client-chosen session id never names a key */
		assert_int_equal(s->ops->stream_append(s, &lim, 4, h[i], hl[i],
		    "x", 1, false, NULL), RELAY_E_UNKNOWN_SESSION);
		if (!l2 && exp) {
			/* layout 1: "resp:exp" is the index; refused, not broken */
			assert_int_equal(s->ops->put_response(s, &lim, 4, h[i],
			    hl[i], "mine", 4, NULL), RELAY_E_RESPONSES_FULL);
			assert_int_equal(s->ops->take_response(s, &lim, 4, h[i],
			    hl[i], &b, NULL), RELAY_E_NO_RESPONSE);
		} else {
			assert_int_equal(s->ops->put_response(s, &lim, 4, h[i],
			    hl[i], "mine", 4, NULL), RELAY_OK);
			expect_take(s, h[i], hl[i], 4, "mine");
		}
		/* a second response waits: the sweep and stats must survive it */
		if (l2 || !exp)
			assert_int_equal(s->ops->put_response(s, &lim, 4, h[i],
			    hl[i], "left", 4, NULL), RELAY_OK);
	}
	assert_int_equal(s->ops->sweep(s, &lim, 5, NULL), RELAY_OK);
	assert_int_equal(s->ops->stats(s, &lim, 5, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, n);
	assert_int_equal(st.responses, l2 ? n + 1 : n);
	assert_int_equal(s->ops->list_servers(s, &lim, 5, 1000, true, &list,
	    NULL), RELAY_OK);
	assert_int_equal(list.n, n);
	relay_server_list_free(&list);
	expect_take(s, "victim", 6, 6, "kept");
	clean_cycle(s, 6);
	key_names_are_ours(f->r, l2);
	for (i = 0; i < n; i++) {
		bool removed;

		assert_int_equal(s->ops->unregister(s, &lim, 7, h[i], hl[i],
		    &removed, NULL), RELAY_OK);
		assert_true(removed);
	}
	clean_cycle(s, 8);
	close_store(f);
}

static void
test_hostile_keys_layout2(void **state)
{
	(void)state;
	hostile_keys("2");
}

static void
test_hostile_keys_layout1(void **state)
{
	(void)state;
	hostile_keys("1");
}

/* The record under a key's name belongs to another key: never handed out. */
static void
test_name_collision_is_refused(void **state)
{
	struct fx *f = open_store("2");
	struct relay_store *s = f->s;
	struct relay_poll_result r;
	struct relay_blob b;
	struct relay_redis_reply rep;
	char dn[RELAY_KEYNAME_LEN + 1], dc[RELAY_KEYNAME_LEN + 1];

	(void)state;
	relay_keyname("node", 4, dn);
	relay_keyname("client", 6, dc);
	assert_int_equal(poll_k(s, "node", 4, 1, &r), RELAY_OK);
	assert_int_equal(enq(s, "node", 4, 1, "for node", NULL, 0), RELAY_OK);
	assert_int_equal(s->ops->put_response(s, &lim, 1, "client", 6, "secret",
	    6, NULL), RELAY_OK);
	/* Another key with the same names now owns both records. */
	lua(f->r, "#!lua\n"
	    "redis.call('HSET', KEYS[1] .. 'l2:key', ARGV[1], 'other node')\n"
	    "redis.call('HSET', KEYS[1] .. 'l2:r:' .. ARGV[2], 'c', 'other')\n"
	    "return 1\n", 2, dn, dc, NULL, NULL);
	assert_int_equal(poll_k(s, "node", 4, 2, &r), RELAY_E_SERVERS_FULL);
	assert_int_equal(enq(s, "node", 4, 2, "x", NULL, 0),
	    RELAY_E_UNKNOWN_SERVER);
	assert_int_equal(s->ops->take_response(s, &lim, 2, "client", 6, &b,
	    NULL), RELAY_E_NO_RESPONSE);
	assert_int_equal(s->ops->put_response(s, &lim, 2, "client", 6, "new",
	    3, NULL), RELAY_E_RESPONSES_FULL);
	/* The other key's record is untouched. */
	lua(f->r, "#!lua flags=no-writes\n"
	    "return redis.call('HGET', KEYS[1] .. 'l2:r:' .. ARGV[1], 'v')\n",
	    1, dc, NULL, NULL, &rep);
	assert_int_equal(rep.type, RELAY_REDIS_STR);
	assert_string_equal(rep.str, "secret");
	relay_redis_reply_free(&rep);
	close_store(f);
}

/* Layout 1 data survives the switch to layout 2 (schema 1 -> 2). */
static void
test_switch_keeps_layout1_state(void **state)
{
	struct fx *a = open_store("1"), *b;
	struct relay_store *s = a->s;
	struct relay_poll_result r;
	struct relay_store_stats st;
	struct relay_blob pick;
	int i, seen_old, seen_new;
	bool removed;

	(void)state;
	b = replica_of(a);
	/* Written in layout 1, as by the previous release. */
	assert_int_equal(poll_k(s, "old-node", 8, 1, &r), RELAY_OK);
	assert_int_equal(enq(b->s, "old-node", 8, 1, "j1", NULL, 0), RELAY_OK);
	assert_int_equal(s->ops->put_response(s, &lim, 1, "old-client", 10,
	    "r1", 2, NULL), RELAY_OK);
	/* `tokenplace-relay --state-upgrade` */
	set_schema(a->r, "2");
	/* Replica b still guesses layout 1 and follows at its next call. */
	assert_int_equal(b->s->ops->pick_server(b->s, &lim, 2, &pick, NULL),
	    RELAY_OK);
	assert_int_equal(pick.len, 8);
	assert_memory_equal(pick.data, "old-node", 8);
	relay_blob_free(&pick);
	assert_int_equal(enq(b->s, "old-node", 8, 2, "j2", NULL, 0), RELAY_OK);
	/* A node of layout 2 beside it: both are chosen (2^-63 to miss one). */
	assert_int_equal(poll_k(s, "new-node", 8, 2, &r), RELAY_OK);
	relay_poll_result_free(&r);
	for (i = 0, seen_old = seen_new = 0; i < 64; i++) {
		assert_int_equal(s->ops->pick_server(s, &lim, 2, &pick, NULL),
		    RELAY_OK);
		assert_int_equal(pick.len, 8);
		seen_old += memcmp(pick.data, "old-node", 8) == 0;
		seen_new += memcmp(pick.data, "new-node", 8) == 0;
		relay_blob_free(&pick);
	}
	assert_int_equal(seen_old + seen_new, 64);
	assert_true(seen_old > 0 && seen_new > 0);
	assert_int_equal(s->ops->unregister(s, &lim, 2, "new-node", 8, &removed,
	    NULL), RELAY_OK);
	assert_true(removed);
	assert_int_equal(s->ops->stats(s, &lim, 2, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 1);
	assert_int_equal(st.queued, 2);
	expect_take(b->s, "old-client", 10, 2, "r1");
	/* The node's next poll drains its old queue, oldest first. */
	assert_int_equal(poll_k(s, "old-node", 8, 3, &r), RELAY_OK);
	assert_int_equal(r.n, 2);
	assert_memory_equal(r.jobs[0].blob.data, "j1", 2);
	assert_memory_equal(r.jobs[1].blob.data, "j2", 2);
	relay_poll_result_free(&r);
	/* From now on it lives in layout 2. */
	assert_int_equal(enq(b->s, "old-node", 8, 4, "j3", NULL, 0), RELAY_OK);
	assert_int_equal(poll_k(s, "old-node", 8, 5, &r), RELAY_OK);
	assert_int_equal(r.n, 1);
	assert_memory_equal(r.jobs[0].blob.data, "j3", 2);
	relay_poll_result_free(&r);
	assert_int_equal(s->ops->stats(s, &lim, 5, &st, NULL), RELAY_OK);
	assert_int_equal(st.servers, 1);
	assert_int_equal(st.queued, 0);
	clean_cycle(b->s, 6);
	close_store(b);
	close_store(a);
}

/* A version neither layout knows: every call fails, nothing is written. */
static void
test_unknown_version_fails_closed(void **state)
{
	struct fx *f = open_store("7");
	struct relay_poll_result r;

	(void)state;
	assert_int_equal(poll_k(f->s, "n", 1, 1, &r), RELAY_E_UNAVAILABLE);
	close_store(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_keys_layout2),
		cmocka_unit_test(test_hostile_keys_layout1),
		cmocka_unit_test(test_name_collision_is_refused),
		cmocka_unit_test(test_switch_keeps_layout1_state),
		cmocka_unit_test(test_unknown_version_fails_closed),
	};

	return cmocka_run_group_tests_name("store_keys", tests,
	    test_redis_group_setup, test_redis_group_teardown);
}
