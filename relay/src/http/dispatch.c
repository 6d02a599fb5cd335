/*
 * http/dispatch.c -- a request between the adapter and its handler (see
 * dispatch.h for the contract), without civetweb: the adapter hands over
 * a struct relay_conn, and everything here reads the request through it.
 */
#include "http/dispatch.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "core/clock.h"
#include "http/framing.h"
#include "http/route.h"
#include "tokenplace/json.h"
#include "tokenplace/log.h"

#define BODY_CHUNK 16384

/* ---- request accessors (http.h) ----------------------------------------- */

const char *
relay_request_header(const struct relay_request *req, const char *name)
{
	return req->conn->ops->header(req->conn->io, name);
}

size_t
relay_request_header_count(const struct relay_request *req)
{
	return req->conn->header_count;
}

void
relay_request_header_at(const struct relay_request *req, size_t i,
    const char **name, const char **value)
{
	req->conn->ops->header_at(req->conn->io, i, name, value);
}

int64_t
relay_request_content_length(const struct relay_request *req)
{
	return (int64_t)req->conn->content_length;
}

ssize_t
relay_request_read(struct relay_request *req, void *buf, size_t len)
{
	int n = req->conn->ops->read(req->conn->io, buf, len);

	if (n == 0)
		req->conn->body_consumed = true;
	return n < 0 ? -1 : (ssize_t)n;
}

/* ---- request id and Date header ---------------------------------------- */

void
relay_dispatch_request_id(const char *inbound,
    char out[RELAY_REQUEST_ID_MAX + 1])
{
	if (relay_request_id_acceptable(inbound))
		memcpy(out, inbound, strlen(inbound) + 1);
	else
		relay_request_id_generate(out);
}

/* Formatted once per second per thread: most seconds see many answers. */
const char *
relay_dispatch_date(void)
{
	static _Thread_local char buf[40];
	static _Thread_local time_t cached = -1;
	time_t now = time(NULL);

	if (now != cached) {
		relay_http_date(now, buf, sizeof(buf));
		cached = now;
	}
	return buf;
}

/* ---- body ------------------------------------------------------------- */

/* application/json or any type ending in +json; parameters ignored. */
static bool
content_type_is_json(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0 &&
	    memchr(ct, '/', n) != NULL;
}

enum body_result {
	BODY_OK,
	BODY_TOO_LARGE,
	BODY_IO_ERROR,
	BODY_NO_MEMORY,
};

/*
 * Reads the whole body, refusing it as soon as it is known to exceed max:
 * from Content-Length before reading anything, or while reading a chunked
 * body. On BODY_OK *out is a NUL-terminated heap buffer.
 */
static enum body_result
read_body(struct relay_conn *c, size_t max, char **out, size_t *outlen)
{
	long long declared = c->content_length;
	size_t cap, len = 0;
	char *buf;

	*out = NULL;
	*outlen = 0;
	if (declared > 0 && (unsigned long long)declared > max)
		return BODY_TOO_LARGE;
	cap = declared > 0 ? (size_t)declared + 1 : 1024;
	buf = malloc(cap);
	if (buf == NULL)
		return BODY_NO_MEMORY;
	for (;;) {
		int n;

		if (len + 1 >= cap) {
			size_t ncap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			char *nbuf;

			if (ncap <= cap) {
				free(buf);
				return BODY_TOO_LARGE;
			}
			nbuf = realloc(buf, ncap);
			if (nbuf == NULL) {
				free(buf);
				return BODY_NO_MEMORY;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = c->ops->read(c->io, buf + len, cap - len - 1);
		if (n < 0) {
			free(buf);
			return BODY_IO_ERROR;
		}
		if (n == 0) {
			c->body_consumed = true;
			break;
		}
		len += (size_t)n;
		if (len > max) {
			free(buf);
			return BODY_TOO_LARGE;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return BODY_OK;
}

void
relay_dispatch_discard(const struct relay_app *app, struct relay_conn *c)
{
	long long declared = c->content_length;
	char sink[BODY_CHUNK];

	if (c->body_consumed || c->framing_bad || declared <= 0 ||
	    declared > (long long)app->settings->max_discard_bytes)
		return;
	for (;;) {
		int n = c->ops->read(c->io, sink, sizeof(sink));

		if (n < 0)
			return;
		if (n == 0)
			break;
	}
	c->body_consumed = true;
}

/* ---- accounting --------------------------------------------------------- */

static const char *
method_label(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT",
	    "DELETE", "PATCH", "OPTIONS" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strcmp(m, known[i]) == 0)
			return known[i];
	}
	return "other";
}

void
relay_dispatch_account(struct relay_app *app, const struct relay_request *req,
    const struct relay_response *resp)
{
	const char *endpoint = req->route ? req->route->endpoint : "unknown";
	const char *method = method_label(req->method);
	double elapsed = relay_mono_s() - req->started;
	char status[8];
	const char *labels[3];

	snprintf(status, sizeof(status), "%d", resp->status);
	labels[0] = method;
	labels[1] = endpoint;
	labels[2] = status;
	tp_counter_inc(app->m.requests, labels);
	tp_histogram_observe(app->m.duration, labels, elapsed);

	if (req->route != NULL && (req->route->flags & RELAY_ROUTE_NO_LOG))
		return;
	if (!tp_log_enabled(TP_LOG_INFO))
		return;
	{
		const char *ua = relay_request_header(req, "User-Agent");
		double ms = (double)(long long)(elapsed * 100000.0 + 0.5) / 100.0;
		struct tp_log_field f[] = {
			TP_LSTR("http_method", req->method),
			TP_LSTR("http_path", req->path),
			TP_LINT("http_status", resp->status),
			TP_LDBL("duration_ms", ms),
			TP_LSTR("request_id", req->request_id),
			TP_LSTR("user_agent", ua),
			TP_LSTR("remote_addr", req->remote_addr),
			TP_LSTR("error", resp->error_kind),
		};

		tp_log(TP_LOG_INFO, "http.request", f,
		    resp->error_kind ? 8 : 7);
	}
}

/* ---- dispatch ---------------------------------------------------------- */

/* ---- dispatch ----------------------------------------------------------- */

static void
cors_headers(struct relay_response *resp)
{
	(void)relay_response_add_header(resp, "Access-Control-Allow-Origin", "*");
	(void)relay_response_add_header(resp, "Access-Control-Expose-Headers",
	    "Retry-After");
}

/*
 * RFC 9112 framing (framing.h), before anything else reads or answers:
 * a request whose body boundary a front proxy could place elsewhere is
 * refused with 400, or 431 when the adapter's parser may have stopped
 * reading its headers (civetweb stops at MG_MAX_HEADERS without an error,
 * so a count that reaches the limit is refused; http_server.c checks the
 * limit stays below civetweb's), and its connection closed without
 * reading the body.
 */
static bool
framing_acceptable(struct relay_app *app, struct relay_conn *c,
    struct relay_response *resp, enum relay_error_shape shape)
{
	struct relay_framing f;
	enum relay_framing_verdict v;
	int status;

	memset(&f, 0, sizeof(f));
	f.max_headers = (unsigned)app->settings->max_header_count;
	for (size_t i = 0; i < c->header_count; i++) {
		const char *name, *value;

		c->ops->header_at(c->io, i, &name, &value);
		relay_framing_add(&f, name, value);
	}
	v = relay_framing_verdict(&f);
	if (v == RELAY_FRAMING_OK)
		return true;
	c->framing_bad = true;
	status = relay_framing_status(v);
	relay_response_error_shaped(resp, shape, status,
	    status == 431 ? "too_many_headers" : "bad_framing",
	    relay_framing_message(v));
	resp->close = true;
	resp->error_kind = relay_framing_kind(v);
	if (status == 431)
		relay_app_count_limit(app, "header_count");
	relay_app_count_bad_request(app, resp->error_kind);
	return false;
}

/*
 * A body tp_json_read() refused: the route's error shape, one counter per
 * kind, one log line. Nothing else happens: the handler never runs.
 */
static void
refuse_json(struct relay_app *app, const struct relay_request *req,
    struct relay_response *resp, const struct tp_json_error *err)
{
	static const char *const access_kinds[TP_JSON_KIND_COUNT] = {
		[TP_JSON_SYNTAX] = "invalid_json",
		[TP_JSON_DEPTH] = "json_depth",
		[TP_JSON_TRAILING] = "json_trailing",
		[TP_JSON_NUL] = "json_nul",
		[TP_JSON_DUPLICATE] = "json_duplicate",
		[TP_JSON_TYPE] = "json_type",
		[TP_JSON_NOMEM] = "out_of_memory",
	};
	const char *kind = tp_json_kind_name(err->kind);

	relay_app_count_json_refusal(app, kind);
	if (err->kind == TP_JSON_DEPTH)
		relay_app_count_limit(app, "json_depth");
	relay_response_body_refusal(resp, req->route->error_shape, err->status,
	    err->code, err->message);
	resp->error_kind = (unsigned)err->kind < TP_JSON_KIND_COUNT &&
	    access_kinds[err->kind] != NULL ? access_kinds[err->kind] :
	    "invalid_json";
	TP_LOG(TP_LOG_INFO, "http.json_refused",
	    TP_LSTR("request_id", req->request_id),
	    TP_LSTR("endpoint", req->route->endpoint),
	    TP_LSTR("kind", kind), TP_LUINT("offset", err->offset),
	    TP_LSTR("field", err->field), TP_LSTR("detail", err->message));
}

/*
 * Everything between routing and the handler: lifecycle gates, OPTIONS,
 * body limits, content type and JSON parsing. Returns true when the
 * handler should run; otherwise resp holds the refusal.
 */
static bool
admit(struct relay_app *app, const struct relay_route_table *routes,
    struct relay_request *req, struct relay_response *resp, char **body,
    size_t *body_len)
{
	struct relay_conn *c = req->conn;
	const struct relay_route *route = NULL;
	enum relay_route_result rr;
	enum tp_lifecycle life;
	char allow[96] = "";

	rr = relay_route_match(routes, req->method, req->path, &route,
	    allow, sizeof(allow));
	req->route = route;
	if (route != NULL && (route->flags & RELAY_ROUTE_CORS))
		cors_headers(resp);
	if (!framing_acceptable(app, c, resp,
	    route != NULL ? route->error_shape : RELAY_ERR_OBJECT))
		return false;

	if (strcmp(req->method, "OPTIONS") == 0 && route != NULL) {
		relay_route_allow_header(route, allow, sizeof(allow));
		resp->status = 204;
		(void)relay_response_add_header(resp, "Allow", allow);
		if (route->flags & RELAY_ROUTE_CORS) {
			(void)relay_response_add_header(resp,
			    "Access-Control-Allow-Methods", allow);
			(void)relay_response_add_header(resp,
			    "Access-Control-Allow-Headers", "Content-Type, Accept");
			(void)relay_response_add_header(resp,
			    "Access-Control-Max-Age", "600");
		}
		return false;
	}
	if (rr == RELAY_ROUTE_NOT_FOUND) {
		relay_response_error(resp, 404, 404, "Not Found");
		resp->error_kind = "not_found";
		return false;
	}
	if (rr == RELAY_ROUTE_BAD_METHOD) {
		relay_response_error_shaped(resp, route->error_shape, 405,
		    "method_not_allowed", "Method Not Allowed");
		(void)relay_response_add_header(resp, "Allow", allow);
		resp->error_kind = "method_not_allowed";
		return false;
	}
	if (!app->config_ok && !(route->flags & RELAY_ROUTE_ALWAYS)) {
		relay_response_error_shaped(resp, route->error_shape, 503,
		    "configuration_invalid",
		    "Relay configuration is invalid; see the relay's logs");
		resp->error_kind = "config_invalid";
		return false;
	}
	life = tp_health_lifecycle(app->health);
	if (life >= TP_LIFECYCLE_DRAINING && !(route->flags & RELAY_ROUTE_DRAIN_OK)) {
		relay_response_error_shaped(resp, route->error_shape, 503,
		    "shutting_down", "Relay is shutting down");
		(void)relay_response_add_header(resp, "Retry-After", "1");
		resp->close = true;
		resp->error_kind = "draining";
		return false;
	}
	if (route->gate != NULL) {
		route->gate(app, req, resp);
		if (resp->status != 0)
			return false;
	}
	if (!(route->flags & RELAY_ROUTE_JSON_BODY))
		return true;

	if (!content_type_is_json(relay_request_header(req, "Content-Type"))) {
		relay_response_error_shaped(resp, route->error_shape, 415,
		    "unsupported_media_type",
		    "Content-Type must be application/json");
		resp->error_kind = "unsupported_media_type";
		return false;
	}
	{
		size_t max = route->max_body ? route->max_body :
		    (size_t)app->settings->max_body_bytes;

		switch (read_body(c, max, body, body_len)) {
		case BODY_OK:
			break;
		case BODY_TOO_LARGE:
			relay_app_count_limit(app, "body_bytes");
			relay_response_error_shaped(resp, route->error_shape,
			    413, "payload_too_large",
			    "Request body exceeds the relay's size limit");
			resp->close = true;
			resp->error_kind = "body_too_large";
			return false;
		case BODY_IO_ERROR:
			relay_response_error_shaped(resp, route->error_shape,
			    400, "bad_request", "Could not read the request body");
			resp->error_kind = "body_read_failed";
			return false;
		case BODY_NO_MEMORY:
			relay_response_error_shaped(resp, route->error_shape,
			    503, "out_of_memory", "Relay is out of memory");
			resp->error_kind = "out_of_memory";
			return false;
		}
	}
	req->body = *body;
	req->body_len = *body_len;
	{
		struct tp_json_error jerr;

		req->json = tp_json_read(*body, *body_len,
		    (unsigned)app->settings->json_max_depth, route->key_fields,
		    &jerr);
		if (req->json == NULL) {
			refuse_json(app, req, resp, &jerr);
			return false;
		}
	}
	return true;
}

void
relay_dispatch_run(struct relay_app *app,
    const struct relay_route_table *routes, struct relay_request *req,
    struct relay_response *resp, char **body)
{
	size_t body_len = 0;

	*body = NULL;
	if (admit(app, routes, req, resp, body, &body_len))
		req->route->handler(app, req, resp);
	if (resp->status == 0) {
		relay_response_error(resp, 500, 500, "Internal server error");
		resp->error_kind = "no_response";
	}
}
