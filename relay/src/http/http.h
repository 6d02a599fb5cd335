/*
 * relay_http: the contract between the civetweb adapter (http_server.c)
 * and the handlers. Nothing here exposes civetweb: handlers see a request,
 * fill a response, and the adapter sends it, logs it and counts it.
 *
 * Ownership: everything reachable from a struct relay_request belongs to
 * the adapter and lives until the handler returns. A handler owns nothing
 * it did not allocate; what it puts in relay_response.body is freed by the
 * adapter after sending.
 */
#ifndef RELAY_HTTP_H
#define RELAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

struct cJSON;
struct relay_app;
struct relay_conn;		/* the adapter's connection (http/dispatch.h) */
struct relay_route;

/* How a route spells the errors the adapter produces for it (400/413/415). */
enum relay_error_shape {
	RELAY_ERR_OBJECT = 0,	/* {"error":{"code":<status>,"message":"..."}} */
	RELAY_ERR_STRING,	/* {"error":"..."} (legacy routes) */
	RELAY_ERR_OPENAI,	/* {"error":{"message","type","code"}} (forwarded API) */
	/*
	 * API v1 relay routes: the object form with the integer status as
	 * code for the adapter's HTTP errors (405/413/415, as HEAD), and a
	 * string code for body refusals (relay_response_body_refusal()).
	 */
	RELAY_ERR_V1,
};

struct relay_request {
	const char *method;		/* "GET", "POST", ... */
	const char *path;		/* URI path as received, without the query */
	const char *query;		/* text after '?', or NULL */
	const char *remote_addr;	/* peer IPv4 address */
	int remote_port;		/* peer TCP port */
	int local_port;			/* the relay's TCP port the request came to */
	const char *request_id;		/* echoed or generated; also sent back */
	const char *body;		/* JSON-body routes: NUL-terminated body */
	size_t body_len;
	struct cJSON *json;		/* JSON-body routes: the parsed body (never NULL there) */
	const struct relay_route *route;
	struct relay_conn *conn;
	double started;			/* monotonic seconds */
};

/* Room for forwarded upstream headers (RELAY_UPSTREAM_MAX_HEADER_BYTES). */
#define RELAY_RESPONSE_HEADERS_MAX 16384

struct relay_response {
	int status;			/* 0 = not set (adapter answers 500) */
	const char *content_type;	/* static string; NULL = application/json */
	char *body;			/* heap, freed by the adapter; NULL = empty */
	size_t body_len;
	const char *body_shared;	/* used when body is NULL: bytes that
					   outlive the response (the web page
					   held by relay_web), never freed here */
	size_t headers_len;
	bool streamed;			/* the handler sent the response itself */
	bool close;			/* close the connection after this response
					   (also when set after streaming began:
					   the client then sees the answer cut) */
	uint64_t bytes_sent;		/* streamed responses: body bytes written */
	const char *error_kind;		/* short reason for the access log, or NULL */
	/*
	 * Last, so that starting a response clears the fields above and only
	 * the first byte of this buffer (see relay_response_init()).
	 */
	char headers[RELAY_RESPONSE_HEADERS_MAX];	/* "Name: value\r\n"... */
};

/* Empties a response without touching all of its header buffer. */
static inline void
relay_response_init(struct relay_response *resp)
{
	memset(resp, 0, offsetof(struct relay_response, headers));
	resp->headers[0] = '\0';
}

typedef void (*relay_handler_fn)(struct relay_app *app,
    struct relay_request *req, struct relay_response *resp);

/* Route flags. */
#define RELAY_ROUTE_JSON_BODY	0x01u	/* read, bound, type-check and parse the body */
#define RELAY_ROUTE_NO_LOG	0x02u	/* no access-log line (probes, metrics) */
#define RELAY_ROUTE_ALWAYS	0x04u	/* served even when the config failed to load */
#define RELAY_ROUTE_PREFIX	0x08u	/* path matches as a prefix */
#define RELAY_ROUTE_DRAIN_OK	0x10u	/* served while draining (probes) */
#define RELAY_ROUTE_CORS	0x20u	/* public browser route: CORS headers, OPTIONS preflight */
#define RELAY_ROUTE_MODELS	0x40u	/* the model list: skipped when RELAY_MODELS_SOURCE=upstream */

struct relay_route {
	const char *path;
	const char *methods;		/* "GET", "POST", "GET,POST" (HEAD implied by GET) */
	const char *endpoint;		/* metrics label, Python relay's endpoint name */
	relay_handler_fn handler;
	unsigned flags;
	enum relay_error_shape error_shape;
	size_t max_body;		/* 0 = RELAY_MAX_BODY_BYTES */
	/*
	 * Runs before the body is read (route switches, node tokens, rate
	 * limits): a request it answers (resp->status set) never costs a
	 * body read. NULL = none.
	 */
	relay_handler_fn gate;
	/*
	 * JSON-body routes: the top-level members that are keys or
	 * credentials (must be strings), NULL-terminated; NULL = none.
	 */
	const char *const *key_fields;
};

/* Returns the first value of request header `name` (any case), or NULL. */
const char *relay_request_header(const struct relay_request *req,
    const char *name);

/* Number of request headers, and the i-th one (0-based). */
size_t relay_request_header_count(const struct relay_request *req);
void relay_request_header_at(const struct relay_request *req, size_t i,
    const char **name, const char **value);

/* Declared Content-Length, or -1 when absent (e.g. chunked). */
int64_t relay_request_content_length(const struct relay_request *req);

/*
 * Non-JSON routes only: reads up to len body bytes. Returns the count, 0 at
 * the end of the body, -1 on a connection error.
 */
ssize_t relay_request_read(struct relay_request *req, void *buf, size_t len);

/*
 * Appends "name: value\r\n" to the response headers. Returns 0, or -1 when
 * the header does not fit or contains CR/LF (it is then not added).
 */
int relay_response_add_header(struct relay_response *resp, const char *name,
    const char *value);

/*
 * Sets status and a JSON body rendered from `body` (compact, keys in the
 * order they were added). Consumes `body` (cJSON_Delete). If rendering
 * fails the response becomes a 500 JSON error.
 */
void relay_response_json(struct relay_response *resp, int status,
    struct cJSON *body);

/*
 * Sets status and the body[0..len) already rendered, taking ownership of
 * body (malloc'd; freed with the response). content_type is static; NULL
 * means JSON.
 */
void relay_response_set_body(struct relay_response *resp, int status,
    const char *content_type, char *body, size_t len);

/*
 * Sets status and a body the response does not own: `body` must stay
 * valid until the response is sent (files held by relay_web).
 */
void relay_response_shared_body(struct relay_response *resp, int status,
    const char *content_type, const char *body, size_t len);

/* Sets status and the literal body `json` (copied). */
void relay_response_raw_json(struct relay_response *resp, int status,
    const char *json);

/* {"error":{"code":<code>,"message":<message>}} */
void relay_response_error(struct relay_response *resp, int status, int code,
    const char *message);

/* {"error":<message>} */
void relay_response_error_string(struct relay_response *resp, int status,
    const char *message);

/* {"error":{"code":"<code>","message":<message>}} (string code, API v1 style) */
void relay_response_error_code(struct relay_response *resp, int status,
    const char *code, const char *message);

/* The error in the shape `shape` wants; `code` is used by OPENAI only. */
void relay_response_error_shaped(struct relay_response *resp,
    enum relay_error_shape shape, int status, const char *code,
    const char *message);

/*
 * A refused request body in the route's shape, told apart by `code` on
 * API v1 routes ({"error":{"code":"<code>","message":...}}) and by the
 * message on legacy routes (object form with the integer status, or the
 * string form) -- legacy peers match on messages, not codes.
 */
void relay_response_body_refusal(struct relay_response *resp,
    enum relay_error_shape shape, int status, const char *code,
    const char *message);

/*
 * Formats t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29
 * characters) into buf, which needs 30 bytes; always in English, whatever
 * the locale. A time gmtime_r() cannot break down gives the epoch.
 */
void relay_http_date(time_t t, char *buf, size_t len);

/*
 * Streaming: sends the status line and headers (resp->status,
 * resp->content_type, resp->headers) with chunked transfer encoding and
 * marks the response streamed. Returns 0, or -1 when the client is gone.
 */
int relay_stream_begin(struct relay_request *req, struct relay_response *resp);

/* Sends one chunk; returns 0, or -1 when the client is gone. */
int relay_stream_write(struct relay_request *req, struct relay_response *resp,
    const void *data, size_t len);

/* Sends the terminating chunk. Returns 0 or -1. */
int relay_stream_end(struct relay_request *req, struct relay_response *resp);

#endif /* RELAY_HTTP_H */
