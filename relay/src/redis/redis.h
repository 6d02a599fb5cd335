/*
 * relay_redis: the one adapter over hiredis. Only redis.c and
 * redis_pubsub.c (through redis_internal.h) include <hiredis/hiredis.h>;
 * the Redis stores (store_redis.c, v1_store_redis.c)
 * and the shared time base see plain C types only.
 *
 * It owns: URL parsing, a small pool of command connections (a caller
 * borrows one for one script call and gives it back at once, so a waiting
 * long poll never holds one), connect and command timeouts, TCP
 * keepalive, AUTH/SELECT, reconnect with back-off, Lua script loading
 * (SCRIPT LOAD once, EVALSHA, reloaded on NOSCRIPT: the only retry; a
 * script that timed out or lost its connection is never sent again, since
 * it may have run), one Pub/Sub subscriber thread per process, the
 * availability state (one log line per down/up transition) and the
 * adapter's metrics.
 *
 * Availability (relay_redis_up(); /healthz checks.state):
 *
 *   up   --a call fails: its connection is lost or times out, or the
 *         server answers that it cannot serve (READONLY, MASTERDOWN,
 *         LOADING, "max number of clients reached")-->  down
 *   down --a dial fails, or the call of the connection dialed while down
 *         (the probe) fails-->  down, next dial after a back-off (100 ms,
 *         doubling to 2 s); meanwhile every call fails at once with
 *         RELAY_REDIS_E_UNAVAILABLE
 *   down --a call is answered on a connection opened after the last
 *         loss-->  up (a dial alone proves nothing)
 *
 * While down only one thread dials and runs the probe (bounded by the
 * connect and command timeouts); a command never waits longer than the
 * command timeout, pool wait included. A failure on a connection opened
 * before the last loss changes nothing, nor does its answer.
 * relay.state_store_down / relay.state_store_up are logged once per
 * transition, and the state hook (relay_redis_on_state) sees each one in
 * order. The mutex inside serialises transitions; every function may be
 * called from any thread (scripts may be registered while others run).
 *
 * Error convention: functions return enum relay_redis_rc; RELAY_REDIS_OK
 * is 0. Everything handed out belongs to the caller and is released with
 * the matching free function.
 */
#ifndef RELAY_REDIS_H
#define RELAY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/redis_url.h"

struct tp_metrics_registry;

enum relay_redis_rc {
	RELAY_REDIS_OK = 0,
	RELAY_REDIS_E_NOMEM,
	RELAY_REDIS_E_UNAVAILABLE,	/* cannot connect, connection lost, timed out */
	RELAY_REDIS_E_OOM,		/* the server answered OOM (maxmemory reached) */
	RELAY_REDIS_E_AUTH,		/* wrong password / user (NOAUTH, WRONGPASS) */
	RELAY_REDIS_E_SCRIPT,		/* the script raised an error: a bug, logged */
	RELAY_REDIS_E_PROTOCOL,		/* unexpected reply shape */
	RELAY_REDIS_E_CONFIG,		/* the server refused SELECT (wrong db) */
	RELAY_REDIS_E_NOPERM,		/* an ACL refusal (NOPERM), logged */
};

/* A reply tree in plain C. str is NUL-terminated and binary safe (len). */
enum relay_redis_type {
	RELAY_REDIS_NIL = 0,
	RELAY_REDIS_INT,
	RELAY_REDIS_STR,		/* bulk or status string */
	RELAY_REDIS_ARRAY,
};

struct relay_redis_reply {
	enum relay_redis_type type;
	long long integer;
	char *str;
	size_t len;
	struct relay_redis_reply *elem;	/* n elements (ARRAY) */
	size_t n;
};

void relay_redis_reply_free(struct relay_redis_reply *r);

struct relay_redis;

/*
 * Creates the adapter and connects once: returns NULL with a reason in
 * err (no password in it) for a bad configuration or a server that
 * refuses AUTH/SELECT; a server that cannot be reached yet is NOT an
 * error (the adapter starts "down" and reconnects with back-off).
 * metrics may be NULL. Sets SIGPIPE to SIG_IGN when it is SIG_DFL (hiredis
 * writes with write(2), and a closed socket must fail a call, not kill
 * the process).
 */
struct relay_redis *relay_redis_new(const struct relay_redis_config *cfg,
    struct tp_metrics_registry *metrics, char *err, size_t errlen);

/* Stops the subscriber thread, closes every connection, frees. NULL ok. */
void relay_redis_free(struct relay_redis *r);

/* The configured key prefix with its hash tag, e.g. "{tokenplace:}". */
const char *relay_redis_prefix(const struct relay_redis *r);

/*
 * Registers a Lua script under a name used in metrics (command latency by
 * operation). Safe while other threads run scripts (the table never
 * moves). Returns a script id >= 0, or -1 when out of memory or when the
 * table (64 scripts) is full.
 */
int relay_redis_script(struct relay_redis *r, const char *name,
    const char *lua);

/*
 * Runs script `id` with the given keys and binary-safe args (EVALSHA,
 * loading it on NOSCRIPT) on a pooled connection, within the command
 * timeout. *out receives the reply (free with relay_redis_reply_free()).
 */
enum relay_redis_rc relay_redis_eval(struct relay_redis *r, int id,
    size_t nkeys, const char *const *keys, const size_t *keylens,
    size_t nargs, const char *const *args, const size_t *arglens,
    struct relay_redis_reply *out);

/*
 * The server's TIME in milliseconds since the epoch, from a script that
 * may write (so a read-only replica refuses it like any other call).
 */
enum relay_redis_rc relay_redis_time_ms(struct relay_redis *r, int64_t *ms);

/*
 * Counts n Pub/Sub wake-ups handed to local waiters
 * (tokenplace_relay_state_wakeups_total); the v1 store calls it.
 */
void relay_redis_wakeups_add(struct relay_redis *r, uint64_t n);

/* The availability state above; why gets the reason while down. */
bool relay_redis_up(const struct relay_redis *r, char *why, size_t whylen);

/*
 * The state hook: fn(arg, up, why) runs at once with the current state and
 * then on every down/up transition, on the thread that caused it, under
 * the adapter's lock (so calls arrive in the order of the transitions, and
 * nothing reads a state older than the last call). fn must not block and
 * must not call the adapter. One hook per adapter; NULL removes it.
 */
typedef void (*relay_redis_state_fn)(void *arg, bool up, const char *why);
void relay_redis_on_state(struct relay_redis *r, relay_redis_state_fn fn,
    void *arg);

/*
 * Checks, on a connection of its own, that the configured user may
 * PUBLISH to the deployment's wake-up channels and PSUBSCRIBE to their
 * pattern, and that the answer to PSUBSCRIBE is a subscription (Redis 7
 * ACL users start with resetchannels). Returns RELAY_REDIS_OK;
 * RELAY_REDIS_E_NOPERM with the missing permission and the ACL SETUSER
 * rule that grants it in why; RELAY_REDIS_E_UNAVAILABLE or
 * RELAY_REDIS_E_AUTH when the server cannot be used yet; or
 * RELAY_REDIS_E_PROTOCOL for any other answer.
 */
enum relay_redis_rc relay_redis_check_channels(struct relay_redis *r,
    char *why, size_t whylen);

/*
 * Pub/Sub: one subscriber thread per adapter, on its own connection,
 * subscribed to the pattern "<prefix>wake:*" (the prefix's glob
 * characters escaped). An answer to PSUBSCRIBE that is not a subscription
 * (NOPERM) is logged (relay.state_subscribe_refused), counted, and tried
 * again after a back-off. on_message gets the part of
 * the channel name after "<prefix>wake:"; on_subscribed runs after every
 * (re)subscribe, so that local waiters re-check the store (a message
 * missed while disconnected costs one check, never a lost job). Both run
 * on the subscriber thread and must not block. Returns RELAY_REDIS_OK or
 * RELAY_REDIS_E_NOMEM.
 */
typedef void (*relay_redis_message_fn)(void *arg, const char *suffix,
    size_t len);
typedef void (*relay_redis_subscribed_fn)(void *arg);
enum relay_redis_rc relay_redis_subscribe(struct relay_redis *r,
    relay_redis_message_fn on_message, relay_redis_subscribed_fn on_subscribed,
    void *arg);

#endif /* RELAY_REDIS_H */
