/*
 * http/dispatch.h -- what happens to a request between the civetweb
 * adapter (http_server.c) and its handler, in plain C: the request id,
 * admission (route match, framing, OPTIONS and CORS, the lifecycle gates,
 * the route's gate, content type, body limits, JSON parsing), the
 * fallback 500, the discarded body of a refused request, and accounting
 * (metrics and the access-log line).
 *
 * The adapter fills a struct relay_conn for each request: the head as
 * civetweb parsed it and two callbacks on its connection. Nothing here
 * includes civetweb.h, so a test can drive dispatch over a connection of
 * its own.
 */
#ifndef RELAY_HTTP_DISPATCH_H
#define RELAY_HTTP_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"
#include "http/request_id.h"

struct relay_app;
struct relay_route_table;

/* The adapter's connection, as dispatch uses it. */
struct relay_conn_io {
	/* First value of header `name` (any case), or NULL. */
	const char *(*header)(void *io, const char *name);
	/* The i-th header (0-based, i < relay_conn.header_count). */
	void (*header_at)(void *io, size_t i, const char **name,
	    const char **value);
	/*
	 * Reads up to len body bytes: the count, 0 at the end of the body,
	 * negative on a connection error.
	 */
	int (*read)(void *io, void *buf, size_t len);
};

/* One request's connection, filled by the adapter (struct relay_request.conn). */
struct relay_conn {
	void *io;			/* the adapter's connection */
	const struct relay_conn_io *ops;
	size_t header_count;
	long long content_length;	/* declared; -1 when absent */
	bool head;		/* HEAD request: headers only */
	bool body_consumed;	/* the request body was read to its end */
	bool framing_bad;	/* refused by the RFC 9112 framing rules: the
				   body is never read, the connection closes */
};

/*
 * The request's id into out: `inbound` (the client's X-Request-Id, may be
 * NULL) when relay_request_id_acceptable() accepts it, otherwise a fresh
 * one. Never fails.
 */
void relay_dispatch_request_id(const char *inbound,
    char out[RELAY_REQUEST_ID_MAX + 1]);

/*
 * Routes req (method, path, conn and request_id set by the adapter) in
 * `routes`, admits it and runs its handler; resp then holds the answer,
 * a refusal, or 500 "no_response" when the handler set none. A JSON-body
 * route's body is read into *body (heap, the caller frees it after the
 * response; NULL when none) and req->json is set (the caller deletes it).
 */
void relay_dispatch_run(struct relay_app *app,
    const struct relay_route_table *routes, struct relay_request *req,
    struct relay_response *resp, char **body);

/*
 * Reads and drops the rest of a refused body when it is small (at most
 * the max_discard_bytes setting), so the client finishes sending and then
 * reads the answer; closing on unread data would make the kernel reset
 * the connection and the client could lose the response. Larger or
 * chunked bodies are not read: the connection is closed instead.
 */
void relay_dispatch_discard(const struct relay_app *app, struct relay_conn *c);

/*
 * Counts the answered request (requests and duration by method, endpoint
 * and status) and writes its access-log line ("http.request") unless the
 * route is RELAY_ROUTE_NO_LOG.
 */
void relay_dispatch_account(struct relay_app *app,
    const struct relay_request *req, const struct relay_response *resp);

/*
 * The Date header for now, formatted by relay_http_date() once per second
 * per thread. Points at thread-local storage valid until the thread's next
 * call.
 */
const char *relay_dispatch_date(void);

#endif /* RELAY_HTTP_DISPATCH_H */
