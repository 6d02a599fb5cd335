/*
 * relay_v1: the API v1 relay semantics (PROTOCOL.md section 4) over a
 * relay_v1_store, without HTTP. handlers_v1.c parses a body with
 * tp_proto_v1, calls one function here and maps the result to a reply.
 *
 * The broker owns: the limits and timers taken from the settings, the
 * clock, secrets handling (control credentials are generated here and
 * only their SHA-256 reaches the store; cancel tokens likewise), long-poll
 * waiting (a condition variable per waiting poll, woken by an enqueue for
 * its node, by unregistration and by draining; at most max_long_polls wait
 * at once), a background sweeper, and the API v1 metrics (counts only: no
 * key or capability ever reaches a label or a body).
 *
 * Thread safe: every function may be called from any thread between
 * relay_v1_new() and relay_v1_free().
 */
#ifndef RELAY_V1_BROKER_H
#define RELAY_V1_BROKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/v1_store.h"

struct relay_redis;
struct relay_settings;
struct tp_metrics_registry;

/* 32 random bytes, base64url without padding (secrets.token_urlsafe(32)). */
#define RELAY_V1_CREDENTIAL_LEN 43

/* Milliseconds, never decreasing (default CLOCK_MONOTONIC). */
typedef int64_t (*relay_v1_clock_fn)(void *arg);

struct relay_v1_config {
	struct relay_v1_limits lim;
	int64_t poll_wait_ms;		/* long-poll wait; 0 = answer at once */
	int64_t deadline_ms;		/* request deadline set at admission */
	int64_t busy_retry_s;		/* next_ping for polls over the cap */
	int64_t max_long_polls;		/* polls waiting at once */
	bool require_proof;		/* /responses must carry the node's proof */
	bool sweeper;			/* run the background sweeper thread */
	const char *server_token;	/* registration tokens (relay_auth_new); */
	const char *server_tokens;	/* read by relay_v1_new only, may be NULL */
	relay_v1_clock_fn clock;	/* NULL: CLOCK_MONOTONIC; the shared */
	void *clock_arg;		/* time base with a Redis store */
};

/*
 * Derives the configuration from the settings: deadline = the default
 * clamped to [min, max]; max_long_polls 0 = three quarters of
 * RELAY_THREADS (at least 1, at most threads - 1), so probes and clients
 * always find a free worker thread.
 */
void relay_v1_config_from_settings(const struct relay_settings *s,
    struct relay_v1_config *cfg);

struct relay_v1;

/*
 * Creates a broker over `store` (owned from now on: freed with the
 * broker; NULL = a new memory store). With `metrics` the broker registers
 * its families there; they call back into it, so the registry must not be
 * rendered after relay_v1_free(). Returns NULL when out of memory, when
 * the sweeper thread cannot start, or when a metric name is taken (the
 * store is then freed too).
 */
struct relay_v1 *relay_v1_new(const struct relay_v1_config *cfg,
    struct relay_v1_store *store, struct tp_metrics_registry *metrics);

/* Stops the sweeper and frees everything. NULL is accepted. */
void relay_v1_free(struct relay_v1 *b);

/* Replaces the clock (tests). Call before the broker is shared. */
void relay_v1_set_clock(struct relay_v1 *b, relay_v1_clock_fn fn, void *arg);

/* True when the X-Relay-Server-Token value (NULL: absent) is accepted. */
bool relay_v1_node_authorized(const struct relay_v1 *b, const char *header);

/* Wakes every waiting long poll and makes new polls answer at once. */
void relay_v1_drain(struct relay_v1 *b);

/*
 * Cross-replica wake-ups (a shared store's subscriber thread calls these;
 * neither blocks beyond the broker's own short lock):
 * relay_v1_wake_id() wakes the long polls of the node whose compact id
 * (relay_v1_node_id) is id; relay_v1_wake_all() makes every waiting poll
 * look at the store again (after a (re)subscription, when messages may
 * have been missed). Both return the number of polls woken.
 */
size_t relay_v1_wake_id(struct relay_v1 *b, const char *id, size_t id_len);
size_t relay_v1_wake_all(struct relay_v1 *b);

/* The broker's configuration (read-only) and clock. */
const struct relay_v1_config *relay_v1_config(const struct relay_v1 *b);
int64_t relay_v1_now(struct relay_v1 *b);

/*
 * The /servers/control hint: min(poll wait, 10, in-flight TTL / 2) in
 * whole seconds, clamped to 1-10 as the HEAD node clamps it.
 */
int64_t relay_v1_next_poll_seconds(const struct relay_v1 *b);

/*
 * Register or renew. When the node is new, `credential` receives its
 * control credential (RELAY_V1_CREDENTIAL_LEN chars + NUL) and *created
 * is set; otherwise credential is "".
 */
enum relay_v1_rc relay_v1_register(struct relay_v1 *b, const char *key,
    size_t key_len, const struct tp_v1_caps *caps,
    char credential[RELAY_V1_CREDENTIAL_LEN + 1], bool *created);

struct relay_v1_poll_result {
	bool has_work;
	struct relay_v1_work work;	/* free work.envelope with relay_blob_free */
	bool busy;			/* over max_long_polls: answered at once */
	bool draining;			/* woken because the relay is draining */
};

/*
 * Long poll: claims work at once if there is any, else waits up to the
 * poll wait for an enqueue to this node (or unregistration, or drain).
 * V1_E_UNKNOWN_NODE when the node is not (or no longer) registered.
 */
enum relay_v1_rc relay_v1_poll(struct relay_v1 *b, const char *key,
    size_t key_len, const struct tp_v1_caps *caps,
    struct relay_v1_poll_result *out);

/* GET /servers/next (with a reservation when the TTL is not 0). */
enum relay_v1_rc relay_v1_select(struct relay_v1 *b, const char *model,
    enum tp_v1_tier tier, struct relay_v1_selection *out);

/*
 * POST /requests: admits the envelope for its node (deadline = now +
 * deadline_ms, or the first one's for a retried duplicate) and wakes the
 * node's long polls.
 */
enum relay_v1_rc relay_v1_enqueue(struct relay_v1 *b,
    const struct tp_v1_envelope *e, int64_t *deadline_ms, bool *duplicate);

enum relay_v1_rc relay_v1_control(struct relay_v1 *b,
    const struct tp_v1_control *c, enum relay_v1_control_state *state,
    int64_t *deadline_ms);

enum relay_v1_rc relay_v1_cancel(struct relay_v1 *b,
    const struct tp_v1_cancel *c, int *removed);

/* POST /responses; *gone is set for V1_E_GONE. */
enum relay_v1_rc relay_v1_respond(struct relay_v1 *b,
    const struct tp_v1_envelope *e, bool *duplicate, const char **gone);

enum relay_v1_rc relay_v1_progress(struct relay_v1 *b,
    const struct tp_v1_progress *p);

/* Free out->body with relay_blob_free(). */
enum relay_v1_rc relay_v1_retrieve(struct relay_v1 *b,
    const struct tp_v1_retrieve *r, struct relay_v1_retrieval *out);

/* Removes the node and wakes its long polls (which then answer 404). */
enum relay_v1_rc relay_v1_unregister(struct relay_v1 *b,
    const struct tp_v1_unregister *u, bool *removed);

/* Counts, after applying expiries. */
enum relay_v1_rc relay_v1_stats(struct relay_v1 *b, struct relay_v1_stats *out);

/*
 * Up to `max` live nodes (keys when `keys`) and the count of all, after
 * expiries: v1_store.h's list_nodes. Free with relay_v1_node_list_free().
 */
enum relay_v1_rc relay_v1_list_nodes(struct relay_v1 *b, size_t max,
    bool keys, struct relay_v1_node_list *out);

/*
 * The model list after expiries (v1_store.h's list_models): at most max
 * ids, or with `only` that id alone when a live node serves it. Free with
 * relay_v1_model_list_free().
 */
enum relay_v1_rc relay_v1_list_models(struct relay_v1 *b, size_t max,
    const char *only, size_t only_len, struct relay_v1_model_list *out);

/* Long polls waiting right now. */
long relay_v1_long_polls(struct relay_v1 *b);

/*
 * What /healthz shows of the API v1 state (counts only: never a node's
 * key or capabilities, PROTOCOL.md 4.8). The ops handler formats it.
 */
struct relay_v1_health {
	struct relay_v1_stats counts;	/* relay_v1_stats(), after expiries */
	long long_polls;		/* relay_v1_long_polls() */
	int64_t max_long_polls;		/* the effective cap (config) */
};

/*
 * Fills *out. Returns V1_OK, or relay_v1_stats()'s error (the store
 * cannot be read), *out then zeroed and not to be shown.
 */
enum relay_v1_rc relay_v1_health_stats(struct relay_v1 *b,
    struct relay_v1_health *out);

/* Runs one sweep now (tests; the sweeper thread does this periodically). */
void relay_v1_sweep(struct relay_v1 *b);

/*
 * The limit behind a refusal, as the label of
 * tokenplace_relay_limit_rejections_total, or NULL.
 */
const char *relay_v1_rc_limit(enum relay_v1_rc rc);

#endif /* RELAY_V1_BROKER_H */
