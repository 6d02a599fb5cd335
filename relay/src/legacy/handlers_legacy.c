/*
 * handlers_legacy.c -- the legacy relay routes (PROTOCOL.md 1.4): body ->
 * tp_proto struct -> broker call -> reply bytes as the Python relay wrote
 * them. Order in every handler: legacy switch (410), registration token
 * (401, node routes, before the body is looked at), rate limit (/faucet),
 * body validation (400), then the broker's outcome.
 *
 * Refusals by our own limits are 429 with Retry-After, in the route's
 * error shape: /faucet object form, the other routes string form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/auth.h"
#include "legacy/broker.h"
#include "legacy/handlers.h"
#include "settings.h"
#include "tokenplace/proto.h"

/* Retry-After for full queues and tables: one node poll interval. */
#define RETRY_FULL_S	TP_PROTO_NEXT_PING_SECONDS
/* A full stream buffer drains as soon as the client polls again. */
#define RETRY_CHUNKS_S	1

static const char msg_internal[] = "Internal server error";
static const char msg_unavailable[] = "Relay state unavailable";

/* Installs a rendered body; NULL (out of memory) becomes a plain 500. */
static void
reply(struct relay_response *resp, int status, char *body, size_t len)
{
	if (body == NULL) {
		relay_response_error(resp, 500, 500, msg_internal);
		resp->error_kind = "internal";
		return;
	}
	relay_response_set_body(resp, status, NULL, body, len);
}

static void
reply_error(struct relay_response *resp, int status, enum tp_err_shape shape,
    const char *message)
{
	size_t len = 0;
	char *body = tp_error_reply(shape, status, message, &len);

	reply(resp, status, body, len);
}

static void
reply_parse_error(struct relay_app *app, struct relay_response *resp,
    const struct tp_error *err)
{
	if (strcmp(err->message, TP_MSG_KEY_TOO_LONG) == 0 ||
	    strcmp(err->message, TP_MSG_SESSION_TOO_LONG) == 0)
		relay_app_count_limit(app, "max_key_bytes");
	resp->error_kind = "invalid_request";
	reply_error(resp, err->status, err->shape, err->message);
}

static void
retry_after(struct relay_response *resp, long long seconds)
{
	char v[24];

	snprintf(v, sizeof(v), "%lld", seconds);
	(void)relay_response_add_header(resp, "Retry-After", v);
}

/* 429 for a store limit: counted, Retry-After, route's shape. */
static void
reply_limit(struct relay_app *app, struct relay_response *resp,
    enum relay_status st, enum tp_err_shape shape, const char *message,
    long long wait_s)
{
	const char *limit = relay_status_limit(st);

	if (limit != NULL)
		relay_app_count_limit(app, limit);
	resp->error_kind = "limit";
	reply_error(resp, 429, shape, message);
	retry_after(resp, wait_s);
}

/* Errors any broker call can return. */
static void
reply_broker_failure(struct relay_response *resp, enum relay_status st,
    enum tp_err_shape shape)
{
	if (st == RELAY_E_UNAVAILABLE) {
		/* The shared store is unreachable: try again shortly. */
		resp->error_kind = "unavailable";
		reply_error(resp, 503, shape, msg_unavailable);
		retry_after(resp, 1);
	} else {
		resp->error_kind = "internal";
		reply_error(resp, 500, shape, msg_internal);
	}
}

/*
 * The HEAD relay's switch: with legacy routes off the five original
 * routes answer 410. Returns false when the request was answered.
 */
static bool
legacy_enabled(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	const char *path;
	size_t len = 0;
	char *body;

	if (app->settings->legacy_routes)
		return true;
	path = req->route != NULL ? req->route->path : req->path;
	body = tp_legacy_gone_reply(path, &len);
	resp->error_kind = "legacy_disabled";
	reply(resp, 410, body, len);
	return false;
}

/* The relay state must exist (it does whenever routes are served). */
static bool
have_broker(struct relay_app *app, struct relay_response *resp,
    enum tp_err_shape shape)
{
	if (app->broker != NULL)
		return true;
	resp->error_kind = "unavailable";
	reply_error(resp, 503, shape, msg_unavailable);
	return false;
}

/* Node routes: the registration token, checked before the body. */
static bool
node_authorized(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (relay_broker_node_authorized(app->broker,
	    relay_request_header(req, RELAY_AUTH_HEADER)))
		return true;
	resp->error_kind = "unauthorized";
	reply_error(resp, 401, TP_ERR_OBJECT, TP_MSG_BAD_TOKEN);
	return false;
}

/*
 * Gates (run before the body is read, see struct relay_route): the route
 * switch, the registration token and the /faucet rate limit refuse a
 * request without the relay reading or parsing what it sent.
 */
void
relay_gate_legacy(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	(void)legacy_enabled(app, req, resp);
}

void
relay_gate_legacy_node(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (legacy_enabled(app, req, resp) &&
	    have_broker(app, resp, TP_ERR_STRING))
		(void)node_authorized(app, req, resp);
}

void
relay_gate_node(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (have_broker(app, resp, TP_ERR_STRING))
		(void)node_authorized(app, req, resp);
}

void
relay_gate_faucet(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	enum relay_status st;
	int64_t wait_s = 0;

	if (!legacy_enabled(app, req, resp) ||
	    !have_broker(app, resp, TP_ERR_OBJECT))
		return;
	st = relay_broker_faucet_admit(app->broker, req->remote_addr,
	    relay_request_header(req, "X-Forwarded-For"), &wait_s);
	if (st == RELAY_E_RATE_LIMITED)
		reply_limit(app, resp, st, TP_ERR_OBJECT, TP_MSG_RATE_LIMITED,
		    (long long)wait_s);
}

void
relay_handle_next_server(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct relay_blob key;
	enum relay_status st;
	size_t len = 0;
	char *body;

	(void)req;	/* gated by relay_gate_legacy */
	if (!have_broker(app, resp, TP_ERR_OBJECT))
		return;
	st = relay_broker_next_server(app->broker, &key);
	if (st == RELAY_E_NO_SERVERS) {
		/* quirk 1.8.1: HTTP 200 carrying an object error with code 503 */
		body = tp_error_reply(TP_ERR_OBJECT, 503, TP_MSG_NO_SERVERS, &len);
		resp->error_kind = "no_servers";
		reply(resp, 200, body, len);
		return;
	}
	if (st != RELAY_OK) {
		reply_broker_failure(resp, st, TP_ERR_OBJECT);
		return;
	}
	body = tp_next_server_reply(key.data, key.len, &len);
	relay_blob_free(&key);
	reply(resp, 200, body, len);
}

void
relay_handle_faucet(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_faucet_request fr;
	struct tp_error err;
	enum relay_status st;
	size_t len = 0;
	char *body;

	(void)req;	/* gated by relay_gate_faucet */
	if (tp_faucet_parse(req->json, relay_broker_proto_limits(app->broker),
	    &fr, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_faucet(app->broker, &fr);
	switch (st) {
	case RELAY_OK:
		body = tp_message_reply(TP_MSG_REQUEST_RECEIVED, &len);
		reply(resp, 200, body, len);
		break;
	case RELAY_E_UNKNOWN_SERVER:
		/* quirk 1.8.3: the 404 is the string form */
		resp->error_kind = "unknown_server";
		reply_error(resp, 404, TP_ERR_STRING, TP_MSG_UNKNOWN_SERVER);
		break;
	case RELAY_E_QUEUE_FULL:
		reply_limit(app, resp, st, TP_ERR_OBJECT, TP_MSG_QUEUE_FULL,
		    RETRY_FULL_S);
		break;
	case RELAY_E_QUEUE_TOTAL:
		reply_limit(app, resp, st, TP_ERR_OBJECT, TP_MSG_QUEUE_TOTAL_FULL,
		    RETRY_FULL_S);
		break;
	default:
		reply_broker_failure(resp, st, TP_ERR_OBJECT);
		break;
	}
}

void
relay_handle_sink(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_sink_request sr;
	struct tp_error err;
	struct relay_poll_result pr;
	struct tp_sink_item *items = NULL;
	enum relay_status st;
	size_t i, len = 0;
	char *body;

	/* gated by relay_gate_legacy_node */
	if (tp_sink_parse(req->json, relay_broker_proto_limits(app->broker),
	    &sr, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_sink(app->broker, &sr, &pr);
	if (st == RELAY_E_SERVERS_FULL) {
		reply_limit(app, resp, st, TP_ERR_STRING, TP_MSG_SERVERS_FULL,
		    RETRY_FULL_S);
		return;
	}
	if (st != RELAY_OK) {
		reply_broker_failure(resp, st, TP_ERR_STRING);
		return;
	}
	if (pr.session_limited)
		relay_app_count_limit(app, "max_stream_sessions");
	if (pr.n > 0 && (items = calloc(pr.n, sizeof(*items))) == NULL) {
		/*
		 * The jobs are already dequeued; they are lost like any job
		 * whose reply does not reach the node (at-most-once).
		 */
		relay_poll_result_free(&pr);
		reply_broker_failure(resp, RELAY_E_NOMEM, TP_ERR_STRING);
		return;
	}
	for (i = 0; i < pr.n; i++) {
		items[i].fields = pr.jobs[i].blob.data;
		items[i].fields_len = pr.jobs[i].blob.len;
		items[i].stream = pr.jobs[i].stream;
		items[i].session_id = pr.jobs[i].session_id[0] != '\0' ?
		    pr.jobs[i].session_id : NULL;
	}
	body = tp_sink_reply(items, pr.n, sr.batch, TP_PROTO_NEXT_PING_SECONDS,
	    &len);
	free(items);
	relay_poll_result_free(&pr);
	reply(resp, 200, body, len);
}

void
relay_handle_source(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_source_request sr;
	struct tp_error err;
	enum relay_status st;
	size_t len = 0;
	char *body;

	/* gated by relay_gate_legacy_node */
	if (tp_source_parse(req->json, relay_broker_proto_limits(app->broker),
	    &sr, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_source(app->broker, &sr);
	if (st == RELAY_OK) {
		body = tp_message_reply(TP_MSG_RESPONSE_QUEUED, &len);
		reply(resp, 200, body, len);
	} else if (st == RELAY_E_RESPONSES_FULL)
		reply_limit(app, resp, st, TP_ERR_STRING, TP_MSG_RESPONSES_FULL,
		    RETRY_FULL_S);
	else
		reply_broker_failure(resp, st, TP_ERR_STRING);
}

void
relay_handle_retrieve(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_client_request cr;
	struct tp_error err;
	struct relay_blob blob;
	enum relay_status st;
	size_t len = 0;
	char *body;

	/* gated by relay_gate_legacy */
	if (!have_broker(app, resp, TP_ERR_STRING))
		return;
	if (tp_retrieve_parse(req->json, relay_broker_proto_limits(app->broker),
	    &cr, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_retrieve(app->broker, &cr, &blob);
	if (st == RELAY_E_NO_RESPONSE) {
		/* quirk 1.8.2: HTTP 200 with a string error; clients match the text */
		resp->error_kind = "no_response";
		body = tp_error_reply(TP_ERR_STRING, 200, TP_MSG_NO_RESPONSE, &len);
		reply(resp, 200, body, len);
		return;
	}
	if (st != RELAY_OK) {
		reply_broker_failure(resp, st, TP_ERR_STRING);
		return;
	}
	body = tp_retrieve_reply(blob.data, blob.len, &len);
	relay_blob_free(&blob);
	reply(resp, 200, body, len);
}

void
relay_handle_stream_source(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_stream_source_request sr;
	struct tp_error err;
	enum relay_status st;
	size_t len = 0;
	char *body;

	/* gated by relay_gate_node */
	if (tp_stream_source_parse(req->json,
	    relay_broker_proto_limits(app->broker), &sr, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_stream_source(app->broker, &sr);
	switch (st) {
	case RELAY_OK:
		body = tp_stream_source_reply(sr.final, &len);
		reply(resp, 200, body, len);
		break;
	case RELAY_E_UNKNOWN_SESSION:
		resp->error_kind = "unknown_session";
		reply_error(resp, 404, TP_ERR_STRING, TP_MSG_UNKNOWN_SESSION);
		break;
	case RELAY_E_CHUNKS_FULL:
		reply_limit(app, resp, st, TP_ERR_STRING, TP_MSG_CHUNKS_FULL,
		    RETRY_CHUNKS_S);
		break;
	default:
		reply_broker_failure(resp, st, TP_ERR_STRING);
		break;
	}
}

void
relay_handle_stream_retrieve(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	struct tp_client_request cr;
	struct tp_error err;
	struct relay_drain_result dr;
	struct tp_chunk *chunks = NULL;
	enum relay_status st;
	size_t i, len = 0;
	char *body;

	if (!have_broker(app, resp, TP_ERR_STRING))
		return;
	if (tp_stream_retrieve_parse(req->json,
	    relay_broker_proto_limits(app->broker), &cr, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_stream_retrieve(app->broker, &cr, &dr);
	if (st == RELAY_E_NO_STREAM) {
		resp->error_kind = "no_stream";
		body = tp_error_reply(TP_ERR_STRING, 200, TP_MSG_NO_STREAM, &len);
		reply(resp, 200, body, len);
		return;
	}
	if (st != RELAY_OK) {
		reply_broker_failure(resp, st, TP_ERR_STRING);
		return;
	}
	if (dr.n > 0 && (chunks = calloc(dr.n, sizeof(*chunks))) == NULL) {
		relay_drain_result_free(&dr);
		reply_broker_failure(resp, RELAY_E_NOMEM, TP_ERR_STRING);
		return;
	}
	for (i = 0; i < dr.n; i++) {
		chunks[i].json = dr.chunks[i].data;
		chunks[i].len = dr.chunks[i].len;
	}
	body = tp_stream_retrieve_reply(chunks, dr.n, dr.session_id,
	    strlen(dr.session_id), dr.final, &len);
	free(chunks);
	relay_drain_result_free(&dr);
	reply(resp, 200, body, len);
}

void
relay_handle_unregister_legacy(struct relay_app *app,
    struct relay_request *req, struct relay_response *resp)
{
	struct tp_unregister_request ur;
	struct tp_error err;
	enum relay_status st;
	bool removed = false;
	size_t len = 0;
	char *body;

	/* gated by relay_gate_node */
	if (tp_unregister_parse(req->json,
	    relay_broker_proto_limits(app->broker), &ur, &err) != 0) {
		reply_parse_error(app, resp, &err);
		return;
	}
	st = relay_broker_unregister(app->broker, &ur, &removed);
	if (st != RELAY_OK) {
		reply_broker_failure(resp, st, TP_ERR_STRING);
		return;
	}
	body = tp_unregister_reply(removed, &len);
	reply(resp, 200, body, len);
}
