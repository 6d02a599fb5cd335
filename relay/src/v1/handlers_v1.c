/*
 * handlers_v1.c -- the API v1 relay routes (PROTOCOL.md section 4.3):
 * body -> tp_proto_v1 struct -> one relay_v1 call -> reply.
 *
 * Statuses, field names and literal messages are HEAD's, so current
 * compute nodes and clients work unchanged; where we close a gap of HEAD
 * (PROTOCOL.md 4.8) the difference is listed in docs/protocol-v1.md.
 * Nothing here logs or returns a node's key or capabilities beyond the
 * one selected key /servers/next must hand out; logs carry fingerprints.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/auth.h"
#include "core/percent.h"
#include "settings.h"
#include "tokenplace/json.h"
#include "tokenplace/log.h"
#include "tokenplace/proto_v1.h"
#include "v1/handlers.h"
#include "v1/v1_broker.h"

#define QUERY_VALUE_MAX 256

/* ---- helpers -------------------------------------------------------------- */

/* {"error":{"code":status,"message":...}}; kind is for the access log. */
static void
refuse(struct relay_response *resp, int status, const char *message,
    const char *kind)
{
	relay_response_error(resp, status, status, message);
	resp->error_kind = kind;
}

static bool
ready(struct relay_app *app, struct relay_response *resp)
{
	if (app->v1 != NULL)
		return true;
	refuse(resp, 503, "API v1 relay state unavailable", "v1_unavailable");
	return false;
}

static struct tp_v1_limits
limits(const struct relay_app *app)
{
	struct tp_v1_limits l;

	l.max_key_bytes = (size_t)app->settings->max_key_bytes;
	return l;
}

static void
parse_error(struct relay_response *resp, const struct tp_v1_error *err)
{
	if (err->code != NULL)
		relay_response_error_code(resp, err->status, err->code,
		    err->message);
	else
		relay_response_error(resp, err->status, err->status,
		    err->message);
	resp->error_kind = "invalid_body";
}

/* The registration token on every node route (401 otherwise). */
static bool
node_token_ok(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (relay_v1_node_authorized(app->v1,
	    relay_request_header(req, RELAY_AUTH_HEADER)))
		return true;
	refuse(resp, 401, TP_MSG_BAD_TOKEN, "bad_token");
	return false;
}

/*
 * Gate of the node routes, run before the body is read: a caller without
 * the registration token never makes the relay read or parse its body.
 */
void
relay_gate_v1_node(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (ready(app, resp))
		(void)node_token_ok(app, req, resp);
}

static void
limit_refusal(struct relay_app *app, struct relay_response *resp,
    enum relay_v1_rc rc, int status, const char *message)
{
	const char *limit = relay_v1_rc_limit(rc);

	if (limit != NULL)
		relay_app_count_limit(app, limit);
	relay_response_error(resp, status, status, message);
	(void)relay_response_add_header(resp, "Retry-After", "1");
	resp->error_kind = "limit";
}

static void
internal(struct relay_response *resp, enum relay_v1_rc rc)
{
	if (rc == V1_E_NOMEM)
		relay_response_error(resp, 503, 503, "Relay is out of memory");
	else
		relay_response_error(resp, 503, 503,
		    "Relay state is unavailable");
	(void)relay_response_add_header(resp, "Retry-After", "1");
	resp->error_kind = "state";
}

/* Seconds left until deadline_ms, rounded to milliseconds, never negative. */
static double
remaining(struct relay_app *app, int64_t deadline_ms)
{
	int64_t left = deadline_ms - relay_v1_now(app->v1);

	return left > 0 ? (double)left / 1000.0 : 0.0;
}

static void
add_deadline(cJSON *o, double rem)
{
	cJSON_AddNumberToObject(o, "request_deadline_remaining_seconds", rem);
	cJSON_AddNumberToObject(o, "request_ttl_seconds", rem);
}

/*
 * "{" fragment tail "}" as one malloc'd body; tail starts with ',' or
 * is empty. Returns NULL when out of memory.
 */
static char *
wrap(const char *fragment, size_t flen, const char *tail, size_t *len)
{
	size_t tlen = strlen(tail);
	char *out = malloc(flen + tlen + 3);

	if (out == NULL)
		return NULL;
	out[0] = '{';
	memcpy(out + 1, fragment, flen);
	memcpy(out + 1 + flen, tail, tlen);
	out[1 + flen + tlen] = '}';
	out[2 + flen + tlen] = '\0';
	*len = flen + tlen + 2;
	return out;
}

/* A key as logs may show it: first 8 ... last 4 characters. */
static void
fingerprint(const char *key, size_t len, char out[20])
{
	if (len <= 12) {
		snprintf(out, 20, "%.*s", (int)len, key);
		return;
	}
	snprintf(out, 20, "%.8s...%.4s", key, key + len - 4);
}

/* ---- node routes -------------------------------------------------------------- */

void
relay_handle_v1_register(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_node_request *n;
	struct tp_v1_error err;
	const struct relay_v1_config *cfg;
	char cred[RELAY_V1_CREDENTIAL_LEN + 1], fp[20];
	enum relay_v1_rc rc;
	cJSON *o, *caps;
	bool created;

	if (!ready(app, resp))	/* token: relay_gate_v1_node */
		return;
	/* Capabilities carry up to 64 x 128-byte model ids: off the stack. */
	n = malloc(sizeof(*n));
	if (n == NULL) {
		internal(resp, V1_E_NOMEM);
		return;
	}
	if (tp_v1_register_parse(req->json, &lim, n, &err) != 0) {
		parse_error(resp, &err);
		goto out;
	}
	rc = relay_v1_register(app->v1, n->server_public_key.ptr,
	    n->server_public_key.len, &n->caps, cred, &created);
	if (rc == V1_E_NODES_FULL) {
		limit_refusal(app, resp, rc, 429, TP_MSG_SERVERS_FULL);
		goto out;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		goto out;
	}
	fingerprint(n->server_public_key.ptr, n->server_public_key.len, fp);
	TP_LOG(TP_LOG_INFO, created ? "server.registered" : "server.reregister",
	    TP_LSTR("server_fingerprint", fp), TP_LSTR("api", "v1"),
	    TP_LUINT("models", n->caps.nmodels),
	    TP_LINT("max_concurrency", n->caps.max_concurrency));
	cfg = relay_v1_config(app->v1);
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "next_ping_in_x_seconds",
	    (double)(cfg->lim.lease_ms / 1000));
	cJSON_AddNumberToObject(o, "poll_wait_seconds",
	    (double)(cfg->poll_wait_ms / 1000));
	caps = cJSON_AddObjectToObject(o, "relay_capabilities");
	cJSON_AddBoolToObject(caps, "encrypted_progress_v1", 1);
	if (created)
		cJSON_AddStringToObject(o, "control_credential", cred);
	relay_response_json(resp, 200, o);
	memset(cred, 0, sizeof(cred));
out:
	free(n);
}

void
relay_handle_v1_poll(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_node_request *n;
	struct relay_v1_poll_result pr;
	struct tp_v1_error err;
	const struct relay_v1_config *cfg;
	enum relay_v1_rc rc;
	long long wait_s;
	char tail[256];

	if (!ready(app, resp))	/* token: relay_gate_v1_node */
		return;
	n = malloc(sizeof(*n));
	if (n == NULL) {
		internal(resp, V1_E_NOMEM);
		return;
	}
	if (tp_v1_poll_parse(req->json, &lim, n, &err) != 0) {
		parse_error(resp, &err);
		goto out;
	}
	rc = relay_v1_poll(app->v1, n->server_public_key.ptr,
	    n->server_public_key.len, n->caps_valid ? &n->caps : NULL, &pr);
	if (rc == V1_E_UNKNOWN_NODE) {
		refuse(resp, 404, TP_V1_MSG_UNKNOWN_SERVER, "unknown_server");
		goto out;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		goto out;
	}
	cfg = relay_v1_config(app->v1);
	wait_s = (long long)(cfg->poll_wait_ms / 1000);
	if (pr.has_work) {
		double rem = remaining(app, pr.work.deadline_ms);
		size_t len = 0;
		char *body;

		/*
		 * next_ping 0 with work: a HEAD node otherwise sleeps a whole
		 * lease before its next poll and is evicted (PROTOCOL.md 4.8b).
		 */
		snprintf(tail, sizeof(tail), ",\"e2ee_v1\":true,"
		    "\"request_deadline_remaining_seconds\":%.3f,"
		    "\"request_ttl_seconds\":%.3f,\"next_ping_in_x_seconds\":0,"
		    "\"poll_wait_seconds\":%lld", rem, rem, wait_s);
		body = wrap(pr.work.envelope.data, pr.work.envelope.len, tail,
		    &len);
		relay_blob_free(&pr.work.envelope);
		if (body == NULL) {
			internal(resp, V1_E_NOMEM);
			goto out;
		}
		relay_response_set_body(resp, 200, NULL, body, len);
		TP_LOG(TP_LOG_INFO, "relay.api_v1.request_dispatched",
		    TP_LUINT("generation", pr.work.generation),
		    TP_LDBL("request_deadline_remaining_seconds", rem));
		goto out;
	}
	{
		/*
		 * Empty after a long poll: poll again now. Over the cap or
		 * draining: come back shortly, on a new connection, so this
		 * worker thread is free at once.
		 */
		long long next = 0;

		if (pr.busy || pr.draining) {
			next = (long long)cfg->busy_retry_s;
			resp->close = true;
		} else if (wait_s == 0) {
			next = (long long)(cfg->lim.lease_ms / 1000);
		}
		snprintf(tail, sizeof(tail), "{\"message\":\"%s\","
		    "\"next_ping_in_x_seconds\":%lld,\"poll_wait_seconds\":%lld}",
		    TP_V1_MSG_NO_REQUESTS, next, wait_s);
		relay_response_raw_json(resp, 200, tail);
	}
out:
	free(n);
}

static const char *
control_state_name(enum relay_v1_control_state s)
{
	switch (s) {
	case V1_CTL_ACTIVE:
		return "active";
	case V1_CTL_CANCELLED:
		return "cancelled";
	case V1_CTL_EXPIRED:
		return "expired";
	default:
		return "completed/unavailable";
	}
}

void
relay_handle_v1_control(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_control c;
	struct tp_v1_error err;
	enum relay_v1_control_state state;
	enum relay_v1_rc rc;
	int64_t deadline;
	cJSON *o;

	if (!ready(app, resp))	/* token: relay_gate_v1_node */
		return;
	if (tp_v1_control_parse(req->json, &lim, &c, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_control(app->v1, &c, &state, &deadline);
	if (rc == V1_E_FORBIDDEN) {
		refuse(resp, 403, TP_V1_MSG_BAD_CREDENTIAL, "bad_credential");
		return;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", control_state_name(state));
	cJSON_AddNumberToObject(o, "next_poll_seconds",
	    (double)relay_v1_next_poll_seconds(app->v1));
	if (state != V1_CTL_COMPLETED)
		add_deadline(o, remaining(app, deadline));
	relay_response_json(resp, 200, o);
}

void
relay_handle_v1_unregister(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_unregister u;
	struct tp_v1_error err;
	enum relay_v1_rc rc;
	bool removed = false;
	char fp[20];
	cJSON *o;

	if (!ready(app, resp))	/* token: relay_gate_v1_node */
		return;
	if (tp_v1_unregister_parse(req->json, &lim, &u, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_unregister(app->v1, &u, &removed);
	if (rc == V1_E_FORBIDDEN) {
		refuse(resp, 403, TP_V1_MSG_BAD_CREDENTIAL, "bad_credential");
		return;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		return;
	}
	fingerprint(u.server_public_key.ptr, u.server_public_key.len, fp);
	TP_LOG(TP_LOG_INFO, "server.unregistered", TP_LSTR("api", "v1"),
	    TP_LSTR("server_fingerprint", fp), TP_LBOOL("removed", removed));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "message", TP_V1_MSG_UNREGISTERED);
	cJSON_AddBoolToObject(o, "removed", removed);
	relay_response_json(resp, 200, o);
}

/* ---- client routes -------------------------------------------------------------- */

/*
 * The decoded value of query parameter `name` into out (last occurrence
 * wins, as Flask's args.get does not, but nobody repeats them). Returns
 * 1 when found, 0 when absent, -1 when longer than outlen - 1.
 */
static int
query_get(const char *q, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	int found = 0;

	while (q != NULL && *q != '\0') {
		const char *end = q + strcspn(q, "&");

		if ((size_t)(end - q) > nlen && strncmp(q, name, nlen) == 0 &&
		    q[nlen] == '=') {
			const char *p = q + nlen + 1;
			size_t o = 0;

			while (p < end) {
				char c = *p;
				int v = end - p >= 3 ?
				    relay_percent_byte(p) : -1;

				if (v >= 0) {
					c = (char)v;
					p += 3;
				} else {
					if (c == '+')
						c = ' ';
					p++;
				}
				if (o + 1 >= outlen)
					return -1;
				out[o++] = c;
			}
			out[o] = '\0';
			found = 1;
		} else if ((size_t)(end - q) == nlen && strncmp(q, name, nlen) == 0) {
			out[0] = '\0';
			found = 1;
		}
		q = *end == '&' ? end + 1 : end;
	}
	return found;
}

static void
selection_error(struct relay_response *resp, enum relay_v1_rc rc,
    const char *requested_model, const char *resolved, const char *tier,
    const struct relay_v1_selection *sel)
{
	const char *code = "no_registered_compute_nodes";
	const char *msg = "No compute nodes are registered";
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");

	if (rc == V1_E_NO_MATCH) {
		code = "no_matching_compute_node";
		msg = "No compute node serves the requested model and context tier";
	} else if (rc == V1_E_NO_CAPACITY) {
		code = "no_available_capacity";
		msg = "Every matching compute node is at capacity";
		(void)relay_response_add_header(resp, "Retry-After", "1");
	}
	cJSON_AddStringToObject(err, "code", code);
	cJSON_AddStringToObject(err, "message", msg);
	cJSON_AddStringToObject(err, "requested_model", requested_model);
	cJSON_AddStringToObject(err, "resolved_model", resolved);
	cJSON_AddStringToObject(err, "requested_context_tier", tier);
	cJSON_AddNumberToObject(err, "eligible_node_count",
	    (double)sel->eligible_nodes);
	relay_response_json(resp, 503, root);
	resp->error_kind = code;
}

void
relay_handle_v1_next_server(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	char model[QUERY_VALUE_MAX], tier_s[QUERY_VALUE_MAX], lowered[QUERY_VALUE_MAX];
	char requested[QUERY_VALUE_MAX];
	struct relay_v1_selection sel;
	enum tp_v1_tier tier = TP_V1_TIER_8K;
	const char *resolved;
	enum relay_v1_rc rc;
	cJSON *o, *arr, *counts;
	size_t off, i;
	int t;

	if (!ready(app, resp))
		return;
	t = query_get(req->query, "context_tier", tier_s, sizeof(tier_s));
	if (t > 0 && tier_s[0] == '\0')
		t = 0;
	if (t < 0 || (t > 0 && tp_v1_tier_parse(tier_s, &tier) != 0)) {
		relay_response_error_code(resp, 400, "invalid_context_tier",
		    TP_V1_MSG_BAD_TIER);
		resp->error_kind = "invalid_context_tier";
		return;
	}
	if (query_get(req->query, "model", model, sizeof(model)) <= 0)
		model[0] = '\0';
	resolved = tp_v1_resolve_model(model, lowered, sizeof(lowered));
	snprintf(requested, sizeof(requested), "%s",
	    model[0] != '\0' && resolved != NULL ? lowered : TP_V1_DEFAULT_MODEL);
	memset(&sel, 0, sizeof(sel));
	if (resolved == NULL) {
		selection_error(resp, V1_E_NO_MATCH, model, model,
		    tp_v1_tier_name(tier), &sel);
		return;
	}
	rc = relay_v1_select(app->v1, resolved, tier, &sel);
	if (rc == V1_E_NO_NODES || rc == V1_E_NO_MATCH || rc == V1_E_NO_CAPACITY) {
		if (rc == V1_E_NO_CAPACITY)
			relay_app_count_limit(app, "api_v1_max_concurrency");
		selection_error(resp, rc, requested, resolved,
		    tp_v1_tier_name(tier), &sel);
		return;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "server_public_key",
	    cJSON_CreateString(sel.key.data));
	cJSON_AddStringToObject(o, "requested_context_tier", tp_v1_tier_name(tier));
	cJSON_AddStringToObject(o, "requested_model", requested);
	cJSON_AddStringToObject(o, "resolved_model", resolved);
	cJSON_AddStringToObject(o, "selected_context_tier",
	    tp_v1_tier_name(sel.tier));
	cJSON_AddNumberToObject(o, "selected_context_window_tokens",
	    (double)sel.context_tokens);
	arr = cJSON_AddArrayToObject(o, "selected_model_support");
	for (i = 0, off = 0; i < sel.nmodels && arr != NULL; i++) {
		cJSON_AddItemToArray(arr, cJSON_CreateString(sel.models.data + off));
		off += strlen(sel.models.data + off) + 1;
	}
	cJSON_AddStringToObject(o, "selection_policy", TP_V1_SELECTION_POLICY);
	cJSON_AddNumberToObject(o, "eligible_node_count", (double)sel.eligible_nodes);
	counts = cJSON_AddObjectToObject(o, "eligible_tier_counts");
	for (i = 0; i < TP_V1_TIER_COUNT && counts != NULL; i++)
		if (sel.eligible_per_tier[i] > 0)
			cJSON_AddNumberToObject(counts,
			    tp_v1_tier_name((enum tp_v1_tier)i),
			    (double)sel.eligible_per_tier[i]);
	cJSON_AddNumberToObject(o, "selected_queue_depth", (double)sel.queue_depth);
	cJSON_AddNumberToObject(o, "selected_in_flight_count", (double)sel.in_flight);
	cJSON_AddNumberToObject(o, "selected_load_score",
	    round(sel.load_score * 1000.0) / 1000.0);
	cJSON_AddBoolToObject(o, "spillover", sel.spillover);
	if (sel.spillover)
		cJSON_AddStringToObject(o, "spillover_reason",
		    "no_smaller_eligible_node_available");
	relay_response_json(resp, 200, o);
	relay_v1_selection_free(&sel);
}

void
relay_handle_v1_requests(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_envelope e;
	struct tp_v1_error err;
	enum relay_v1_rc rc;
	int64_t deadline = 0;
	bool dup = false;
	double rem;
	char fp[20];
	cJSON *o;

	if (!ready(app, resp))
		return;
	if (tp_v1_request_parse(req->json, &lim, &e, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_enqueue(app->v1, &e, &deadline, &dup);
	switch (rc) {
	case V1_OK:
		break;
	case V1_E_UNKNOWN_NODE:
		refuse(resp, 404, TP_V1_MSG_UNKNOWN_SERVER, "unknown_server");
		return;
	case V1_E_NO_CAPACITY:
		relay_app_count_limit(app, relay_v1_rc_limit(rc));
		relay_response_error_code(resp, 503, "no_available_capacity",
		    "The compute node is at capacity; select a server again");
		(void)relay_response_add_header(resp, "Retry-After", "1");
		resp->error_kind = "no_capacity";
		return;
	case V1_E_REQUESTS_FULL:
		limit_refusal(app, resp, rc, 429, "Too many pending requests");
		return;
	case V1_E_CONFLICT:
		relay_response_error_code(resp, 409, "request_id_conflict",
		    "request_id is already in use");
		resp->error_kind = "conflict";
		return;
	default:
		internal(resp, rc);
		return;
	}
	rem = remaining(app, deadline);
	fingerprint(e.server_public_key.ptr, e.server_public_key.len, fp);
	TP_LOG(TP_LOG_INFO, "relay.api_v1.request_queued",
	    TP_LSTR("server_fingerprint", fp), TP_LBOOL("duplicate", dup),
	    TP_LBOOL("cancellable", e.cancel_token.ptr != NULL),
	    TP_LDBL("request_deadline_remaining_seconds", rem));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "message", TP_V1_MSG_REQUEST_RECEIVED);
	add_deadline(o, rem);
	relay_response_json(resp, 200, o);
}

void
relay_handle_v1_cancel(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_cancel c;
	struct tp_v1_error err;
	enum relay_v1_rc rc;
	int removed = 0;
	cJSON *o;

	if (!ready(app, resp))
		return;
	if (tp_v1_cancel_parse(req->json, &lim, &c, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_cancel(app->v1, &c, &removed);
	if (rc == V1_E_FORBIDDEN) {
		refuse(resp, 403, TP_V1_MSG_BAD_CANCEL, "bad_cancel_proof");
		return;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		return;
	}
	TP_LOG(TP_LOG_INFO, "relay.api_v1.request_cancelled",
	    TP_LSTR("status", tp_v1_status_name(c.status)),
	    TP_LSTR("reason", c.reason), TP_LINT("removed_from_queue", removed));
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "removed_from_queue", removed);
	cJSON_AddItemToObject(o, "request_id",
	    cJSON_CreateString(c.request_id.ptr));
	cJSON_AddStringToObject(o, "status", tp_v1_status_name(c.status));
	relay_response_json(resp, 200, o);
}

void
relay_handle_v1_responses(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_envelope e;
	struct tp_v1_error err;
	enum relay_v1_rc rc;
	const char *gone = NULL;
	bool dup = false;
	cJSON *root, *o;

	if (!ready(app, resp))	/* token: relay_gate_v1_node */
		return;
	if (tp_v1_response_parse(req->json, &lim, &e, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_respond(app->v1, &e, &dup, &gone);
	if (rc == V1_E_FORBIDDEN) {
		refuse(resp, 403, TP_V1_MSG_BAD_CREDENTIAL, "bad_credential");
		return;
	}
	if (rc == V1_E_GONE) {
		root = cJSON_CreateObject();
		o = cJSON_AddObjectToObject(root, "error");
		cJSON_AddStringToObject(o, "code", gone);
		cJSON_AddStringToObject(o, "message", TP_V1_MSG_NOT_WAITING);
		cJSON_AddStringToObject(o, "status", gone);
		relay_response_json(resp, 410, root);
		resp->error_kind = "gone";
		TP_LOG(TP_LOG_INFO, "relay.api_v1.late_response_refused",
		    TP_LSTR("status", gone));
		return;
	}
	if (rc != V1_OK) {
		internal(resp, rc);
		return;
	}
	TP_LOG(TP_LOG_INFO, dup ? "relay.api_v1.duplicate_response_ignored" :
	    "relay.api_v1.response_received",
	    TP_LBOOL("owner_proof", e.control_credential.ptr != NULL));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "message", dup ?
	    TP_V1_MSG_RESPONSE_DUPLICATE : TP_V1_MSG_RESPONSE_QUEUED);
	relay_response_json(resp, 200, o);
}

void
relay_handle_v1_progress(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_progress p;
	struct tp_v1_error err;
	enum relay_v1_rc rc;

	if (!ready(app, resp))	/* token: relay_gate_v1_node */
		return;
	if (tp_v1_progress_parse(req->json, &lim, &p, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_progress(app->v1, &p);
	switch (rc) {
	case V1_OK:
		relay_response_raw_json(resp, 202,
		    "{\"message\":\"" TP_V1_MSG_PROGRESS_ACCEPTED "\"}");
		return;
	case V1_E_FORBIDDEN:
		refuse(resp, 403, TP_V1_MSG_BAD_CREDENTIAL, "bad_credential");
		return;
	case V1_E_NOT_ACTIVE:
		refuse(resp, 410, TP_V1_MSG_PROGRESS_INACTIVE, "gone");
		return;
	case V1_E_EXPIRED:
		refuse(resp, 410, TP_V1_MSG_PROGRESS_EXPIRED, "gone");
		return;
	default:
		internal(resp, rc);
		return;
	}
}

void
relay_handle_v1_retrieve(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_v1_limits lim = limits(app);
	struct tp_v1_retrieve r;
	struct relay_v1_retrieval out;
	struct tp_v1_error err;
	enum relay_v1_rc rc;
	char msg[256];
	cJSON *root, *o;

	if (!ready(app, resp))
		return;
	if (tp_v1_retrieve_parse(req->json, &lim, &r, &err) != 0) {
		parse_error(resp, &err);
		return;
	}
	rc = relay_v1_retrieve(app->v1, &r, &out);
	if (rc != V1_OK) {
		internal(resp, rc);
		return;
	}
	switch (out.kind) {
	case V1_RET_RESPONSE: {
		size_t len = 0;
		char *body = wrap(out.body.data, out.body.len, "", &len);

		relay_blob_free(&out.body);
		if (body == NULL) {
			internal(resp, V1_E_NOMEM);
			return;
		}
		relay_response_set_body(resp, 200, NULL, body, len);
		TP_LOG0(TP_LOG_INFO, "relay.api_v1.response_retrieved");
		return;
	}
	case V1_RET_PENDING:
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "status", "pending");
		add_deadline(root, remaining(app, out.deadline_ms));
		if (out.body.data != NULL) {
			struct tp_json_error jerr;
			size_t len = 0;
			char *text = wrap(out.body.data, out.body.len, "", &len);

			/* Our own flat encoding (tp_v1_progress_encode()). */
			o = text ? tp_json_read(text, len, 0, NULL, &jerr) : NULL;
			free(text);
			if (o != NULL)
				cJSON_AddItemToObject(root, "encrypted_progress", o);
		}
		relay_blob_free(&out.body);
		relay_response_json(resp, 202, root);
		return;
	case V1_RET_TERMINAL:
		root = cJSON_CreateObject();
		o = cJSON_AddObjectToObject(root, "error");
		cJSON_AddStringToObject(o, "code", out.status);
		cJSON_AddStringToObject(o, "message",
		    strcmp(out.status, "expired") == 0 ? "Request expired" :
		    "Request cancelled");
		cJSON_AddStringToObject(o, "reason", out.reason);
		cJSON_AddStringToObject(o, "status", out.status);
		relay_response_json(resp, 410, root);
		resp->error_kind = "gone";
		return;
	case V1_RET_UNKNOWN:
		if (r.request_id.ptr == NULL) {
			relay_response_error(resp, 404, 404, TP_V1_MSG_NO_RESPONSE);
		} else {
			size_t cut = r.request_id.len > 200 ? 200 :
			    r.request_id.len;

			/*
			 * The id is valid UTF-8 (the JSON reader checked it):
			 * cut before a character, never inside one, or the
			 * answer is not valid JSON text (the fuzzer's finding).
			 */
			while (cut > 0 && cut < r.request_id.len &&
			    ((unsigned char)r.request_id.ptr[cut] & 0xc0) == 0x80)
				cut--;
			snprintf(msg, sizeof(msg), "Unknown request_id: %.*s",
			    (int)cut, r.request_id.ptr);
			relay_response_error(resp, 404, 404, msg);
		}
		resp->error_kind = "unknown_request";
		return;
	}
}

cJSON *
relay_release_metadata(const struct relay_settings *s)
{
	const char *env = s->environment ? s->environment : "dev";
	char label[128];
	cJSON *o = cJSON_CreateObject();

	snprintf(label, sizeof(label), "%s %s", env, TP_VERSION);
	if (cJSON_AddStringToObject(o, "environment", env) == NULL ||
	    cJSON_AddStringToObject(o, "label", label) == NULL ||
	    cJSON_AddStringToObject(o, "version", TP_VERSION) == NULL ||
	    cJSON_AddStringToObject(o, "ref", TP_REVISION) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* GET /api/v1/meta and /api/v1/version: release metadata. */
void
relay_handle_v1_meta(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	cJSON *o = relay_release_metadata(app->settings);

	(void)req;
	(void)relay_response_add_header(resp, "Cache-Control", "no-store");
	if (o == NULL) {
		relay_response_error(resp, 500, 500, "Internal server error");
		return;
	}
	relay_response_json(resp, 200, o);
}
