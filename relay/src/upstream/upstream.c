/*
 * upstream.c -- forwarding to the GPU host with libcurl, and its health.
 *
 * The only file that includes curl/curl.h. Each forwarded request borrows
 * a (multi, easy) handle pair from a pool: the multi handle's connection
 * cache keeps upstream connections alive for the next request, and driving
 * the transfer with libcurl.multi_poll() lets this thread enforce first-byte,
 * idle and total deadlines to the millisecond and notice the client
 * leaving while the upstream is silent. Response bytes are written to the
 * client from libcurl's write callback as they arrive.
 *
 * Body bytes are gathered while libcurl has more at hand and written out
 * before the transfer waits for the upstream again, so a small answer
 * leaves in one write with a Content-Length and a streamed one (SSE)
 * reaches the client piece by piece as it arrives. A response is
 * committed (status line and headers sent) by its first such write. Until
 * then any failure still gets a clean JSON error; after it, a failure can
 * only cut the connection.
 *
 * libcurl is not linked: it is loaded with dlopen() by the first forwarded
 * request (or the first check of an https:// upstream). Linking it maps
 * its whole dependency tree (OpenSSL, GnuTLS, Kerberos, LDAP, ssh2...) into
 * every relay, about 7.5 MiB of resident pages, although a relay that only
 * serves the relay protocol never forwards anything; the health check of an
 * http:// upstream uses a plain socket (http_probe.c) for the same reason.
 */
#include "upstream/upstream.h"

/* Calls go through the table below, not through curl.h's setopt macros. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
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
#include "settings.h"
#include "tokenplace/health.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"
#include "upstream/circuit.h"
#include "upstream/http_probe.h"
#include "upstream/peer_socket.h"
#include "upstream/upstream_rules.h"

#define POLL_SLICE_MS		1000	/* longest wait between deadline checks */
#define CLIENT_WATCH_AFTER_S	0.02	/* find the client's socket after this */
#define CONTENT_TYPE_MAX	256
#define ROUTE_LABEL_MAX		96
#define HEALTH_BODY_MAX		65536	/* a health answer is read and dropped */
#define HEALTH_SLICE_MS		200
#define PEND_MAX		65536	/* response bytes gathered per write */
/*
 * A request body announced at most this long is read whole before the
 * transfer and handed to libcurl as POSTFIELDS: libcurl then sends it in
 * the same send() as the headers (below its 64 KiB MAX_INITIAL_POST_SIZE),
 * instead of a second send() and poll() through the read callback. Longer
 * and chunked bodies stream.
 */
#define SMALL_BODY_MAX		(60 * 1024)

/*
 * A pooled transfer context. The easy handle keeps the options common to
 * every forward from its first use; each request sets only its own.
 */
struct fwd_handle {
	CURLM *multi;
	CURL *easy;
	char *pend;			/* PEND_MAX bytes, reused by each transfer */
	char *hdrbuf;			/* upstream_max_header_bytes + 1 */
	char *body;			/* SMALL_BODY_MAX bytes, made at first use */
	bool configured;
	struct fwd_handle *next;
};

struct upstream_metrics {
	struct tp_counter *requests;		/* {route,status} */
	struct tp_counter *errors;		/* {kind} */
	struct tp_histogram *duration;		/* {route} */
	struct tp_histogram *first_byte;	/* {route} */
	struct tp_counter_child *bytes_sent;
	struct tp_counter_child *bytes_received;
	struct tp_counter_child *conns_opened;
	struct tp_counter_child *circuit_opens;
	struct tp_counter_child *checks_ok;
	struct tp_counter_child *checks_fail;
	struct tp_gauge_child *circuit[3];	/* closed, open, half_open */
	struct tp_gauge_child *health[3];	/* up, down, unknown */
};

struct relay_upstream {
	struct relay_app *app;
	const struct relay_settings *s;
	struct relay_fwd_prefixes prefixes;
	char base[2100];
	char health_url[2200];
	/* The two above as logs and /healthz show them (no password). */
	char base_shown[2100 + 4];
	char health_url_shown[2200 + 4];
	char host_line[300];		/* "Host: ..." or "" */
	int health_idx;

	pthread_mutex_t pool_lock;
	struct fwd_handle *pool;

	_Atomic long open_conns;
	_Atomic long in_flight;

	/* lock guards the circuit and the status fields below */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct relay_circuit circuit;
	uint64_t circuit_opens_seen;
	/*
	 * Closed with no failure counted (or disabled): a request's admission
	 * and its success change nothing, so they skip the lock.
	 */
	_Atomic bool circuit_quiet;
	bool first_done;
	int64_t last_check_unix_ms;
	int64_t last_error_unix_ms;
	char last_error[160];

	_Atomic bool stop;
	pthread_t thread;
	bool thread_started;
	struct relay_probe_url probe_url;	/* host "" for https:// */
	CURLM *hmulti;			/* https:// checks only, made at first use */
	CURL *heasy;

	struct upstream_metrics m;
};

/* The per-request state shared with libcurl's callbacks. */
struct fwd {
	struct relay_upstream *u;
	struct relay_request *req;
	struct relay_response *resp;
	size_t base_headers_len;
	char route[ROUTE_LABEL_MAX];

	double start;
	double connected_at;		/* request about to be sent (0: not yet) */
	double first_byte_at;		/* status line received (0: not yet) */
	double last_activity;		/* last byte either way */

	bool has_body;
	bool body_done;
	int64_t body_len;		/* announced Content-Length, -1 if none */
	uint64_t body_sent;
	const char *small_body;		/* read whole (SMALL_BODY_MAX), or NULL */

	long status;
	bool headers_done;
	bool committed;
	char *hdrbuf;			/* the final header block, raw (the handle's) */
	size_t hdrlen;
	uint64_t body_recv;
	char *pend;			/* body bytes not yet written (the handle's) */
	size_t pend_len;
	enum relay_fwd_failure failure;	/* set by callbacks that abort */

	int client_fd;
	bool client_looked_up;
	bool watch_client;
	char errbuf[CURL_ERROR_SIZE];
};

static _Thread_local char tl_content_type[CONTENT_TYPE_MAX];

static int64_t
unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- loading libcurl --------------------------------------------------- */

/* The libcurl functions this file calls, resolved from RELAY_LIBCURL. */
struct libcurl_api {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int,
	    int, int *);
	CURLMcode (*multi_wakeup)(CURLM *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
};

static struct libcurl_api libcurl;
static pthread_once_t libcurl_once = PTHREAD_ONCE_INIT;
static bool libcurl_loaded;		/* written once, under libcurl_once */
static char libcurl_error[256];
/* RELAY_LIBCURL, set by relay_upstream_new() before any thread forwards. */
static const char *libcurl_name = "libcurl.so.4";

#define LIBCURL_SYM(field, name)	{ #name, offsetof(struct libcurl_api, field) }

static const struct {
	const char *name;
	size_t offset;
} libcurl_symbols[] = {
	LIBCURL_SYM(global_init, curl_global_init),
	LIBCURL_SYM(global_cleanup, curl_global_cleanup),
	LIBCURL_SYM(easy_init, curl_easy_init),
	LIBCURL_SYM(easy_cleanup, curl_easy_cleanup),
	LIBCURL_SYM(easy_reset, curl_easy_reset),
	LIBCURL_SYM(easy_setopt, curl_easy_setopt),
	LIBCURL_SYM(easy_getinfo, curl_easy_getinfo),
	LIBCURL_SYM(easy_strerror, curl_easy_strerror),
	LIBCURL_SYM(multi_init, curl_multi_init),
	LIBCURL_SYM(multi_cleanup, curl_multi_cleanup),
	LIBCURL_SYM(multi_add_handle, curl_multi_add_handle),
	LIBCURL_SYM(multi_remove_handle, curl_multi_remove_handle),
	LIBCURL_SYM(multi_perform, curl_multi_perform),
	LIBCURL_SYM(multi_poll, curl_multi_poll),
	LIBCURL_SYM(multi_wakeup, curl_multi_wakeup),
	LIBCURL_SYM(multi_info_read, curl_multi_info_read),
	LIBCURL_SYM(slist_append, curl_slist_append),
	LIBCURL_SYM(slist_free_all, curl_slist_free_all),
};

/*
 * Never dlclose()d: OpenSSL and friends register exit handlers that must
 * still find their code at exit.
 */
static void
libcurl_load_once(void)
{
	double t0 = relay_mono_s();
	void *dl = dlopen(libcurl_name, RTLD_NOW | RTLD_LOCAL);

	if (dl == NULL) {
		snprintf(libcurl_error, sizeof(libcurl_error), "%s", dlerror());
		goto fail;
	}
	for (size_t i = 0; i < sizeof(libcurl_symbols) /
	    sizeof(libcurl_symbols[0]); i++) {
		void *fn = dlsym(dl, libcurl_symbols[i].name);

		if (fn == NULL) {
			snprintf(libcurl_error, sizeof(libcurl_error),
			    "%s lacks %s", libcurl_name,
			    libcurl_symbols[i].name);
			goto fail;
		}
		/* POSIX makes dlsym()'s object pointer usable as a function. */
		memcpy((char *)&libcurl + libcurl_symbols[i].offset, &fn,
		    sizeof(fn));
	}
	/*
	 * Worker threads run by now: libcurl >= 7.84 built with atomics
	 * (Debian's is) has a thread-safe global init, and pthread_once
	 * keeps it to one call anyway.
	 */
	if (libcurl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(libcurl_error, sizeof(libcurl_error),
		    "curl_global_init failed");
		goto fail;
	}
	libcurl_loaded = true;
	TP_LOG(TP_LOG_INFO, "upstream.libcurl_loaded",
	    TP_LSTR("library", libcurl_name),
	    TP_LDBL("load_ms", (relay_mono_s() - t0) * 1000.0));
	return;
fail:
	memset(&libcurl, 0, sizeof(libcurl));
	TP_LOG(TP_LOG_ERROR, "upstream.libcurl_unavailable",
	    TP_LSTR("library", libcurl_name),
	    TP_LSTR("reason", libcurl_error));
}

/* Loads libcurl on first use; false (logged once) when it cannot be had. */
static bool
libcurl_ready(void)
{
	(void)pthread_once(&libcurl_once, libcurl_load_once);
	return libcurl_loaded;
}

void
relay_upstream_global_cleanup(void)
{
	if (libcurl_loaded)
		libcurl.global_cleanup();
}

/* ---- sockets (counted for the open-connections gauge) ----------------- */

static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct relay_upstream *u = arg;
	curl_socket_t fd;

	(void)purpose;
	fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (fd == CURL_SOCKET_BAD)
		return CURL_SOCKET_BAD;
	atomic_fetch_add(&u->open_conns, 1);
	tp_counter_child_add(u->m.conns_opened, 1);
	return fd;
}

static int
close_socket(void *arg, curl_socket_t fd)
{
	struct relay_upstream *u = arg;

	atomic_fetch_sub(&u->open_conns, 1);
	return close(fd);
}

static void
common_options(struct relay_upstream *u, CURL *e, char *errbuf)
{
	/* Worker threads must never get SIGALRM/SIGPIPE from libcurl. */
	(void)libcurl.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	(void)libcurl.easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	(void)libcurl.easy_setopt(e, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1);
	(void)libcurl.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* The cluster's proxy variables are not meant for the GPU host. */
	(void)libcurl.easy_setopt(e, CURLOPT_PROXY, "");
	(void)libcurl.easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	(void)libcurl.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	(void)libcurl.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	(void)libcurl.easy_setopt(e, CURLOPT_OPENSOCKETDATA, u);
	(void)libcurl.easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	(void)libcurl.easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
	(void)libcurl.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)u->s->upstream_connect_timeout_ms);
}

/* ---- handle pool ------------------------------------------------------- */

static void handle_free(struct fwd_handle *h);

static struct fwd_handle *
pool_get(struct relay_upstream *u)
{
	struct fwd_handle *h;

	pthread_mutex_lock(&u->pool_lock);
	h = u->pool;
	if (h != NULL)
		u->pool = h->next;
	pthread_mutex_unlock(&u->pool_lock);
	if (h != NULL)
		return h;
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->multi = libcurl.multi_init();
	h->easy = libcurl.easy_init();
	h->pend = malloc(PEND_MAX);
	h->hdrbuf = malloc((size_t)u->s->upstream_max_header_bytes + 1);
	if (h->multi == NULL || h->easy == NULL || h->pend == NULL ||
	    h->hdrbuf == NULL) {
		handle_free(h);
		return NULL;
	}
	return h;
}

static void
pool_put(struct relay_upstream *u, struct fwd_handle *h)
{
	pthread_mutex_lock(&u->pool_lock);
	h->next = u->pool;
	u->pool = h;
	pthread_mutex_unlock(&u->pool_lock);
}

static void
handle_free(struct fwd_handle *h)
{
	/* The easy handle goes first: its connections live in the multi. */
	libcurl.easy_cleanup(h->easy);
	libcurl.multi_cleanup(h->multi);
	free(h->pend);
	free(h->hdrbuf);
	free(h->body);
	free(h);
}

/* ---- circuit + gauges ------------------------------------------------- */

/* Called with u->lock held after anything that may move the circuit. */
static void
circuit_changed(struct relay_upstream *u)
{
	enum relay_circuit_state st = u->circuit.state;

	atomic_store(&u->circuit_quiet, !u->circuit.enabled ||
	    (st == RELAY_CIRCUIT_CLOSED && u->circuit.failures == 0));
	for (int i = 0; i < 3; i++)
		tp_gauge_child_set(u->m.circuit[i], (int)st == i ? 1.0 : 0.0);
	if (u->circuit.opened_count != u->circuit_opens_seen) {
		tp_counter_child_add(u->m.circuit_opens,
		    (double)(u->circuit.opened_count - u->circuit_opens_seen));
		u->circuit_opens_seen = u->circuit.opened_count;
		TP_LOG(TP_LOG_WARNING, "upstream.circuit_open",
		    TP_LSTR("upstream", u->base_shown),
		    TP_LINT("open_ms", u->circuit.open_ms));
	}
}

/* ---- request headers -------------------------------------------------- */

static int
append_header(struct curl_slist **list, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value);
	size_t n = nlen + vlen + 3;
	struct curl_slist *l;
	char small[512];
	char *line = n <= sizeof(small) ? small : malloc(n);

	if (line == NULL)
		return -1;
	memcpy(line, name, nlen);
	if (vlen == 0) {
		/* "Name:" alone would tell libcurl to remove the header. */
		line[nlen] = ';';
		line[nlen + 1] = '\0';
	} else {
		line[nlen] = ':';
		line[nlen + 1] = ' ';
		memcpy(line + nlen + 2, value, vlen + 1);
	}
	l = libcurl.slist_append(*list, line);
	if (line != small)
		free(line);
	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

static int
build_request_headers(struct fwd *f, struct curl_slist **out)
{
	struct relay_request *req = f->req;
	const char *conn = relay_request_header(req, "Connection");
	const char *xff = relay_request_header(req, "X-Forwarded-For");
	const char *xfp = relay_request_header(req, "X-Forwarded-Proto");
	const char *xfh = relay_request_header(req, "X-Forwarded-Host");
	const char *host = relay_request_header(req, "Host");
	size_t count = relay_request_header_count(req);
	bool has_ct = false, has_accept = false;
	struct curl_slist *list = NULL;
	char forwarded_for[1024];

	for (size_t i = 0; i < count; i++) {
		const char *name, *value;

		relay_request_header_at(req, i, &name, &value);
		if (name == NULL || value == NULL ||
		    !relay_fwd_header_passes(RELAY_FWD_REQUEST, name, conn))
			continue;
		if (strcasecmp(name, "Content-Type") == 0)
			has_ct = true;
		else if (strcasecmp(name, "Accept") == 0)
			has_accept = true;
		if (append_header(&list, name, value) != 0)
			goto fail;
	}
	if (xff != NULL && xff[0] != '\0')
		snprintf(forwarded_for, sizeof(forwarded_for), "%s, %s", xff,
		    req->remote_addr ? req->remote_addr : "");
	else
		snprintf(forwarded_for, sizeof(forwarded_for), "%s",
		    req->remote_addr ? req->remote_addr : "");
	if (append_header(&list, "X-Forwarded-For", forwarded_for) != 0 ||
	    append_header(&list, "X-Forwarded-Proto",
	    xfp && xfp[0] ? xfp : "http") != 0 ||
	    (((xfh && xfh[0]) || host) && append_header(&list,
	    "X-Forwarded-Host", xfh && xfh[0] ? xfh : host) != 0) ||
	    (req->request_id && append_header(&list, "X-Request-Id",
	    req->request_id) != 0))
		goto fail;
	/* Keep libcurl from adding headers the client did not send. */
	if ((f->u->host_line[0] != '\0' &&
	    (list = libcurl.slist_append(list, f->u->host_line)) == NULL) ||
	    (list = libcurl.slist_append(list, "Expect:")) == NULL ||
	    (!has_ct && (list = libcurl.slist_append(list, "Content-Type:")) == NULL) ||
	    (!has_accept && (list = libcurl.slist_append(list, "Accept:")) == NULL))
		goto fail;
	*out = list;
	return 0;
fail:
	libcurl.slist_free_all(list);
	*out = NULL;
	return -1;
}

/* ---- libcurl callbacks ---------------------------------------------------- */

static int
on_prereq(void *arg, char *conn_primary_ip, char *conn_local_ip,
    int conn_primary_port, int conn_local_port)
{
	struct fwd *f = arg;

	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	f->connected_at = f->last_activity = relay_mono_s();
	return CURL_PREREQFUNC_OK;
}

static size_t
on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	ssize_t n = relay_request_read(f->req, buf, size * nitems);

	if (n < 0) {
		f->failure = RELAY_FWD_BAD_REQUEST;
		return CURL_READFUNC_ABORT;
	}
	if (n == 0) {
		f->body_done = true;
		return 0;
	}
	f->body_sent += (uint64_t)n;
	if (f->body_sent > (uint64_t)f->u->s->max_body_bytes) {
		f->failure = RELAY_FWD_BODY_TOO_LARGE;
		return CURL_READFUNC_ABORT;
	}
	/*
	 * libcurl stops reading at the announced length; reading the end
	 * here too tells the adapter the connection can be kept alive.
	 */
	if (f->body_len >= 0 && f->body_sent == (uint64_t)f->body_len) {
		char end;

		if (relay_request_read(f->req, &end, 1) == 0)
			f->body_done = true;
	}
	f->last_activity = relay_mono_s();
	return (size_t)n;
}

static void
trim(char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' ||
	    (*s)[*n - 1] == '\r' || (*s)[*n - 1] == '\n'))
		(*n)--;
}

/*
 * Turns the raw final header block into resp headers. Done once the block
 * is complete because Connection may name headers that came before it.
 */
static enum relay_fwd_failure
apply_response_headers(struct fwd *f)
{
	struct relay_response *resp = f->resp;
	char connection[512] = "";
	char *p, *line, *save = NULL;

	resp->headers_len = f->base_headers_len;
	resp->headers[resp->headers_len] = '\0';
	tl_content_type[0] = '\0';
	if (f->hdrbuf == NULL)
		return RELAY_FWD_OK;
	/* First pass: the Connection tokens. */
	for (p = f->hdrbuf; (p = strcasestr(p, "connection:")) != NULL; p++) {
		char *v;
		size_t n, used = strlen(connection);

		if (p != f->hdrbuf && p[-1] != '\n')
			continue;
		v = p + 11;
		n = strcspn(v, "\r\n");
		trim(&v, &n);
		snprintf(connection + used, sizeof(connection) - used, "%s%.*s",
		    used ? "," : "", (int)n, v);
	}
	for (line = strtok_r(f->hdrbuf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		char *name = line, *value;
		size_t nlen, vlen;

		if (colon == NULL || line[0] == ' ' || line[0] == '\t')
			continue;	/* obsolete folding or garbage: drop */
		nlen = (size_t)(colon - line);
		value = colon + 1;
		vlen = strlen(value);
		trim(&name, &nlen);
		trim(&value, &vlen);
		name[nlen] = '\0';
		value[vlen] = '\0';
		if (strcasecmp(name, "Content-Type") == 0) {
			snprintf(tl_content_type, sizeof(tl_content_type), "%s",
			    value);
			continue;
		}
		if (strcasecmp(name, "Content-Length") == 0) {
			char *end;
			unsigned long long cl = strtoull(value, &end, 10);

			/* A HEAD answer announces a body it never sends. */
			if (end != value && cl >
			    (unsigned long long)f->u->s->upstream_max_response_bytes &&
			    strcmp(f->req->method, "HEAD") != 0)
				return RELAY_FWD_TOO_LARGE;
			continue;
		}
		if (!relay_fwd_header_passes(RELAY_FWD_RESPONSE, name,
		    connection))
			continue;
		if (relay_response_add_header(resp, name, value) != 0)
			return RELAY_FWD_HEADERS_TOO_LARGE;
	}
	return RELAY_FWD_OK;
}

static size_t
on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * nitems;
	size_t max = (size_t)f->u->s->upstream_max_header_bytes;

	f->last_activity = relay_mono_s();
	if (f->headers_done)
		return len;		/* trailers: not relayed */
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		const char *sp = memchr(buf, ' ', len);

		f->status = 0;
		if (sp != NULL && (size_t)(sp - buf) + 4 <= len)
			f->status = strtol(sp + 1, NULL, 10);
		if (f->first_byte_at == 0)
			f->first_byte_at = f->last_activity;
		f->hdrlen = 0;		/* a 1xx block is over */
		return len;
	}
	if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
		if (f->status < 200)
			return len;	/* end of an interim (1xx) block */
		f->headers_done = true;
		f->hdrbuf[f->hdrlen] = '\0';
		f->failure = apply_response_headers(f);
		return f->failure == RELAY_FWD_OK ? len : 0;
	}
	if (f->status < 200)
		return len;
	if (f->hdrlen + len > max) {
		f->failure = RELAY_FWD_HEADERS_TOO_LARGE;
		return 0;
	}
	memcpy(f->hdrbuf + f->hdrlen, buf, len);
	f->hdrlen += len;
	return len;
}

/* Sends the status line and headers; returns -1 when the client is gone. */
static int
commit(struct fwd *f)
{
	f->committed = true;
	f->resp->status = (int)f->status;
	f->resp->content_type = tl_content_type[0] ? tl_content_type :
	    "application/octet-stream";
	return relay_stream_begin(f->req, f->resp);
}

/* Writes the gathered bytes (committing first); -1 when the client is gone. */
static int
flush_pending(struct fwd *f)
{
	int rc = 0;

	if (!f->committed && commit(f) != 0)
		return -1;
	if (f->pend_len > 0)
		rc = relay_stream_write(f->req, f->resp, f->pend, f->pend_len);
	f->pend_len = 0;
	return rc;
}

static size_t
on_body(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fwd *f = arg;
	size_t len = size * nitems;

	f->last_activity = relay_mono_s();
	if (f->body_recv + len > (uint64_t)f->u->s->upstream_max_response_bytes) {
		f->failure = RELAY_FWD_TOO_LARGE;
		return 0;
	}
	f->body_recv += len;
	if (f->pend_len + len > PEND_MAX && flush_pending(f) != 0) {
		f->failure = RELAY_FWD_CLIENT_GONE;
		return 0;
	}
	if (len > PEND_MAX) {
		if (relay_stream_write(f->req, f->resp, buf, len) != 0) {
			f->failure = RELAY_FWD_CLIENT_GONE;
			return 0;
		}
		return len;
	}
	memcpy(f->pend + f->pend_len, buf, len);
	f->pend_len += len;
	return len;
}

/* ---- one transfer ------------------------------------------------------ */

/*
 * The per-request options. Method options are sticky on a reused handle,
 * so each request first returns it to a plain GET.
 */
static void
set_request_options(struct fwd *f, CURL *e, const char *url,
    struct curl_slist *hdrs)
{
	const char *m = f->req->method;
	int64_t cl = f->body_len;

	(void)libcurl.easy_setopt(e, CURLOPT_URL, url);
	(void)libcurl.easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	(void)libcurl.easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	(void)libcurl.easy_setopt(e, CURLOPT_HEADERDATA, f);
	(void)libcurl.easy_setopt(e, CURLOPT_WRITEDATA, f);
	(void)libcurl.easy_setopt(e, CURLOPT_PREREQDATA, f);
	(void)libcurl.easy_setopt(e, CURLOPT_READDATA, f);
	(void)libcurl.easy_setopt(e, CURLOPT_HTTPGET, 1L);
	(void)libcurl.easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
	if (strcmp(m, "HEAD") == 0) {
		(void)libcurl.easy_setopt(e, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(m, "GET") == 0 && !f->has_body)
		return;
	if (f->small_body != NULL) {
		(void)libcurl.easy_setopt(e, CURLOPT_POST, 1L);
		(void)libcurl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)f->body_sent);
		(void)libcurl.easy_setopt(e, CURLOPT_POSTFIELDS, f->small_body);
	} else if (f->has_body) {
		(void)libcurl.easy_setopt(e, CURLOPT_POST, 1L);
		(void)libcurl.easy_setopt(e, CURLOPT_POSTFIELDS, (char *)NULL);
		/* -1: unknown length, sent chunked. */
		(void)libcurl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(cl > 0 ? cl : -1));
	} else if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	    strcmp(m, "PATCH") == 0) {
		/* An empty body, announced as such. */
		(void)libcurl.easy_setopt(e, CURLOPT_POSTFIELDS, "");
		(void)libcurl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)0);
	}
	if (strcmp(m, "POST") != 0)
		(void)libcurl.easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
}

/*
 * Reads a small announced body whole into the handle's buffer (see
 * SMALL_BODY_MAX). Returns 0, or -1 with f->failure set when the client
 * fails to send what it announced.
 */
static int
read_small_body(struct fwd *f, struct fwd_handle *h)
{
	size_t want = (size_t)f->body_len, got = 0;
	char end;

	if (h->body == NULL && (h->body = malloc(SMALL_BODY_MAX)) == NULL) {
		f->failure = RELAY_FWD_INTERNAL;
		return -1;
	}
	while (got < want) {
		ssize_t n = relay_request_read(f->req, h->body + got, want - got);

		if (n <= 0) {
			f->body_sent = got;
			f->failure = RELAY_FWD_BAD_REQUEST;
			return -1;
		}
		got += (size_t)n;
	}
	/* Reading the end tells the adapter the connection can be kept. */
	if (relay_request_read(f->req, &end, 1) != 0) {
		f->failure = RELAY_FWD_BAD_REQUEST;
		return -1;
	}
	f->small_body = h->body;
	f->body_sent = got;
	f->body_done = true;
	f->last_activity = relay_mono_s();
	return 0;
}

/* Options every forward shares, set once per pooled handle. */
static void
configure_handle(struct relay_upstream *u, struct fwd_handle *h)
{
	CURL *e = h->easy;

	common_options(u, e, NULL);
	/* The path was checked as received; send it exactly so. */
	(void)libcurl.easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	(void)libcurl.easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    (long)(u->s->upstream_total_timeout_ms + 1000));
	(void)libcurl.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	(void)libcurl.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	(void)libcurl.easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
	(void)libcurl.easy_setopt(e, CURLOPT_READFUNCTION, on_read);
	h->configured = true;
}

static int
build_url(struct fwd *f, char **out)
{
	const char *q = f->req->query;
	size_t n = strlen(f->u->base) + strlen(f->req->path) +
	    (q ? strlen(q) + 1 : 0) + 1;
	char *url = malloc(n);

	if (url == NULL)
		return -1;
	snprintf(url, n, "%s%s%s%s", f->u->base, f->req->path, q ? "?" : "",
	    q ? q : "");
	*out = url;
	return 0;
}

/* The deadline that applies now, and which failure it stands for. */
static double
next_deadline(const struct fwd *f, enum relay_fwd_failure *kind)
{
	const struct relay_settings *s = f->u->s;
	double total = f->start + (double)s->upstream_total_timeout_ms / 1000.0;
	double d;

	*kind = RELAY_FWD_TOTAL_TIMEOUT;
	if (f->first_byte_at > 0) {
		d = f->last_activity + (double)s->upstream_idle_timeout_ms / 1000.0;
		if (d < total) {
			*kind = RELAY_FWD_IDLE_TIMEOUT;
			return d;
		}
	} else if (f->connected_at > 0 && f->body_done) {
		/* The clock starts when the whole request is out. */
		d = f->last_activity +
		    (double)s->upstream_first_byte_timeout_ms / 1000.0;
		if (d < total) {
			*kind = RELAY_FWD_FIRST_BYTE_TIMEOUT;
			return d;
		}
	}
	return total;
}

static void
watch_client_setup(struct fwd *f)
{
	f->client_looked_up = true;
	f->client_fd = relay_peer_socket_find(f->req->local_port,
	    f->req->remote_addr, f->req->remote_port);
	f->watch_client = f->client_fd >= 0;
}

/*
 * Drives the transfer to its end or to a deadline. Returns libcurl's
 * result (CURLE_OK when it completed); f->failure is set when this loop
 * or a callback ended it.
 */
static CURLcode
drive(struct fwd *f, struct fwd_handle *h)
{
	CURLcode result = CURLE_OK;
	CURLMsg *msg;
	int left;

	if (libcurl.multi_add_handle(h->multi, h->easy) != CURLM_OK) {
		f->failure = RELAY_FWD_INTERNAL;
		return CURLE_FAILED_INIT;
	}
	for (;;) {
		enum relay_fwd_failure kind;
		struct curl_waitfd w;
		unsigned nfd = 0;
		int running = 0;
		double now, deadline, wait_ms;

		if (libcurl.multi_perform(h->multi, &running) != CURLM_OK) {
			f->failure = RELAY_FWD_INTERNAL;
			break;
		}
		if (running == 0)
			break;
		/* About to wait for the upstream: what came so far goes out. */
		if (f->pend_len > 0 && flush_pending(f) != 0) {
			f->failure = RELAY_FWD_CLIENT_GONE;
			break;
		}
		now = relay_mono_s();
		deadline = next_deadline(f, &kind);
		if (now >= deadline) {
			f->failure = kind;
			break;
		}
		wait_ms = (deadline - now) * 1000.0 + 1.0;
		if (wait_ms > POLL_SLICE_MS)
			wait_ms = POLL_SLICE_MS;
		if (f->body_done && !f->client_looked_up) {
			if (now - f->start >= CLIENT_WATCH_AFTER_S)
				watch_client_setup(f);
			else if (wait_ms > CLIENT_WATCH_AFTER_S * 1000.0)
				wait_ms = CLIENT_WATCH_AFTER_S * 1000.0;
		}
		if (f->watch_client && f->body_done) {
			w.fd = f->client_fd;
			w.events = CURL_WAIT_POLLIN;
			w.revents = 0;
			nfd = 1;
		}
		if (libcurl.multi_poll(h->multi, nfd ? &w : NULL, nfd, (int)wait_ms,
		    NULL) != CURLM_OK) {
			f->failure = RELAY_FWD_INTERNAL;
			break;
		}
		if (nfd > 0 && w.revents != 0) {
			enum relay_peer_state ps = relay_peer_socket_state(f->client_fd);

			if (ps == RELAY_PEER_GONE) {
				f->failure = RELAY_FWD_CLIENT_GONE;
				break;
			}
			if (ps == RELAY_PEER_DATA)
				f->watch_client = false;	/* pipelined request */
		}
	}
	while ((msg = libcurl.multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE)
			result = msg->data.result;
	}
	/* Removing an unfinished transfer closes its connection at once. */
	(void)libcurl.multi_remove_handle(h->multi, h->easy);
	return result;
}

static enum relay_fwd_failure
classify(const struct fwd *f, CURLcode rc)
{
	if (f->failure != RELAY_FWD_OK)
		return f->failure;
	switch (rc) {
	case CURLE_OK:
		return RELAY_FWD_OK;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return RELAY_FWD_UNREACHABLE;
	case CURLE_OPERATION_TIMEDOUT:
		if (f->connected_at == 0)
			return RELAY_FWD_CONNECT_TIMEOUT;
		return RELAY_FWD_TOTAL_TIMEOUT;
	case CURLE_URL_MALFORMAT:
	case CURLE_READ_ERROR:
		return RELAY_FWD_BAD_REQUEST;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_UNKNOWN_OPTION:
		return RELAY_FWD_INTERNAL;
	default:
		return RELAY_FWD_BAD_RESPONSE;
	}
}

static void
count_request(struct fwd *f, int status)
{
	char st[8];
	const char *labels[2];

	snprintf(st, sizeof(st), "%d", status);
	labels[0] = f->route;
	labels[1] = st;
	tp_counter_inc(f->u->m.requests, labels);
}

static void
count_error(struct relay_upstream *u, const char *kind)
{
	const char *labels[] = { kind };

	tp_counter_inc(u->m.errors, labels);
}

/*
 * Reads and drops what is left of the request body, so that a client still
 * sending it gets the answer rather than a reset. Bounded by
 * RELAY_MAX_BODY_BYTES like the body itself.
 */
static void
drain_body(struct fwd *f)
{
	uint64_t total = f->body_sent;
	char buf[8192];

	for (;;) {
		ssize_t n = relay_request_read(f->req, buf, sizeof(buf));

		if (n <= 0) {
			f->body_done = n == 0;
			return;
		}
		total += (uint64_t)n;
		if (total > (uint64_t)f->u->s->max_body_bytes)
			return;
	}
}

/* Answers with the failure's JSON error, or cuts a committed response. */
static void
respond_failure(struct fwd *f, enum relay_fwd_failure fail, CURLcode rc)
{
	const struct relay_fwd_error *e = relay_fwd_error_for(fail);
	struct relay_response *resp = f->resp;

	count_error(f->u, e->kind);
	if (fail == RELAY_FWD_BODY_TOO_LARGE)
		relay_app_count_limit(f->u->app, "body_bytes");
	else if (fail == RELAY_FWD_TOO_LARGE)
		relay_app_count_limit(f->u->app, "upstream_response_bytes");
	else if (fail == RELAY_FWD_HEADERS_TOO_LARGE)
		relay_app_count_limit(f->u->app, "upstream_header_bytes");
	if (fail != RELAY_FWD_CLIENT_GONE && fail != RELAY_FWD_CIRCUIT_OPEN)
		TP_LOG(TP_LOG_WARNING, "upstream.forward_failed",
		    TP_LSTR("kind", e->kind),
		    TP_LSTR("http_method", f->req->method),
		    TP_LSTR("http_path", f->req->path),
		    TP_LSTR("request_id", f->req->request_id),
		    TP_LBOOL("response_started", f->committed),
		    TP_LSTR("detail", f->errbuf[0] ? f->errbuf :
		    rc != CURLE_OK ? libcurl.easy_strerror(rc) : e->message));
	resp->error_kind = e->kind;
	if (f->committed) {
		resp->close = true;
		return;
	}
	if (f->has_body && !f->body_done && fail != RELAY_FWD_BODY_TOO_LARGE &&
	    fail != RELAY_FWD_CLIENT_GONE)
		drain_body(f);
	resp->headers_len = f->base_headers_len;
	resp->headers[resp->headers_len] = '\0';
	resp->content_type = NULL;
	relay_response_error_shaped(resp, RELAY_ERR_OPENAI, e->status, e->code,
	    e->message);
	if (fail == RELAY_FWD_CLIENT_GONE || fail == RELAY_FWD_BODY_TOO_LARGE ||
	    (f->has_body && !f->body_done))
		resp->close = true;
}

static bool
reject_by_circuit(struct fwd *f, enum relay_circuit_verdict *how)
{
	struct relay_upstream *u = f->u;
	int64_t retry_ms = 0;
	char retry[24];

	*how = RELAY_CIRCUIT_ALLOW;
	if (atomic_load(&u->circuit_quiet))
		return false;
	pthread_mutex_lock(&u->lock);
	*how = relay_circuit_admit(&u->circuit, relay_mono_ms(), &retry_ms);
	circuit_changed(u);
	pthread_mutex_unlock(&u->lock);
	if (*how != RELAY_CIRCUIT_REJECT)
		return false;
	respond_failure(f, RELAY_FWD_CIRCUIT_OPEN, CURLE_OK);
	snprintf(retry, sizeof(retry), "%ld", relay_fwd_retry_after_s(retry_ms));
	(void)relay_response_add_header(f->resp, "Retry-After", retry);
	return true;
}

static void
circuit_record(struct fwd *f, enum relay_circuit_verdict how,
    enum relay_fwd_failure fail)
{
	struct relay_upstream *u = f->u;
	enum relay_circuit_outcome out = RELAY_CIRCUIT_NEUTRAL;

	if (fail == RELAY_FWD_OK)
		out = RELAY_CIRCUIT_SUCCESS;
	else if (relay_fwd_error_for(fail)->breaks_circuit)
		out = RELAY_CIRCUIT_FAILURE;
	else if (f->first_byte_at > 0)
		out = RELAY_CIRCUIT_SUCCESS;	/* it answered; we gave up */
	if (how == RELAY_CIRCUIT_ALLOW && out != RELAY_CIRCUIT_FAILURE &&
	    atomic_load(&u->circuit_quiet))
		return;
	pthread_mutex_lock(&u->lock);
	relay_circuit_result(&u->circuit, how, out, relay_mono_ms());
	circuit_changed(u);
	pthread_mutex_unlock(&u->lock);
}

void
relay_upstream_forward(struct relay_upstream *u, struct relay_request *req,
    struct relay_response *resp)
{
	struct fwd f;
	struct fwd_handle *h = NULL;
	struct curl_slist *hdrs = NULL;
	enum relay_circuit_verdict how = RELAY_CIRCUIT_ALLOW;
	enum relay_fwd_failure fail;
	const char *labels[1];
	char *url = NULL;
	CURLcode rc = CURLE_OK;

	memset(&f, 0, sizeof(f));
	f.u = u;
	f.req = req;
	f.resp = resp;
	f.base_headers_len = resp->headers_len;
	f.start = f.last_activity = relay_mono_s();
	f.client_fd = -1;
	relay_fwd_route_label(&u->prefixes, req->path, f.route, sizeof(f.route));
	labels[0] = f.route;
	f.body_len = relay_request_content_length(req);
	f.has_body = f.body_len > 0 || (f.body_len < 0 &&
	    relay_request_header(req, "Transfer-Encoding") != NULL);
	f.body_done = !f.has_body;
	atomic_fetch_add(&u->in_flight, 1);

	if (!relay_fwd_path_safe(req->path)) {
		respond_failure(&f, RELAY_FWD_BAD_REQUEST, CURLE_OK);
		goto out;
	}
	if (f.body_len > u->s->max_body_bytes) {
		respond_failure(&f, RELAY_FWD_BODY_TOO_LARGE, CURLE_OK);
		goto out;
	}
	if (reject_by_circuit(&f, &how))
		goto out;
	if (!libcurl_ready()) {
		snprintf(f.errbuf, sizeof(f.errbuf), "%s", libcurl_error);
		f.failure = RELAY_FWD_INTERNAL;
		goto done;
	}
	if ((h = pool_get(u)) == NULL || build_url(&f, &url) != 0 ||
	    build_request_headers(&f, &hdrs) != 0) {
		f.failure = RELAY_FWD_INTERNAL;
		goto done;
	}
	f.pend = h->pend;
	f.hdrbuf = h->hdrbuf;
	if (f.has_body && f.body_len > 0 && f.body_len <= SMALL_BODY_MAX &&
	    read_small_body(&f, h) != 0)
		goto done;
	if (!h->configured)
		configure_handle(u, h);
	set_request_options(&f, h->easy, url, hdrs);
	rc = drive(&f, h);
	/* Nothing of this request may outlive it in the pooled handle. */
	(void)libcurl.easy_setopt(h->easy, CURLOPT_POSTFIELDS, (char *)NULL);
	(void)libcurl.easy_setopt(h->easy, CURLOPT_ERRORBUFFER, (char *)NULL);
	(void)libcurl.easy_setopt(h->easy, CURLOPT_HTTPHEADER,
	    (struct curl_slist *)NULL);
done:
	fail = classify(&f, rc);
	circuit_record(&f, how, fail);
	if (f.first_byte_at > 0)
		tp_histogram_observe(u->m.first_byte, labels,
		    f.first_byte_at - f.start);
	tp_histogram_observe(u->m.duration, labels, relay_mono_s() - f.start);
	tp_counter_child_add(u->m.bytes_sent, (double)f.body_sent);
	tp_counter_child_add(u->m.bytes_received, (double)f.body_recv);
	if (fail != RELAY_FWD_OK) {
		respond_failure(&f, fail, rc);
	} else if (f.committed) {
		if (flush_pending(&f) != 0 || relay_stream_end(req, resp) != 0)
			resp->close = true;
	} else {
		/* The whole answer came at once: send it with a length. */
		resp->status = (int)f.status;
		resp->content_type = tl_content_type[0] ? tl_content_type : NULL;
		if (f.pend_len > 0) {
			if ((resp->body = malloc(f.pend_len)) == NULL) {
				respond_failure(&f, RELAY_FWD_INTERNAL, rc);
			} else {
				memcpy(resp->body, f.pend, f.pend_len);
				resp->body_len = f.pend_len;
			}
		}
	}
out:
	count_request(&f, resp->status);
	if (h != NULL)
		pool_put(u, h);
	if (hdrs != NULL)
		libcurl.slist_free_all(hdrs);
	free(url);
	atomic_fetch_sub(&u->in_flight, 1);
}

/* ---- health ----------------------------------------------------------- */

static size_t
health_sink(char *buf, size_t size, size_t nitems, void *arg)
{
	size_t *got = arg;

	(void)buf;
	*got += size * nitems;
	return *got > HEALTH_BODY_MAX ? 0 : size * nitems;
}

/*
 * The check of an https:// upstream: libcurl does the TLS. Returns true
 * when healthy.
 */
static bool
health_probe_tls(struct relay_upstream *u, char *reason, size_t len)
{
	CURL *e;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode rc = CURLE_OK;
	CURLMsg *msg;
	size_t got = 0;
	long status = 0;
	int left, running = 1;

	if (!libcurl_ready()) {
		snprintf(reason, len, "cannot check https://: %.120s",
		    libcurl_error);
		return false;
	}
	if (u->hmulti == NULL) {
		u->hmulti = libcurl.multi_init();
		u->heasy = libcurl.easy_init();
		if (u->hmulti == NULL || u->heasy == NULL) {
			snprintf(reason, len, "cannot start a health check");
			return false;
		}
	}
	e = u->heasy;
	libcurl.easy_reset(e);
	common_options(u, e, errbuf);
	(void)libcurl.easy_setopt(e, CURLOPT_URL, u->health_url);
	(void)libcurl.easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    (long)u->s->upstream_health_timeout_ms);
	if (u->s->upstream_health_timeout_ms < u->s->upstream_connect_timeout_ms)
		(void)libcurl.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)u->s->upstream_health_timeout_ms);
	/* Resolve the GPU host's name afresh on every check. */
	(void)libcurl.easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	(void)libcurl.easy_setopt(e, CURLOPT_WRITEFUNCTION, health_sink);
	(void)libcurl.easy_setopt(e, CURLOPT_WRITEDATA, &got);
	(void)libcurl.easy_setopt(e, CURLOPT_USERAGENT, "tokenplace-relay-health");
	if (u->host_line[0] != '\0')
		hdrs = libcurl.slist_append(NULL, u->host_line);
	(void)libcurl.easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	if (libcurl.multi_add_handle(u->hmulti, e) != CURLM_OK) {
		snprintf(reason, len, "cannot start a health check");
		libcurl.slist_free_all(hdrs);
		return false;
	}
	while (running > 0 && !atomic_load(&u->stop)) {
		if (libcurl.multi_perform(u->hmulti, &running) != CURLM_OK)
			break;
		if (running > 0)
			(void)libcurl.multi_poll(u->hmulti, NULL, 0, HEALTH_SLICE_MS,
			    NULL);
	}
	if (running > 0)
		rc = CURLE_ABORTED_BY_CALLBACK;
	while ((msg = libcurl.multi_info_read(u->hmulti, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE)
			rc = msg->data.result;
	}
	(void)libcurl.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	(void)libcurl.multi_remove_handle(u->hmulti, e);
	(void)libcurl.easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
	(void)libcurl.easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	libcurl.slist_free_all(hdrs);

	if (rc == CURLE_COULDNT_RESOLVE_HOST) {
		/* After "https://" and any userinfo, which the reason never shows. */
		const char *host = u->base_shown + 8;
		const char *at = strchr(host, '@');

		if (at != NULL && at < host + strcspn(host, "/"))
			host = at + 1;

		snprintf(reason, len, "%.*s does not resolve",
		    (int)strcspn(host, "/"), host);
		return false;
	}
	if (rc != CURLE_OK) {
		snprintf(reason, len, "GET %.40s: %.110s", u->s->upstream_health_path,
		    errbuf[0] ? errbuf : libcurl.easy_strerror(rc));
		return false;
	}
	if (status < 200 || status > 299) {
		snprintf(reason, len, "GET %.40s answered %ld",
		    u->s->upstream_health_path, status);
		return false;
	}
	reason[0] = '\0';
	return true;
}

/* One health check: resolve + GET. Returns true when healthy. */
static bool
health_probe(struct relay_upstream *u, char *reason, size_t len)
{
	const struct relay_settings *s = u->s;
	struct relay_probe_opts o;
	int status = 0;

	if (u->probe_url.host[0] == '\0')
		return health_probe_tls(u, reason, len);
	memset(&o, 0, sizeof(o));
	o.timeout_ms = (long)s->upstream_health_timeout_ms;
	o.connect_timeout_ms = (long)s->upstream_connect_timeout_ms;
	o.host_header = s->upstream_host_header != NULL &&
	    s->upstream_host_header[0] != '\0' ? s->upstream_host_header : NULL;
	o.user_agent = "tokenplace-relay-health";
	/* Only the status line and headers are read. */
	o.max_response_bytes = (size_t)s->upstream_max_header_bytes;
	o.stop = &u->stop;
	o.max_lookups = (unsigned)s->upstream_health_max_lookups;
	switch (relay_http_probe(&u->probe_url, &o, &status, reason, len)) {
	case RELAY_PROBE_OK:
		reason[0] = '\0';
		return true;
	case RELAY_PROBE_STATUS:
		snprintf(reason, len, "GET %.40s answered %d",
		    s->upstream_health_path, status);
		return false;
	case RELAY_PROBE_RESOLVE:
		/* The reason already says "<host> does not resolve". */
		return false;
	case RELAY_PROBE_LOOKUPS_BUSY:
		relay_app_count_limit(u->app, "upstream_health_lookups");
		return false;
	default:
		break;
	}
	/* Kept short: the reason ends up in /healthz and the logs. */
	if (reason[0] != '\0') {
		char detail[TP_HEALTH_REASON_MAX];

		snprintf(detail, sizeof(detail), "%s", reason);
		snprintf(reason, len, "GET %.40s: %.110s",
		    s->upstream_health_path, detail);
	}
	return false;
}

static enum tp_check_outcome
health_outcome(struct relay_upstream *u, struct tp_health_check_status *out)
{
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	size_t n = tp_health_snapshot(u->app->health, st, TP_HEALTH_MAX_CHECKS);

	if (u->health_idx < 0 || (size_t)u->health_idx >= n ||
	    u->health_idx >= TP_HEALTH_MAX_CHECKS) {
		memset(out, 0, sizeof(*out));
		return TP_CHECK_UNKNOWN;
	}
	*out = st[u->health_idx];
	return out->outcome;
}

static int
health_state_index(enum tp_check_outcome o)
{
	if (o == TP_CHECK_OK || o == TP_CHECK_WARN)
		return 0;
	if (o == TP_CHECK_FAIL)
		return 1;
	return 2;
}

static const char *const health_state_names[3] = { "up", "down", "unknown" };

static void
health_check_once(struct relay_upstream *u)
{
	struct tp_health_check_status st;
	char reason[TP_HEALTH_REASON_MAX];
	enum tp_check_outcome now_state;
	bool ok, changed;
	int idx;

	ok = health_probe(u, reason, sizeof(reason));
	if (atomic_load(&u->stop))
		return;		/* interrupted: no verdict */
	changed = tp_health_report(u->app->health, u->health_idx,
	    ok ? TP_CHECK_OK : TP_CHECK_FAIL, reason);
	now_state = health_outcome(u, &st);
	idx = health_state_index(now_state);
	tp_counter_child_add(ok ? u->m.checks_ok : u->m.checks_fail, 1);

	pthread_mutex_lock(&u->lock);
	u->last_check_unix_ms = unix_ms();
	if (!ok) {
		snprintf(u->last_error, sizeof(u->last_error), "%s", reason);
		u->last_error_unix_ms = u->last_check_unix_ms;
	}
	if (!ok && now_state == TP_CHECK_FAIL)
		relay_circuit_health(&u->circuit, false, relay_mono_ms());
	else if (changed && idx == 0)
		relay_circuit_health(&u->circuit, true, relay_mono_ms());
	circuit_changed(u);
	for (int i = 0; i < 3; i++)
		tp_gauge_child_set(u->m.health[i], i == idx ? 1.0 : 0.0);
	pthread_mutex_unlock(&u->lock);

	if (changed)
		TP_LOG(idx == 0 ? TP_LOG_INFO : TP_LOG_WARNING,
		    "upstream.health_changed",
		    TP_LSTR("state", health_state_names[idx]),
		    TP_LSTR("url", u->health_url_shown),
		    TP_LSTR("reason", reason),
		    TP_LINT("consecutive_failures", st.consecutive_failures));
}

static void *
health_main(void *arg)
{
	struct relay_upstream *u = arg;
	long interval_ms = (long)u->s->upstream_health_interval_ms;

	for (;;) {
		struct timespec until;

		health_check_once(u);
		pthread_mutex_lock(&u->lock);
		u->first_done = true;
		pthread_cond_broadcast(&u->cond);
		until = relay_mono_timespec(relay_mono_ms() + interval_ms);
		while (!atomic_load(&u->stop) &&
		    pthread_cond_timedwait(&u->cond, &u->lock, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&u->lock);
		if (atomic_load(&u->stop))
			break;
	}
	return NULL;
}

int
relay_upstream_start(struct relay_upstream *u)
{
	if (pthread_create(&u->thread, NULL, health_main, u) != 0)
		return -1;
	u->thread_started = true;
	return 0;
}

bool
relay_upstream_wait_first_check(struct relay_upstream *u, long timeout_ms)
{
	struct timespec until;
	bool done;

	until = relay_mono_timespec(relay_mono_ms() + timeout_ms);
	pthread_mutex_lock(&u->lock);
	while (!u->first_done && u->thread_started &&
	    pthread_cond_timedwait(&u->cond, &u->lock, &until) != ETIMEDOUT)
		;
	done = u->first_done;
	pthread_mutex_unlock(&u->lock);
	return done;
}

void
relay_upstream_get_status(struct relay_upstream *u,
    struct relay_upstream_status *out)
{
	struct tp_health_check_status st;
	enum tp_check_outcome o = health_outcome(u, &st);

	memset(out, 0, sizeof(*out));
	out->state = health_state_names[health_state_index(o)];
	out->since_unix_ms = st.since_unix_ms;
	out->consecutive_failures = st.consecutive_failures;
	snprintf(out->health_url, sizeof(out->health_url), "%s",
	    u->health_url_shown);
	pthread_mutex_lock(&u->lock);
	out->circuit = u->circuit.enabled ?
	    relay_circuit_state_name(u->circuit.state) : "disabled";
	out->last_check_unix_ms = u->last_check_unix_ms;
	out->last_error_unix_ms = u->last_error_unix_ms;
	snprintf(out->last_error, sizeof(out->last_error), "%s", u->last_error);
	pthread_mutex_unlock(&u->lock);
}

/* ---- set-up ------------------------------------------------------------ */

static double
open_conns_value(void *arg)
{
	struct relay_upstream *u = arg;

	return (double)atomic_load(&u->open_conns);
}

static double
in_flight_value(void *arg)
{
	struct relay_upstream *u = arg;

	return (double)atomic_load(&u->in_flight);
}

static const double latency_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0 };

static struct tp_counter_child *
plain_counter(struct tp_metrics_registry *reg, const char *name,
    const char *help)
{
	struct tp_counter *c = tp_counter_new(reg, name, help, 0, NULL);

	return c ? tp_counter_child(c, NULL) : NULL;
}

static int
init_metrics(struct relay_upstream *u)
{
	static const char *const route_status[] = { "route", "status" };
	static const char *const route[] = { "route" };
	static const char *const kind[] = { "kind" };
	static const char *const state[] = { "state" };
	static const char *const result[] = { "result" };
	static const char *const circuit_names[3] = { "closed", "open",
	    "half_open" };
	struct tp_metrics_registry *reg = u->app->metrics;
	struct upstream_metrics *m = &u->m;
	struct tp_gauge *cg, *hg;
	struct tp_counter *checks;
	size_t nb = sizeof(latency_buckets) / sizeof(latency_buckets[0]);

	m->requests = tp_counter_new(reg, "tokenplace_relay_upstream_requests_total",
	    "Forwarded requests by route and answered status", 2, route_status);
	m->errors = tp_counter_new(reg, "tokenplace_relay_upstream_errors_total",
	    "Forwarded requests that failed, by kind", 1, kind);
	m->duration = tp_histogram_new(reg,
	    "tokenplace_relay_upstream_duration_seconds",
	    "Time from forwarding a request to the end of the upstream's answer",
	    1, route, nb, latency_buckets);
	m->first_byte = tp_histogram_new(reg,
	    "tokenplace_relay_upstream_first_byte_seconds",
	    "Time from forwarding a request to the upstream's status line",
	    1, route, nb, latency_buckets);
	m->bytes_sent = plain_counter(reg,
	    "tokenplace_relay_upstream_request_bytes_total",
	    "Request body bytes sent to the upstream");
	m->bytes_received = plain_counter(reg,
	    "tokenplace_relay_upstream_response_bytes_total",
	    "Response body bytes received from the upstream");
	m->conns_opened = plain_counter(reg,
	    "tokenplace_relay_upstream_connections_opened_total",
	    "TCP connections opened to the upstream (kept alive and reused)");
	m->circuit_opens = plain_counter(reg,
	    "tokenplace_relay_upstream_circuit_opens_total",
	    "Times the circuit breaker opened");
	cg = tp_gauge_new(reg, "tokenplace_relay_upstream_circuit_state",
	    "Circuit breaker state (1 for the current state)", 1, state);
	hg = tp_gauge_new(reg, "tokenplace_relay_upstream_health_state",
	    "Upstream health from the background check (1 for the current state)",
	    1, state);
	checks = tp_counter_new(reg, "tokenplace_relay_upstream_health_checks_total",
	    "Upstream health checks by result", 1, result);
	if (m->requests == NULL || m->errors == NULL || m->duration == NULL ||
	    m->first_byte == NULL || m->bytes_sent == NULL ||
	    m->bytes_received == NULL || m->conns_opened == NULL ||
	    m->circuit_opens == NULL || cg == NULL || hg == NULL ||
	    checks == NULL)
		return -1;
	for (int i = 0; i < 3; i++) {
		const char *cv[] = { circuit_names[i] };
		const char *hv[] = { health_state_names[i] };

		m->circuit[i] = tp_gauge_child(cg, cv);
		m->health[i] = tp_gauge_child(hg, hv);
		tp_gauge_child_set(m->circuit[i], i == 0 ? 1.0 : 0.0);
		tp_gauge_child_set(m->health[i], i == 2 ? 1.0 : 0.0);
	}
	{
		const char *ok[] = { "ok" }, *fail[] = { "fail" };

		m->checks_ok = tp_counter_child(checks, ok);
		m->checks_fail = tp_counter_child(checks, fail);
	}
	/* Routes are a fixed set per prefix, error kinds a fixed list. */
	tp_counter_set_max_children(m->requests, 1024);
	if (tp_gauge_fn_new(reg, "tokenplace_relay_upstream_open_connections",
	    "TCP connections to the upstream open now", open_conns_value, u) != 0 ||
	    tp_gauge_fn_new(reg, "tokenplace_relay_upstream_in_flight_requests",
	    "Forwarded requests in progress", in_flight_value, u) != 0)
		return -1;
	return 0;
}

struct relay_upstream *
relay_upstream_new(struct relay_app *app, char *err, size_t errlen)
{
	const struct relay_settings *s = app->settings;
	struct relay_upstream *u;
	pthread_condattr_t ca;

	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->app = app;
	u->s = s;
	u->health_idx = -1;
	pthread_mutex_init(&u->pool_lock, NULL);
	pthread_mutex_init(&u->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->cond, &ca);
	pthread_condattr_destroy(&ca);

	if (relay_fwd_prefixes_parse(&u->prefixes, s->forward_prefixes, err,
	    errlen) != 0)
		goto fail;
	/* RELAY_FORWARD=off: no path routes to the upstream (checks still run). */
	if (!s->forward)
		memset(&u->prefixes, 0, sizeof(u->prefixes));
	snprintf(u->base, sizeof(u->base), "%s", app->upstream_url);
	snprintf(u->health_url, sizeof(u->health_url), "%s%s", u->base,
	    s->upstream_health_path);
	(void)tp_config_redact_url(u->base, u->base_shown, sizeof(u->base_shown));
	(void)tp_config_redact_url(u->health_url, u->health_url_shown,
	    sizeof(u->health_url_shown));
	if (s->upstream_host_header != NULL && s->upstream_host_header[0] != '\0')
		snprintf(u->host_line, sizeof(u->host_line), "Host: %s",
		    s->upstream_host_header);
	relay_circuit_init(&u->circuit, s->upstream_circuit,
	    (unsigned)s->upstream_circuit_failures, s->upstream_circuit_open_ms);
	atomic_store(&u->circuit_quiet, true);
	if (s->libcurl != NULL && s->libcurl[0] != '\0')
		libcurl_name = s->libcurl;
	if (strncmp(u->base, "https://", 8) != 0 && relay_probe_url_parse(
	    u->health_url, &u->probe_url, err, errlen) != 0)
		goto fail;
	if (init_metrics(u) != 0) {
		snprintf(err, errlen, "cannot register upstream metrics");
		goto fail;
	}
	u->health_idx = tp_health_add_check(app->health, "upstream",
	    s->require_upstream_health, (unsigned)s->upstream_health_failures,
	    (unsigned)s->upstream_health_successes, NULL, NULL);
	if (u->health_idx < 0) {
		snprintf(err, errlen, "cannot register the upstream health check");
		goto fail;
	}
	relay_fwd_set_prefixes(&u->prefixes);
	return u;
fail:
	relay_upstream_free(u);
	return NULL;
}

void
relay_upstream_free(struct relay_upstream *u)
{
	struct fwd_handle *h;

	if (u == NULL)
		return;
	relay_fwd_set_prefixes(NULL);
	if (u->thread_started) {
		pthread_mutex_lock(&u->lock);
		atomic_store(&u->stop, true);
		pthread_cond_broadcast(&u->cond);
		pthread_mutex_unlock(&u->lock);
		if (u->hmulti != NULL)
			(void)libcurl.multi_wakeup(u->hmulti);
		pthread_join(u->thread, NULL);
	}
	while ((h = u->pool) != NULL) {
		u->pool = h->next;
		handle_free(h);
	}
	if (u->heasy != NULL)
		libcurl.easy_cleanup(u->heasy);
	if (u->hmulti != NULL)
		libcurl.multi_cleanup(u->hmulti);
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->pool_lock);
	free(u);
}
