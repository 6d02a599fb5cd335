/*
 * redis_internal.h -- what the two files of the Redis adapter share
 * (redis.c: pool, availability, scripts; redis_pubsub.c: the subscriber
 * thread and the start-up channel check). Nothing outside them includes
 * this header or hiredis.
 */
#ifndef RELAY_REDIS_INTERNAL_H
#define RELAY_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "redis/redis.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define MAX_ARGS 64		/* keys + args of one script call */
#define SUB_POLL_MS 1000	/* subscriber wakes to check for stop */
#define MAX_SCRIPTS 64		/* fixed table: never moves under a reader */

enum err_kind {
	ERR_CONNECT = 0,
	ERR_TIMEOUT,
	ERR_CONNECTION_LOST,
	ERR_OOM,
	ERR_AUTH,
	ERR_SCRIPT,
	ERR_PROTOCOL,
	ERR_BUSY,
	ERR_POOL,
	ERR_FAILOVER,
	ERR_NOPERM,
	ERR_NKINDS
};

struct script {
	char *name;
	char *lua;
	size_t len;
	char sha[41];		/* "" until loaded; guarded by mu */
	struct tp_histogram_child *latency;
};

struct pooled {
	redisContext *c;
	uint64_t epoch;		/* r->epoch when its dial started */
	bool probe;		/* dialed while down: its call decides */
};

struct relay_redis {
	struct relay_redis_config cfg;
	char prefix[sizeof(((struct relay_redis_config *)0)->prefix) + 2];

	pthread_mutex_t mu;
	pthread_cond_t cv;		/* an idle connection or a free slot */
	struct pooled *idle;
	size_t nidle;
	unsigned open;			/* idle + borrowed + dialing */
	uint64_t epoch;			/* bumped at every loss (mark_down) */
	bool up;
	bool dialing;			/* a probe is out (dial + its call) */
	char why[160];
	int64_t next_dial_ms;
	int64_t backoff_ms;
	relay_redis_state_fn on_state;	/* called under mu */
	void *state_arg;

	/*
	 * A fixed table: a reader (any thread) indexes it while another
	 * registers; entries below nscripts never change but for sha.
	 */
	struct script scripts[MAX_SCRIPTS];
	_Atomic size_t nscripts;
	int time_id;			/* the TIME script */

	/* subscriber */
	pthread_t sub;
	bool sub_started;
	_Atomic bool stop;
	int stop_pipe[2];
	relay_redis_message_fn on_message;
	relay_redis_subscribed_fn on_subscribed;
	void *sub_arg;
	_Atomic bool sub_connected;
	/* "<prefix>wake:*" with the prefix's glob characters escaped */
	char pattern[2 * sizeof(((struct relay_redis_config *)0)->prefix) + 16];

	/* metrics (NULL without a registry) */
	struct tp_counter_child *errors[ERR_NKINDS];
	struct tp_counter_child *reconnects;
	struct tp_counter_child *wakeups;
	struct tp_histogram *latency;
};

/* A reason into a caller's buffer; cut short when it does not fit. */
void relay_redis_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counts one failure in tokenplace_relay_state_errors_total{kind}. */
void relay_redis_count(struct relay_redis *r, enum err_kind k);

/*
 * Whether an error answer says that this server cannot serve now
 * (READONLY, MASTERDOWN, LOADING, "max number of clients reached").
 */
bool relay_redis_cannot_serve(const char *s);

/*
 * Opens, authenticates and selects. Returns NULL with *rc and a reason
 * (never the password) in why: RELAY_REDIS_E_UNAVAILABLE for a server
 * that cannot be reached or cannot serve yet, RELAY_REDIS_E_AUTH or
 * RELAY_REDIS_E_CONFIG for a refused password or database.
 */
redisContext *relay_redis_dial(const struct relay_redis_config *cfg,
    enum relay_redis_rc *rc, char *why, size_t whylen);

#endif /* RELAY_REDIS_INTERNAL_H */
