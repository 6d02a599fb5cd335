/*
 * relay_store: the relay's state behind one interface, so that the
 * embedded in-memory store (store_memory.c) and a shared Redis/Valkey
 * store can be swapped under the broker.
 *
 * State: servers (compute nodes) keyed by public key, each with a last-seen
 * time and a FIFO of opaque jobs; response slots keyed by client key with
 * a TTL; stream sessions keyed by a random id and by their client key,
 * each with a FIFO of opaque chunks.
 *
 * Contract for every implementation:
 *   - Every operation is one atomic transition: no other operation sees a
 *     state in between (the memory store holds one mutex; a Redis store
 *     runs one Lua script per call).
 *   - Time comes in as `now_ms` (milliseconds, never decreasing); stores
 *     keep no clock of their own, which also makes them testable.
 *   - Limits come in with every call (struct relay_store_limits), so a
 *     shared store needs no configuration of its own.
 *   - Before it acts, an operation removes what has expired among the
 *     entries it is about to count or look up: servers silent for more
 *     than server_ttl_ms (server_busy_ttl_ms when their last poll took
 *     jobs; with their queued jobs), responses older than
 *     response_ttl_ms, sessions idle for more than session_ttl_ms. So the
 *     outcome never depends on when sweep() last ran.
 *   - What was removed or replaced on the way is added to *fx (which may
 *     be NULL), for the broker's counters.
 *   - Bytes handed out (struct relay_blob, arrays in results) belong to
 *     the caller and are released with the free functions below.
 */
#ifndef RELAY_STORE_H
#define RELAY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_SESSION_ID_LEN 22	/* 16 random bytes, base64url, no padding */

/*
 * How often sweep() runs: the broker calls it at most once per interval
 * per process, and the Redis store lets one call per interval through for
 * the whole cluster (the others return at once).
 */
#define RELAY_STORE_SWEEP_INTERVAL_MS 1000

/* Outcomes shared by the store and the broker. */
enum relay_status {
	RELAY_OK = 0,
	RELAY_E_NOMEM,		/* out of memory (or no randomness) */
	RELAY_E_UNAVAILABLE,	/* the store's backend cannot be reached */
	RELAY_E_NO_SERVERS,	/* pick_server: no live server */
	RELAY_E_UNKNOWN_SERVER,	/* enqueue: not registered, or evicted */
	RELAY_E_SERVERS_FULL,	/* poll: a new server, max_servers reached */
	RELAY_E_QUEUE_FULL,	/* enqueue: queue_per_server reached */
	RELAY_E_QUEUE_TOTAL,	/* enqueue: queue_total reached */
	RELAY_E_RESPONSES_FULL,	/* put_response: max_responses reached */
	RELAY_E_NO_RESPONSE,	/* take_response: nothing waiting */
	RELAY_E_UNKNOWN_SESSION, /* stream_append: no such session */
	RELAY_E_CHUNKS_FULL,	/* stream_append: max_stream_chunks reached */
	RELAY_E_NO_STREAM,	/* stream_drain: no session for that client */
	RELAY_E_RATE_LIMITED,	/* broker: client over its request budget */
};

struct relay_store_limits {
	int64_t server_ttl_ms;
	int64_t server_busy_ttl_ms;	/* silence allowed after a poll handed out jobs */
	int64_t response_ttl_ms;
	int64_t session_ttl_ms;
	uint64_t max_servers;
	uint64_t queue_per_server;
	uint64_t queue_total;
	uint64_t max_responses;
	uint64_t max_stream_sessions;
	uint64_t max_stream_chunks;
};

/* What an operation removed or replaced besides its own result. */
struct relay_store_effects {
	uint64_t evicted_servers;	/* silent past server_ttl_ms */
	uint64_t dropped_jobs;		/* queued jobs of evicted/unregistered servers */
	uint64_t expired_responses;
	uint64_t expired_sessions;
	uint64_t replaced_responses;	/* an unread response overwritten */
	uint64_t replaced_sessions;	/* a client's open session replaced */
};

struct relay_store_stats {
	uint64_t servers;		/* live servers */
	uint64_t queued;		/* jobs in all queues */
	uint64_t responses;		/* response slots waiting */
	uint64_t sessions;		/* open stream sessions */
	uint64_t chunks;		/* undrained chunks */
};

/* One live server as list_servers reports it (/relay/diagnostics). */
struct relay_server_info {
	char *key;			/* NUL-ended, the caller's */
	size_t key_len;
	int64_t age_ms;			/* since its last poll */
	uint64_t queued;
};

struct relay_server_list {
	struct relay_server_info *servers;
	size_t n;
	uint64_t total;			/* live servers, listed or not */
};

static inline void
relay_server_list_free(struct relay_server_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->servers[i].key);
	free(l->servers);
	l->servers = NULL;
	l->n = 0;
	l->total = 0;
}

/* Bytes owned by the caller: data points into mem, free(mem) releases. */
struct relay_blob {
	const char *data;
	size_t len;
	void *mem;
};

/* A job to queue. */
struct relay_job_in {
	const char *data;		/* opaque, copied */
	size_t len;
	bool stream;			/* dequeuing it opens a stream session */
	const char *owner;		/* stream jobs: the client key owning the session */
	size_t owner_len;
};

/* A dequeued job. */
struct relay_job {
	struct relay_blob blob;
	bool stream;
	char session_id[RELAY_SESSION_ID_LEN + 1];	/* "" unless stream */
};

struct relay_poll_result {
	struct relay_job *jobs;		/* n jobs, oldest first */
	size_t n;
	bool registered;		/* the server was not known before */
	bool session_limited;		/* a stream job stayed queued: max_stream_sessions */
};

struct relay_drain_result {
	char session_id[RELAY_SESSION_ID_LEN + 1];
	struct relay_blob *chunks;	/* n chunks, oldest first */
	size_t n;
	bool final;			/* the session was closed and is now gone */
};

struct relay_store;

struct relay_store_ops {
	const char *name;

	/*
	 * Heartbeat and dequeue for server `key`: registers it (unless
	 * max_servers live servers exist: RELAY_E_SERVERS_FULL, nothing
	 * changes) or refreshes its last-seen time, then pops up to
	 * max_jobs jobs from the head of its queue, stopping before a job
	 * that would take the popped payload past max_bytes (the first job
	 * is always taken, whatever its size). Each popped stream job
	 * gets a new session owned by its client (replacing that client's
	 * previous session); when no session can be opened
	 * (max_stream_sessions) popping stops before that job.
	 */
	enum relay_status (*poll)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, size_t max_jobs, size_t max_bytes,
	    struct relay_poll_result *out, struct relay_store_effects *fx);

	/* Appends a job to a live server's queue, within both queue bounds. */
	enum relay_status (*enqueue)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, const struct relay_job_in *job,
	    struct relay_store_effects *fx);

	/* Copies the key of a live server chosen uniformly at random into *out. */
	enum relay_status (*pick_server)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    struct relay_blob *out, struct relay_store_effects *fx);

	/* Forgets a server and drops its queue; *removed says if it was known. */
	enum relay_status (*unregister)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, bool *removed,
	    struct relay_store_effects *fx);

	/*
	 * Stores the response for client `key`, replacing an unread one;
	 * a new slot needs room under max_responses.
	 */
	enum relay_status (*put_response)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, const char *data, size_t len,
	    struct relay_store_effects *fx);

	/* Hands the waiting response over once (the slot is gone after). */
	enum relay_status (*take_response)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *key, size_t key_len, struct relay_blob *out,
	    struct relay_store_effects *fx);

	/* Appends a chunk to a session; `final` closes it (sticky). */
	enum relay_status (*stream_append)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *session_id, size_t id_len, const char *data,
	    size_t len, bool final, struct relay_store_effects *fx);

	/*
	 * Takes every buffered chunk of the client's session; a closed
	 * session is deleted by this call (out->final).
	 */
	enum relay_status (*stream_drain)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    const char *client, size_t client_len,
	    struct relay_drain_result *out, struct relay_store_effects *fx);

	/* Removes everything expired; also gives freed memory back to the OS. */
	enum relay_status (*sweep)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    struct relay_store_effects *fx);

	/*
	 * Removes the servers that expired, then lists up to `max` of the
	 * live ones (keys only when `keys`; otherwise key is NULL) and counts
	 * them all in out->total. Derived from the shared state alone.
	 */
	enum relay_status (*list_servers)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms, size_t max,
	    bool keys, struct relay_server_list *out,
	    struct relay_store_effects *fx);

	/* Removes what expired, then counts what is left. */
	enum relay_status (*stats)(struct relay_store *s,
	    const struct relay_store_limits *lim, int64_t now_ms,
	    struct relay_store_stats *out, struct relay_store_effects *fx);

	/* Frees the store and everything in it. */
	void (*destroy)(struct relay_store *s);
};

struct relay_store {
	const struct relay_store_ops *ops;
	void *state;		/* the implementation's, opaque */
};

/*
 * The embedded store: all state in this process under one mutex. Returns
 * NULL when out of memory or when the kernel gives no randomness.
 * Free it with relay_store_free().
 */
struct relay_store *relay_store_memory_new(void);

struct relay_redis;

/*
 * The shared store on Redis/Valkey (store_redis.c): one Lua script per
 * operation through the adapter `r` (borrowed: it must outlive the store;
 * the API v1 store shares it). destroy() frees only the store's own
 * memory. Returns NULL when out of memory.
 */
struct relay_store *relay_store_redis_new(struct relay_redis *r);

/* Destroys any store; NULL is accepted. */
static inline void
relay_store_free(struct relay_store *s)
{
	if (s != NULL)
		s->ops->destroy(s);
}

static inline void
relay_blob_free(struct relay_blob *b)
{
	free(b->mem);
	b->mem = NULL;
	b->data = NULL;
	b->len = 0;
}

/*
 * Fills *b with a copy of len bytes at data (NUL-terminated too), owned
 * by the caller. Returns 0, or -1 out of memory (*b untouched).
 */
static inline int
relay_blob_copy(struct relay_blob *b, const char *data, size_t len)
{
	char *p = malloc(len + 1);

	if (p == NULL)
		return -1;
	memcpy(p, data, len);
	p[len] = '\0';
	b->data = b->mem = p;
	b->len = len;
	return 0;
}

static inline void
relay_poll_result_free(struct relay_poll_result *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		relay_blob_free(&r->jobs[i].blob);
	free(r->jobs);
	r->jobs = NULL;
	r->n = 0;
}

static inline void
relay_drain_result_free(struct relay_drain_result *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		relay_blob_free(&r->chunks[i]);
	free(r->chunks);
	r->chunks = NULL;
	r->n = 0;
}

#endif /* RELAY_STORE_H */
