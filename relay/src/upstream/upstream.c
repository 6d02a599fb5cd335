/*
 * upstream.c -- the forwarder to the GPU host: its creation and release,
 * its metric families, and what every libcurl transfer to it shares (the
 * common options and the sockets counted for the open-connections gauge).
 *
 * The work is done next door: relay_libcurl.c loads libcurl at its first use,
 * forward.c forwards one request, health.c runs the background check;
 * upstream_internal.h holds what they share. Only the files of upstream/
 * include curl/curl.h.
 */
#include "upstream/upstream_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "settings.h"
#include "tokenplace/health.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

/* ---- sockets (counted for the open-connections gauge) ----------------- */

static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct relay_upstream *u = arg;
	curl_socket_t fd;

	(void)purpose;
	fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (fd == CURL_SOCKET_BAD)
		return CURL_SOCKET_BAD;
	atomic_fetch_add(&u->open_conns, 1);
	tp_counter_child_add(u->m.conns_opened, 1);
	return fd;
}

static int
close_socket(void *arg, curl_socket_t fd)
{
	struct relay_upstream *u = arg;

	atomic_fetch_sub(&u->open_conns, 1);
	return close(fd);
}

void
relay_upstream_common_options(struct relay_upstream *u, CURL *e, char *errbuf)
{
	/* Worker threads must never get SIGALRM/SIGPIPE from libcurl. */
	(void)relay_libcurl.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* The cluster's proxy variables are not meant for the GPU host. */
	(void)relay_libcurl.easy_setopt(e, CURLOPT_PROXY, "");
	(void)relay_libcurl.easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION,
	    open_socket);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_OPENSOCKETDATA, u);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION,
	    close_socket);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)u->s->upstream_connect_timeout_ms);
}

/* ---- circuit + gauges ------------------------------------------------- */

/* Called with u->lock held after anything that may move the circuit. */
void
relay_upstream_circuit_changed(struct relay_upstream *u)
{
	enum relay_circuit_state st = u->circuit.state;

	atomic_store(&u->circuit_quiet, !u->circuit.enabled ||
	    (st == RELAY_CIRCUIT_CLOSED && u->circuit.failures == 0));
	for (int i = 0; i < 3; i++)
		tp_gauge_child_set(u->m.circuit[i], (int)st == i ? 1.0 : 0.0);
	if (u->circuit.opened_count != u->circuit_opens_seen) {
		tp_counter_child_add(u->m.circuit_opens,
		    (double)(u->circuit.opened_count - u->circuit_opens_seen));
		u->circuit_opens_seen = u->circuit.opened_count;
		TP_LOG(TP_LOG_WARNING, "upstream.circuit_open",
		    TP_LSTR("upstream", u->base_shown),
		    TP_LINT("open_ms", u->circuit.open_ms));
	}
}

/* ---- set-up ------------------------------------------------------------ */

static double
open_conns_value(void *arg)
{
	struct relay_upstream *u = arg;

	return (double)atomic_load(&u->open_conns);
}

static double
in_flight_value(void *arg)
{
	struct relay_upstream *u = arg;

	return (double)atomic_load(&u->in_flight);
}

static const double latency_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0 };

static struct tp_counter_child *
plain_counter(struct tp_metrics_registry *reg, const char *name,
    const char *help)
{
	struct tp_counter *c = tp_counter_new(reg, name, help, 0, NULL);

	return c ? tp_counter_child(c, NULL) : NULL;
}

static int
init_metrics(struct relay_upstream *u)
{
	static const char *const route_status[] = { "route", "status" };
	static const char *const route[] = { "route" };
	static const char *const kind[] = { "kind" };
	static const char *const state[] = { "state" };
	static const char *const result[] = { "result" };
	static const char *const circuit_names[3] = { "closed", "open",
	    "half_open" };
	struct tp_metrics_registry *reg = u->app->metrics;
	struct relay_upstream_metrics *m = &u->m;
	struct tp_gauge *cg, *hg;
	struct tp_counter *checks;
	size_t nb = sizeof(latency_buckets) / sizeof(latency_buckets[0]);

	m->requests = tp_counter_new(reg, "tokenplace_relay_upstream_requests_total",
	    "Forwarded requests by route and answered status", 2, route_status);
	m->errors = tp_counter_new(reg, "tokenplace_relay_upstream_errors_total",
	    "Forwarded requests that failed, by kind", 1, kind);
	m->duration = tp_histogram_new(reg,
	    "tokenplace_relay_upstream_duration_seconds",
	    "Time from forwarding a request to the end of the upstream's answer",
	    1, route, nb, latency_buckets);
	m->first_byte = tp_histogram_new(reg,
	    "tokenplace_relay_upstream_first_byte_seconds",
	    "Time from forwarding a request to the upstream's status line",
	    1, route, nb, latency_buckets);
	m->bytes_sent = plain_counter(reg,
	    "tokenplace_relay_upstream_request_bytes_total",
	    "Request body bytes sent to the upstream");
	m->bytes_received = plain_counter(reg,
	    "tokenplace_relay_upstream_response_bytes_total",
	    "Response body bytes received from the upstream");
	m->conns_opened = plain_counter(reg,
	    "tokenplace_relay_upstream_connections_opened_total",
	    "TCP connections opened to the upstream (kept alive and reused)");
	m->circuit_opens = plain_counter(reg,
	    "tokenplace_relay_upstream_circuit_opens_total",
	    "Times the circuit breaker opened");
	cg = tp_gauge_new(reg, "tokenplace_relay_upstream_circuit_state",
	    "Circuit breaker state (1 for the current state)", 1, state);
	hg = tp_gauge_new(reg, "tokenplace_relay_upstream_health_state",
	    "Upstream health from the background check (1 for the current state)",
	    1, state);
	checks = tp_counter_new(reg, "tokenplace_relay_upstream_health_checks_total",
	    "Upstream health checks by result", 1, result);
	if (m->requests == NULL || m->errors == NULL || m->duration == NULL ||
	    m->first_byte == NULL || m->bytes_sent == NULL ||
	    m->bytes_received == NULL || m->conns_opened == NULL ||
	    m->circuit_opens == NULL || cg == NULL || hg == NULL ||
	    checks == NULL)
		return -1;
	for (int i = 0; i < 3; i++) {
		const char *cv[] = { circuit_names[i] };
		const char *hv[] = { relay_upstream_health_state_names[i] };

		m->circuit[i] = tp_gauge_child(cg, cv);
		m->health[i] = tp_gauge_child(hg, hv);
		tp_gauge_child_set(m->circuit[i], i == 0 ? 1.0 : 0.0);
		tp_gauge_child_set(m->health[i], i == 2 ? 1.0 : 0.0);
	}
	{
		const char *ok[] = { "ok" }, *fail[] = { "fail" };

		m->checks_ok = tp_counter_child(checks, ok);
		m->checks_fail = tp_counter_child(checks, fail);
	}
	/* Routes are a fixed set per prefix, error kinds a fixed list. */
	tp_counter_set_max_children(m->requests, 1024);
	if (tp_gauge_fn_new(reg, "tokenplace_relay_upstream_open_connections",
	    "TCP connections to the upstream open now", open_conns_value, u) != 0 ||
	    tp_gauge_fn_new(reg, "tokenplace_relay_upstream_in_flight_requests",
	    "Forwarded requests in progress", in_flight_value, u) != 0)
		return -1;
	return 0;
}

struct relay_upstream *
relay_upstream_new(struct relay_app *app, char *err, size_t errlen)
{
	const struct relay_settings *s = app->settings;
	struct relay_upstream *u;
	pthread_condattr_t ca;

	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->app = app;
	u->s = s;
	u->health_idx = -1;
	pthread_mutex_init(&u->pool_lock, NULL);
	pthread_mutex_init(&u->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->cond, &ca);
	pthread_condattr_destroy(&ca);

	if (relay_fwd_prefixes_parse(&u->prefixes, s->forward_prefixes, err,
	    errlen) != 0)
		goto fail;
	/* RELAY_FORWARD=off: no path routes to the upstream (checks still run). */
	if (!s->forward)
		memset(&u->prefixes, 0, sizeof(u->prefixes));
	snprintf(u->base, sizeof(u->base), "%s", app->upstream_url);
	snprintf(u->health_url, sizeof(u->health_url), "%s%s", u->base,
	    s->upstream_health_path);
	(void)tp_config_redact_url(u->base, u->base_shown, sizeof(u->base_shown));
	(void)tp_config_redact_url(u->health_url, u->health_url_shown,
	    sizeof(u->health_url_shown));
	if (s->upstream_host_header != NULL && s->upstream_host_header[0] != '\0')
		snprintf(u->host_line, sizeof(u->host_line), "Host: %s",
		    s->upstream_host_header);
	relay_circuit_init(&u->circuit, s->upstream_circuit,
	    (unsigned)s->upstream_circuit_failures, s->upstream_circuit_open_ms);
	atomic_store(&u->circuit_quiet, true);
	if (s->libcurl != NULL && s->libcurl[0] != '\0')
		relay_libcurl_set_name(s->libcurl);
	if (strncasecmp(u->base, "https://", 8) != 0 && relay_probe_url_parse(
	    u->health_url, &u->probe_url, err, errlen) != 0)
		goto fail;
	if (init_metrics(u) != 0) {
		snprintf(err, errlen, "cannot register upstream metrics");
		goto fail;
	}
	u->health_idx = tp_health_add_check(app->health, "upstream",
	    s->require_upstream_health, (unsigned)s->upstream_health_failures,
	    (unsigned)s->upstream_health_successes, NULL, NULL);
	if (u->health_idx < 0) {
		snprintf(err, errlen, "cannot register the upstream health check");
		goto fail;
	}
	relay_fwd_set_prefixes(&u->prefixes);
	return u;
fail:
	relay_upstream_free(u);
	return NULL;
}

void
relay_upstream_free(struct relay_upstream *u)
{
	if (u == NULL)
		return;
	relay_fwd_set_prefixes(NULL);
	relay_upstream_health_stop(u);
	relay_upstream_pool_free(u);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->pool_lock);
	free(u);
}
