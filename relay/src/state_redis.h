/*
 * relay_state_redis: bringing up and watching the shared state on
 * Redis/Valkey, for both protocol generations at once.
 *
 * relay_state_redis_start() builds the one adapter (redis.c) from the
 * settings, checks the schema version under the prefix, samples the
 * server's TIME into the shared time base (timebase.h), checks that the
 * user may PUBLISH and PSUBSCRIBE on the deployment's wake-up channels,
 * registers the required readiness check "state" and starts the monitor
 * thread, which every RELAY_STATE_TIME_SAMPLE_MS re-samples TIME (and runs
 * the checks a server down at start did not get). The check follows the
 * adapter's down/up state at once (its state hook): ok, or fail with the
 * reason (unreachable and why, an incompatible schema, a missing
 * permission), and each change of it is logged (relay.state_readiness).
 * A server that is down or busy at start is not an error: the relay
 * starts unready and becomes ready when the server answers.
 *
 * Schema compatibility rule (docs/store-redis.md): the key
 * "<prefix>schema" holds the layout version. An empty store gets
 * RELAY_STATE_SCHEMA; a stored version in [RELAY_STATE_SCHEMA_MIN,
 * RELAY_STATE_SCHEMA] is accepted as it is (never rewritten, so older
 * replicas of a rolling upgrade keep reading it); a newer one is refused.
 */
#ifndef RELAY_STATE_REDIS_H
#define RELAY_STATE_REDIS_H

#include <pthread.h>
#include <stddef.h>

#define RELAY_STATE_SCHEMA 2
#define RELAY_STATE_SCHEMA_MIN 1

struct relay_settings;
struct relay_redis;
struct relay_timebase;
struct tp_health;
struct tp_metrics_registry;

struct relay_state_redis;

/*
 * Starts as above. Returns NULL on a configuration error (malformed URL,
 * wrong password, wrong database, newer schema, an ACL user without the
 * keys, scripts or channels it needs, out of memory) with a
 * reason in err (never the password) and the name of the environment
 * variable to fix in *setting.
 */
struct relay_state_redis *relay_state_redis_start(
    const struct relay_settings *s, struct tp_health *health,
    struct tp_metrics_registry *metrics, char *err, size_t errlen,
    const char **setting);

/* The adapter both stores use, and the shared clock. */
struct relay_redis *relay_state_redis_adapter(struct relay_state_redis *st);
struct relay_timebase *relay_state_redis_timebase(struct relay_state_redis *st);

/* Stops the monitor, then frees the time base and the adapter. NULL ok. */
void relay_state_redis_stop(struct relay_state_redis *st);

/*
 * Registers the schema script with the adapter (before it is shared
 * between threads); returns its id, or -1 when out of memory.
 */
int relay_state_schema_script(struct relay_redis *r);

/*
 * Runs schema script `id`: reads (and on an empty store writes) the
 * schema version. Returns 0 when compatible, -1 when the server cannot be
 * reached (err says why), -2 when the stored version is not one this
 * relay can read (err says which and what to do), -3 when the server
 * wants a password this relay was not given, -4 when the ACL user may not
 * run the scripts on the deployment's keys (err says what to grant).
 */
int relay_state_schema_check(struct relay_redis *r, int id, char *err,
    size_t errlen);

struct relay_v1;

/*
 * The bridge from a Redis adapter's subscriber thread to a broker:
 *
 *	relay_v1_link_init(&link, b, r);
 *	relay_redis_subscribe(r, relay_v1_link_on_message,
 *	    relay_v1_link_on_subscribed, &link);
 *	...
 *	relay_v1_link_clear(&link);	before relay_v1_free(b)
 *	relay_redis_free(r);		joins the subscriber thread
 *	relay_v1_link_destroy(&link);	only now
 *
 * The link outlives the subscriber thread (the adapter has no
 * unsubscribe), so a message arriving while the broker is being freed
 * finds a cleared link instead of a freed broker. Polls woken this way
 * are counted in the adapter's tokenplace_relay_state_wakeups_total.
 */
struct relay_v1_link {
	pthread_mutex_t mu;
	struct relay_v1 *b;		/* NULL once cleared */
	struct relay_redis *r;
};

void relay_v1_link_init(struct relay_v1_link *l, struct relay_v1 *b,
    struct relay_redis *r);
void relay_v1_link_clear(struct relay_v1_link *l);
void relay_v1_link_destroy(struct relay_v1_link *l);
/* relay_redis_message_fn: suffix is the node id of "<prefix>wake:<id>". */
void relay_v1_link_on_message(void *arg, const char *suffix, size_t len);
/* relay_redis_subscribed_fn */
void relay_v1_link_on_subscribed(void *arg);

/* ---- the relay state of a running relay, both generations ------------- */

struct relay_app;
struct relay_state;

enum relay_state_open_rc {
	RELAY_STATE_OPENED = 0,
	RELAY_STATE_FAILED = -1,	/* out of memory, a store or broker failed */
	RELAY_STATE_CONFIG = -2,	/* a state setting the relay cannot run with */
};

/*
 * Opens the relay state from app->settings: the embedded stores
 * (memory://), or one Redis/Valkey adapter (relay_state_redis_start())
 * shared by the legacy and the API v1 store, with the server's TIME as the
 * clock of both brokers and the API v1 wake-up link subscribed to the
 * adapter. Sets app->state, app->broker and app->v1; needs app->health and
 * app->metrics. Each failure is logged (relay.state_config_invalid,
 * relay.state_init_failed, relay.api_v1_state_init_failed,
 * relay.out_of_memory); what was built stays in app for
 * relay_state_close(). Returns one of the codes above.
 */
enum relay_state_open_rc relay_state_open(struct relay_app *app);

/*
 * Tears down what relay_state_open() built, in the one safe order: the
 * legacy broker, the link cleared (no wake-up reaches a freed broker), the
 * API v1 broker, the stores, the adapter (joins the subscriber thread),
 * then the link. Call after the HTTP server and the model list (readers of
 * the brokers) are gone. Sets app->state, app->broker and app->v1 to NULL:
 * a second call does nothing.
 */
void relay_state_close(struct relay_app *app);

#endif /* RELAY_STATE_REDIS_H */
