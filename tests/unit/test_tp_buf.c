/*
 * tp_buf (tokenplace/buf.h): appends, growth past the first allocation,
 * the JSON string appender (escapes, invalid UTF-8, NULL as null), the
 * hand-over of an empty buffer, and the out-of-memory latch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tokenplace/buf.h"

static void
test_appends_and_growth(void **state)
{
	struct tp_buf b = TP_BUF_INIT;
	char chunk[100];
	size_t len = 0;
	char *s;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	tp_buf_puts(&b, "<");
	for (int i = 0; i < 50; i++)
		tp_buf_add(&b, chunk, sizeof(chunk));
	tp_buf_add(&b, ">tail", 1);
	assert_false(b.oom);
	assert_int_equal(b.len, 5002);
	assert_true(b.cap > b.len);
	s = tp_buf_finish(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 5002);
	assert_int_equal(strlen(s), 5002);
	assert_int_equal(s[0], '<');
	assert_int_equal(s[5000], 'x');
	assert_int_equal(s[5001], '>');
	free(s);
}

static void
test_json_str(void **state)
{
	struct tp_buf b = TP_BUF_INIT;
	char *s;

	(void)state;
	tp_buf_puts(&b, "[");
	tp_buf_json_str(&b, "a\"b\\c\n\x01");
	tp_buf_puts(&b, ",");
	tp_buf_json_str(&b, NULL);
	tp_buf_puts(&b, ",");
	tp_buf_json_str(&b, "caf\xc3\xa9 \xff");
	tp_buf_puts(&b, ",");
	tp_buf_json_str(&b, "");
	tp_buf_puts(&b, "]");
	s = tp_buf_finish(&b, NULL);
	assert_non_null(s);
	assert_string_equal(s, "[\"a\\\"b\\\\c\\n\\u0001\",null,"
	    "\"caf\xc3\xa9 \\ufffd\",\"\"]");
	free(s);
}

static void
test_empty_finish(void **state)
{
	struct tp_buf b = TP_BUF_INIT;
	size_t len = 99;
	char *s;

	(void)state;
	s = tp_buf_finish(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
}

static void
test_oom_latch(void **state)
{
	struct tp_buf b = TP_BUF_INIT;
	size_t len = 99;

	(void)state;
	tp_buf_puts(&b, "kept until finish");
	/* A size no allocator grants: the latch, not a crash or a wrap. */
	assert_int_equal(tp_buf_reserve(&b, SIZE_MAX - 8), -1);
	assert_true(b.oom);
	tp_buf_puts(&b, "ignored");
	tp_buf_json_str(&b, "ignored");
	assert_int_equal(b.len, strlen("kept until finish"));
	assert_null(tp_buf_finish(&b, &len));
	assert_int_equal(len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appends_and_growth),
		cmocka_unit_test(test_json_str),
		cmocka_unit_test(test_empty_finish),
		cmocka_unit_test(test_oom_latch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
