/*
 * http_server.c -- the civetweb adapter.
 *
 * This is the only file that includes civetweb.h. Every request enters
 * through begin_request(), which hands its connection to dispatch
 * (dispatch.h: routed, bounded, parsed, handed to a handler as a struct
 * relay_request, logged and counted there) and sends the response here:
 * handlers never see civetweb and never log access lines.
 */
#include "http/http_server.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <arpa/inet.h>
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
#include "http/dispatch.h"
#include "http/framing.h"
#include "http/http.h"
#include "http/reqline.h"
#include "http/request_id.h"
#include "http/route.h"
#include "http/sock_hooks.h"
#include "tokenplace/log.h"

struct relay_http_server {
	struct mg_context *ctx;
	struct relay_app *app;
	const struct relay_route_table *routes;
	struct relay_gate *gate;	/* per-client limit, head deadline */
	struct relay_linger *linger;	/* graceful closes */
	int port;
	_Atomic int64_t last_refusal_log_ms;
};

/* ---- the connection, for dispatch (dispatch.h) ---------------------------- */

static const char *
io_header(void *io, const char *name)
{
	return mg_get_header(io, name);
}

static void
io_header_at(void *io, size_t i, const char **name, const char **value)
{
	const struct mg_request_info *ri = mg_get_request_info(io);

	*name = ri->http_headers[i].name;
	*value = ri->http_headers[i].value;
}

static int
io_read(void *io, void *buf, size_t len)
{
	return mg_read(io, buf, len);
}

static const struct relay_conn_io mg_io = {
	.header = io_header,
	.header_at = io_header_at,
	.read = io_read,
};

/* ---- sending ---------------------------------------------------------- */

static const char json_type[] = "application/json";

/* True when the request announced a body (length or chunked). */
static bool
has_body(const struct relay_conn *c)
{
	return c->content_length > 0 ||
	    mg_get_header(c->io, "Transfer-Encoding") != NULL;
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
		mg_disable_connection_keep_alive(c->io);
	mg_response_header_start(c->io, resp->status);
	mg_response_header_add(c->io, "Content-Type",
	    resp->content_type ? resp->content_type : json_type, -1);
	if (req->request_id != NULL)
		mg_response_header_add(c->io, "X-Request-Id", req->request_id, -1);
	if (resp->headers_len > 0)
		mg_response_header_add_lines(c->io, resp->headers);
}

/*
 * Whether this connection stays open after the response, decided the way
 * civetweb decides it (HTTP/1.1 unless "Connection: close", HTTP/1.0 only
 * with "Connection: keep-alive"), and forced closed when asked to.
 */
static bool
keep_alive(struct relay_conn *c, const struct relay_response *resp)
{
	const char *conn_hdr = mg_get_header(c->io, "Connection");
	const char *ver = mg_get_request_info(c->io)->http_version;

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
	struct mg_connection *mc = c->io;
	char *buf;
	int n;

	if (!keep)
		mg_disable_connection_keep_alive(mc);
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "X-Request-Id: %s\r\n"
	    "Connection: %s\r\n"
	    "Date: %s\r\n"
	    "%s\r\n",
	    resp->status, mg_get_response_code_text(mc, resp->status),
	    resp->content_type ? resp->content_type : json_type,
	    resp->body_len, req->request_id ? req->request_id : "-",
	    keep ? "keep-alive" : "close", relay_dispatch_date(), resp->headers);
	if (n < 0 || (size_t)n >= sizeof(head))
		return;
	buf = malloc((size_t)n + body_len);
	if (buf == NULL) {
		(void)mg_write(mc, head, (size_t)n);
		if (body_len > 0 && body != NULL)
			(void)mg_write(mc, body, body_len);
		return;
	}
	memcpy(buf, head, (size_t)n);
	if (body == NULL)
		body_len = 0;
	if (body_len > 0)
		memcpy(buf + n, body, body_len);
	(void)mg_write(mc, buf, (size_t)n + body_len);
	free(buf);
}

int
relay_stream_begin(struct relay_request *req, struct relay_response *resp)
{
	struct relay_conn *c = req->conn;

	begin_headers(c, req, resp);
	mg_response_header_add(c->io, "Transfer-Encoding", "chunked", -1);
	resp->streamed = true;
	return mg_response_header_send(c->io) == 0 ? 0 : -1;
}

int
relay_stream_write(struct relay_request *req, struct relay_response *resp,
    const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (len > 0xffffffffu ||
	    mg_send_chunk(req->conn->io, data, (unsigned)len) < 0)
		return -1;
	resp->bytes_sent += len;
	return 0;
}

int
relay_stream_end(struct relay_request *req, struct relay_response *resp)
{
	(void)resp;
	return mg_send_chunk(req->conn->io, "", 0) < 0 ? -1 : 0;
}

/*
 * Dispatch refuses a head with RELAY_FRAMING_MAX_HEADERS headers or more
 * as too many (dispatch.c, framing_acceptable()): civetweb stops parsing
 * at MG_MAX_HEADERS without an error, so its cut must stay above.
 */
_Static_assert(RELAY_FRAMING_MAX_HEADERS < MG_MAX_HEADERS,
    "civetweb's silent cut must stay above the header count limit");

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
	struct relay_conn c = {
		.io = mc,
		.ops = &mg_io,
		.header_count = ri->num_headers > 0 ? (size_t)ri->num_headers : 0,
		.content_length = ri->content_length,
		.head = false,
	};
	struct relay_request req;
	struct relay_response resp;
	char rid[RELAY_REQUEST_ID_MAX + 1];
	char *body = NULL;
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
	relay_dispatch_request_id(mg_get_header(mc, "X-Request-Id"), rid);
	req.request_id = rid;
	c.head = strcmp(req.method, "HEAD") == 0;

	relay_dispatch_run(app, srv->routes, &req, &resp, &body);
	if (!resp.streamed) {
		relay_dispatch_discard(app, &c);
		send_response(&c, &req, &resp);
	}
	else if (resp.close)
		mg_disable_connection_keep_alive(mc);
	relay_dispatch_account(app, &req, &resp);

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
	char rid[RELAY_REQUEST_ID_GENERATED + 1];
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
	relay_request_id_generate(rid);
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
	    resp.body_len, rid, relay_dispatch_date());
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
	 * hand it over; we write our own lines in relay_dispatch_account().
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
