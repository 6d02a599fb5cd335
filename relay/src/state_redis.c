/*
 * state_redis.c -- start-up, schema check and monitor thread of the shared
 * state (see state_redis.h).
 */
#include "state_redis.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "core/clock.h"
#include "legacy/broker.h"
#include "redis/redis.h"
#include "redis/timebase.h"
#include "settings.h"
#include "store/store.h"
#include "store/v1_store.h"
#include "tokenplace/health.h"
#include "tokenplace/log.h"
#include "v1/v1_broker.h"

struct relay_state_redis {
	struct relay_redis *r;
	struct relay_timebase *tb;
	struct tp_health *health;
	int check;			/* index of the "state" check */
	int schema_id;			/* the schema script */
	int64_t sample_ms;

	/*
	 * The readiness verdict's inputs, under rmu. The adapter's state hook
	 * (under the adapter's lock) and the monitor both report through
	 * report_locked(), so /healthz follows each transition at once and
	 * in order. Lock order: the adapter's lock, then rmu, then the
	 * health lock; nothing calls the adapter while holding rmu.
	 */
	pthread_mutex_t rmu;
	bool store_up;
	bool schema_ok;
	bool channels_ok;
	bool bad;			/* a refusal only the operator can fix */
	char schema_why[200];		/* why not ready (schema, channels) */

	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
};

/* Read or initialise: {0, version} (set now) or {1, stored version}. */
static const char LUA_SCHEMA[] =
    "#!lua\n"
    "local k = KEYS[1] .. 'schema'\n"
    "local v = redis.call('GET', k)\n"
    "if not v then\n"
    "  redis.call('SET', k, ARGV[1])\n"
    "  return {0, ARGV[1]}\n"
    "end\n"
    "return {1, v}\n";

int
relay_state_schema_script(struct relay_redis *r)
{
	return relay_redis_script(r, "schema", LUA_SCHEMA);
}

int
relay_state_schema_check(struct relay_redis *r, int id, char *err,
    size_t errlen)
{
	const char *key = relay_redis_prefix(r);
	size_t keylen = strlen(key);
	char ver[16];
	const char *args[1] = { ver };
	size_t arglens[1];
	struct relay_redis_reply rep;
	enum relay_redis_rc rc;
	long v;
	char *end;
	int out;

	snprintf(ver, sizeof(ver), "%d", RELAY_STATE_SCHEMA);
	arglens[0] = strlen(ver);
	rc = relay_redis_eval(r, id, 1, &key, &keylen, 1, args, arglens, &rep);
	if (rc == RELAY_REDIS_E_AUTH) {
		snprintf(err, errlen, "the server refuses commands without "
		    "authentication (NOAUTH): set RELAY_STATE_PASSWORD, "
		    "or the password (and user) in RELAY_STATE_URL");
		return -3;
	}
	if (rc == RELAY_REDIS_E_NOPERM) {
		char pat[300];

		(void)relay_redis_glob_escape(key, pat, sizeof(pat));
		snprintf(err, errlen, "the Redis user lacks an ACL permission "
		    "the relay's scripts need (NOPERM, see the "
		    "relay.state_permission_denied line): it needs the keys "
		    "~%.100s* and the commands EVALSHA, EVAL and SCRIPT LOAD",
		    pat);
		return -4;
	}
	if (rc != RELAY_REDIS_OK) {
		if (!relay_redis_up(r, err, errlen) && err[0] != '\0')
			return -1;
		snprintf(err, errlen, "the schema script failed (error %d)",
		    (int)rc);
		return -1;
	}
	if (rep.type != RELAY_REDIS_ARRAY || rep.n != 2 ||
	    rep.elem[1].type != RELAY_REDIS_STR) {
		relay_redis_reply_free(&rep);
		snprintf(err, errlen, "unexpected reply to the schema check");
		return -1;
	}
	v = strtol(rep.elem[1].str, &end, 10);
	if (*end != '\0' || end == rep.elem[1].str || v > RELAY_STATE_SCHEMA ||
	    v < RELAY_STATE_SCHEMA_MIN) {
		snprintf(err, errlen, "key %sschema holds version '%.20s'; this "
		    "relay reads versions %d to %d (a newer relay wrote this "
		    "store: upgrade this relay, or give it its own "
		    "RELAY_STATE_PREFIX)", key, rep.elem[1].str,
		    RELAY_STATE_SCHEMA_MIN, RELAY_STATE_SCHEMA);
		out = -2;
	} else {
		TP_LOG(TP_LOG_INFO, "relay.state_schema", TP_LSTR("prefix", key),
		    TP_LINT("version", v),
		    TP_LBOOL("initialised", rep.elem[0].integer == 0));
		out = 0;
	}
	relay_redis_reply_free(&rep);
	return out;
}

/* Under rmu: the "state" check from the inputs, logged when it changes. */
static void
report_locked(struct relay_state_redis *st)
{
	char reason[TP_HEALTH_REASON_MAX];
	enum tp_check_outcome o = TP_CHECK_FAIL;

	if (st->bad)
		snprintf(reason, sizeof(reason), "cannot use the store: %.130s",
		    st->schema_why);
	else if (!st->store_up)
		/*
		 * /healthz is public: the reason names neither the server nor
		 * the adapter's detail (relay.state_store_down has both).
		 */
		snprintf(reason, sizeof(reason), "Redis/Valkey unreachable "
		    "(RELAY_STATE_URL); the relay.state_store_down log line "
		    "says why");
	else if (!st->schema_ok || !st->channels_ok)
		snprintf(reason, sizeof(reason), "%s not checked yet: %.110s",
		    st->schema_ok ? "channel permissions" : "schema",
		    st->schema_why);
	else {
		o = TP_CHECK_OK;
		reason[0] = '\0';
	}
	if (tp_health_report(st->health, st->check, o, reason))
		TP_LOG(TP_LOG_INFO, "relay.state_readiness",
		    TP_LSTR("status", tp_check_outcome_name(o)),
		    TP_LSTR("reason", reason));
}

/* The adapter's state hook: under its lock, on every transition. */
static void
on_store_state(void *arg, bool up, const char *why)
{
	struct relay_state_redis *st = arg;

	pthread_mutex_lock(&st->rmu);
	(void)why;	/* the adapter's relay.state_store_down line has it */
	st->store_up = up;
	report_locked(st);
	pthread_mutex_unlock(&st->rmu);
}

/* A refusal found after start: unready until the operator fixes it. */
static void
set_bad(struct relay_state_redis *st, const char *event, const char *why,
    const char *setting)
{
	pthread_mutex_lock(&st->rmu);
	st->bad = true;
	snprintf(st->schema_why, sizeof(st->schema_why), "%s", why);
	pthread_mutex_unlock(&st->rmu);
	TP_LOG(TP_LOG_ERROR, event, TP_LSTR("reason", why),
	    TP_LSTR("setting", setting));
}

/*
 * One round: sample TIME, run the start-up checks still due (the server
 * may have been down at start), report.
 */
static void
monitor_round(struct relay_state_redis *st)
{
	char why[200];
	int64_t t0, t1, ms;
	enum relay_redis_rc rc;
	bool ok, schema_due, channels_due;
	int sc;

	t0 = relay_mono_ms();
	ok = relay_redis_time_ms(st->r, &ms) == RELAY_REDIS_OK;
	t1 = relay_mono_ms();
	if (ok)
		relay_timebase_sample(st->tb, ms, t0, t1);
	pthread_mutex_lock(&st->rmu);
	schema_due = !st->schema_ok && !st->bad;
	channels_due = !st->channels_ok && !st->bad;
	pthread_mutex_unlock(&st->rmu);
	if (ok && schema_due) {
		sc = relay_state_schema_check(st->r, st->schema_id, why,
		    sizeof(why));
		if (sc == -2 || sc == -3 || sc == -4)
			set_bad(st, "relay.state_schema_incompatible", why,
			    sc == -2 ? "RELAY_STATE_PREFIX" : sc == -3 ?
			    "RELAY_STATE_PASSWORD" : "RELAY_STATE_URL");
		pthread_mutex_lock(&st->rmu);
		st->schema_ok = sc == 0;
		if (sc == -1)
			snprintf(st->schema_why, sizeof(st->schema_why), "%s",
			    why);
		pthread_mutex_unlock(&st->rmu);
		schema_due = sc != 0;
	}
	if (ok && !schema_due && channels_due) {
		rc = relay_redis_check_channels(st->r, why, sizeof(why));
		if (rc == RELAY_REDIS_E_NOPERM || rc == RELAY_REDIS_E_PROTOCOL)
			set_bad(st, "relay.state_permission_missing", why,
			    "RELAY_STATE_URL");
		pthread_mutex_lock(&st->rmu);
		st->channels_ok = rc == RELAY_REDIS_OK;
		if (rc != RELAY_REDIS_OK && !st->bad)
			snprintf(st->schema_why, sizeof(st->schema_why), "%s",
			    why);
		pthread_mutex_unlock(&st->rmu);
	}
	pthread_mutex_lock(&st->rmu);
	report_locked(st);
	pthread_mutex_unlock(&st->rmu);
}

static void *
monitor_main(void *arg)
{
	struct relay_state_redis *st = arg;
	struct timespec ts;

	pthread_mutex_lock(&st->mu);
	while (!st->stop) {
		pthread_mutex_unlock(&st->mu);
		monitor_round(st);
		pthread_mutex_lock(&st->mu);
		ts = relay_mono_timespec(relay_mono_ms() + st->sample_ms);
		while (!st->stop &&
		    pthread_cond_timedwait(&st->cv, &st->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

struct relay_state_redis *
relay_state_redis_start(const struct relay_settings *s,
    struct tp_health *health, struct tp_metrics_registry *metrics, char *err,
    size_t errlen, const char **setting)
{
	struct relay_redis_config cfg;
	struct relay_state_redis *st;
	pthread_condattr_t ca;
	enum relay_redis_rc rc = RELAY_REDIS_E_UNAVAILABLE;
	bool pw_from_env;
	char why[200] = "";
	int sc;

	*setting = "RELAY_STATE_URL";
	if (relay_settings_redis_config(s, &cfg, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	pw_from_env = cfg.password[0] != '\0' && s->state_password != NULL &&
	    strcmp(cfg.password, s->state_password) == 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail_cfg;
	}
	st->health = health;
	st->sample_ms = s->state_time_sample_ms;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->rmu, NULL);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	st->r = relay_redis_new(&cfg, metrics, why, sizeof(why));
	if (st->r == NULL) {
		if (strncmp(why, "AUTH", 4) == 0 && pw_from_env)
			*setting = "RELAY_STATE_PASSWORD";
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	st->tb = relay_timebase_new();
	if (st->tb == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	st->schema_id = relay_state_schema_script(st->r);
	if (st->schema_id < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	st->check = tp_health_add_check(health, "state", true, 1, 1, NULL,
	    NULL);
	if (st->check < 0) {
		snprintf(err, errlen, "cannot register the readiness check");
		goto fail;
	}
	sc = relay_state_schema_check(st->r, st->schema_id, why, sizeof(why));
	if (sc == -2 || sc == -3 || sc == -4) {
		*setting = sc == -2 ? "RELAY_STATE_PREFIX" : sc == -3 ?
		    "RELAY_STATE_PASSWORD" : "RELAY_STATE_URL";
		snprintf(err, errlen, "%s", why);
		goto fail;
	}
	if (sc == 0) {
		/* A user without the wake-up channels: refused at start. */
		rc = relay_redis_check_channels(st->r, why, sizeof(why));
		if (rc == RELAY_REDIS_E_NOPERM || rc == RELAY_REDIS_E_PROTOCOL ||
		    rc == RELAY_REDIS_E_AUTH) {
			*setting = rc == RELAY_REDIS_E_AUTH && pw_from_env ?
			    "RELAY_STATE_PASSWORD" : "RELAY_STATE_URL";
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
	}
	pthread_mutex_lock(&st->rmu);
	st->schema_ok = sc == 0;
	st->channels_ok = sc == 0 && rc == RELAY_REDIS_OK;
	snprintf(st->schema_why, sizeof(st->schema_why), "%s", why);
	pthread_mutex_unlock(&st->rmu);
	/*
	 * From here on /healthz follows every down/up transition at once
	 * (the hook reports the current state now: the first verdict).
	 */
	relay_redis_on_state(st->r, on_store_state, st);
	/* The first sample before the relay can become ready. */
	monitor_round(st);
	if (pthread_create(&st->thread, NULL, monitor_main, st) != 0) {
		snprintf(err, errlen, "cannot start the state monitor thread");
		goto fail;
	}
	st->started = true;
	memset(&cfg, 0, sizeof(cfg));
	return st;
fail:
	relay_state_redis_stop(st);
fail_cfg:
	memset(&cfg, 0, sizeof(cfg));
	return NULL;
}

struct relay_redis *
relay_state_redis_adapter(struct relay_state_redis *st)
{
	return st->r;
}

struct relay_timebase *
relay_state_redis_timebase(struct relay_state_redis *st)
{
	return st->tb;
}

void
relay_state_redis_stop(struct relay_state_redis *st)
{
	if (st == NULL)
		return;
	if (st->started) {
		pthread_mutex_lock(&st->mu);
		st->stop = true;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	if (st->r != NULL)
		relay_redis_on_state(st->r, NULL, NULL);
	relay_timebase_free(st->tb);
	relay_redis_free(st->r);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->rmu);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

/* ---- the API v1 broker's wake-ups (state_redis.h) --------------------- */

void
relay_v1_link_init(struct relay_v1_link *l, struct relay_v1 *b,
    struct relay_redis *r)
{
	pthread_mutex_init(&l->mu, NULL);
	l->b = b;
	l->r = r;
}

void
relay_v1_link_clear(struct relay_v1_link *l)
{
	pthread_mutex_lock(&l->mu);
	l->b = NULL;
	pthread_mutex_unlock(&l->mu);
}

void
relay_v1_link_destroy(struct relay_v1_link *l)
{
	pthread_mutex_destroy(&l->mu);
}

void
relay_v1_link_on_message(void *arg, const char *suffix, size_t len)
{
	struct relay_v1_link *l = arg;

	/* anything but a node id is not ours to act on */
	if (len != RELAY_V1_NODE_ID_LEN)
		return;
	pthread_mutex_lock(&l->mu);
	if (l->b != NULL)
		relay_redis_wakeups_add(l->r, relay_v1_wake_id(l->b, suffix, len));
	pthread_mutex_unlock(&l->mu);
}

void
relay_v1_link_on_subscribed(void *arg)
{
	struct relay_v1_link *l = arg;

	pthread_mutex_lock(&l->mu);
	if (l->b != NULL)
		relay_redis_wakeups_add(l->r, relay_v1_wake_all(l->b));
	pthread_mutex_unlock(&l->mu);
}

/* ---- open and close (state_redis.h) ----------------------------------- */

struct relay_state {
	struct relay_state_redis *shared;	/* NULL: memory:// */
	struct relay_store *store;		/* the legacy broker's, once made */
	struct relay_v1_store *v1store;		/* until the API v1 broker owns it */
	struct relay_v1_link link;
	bool linked;
};

enum relay_state_open_rc
relay_state_open(struct relay_app *app)
{
	const struct relay_settings *s = app->settings;
	struct relay_v1_config v1cfg;
	struct relay_state *st;
	const char *setting = NULL;
	char err[256];

	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.out_of_memory");
		return RELAY_STATE_FAILED;
	}
	app->state = st;
	if (relay_settings_state_shared(s)) {
		st->shared = relay_state_redis_start(s, app->health,
		    app->metrics, err, sizeof(err), &setting);
		if (st->shared == NULL) {
			TP_LOG(TP_LOG_CRITICAL, "relay.state_config_invalid",
			    TP_LSTR("setting", setting), TP_LSTR("reason", err));
			return RELAY_STATE_CONFIG;
		}
		st->store = relay_store_redis_new(st->shared->r);
		st->v1store = relay_v1_store_redis_new(st->shared->r);
		if (st->v1store == NULL) {
			/* never fall back to per-replica API v1 state unseen */
			TP_LOG0(TP_LOG_CRITICAL, "relay.api_v1_state_init_failed");
			return RELAY_STATE_FAILED;
		}
	} else
		st->store = relay_store_memory_new();
	app->broker = st->store ? relay_broker_new(s, st->store, app->metrics) :
	    NULL;
	if (app->broker == NULL) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.state_init_failed");
		return RELAY_STATE_FAILED;
	}
	relay_v1_config_from_settings(s, &v1cfg);
	if (st->shared != NULL) {
		/* Both brokers on the shared time base (before any thread reads it). */
		v1cfg.clock = relay_timebase_clock;
		v1cfg.clock_arg = st->shared->tb;
		relay_broker_set_clock(app->broker, relay_timebase_clock,
		    st->shared->tb);
	}
	app->v1 = relay_v1_new(&v1cfg, st->v1store, app->metrics);
	st->v1store = NULL;	/* the broker's now, also when it failed */
	if (app->v1 == NULL) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.api_v1_state_init_failed");
		return RELAY_STATE_FAILED;
	}
	if (st->shared != NULL) {
		/*
		 * Long polls across replicas: the adapter's subscriber thread
		 * wakes this process's polls of a node when another relay
		 * enqueues for it (docs/internals/long-polls.md).
		 */
		relay_v1_link_init(&st->link, app->v1, st->shared->r);
		st->linked = true;
		if (relay_redis_subscribe(st->shared->r,
		    relay_v1_link_on_message, relay_v1_link_on_subscribed,
		    &st->link) != RELAY_REDIS_OK) {
			TP_LOG0(TP_LOG_CRITICAL, "relay.out_of_memory");
			return RELAY_STATE_FAILED;
		}
	}
	return RELAY_STATE_OPENED;
}

void
relay_state_close(struct relay_app *app)
{
	struct relay_state *st = app->state;

	relay_broker_free(app->broker);
	app->broker = NULL;
	if (st != NULL && st->linked)
		relay_v1_link_clear(&st->link);	/* no wake-up reaches a freed broker */
	relay_v1_free(app->v1);
	app->v1 = NULL;
	if (st == NULL)
		return;
	relay_v1_store_free(st->v1store);
	relay_store_free(st->store);
	relay_state_redis_stop(st->shared);	/* joins the subscriber thread */
	if (st->linked)
		relay_v1_link_destroy(&st->link);
	free(st);
	app->state = NULL;
}
