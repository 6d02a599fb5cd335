/*
 * relay_broker: the legacy relay semantics (PROTOCOL.md 1.3-1.5 plus our
 * bounds and eviction) over a relay_store, without HTTP. Handlers parse a
 * body with tp_proto, call one broker function and map its relay_status to
 * a reply.
 *
 * The broker owns: the limits taken from the settings, the clock, the
 * registration-token list, the /faucet rate limiter, periodic sweeping of
 * expired state, and its metrics (gauges of live servers, queued requests,
 * pending responses, open stream sessions and buffered chunks; counters of
 * evictions, expiries, replaced and dropped items). Limit rejections are
 * counted by the caller, which knows the route (relay_status_limit()).
 *
 * Thread safe: every function may be called from any thread at any time
 * between relay_broker_new() and relay_broker_free().
 */
#ifndef RELAY_BROKER_H
#define RELAY_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "tokenplace/proto.h"

struct relay_settings;
struct tp_metrics_registry;

struct relay_broker;

/* Milliseconds, never decreasing (the default is CLOCK_MONOTONIC). */
typedef int64_t (*relay_clock_fn)(void *arg);

/*
 * Creates a broker using `store` (borrowed: it must outlive the broker and
 * is freed by its owner with relay_store_free()) and the limits in
 * `settings` (read now; not kept). When `metrics` is not NULL the broker
 * registers its families there; they call back into the broker when
 * rendered, so the registry must not be rendered after relay_broker_free().
 * Returns NULL when out of memory, when trusted_proxies does not parse
 * (logged), or when a metric name is already taken.
 */
struct relay_broker *relay_broker_new(const struct relay_settings *settings,
    struct relay_store *store, struct tp_metrics_registry *metrics);

/* Frees the broker (not the store). NULL is accepted. */
void relay_broker_free(struct relay_broker *b);

/* Replaces the clock (tests). Call before the broker is shared. */
void relay_broker_set_clock(struct relay_broker *b, relay_clock_fn fn,
    void *arg);

/* The field limits tp_proto parsers need. */
const struct tp_proto_limits *relay_broker_proto_limits(
    const struct relay_broker *b);

/* True when the node-route token header value (NULL: absent) is accepted. */
bool relay_broker_node_authorized(const struct relay_broker *b,
    const char *header);

/*
 * /faucet rate limit: counts one request from the client behind
 * `remote_addr` (X-Forwarded-For is believed only from trusted proxies).
 * RELAY_OK, or RELAY_E_RATE_LIMITED with *retry_after_s (>= 1) set.
 * Always RELAY_OK when the limit is off (faucet_rate_limit 0).
 */
enum relay_status relay_broker_faucet_admit(struct relay_broker *b,
    const char *remote_addr, const char *xff, int64_t *retry_after_s);

/* GET /next_server: *key gets a live server's key (free with relay_blob_free). */
enum relay_status relay_broker_next_server(struct relay_broker *b,
    struct relay_blob *key);

/* POST /faucet: queues the request for a live server. */
enum relay_status relay_broker_faucet(struct relay_broker *b,
    const struct tp_faucet_request *req);

/*
 * POST /sink: heartbeat, then up to max_batch_size jobs (capped by
 * queue_per_server, and by max_body_bytes of job text per reply beyond
 * the first job). Each job's blob is its tp_faucet_encode() text.
 * Free *out with relay_poll_result_free().
 */
enum relay_status relay_broker_sink(struct relay_broker *b,
    const struct tp_sink_request *req, struct relay_poll_result *out);

/* POST /source: stores the response in the client's slot. */
enum relay_status relay_broker_source(struct relay_broker *b,
    const struct tp_source_request *req);

/* POST /retrieve: the response's tp_source_encode() text, handed over once. */
enum relay_status relay_broker_retrieve(struct relay_broker *b,
    const struct tp_client_request *req, struct relay_blob *out);

/* POST /stream/source: appends the chunk's canonical JSON. */
enum relay_status relay_broker_stream_source(struct relay_broker *b,
    const struct tp_stream_source_request *req);

/* POST /stream/retrieve: drains the client's session. */
enum relay_status relay_broker_stream_retrieve(struct relay_broker *b,
    const struct tp_client_request *req, struct relay_drain_result *out);

/* POST /unregister: forgets the server and its queue. */
enum relay_status relay_broker_unregister(struct relay_broker *b,
    const struct tp_unregister_request *req, bool *removed);

/* Current counts, after removing what expired. */
enum relay_status relay_broker_stats(struct relay_broker *b,
    struct relay_store_stats *out);

/*
 * Lists up to `max` live servers (their keys when `keys`) and counts them
 * all, after evictions: store.h's list_servers. Free with
 * relay_server_list_free().
 */
enum relay_status relay_broker_list_servers(struct relay_broker *b,
    size_t max, bool keys, struct relay_server_list *out);

/*
 * The setting name of the limit behind a refusal (the label of
 * tokenplace_relay_limit_rejections_total), or NULL when the status is
 * not a limit.
 */
const char *relay_status_limit(enum relay_status st);

#endif /* RELAY_BROKER_H */
