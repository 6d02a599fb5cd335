/*
 * relay_settings: every tokenplace-relay setting, loaded once at start-up
 * from the environment (and --host/--port) through tp_config. The struct
 * is immutable after relay_settings_load(); docs/configuration.md lists
 * the same table.
 */
#ifndef RELAY_SETTINGS_H
#define RELAY_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenplace/config.h"

/* Longest URL setting (the upstream and the state store). */
#define RELAY_URL_MAX		2048
/*
 * A URL as tp_config_redact_url() shows it: "***" may stand for a shorter
 * password (or a one-character token), so it can be 3 bytes longer.
 */
#define RELAY_URL_SHOWN_MAX	(RELAY_URL_MAX + 4)
/* Longest RELAY_UPSTREAM_HEALTH_PATH. */
#define RELAY_HEALTH_PATH_MAX	1024
/*
 * Buffers derived from those bounds (sizes, NUL included). The upstream's
 * base URL is TOKENPLACE_RELAY_UPSTREAM_URL or "http://<gpu_host>:<port>"
 * (far shorter); its health URL is the base plus the health path.
 */
#define RELAY_UPSTREAM_URL_SIZE		(RELAY_URL_MAX + 1)
#define RELAY_UPSTREAM_URL_SHOWN_SIZE	RELAY_URL_SHOWN_MAX
#define RELAY_HEALTH_URL_SIZE		(RELAY_URL_MAX + RELAY_HEALTH_PATH_MAX + 1)
#define RELAY_HEALTH_URL_SHOWN_SIZE	(RELAY_URL_SHOWN_MAX + RELAY_HEALTH_PATH_MAX)

struct relay_settings {
	/* service */
	char *host;
	int64_t port;
	int64_t threads;
	int64_t workers;
	int64_t timeout_s;
	int64_t graceful_timeout_s;
	char *log_level;
	int64_t max_body_bytes;
	int64_t max_header_bytes;
	int64_t max_header_count;
	int64_t metrics_max_series;
	int64_t max_discard_bytes;
	int64_t head_timeout_ms;
	int64_t connection_queue;
	int64_t max_connections_per_client;
	int64_t max_pending_heads_per_client;
	int64_t close_linger_ms;
	int64_t json_max_depth;

	/* GPU host and upstream */
	char *gpu_host;
	int64_t gpu_port;
	char *upstream_url;
	bool require_upstream_health;

	/* forwarding to the upstream (upstream/forward.c) */
	bool forward;			/* false: nothing is forwarded */
	char *forward_prefixes;
	char *libcurl;			/* dlopen()ed at the first forward */
	int64_t upstream_connect_timeout_ms;
	int64_t upstream_first_byte_timeout_ms;
	int64_t upstream_idle_timeout_ms;
	int64_t upstream_total_timeout_ms;
	int64_t upstream_max_response_bytes;
	int64_t upstream_max_header_bytes;
	char *upstream_host_header;
	char *upstream_health_path;
	int64_t upstream_health_interval_ms;
	int64_t upstream_health_timeout_ms;
	int64_t upstream_health_failures;
	int64_t upstream_health_successes;
	int64_t upstream_health_max_lookups;
	bool upstream_circuit;
	int64_t upstream_circuit_failures;
	int64_t upstream_circuit_open_ms;

	/* relay protocol (legacy generation) */
	char *server_token;
	char *server_tokens;
	bool legacy_routes;
	int64_t server_ttl_s;
	int64_t server_busy_ttl_s;
	int64_t max_servers;
	int64_t queue_per_server;
	int64_t queue_total;
	int64_t response_ttl_s;
	int64_t response_redelivery_s;
	int64_t max_responses;
	int64_t max_stream_sessions;
	int64_t max_stream_chunks;
	int64_t stream_session_ttl_s;
	int64_t max_key_bytes;
	int64_t faucet_rate_limit;
	int64_t faucet_rate_window_s;
	int64_t faucet_rate_clients;
	char *trusted_proxies;

	/* relay protocol, API v1 generation (v1_broker.c) */
	char *environment;
	int64_t api_v1_lease_s;
	int64_t api_v1_poll_wait_s;
	int64_t api_v1_in_flight_ttl_s;
	int64_t api_v1_deadline_s;
	int64_t api_v1_deadline_min_s;
	int64_t api_v1_deadline_max_s;
	int64_t api_v1_tombstone_ttl_s;
	int64_t api_v1_node_tombstone_ttl_s;
	int64_t api_v1_terminal_ttl_s;
	int64_t api_v1_response_ttl_s;
	int64_t api_v1_reservation_ttl_s;
	int64_t api_v1_max_long_polls;
	int64_t api_v1_poll_busy_retry_s;
	bool require_response_proof;
	int64_t api_v1_max_nodes;
	int64_t api_v1_max_requests;
	int64_t api_v1_max_terminal;
	int64_t api_v1_max_tombstones;

	/* state store (memory:// or Redis/Valkey, docs/store-redis.md) */
	char *state_url;

	/* browser page and the routes it needs (web.c, handlers_web.c) */
	char *web_dir;
	int64_t web_max_bytes;
	int64_t web_max_files;
	char *frontend_mode;
	char *diagnostics_detail;
	int64_t diagnostics_max_nodes;
	char *models_source;
	int64_t models_max;
	int64_t models_cache_ms;
	char *state_password;		/* used when the URL carries none */
	char *state_prefix;		/* key prefix, inside one hash tag */
	int64_t state_connect_timeout_ms;
	int64_t state_command_timeout_ms;
	int64_t state_pool_size;
	int64_t state_time_sample_ms;	/* how often the shared time base reads TIME */
	bool state_outage_ready;	/* /healthz stays 200 while only the store is down */
};

/* The table behind the struct, for --check-config, docs and tests. */
extern const struct tp_setting relay_setting_table[];
extern const size_t relay_setting_count;

/*
 * Loads the settings from the environment with `overrides` (from the
 * command line) taking precedence. Returns tp_config_load()'s result:
 * 0 all valid, -1 some invalid (defaults used in their place, see report),
 * -2 out of memory.
 */
int relay_settings_load(struct relay_settings *s,
    const struct tp_config_override *overrides, size_t noverrides,
    struct tp_config_report *report);

struct relay_redis_config;

/*
 * True when the settings select a shared Redis/Valkey store (anything but
 * memory://).
 */
bool relay_settings_state_shared(const struct relay_settings *s);

/*
 * Fills the adapter configuration from the state settings (URL, then
 * RELAY_STATE_PASSWORD when the URL has no password, prefix, timeouts,
 * pool). Returns 0, or -1 with a reason (never the password) in err.
 */
int relay_settings_redis_config(const struct relay_settings *s,
    struct relay_redis_config *cfg, char *err, size_t errlen);

/* Frees the strings held by s. */
void relay_settings_free(struct relay_settings *s);

/*
 * Logs a warning for each combination of valid settings that works
 * against itself (e.g. a per-address limit that lets one address and the
 * API v1 long polls take every worker thread). Never fails.
 */
void relay_settings_warn(const struct relay_settings *s);

#endif /* RELAY_SETTINGS_H */
