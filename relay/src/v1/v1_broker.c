/*
 * v1_broker.c -- API v1 semantics over the v1 store: secrets, deadlines,
 * long-poll waiting, sweeping and metrics.
 *
 * Long polls (docs/internals/long-polls.md): civetweb runs a request on a
 * worker thread until it returns, so a waiting poll holds a thread. Each
 * waiting poll has its own condition variable, filed under its node's key;
 * an enqueue wakes only that node's polls, so a burst of requests never
 * wakes hundreds of idle pollers. At most max_long_polls wait at once
 * (below the thread pool size); a poll over the cap is answered at once
 * with a short retry hint and its connection closed, which gives the
 * thread back, so probes and clients always find a free thread.
 *
 * Across replicas (a shared store), an enqueue on another relay cannot
 * signal our condition variables: the Redis store publishes a wake-up per
 * node, one subscriber thread per process calls relay_v1_wake_id(), and
 * after every (re)subscription relay_v1_wake_all() makes every waiting
 * poll look again. Polls are therefore filed under the node's compact id
 * (relay_v1_node_id), the name the channel carries. A poll files its
 * waiter BEFORE it re-checks the store, so a wake-up can only come early,
 * never be missed; a message lost while unsubscribed costs one look at
 * the store after the resubscription, never a job. The store's answer is
 * the only truth: a wake-up just means "look again".
 */
#include "v1/v1_broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/auth.h"
#include "core/clock.h"
#include "core/hashtab.h"
#include "core/random.h"
#include "settings.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))
#define const_container_of(p, type, member) \
	((const type *)(const void *)((const char *)(p) - offsetof(type, member)))

#define STATS_CACHE_MS 200

struct waiter {
	struct waiter *prev, *next;
	pthread_cond_t cv;
	bool woken;
};

/* The polls waiting for one node. */
struct wq {
	struct relay_hnode h;
	struct wq *prev_all, *next_all;
	struct waiter *head;
	size_t key_len;
	char key[];
};

struct relay_v1 {
	struct relay_v1_config cfg;
	struct relay_v1_store *store;
	struct relay_auth *auth;
	relay_v1_clock_fn clock;
	void *clock_arg;

	pthread_mutex_t wmu;		/* waiters, long_polls, draining */
	struct relay_hashtab wqs;
	struct wq *all;
	long long_polls;
	bool draining;

	pthread_t sweeper;
	bool sweeper_running;
	bool stop;
	pthread_cond_t sweep_cv;

	pthread_mutex_t smu;		/* stats cache */
	struct relay_v1_stats cached;
	int64_t cached_at;
	bool cached_valid;

	struct tp_counter_child *outcome[V1_OUTCOME_COUNT];
	struct tp_counter_child *evicted, *unregistered;
	struct tp_counter_child *responses_expired;
	struct tp_counter_child *dropped_terminal, *dropped_tombstones;
	struct tp_counter_child *control[V1_CTL_COUNT];
	struct tp_counter_child *acknowledged;
	struct tp_counter_child *renewals;
	struct tp_counter_child *polls_refused;
	struct tp_counter_child *redelivered;

};

/* ---- clocks -------------------------------------------------------------- */

static int64_t
default_clock(void *arg)
{
	(void)arg;
	return relay_mono_ms();
}

int64_t
relay_v1_now(struct relay_v1 *b)
{
	return b->clock(b->clock_arg);
}

void
relay_v1_set_clock(struct relay_v1 *b, relay_v1_clock_fn fn, void *arg)
{
	b->clock = fn ? fn : default_clock;
	b->clock_arg = arg;
}

const struct relay_v1_config *
relay_v1_config(const struct relay_v1 *b)
{
	return &b->cfg;
}

/* ---- configuration ---------------------------------------------------------- */

void
relay_v1_config_from_settings(const struct relay_settings *s,
    struct relay_v1_config *cfg)
{
	int64_t d = s->api_v1_deadline_s;
	int64_t lo = s->api_v1_deadline_min_s, hi = s->api_v1_deadline_max_s;
	int64_t polls = s->api_v1_max_long_polls;

	memset(cfg, 0, sizeof(*cfg));
	if (lo > hi)
		lo = hi;
	d = d < lo ? lo : d > hi ? hi : d;
	if (polls <= 0) {
		polls = s->threads * 3 / 4;
		if (polls > s->threads - 1)
			polls = s->threads - 1;
		if (polls < 1)
			polls = 1;
	}
	cfg->lim.lease_ms = s->api_v1_lease_s * 1000;
	cfg->lim.in_flight_ttl_ms = s->api_v1_in_flight_ttl_s * 1000;
	cfg->lim.tombstone_ttl_ms = s->api_v1_tombstone_ttl_s * 1000;
	cfg->lim.node_tombstone_ttl_ms = s->api_v1_node_tombstone_ttl_s * 1000;
	cfg->lim.terminal_ttl_ms = s->api_v1_terminal_ttl_s * 1000;
	cfg->lim.response_ttl_ms = s->api_v1_response_ttl_s * 1000;
	cfg->lim.reservation_ttl_ms = s->api_v1_reservation_ttl_s * 1000;
	cfg->lim.redeliver_ms = s->response_redelivery_s * 1000;
	cfg->lim.max_nodes = (uint64_t)s->api_v1_max_nodes;
	cfg->lim.max_requests = (uint64_t)s->api_v1_max_requests;
	cfg->lim.max_terminal = (uint64_t)s->api_v1_max_terminal;
	cfg->lim.max_tombstones = (uint64_t)s->api_v1_max_tombstones;
	cfg->poll_wait_ms = s->api_v1_poll_wait_s * 1000;
	cfg->deadline_ms = d * 1000;
	cfg->busy_retry_s = s->api_v1_poll_busy_retry_s;
	cfg->max_long_polls = polls;
	cfg->require_proof = s->require_response_proof;
	cfg->sweeper = true;
	cfg->server_token = s->server_token;
	cfg->server_tokens = s->server_tokens;
}

int64_t
relay_v1_next_poll_seconds(const struct relay_v1 *b)
{
	int64_t s = 10;

	if (b->cfg.poll_wait_ms / 1000 < s)
		s = b->cfg.poll_wait_ms / 1000;
	if (b->cfg.lim.in_flight_ttl_ms / 2000 < s)
		s = b->cfg.lim.in_flight_ttl_ms / 2000;
	return s < 1 ? 1 : s;
}

/* ---- metrics ------------------------------------------------------------------ */

static void
apply(struct relay_v1 *b, const struct relay_v1_effects *fx)
{
	int i;

	for (i = 0; i < V1_OUTCOME_COUNT; i++)
		if (fx->outcomes[i])
			tp_counter_child_add(b->outcome[i], (double)fx->outcomes[i]);
	if (fx->evicted_nodes)
		tp_counter_child_add(b->evicted, (double)fx->evicted_nodes);
	if (fx->unregistered_nodes)
		tp_counter_child_add(b->unregistered,
		    (double)fx->unregistered_nodes);
	if (fx->expired_responses)
		tp_counter_child_add(b->responses_expired,
		    (double)fx->expired_responses);
	if (fx->dropped_terminal)
		tp_counter_child_add(b->dropped_terminal,
		    (double)fx->dropped_terminal);
	if (fx->dropped_tombstones)
		tp_counter_child_add(b->dropped_tombstones,
		    (double)fx->dropped_tombstones);
	if (fx->lease_renewals)
		tp_counter_child_add(b->renewals, (double)fx->lease_renewals);
	if (fx->acknowledged)
		tp_counter_child_add(b->acknowledged, (double)fx->acknowledged);
	if (fx->redelivered)
		tp_counter_child_add(b->redelivered, (double)fx->redelivered);
	if (fx->evicted_nodes)
		TP_LOG(TP_LOG_INFO, "relay.api_v1.nodes_evicted",
		    TP_LUINT("count", fx->evicted_nodes),
		    TP_LSTR("reason", "stale_lease"));
}

/* Counts for gauges, recomputed at most every STATS_CACHE_MS. */
static struct relay_v1_stats
cached_stats(struct relay_v1 *b)
{
	struct relay_v1_stats st;
	int64_t now = relay_mono_ms();

	pthread_mutex_lock(&b->smu);
	if (!b->cached_valid || now - b->cached_at >= STATS_CACHE_MS) {
		struct relay_v1_effects fx;

		memset(&fx, 0, sizeof(fx));
		if (b->store->ops->stats(b->store, &b->cfg.lim, relay_v1_now(b),
		    &b->cached, &fx) == V1_OK) {
			b->cached_at = now;
			b->cached_valid = true;
		}
		apply(b, &fx);
	}
	st = b->cached;
	pthread_mutex_unlock(&b->smu);
	return st;
}

static double g_nodes(void *a) { return (double)cached_stats(a).nodes; }
static double g_queued(void *a) { return (double)cached_stats(a).queued; }
static double g_in_flight(void *a) { return (double)cached_stats(a).in_flight; }
static double g_responses(void *a) { return (double)cached_stats(a).responses; }
static double g_reservations(void *a) { return (double)cached_stats(a).reservations; }
static double g_terminal(void *a) { return (double)cached_stats(a).terminal; }
static double g_tombstones(void *a) { return (double)cached_stats(a).tombstones; }
static double g_oldest_queued(void *a)
{
	return (double)cached_stats(a).oldest_queued_ms / 1000.0;
}
static double g_oldest_in_flight(void *a)
{
	return (double)cached_stats(a).oldest_in_flight_ms / 1000.0;
}
static double g_long_polls(void *a) { return (double)relay_v1_long_polls(a); }

static int
register_metrics(struct relay_v1 *b, struct tp_metrics_registry *reg)
{
	static const char *const outcome_l[] = { "outcome" };
	static const char *const reason_l[] = { "reason" };
	static const char *const kind_l[] = { "kind" };
	static const char *const state_l[] = { "state" };
	static const char *const outcomes[V1_OUTCOME_COUNT] = { "completed",
	    "cancelled", "expired" };
	static const char *const states[V1_CTL_COUNT] = { "active",
	    "cancelled", "expired", "completed_unavailable" };
	static const struct {
		const char *name, *help;
		double (*fn)(void *);
	} gauges[] = {
		{ "tokenplace_relay_api_v1_nodes", "Registered API v1 compute nodes", g_nodes },
		{ "tokenplace_relay_api_v1_queued_requests", "API v1 requests queued for a node", g_queued },
		{ "tokenplace_relay_api_v1_in_flight_requests", "API v1 requests claimed by a node with a live lease", g_in_flight },
		{ "tokenplace_relay_api_v1_responses_waiting", "Accepted API v1 responses not yet retrieved", g_responses },
		{ "tokenplace_relay_api_v1_reservations", "Capacity reserved by /servers/next and not yet used", g_reservations },
		{ "tokenplace_relay_api_v1_terminal_records", "Remembered terminal API v1 requests", g_terminal },
		{ "tokenplace_relay_api_v1_tombstones", "Control tombstones waiting for their owner", g_tombstones },
		{ "tokenplace_relay_api_v1_oldest_queued_age_seconds", "Age of the oldest queued API v1 request", g_oldest_queued },
		{ "tokenplace_relay_api_v1_oldest_in_flight_age_seconds", "Age of the oldest claimed API v1 request", g_oldest_in_flight },
		{ "tokenplace_relay_api_v1_long_polls", "Node long polls waiting right now", g_long_polls },
	};
	struct tp_counter *oc, *ev, *rx, *dr, *ctl, *ren, *ref, *rdl;
	const char *v[1];
	size_t i;

	oc = tp_counter_new(reg, "tokenplace_relay_request_outcomes_total",
	    "API v1 request outcomes, each request counted once", 1, outcome_l);
	ev = tp_counter_new(reg, "tokenplace_relay_api_v1_node_removals_total",
	    "API v1 compute nodes removed, by reason", 1, reason_l);
	rx = tp_counter_new(reg, "tokenplace_relay_api_v1_responses_expired_total",
	    "Responses dropped because their client never retrieved them", 0,
	    NULL);
	dr = tp_counter_new(reg, "tokenplace_relay_api_v1_records_dropped_total",
	    "Terminal records and tombstones pushed out at their limit", 1,
	    kind_l);
	ctl = tp_counter_new(reg, "tokenplace_relay_compute_control_requests_total",
	    "/servers/control answers by state", 1, state_l);
	ren = tp_counter_new(reg,
	    "tokenplace_relay_compute_control_lease_renewals_total",
	    "In-flight leases renewed by /servers/control", 0, NULL);
	ref = tp_counter_new(reg, "tokenplace_relay_api_v1_long_polls_refused_total",
	    "Polls answered at once because max_long_polls were waiting", 0, NULL);
	rdl = tp_counter_new(reg,
	    "tokenplace_relay_api_v1_responses_redelivered_total",
	    "Responses handed out again to a client retrying its retrieve "
	    "within RELAY_RESPONSE_REDELIVERY_SECONDS", 0, NULL);
	if (!oc || !ev || !rx || !dr || !ctl || !ren || !ref || !rdl)
		return -1;
	for (i = 0; i < V1_OUTCOME_COUNT; i++) {
		v[0] = outcomes[i];
		b->outcome[i] = tp_counter_child(oc, v);
	}
	v[0] = "stale_lease";
	b->evicted = tp_counter_child(ev, v);
	v[0] = "unregistered";
	b->unregistered = tp_counter_child(ev, v);
	b->responses_expired = tp_counter_child(rx, NULL);
	v[0] = "terminal";
	b->dropped_terminal = tp_counter_child(dr, v);
	v[0] = "tombstone";
	b->dropped_tombstones = tp_counter_child(dr, v);
	for (i = 0; i < V1_CTL_COUNT; i++) {
		v[0] = states[i];
		b->control[i] = tp_counter_child(ctl, v);
	}
	v[0] = "acknowledged";
	b->acknowledged = tp_counter_child(ctl, v);
	b->renewals = tp_counter_child(ren, NULL);
	b->polls_refused = tp_counter_child(ref, NULL);
	b->redelivered = tp_counter_child(rdl, NULL);
	for (i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		if (tp_gauge_fn_new(reg, gauges[i].name, gauges[i].help,
		    gauges[i].fn, b) != 0)
			return -1;
	return 0;
}

/* ---- sweeper ---------------------------------------------------------------- */

void
relay_v1_sweep(struct relay_v1 *b)
{
	struct relay_v1_effects fx;

	memset(&fx, 0, sizeof(fx));
	(void)b->store->ops->sweep(b->store, &b->cfg.lim, relay_v1_now(b), &fx);
	apply(b, &fx);
}

static void *
sweeper_main(void *arg)
{
	struct relay_v1 *b = arg;
	struct timespec ts;

	pthread_mutex_lock(&b->wmu);
	while (!b->stop) {
		ts = relay_mono_timespec(relay_mono_ms() +
		    RELAY_V1_SWEEP_INTERVAL_MS);
		(void)pthread_cond_timedwait(&b->sweep_cv, &b->wmu, &ts);
		if (b->stop)
			break;
		pthread_mutex_unlock(&b->wmu);
		relay_v1_sweep(b);
		pthread_mutex_lock(&b->wmu);
	}
	pthread_mutex_unlock(&b->wmu);
	return NULL;
}

/* ---- construction ------------------------------------------------------------- */

static const char *
wq_hkey(const struct relay_hnode *n, size_t *len)
{
	const struct wq *q = const_container_of(n, struct wq, h);

	*len = q->key_len;
	return q->key;
}

static int
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int rc;

	if (pthread_condattr_init(&a) != 0)
		return -1;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return rc == 0 ? 0 : -1;
}

struct relay_v1 *
relay_v1_new(const struct relay_v1_config *cfg, struct relay_v1_store *store,
    struct tp_metrics_registry *metrics)
{
	struct relay_v1 *b = calloc(1, sizeof(*b));
	uint64_t k[2];

	if (store == NULL)
		store = relay_v1_store_memory_new();
	if (b == NULL || store == NULL || relay_random_bytes(k, sizeof(k)) != 0)
		goto fail_early;
	b->cfg = *cfg;
	b->cfg.server_token = b->cfg.server_tokens = NULL;	/* not kept */
	b->store = store;
	b->auth = relay_auth_new(cfg->server_token, cfg->server_tokens);
	if (b->auth == NULL)
		goto fail_early;
	/* Set before the sweeper starts: it reads the clock from then on. */
	b->clock = cfg->clock ? cfg->clock : default_clock;
	b->clock_arg = cfg->clock_arg;
	if (relay_hashtab_init(&b->wqs, wq_hkey, k[0], k[1]) != 0)
		goto fail_early;
	pthread_mutex_init(&b->wmu, NULL);
	pthread_mutex_init(&b->smu, NULL);
	if (cond_init_mono(&b->sweep_cv) != 0) {
		relay_hashtab_destroy(&b->wqs);
		goto fail_early;
	}
	if (metrics != NULL && register_metrics(b, metrics) != 0)
		goto fail;
	if (cfg->sweeper) {
		if (pthread_create(&b->sweeper, NULL, sweeper_main, b) != 0)
			goto fail;
		b->sweeper_running = true;
	}
	return b;
fail:
	b->store = NULL;
	relay_v1_free(b);
	relay_v1_store_free(store);
	return NULL;
fail_early:
	relay_v1_store_free(store);
	if (b != NULL)
		relay_auth_free(b->auth);
	free(b);
	return NULL;
}

void
relay_v1_free(struct relay_v1 *b)
{
	if (b == NULL)
		return;
	if (b->sweeper_running) {
		pthread_mutex_lock(&b->wmu);
		b->stop = true;
		pthread_cond_broadcast(&b->sweep_cv);
		pthread_mutex_unlock(&b->wmu);
		pthread_join(b->sweeper, NULL);
	}
	/* Polls still waiting would be a bug of the caller: the server is stopped. */
	while (b->all != NULL) {
		struct wq *q = b->all;

		b->all = q->next_all;
		relay_hashtab_del(&b->wqs, &q->h);
		free(q);
	}
	relay_hashtab_destroy(&b->wqs);
	pthread_cond_destroy(&b->sweep_cv);
	pthread_mutex_destroy(&b->wmu);
	pthread_mutex_destroy(&b->smu);
	relay_v1_store_free(b->store);
	relay_auth_free(b->auth);
	free(b);
}

bool
relay_v1_node_authorized(const struct relay_v1 *b, const char *header)
{
	return relay_auth_check(b->auth, header);
}

/* ---- long-poll waiting --------------------------------------------------------- */

/* Files w under node id `key`; called with wmu held. -1 when out of memory. */
static int
waiter_add(struct relay_v1 *b, const char *key, size_t key_len,
    struct waiter *w)
{
	struct relay_hnode *h = relay_hashtab_get(&b->wqs, key, key_len);
	struct wq *q;

	if (h != NULL) {
		q = container_of(h, struct wq, h);
	} else {
		q = malloc(sizeof(*q) + key_len + 1);
		if (q == NULL)
			return -1;
		memcpy(q->key, key, key_len);
		q->key[key_len] = '\0';
		q->key_len = key_len;
		q->head = NULL;
		q->prev_all = NULL;
		q->next_all = b->all;
		if (b->all != NULL)
			b->all->prev_all = q;
		b->all = q;
		relay_hashtab_put(&b->wqs, &q->h);
	}
	w->prev = NULL;
	w->next = q->head;
	if (q->head != NULL)
		q->head->prev = w;
	q->head = w;
	return 0;
}

static void
waiter_del(struct relay_v1 *b, const char *key, size_t key_len,
    struct waiter *w)
{
	struct relay_hnode *h = relay_hashtab_get(&b->wqs, key, key_len);
	struct wq *q;

	if (h == NULL)
		return;
	q = container_of(h, struct wq, h);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		q->head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	if (q->head != NULL)
		return;
	if (q->prev_all != NULL)
		q->prev_all->next_all = q->next_all;
	else
		b->all = q->next_all;
	if (q->next_all != NULL)
		q->next_all->prev_all = q->prev_all;
	relay_hashtab_del(&b->wqs, &q->h);
	free(q);
}

/* Wakes the polls filed under node id `id`; returns how many. */
static size_t
wake_id(struct relay_v1 *b, const char *id, size_t id_len)
{
	struct relay_hnode *h;
	struct waiter *w;
	size_t n = 0;

	pthread_mutex_lock(&b->wmu);
	h = relay_hashtab_get(&b->wqs, id, id_len);
	if (h != NULL)
		for (w = container_of(h, struct wq, h)->head; w; w = w->next) {
			w->woken = true;
			pthread_cond_signal(&w->cv);
			n++;
		}
	pthread_mutex_unlock(&b->wmu);
	return n;
}

static void
wake_node(struct relay_v1 *b, const char *key, size_t key_len)
{
	char id[RELAY_V1_NODE_ID_LEN + 1];

	relay_v1_node_id(key, key_len, id);
	(void)wake_id(b, id, RELAY_V1_NODE_ID_LEN);
}

/*
 * Wakes every waiting poll (returns how many); with `drain`, new polls
 * answer at once too.
 */
static size_t
wake_all(struct relay_v1 *b, bool drain)
{
	struct wq *q;
	struct waiter *w;
	size_t n = 0;

	pthread_mutex_lock(&b->wmu);
	if (drain)
		b->draining = true;
	for (q = b->all; q != NULL; q = q->next_all)
		for (w = q->head; w != NULL; w = w->next) {
			w->woken = true;
			pthread_cond_signal(&w->cv);
			n++;
		}
	pthread_mutex_unlock(&b->wmu);
	return n;
}

void
relay_v1_drain(struct relay_v1 *b)
{
	(void)wake_all(b, true);
}

size_t
relay_v1_wake_id(struct relay_v1 *b, const char *id, size_t id_len)
{
	return wake_id(b, id, id_len);
}

size_t
relay_v1_wake_all(struct relay_v1 *b)
{
	return wake_all(b, false);
}

long
relay_v1_long_polls(struct relay_v1 *b)
{
	long n;

	pthread_mutex_lock(&b->wmu);
	n = b->long_polls;
	pthread_mutex_unlock(&b->wmu);
	return n;
}

enum relay_v1_rc
relay_v1_poll(struct relay_v1 *b, const char *key, size_t key_len,
    const struct tp_v1_caps *caps, struct relay_v1_poll_result *out)
{
	struct relay_v1_effects fx;
	struct waiter w;
	enum relay_v1_rc rc;
	int64_t wait = b->cfg.poll_wait_ms, until;
	bool slot = false, filed = false;
	char id[RELAY_V1_NODE_ID_LEN + 1];

	memset(out, 0, sizeof(*out));
	memset(&fx, 0, sizeof(fx));
	if (wait > 0) {
		pthread_mutex_lock(&b->wmu);
		if (b->draining) {
			out->draining = true;
		} else if (b->long_polls < b->cfg.max_long_polls) {
			b->long_polls++;
			slot = true;
		} else {
			out->busy = true;
		}
		pthread_mutex_unlock(&b->wmu);
		if (out->busy)
			tp_counter_child_add(b->polls_refused, 1);
	}
	/* Only a poll that will wait is protected from eviction meanwhile. */
	rc = b->store->ops->poll(b->store, &b->cfg.lim, relay_v1_now(b), key,
	    key_len, caps, slot ? relay_v1_now(b) + wait : 0, &out->work,
	    &out->has_work, &fx);
	if (rc != V1_OK || out->has_work || !slot)
		goto out;

	if (cond_init_mono(&w.cv) != 0)
		goto out;
	w.woken = false;
	until = relay_mono_ms() + wait;
	relay_v1_node_id(key, key_len, id);
	pthread_mutex_lock(&b->wmu);
	filed = waiter_add(b, id, RELAY_V1_NODE_ID_LEN, &w) == 0;
	pthread_mutex_unlock(&b->wmu);
	while (filed) {
		struct timespec ts;
		bool stop;

		/* Looked at after filing the waiter, so no enqueue is missed. */
		rc = b->store->ops->poll(b->store, &b->cfg.lim, relay_v1_now(b),
		    key, key_len, NULL, relay_v1_now(b) + (until - relay_mono_ms()),
		    &out->work, &out->has_work, &fx);
		if (rc != V1_OK || out->has_work)
			break;
		ts = relay_mono_timespec(until);
		pthread_mutex_lock(&b->wmu);
		while (!w.woken && !b->draining && relay_mono_ms() < until)
			(void)pthread_cond_timedwait(&w.cv, &b->wmu, &ts);
		w.woken = false;
		out->draining = b->draining;
		stop = b->draining || relay_mono_ms() >= until;
		pthread_mutex_unlock(&b->wmu);
		if (stop) {
			/* a last look: work may have come with the timeout */
			if (!out->draining)
				rc = b->store->ops->poll(b->store, &b->cfg.lim,
				    relay_v1_now(b), key, key_len, NULL, 0,
				    &out->work, &out->has_work, &fx);
			break;
		}
	}
	pthread_mutex_lock(&b->wmu);
	if (filed)
		waiter_del(b, id, RELAY_V1_NODE_ID_LEN, &w);
	pthread_mutex_unlock(&b->wmu);
	pthread_cond_destroy(&w.cv);
out:
	if (slot) {
		pthread_mutex_lock(&b->wmu);
		b->long_polls--;
		pthread_mutex_unlock(&b->wmu);
	}
	apply(b, &fx);
	return rc;
}

/* ---- the other transitions -------------------------------------------------------- */

static void
b64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];

		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
	} else if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
	}
	out[o] = '\0';
}

enum relay_v1_rc
relay_v1_register(struct relay_v1 *b, const char *key, size_t key_len,
    const struct tp_v1_caps *caps, char credential[RELAY_V1_CREDENTIAL_LEN + 1],
    bool *created)
{
	struct relay_v1_effects fx;
	unsigned char raw[32], digest[TP_SHA256_LEN];
	char cred[RELAY_V1_CREDENTIAL_LEN + 1];
	enum relay_v1_rc rc;

	credential[0] = '\0';
	*created = false;
	if (relay_random_bytes(raw, sizeof(raw)) != 0)
		return V1_E_NOMEM;
	b64url(raw, sizeof(raw), cred);
	tp_sha256(cred, RELAY_V1_CREDENTIAL_LEN, digest);
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->register_node(b->store, &b->cfg.lim,
	    relay_v1_now(b), key, key_len, digest, caps, created, &fx);
	apply(b, &fx);
	if (rc == V1_OK && *created)
		memcpy(credential, cred, sizeof(cred));
	memset(cred, 0, sizeof(cred));
	memset(raw, 0, sizeof(raw));
	return rc;
}

enum relay_v1_rc
relay_v1_select(struct relay_v1 *b, const char *model, enum tp_v1_tier tier,
    struct relay_v1_selection *out)
{
	struct relay_v1_effects fx;
	enum relay_v1_rc rc;

	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->select(b->store, &b->cfg.lim, relay_v1_now(b),
	    model, tier, b->cfg.lim.reservation_ttl_ms > 0, out, &fx);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_enqueue(struct relay_v1 *b, const struct tp_v1_envelope *e,
    int64_t *deadline_ms, bool *duplicate)
{
	struct relay_v1_enqueue_in in;
	struct relay_v1_effects fx;
	unsigned char cancel[TP_SHA256_LEN];
	enum relay_v1_rc rc;
	int64_t now = relay_v1_now(b);
	size_t len = 0;
	char *work = tp_v1_work_encode(e, &len);

	*duplicate = false;
	if (work == NULL)
		return V1_E_NOMEM;
	memset(&in, 0, sizeof(in));
	in.node = e->server_public_key.ptr;
	in.node_len = e->server_public_key.len;
	in.client = e->client_public_key.ptr;
	in.client_len = e->client_public_key.len;
	in.request_id = e->request_id.ptr;
	in.request_id_len = e->request_id.len;
	in.work = work;
	in.work_len = len;
	if (e->cancel_token.ptr != NULL) {
		tp_sha256(e->cancel_token.ptr, e->cancel_token.len, cancel);
		in.cancel_digest = cancel;
	}
	in.deadline_ms = now + b->cfg.deadline_ms;
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->enqueue(b->store, &b->cfg.lim, now, &in, duplicate,
	    deadline_ms, &fx);
	free(work);
	apply(b, &fx);
	if (rc == V1_OK && !*duplicate)
		wake_node(b, in.node, in.node_len);
	return rc;
}

enum relay_v1_rc
relay_v1_control(struct relay_v1 *b, const struct tp_v1_control *c,
    enum relay_v1_control_state *state, int64_t *deadline_ms)
{
	struct relay_v1_effects fx;
	unsigned char digest[TP_SHA256_LEN];
	enum relay_v1_rc rc;

	if (c->control_credential.ptr != NULL)
		tp_sha256(c->control_credential.ptr, c->control_credential.len,
		    digest);
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->control(b->store, &b->cfg.lim, relay_v1_now(b),
	    c->server_public_key.ptr, c->server_public_key.len,
	    c->control_credential.ptr ? digest : NULL, c->request_id.ptr,
	    c->request_id.len, c->acknowledge, state, deadline_ms, &fx);
	apply(b, &fx);
	if (rc == V1_OK)
		tp_counter_child_add(b->control[*state], 1);
	return rc;
}

enum relay_v1_rc
relay_v1_cancel(struct relay_v1 *b, const struct tp_v1_cancel *c, int *removed)
{
	struct relay_v1_effects fx;
	unsigned char digest[TP_SHA256_LEN];
	enum relay_v1_rc rc;

	*removed = 0;
	if (c->cancel_token.ptr == NULL)
		return V1_E_FORBIDDEN;
	tp_sha256(c->cancel_token.ptr, c->cancel_token.len, digest);
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->cancel(b->store, &b->cfg.lim, relay_v1_now(b),
	    c->client_public_key.ptr, c->client_public_key.len,
	    c->request_id.ptr, c->request_id.len, digest, c->status, c->reason,
	    removed, &fx);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_respond(struct relay_v1 *b, const struct tp_v1_envelope *e,
    bool *duplicate, const char **gone)
{
	struct relay_v1_response_in in;
	struct relay_v1_effects fx;
	unsigned char digest[TP_SHA256_LEN];
	enum relay_v1_rc rc;
	size_t len = 0;
	char *body = tp_v1_response_encode(e, &len);

	*duplicate = false;
	*gone = NULL;
	if (body == NULL)
		return V1_E_NOMEM;
	memset(&in, 0, sizeof(in));
	in.client = e->client_public_key.ptr;
	in.client_len = e->client_public_key.len;
	in.request_id = e->request_id.ptr;
	in.request_id_len = e->request_id.len;
	in.response = body;
	in.response_len = len;
	in.require_proof = b->cfg.require_proof;
	if (e->server_public_key.ptr != NULL &&
	    e->control_credential.ptr != NULL) {
		tp_sha256(e->control_credential.ptr, e->control_credential.len,
		    digest);
		in.node = e->server_public_key.ptr;
		in.node_len = e->server_public_key.len;
		in.cred_digest = digest;
	}
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->accept_response(b->store, &b->cfg.lim,
	    relay_v1_now(b), &in, duplicate, gone, &fx);
	free(body);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_progress(struct relay_v1 *b, const struct tp_v1_progress *p)
{
	struct relay_v1_effects fx;
	unsigned char digest[TP_SHA256_LEN];
	enum relay_v1_rc rc;
	size_t len = 0;
	char *env = tp_v1_progress_encode(p, &len);

	if (env == NULL)
		return V1_E_NOMEM;
	tp_sha256(p->control_credential.ptr, p->control_credential.len, digest);
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->progress(b->store, &b->cfg.lim, relay_v1_now(b),
	    p->server_public_key.ptr, p->server_public_key.len, digest,
	    p->client_public_key.ptr, p->client_public_key.len,
	    p->request_id.ptr, p->request_id.len, env, len, &fx);
	free(env);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_retrieve(struct relay_v1 *b, const struct tp_v1_retrieve *r,
    struct relay_v1_retrieval *out)
{
	struct relay_v1_effects fx;
	enum relay_v1_rc rc;

	memset(out, 0, sizeof(*out));
	if (r->request_id.ptr == NULL)
		return V1_OK;	/* no anonymous responses exist: unknown */
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->retrieve(b->store, &b->cfg.lim, relay_v1_now(b),
	    r->client_public_key.ptr, r->client_public_key.len,
	    r->request_id.ptr, r->request_id.len, out, &fx);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_unregister(struct relay_v1 *b, const struct tp_v1_unregister *u,
    bool *removed)
{
	struct relay_v1_effects fx;
	unsigned char digest[TP_SHA256_LEN];
	enum relay_v1_rc rc;

	if (u->control_credential.ptr != NULL)
		tp_sha256(u->control_credential.ptr, u->control_credential.len,
		    digest);
	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->unregister(b->store, &b->cfg.lim, relay_v1_now(b),
	    u->server_public_key.ptr, u->server_public_key.len,
	    u->control_credential.ptr ? digest : NULL, removed, &fx);
	apply(b, &fx);
	if (rc == V1_OK && *removed)
		wake_node(b, u->server_public_key.ptr, u->server_public_key.len);
	return rc;
}

enum relay_v1_rc
relay_v1_stats(struct relay_v1 *b, struct relay_v1_stats *out)
{
	struct relay_v1_effects fx;
	enum relay_v1_rc rc;

	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->stats(b->store, &b->cfg.lim, relay_v1_now(b), out,
	    &fx);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_list_nodes(struct relay_v1 *b, size_t max, bool keys,
    struct relay_v1_node_list *out)
{
	struct relay_v1_effects fx;
	enum relay_v1_rc rc;

	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->list_nodes(b->store, &b->cfg.lim, relay_v1_now(b),
	    max, keys, out, &fx);
	apply(b, &fx);
	return rc;
}

enum relay_v1_rc
relay_v1_list_models(struct relay_v1 *b, size_t max, const char *only,
    size_t only_len, struct relay_v1_model_list *out)
{
	struct relay_v1_effects fx;
	enum relay_v1_rc rc;

	memset(&fx, 0, sizeof(fx));
	rc = b->store->ops->list_models(b->store, &b->cfg.lim, relay_v1_now(b),
	    max, only, only_len, out, &fx);
	apply(b, &fx);
	return rc;
}

const char *
relay_v1_rc_limit(enum relay_v1_rc rc)
{
	switch (rc) {
	case V1_E_NODES_FULL:
		return "api_v1_max_nodes";
	case V1_E_REQUESTS_FULL:
		return "api_v1_max_requests";
	case V1_E_NO_CAPACITY:
		return "api_v1_max_concurrency";
	default:
		return NULL;
	}
}

enum relay_v1_rc
relay_v1_health_stats(struct relay_v1 *b, struct relay_v1_health *out)
{
	enum relay_v1_rc rc;

	memset(out, 0, sizeof(*out));
	rc = relay_v1_stats(b, &out->counts);
	if (rc != V1_OK)
		return rc;
	out->long_polls = relay_v1_long_polls(b);
	out->max_long_polls = b->cfg.max_long_polls;
	return V1_OK;
}
