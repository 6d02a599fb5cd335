/*
 * The table of pre-flight checks (checks.c): the order they run and
 * report in, GPUHOST_CHECKS_NO_PORT, running one by name, `off` skipping
 * a check without running it, and each check reading its own mode. Only
 * the `env` check runs for real (it is pure: config in, verdict out); the
 * others are off, so nothing here touches the network, Python or a GPU.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "checks.h"
#include "config.h"

static const char *const order[] = { "python", "port", "dns", "firewall",
    "args", "relay", "env", "gpu", "model" };

#define ALL_OFF "[checks]\npython = off\nport = off\ndns = off\n" \
	"firewall = off\nargs = off\nrelay = off\ngpu = off\nmodel = off\n"

static void
load(const char *text, struct gpuhost_config *cfg)
{
	struct gpuhost_config_errors errs;

	assert_int_equal(gpuhost_config_parse(text, strlen(text),
	    "/etc/tp/gpuhost.ini", cfg, &errs), 0);
}

static void
test_order_and_skips(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_report r;

	(void)state;
	load(ALL_OFF "env = off\n", &cfg);
	gpuhost_checks_run(&cfg, 0, &r);
	assert_int_equal(r.n, 9);
	for (size_t i = 0; i < r.n; i++) {
		assert_string_equal(r.c[i].name, order[i]);
		assert_int_equal(r.c[i].mode, GPUHOST_CHECK_OFF);
		assert_int_equal(r.c[i].outcome, GPUHOST_SKIP);
		assert_string_equal(r.c[i].message, "");
		assert_null(r.c[i].details);
	}
	assert_int_equal(r.overall, GPUHOST_PASS);
	assert_int_equal(gpuhost_report_exit_code(&r), 0);
	gpuhost_report_free(&r);

	gpuhost_checks_run(&cfg, GPUHOST_CHECKS_NO_PORT, &r);
	assert_int_equal(r.n, 8);
	assert_string_equal(r.c[0].name, "python");
	assert_string_equal(r.c[1].name, "dns");
	assert_string_equal(r.c[7].name, "model");
	gpuhost_report_free(&r);
	gpuhost_config_free(&cfg);
}

static void
test_run_one(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_report r;

	(void)state;
	load(ALL_OFF "env = off\n", &cfg);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		gpuhost_checks_run_one(&cfg, order[i], &r);
		assert_int_equal(r.n, 1);
		assert_string_equal(r.c[0].name, order[i]);
		assert_int_equal(r.c[0].outcome, GPUHOST_SKIP);
		gpuhost_report_free(&r);
	}
	gpuhost_checks_run_one(&cfg, "environment", &r);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.overall, GPUHOST_PASS);
	gpuhost_report_free(&r);
	gpuhost_config_free(&cfg);
}

/* A debug environment on 0.0.0.0 is a raw FAIL; the env check's mode decides. */
#define DEBUG_ENV "[environment]\nTOKEN_PLACE_ENV = development\n"

static void
test_mode_of_its_own(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_report r;
	char *json;

	(void)state;
	load(ALL_OFF "env = fail\n" DEBUG_ENV, &cfg);
	gpuhost_checks_run(&cfg, 0, &r);
	assert_int_equal(r.n, 9);
	assert_string_equal(r.c[6].name, "env");
	assert_int_equal(r.c[6].mode, GPUHOST_CHECK_FAIL);
	assert_int_equal(r.c[6].outcome, GPUHOST_FAIL);
	assert_non_null(strstr(r.c[6].message, "TOKEN_PLACE_ENV=development"));
	assert_non_null(r.c[6].details);
	assert_int_equal(r.overall, GPUHOST_FAIL);
	assert_int_equal(gpuhost_report_exit_code(&r), 2);
	json = gpuhost_report_json(&r);
	assert_non_null(json);
	assert_non_null(strstr(json, "{\"result\":\"fail\",\"checks\":["
	    "{\"name\":\"python\",\"mode\":\"off\",\"outcome\":\"skip\","
	    "\"message\":\"\",\"details\":null}"));
	assert_non_null(strstr(json, "{\"name\":\"env\",\"mode\":\"fail\","
	    "\"outcome\":\"fail\",\"message\":\"TOKEN_PLACE_ENV=development"));
	assert_non_null(strstr(json, "\"details\":{\"token_place_env\":"
	    "\"development\",\"source\":\"environment\""));
	free(json);
	gpuhost_report_free(&r);
	gpuhost_config_free(&cfg);

	load(ALL_OFF "env = warn\n" DEBUG_ENV, &cfg);
	gpuhost_checks_run_one(&cfg, "env", &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.c[0].mode, GPUHOST_CHECK_WARN);
	assert_int_equal(r.c[0].outcome, GPUHOST_WARN);
	assert_int_equal(r.overall, GPUHOST_WARN);
	assert_int_equal(gpuhost_report_exit_code(&r), 1);
	gpuhost_report_free(&r);
	gpuhost_config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_skips),
		cmocka_unit_test(test_run_one),
		cmocka_unit_test(test_mode_of_its_own),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
