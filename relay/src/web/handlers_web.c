/*
 * handlers_web.c -- what token.place's browser page reads from its relay:
 * the page itself (/ and /static/...), the node counter
 * (/relay/diagnostics) and the model list (/api/v1/models, /v1/models and
 * one model under each).
 *
 * The counter and the model list are derived from the relay state only
 * (the stores' list operations), never from anything a replica keeps for
 * itself, so every replica answers the same.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "core/percent.h"
#include "legacy/broker.h"
#include "tokenplace/proto.h"
#include "tokenplace/proto_v1.h"
#include "v1/model_list.h"
#include "v1/v1_broker.h"
#include "web/handlers.h"
#include "web/web.h"

/* ---- the page ------------------------------------------------------------ */

static void
send_file(struct relay_request *req, struct relay_response *resp,
    const struct relay_web_file *f, const char *cache_control)
{
	(void)relay_response_add_header(resp, "Cache-Control", cache_control);
	(void)relay_response_add_header(resp, "ETag", f->etag);
	(void)relay_response_add_header(resp, "Last-Modified", f->last_modified);
	(void)relay_response_add_header(resp, "X-Content-Type-Options", "nosniff");
	if (relay_web_not_modified(f, relay_request_header(req, "If-None-Match"),
	    relay_request_header(req, "If-Modified-Since"))) {
		/* The length a 200 would have; no body is written. */
		relay_response_shared_body(resp, 304, f->content_type, NULL,
		    f->len);
		return;
	}
	relay_response_shared_body(resp, 200, f->content_type, f->body, f->len);
}

/* GET / : index.html as rendered at start-up. */
void
relay_handle_web_index(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (app->web == NULL) {
		relay_response_error(resp, 404, 404, "Not Found");
		resp->error_kind = "not_found";
		return;
	}
	send_file(req, resp, relay_web_index(app->web), RELAY_WEB_CC_INDEX);
}

/* GET /static/<path> : a file loaded at start-up, as it is on disk. */
void
relay_handle_web_static(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	const struct relay_web_file *f = NULL;
	const char *rest = req->path + strlen("/static/");

	if (app->web == NULL) {
		relay_response_error(resp, 404, 404, "Not Found");
		resp->error_kind = "not_found";
		return;
	}
	switch (relay_web_lookup(app->web, rest, &f)) {
	case RELAY_WEB_FOUND:
		send_file(req, resp, f,
		    relay_web_cache_control(app->web, f, req->query));
		return;
	case RELAY_WEB_BAD_PATH:
		relay_response_error(resp, 400, 400, "Invalid static file path");
		resp->error_kind = "bad_path";
		return;
	case RELAY_WEB_NOT_FOUND:
	default:
		relay_response_error(resp, 404, 404, "Not Found");
		resp->error_kind = "not_found";
		return;
	}
}

/* ---- /relay/diagnostics ---------------------------------------------------- */

static cJSON *
models_array(const char *models, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	const char *p = models;

	for (size_t i = 0; a != NULL && i < n; i++) {
		cJSON_AddItemToArray(a, cJSON_CreateString(p));
		p += strlen(p) + 1;
	}
	return a;
}

static void
add_node(cJSON *list, const char *key, double age_s, double next_ping,
    uint64_t queued, uint64_t in_flight, int64_t max_conc, cJSON *caps)
{
	cJSON *o = list != NULL ? cJSON_CreateObject() : NULL;
	uint64_t used = queued + in_flight;

	if (o == NULL) {		/* out of memory: the node is left out */
		cJSON_Delete(caps);
		return;
	}
	cJSON_AddStringToObject(o, "server_public_key", key);
	cJSON_AddNumberToObject(o, "age_seconds", age_s);
	cJSON_AddNumberToObject(o, "next_ping_in_x_seconds", next_ping);
	cJSON_AddNumberToObject(o, "queue_depth", (double)queued);
	cJSON_AddNumberToObject(o, "in_flight_count", (double)in_flight);
	cJSON_AddNumberToObject(o, "max_concurrency", (double)max_conc);
	cJSON_AddNumberToObject(o, "load_score",
	    max_conc > 0 ? (double)used / (double)max_conc : (double)used);
	if (!cJSON_AddItemToObject(o, "capabilities", caps))
		cJSON_Delete(caps);
	if (!cJSON_AddItemToArray(list, o))
		cJSON_Delete(o);
}

/*
 * The token.place shape, with the counts from both protocol generations.
 * registered_compute_nodes holds every node (legacy and API v1, as
 * token.place's known_servers does), api_v1_registered_compute_nodes the
 * API v1 ones. In the default "counts" detail both lists are empty and
 * only the totals tell; "full" lists up to RELAY_DIAGNOSTICS_MAX_NODES
 * of each generation with their keys and capabilities.
 */
void
relay_handle_diagnostics(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	const struct relay_settings *s = app->settings;
	bool full = strcasecmp(s->diagnostics_detail, "full") == 0;
	size_t max = full ? (size_t)s->diagnostics_max_nodes : 0;
	struct relay_server_list legacy = { 0 };
	struct relay_v1_node_list v1 = { 0 };
	cJSON *root, *all, *v1list;
	bool cut;

	(void)req;
	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
	if ((app->broker != NULL && relay_broker_list_servers(app->broker, max,
	    full, &legacy) != RELAY_OK) ||
	    (app->v1 != NULL && relay_v1_list_nodes(app->v1, max, full, &v1) !=
	    V1_OK)) {
		relay_response_error(resp, 503, 503,
		    "Relay state is unavailable");
		resp->error_kind = "state_unavailable";
		goto out;
	}
	root = cJSON_CreateObject();
	if (root == NULL)
		goto out;	/* answered 500 below */
	/* No relay-to-relay upstreams exist in this relay (docs/web.md). */
	cJSON_AddBoolToObject(root, "relay_only", 1);
	cJSON_AddBoolToObject(root, "upstream_health_required",
	    s->require_upstream_health);
	cJSON_AddArrayToObject(root, "active_upstream_servers");
	cJSON_AddArrayToObject(root, "required_upstream_servers");
	all = cJSON_AddArrayToObject(root, "registered_compute_nodes");
	for (size_t i = 0; all != NULL && i < legacy.n; i++)
		add_node(all, legacy.servers[i].key,
		    (double)legacy.servers[i].age_ms / 1000.0,
		    TP_PROTO_NEXT_PING_SECONDS, legacy.servers[i].queued, 0, 1,
		    cJSON_CreateObject());
	v1list = cJSON_CreateArray();
	for (size_t i = 0; v1list != NULL && i < v1.n; i++) {
		const struct relay_v1_node_info *n = &v1.nodes[i];
		const struct relay_v1_config *cfg = relay_v1_config(app->v1);
		double next = cfg->poll_wait_ms > 0 ? 0.0 :
		    (double)(cfg->lim.lease_ms / 1000);

		for (int copy = 0; copy < 2; copy++) {
			cJSON *caps = cJSON_CreateObject();

			cJSON_AddStringToObject(caps, "api_version", "v1");
			cJSON_AddStringToObject(caps, "active_context_tier",
			    tp_v1_tier_name(n->tier));
			cJSON_AddItemToObject(caps, "supported_model_ids",
			    models_array(n->models, n->nmodels));
			cJSON_AddNumberToObject(caps,
			    "maximum_total_context_tokens",
			    (double)n->max_context);
			cJSON_AddNumberToObject(caps, "max_concurrency",
			    (double)n->max_concurrency);
			add_node(copy == 0 ? all : v1list, n->key,
			    (double)n->age_ms / 1000.0, next, n->queued,
			    n->in_flight, n->max_concurrency, caps);
		}
	}
	cJSON_AddNumberToObject(root, "total_registered_compute_nodes",
	    (double)(legacy.total + v1.total));
	cJSON_AddItemToObject(root, "api_v1_registered_compute_nodes", v1list);
	cJSON_AddNumberToObject(root, "total_api_v1_registered_compute_nodes",
	    (double)v1.total);
	cJSON_AddArrayToObject(root, "configured_upstream_servers");
	cut = full && (legacy.n < legacy.total || v1.n < v1.total);
	if (cut)
		relay_app_count_limit(app, "diagnostics_max_nodes");
	relay_response_json(resp, 200, root);	/* consumes root */
out:
	if (resp->status == 0)
		relay_response_error(resp, 500, 500, "Internal server error");
	relay_server_list_free(&legacy);
	relay_v1_node_list_free(&v1);
}

/* ---- the model list ---------------------------------------------------------- */

/*
 * The requested id after ".../models/": percent-decoded and lower-cased
 * as nodes' ids are. Returns 0, or -1 for a malformed or unusable one.
 */
static int
decode_model_id(const char *raw, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = raw; *p != '\0'; p++) {
		int c = (unsigned char)*p;

		if (*p == '%') {
			c = relay_percent_byte(p);
			if (c < 0)
				return -1;
			p += 2;
		}
		if (c < 0x20 || c == 0x7f || o + 1 >= outlen)
			return -1;
		out[o++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[o] = '\0';
	return 0;
}

/*
 * GET /api/v1/models, /v1/models and .../models/<id>. The rule
 * (docs/web.md): with RELAY_MODELS_SOURCE=nodes (the default) the relay
 * answers from the supported_model_ids of the live API v1 nodes, sorted
 * and without duplicates, at most RELAY_MODELS_MAX of them, from a list
 * rebuilt at most once per RELAY_MODELS_CACHE_MS (model_list.c); with
 * "upstream" the router never brings these paths here (routes.c) and they
 * are forwarded like the rest of the API.
 */
void
relay_handle_models(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	const char *one;
	char want[TP_V1_MAX_MODEL_ID + 1];
	char *body = NULL;
	size_t len = 0;
	bool found = false, cut = false;
	enum relay_v1_rc rc = V1_OK;

	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
	one = strstr(req->path, "/models/");
	if (one != NULL) {
		one += strlen("/models/");
		if (decode_model_id(one, want, sizeof(want)) != 0) {
			relay_response_error_shaped(resp, RELAY_ERR_OPENAI, 400,
			    "invalid_model_id", "Invalid model id in the path");
			resp->error_kind = "bad_model_id";
			return;
		}
		if (app->models != NULL)
			rc = relay_model_list_find(app->models, want, &found);
	} else if (app->models != NULL) {
		rc = relay_model_list_body(app->models, &body, &len, &cut);
	} else {
		body = strdup("{\"object\":\"list\",\"data\":[]}");
		len = body != NULL ? strlen(body) : 0;
		rc = body != NULL ? V1_OK : V1_E_NOMEM;
	}
	if (rc == V1_E_NOMEM)
		goto oom;
	if (rc != V1_OK) {
		relay_response_error_shaped(resp, RELAY_ERR_OPENAI, 503,
		    "state_unavailable", "Relay state is unavailable");
		resp->error_kind = "state_unavailable";
		return;
	}
	if (one == NULL) {
		if (cut)
			relay_app_count_limit(app, "models_max");
		relay_response_set_body(resp, 200, NULL, body, len);
		return;
	}
	if (!found) {
		char msg[TP_V1_MAX_MODEL_ID + 32];

		snprintf(msg, sizeof(msg), "Model '%s' not found", want);
		relay_response_error_shaped(resp, RELAY_ERR_OPENAI, 404,
		    "model_not_found", msg);
		resp->error_kind = "model_not_found";
		return;
	}
	body = relay_model_object_json(want, (double)time(NULL));
	if (body == NULL)
		goto oom;
	relay_response_set_body(resp, 200, NULL, body, strlen(body));
	return;
oom:
	relay_response_error_shaped(resp, RELAY_ERR_OPENAI, 500,
	    "internal_error", "Internal server error");
}
