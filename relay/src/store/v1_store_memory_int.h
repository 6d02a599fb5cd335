/*
 * v1_store_memory_int.h -- the memory store's records and the helpers its
 * two files share (private to v1_store_memory.c and
 * v1_store_memory_scan.c; nothing else includes it).
 *
 * Every function declared here runs with the store's mutex held.
 */
#ifndef RELAY_V1_STORE_MEMORY_INT_H
#define RELAY_V1_STORE_MEMORY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/dlist.h"
#include "core/hashtab.h"
#include "store/v1_model_index.h"
#include "store/v1_store.h"

/* A node's capabilities as the store keeps them (models packed). */
struct caps {
	enum tp_v1_tier tier;
	int64_t max_context;
	int64_t max_conc;
	size_t nmodels;
	size_t models_len;
	char models[];
};

struct node {
	struct relay_hnode h;
	struct dlink all;		/* registration order */
	struct dlink queue;		/* QUEUED requests, oldest first */
	struct dlink claims;		/* IN_FLIGHT requests */
	struct caps *caps;
	struct relay_v1_model_ref *mref;	/* its places in m->models */
	struct node *next_stale;	/* list_models: found stale, evicted after */
	bool stale_marked;
	unsigned char digest[TP_SHA256_LEN];
	int64_t last_seen;
	int64_t polling_until;
	uint64_t last_selected;		/* select sequence; 0 = never */
	uint64_t nqueued;
	uint64_t nclaimed;
	size_t nres;
	int64_t res[TP_V1_MAX_CONCURRENCY];	/* reservation expiries */
	size_t key_len;
	char key[];
};

enum rstate {
	RS_QUEUED,
	RS_IN_FLIGHT,
	RS_READY,		/* response accepted, waiting for the client */
	RS_TERMINAL,
};

struct req {
	struct relay_hnode h;
	struct dlink link;	/* node queue/claims, ready list or terminal list */
	struct dlink live;	/* QUEUED and IN_FLIGHT: the live list */
	enum rstate state;
	struct node *node;	/* QUEUED and IN_FLIGHT only */
	int64_t admitted;
	int64_t deadline;
	int64_t claimed_at;
	int64_t claim_expires;
	int64_t until;		/* READY: response expiry; TERMINAL: record expiry */
	/*
	 * TERMINAL "completed" with the response still held (body) for a
	 * client whose copy was lost on the way: until when, and its place
	 * in mem.redeliver_list (linked to nothing otherwise).
	 */
	int64_t redeliver_until;
	struct dlink rlink;
	uint64_t generation;
	bool cancellable;
	unsigned char cancel[TP_SHA256_LEN];
	const char *t_status;	/* TERMINAL */
	const char *t_reason;
	char *work;		/* QUEUED */
	size_t work_len;
	char *body;		/* IN_FLIGHT: progress; READY: response */
	size_t body_len;
	size_t client_len, id_len, owner_len;
	char bytes[];		/* client NUL request_id NUL owner-key */
};

/* Control tombstone, keyed node NUL request_id. */
struct tomb {
	struct relay_hnode h;
	struct dlink fifo;
	int64_t expires;
	int64_t deadline;
	const char *status;
	unsigned char digest[TP_SHA256_LEN];
	size_t key_len;
	char key[];
};

/* A recently removed node: its credential still authenticates /control. */
struct ntomb {
	struct relay_hnode h;
	struct dlink fifo;
	int64_t expires;
	unsigned char digest[TP_SHA256_LEN];
	size_t key_len;
	char key[];
};

struct mem {
	struct relay_v1_store pub;
	pthread_mutex_t mu;
	struct relay_hashtab nodes, reqs, tombs, ntombs;
	struct relay_v1_model_index models;	/* model id -> nodes */
	struct dlink node_list, live_list, ready_list, terminal_list;
	struct dlink redeliver_list;	/* by redeliver_until: same window for all */
	struct dlink tomb_list, ntomb_list;
	uint64_t nnodes, nlive, nready, nterminal, ntomb;
	uint64_t select_seq, generation;
};

static inline struct mem *
M(struct relay_v1_store *s)
{
	return s->state;
}

/* A request's id and owner key (NUL-terminated, inside r->bytes). */
static inline const char *
relay_v1mem_req_id(const struct req *r)
{
	return r->bytes + r->client_len + 1;
}

static inline const char *
relay_v1mem_req_owner(const struct req *r)
{
	return r->bytes + r->client_len + 1 + r->id_len + 1;
}

/* ---- v1_store_memory.c ------------------------------------------------------ */

/*
 * Composite hash keys: a NUL b (cJSON strings never contain NUL, so the
 * pair is unambiguous). Returns a malloc'd key and its length, or NULL.
 */
char *relay_v1mem_join_key(const char *a, size_t alen, const char *b,
    size_t blen, size_t *len);

/* Claims of n whose lease is live at now. */
uint64_t relay_v1mem_live_claims(const struct node *n, int64_t now);

/* Drops n's reservations that lapsed by now. */
void relay_v1mem_prune_reservations(struct node *n, int64_t now);

/* Capacity in use: queued + live claims + live reservations. */
uint64_t relay_v1mem_node_used(struct node *n, int64_t now);

/* Silent past its lease, not in a long poll, no claim with a live lease. */
bool relay_v1mem_node_stale(const struct node *n,
    const struct relay_v1_limits *lim, int64_t now);

/* Unregisters or evicts n (freed): its work becomes terminal, owners told. */
void relay_v1mem_node_remove(struct mem *m, const struct relay_v1_limits *lim,
    int64_t now, struct node *n, bool evicted, struct relay_v1_effects *fx);

/* Applies r's expiries; returns r, or NULL when the record was freed. */
struct req *relay_v1mem_req_expire(struct mem *m,
    const struct relay_v1_limits *lim, int64_t now, struct req *r,
    struct relay_v1_effects *fx);

/* Frees a request record, out of every list and table. */
void relay_v1mem_req_free(struct mem *m, struct req *r);

/* ---- v1_store_memory_tomb.c ------------------------------------------------- */

/* Frees a control tombstone / a node tombstone. */
void relay_v1mem_tomb_free(struct mem *m, struct tomb *t);
void relay_v1mem_ntomb_free(struct mem *m, struct ntomb *t);

/* The live control tombstone of (node, id), or NULL (an expired one is freed). */
struct tomb *relay_v1mem_tomb_find(struct mem *m, int64_t now,
    const char *node, size_t node_len, const char *id, size_t id_len);

/*
 * Leaves word for owner of request r (status: "cancelled", "expired"),
 * replacing an older one; the oldest beyond max_tombstones are dropped
 * (fx->dropped_tombstones). Best effort: without memory the owner learns
 * "completed/unavailable" instead.
 */
void relay_v1mem_tomb_add(struct mem *m, const struct relay_v1_limits *lim,
    int64_t now, const struct node *owner, const struct req *r,
    const char *status, struct relay_v1_effects *fx);

/* The live node tombstone of key, or NULL (an expired one is freed). */
struct ntomb *relay_v1mem_ntomb_find(struct mem *m, int64_t now,
    const char *key, size_t key_len);

/* Remembers node n as recently removed (its digest answers /control). */
void relay_v1mem_ntomb_add(struct mem *m, const struct relay_v1_limits *lim,
    int64_t now, const struct node *n);

/*
 * ---- v1_store_memory_scan.c: the operations that look across nodes --------
 * (v1_store.h states their contracts: select, list_nodes, list_models,
 * sweep, stats)
 */

enum relay_v1_rc relay_v1mem_select(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now, const char *model,
    enum tp_v1_tier tier, bool reserve, struct relay_v1_selection *out,
    struct relay_v1_effects *fx);
enum relay_v1_rc relay_v1mem_list_nodes(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now, size_t max, bool keys,
    struct relay_v1_node_list *out, struct relay_v1_effects *fx);
enum relay_v1_rc relay_v1mem_list_models(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now, size_t max,
    const char *only, size_t only_len, struct relay_v1_model_list *out,
    struct relay_v1_effects *fx);
enum relay_v1_rc relay_v1mem_sweep(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now,
    struct relay_v1_effects *fx);
enum relay_v1_rc relay_v1mem_stats(struct relay_v1_store *s,
    const struct relay_v1_limits *lim, int64_t now,
    struct relay_v1_stats *out, struct relay_v1_effects *fx);

#endif /* RELAY_V1_STORE_MEMORY_INT_H */
