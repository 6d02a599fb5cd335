/*
 * relay_upstream: forwarding of the OpenAI-style API to the GPU host with
 * libcurl, and the GPU host's health. Only the files of upstream/ include
 * curl/curl.h (upstream_internal.h); libcurl is loaded at its first use.
 *
 * Threads: relay_upstream_forward() runs on civetweb's worker threads, any
 * number at once; each transfer borrows a libcurl handle set from a pool
 * (so kept-alive upstream connections are reused by later requests) and
 * never shares it while in use. A background thread checks the upstream's
 * health on an interval and drives the circuit breaker.
 */
#ifndef RELAY_UPSTREAM_H
#define RELAY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "settings.h"
#include "tokenplace/health.h"

struct relay_app;
struct relay_upstream;

/*
 * libcurl is loaded (dlopen) and initialised by the first forwarded request
 * or https:// health check, not at start: an idle relay does not map it.
 * This undoes that initialisation if it happened; call it once at exit,
 * after every upstream is freed.
 */
void relay_upstream_global_cleanup(void);

/*
 * Creates the forwarder for app->upstream_url with app->settings: parses
 * the forward prefixes (and hands them to the router), registers the
 * "upstream" readiness check in app->health (required only when
 * TOKENPLACE_REQUIRE_UPSTREAM_HEALTH is true) and the upstream metric
 * families in app->metrics. Returns NULL with a reason in err on invalid
 * settings or when out of memory. Must run before the HTTP server starts.
 */
struct relay_upstream *relay_upstream_new(struct relay_app *app, char *err,
    size_t errlen);

/*
 * Starts the health-check thread (its first check runs at once). Returns
 * 0, or -1 when the thread cannot be created.
 */
int relay_upstream_start(struct relay_upstream *u);

/*
 * Waits until the first health check has finished or timeout_ms passed.
 * Returns true when it finished.
 */
bool relay_upstream_wait_first_check(struct relay_upstream *u,
    long timeout_ms);

/*
 * Stops the health thread (interrupting a check in progress), waits for
 * it, and frees everything. Forwarded requests must be over. NULL is
 * accepted.
 */
void relay_upstream_free(struct relay_upstream *u);

/*
 * Forwards one request and fills/streams its response: the upstream's
 * status, headers and body as they arrive, or an OpenAI-shape JSON error
 * (413, 502, 503 + Retry-After, 504). When a failure happens after the
 * response has started, sets resp->close so the client sees the answer
 * cut short. Never fails silently: resp->status is always set.
 */
void relay_upstream_forward(struct relay_upstream *u,
    struct relay_request *req, struct relay_response *resp);

/* What /healthz shows about the upstream. */
struct relay_upstream_status {
	const char *state;		/* "up", "down", "unknown" (static) */
	const char *circuit;		/* "closed", "open", "half_open" (static) */
	int64_t since_unix_ms;		/* when state last changed */
	int64_t last_check_unix_ms;	/* 0 = never checked */
	int64_t last_error_unix_ms;	/* 0 = no error yet */
	unsigned consecutive_failures;
	/* latest failed check's reason (a health reason), or "" */
	char last_error[TP_HEALTH_REASON_MAX];
	/* no password (tp_config_redact_url) */
	char health_url[RELAY_HEALTH_URL_SHOWN_SIZE];
};

/* Fills st; safe from any thread. */
void relay_upstream_get_status(struct relay_upstream *u,
    struct relay_upstream_status *st);

#endif /* RELAY_UPSTREAM_H */
