/*
 * broker.c -- legacy relay semantics over the store.
 *
 * Every request-path call reads the clock once, passes the limits to the
 * store with it, and folds the store's side effects (evictions, expiries)
 * into the counters. About once a second one of those calls also asks the
 * store to sweep, so memory held by expired state and by drained bursts
 * goes back even when the routes that would notice are idle.
 */
#include "legacy/broker.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/auth.h"
#include "core/clock.h"
#include "core/hashtab.h"
#include "legacy/ratelimit.h"
#include "settings.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

struct relay_broker {
	struct relay_store *store;
	struct relay_store_limits lim;
	struct tp_proto_limits plim;
	size_t max_reply_bytes;		/* jobs per /sink reply, in bytes */
	relay_clock_fn clock;
	void *clock_arg;
	_Atomic int64_t next_sweep;

	struct relay_auth *auth;
	struct relay_ratelimit *faucet_rl;	/* NULL: off */
	struct relay_cidr_list trusted;

	struct tp_counter *evictions;		/* tokenplace_relay_evictions_total */
	struct tp_counter_child *dropped;	/* tokenplace_relay_dropped_requests_total */
	struct tp_counter_child *expired_resp, *expired_sess;
	struct tp_counter_child *replaced_resp, *replaced_sess;
	struct tp_counter_child *untracked;
};

static int64_t
monotonic_ms(void *arg)
{
	(void)arg;
	return relay_mono_ms();
}

static int64_t
now_ms(const struct relay_broker *b)
{
	return b->clock(b->clock_arg);
}

static uint64_t
pos(int64_t v)
{
	return v > 0 ? (uint64_t)v : 0;
}

/*
 * A short stable name for a key in logs: every PEM-b64 key starts and ends
 * with the same characters, so a hash tells nodes apart where a prefix
 * would not. Not secret and not a security boundary.
 */
static void
key_id(const char *key, size_t len, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t h = relay_siphash(0, 0, key, len);
	int i;

	for (i = 15; i >= 0; i--, h >>= 4)
		out[i] = hex[h & 0xf];
	out[16] = '\0';
}

/* Adds what the store removed on the way to the counters. */
static void
account(struct relay_broker *b, const struct relay_store_effects *fx)
{
	if (fx->evicted_servers > 0) {
		tp_counter_add(b->evictions, NULL, (double)fx->evicted_servers);
		TP_LOG(TP_LOG_INFO, "relay.servers_evicted",
		    TP_LUINT("count", fx->evicted_servers),
		    TP_LUINT("dropped_requests", fx->dropped_jobs),
		    TP_LINT("server_ttl_s", b->lim.server_ttl_ms / 1000));
	}
	if (fx->dropped_jobs > 0)
		tp_counter_child_add(b->dropped, (double)fx->dropped_jobs);
	if (fx->expired_responses > 0)
		tp_counter_child_add(b->expired_resp, (double)fx->expired_responses);
	if (fx->expired_sessions > 0)
		tp_counter_child_add(b->expired_sess, (double)fx->expired_sessions);
	if (fx->replaced_responses > 0)
		tp_counter_child_add(b->replaced_resp,
		    (double)fx->replaced_responses);
	if (fx->replaced_sessions > 0)
		tp_counter_child_add(b->replaced_sess,
		    (double)fx->replaced_sessions);
}

/* Reads the clock; sweeps when the interval has passed (one caller wins). */
static int64_t
tick(struct relay_broker *b)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = now_ms(b);
	int64_t due = atomic_load_explicit(&b->next_sweep, memory_order_relaxed);

	if (now >= due && atomic_compare_exchange_strong(&b->next_sweep, &due,
	    now + RELAY_STORE_SWEEP_INTERVAL_MS)) {
		(void)b->store->ops->sweep(b->store, &b->lim, now, &fx);
		account(b, &fx);
	}
	return now;
}

/* ---- metrics ------------------------------------------------------------ */

static struct relay_store_stats
gauge_stats(struct relay_broker *b)
{
	struct relay_store_stats st = { 0 };

	(void)relay_broker_stats(b, &st);
	return st;
}

static double
g_servers(void *arg)
{
	return (double)gauge_stats(arg).servers;
}

static double
g_queued(void *arg)
{
	return (double)gauge_stats(arg).queued;
}

static double
g_responses(void *arg)
{
	return (double)gauge_stats(arg).responses;
}

static double
g_sessions(void *arg)
{
	return (double)gauge_stats(arg).sessions;
}

static double
g_chunks(void *arg)
{
	return (double)gauge_stats(arg).chunks;
}

static int
register_metrics(struct relay_broker *b, struct tp_metrics_registry *reg)
{
	static const char *const kind[] = { "kind" };
	static const char *const resp[] = { "response" };
	static const char *const sess[] = { "stream_session" };
	static const char *const lim[] = { "faucet_rate_clients" };
	struct tp_counter *expired, *replaced, *dropped, *untracked;

	if (tp_gauge_fn_new(reg, "tokenplace_relay_known_servers",
	    "Compute nodes heard from within server_ttl", g_servers, b) != 0 ||
	    tp_gauge_fn_new(reg, "tokenplace_relay_queued_requests",
	    "Requests waiting in compute-node queues", g_queued, b) != 0 ||
	    tp_gauge_fn_new(reg, "tokenplace_relay_pending_responses",
	    "Responses waiting for their client", g_responses, b) != 0 ||
	    tp_gauge_fn_new(reg, "tokenplace_relay_stream_sessions",
	    "Open stream sessions", g_sessions, b) != 0 ||
	    tp_gauge_fn_new(reg, "tokenplace_relay_stream_chunks",
	    "Stream chunks waiting to be drained", g_chunks, b) != 0)
		return -1;
	b->evictions = tp_counter_new(reg, "tokenplace_relay_evictions_total",
	    "Compute nodes evicted after server_ttl without a poll", 0, NULL);
	dropped = tp_counter_new(reg, "tokenplace_relay_dropped_requests_total",
	    "Queued requests discarded with an evicted or unregistered node",
	    0, NULL);
	expired = tp_counter_new(reg, "tokenplace_relay_expired_total",
	    "Responses and stream sessions removed after their TTL", 1, kind);
	replaced = tp_counter_new(reg, "tokenplace_relay_replaced_total",
	    "Unread responses and open stream sessions replaced by newer ones",
	    1, kind);
	untracked = tp_counter_new(reg,
	    "tokenplace_relay_rate_limit_untracked_total",
	    "Requests let through unlimited because the client table was full",
	    1, (const char *const[]){ "limit" });
	if (b->evictions == NULL || dropped == NULL || expired == NULL ||
	    replaced == NULL || untracked == NULL)
		return -1;
	b->dropped = tp_counter_child(dropped, NULL);
	b->expired_resp = tp_counter_child(expired, resp);
	b->expired_sess = tp_counter_child(expired, sess);
	b->replaced_resp = tp_counter_child(replaced, resp);
	b->replaced_sess = tp_counter_child(replaced, sess);
	b->untracked = tp_counter_child(untracked, lim);
	/* Create the zero-valued children now so they show before the first event. */
	tp_counter_add(b->evictions, NULL, 0);
	return 0;
}

/* ---- life cycle --------------------------------------------------------- */

struct relay_broker *
relay_broker_new(const struct relay_settings *s, struct relay_store *store,
    struct tp_metrics_registry *metrics)
{
	struct relay_broker *b;
	char err[160];

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->store = store;
	b->clock = monotonic_ms;
	b->lim.server_ttl_ms = s->server_ttl_s * 1000;
	b->lim.server_busy_ttl_ms = s->server_busy_ttl_s * 1000;
	b->lim.response_ttl_ms = s->response_ttl_s * 1000;
	b->lim.session_ttl_ms = s->stream_session_ttl_s * 1000;
	b->lim.max_servers = pos(s->max_servers);
	b->lim.queue_per_server = pos(s->queue_per_server);
	b->lim.queue_total = pos(s->queue_total);
	b->lim.max_responses = pos(s->max_responses);
	b->lim.max_stream_sessions = pos(s->max_stream_sessions);
	b->lim.max_stream_chunks = pos(s->max_stream_chunks);
	b->plim.max_key_bytes = (size_t)pos(s->max_key_bytes);
	/* A batch reply carries no more than one request body's worth. */
	b->max_reply_bytes = (size_t)pos(s->max_body_bytes);
	if (b->max_reply_bytes == 0)
		b->max_reply_bytes = SIZE_MAX;

	b->auth = relay_auth_new(s->server_token, s->server_tokens);
	if (b->auth == NULL)
		goto fail;
	if (relay_cidr_list_parse(s->trusted_proxies, &b->trusted, err,
	    sizeof(err)) != 0) {
		TP_LOG(TP_LOG_ERROR, "relay.trusted_proxies_invalid",
		    TP_LSTR("reason", err));
		goto fail;
	}
	if (s->faucet_rate_limit > 0) {
		b->faucet_rl = relay_ratelimit_new(s->faucet_rate_limit,
		    s->faucet_rate_window_s * 1000,
		    (size_t)pos(s->faucet_rate_clients));
		if (b->faucet_rl == NULL)
			goto fail;
	}
	if (metrics != NULL && register_metrics(b, metrics) != 0)
		goto fail;
	return b;
fail:
	relay_broker_free(b);
	return NULL;
}

void
relay_broker_free(struct relay_broker *b)
{
	if (b == NULL)
		return;
	relay_auth_free(b->auth);
	relay_ratelimit_free(b->faucet_rl);
	relay_cidr_list_free(&b->trusted);
	free(b);
}

void
relay_broker_set_clock(struct relay_broker *b, relay_clock_fn fn, void *arg)
{
	b->clock = fn ? fn : monotonic_ms;
	b->clock_arg = arg;
	atomic_store(&b->next_sweep, 0);
}

const struct tp_proto_limits *
relay_broker_proto_limits(const struct relay_broker *b)
{
	return &b->plim;
}

bool
relay_broker_node_authorized(const struct relay_broker *b, const char *header)
{
	return relay_auth_check(b->auth, header);
}

/* ---- operations --------------------------------------------------------- */

enum relay_status
relay_broker_faucet_admit(struct relay_broker *b, const char *remote_addr,
    const char *xff, int64_t *retry_after_s)
{
	struct relay_ip ip;
	int64_t wait_ms = 0;

	*retry_after_s = 0;
	if (b->faucet_rl == NULL)
		return RELAY_OK;
	/* A peer we cannot name shares one bucket rather than escaping limits. */
	if (relay_client_ip(&b->trusted, remote_addr, xff, &ip) != 0)
		memset(&ip, 0, sizeof(ip));
	switch (relay_ratelimit_hit(b->faucet_rl, &ip, now_ms(b), &wait_ms)) {
	case RELAY_RATE_DENY:
		*retry_after_s = (wait_ms + 999) / 1000;
		if (*retry_after_s < 1)
			*retry_after_s = 1;
		return RELAY_E_RATE_LIMITED;
	case RELAY_RATE_UNTRACKED:
		tp_counter_child_add(b->untracked, 1);
		return RELAY_OK;
	case RELAY_RATE_ALLOW:
	default:
		return RELAY_OK;
	}
}

enum relay_status
relay_broker_next_server(struct relay_broker *b, struct relay_blob *key)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	enum relay_status st;

	st = b->store->ops->pick_server(b->store, &b->lim, now, key, &fx);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_faucet(struct relay_broker *b, const struct tp_faucet_request *req)
{
	struct relay_store_effects fx = { 0 };
	struct relay_job_in job;
	enum relay_status st;
	int64_t now = tick(b);
	size_t len;
	char *enc;

	enc = tp_faucet_encode(req, &len);
	if (enc == NULL)
		return RELAY_E_NOMEM;
	job.data = enc;
	job.len = len;
	job.stream = req->stream;
	job.owner = req->client_public_key.ptr;
	job.owner_len = req->client_public_key.len;
	st = b->store->ops->enqueue(b->store, &b->lim, now,
	    req->server_public_key.ptr, req->server_public_key.len, &job, &fx);
	free(enc);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_sink(struct relay_broker *b, const struct tp_sink_request *req,
    struct relay_poll_result *out)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	uint64_t max = pos(req->max_batch_size);
	enum relay_status st;

	if (max > b->lim.queue_per_server)
		max = b->lim.queue_per_server;
	if (max < 1)
		max = 1;
	st = b->store->ops->poll(b->store, &b->lim, now,
	    req->server_public_key.ptr, req->server_public_key.len, (size_t)max,
	    b->max_reply_bytes, out, &fx);
	account(b, &fx);
	if (st == RELAY_OK && out->registered) {
		char id[17];

		key_id(req->server_public_key.ptr, req->server_public_key.len, id);
		TP_LOG(TP_LOG_INFO, "relay.server_registered", TP_LSTR("key_id", id),
		    TP_LUINT("key_bytes", req->server_public_key.len));
	}
	return st;
}

enum relay_status
relay_broker_source(struct relay_broker *b, const struct tp_source_request *req)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	enum relay_status st;
	size_t len;
	char *enc;

	enc = tp_source_encode(req, &len);
	if (enc == NULL)
		return RELAY_E_NOMEM;
	st = b->store->ops->put_response(b->store, &b->lim, now,
	    req->client_public_key.ptr, req->client_public_key.len, enc, len,
	    &fx);
	free(enc);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_retrieve(struct relay_broker *b,
    const struct tp_client_request *req, struct relay_blob *out)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	enum relay_status st;

	st = b->store->ops->take_response(b->store, &b->lim, now,
	    req->client_public_key.ptr, req->client_public_key.len, out, &fx);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_stream_source(struct relay_broker *b,
    const struct tp_stream_source_request *req)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	enum relay_status st;
	size_t len;
	char *enc;

	enc = tp_chunk_encode(req->chunk, &len);
	if (enc == NULL)
		return RELAY_E_NOMEM;
	st = b->store->ops->stream_append(b->store, &b->lim, now,
	    req->session_id.ptr, req->session_id.len, enc, len, req->final, &fx);
	free(enc);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_stream_retrieve(struct relay_broker *b,
    const struct tp_client_request *req, struct relay_drain_result *out)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	enum relay_status st;

	st = b->store->ops->stream_drain(b->store, &b->lim, now,
	    req->client_public_key.ptr, req->client_public_key.len, out, &fx);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_unregister(struct relay_broker *b,
    const struct tp_unregister_request *req, bool *removed)
{
	struct relay_store_effects fx = { 0 };
	int64_t now = tick(b);
	enum relay_status st;

	st = b->store->ops->unregister(b->store, &b->lim, now,
	    req->server_public_key.ptr, req->server_public_key.len, removed, &fx);
	account(b, &fx);
	if (st == RELAY_OK && *removed) {
		char id[17];

		key_id(req->server_public_key.ptr, req->server_public_key.len, id);
		TP_LOG(TP_LOG_INFO, "relay.server_unregistered",
		    TP_LSTR("key_id", id),
		    TP_LUINT("dropped_requests", fx.dropped_jobs));
	}
	return st;
}

enum relay_status
relay_broker_stats(struct relay_broker *b, struct relay_store_stats *out)
{
	struct relay_store_effects fx = { 0 };
	enum relay_status st;

	st = b->store->ops->stats(b->store, &b->lim, now_ms(b), out, &fx);
	account(b, &fx);
	return st;
}

enum relay_status
relay_broker_list_servers(struct relay_broker *b, size_t max, bool keys,
    struct relay_server_list *out)
{
	struct relay_store_effects fx = { 0 };
	enum relay_status st;

	st = b->store->ops->list_servers(b->store, &b->lim, now_ms(b), max,
	    keys, out, &fx);
	account(b, &fx);
	return st;
}

const char *
relay_status_limit(enum relay_status st)
{
	switch (st) {
	case RELAY_E_SERVERS_FULL:	return "max_servers";
	case RELAY_E_QUEUE_FULL:	return "queue_per_server";
	case RELAY_E_QUEUE_TOTAL:	return "queue_total";
	case RELAY_E_RESPONSES_FULL:	return "max_responses";
	case RELAY_E_CHUNKS_FULL:	return "max_stream_chunks";
	case RELAY_E_RATE_LIMITED:	return "faucet_rate_limit";
	default:			return NULL;
	}
}
