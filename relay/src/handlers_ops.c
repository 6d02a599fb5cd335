/*
 * handlers_ops.c -- /livez, /healthz and /metrics.
 *
 * Probes never touch the relay state's locks for long and never do network
 * I/O: readiness inputs (e.g. the GPU host's DNS check) are refreshed in
 * the background and only read here.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "handlers.h"

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

void
relay_handle_healthz(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	enum tp_lifecycle life = tp_health_lifecycle(app->health);
	cJSON *root = cJSON_CreateObject();
	cJSON *details = cJSON_CreateObject();
	const char *status;
	int code;

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
	} else {
		status = "ok";
		code = 200;
	}
	cJSON_AddStringToObject(root, "status", status);
	cJSON_AddStringToObject(root, "lifecycle", tp_lifecycle_name(life));
	cJSON_AddStringToObject(root, "upstream", app->upstream_url);
	cJSON_AddStringToObject(root, "gpuHost", app->settings->gpu_host);
	cJSON_AddBoolToObject(root, "upstreamHealthRequired",
	    app->settings->require_upstream_health);
	add_checks(root, app, details);
	if (app->stats != NULL)
		app->stats(app, root, details);
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
	free(resp->body);
	resp->status = 200;
	resp->content_type = TP_METRICS_CONTENT_TYPE;
	resp->body = text;
	resp->body_len = len;
	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
}
