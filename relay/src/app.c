/*
 * app.c -- the relay-wide metric families, and freeing the app.
 */
#include "app.h"

#include <stdatomic.h>

#include "http/http_server.h"
#include "state_redis.h"
#include "tokenplace/json.h"
#include "upstream/upstream.h"
#include "v1/model_list.h"
#include "web/web.h"

/* The Python relay's exporter buckets, so existing dashboards still fit. */
static const double duration_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0 };

static double
in_flight_value(void *arg)
{
	struct relay_app *app = arg;

	return (double)atomic_load(&app->in_flight);
}

static double
open_connections_value(void *arg)
{
	struct relay_app *app = arg;

	return (double)atomic_load(&app->open_connections);
}

static double
lingering_value(void *arg)
{
	struct relay_app *app = arg;

	return (double)atomic_load(&app->lingering_connections);
}

static double
worker_stack_value(void *arg)
{
	struct relay_app *app = arg;

	return (double)atomic_load(&app->worker_stack_bytes);
}

int
relay_app_init_metrics(struct relay_app *app, const char *version,
    const char *revision)
{
	static const char *const req_labels[] = { "method", "endpoint", "status" };
	static const char *const limit_labels[] = { "limit" };
	static const char *const kind_labels[] = { "kind" };
	static const char *const reason_labels[] = { "reason" };
	static const char *const end_labels[] = { "end" };
	static const char *const ends[] = { "eof", "timeout", "drain_bytes",
	    "reset", "evicted" };
	static const char *const build_labels[] = { "version", "revision" };
	const char *build_values[] = { version, revision };
	struct tp_gauge *build;

	app->metrics = tp_metrics_registry_new();
	if (app->metrics == NULL)
		return -1;
	app->m.requests = tp_counter_new(app->metrics,
	    "tokenplace_relay_requests_total",
	    "HTTP requests by method, endpoint and status", 3, req_labels);
	app->m.duration = tp_histogram_new(app->metrics,
	    "tokenplace_relay_request_duration_seconds",
	    "Time from request start to response sent", 3, req_labels,
	    sizeof(duration_buckets) / sizeof(duration_buckets[0]),
	    duration_buckets);
	app->m.limit_rejections = tp_counter_new(app->metrics,
	    "tokenplace_relay_limit_rejections_total",
	    "Requests refused because a named limit was reached", 1,
	    limit_labels);
	app->m.bad_requests = tp_counter_new(app->metrics,
	    "tokenplace_relay_bad_requests_total",
	    "Requests refused as malformed, by kind", 1, kind_labels);
	app->m.conn_refusals = tp_counter_new(app->metrics,
	    "tokenplace_relay_connections_refused_total",
	    "Client connections refused or cut before a request was read, "
	    "by reason", 1, reason_labels);
	app->m.json_refusals = tp_counter_new(app->metrics,
	    "tokenplace_relay_json_refusals_total",
	    "Request bodies refused by the strict JSON reader, by rule",
	    1, kind_labels);
	app->m.closes = tp_counter_new(app->metrics,
	    "tokenplace_relay_connection_closes_total",
	    "Client connections closed gracefully (write side shut, input "
	    "drained), by how the drain ended", 1, end_labels);
	app->m.ready_in_state_outage = tp_counter_new(app->metrics,
	    "tokenplace_relay_ready_during_state_outage_total",
	    "/healthz answers that stayed 200 while the state store was down "
	    "(RELAY_STATE_OUTAGE_READY)", 0, NULL);
	build = tp_gauge_new(app->metrics, "tokenplace_build_info",
	    "Build of the running relay", 2, build_labels);
	if (app->m.requests == NULL || app->m.duration == NULL ||
	    app->m.limit_rejections == NULL || app->m.bad_requests == NULL ||
	    app->m.conn_refusals == NULL || app->m.json_refusals == NULL ||
	    app->m.closes == NULL || app->m.ready_in_state_outage == NULL ||
	    build == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		const char *end[] = { ends[i] };

		tp_counter_add(app->m.closes, end, 0);
	}
	/* Every kind from zero, so rate() works from the first refusal. */
	for (int k = TP_JSON_SYNTAX; k < TP_JSON_KIND_COUNT; k++) {
		const char *kind[] = { tp_json_kind_name((enum tp_json_kind)k) };

		tp_counter_add(app->m.json_refusals, kind, 0);
	}
	if (app->settings != NULL) {
		size_t cap = (size_t)app->settings->metrics_max_series;

		tp_counter_set_max_children(app->m.requests, cap);
		tp_histogram_set_max_children(app->m.duration, cap);
		tp_counter_set_max_children(app->m.limit_rejections, cap);
		tp_counter_set_max_children(app->m.bad_requests, cap);
		tp_counter_set_max_children(app->m.conn_refusals, cap);
	}
	tp_gauge_set(build, build_values, 1);
	if (tp_gauge_fn_new(app->metrics, "tokenplace_relay_http_in_flight_requests",
	    "Requests being handled right now", in_flight_value, app) != 0 ||
	    tp_gauge_fn_new(app->metrics, "tokenplace_relay_http_open_connections",
	    "Client connections open right now (accepted, not yet closed)",
	    open_connections_value, app) != 0 ||
	    tp_gauge_fn_new(app->metrics,
	    "tokenplace_relay_http_lingering_connections",
	    "Closed client connections still draining what their client sends "
	    "(RELAY_CLOSE_LINGER_MS)", lingering_value, app) != 0)
		return -1;
	if (tp_gauge_fn_new(app->metrics, "tokenplace_relay_worker_stack_bytes",
	    "Stack size of the smallest HTTP worker thread (JSON depth is "
	    "bounded for it)", worker_stack_value, app) != 0)
		return -1;
	return tp_metrics_register_process(app->metrics);
}

void
relay_app_count_limit(struct relay_app *app, const char *limit)
{
	const char *labels[] = { limit };

	tp_counter_inc(app->m.limit_rejections, labels);
}

void
relay_app_count_bad_request(struct relay_app *app, const char *kind)
{
	const char *labels[] = { kind };

	tp_counter_inc(app->m.bad_requests, labels);
}

void
relay_app_count_conn_refusal(struct relay_app *app, const char *reason)
{
	const char *labels[] = { reason };

	tp_counter_inc(app->m.conn_refusals, labels);
}

void
relay_app_count_close(struct relay_app *app, const char *end)
{
	const char *labels[] = { end };

	tp_counter_inc(app->m.closes, labels);
}

void
relay_app_count_json_refusal(struct relay_app *app, const char *kind)
{
	const char *labels[] = { kind };

	tp_counter_inc(app->m.json_refusals, labels);
}

void
relay_app_free(struct relay_app *app)
{
	if (app == NULL)
		return;
	relay_http_stop(app->http);
	app->http = NULL;
	relay_upstream_free(app->upstream);
	app->upstream = NULL;
	relay_model_list_free(app->models);	/* after the server: no reader left */
	app->models = NULL;
	relay_state_close(app);
	tp_metrics_registry_free(app->metrics);
	app->metrics = NULL;
	relay_web_free(app->web);	/* after the registry: its gauges read it */
	app->web = NULL;
	tp_health_free(app->health);
	app->health = NULL;
}
