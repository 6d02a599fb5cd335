/*
 * Firewall decisions (pure C, shared with the Windows INetFwPolicy2 code):
 * LocalPorts lists, rule matching with block-wins, profiles, ufw output;
 * and the check-mode mapping of raw outcomes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "check.h"
#include "fwrules.h"

static void
test_port_lists(void **state)
{
	(void)state;
	assert_int_equal(gpuhost_ports_contain("*", 8000), 1);
	assert_int_equal(gpuhost_ports_contain("Any", 8000), 1);
	assert_int_equal(gpuhost_ports_contain("8000", 8000), 1);
	assert_int_equal(gpuhost_ports_contain("80,443", 8000), 0);
	assert_int_equal(gpuhost_ports_contain("80, 443 ,7990-8010", 8000), 1);
	assert_int_equal(gpuhost_ports_contain("8001-9000", 8000), 0);
	assert_int_equal(gpuhost_ports_contain("RPC,RPC-EPMap,IPHTTPS", 8000), 0);
	assert_int_equal(gpuhost_ports_contain("RPC,8000", 8000), 1);
	assert_int_equal(gpuhost_ports_contain("", 8000), 0);
	assert_int_equal(gpuhost_ports_contain("70000", 8000), -1);
	assert_int_equal(gpuhost_ports_contain("9000-8000", 8000), -1);
	assert_int_equal(gpuhost_ports_contain("80x", 80), -1);
}

#define EXE "C:\\Program Files\\tokenplace\\tokenplace-gpuhost.exe"

static void
test_rule_evaluation(void **state)
{
	struct gpuhost_fwrule rules[] = {
		/* 0: allow for python.exe only: does not cover our socket */
		{ "python", true, true, true, 6, "8000", GPUHOST_FW_ALL,
		    "C:\\Python311\\python.exe" },
		/* 1: allow any program, private only */
		{ "tp private", true, true, true, 6, "8000", GPUHOST_FW_PRIVATE, "" },
		/* 2: disabled block */
		{ "old block", false, true, false, 256, "*", GPUHOST_FW_ALL, NULL },
		/* 3: outbound allow on public */
		{ "outbound", true, false, true, 6, "8000", GPUHOST_FW_PUBLIC, NULL },
		/* 4: UDP allow on public */
		{ "udp", true, true, true, 17, "8000", GPUHOST_FW_PUBLIC, NULL },
		/* 5: allow our exe (case differs) on domain, port range */
		{ "tp domain", true, true, true, 256, "7000-9000", GPUHOST_FW_DOMAIN,
		    "c:\\program files\\TOKENPLACE\\tokenplace-gpuhost.exe" },
	};
	size_t n = sizeof(rules) / sizeof(rules[0]), which;

	(void)state;
	assert_int_equal(gpuhost_fw_evaluate(rules, n, 8000, GPUHOST_FW_PRIVATE,
	    EXE, &which), GPUHOST_FW_ALLOWED);
	assert_int_equal(which, 1);
	assert_int_equal(gpuhost_fw_evaluate(rules, n, 8000, GPUHOST_FW_DOMAIN,
	    EXE, &which), GPUHOST_FW_ALLOWED);
	assert_int_equal(which, 5);
	assert_int_equal(gpuhost_fw_evaluate(rules, n, 8000, GPUHOST_FW_PUBLIC,
	    EXE, &which), GPUHOST_FW_NO_RULE);
	assert_int_equal(which, (size_t)-1);
	assert_int_equal(gpuhost_fw_evaluate(rules, n, 9500, GPUHOST_FW_DOMAIN,
	    EXE, &which), GPUHOST_FW_NO_RULE);

	/* An enabled block rule wins over any allow. */
	rules[2].enabled = true;
	assert_int_equal(gpuhost_fw_evaluate(rules, n, 8000, GPUHOST_FW_PRIVATE,
	    EXE, &which), GPUHOST_FW_BLOCKED);
	assert_int_equal(which, 2);
}

static void
test_profiles(void **state)
{
	long m;

	(void)state;
	assert_int_equal(gpuhost_fw_profiles_parse("domain,private", &m), 0);
	assert_int_equal(m, GPUHOST_FW_DOMAIN | GPUHOST_FW_PRIVATE);
	assert_int_equal(gpuhost_fw_profiles_parse(" Public ", &m), 0);
	assert_int_equal(m, GPUHOST_FW_PUBLIC);
	assert_int_equal(gpuhost_fw_profiles_parse("all", &m), 0);
	assert_int_equal(m, GPUHOST_FW_ALL);
	assert_int_equal(gpuhost_fw_profiles_parse("home", &m), -1);
	assert_int_equal(gpuhost_fw_profiles_parse("", &m), -1);
	assert_string_equal(gpuhost_fw_profile_name(GPUHOST_FW_PRIVATE), "private");
}

static void
test_ufw_output(void **state)
{
	(void)state;
	assert_int_equal(gpuhost_ufw_allows("Status: inactive\n", 8000), 1);
	assert_int_equal(gpuhost_ufw_allows(
	    "Status: active\n\n"
	    "To                         Action      From\n"
	    "--                         ------      ----\n"
	    "22/tcp                     ALLOW       Anywhere\n"
	    "8000/tcp                   ALLOW       Anywhere\n"
	    "8000/tcp (v6)              ALLOW       Anywhere (v6)\n", 8000), 1);
	assert_int_equal(gpuhost_ufw_allows(
	    "Status: active\n\nTo Action From\n-- ------ ----\n"
	    "22/tcp ALLOW Anywhere\n", 8000), 0);
	assert_int_equal(gpuhost_ufw_allows(
	    "Status: active\n\nTo Action From\n-- ------ ----\n"
	    "7000:9000/tcp ALLOW Anywhere\n", 8000), 1);
	assert_int_equal(gpuhost_ufw_allows(
	    "Status: active\n\nTo Action From\n-- ------ ----\n"
	    "8000 DENY Anywhere\n8000/tcp ALLOW Anywhere\n", 8000), 0);
	assert_int_equal(gpuhost_ufw_allows(
	    "Status: active\n\nTo Action From\n-- ------ ----\n"
	    "8000/udp ALLOW Anywhere\n", 8000), 0);
	assert_int_equal(gpuhost_ufw_allows("ERROR: need to be root\n", 8000), -1);
}

static void
test_mode_mapping(void **state)
{
	(void)state;
	assert_int_equal(gpuhost_apply_mode(GPUHOST_CHECK_FAIL, GPUHOST_FAIL),
	    GPUHOST_FAIL);
	assert_int_equal(gpuhost_apply_mode(GPUHOST_CHECK_WARN, GPUHOST_FAIL),
	    GPUHOST_WARN);
	assert_int_equal(gpuhost_apply_mode(GPUHOST_CHECK_FAIL, GPUHOST_WARN),
	    GPUHOST_WARN);
	assert_int_equal(gpuhost_apply_mode(GPUHOST_CHECK_OFF, GPUHOST_FAIL),
	    GPUHOST_SKIP);
	assert_int_equal(gpuhost_apply_mode(GPUHOST_CHECK_FAIL, GPUHOST_UNKNOWN),
	    GPUHOST_UNKNOWN);
	assert_int_equal(gpuhost_apply_mode(GPUHOST_CHECK_WARN, GPUHOST_PASS),
	    GPUHOST_PASS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_lists),
		cmocka_unit_test(test_rule_evaluation),
		cmocka_unit_test(test_profiles),
		cmocka_unit_test(test_ufw_output),
		cmocka_unit_test(test_mode_mapping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
