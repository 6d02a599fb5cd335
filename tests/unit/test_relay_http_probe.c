/*
 * relay_http_probe: URL parsing, and the probe against an in-test server
 * thread on 127.0.0.1 (ephemeral port) whose behaviour each test picks.
 *
 * getaddrinfo() is wrapped (-Wl,--wrap=getaddrinfo, see tests/CMakeLists.txt)
 * so a few reserved names behave deterministically: "loopback.test"
 * resolves to 127.0.0.1 on the lookup thread, "slow.test" blocks until the
 * test releases it (the abandoned-lookup path), and "stop.test" raises the
 * probe's stop flag and then blocks (cancellation during the lookup).
 * Every other name goes to the real resolver.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "upstream/http_probe.h"

/* ---- getaddrinfo() wrapper ------------------------------------------------- */

int __real_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res);

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	bool		 release;
	_Atomic bool	*stop;
} gai = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, NULL };

static bool
special_name(const char *node)
{
	return node != NULL && (strcmp(node, "slow.test") == 0 ||
	    strcmp(node, "stop.test") == 0 ||
	    strcmp(node, "loopback.test") == 0);
}

int
__wrap_getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	if (!special_name(node))
		return __real_getaddrinfo(node, service, hints, res);
	/* The probe asks for a numeric host first; a name must fail that
	 * step, as the real one would, so the lookup thread runs. */
	if (hints != NULL && (hints->ai_flags & AI_NUMERICHOST))
		return EAI_NONAME;
	if (strcmp(node, "loopback.test") != 0) {
		pthread_mutex_lock(&gai.lock);
		if (strcmp(node, "stop.test") == 0 && gai.stop != NULL)
			atomic_store(gai.stop, true);
		while (!gai.release)
			pthread_cond_wait(&gai.cond, &gai.lock);
		pthread_mutex_unlock(&gai.lock);
	}
	return __real_getaddrinfo("127.0.0.1", service, hints, res);
}

static void
gai_hold(_Atomic bool *stop)
{
	pthread_mutex_lock(&gai.lock);
	gai.release = false;
	gai.stop = stop;
	pthread_mutex_unlock(&gai.lock);
}

static void
gai_release(void)
{
	pthread_mutex_lock(&gai.lock);
	gai.release = true;
	gai.stop = NULL;
	pthread_cond_broadcast(&gai.cond);
	pthread_mutex_unlock(&gai.lock);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Polls (with a deadline) until the detached lookup threads are gone. A
 * thread just joined may linger in /proc for a moment, hence "at most".
 */
static void
wait_threads(int at_most)
{
	int64_t until = now_ms() + 20000;

	while (thread_count() > at_most) {
		assert_true(now_ms() < until);
		(void)poll(NULL, 0, 10);
	}
}

/* ---- the in-test server ------------------------------------------------- */

enum srv_mode {
	SRV_OK,		/* 200 with a body it never sends: no body wait */
	SRV_503,
	SRV_GARBAGE,	/* not HTTP */
	SRV_SILENT,	/* reads the request, never answers */
	SRV_CLOSE,	/* reads the request, closes */
	SRV_HUGE,	/* a header block of 8 KiB */
	SRV_INTERIM,	/* 100 Continue, then 204 */
	SRV_STOP,	/* reads the request, raises the stop flag */
};

struct srv {
	int		 lfd;
	char		 port[8];
	enum srv_mode	 mode;
	_Atomic bool	*stop;
	pthread_t	 th;
	char		 req[4096];
};

static void
send_str(int fd, const char *s)
{
	size_t off = 0, len = strlen(s);

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/* Waits for the probe to close its end (or reset it). */
static void
drain(int fd)
{
	char buf[256];

	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
	struct timeval tv = { .tv_sec = 20 };
	size_t got = 0;
	int fd;

	/* Bounded so a probe that never connects fails the test, not hangs it. */
	if (poll(&pfd, 1, 20000) != 1)
		return NULL;
	fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < sizeof(s->req) - 1 && strstr(s->req, "\r\n\r\n") == NULL) {
		ssize_t n = recv(fd, s->req + got, sizeof(s->req) - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
		s->req[got] = '\0';
	}
	switch (s->mode) {
	case SRV_OK:
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Content-Length: 1000000\r\n\r\n");
		drain(fd);
		break;
	case SRV_503:
		send_str(fd, "HTTP/1.1 503 Service Unavailable\r\n"
		    "Content-Length: 0\r\n\r\n");
		drain(fd);
		break;
	case SRV_GARBAGE:
		send_str(fd, "SSH-2.0-OpenSSH_9.2p1\r\n");
		drain(fd);
		break;
	case SRV_SILENT:
		drain(fd);
		break;
	case SRV_CLOSE:
		break;
	case SRV_HUGE: {
		int i;

		send_str(fd, "HTTP/1.1 200 OK\r\n");
		for (i = 0; i < 128; i++)
			send_str(fd, "X-Pad: 0123456789012345678901234567890"
			    "1234567890123456789\r\n");
		send_str(fd, "\r\n");
		drain(fd);
		break;
	}
	case SRV_INTERIM:
		send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n"
		    "HTTP/1.1 204 No Content\r\n\r\n");
		drain(fd);
		break;
	case SRV_STOP:
		atomic_store(s->stop, true);
		drain(fd);
		break;
	}
	(void)close(fd);
	return NULL;
}

static void
srv_start(struct srv *s, enum srv_mode mode)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
	snprintf(s->port, sizeof(s->port), "%u", (unsigned)ntohs(sin.sin_port));
}

static void
srv_run(struct srv *s)
{
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_join(struct srv *s)
{
	assert_int_equal(pthread_join(s->th, NULL), 0);
	(void)close(s->lfd);
}

static enum relay_probe_result
probe_url(const char *url, long timeout_ms, size_t max,
    const _Atomic bool *stop, int *status, char *reason, size_t len)
{
	struct relay_probe_url u;
	struct relay_probe_opts o;
	char err[128];

	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), 0);
	memset(&o, 0, sizeof(o));
	o.connect_timeout_ms = 5000;
	o.timeout_ms = timeout_ms;
	o.max_response_bytes = max;
	o.stop = stop;
	return relay_http_probe(&u, &o, status, reason, len);
}

static enum relay_probe_result
probe_srv(struct srv *s, const char *path, long timeout_ms, size_t max,
    const _Atomic bool *stop, int *status, char *reason, size_t len)
{
	char url[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%s%s", s->port, path);
	return probe_url(url, timeout_ms, max, stop, status, reason, len);
}

/* ---- URL parsing ---------------------------------------------------------- */

static void
test_url_default_port_and_path(void **state)
{
	struct relay_probe_url u;
	char err[128];

	(void)state;
	assert_int_equal(relay_probe_url_parse("http://gpu-server/health", &u,
	    err, sizeof(err)), 0);
	assert_string_equal(u.host, "gpu-server");
	assert_string_equal(u.port, "80");
	assert_string_equal(u.target, "/health");
	assert_string_equal(u.host_header, "gpu-server");
}

static void
test_url_explicit_port_path_and_query(void **state)
{
	struct relay_probe_url u;
	char err[128];

	(void)state;
	assert_int_equal(relay_probe_url_parse(
	    "http://10.0.0.5:8000/v1/health?deep=1&x=%20#frag", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.host, "10.0.0.5");
	assert_string_equal(u.port, "8000");
	assert_string_equal(u.target, "/v1/health?deep=1&x=%20");
	assert_string_equal(u.host_header, "10.0.0.5:8000");

	/* Scheme is case-insensitive; an explicit :80 stays out of Host. */
	assert_int_equal(relay_probe_url_parse("HTTP://Gpu.Example:80/a", &u,
	    err, sizeof(err)), 0);
	assert_string_equal(u.host, "Gpu.Example");
	assert_string_equal(u.port, "80");
	assert_string_equal(u.host_header, "Gpu.Example");
}

static void
test_url_missing_path_is_slash(void **state)
{
	struct relay_probe_url u;
	char err[128];

	(void)state;
	assert_int_equal(relay_probe_url_parse("http://gpu", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.target, "/");
	assert_int_equal(relay_probe_url_parse("http://gpu:8000?q=1", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.target, "/?q=1");
	assert_string_equal(u.port, "8000");
	assert_int_equal(relay_probe_url_parse("http://gpu:/", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.port, "80");
	assert_string_equal(u.target, "/");
}

static void
test_url_ipv6_literal(void **state)
{
	struct relay_probe_url u;
	char err[128];

	(void)state;
	assert_int_equal(relay_probe_url_parse("http://[::1]:8080/h", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "8080");
	assert_string_equal(u.target, "/h");
	assert_string_equal(u.host_header, "[::1]:8080");
	assert_int_equal(relay_probe_url_parse("http://[fd00::5]", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.host, "fd00::5");
	assert_string_equal(u.port, "80");
	assert_string_equal(u.host_header, "[fd00::5]");

	assert_int_equal(relay_probe_url_parse("http://[::1/h", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(relay_probe_url_parse("http://[zz::1]/", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(relay_probe_url_parse("http://[::1]x/", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(relay_probe_url_parse("http://[]/", &u, err,
	    sizeof(err)), -1);
}

static void
test_url_https_refused(void **state)
{
	struct relay_probe_url u;
	char err[128] = "";

	(void)state;
	assert_int_equal(relay_probe_url_parse("https://gpu/health", &u, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "https"));
}

static void
test_url_garbage_refused(void **state)
{
	static const char *const bad[] = {
		"", "gpu-server:8000", "ftp://gpu/", "http://", "http:///x",
		"http://a b/", "http://gpu:99999/", "http://gpu:0/",
		"http://gpu:8o/", "http://gpu:123456/", "http://user@gpu/",
		"http://gpu/a b", "http://gpu/h\r\nX-Injected: 1", "http://g%70u/",
		"HTTPS://gpu/", "http://[::1", "http://[::1]x/", "http://[]/",
		/* The userinfo runs to the last '@' before '?' or '#' (the rule
		 * the redaction of URLs masks by): refused, not read as a path. */
		"http://gpu/a@b", "http://u:p/w@gpu/",
	};
	struct relay_probe_url u;
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(relay_probe_url_parse(bad[i], &u, err,
		    sizeof(err)), -1);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(relay_probe_url_parse(NULL, &u, err, sizeof(err)), -1);
}

static void
test_url_overlong_host_and_path_refused(void **state)
{
	struct relay_probe_url u;
	char url[4200], err[128];

	(void)state;
	memcpy(url, "http://", 7);
	memset(url + 7, 'a', 255);
	strcpy(url + 7 + 255, "/");
	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), 0);
	assert_int_equal(strlen(u.host), 255);

	memset(url + 7, 'a', 256);
	strcpy(url + 7 + 256, "/");
	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "host"));

	strcpy(url, "http://gpu/");
	memset(url + 11, 'p', 3000);
	url[11 + 3000] = '\0';
	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), -1);
}

/* ---- the probe ------------------------------------------------------------- */

static void
test_probe_200_sends_a_proper_request(void **state)
{
	struct relay_probe_url u;
	struct relay_probe_opts o;
	struct srv s;
	char url[128], err[128], reason[256], host_line[64];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_OK);
	srv_run(&s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%s/health?x=1", s.port);
	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), 0);
	memset(&o, 0, sizeof(o));
	o.connect_timeout_ms = 5000;
	o.timeout_ms = 20000;
	o.user_agent = "probe-test/1";
	strcpy(reason, "junk");
	assert_int_equal(relay_http_probe(&u, &o, &status, reason,
	    sizeof(reason)), RELAY_PROBE_OK);
	srv_join(&s);
	assert_int_equal(status, 200);
	assert_string_equal(reason, "");

	assert_true(strncmp(s.req, "GET /health?x=1 HTTP/1.1\r\n", 26) == 0);
	snprintf(host_line, sizeof(host_line), "\r\nHost: 127.0.0.1:%s\r\n",
	    s.port);
	assert_non_null(strstr(s.req, host_line));
	assert_non_null(strstr(s.req, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(s.req, "\r\nUser-Agent: probe-test/1\r\n"));
	assert_non_null(strstr(s.req, "\r\nAccept: */*\r\n"));
	assert_non_null(strstr(s.req, "\r\n\r\n"));
}

static void
test_probe_host_header_override(void **state)
{
	struct relay_probe_url u;
	struct relay_probe_opts o;
	struct srv s;
	char url[128], err[128], reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_OK);
	srv_run(&s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%s", s.port);
	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), 0);
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 20000;
	o.host_header = "gpu.internal";
	assert_int_equal(relay_http_probe(&u, &o, &status, reason,
	    sizeof(reason)), RELAY_PROBE_OK);
	srv_join(&s);
	assert_true(strncmp(s.req, "GET / HTTP/1.1\r\n", 16) == 0);
	assert_non_null(strstr(s.req, "\r\nHost: gpu.internal\r\n"));
	assert_non_null(strstr(s.req, "\r\nUser-Agent: "
	    RELAY_PROBE_USER_AGENT_DEFAULT "\r\n"));

	/* A line break in a header value is refused before any I/O. */
	o.host_header = "gpu\r\nX-Injected: 1";
	assert_int_equal(relay_http_probe(&u, &o, &status, reason,
	    sizeof(reason)), RELAY_PROBE_INTERNAL);
}

static void
test_probe_503_is_status(void **state)
{
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_503);
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/health", 20000, 0, NULL, &status,
	    reason, sizeof(reason)), RELAY_PROBE_STATUS);
	srv_join(&s);
	assert_int_equal(status, 503);
	assert_string_equal(reason, "answered 503");
}

static void
test_probe_interim_answer_skipped(void **state)
{
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_INTERIM);
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/", 20000, 0, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_OK);
	srv_join(&s);
	assert_int_equal(status, 204);
}

static void
test_probe_garbage_is_bad_response(void **state)
{
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_GARBAGE);
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/", 20000, 0, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_BAD_RESPONSE);
	srv_join(&s);
	assert_int_equal(status, 0);
	assert_string_equal(reason, "malformed status line");
}

static void
test_probe_silent_server_times_out(void **state)
{
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_SILENT);
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/", 300, 0, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_TIMEOUT);
	srv_join(&s);
	assert_int_equal(status, 0);
	assert_non_null(strstr(reason, "300 ms"));
}

static void
test_probe_close_without_answer(void **state)
{
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_CLOSE);
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/", 20000, 0, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_BAD_RESPONSE);
	srv_join(&s);
	assert_int_equal(status, 0);
	assert_non_null(strstr(reason, "without answering"));
}

static void
test_probe_header_over_limit(void **state)
{
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_HUGE);
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/", 20000, 1024, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_BAD_RESPONSE);
	srv_join(&s);
	assert_non_null(strstr(reason, "1024"));
}

static void
test_probe_connection_refused(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char url[128], reason[256];
	int fd, status = -1;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	(void)close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/",
	    (unsigned)ntohs(sin.sin_port));
	assert_int_equal(probe_url(url, 20000, 0, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_CONNECT);
	assert_int_equal(status, 0);
	assert_non_null(strstr(reason, "connect to 127.0.0.1:"));
	assert_non_null(strstr(reason, "refused"));
}

static void
test_probe_stop_already_set(void **state)
{
	_Atomic bool stop = true;
	char reason[256];
	int status = -1;

	(void)state;
	assert_int_equal(probe_url("http://127.0.0.1:9/", 20000, 0, &stop,
	    &status, reason, sizeof(reason)), RELAY_PROBE_CANCELLED);
	assert_int_equal(status, 0);
}

static void
test_probe_stop_while_waiting_for_answer(void **state)
{
	_Atomic bool stop = false;
	struct srv s;
	char reason[256];
	int status = -1;

	(void)state;
	srv_start(&s, SRV_STOP);
	s.stop = &stop;
	srv_run(&s);
	assert_int_equal(probe_srv(&s, "/", 60000, 0, &stop, &status, reason,
	    sizeof(reason)), RELAY_PROBE_CANCELLED);
	srv_join(&s);
}

static void
test_probe_name_lookup_on_thread(void **state)
{
	struct srv s;
	char url[128], reason[256];
	int status = -1, before = thread_count();

	(void)state;
	srv_start(&s, SRV_OK);
	srv_run(&s);
	snprintf(url, sizeof(url), "http://loopback.test:%s/", s.port);
	assert_int_equal(probe_url(url, 20000, 0, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_OK);
	srv_join(&s);
	assert_int_equal(status, 200);
	assert_non_null(strstr(s.req, "\r\nHost: loopback.test:"));
	wait_threads(before);
}

static void
test_probe_slow_lookup_abandoned(void **state)
{
	char reason[256];
	int status = -1, before = thread_count();

	(void)state;
	gai_hold(NULL);
	assert_int_equal(probe_url("http://slow.test:9/", 300, 0, NULL,
	    &status, reason, sizeof(reason)), RELAY_PROBE_TIMEOUT);
	assert_int_equal(status, 0);
	assert_non_null(strstr(reason, "slow.test"));
	/* The abandoned lookup finishes and frees itself on its own thread. */
	gai_release();
	wait_threads(before);
}

/*
 * A DNS server that never answers must not pile up lookup threads: with
 * max_lookups 2, two abandoned lookups fill the budget and the next probe
 * fails at once without starting a third; once they finish, lookups run
 * again.
 */
static void
test_probe_lookups_capped(void **state)
{
	struct relay_probe_url u;
	struct relay_probe_opts o;
	struct srv s;
	char err[128], reason[256], url[128];
	int status = -1, before = thread_count(), held;

	(void)state;
	assert_int_equal(relay_probe_url_parse("http://slow.test:9/", &u, err,
	    sizeof(err)), 0);
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 100;
	o.max_lookups = 2;
	gai_hold(NULL);
	for (int i = 0; i < 2; i++)
		assert_int_equal(relay_http_probe(&u, &o, &status, reason,
		    sizeof(reason)), RELAY_PROBE_TIMEOUT);
	held = thread_count();
	assert_int_equal(relay_http_probe(&u, &o, &status, reason,
	    sizeof(reason)), RELAY_PROBE_LOOKUPS_BUSY);
	assert_non_null(strstr(reason, "slow.test"));
	/* No third thread (an earlier test's may still be leaving /proc). */
	assert_true(thread_count() <= held);
	assert_string_equal(relay_probe_result_name(RELAY_PROBE_LOOKUPS_BUSY),
	    "lookups_busy");
	gai_release();
	wait_threads(before);

	/* The budget is back once the lookups are over. */
	srv_start(&s, SRV_OK);
	srv_run(&s);
	snprintf(url, sizeof(url), "http://loopback.test:%s/", s.port);
	assert_int_equal(relay_probe_url_parse(url, &u, err, sizeof(err)), 0);
	o.timeout_ms = 20000;
	assert_int_equal(relay_http_probe(&u, &o, &status, reason,
	    sizeof(reason)), RELAY_PROBE_OK);
	srv_join(&s);
	wait_threads(before);
}

static void
test_probe_stop_during_lookup(void **state)
{
	_Atomic bool stop = false;
	char reason[256];
	int status = -1, before = thread_count();

	(void)state;
	gai_hold(&stop);
	assert_int_equal(probe_url("http://stop.test:9/", 60000, 0, &stop,
	    &status, reason, sizeof(reason)), RELAY_PROBE_CANCELLED);
	gai_release();
	wait_threads(before);
}

static void
test_probe_unresolvable_name(void **state)
{
	struct addrinfo hints, *res = NULL;
	enum relay_probe_result r;
	char reason[256];
	int rc, status = -1;

	(void)state;
	/* What this machine's resolver does with the reserved .invalid TLD
	 * decides what may be expected: a resolver that answers says "no
	 * such name" at once; without one the lookup may outlast the probe. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo("nonexistent.invalid", "80", &hints, &res);
	if (rc == 0)
		freeaddrinfo(res);
	assert_int_not_equal(rc, 0);

	r = probe_url("http://nonexistent.invalid/", 5000, 0, NULL, &status,
	    reason, sizeof(reason));
	if (rc == EAI_NONAME
#ifdef EAI_NODATA
	    || rc == EAI_NODATA
#endif
	    ) {
		assert_int_equal(r, RELAY_PROBE_RESOLVE);
		assert_string_equal(reason,
		    "nonexistent.invalid does not resolve");
	} else {
		assert_true(r == RELAY_PROBE_RESOLVE || r == RELAY_PROBE_TIMEOUT);
	}
	assert_int_equal(status, 0);
}

static void
test_probe_bad_options(void **state)
{
	struct relay_probe_url u;
	struct relay_probe_opts o;
	char err[128], reason[256];
	int status = -1;

	(void)state;
	assert_int_equal(relay_probe_url_parse("http://127.0.0.1:9/", &u, err,
	    sizeof(err)), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(relay_http_probe(&u, &o, &status, reason,
	    sizeof(reason)), RELAY_PROBE_INTERNAL);
	assert_int_equal(relay_http_probe(&u, NULL, &status, reason,
	    sizeof(reason)), RELAY_PROBE_INTERNAL);
	assert_string_equal(relay_probe_result_name(RELAY_PROBE_BAD_RESPONSE),
	    "bad_response");
	assert_string_equal(relay_probe_result_name(RELAY_PROBE_OK), "ok");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_default_port_and_path),
		cmocka_unit_test(test_url_explicit_port_path_and_query),
		cmocka_unit_test(test_url_missing_path_is_slash),
		cmocka_unit_test(test_url_ipv6_literal),
		cmocka_unit_test(test_url_https_refused),
		cmocka_unit_test(test_url_garbage_refused),
		cmocka_unit_test(test_url_overlong_host_and_path_refused),
		cmocka_unit_test(test_probe_200_sends_a_proper_request),
		cmocka_unit_test(test_probe_host_header_override),
		cmocka_unit_test(test_probe_503_is_status),
		cmocka_unit_test(test_probe_interim_answer_skipped),
		cmocka_unit_test(test_probe_garbage_is_bad_response),
		cmocka_unit_test(test_probe_silent_server_times_out),
		cmocka_unit_test(test_probe_close_without_answer),
		cmocka_unit_test(test_probe_header_over_limit),
		cmocka_unit_test(test_probe_connection_refused),
		cmocka_unit_test(test_probe_stop_already_set),
		cmocka_unit_test(test_probe_stop_while_waiting_for_answer),
		cmocka_unit_test(test_probe_name_lookup_on_thread),
		cmocka_unit_test(test_probe_slow_lookup_abandoned),
		cmocka_unit_test(test_probe_stop_during_lookup),
		cmocka_unit_test(test_probe_lookups_capped),
		cmocka_unit_test(test_probe_unresolvable_name),
		cmocka_unit_test(test_probe_bad_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
