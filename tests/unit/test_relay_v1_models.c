/*
 * test_relay_v1_models.c -- the API v1 stores' model list (list_models)
 * and what list_nodes lets out, on both stores (the memory store, then the
 * Redis store on a redis-server this test starts: one suite, two groups),
 * driven by an explicit clock: models appear and leave as nodes register,
 * change capabilities, unregister and lapse; the bound and its "more";
 * one id past the bound; and, on Redis, that the scripts' raw replies
 * carry no node key unless asked for, and that a node filed by an older
 * relay (no model index yet) joins the list at its next call.
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
	.max_nodes = 64,
	.max_requests = 64,
	.max_terminal = 64,
	.max_tombstones = 64,
};

/* The Lua library the Redis store registers (embedded by CMake). */
extern const char relay_v1_store_redis_lua[];

/* A node key as long as real ones get (8 KiB in the repro). */
#define SECRET_LEN 8192

struct t {
	struct relay_v1_store *s;
	struct relay_redis *r;
	struct relay_v1_effects fx;
	char secret[SECRET_LEN + 1];
};

static unsigned char cred[TP_SHA256_LEN];

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	if (test_redis_active) {
		struct relay_redis_config cfg;
		char err[256];

		test_redis_config(&test_redis_group, &cfg);
		t->r = relay_redis_new(&cfg, NULL, err, sizeof(err));
		assert_non_null(t->r);
		t->s = relay_v1_store_redis_new(t->r);
	} else {
		t->s = relay_v1_store_memory_new();
	}
	assert_non_null(t->s);
	tp_sha256("cred", 4, cred);
	memset(t->secret, 'K', SECRET_LEN);
	memcpy(t->secret, "SECRET-NODE-KEY-", 16);
	t->secret[SECRET_LEN] = '\0';
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

/* Registers (or renews) `key` serving the comma-separated `models`. */
static void
reg(struct t *t, int64_t now, const char *key, const char *models)
{
	struct tp_v1_caps *c = malloc(sizeof(*c));
	bool created;
	const char *p = models;

	assert_non_null(c);
	tp_v1_caps_default(c);
	c->max_concurrency = 2;
	c->models_len = 0;
	c->nmodels = 0;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		memcpy(c->models + c->models_len, p, n);
		c->models[c->models_len + n] = '\0';
		c->models_len += n + 1;
		c->nmodels++;
		p += n;
		if (*p == ',')
			p++;
	}
	assert_int_equal(t->s->ops->register_node(t->s, &lim, now, key,
	    strlen(key), cred, c, &created, &t->fx), V1_OK);
	free(c);
}

/* The list as "a,b,c" ("" when empty), with "+" appended when more. */
static char *
models(struct t *t, int64_t now, size_t max, const char *only)
{
	struct relay_v1_model_list l;
	static char buf[4096];
	const char *p;
	size_t o = 0;

	assert_int_equal(t->s->ops->list_models(t->s, &lim, now, max, only,
	    only ? strlen(only) : 0, &l, &t->fx), V1_OK);
	buf[0] = '\0';
	p = l.ids;
	for (size_t i = 0; i < l.n; i++) {
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
		    i > 0 ? "," : "", p);
		p += strlen(p) + 1;
	}
	assert_true(p == l.ids + l.ids_len || l.n == 0);
	if (l.more)
		snprintf(buf + o, sizeof(buf) - o, "+");
	relay_v1_model_list_free(&l);
	return buf;
}

/* ---- tests ------------------------------------------------------------------ */

/* Models follow registration, capability changes and unregistration. */
static void
test_models_follow_nodes(void **state)
{
	struct t *t = *state;
	bool removed;

	assert_string_equal(models(t, 0, 10, NULL), "");
	reg(t, 0, "A", "m2,m1");
	reg(t, 0, "B", "m3,m2");
	assert_string_equal(models(t, 1, 10, NULL), "m1,m2,m3");
	/* B changes what it serves: m3 leaves, m4 comes, m2 stays (A) */
	reg(t, 2, "B", "m4");
	assert_string_equal(models(t, 3, 10, NULL), "m1,m2,m4");
	/* the same models again: nothing moves */
	reg(t, 4, "A", "m2,m1");
	assert_string_equal(models(t, 5, 10, NULL), "m1,m2,m4");
	assert_int_equal(t->s->ops->unregister(t->s, &lim, 6, "A", 1, cred,
	    &removed, &t->fx), V1_OK);
	assert_true(removed);
	assert_string_equal(models(t, 7, 10, NULL), "m4");
	assert_string_equal(models(t, 7, 10, "m4"), "m4");
	assert_string_equal(models(t, 7, 10, "m1"), "");
	/* a poll that brings new capabilities changes the list too */
	{
		struct tp_v1_caps *c = malloc(sizeof(*c));
		struct relay_v1_work w;
		bool has;

		assert_non_null(c);
		tp_v1_caps_default(c);
		strcpy(c->models, "m5");
		c->models_len = 3;
		c->nmodels = 1;
		assert_int_equal(t->s->ops->poll(t->s, &lim, 8, "B", 1, c, 0,
		    &w, &has, &t->fx), V1_OK);
		assert_false(has);
		free(c);
	}
	assert_string_equal(models(t, 9, 10, NULL), "m5");
	assert_int_equal(t->fx.evicted_nodes, 0);
}

/*
 * A node whose lease lapsed leaves the list at the first listing after
 * (evicted on the way, counted), without any sweep; a model another live
 * node serves stays.
 */
static void
test_lapsed_node_leaves(void **state)
{
	struct t *t = *state;
	struct relay_v1_work w;
	bool has;

	reg(t, 0, "A", "gone-model,shared");
	reg(t, 0, "B", "shared");
	assert_string_equal(models(t, 30 * S, 10, NULL), "gone-model,shared");
	/* B keeps polling, A stays silent */
	assert_int_equal(t->s->ops->poll(t->s, &lim, 20 * S, "B", 1, NULL, 0,
	    &w, &has, &t->fx), V1_OK);
	assert_string_equal(models(t, 30 * S + 1, 10, NULL), "shared");
	assert_int_equal(t->fx.evicted_nodes, 1);
	assert_false(t->s->ops->node_exists(t->s, "A", 1));
	/* a look-up of one id evicts too */
	assert_string_equal(models(t, 50 * S + 1, 10, "shared"), "");
	assert_int_equal(t->fx.evicted_nodes, 2);
	assert_string_equal(models(t, 50 * S + 1, 10, NULL), "");
}

/* At most max ids, the first in byte order, "more" past them. */
static void
test_bound(void **state)
{
	struct t *t = *state;
	char key[8];

	for (int i = 0; i < 6; i++) {
		char m[32];

		snprintf(key, sizeof(key), "N%d", i);
		snprintf(m, sizeof(m), "model-%c,Z-upper", 'f' - i);
		reg(t, 0, key, m);
	}
	/* byte order: "Z" (0x5a) sorts before "m" */
	assert_string_equal(models(t, 1, 3, NULL), "Z-upper,model-a,model-b+");
	assert_string_equal(models(t, 1, 7, NULL),
	    "Z-upper,model-a,model-b,model-c,model-d,model-e,model-f");
	assert_string_equal(models(t, 1, 1, NULL), "Z-upper+");
	/* an id past the bound is still found alone */
	assert_string_equal(models(t, 1, 1, "model-f"), "model-f");
	assert_string_equal(models(t, 1, 1, "model-g"), "");
	assert_string_equal(models(t, 1, 1, ""), "");
}

/* Many nodes of one model: listed once while any of them is live. */
static void
test_many_nodes_one_model(void **state)
{
	struct t *t = *state;
	struct relay_v1_work w;
	bool has;
	char key[16];

	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "node-%02d", i);
		reg(t, i, key, "llama,mistral");
	}
	assert_string_equal(models(t, 100, 10, NULL), "llama,mistral");
	/* all but the last lapse */
	assert_int_equal(t->s->ops->poll(t->s, &lim, 20 * S, "node-39", 7, NULL,
	    0, &w, &has, &t->fx), V1_OK);
	assert_string_equal(models(t, 40 * S, 10, NULL), "llama,mistral");
	assert_string_equal(models(t, 40 * S, 10, "mistral"), "mistral");
	assert_string_equal(models(t, 50 * S + 1, 10, NULL), "");
	assert_int_equal(t->fx.evicted_nodes, 40);
}

/* ---- Redis only: what the scripts send back ------------------------------- */

/* Runs library function op_<op> with the common head and two args. */
static void
raw(struct t *t, const char *op, int64_t now, const char *a1,
    const char *a2, size_t a2len, struct relay_redis_reply *rep)
{
	const char *args[16];
	size_t lens[16];
	char nums[14][24];
	/* The head ends with the backstop TTL grace: any value will do. */
	int64_t v[13] = { now, lim.lease_ms, lim.in_flight_ttl_ms,
	    lim.tombstone_ttl_ms, lim.node_tombstone_ttl_ms,
	    lim.terminal_ttl_ms, lim.response_ttl_ms, lim.reservation_ttl_ms,
	    (int64_t)lim.max_nodes, (int64_t)lim.max_requests,
	    (int64_t)lim.max_terminal, (int64_t)lim.max_tombstones, 60000 };
	size_t n = strlen(relay_v1_store_redis_lua) + 128;
	char *text = malloc(n), label[40];
	const char *key = relay_redis_prefix(t->r);
	size_t keylen = strlen(key);
	int id;

	assert_non_null(text);
	snprintf(text, n, "#!lua flags=allow-oom\n%s\nreturn op_%s()\n",
	    relay_v1_store_redis_lua, op);
	snprintf(label, sizeof(label), "test_%s", op);
	id = relay_redis_script(t->r, label, text);
	free(text);
	assert_true(id >= 0);
	for (int i = 0; i < 13; i++) {
		snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)v[i]);
		args[i] = nums[i];
		lens[i] = strlen(nums[i]);
	}
	args[13] = a1;
	lens[13] = strlen(a1);
	args[14] = a2;
	lens[14] = a2len;
	assert_int_equal(relay_redis_eval(t->r, id, 1, &key, &keylen, 15, args,
	    lens, rep), RELAY_REDIS_OK);
	assert_int_equal(rep->type, RELAY_REDIS_ARRAY);
	assert_int_equal(rep->elem[0].integer, 0);	/* V1_OK */
}

/* Bytes of every string in the reply, nested arrays included. */
static size_t
reply_bytes(const struct relay_redis_reply *rep)
{
	size_t n = rep->type == RELAY_REDIS_STR ? rep->len : 0;

	if (rep->type == RELAY_REDIS_ARRAY)
		for (size_t i = 0; i < rep->n; i++)
			n += reply_bytes(&rep->elem[i]);
	return n;
}

static bool
reply_has(const struct relay_redis_reply *rep, const char *needle)
{
	size_t nl = strlen(needle);

	if (rep->type == RELAY_REDIS_STR) {
		for (size_t i = 0; i + nl <= rep->len; i++)
			if (memcmp(rep->str + i, needle, nl) == 0)
				return true;
		return false;
	}
	if (rep->type == RELAY_REDIS_ARRAY)
		for (size_t i = 0; i < rep->n; i++)
			if (reply_has(&rep->elem[i], needle))
				return true;
	return false;
}

/*
 * The scripts send no node key unless asked: list_models never, and
 * list_nodes only with keys=1 (before, it sent every 8 KiB key of the
 * walk whatever the caller wanted).
 */
static void
test_scripts_return_no_keys(void **state)
{
	struct t *t = *state;
	struct relay_redis_reply rep;
	struct relay_v1_node_list l;

	if (!test_redis_active)
		skip();
	reg(t, 0, t->secret, "m1,m2");
	raw(t, "list_models", 1, "10", "", 0, &rep);
	assert_int_equal(rep.n, 4 + 2);
	assert_false(reply_has(&rep, "SECRET-NODE-KEY"));
	assert_true(reply_bytes(&rep) < 64);
	relay_redis_reply_free(&rep);
	raw(t, "list_models", 1, "10", "m2", 2, &rep);
	assert_int_equal(rep.n, 4 + 1);
	assert_false(reply_has(&rep, "SECRET-NODE-KEY"));
	relay_redis_reply_free(&rep);
	raw(t, "list_nodes", 1, "10", "0", 1, &rep);
	assert_false(reply_has(&rep, "SECRET-NODE-KEY"));
	assert_true(reply_bytes(&rep) < 256);
	relay_redis_reply_free(&rep);
	raw(t, "list_nodes", 1, "10", "1", 1, &rep);
	assert_true(reply_has(&rep, "SECRET-NODE-KEY"));
	assert_true(reply_bytes(&rep) > SECRET_LEN);
	relay_redis_reply_free(&rep);
	/* and through the store's own call, keys only when asked */
	assert_int_equal(t->s->ops->list_nodes(t->s, &lim, 1, 10, false, &l,
	    &t->fx), V1_OK);
	assert_int_equal(l.n, 1);
	assert_null(l.nodes[0].key);
	assert_memory_equal(l.nodes[0].models, "m1\0m2\0", 6);
	relay_v1_node_list_free(&l);
	assert_int_equal(t->s->ops->list_nodes(t->s, &lim, 1, 10, true, &l,
	    &t->fx), V1_OK);
	assert_string_equal(l.nodes[0].key, t->secret);
	relay_v1_node_list_free(&l);
}

static const char forget_lua[] =
    "redis.call('DEL', KEYS[1] .. 'v1:mods')\n"
    "for _, k in ipairs(redis.call('KEYS', KEYS[1] .. 'v1:n:*')) do\n"
    "  redis.call('HDEL', k, 'mx')\n"
    "end\n"
    "return 0\n";

/*
 * Rolling upgrade: nodes filed by a relay that keeps no model index (no
 * P.mods, no mx field) join the list at their next call through a relay
 * that does, without re-registering.
 */
static void
test_older_relay_nodes_join(void **state)
{
	struct t *t = *state;
	struct relay_redis_reply rep;
	struct relay_v1_work w;
	const char *key;
	size_t keylen;
	bool has;
	int id;

	if (!test_redis_active)
		skip();
	reg(t, 0, "A", "old-model");
	id = relay_redis_script(t->r, "test_forget", forget_lua);
	assert_true(id >= 0);
	key = relay_redis_prefix(t->r);
	keylen = strlen(key);
	assert_int_equal(relay_redis_eval(t->r, id, 1, &key, &keylen, 0, NULL,
	    NULL, &rep), RELAY_REDIS_OK);
	relay_redis_reply_free(&rep);
	assert_string_equal(models(t, 1, 10, NULL), "");
	/* its select set still finds it: the protocol works meanwhile */
	assert_int_equal(t->s->ops->poll(t->s, &lim, 2, "A", 1, NULL, 0, &w,
	    &has, &t->fx), V1_OK);
	assert_string_equal(models(t, 3, 10, NULL), "old-model");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_models_follow_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lapsed_node_leaves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_nodes_one_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scripts_return_no_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_older_relay_nodes_join, setup, teardown),
	};
	int failed;

	failed = cmocka_run_group_tests_name("v1_models_memory", tests, NULL,
	    NULL);
	failed += cmocka_run_group_tests_name("v1_models_redis", tests,
	    test_redis_group_setup, test_redis_group_teardown);
	return failed;
}
