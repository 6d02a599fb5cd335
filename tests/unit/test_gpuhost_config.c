/*
 * gpuhost configuration: the INI dialect, the settings table (defaults,
 * bounds, unknown keys, cross-field rules, path resolution, [environment])
 * and argument splitting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cmdline.h"
#include "config.h"
#include "ini.h"

static void
test_ini_dialect(void **state)
{
	static const char text[] = "\xef\xbb\xbf; comment\r\n"
	    "# another\n"
	    "[Python]\n"
	    "  Script =  server.py  \n"
	    "args = \"--x 1 ; not a comment\"\r\n"
	    "\n"
	    "[ network ]\n"
	    "port=8001";
	struct gpuhost_ini ini;
	const struct gpuhost_ini_entry *e;
	char err[200];

	(void)state;
	assert_int_equal(gpuhost_ini_parse(text, sizeof(text) - 1, &ini, err,
	    sizeof(err)), 0);
	assert_int_equal(ini.n, 3);
	e = gpuhost_ini_find(&ini, "python", "SCRIPT");
	assert_non_null(e);
	assert_string_equal(e->value, "server.py");
	assert_int_equal(e->line, 4);
	e = gpuhost_ini_find(&ini, "python", "args");
	assert_string_equal(e->value, "--x 1 ; not a comment");
	e = gpuhost_ini_find(&ini, "network", "port");
	assert_string_equal(e->value, "8001");
	assert_null(gpuhost_ini_find(&ini, "network", "host"));
	gpuhost_ini_free(&ini);
}

static void
expect_ini_error(const char *text, const char *want)
{
	struct gpuhost_ini ini;
	char err[200] = "";

	assert_int_equal(gpuhost_ini_parse(text, strlen(text), &ini, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, want));
	gpuhost_ini_free(&ini);
}

static void
test_ini_errors(void **state)
{
	(void)state;
	expect_ini_error("key = 1\n", "line 1: key outside a [section]");
	expect_ini_error("[a]\nnot a pair\n", "line 2: expected key = value");
	expect_ini_error("[a\n", "line 1: section header without ']'");
	expect_ini_error("[a]\nx=1\n\nX = 2\n", "line 4: [a] X already set on line 2");
	expect_ini_error("[]\n", "empty section name");
	expect_ini_error("[a]\n = 3\n", "bad key");
}

static int
parse(const char *text, struct gpuhost_config *cfg,
    struct gpuhost_config_errors *errs)
{
	return gpuhost_config_parse(text, strlen(text), "/etc/tp/gpuhost.ini",
	    cfg, errs);
}

static void
test_defaults_and_paths(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;
	char args[256];

	(void)state;
	assert_int_equal(parse("[python]\ncheckout = /srv/token.place\n", &cfg,
	    &errs), 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(cfg.checkout_path, "/srv/token.place");
	assert_string_equal(cfg.venv_path, "/srv/token.place/.venv");
	assert_string_equal(cfg.script_path, "/srv/token.place/server.py");
	assert_string_equal(cfg.log_path, "/var/log/tokenplace-gpuhost");
	assert_int_equal(cfg.port, 8000);
	assert_string_equal(cfg.host, "0.0.0.0");
	assert_int_equal(cfg.mode_python, GPUHOST_CHECK_FAIL);
	assert_int_equal(cfg.mode_dns, GPUHOST_CHECK_WARN);
	assert_true(cfg.stop_grace > cfg.escalate_after);
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, sizeof(args)), 0);
	assert_string_equal(args, "--host 0.0.0.0 --port 8000");
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, 10), -1);
	gpuhost_config_free(&cfg);

	/* Relative checkout and log dir: against the config file's directory. */
	assert_int_equal(parse("[python]\ncheckout = tp\nvenv = /opt/venv\n"
	    "script = app/main.py\n[log]\ndir = logs\n[network]\nport = 9001\n"
	    "host = 127.0.0.1\n", &cfg, &errs), 0);
	assert_string_equal(cfg.checkout_path, "/etc/tp/tp");
	assert_string_equal(cfg.venv_path, "/opt/venv");
	assert_string_equal(cfg.script_path, "/etc/tp/tp/app/main.py");
	assert_string_equal(cfg.log_path, "/etc/tp/logs");
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, sizeof(args)), 0);
	assert_string_equal(args, "--host 127.0.0.1 --port 9001");
	gpuhost_config_free(&cfg);
}

static void
test_environment_section(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;

	(void)state;
	assert_int_equal(parse("[environment]\nHF_HOME = D:\\hf\n"
	    "CUDA_VISIBLE_DEVICES = 0\n", &cfg, &errs), 0);
	assert_int_equal(cfg.nenv, 2);
	assert_string_equal(cfg.env[0].name, "HF_HOME");
	assert_string_equal(cfg.env[0].value, "D:\\hf");
	assert_string_equal(cfg.env[1].name, "CUDA_VISIBLE_DEVICES");
	gpuhost_config_free(&cfg);
}

static bool
has_error(const struct gpuhost_config_errors *errs, const char *want)
{
	for (size_t i = 0; i < errs->n && i < GPUHOST_CONFIG_MAX_ERRORS; i++) {
		if (strstr(errs->msg[i], want) != NULL)
			return true;
	}
	return false;
}

static void
test_invalid_values_reported(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;

	(void)state;
	assert_int_equal(parse("[network]\nport = 70000\nhealth_path = health\n"
	    "[checks]\ndns = maybe\n[python]\nscirpt = x.py\n"
	    "[service]\nstop_grace = 2\nescalate_after = 5\n"
	    "restart_backoff_initial = 10\nrestart_backoff_max = 1\n"
	    "[log]\nlevel = loud\nconsole = perhaps\n", &cfg, &errs), -1);
	assert_true(has_error(&errs, "line 2: network.port"));
	assert_true(has_error(&errs, "checks.dns: must be fail, warn or off"));
	assert_true(has_error(&errs, "unknown setting [python] scirpt"));
	assert_true(has_error(&errs, "escalate_after (5) must be below"));
	assert_true(has_error(&errs, "restart_backoff_max (1) is below"));
	assert_true(has_error(&errs, "health_path must start with '/'"));
	assert_true(has_error(&errs, "log.level"));
	assert_true(has_error(&errs, "log.console"));
	/* The bad values fell back to their defaults. */
	assert_int_equal(cfg.port, 8000);
	assert_int_equal(cfg.mode_dns, GPUHOST_CHECK_WARN);
	gpuhost_config_free(&cfg);

	assert_int_equal(parse("[network\n", &cfg, &errs), -1);
	assert_true(has_error(&errs, "/etc/tp/gpuhost.ini: line 1"));
	gpuhost_config_free(&cfg);
}

static void
test_load_missing_file(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;

	(void)state;
	assert_int_equal(gpuhost_config_load("/nonexistent/gpuhost.ini", &cfg,
	    &errs), -1);
	assert_true(has_error(&errs, "cannot open config /nonexistent/gpuhost.ini"));
	gpuhost_config_free(&cfg);
}

static void
test_check_modes(void **state)
{
	enum gpuhost_check_mode m;

	(void)state;
	assert_int_equal(gpuhost_check_mode_parse("FAIL", &m), 0);
	assert_int_equal(m, GPUHOST_CHECK_FAIL);
	assert_int_equal(gpuhost_check_mode_parse("off", &m), 0);
	assert_int_equal(m, GPUHOST_CHECK_OFF);
	assert_int_equal(gpuhost_check_mode_parse("warning", &m), -1);
	assert_string_equal(gpuhost_check_mode_name(GPUHOST_CHECK_WARN), "warn");
}

static void
test_argv_split(void **state)
{
	struct gpuhost_argv a = { 0 };
	char err[100];

	(void)state;
	assert_int_equal(gpuhost_argv_split(&a, "  --host 0.0.0.0  --model "
	    "\"C:\\models\\my model\" --name 'a b' --q \"say \\\"hi\\\"\" x\"y\"z",
	    err, sizeof(err)), 0);
	assert_int_equal(a.argc, 9);
	assert_string_equal(a.argv[0], "--host");
	assert_string_equal(a.argv[3], "C:\\models\\my model");
	assert_string_equal(a.argv[5], "a b");
	assert_string_equal(a.argv[7], "say \"hi\"");
	assert_string_equal(a.argv[8], "xyz");
	assert_null(a.argv[9]);
	assert_int_equal(gpuhost_argv_split(&a, "\"\"", err, sizeof(err)), 0);
	assert_int_equal(a.argc, 10);
	assert_string_equal(a.argv[9], "");
	gpuhost_argv_free(&a);
	assert_int_equal(a.argc, 0);

	assert_int_equal(gpuhost_argv_split(&a, "--x \"open", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unterminated"));
	gpuhost_argv_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ini_dialect),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_defaults_and_paths),
		cmocka_unit_test(test_environment_section),
		cmocka_unit_test(test_invalid_values_reported),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_check_modes),
		cmocka_unit_test(test_argv_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
