/*
 * gpuhost's command-line check and relay settings, the pure parts:
 * relay.url -> --relay_url/--relay_port, options in --help text and on a
 * command line, and the token redaction of server.py's output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "helpopts.h"
#include "redact.h"
#include "relayurl.h"

static void
expect_url(const char *url, const char *base, unsigned port, bool given)
{
	struct gpuhost_relay_url u;
	char err[200] = "";

	if (gpuhost_relay_url_parse(url, &u, err, sizeof(err)) != 0)
		fail_msg("%s: %s", url, err);
	assert_string_equal(u.base, base);
	assert_int_equal(u.port, port);
	assert_int_equal(u.port_given, given);
}

static void
expect_bad_url(const char *url, const char *why)
{
	struct gpuhost_relay_url u;
	char err[200] = "";

	assert_int_equal(gpuhost_relay_url_parse(url, &u, err, sizeof(err)), -1);
	if (strstr(err, why) == NULL)
		fail_msg("%s: got \"%s\", want \"%s\"", url, err, why);
}

static void
test_relay_url(void **state)
{
	(void)state;
	expect_url("https://relay.mycluster.dev", "https://relay.mycluster.dev",
	    443, false);
	expect_url("http://10.0.0.5:5010", "http://10.0.0.5", 5010, true);
	expect_url("HTTP://Relay.Example:80/", "http://Relay.Example", 80, true);
	expect_url("http://relay", "http://relay", 80, false);
	expect_url("http://[::1]:5010", "http://[::1]", 5010, true);
	expect_url("https://[fd00::5]/", "https://[fd00::5]", 443, false);
	expect_bad_url("relay.example:5010", "must start with http://");
	expect_bad_url("ftp://relay", "must start with http://");
	expect_bad_url("https://relay/sink", "scheme://host[:port] only");
	expect_bad_url("https://relay?x=1", "scheme://host[:port] only");
	expect_bad_url("https://user:pw@relay", "user:password@ is not allowed");
	expect_bad_url("https://", "has no host");
	expect_bad_url("https://:5010", "has no host");
	expect_bad_url("https://relay:", "bad port");
	expect_bad_url("https://relay:0", "port must be 1..65535");
	expect_bad_url("https://relay:65536", "port must be 1..65535");
	expect_bad_url("https://relay:99999999999", "bad port");
	expect_bad_url("https://relay:50x", "bad port");
	expect_bad_url("https://re lay", "bad character in the host");
	expect_bad_url("https://[::1", "unterminated or empty [IPv6] host");
	expect_bad_url("https://[]:80", "unterminated or empty [IPv6] host");
	expect_bad_url("https://[::1]x", "bad port");
	expect_bad_url("https://[g::1]", "bad character in the [IPv6] host");
	/* Userinfo runs to the last '@' before '?' or '#' (tokenplace/url.h). */
	expect_bad_url("https://u:p/w@relay", "user:password@ is not allowed");
	expect_bad_url("HTTPS://tok@relay", "user:password@ is not allowed");
	expect_bad_url("https://relay/a@b", "user:password@ is not allowed");
	expect_url("Https://Relay:443", "https://Relay", 443, true);
}

/* argparse's help for token.place's server.py options. */
static const char tp_help[] =
    "usage: server.py [-h] [--server_host SERVER_HOST] [--server_port SERVER_PORT]\n"
    "                 [--relay_url RELAY_URL] [--relay_port RELAY_PORT]\n"
    "                 [--use_mock_llm]\n\n"
    "options:\n"
    "  -h, --help            show this help message and exit\n"
    "  --server_host SERVER_HOST\n"
    "  --server_port SERVER_PORT\n"
    "  --relay_url RELAY_URL\n"
    "                        the relay, e.g. http--like--words or a--b\n"
    "  --relay_port RELAY_PORT\n"
    "  --use_mock_llm        no model (see --server_port)\n";

static void
test_options_from_help(void **state)
{
	struct gpuhost_optset *s = calloc(1, sizeof(*s));
	char buf[256];

	(void)state;
	assert_non_null(s);
	gpuhost_opts_from_help(tp_help, s);
	assert_string_equal(gpuhost_optset_join(s, buf, sizeof(buf)),
	    "--server_host, --server_port, --relay_url, --relay_port, "
	    "--use_mock_llm, --help");
	/* "--" inside a word is not an option; "-h" is not long. */
	assert_false(gpuhost_optset_has(s, "--like--words"));
	assert_false(gpuhost_optset_has(s, "--b"));
	assert_false(gpuhost_optset_has(s, "-h"));
	/* Choices and alternatives in other help styles. */
	gpuhost_opts_from_help("  {--a|--b-c}  (--d_e=X),--f\n--\n---g", s);
	assert_string_equal(gpuhost_optset_join(s, buf, sizeof(buf)),
	    "--a, --b-c, --d_e, --f");
	gpuhost_opts_from_help("no options here -- at all", s);
	assert_int_equal(s->n, 0);
	/* A short buffer is cut with "...". */
	gpuhost_opts_from_help(tp_help, s);
	assert_string_equal(gpuhost_optset_join(s, buf, 30),
	    "--server_host, ...");
	free(s);
}

static void
test_missing_options(void **state)
{
	struct gpuhost_optset *offered = calloc(1, sizeof(*offered));
	struct gpuhost_optset *used = calloc(1, sizeof(*used));
	struct gpuhost_optset *missing = calloc(1, sizeof(*missing));
	char *wrong[] = { "--host", "0.0.0.0", "--port", "8000", "--host=x",
	    "-v", "--", "--after-the-end" };
	char *right[] = { "--server_host", "0.0.0.0", "--server_port=8000",
	    "--relay_url", "http://10.0.0.5", "--relay_port", "5010" };
	char buf[256];

	(void)state;
	assert_non_null(offered);
	assert_non_null(used);
	assert_non_null(missing);
	gpuhost_opts_from_help(tp_help, offered);
	gpuhost_opts_from_argv(8, wrong, used);
	assert_int_equal(used->n, 2);
	assert_int_equal(gpuhost_opts_missing(used, offered, missing), 2);
	assert_string_equal(gpuhost_optset_join(missing, buf, sizeof(buf)),
	    "--host, --port");
	gpuhost_opts_from_argv(7, right, used);
	assert_int_equal(used->n, 4);
	assert_int_equal(gpuhost_opts_missing(used, offered, missing), 0);
	gpuhost_opts_from_argv(0, right, used);
	assert_int_equal(gpuhost_opts_missing(used, offered, missing), 0);
	free(offered);
	free(used);
	free(missing);
}

static void
test_optset_limits(void **state)
{
	struct gpuhost_optset *s = calloc(1, sizeof(*s));
	char name[GPUHOST_OPT_LEN + 8];

	(void)state;
	assert_non_null(s);
	for (int i = 0; i < GPUHOST_OPTS_MAX + 10; i++) {
		snprintf(name, sizeof(name), "--o%d", i);
		gpuhost_optset_add(s, name, strlen(name));
	}
	assert_int_equal(s->n, GPUHOST_OPTS_MAX);
	memset(s, 0, sizeof(*s));
	memset(name, 'x', sizeof(name));
	name[0] = name[1] = '-';
	gpuhost_optset_add(s, name, GPUHOST_OPT_LEN);
	assert_int_equal(s->n, 0);
	gpuhost_optset_add(s, name, GPUHOST_OPT_LEN - 1);
	assert_int_equal(s->n, 1);
	free(s);
}

static void
expect_redacted(const char *line, const char *secret, const char *want)
{
	size_t n = 0;
	char *out = gpuhost_redact(line, strlen(line), secret, &n);

	assert_non_null(out);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	free(out);
}

static void
test_redact(void **state)
{
	(void)state;
	expect_redacted("token=abc and abcabc", "abc",
	    "token=<relay.token> and <relay.token><relay.token>");
	expect_redacted("X-Relay-Server-Token: s3cr3t", "s3cr3t",
	    "X-Relay-Server-Token: <relay.token>");
	expect_redacted("nothing to hide", "s3cr3t", "nothing to hide");
	expect_redacted("no secret configured", "", "no secret configured");
	expect_redacted("no secret configured", NULL, "no secret configured");
	expect_redacted("ab", "abc", "ab");
	expect_redacted("", "abc", "");
}

static void
test_option_value(void **state)
{
	char *const argv[] = { "--server_host", "0.0.0.0", "--relay_url=http://a",
	    "--relay_port", "443", "--server_host", "127.0.0.1",
	    "--relay_portx", "1", "--", "--relay_port", "80", "--last" };
	int argc = (int)(sizeof(argv) / sizeof(argv[0]));
	char buf[32];

	(void)state;
	/* The last occurrence wins, as in argparse. */
	assert_int_equal(gpuhost_argv_option_value(argc, argv, "--server_host",
	    buf, sizeof(buf)), 1);
	assert_string_equal(buf, "127.0.0.1");
	assert_int_equal(gpuhost_argv_option_value(argc, argv, "--relay_url",
	    buf, sizeof(buf)), 1);
	assert_string_equal(buf, "http://a");
	/* "--relay_portx" is another option; "--" ends the options. */
	assert_int_equal(gpuhost_argv_option_value(argc, argv, "--relay_port",
	    buf, sizeof(buf)), 1);
	assert_string_equal(buf, "443");
	/* No value after it, or absent. */
	assert_int_equal(gpuhost_argv_option_value(argc, argv, "--last", buf,
	    sizeof(buf)), 0);
	assert_int_equal(gpuhost_argv_option_value(argc, argv, "--use_mock_llm",
	    buf, sizeof(buf)), 0);
	/* Cut to the buffer. */
	assert_int_equal(gpuhost_argv_option_value(argc, argv, "--server_host",
	    buf, 4), 1);
	assert_string_equal(buf, "127");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_url),
		cmocka_unit_test(test_options_from_help),
		cmocka_unit_test(test_missing_options),
		cmocka_unit_test(test_optset_limits),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_option_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
