/*
 * test_relay_model_list.c -- the model list's cache (model_list.c) against
 * a fetch function of the test's: the body's shape, reuse within the TTL
 * and a fresh read for every request with TTL 0 (no clock involved:
 * a long TTL never lapses during a test, 0 always has), the bound's
 * "has_more", look-ups of one id inside and past the bound, failures
 * never kept, and many threads at once reading the store once.
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

#include "v1/model_list.h"

#define LONG_TTL_MS 600000	/* never lapses within a test */

/* What the fake store answers; guarded by mu (threads fetch too). */
static struct {
	pthread_mutex_t mu;
	char ids[256];			/* packed */
	size_t ids_len, n;
	bool more;
	enum relay_v1_rc rc;
	int calls, only_calls;
	char last_only[64];
} fake = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Sets the fake's list from "a,b,c". */
static void
fake_set(const char *csv, bool more)
{
	pthread_mutex_lock(&fake.mu);
	fake.ids_len = fake.n = 0;
	while (*csv != '\0') {
		size_t k = strcspn(csv, ",");

		memcpy(fake.ids + fake.ids_len, csv, k);
		fake.ids[fake.ids_len + k] = '\0';
		fake.ids_len += k + 1;
		fake.n++;
		csv += k;
		if (*csv == ',')
			csv++;
	}
	fake.more = more;
	fake.rc = V1_OK;
	pthread_mutex_unlock(&fake.mu);
}

static enum relay_v1_rc
fake_fetch(void *arg, size_t max, const char *only, size_t only_len,
    struct relay_v1_model_list *out)
{
	enum relay_v1_rc rc;
	const char *p;

	(void)arg;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&fake.mu);
	rc = fake.rc;
	if (only != NULL) {
		fake.only_calls++;
		snprintf(fake.last_only, sizeof(fake.last_only), "%.*s",
		    (int)only_len, only);
	} else {
		fake.calls++;
	}
	if (rc != V1_OK)
		goto out;
	out->ids = malloc(fake.ids_len + 1);
	assert_non_null(out->ids);
	p = fake.ids;
	for (size_t i = 0; i < fake.n; i++) {
		size_t l = strlen(p);

		if (only == NULL ? out->n < max :
		    (l == only_len && memcmp(p, only, l) == 0)) {
			memcpy(out->ids + out->ids_len, p, l + 1);
			out->ids_len += l + 1;
			out->n++;
		}
		p += l + 1;
	}
	out->more = only == NULL && (fake.more || fake.n > max);
out:
	pthread_mutex_unlock(&fake.mu);
	return rc;
}

static int
setup(void **state)
{
	(void)state;
	fake_set("", false);
	fake.calls = fake.only_calls = 0;
	return 0;
}

/* The list's ids as "a,b" (+ "+" when has_more), checking the shape. */
static char *
ids_of(struct relay_model_list *ml, bool *cut)
{
	static char buf[512];
	char *body;
	size_t len, o = 0;
	cJSON *root, *data, *m;

	assert_int_equal(relay_model_list_body(ml, &body, &len, cut), V1_OK);
	assert_int_equal(strlen(body), len);
	root = cJSON_Parse(body);
	assert_non_null(root);
	assert_string_equal(cJSON_GetObjectItem(root, "object")->valuestring,
	    "list");
	data = cJSON_GetObjectItem(root, "data");
	assert_true(cJSON_IsArray(data));
	buf[0] = '\0';
	cJSON_ArrayForEach(m, data) {
		const char *id = cJSON_GetObjectItem(m, "id")->valuestring;
		cJSON *perm = cJSON_GetArrayItem(
		    cJSON_GetObjectItem(m, "permission"), 0);
		char want[80];

		assert_string_equal(cJSON_GetObjectItem(m, "object")->valuestring,
		    "model");
		assert_string_equal(cJSON_GetObjectItem(m, "owned_by")->valuestring,
		    "token.place");
		assert_string_equal(cJSON_GetObjectItem(m, "root")->valuestring,
		    id);
		assert_true(cJSON_IsNull(cJSON_GetObjectItem(m, "parent")));
		snprintf(want, sizeof(want), "modelperm-%s", id);
		assert_string_equal(cJSON_GetObjectItem(perm, "id")->valuestring,
		    want);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
		    o > 0 ? "," : "", id);
	}
	if (cJSON_IsTrue(cJSON_GetObjectItem(root, "has_more")))
		snprintf(buf + o, sizeof(buf) - o, "+");
	else
		assert_null(cJSON_GetObjectItem(root, "has_more"));
	assert_int_equal(*cut, cJSON_IsTrue(cJSON_GetObjectItem(root,
	    "has_more")));
	cJSON_Delete(root);
	free(body);
	return buf;
}

static bool
find(struct relay_model_list *ml, const char *id)
{
	bool found;

	assert_int_equal(relay_model_list_find(ml, id, &found), V1_OK);
	return found;
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_kept_within_ttl(void **state)
{
	struct relay_model_list *ml;
	bool cut;

	(void)state;
	ml = relay_model_list_new(fake_fetch, NULL, LONG_TTL_MS, 10, NULL);
	assert_non_null(ml);
	fake_set("a,b", false);
	assert_string_equal(ids_of(ml, &cut), "a,b");
	assert_false(cut);
	fake_set("a,b,c", false);
	/* kept: the store is not read again within the TTL */
	assert_string_equal(ids_of(ml, &cut), "a,b");
	assert_true(find(ml, "b"));
	assert_false(find(ml, "c"));	/* complete list: no store read */
	assert_int_equal(fake.calls, 1);
	assert_int_equal(fake.only_calls, 0);
	assert_int_equal(relay_model_list_fetches(ml), 1);
	relay_model_list_free(ml);
}

static void
test_ttl_zero_reads_every_time(void **state)
{
	struct relay_model_list *ml;
	bool cut;

	(void)state;
	ml = relay_model_list_new(fake_fetch, NULL, 0, 10, NULL);
	assert_non_null(ml);
	fake_set("x", false);
	assert_string_equal(ids_of(ml, &cut), "x");
	assert_true(find(ml, "x"));
	fake_set("", false);		/* the node left */
	assert_string_equal(ids_of(ml, &cut), "");
	assert_false(find(ml, "x"));
	assert_int_equal(fake.calls, 4);
	relay_model_list_free(ml);
}

static void
test_bound_and_lookup_past_it(void **state)
{
	struct relay_model_list *ml;
	bool cut;

	(void)state;
	ml = relay_model_list_new(fake_fetch, NULL, LONG_TTL_MS, 2, NULL);
	assert_non_null(ml);
	fake_set("a,b,c,d", false);
	assert_string_equal(ids_of(ml, &cut), "a,b+");
	assert_true(cut);
	assert_true(find(ml, "a"));
	assert_int_equal(fake.only_calls, 0);
	/* past the bound: asked alone, not kept */
	assert_true(find(ml, "d"));
	assert_string_equal(fake.last_only, "d");
	assert_false(find(ml, "e"));
	assert_int_equal(fake.only_calls, 2);
	assert_false(find(ml, ""));	/* no id is empty: nothing asked */
	assert_int_equal(fake.only_calls, 2);
	assert_int_equal(fake.calls, 1);
	relay_model_list_free(ml);
}

static void
test_failure_not_kept(void **state)
{
	struct relay_model_list *ml;
	char *body;
	size_t len;
	bool cut, found;

	(void)state;
	ml = relay_model_list_new(fake_fetch, NULL, LONG_TTL_MS, 10, NULL);
	assert_non_null(ml);
	fake.rc = V1_E_UNAVAILABLE;
	assert_int_equal(relay_model_list_body(ml, &body, &len, &cut),
	    V1_E_UNAVAILABLE);
	assert_null(body);
	assert_int_equal(relay_model_list_find(ml, "a", &found),
	    V1_E_UNAVAILABLE);
	assert_int_equal(fake.calls, 2);	/* each request tried again */
	fake_set("a", false);
	assert_string_equal(ids_of(ml, &cut), "a");
	assert_int_equal(fake.calls, 3);
	relay_model_list_free(ml);
}

#define THREADS 8
#define ROUNDS 200

static void *
reader(void *arg)
{
	struct relay_model_list *ml = arg;

	for (int i = 0; i < ROUNDS; i++) {
		char *body;
		size_t len;
		bool cut, found;

		if (relay_model_list_body(ml, &body, &len, &cut) != V1_OK ||
		    strstr(body, "\"id\":\"shared\"") == NULL)
			return "bad body";
		free(body);
		if (relay_model_list_find(ml, "shared", &found) != V1_OK ||
		    !found)
			return "not found";
	}
	return NULL;
}

/*
 * Workers at once: with a TTL that does not lapse, the store is read once
 * whatever the interleaving (a thread that waits behind a build takes
 * its result); with TTL 0 every answer is still whole and right.
 */
static void
test_threads(void **state)
{
	pthread_t th[THREADS];
	int64_t ttls[2] = { LONG_TTL_MS, 0 };

	(void)state;
	fake_set("other,shared", false);
	for (int k = 0; k < 2; k++) {
		struct relay_model_list *ml = relay_model_list_new(fake_fetch,
		    NULL, ttls[k], 10, NULL);

		assert_non_null(ml);
		fake.calls = 0;
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_create(&th[i], NULL, reader, ml),
			    0);
		for (int i = 0; i < THREADS; i++) {
			void *res;

			assert_int_equal(pthread_join(th[i], &res), 0);
			if (res != NULL)
				fail_msg("thread %d: %s", i, (char *)res);
		}
		if (k == 0)
			assert_int_equal(fake.calls, 1);
		else
			assert_true(fake.calls >= 1 &&
			    fake.calls <= 2 * THREADS * ROUNDS);
		relay_model_list_free(ml);
	}
}

static void
test_model_object(void **state)
{
	static const char head[] = "{\"id\":\"m-1\",\"object\":\"model\","
	    "\"created\":1764756000,\"owned_by\":\"token.place\","
	    "\"permission\":[{\"id\":\"modelperm-m-1\"";
	char *text = relay_model_object_json("m-1", 1764756000);
	cJSON *o;

	(void)state;
	assert_non_null(text);
	o = cJSON_Parse(text);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, "m-1");
	assert_int_equal(cJSON_GetObjectItem(o, "created")->valuedouble,
	    1764756000);
	/* token.place's key order, as before the cache */
	assert_true(strncmp(text, head, strlen(head)) == 0);
	cJSON_Delete(o);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_kept_within_ttl, setup),
		cmocka_unit_test_setup(test_ttl_zero_reads_every_time, setup),
		cmocka_unit_test_setup(test_bound_and_lookup_past_it, setup),
		cmocka_unit_test_setup(test_failure_not_kept, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_model_object, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
