/*
 * http_probe.c -- one HTTP/1.1 GET over a plain socket, for health checks.
 *
 * getaddrinfo() cannot be interrupted and may block for many seconds when
 * DNS is unreachable, so a name (not a numeric address) is looked up on a
 * short-lived detached thread. The prober waits for it on a condition
 * variable until the deadline or the stop flag; the two share a refcounted
 * struct, so whichever lets go last frees it, and an abandoned lookup
 * cleans up after itself whenever getaddrinfo() returns.
 */
#include "upstream/http_probe.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "tokenplace/url.h"

/* How often a wait wakes to look at the stop flag. */
#define PROBE_SLICE_MS	200
/* "[" + numeric address + "]:" + port, as getnameinfo() writes it. */
#define PROBE_ADDR_MAX	(INET6_ADDRSTRLEN + NI_MAXSERV + 4)

static void
set_reason(char *reason, size_t len, const char *fmt, ...)
    __attribute__((__format__(printf, 3, 4)));

static void
set_reason(char *reason, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (reason == NULL || len == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

static bool
stopped(const _Atomic bool *stop)
{
	return stop != NULL && atomic_load(stop);
}

/* strerror() is not thread safe; this is glibc's strerror_r(). */
static const char *
errstr(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len);
}

/* ---- URL ----------------------------------------------------------------- */

static bool
host_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int
relay_probe_url_parse(const char *url, struct relay_probe_url *out,
    char *err, size_t errlen)
{
	struct tp_url u;
	const char *auth_end, *host, *host_end, *port = NULL;
	const char *path, *path_end, *p;
	size_t hostlen, pathlen;
	unsigned long portnum = 80;
	bool ipv6 = false, explicit_port = false;
	int rc;

	if (url == NULL || out == NULL) {
		set_reason(err, errlen, "no URL");
		return -1;
	}
	/* The scheme is case-insensitive (RFC 3986), as for every URL. */
	rc = tp_url_split(url, &u);
	if (rc != TP_URL_ENOSCHEME && tp_url_scheme_is(&u, "https")) {
		set_reason(err, errlen,
		    "https:// needs TLS, which the plain probe does not do");
		return -1;
	}
	if (rc == TP_URL_ENOSCHEME || !tp_url_scheme_is(&u, "http")) {
		set_reason(err, errlen, "not an http:// URL");
		return -1;
	}
	if (u.userinfo != NULL) {
		set_reason(err, errlen, "user info in the URL is not supported");
		return -1;
	}
	if (rc == TP_URL_EBRACKET) {
		set_reason(err, errlen, "unterminated IPv6 literal");
		return -1;
	}
	if (rc == TP_URL_EJUNK) {
		set_reason(err, errlen, "garbage after the IPv6 literal");
		return -1;
	}
	host = u.host;
	host_end = u.host + u.host_len;
	ipv6 = u.host_ipv6;
	auth_end = u.rest;
	if (u.port != NULL)
		port = u.port;
	hostlen = (size_t)(host_end - host);
	if (hostlen == 0) {
		set_reason(err, errlen, "no host in the URL");
		return -1;
	}
	if (hostlen >= sizeof(out->host)) {
		set_reason(err, errlen, "host name longer than %zu bytes",
		    sizeof(out->host) - 1);
		return -1;
	}
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';
	if (ipv6) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, out->host, &a6) != 1) {
			set_reason(err, errlen, "bad IPv6 literal");
			return -1;
		}
	} else {
		for (p = host; p < host_end; p++) {
			if (!host_char_ok((unsigned char)*p)) {
				set_reason(err, errlen,
				    "bad character in the host name");
				return -1;
			}
		}
	}

	/* An empty port ("http://h:/") means the default, as RFC 3986 says. */
	if (port != NULL && port < auth_end) {
		if (auth_end - port > 5) {
			set_reason(err, errlen, "bad port");
			return -1;
		}
		portnum = 0;
		for (p = port; p < auth_end; p++) {
			if (*p < '0' || *p > '9') {
				set_reason(err, errlen, "bad port");
				return -1;
			}
			portnum = portnum * 10 + (unsigned long)(*p - '0');
		}
		if (portnum == 0 || portnum > 65535) {
			set_reason(err, errlen, "port out of range");
			return -1;
		}
		explicit_port = true;
	}
	(void)snprintf(out->port, sizeof(out->port), "%lu", portnum);

	/* The fragment is the client's business; it never goes on the wire. */
	path = auth_end;
	path_end = path + strcspn(path, "#");
	pathlen = (size_t)(path_end - path);
	for (p = path; p < path_end; p++) {
		unsigned char c = (unsigned char)*p;

		/* They would break (or smuggle into) the request line. */
		if (c <= 0x20 || c == 0x7f) {
			set_reason(err, errlen,
			    "space or control character in the URL path");
			return -1;
		}
	}
	if (pathlen + 2 > sizeof(out->target)) {
		set_reason(err, errlen, "URL path longer than %zu bytes",
		    sizeof(out->target) - 2);
		return -1;
	}
	if (pathlen == 0 || *path == '?') {
		out->target[0] = '/';
		memcpy(out->target + 1, path, pathlen);
		out->target[pathlen + 1] = '\0';
	} else {
		memcpy(out->target, path, pathlen);
		out->target[pathlen] = '\0';
	}

	(void)snprintf(out->host_header, sizeof(out->host_header), "%s%s%s",
	    ipv6 ? "[" : "", out->host, ipv6 ? "]" : "");
	if (explicit_port && portnum != 80) {
		size_t n = strlen(out->host_header);

		(void)snprintf(out->host_header + n, sizeof(out->host_header) - n,
		    ":%lu", portnum);
	}
	return 0;
}

/* ---- name lookup ----------------------------------------------------------- */

/* Lookup threads alive, abandoned ones included (see max_lookups). */
static _Atomic unsigned lookups_running;

struct lookup {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	int		 refs;		/* the thread's and the waiter's */
	bool		 done;
	int		 rc;		/* getaddrinfo()'s */
	int		 sys_errno;	/* errno, for EAI_SYSTEM */
	struct addrinfo	*res;		/* owned here until the waiter takes it */
	char		 host[RELAY_PROBE_HOST_MAX];
	char		 port[RELAY_PROBE_PORT_MAX];
};

static void
lookup_release(struct lookup *l)
{
	bool last;

	pthread_mutex_lock(&l->lock);
	last = --l->refs == 0;
	pthread_mutex_unlock(&l->lock);
	if (!last)
		return;
	if (l->res != NULL)
		freeaddrinfo(l->res);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static void *
lookup_main(void *arg)
{
	struct lookup *l = arg;
	struct addrinfo hints, *res = NULL;
	int rc, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	errno = 0;
	rc = getaddrinfo(l->host, l->port, &hints, &res);
	e = errno;

	pthread_mutex_lock(&l->lock);
	l->rc = rc;
	l->sys_errno = e;
	l->res = rc == 0 ? res : NULL;
	l->done = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	lookup_release(l);
	atomic_fetch_sub(&lookups_running, 1);
	return NULL;
}

/* Starts l's thread with every signal blocked, so it never takes one. */
static int
lookup_start(struct lookup *l)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int rc;

	if (pthread_attr_init(&attr) != 0)
		return -1;
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&th, &attr, lookup_main, l);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

/*
 * Resolves u's host and port into *out (the caller frees it with
 * freeaddrinfo()). Numeric addresses are converted in place; names go to
 * a lookup thread that is abandoned at the deadline or on stop.
 */
static enum relay_probe_result
resolve(const struct relay_probe_url *u, const struct relay_probe_opts *o,
    int64_t deadline, struct addrinfo **out, char *reason, size_t len)
{
	struct addrinfo hints;
	struct lookup *l;
	pthread_condattr_t ca;
	char ebuf[128];
	bool done;
	unsigned max;
	int rc, e;

	*out = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(u->host, u->port, &hints, out);
	if (rc == 0)
		return RELAY_PROBE_OK;
	*out = NULL;
	if (rc != EAI_NONAME) {
		set_reason(reason, len, "%s does not resolve: %s", u->host,
		    gai_strerror(rc));
		return RELAY_PROBE_RESOLVE;
	}

	max = o->max_lookups > 0 ? o->max_lookups : RELAY_PROBE_LOOKUPS_DEFAULT;
	if (atomic_fetch_add(&lookups_running, 1) >= max) {
		atomic_fetch_sub(&lookups_running, 1);
		set_reason(reason, len, "%s: %u earlier name lookups still "
		    "running (DNS does not answer)", u->host, max);
		return RELAY_PROBE_LOOKUPS_BUSY;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		atomic_fetch_sub(&lookups_running, 1);
		set_reason(reason, len, "out of memory");
		return RELAY_PROBE_INTERNAL;
	}
	if (pthread_condattr_init(&ca) != 0) {
		free(l);
		atomic_fetch_sub(&lookups_running, 1);
		set_reason(reason, len, "cannot set up the name lookup");
		return RELAY_PROBE_INTERNAL;
	}
	(void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&l->cond, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		free(l);
		atomic_fetch_sub(&lookups_running, 1);
		set_reason(reason, len, "cannot set up the name lookup");
		return RELAY_PROBE_INTERNAL;
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&l->lock, NULL);
	l->refs = 2;
	memcpy(l->host, u->host, sizeof(l->host));
	memcpy(l->port, u->port, sizeof(l->port));
	if (lookup_start(l) != 0) {
		l->refs = 1;
		lookup_release(l);
		atomic_fetch_sub(&lookups_running, 1);
		set_reason(reason, len, "cannot start the name lookup thread");
		return RELAY_PROBE_INTERNAL;
	}

	pthread_mutex_lock(&l->lock);
	while (!l->done && !stopped(o->stop)) {
		int64_t now = relay_mono_ms(), wake;
		struct timespec ts;

		if (now >= deadline)
			break;
		wake = deadline - now > PROBE_SLICE_MS ? now + PROBE_SLICE_MS :
		    deadline;
		ts = relay_mono_timespec(wake);
		(void)pthread_cond_timedwait(&l->cond, &l->lock, &ts);
	}
	done = l->done;
	rc = l->rc;
	e = l->sys_errno;
	if (done) {
		*out = l->res;
		l->res = NULL;
	}
	pthread_mutex_unlock(&l->lock);
	lookup_release(l);

	if (!done) {
		if (stopped(o->stop)) {
			set_reason(reason, len, "cancelled");
			return RELAY_PROBE_CANCELLED;
		}
		set_reason(reason, len, "%s did not resolve within %ld ms",
		    u->host, o->timeout_ms);
		return RELAY_PROBE_TIMEOUT;
	}
	if (rc == 0 && *out != NULL)
		return RELAY_PROBE_OK;
	if (*out != NULL) {
		freeaddrinfo(*out);
		*out = NULL;
	}
	if (rc == EAI_NONAME
#ifdef EAI_NODATA
	    || rc == EAI_NODATA
#endif
	    || rc == 0)
		set_reason(reason, len, "%s does not resolve", u->host);
	else if (rc == EAI_SYSTEM && e != 0)
		set_reason(reason, len, "%s does not resolve: %s", u->host,
		    errstr(e, ebuf, sizeof(ebuf)));
	else
		set_reason(reason, len, "%s does not resolve: %s", u->host,
		    gai_strerror(rc));
	return RELAY_PROBE_RESOLVE;
}

/* ---- socket ------------------------------------------------------------------ */

enum wait_result { WAIT_READY, WAIT_TIMEOUT, WAIT_CANCELLED, WAIT_ERROR };

/* Polls fd for events until deadline, waking every slice to check stop. */
static enum wait_result
wait_fd(int fd, short events, int64_t deadline, const _Atomic bool *stop)
{
	struct pollfd pfd;
	int64_t now, slice;
	int rc;

	for (;;) {
		if (stopped(stop))
			return WAIT_CANCELLED;
		now = relay_mono_ms();
		if (now >= deadline)
			return WAIT_TIMEOUT;
		slice = deadline - now;
		if (slice > PROBE_SLICE_MS)
			slice = PROBE_SLICE_MS;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		rc = poll(&pfd, 1, (int)slice);
		if (rc > 0)
			return WAIT_READY;
		if (rc < 0 && errno != EINTR)
			return WAIT_ERROR;
	}
}

static void
format_addr(const struct sockaddr *sa, socklen_t salen, char *buf,
    size_t len)
{
	char host[INET6_ADDRSTRLEN], serv[NI_MAXSERV];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		(void)snprintf(buf, len, "?");
		return;
	}
	if (sa->sa_family == AF_INET6)
		(void)snprintf(buf, len, "[%s]:%s", host, serv);
	else
		(void)snprintf(buf, len, "%s:%s", host, serv);
}

/*
 * Connects to the first address in res that accepts, trying each in turn
 * for at most the connect timeout. On RELAY_PROBE_OK *fdp is the connected
 * (non-blocking) socket and name its address; otherwise no fd is left open
 * and reason tells about the last address tried.
 */
static enum relay_probe_result
connect_any(const struct addrinfo *res, const struct relay_probe_opts *o,
    int64_t deadline, int *fdp, char *name, size_t namelen, char *reason,
    size_t len)
{
	const struct addrinfo *ai;
	enum relay_probe_result last = RELAY_PROBE_CONNECT;
	char ebuf[128];
	int one = 1;

	*fdp = -1;
	set_reason(reason, len, "no address to connect to");
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int64_t addr_deadline = deadline, now = relay_mono_ms();
		socklen_t elen;
		int fd, e = 0;

		if (stopped(o->stop)) {
			set_reason(reason, len, "cancelled");
			return RELAY_PROBE_CANCELLED;
		}
		format_addr(ai->ai_addr, ai->ai_addrlen, name, namelen);
		if (now >= deadline) {
			set_reason(reason, len, "connect to %s: no answer "
			    "within %ld ms", name, o->timeout_ms);
			return RELAY_PROBE_TIMEOUT;
		}
		if (o->connect_timeout_ms > 0 &&
		    o->connect_timeout_ms < deadline - now)
			addr_deadline = now + o->connect_timeout_ms;

		fd = socket(ai->ai_family,
		    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			set_reason(reason, len, "socket for %s: %s", name,
			    errstr(e, ebuf, sizeof(ebuf)));
			last = RELAY_PROBE_CONNECT;
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			*fdp = fd;
			return RELAY_PROBE_OK;
		}
		e = errno;
		/* A non-blocking connect interrupted by a signal goes on. */
		if (e == EINPROGRESS || e == EINTR) {
			switch (wait_fd(fd, POLLOUT, addr_deadline, o->stop)) {
			case WAIT_READY:
				elen = sizeof(e);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
				    &elen) != 0)
					e = errno;
				if (e == 0) {
					*fdp = fd;
					return RELAY_PROBE_OK;
				}
				break;
			case WAIT_TIMEOUT:
				(void)close(fd);
				if (addr_deadline < deadline) {
					set_reason(reason, len, "connect to %s: "
					    "timed out after %ld ms", name,
					    o->connect_timeout_ms);
					last = RELAY_PROBE_CONNECT;
					continue;
				}
				set_reason(reason, len, "connect to %s: no "
				    "answer within %ld ms", name, o->timeout_ms);
				return RELAY_PROBE_TIMEOUT;
			case WAIT_CANCELLED:
				(void)close(fd);
				set_reason(reason, len, "cancelled");
				return RELAY_PROBE_CANCELLED;
			case WAIT_ERROR:
				e = errno;
				break;
			}
		}
		(void)close(fd);
		set_reason(reason, len, "connect to %s: %s", name,
		    errstr(e, ebuf, sizeof(ebuf)));
		last = RELAY_PROBE_CONNECT;
	}
	return last;
}

/* ---- HTTP -------------------------------------------------------------------- */

/*
 * Looks at the n bytes of an answer in buf. Returns 1 when the status
 * line and the whole header block are in (*status set, *end just past the
 * blank line), 0 when more bytes are needed (*status set once the status
 * line is in), -1 when the status line is malformed.
 */
static int
parse_head(const char *buf, size_t n, int *status, size_t *end)
{
	static const char proto[] = "HTTP/1.";
	const char *nl, *line;
	size_t linelen, i, pos;

	*status = 0;
	if (memcmp(buf, proto, n < 7 ? n : 7) != 0)
		return -1;
	nl = memchr(buf, '\n', n);
	if (nl == NULL)
		return 0;
	line = buf;
	linelen = (size_t)(nl - buf);
	if (linelen > 0 && line[linelen - 1] == '\r')
		linelen--;
	/* "HTTP/1.x NNN", then a space and a reason phrase, or nothing. */
	if (linelen < 12 || line[7] < '0' || line[7] > '9' || line[8] != ' ' ||
	    line[9] < '1' || line[9] > '5' || line[10] < '0' ||
	    line[10] > '9' || line[11] < '0' || line[11] > '9' ||
	    (linelen > 12 && line[12] != ' '))
		return -1;
	for (i = 12; i < linelen; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	*status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
	    (line[11] - '0');

	/* The header block ends at the first empty line ("\r\n" or "\n"). */
	pos = (size_t)(nl - buf) + 1;
	while (pos < n) {
		const char *next = memchr(buf + pos, '\n', n - pos);

		if (next == NULL)
			return 0;
		if (next == buf + pos || (next == buf + pos + 1 &&
		    buf[pos] == '\r')) {
			*end = (size_t)(next - buf) + 1;
			return 1;
		}
		pos = (size_t)(next - buf) + 1;
	}
	return 0;
}

/* Header values must not carry line breaks into the request. */
static bool
header_value_ok(const char *v)
{
	const unsigned char *p;

	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	}
	return true;
}

static enum relay_probe_result
send_all(int fd, const char *buf, size_t len, const char *name,
    const struct relay_probe_opts *o, int64_t deadline, char *reason,
    size_t rlen)
{
	char ebuf[128];
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			int e = errno;

			set_reason(reason, rlen, "send to %s: %s", name,
			    errstr(e, ebuf, sizeof(ebuf)));
			return RELAY_PROBE_IO;
		}
		switch (wait_fd(fd, POLLOUT, deadline, o->stop)) {
		case WAIT_READY:
			break;
		case WAIT_TIMEOUT:
			set_reason(reason, rlen, "no answer within %ld ms",
			    o->timeout_ms);
			return RELAY_PROBE_TIMEOUT;
		case WAIT_CANCELLED:
			set_reason(reason, rlen, "cancelled");
			return RELAY_PROBE_CANCELLED;
		case WAIT_ERROR: {
			int e = errno;

			set_reason(reason, rlen, "poll: %s",
			    errstr(e, ebuf, sizeof(ebuf)));
			return RELAY_PROBE_INTERNAL;
		}
		}
	}
	return RELAY_PROBE_OK;
}

/*
 * Reads until the final status line and its header block are in, skipping
 * interim 1xx answers, with at most max bytes read in all.
 */
static enum relay_probe_result
read_head(int fd, const char *name, const struct relay_probe_opts *o,
    size_t max, int64_t deadline, int *status, char *reason, size_t rlen)
{
	enum relay_probe_result r = RELAY_PROBE_INTERNAL;
	char ebuf[128];
	char *buf;
	size_t got = 0, start = 0, end = 0;
	int st = 0;

	buf = malloc(max);
	if (buf == NULL) {
		set_reason(reason, rlen, "out of memory");
		return RELAY_PROBE_INTERNAL;
	}
	for (;;) {
		ssize_t n;
		int pr = got > start ? parse_head(buf + start, got - start, &st,
		    &end) : 0;

		*status = st;
		if (pr < 0) {
			set_reason(reason, rlen, "malformed status line");
			r = RELAY_PROBE_BAD_RESPONSE;
			goto out;
		}
		if (pr > 0 && st >= 200) {
			r = RELAY_PROBE_OK;
			goto out;
		}
		if (pr > 0) {
			start += end;
			*status = st = 0;
			continue;
		}
		if (got == max) {
			set_reason(reason, rlen, "answer header larger than "
			    "%zu bytes", max);
			r = RELAY_PROBE_BAD_RESPONSE;
			goto out;
		}
		switch (wait_fd(fd, POLLIN, deadline, o->stop)) {
		case WAIT_READY:
			break;
		case WAIT_TIMEOUT:
			if (st == 0)
				set_reason(reason, rlen, "no answer within %ld "
				    "ms", o->timeout_ms);
			else
				set_reason(reason, rlen, "no complete header "
				    "block within %ld ms", o->timeout_ms);
			r = RELAY_PROBE_TIMEOUT;
			goto out;
		case WAIT_CANCELLED:
			set_reason(reason, rlen, "cancelled");
			r = RELAY_PROBE_CANCELLED;
			goto out;
		case WAIT_ERROR: {
			int e = errno;

			set_reason(reason, rlen, "poll: %s",
			    errstr(e, ebuf, sizeof(ebuf)));
			r = RELAY_PROBE_INTERNAL;
			goto out;
		}
		}
		n = recv(fd, buf + got, max - got, 0);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			if (got == start)
				set_reason(reason, rlen, "%s closed the "
				    "connection without answering", name);
			else if (st == 0)
				set_reason(reason, rlen, "%s closed the "
				    "connection inside the status line", name);
			else
				set_reason(reason, rlen, "%s closed the "
				    "connection inside the header block", name);
			r = RELAY_PROBE_BAD_RESPONSE;
			goto out;
		}
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		{
			int e = errno;

			set_reason(reason, rlen, "read from %s: %s", name,
			    errstr(e, ebuf, sizeof(ebuf)));
			r = RELAY_PROBE_IO;
			goto out;
		}
	}
out:
	free(buf);
	return r;
}

enum relay_probe_result
relay_http_probe(const struct relay_probe_url *u,
    const struct relay_probe_opts *o, int *status, char *reason,
    size_t reasonlen)
{
	enum relay_probe_result r;
	struct addrinfo *res = NULL;
	const char *host_header, *ua;
	char name[PROBE_ADDR_MAX] = "";
	char *req = NULL;
	size_t max, reqcap;
	int64_t deadline;
	int fd = -1, st = 0, n;

	set_reason(reason, reasonlen, "%s", "");
	if (u == NULL || o == NULL || o->timeout_ms <= 0) {
		set_reason(reason, reasonlen, "no URL, no options or no timeout");
		r = RELAY_PROBE_INTERNAL;
		goto out;
	}
	deadline = relay_mono_ms() + o->timeout_ms;
	host_header = o->host_header != NULL ? o->host_header : u->host_header;
	ua = o->user_agent != NULL ? o->user_agent :
	    RELAY_PROBE_USER_AGENT_DEFAULT;
	max = o->max_response_bytes != 0 ? o->max_response_bytes :
	    RELAY_PROBE_RESPONSE_MAX_DEFAULT;
	if (!header_value_ok(host_header) || !header_value_ok(ua)) {
		set_reason(reason, reasonlen,
		    "control character in the Host or User-Agent value");
		r = RELAY_PROBE_INTERNAL;
		goto out;
	}
	if (stopped(o->stop)) {
		set_reason(reason, reasonlen, "cancelled");
		r = RELAY_PROBE_CANCELLED;
		goto out;
	}

	reqcap = strlen(u->target) + strlen(host_header) + strlen(ua) + 128;
	req = malloc(reqcap);
	if (req == NULL) {
		set_reason(reason, reasonlen, "out of memory");
		r = RELAY_PROBE_INTERNAL;
		goto out;
	}
	n = snprintf(req, reqcap, "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: %s\r\nAccept: */*\r\nConnection: close\r\n\r\n",
	    u->target, host_header, ua);
	if (n < 0 || (size_t)n >= reqcap) {
		set_reason(reason, reasonlen, "cannot build the request");
		r = RELAY_PROBE_INTERNAL;
		goto out;
	}

	r = resolve(u, o, deadline, &res, reason, reasonlen);
	if (r != RELAY_PROBE_OK)
		goto out;
	r = connect_any(res, o, deadline, &fd, name, sizeof(name), reason,
	    reasonlen);
	if (r != RELAY_PROBE_OK)
		goto out;
	r = send_all(fd, req, (size_t)n, name, o, deadline, reason, reasonlen);
	if (r != RELAY_PROBE_OK)
		goto out;
	r = read_head(fd, name, o, max, deadline, &st, reason, reasonlen);
	if (r != RELAY_PROBE_OK)
		goto out;
	if (st < 200 || st > 299) {
		set_reason(reason, reasonlen, "answered %d", st);
		r = RELAY_PROBE_STATUS;
		goto out;
	}
	set_reason(reason, reasonlen, "%s", "");
out:
	if (fd >= 0)
		(void)close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	free(req);
	if (status != NULL)
		*status = st;
	return r;
}

const char *
relay_probe_result_name(enum relay_probe_result r)
{
	switch (r) {
	case RELAY_PROBE_OK:
		return "ok";
	case RELAY_PROBE_STATUS:
		return "status";
	case RELAY_PROBE_RESOLVE:
		return "resolve";
	case RELAY_PROBE_CONNECT:
		return "connect";
	case RELAY_PROBE_TIMEOUT:
		return "timeout";
	case RELAY_PROBE_BAD_RESPONSE:
		return "bad_response";
	case RELAY_PROBE_IO:
		return "io";
	case RELAY_PROBE_CANCELLED:
		return "cancelled";
	case RELAY_PROBE_LOOKUPS_BUSY:
		return "lookups_busy";
	case RELAY_PROBE_INTERNAL:
		return "internal";
	}
	return "unknown";
}
