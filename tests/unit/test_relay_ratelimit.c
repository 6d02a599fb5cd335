/*
 * test_relay_ratelimit.c -- IP and CIDR parsing, client address behind
 * trusted proxies, the fixed-window limiter, and the registration-token
 * list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/auth.h"
#include "legacy/ratelimit.h"

static struct relay_ip
ip(const char *s)
{
	struct relay_ip a;

	assert_int_equal(relay_ip_parse(s, strlen(s), &a), 0);
	return a;
}

static void
test_ip_parse_and_format(void **state)
{
	struct relay_ip a;
	char buf[64];

	(void)state;
	a = ip("192.0.2.1");
	relay_ip_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.1");
	a = ip("2001:db8::1");
	relay_ip_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::1");
	assert_int_equal(relay_ip_parse("1.2.3", 5, &a), -1);
	assert_int_equal(relay_ip_parse("1.2.3.4 ", 8, &a), -1);
	assert_int_equal(relay_ip_parse("", 0, &a), -1);
	assert_int_equal(relay_ip_parse("example.com", 11, &a), -1);
	/* length is honoured: only "10.0.0.1" of the buffer is read */
	assert_int_equal(relay_ip_parse("10.0.0.1,junk", 8, &a), 0);
}

static void
test_cidr_lists(void **state)
{
	struct relay_cidr_list l;
	char err[128];
	struct relay_ip a;

	(void)state;
	assert_int_equal(relay_cidr_list_parse("", &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 0);
	a = ip("10.0.0.1");
	assert_false(relay_cidr_list_contains(&l, &a));
	relay_cidr_list_free(&l);

	assert_int_equal(relay_cidr_list_parse(" 10.0.0.0/8, 192.168.1.7\nfd00::/8 172.16.5.9/12",
	    &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, 4);
	a = ip("10.255.1.2");
	assert_true(relay_cidr_list_contains(&l, &a));
	a = ip("11.0.0.1");
	assert_false(relay_cidr_list_contains(&l, &a));
	a = ip("192.168.1.7");
	assert_true(relay_cidr_list_contains(&l, &a));
	a = ip("192.168.1.8");
	assert_false(relay_cidr_list_contains(&l, &a));
	a = ip("fd12::1");
	assert_true(relay_cidr_list_contains(&l, &a));
	a = ip("fe80::1");
	assert_false(relay_cidr_list_contains(&l, &a));
	a = ip("172.31.255.255");	/* host bits in the spec are ignored */
	assert_true(relay_cidr_list_contains(&l, &a));
	a = ip("172.32.0.0");
	assert_false(relay_cidr_list_contains(&l, &a));
	relay_cidr_list_free(&l);

	assert_int_equal(relay_cidr_list_parse("0.0.0.0/0", &l, err, sizeof(err)), 0);
	a = ip("8.8.8.8");
	assert_true(relay_cidr_list_contains(&l, &a));
	a = ip("::1");	/* an IPv4 /0 does not swallow IPv6 */
	assert_false(relay_cidr_list_contains(&l, &a));
	relay_cidr_list_free(&l);

	assert_int_equal(relay_cidr_list_parse("10.0.0.0/33", &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "10.0.0.0/33"));
	assert_int_equal(relay_cidr_list_parse("10.0.0.0/", &l, err, sizeof(err)), -1);
	assert_int_equal(relay_cidr_list_parse("10.0.0.0/-1", &l, err, sizeof(err)), -1);
	assert_int_equal(relay_cidr_list_parse("::/129", &l, err, sizeof(err)), -1);
	assert_int_equal(relay_cidr_list_parse("proxy.local", &l, err, sizeof(err)), -1);
}

static void
expect_client(const struct relay_cidr_list *l, const char *remote,
    const char *xff, const char *want)
{
	struct relay_ip got;
	char buf[64];

	assert_int_equal(relay_client_ip(l, remote, xff, &got), 0);
	relay_ip_format(&got, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void
test_client_ip_behind_proxies(void **state)
{
	struct relay_cidr_list none = { NULL, 0 }, l;
	struct relay_ip got;
	char err[64];

	(void)state;
	expect_client(&none, "10.0.0.1", "1.1.1.1", "10.0.0.1");
	assert_int_equal(relay_client_ip(&none, "nonsense", NULL, &got), -1);
	assert_int_equal(relay_client_ip(&none, NULL, NULL, &got), -1);
	assert_int_equal(relay_cidr_list_parse("10.0.0.0/8", &l, err, sizeof(err)), 0);
	/* untrusted peer: header ignored */
	expect_client(&l, "8.8.8.8", "1.1.1.1", "8.8.8.8");
	/* trusted peer without header */
	expect_client(&l, "10.0.0.1", NULL, "10.0.0.1");
	expect_client(&l, "10.0.0.1", "", "10.0.0.1");
	/* right-most untrusted entry wins; a client cannot prepend its way out */
	expect_client(&l, "10.0.0.1", "6.6.6.6, 2.2.2.2", "2.2.2.2");
	expect_client(&l, "10.0.0.1", "6.6.6.6,2.2.2.2, 10.9.9.9", "2.2.2.2");
	expect_client(&l, "10.0.0.1", "2001:db8::7", "2001:db8::7");
	/* all trusted: the left-most */
	expect_client(&l, "10.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1");
	/* garbage stops at the hop that appended it */
	expect_client(&l, "10.0.0.1", "1.1.1.1, garbage, 10.3.3.3", "10.3.3.3");
	expect_client(&l, "10.0.0.1", "garbage", "10.0.0.1");
	expect_client(&l, "10.0.0.1", " , ,3.3.3.3 ,", "3.3.3.3");
	relay_cidr_list_free(&l);
}

static void
test_fixed_window_limiter(void **state)
{
	struct relay_ratelimit *rl = relay_ratelimit_new(3, 10000, 2);
	struct relay_ip a = ip("1.1.1.1"), b = ip("2.2.2.2"), c = ip("3.3.3.3");
	int64_t wait;

	(void)state;
	assert_non_null(rl);
	assert_null(relay_ratelimit_new(0, 1000, 1));
	assert_null(relay_ratelimit_new(1, 0, 1));
	assert_int_equal(relay_ratelimit_hit(rl, &a, 20000, &wait), RELAY_RATE_ALLOW);
	assert_int_equal(relay_ratelimit_hit(rl, &a, 21000, &wait), RELAY_RATE_ALLOW);
	assert_int_equal(relay_ratelimit_hit(rl, &a, 22000, &wait), RELAY_RATE_ALLOW);
	assert_int_equal(relay_ratelimit_hit(rl, &a, 23500, &wait), RELAY_RATE_DENY);
	assert_int_equal(wait, 6500);
	assert_int_equal(relay_ratelimit_hit(rl, &b, 23500, &wait), RELAY_RATE_ALLOW);
	/* the table holds 2 clients: a third is let through untracked */
	assert_int_equal(relay_ratelimit_hit(rl, &c, 23500, &wait), RELAY_RATE_UNTRACKED);
	assert_int_equal(relay_ratelimit_tracked(rl), 2);
	/* a new window forgets everybody */
	assert_int_equal(relay_ratelimit_hit(rl, &a, 30000, &wait), RELAY_RATE_ALLOW);
	assert_int_equal(relay_ratelimit_tracked(rl), 1);
	assert_int_equal(relay_ratelimit_hit(rl, &c, 30000, &wait), RELAY_RATE_ALLOW);
	relay_ratelimit_free(rl);
}

static void
test_auth_tokens(void **state)
{
	struct relay_auth *a;

	(void)state;
	a = relay_auth_new(NULL, NULL);
	assert_non_null(a);
	assert_false(relay_auth_required(a));
	assert_true(relay_auth_check(a, NULL));
	relay_auth_free(a);
	a = relay_auth_new("  \t", " , \n");
	assert_false(relay_auth_required(a));
	relay_auth_free(a);

	a = relay_auth_new(" tok ", "one,two\n three \n");
	assert_true(relay_auth_required(a));
	assert_true(relay_auth_check(a, "tok"));
	assert_true(relay_auth_check(a, "\ttok\r\n"));
	assert_true(relay_auth_check(a, "one"));
	assert_true(relay_auth_check(a, "two"));
	assert_true(relay_auth_check(a, "three"));
	assert_false(relay_auth_check(a, NULL));
	assert_false(relay_auth_check(a, ""));
	assert_false(relay_auth_check(a, "   "));
	assert_false(relay_auth_check(a, "to"));
	assert_false(relay_auth_check(a, "tokk"));
	assert_false(relay_auth_check(a, "one,two"));
	assert_false(relay_auth_check(a, "Tok"));
	assert_false(relay_auth_check(a, "a-much-longer-value-than-any-token"));
	relay_auth_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ip_parse_and_format),
		cmocka_unit_test(test_cidr_lists),
		cmocka_unit_test(test_client_ip_behind_proxies),
		cmocka_unit_test(test_fixed_window_limiter),
		cmocka_unit_test(test_auth_tokens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
