/*
 * tp_netcheck: address parsing and classification, the DNS comparison,
 * name resolution through libnss-wrapper (hosts file in
 * tests/gpuhost/hosts.test, set up by CTest), port bind/owner and the TCP
 * connect probe on loopback with an ephemeral port.
 */
#define _DEFAULT_SOURCE 1
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "tokenplace/netcheck.h"

static void
addr(struct tp_netaddr_list *l, const char *text)
{
	assert_int_equal(tp_netaddr_parse(text, &l->a[l->n]), 0);
	l->n++;
}

static void
test_parse_and_classify(void **state)
{
	struct tp_netaddr a;

	(void)state;
	assert_int_equal(tp_netaddr_parse("127.0.1.1", &a), 0);
	assert_int_equal(a.family, TP_NETADDR_V4);
	assert_true(tp_netaddr_is_loopback(&a));
	assert_int_equal(tp_netaddr_parse("::1", &a), 0);
	assert_true(tp_netaddr_is_loopback(&a));
	assert_int_equal(tp_netaddr_parse("::ffff:127.0.0.2", &a), 0);
	assert_true(tp_netaddr_is_loopback(&a));
	assert_int_equal(tp_netaddr_parse("169.254.1.2", &a), 0);
	assert_true(tp_netaddr_is_linklocal(&a));
	assert_false(tp_netaddr_is_loopback(&a));
	assert_int_equal(tp_netaddr_parse("fe80::1", &a), 0);
	assert_true(tp_netaddr_is_linklocal(&a));
	assert_int_equal(tp_netaddr_parse("fec0::1", &a), 0);
	assert_false(tp_netaddr_is_linklocal(&a));
	assert_int_equal(tp_netaddr_parse("10.1.2.3", &a), 0);
	assert_false(tp_netaddr_is_linklocal(&a));
	assert_int_equal(tp_netaddr_parse("gpu-box", &a), -1);
	assert_int_equal(tp_netaddr_parse("300.1.1.1", &a), -1);
}

static void
test_compare_verdicts(void **state)
{
	struct tp_netaddr_list *res = calloc(1, sizeof(*res));
	struct tp_netaddr_list *loc = calloc(1, sizeof(*loc));
	size_t m = 99;

	(void)state;
	addr(loc, "127.0.0.1");
	addr(loc, "192.0.2.2");
	addr(loc, "fe80::1");
	addr(loc, "169.254.3.3");

	assert_int_equal(tp_netcheck_compare(res, loc, &m), TP_DNS_UNRESOLVED);
	assert_int_equal(m, (size_t)-1);

	addr(res, "198.51.100.7");
	assert_int_equal(tp_netcheck_compare(res, loc, &m), TP_DNS_NO_MATCH);

	/* Debian's 127.0.1.1 hostname entry is not on lo but still loopback. */
	addr(res, "127.0.1.1");
	assert_int_equal(tp_netcheck_compare(res, loc, &m), TP_DNS_MATCH_LOOPBACK);
	assert_int_equal(m, 1);

	addr(res, "169.254.3.3");
	assert_int_equal(tp_netcheck_compare(res, loc, &m), TP_DNS_MATCH_LINKLOCAL);
	assert_int_equal(m, 2);

	addr(res, "192.0.2.2");
	assert_int_equal(tp_netcheck_compare(res, loc, &m), TP_DNS_MATCH);
	assert_int_equal(m, 3);
	assert_string_equal(tp_dns_verdict_name(TP_DNS_MATCH), "match");
	assert_string_equal(tp_dns_verdict_name(TP_DNS_MATCH_LOOPBACK),
	    "match-loopback-only");
	free(res);
	free(loc);
}

static void
test_resolve_with_nss_wrapper(void **state)
{
	struct tp_netaddr_list *l = calloc(1, sizeof(*l));
	char err[256];

	(void)state;
	if (getenv("NSS_WRAPPER_HOSTS") == NULL) {
		free(l);
		skip();
	}
	assert_int_equal(tp_netcheck_resolve("elsewhere.gpuhost.test", l, err,
	    sizeof(err)), 0);
	assert_int_equal(l->n, 1);
	assert_string_equal(l->a[0].text, "192.0.2.10");

	assert_int_equal(tp_netcheck_resolve("dual.gpuhost.test", l, err,
	    sizeof(err)), 0);
	assert_int_equal(l->n, 2);
	assert_true((strcmp(l->a[0].text, "192.0.2.11") == 0 &&
	    strcmp(l->a[1].text, "2001:db8::11") == 0) ||
	    (strcmp(l->a[1].text, "192.0.2.11") == 0 &&
	    strcmp(l->a[0].text, "2001:db8::11") == 0));

	err[0] = '\0';
	assert_int_equal(tp_netcheck_resolve("nothing..gpuhost.test", l, err,
	    sizeof(err)), -1);
	assert_int_equal(l->n, 0);
	assert_true(err[0] != '\0');
	free(l);
}

static void
test_local_addrs_has_loopback(void **state)
{
	struct tp_netaddr_list *l = calloc(1, sizeof(*l));
	char err[256];
	bool lo = false;

	(void)state;
	assert_int_equal(tp_netcheck_local_addrs(l, err, sizeof(err)), 0);
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->a[i].text, "127.0.0.1") == 0) {
			lo = true;
			assert_true(l->a[i].ifname[0] != '\0');
		}
	}
	assert_true(lo);
	free(l);
}

static int
listen_ephemeral(uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(s >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s, 4), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return s;
}

static void
test_port_states_and_owner(void **state)
{
	struct tp_port_owner owner;
	char err[256];
	uint16_t port;
	int s;

	(void)state;
	s = listen_ephemeral(&port);
	assert_int_equal(tp_netcheck_port_bindable("127.0.0.1", port, err,
	    sizeof(err)), TP_PORT_IN_USE);
	assert_int_equal(tp_netcheck_port_owner(port, &owner), 0);
	assert_int_equal(owner.pid, (long)getpid());
	assert_non_null(strstr(owner.name, "test_gpuhost_netcheck"));
	assert_int_equal(tp_netcheck_tcp_connect("127.0.0.1", port, 2000, err,
	    sizeof(err)), 0);
	close(s);
	/* Free again once closed (SO_REUSEADDR ignores TIME_WAIT). */
	assert_int_equal(tp_netcheck_port_bindable("127.0.0.1", port, err,
	    sizeof(err)), TP_PORT_FREE);
	assert_int_equal(tp_netcheck_tcp_connect("127.0.0.1", port, 2000, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "refused"));
	assert_int_equal(tp_netcheck_port_bindable("not-an-ip", port, err,
	    sizeof(err)), TP_PORT_ERROR);
	assert_non_null(strstr(err, "not a numeric address"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_classify),
		cmocka_unit_test(test_compare_verdicts),
		cmocka_unit_test(test_resolve_with_nss_wrapper),
		cmocka_unit_test(test_local_addrs_has_loopback),
		cmocka_unit_test(test_port_states_and_owner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
