/*
 * v1_store_redis.c -- the shared relay_v1_store on Redis/Valkey, so that
 * several relay replicas serve API v1 from one state.
 *
 * Every operation is ONE Lua script (v1_store_redis.lua, embedded at build
 * time and registered once per operation with relay_redis_script), run
 * with EVALSHA through the adapter (redis.c). A script runs alone on the
 * server, which gives the contract's atomicity across replicas: limits
 * (max_nodes, max_requests, max_concurrency with its reservations,
 * terminal records, tombstones) hold for all replicas at once exactly as
 * under the memory store's mutex. The script's answer is the only truth.
 *
 * The contract of v1_store.h holds sentence by sentence:
 *   - time comes in as now_ms (ARGV[1]); the scripts never read a clock;
 *   - limits come in with every call (ARGV[2..12]);
 *   - an operation applies the expiries of what it looks up before it
 *     acts (the same helpers as sweep);
 *   - secrets arrive as SHA-256 digests and only digests are stored; the
 *     scripts compare them byte-exactly (constant time is moot inside
 *     Redis: see digest_ok in the Lua);
 *   - effects come back in each reply and are added to *fx;
 *   - bytes handed out are copies owned by the caller.
 *
 * Each call's work is bounded: nodes are found through a per-model set,
 * due times live in sorted sets per kind (node stale-at, deadlines,
 * response TTLs, terminal records, tombstones, reservations), and sweep
 * handles at most 128 entries per kind per script call (the C side calls
 * again while a batch came back full). One replica per 250 ms sweeps
 * (a due time under the prefix); the others' sweeps return at once. Node and request keys are compact
 * hashes computed here (relay_v1_node_id, request_rid), so a long public
 * key never becomes part of a key name or a channel name.
 *
 * Wake-ups: enqueue and unregister PUBLISH on "<prefix>wake:<node id>";
 * the broker's subscriber wakes that node's local long polls.
 *
 * destroy() frees this store only: the adapter belongs to main.
 */
#include "store/v1_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis.h"
#include "redis/redis_args.h"
#include "tokenplace/log.h"

/* The Lua library, embedded by CMake (cmake/EmbedText.cmake). */
extern const char relay_v1_store_redis_lua[];

enum op {
	OP_REGISTER = 0,
	OP_POLL,
	OP_SELECT,
	OP_ENQUEUE,
	OP_CONTROL,
	OP_CANCEL,
	OP_ACCEPT_RESPONSE,
	OP_PROGRESS,
	OP_RETRIEVE,
	OP_UNREGISTER,
	OP_NODE_EXISTS,
	OP_SWEEP,
	OP_STATS,
	OP_LIST_NODES,
	OP_LIST_MODELS,
	OP_COUNT,
};

static const char *const op_names[OP_COUNT] = {
	"register", "poll", "select", "enqueue", "control", "cancel",
	"accept_response", "progress", "retrieve", "unregister",
	"node_exists", "sweep", "stats", "list_nodes", "list_models",
};

/*
 * Past maxmemory (the docs require noeviction) the server refuses a
 * script whole, before it runs, unless its shebang says allow-oom. The
 * operations that add data (a node, a reservation, a request, a response,
 * progress) are refused (503, nothing half done); those that take data out,
 * expire it or only change it in place still run, so nodes keep claiming
 * and clients keep collecting, which is what frees memory.
 */
static const bool op_allow_oom[OP_COUNT] = {
	[OP_POLL] = true, [OP_CONTROL] = true, [OP_CANCEL] = true,
	[OP_RETRIEVE] = true, [OP_UNREGISTER] = true, [OP_NODE_EXISTS] = true,
	[OP_SWEEP] = true, [OP_STATS] = true, [OP_LIST_NODES] = true,
	[OP_LIST_MODELS] = true,
};

struct rstore {
	struct relay_v1_store pub;
	struct relay_redis *r;
	const char *prefix;
	size_t prefix_len;
	int sid[OP_COUNT];
};

#define RID_LEN RELAY_KEYNAME_LEN
#define TTL_GRACE_MS 60000	/* backstop TTL beyond the logical lifetime */
#define SWEEP_ROUNDS 64		/* full batches per sweep() before yielding */

static struct rstore *
R(struct relay_v1_store *s)
{
	return s->state;
}

static void
call_begin(struct relay_redis_args *c, const struct relay_v1_limits *lim,
    int64_t now)
{
	relay_redis_args_reset(c);
	relay_redis_args_int(c, now);
	relay_redis_args_int(c, lim->lease_ms);
	relay_redis_args_int(c, lim->in_flight_ttl_ms);
	relay_redis_args_int(c, lim->tombstone_ttl_ms);
	relay_redis_args_int(c, lim->node_tombstone_ttl_ms);
	relay_redis_args_int(c, lim->terminal_ttl_ms);
	relay_redis_args_int(c, lim->response_ttl_ms);
	relay_redis_args_int(c, lim->reservation_ttl_ms);
	relay_redis_args_uint(c, lim->max_nodes);
	relay_redis_args_uint(c, lim->max_requests);
	relay_redis_args_uint(c, lim->max_terminal);
	relay_redis_args_uint(c, lim->max_tombstones);
	relay_redis_args_int(c, TTL_GRACE_MS);
}

static void
arg_caps(struct relay_redis_args *c, const struct tp_v1_caps *caps)
{
	relay_redis_args_int(c, (int64_t)caps->tier);
	relay_redis_args_int(c, caps->max_context_tokens);
	relay_redis_args_int(c, caps->max_concurrency);
	relay_redis_args_int(c, (int64_t)caps->nmodels);
	relay_redis_args_bytes(c, caps->models, caps->models_len);
}

/* relay_keyname2(client, request_id): the request's key. */
static void
request_rid(const char *client, size_t client_len, const char *id,
    size_t id_len, char out[RID_LEN + 1])
{
	relay_keyname2(client, client_len, id, id_len, out);
}

static enum relay_v1_rc
map_rc(enum relay_redis_rc rc)
{
	switch (rc) {
	case RELAY_REDIS_OK:
		return V1_OK;
	case RELAY_REDIS_E_NOMEM:
		return V1_E_NOMEM;
	default:
		/* down, OOM, auth, script or protocol: 503, nothing changed */
		return V1_E_UNAVAILABLE;
	}
}

/* A copy of string element i as a blob (an absent element: empty blob). */
static int
el_blob(const struct relay_redis_reply *rep, size_t i, struct relay_blob *b)
{
	const struct relay_redis_reply *e = relay_redis_reply_str(rep, i);
	size_t len = e != NULL ? e->len : 0;
	char *p = malloc(len + 1);

	if (p == NULL)
		return -1;
	if (len > 0)
		memcpy(p, e->str, len);
	p[len] = '\0';
	b->data = b->mem = p;
	b->len = len;
	return 0;
}

/*
 * Runs op with c's arguments: on success *rep holds { rc, fx, ... } with
 * the effects already added to fx, and the script's rc is returned.
 */
static enum relay_v1_rc
run(struct rstore *st, enum op op, struct relay_redis_args *c,
    struct relay_redis_reply *rep, struct relay_v1_effects *fx)
{
	const char *keys[1] = { st->prefix };
	size_t keyl[1] = { st->prefix_len };
	enum relay_redis_rc rrc;
	const struct relay_redis_reply *f;
	long long rc;

	memset(rep, 0, sizeof(*rep));
	if (!relay_redis_args_ok(c))
		return V1_E_UNAVAILABLE;	/* unreachable: no op has 32 */
	rrc = relay_redis_eval(st->r, st->sid[op], 1, keys, keyl, c->n, c->v,
	    c->len, rep);
	if (rrc != RELAY_REDIS_OK)
		return map_rc(rrc);
	if (rep->type != RELAY_REDIS_ARRAY || rep->n < 2 ||
	    rep->elem[0].type != RELAY_REDIS_INT ||
	    rep->elem[1].type != RELAY_REDIS_ARRAY || rep->elem[1].n != RELAY_V1_EFFECTS_COUNT) {
		TP_LOG(TP_LOG_ERROR, "relay.api_v1.store_reply_invalid",
		    TP_LSTR("operation", op_names[op]));
		relay_redis_reply_free(rep);
		memset(rep, 0, sizeof(*rep));
		return V1_E_UNAVAILABLE;
	}
	f = &rep->elem[1];
	if (fx != NULL) {
		fx->outcomes[V1_OUTCOME_COMPLETED] += (uint64_t)relay_redis_reply_int(f, 0);
		fx->outcomes[V1_OUTCOME_CANCELLED] += (uint64_t)relay_redis_reply_int(f, 1);
		fx->outcomes[V1_OUTCOME_EXPIRED] += (uint64_t)relay_redis_reply_int(f, 2);
		fx->evicted_nodes += (uint64_t)relay_redis_reply_int(f, 3);
		fx->unregistered_nodes += (uint64_t)relay_redis_reply_int(f, 4);
		fx->expired_responses += (uint64_t)relay_redis_reply_int(f, 5);
		fx->dropped_terminal += (uint64_t)relay_redis_reply_int(f, 6);
		fx->dropped_tombstones += (uint64_t)relay_redis_reply_int(f, 7);
		fx->lease_renewals += (uint64_t)relay_redis_reply_int(f, 8);
		fx->acknowledged += (uint64_t)relay_redis_reply_int(f, 9);
		fx->redelivered += (uint64_t)relay_redis_reply_int(f, 10);
	}
	rc = rep->elem[0].integer;
	if (rc < V1_OK || rc > V1_E_EXPIRED) {
		TP_LOG(TP_LOG_ERROR, "relay.api_v1.store_reply_invalid",
		    TP_LSTR("operation", op_names[op]));
		return V1_E_UNAVAILABLE;
	}
	return (enum relay_v1_rc)rc;
}

/* The static string the memory store would hold for a stored status/reason. */
static const char *
static_status(const struct relay_redis_reply *rep, size_t i)
{
	static const char *const known[] = { "cancelled", "expired",
	    "completed" };
	size_t k;

	for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
		if (relay_redis_reply_is(rep, i, known[k]))
			return known[k];
	return "gone";
}

static const char *
static_reason(const struct relay_redis_reply *rep, size_t i,
    const char *status)
{
	static const char *const extra[] = { "delivered",
	    "response_ttl_exceeded" };
	const struct relay_redis_reply *e = relay_redis_reply_str(rep, i);
	size_t k;

	for (k = 0; k < sizeof(extra) / sizeof(extra[0]); k++)
		if (relay_redis_reply_is(rep, i, extra[k]))
			return extra[k];
	return tp_v1_reason_sanitise(e != NULL ? e->str : NULL,
	    strcmp(status, "expired") == 0 ? TP_V1_EXPIRED : TP_V1_CANCELLED);
}

/* ---- operations ------------------------------------------------------------ */

static enum relay_v1_rc
rs_register(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const unsigned char new_digest[TP_SHA256_LEN],
    const struct tp_v1_caps *caps, bool *created, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1];
	enum relay_v1_rc rc;

	*created = false;
	relay_v1_node_id(key, key_len, id);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, key, key_len);
	relay_redis_args_bytes(&c, new_digest, TP_SHA256_LEN);
	arg_caps(&c, caps);
	rc = run(st, OP_REGISTER, &c, &rep, fx);
	if (rep.type == RELAY_REDIS_ARRAY)
		*created = rc == V1_OK && relay_redis_reply_int(&rep, 2) == 1;
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_poll(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const struct tp_v1_caps *caps, int64_t polling_until,
    struct relay_v1_work *work, bool *has_work, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1];
	enum relay_v1_rc rc;
	static const struct tp_v1_caps none;

	*has_work = false;
	memset(work, 0, sizeof(*work));
	relay_v1_node_id(key, key_len, id);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, key, key_len);
	relay_redis_args_str(&c, caps != NULL ? "1" : "0");
	arg_caps(&c, caps != NULL ? caps : &none);
	relay_redis_args_int(&c, polling_until);
	rc = run(st, OP_POLL, &c, &rep, fx);
	if (rc == V1_OK && relay_redis_reply_int(&rep, 2) == 1) {
		if (el_blob(&rep, 3, &work->envelope) != 0) {
			/* the claim stands; its lease lapses and the deadline ends it */
			rc = V1_E_NOMEM;
		} else {
			work->deadline_ms = relay_redis_reply_int(&rep, 4);
			work->generation = (uint64_t)relay_redis_reply_int(&rep, 5);
			*has_work = true;
		}
	}
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_select(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *model, enum tp_v1_tier tier, bool reserve,
    struct relay_v1_selection *out, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	enum relay_v1_rc rc;
	long long used, conc;
	int t;

	memset(out, 0, sizeof(*out));
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, model);
	relay_redis_args_int(&c, (int64_t)tier);
	relay_redis_args_int(&c, tp_v1_tier_tokens(tier));
	relay_redis_args_str(&c, reserve ? "1" : "0");
	rc = run(st, OP_SELECT, &c, &rep, fx);
	if (rep.type != RELAY_REDIS_ARRAY)
		return rc;
	out->eligible_nodes = (size_t)relay_redis_reply_int(&rep, 11);
	for (t = 0; t < TP_V1_TIER_COUNT; t++)
		out->eligible_per_tier[t] =
		    (size_t)relay_redis_reply_int(&rep, 12 + (size_t)t);
	if (rc != V1_OK)
		goto out;
	if (el_blob(&rep, 2, &out->key) != 0 ||
	    el_blob(&rep, 3, &out->models) != 0) {
		relay_v1_selection_free(out);
		rc = V1_E_NOMEM;
		goto out;
	}
	out->nmodels = (size_t)relay_redis_reply_int(&rep, 4);
	out->tier = (enum tp_v1_tier)relay_redis_reply_int(&rep, 5);
	out->context_tokens = relay_redis_reply_int(&rep, 6);
	out->queue_depth = (uint64_t)relay_redis_reply_int(&rep, 7);
	out->in_flight = (uint64_t)relay_redis_reply_int(&rep, 8);
	used = relay_redis_reply_int(&rep, 9);
	conc = relay_redis_reply_int(&rep, 10);
	out->load_score = conc > 0 ? (double)used / (double)conc : 0;
	out->spillover = out->tier > tier;
out:
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_enqueue(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const struct relay_v1_enqueue_in *in, bool *duplicate,
    int64_t *deadline_ms, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1], rid[RID_LEN + 1];
	enum relay_v1_rc rc;

	*duplicate = false;
	*deadline_ms = in->deadline_ms;
	relay_v1_node_id(in->node, in->node_len, id);
	request_rid(in->client, in->client_len, in->request_id,
	    in->request_id_len, rid);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, in->node, in->node_len);
	relay_redis_args_str(&c, rid);
	relay_redis_args_bytes(&c, in->client, in->client_len);
	relay_redis_args_bytes(&c, in->request_id, in->request_id_len);
	relay_redis_args_bytes(&c, in->work, in->work_len);
	relay_redis_args_bytes(&c, in->cancel_digest, in->cancel_digest ? TP_SHA256_LEN : 0);
	relay_redis_args_int(&c, in->deadline_ms);
	rc = run(st, OP_ENQUEUE, &c, &rep, fx);
	if (rc == V1_OK) {
		*duplicate = relay_redis_reply_int(&rep, 2) == 1;
		*deadline_ms = relay_redis_reply_int(&rep, 3);
	}
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_control(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const unsigned char *digest, const char *rq, size_t rq_len, bool ack,
    enum relay_v1_control_state *state, int64_t *deadline_ms,
    struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1];
	enum relay_v1_rc rc;
	long long v;

	*state = V1_CTL_COMPLETED;
	*deadline_ms = 0;
	relay_v1_node_id(key, key_len, id);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, key, key_len);
	relay_redis_args_bytes(&c, digest, digest ? TP_SHA256_LEN : 0);
	relay_redis_args_bytes(&c, rq, rq_len);
	relay_redis_args_str(&c, ack ? "1" : "0");
	rc = run(st, OP_CONTROL, &c, &rep, fx);
	if (rc == V1_OK) {
		v = relay_redis_reply_int(&rep, 2);
		*state = v >= 0 && v < V1_CTL_COUNT ?
		    (enum relay_v1_control_state)v : V1_CTL_COMPLETED;
		*deadline_ms = relay_redis_reply_int(&rep, 3);
	}
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_cancel(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *client, size_t client_len, const char *rq,
    size_t rq_len, const unsigned char *token_digest,
    enum tp_v1_status status, const char *reason, int *removed,
    struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char rid[RID_LEN + 1];
	enum relay_v1_rc rc;

	*removed = 0;
	request_rid(client, client_len, rq, rq_len, rid);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, rid);
	relay_redis_args_bytes(&c, token_digest, token_digest ? TP_SHA256_LEN : 0);
	relay_redis_args_str(&c, tp_v1_status_name(status));
	relay_redis_args_str(&c, reason);
	/* the Lua effects index (1-based): 2 cancelled, 3 expired */
	relay_redis_args_str(&c, status == TP_V1_EXPIRED ? "3" : "2");
	rc = run(st, OP_CANCEL, &c, &rep, fx);
	if (rc == V1_OK)
		*removed = (int)relay_redis_reply_int(&rep, 2);
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_accept_response(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const struct relay_v1_response_in *in, bool *duplicate,
    const char **gone, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1] = "", rid[RID_LEN + 1];
	enum relay_v1_rc rc;

	*duplicate = false;
	*gone = NULL;
	if (in->node == NULL && in->require_proof)
		return V1_E_FORBIDDEN;
	if (in->node != NULL)
		relay_v1_node_id(in->node, in->node_len, id);
	request_rid(in->client, in->client_len, in->request_id,
	    in->request_id_len, rid);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, rid);
	relay_redis_args_bytes(&c, in->response, in->response_len);
	relay_redis_args_str(&c, in->node != NULL ? "1" : "0");
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, in->node, in->node != NULL ? in->node_len : 0);
	relay_redis_args_bytes(&c, in->cred_digest, in->cred_digest ? TP_SHA256_LEN : 0);
	rc = run(st, OP_ACCEPT_RESPONSE, &c, &rep, fx);
	if (rc == V1_OK)
		*duplicate = relay_redis_reply_int(&rep, 2) == 1;
	else if (rc == V1_E_GONE)
		*gone = static_status(&rep, 3);
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_progress(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len, const unsigned char *digest,
    const char *client, size_t client_len, const char *rq, size_t rq_len,
    const char *envelope, size_t envelope_len, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1], rid[RID_LEN + 1];
	enum relay_v1_rc rc;

	relay_v1_node_id(key, key_len, id);
	request_rid(client, client_len, rq, rq_len, rid);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, key, key_len);
	relay_redis_args_bytes(&c, digest, digest ? TP_SHA256_LEN : 0);
	relay_redis_args_str(&c, rid);
	relay_redis_args_bytes(&c, envelope, envelope_len);
	rc = run(st, OP_PROGRESS, &c, &rep, fx);
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_retrieve(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *client, size_t client_len, const char *rq,
    size_t rq_len, struct relay_v1_retrieval *out, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char rid[RID_LEN + 1];
	enum relay_v1_rc rc;

	memset(out, 0, sizeof(*out));
	out->kind = V1_RET_UNKNOWN;
	request_rid(client, client_len, rq, rq_len, rid);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, rid);
	relay_redis_args_int(&c, lim->redeliver_ms);
	rc = run(st, OP_RETRIEVE, &c, &rep, fx);
	if (rc != V1_OK)
		goto out;
	switch (relay_redis_reply_int(&rep, 2)) {
	case 1:
		if (el_blob(&rep, 3, &out->body) != 0) {
			/* delivered in the store but not here: the worst case is
			 * one lost response, as with a dropped connection */
			rc = V1_E_NOMEM;
			break;
		}
		out->kind = V1_RET_RESPONSE;
		break;
	case 2:
		out->kind = V1_RET_PENDING;
		out->deadline_ms = relay_redis_reply_int(&rep, 4);
		if (relay_redis_reply_is(&rep, 5, "1") && el_blob(&rep, 3, &out->body) != 0)
			rc = V1_E_NOMEM;
		break;
	case 3:
		out->kind = V1_RET_TERMINAL;
		out->status = static_status(&rep, 5);
		out->reason = static_reason(&rep, 6, out->status);
		break;
	default:
		break;
	}
out:
	relay_redis_reply_free(&rep);
	return rc;
}

static enum relay_v1_rc
rs_unregister(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, const char *key, size_t key_len, const unsigned char *digest,
    bool *removed, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1];
	enum relay_v1_rc rc;

	*removed = false;
	relay_v1_node_id(key, key_len, id);
	call_begin(&c, lim, now);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, key, key_len);
	relay_redis_args_bytes(&c, digest, digest ? TP_SHA256_LEN : 0);
	rc = run(st, OP_UNREGISTER, &c, &rep, fx);
	if (rc == V1_OK)
		*removed = relay_redis_reply_int(&rep, 2) == 1;
	relay_redis_reply_free(&rep);
	return rc;
}

static bool
rs_node_exists(struct relay_v1_store *s, const char *key, size_t key_len)
{
	static const struct relay_v1_limits zero;
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	char id[RELAY_V1_NODE_ID_LEN + 1];
	bool found;

	relay_v1_node_id(key, key_len, id);
	call_begin(&c, &zero, 0);
	relay_redis_args_str(&c, id);
	relay_redis_args_bytes(&c, key, key_len);
	found = run(st, OP_NODE_EXISTS, &c, &rep, NULL) == V1_OK &&
	    relay_redis_reply_int(&rep, 2) == 1;
	relay_redis_reply_free(&rep);
	return found;
}

static enum relay_v1_rc
rs_sweep(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	enum relay_v1_rc rc = V1_OK;
	bool more = true;
	int round;

	/* Each script call is bounded; a backlog takes several calls. */
	for (round = 0; more && round < SWEEP_ROUNDS; round++) {
		call_begin(&c, lim, now);
		relay_redis_args_int(&c, RELAY_V1_SWEEP_INTERVAL_MS);
		relay_redis_args_str(&c, round > 0 ? "1" : "0");
		rc = run(st, OP_SWEEP, &c, &rep, fx);
		more = rc == V1_OK && relay_redis_reply_int(&rep, 2) == 1;
		relay_redis_reply_free(&rep);
	}
	return rc;
}

static enum relay_v1_rc
rs_stats(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, struct relay_v1_stats *out, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	enum relay_v1_rc rc;

	memset(out, 0, sizeof(*out));
	/* the backlog first, so that counts are those after expiry */
	rc = rs_sweep(s, lim, now, fx);
	if (rc != V1_OK)
		return rc;
	call_begin(&c, lim, now);
	rc = run(st, OP_STATS, &c, &rep, fx);
	if (rc == V1_OK) {
		out->nodes = (uint64_t)relay_redis_reply_int(&rep, 3);
		out->queued = (uint64_t)relay_redis_reply_int(&rep, 4);
		out->in_flight = (uint64_t)relay_redis_reply_int(&rep, 5);
		out->responses = (uint64_t)relay_redis_reply_int(&rep, 6);
		out->reservations = (uint64_t)relay_redis_reply_int(&rep, 7);
		out->terminal = (uint64_t)relay_redis_reply_int(&rep, 8);
		out->tombstones = (uint64_t)relay_redis_reply_int(&rep, 9);
		out->oldest_queued_ms = relay_redis_reply_int(&rep, 10);
		out->oldest_in_flight_ms = relay_redis_reply_int(&rep, 11);
	}
	relay_redis_reply_free(&rep);
	return rc;
}

#define LIST_FIELDS 10	/* per node in the list_nodes reply */

static enum relay_v1_rc
rs_list_nodes(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, size_t max, bool keys, struct relay_v1_node_list *out,
    struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	enum relay_v1_rc rc;
	size_t i, n;

	memset(out, 0, sizeof(*out));
	call_begin(&c, lim, now);
	relay_redis_args_uint(&c, max);
	relay_redis_args_str(&c, keys ? "1" : "0");	/* without, the script sends no key */
	rc = run(st, OP_LIST_NODES, &c, &rep, fx);
	if (rc != V1_OK)
		goto out;
	out->total = (uint64_t)relay_redis_reply_int(&rep, 2);
	n = (size_t)relay_redis_reply_int(&rep, 3);
	if (n > max || rep.n != 4 + LIST_FIELDS * n) {
		rc = V1_E_UNAVAILABLE;
		goto out;
	}
	if (n > 0 && (out->nodes = calloc(n, sizeof(*out->nodes))) == NULL) {
		rc = V1_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t b = 4 + LIST_FIELDS * i;
		struct relay_v1_node_info *ni = &out->nodes[out->n++];
		struct relay_blob key = { 0 }, models = { 0 };

		ni->age_ms = relay_redis_reply_int(&rep, b + 1);
		ni->queued = (uint64_t)relay_redis_reply_int(&rep, b + 2);
		ni->in_flight = (uint64_t)relay_redis_reply_int(&rep, b + 3);
		ni->reserved = (uint64_t)relay_redis_reply_int(&rep, b + 4);
		ni->max_concurrency = relay_redis_reply_int(&rep, b + 5);
		ni->tier = (enum tp_v1_tier)relay_redis_reply_int(&rep, b + 6);
		ni->max_context = relay_redis_reply_int(&rep, b + 7);
		ni->nmodels = (size_t)relay_redis_reply_int(&rep, b + 8);
		if (el_blob(&rep, b + 9, &models) != 0) {
			rc = V1_E_NOMEM;
			break;
		}
		ni->models = models.mem;
		ni->models_len = models.len;
		if (keys) {
			if (el_blob(&rep, b, &key) != 0) {
				rc = V1_E_NOMEM;
				break;
			}
			ni->key = key.mem;
			ni->key_len = key.len;
		}
	}
out:
	relay_redis_reply_free(&rep);
	if (rc != V1_OK)
		relay_v1_node_list_free(out);
	return rc;
}

static enum relay_v1_rc
rs_list_models(struct relay_v1_store *s, const struct relay_v1_limits *lim,
    int64_t now, size_t max, const char *only, size_t only_len,
    struct relay_v1_model_list *out, struct relay_v1_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	struct relay_redis_args c;
	enum relay_v1_rc rc;
	size_t i, n, len = 0;

	memset(out, 0, sizeof(*out));
	if (only != NULL && only_len == 0)
		return V1_OK;		/* no model has an empty id */
	call_begin(&c, lim, now);
	relay_redis_args_uint(&c, max);
	relay_redis_args_bytes(&c, only != NULL ? only : "", only != NULL ? only_len : 0);
	rc = run(st, OP_LIST_MODELS, &c, &rep, fx);
	if (rc != V1_OK)
		goto out;
	out->more = relay_redis_reply_int(&rep, 2) != 0;
	n = (size_t)relay_redis_reply_int(&rep, 3);
	if ((only == NULL && n > max) || (only != NULL && n > 1) ||
	    rep.n != 4 + n) {
		rc = V1_E_UNAVAILABLE;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct relay_redis_reply *e = relay_redis_reply_str(&rep, 4 + i);

		if (e == NULL || e->len == 0 || memchr(e->str, '\0', e->len)) {
			rc = V1_E_UNAVAILABLE;
			goto out;
		}
		len += e->len + 1;
	}
	if (n > 0 && (out->ids = malloc(len)) == NULL) {
		rc = V1_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const struct relay_redis_reply *e = relay_redis_reply_str(&rep, 4 + i);

		if (e == NULL)
			break;		/* checked above; keeps the compiler sure */
		memcpy(out->ids + out->ids_len, e->str, e->len);
		out->ids[out->ids_len + e->len] = '\0';
		out->ids_len += e->len + 1;
	}
	out->n = n;
out:
	relay_redis_reply_free(&rep);
	if (rc != V1_OK)
		relay_v1_model_list_free(out);
	return rc;
}

static void
rs_destroy(struct relay_v1_store *s)
{
	/* the adapter is main's: nothing to disconnect here */
	free(R(s));
}

static const struct relay_v1_store_ops redis_ops = {
	.name = "redis",
	.register_node = rs_register,
	.poll = rs_poll,
	.select = rs_select,
	.enqueue = rs_enqueue,
	.control = rs_control,
	.cancel = rs_cancel,
	.accept_response = rs_accept_response,
	.progress = rs_progress,
	.retrieve = rs_retrieve,
	.unregister = rs_unregister,
	.node_exists = rs_node_exists,
	.sweep = rs_sweep,
	.stats = rs_stats,
	.list_nodes = rs_list_nodes,
	.list_models = rs_list_models,
	.destroy = rs_destroy,
};

struct relay_v1_store *
relay_v1_store_redis_new(struct relay_redis *r)
{
	struct rstore *st = calloc(1, sizeof(*st));
	size_t lib = strlen(relay_v1_store_redis_lua);
	int i;

	if (st == NULL)
		return NULL;
	st->pub.ops = &redis_ops;
	st->pub.state = st;
	st->r = r;
	st->prefix = relay_redis_prefix(r);
	st->prefix_len = strlen(st->prefix);
	/* "v1_" + name: the operation label of the adapter's metrics */
	for (i = 0; i < OP_COUNT; i++) {
		size_t n = lib + 64 + strlen(op_names[i]);
		char label[32], *text = malloc(n);

		if (text == NULL)
			goto fail;
		snprintf(text, n, "#!lua%s\n%s\nreturn op_%s()\n",
		    op_allow_oom[i] ? " flags=allow-oom" : "",
		    relay_v1_store_redis_lua, op_names[i]);
		snprintf(label, sizeof(label), "v1_%s", op_names[i]);
		st->sid[i] = relay_redis_script(r, label, text);	/* copies */
		free(text);
		if (st->sid[i] < 0)
			goto fail;
	}
	return &st->pub;
fail:
	rs_destroy(&st->pub);
	return NULL;
}
