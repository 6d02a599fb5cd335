/*
 * test_relay_reqline.c -- what civetweb's error callback keeps of a refused
 * request line (relay/src/http/reqline.c): the shapes civetweb 1.15 leaves in
 * request_method and request_uri when its parse stops half way, and that
 * no string is read past its bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/reqline.h"

static void
test_parsed_line_is_kept(void **state)
{
	struct relay_reqline rl;

	(void)state;
	assert_true(relay_reqline_copy(&rl, "POST", "/sink"));
	assert_string_equal(rl.method, "POST");
	assert_string_equal(rl.path, "/sink");
	/* the query is not part of the path, and is never read */
	assert_true(relay_reqline_copy(&rl, "GET", "/api/v1/meta?x=\x01\r\n"));
	assert_string_equal(rl.path, "/api/v1/meta");
	assert_true(relay_reqline_copy(&rl, "GET", "/a#frag"));
	assert_string_equal(rl.path, "/a");
	assert_true(relay_reqline_copy(&rl, "M-SEARCH", "/"));
	assert_string_equal(rl.method, "M-SEARCH");
}

static void
test_half_parsed_fields_are_dropped(void **state)
{
	struct relay_reqline rl;

	(void)state;
	/* "X\n\n": civetweb leaves the method with the line end in it */
	assert_false(relay_reqline_copy(&rl, "X\n", NULL));
	assert_string_equal(rl.method, "");
	assert_string_equal(rl.path, "");
	assert_string_equal(relay_reqline_or_dash(rl.method), "-");
	/* a target whose word was never terminated holds the rest */
	assert_false(relay_reqline_copy(&rl, "GET", "/x\r\nHost: a\r"));
	assert_string_equal(rl.method, "GET");
	assert_string_equal(rl.path, "");
	assert_false(relay_reqline_copy(&rl, "GET", "x"));
	assert_false(relay_reqline_copy(&rl, "GET", "http://a/b"));
	assert_false(relay_reqline_copy(&rl, "GET", "*"));
	assert_false(relay_reqline_copy(&rl, "GET", "/a b"));
	assert_false(relay_reqline_copy(&rl, "GET", "/\xc3\xa9"));
	assert_false(relay_reqline_copy(&rl, "G\"T", "/"));
	assert_string_equal(rl.path, "/");
	assert_false(relay_reqline_copy(&rl, "", "/"));
	assert_false(relay_reqline_copy(&rl, NULL, NULL));
	assert_string_equal(relay_reqline_or_dash(rl.path), "-");
	assert_string_equal(relay_reqline_or_dash(NULL), "-");
}

static void
test_long_fields_are_dropped(void **state)
{
	struct relay_reqline rl;
	char method[RELAY_REQLINE_METHOD_MAX + 2];
	char path[RELAY_REQLINE_PATH_MAX + 2];

	(void)state;
	memset(method, 'A', sizeof(method) - 1);
	method[sizeof(method) - 1] = '\0';
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_false(relay_reqline_copy(&rl, method, path));
	assert_string_equal(rl.method, "");
	assert_string_equal(rl.path, "");
	/* exactly at the bound: kept */
	method[RELAY_REQLINE_METHOD_MAX] = '\0';
	path[RELAY_REQLINE_PATH_MAX] = '\0';
	assert_true(relay_reqline_copy(&rl, method, path));
	assert_int_equal(strlen(rl.method), RELAY_REQLINE_METHOD_MAX);
	assert_int_equal(strlen(rl.path), RELAY_REQLINE_PATH_MAX);
}

/*
 * Strings that are not terminated before an unmapped page, as a reused
 * civetweb buffer would hold them: the copy reads at most its bound plus
 * one byte, so it stops before the page and never faults.
 */
static void
test_unterminated_strings_are_read_within_bound(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	char *map;
	struct relay_reqline rl;

	(void)state;
	assert_true(page >= RELAY_REQLINE_PATH_MAX + 2);
	map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	memset(map, 'A', (size_t)page);
	map[page - RELAY_REQLINE_PATH_MAX - 1] = '/';
	assert_false(relay_reqline_copy(&rl,
	    map + page - RELAY_REQLINE_METHOD_MAX - 1,
	    map + page - RELAY_REQLINE_PATH_MAX - 1));
	assert_string_equal(rl.method, "");
	assert_string_equal(rl.path, "");
	munmap(map, (size_t)page * 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parsed_line_is_kept),
		cmocka_unit_test(test_half_parsed_fields_are_dropped),
		cmocka_unit_test(test_long_fields_are_dropped),
		cmocka_unit_test(test_unterminated_strings_are_read_within_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
