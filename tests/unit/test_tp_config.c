/* Unit tests for tp_config, including the relay's own settings table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"
#include "tokenplace/config.h"

struct demo {
	int64_t port;
	double ratio;
	bool flag;
	char *name;
	char *secret;
};

static int
no_x(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;

	if (strchr(s, 'x') != NULL) {
		snprintf(reason, len, "must not contain x");
		return -1;
	}
	return 0;
}

static const struct tp_setting demo_table[] = {
	{ "port", "DEMO_PORT", "OLD_PORT", TP_SETTING_INT, "5010", 1, 65535,
	  offsetof(struct demo, port), NULL, 0, "port" },
	{ "ratio", "DEMO_RATIO", NULL, TP_SETTING_DOUBLE, "0.5", 0, 1,
	  offsetof(struct demo, ratio), NULL, 0, "ratio" },
	{ "flag", "DEMO_FLAG", NULL, TP_SETTING_BOOL, "false", 0, 0,
	  offsetof(struct demo, flag), NULL, 0, "flag" },
	{ "name", "DEMO_NAME", NULL, TP_SETTING_STRING, "relay", 1, 8,
	  offsetof(struct demo, name), no_x, 0, "name" },
	{ "secret", "DEMO_SECRET", NULL, TP_SETTING_STRING, "", 0, 64,
	  offsetof(struct demo, secret), NULL, TP_SETTING_SECRET, "secret" },
};
#define NDEMO (sizeof(demo_table) / sizeof(demo_table[0]))

/* A fake environment: NULL-terminated name/value pairs. */
static const char *
fake_env(void *ctx, const char *name)
{
	const char *const *kv = ctx;

	for (; kv[0] != NULL; kv += 2) {
		if (strcmp(kv[0], name) == 0)
			return kv[1];
	}
	return NULL;
}

static void
test_defaults(void **state)
{
	const char *env[] = { NULL };
	struct demo d;
	struct tp_config_report rep;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_config_load(demo_table, NDEMO, &d, fake_env,
	    (void *)env, NULL, 0, &rep), 0);
	assert_int_equal(d.port, 5010);
	assert_true(d.ratio == 0.5);
	assert_false(d.flag);
	assert_string_equal(d.name, "relay");
	assert_string_equal(d.secret, "");
	assert_int_equal(rep.sources[0], TP_CONFIG_SRC_DEFAULT);
	tp_config_free(demo_table, NDEMO, &d);
	assert_null(d.name);
}

static void
test_values_fallbacks_and_overrides(void **state)
{
	const char *env[] = { "OLD_PORT", " 8080 ", "DEMO_FLAG", "ON",
	    "DEMO_RATIO", "0.25", "DEMO_NAME", "", "DEMO_SECRET", "s3",
	    NULL };
	const struct tp_config_override ovr[] = { { "name", "cli" } };
	struct demo d;
	struct tp_config_report rep;
	char buf[64];

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_config_load(demo_table, NDEMO, &d, fake_env,
	    (void *)env, ovr, 1, &rep), 0);
	assert_int_equal(d.port, 8080);
	assert_int_equal(rep.sources[0], TP_CONFIG_SRC_ENV_FALLBACK);
	assert_true(d.flag);
	assert_true(d.ratio == 0.25);
	assert_string_equal(d.name, "cli");
	assert_int_equal(rep.sources[3], TP_CONFIG_SRC_FLAG);
	assert_string_equal(tp_config_format_value(&demo_table[4], &d, buf,
	    sizeof(buf)), "<set>");
	tp_config_free(demo_table, NDEMO, &d);
}

static void
test_every_invalid_value_reported(void **state)
{
	const char *env[] = { "DEMO_PORT", "70000", "DEMO_RATIO", "abc",
	    "DEMO_FLAG", "maybe", "DEMO_NAME", "xxxx", NULL };
	struct demo d;
	struct tp_config_report rep;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_config_load(demo_table, NDEMO, &d, fake_env,
	    (void *)env, NULL, 0, &rep), -1);
	assert_int_equal(rep.nerrors, 4);
	assert_string_equal(rep.errors[0].setting, "port");
	assert_string_equal(rep.errors[0].source, "DEMO_PORT");
	assert_non_null(strstr(rep.errors[0].reason, "70000"));
	assert_string_equal(rep.errors[1].setting, "ratio");
	assert_non_null(strstr(rep.errors[1].reason, "not a number"));
	assert_string_equal(rep.errors[2].setting, "flag");
	assert_string_equal(rep.errors[3].setting, "name");
	assert_string_equal(rep.errors[3].reason, "must not contain x");
	/* defaults stand in for every bad value */
	assert_int_equal(d.port, 5010);
	assert_true(d.ratio == 0.5);
	assert_false(d.flag);
	assert_string_equal(d.name, "relay");
	tp_config_free(demo_table, NDEMO, &d);
}

static void
test_int_parsing_edges(void **state)
{
	const char *bad[] = { "12abc", "", "1e3", "99999999999999999999999",
	    "0x10", "-1" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *env[] = { "DEMO_PORT", bad[i], NULL };
		struct demo d;
		struct tp_config_report rep;
		int rc;

		memset(&d, 0, sizeof(d));
		rc = tp_config_load(demo_table, NDEMO, &d, fake_env,
		    (void *)env, NULL, 0, &rep);
		/* empty means unset, everything else here is invalid */
		assert_int_equal(rc, bad[i][0] == '\0' ? 0 : -1);
		assert_int_equal(d.port, 5010);
		tp_config_free(demo_table, NDEMO, &d);
	}
}

static void
test_print(void **state)
{
	const char *env[] = { "DEMO_SECRET", "hunter2", "DEMO_PORT", "x", NULL };
	struct demo d;
	struct tp_config_report rep;
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_config_load(demo_table, NDEMO, &d, fake_env,
	    (void *)env, NULL, 0, &rep), -1);
	tp_config_print(demo_table, NDEMO, &d, &rep, fp);
	fclose(fp);
	assert_null(strstr(text, "hunter2"));
	assert_non_null(strstr(text, "<set>"));
	assert_non_null(strstr(text, "error: port (DEMO_PORT)"));
	free(text);
	tp_config_free(demo_table, NDEMO, &d);
}

static void
test_bool_spellings(void **state)
{
	const char *yes[] = { "1", "true", "YES", " on " };
	const char *no[] = { "0", "False", "no", "OFF" };
	bool b;

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(tp_config_parse_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(tp_config_parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	assert_int_equal(tp_config_parse_bool("2", &b), -1);
}

/* The relay's own table: every default parses and passes its validator. */
static void
test_relay_table_defaults_are_valid(void **state)
{
	const char *env[] = { NULL };
	struct relay_settings s;
	struct tp_config_report rep;

	(void)state;
	assert_true(relay_setting_count <= TP_CONFIG_MAX_SETTINGS);
	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_config_load(relay_setting_table,
	    relay_setting_count, &s, fake_env, (void *)env, NULL, 0, &rep), 0);
	assert_string_equal(s.host, "127.0.0.1");
	assert_int_equal(s.port, 5010);
	assert_string_equal(s.gpu_host, "gpu-server");
	assert_int_equal(s.gpu_port, 8000);
	assert_string_equal(s.state_url, "memory://");
	assert_true(s.legacy_routes);
	assert_false(s.require_upstream_health);
	assert_true(s.forward);
	relay_settings_free(&s);
}

static void
test_relay_table_rejects_bad_values(void **state)
{
	const char *env[] = { "RELAY_HOST", "::1", "RELAY_PORT", "abc",
	    "TOKENPLACE_LOG_LEVEL", "LOUD", "TOKENPLACE_RELAY_UPSTREAM_URL",
	    "ftp://x", "RELAY_STATE_URL", "mysql://x", "RELAY_THREADS", "1",
	    NULL };
	struct relay_settings s;
	struct tp_config_report rep;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_config_load(relay_setting_table,
	    relay_setting_count, &s, fake_env, (void *)env, NULL, 0, &rep), -1);
	assert_int_equal(rep.nerrors, 6);
	assert_string_equal(s.host, "127.0.0.1");
	assert_int_equal(s.threads, 64);
	relay_settings_free(&s);
}

/* URL schemes are case-insensitive (RFC 3986), as in every URL parser. */
static void
test_relay_table_url_scheme_any_case(void **state)
{
	const char *env[] = { "TOKENPLACE_RELAY_UPSTREAM_URL", "HTTP://Gpu:8000",
	    "RELAY_STATE_URL", "REDIS://valkey:6379/0", NULL };
	const char *bad[] = { "TOKENPLACE_RELAY_UPSTREAM_URL", "httpx://gpu",
	    "RELAY_STATE_URL", "REDISS://valkey", NULL };
	struct relay_settings s;
	struct tp_config_report rep;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_config_load(relay_setting_table,
	    relay_setting_count, &s, fake_env, (void *)env, NULL, 0, &rep), 0);
	assert_string_equal(s.upstream_url, "HTTP://Gpu:8000");
	assert_string_equal(s.state_url, "REDIS://valkey:6379/0");
	relay_settings_free(&s);
	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_config_load(relay_setting_table,
	    relay_setting_count, &s, fake_env, (void *)bad, NULL, 0, &rep), -1);
	assert_int_equal(rep.nerrors, 2);
	relay_settings_free(&s);
}

/* Reads what a function wrote to a tmpfile back as one string. */
static char *
slurp(FILE *fp)
{
	long n;
	char *text;

	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	text = calloc(1, (size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
	return text;
}

/* --list-settings' format: one JSON object per row, bounds by type. */
static void
test_list(void **state)
{
	static const struct tp_setting quoted[] = {
		{ "q", "Q_VAR", NULL, TP_SETTING_STRING, NULL, 0, 10, 0, NULL,
		  TP_SETTING_EMPTY_OK, "say \"hi\"\n\\" },
	};
	FILE *fp;
	char *text;

	(void)state;
	fp = tmpfile();
	assert_non_null(fp);
	assert_int_equal(tp_config_list(demo_table, NDEMO, fp), 0);
	text = slurp(fp);
	assert_string_equal(text,
	    "{\"name\":\"port\",\"env\":\"DEMO_PORT\",\"env_fallback\":\"OLD_PORT\","
	    "\"type\":\"int\",\"default\":\"5010\",\"min\":1,\"max\":65535,"
	    "\"secret\":false,\"empty_ok\":false,\"validated\":false,"
	    "\"help\":\"port\"}\n"
	    "{\"name\":\"ratio\",\"env\":\"DEMO_RATIO\",\"env_fallback\":null,"
	    "\"type\":\"double\",\"default\":\"0.5\",\"min\":0,\"max\":1,"
	    "\"secret\":false,\"empty_ok\":false,\"validated\":false,"
	    "\"help\":\"ratio\"}\n"
	    "{\"name\":\"flag\",\"env\":\"DEMO_FLAG\",\"env_fallback\":null,"
	    "\"type\":\"bool\",\"default\":\"false\",\"min\":null,\"max\":null,"
	    "\"secret\":false,\"empty_ok\":false,\"validated\":false,"
	    "\"help\":\"flag\"}\n"
	    "{\"name\":\"name\",\"env\":\"DEMO_NAME\",\"env_fallback\":null,"
	    "\"type\":\"string\",\"default\":\"relay\",\"min\":1,\"max\":8,"
	    "\"secret\":false,\"empty_ok\":false,\"validated\":true,"
	    "\"help\":\"name\"}\n"
	    "{\"name\":\"secret\",\"env\":\"DEMO_SECRET\",\"env_fallback\":null,"
	    "\"type\":\"string\",\"default\":\"\",\"min\":0,\"max\":64,"
	    "\"secret\":true,\"empty_ok\":false,\"validated\":false,"
	    "\"help\":\"secret\"}\n");
	free(text);
	fclose(fp);

	fp = tmpfile();
	assert_non_null(fp);
	assert_int_equal(tp_config_list(quoted, 1, fp), 0);
	text = slurp(fp);
	assert_string_equal(text,
	    "{\"name\":\"q\",\"env\":\"Q_VAR\",\"env_fallback\":null,"
	    "\"type\":\"string\",\"default\":\"\",\"min\":0,\"max\":10,"
	    "\"secret\":false,\"empty_ok\":true,\"validated\":false,"
	    "\"help\":\"say \\\"hi\\\"\\n\\\\\"}\n");
	free(text);
	fclose(fp);
}

/*
 * Forwarding is turned off by RELAY_FORWARD, not by the prefix list: an
 * empty RELAY_FORWARD_PREFIXES counts as unset, and a list with no prefix
 * in it is refused.
 */
static void
test_relay_forward_settings(void **state)
{
	const char *off[] = { "RELAY_FORWARD", "off", "RELAY_FORWARD_PREFIXES",
	    "", NULL };
	const char *commas[] = { "RELAY_FORWARD_PREFIXES", " , ", NULL };
	struct relay_settings s;
	struct tp_config_report rep;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_config_load(relay_setting_table,
	    relay_setting_count, &s, fake_env, (void *)off, NULL, 0, &rep), 0);
	assert_false(s.forward);
	assert_string_equal(s.forward_prefixes, "/api/v1/,/v1/");
	relay_settings_free(&s);

	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_config_load(relay_setting_table,
	    relay_setting_count, &s, fake_env, (void *)commas, NULL, 0, &rep),
	    -1);
	assert_int_equal(rep.nerrors, 1);
	assert_string_equal(rep.errors[0].source, "RELAY_FORWARD_PREFIXES");
	assert_non_null(strstr(rep.errors[0].reason, "RELAY_FORWARD=off"));
	assert_true(s.forward);
	assert_string_equal(s.forward_prefixes, "/api/v1/,/v1/");
	relay_settings_free(&s);
}

/*
 * The mask follows the parsers' rule (the userinfo ends at the last '@'
 * before '?' or '#'): generated passwords hold '/' and '@'.
 */
static void
expect_redacted_url(const char *url, const char *want)
{
	char buf[256];

	assert_string_equal(tp_config_redact_url(url, buf, sizeof(buf)), want);
}

static void
test_redact_url(void **state)
{
	char small[12];

	(void)state;
	expect_redacted_url("redis://:ab/cd@host:6379/0",
	    "redis://:***@host:6379/0");
	expect_redacted_url("redis://user:p@ss/w@rd@host/1",
	    "redis://user:***@host/1");
	expect_redacted_url("redis://:secret@127.0.0.1",
	    "redis://:***@127.0.0.1");
	expect_redacted_url("http://user:pass@gpu:8000",
	    "http://user:***@gpu:8000");
	expect_redacted_url("https://tok3n@gpu:8443/base",
	    "https://***@gpu:8443/base");
	expect_redacted_url("http://gpu:8000/a?next=x@y",
	    "http://gpu:8000/a?next=x@y");
	expect_redacted_url("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0");
	expect_redacted_url("memory://", "memory://");
	expect_redacted_url("unix:///run/redis.sock?db=2",
	    "unix:///run/redis.sock?db=2");
	expect_redacted_url("", "");
	/* A short buffer cuts the host, never uncovers the password. */
	assert_string_equal(tp_config_redact_url("redis://:pw/pw@host", small,
	    sizeof(small)), "redis://:**");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_fallbacks_and_overrides),
		cmocka_unit_test(test_every_invalid_value_reported),
		cmocka_unit_test(test_int_parsing_edges),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_bool_spellings),
		cmocka_unit_test(test_relay_table_defaults_are_valid),
		cmocka_unit_test(test_relay_table_rejects_bad_values),
		cmocka_unit_test(test_relay_table_url_scheme_any_case),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_relay_forward_settings),
		cmocka_unit_test(test_redact_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
