/*
 * The Redis stores' shared script-argument builder and reply accessors
 * (relay/src/redis/redis_args.h): bounds, the Lua number clamp, and the
 * element accessors on hand-built replies (no server needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "redis/redis_args.h"

static void
assert_arg(const struct relay_redis_args *a, size_t i, const char *want)
{
	assert_true(i < a->n);
	assert_int_equal(a->len[i], strlen(want));
	assert_memory_equal(a->v[i], want, a->len[i]);
}

static void
test_numbers_and_bytes(void **state)
{
	struct relay_redis_args a;

	(void)state;
	relay_redis_args_reset(&a);
	relay_redis_args_int(&a, INT64_MIN);
	relay_redis_args_int(&a, 0);
	relay_redis_args_bytes(&a, "a\0b", 3);
	relay_redis_args_bytes(&a, NULL, 5);
	relay_redis_args_str(&a, "key");
	assert_int_equal(a.n, 5);
	assert_arg(&a, 0, "-9223372036854775808");
	assert_arg(&a, 1, "0");
	assert_int_equal(a.len[2], 3);
	assert_memory_equal(a.v[2], "a\0b", 3);
	assert_arg(&a, 3, "");		/* NULL: the empty string */
	assert_arg(&a, 4, "key");
	assert_true(relay_redis_args_ok(&a));
}

/* Limits past 2^53 (not exact in a Lua double) are sent as 2^53. */
static void
test_lua_clamp(void **state)
{
	struct relay_redis_args a;

	(void)state;
	assert_int_equal(relay_redis_lua_clamp(0), 0);
	assert_int_equal(relay_redis_lua_clamp(RELAY_REDIS_LUA_INT_MAX),
	    (int64_t)1 << 53);
	assert_int_equal(relay_redis_lua_clamp(RELAY_REDIS_LUA_INT_MAX + 1),
	    (int64_t)1 << 53);
	assert_int_equal(relay_redis_lua_clamp(UINT64_MAX), (int64_t)1 << 53);
	relay_redis_args_reset(&a);
	relay_redis_args_uint(&a, SIZE_MAX);
	relay_redis_args_uint(&a, 42);
	assert_arg(&a, 0, "9007199254740992");
	assert_arg(&a, 1, "42");
}

/* Past RELAY_REDIS_ARGS_MAX nothing is written and the call is refused. */
static void
test_bounded(void **state)
{
	struct relay_redis_args a;
	size_t i;

	(void)state;
	relay_redis_args_reset(&a);
	for (i = 0; i < RELAY_REDIS_ARGS_MAX; i++)
		relay_redis_args_int(&a, (int64_t)i);
	assert_true(relay_redis_args_ok(&a));
	relay_redis_args_int(&a, 1);
	relay_redis_args_str(&a, "x");
	relay_redis_args_uint(&a, 1);
	assert_int_equal(a.n, RELAY_REDIS_ARGS_MAX);
	assert_false(relay_redis_args_ok(&a));
	assert_arg(&a, RELAY_REDIS_ARGS_MAX - 1, "31");
	relay_redis_args_reset(&a);
	assert_int_equal(a.n, 0);
	assert_true(relay_redis_args_ok(&a));
}

static void
test_reply_accessors(void **state)
{
	char s1[] = "17", s2[] = "completed";
	struct relay_redis_reply el[4] = {
		{ .type = RELAY_REDIS_INT, .integer = -5 },
		{ .type = RELAY_REDIS_STR, .str = s1, .len = 2 },
		{ .type = RELAY_REDIS_STR, .str = s2, .len = 9 },
		{ .type = RELAY_REDIS_NIL },
	};
	struct relay_redis_reply rep = { .type = RELAY_REDIS_ARRAY,
	    .elem = el, .n = 4 };

	(void)state;
	assert_int_equal(relay_redis_reply_int(&rep, 0), -5);
	assert_int_equal(relay_redis_reply_int(&rep, 1), 17);
	assert_int_equal(relay_redis_reply_int(&rep, 3), 0);
	assert_int_equal(relay_redis_reply_int(&rep, 4), 0);	/* past the end */
	assert_null(relay_redis_reply_str(&rep, 0));
	assert_ptr_equal(relay_redis_reply_str(&rep, 2), &el[2]);
	assert_null(relay_redis_reply_str(&rep, 9));
	assert_true(relay_redis_reply_is(&rep, 2, "completed"));
	assert_false(relay_redis_reply_is(&rep, 2, "complete"));
	assert_false(relay_redis_reply_is(&rep, 0, "-5"));
	assert_false(relay_redis_reply_is(&rep, 4, ""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers_and_bytes),
		cmocka_unit_test(test_lua_clamp),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_reply_accessors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
