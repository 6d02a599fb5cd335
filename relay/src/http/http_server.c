/*
 * http_server.c -- the civetweb adapter.
 *
 * This is the only file that includes civetweb.h. Every request enters
 * through begin_request(), is routed, bounded and parsed here, handed to a
 * handler as a struct relay_request, and its response is sent, logged and
 * counted here: handlers never see civetweb and never log access lines.
 */
#include "http/http_server.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "core/clock.h"
#include "http/conn_gate.h"
#include "http/conn_linger.h"
#include "http/framing.h"
#include "http/http.h"
#include "http/reqline.h"
#include "http/request_id.h"
#include "http/route.h"
#include "http/sock_hooks.h"
#include "tokenplace/json.h"
#include "tokenplace/log.h"

#define BODY_CHUNK 16384

struct relay_http_server {
	struct mg_context *ctx;
	struct relay_app *app;
	const struct relay_route_table *routes;
	struct relay_gate *gate;	/* per-client limit, head deadline */
	struct relay_linger *linger;	/* graceful closes */
	int port;
	_Atomic int64_t last_refusal_log_ms;
};


struct relay_conn {
	struct mg_connection *mc;
	const struct mg_request_info *ri;
	bool head;		/* HEAD request: headers only */
	bool body_consumed;	/* the request body was read to its end */
	bool framing_bad;	/* refused by the RFC 9112 framing rules: the
				   body is never read, the connection closes */
};

/* ---- request accessors (http.h) ----------------------------------------- */

const char *
relay_request_header(const struct relay_request *req, const char *name)
{
	return mg_get_header(req->conn->mc, name);
}

size_t
relay_request_header_count(const struct relay_request *req)
{
	int n = req->conn->ri->num_headers;

	return n > 0 ? (size_t)n : 0;
}

void
relay_request_header_at(const struct relay_request *req, size_t i,
    const char **name, const char **value)
{
	*name = req->conn->ri->http_headers[i].name;
	*value = req->conn->ri->http_headers[i].value;
}

int64_t
relay_request_content_length(const struct relay_request *req)
{
	return (int64_t)req->conn->ri->content_length;
}

ssize_t
relay_request_read(struct relay_request *req, void *buf, size_t len)
{
	int n = mg_read(req->conn->mc, buf, len);

	if (n == 0)
		req->conn->body_consumed = true;
	return n < 0 ? -1 : (ssize_t)n;
}

/* ---- sending ---------------------------------------------------------- */

static const char *http_date(void);

static const char json_type[] = "application/json";

/* True when the request announced a body (length or chunked). */
static bool
has_body(const struct relay_conn *c)
{
	return c->ri->content_length > 0 ||
	    mg_get_header(c->mc, "Transfer-Encoding") != NULL;
}

static void
begin_headers(struct relay_conn *c, const struct relay_request *req,
    const struct relay_response *resp)
{
	/*
	 * An unread body would otherwise be drained by civetweb before the
	 * next request on this connection, however large it was announced.
	 */
	if (resp->close || (!c->body_consumed && has_body(c)))
		mg_disable_connection_keep_alive(c->mc);
	mg_response_header_start(c->mc, resp->status);
	mg_response_header_add(c->mc, "Content-Type",
	    resp->content_type ? resp->content_type : json_type, -1);
	if (req->request_id != NULL)
		mg_response_header_add(c->mc, "X-Request-Id", req->request_id, -1);
	if (resp->headers_len > 0)
		mg_response_header_add_lines(c->mc, resp->headers);
}

/*
 * Whether this connection stays open after the response, decided the way
 * civetweb decides it (HTTP/1.1 unless "Connection: close", HTTP/1.0 only
 * with "Connection: keep-alive"), and forced closed when asked to.
 */
static bool
keep_alive(struct relay_conn *c, const struct relay_response *resp)
{
	const char *conn_hdr = mg_get_header(c->mc, "Connection");
	const char *ver = c->ri->http_version;

	if (resp->close || (!c->body_consumed && has_body(c)))
		return false;
	if (conn_hdr != NULL)
		return strcasestr(conn_hdr, "keep-alive") != NULL ||
		    (strcasestr(conn_hdr, "close") == NULL && ver != NULL &&
		    strcmp(ver, "1.1") == 0);
	return ver != NULL && strcmp(ver, "1.1") == 0;
}

/*
 * Sends status line, headers and body in one write: with separate writes
 * a small response would wait on the peer's delayed ACK.
 */
static void
send_response(struct relay_conn *c, const struct relay_request *req,
    const struct relay_response *resp)
{
	char head[RELAY_RESPONSE_HEADERS_MAX + 512];
	bool keep = keep_alive(c, resp);
	size_t body_len = c->head ? 0 : resp->body_len;
	const char *body = resp->body ? resp->body : resp->body_shared;
	char *buf;
	int n;

	if (!keep)
		mg_disable_connection_keep_alive(c->mc);
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "X-Request-Id: %s\r\n"
	    "Connection: %s\r\n"
	    "Date: %s\r\n"
	    "%s\r\n",
	    resp->status, mg_get_response_code_text(c->mc, resp->status),
	    resp->content_type ? resp->content_type : json_type,
	    resp->body_len, req->request_id ? req->request_id : "-",
	    keep ? "keep-alive" : "close", http_date(), resp->headers);
	if (n < 0 || (size_t)n >= sizeof(head))
		return;
	buf = malloc((size_t)n + body_len);
	if (buf == NULL) {
		(void)mg_write(c->mc, head, (size_t)n);
		if (body_len > 0 && body != NULL)
			(void)mg_write(c->mc, body, body_len);
		return;
	}
	memcpy(buf, head, (size_t)n);
	if (body == NULL)
		body_len = 0;
	if (body_len > 0)
		memcpy(buf + n, body, body_len);
	(void)mg_write(c->mc, buf, (size_t)n + body_len);
	free(buf);
}

int
relay_stream_begin(struct relay_request *req, struct relay_response *resp)
{
	struct relay_conn *c = req->conn;

	begin_headers(c, req, resp);
	mg_response_header_add(c->mc, "Transfer-Encoding", "chunked", -1);
	resp->streamed = true;
	return mg_response_header_send(c->mc) == 0 ? 0 : -1;
}

int
relay_stream_write(struct relay_request *req, struct relay_response *resp,
    const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (len > 0xffffffffu ||
	    mg_send_chunk(req->conn->mc, data, (unsigned)len) < 0)
		return -1;
	resp->bytes_sent += len;
	return 0;
}

int
relay_stream_end(struct relay_request *req, struct relay_response *resp)
{
	(void)resp;
	return mg_send_chunk(req->conn->mc, "", 0) < 0 ? -1 : 0;
}

/* ---- request id and Date header ---------------------------------------- */

static void
generate_request_id(char out[RELAY_REQUEST_ID_GENERATED + 1])
{
	relay_request_id_generate(out);
}

/* The Date header, formatted once per second per thread. */
static const char *
http_date(void)
{
	static _Thread_local char buf[40];
	static _Thread_local time_t cached = -1;
	time_t now = time(NULL);
	struct tm tm;

	if (now != cached && gmtime_r(&now, &tm) != NULL) {
		strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
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
	long long declared = c->ri->content_length;
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
		n = mg_read(c->mc, buf + len, cap - len - 1);
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

/*
 * Reads and drops the rest of a refused body when it is small (at most
 * RELAY_MAX_DISCARD_BYTES), so the client finishes sending and then
 * reads our answer; closing on unread data would make the kernel reset
 * the connection and the client could lose the response. Larger or
 * chunked bodies are not read: the connection is closed instead.
 */
static void
discard_small_body(struct relay_conn *c, const struct relay_app *app)
{
	long long declared = c->ri->content_length;
	char sink[BODY_CHUNK];

	if (c->body_consumed || c->framing_bad || declared <= 0 ||
	    declared > (long long)app->settings->max_discard_bytes)
		return;
	for (;;) {
		int n = mg_read(c->mc, sink, sizeof(sink));

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

static void
account(struct relay_app *app, const struct relay_request *req,
    const struct relay_response *resp, const struct mg_request_info *ri)
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
		const char *ua = mg_get_header(req->conn->mc, "User-Agent");
		double ms = (double)(long long)(elapsed * 100000.0 + 0.5) / 100.0;
		struct tp_log_field f[] = {
			TP_LSTR("http_method", req->method),
			TP_LSTR("http_path", req->path),
			TP_LINT("http_status", resp->status),
			TP_LDBL("duration_ms", ms),
			TP_LSTR("request_id", req->request_id),
			TP_LSTR("user_agent", ua),
			TP_LSTR("remote_addr", ri->remote_addr),
			TP_LSTR("error", resp->error_kind),
		};

		tp_log(TP_LOG_INFO, "http.request", f,
		    resp->error_kind ? 8 : 7);
	}
}

/* ---- dispatch ---------------------------------------------------------- */

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
 * refused with 400, or 431 when civetweb may have stopped parsing its
 * headers (it stops at MG_MAX_HEADERS without an error, so a count that
 * reaches it is refused), and its connection closed without reading the
 * body.
 */
_Static_assert(RELAY_FRAMING_MAX_HEADERS < MG_MAX_HEADERS,
    "civetweb's silent cut must stay above the header count limit");

static bool
framing_acceptable(struct relay_app *app, struct relay_conn *c,
    struct relay_response *resp, enum relay_error_shape shape)
{
	struct relay_framing f;
	enum relay_framing_verdict v;
	int status;

	memset(&f, 0, sizeof(f));
	f.max_headers = (unsigned)app->settings->max_header_count;
	for (int i = 0; i < c->ri->num_headers; i++)
		relay_framing_add(&f, c->ri->http_headers[i].name,
		    c->ri->http_headers[i].value);
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
admit(const struct relay_http_server *srv, struct relay_conn *c,
    struct relay_request *req, struct relay_response *resp, char **body,
    size_t *body_len)
{
	struct relay_app *app = srv->app;
	const struct relay_route *route = NULL;
	enum relay_route_result rr;
	enum tp_lifecycle life;
	char allow[96] = "";

	rr = relay_route_match(srv->routes, req->method, req->path, &route,
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

	if (!content_type_is_json(mg_get_header(c->mc, "Content-Type"))) {
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

/* ---- connection gate (conn_gate.h) -------------------------------------- */

static bool
peer_of(const struct mg_request_info *ri, uint32_t *addr, uint16_t *port)
{
	struct in_addr a;

	if (ri == NULL || inet_pton(AF_INET, ri->remote_addr, &a) != 1 ||
	    ri->remote_port < 0 || ri->remote_port > 65535)
		return false;
	*addr = a.s_addr;
	*port = htons((uint16_t)ri->remote_port);
	return true;
}

/* A head arrived (or civetweb refused one); false when the gate cut it. */
static bool
gate_head_seen(struct relay_http_server *srv, const struct mg_request_info *ri)
{
	uint32_t addr;
	uint16_t port;

	if (srv->gate == NULL || !peer_of(ri, &addr, &port))
		return true;
	return relay_gate_head_done(srv->gate, addr, port);
}

/*
 * Runs before civetweb closes the socket. The connection is closed
 * gracefully on a copy of its descriptor (conn_linger.h): civetweb's own
 * close() then only drops its reference (no SO_LINGER is set, see the
 * options), and a client still reading or sending loses nothing.
 */
static void
connection_close(const struct mg_connection *mc)
{
	const struct mg_request_info *ri = mg_get_request_info(mc);
	struct relay_http_server *srv = ri ? ri->user_data : NULL;
	uint32_t addr;
	uint16_t port;
	int fd, copy;

	if (srv == NULL || srv->gate == NULL || !peer_of(ri, &addr, &port))
		return;
	fd = relay_gate_closed(srv->gate, addr, port);
	if (fd < 0)
		return;
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy >= 0)
		relay_linger_close(srv->linger, copy);
}

static void
linger_end(void *arg, enum relay_linger_end why)
{
	relay_app_count_close(arg, relay_linger_end_name(why));
}

/* Counts every refusal; logs at most one line a second (floods are likely). */
static void
gate_cut(void *arg, enum relay_gate_cut why, uint32_t addr)
{
	struct relay_http_server *srv = arg;
	const char *reason = relay_gate_cut_reason(why);
	int64_t now = relay_mono_ms();
	int64_t last = atomic_load(&srv->last_refusal_log_ms);
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = addr };

	relay_app_count_conn_refusal(srv->app, reason);
	if (now - last < 1000 ||
	    !atomic_compare_exchange_strong(&srv->last_refusal_log_ms, &last,
	    now))
		return;
	if (inet_ntop(AF_INET, &a, ip, sizeof(ip)) == NULL)
		snprintf(ip, sizeof(ip), "-");
	TP_LOG(TP_LOG_WARNING, "http.connection_refused",
	    TP_LSTR("reason", reason), TP_LSTR("remote_addr", ip));
}

/*
 * A worker thread starts on a new connection; its next poll() is on the
 * connection's socket (sock_hooks.h), which starts the head deadline.
 */
static int
init_connection(const struct mg_connection *mc, void **conn_data)
{
	struct relay_http_server *srv = mg_get_user_data(mg_get_context(mc));

	*conn_data = NULL;
	if (srv != NULL)
		relay_hooks_connection_starts(srv->gate);
	return 0;
}

static int
begin_request(struct mg_connection *mc)
{
	const struct mg_request_info *ri = mg_get_request_info(mc);
	struct relay_http_server *srv = ri->user_data;
	struct relay_app *app = srv->app;
	struct relay_conn c = { .mc = mc, .ri = ri, .head = false };
	struct relay_request req;
	struct relay_response resp;
	char rid[RELAY_REQUEST_ID_MAX + 1];
	const char *inbound;
	char *body = NULL;
	size_t body_len = 0;
	int status;

	/*
	 * Only the first head of a connection is under the gate's deadline;
	 * the connection's user data marks that it was disarmed (civetweb
	 * clears it when the connection closes).
	 */
	if (mg_get_user_connection_data(mc) == NULL) {
		/*
		 * The watchdog cut it as the head completed: the client was
		 * told 408, so the request must not run.
		 */
		if (!gate_head_seen(srv, ri)) {
			mg_disable_connection_keep_alive(mc);
			return 408;
		}
		mg_set_user_connection_data(mc, srv);
	}
	atomic_fetch_add(&app->in_flight, 1);
	memset(&req, 0, sizeof(req));
	relay_response_init(&resp);
	req.started = relay_mono_s();
	req.conn = &c;
	req.method = ri->request_method ? ri->request_method : "";
	req.path = ri->local_uri_raw ? ri->local_uri_raw :
	    (ri->local_uri ? ri->local_uri : "");
	req.query = ri->query_string;
	req.remote_addr = ri->remote_addr;
	req.remote_port = ri->remote_port;
	req.local_port = ri->server_port;
	inbound = mg_get_header(mc, "X-Request-Id");
	if (relay_request_id_acceptable(inbound)) {
		memcpy(rid, inbound, strlen(inbound) + 1);
	} else {
		generate_request_id(rid);
	}
	req.request_id = rid;
	c.head = strcmp(req.method, "HEAD") == 0;

	if (admit(srv, &c, &req, &resp, &body, &body_len))
		req.route->handler(app, &req, &resp);

	if (resp.status == 0) {
		relay_response_error(&resp, 500, 500, "Internal server error");
		resp.error_kind = "no_response";
	}
	if (!resp.streamed) {
		discard_small_body(&c, app);
		send_response(&c, &req, &resp);
	}
	else if (resp.close)
		mg_disable_connection_keep_alive(mc);
	account(app, &req, &resp, ri);

	status = resp.status;
	cJSON_Delete(req.json);
	free(body);
	free(resp.body);
	atomic_fetch_sub(&app->in_flight, 1);
	return status > 0 && status < 1000 ? status : 500;
}

/*
 * civetweb's own errors (malformed request line or header, headers too
 * large, a bad Content-Length, a Transfer-Encoding it cannot read, a
 * request timeout) get the same JSON shape as ours, a request id, one log
 * line and a count, and always close the connection. civetweb answers a
 * negative or empty Content-Length with 411; RFC 9112 section 6.3 asks for
 * 400, which is what the client gets here.
 *
 * Only what civetweb 1.15 sets on every error path is read here
 * (docs/hardening.md, "What the error path reads"): remote_addr, and
 * request_method and request_uri through relay_reqline_copy() (reqline.h),
 * which bounds and validates them. local_uri_raw, local_uri and
 * query_string are never set for a refused request and may point into the
 * worker's reused buffer: they are not read, nor are the headers.
 */
static int
http_error(struct mg_connection *mc, int status, const char *errmsg)
{
	const struct mg_request_info *ri = mg_get_request_info(mc);
	struct relay_http_server *srv = ri ? ri->user_data : NULL;
	struct relay_app *app = srv ? srv->app : NULL;
	const struct relay_route *route = NULL;
	enum relay_error_shape shape = RELAY_ERR_OBJECT;
	struct relay_response resp;
	struct relay_reqline rl;
	const char *kind;
	char allow[96];
	char head[512];
	char addr[sizeof(ri->remote_addr)] = "-";
	char rid[17];
	int n;

	/* A connection the gate already cut gets nothing more. */
	if (srv != NULL && !gate_head_seen(srv, ri))
		return 0;
	if (status == 411)
		status = 400;
	switch (status) {
	case 400:
		/*
		 * "Bad request" is civetweb's text for a refused Content-Length
		 * or Transfer-Encoding and for a head it could not parse; only
		 * the former has headers (num_headers is reset per request).
		 */
		kind = errmsg != NULL && strcmp(errmsg, "Bad request") == 0 &&
		    ri != NULL && ri->num_headers > 0 ?
		    "framing_rejected" : "http_malformed";
		break;
	case 408:
		kind = "head_timeout";
		break;
	case 413:
	case 431:
		kind = "header_too_large";
		break;
	default:
		kind = "http_error";
		break;
	}
	/* The route's error shape, when the request line named one. */
	if (srv != NULL && relay_reqline_copy(&rl, ri ? ri->request_method :
	    NULL, ri ? ri->request_uri : NULL))
		(void)relay_route_match(srv->routes, rl.method, rl.path,
		    &route, allow, sizeof(allow));
	if (route != NULL)
		shape = route->error_shape;
	if (ri != NULL && ri->remote_addr[0] != '\0' &&
	    memchr(ri->remote_addr, '\0', sizeof(addr)) != NULL)
		memcpy(addr, ri->remote_addr, sizeof(addr));
	generate_request_id(rid);
	relay_response_init(&resp);
	relay_response_error_shaped(&resp, shape, status,
	    status == 400 ? "bad_request" : kind,
	    strcmp(kind, "framing_rejected") == 0 ?
	    "Request Content-Length or Transfer-Encoding is invalid" :
	    mg_get_response_code_text(mc, status));
	if (app != NULL) {
		if (status == 413 || status == 431)
			relay_app_count_limit(app, "header_bytes");
		relay_app_count_bad_request(app, kind);
	}
	TP_LOG(TP_LOG_INFO, "http.request",
	    TP_LSTR("http_method", relay_reqline_or_dash(rl.method)),
	    TP_LSTR("http_path", relay_reqline_or_dash(rl.path)),
	    TP_LINT("http_status", status),
	    TP_LSTR("request_id", rid),
	    TP_LSTR("remote_addr", addr),
	    TP_LSTR("error", kind),
	    TP_LSTR("detail", errmsg ? errmsg : ""));
	/*
	 * Written whole here: civetweb's mg_response_header_start() would
	 * echo the request's protocol version, which is whatever the client
	 * sent when the request line is what civetweb refused ("HTTP/xyz"
	 * gave a status line of "HTTP/xyz 400").
	 */
	mg_disable_connection_keep_alive(mc);
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "X-Request-Id: %s\r\n"
	    "Connection: close\r\n"
	    "Date: %s\r\n\r\n",
	    status, mg_get_response_code_text(mc, status), json_type,
	    resp.body_len, rid, http_date());
	if (n > 0 && (size_t)n < sizeof(head)) {
		(void)mg_write(mc, head, (size_t)n);
		/* an answer to HEAD has no body, whatever its length says */
		if (resp.body != NULL && strcmp(rl.method, "HEAD") != 0)
			(void)mg_write(mc, resp.body, resp.body_len);
	}
	free(resp.body);
	return 0;
}

/*
 * Runs on every thread civetweb starts. The listening thread (type 0) is
 * noted for the connection gate's accept() (accepting_server). Workers
 * (type 1) report their stack size: the smallest is kept for /metrics, and
 * one smaller than RELAY_WORKER_STACK_BYTES (a civetweb built differently)
 * is logged, because the JSON depth limit was proven safe for that size
 * only.
 */
static void *
init_thread(const struct mg_context *ctx, int thread_type)
{
	static atomic_bool warned;
	struct relay_http_server *srv = mg_get_user_data(ctx);
	struct relay_app *app = srv != NULL ? srv->app : NULL;
	pthread_attr_t attr;
	size_t size = 0;
	long cur;

	if (thread_type == 0) {
		if (srv != NULL)
			relay_hooks_listener_thread(srv->gate, srv->linger);
		return NULL;
	}
	if (thread_type != 1 || app == NULL ||
	    pthread_getattr_np(pthread_self(), &attr) != 0)
		return NULL;
	if (pthread_attr_getstacksize(&attr, &size) != 0)
		size = 0;
	pthread_attr_destroy(&attr);
	if (size == 0)
		return NULL;
	cur = atomic_load(&app->worker_stack_bytes);
	while ((cur == 0 || (long)size < cur) &&
	    !atomic_compare_exchange_weak(&app->worker_stack_bytes, &cur,
	    (long)size))
		;
	if (size < RELAY_WORKER_STACK_BYTES && !atomic_exchange(&warned, true))
		TP_LOG(TP_LOG_ERROR, "http.worker_stack_small",
		    TP_LUINT("stack_bytes", size),
		    TP_LUINT("expected_bytes", RELAY_WORKER_STACK_BYTES),
		    TP_LSTR("detail", "civetweb gives worker threads less stack "
		    "than the JSON depth limit was tested for; lower "
		    "RELAY_JSON_MAX_DEPTH"));
	return NULL;
}

static int
log_message(const struct mg_connection *mc, const char *message)
{
	(void)mc;
	TP_LOG(TP_LOG_WARNING, "http.server_message", TP_LSTR("detail", message));
	return 1;
}

struct relay_http_server *
relay_http_start(struct relay_app *app, const struct relay_route_table *routes,
    char *err, size_t errlen)
{
	const struct relay_settings *s = app->settings;
	struct relay_http_server *srv;
	struct mg_callbacks cb;
	struct mg_server_port ports[4];
	char listen[64], threads[16], timeout[24], header_max[24], queue[16];
	struct relay_gate_config gc;
	struct relay_linger_config lc;
	const char *options[] = {
		"listening_ports", listen,
		"num_threads", threads,
		"connection_queue", queue,
		"request_timeout_ms", timeout,
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", "5000",
		"max_request_size", header_max,
		/*
		 * No linger_timeout_ms: 1.15 then sets no SO_LINGER, and the
		 * relay closes every connection gracefully itself
		 * (connection_close()). 0 made every close a reset that threw
		 * away the unsent end of the answer; a positive value would
		 * block the worker in close() until a slow client read it all.
		 */
		"listen_backlog", "1024",
		"decode_url", "yes",
		/* headers and body go out in separate writes: no Nagle delay */
		"tcp_nodelay", "1",
		NULL,
	};
	int n;

	snprintf(listen, sizeof(listen), "%s:%lld", s->host, (long long)s->port);
	snprintf(threads, sizeof(threads), "%lld", (long long)s->threads);
	snprintf(timeout, sizeof(timeout), "%lld", (long long)s->timeout_s * 1000);
	snprintf(header_max, sizeof(header_max), "%lld",
	    (long long)s->max_header_bytes);
	snprintf(queue, sizeof(queue), "%lld", (long long)s->connection_queue);

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->app = app;
	srv->routes = routes;
	/*
	 * civetweb holds at most num_threads sockets on workers plus
	 * connection_queue waiting for one (its master thread blocks while
	 * the queue is full), so this many slots never run out in use.
	 */
	memset(&gc, 0, sizeof(gc));
	gc.slots = (size_t)(s->threads + s->connection_queue) + 8;
	gc.per_client_max = (size_t)s->max_connections_per_client;
	gc.pending_max = (size_t)s->max_pending_heads_per_client;
	gc.head_timeout_ms = s->head_timeout_ms;
	gc.peek_bytes = (size_t)s->max_header_bytes;
	gc.on_cut = gate_cut;
	gc.arg = srv;
	gc.open_gauge = &app->open_connections;
	srv->gate = relay_gate_new(&gc);
	if (srv->gate == NULL) {
		snprintf(err, errlen, "cannot start the connection gate");
		free(srv);
		return NULL;
	}
	memset(&lc, 0, sizeof(lc));
	lc.capacity = gc.slots;
	lc.linger_ms = s->close_linger_ms;
	lc.max_drain_bytes = s->max_discard_bytes;
	lc.on_end = linger_end;
	lc.arg = app;
	lc.gauge = &app->lingering_connections;
	srv->linger = relay_linger_new(&lc);
	if (srv->linger == NULL) {
		snprintf(err, errlen, "cannot start the connection closer");
		relay_gate_free(srv->gate);
		free(srv);
		return NULL;
	}
	memset(&cb, 0, sizeof(cb));
	cb.begin_request = begin_request;
	cb.http_error = http_error;
	cb.log_message = log_message;
	cb.init_thread = init_thread;
	cb.connection_close = connection_close;
	cb.init_connection = init_connection;
	/*
	 * No log_access callback: with one registered civetweb formats an
	 * access line (localtime(), getnameinfo()) for every request only to
	 * hand it over; we write our own lines in account().
	 */

	srv->ctx = mg_start(&cb, srv, options);
	if (srv->ctx == NULL) {
		snprintf(err, errlen, "cannot listen on %s (address in use or not local?)",
		    listen);
		relay_linger_free(srv->linger);
		relay_gate_free(srv->gate);
		free(srv);
		return NULL;
	}
	n = mg_get_server_ports(srv->ctx, 4, ports);
	srv->port = n > 0 ? ports[0].port : (int)s->port;
	return srv;
}

int
relay_http_port(const struct relay_http_server *srv)
{
	return srv->port;
}

struct stopper {
	struct mg_context *ctx;
	_Atomic bool done;
};

static void *
stop_thread(void *arg)
{
	struct stopper *st = arg;

	mg_stop(st->ctx);
	atomic_store(&st->done, true);
	return NULL;
}

/* Opens and closes one connection to the relay's own listening port. */
static void
wake_listener(const struct relay_http_server *srv)
{
	struct sockaddr_in sa;
	const char *host = srv->app->settings->host;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)srv->port);
	if (host == NULL || strcmp(host, "0.0.0.0") == 0 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
}

void
relay_http_stop(struct relay_http_server *srv)
{
	struct stopper st;
	pthread_t th;

	if (srv == NULL)
		return;
	st.ctx = srv->ctx;
	atomic_init(&st.done, false);
	if (pthread_create(&th, NULL, stop_thread, &st) != 0) {
		mg_stop(srv->ctx);
		relay_linger_free(srv->linger);
		relay_gate_free(srv->gate);
		free(srv);
		return;
	}
	/*
	 * civetweb's accept thread notices the stop flag only when its
	 * poll() returns, which otherwise takes up to two seconds: a
	 * connection to our own port makes it return at once.
	 */
	while (!atomic_load(&st.done)) {
		struct timespec tick = { 0, 20 * 1000 * 1000 };

		wake_listener(srv);
		nanosleep(&tick, NULL);
	}
	pthread_join(th, NULL);
	/* Only now: civetweb's callbacks into the gate have all returned. */
	relay_linger_free(srv->linger);
	relay_gate_free(srv->gate);
	free(srv);
}
