/*
 * relay_app: the one object a running relay is made of. main.c builds it,
 * the HTTP adapter hands it to every handler. Fields are set up before the
 * server starts and never reassigned while it runs, so handlers read them
 * without locks; the objects they point to do their own locking.
 */
#ifndef RELAY_APP_H
#define RELAY_APP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "settings.h"
#include "tokenplace/health.h"
#include "tokenplace/metrics.h"

struct relay_broker;
struct relay_v1;
struct relay_upstream;
struct relay_http_server;
struct relay_web;
struct relay_model_list;
struct relay_state;

struct relay_app_metrics {
	struct tp_counter *requests;		/* tokenplace_relay_requests_total */
	struct tp_histogram *duration;		/* tokenplace_relay_request_duration_seconds */
	struct tp_counter *limit_rejections;	/* tokenplace_relay_limit_rejections_total{limit} */
	struct tp_counter *bad_requests;	/* tokenplace_relay_bad_requests_total{kind} */
	struct tp_counter *conn_refusals;	/* tokenplace_relay_connections_refused_total{reason} */
	struct tp_counter *json_refusals;	/* tokenplace_relay_json_refusals_total{kind} */
	struct tp_counter *closes;		/* tokenplace_relay_connection_closes_total{end} */
	struct tp_counter *ready_in_state_outage;	/* tokenplace_relay_ready_during_state_outage_total */
};

struct relay_app {
	const struct relay_settings *settings;
	bool config_ok;			/* false: only probes are served */
	const struct tp_config_report *config_report;
	/* effective upstream base URL, no trailing '/' */
	char upstream_url[RELAY_UPSTREAM_URL_SIZE];
	/* upstream_url as logs and /healthz show it (no password). */
	char upstream_url_shown[RELAY_UPSTREAM_URL_SHOWN_SIZE];

	struct tp_health *health;
	struct tp_metrics_registry *metrics;
	struct relay_app_metrics m;

	struct relay_broker *broker;	/* relay protocol state, or NULL */
	struct relay_v1 *v1;		/* API v1 relay state (v1_broker.h), or NULL */
	struct relay_upstream *upstream;	/* forwarding, or NULL */
	struct relay_http_server *http;
	struct relay_web *web;		/* the browser page (RELAY_WEB_DIR), or NULL */
	struct relay_model_list *models;	/* the model list (model_list.h), or NULL */
	/* the stores, the shared adapter, the wake-up link (state_redis.h) */
	struct relay_state *state;

	_Atomic long in_flight;		/* requests being handled now */
	_Atomic long open_connections;	/* accepted client connections now open */
	_Atomic long lingering_connections;	/* closed, draining (conn_linger.h) */
	/*
	 * Smallest stack an HTTP worker thread has (bytes, measured by the
	 * adapter as each worker starts; 0 = none started yet).
	 */
	_Atomic long worker_stack_bytes;
	/*
	 * Set by /healthz once it has answered ready with the state store up:
	 * RELAY_STATE_OUTAGE_READY keeps only such a relay ready in an outage.
	 */
	atomic_bool was_ready;
};

/*
 * Creates the registry and the HTTP-level metric families (requests,
 * durations, limit rejections, build info, process metrics). Returns 0,
 * or -1 when out of memory.
 */
int relay_app_init_metrics(struct relay_app *app, const char *version,
    const char *revision);

/*
 * Frees everything the app owns, readers before what they read: the HTTP
 * server (no handler left), the forwarding, the model list, the relay
 * state (relay_state_close()), the metric registry, the page (its gauges
 * read it, so after the registry) and the health registry. Each pointer is
 * set to NULL as it goes: NULL-safe and idempotent (a second call does
 * nothing). The settings are the caller's.
 */
void relay_app_free(struct relay_app *app);

/* Counts one request refused by the named limit (a fixed label set). */
void relay_app_count_limit(struct relay_app *app, const char *limit);

/*
 * Counts one request refused as malformed by the named kind (a fixed
 * label set: framing_cl_with_te, http_malformed, ...).
 */
void relay_app_count_bad_request(struct relay_app *app, const char *kind);

/*
 * Counts one client connection refused or cut before a request was read
 * (per_client_limit, pending_heads_limit, head_timeout,
 * connection_table_full). Any thread.
 */
void relay_app_count_conn_refusal(struct relay_app *app, const char *reason);

/*
 * Counts one client connection closed after lingering, by how the linger
 * ended (eof, timeout, drain_bytes, reset, evicted). Any thread.
 */
void relay_app_count_close(struct relay_app *app, const char *end);
/* Counts one request body refused by tp_json_read(); kind as tp_json_kind_name(). */
void relay_app_count_json_refusal(struct relay_app *app, const char *kind);

#endif /* RELAY_APP_H */
