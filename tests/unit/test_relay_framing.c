/*
 * test_relay_framing.c -- the RFC 9112 framing rules (relay/src/http/framing.c)
 * over header lists, each smuggling shape civetweb 1.15 lets through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/framing.h"

/* Verdict for a NULL-terminated list of name, value pairs. */
static enum relay_framing_verdict
check(const char *const *kv)
{
	struct relay_framing f;

	memset(&f, 0, sizeof(f));
	for (size_t i = 0; kv[i] != NULL; i += 2)
		relay_framing_add(&f, kv[i], kv[i + 1]);
	return relay_framing_verdict(&f);
}

static void
test_plain_requests_pass(void **state)
{
	static const char *const none[] = { "Host", "x", NULL };
	static const char *const cl[] = { "Host", "x", "Content-Length", "42", NULL };
	static const char *const cl0[] = { "content-length", " 0 ", NULL };
	static const char *const te[] = { "Transfer-Encoding", "chunked", NULL };
	static const char *const te_case[] = { "transfer-encoding", "\tChunked ", NULL };
	static const char *const max[] = { "Content-Length", "9223372036854775807", NULL };

	(void)state;
	assert_int_equal(check(none), RELAY_FRAMING_OK);
	assert_int_equal(check(cl), RELAY_FRAMING_OK);
	assert_int_equal(check(cl0), RELAY_FRAMING_OK);
	assert_int_equal(check(te), RELAY_FRAMING_OK);
	assert_int_equal(check(te_case), RELAY_FRAMING_OK);
	assert_int_equal(check(max), RELAY_FRAMING_OK);
}

static void
test_length_with_chunked_is_refused(void **state)
{
	static const char *const a[] = { "Content-Length", "5",
	    "Transfer-Encoding", "chunked", NULL };
	static const char *const b[] = { "Transfer-Encoding", "chunked",
	    "Content-Length", "0", NULL };
	static const char *const identity[] = { "Transfer-Encoding", "identity",
	    "Content-Length", "2", NULL };

	(void)state;
	assert_int_equal(check(a), RELAY_FRAMING_CL_WITH_TE);
	assert_int_equal(check(b), RELAY_FRAMING_CL_WITH_TE);
	assert_int_equal(check(identity), RELAY_FRAMING_CL_WITH_TE);
	assert_string_equal(relay_framing_kind(RELAY_FRAMING_CL_WITH_TE),
	    "framing_cl_with_te");
}

static void
test_repeated_length_is_refused_even_when_equal(void **state)
{
	static const char *const same[] = { "Content-Length", "3",
	    "content-length", "3", NULL };
	static const char *const differ[] = { "Content-Length", "2",
	    "Content-Length", "3", NULL };

	(void)state;
	assert_int_equal(check(same), RELAY_FRAMING_CL_REPEATED);
	assert_int_equal(check(differ), RELAY_FRAMING_CL_REPEATED);
}

static void
test_malformed_length_is_refused(void **state)
{
	static const char *const bad[] = { "", " ", "+5", "-1", "5abc", "0x10",
	    "1 2", "1,1", "9223372036854775808", "99999999999999999999999",
	    "\xd9\xa3", NULL };

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++) {
		const char *kv[] = { "Content-Length", bad[i], NULL };

		assert_int_equal(check(kv), RELAY_FRAMING_CL_INVALID);
	}
}

static void
test_transfer_coding_other_than_chunked_is_refused(void **state)
{
	static const char *const bad[] = { "gzip", "gzip, chunked",
	    "chunked, chunked", "identity", "chunked;x=1", "xchunked", "",
	    NULL };
	static const char *const twice[] = { "Transfer-Encoding", "chunked",
	    "Transfer-Encoding", "chunked", NULL };

	(void)state;
	for (size_t i = 0; bad[i] != NULL; i++) {
		const char *kv[] = { "Transfer-Encoding", bad[i], NULL };

		assert_int_equal(check(kv), RELAY_FRAMING_TE_UNSUPPORTED);
	}
	assert_int_equal(check(twice), RELAY_FRAMING_TE_UNSUPPORTED);
}

/*
 * civetweb stops at its 64th header line without an error: a head that
 * reaches the limit is refused before any other rule, since its framing
 * headers may be among the lines never parsed.
 */
static void
test_header_count_limit(void **state)
{
	struct relay_framing f;

	(void)state;
	for (unsigned n = 1; n <= 64; n++) {
		memset(&f, 0, sizeof(f));
		f.max_headers = RELAY_FRAMING_MAX_HEADERS;
		for (unsigned i = 0; i < n; i++)
			relay_framing_add(&f, "X-H", "v");
		assert_int_equal(relay_framing_verdict(&f),
		    n <= 63 ? RELAY_FRAMING_OK : RELAY_FRAMING_TOO_MANY_HEADERS);
	}
	/* before the framing rules, which would say 400 */
	relay_framing_add(&f, "Content-Length", "1");
	relay_framing_add(&f, "Content-Length", "2");
	assert_int_equal(relay_framing_verdict(&f),
	    RELAY_FRAMING_TOO_MANY_HEADERS);
	assert_int_equal(relay_framing_status(RELAY_FRAMING_TOO_MANY_HEADERS),
	    431);
	assert_int_equal(relay_framing_status(RELAY_FRAMING_CL_REPEATED), 400);
	assert_string_equal(relay_framing_kind(RELAY_FRAMING_TOO_MANY_HEADERS),
	    "too_many_headers");
	/* a lower limit, and none */
	memset(&f, 0, sizeof(f));
	f.max_headers = 2;
	relay_framing_add(&f, "A", "1");
	relay_framing_add(&f, "B", "2");
	assert_int_equal(relay_framing_verdict(&f), RELAY_FRAMING_OK);
	relay_framing_add(&f, "C", "3");
	assert_int_equal(relay_framing_verdict(&f),
	    RELAY_FRAMING_TOO_MANY_HEADERS);
	f.max_headers = 0;
	assert_int_equal(relay_framing_verdict(&f), RELAY_FRAMING_OK);
}

static void
test_every_verdict_has_kind_and_message(void **state)
{
	(void)state;
	assert_null(relay_framing_kind(RELAY_FRAMING_OK));
	for (int v = RELAY_FRAMING_CL_WITH_TE; v <= RELAY_FRAMING_TOO_MANY_HEADERS;
	    v++) {
		assert_non_null(relay_framing_kind((enum relay_framing_verdict)v));
		assert_non_null(relay_framing_message((enum relay_framing_verdict)v));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_requests_pass),
		cmocka_unit_test(test_length_with_chunked_is_refused),
		cmocka_unit_test(test_repeated_length_is_refused_even_when_equal),
		cmocka_unit_test(test_malformed_length_is_refused),
		cmocka_unit_test(test_transfer_coding_other_than_chunked_is_refused),
		cmocka_unit_test(test_header_count_limit),
		cmocka_unit_test(test_every_verdict_has_kind_and_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
