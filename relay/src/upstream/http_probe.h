/*
 * relay_http_probe: one HTTP/1.1 GET over a plain TCP socket, for the
 * health check of an http:// upstream. It exists so that an idle relay
 * does not have to load libcurl (and its dependency tree) just to ask the
 * GPU host whether it is up; https:// upstreams still go through libcurl.
 *
 * The probe is synchronous and may run on any number of threads at once.
 * The host name is resolved afresh on every probe; a slow lookup is
 * abandoned (not waited for) at the deadline or when the stop flag turns
 * true. Its only process-wide state counts the lookups still running, so
 * that a DNS server that never answers cannot pile up lookup threads.
 */
#ifndef RELAY_HTTP_PROBE_H
#define RELAY_HTTP_PROBE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Sizes of the parsed URL's fields, terminating NUL included. */
#define RELAY_PROBE_HOST_MAX		256
#define RELAY_PROBE_PORT_MAX		8
#define RELAY_PROBE_TARGET_MAX		2048
#define RELAY_PROBE_HOST_HEADER_MAX	300

/* Used when relay_probe_opts.max_response_bytes is 0. */
#define RELAY_PROBE_RESPONSE_MAX_DEFAULT	16384
/* Used when relay_probe_opts.max_lookups is 0. */
#define RELAY_PROBE_LOOKUPS_DEFAULT	4
/* Used when relay_probe_opts.user_agent is NULL. */
#define RELAY_PROBE_USER_AGENT_DEFAULT	"tokenplace-relay-health"

/*
 * A parsed http:// URL: host (an IPv6 literal without its brackets), port
 * (decimal, "80" when the URL has none), target (path and query, "/" when
 * the URL has no path; the fragment is dropped) and the Host header value
 * ("host" or "host:port" when the port is not 80; IPv6 in brackets).
 */
struct relay_probe_url {
	char	host[RELAY_PROBE_HOST_MAX];
	char	port[RELAY_PROBE_PORT_MAX];
	char	target[RELAY_PROBE_TARGET_MAX];
	char	host_header[RELAY_PROBE_HOST_HEADER_MAX];
};

/*
 * Parses an absolute http:// URL (the scheme in any case) into *out, split
 * by tp_url_split() (tokenplace/url.h). Returns 0, or -1 with a one-line
 * reason in err (https://, other schemes, user info -- anything up to the
 * last '@' before '?' or '#', so a path holding '@' is refused too --, bad
 * or over-long host, bad port, control characters or spaces in the
 * target, over-long target). *out is unspecified after a failure.
 */
int relay_probe_url_parse(const char *url, struct relay_probe_url *out,
    char *err, size_t errlen);

struct relay_probe_opts {
	/* Limit for connecting to one address; <= 0: only timeout_ms applies. */
	long		connect_timeout_ms;
	/* The whole probe: resolve, connect, send, status and headers; > 0. */
	long		timeout_ms;
	/* NULL: the URL's host_header. */
	const char	*host_header;
	/* NULL: RELAY_PROBE_USER_AGENT_DEFAULT. */
	const char	*user_agent;
	/* Bytes of the answer (status line and headers) read at most before
	 * the probe fails; 0: RELAY_PROBE_RESPONSE_MAX_DEFAULT. */
	size_t		max_response_bytes;
	/* May be NULL. When it turns true the probe returns
	 * RELAY_PROBE_CANCELLED within about 200 ms. */
	const _Atomic bool *stop;
	/* Name lookups that may run at once in the process, abandoned ones
	 * included; a probe that would start one more fails at once with
	 * RELAY_PROBE_LOOKUPS_BUSY. 0: RELAY_PROBE_LOOKUPS_DEFAULT. */
	unsigned	max_lookups;
};

enum relay_probe_result {
	RELAY_PROBE_OK,			/* answered 2xx */
	RELAY_PROBE_STATUS,		/* answered, but not 2xx */
	RELAY_PROBE_RESOLVE,		/* the host name does not resolve */
	RELAY_PROBE_CONNECT,		/* no address accepted the connection */
	RELAY_PROBE_TIMEOUT,		/* timeout_ms passed before the answer */
	RELAY_PROBE_BAD_RESPONSE,	/* not HTTP/1.x, too big, or closed early */
	RELAY_PROBE_IO,			/* send or receive failed (e.g. a reset) */
	RELAY_PROBE_CANCELLED,		/* the stop flag turned true */
	RELAY_PROBE_LOOKUPS_BUSY,	/* max_lookups lookups still running */
	RELAY_PROBE_INTERNAL,		/* bad options, out of memory, no thread */
};

/*
 * Sends one "GET <target> HTTP/1.1" with "Connection: close" to u and
 * reads the status line and header block (never the body). Returns the
 * outcome; *status gets the final HTTP status, or 0 when none was read;
 * reason gets a one-line human reason ("" on RELAY_PROBE_OK), e.g.
 * "gpu-server does not resolve", "connect to 10.0.0.5:8000: Connection
 * refused", "no answer within 2000 ms", "answered 503". Interim 1xx
 * answers are skipped. Every descriptor it opens is closed before it
 * returns; an abandoned name lookup finishes (and frees itself) on its own
 * thread.
 */
enum relay_probe_result relay_http_probe(const struct relay_probe_url *u,
    const struct relay_probe_opts *o, int *status, char *reason,
    size_t reasonlen);

/* A short lower-case name for r ("ok", "status", "resolve", ...) for
 * metric labels and logs; never NULL. */
const char *relay_probe_result_name(enum relay_probe_result r);

#endif /* RELAY_HTTP_PROBE_H */
