/*
 * upstream_rules.c -- forwarding decisions that need no network: paths,
 * headers, metric labels and the failure table.
 */
#include "upstream/upstream_rules.h"

#include "core/auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/percent.h"

static struct relay_fwd_prefixes route_prefixes;

static bool
prefix_char_ok(char c)
{
	return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '%' &&
	    c != ',';
}

int
relay_fwd_prefixes_parse(struct relay_fwd_prefixes *out, const char *spec,
    char *reason, size_t reason_len)
{
	const char *p = spec ? spec : "";

	memset(out, 0, sizeof(*out));
	while (*p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, ", \t");
		if (out->n >= RELAY_FWD_MAX_PREFIXES) {
			snprintf(reason, reason_len, "more than %d prefixes",
			    RELAY_FWD_MAX_PREFIXES);
			goto fail;
		}
		if (p[0] != '/') {
			snprintf(reason, reason_len,
			    "prefix '%.*s' does not start with '/'", (int)n, p);
			goto fail;
		}
		if (n >= RELAY_FWD_PREFIX_MAX) {
			snprintf(reason, reason_len, "prefix longer than %d bytes",
			    RELAY_FWD_PREFIX_MAX - 1);
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			if (!prefix_char_ok(p[i])) {
				snprintf(reason, reason_len,
				    "prefix '%.*s' has a character that is not allowed",
				    (int)n, p);
				goto fail;
			}
		}
		memcpy(out->p[out->n], p, n);
		out->p[out->n][n] = '\0';
		out->n++;
		p += n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0' && *p != ',') {
			snprintf(reason, reason_len,
			    "prefixes must be separated by commas");
			goto fail;
		}
	}
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* path is `base` exactly, or `base` followed by '/' and anything. */
static bool
path_is_or_under(const char *path, const char *base)
{
	size_t n = strlen(base);

	return strncmp(path, base, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/');
}

bool
relay_fwd_path_reserved(const char *path)
{
	return path_is_or_under(path, "/api/v1/relay") ||
	    path_is_or_under(path, "/api/v1/meta") ||
	    path_is_or_under(path, "/api/v1/version");
}

static const char *
matching_prefix(const struct relay_fwd_prefixes *p, const char *path)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strncmp(path, p->p[i], strlen(p->p[i])) == 0)
			return p->p[i];
	}
	return NULL;
}

bool
relay_fwd_path_matches(const struct relay_fwd_prefixes *p, const char *path)
{
	if (path == NULL || relay_fwd_path_reserved(path))
		return false;
	return matching_prefix(p, path) != NULL;
}

/*
 * Percent-decodes only the characters that change how a path splits into
 * segments ('.', '/', '\'), as a lenient upstream would.
 */
static char
segment_char(const char **pp)
{
	const char *p = *pp;
	int v = relay_percent_byte(p);

	if (v == '.' || v == '/' || v == '\\') {
		*pp = p + 3;
		return (char)v;
	}
	*pp = p + 1;
	return p[0];
}

bool
relay_fwd_path_safe(const char *path)
{
	const char *p;
	size_t dots = 0, seglen = 0;

	if (path == NULL || path[0] != '/')
		return false;
	p = path;
	for (;;) {
		char c = *p == '\0' ? '/' : segment_char(&p);

		if (c == '/' || c == '\\') {
			if (seglen > 0 && seglen == dots && dots <= 2)
				return false;
			dots = seglen = 0;
			if (*p == '\0')
				break;
			continue;
		}
		if (c == '.')
			dots++;
		seglen++;
	}
	return true;
}

void
relay_fwd_set_prefixes(const struct relay_fwd_prefixes *p)
{
	if (p == NULL)
		memset(&route_prefixes, 0, sizeof(route_prefixes));
	else
		route_prefixes = *p;
}

bool
relay_fwd_route_path(const char *path)
{
	return relay_fwd_path_matches(&route_prefixes, path);
}

/* ---- headers ------------------------------------------------------------ */

static const char *const hop_headers[] = {
	"Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
	"Upgrade",
};

static const char *const request_own[] = {
	"Host", "Content-Length", "Expect", "X-Forwarded-For",
	"X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id",
};

static const char *const response_own[] = {
	"Content-Length", "Content-Type", "X-Request-Id", "Date", "Server",
};

static bool
in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(name, list[i]) == 0)
			return true;
	}
	return false;
}

/* True when `name` is one of the comma-separated tokens of `value`. */
static bool
token_listed(const char *name, const char *value)
{
	size_t nlen = strlen(name);
	const char *p = value;

	while (p != NULL && *p != '\0') {
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0 && n == nlen && strncasecmp(p, name, n) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

bool
relay_fwd_header_is_hop(const char *name, const char *connection)
{
	if (in_list(name, hop_headers, sizeof(hop_headers) / sizeof(hop_headers[0])))
		return true;
	if (strncasecmp(name, "Proxy-", 6) == 0)
		return true;
	return connection != NULL && token_listed(name, connection);
}

/*
 * The relay's own credentials never leave it: the compute nodes'
 * registration token (RELAY_AUTH_HEADER, X-Relay-Server-Token) and any
 * other X-Relay-* header, a prefix the relay keeps for itself.
 */
bool
relay_fwd_header_is_relay_credential(const char *name)
{
	return strcasecmp(name, RELAY_AUTH_HEADER) == 0 ||
	    strncasecmp(name, "X-Relay-", 8) == 0;
}

bool
relay_fwd_header_passes(enum relay_fwd_dir dir, const char *name,
    const char *connection)
{
	if (name == NULL || name[0] == '\0')
		return false;
	if (relay_fwd_header_is_hop(name, connection))
		return false;
	if (dir == RELAY_FWD_REQUEST && relay_fwd_header_is_relay_credential(name))
		return false;
	if (dir == RELAY_FWD_REQUEST)
		return !in_list(name, request_own,
		    sizeof(request_own) / sizeof(request_own[0]));
	return !in_list(name, response_own,
	    sizeof(response_own) / sizeof(response_own[0]));
}

/* ---- metrics label ------------------------------------------------------ */

/* The OpenAI-style endpoints worth a label of their own. */
static const char *const known_endpoints[] = {
	"chat/completions", "completions", "embeddings", "models",
	"moderations", "health",
};

const char *
relay_fwd_route_label(const struct relay_fwd_prefixes *p, const char *path,
    char *buf, size_t len)
{
	const char *prefix = path ? matching_prefix(p, path) : NULL;
	const char *rest;

	if (len == 0)
		return buf;
	if (prefix == NULL) {
		snprintf(buf, len, "other");
		return buf;
	}
	rest = path + strlen(prefix);
	for (size_t i = 0; i < sizeof(known_endpoints) / sizeof(known_endpoints[0]);
	    i++) {
		const char *e = known_endpoints[i];

		if (path_is_or_under(rest, e)) {
			snprintf(buf, len, "%s%s", prefix, e);
			return buf;
		}
	}
	snprintf(buf, len, "%sother", prefix);
	return buf;
}

/* ---- failures ----------------------------------------------------------- */

static const struct relay_fwd_error fwd_errors[RELAY_FWD_FAILURE_COUNT] = {
	[RELAY_FWD_OK] = { 200, NULL, NULL, NULL, false },
	[RELAY_FWD_UNREACHABLE] = { 502, "upstream_unreachable",
	    "upstream_unreachable",
	    "The GPU host cannot be reached", true },
	[RELAY_FWD_CONNECT_TIMEOUT] = { 504, "upstream_timeout",
	    "upstream_connect_timeout",
	    "The GPU host did not accept a connection in time", true },
	[RELAY_FWD_FIRST_BYTE_TIMEOUT] = { 504, "upstream_timeout",
	    "upstream_first_byte_timeout",
	    "The GPU host did not start answering in time", true },
	[RELAY_FWD_IDLE_TIMEOUT] = { 504, "upstream_timeout",
	    "upstream_idle_timeout",
	    "The GPU host stopped sending its answer", false },
	[RELAY_FWD_TOTAL_TIMEOUT] = { 504, "upstream_timeout",
	    "upstream_total_timeout",
	    "The GPU host did not finish its answer in time", false },
	[RELAY_FWD_TOO_LARGE] = { 502, "upstream_response_too_large",
	    "upstream_response_too_large",
	    "The GPU host's answer exceeds the relay's size limit", false },
	[RELAY_FWD_HEADERS_TOO_LARGE] = { 502, "upstream_response_too_large",
	    "upstream_headers_too_large",
	    "The GPU host's response headers exceed the relay's limit", false },
	[RELAY_FWD_BAD_RESPONSE] = { 502, "upstream_bad_response",
	    "upstream_bad_response",
	    "The GPU host closed the connection or answered malformed HTTP",
	    true },
	[RELAY_FWD_CLIENT_GONE] = { 499, "client_closed_request", "client_gone",
	    "The client closed the connection", false },
	[RELAY_FWD_CIRCUIT_OPEN] = { 503, "upstream_unavailable",
	    "upstream_circuit_open",
	    "The GPU host is unavailable; retry later", false },
	[RELAY_FWD_BODY_TOO_LARGE] = { 413, "payload_too_large",
	    "body_too_large",
	    "Request body exceeds the relay's size limit", false },
	[RELAY_FWD_BAD_REQUEST] = { 400, "bad_request", "bad_request",
	    "The request cannot be forwarded", false },
	[RELAY_FWD_INTERNAL] = { 500, "internal_error", "internal_error",
	    "The relay could not forward the request", false },
};

const struct relay_fwd_error *
relay_fwd_error_for(enum relay_fwd_failure f)
{
	if ((int)f < 0 || f >= RELAY_FWD_FAILURE_COUNT)
		f = RELAY_FWD_INTERNAL;
	return &fwd_errors[f];
}

long
relay_fwd_retry_after_s(long long ms)
{
	long long s;

	if (ms <= 1000)
		return 1;
	s = (ms + 999) / 1000;
	return s > 86400 ? 86400 : (long)s;
}
