/*
 * Unit tests for the pure parts of forwarding: prefix parsing and path
 * matching (upstream_rules.c), header filtering, metric labels, the
 * failure table, and the circuit breaker state machine (circuit.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "routes.h"
#include "upstream/circuit.h"
#include "upstream/upstream_rules.h"

static struct relay_fwd_prefixes
defaults(void)
{
	struct relay_fwd_prefixes p;
	char reason[128];

	assert_int_equal(relay_fwd_prefixes_parse(&p, "/api/v1/,/v1/", reason,
	    sizeof(reason)), 0);
	return p;
}

/* ---- prefixes ------------------------------------------------------------ */

static void
test_prefixes_parse_default_list(void **state)
{
	struct relay_fwd_prefixes p = defaults();

	(void)state;
	assert_int_equal(p.n, 2);
	assert_string_equal(p.p[0], "/api/v1/");
	assert_string_equal(p.p[1], "/v1/");
}

static void
test_prefixes_parse_trims_blanks_and_empty_entries(void **state)
{
	struct relay_fwd_prefixes p;
	char reason[128];

	(void)state;
	assert_int_equal(relay_fwd_prefixes_parse(&p, "  /a/ ,, /b ,", reason,
	    sizeof(reason)), 0);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.p[0], "/a/");
	assert_string_equal(p.p[1], "/b");
}

/*
 * The parser itself accepts an empty list; the RELAY_FORWARD_PREFIXES
 * setting refuses one (test_tp_config), and RELAY_FORWARD=off is what turns
 * forwarding off (integration_forward).
 */
static void
test_prefixes_parse_empty_gives_none(void **state)
{
	struct relay_fwd_prefixes p;
	char reason[128];

	(void)state;
	assert_int_equal(relay_fwd_prefixes_parse(&p, "", reason,
	    sizeof(reason)), 0);
	assert_int_equal(p.n, 0);
	assert_false(relay_fwd_path_matches(&p, "/v1/models"));
	assert_int_equal(relay_fwd_prefixes_parse(&p, NULL, reason,
	    sizeof(reason)), 0);
	assert_int_equal(p.n, 0);
}

static void
test_prefixes_parse_rejects_bad_entries(void **state)
{
	struct relay_fwd_prefixes p;
	char reason[128] = "";
	char many[2048] = "";

	(void)state;
	assert_int_equal(relay_fwd_prefixes_parse(&p, "v1/", reason,
	    sizeof(reason)), -1);
	assert_non_null(strstr(reason, "start with '/'"));
	assert_int_equal(p.n, 0);
	assert_int_equal(relay_fwd_prefixes_parse(&p, "/v1/?x", reason,
	    sizeof(reason)), -1);
	assert_int_equal(relay_fwd_prefixes_parse(&p, "/v1/%2e", reason,
	    sizeof(reason)), -1);
	assert_int_equal(relay_fwd_prefixes_parse(&p, "/a /b", reason,
	    sizeof(reason)), -1);
	assert_non_null(strstr(reason, "commas"));
	for (int i = 0; i < RELAY_FWD_MAX_PREFIXES + 1; i++)
		strcat(many, "/x/,");
	assert_int_equal(relay_fwd_prefixes_parse(&p, many, reason,
	    sizeof(reason)), -1);
	assert_non_null(strstr(reason, "more than"));
	memset(many, 'a', 100);
	many[0] = '/';
	many[100] = '\0';
	assert_int_equal(relay_fwd_prefixes_parse(&p, many, reason,
	    sizeof(reason)), -1);
	assert_non_null(strstr(reason, "longer"));
}

/* ---- paths ---------------------------------------------------------------- */

static void
test_path_matches_forwarded_prefixes(void **state)
{
	struct relay_fwd_prefixes p = defaults();

	(void)state;
	assert_true(relay_fwd_path_matches(&p, "/v1/chat/completions"));
	assert_true(relay_fwd_path_matches(&p, "/api/v1/chat/completions"));
	assert_true(relay_fwd_path_matches(&p, "/v1/"));
	assert_false(relay_fwd_path_matches(&p, "/v1"));
	assert_false(relay_fwd_path_matches(&p, "/v2/models"));
	assert_false(relay_fwd_path_matches(&p, "/sink"));
	assert_false(relay_fwd_path_matches(&p, "/api/v10/x"));
	assert_false(relay_fwd_path_matches(&p, NULL));
}

static void
test_path_reserved_never_forwarded(void **state)
{
	struct relay_fwd_prefixes p;
	char reason[128];

	(void)state;
	/* Even a prefix that names them exactly cannot forward them. */
	assert_int_equal(relay_fwd_prefixes_parse(&p, "/", reason,
	    sizeof(reason)), 0);
	assert_false(relay_fwd_path_matches(&p, "/api/v1/relay"));
	assert_false(relay_fwd_path_matches(&p, "/api/v1/relay/"));
	assert_false(relay_fwd_path_matches(&p, "/api/v1/relay/servers/next"));
	assert_false(relay_fwd_path_matches(&p, "/api/v1/meta"));
	assert_false(relay_fwd_path_matches(&p, "/api/v1/version"));
	assert_false(relay_fwd_path_matches(&p, "/api/v1/version/"));
	assert_true(relay_fwd_path_matches(&p, "/api/v1/relayx"));
	assert_true(relay_fwd_path_matches(&p, "/api/v1/metadata"));
	assert_true(relay_fwd_path_reserved("/api/v1/relay/requests"));
	assert_false(relay_fwd_path_reserved("/v1/relay"));
}

static void
test_path_safe_rejects_dot_segments(void **state)
{
	(void)state;
	assert_true(relay_fwd_path_safe("/v1/chat/completions"));
	assert_true(relay_fwd_path_safe("/v1/models/llama-3.1.gguf"));
	assert_true(relay_fwd_path_safe("/v1/..."));
	assert_true(relay_fwd_path_safe("/v1/.hidden"));
	assert_true(relay_fwd_path_safe("/"));
	assert_false(relay_fwd_path_safe("/v1/../api/v1/relay/x"));
	assert_false(relay_fwd_path_safe("/v1/./models"));
	assert_false(relay_fwd_path_safe("/v1/.."));
	assert_false(relay_fwd_path_safe("/v1/%2e%2E/x"));
	assert_false(relay_fwd_path_safe("/v1/.%2e/x"));
	assert_false(relay_fwd_path_safe("/v1/..%2fx"));
	assert_false(relay_fwd_path_safe("/v1/..\\x"));
	assert_false(relay_fwd_path_safe("/v1/%2E"));
	assert_false(relay_fwd_path_safe("v1/models"));
	assert_false(relay_fwd_path_safe(""));
	assert_false(relay_fwd_path_safe(NULL));
}

static void
test_router_sends_unclaimed_prefixed_paths_to_forward(void **state)
{
	struct relay_fwd_prefixes p = defaults();
	const struct relay_route *r = NULL;
	const struct relay_route_table *t = relay_route_table(true);
	char allow[96];

	(void)state;
	relay_fwd_set_prefixes(&p);
	assert_int_equal(relay_route_match(t, "POST", "/v1/chat/completions", &r,
	    allow, sizeof(allow)), RELAY_ROUTE_FOUND);
	assert_ptr_equal(r, &relay_forward_route);
	assert_string_equal(r->endpoint, "forward");
	assert_false(r->flags & RELAY_ROUTE_JSON_BODY);
	/* Exact routes win; reserved paths are not forwarded. */
	assert_int_equal(relay_route_match(t, "GET", "/healthz", &r, allow,
	    sizeof(allow)), RELAY_ROUTE_FOUND);
	assert_ptr_not_equal(r, &relay_forward_route);
	(void)relay_route_match(t, "GET", "/api/v1/version", &r, allow,
	    sizeof(allow));
	assert_ptr_not_equal(r, &relay_forward_route);
	(void)relay_route_match(t, "POST", "/api/v1/relay/requests", &r, allow,
	    sizeof(allow));
	assert_ptr_not_equal(r, &relay_forward_route);
	assert_int_equal(relay_route_match(t, "TRACE", "/v1/embeddings", &r, allow,
	    sizeof(allow)), RELAY_ROUTE_BAD_METHOD);
	assert_non_null(strstr(allow, "POST"));
	/*
	 * The model list is the relay's own route (RELAY_MODELS_SOURCE=nodes)
	 * whatever the prefixes say; with "upstream" it is forwarded again,
	 * every method included.
	 */
	assert_int_equal(relay_route_match(t, "GET", "/v1/models", &r, allow,
	    sizeof(allow)), RELAY_ROUTE_FOUND);
	assert_string_equal(r->endpoint, "list_models");
	assert_int_equal(relay_route_match(t, "GET", "/api/v1/models/llama", &r,
	    allow, sizeof(allow)), RELAY_ROUTE_FOUND);
	assert_string_equal(r->endpoint, "get_model");
	assert_int_equal(relay_route_match(t, "POST", "/v1/models", &r, allow,
	    sizeof(allow)), RELAY_ROUTE_BAD_METHOD);
	t = relay_route_table(false);
	assert_int_equal(relay_route_match(t, "GET", "/v1/models", &r, allow,
	    sizeof(allow)), RELAY_ROUTE_FOUND);
	assert_ptr_equal(r, &relay_forward_route);
	assert_int_equal(relay_route_match(t, "POST", "/api/v1/models/llama", &r,
	    allow, sizeof(allow)), RELAY_ROUTE_FOUND);
	assert_ptr_equal(r, &relay_forward_route);
	t = relay_route_table(true);
	relay_fwd_set_prefixes(NULL);
	assert_int_equal(relay_route_match(t, "POST", "/v1/chat/completions", &r,
	    allow, sizeof(allow)), RELAY_ROUTE_NOT_FOUND);
}

/* ---- headers -------------------------------------------------------------- */

static void
test_hop_by_hop_headers_dropped(void **state)
{
	static const char *const hop[] = { "Connection", "keep-alive", "TE",
	    "Trailer", "transfer-encoding", "UPGRADE", "Proxy-Authorization",
	    "Proxy-Connection", "proxy-authenticate" };

	(void)state;
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
		assert_true(relay_fwd_header_is_hop(hop[i], NULL));
		assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST, hop[i],
		    NULL));
		assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, hop[i],
		    NULL));
	}
	assert_false(relay_fwd_header_is_hop("Authorization", NULL));
	assert_false(relay_fwd_header_is_hop("Proxy", NULL));
	assert_false(relay_fwd_header_is_hop("Trailers", NULL));
}

static void
test_relay_credentials_never_forwarded(void **state)
{
	static const char *const own[] = { "X-Relay-Server-Token",
	    "x-relay-server-token", "X-RELAY-SERVER-TOKEN", "X-Relay-Anything" };

	(void)state;
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		assert_true(relay_fwd_header_is_relay_credential(own[i]));
		assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST, own[i],
		    NULL));
	}
	/* end-to-end credentials of the upstream's own API pass */
	assert_true(relay_fwd_header_passes(RELAY_FWD_REQUEST, "Authorization",
	    NULL));
	assert_false(relay_fwd_header_is_relay_credential("X-Relayed"));
	assert_false(relay_fwd_header_is_relay_credential("Authorization"));
}

static void
test_headers_named_in_connection_dropped(void **state)
{
	(void)state;
	assert_true(relay_fwd_header_is_hop("X-Hop", "close, x-hop"));
	assert_true(relay_fwd_header_is_hop("x-other", " X-Hop ,X-Other "));
	assert_false(relay_fwd_header_is_hop("X-Ho", "X-Hop"));
	assert_false(relay_fwd_header_is_hop("X-Hop-2", "X-Hop"));
	assert_false(relay_fwd_header_is_hop("X-Hop", ""));
	assert_true(relay_fwd_header_passes(RELAY_FWD_REQUEST, "X-Keep",
	    "X-Hop"));
	assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "X-Hop",
	    "keep-alive, X-Hop"));
}

static void
test_proxy_owned_headers_by_direction(void **state)
{
	(void)state;
	/* Request: the relay sets these itself. */
	assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST, "Host", NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST, "content-length",
	    NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST, "Expect", NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST,
	    "X-Forwarded-For", NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_REQUEST, "X-Request-Id",
	    NULL));
	assert_true(relay_fwd_header_passes(RELAY_FWD_REQUEST, "Content-Type",
	    NULL));
	assert_true(relay_fwd_header_passes(RELAY_FWD_REQUEST, "Authorization",
	    NULL));
	assert_true(relay_fwd_header_passes(RELAY_FWD_REQUEST, "Accept", NULL));
	/* Response: framing and identity are the relay's. */
	assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "Content-Length",
	    NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "Content-Type",
	    NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "x-request-id",
	    NULL));
	assert_true(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "Host", NULL));
	assert_true(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "Cache-Control",
	    NULL));
	assert_true(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "Set-Cookie",
	    NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, "", NULL));
	assert_false(relay_fwd_header_passes(RELAY_FWD_RESPONSE, NULL, NULL));
}

/* ---- labels and failures ------------------------------------------------- */

static void
test_route_label_is_bounded(void **state)
{
	struct relay_fwd_prefixes p = defaults();
	char buf[96];

	(void)state;
	assert_string_equal(relay_fwd_route_label(&p, "/v1/chat/completions",
	    buf, sizeof(buf)), "/v1/chat/completions");
	assert_string_equal(relay_fwd_route_label(&p,
	    "/api/v1/chat/completions", buf, sizeof(buf)),
	    "/api/v1/chat/completions");
	assert_string_equal(relay_fwd_route_label(&p, "/v1/completions", buf,
	    sizeof(buf)), "/v1/completions");
	assert_string_equal(relay_fwd_route_label(&p, "/v1/models/llama", buf,
	    sizeof(buf)), "/v1/models");
	assert_string_equal(relay_fwd_route_label(&p, "/v1/modelsx", buf,
	    sizeof(buf)), "/v1/other");
	assert_string_equal(relay_fwd_route_label(&p, "/v1/random/junk/123",
	    buf, sizeof(buf)), "/v1/other");
	assert_string_equal(relay_fwd_route_label(&p, "/elsewhere", buf,
	    sizeof(buf)), "other");
	assert_string_equal(relay_fwd_route_label(&p, "/v1/chat/completions",
	    buf, 5), "/v1/");
}

static void
test_error_mapping(void **state)
{
	(void)state;
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_UNREACHABLE)->status, 502);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_BAD_RESPONSE)->status, 502);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_TOO_LARGE)->status, 502);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_HEADERS_TOO_LARGE)->status,
	    502);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_CONNECT_TIMEOUT)->status,
	    504);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_FIRST_BYTE_TIMEOUT)->status,
	    504);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_IDLE_TIMEOUT)->status, 504);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_TOTAL_TIMEOUT)->status, 504);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_CIRCUIT_OPEN)->status, 503);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_BODY_TOO_LARGE)->status,
	    413);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_BAD_REQUEST)->status, 400);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_INTERNAL)->status, 500);
	assert_int_equal(relay_fwd_error_for(RELAY_FWD_FAILURE_COUNT)->status,
	    500);
	assert_string_equal(relay_fwd_error_for(RELAY_FWD_CONNECT_TIMEOUT)->code,
	    "upstream_timeout");
	assert_string_equal(relay_fwd_error_for(RELAY_FWD_IDLE_TIMEOUT)->kind,
	    "upstream_idle_timeout");
	/* Only failures that say the upstream is broken trip the breaker. */
	assert_true(relay_fwd_error_for(RELAY_FWD_UNREACHABLE)->breaks_circuit);
	assert_true(relay_fwd_error_for(RELAY_FWD_CONNECT_TIMEOUT)->breaks_circuit);
	assert_true(relay_fwd_error_for(RELAY_FWD_FIRST_BYTE_TIMEOUT)->breaks_circuit);
	assert_false(relay_fwd_error_for(RELAY_FWD_CLIENT_GONE)->breaks_circuit);
	assert_false(relay_fwd_error_for(RELAY_FWD_TOO_LARGE)->breaks_circuit);
	assert_false(relay_fwd_error_for(RELAY_FWD_BODY_TOO_LARGE)->breaks_circuit);
	for (int f = 1; f < RELAY_FWD_FAILURE_COUNT; f++) {
		const struct relay_fwd_error *e = relay_fwd_error_for(
		    (enum relay_fwd_failure)f);

		assert_non_null(e->code);
		assert_non_null(e->kind);
		assert_non_null(e->message);
	}
}

static void
test_retry_after_rounds_up(void **state)
{
	(void)state;
	assert_int_equal(relay_fwd_retry_after_s(0), 1);
	assert_int_equal(relay_fwd_retry_after_s(-5), 1);
	assert_int_equal(relay_fwd_retry_after_s(1000), 1);
	assert_int_equal(relay_fwd_retry_after_s(1001), 2);
	assert_int_equal(relay_fwd_retry_after_s(9999), 10);
	assert_int_equal(relay_fwd_retry_after_s(1000LL * 1000 * 1000), 86400);
}

/* ---- circuit -------------------------------------------------------------- */

static void
test_circuit_opens_after_threshold_failures(void **state)
{
	struct relay_circuit c;
	int64_t retry = 0;

	(void)state;
	relay_circuit_init(&c, true, 3, 1000);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(relay_circuit_admit(&c, 0, &retry),
		    RELAY_CIRCUIT_ALLOW);
		relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW,
		    RELAY_CIRCUIT_FAILURE, 0);
		assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	}
	/* A success in between resets the count. */
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_SUCCESS, 0);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_FAILURE, 0);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_FAILURE, 0);
	assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_NEUTRAL, 0);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_FAILURE, 100);
	assert_int_equal(c.state, RELAY_CIRCUIT_OPEN);
	assert_int_equal(c.opened_count, 1);
	assert_int_equal(relay_circuit_admit(&c, 400, &retry),
	    RELAY_CIRCUIT_REJECT);
	assert_int_equal(retry, 700);
}

static void
test_circuit_half_open_single_probe(void **state)
{
	struct relay_circuit c;
	int64_t retry = 0;

	(void)state;
	relay_circuit_init(&c, true, 1, 1000);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_FAILURE, 0);
	assert_int_equal(relay_circuit_admit(&c, 999, &retry),
	    RELAY_CIRCUIT_REJECT);
	assert_int_equal(retry, 1);
	assert_int_equal(relay_circuit_admit(&c, 1000, &retry),
	    RELAY_CIRCUIT_PROBE);
	assert_int_equal(c.state, RELAY_CIRCUIT_HALF_OPEN);
	/* Only one probe at a time. */
	assert_int_equal(relay_circuit_admit(&c, 1001, &retry),
	    RELAY_CIRCUIT_REJECT);
	assert_true(retry > 0);
	/* A failed probe re-opens for a full period. */
	relay_circuit_result(&c, RELAY_CIRCUIT_PROBE, RELAY_CIRCUIT_FAILURE,
	    1500);
	assert_int_equal(c.state, RELAY_CIRCUIT_OPEN);
	assert_int_equal(relay_circuit_admit(&c, 2400, &retry),
	    RELAY_CIRCUIT_REJECT);
	assert_int_equal(retry, 100);
	assert_int_equal(relay_circuit_admit(&c, 2500, &retry),
	    RELAY_CIRCUIT_PROBE);
	/* A good probe closes it. */
	relay_circuit_result(&c, RELAY_CIRCUIT_PROBE, RELAY_CIRCUIT_SUCCESS,
	    2600);
	assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	assert_int_equal(relay_circuit_admit(&c, 2601, &retry),
	    RELAY_CIRCUIT_ALLOW);
}

static void
test_circuit_neutral_probe_frees_the_slot(void **state)
{
	struct relay_circuit c;
	int64_t retry = 0;

	(void)state;
	relay_circuit_init(&c, true, 1, 10);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_FAILURE, 0);
	assert_int_equal(relay_circuit_admit(&c, 10, &retry),
	    RELAY_CIRCUIT_PROBE);
	relay_circuit_result(&c, RELAY_CIRCUIT_PROBE, RELAY_CIRCUIT_NEUTRAL, 11);
	assert_int_equal(c.state, RELAY_CIRCUIT_HALF_OPEN);
	assert_int_equal(relay_circuit_admit(&c, 12, &retry),
	    RELAY_CIRCUIT_PROBE);
}

static void
test_circuit_follows_health(void **state)
{
	struct relay_circuit c;
	int64_t retry = 0;

	(void)state;
	relay_circuit_init(&c, true, 0, 5000);
	/* threshold 0: request failures alone never open it */
	for (int i = 0; i < 100; i++)
		relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW,
		    RELAY_CIRCUIT_FAILURE, i);
	assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	relay_circuit_health(&c, false, 1000);
	assert_int_equal(c.state, RELAY_CIRCUIT_OPEN);
	/* Still down: the open period is not extended. */
	relay_circuit_health(&c, false, 3000);
	assert_int_equal(relay_circuit_admit(&c, 3000, &retry),
	    RELAY_CIRCUIT_REJECT);
	assert_int_equal(retry, 3000);
	relay_circuit_health(&c, true, 3500);
	assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	assert_int_equal(relay_circuit_admit(&c, 3501, &retry),
	    RELAY_CIRCUIT_ALLOW);
	/* A probe whose verdict comes after health decided changes nothing. */
	relay_circuit_health(&c, false, 4000);
	assert_int_equal(relay_circuit_admit(&c, 9000, &retry),
	    RELAY_CIRCUIT_PROBE);
	relay_circuit_health(&c, true, 9001);
	relay_circuit_result(&c, RELAY_CIRCUIT_PROBE, RELAY_CIRCUIT_FAILURE,
	    9002);
	assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	assert_false(c.probe_in_flight);
}

static void
test_circuit_disabled_admits_all(void **state)
{
	struct relay_circuit c;
	int64_t retry = 0;

	(void)state;
	relay_circuit_init(&c, false, 1, 1000);
	relay_circuit_result(&c, RELAY_CIRCUIT_ALLOW, RELAY_CIRCUIT_FAILURE, 0);
	relay_circuit_health(&c, false, 0);
	assert_int_equal(c.state, RELAY_CIRCUIT_CLOSED);
	assert_int_equal(relay_circuit_admit(&c, 1, &retry),
	    RELAY_CIRCUIT_ALLOW);
	assert_string_equal(relay_circuit_state_name(RELAY_CIRCUIT_CLOSED),
	    "closed");
	assert_string_equal(relay_circuit_state_name(RELAY_CIRCUIT_OPEN), "open");
	assert_string_equal(relay_circuit_state_name(RELAY_CIRCUIT_HALF_OPEN),
	    "half_open");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefixes_parse_default_list),
		cmocka_unit_test(test_prefixes_parse_trims_blanks_and_empty_entries),
		cmocka_unit_test(test_prefixes_parse_empty_gives_none),
		cmocka_unit_test(test_prefixes_parse_rejects_bad_entries),
		cmocka_unit_test(test_path_matches_forwarded_prefixes),
		cmocka_unit_test(test_path_reserved_never_forwarded),
		cmocka_unit_test(test_path_safe_rejects_dot_segments),
		cmocka_unit_test(test_router_sends_unclaimed_prefixed_paths_to_forward),
		cmocka_unit_test(test_hop_by_hop_headers_dropped),
		cmocka_unit_test(test_relay_credentials_never_forwarded),
		cmocka_unit_test(test_headers_named_in_connection_dropped),
		cmocka_unit_test(test_proxy_owned_headers_by_direction),
		cmocka_unit_test(test_route_label_is_bounded),
		cmocka_unit_test(test_error_mapping),
		cmocka_unit_test(test_retry_after_rounds_up),
		cmocka_unit_test(test_circuit_opens_after_threshold_failures),
		cmocka_unit_test(test_circuit_half_open_single_probe),
		cmocka_unit_test(test_circuit_neutral_probe_frees_the_slot),
		cmocka_unit_test(test_circuit_follows_health),
		cmocka_unit_test(test_circuit_disabled_admits_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
