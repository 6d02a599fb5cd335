/*
 * tp_url_split (tokenplace/url.h): scheme case, userinfo to the last '@'
 * before '?'/'#', [IPv6] hosts, ports (absent, empty, given), the rest,
 * and each refusal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tokenplace/url.h"

/* Asserts that [p, p+n) is exactly `want` (NULL: p is NULL). */
static void
part_is(const char *p, size_t n, const char *want)
{
	if (want == NULL) {
		assert_null(p);
		return;
	}
	assert_non_null(p);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

static void
test_plain(void **state)
{
	struct tp_url u;

	(void)state;
	assert_int_equal(tp_url_split("http://example.com", &u), TP_URL_OK);
	part_is(u.scheme, u.scheme_len, "http");
	part_is(u.userinfo, u.userinfo_len, NULL);
	part_is(u.host, u.host_len, "example.com");
	assert_false(u.host_ipv6);
	part_is(u.port, u.port_len, NULL);
	assert_string_equal(u.rest, "");

	assert_int_equal(tp_url_split("https://h.example:8443/a/b?c=d#e", &u),
	    TP_URL_OK);
	part_is(u.host, u.host_len, "h.example");
	part_is(u.port, u.port_len, "8443");
	assert_string_equal(u.rest, "/a/b?c=d#e");

	/* The rest starts at '?' or '#' too, with no '/' before it. */
	assert_int_equal(tp_url_split("http://h?q", &u), TP_URL_OK);
	part_is(u.host, u.host_len, "h");
	assert_string_equal(u.rest, "?q");
	assert_int_equal(tp_url_split("http://h:1#f", &u), TP_URL_OK);
	part_is(u.port, u.port_len, "1");
	assert_string_equal(u.rest, "#f");
}

static void
test_scheme_case(void **state)
{
	struct tp_url u;

	(void)state;
	assert_int_equal(tp_url_split("HTTP://h/", &u), TP_URL_OK);
	part_is(u.scheme, u.scheme_len, "HTTP");
	assert_true(tp_url_scheme_is(&u, "http"));
	assert_false(tp_url_scheme_is(&u, "https"));
	assert_false(tp_url_scheme_is(&u, "htt"));
	assert_int_equal(tp_url_split("ReDiS://h", &u), TP_URL_OK);
	assert_true(tp_url_scheme_is(&u, "redis"));
	assert_false(tp_url_scheme_is(&u, "rediss"));
	assert_int_equal(tp_url_split("svn+ssh.x-y://h", &u), TP_URL_OK);
	assert_true(tp_url_scheme_is(&u, "svn+ssh.x-y"));
}

static void
test_no_scheme(void **state)
{
	struct tp_url u;

	(void)state;
	assert_int_equal(tp_url_split("", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("example.com", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("http:/h", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("http:h", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("://h", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("1http://h", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("ht tp://h", &u), TP_URL_ENOSCHEME);
	assert_int_equal(tp_url_split("ht_tp://h", &u), TP_URL_ENOSCHEME);
}

static void
test_userinfo_last_at(void **state)
{
	struct tp_url u;

	(void)state;
	assert_int_equal(tp_url_split("redis://u:p@h:1/0", &u), TP_URL_OK);
	part_is(u.userinfo, u.userinfo_len, "u:p");
	part_is(u.host, u.host_len, "h");
	part_is(u.port, u.port_len, "1");
	assert_string_equal(u.rest, "/0");

	/* A password holding '@' and '/': the userinfo runs to the last '@'. */
	assert_int_equal(tp_url_split("redis://:p@s/w@rd@host/2", &u),
	    TP_URL_OK);
	part_is(u.userinfo, u.userinfo_len, ":p@s/w@rd");
	part_is(u.host, u.host_len, "host");
	assert_string_equal(u.rest, "/2");

	/* An '@' after '?' or '#' is not userinfo. */
	assert_int_equal(tp_url_split("http://h/p?a=b@c#d@e", &u), TP_URL_OK);
	part_is(u.userinfo, u.userinfo_len, NULL);
	part_is(u.host, u.host_len, "h");
	assert_string_equal(u.rest, "/p?a=b@c#d@e");

	/* Empty userinfo and a bare token. */
	assert_int_equal(tp_url_split("http://@h", &u), TP_URL_OK);
	part_is(u.userinfo, u.userinfo_len, "");
	part_is(u.host, u.host_len, "h");
	assert_int_equal(tp_url_split("https://tok@h", &u), TP_URL_OK);
	part_is(u.userinfo, u.userinfo_len, "tok");
}

static void
test_ipv6(void **state)
{
	struct tp_url u;

	(void)state;
	assert_int_equal(tp_url_split("http://[::1]:8080/x", &u), TP_URL_OK);
	part_is(u.host, u.host_len, "::1");
	assert_true(u.host_ipv6);
	part_is(u.port, u.port_len, "8080");
	assert_string_equal(u.rest, "/x");

	assert_int_equal(tp_url_split("redis://u:p@[fe80::1]", &u), TP_URL_OK);
	part_is(u.userinfo, u.userinfo_len, "u:p");
	part_is(u.host, u.host_len, "fe80::1");
	part_is(u.port, u.port_len, NULL);

	/* Empty brackets split; the caller refuses an empty host. */
	assert_int_equal(tp_url_split("http://[]", &u), TP_URL_OK);
	assert_true(u.host_ipv6);
	assert_int_equal(u.host_len, 0);

	assert_int_equal(tp_url_split("http://[::1", &u), TP_URL_EBRACKET);
	assert_int_equal(tp_url_split("http://[::1/x]", &u), TP_URL_EBRACKET);
	assert_int_equal(tp_url_split("http://[::1]x", &u), TP_URL_EJUNK);
	assert_int_equal(tp_url_split("http://[::1]]:1", &u), TP_URL_EJUNK);
}

static void
test_ports_and_empty_host(void **state)
{
	struct tp_url u;

	(void)state;
	/* An empty port is reported as such (given, length 0). */
	assert_int_equal(tp_url_split("http://h:/", &u), TP_URL_OK);
	assert_non_null(u.port);
	assert_int_equal(u.port_len, 0);
	assert_string_equal(u.rest, "/");
	/* The port is not checked here: the callers' policies differ. */
	assert_int_equal(tp_url_split("http://h:8x:9", &u), TP_URL_OK);
	part_is(u.host, u.host_len, "h");
	part_is(u.port, u.port_len, "8x:9");
	/* No host: a unix:// path URL, or a caller's "no host" refusal. */
	assert_int_equal(tp_url_split("unix:///run/r.sock?db=1", &u), TP_URL_OK);
	assert_int_equal(u.host_len, 0);
	assert_string_equal(u.rest, "/run/r.sock?db=1");
	assert_int_equal(tp_url_split("http://", &u), TP_URL_OK);
	assert_int_equal(u.host_len, 0);
	assert_string_equal(u.rest, "");
	assert_int_equal(tp_url_split("http://:80", &u), TP_URL_OK);
	assert_int_equal(u.host_len, 0);
	part_is(u.port, u.port_len, "80");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_scheme_case),
		cmocka_unit_test(test_no_scheme),
		cmocka_unit_test(test_userinfo_last_at),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_ports_and_empty_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
