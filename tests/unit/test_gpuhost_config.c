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
	/* token.place's server.py options; no relay.url: no --relay_ ones. */
	assert_false(cfg.relay_set);
	assert_true(cfg.args_default);
	assert_int_equal(cfg.mode_args, GPUHOST_CHECK_FAIL);
	assert_int_equal(cfg.mode_relay, GPUHOST_CHECK_WARN);
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, sizeof(args)), 0);
	assert_string_equal(args, "--server_host 0.0.0.0 --server_port 8000");
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, 10), -1);
	gpuhost_config_free(&cfg);

	/* Relative checkout and log dir: against the config file's directory. */
	assert_int_equal(parse("[python]\ncheckout = tp\nvenv = /opt/venv\n"
	    "script = app/main.py\nargs = --host {host} --port {port}\n"
	    "[log]\ndir = logs\n[network]\nport = 9001\n"
	    "host = 127.0.0.1\n", &cfg, &errs), 0);
	assert_string_equal(cfg.checkout_path, "/etc/tp/tp");
	assert_string_equal(cfg.venv_path, "/opt/venv");
	assert_string_equal(cfg.script_path, "/etc/tp/tp/app/main.py");
	assert_string_equal(cfg.log_path, "/etc/tp/logs");
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, sizeof(args)), 0);
	assert_string_equal(args, "--host 127.0.0.1 --port 9001");
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
test_relay_section(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;
	char args[512];

	(void)state;
	/* The port comes from the scheme; the default args gain the relay. */
	assert_int_equal(parse("[relay]\nurl = https://relay.mycluster.dev/\n"
	    "token = s3cret\n", &cfg, &errs), 0);
	assert_true(cfg.relay_set);
	assert_string_equal(cfg.relay.base, "https://relay.mycluster.dev");
	assert_int_equal(cfg.relay.port, 443);
	assert_string_equal(cfg.relay_token, "s3cret");
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, sizeof(args)), 0);
	assert_string_equal(args, "--server_host 0.0.0.0 --server_port 8000 "
	    "--relay_url https://relay.mycluster.dev --relay_port 443");
	gpuhost_config_free(&cfg);

	/* An explicit port; placeholders in the operator's own args. */
	assert_int_equal(parse("[relay]\nurl = http://10.0.0.5:5010\n"
	    "[python]\nargs = --relay {relay_url}:{relay_port} --p {port}\n",
	    &cfg, &errs), 0);
	assert_false(cfg.args_default);
	assert_int_equal(gpuhost_config_expand_args(&cfg, args, sizeof(args)), 0);
	assert_string_equal(args, "--relay http://10.0.0.5:5010 --p 8000");
	gpuhost_config_free(&cfg);

	/* Relay placeholders without relay.url cannot be expanded. */
	assert_int_equal(parse("[python]\nargs = --relay_url {relay_url}\n",
	    &cfg, &errs), -1);
	assert_true(has_error(&errs, "uses {relay_url}/{relay_port} but [relay] "
	    "url is not set"));
	gpuhost_config_free(&cfg);

	/* A bad URL is an error and leaves the relay unset. */
	assert_int_equal(parse("[relay]\nurl = ftp://relay\n", &cfg, &errs), -1);
	assert_true(has_error(&errs, "relay.url: must start with http://"));
	assert_false(cfg.relay_set);
	gpuhost_config_free(&cfg);

	/* The token has one place, and control characters are refused unseen. */
	assert_int_equal(parse("[environment]\nTOKEN_PLACE_RELAY_SERVER_TOKEN = x\n",
	    &cfg, &errs), -1);
	assert_true(has_error(&errs, "set the registration token as [relay] token"));
	gpuhost_config_free(&cfg);
	assert_int_equal(parse("[relay]\ntoken = \"ab\001cd\"\n", &cfg, &errs), -1);
	assert_true(has_error(&errs, "relay.token: contains a control character"));
	assert_false(has_error(&errs, "ab\001cd"));
	gpuhost_config_free(&cfg);
}

/* `config` shows that a secret is set, never the secret. */
static void
test_print_masks_secrets(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	(void)state;
	assert_int_equal(parse("[relay]\nurl = http://127.0.0.1:5010\n"
	    "token = tok-S3CRET-1\n[environment]\nHF_TOKEN = hf-S3CRET-2\n"
	    "HF_HOME = /srv/hf\n", &cfg, &errs), 0);
	fp = open_memstream(&text, &len);
	assert_non_null(fp);
	gpuhost_config_print(&cfg, fp);
	fclose(fp);
	assert_null(strstr(text, "S3CRET"));
	assert_non_null(strstr(text, "relay.token                      = <set>"));
	assert_non_null(strstr(text, "environment.HF_TOKEN"));
	assert_non_null(strstr(text, "/srv/hf"));
	assert_non_null(strstr(text, "# relay: --relay_url http://127.0.0.1 "
	    "--relay_port 5010\n"));
	free(text);
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

static void
test_gpu_box_settings(void **state)
{
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;
	char host[64];
	unsigned port = 0;

	(void)state;
	/* Defaults: production, gpu fails, metrics off, no data.dir. */
	assert_int_equal(parse("", &cfg, &errs), 0);
	assert_string_equal(gpuhost_config_tp_env(&cfg), "production");
	assert_int_equal(cfg.mode_environment, GPUHOST_CHECK_FAIL);
	assert_int_equal(cfg.mode_gpu, GPUHOST_CHECK_FAIL);
	assert_int_equal(cfg.mode_model, GPUHOST_CHECK_WARN);
	assert_string_equal(cfg.metrics_listen, "");
	assert_string_equal(cfg.nvml_library, "");
	assert_string_equal(cfg.data_path, "");
	assert_true(cfg.gpu_timeout == 60);
	assert_int_equal(cfg.metrics_max_request, 4096);
	assert_true(cfg.metrics_read_timeout == 2);
	assert_true(cfg.metrics_write_timeout == 5);
	gpuhost_config_free(&cfg);

	/* [environment] names the value (any case of the key). */
	assert_int_equal(parse("[environment]\ntoken_place_env = testing\n"
	    "[data]\ndir = models\n[metrics]\nlisten = [::1]:9108\n", &cfg,
	    &errs), 0);
	assert_string_equal(gpuhost_config_tp_env(&cfg), "testing");
	assert_string_equal(cfg.data_path, "/etc/tp/models");
	gpuhost_config_free(&cfg);

	/* data.dir writes TOKEN_PLACE_CONFIG: both at once is an error. */
	assert_int_equal(parse("[environment]\nTOKEN_PLACE_CONFIG = /x.json\n"
	    "[data]\ndir = /srv/models\n", &cfg, &errs), -1);
	assert_non_null(strstr(errs.msg[0], "both set"));
	gpuhost_config_free(&cfg);

	/* metrics.listen: an IP literal and a port 1-65535. */
	assert_int_equal(parse("[metrics]\nlisten = localhost:9108\n", &cfg,
	    &errs), -1);
	assert_non_null(strstr(errs.msg[0], "metrics.listen"));
	gpuhost_config_free(&cfg);
	assert_int_equal(parse("[metrics]\nlisten = 127.0.0.1:65536\n", &cfg,
	    &errs), -1);
	gpuhost_config_free(&cfg);
	assert_int_equal(parse("[checks]\ngpu_timeout = 0.5\n", &cfg, &errs),
	    -1);
	gpuhost_config_free(&cfg);
	assert_int_equal(parse("[metrics]\nmax_request = 100\n", &cfg, &errs),
	    -1);
	gpuhost_config_free(&cfg);

	assert_int_equal(gpuhost_listen_parse("0.0.0.0:9108", host,
	    sizeof(host), &port), 0);
	assert_string_equal(host, "0.0.0.0");
	assert_int_equal(port, 9108);
	assert_int_equal(gpuhost_listen_parse("[fe80::1]:1", host,
	    sizeof(host), &port), 0);
	assert_string_equal(host, "fe80::1");
	assert_int_equal(port, 1);
	assert_int_equal(gpuhost_listen_parse("::1:9108", host, sizeof(host),
	    &port), -1);
	assert_int_equal(gpuhost_listen_parse(":9108", host, sizeof(host),
	    &port), -1);
	assert_int_equal(gpuhost_listen_parse("1.2.3.4:", host, sizeof(host),
	    &port), -1);
	assert_int_equal(gpuhost_listen_parse("1.2.3.4:0", host, sizeof(host),
	    &port), -1);
	assert_int_equal(gpuhost_listen_parse("1.2.3.4:80x", host,
	    sizeof(host), &port), -1);
	assert_int_equal(gpuhost_listen_parse("[::1]9108", host, sizeof(host),
	    &port), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ini_dialect),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_defaults_and_paths),
		cmocka_unit_test(test_relay_section),
		cmocka_unit_test(test_print_masks_secrets),
		cmocka_unit_test(test_environment_section),
		cmocka_unit_test(test_invalid_values_reported),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_check_modes),
		cmocka_unit_test(test_argv_split),
		cmocka_unit_test(test_gpu_box_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
