/*
 * handlers_ops.c -- /livez, /healthz and /metrics.
 *
 * Probes never touch the relay state's locks for long and never do network
 * I/O: readiness inputs (e.g. the GPU host's DNS check) are refreshed in
 * the background and only read here.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "handlers_ops.h"
#include "legacy/broker.h"
#include "upstream/upstream.h"
#include "v1/v1_broker.h"

void
relay_handle_livez(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	(void)req;
	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
	if (tp_health_lifecycle(app->health) >= TP_LIFECYCLE_STOPPED) {
		relay_response_raw_json(resp, 503, "{\"status\":\"stopping\"}");
		return;
	}
	relay_response_raw_json(resp, 200, "{\"status\":\"alive\"}");
}

static void
add_checks(cJSON *root, const struct relay_app *app, cJSON *details)
{
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	size_t n = tp_health_snapshot(app->health, st, TP_HEALTH_MAX_CHECKS);
	cJSON *checks = cJSON_AddObjectToObject(root, "checks");

	for (size_t i = 0; i < n && i < TP_HEALTH_MAX_CHECKS && checks; i++) {
		cJSON *c = cJSON_AddObjectToObject(checks, st[i].name);

		if (c == NULL)
			continue;
		cJSON_AddStringToObject(c, "status",
		    tp_check_outcome_name(st[i].outcome));
		cJSON_AddBoolToObject(c, "required", st[i].required);
		if (st[i].reason[0] != '\0')
			cJSON_AddStringToObject(c, "reason", st[i].reason);
		if (st[i].required && st[i].outcome == TP_CHECK_FAIL)
			cJSON_AddStringToObject(details, st[i].name, "failed");
	}
}

/* RFC 3339 UTC with milliseconds, as the logs write it. */
static void
format_unix_ms(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* "upstreamHealth": state from the background check, shown always. */
static void
add_upstream_health(cJSON *root, struct relay_app *app)
{
	struct relay_upstream_status st;
	char when[96];	/* room for any int the format can print */
	cJSON *o;

	if (app->upstream == NULL)
		return;
	relay_upstream_get_status(app->upstream, &st);
	o = cJSON_AddObjectToObject(root, "upstreamHealth");
	if (o == NULL)
		return;
	cJSON_AddStringToObject(o, "upstream", st.state);
	format_unix_ms(st.since_unix_ms, when, sizeof(when));
	cJSON_AddStringToObject(o, "since", when);
	if (st.last_check_unix_ms > 0) {
		format_unix_ms(st.last_check_unix_ms, when, sizeof(when));
		cJSON_AddStringToObject(o, "lastCheck", when);
	} else {
		cJSON_AddNullToObject(o, "lastCheck");
	}
	if (st.last_error[0] != '\0') {
		cJSON_AddStringToObject(o, "lastError", st.last_error);
		format_unix_ms(st.last_error_unix_ms, when, sizeof(when));
		cJSON_AddStringToObject(o, "lastErrorAt", when);
	} else {
		cJSON_AddNullToObject(o, "lastError");
		cJSON_AddNullToObject(o, "lastErrorAt");
	}
	cJSON_AddNumberToObject(o, "consecutiveFailures",
	    (double)st.consecutive_failures);
	cJSON_AddStringToObject(o, "circuit", st.circuit);
	cJSON_AddStringToObject(o, "url", st.health_url);
}

/*
 * The legacy state's counts: the Python relay's "knownServers" (live
 * servers) and our queue counts, and details.knownServers = "empty" when
 * no server is live. Nothing when the store cannot be read.
 */
static void
add_legacy_stats(cJSON *root, struct relay_app *app, cJSON *details)
{
	struct relay_store_stats st = { 0 };

	if (app->broker == NULL ||
	    relay_broker_stats(app->broker, &st) != RELAY_OK)
		return;
	cJSON_AddNumberToObject(root, "knownServers", (double)st.servers);
	cJSON_AddNumberToObject(root, "queuedRequests", (double)st.queued);
	cJSON_AddNumberToObject(root, "pendingResponses", (double)st.responses);
	cJSON_AddNumberToObject(root, "streamSessions", (double)st.sessions);
	if (st.servers == 0)
		cJSON_AddStringToObject(details, "knownServers", "empty");
}

/* "apiV1": counts only, never a node's key or capabilities (PROTOCOL.md 4.8). */
static void
add_v1_stats(cJSON *root, struct relay_app *app)
{
	struct relay_v1_health h;
	cJSON *o;

	if (app->v1 == NULL || relay_v1_health_stats(app->v1, &h) != V1_OK)
		return;
	o = cJSON_AddObjectToObject(root, "apiV1");
	if (o == NULL)
		return;
	cJSON_AddNumberToObject(o, "registeredNodes", (double)h.counts.nodes);
	cJSON_AddNumberToObject(o, "queuedRequests", (double)h.counts.queued);
	cJSON_AddNumberToObject(o, "inFlightRequests",
	    (double)h.counts.in_flight);
	cJSON_AddNumberToObject(o, "responsesWaiting",
	    (double)h.counts.responses);
	cJSON_AddNumberToObject(o, "longPolls", (double)h.long_polls);
	cJSON_AddNumberToObject(o, "maxLongPolls", (double)h.max_long_polls);
}

/*
 * True when the one required check failing is the shared state store's
 * ("state"): the relay still forwards /api/v1 and answers store routes with
 * its own JSON 503 and Retry-After, which serve clients better than the
 * ingress's plain 503 for an empty Service (RELAY_STATE_OUTAGE_READY).
 */
static bool
only_state_failing(const struct relay_app *app)
{
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	size_t n = tp_health_snapshot(app->health, st, TP_HEALTH_MAX_CHECKS);
	bool state_failing = false;

	for (size_t i = 0; i < n && i < TP_HEALTH_MAX_CHECKS; i++) {
		if (!st[i].required || st[i].outcome != TP_CHECK_FAIL)
			continue;
		if (strcmp(st[i].name, "state") != 0)
			return false;
		state_failing = true;
	}
	return state_failing;
}

void
relay_handle_healthz(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	enum tp_lifecycle life = tp_health_lifecycle(app->health);
	cJSON *root = cJSON_CreateObject();
	cJSON *details = cJSON_CreateObject();
	const char *status;
	int code;
	bool held = false;

	(void)req;
	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
	if (life >= TP_LIFECYCLE_DRAINING) {
		status = "draining";
		code = 503;
		cJSON_AddBoolToObject(details, "shutdown", 1);
		(void)relay_response_add_header(resp, "Retry-After", "0");
	} else if (!app->config_ok) {
		cJSON *errs = cJSON_AddArrayToObject(details, "invalidSettings");
		const struct tp_config_report *rep = app->config_report;

		status = "degraded";
		code = 503;
		cJSON_AddStringToObject(details, "configuration", "invalid");
		for (size_t i = 0; rep && errs && i < rep->nerrors &&
		    i < TP_CONFIG_MAX_ERRORS; i++)
			cJSON_AddItemToArray(errs,
			    cJSON_CreateString(rep->errors[i].source));
	} else if (life == TP_LIFECYCLE_STARTING) {
		status = "starting";
		code = 503;
	} else if (!tp_health_is_ready(app->health)) {
		status = "degraded";
		code = 503;
		/*
		 * Only a relay that has been ready stays ready: a new pod that
		 * never reached its store (a wrong URL or password) must not
		 * join the Service, so a rollout stops at it.
		 */
		if (app->settings->state_outage_ready &&
		    atomic_load(&app->was_ready) && only_state_failing(app)) {
			code = 200;
			held = true;
			tp_counter_inc(app->m.ready_in_state_outage, NULL);
		}
	} else {
		status = "ok";
		code = 200;
		atomic_store(&app->was_ready, true);
	}
	cJSON_AddStringToObject(root, "status", status);
	if (held)
		cJSON_AddBoolToObject(root, "readyDuringStateOutage", 1);
	cJSON_AddStringToObject(root, "lifecycle", tp_lifecycle_name(life));
	cJSON_AddStringToObject(root, "upstream", app->upstream_url_shown);
	cJSON_AddStringToObject(root, "gpuHost", app->settings->gpu_host);
	cJSON_AddBoolToObject(root, "upstreamHealthRequired",
	    app->settings->require_upstream_health);
	add_upstream_health(root, app);
	add_checks(root, app, details);
	add_legacy_stats(root, app, details);
	add_v1_stats(root, app);
	if (cJSON_GetArraySize(details) > 0)
		cJSON_AddItemToObject(root, "details", details);
	else
		cJSON_Delete(details);
	relay_response_json(resp, code, root);
}

void
relay_handle_metrics(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	size_t len = 0;
	char *text;

	(void)req;
	text = tp_metrics_render(app->metrics, &len);
	if (text == NULL) {
		relay_response_error(resp, 500, 500, "Cannot render metrics");
		return;
	}
	relay_response_set_body(resp, 200, TP_METRICS_CONTENT_TYPE, text, len);
	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
}
