/*
 * settings.c -- the tokenplace-relay settings table.
 *
 * Names already used by token.place deployments keep their meaning
 * (RELAY_*, TOKENPLACE_GPU_*, TOKEN_PLACE_RELAY_SERVER_TOKEN, ...); every
 * limit has a row here, and docs/configuration.md mirrors this table.
 */
#include "settings.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/framing.h"
#include "legacy/ratelimit.h"
#include "redis/redis_url.h"
#include "tokenplace/json.h"
#include "tokenplace/log.h"
#include "tokenplace/url.h"
#include "upstream/upstream_rules.h"
#include "v1/v1_broker.h"

static int
validate_ipv4(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;
	struct in_addr a;

	if (s == NULL || inet_pton(AF_INET, s, &a) != 1) {
		snprintf(reason, len,
		    "'%.40s' is not an IPv4 address (civetweb 1.15 listens on IPv4 only)",
		    s ? s : "");
		return -1;
	}
	return 0;
}

static int
validate_level(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;
	enum tp_log_level lvl;

	if (tp_log_level_parse(s, &lvl) != 0) {
		snprintf(reason, len,
		    "'%.40s' is not a level (DEBUG, INFO, WARNING or WARN, "
		    "ERROR, CRITICAL; any case)",
		    s ? s : "");
		return -1;
	}
	return 0;
}

static int
validate_http_url(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;
	struct tp_url u;

	if (s == NULL || s[0] == '\0')
		return 0;	/* derived from the GPU host and port */
	/*
	 * Only the scheme is this check's business (any case, RFC 3986):
	 * libcurl and the health probe judge the rest when they use it.
	 */
	if (tp_url_split(s, &u) == TP_URL_ENOSCHEME ||
	    (!tp_url_scheme_is(&u, "http") && !tp_url_scheme_is(&u, "https"))) {
		char shown[RELAY_URL_SHOWN_MAX];

		snprintf(reason, len, "'%.60s' is not an http:// or https:// URL",
		    tp_config_redact_url(s, shown, sizeof(shown)));
		return -1;
	}
	if (strpbrk(s, " \t\r\n") != NULL) {
		snprintf(reason, len, "URL contains whitespace");
		return -1;
	}
	return 0;
}

static int
validate_forward_prefixes(const void *value, char *reason, size_t len)
{
	struct relay_fwd_prefixes p;

	if (relay_fwd_prefixes_parse(&p, *(char *const *)value, reason,
	    len) != 0)
		return -1;
	/*
	 * An empty variable counts as unset (the default list applies), so a
	 * list that parses to nothing (",") is a mistake, not a way to turn
	 * forwarding off: RELAY_FORWARD=off says that.
	 */
	if (p.n == 0) {
		snprintf(reason, len, "no prefix in the list; set "
		    "RELAY_FORWARD=off to turn forwarding off");
		return -1;
	}
	return 0;
}

static int
validate_url_path(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;

	if (s == NULL || s[0] != '/') {
		snprintf(reason, len, "'%.60s' does not start with '/'", s ? s : "");
		return -1;
	}
	for (; *s != '\0'; s++) {
		if (*s <= 0x20 || *s >= 0x7f || *s == '#') {
			snprintf(reason, len, "path contains a space, '#' or a "
			    "non-printable character");
			return -1;
		}
	}
	return 0;
}

static int
validate_header_value(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;

	for (; s != NULL && *s != '\0'; s++) {
		if (*s < 0x20 || *s >= 0x7f) {
			snprintf(reason, len, "value contains a control or "
			    "non-ASCII character");
			return -1;
		}
	}
	return 0;
}

static int
validate_state_url(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;
	struct relay_redis_config cfg;
	char err[200];

	if (s != NULL && strcmp(s, "memory://") == 0)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	if (s == NULL || relay_redis_url_parse(s, &cfg, err, sizeof(err)) != 0) {
		/* The reason names no part of the URL: it may hold a password. */
		snprintf(reason, len, "%s (expected memory://, "
		    "redis://[[user]:password@]host[:port][/db] or "
		    "unix:///path/to/redis.sock[?db=N])",
		    s == NULL ? "no URL" : err);
		memset(&cfg, 0, sizeof(cfg));
		return -1;
	}
	memset(&cfg, 0, sizeof(cfg));
	return 0;
}

static int
validate_state_prefix(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;

	for (; s != NULL && *s != '\0'; s++) {
		if (*s <= 0x20 || *s >= 0x7f || *s == '{' || *s == '}') {
			snprintf(reason, len, "the prefix takes printable ASCII "
			    "without blanks, '{' or '}' (it is wrapped in one "
			    "hash tag)");
			return -1;
		}
	}
	return 0;
}

static int
validate_cidrs(const void *value, char *reason, size_t len)
{
	const char *s = *(char *const *)value;
	struct relay_cidr_list l;

	if (relay_cidr_list_parse(s, &l, reason, len) != 0)
		return -1;
	relay_cidr_list_free(&l);
	return 0;
}

static int
validate_one_of(const char *s, const char *const *allowed, char *reason,
    size_t len)
{
	for (size_t i = 0; allowed[i] != NULL; i++)
		if (s != NULL && strcasecmp(s, allowed[i]) == 0)
			return 0;
	snprintf(reason, len, "'%.40s' is not one of:", s ? s : "");
	for (size_t i = 0; allowed[i] != NULL; i++) {
		size_t n = strlen(reason);

		snprintf(reason + n, len - n, " %s", allowed[i]);
	}
	return -1;
}

static int
validate_frontend_mode(const void *value, char *reason, size_t len)
{
	static const char *const modes[] = { "production", "development",
	    "dev", NULL };

	return validate_one_of(*(char *const *)value, modes, reason, len);
}

static int
validate_diagnostics_detail(const void *value, char *reason, size_t len)
{
	static const char *const levels[] = { "counts", "full", NULL };

	return validate_one_of(*(char *const *)value, levels, reason, len);
}

static int
validate_models_source(const void *value, char *reason, size_t len)
{
	static const char *const sources[] = { "nodes", "upstream", NULL };

	return validate_one_of(*(char *const *)value, sources, reason, len);
}

#define OFF(f) offsetof(struct relay_settings, f)
#define BIG 1e15

const struct tp_setting relay_setting_table[] = {
	/* service */
	{ "host", "RELAY_HOST", NULL, TP_SETTING_STRING, "127.0.0.1", 7, 15,
	  OFF(host), validate_ipv4, 0, "IPv4 address to listen on" },
	{ "port", "RELAY_PORT", NULL, TP_SETTING_INT, "5010", 0, 65535,
	  OFF(port), NULL, 0, "TCP port to listen on (0 = any free port)" },
	{ "threads", "RELAY_THREADS", NULL, TP_SETTING_INT, "64", 2, 1024,
	  OFF(threads), NULL, 0, "HTTP worker threads (concurrent requests)" },
	{ "workers", "RELAY_WORKERS", NULL, TP_SETTING_INT, "1", 1, 64,
	  OFF(workers), NULL, 0,
	  "accepted for the Python image's tuning; the relay is always one process" },
	{ "timeout", "RELAY_TIMEOUT", NULL, TP_SETTING_INT, "60", 1, 3600,
	  OFF(timeout_s), NULL, 0,
	  "seconds a client may stay silent while sending a request body, or "
	  "stop reading a response, before it is disconnected" },
	{ "head_timeout_ms", "RELAY_HEAD_TIMEOUT_MS", NULL, TP_SETTING_INT,
	  "10000", 100, 600000, OFF(head_timeout_ms), NULL, 0,
	  "milliseconds from a worker thread starting to read a connection to "
	  "its complete first request head (then 408 and closed)" },
	{ "connection_queue", "RELAY_CONNECTION_QUEUE", NULL, TP_SETTING_INT,
	  "32", 1, 4096, OFF(connection_queue), NULL, 0,
	  "accepted connections waiting for a free worker thread (beyond them, "
	  "new connections wait in the kernel's listen backlog)" },
	{ "max_connections_per_client", "RELAY_MAX_CONNECTIONS_PER_CLIENT", NULL,
	  TP_SETTING_INT, "0", 0, 100000, OFF(max_connections_per_client), NULL,
	  0, "open connections one client IPv4 address may hold, whatever they "
	  "do (0 = no limit; 429 above)" },
	{ "max_pending_heads_per_client", "RELAY_MAX_PENDING_HEADS_PER_CLIENT",
	  NULL, TP_SETTING_INT, "8", 0, 100000,
	  OFF(max_pending_heads_per_client), NULL, 0,
	  "connections one client IPv4 address may hold before their first "
	  "request head is complete (0 = no limit; 429 above)" },
	{ "close_linger_ms", "RELAY_CLOSE_LINGER_MS", NULL, TP_SETTING_INT,
	  "5000", 0, 600000, OFF(close_linger_ms), NULL, 0,
	  "milliseconds a closed connection keeps reading and dropping what "
	  "its client still sends, so the answer is not cut by a reset "
	  "(0 = drop only what is already queued)" },
	{ "graceful_timeout", "RELAY_GRACEFUL_TIMEOUT", NULL, TP_SETTING_INT, "30",
	  0, 3600, OFF(graceful_timeout_s), NULL, 0,
	  "seconds in-flight requests get to finish after SIGTERM" },
	{ "log_level", "TOKENPLACE_LOG_LEVEL", NULL, TP_SETTING_STRING, "INFO", 1,
	  16, OFF(log_level), validate_level, 0, "minimum log level" },
	{ "max_body_bytes", "RELAY_MAX_BODY_BYTES", NULL, TP_SETTING_INT,
	  "1048576", 1024, 268435456, OFF(max_body_bytes), NULL, 0,
	  "largest request body accepted (413 above)" },
	{ "max_header_bytes", "RELAY_MAX_HEADER_BYTES", NULL, TP_SETTING_INT,
	  "16384", 1024, 1048576, OFF(max_header_bytes), NULL, 0,
	  "largest request line plus headers accepted" },
	{ "max_header_count", "RELAY_MAX_HEADER_COUNT", NULL, TP_SETTING_INT,
	  "63", 1, RELAY_FRAMING_MAX_HEADERS, OFF(max_header_count), NULL, 0,
	  "most header lines in one request (431 above)" },
	{ "max_discard_bytes", "RELAY_MAX_DISCARD_BYTES", NULL, TP_SETTING_INT,
	  "1048576", 0, 268435456, OFF(max_discard_bytes), NULL, 0,
	  "refused bodies up to this size are read and dropped, larger ones cut" },
	{ "json_max_depth", "RELAY_JSON_MAX_DEPTH", NULL, TP_SETTING_INT, "64", 4,
	  TP_JSON_MAX_DEPTH, OFF(json_max_depth), NULL, 0,
	  "deepest nesting of arrays and objects in a request body (400 above; "
	  "at most 64, the depth tested on a worker thread's stack)" },
	{ "metrics_max_series", "RELAY_METRICS_MAX_SERIES", NULL, TP_SETTING_INT,
	  "2048", 16, 1000000, OFF(metrics_max_series), NULL, 0,
	  "label sets kept per metric family (more are dropped and counted)" },

	/* GPU host and upstream */
	{ "gpu_host", "TOKENPLACE_GPU_HOST", "GPU_SERVER_HOST", TP_SETTING_STRING,
	  "gpu-server", 1, 253, OFF(gpu_host), NULL, 0,
	  "DNS name of the GPU workstation" },
	{ "gpu_port", "TOKENPLACE_GPU_PORT", "GPU_SERVER_PORT", TP_SETTING_INT,
	  "8000", 1, 65535, OFF(gpu_port), NULL, 0,
	  "port of server.py on the GPU workstation" },
	{ "upstream_url", "TOKENPLACE_RELAY_UPSTREAM_URL", NULL, TP_SETTING_STRING,
	  "", 0, RELAY_URL_MAX, OFF(upstream_url), validate_http_url,
	  TP_SETTING_REDACT_URL,
	  "base URL of the GPU host (empty = http://<gpu_host>:<gpu_port>)" },
	{ "require_upstream_health", "TOKENPLACE_REQUIRE_UPSTREAM_HEALTH",
	  "TOKENPLACE_RELAY_REQUIRE_UPSTREAM_HEALTH", TP_SETTING_BOOL, "false", 0,
	  0, OFF(require_upstream_health), NULL, 0,
	  "make /healthz fail while the GPU host is unreachable" },

	/* forwarding to the upstream (docs/forwarding.md) */
	{ "forward", "RELAY_FORWARD", NULL, TP_SETTING_BOOL, "true", 0, 0,
	  OFF(forward), NULL, 0,
	  "forward requests under RELAY_FORWARD_PREFIXES to the upstream "
	  "(off = nothing is forwarded)" },
	{ "forward_prefixes", "RELAY_FORWARD_PREFIXES", NULL, TP_SETTING_STRING,
	  "/api/v1/,/v1/", 0, 1024, OFF(forward_prefixes),
	  validate_forward_prefixes, 0,
	  "comma-separated path prefixes forwarded to the upstream" },
	{ "libcurl", "RELAY_LIBCURL", NULL, TP_SETTING_STRING, "libcurl.so.4", 1,
	  255, OFF(libcurl), validate_header_value, 0,
	  "libcurl shared library loaded by the first forwarded request" },
	{ "upstream_connect_timeout_ms", "RELAY_UPSTREAM_CONNECT_TIMEOUT_MS", NULL,
	  TP_SETTING_INT, "5000", 10, 600000, OFF(upstream_connect_timeout_ms),
	  NULL, 0, "milliseconds to open a connection to the upstream (504 after)" },
	{ "upstream_first_byte_timeout_ms", "RELAY_UPSTREAM_FIRST_BYTE_TIMEOUT_MS",
	  NULL, TP_SETTING_INT, "300000", 10, 86400000,
	  OFF(upstream_first_byte_timeout_ms), NULL, 0,
	  "milliseconds from sending the request to the upstream's first byte" },
	{ "upstream_idle_timeout_ms", "RELAY_UPSTREAM_IDLE_TIMEOUT_MS", NULL,
	  TP_SETTING_INT, "120000", 10, 86400000, OFF(upstream_idle_timeout_ms),
	  NULL, 0, "longest silence between two pieces of an upstream response" },
	{ "upstream_total_timeout_ms", "RELAY_UPSTREAM_TOTAL_TIMEOUT_MS", NULL,
	  TP_SETTING_INT, "900000", 10, 86400000, OFF(upstream_total_timeout_ms),
	  NULL, 0, "longest a whole forwarded exchange may take" },
	{ "upstream_max_response_bytes", "RELAY_UPSTREAM_MAX_RESPONSE_BYTES", NULL,
	  TP_SETTING_INT, "67108864", 1024, BIG, OFF(upstream_max_response_bytes),
	  NULL, 0, "largest upstream response body relayed (502 / cut above)" },
	{ "upstream_max_header_bytes", "RELAY_UPSTREAM_MAX_HEADER_BYTES", NULL,
	  TP_SETTING_INT, "8192", 512, 12288, OFF(upstream_max_header_bytes),
	  NULL, 0, "largest upstream response header block relayed (502 above)" },
	{ "upstream_host_header", "RELAY_UPSTREAM_HOST_HEADER", NULL,
	  TP_SETTING_STRING, "", 0, 255, OFF(upstream_host_header),
	  validate_header_value, 0,
	  "Host header sent upstream (empty = the upstream URL's host)" },
	{ "upstream_health_path", "RELAY_UPSTREAM_HEALTH_PATH", NULL,
	  TP_SETTING_STRING, "/health", 1, RELAY_HEALTH_PATH_MAX,
	  OFF(upstream_health_path),
	  validate_url_path, 0, "path of the upstream's health endpoint" },
	{ "upstream_health_interval_ms", "RELAY_UPSTREAM_HEALTH_INTERVAL_MS", NULL,
	  TP_SETTING_INT, "10000", 20, 3600000, OFF(upstream_health_interval_ms),
	  NULL, 0, "milliseconds between upstream health checks" },
	{ "upstream_health_timeout_ms", "RELAY_UPSTREAM_HEALTH_TIMEOUT_MS", NULL,
	  TP_SETTING_INT, "2000", 10, 600000, OFF(upstream_health_timeout_ms),
	  NULL, 0, "milliseconds one health check may take" },
	{ "upstream_health_failures", "RELAY_UPSTREAM_HEALTH_FAILURES", NULL,
	  TP_SETTING_INT, "3", 1, 1000, OFF(upstream_health_failures), NULL, 0,
	  "consecutive failed checks before the upstream counts as down" },
	{ "upstream_health_successes", "RELAY_UPSTREAM_HEALTH_SUCCESSES", NULL,
	  TP_SETTING_INT, "2", 1, 1000, OFF(upstream_health_successes), NULL, 0,
	  "consecutive good checks before a down upstream counts as up" },
	{ "upstream_health_max_lookups", "RELAY_UPSTREAM_HEALTH_MAX_LOOKUPS", NULL,
	  TP_SETTING_INT, "4", 1, 64, OFF(upstream_health_max_lookups), NULL, 0,
	  "name lookups of the GPU host that may hang at once before checks "
	  "fail without starting another" },
	{ "upstream_circuit", "RELAY_UPSTREAM_CIRCUIT", NULL, TP_SETTING_BOOL,
	  "true", 0, 0, OFF(upstream_circuit), NULL, 0,
	  "fail fast (503) while the upstream is known down" },
	{ "upstream_circuit_failures", "RELAY_UPSTREAM_CIRCUIT_FAILURES", NULL,
	  TP_SETTING_INT, "5", 0, 100000, OFF(upstream_circuit_failures), NULL, 0,
	  "consecutive failed forwards that open the circuit (0 = health only)" },
	{ "upstream_circuit_open_ms", "RELAY_UPSTREAM_CIRCUIT_OPEN_MS", NULL,
	  TP_SETTING_INT, "10000", 10, 3600000, OFF(upstream_circuit_open_ms),
	  NULL, 0, "milliseconds an open circuit waits before a probe request" },

	/* relay protocol */
	{ "server_token", "TOKEN_PLACE_RELAY_SERVER_TOKEN", NULL,
	  TP_SETTING_STRING, "", 0, 4096, OFF(server_token), NULL,
	  TP_SETTING_SECRET, "registration token compute nodes must send" },
	{ "server_tokens", "TOKEN_PLACE_RELAY_SERVER_TOKENS", NULL,
	  TP_SETTING_STRING, "", 0, 65536, OFF(server_tokens), NULL,
	  TP_SETTING_SECRET, "more accepted tokens, comma or newline separated" },
	{ "legacy_routes", "TOKENPLACE_ENABLE_LEGACY_RELAY_ROUTES", NULL,
	  TP_SETTING_BOOL, "true", 0, 0, OFF(legacy_routes), NULL, 0,
	  "serve /sink, /faucet, ... (false: 410)" },
	{ "server_ttl", "RELAY_SERVER_TTL_SECONDS", NULL, TP_SETTING_INT, "30", 1,
	  86400, OFF(server_ttl_s), NULL, 0,
	  "seconds of silence after which a compute node is evicted" },
	{ "server_busy_ttl", "RELAY_SERVER_BUSY_TTL_SECONDS", NULL,
	  TP_SETTING_INT, "120", 1, 86400, OFF(server_busy_ttl_s), NULL, 0,
	  "silence allowed after a /sink poll handed out work (inference time)" },
	{ "max_servers", "RELAY_MAX_SERVERS", NULL, TP_SETTING_INT, "1024", 1,
	  1000000, OFF(max_servers), NULL, 0, "registered compute nodes" },
	{ "queue_per_server", "RELAY_MAX_QUEUE_PER_SERVER", NULL, TP_SETTING_INT,
	  "1024", 1, 10000000, OFF(queue_per_server), NULL, 0,
	  "queued requests per compute node" },
	{ "queue_total", "RELAY_MAX_QUEUE_TOTAL", NULL, TP_SETTING_INT, "65536", 1,
	  100000000, OFF(queue_total), NULL, 0, "queued requests in all" },
	{ "response_ttl", "RELAY_RESPONSE_TTL_SECONDS", NULL, TP_SETTING_INT,
	  "600", 1, 86400, OFF(response_ttl_s), NULL, 0,
	  "seconds an undelivered response is kept" },
	{ "max_responses", "RELAY_MAX_RESPONSES", NULL, TP_SETTING_INT, "65536",
	  1, 100000000, OFF(max_responses), NULL, 0, "undelivered responses kept" },
	{ "response_redelivery", "RELAY_RESPONSE_REDELIVERY_SECONDS", NULL,
	  TP_SETTING_INT, "30", 0, 300, OFF(response_redelivery_s), NULL, 0,
	  "seconds a delivered response is handed out again to the same "
	  "client retrying its retrieve (0 = never)" },
	{ "max_stream_sessions", "RELAY_MAX_STREAM_SESSIONS", NULL,
	  TP_SETTING_INT, "4096", 1, 10000000, OFF(max_stream_sessions), NULL, 0,
	  "open stream sessions" },
	{ "max_stream_chunks", "RELAY_MAX_STREAM_CHUNKS", NULL, TP_SETTING_INT,
	  "1024", 1, 1000000, OFF(max_stream_chunks), NULL, 0,
	  "undrained chunks buffered per stream session" },
	{ "stream_session_ttl", "RELAY_STREAM_SESSION_TTL_SECONDS", NULL,
	  TP_SETTING_INT, "600", 1, 86400, OFF(stream_session_ttl_s), NULL, 0,
	  "seconds an idle stream session is kept" },
	{ "max_key_bytes", "RELAY_MAX_KEY_BYTES", NULL, TP_SETTING_INT, "8192",
	  64, 1048576, OFF(max_key_bytes), NULL, 0,
	  "longest public key, session id or request id accepted" },
	{ "faucet_rate_limit", "RELAY_FAUCET_RATE_LIMIT", NULL, TP_SETTING_INT,
	  "0", 0, 1000000000, OFF(faucet_rate_limit), NULL, 0,
	  "requests per window per client IP on /faucet (0 = off)" },
	{ "faucet_rate_window", "RELAY_FAUCET_RATE_WINDOW_SECONDS", NULL,
	  TP_SETTING_INT, "60", 1, 86400, OFF(faucet_rate_window_s), NULL, 0,
	  "window of the /faucet rate limit" },
	{ "faucet_rate_clients", "RELAY_FAUCET_RATE_MAX_CLIENTS", NULL,
	  TP_SETTING_INT, "100000", 1, 10000000, OFF(faucet_rate_clients), NULL,
	  0, "client IPs the /faucet rate limit tracks per window" },
	{ "trusted_proxies", "RELAY_TRUSTED_PROXIES", NULL, TP_SETTING_STRING, "",
	  0, 4096, OFF(trusted_proxies), validate_cidrs, 0,
	  "IPv4 addresses/CIDRs whose X-Forwarded-For is believed" },

	/* relay protocol, API v1 generation (docs/protocol-v1.md) */
	{ "environment", "ENVIRONMENT", NULL, TP_SETTING_STRING, "dev", 1, 32,
	  OFF(environment), NULL, 0,
	  "release environment named by /api/v1/meta (dev, staging, prod)" },
	{ "api_v1_lease", "TOKEN_PLACE_API_V1_RELAY_SERVER_LEASE_SECONDS", NULL,
	  TP_SETTING_INT, "30", 1, 3600, OFF(api_v1_lease_s), NULL, 0,
	  "seconds an API v1 node stays registered without a call" },
	{ "api_v1_poll_wait", "TOKEN_PLACE_API_V1_RELAY_POLL_WAIT_SECONDS", NULL,
	  TP_SETTING_INT, "10", 0, 60, OFF(api_v1_poll_wait_s), NULL, 0,
	  "seconds a node's poll waits for work (0 = answer at once)" },
	{ "api_v1_in_flight_ttl", "TOKEN_PLACE_API_V1_IN_FLIGHT_TTL_SECONDS", NULL,
	  TP_SETTING_INT, "30", 1, 3600, OFF(api_v1_in_flight_ttl_s), NULL, 0,
	  "seconds a claimed request counts as running without a control call" },
	{ "api_v1_deadline", "TOKEN_PLACE_API_V1_REQUEST_DEADLINE_SECONDS", NULL,
	  TP_SETTING_INT, "480", 1, 86400, OFF(api_v1_deadline_s), NULL, 0,
	  "seconds from admission to a request's absolute deadline" },
	{ "api_v1_deadline_min", "TOKEN_PLACE_API_V1_REQUEST_DEADLINE_MIN_SECONDS",
	  NULL, TP_SETTING_INT, "1", 1, 86400, OFF(api_v1_deadline_min_s), NULL, 0,
	  "lower bound of the request deadline" },
	{ "api_v1_deadline_max", "TOKEN_PLACE_API_V1_REQUEST_DEADLINE_MAX_SECONDS",
	  NULL, TP_SETTING_INT, "3600", 1, 86400, OFF(api_v1_deadline_max_s), NULL,
	  0, "upper bound of the request deadline" },
	{ "api_v1_tombstone_ttl", "TOKEN_PLACE_API_V1_CONTROL_TOMBSTONE_TTL_SECONDS",
	  NULL, TP_SETTING_INT, "60", 1, 300, OFF(api_v1_tombstone_ttl_s), NULL, 0,
	  "seconds a node may still learn that its request was taken away" },
	{ "api_v1_node_tombstone_ttl", "TOKENPLACE_API_V1_NODE_TOMBSTONE_TTL_SECONDS",
	  NULL, TP_SETTING_INT, "300", 1, 86400, OFF(api_v1_node_tombstone_ttl_s),
	  NULL, 0, "seconds a removed node's credential still reads its tombstones" },
	{ "api_v1_terminal_ttl", "TOKENPLACE_TERMINAL_REQUEST_TTL_SECONDS", NULL,
	  TP_SETTING_INT, "300", 1, 86400, OFF(api_v1_terminal_ttl_s), NULL, 0,
	  "seconds a cancelled/expired/delivered request is remembered" },
	{ "api_v1_response_ttl", "TOKENPLACE_API_V1_RESPONSE_TTL_SECONDS", NULL,
	  TP_SETTING_INT, "300", 1, 86400, OFF(api_v1_response_ttl_s), NULL, 0,
	  "seconds an accepted response waits for its client" },
	{ "api_v1_reservation_ttl", "TOKENPLACE_API_V1_RESERVATION_TTL_SECONDS",
	  NULL, TP_SETTING_INT, "15", 0, 3600, OFF(api_v1_reservation_ttl_s), NULL,
	  0, "seconds /servers/next holds capacity on the chosen node (0 = none)" },
	{ "api_v1_max_long_polls", "TOKENPLACE_API_V1_MAX_LONG_POLLS", NULL,
	  TP_SETTING_INT, "0", 0, 100000, OFF(api_v1_max_long_polls), NULL, 0,
	  "node polls waiting at once (0 = three quarters of RELAY_THREADS)" },
	{ "api_v1_poll_busy_retry", "TOKENPLACE_API_V1_POLL_BUSY_RETRY_SECONDS",
	  NULL, TP_SETTING_INT, "2", 1, 30, OFF(api_v1_poll_busy_retry_s), NULL, 0,
	  "next_ping_in_x_seconds for a poll over the long-poll cap" },
	{ "require_response_proof", "TOKENPLACE_REQUIRE_RESPONSE_PROOF", NULL,
	  TP_SETTING_BOOL, "false", 0, 0, OFF(require_response_proof), NULL, 0,
	  "/responses must carry server_public_key + control_credential" },
	{ "api_v1_max_nodes", "TOKENPLACE_API_V1_MAX_NODES", NULL, TP_SETTING_INT,
	  "1024", 1, 1000000, OFF(api_v1_max_nodes), NULL, 0,
	  "registered API v1 compute nodes" },
	{ "api_v1_max_requests", "TOKENPLACE_API_V1_MAX_REQUESTS", NULL,
	  TP_SETTING_INT, "4096", 1, 10000000, OFF(api_v1_max_requests), NULL, 0,
	  "API v1 requests queued, running or answered and not yet retrieved" },
	{ "api_v1_max_terminal", "TOKENPLACE_API_V1_MAX_TERMINAL_RECORDS", NULL,
	  TP_SETTING_INT, "16384", 1, 100000000, OFF(api_v1_max_terminal), NULL, 0,
	  "remembered terminal API v1 requests (oldest forgotten first)" },
	{ "api_v1_max_tombstones", "TOKENPLACE_API_V1_MAX_TOMBSTONES", NULL,
	  TP_SETTING_INT, "4096", 1, 10000000, OFF(api_v1_max_tombstones), NULL, 0,
	  "control tombstones kept (oldest forgotten first)" },

	/* state (docs/store-redis.md) */
	{ "state_url", "RELAY_STATE_URL", NULL, TP_SETTING_STRING, "memory://", 1,
	  RELAY_URL_MAX, OFF(state_url), validate_state_url, TP_SETTING_REDACT_URL,
	  "memory:// (one process), or redis://[[user]:password@]host[:port][/db] "
	  "or unix:///path.sock[?db=N] (Redis/Valkey shared by every replica)" },
	{ "state_password", "RELAY_STATE_PASSWORD", NULL, TP_SETTING_STRING, "",
	  0, 511, OFF(state_password), NULL,
	  TP_SETTING_SECRET | TP_SETTING_EMPTY_OK,
	  "Redis/Valkey password when RELAY_STATE_URL carries none" },
	{ "state_prefix", "RELAY_STATE_PREFIX", NULL, TP_SETTING_STRING,
	  "tokenplace:", 1, 100, OFF(state_prefix), validate_state_prefix, 0,
	  "key prefix of this deployment (inside one hash tag: {prefix})" },
	{ "state_connect_timeout_ms", "RELAY_STATE_CONNECT_TIMEOUT_MS", NULL,
	  TP_SETTING_INT, "1000", 10, 60000, OFF(state_connect_timeout_ms), NULL,
	  0, "milliseconds to open a connection to Redis/Valkey" },
	{ "state_command_timeout_ms", "RELAY_STATE_COMMAND_TIMEOUT_MS", NULL,
	  TP_SETTING_INT, "2000", 10, 60000, OFF(state_command_timeout_ms), NULL,
	  0, "longest a state operation waits for Redis/Valkey (503 after)" },
	{ "state_pool_size", "RELAY_STATE_POOL_SIZE", NULL, TP_SETTING_INT, "16",
	  1, 1024, OFF(state_pool_size), NULL, 0,
	  "connections to Redis/Valkey per relay process (plus one for Pub/Sub)" },
	{ "state_time_sample_ms", "RELAY_STATE_TIME_SAMPLE_MS", NULL,
	  TP_SETTING_INT, "2000", 100, 60000, OFF(state_time_sample_ms), NULL, 0,
	  "how often the shared time base re-reads the Redis server's TIME" },
	{ "state_outage_ready", "RELAY_STATE_OUTAGE_READY", NULL,
	  TP_SETTING_BOOL, "false", 0, 0, OFF(state_outage_ready), NULL, 0,
	  "/healthz stays 200 (status degraded) while only the state store is "
	  "down, once the relay has been ready" },

	/* browser page (docs/web.md) */
	{ "web_dir", "RELAY_WEB_DIR", NULL, TP_SETTING_STRING, "", 0, 4096,
	  OFF(web_dir), NULL, 0,
	  "directory with index.html and the page's files, served at / and "
	  "/static/ (empty = no page)" },
	{ "web_max_bytes", "RELAY_WEB_MAX_BYTES", NULL, TP_SETTING_INT,
	  "16777216", 1024, 1073741824, OFF(web_max_bytes), NULL, 0,
	  "bytes of RELAY_WEB_DIR read into memory at most (start refused above)" },
	{ "web_max_files", "RELAY_WEB_MAX_FILES", NULL, TP_SETTING_INT, "1024",
	  1, 100000, OFF(web_max_files), NULL, 0,
	  "files of RELAY_WEB_DIR loaded at most (start refused above)" },
	{ "frontend_mode", "TOKENPLACE_FRONTEND_MODE", NULL, TP_SETTING_STRING,
	  "production", 1, 16, OFF(frontend_mode), validate_frontend_mode, 0,
	  "Vue build the page loads: production (vue.min.js) or development" },
	{ "diagnostics_detail", "RELAY_DIAGNOSTICS_DETAIL", NULL,
	  TP_SETTING_STRING, "counts", 1, 16, OFF(diagnostics_detail),
	  validate_diagnostics_detail, 0,
	  "/relay/diagnostics: counts (empty node lists) or full (keys and "
	  "capabilities)" },
	{ "diagnostics_max_nodes", "RELAY_DIAGNOSTICS_MAX_NODES", NULL,
	  TP_SETTING_INT, "100", 0, 100000, OFF(diagnostics_max_nodes), NULL, 0,
	  "nodes listed per generation by /relay/diagnostics in full mode "
	  "(totals stay exact)" },
	{ "models_source", "RELAY_MODELS_SOURCE", NULL, TP_SETTING_STRING,
	  "nodes", 1, 16, OFF(models_source), validate_models_source, 0,
	  "who answers /api/v1/models and /v1/models: nodes (the relay, from "
	  "live API v1 nodes) or upstream (forwarded)" },
	{ "models_max", "RELAY_MODELS_MAX", NULL, TP_SETTING_INT, "256", 1,
	  65536, OFF(models_max), NULL, 0,
	  "model ids /api/v1/models lists at most (the first in byte order; "
	  "a cut list says has_more)" },
	{ "models_cache_ms", "RELAY_MODELS_CACHE_MS", NULL, TP_SETTING_INT,
	  "1000", 0, 60000, OFF(models_cache_ms), NULL, 0,
	  "how long each relay process reuses the model list it built (0 = "
	  "build it for every request)" },
};

const size_t relay_setting_count =
    sizeof(relay_setting_table) / sizeof(relay_setting_table[0]);

int
relay_settings_load(struct relay_settings *s,
    const struct tp_config_override *overrides, size_t noverrides,
    struct tp_config_report *report)
{
	memset(s, 0, sizeof(*s));
	return tp_config_load(relay_setting_table, relay_setting_count, s, NULL,
	    NULL, overrides, noverrides, report);
}

bool
relay_settings_state_shared(const struct relay_settings *s)
{
	return s->state_url != NULL && strcmp(s->state_url, "memory://") != 0;
}

int
relay_settings_redis_config(const struct relay_settings *s,
    struct relay_redis_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (relay_redis_url_parse(s->state_url, cfg, err, errlen) != 0)
		return -1;
	if (cfg->password[0] == '\0' && s->state_password != NULL)
		snprintf(cfg->password, sizeof(cfg->password), "%s",
		    s->state_password);
	snprintf(cfg->prefix, sizeof(cfg->prefix), "%s", s->state_prefix);
	cfg->connect_timeout_ms = s->state_connect_timeout_ms;
	cfg->command_timeout_ms = s->state_command_timeout_ms;
	cfg->pool_size = (unsigned)s->state_pool_size;
	return 0;
}

void
relay_settings_free(struct relay_settings *s)
{
	tp_config_free(relay_setting_table, relay_setting_count, s);
}

void
relay_settings_warn(const struct relay_settings *s)
{
	struct relay_v1_config v1;

	/*
	 * The per-address limit only protects the pool when one address plus
	 * the API v1 long polls cannot take all of it.
	 */
	relay_v1_config_from_settings(s, &v1);
	if (s->max_pending_heads_per_client > 0 &&
	    s->max_pending_heads_per_client + (int64_t)v1.max_long_polls >=
	    s->threads)
		TP_LOG(TP_LOG_WARNING, "http.per_client_limit_high",
		    TP_LINT("max_pending_heads_per_client",
		    s->max_pending_heads_per_client),
		    TP_LINT("max_long_polls", (int64_t)v1.max_long_polls),
		    TP_LINT("threads", s->threads),
		    TP_LSTR("detail", "one client address and the waiting "
		    "long polls can hold every worker thread; raise "
		    "RELAY_THREADS (docs/hardening.md)"));
}
