/*
 * relay_fwd rules: the pure decisions behind forwarding, with no I/O and
 * no libcurl, so they can be unit tested on their own. Which paths are
 * forwarded, which headers cross the proxy, what label a forwarded request
 * is counted under, and what each failure answers.
 */
#ifndef RELAY_UPSTREAM_RULES_H
#define RELAY_UPSTREAM_RULES_H

#include <stdbool.h>
#include <stddef.h>

#define RELAY_FWD_MAX_PREFIXES	16
#define RELAY_FWD_PREFIX_MAX	64

/* The forwarded path prefixes, parsed from RELAY_FORWARD_PREFIXES. */
struct relay_fwd_prefixes {
	size_t n;
	char p[RELAY_FWD_MAX_PREFIXES][RELAY_FWD_PREFIX_MAX];
};

/*
 * Parses a comma-separated list of prefixes ("/api/v1/,/v1/"; blanks
 * around entries ignored, an empty list turns forwarding off). Each prefix
 * must start with '/' and be printable ASCII without '?', '#' or '%'.
 * Returns 0, or -1 with a reason in `reason` (out is then empty).
 */
int relay_fwd_prefixes_parse(struct relay_fwd_prefixes *out, const char *spec,
    char *reason, size_t reason_len);

/*
 * True for paths the relay answers itself and never forwards, whatever
 * the prefixes say: /api/v1/relay and everything under it, /api/v1/meta,
 * /api/v1/version.
 */
bool relay_fwd_path_reserved(const char *path);

/* True when `path` is under one of the prefixes and not reserved. */
bool relay_fwd_path_matches(const struct relay_fwd_prefixes *p,
    const char *path);

/*
 * True when a raw request path is safe to forward as is: it starts with
 * '/', and has no "." or ".." segment (literal or percent-encoded), which
 * an upstream would resolve to a path the prefix check never saw.
 */
bool relay_fwd_path_safe(const char *path);

/*
 * The process-wide prefix list the router consults. Set once at start-up,
 * before the server threads exist; read without locks afterwards.
 */
void relay_fwd_set_prefixes(const struct relay_fwd_prefixes *p);
bool relay_fwd_route_path(const char *path);

enum relay_fwd_dir {
	RELAY_FWD_REQUEST,	/* client -> upstream */
	RELAY_FWD_RESPONSE,	/* upstream -> client */
};

/*
 * True when `name` is a hop-by-hop header: Connection, Keep-Alive,
 * Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade, or a name listed in
 * the message's Connection header value `connection` (may be NULL).
 */
bool relay_fwd_header_is_hop(const char *name, const char *connection);

/*
 * True when `name` is one of the relay's own credentials
 * (X-Relay-Server-Token, or any X-Relay-* header): never forwarded.
 */
bool relay_fwd_header_is_relay_credential(const char *name);

/*
 * True when a header of the given direction is copied as is. Besides the
 * hop-by-hop headers, the proxy drops what it sets itself: on requests
 * Host, Content-Length, Expect, X-Forwarded-For/-Proto/-Host and
 * X-Request-Id, and the relay's own credentials (X-Relay-*); on responses
 * Content-Length and Content-Type (sent by the relay's own framing),
 * X-Request-Id, Date and Server. Authorization passes: the upstream's
 * OpenAI-style API authenticates with it (docs/forwarding.md).
 */
bool relay_fwd_header_passes(enum relay_fwd_dir dir, const char *name,
    const char *connection);

/*
 * The metrics label for a forwarded path: the prefix plus a known API
 * endpoint ("/v1/chat/completions", "/api/v1/models", ...) or the prefix
 * plus "other", so client-chosen paths cannot grow the label set. Writes
 * into buf (always NUL-terminated) and returns it.
 */
const char *relay_fwd_route_label(const struct relay_fwd_prefixes *p,
    const char *path, char *buf, size_t len);

/* Why a forwarded request did not get the upstream's answer. */
enum relay_fwd_failure {
	RELAY_FWD_OK = 0,
	RELAY_FWD_UNREACHABLE,		/* name does not resolve, refused, no route */
	RELAY_FWD_CONNECT_TIMEOUT,
	RELAY_FWD_FIRST_BYTE_TIMEOUT,
	RELAY_FWD_IDLE_TIMEOUT,
	RELAY_FWD_TOTAL_TIMEOUT,
	RELAY_FWD_TOO_LARGE,		/* response over the byte limit */
	RELAY_FWD_HEADERS_TOO_LARGE,	/* response headers over the limit */
	RELAY_FWD_BAD_RESPONSE,		/* closed early, not HTTP, ... */
	RELAY_FWD_CLIENT_GONE,
	RELAY_FWD_CIRCUIT_OPEN,
	RELAY_FWD_BODY_TOO_LARGE,	/* request body over RELAY_MAX_BODY_BYTES */
	RELAY_FWD_BAD_REQUEST,		/* unreadable body, unusable path */
	RELAY_FWD_INTERNAL,		/* out of memory, libcurl set-up */
	RELAY_FWD_FAILURE_COUNT
};

struct relay_fwd_error {
	int status;		/* HTTP status answered when headers are not sent yet */
	const char *code;	/* OpenAI-shape error code */
	const char *kind;	/* metrics label / access-log error kind */
	const char *message;
	bool breaks_circuit;	/* counts as an upstream failure for the breaker */
};

/* The fixed answer for a failure (a static entry; never NULL). */
const struct relay_fwd_error *relay_fwd_error_for(enum relay_fwd_failure f);

/* Seconds for a Retry-After header: ms rounded up, at least 1. */
long relay_fwd_retry_after_s(long long ms);

#endif /* RELAY_UPSTREAM_RULES_H */
