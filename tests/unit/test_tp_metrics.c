/*
 * Unit tests for tp_metrics: exact rendering (golden text), escaping,
 * value layout, child cap, name validation, concurrency, process metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokenplace/metrics.h"

#define DROPPED_HEADER \
	"# HELP tp_metrics_dropped_total Label sets refused because their " \
	"metric family was at its child cap.\n" \
	"# TYPE tp_metrics_dropped_total counter\n"

static const double default_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
	7.5, 10.0,
};
#define NDEFAULT (sizeof(default_buckets) / sizeof(default_buckets[0]))

static void
assert_render(struct tp_metrics_registry *reg, const char *expected)
{
	size_t len = 0;
	char *out = tp_metrics_render(reg, &len);

	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	if (strcmp(out, expected) != 0)
		fprintf(stderr, "--- expected\n%s--- got\n%s---\n", expected, out);
	assert_string_equal(out, expected);
	free(out);
}

static int
setup_registry(void **state)
{
	*state = tp_metrics_registry_new();
	return *state == NULL ? -1 : 0;
}

static int
teardown_registry(void **state)
{
	tp_metrics_registry_free(*state);
	return 0;
}

static void
test_empty_registry_renders_empty_text(void **state)
{
	assert_render(*state, "");
}

static void
test_counter_with_labels_golden(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "method", "code" };
	struct tp_counter *c;
	struct tp_counter_child *ch;

	c = tp_counter_new(reg, "http_requests_total", "Requests served.", 2,
	    labels);
	assert_non_null(c);
	tp_counter_inc(c, (const char *const[]){ "GET", "200" });
	tp_counter_inc(c, (const char *const[]){ "GET", "200" });
	tp_counter_add(c, (const char *const[]){ "POST", "500" }, 2.5);
	/* negative and NaN increments are ignored */
	tp_counter_add(c, (const char *const[]){ "GET", "200" }, -1.0);
	tp_counter_add(c, (const char *const[]){ "GET", "200" }, NAN);
	ch = tp_counter_child(c, (const char *const[]){ "GET", "200" });
	assert_non_null(ch);
	assert_true(tp_counter_child_value(ch) == 2.0);
	/* the same label set resolves to the same child */
	assert_ptr_equal(ch,
	    tp_counter_child(c, (const char *const[]){ "GET", "200" }));
	tp_counter_child_add(ch, 0.25);
	assert_true(tp_counter_child_value(ch) == 2.25);

	assert_render(reg,
	    "# HELP http_requests_total Requests served.\n"
	    "# TYPE http_requests_total counter\n"
	    "http_requests_total{method=\"GET\",code=\"200\"} 2.25\n"
	    "http_requests_total{method=\"POST\",code=\"500\"} 2.5\n"
	    DROPPED_HEADER
	    "tp_metrics_dropped_total{metric=\"http_requests_total\"} 0.0\n");
}

static double
fn_value(void *arg)
{
	return *(double *)arg;
}

static void
test_gauges_and_gauge_fn_golden(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "pool" };
	static double fnval = 12345.5;
	struct tp_gauge *plain, *pools;
	struct tp_gauge_child *ch;

	plain = tp_gauge_new(reg, "relay_inflight", "In-flight requests.", 0,
	    NULL);
	assert_non_null(plain);
	pools = tp_gauge_new(reg, "relay_pool_size", NULL, 1, labels);
	assert_non_null(pools);
	assert_int_equal(tp_gauge_fn_new(reg, "relay_uptime_seconds",
	    "Seconds since start.", fn_value, &fnval), 0);

	/* a label-less gauge exists (as 0) before its first update */
	assert_render(reg,
	    "# HELP relay_inflight In-flight requests.\n"
	    "# TYPE relay_inflight gauge\n"
	    "relay_inflight 0.0\n"
	    "# HELP relay_pool_size \n"
	    "# TYPE relay_pool_size gauge\n"
	    "# HELP relay_uptime_seconds Seconds since start.\n"
	    "# TYPE relay_uptime_seconds gauge\n"
	    "relay_uptime_seconds 12345.5\n"
	    DROPPED_HEADER
	    "tp_metrics_dropped_total{metric=\"relay_pool_size\"} 0.0\n");

	tp_gauge_set(plain, NULL, 7.0);
	tp_gauge_add(plain, NULL, -2.5);
	ch = tp_gauge_child(plain, NULL);
	assert_true(tp_gauge_child_value(ch) == 4.5);
	tp_gauge_set(pools, (const char *const[]){ "workers" }, 16);
	tp_gauge_add(pools, (const char *const[]){ "pollers" }, -3);
	fnval = -0.125;
	assert_render(reg,
	    "# HELP relay_inflight In-flight requests.\n"
	    "# TYPE relay_inflight gauge\n"
	    "relay_inflight 4.5\n"
	    "# HELP relay_pool_size \n"
	    "# TYPE relay_pool_size gauge\n"
	    "relay_pool_size{pool=\"workers\"} 16.0\n"
	    "relay_pool_size{pool=\"pollers\"} -3.0\n"
	    "# HELP relay_uptime_seconds Seconds since start.\n"
	    "# TYPE relay_uptime_seconds gauge\n"
	    "relay_uptime_seconds -0.125\n"
	    DROPPED_HEADER
	    "tp_metrics_dropped_total{metric=\"relay_pool_size\"} 0.0\n");
}

static void
test_histogram_default_buckets_golden(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "route" };
	struct tp_histogram *h;
	struct tp_histogram_child *ch;

	h = tp_histogram_new(reg, "relay_request_duration_seconds",
	    "Request duration.", 1, labels, NDEFAULT, default_buckets);
	assert_non_null(h);
	ch = tp_histogram_child(h, (const char *const[]){ "/sink" });
	assert_non_null(ch);
	tp_histogram_child_observe(ch, 0.005);	/* bounds are inclusive */
	tp_histogram_child_observe(ch, 0.3);
	tp_histogram_child_observe(ch, 0.75);
	tp_histogram_child_observe(ch, 12.0);	/* only in +Inf */
	tp_histogram_child_observe(ch, NAN);	/* ignored */
	tp_histogram_observe(h, (const char *const[]){ "/faucet" }, 1.0);

	assert_render(reg,
	    "# HELP relay_request_duration_seconds Request duration.\n"
	    "# TYPE relay_request_duration_seconds histogram\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.005\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.01\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.025\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.05\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.075\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.1\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.25\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.5\"} 2.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"0.75\"} 3.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"1.0\"} 3.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"2.5\"} 3.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"5.0\"} 3.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"7.5\"} 3.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"10.0\"} 3.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/sink\",le=\"+Inf\"} 4.0\n"
	    "relay_request_duration_seconds_sum{route=\"/sink\"} 13.055\n"
	    "relay_request_duration_seconds_count{route=\"/sink\"} 4.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.005\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.01\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.025\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.05\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.075\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.1\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.25\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.5\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"0.75\"} 0.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"1.0\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"2.5\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"5.0\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"7.5\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"10.0\"} 1.0\n"
	    "relay_request_duration_seconds_bucket{route=\"/faucet\",le=\"+Inf\"} 1.0\n"
	    "relay_request_duration_seconds_sum{route=\"/faucet\"} 1.0\n"
	    "relay_request_duration_seconds_count{route=\"/faucet\"} 1.0\n"
	    DROPPED_HEADER
	    "tp_metrics_dropped_total{metric=\"relay_request_duration_seconds\"} 0.0\n");
}

static void
test_histogram_without_labels_golden(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const double bounds[] = { -1.0, 0.0, 1e6 };
	struct tp_histogram *h;

	h = tp_histogram_new(reg, "queue_wait_seconds", "Wait.", 0, NULL, 3,
	    bounds);
	assert_non_null(h);
	tp_histogram_observe(h, NULL, -5.0);
	tp_histogram_observe(h, NULL, 0.0);
	tp_histogram_observe(h, NULL, 2e6);
	assert_render(reg,
	    "# HELP queue_wait_seconds Wait.\n"
	    "# TYPE queue_wait_seconds histogram\n"
	    "queue_wait_seconds_bucket{le=\"-1.0\"} 1.0\n"
	    "queue_wait_seconds_bucket{le=\"0.0\"} 2.0\n"
	    "queue_wait_seconds_bucket{le=\"1e+06\"} 2.0\n"
	    "queue_wait_seconds_bucket{le=\"+Inf\"} 3.0\n"
	    "queue_wait_seconds_sum 1.999995e+06\n"
	    "queue_wait_seconds_count 3.0\n");
}

static void
test_label_value_and_help_escaping_golden(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "v" };
	struct tp_counter *c;

	c = tp_counter_new(reg, "esc_total",
	    "Help with \\ backslash,\nnewline, \"quotes\" and UTF-8 \xc3\xa9.",
	    1, labels);
	assert_non_null(c);
	tp_counter_inc(c, (const char *const[]){ "say \"hi\"" });
	tp_counter_inc(c, (const char *const[]){ "C:\\path\\" });
	tp_counter_inc(c, (const char *const[]){ "line1\nline2" });
	tp_counter_inc(c, (const char *const[]){ "\\n is not a newline" });
	tp_counter_inc(c, (const char *const[]){ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" });
	tp_counter_inc(c, (const char *const[]){ "tab\there,{}=" });
	tp_counter_inc(c, (const char *const[]){ "" });
	/* invalid UTF-8: every bad byte becomes U+FFFD */
	tp_counter_inc(c, (const char *const[]){ "a\xff" "b\x80\xc0\xaf" });
	/* and equal-after-repair values share the child */
	tp_counter_inc(c, (const char *const[]){ "a\xfe" "b\x81\xc1\xbf" });

	assert_render(reg,
	    "# HELP esc_total Help with \\\\ backslash,\\nnewline, \"quotes\" "
	    "and UTF-8 \xc3\xa9.\n"
	    "# TYPE esc_total counter\n"
	    "esc_total{v=\"say \\\"hi\\\"\"} 1.0\n"
	    "esc_total{v=\"C:\\\\path\\\\\"} 1.0\n"
	    "esc_total{v=\"line1\\nline2\"} 1.0\n"
	    "esc_total{v=\"\\\\n is not a newline\"} 1.0\n"
	    "esc_total{v=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"} 1.0\n"
	    "esc_total{v=\"tab\there,{}=\"} 1.0\n"
	    "esc_total{v=\"\"} 1.0\n"
	    "esc_total{v=\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 2.0\n"
	    DROPPED_HEADER
	    "tp_metrics_dropped_total{metric=\"esc_total\"} 0.0\n");
}

static void
test_long_label_value_truncated_on_char_boundary(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "v" };
	struct tp_gauge *g;
	char value[3000], expected[4096], *out;
	size_t o = 0;

	g = tp_gauge_new(reg, "long_value", "h", 1, labels);
	assert_non_null(g);
	/* "x" then two-byte characters: the cut falls inside one of them */
	value[o++] = 'x';
	while (o + 2 < sizeof(value)) {
		value[o++] = '\xc3';
		value[o++] = '\xa9';
	}
	value[o] = '\0';
	tp_gauge_set(g, (const char *const[]){ value }, 1);
	/* a value with the same first TP_METRICS_MAX_LABEL_VALUE_LEN bytes */
	value[2000] = '\0';
	tp_gauge_add(g, (const char *const[]){ value }, 1);

	o = (size_t)snprintf(expected, sizeof(expected),
	    "long_value{v=\"");
	memcpy(expected + o, value, TP_METRICS_MAX_LABEL_VALUE_LEN - 1);
	o += TP_METRICS_MAX_LABEL_VALUE_LEN - 1;
	snprintf(expected + o, sizeof(expected) - o, "\"} 2.0\n");

	out = tp_metrics_render(reg, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, expected));
	free(out);
}

/* Shortest round-trip digits, laid out as prometheus_client does. */
static void
test_value_formatting_matches_python_client(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0.0, "0.0" },
		{ -0.0, "-0.0" },
		{ 1.0, "1.0" },
		{ -5.0, "-5.0" },
		{ 0.1, "0.1" },
		{ 0.30000000000000004, "0.30000000000000004" },
		{ 0.0001, "0.0001" },
		{ 1e-05, "1e-05" },
		{ -1.5e-07, "-1.5e-07" },
		{ 100000.0, "100000.0" },
		{ 123456.75, "123456.75" },
		{ 1e6, "1e+06" },
		{ 1234567.0, "1.234567e+06" },
		{ 1234567.5, "1.2345675e+06" },
		{ -1234567.0, "-1234567.0" },
		{ 1e15, "1e+015" },
		{ 9007199254740992.0, "9.007199254740992e+015" },
		{ 1e16, "1e+16" },
		{ 1.5e300, "1.5e+300" },
		{ 5e-324, "5e-324" },
		{ 1.7976931348623157e308, "1.7976931348623157e+308" },
		{ INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" },
		{ NAN, "NaN" },
	};
	struct tp_gauge *g = tp_gauge_new(reg, "fmt", "", 0, NULL);
	char expected[128];

	assert_non_null(g);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out;

		tp_gauge_set(g, NULL, cases[i].v);
		snprintf(expected, sizeof(expected),
		    "# HELP fmt \n# TYPE fmt gauge\nfmt %s\n", cases[i].text);
		out = tp_metrics_render(reg, NULL);
		assert_non_null(out);
		assert_string_equal(out, expected);
		free(out);
	}
}

static void
test_child_cap_counts_dropped(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "id" };
	struct tp_counter *c;
	struct tp_gauge *g;
	struct tp_histogram *h;
	char id[16];
	size_t created = 0;

	c = tp_counter_new(reg, "capped_total", "h", 1, labels);
	g = tp_gauge_new(reg, "capped_gauge", "h", 1, labels);
	h = tp_histogram_new(reg, "capped_hist", "h", 1, labels, 1,
	    (const double[]){ 1.0 });
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(h);
	tp_counter_set_max_children(c, 3);
	tp_gauge_set_max_children(g, 1);
	tp_histogram_set_max_children(h, 2);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "id%d", i);
		if (tp_counter_child(c, (const char *const[]){ id }) != NULL)
			created++;
		tp_counter_inc(c, (const char *const[]){ id });
		tp_gauge_set(g, (const char *const[]){ id }, i);
		tp_histogram_observe(h, (const char *const[]){ id }, 0.5);
	}
	assert_int_equal(created, 3);
	/* existing children still resolve at the cap */
	assert_non_null(tp_counter_child(c, (const char *const[]){ "id0" }));
	assert_null(tp_counter_child(c, (const char *const[]){ "id4" }));

	assert_render(reg,
	    "# HELP capped_total h\n"
	    "# TYPE capped_total counter\n"
	    "capped_total{id=\"id0\"} 1.0\n"
	    "capped_total{id=\"id1\"} 1.0\n"
	    "capped_total{id=\"id2\"} 1.0\n"
	    "# HELP capped_gauge h\n"
	    "# TYPE capped_gauge gauge\n"
	    "capped_gauge{id=\"id0\"} 0.0\n"
	    "# HELP capped_hist h\n"
	    "# TYPE capped_hist histogram\n"
	    "capped_hist_bucket{id=\"id0\",le=\"1.0\"} 1.0\n"
	    "capped_hist_bucket{id=\"id0\",le=\"+Inf\"} 1.0\n"
	    "capped_hist_sum{id=\"id0\"} 0.5\n"
	    "capped_hist_count{id=\"id0\"} 1.0\n"
	    "capped_hist_bucket{id=\"id1\",le=\"1.0\"} 1.0\n"
	    "capped_hist_bucket{id=\"id1\",le=\"+Inf\"} 1.0\n"
	    "capped_hist_sum{id=\"id1\"} 0.5\n"
	    "capped_hist_count{id=\"id1\"} 1.0\n"
	    DROPPED_HEADER
	    /* counter: 2 refused child() + 2 refused inc() + the id4 probe */
	    "tp_metrics_dropped_total{metric=\"capped_total\"} 5.0\n"
	    "tp_metrics_dropped_total{metric=\"capped_gauge\"} 4.0\n"
	    "tp_metrics_dropped_total{metric=\"capped_hist\"} 3.0\n");

	/* raising the cap (0 = default) lets new label sets in again */
	tp_counter_set_max_children(c, 0);
	assert_non_null(tp_counter_child(c, (const char *const[]){ "id4" }));
}

static void
test_invalid_names_rejected(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const bad_metric[] = {
		"", "1abc", "has-dash", "has space", "caf\xc3\xa9", "a.b",
	};
	static const char *const bad_label[] = {
		"", "__reserved", "1x", "a:b", "a-b",
	};
	const char *const dup[] = { "x", "x" };
	const char *const le[] = { "le" };
	const char *nine[TP_METRICS_MAX_LABELS + 1];
	double many[TP_METRICS_MAX_BUCKETS + 1];

	for (size_t i = 0; i < sizeof(bad_metric) / sizeof(bad_metric[0]); i++) {
		assert_null(tp_gauge_new(reg, bad_metric[i], "h", 0, NULL));
		assert_int_equal(tp_gauge_fn_new(reg, bad_metric[i], "h",
		    fn_value, NULL), -1);
	}
	assert_null(tp_gauge_new(reg, NULL, "h", 0, NULL));
	for (size_t i = 0; i < sizeof(bad_label) / sizeof(bad_label[0]); i++) {
		assert_null(tp_gauge_new(reg, "g", "h", 1,
		    (const char *const[]){ bad_label[i] }));
	}
	assert_null(tp_gauge_new(reg, "g", "h", 1, NULL));
	assert_null(tp_gauge_new(reg, "g", "h", 1, (const char *const[]){ NULL }));
	assert_null(tp_gauge_new(reg, "g", "h", 2, dup));
	for (size_t i = 0; i <= TP_METRICS_MAX_LABELS; i++)
		nine[i] = "l";
	assert_null(tp_gauge_new(reg, "g", "h", TP_METRICS_MAX_LABELS + 1,
	    nine));
	/* counters must end in _total */
	assert_null(tp_counter_new(reg, "requests", "h", 0, NULL));
	/* le is the histogram's own label */
	assert_null(tp_histogram_new(reg, "hist", "h", 1, le, 1,
	    (const double[]){ 1.0 }));
	assert_non_null(tp_gauge_new(reg, "gauge_with_le", "h", 1, le));
	/* bounds: increasing, finite, at most TP_METRICS_MAX_BUCKETS */
	assert_null(tp_histogram_new(reg, "hist", "h", 0, NULL, 2,
	    (const double[]){ 1.0, 1.0 }));
	assert_null(tp_histogram_new(reg, "hist", "h", 0, NULL, 2,
	    (const double[]){ 2.0, 1.0 }));
	assert_null(tp_histogram_new(reg, "hist", "h", 0, NULL, 1,
	    (const double[]){ NAN }));
	assert_null(tp_histogram_new(reg, "hist", "h", 0, NULL, 1,
	    (const double[]){ INFINITY }));
	assert_null(tp_histogram_new(reg, "hist", "h", 0, NULL, 1, NULL));
	for (size_t i = 0; i <= TP_METRICS_MAX_BUCKETS; i++)
		many[i] = (double)i;
	assert_null(tp_histogram_new(reg, "hist", "h", 0, NULL,
	    TP_METRICS_MAX_BUCKETS + 1, many));
	assert_non_null(tp_histogram_new(reg, "hist", "h", 0, NULL,
	    TP_METRICS_MAX_BUCKETS, many));
	assert_int_equal(tp_gauge_fn_new(reg, "fn", "h", NULL, NULL), -1);
	assert_null(tp_gauge_new(NULL, "g", "h", 0, NULL));
	/* valid odd names are accepted */
	assert_non_null(tp_gauge_new(reg, ":colon_ok:", "h", 1,
	    (const char *const[]){ "_under" }));
}

static void
test_duplicate_names_rejected(void **state)
{
	struct tp_metrics_registry *reg = *state;

	assert_non_null(tp_counter_new(reg, "jobs_total", "h", 0, NULL));
	assert_null(tp_counter_new(reg, "jobs_total", "h", 0, NULL));
	assert_null(tp_gauge_new(reg, "jobs_total", "h", 0, NULL));
	assert_int_equal(tp_gauge_fn_new(reg, "jobs_total", "h", fn_value,
	    NULL), -1);
	/* a histogram owns <name>_bucket, _sum and _count too */
	assert_non_null(tp_histogram_new(reg, "lat", "h", 0, NULL, 0, NULL));
	assert_null(tp_gauge_new(reg, "lat_sum", "h", 0, NULL));
	assert_null(tp_gauge_new(reg, "lat_bucket", "h", 0, NULL));
	assert_null(tp_gauge_new(reg, "lat_count", "h", 0, NULL));
	assert_non_null(tp_gauge_new(reg, "x_count", "h", 0, NULL));
	assert_null(tp_histogram_new(reg, "x", "h", 0, NULL, 0, NULL));
	/* the registry's own counter */
	assert_null(tp_counter_new(reg, "tp_metrics_dropped_total", "h", 0,
	    NULL));
	/* process collectors: all or nothing on a clash */
	assert_int_equal(tp_metrics_register_process(reg), 0);
	assert_int_equal(tp_metrics_register_process(reg), -1);
	assert_null(tp_gauge_new(reg, "process_open_fds", "h", 0, NULL));
}

static void
test_null_arguments_are_harmless(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "a", "b" };
	struct tp_counter *c = tp_counter_new(reg, "n_total", "h", 2, labels);

	assert_non_null(c);
	tp_counter_child_add(NULL, 1);
	tp_gauge_child_set(NULL, 1);
	tp_gauge_child_add(NULL, 1);
	tp_histogram_child_observe(NULL, 1);
	tp_counter_inc(NULL, NULL);
	tp_gauge_set(NULL, NULL, 1);
	tp_histogram_observe(NULL, NULL, 1);
	tp_counter_set_max_children(NULL, 1);
	assert_true(tp_counter_child_value(NULL) == 0.0);
	assert_true(tp_gauge_child_value(NULL) == 0.0);
	/* missing values for a labelled family: no child, no drop counted */
	assert_null(tp_counter_child(c, NULL));
	assert_null(tp_counter_child(c, (const char *const[]){ "x", NULL }));
	assert_null(tp_metrics_render(NULL, NULL));
	tp_metrics_registry_free(NULL);
	assert_render(reg,
	    "# HELP n_total h\n"
	    "# TYPE n_total counter\n"
	    DROPPED_HEADER
	    "tp_metrics_dropped_total{metric=\"n_total\"} 0.0\n");
}

/* ---- concurrency ------------------------------------------------------- */

/* Value of the sample whose name and labels are `name`, or NAN if absent. */
static double
sample_value(const char *text, const char *name)
{
	char key[128];
	const char *p;

	if (snprintf(key, sizeof(key), "\n%s ", name) >= (int)sizeof(key) ||
	    (p = strstr(text, key)) == NULL)
		return NAN;
	return strtod(p + strlen(key), NULL);
}

#define NTHREADS 8
#define NITER 100000

struct worker {
	pthread_t tid;
	int index;
	struct tp_counter *counter;
	struct tp_gauge *gauge;
	struct tp_histogram *hist;
	struct tp_metrics_registry *reg;
	_Atomic int *stop;
	int renders;
	int bad_renders;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char own[32];
	struct tp_counter_child *mine;
	struct tp_gauge_child *gshared;

	snprintf(own, sizeof(own), "thread-%d", w->index);
	mine = tp_counter_child(w->counter, (const char *const[]){ own });
	gshared = tp_gauge_child(w->gauge, (const char *const[]){ "shared" });
	for (int i = 0; i < NITER; i++) {
		char fresh[32];

		/* lookup path on a shared child, cached path on our own */
		tp_counter_inc(w->counter, (const char *const[]){ "shared" });
		tp_counter_child_add(mine, 1.0);
		/* CAS path for doubles */
		tp_gauge_child_add(gshared, 0.5);
		tp_histogram_observe(w->hist, NULL, (double)(i % 4));
		/* new children appear while a renderer walks the list */
		if (i % 1000 == 0) {
			snprintf(fresh, sizeof(fresh), "t%d-%d", w->index, i);
			tp_counter_add(w->counter,
			    (const char *const[]){ fresh }, 0.25);
		}
	}
	return NULL;
}

static void *
render_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->stop)) {
		size_t len;
		char *out = tp_metrics_render(w->reg, &len);

		/* CMocka's asserts may not longjmp from another thread. */
		if (out == NULL || len == 0 || out[len - 1] != '\n')
			w->bad_renders++;
		free(out);
		w->renders++;
	}
	return NULL;
}

static void
test_concurrent_updates_are_exact(void **state)
{
	struct tp_metrics_registry *reg = *state;
	static const char *const labels[] = { "who" };
	struct worker w[NTHREADS], r;
	_Atomic int stop = 0;
	struct tp_counter *c;
	struct tp_gauge *g;
	struct tp_histogram *h;
	char *out, line[128];

	c = tp_counter_new(reg, "conc_total", "h", 1, labels);
	g = tp_gauge_new(reg, "conc_gauge", "h", 1, labels);
	h = tp_histogram_new(reg, "conc_hist", "h", 0, NULL, 2,
	    (const double[]){ 0.0, 1.0 });
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(h);
	memset(&r, 0, sizeof(r));
	r.reg = reg;
	r.stop = &stop;
	assert_int_equal(pthread_create(&r.tid, NULL, render_main, &r), 0);
	for (int i = 0; i < NTHREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].index = i;
		w[i].counter = c;
		w[i].gauge = g;
		w[i].hist = h;
		assert_int_equal(pthread_create(&w[i].tid, NULL, worker_main,
		    &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
	atomic_store(&stop, 1);
	assert_int_equal(pthread_join(r.tid, NULL), 0);
	assert_true(r.renders > 0);
	assert_int_equal(r.bad_renders, 0);

	assert_true(tp_counter_child_value(tp_counter_child(c,
	    (const char *const[]){ "shared" })) == (double)NTHREADS * NITER);
	for (int i = 0; i < NTHREADS; i++) {
		char own[32];

		snprintf(own, sizeof(own), "thread-%d", i);
		assert_true(tp_counter_child_value(tp_counter_child(c,
		    (const char *const[]){ own })) == (double)NITER);
	}
	assert_true(tp_gauge_child_value(tp_gauge_child(g,
	    (const char *const[]){ "shared" })) == 0.5 * NTHREADS * NITER);

	out = tp_metrics_render(reg, NULL);
	assert_non_null(out);
	/* i % 4 over NITER: a quarter each of 0, 1, 2, 3 */
	assert_true(sample_value(out, "conc_hist_bucket{le=\"0.0\"}") ==
	    NTHREADS * NITER / 4);
	assert_true(sample_value(out, "conc_hist_bucket{le=\"1.0\"}") ==
	    NTHREADS * NITER / 2);
	assert_true(sample_value(out, "conc_hist_bucket{le=\"+Inf\"}") ==
	    NTHREADS * NITER);
	assert_true(sample_value(out, "conc_hist_count") == NTHREADS * NITER);
	assert_true(sample_value(out, "conc_hist_sum") ==
	    NTHREADS * NITER / 4 * 6);
	/* every fresh child made it in exactly once */
	for (int i = 0; i < NTHREADS; i++) {
		for (int k = 0; k < NITER; k += 1000) {
			snprintf(line, sizeof(line), "conc_total{who=\"t%d-%d\"}",
			    i, k);
			assert_true(sample_value(out, line) == 0.25);
		}
	}
	assert_non_null(strstr(out,
	    "tp_metrics_dropped_total{metric=\"conc_total\"} 0.0\n"));
	free(out);
}

/* ---- process metrics --------------------------------------------------- */

static void
test_process_metrics_present_and_plausible(void **state)
{
	struct tp_metrics_registry *reg = *state;
	double rss, vsz, fds, fds2, maxfds, start, cpu;
	char *out;
	int fd;

	assert_int_equal(tp_metrics_register_process(reg), 0);
	out = tp_metrics_render(reg, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out,
	    "# TYPE process_cpu_seconds_total counter\n"));
	assert_non_null(strstr(out,
	    "# TYPE process_resident_memory_bytes gauge\n"));
	rss = sample_value(out, "process_resident_memory_bytes");
	vsz = sample_value(out, "process_virtual_memory_bytes");
	fds = sample_value(out, "process_open_fds");
	maxfds = sample_value(out, "process_max_fds");
	start = sample_value(out, "process_start_time_seconds");
	cpu = sample_value(out, "process_cpu_seconds_total");
	free(out);

	assert_true(rss > 1024.0 * 1024.0);
	assert_true(vsz >= rss);
	assert_true(fds >= 1.0);
	assert_true(maxfds >= fds);
	/* this process started moments ago */
	assert_true(start <= (double)time(NULL) + 1.0);
	assert_true(start > (double)time(NULL) - 3600.0);
	assert_true(cpu >= 0.0 && cpu < 3600.0);

	/* open_fds counts descriptors, not the one the listing itself uses */
	fd = open("/dev/null", O_RDONLY);
	assert_true(fd >= 0);
	out = tp_metrics_render(reg, NULL);
	assert_non_null(out);
	fds2 = sample_value(out, "process_open_fds");
	free(out);
	close(fd);
	assert_true(fds2 == fds + 1.0);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_registry, \
	teardown_registry)
	const struct CMUnitTest tests[] = {
		T(test_empty_registry_renders_empty_text),
		T(test_counter_with_labels_golden),
		T(test_gauges_and_gauge_fn_golden),
		T(test_histogram_default_buckets_golden),
		T(test_histogram_without_labels_golden),
		T(test_label_value_and_help_escaping_golden),
		T(test_long_label_value_truncated_on_char_boundary),
		T(test_value_formatting_matches_python_client),
		T(test_child_cap_counts_dropped),
		T(test_invalid_names_rejected),
		T(test_duplicate_names_rejected),
		T(test_null_arguments_are_harmless),
		T(test_concurrent_updates_are_exact),
		T(test_process_metrics_present_and_plausible),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
