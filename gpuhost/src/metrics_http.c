/*
 * metrics_http.c -- the metrics endpoint's HTTP side: one thread, one
 * connection at a time, GET /metrics only, Connection: close.
 *
 * A scrape endpoint needs no more, and a small blocking server keeps the
 * Windows build free of an HTTP library (civetweb has no mingw package
 * here). Every request is bounded: metrics.max_request bytes of head
 * within metrics.read_timeout, the answer written within
 * metrics.write_timeout; each refusal is counted by reason in
 * tokenplace_gpuhost_metrics_refused_total.
 */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
typedef SOCKET sock_t;
#define BAD_SOCK INVALID_SOCKET
#define sock_close closesocket
#else
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/select.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
typedef int sock_t;
#define BAD_SOCK (-1)
#define sock_close close
#endif
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/metrics.h"
#include "tokenplace/netcheck.h"

#include "metrics.h"
#include "os.h"

#define ACCEPT_WAIT_MS 200	/* how soon a stop request is seen */

struct gpuhost_metrics_server {
	sock_t fd;
	struct gpuhost_metrics *m;
	struct gpuhost_thread *thread;
	atomic_int stop;
	size_t max_request;
	int read_ms, write_ms;
	char *req;		/* max_request + 1 */
	char addr[300];
};

static void
sock_error(char *buf, size_t len)
{
#ifdef _WIN32
	snprintf(buf, len, "socket error %d", WSAGetLastError());
#else
	snprintf(buf, len, "%s", strerror(errno));
#endif
}

static int
set_nonblocking(sock_t fd)
{
#ifdef _WIN32
	u_long on = 1;

	/* mingw's FIONBIO is an unsigned expression the long parameter
	 * cannot hold without a sign change; the bits are what counts. */
	return ioctlsocket(fd, (long)(int)(unsigned)FIONBIO, &on) == 0 ? 0 : -1;
#else
	int fl = fcntl(fd, F_GETFL, 0);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
#endif
}

/* Waits until fd is readable (or writable); 1 ready, 0 timeout, -1 error. */
static int
wait_fd(sock_t fd, bool write, int ms)
{
	fd_set set;
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	FD_ZERO(&set);
	FD_SET(fd, &set);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
#ifdef _WIN32
	return select(0, write ? NULL : &set, write ? &set : NULL, NULL, &tv);
#else
	return select(fd + 1, write ? NULL : &set, write ? &set : NULL, NULL,
	    &tv);
#endif
}

static bool
would_block(void)
{
#ifdef _WIN32
	return WSAGetLastError() == WSAEWOULDBLOCK;
#else
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
#endif
}

/* Writes all of buf before the deadline; 0 or -1. */
static int
send_all(sock_t fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		int chunk = len > 65536 ? 65536 : (int)len;
#ifdef _WIN32
		int n = send(fd, buf, chunk, 0);
#else
		ssize_t n = send(fd, buf, (size_t)chunk, MSG_NOSIGNAL);
#endif
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && would_block() &&
		    wait_fd(fd, true, (int)(deadline - gpuhost_now_ms())) > 0)
			continue;
		return -1;
	}
	return 0;
}

static void
respond(struct gpuhost_metrics_server *s, sock_t fd, int code,
    const char *reason, const char *type, const char *body, size_t blen,
    bool head_only)
{
	char hdr[300];
	int64_t deadline = gpuhost_now_ms() + s->write_ms;
	int n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", code, reason, type, blen);

	if (n < 0 || (size_t)n >= sizeof(hdr))
		return;
	if (send_all(fd, hdr, (size_t)n, deadline) == 0 && !head_only)
		(void)send_all(fd, body, blen, deadline);
}

static void
refuse(struct gpuhost_metrics_server *s, sock_t fd, int code,
    const char *status, const char *reason)
{
	char body[256];
	/* The relay's error shape; reason is one of our fixed words. */
	int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":%d,"
	    "\"message\":\"%s\",\"reason\":\"%s\"}}\n", code, status,
	    reason);

	gpuhost_metrics_refused(s->m, reason);
	respond(s, fd, code, status, "application/json", body,
	    n > 0 ? (size_t)n : 0, false);
}

static void
serve_one(struct gpuhost_metrics_server *s, sock_t fd)
{
	char *req = s->req;
	size_t got = 0;
	int64_t deadline = gpuhost_now_ms() + s->read_ms;
	char *sp1, *sp2, *body;
	size_t len;
	bool head;

	if (set_nonblocking(fd) != 0)
		return;
	req[0] = '\0';
	while (strstr(req, "\r\n\r\n") == NULL && strstr(req, "\n\n") == NULL) {
		int n;

		if (got >= s->max_request) {
			refuse(s, fd, 431, "Request Header Fields Too Large",
			    "too_large");
			return;
		}
#ifdef _WIN32
		n = recv(fd, req + got, (int)(s->max_request - got), 0);
#else
		n = (int)recv(fd, req + got, s->max_request - got, 0);
#endif
		if (n > 0) {
			got += (size_t)n;
			req[got] = '\0';
			if (memchr(req + got - (size_t)n, '\0', (size_t)n) !=
			    NULL) {
				refuse(s, fd, 400, "Bad Request", "bad_request");
				return;
			}
			continue;
		}
		if (n == 0) {
			gpuhost_metrics_refused(s->m, "incomplete");
			return;
		}
		if (!would_block() || wait_fd(fd, false,
		    (int)(deadline - gpuhost_now_ms())) <= 0) {
			gpuhost_metrics_refused(s->m, "timeout");
			return;
		}
	}
	/* Request line: METHOD SP TARGET SP HTTP/x.y */
	sp1 = strchr(req, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		refuse(s, fd, 400, "Bad Request", "bad_request");
		return;
	}
	*sp1 = *sp2 = '\0';
	head = strcmp(req, "HEAD") == 0;
	if (strcmp(req, "GET") != 0 && !head) {
		refuse(s, fd, 405, "Method Not Allowed", "method");
		return;
	}
	if (strcmp(sp1 + 1, "/metrics") != 0 &&
	    strncmp(sp1 + 1, "/metrics?", 9) != 0) {
		refuse(s, fd, 404, "Not Found", "not_found");
		return;
	}
	if ((body = gpuhost_metrics_render(s->m, &len)) == NULL) {
		refuse(s, fd, 503, "Service Unavailable", "out_of_memory");
		return;
	}
	respond(s, fd, 200, "OK", TP_METRICS_CONTENT_TYPE, body, len, head);
	free(body);
}

static void
server_main(void *arg)
{
	struct gpuhost_metrics_server *s = arg;

	while (!atomic_load(&s->stop)) {
		sock_t c;

		if (wait_fd(s->fd, false, ACCEPT_WAIT_MS) <= 0)
			continue;
		c = accept(s->fd, NULL, NULL);
		if (c == BAD_SOCK)
			continue;
		serve_one(s, c);
		sock_close(c);
	}
}

int
gpuhost_metrics_server_start(const struct gpuhost_config *cfg,
    struct gpuhost_metrics *m, struct gpuhost_metrics_server **out,
    char *err, size_t errlen)
{
	struct gpuhost_metrics_server *s = calloc(1, sizeof(*s));
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16], why[200], h[INET6_ADDRSTRLEN];
	unsigned p;
	int on = 1, rc;

	*out = NULL;
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->fd = BAD_SOCK;
	s->m = m;
	atomic_store(&s->stop, 0);
	s->max_request = (size_t)cfg->metrics_max_request;
	s->read_ms = (int)(cfg->metrics_read_timeout * 1000);
	s->write_ms = (int)(cfg->metrics_write_timeout * 1000);
	if ((s->req = malloc(s->max_request + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (tp_netcheck_init() != 0) {
		snprintf(err, errlen, "socket library init failed");
		goto fail;
	}
	if (gpuhost_listen_parse(cfg->metrics_listen, host, sizeof(host),
	    &p) != 0) {
		snprintf(err, errlen, "metrics.listen %s is not ADDRESS:PORT",
		    cfg->metrics_listen);
		goto fail;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0 || ai == NULL) {
		snprintf(err, errlen, "metrics.listen %s: %s is not an IP "
		    "address", cfg->metrics_listen, host);
		goto fail;
	}
	s->fd = socket(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);
	if (s->fd == BAD_SOCK) {
		sock_error(why, sizeof(why));
		snprintf(err, errlen, "metrics socket: %s", why);
		goto fail;
	}
#ifdef _WIN32
	/* Refuse to share the port with another listener. */
	(void)setsockopt(s->fd, SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
	    (const char *)&on, (int)sizeof(on));
#else
	(void)setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &on,
	    (socklen_t)sizeof(on));
#endif
	if (bind(s->fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) != 0 ||
	    listen(s->fd, 16) != 0) {
		sock_error(why, sizeof(why));
		snprintf(err, errlen, "cannot listen on %s for metrics: %s",
		    cfg->metrics_listen, why);
		goto fail;
	}
	if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a6 = (const void *)&ss;

			inet_ntop(AF_INET6, &a6->sin6_addr, h, sizeof(h));
			snprintf(s->addr, sizeof(s->addr), "[%s]:%u", h,
			    (unsigned)ntohs(a6->sin6_port));
		} else {
			const struct sockaddr_in *a4 = (const void *)&ss;

			inet_ntop(AF_INET, &a4->sin_addr, h, sizeof(h));
			snprintf(s->addr, sizeof(s->addr), "%s:%u", h,
			    (unsigned)ntohs(a4->sin_port));
		}
	} else
		snprintf(s->addr, sizeof(s->addr), "%s", cfg->metrics_listen);
	if (gpuhost_thread_start(&s->thread, server_main, s) != 0) {
		snprintf(err, errlen, "cannot start the metrics thread");
		goto fail;
	}
	freeaddrinfo(ai);
	*out = s;
	return 0;
fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	if (s->fd != BAD_SOCK)
		sock_close(s->fd);
	free(s->req);
	free(s);
	return -1;
}

const char *
gpuhost_metrics_server_addr(const struct gpuhost_metrics_server *s)
{
	return s->addr;
}

void
gpuhost_metrics_server_stop(struct gpuhost_metrics_server *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stop, 1);
	gpuhost_thread_join(s->thread);
	sock_close(s->fd);
	free(s->req);
	free(s);
}
