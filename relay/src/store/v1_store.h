/*
 * relay_v1_store: the API v1 relay state (PROTOCOL.md section 4.4) behind
 * one interface, so the embedded in-memory store (v1_store_memory.c) and the
 * shared Redis/Valkey store (v1_store_redis.c) swap under the API v1 broker.
 *
 * State: compute nodes keyed by public key (capabilities, SHA-256 of the
 * control credential, lease, long-poll mark, FIFO of queued requests,
 * claims, anonymous reservations); requests keyed by (client key,
 * request_id) moving QUEUED -> IN_FLIGHT -> RESPONSE_READY -> TERMINAL;
 * control tombstones keyed by (node key, request_id) for owners that must
 * learn of a cancellation; node tombstones ("recently unregistered").
 *
 * Contract for every implementation (the same as relay_store's):
 *   - Every operation is ONE atomic transition: nobody sees a state in
 *     between (the memory store holds one mutex; the Redis store runs
 *     one Lua script per call). In particular reservation of a node's
 *     capacity and enqueue are one step, so max_concurrency holds however
 *     many clients ask at once.
 *   - Time comes in as now_ms (milliseconds, never decreasing); limits come
 *     in with every call (struct relay_v1_limits). Stores keep no clock and
 *     no configuration, which also makes them testable.
 *   - Before it acts, an operation applies what has expired among the
 *     entries it looks up (a stale node is evicted, a request past its
 *     deadline is terminal, a response past its TTL is gone), so outcomes
 *     never depend on when sweep() last ran.
 *   - Secrets are never stored: control credentials and cancel tokens come
 *     in as SHA-256 digests (TP_SHA256_LEN bytes) and are compared in
 *     constant time.
 *   - What changed on the way (outcomes, evictions, expiries) is added to
 *     *fx (which may be NULL), for the broker's counters.
 *   - Bytes handed out (struct relay_blob) belong to the caller.
 */
#ifndef RELAY_V1_STORE_H
#define RELAY_V1_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"			/* struct relay_blob */
#include "core/keyname.h"
#include "tokenplace/proto_v1.h"
#include "tokenplace/sha256.h"

enum relay_v1_rc {
	V1_OK = 0,
	V1_E_NOMEM,		/* out of memory */
	V1_E_UNAVAILABLE,	/* the store's backend cannot be reached */
	V1_E_UNKNOWN_NODE,	/* not registered (or just evicted) */
	V1_E_NODES_FULL,	/* register: max_nodes live nodes */
	V1_E_FORBIDDEN,		/* credential, cancel proof or owner mismatch */
	V1_E_NO_NODES,		/* select: no API v1 node at all */
	V1_E_NO_MATCH,		/* select: none serves the model/tier */
	V1_E_NO_CAPACITY,	/* select/enqueue: every match is at max_concurrency */
	V1_E_REQUESTS_FULL,	/* enqueue: max_requests live requests */
	V1_E_CONFLICT,		/* enqueue: request_id already used otherwise */
	V1_E_GONE,		/* responses: terminal or unknown, see status */
	V1_E_NOT_ACTIVE,	/* progress: not in flight for this owner */
	V1_E_EXPIRED,		/* progress: past its deadline */
};

struct relay_v1_limits {
	int64_t lease_ms;		/* node silent longer -> evicted */
	int64_t in_flight_ttl_ms;	/* claim lease, renewed by /control */
	int64_t tombstone_ttl_ms;	/* control tombstones */
	int64_t node_tombstone_ttl_ms;	/* "recently unregistered" */
	int64_t terminal_ttl_ms;	/* cancelled/expired/completed memory */
	int64_t response_ttl_ms;	/* undelivered responses */
	int64_t reservation_ttl_ms;	/* select's hold on a node's capacity */
	int64_t redeliver_ms;		/* a delivered response kept for a retry (0 = not) */
	uint64_t max_nodes;
	uint64_t max_requests;		/* queued + in flight + response ready */
	uint64_t max_terminal;		/* terminal records (oldest dropped) */
	uint64_t max_tombstones;	/* control tombstones (oldest dropped) */
};

enum relay_v1_outcome {
	V1_OUTCOME_COMPLETED = 0,
	V1_OUTCOME_CANCELLED,
	V1_OUTCOME_EXPIRED,
	V1_OUTCOME_COUNT,
};

enum relay_v1_control_state {
	V1_CTL_ACTIVE = 0,
	V1_CTL_CANCELLED,
	V1_CTL_EXPIRED,
	V1_CTL_COMPLETED,		/* "completed/unavailable" */
	V1_CTL_COUNT,
};

struct relay_v1_effects {
	uint64_t outcomes[V1_OUTCOME_COUNT];	/* each request counted once */
	uint64_t evicted_nodes;		/* lease lapsed */
	uint64_t unregistered_nodes;
	uint64_t expired_responses;	/* never retrieved within response TTL */
	uint64_t dropped_terminal;	/* terminal records pushed out at max */
	uint64_t dropped_tombstones;	/* tombstones pushed out at max */
	uint64_t lease_renewals;	/* /control renewed a claim */
	uint64_t acknowledged;		/* tombstones acknowledged */
	uint64_t redelivered;		/* a response handed out again */
};

/*
 * Counts in struct relay_v1_effects (outcomes included): the Redis
 * store's scripts answer this many, in the struct's order.
 */
#define RELAY_V1_EFFECTS_COUNT 11
_Static_assert(sizeof(struct relay_v1_effects) ==
    RELAY_V1_EFFECTS_COUNT * sizeof(uint64_t),
    "RELAY_V1_EFFECTS_COUNT follows struct relay_v1_effects");

struct relay_v1_stats {
	uint64_t nodes;			/* registered */
	uint64_t queued;
	uint64_t in_flight;		/* claimed, lease live */
	uint64_t responses;		/* accepted, not yet retrieved */
	uint64_t reservations;
	uint64_t terminal;
	uint64_t tombstones;
	int64_t oldest_queued_ms;	/* age, 0 when none */
	int64_t oldest_in_flight_ms;
};

/* Work handed to a node by poll. */
struct relay_v1_work {
	struct relay_blob envelope;	/* tp_v1_work_encode() text */
	int64_t deadline_ms;
	uint64_t generation;		/* claim generation, increasing */
};

/* What select chose (GET /servers/next). */
struct relay_v1_selection {
	struct relay_blob key;		/* the node's public key */
	struct relay_blob models;	/* its model ids, each NUL-ended */
	size_t nmodels;
	enum tp_v1_tier tier;
	int64_t context_tokens;
	size_t eligible_nodes;
	size_t eligible_per_tier[TP_V1_TIER_COUNT];
	uint64_t queue_depth;
	uint64_t in_flight;
	double load_score;		/* (queued + in flight + reserved) / max_concurrency */
	bool spillover;			/* a larger tier than asked for */
};

/*
 * One live node as list_nodes reports it (/relay/diagnostics and the
 * model list). Every pointer is the caller's: relay_v1_node_list_free().
 */
struct relay_v1_node_info {
	char *key;			/* NULL unless keys were asked for */
	size_t key_len;
	int64_t age_ms;			/* since its last register/poll */
	uint64_t queued;
	uint64_t in_flight;		/* claims with a live lease */
	uint64_t reserved;		/* live /servers/next reservations */
	int64_t max_concurrency;
	enum tp_v1_tier tier;
	int64_t max_context;
	size_t nmodels;
	char *models;			/* nmodels ids, each NUL-ended */
	size_t models_len;
};

struct relay_v1_node_list {
	struct relay_v1_node_info *nodes;	/* registration order */
	size_t n;
	uint64_t total;			/* live nodes, listed or not */
};

/*
 * The model list (list_models): the ids at least one live node serves,
 * in byte order (strcmp), each once.
 */
struct relay_v1_model_list {
	char *ids;			/* n ids, each NUL-ended, packed */
	size_t ids_len;
	size_t n;
	bool more;			/* more ids exist past the ones listed */
};

struct relay_v1_enqueue_in {
	const char *node;
	size_t node_len;
	const char *client;
	size_t client_len;
	const char *request_id;
	size_t request_id_len;
	const char *work;		/* tp_v1_work_encode() text, copied */
	size_t work_len;
	const unsigned char *cancel_digest;	/* NULL: not cancellable */
	int64_t deadline_ms;
};

struct relay_v1_response_in {
	const char *client;
	size_t client_len;
	const char *request_id;
	size_t request_id_len;
	const char *response;		/* tp_v1_response_encode() text, copied */
	size_t response_len;
	const char *node;		/* proof: NULL when none was sent */
	size_t node_len;
	const unsigned char *cred_digest;
	bool require_proof;
};

enum relay_v1_retrieval_kind {
	V1_RET_UNKNOWN = 0,		/* no such request (or delivered before) */
	V1_RET_RESPONSE,		/* body = response; now delivered */
	V1_RET_PENDING,			/* body = latest progress, or empty */
	V1_RET_TERMINAL,		/* cancelled/expired: status, reason */
};

struct relay_v1_retrieval {
	enum relay_v1_retrieval_kind kind;
	struct relay_blob body;
	int64_t deadline_ms;
	const char *status;		/* static */
	const char *reason;		/* static */
};

struct relay_v1_store;

struct relay_v1_store_ops {
	const char *name;

	/*
	 * Registers node `key` with capabilities `caps`, or renews a live
	 * one (capabilities replaced, last-seen refreshed). A new node keeps
	 * `new_digest` as its credential digest and *created is set: only
	 * then may the caller reveal the credential. A live node keeps its
	 * digest (never rotated). V1_E_NODES_FULL when a new node would
	 * exceed max_nodes.
	 */
	enum relay_v1_rc (*register_node)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len,
	    const unsigned char new_digest[TP_SHA256_LEN],
	    const struct tp_v1_caps *caps, bool *created,
	    struct relay_v1_effects *fx);

	/*
	 * A poll by node `key`: refreshes last-seen, marks the node as
	 * long-polling until polling_until_ms (protecting it from eviction),
	 * replaces capabilities when caps is not NULL, then claims the oldest
	 * queued request that is still before its deadline (expired ones
	 * become terminal on the way). *has_work tells whether *work was
	 * filled. V1_E_UNKNOWN_NODE when the node is not registered.
	 */
	enum relay_v1_rc (*poll)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, const struct tp_v1_caps *caps,
	    int64_t polling_until_ms, struct relay_v1_work *work,
	    bool *has_work, struct relay_v1_effects *fx);

	/*
	 * Picks a node for model/tier: eligible nodes serve the model at a
	 * tier >= `tier`; among those with free capacity (queued + claimed +
	 * reserved < max_concurrency) the smallest tier, then the lowest
	 * load, then the least recently selected wins (round robin among
	 * ties). With reserve, one unit of the winner's capacity is held for
	 * reservation_ttl_ms, consumed by the next enqueue to it.
	 */
	enum relay_v1_rc (*select)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *model, enum tp_v1_tier tier, bool reserve,
	    struct relay_v1_selection *out, struct relay_v1_effects *fx);

	/*
	 * Admits a request for a node in one step with its capacity: takes
	 * a reservation if the node has one, else needs free capacity
	 * (V1_E_NO_CAPACITY). A retry of a live request with the same node
	 * and work is accepted again without a second copy (*duplicate, and
	 * *deadline_ms is the first one's); any other reuse of the
	 * (client, request_id) pair, or of request_id on the same node, is
	 * V1_E_CONFLICT.
	 */
	enum relay_v1_rc (*enqueue)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const struct relay_v1_enqueue_in *in, bool *duplicate,
	    int64_t *deadline_ms, struct relay_v1_effects *fx);

	/*
	 * /servers/control for node `key` (credential digest NULL = none
	 * sent): the node's live claim on request_id is renewed to
	 * min(now + in_flight_ttl, deadline) (V1_CTL_ACTIVE), or expired
	 * when its deadline passed; else a tombstone answers (deleted when
	 * `ack`); else V1_CTL_COMPLETED. V1_E_FORBIDDEN when the digest is
	 * not the live node's (or, for a gone node, its tombstone's).
	 */
	enum relay_v1_rc (*control)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, const unsigned char *cred_digest,
	    const char *request_id, size_t request_id_len, bool ack,
	    enum relay_v1_control_state *state, int64_t *deadline_ms,
	    struct relay_v1_effects *fx);

	/*
	 * Cancels a queued or claimed request whose cancel digest matches
	 * (V1_E_FORBIDDEN otherwise, also for requests that are not live).
	 * A claimed one leaves a tombstone for its owner. *removed is 1 when
	 * it was still queued.
	 */
	enum relay_v1_rc (*cancel)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *client, size_t client_len, const char *request_id,
	    size_t request_id_len, const unsigned char *token_digest,
	    enum tp_v1_status status, const char *reason, int *removed,
	    struct relay_v1_effects *fx);

	/*
	 * Accepts a node's response. With a proof (node + digest) the node
	 * must be the one holding the request, with its credential, else
	 * V1_E_FORBIDDEN; without one, V1_E_FORBIDDEN when require_proof.
	 * V1_E_GONE with *gone = "cancelled", "expired", "completed" or
	 * "gone" when nothing waits for it. A second copy of an accepted
	 * response is *duplicate.
	 */
	enum relay_v1_rc (*accept_response)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const struct relay_v1_response_in *in, bool *duplicate,
	    const char **gone, struct relay_v1_effects *fx);

	/*
	 * Replaces the latest progress of a request claimed by node `key`
	 * (credential checked: V1_E_FORBIDDEN). V1_E_EXPIRED past the
	 * deadline, V1_E_NOT_ACTIVE when this node does not hold it.
	 */
	enum relay_v1_rc (*progress)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, const unsigned char *cred_digest,
	    const char *client, size_t client_len, const char *request_id,
	    size_t request_id_len, const char *envelope, size_t envelope_len,
	    struct relay_v1_effects *fx);

	/*
	 * A client's pickup: the response (the request is then remembered as
	 * completed; the same client key and request_id get the response
	 * again for redeliver_ms after that, in case the first copy was lost
	 * on the way, counted in fx->redelivered; later, unknown), or pending
	 * with the latest progress (handed over once), or terminal, or
	 * unknown. V1_E_NOMEM when a copy of the response cannot be made.
	 */
	enum relay_v1_rc (*retrieve)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *client, size_t client_len, const char *request_id,
	    size_t request_id_len, struct relay_v1_retrieval *out,
	    struct relay_v1_effects *fx);

	/*
	 * Removes node `key` (digest must match: V1_E_FORBIDDEN); absent is
	 * fine (*removed false). Its queued requests become cancelled
	 * (server_unregistered), its claims too, each with a tombstone.
	 */
	enum relay_v1_rc (*unregister)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, const unsigned char *cred_digest,
	    bool *removed, struct relay_v1_effects *fx);

	/* True when node `key` is registered (no side effects). */
	bool (*node_exists)(struct relay_v1_store *s, const char *key,
	    size_t key_len);

	/*
	 * Lists up to `max` live nodes in registration order after applying
	 * every expiry due (so a node that left or lapsed is never listed),
	 * with their public keys only when `keys` (without, no key leaves the
	 * store at all: the Redis script does not send them); out->total
	 * counts every live node. The answer is derived from the shared state
	 * alone, so every replica gives the same one. Costs O(max) nodes: the
	 * model list uses list_models, not this.
	 */
	enum relay_v1_rc (*list_nodes)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms, size_t max,
	    bool keys, struct relay_v1_node_list *out,
	    struct relay_v1_effects *fx);

	/*
	 * The model list, from the per-model index (never a walk of every
	 * node): the first `max` ids in byte order of the models that at
	 * least one live node serves, out->more set when more exist. With
	 * `only` (a lower-cased model id of `only_len` bytes) the list is
	 * that id alone when a live node serves it, else empty; max does not
	 * apply. A node met on the way whose lease lapsed is evicted first,
	 * so it never keeps a model listed; no node key or node data leaves
	 * the store. The answer is derived from the shared state alone, so
	 * every replica gives the same one. Work: O(models listed) when no
	 * node is stale; each lapsed node is evicted once. Free with
	 * relay_v1_model_list_free(). V1_E_NOMEM, V1_E_UNAVAILABLE.
	 */
	enum relay_v1_rc (*list_models)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms, size_t max,
	    const char *only, size_t only_len, struct relay_v1_model_list *out,
	    struct relay_v1_effects *fx);

	/* Applies every expiry due at now_ms. */
	enum relay_v1_rc (*sweep)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    struct relay_v1_effects *fx);

	/* Counts (after applying expiries). */
	enum relay_v1_rc (*stats)(struct relay_v1_store *s,
	    const struct relay_v1_limits *lim, int64_t now_ms,
	    struct relay_v1_stats *out, struct relay_v1_effects *fx);

	void (*destroy)(struct relay_v1_store *s);
};

struct relay_v1_store {
	const struct relay_v1_store_ops *ops;
	void *state;
};

/*
 * The embedded store: all state in this process under one mutex. Returns
 * NULL when out of memory (or no randomness for its hash keys).
 */
struct relay_v1_store *relay_v1_store_memory_new(void);

struct relay_redis;

/*
 * The shared store on Redis/Valkey (v1_store_redis.c): every operation is
 * one Lua script run through the adapter `r`, which stays the caller's
 * (destroy() frees only the store's own memory). Enqueue and unregister
 * publish a wake-up on "<prefix>wake:<node id>" (relay_v1_node_id()).
 * Returns NULL when out of memory.
 */
struct relay_v1_store *relay_v1_store_redis_new(struct relay_redis *r);

#define RELAY_V1_NODE_ID_LEN RELAY_KEYNAME_LEN

/*
 * How often sweep() runs: the broker calls it at most once per interval
 * per process, and the Redis store lets one call per interval through for
 * the whole cluster (the others return at once).
 */
#define RELAY_V1_SWEEP_INTERVAL_MS 250

/*
 * A node's compact id: relay_keyname() of its public key (the first 32 hex
 * digits of its SHA-256). The Redis store keys a node by it and names its
 * wake-up channel after it; the broker files long polls under it, so a
 * wake-up message finds its waiters without the key.
 */
static inline void
relay_v1_node_id(const char *key, size_t key_len,
    char out[RELAY_V1_NODE_ID_LEN + 1])
{
	relay_keyname(key, key_len, out);
}

static inline void
relay_v1_store_free(struct relay_v1_store *s)
{
	if (s != NULL)
		s->ops->destroy(s);
}

static inline void
relay_v1_selection_free(struct relay_v1_selection *sel)
{
	relay_blob_free(&sel->key);
	relay_blob_free(&sel->models);
}

static inline void
relay_v1_node_list_free(struct relay_v1_node_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->nodes[i].key);
		free(l->nodes[i].models);
	}
	free(l->nodes);
	l->nodes = NULL;
	l->n = 0;
	l->total = 0;
}

static inline void
relay_v1_model_list_free(struct relay_v1_model_list *l)
{
	free(l->ids);
	l->ids = NULL;
	l->ids_len = 0;
	l->n = 0;
	l->more = false;
}

#endif /* RELAY_V1_STORE_H */
