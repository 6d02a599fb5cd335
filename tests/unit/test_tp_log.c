/* Unit tests for tp_log: line shape, escaping, levels, one write per line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenplace/log.h"

/* Skips the timestamp so lines can be compared exactly. */
static const char *
after_timestamp(const char *line)
{
	const char *p = strstr(line, ",\"level\"");

	assert_non_null(p);
	return p;
}

static void
test_line_shape(void **state)
{
	char *line;
	const struct tp_log_field f[] = {
		TP_LSTR("s", "v"), TP_LINT("i", -42), TP_LUINT("u", 7),
		TP_LDBL("d", 12.5), TP_LBOOL("b", true), TP_LSTR("n", NULL),
		TP_LRAW("r", "[1,2]"),
	};

	(void)state;
	tp_log_init("tokenplace.test", TP_LOG_INFO, -1);
	line = tp_log_format(TP_LOG_WARNING, "unit.event", f, 7);
	assert_non_null(line);
	assert_memory_equal(line, "{\"timestamp\":\"", 14);
	/* 2026-11-27T03:07:51.123Z */
	assert_int_equal(line[14 + 4], '-');
	assert_int_equal(line[14 + 10], 'T');
	assert_int_equal(line[14 + 19], '.');
	assert_int_equal(line[14 + 23], 'Z');
	assert_string_equal(after_timestamp(line),
	    ",\"level\":\"WARNING\",\"logger\":\"tokenplace.test\","
	    "\"message\":\"unit.event\",\"s\":\"v\",\"i\":-42,\"u\":7,"
	    "\"d\":12.5,\"b\":true,\"n\":null,\"r\":[1,2]}\n");
	free(line);
}

static void
test_escaping(void **state)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	/* quote, backslash, controls, DEL, valid UTF-8 (é, 😀), invalid bytes,
	 * an overlong slash, a UTF-16 surrogate encoded in UTF-8, a NUL. */
	static const char in[] = "a\"b\\c\n\t\x01\x7f" "\xc3\xa9" "\xf0\x9f\x98\x80"
	    "\xff\xc3" "\xc0\xaf" "\xed\xa0\x80" "\0z";

	(void)state;
	assert_int_equal(tp_json_append_string(&buf, &len, &cap, in,
	    sizeof(in) - 1), 0);
	assert_string_equal(buf,
	    "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\xc3\xa9\xf0\x9f\x98\x80"
	    "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\u0000z\"");
	assert_int_equal(len, strlen(buf));
	free(buf);
}

static void
test_levels(void **state)
{
	enum tp_log_level l;

	(void)state;
	assert_int_equal(tp_log_level_parse(" debug ", &l), 0);
	assert_int_equal(l, TP_LOG_DEBUG);
	assert_int_equal(tp_log_level_parse("Warn", &l), 0);
	assert_int_equal(l, TP_LOG_WARNING);
	assert_int_equal(tp_log_level_parse("CRITICAL", &l), 0);
	assert_int_equal(l, TP_LOG_CRITICAL);
	assert_int_equal(tp_log_level_parse("verbose", &l), -1);
	assert_int_equal(tp_log_level_parse(NULL, &l), -1);

	tp_log_init("x", TP_LOG_WARNING, -1);
	assert_false(tp_log_enabled(TP_LOG_INFO));
	assert_true(tp_log_enabled(TP_LOG_ERROR));
	tp_log_set_level(TP_LOG_DEBUG);
	assert_true(tp_log_enabled(TP_LOG_DEBUG));
	assert_string_equal(tp_log_level_name(TP_LOG_ERROR), "ERROR");
}

static void
test_level_filter_writes_nothing(void **state)
{
	int fds[2];
	char buf[512];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	tp_log_init("x", TP_LOG_ERROR, fds[1]);
	TP_LOG(TP_LOG_INFO, "dropped", TP_LINT("k", 1));
	TP_LOG0(TP_LOG_ERROR, "kept");
	close(fds[1]);
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"message\":\"kept\""));
	assert_null(strstr(buf, "dropped"));
	close(fds[0]);
}

#define THREADS 8
#define LINES 500

static void *
writer(void *arg)
{
	char payload[6000];
	int id = (int)(intptr_t)arg;

	/* Longer than PIPE_BUF, so only the mutex keeps lines whole. */
	memset(payload, 'a' + id, sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int i = 0; i < LINES; i++)
		TP_LOG(TP_LOG_INFO, "t", TP_LINT("id", id), TP_LSTR("p", payload));
	return NULL;
}

static void
test_concurrent_lines_stay_whole(void **state)
{
	char path[] = "/tmp/tp_log_test_XXXXXX";
	int fd = mkstemp(path);
	pthread_t th[THREADS];
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int count = 0;

	(void)state;
	assert_true(fd >= 0);
	tp_log_init("x", TP_LOG_INFO, fd);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer,
		    (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	fp = fdopen(fd, "r");
	assert_non_null(fp);
	rewind(fp);
	while ((n = getline(&line, &cap, fp)) > 0) {
		const char *p = strstr(line, "\"p\":\"");
		char c;

		assert_non_null(p);
		c = p[5];
		/* the whole payload is one letter: no other line got inside */
		for (size_t k = 0; k < 5999; k++)
			assert_int_equal(p[5 + k], c);
		assert_string_equal(p + 5 + 5999, "\"}\n");
		count++;
	}
	assert_int_equal(count, THREADS * LINES);
	free(line);
	fclose(fp);
	unlink(path);
	tp_log_init("x", TP_LOG_INFO, -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_shape),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_level_filter_writes_nothing),
		cmocka_unit_test(test_concurrent_lines_stay_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
