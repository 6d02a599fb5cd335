/*
 * forward.c -- forwarding one request to the GPU host with libcurl: the
 * handle pool, the request headers, libcurl's callbacks, the deadlines,
 * the classification of failures and their JSON answers.
 *
 * Each forwarded request borrows a (multi, easy) handle pair from a pool:
 * the multi handle's connection cache keeps upstream connections alive for
 * the next request, and driving the transfer with multi_poll() lets this
 * thread enforce first-byte, idle and total deadlines to the millisecond
 * and notice the client leaving while the upstream is silent. Response
 * bytes are written to the client from libcurl's write callback as they
 * arrive.
 *
 * Body bytes are gathered while libcurl has more at hand and written out
 * before the transfer waits for the upstream again, so a small answer
 * leaves in one write with a Content-Length and a streamed one (SSE)
 * reaches the client piece by piece as it arrives. A response is
 * committed (status line and headers sent) by its first such write. Until
 * then any failure still gets a clean JSON error; after it, a failure can
 * only cut the connection.
 */
#include "upstream/upstream_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "core/clock.h"
#include "settings.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"
#include "upstream/peer_socket.h"

#define POLL_SLICE_MS		1000	/* longest wait between deadline checks */
#define CLIENT_WATCH_AFTER_S	0.02	/* find the client's socket after this */
#define CONTENT_TYPE_MAX	256
#define ROUTE_LABEL_MAX		96
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
struct relay_fwd_handle {
	CURLM *multi;
	CURL *easy;
	char *pend;			/* PEND_MAX bytes, reused by each transfer */
	char *hdrbuf;			/* upstream_max_header_bytes + 1 */
	char *body;			/* SMALL_BODY_MAX bytes, made at first use */
	bool configured;
	struct relay_fwd_handle *next;
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

/* ---- handle pool ------------------------------------------------------- */

static void handle_free(struct relay_fwd_handle *h);

static struct relay_fwd_handle *
pool_get(struct relay_upstream *u)
{
	struct relay_fwd_handle *h;

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
	h->multi = relay_libcurl.multi_init();
	h->easy = relay_libcurl.easy_init();
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
pool_put(struct relay_upstream *u, struct relay_fwd_handle *h)
{
	pthread_mutex_lock(&u->pool_lock);
	h->next = u->pool;
	u->pool = h;
	pthread_mutex_unlock(&u->pool_lock);
}

static void
handle_free(struct relay_fwd_handle *h)
{
	/* The easy handle goes first: its connections live in the multi. */
	relay_libcurl.easy_cleanup(h->easy);
	relay_libcurl.multi_cleanup(h->multi);
	free(h->pend);
	free(h->hdrbuf);
	free(h->body);
	free(h);
}

void
relay_upstream_pool_free(struct relay_upstream *u)
{
	struct relay_fwd_handle *h;

	while ((h = u->pool) != NULL) {
		u->pool = h->next;
		handle_free(h);
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
	l = relay_libcurl.slist_append(*list, line);
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
	    (list = relay_libcurl.slist_append(list, f->u->host_line)) == NULL) ||
	    (list = relay_libcurl.slist_append(list, "Expect:")) == NULL ||
	    (!has_ct && (list = relay_libcurl.slist_append(list,
	    "Content-Type:")) == NULL) ||
	    (!has_accept && (list = relay_libcurl.slist_append(list,
	    "Accept:")) == NULL))
		goto fail;
	*out = list;
	return 0;
fail:
	relay_libcurl.slist_free_all(list);
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

	(void)relay_libcurl.easy_setopt(e, CURLOPT_URL, url);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HEADERDATA, f);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_WRITEDATA, f);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_PREREQDATA, f);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_READDATA, f);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HTTPGET, 1L);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
	if (strcmp(m, "HEAD") == 0) {
		(void)relay_libcurl.easy_setopt(e, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(m, "GET") == 0 && !f->has_body)
		return;
	if (f->small_body != NULL) {
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POST, 1L);
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)f->body_sent);
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POSTFIELDS,
		    f->small_body);
	} else if (f->has_body) {
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POST, 1L);
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POSTFIELDS,
		    (char *)NULL);
		/* -1: unknown length, sent chunked. */
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(cl > 0 ? cl : -1));
	} else if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	    strcmp(m, "PATCH") == 0) {
		/* An empty body, announced as such. */
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POSTFIELDS, "");
		(void)relay_libcurl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)0);
	}
	if (strcmp(m, "POST") != 0)
		(void)relay_libcurl.easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
}

/*
 * Reads a small announced body whole into the handle's buffer (see
 * SMALL_BODY_MAX). Returns 0, or -1 with f->failure set when the client
 * fails to send what it announced.
 */
static int
read_small_body(struct fwd *f, struct relay_fwd_handle *h)
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
configure_handle(struct relay_upstream *u, struct relay_fwd_handle *h)
{
	CURL *e = h->easy;

	relay_upstream_common_options(u, e, NULL);
	/* The path was checked as received; send it exactly so. */
	(void)relay_libcurl.easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    (long)(u->s->upstream_total_timeout_ms + 1000));
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_READFUNCTION, on_read);
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
drive(struct fwd *f, struct relay_fwd_handle *h)
{
	CURLcode result = CURLE_OK;
	CURLMsg *msg;
	int left;

	if (relay_libcurl.multi_add_handle(h->multi, h->easy) != CURLM_OK) {
		f->failure = RELAY_FWD_INTERNAL;
		return CURLE_FAILED_INIT;
	}
	for (;;) {
		enum relay_fwd_failure kind;
		struct curl_waitfd w;
		unsigned nfd = 0;
		int running = 0;
		double now, deadline, wait_ms;

		if (relay_libcurl.multi_perform(h->multi, &running) != CURLM_OK) {
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
		if (relay_libcurl.multi_poll(h->multi, nfd ? &w : NULL, nfd,
		    (int)wait_ms, NULL) != CURLM_OK) {
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
	while ((msg = relay_libcurl.multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE)
			result = msg->data.result;
	}
	/* Removing an unfinished transfer closes its connection at once. */
	(void)relay_libcurl.multi_remove_handle(h->multi, h->easy);
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
		    rc != CURLE_OK ? relay_libcurl.easy_strerror(rc) : e->message));
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
	relay_upstream_circuit_changed(u);
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
	relay_upstream_circuit_changed(u);
	pthread_mutex_unlock(&u->lock);
}

void
relay_upstream_forward(struct relay_upstream *u, struct relay_request *req,
    struct relay_response *resp)
{
	struct fwd f;
	struct relay_fwd_handle *h = NULL;
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
	if (!relay_libcurl_ready()) {
		snprintf(f.errbuf, sizeof(f.errbuf), "%s",
		    relay_libcurl_error());
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
	(void)relay_libcurl.easy_setopt(h->easy, CURLOPT_POSTFIELDS, (char *)NULL);
	(void)relay_libcurl.easy_setopt(h->easy, CURLOPT_ERRORBUFFER, (char *)NULL);
	(void)relay_libcurl.easy_setopt(h->easy, CURLOPT_HTTPHEADER,
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
		relay_libcurl.slist_free_all(hdrs);
	free(url);
	atomic_fetch_sub(&u->in_flight, 1);
}
