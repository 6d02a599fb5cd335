/*
 * store_memory.c -- the embedded relay_store: all state in this process.
 *
 * One mutex guards everything; every operation is short (hash lookups and
 * list splices), and allocations of caller-sized data (jobs, responses,
 * chunks) happen before the lock is taken. Each entry is one allocation
 * holding its header and its bytes, and is handed to the caller as is when
 * it leaves the store (a popped job, a taken response, a drained chunk),
 * so nothing is copied twice and a queued 1 KiB job costs about 1 KiB plus
 * a 17-byte header. Expiry lists are kept in time order (oldest first), so
 * removing what expired costs only what is removed.
 */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/dlist.h"
#include "core/hashtab.h"
#include "core/random.h"


/* Give freed heap pages back to the OS after this much was released. */
#define TRIM_AFTER_BYTES ((uint64_t)8 << 20)


struct job {
	struct job *next;
	uint32_t len;		/* payload bytes */
	uint32_t owner_len;	/* stream jobs: client key bytes after the payload */
	bool stream;
	char data[];
};

struct server {
	struct relay_hnode h;
	struct dlink lru;	/* by expires, soonest first */
	int64_t last_seen;
	int64_t expires;	/* evicted when now passes this */
	struct job *head, *tail;
	uint64_t qlen;
	size_t idx;		/* position in mem->pick */
	size_t key_len;
	char key[];
};

struct response {
	struct relay_hnode h;
	struct dlink lru;	/* by stored, oldest first */
	int64_t stored;
	size_t key_len, len;
	char bytes[];		/* key, then payload */
};

struct chunk {
	struct chunk *next;
	size_t len;
	char data[];
};

struct session {
	struct relay_hnode by_id;
	struct relay_hnode by_client;
	struct dlink lru;	/* by last activity, oldest first */
	int64_t touched;
	struct chunk *head, *tail;
	uint64_t nchunks;
	bool closed;
	char id[RELAY_SESSION_ID_LEN + 1];
	size_t client_len;
	char client[];
};

struct mem {
	struct relay_store pub;
	pthread_mutex_t mu;
	struct relay_hashtab servers, responses, sessions, by_client;
	struct dlink server_lru, response_lru, session_lru;
	struct server **pick;	/* every server, for uniform choice */
	size_t npick, pick_cap;
	uint64_t queued;
	uint64_t chunks;
	uint64_t freed;		/* bytes released since the last trim */
};

/* ---- small helpers ------------------------------------------------------ */

/* Inserts a server into the eviction list, keeping it sorted by expiry. */
static void
lru_insert_sorted(struct dlink *head, struct dlink *e, int64_t expires,
    int64_t (*expiry_of)(const struct dlink *))
{
	struct dlink *at = head->prev;

	/* Most refreshes land at the tail, so the walk back is short. */
	while (at != head && expiry_of(at) > expires)
		at = at->prev;
	e->prev = at;
	e->next = at->next;
	at->next->prev = e;
	at->next = e;
}

/* 16 random bytes as 22 base64url characters, as secrets.token_urlsafe(16). */
static int
new_session_id(char out[RELAY_SESSION_ID_LEN + 1])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char r[18];
	char enc[24];
	size_t i, o = 0;
	uint32_t v;

	if (relay_random_bytes(r, 16) != 0)
		return -1;
	r[16] = r[17] = 0;
	for (i = 0; i < 18; i += 3) {
		v = (uint32_t)r[i] << 16 | (uint32_t)r[i + 1] << 8 | r[i + 2];
		enc[o++] = b64[(v >> 18) & 63];
		enc[o++] = b64[(v >> 12) & 63];
		enc[o++] = b64[(v >> 6) & 63];
		enc[o++] = b64[v & 63];
	}
	/* 24 characters encode 18 bytes; the first 22 carry the 128 bits. */
	memcpy(out, enc, RELAY_SESSION_ID_LEN);
	out[RELAY_SESSION_ID_LEN] = '\0';
	return 0;
}

static const char *
server_key(const struct relay_hnode *n, size_t *len)
{
	const struct server *s = const_container_of(n, struct server, h);

	*len = s->key_len;
	return s->key;
}

static const char *
response_key(const struct relay_hnode *n, size_t *len)
{
	const struct response *r = const_container_of(n, struct response, h);

	*len = r->key_len;
	return r->bytes;
}

static const char *
session_id_key(const struct relay_hnode *n, size_t *len)
{
	const struct session *s = const_container_of(n, struct session, by_id);

	*len = RELAY_SESSION_ID_LEN;
	return s->id;
}

static const char *
session_client_key(const struct relay_hnode *n, size_t *len)
{
	const struct session *s = const_container_of(n, struct session, by_client);

	*len = s->client_len;
	return s->client;
}

static struct mem *
M(struct relay_store *s)
{
	return s->state;
}

static void
fx_add(struct relay_store_effects *fx, const struct relay_store_effects *d)
{
	if (fx == NULL)
		return;
	fx->evicted_servers += d->evicted_servers;
	fx->dropped_jobs += d->dropped_jobs;
	fx->expired_responses += d->expired_responses;
	fx->expired_sessions += d->expired_sessions;
	fx->replaced_responses += d->replaced_responses;
	fx->replaced_sessions += d->replaced_sessions;
}

static size_t
job_size(const struct job *j)
{
	return offsetof(struct job, data) + j->len + j->owner_len;
}

/* ---- servers ------------------------------------------------------------ */

static void
server_remove(struct mem *m, struct server *srv, struct relay_store_effects *fx)
{
	struct job *j, *next;
	struct server *last;

	relay_hashtab_del(&m->servers, &srv->h);
	dl_unlink(&srv->lru);
	last = m->pick[--m->npick];
	m->pick[srv->idx] = last;
	last->idx = srv->idx;
	for (j = srv->head; j != NULL; j = next) {
		next = j->next;
		m->freed += job_size(j);
		free(j);
	}
	m->queued -= srv->qlen;
	fx->dropped_jobs += srv->qlen;
	m->freed += sizeof(*srv) + srv->key_len;
	free(srv);
}

static void
evict_stale(struct mem *m, int64_t now, struct relay_store_effects *fx)
{
	struct server *srv;

	while (m->server_lru.next != &m->server_lru) {
		srv = container_of(m->server_lru.next, struct server, lru);
		if (now <= srv->expires)
			break;
		server_remove(m, srv, fx);
		fx->evicted_servers++;
	}
}

static int64_t
server_expiry(const struct dlink *e)
{
	return const_container_of(e, struct server, lru)->expires;
}

/*
 * Marks a server as heard from now; it may then stay silent for `quiet_ms`
 * before it is evicted.
 */
static void
server_refresh(struct mem *m, struct server *srv, int64_t now,
    int64_t quiet_ms)
{
	srv->last_seen = now;
	srv->expires = now + quiet_ms;
	dl_unlink(&srv->lru);
	lru_insert_sorted(&m->server_lru, &srv->lru, srv->expires,
	    server_expiry);
}

static struct server *
server_get(struct mem *m, const char *key, size_t len)
{
	struct relay_hnode *n = relay_hashtab_get(&m->servers, key, len);

	return n ? container_of(n, struct server, h) : NULL;
}

static struct server *
server_add(struct mem *m, const char *key, size_t len, int64_t now)
{
	struct server *srv, **np;
	size_t ncap;

	if (m->npick == m->pick_cap) {
		ncap = m->pick_cap ? m->pick_cap * 2 : 16;
		np = realloc(m->pick, ncap * sizeof(*np));
		if (np == NULL)
			return NULL;
		m->pick = np;
		m->pick_cap = ncap;
	}
	srv = calloc(1, sizeof(*srv) + len);
	if (srv == NULL)
		return NULL;
	memcpy(srv->key, key, len);
	srv->key_len = len;
	srv->last_seen = now;
	srv->expires = now;
	srv->idx = m->npick;
	m->pick[m->npick++] = srv;
	relay_hashtab_put(&m->servers, &srv->h);
	dl_init(&srv->lru);
	lru_insert_sorted(&m->server_lru, &srv->lru, srv->expires,
	    server_expiry);
	return srv;
}

/* ---- responses ---------------------------------------------------------- */

static void
response_unlink(struct mem *m, struct response *r)
{
	relay_hashtab_del(&m->responses, &r->h);
	dl_unlink(&r->lru);
	m->freed += sizeof(*r) + r->key_len + r->len;
}

static void
expire_responses(struct mem *m, const struct relay_store_limits *lim,
    int64_t now, struct relay_store_effects *fx)
{
	struct response *r;

	while (m->response_lru.next != &m->response_lru) {
		r = container_of(m->response_lru.next, struct response, lru);
		if (now - r->stored <= lim->response_ttl_ms)
			break;
		response_unlink(m, r);
		free(r);
		fx->expired_responses++;
	}
}

/* ---- sessions ----------------------------------------------------------- */

static void
session_remove(struct mem *m, struct session *s)
{
	struct chunk *c, *next;

	relay_hashtab_del(&m->sessions, &s->by_id);
	relay_hashtab_del(&m->by_client, &s->by_client);
	dl_unlink(&s->lru);
	for (c = s->head; c != NULL; c = next) {
		next = c->next;
		m->freed += sizeof(*c) + c->len;
		free(c);
	}
	m->chunks -= s->nchunks;
	m->freed += sizeof(*s) + s->client_len;
	free(s);
}

static void
expire_sessions(struct mem *m, const struct relay_store_limits *lim,
    int64_t now, struct relay_store_effects *fx)
{
	struct session *s;

	while (m->session_lru.next != &m->session_lru) {
		s = container_of(m->session_lru.next, struct session, lru);
		if (now - s->touched <= lim->session_ttl_ms)
			break;
		session_remove(m, s);
		fx->expired_sessions++;
	}
}

static void
session_touch(struct mem *m, struct session *s, int64_t now)
{
	s->touched = now;
	dl_unlink(&s->lru);
	dl_push_tail(&m->session_lru, &s->lru);
}

static struct session *
session_by_client(struct mem *m, const char *client, size_t len)
{
	struct relay_hnode *n = relay_hashtab_get(&m->by_client, client, len);

	return n ? container_of(n, struct session, by_client) : NULL;
}

/*
 * Opens a session for `client`, replacing the one it had. Returns NULL
 * when out of memory or randomness.
 */
static struct session *
session_open(struct mem *m, const char *client, size_t len, int64_t now,
    struct relay_store_effects *fx)
{
	struct session *s, *old;
	int tries;

	s = calloc(1, sizeof(*s) + len);
	if (s == NULL)
		return NULL;
	for (tries = 0; ; tries++) {
		if (tries == 8 || new_session_id(s->id) != 0) {
			free(s);
			return NULL;
		}
		if (relay_hashtab_get(&m->sessions, s->id,
		    RELAY_SESSION_ID_LEN) == NULL)
			break;
	}
	memcpy(s->client, client, len);
	s->client_len = len;
	s->touched = now;
	dl_init(&s->lru);
	if ((old = session_by_client(m, client, len)) != NULL) {
		session_remove(m, old);
		fx->replaced_sessions++;
	}
	relay_hashtab_put(&m->sessions, &s->by_id);
	relay_hashtab_put(&m->by_client, &s->by_client);
	dl_push_tail(&m->session_lru, &s->lru);
	return s;
}

/* ---- operations --------------------------------------------------------- */

static enum relay_status
mem_poll(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, size_t max_jobs,
    size_t max_bytes, struct relay_poll_result *out,
    struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_OK;
	struct server *srv;
	struct session *sess;
	struct job *j;
	struct relay_job *rj;
	size_t take, bytes = 0;
	bool swept = false;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	srv = server_get(m, key, key_len);
	if (srv == NULL) {
		if (m->servers.count >= lim->max_servers) {
			rc = RELAY_E_SERVERS_FULL;
			goto out;
		}
		if ((srv = server_add(m, key, key_len, now)) == NULL) {
			rc = RELAY_E_NOMEM;
			goto out;
		}
		out->registered = true;
	}
	server_refresh(m, srv, now, lim->server_ttl_ms);

	take = srv->qlen < max_jobs ? (size_t)srv->qlen : max_jobs;
	if (take == 0)
		goto out;
	out->jobs = calloc(take, sizeof(*out->jobs));
	if (out->jobs == NULL) {
		rc = RELAY_E_NOMEM;
		goto out;
	}
	while (out->n < take) {
		j = srv->head;
		rj = &out->jobs[out->n];
		if (out->n > 0 && j->len > max_bytes - bytes)
			break;
		if (j->stream) {
			if (!swept) {
				expire_sessions(m, lim, now, &d);
				swept = true;
			}
			/* A session this job replaces frees its own slot. */
			if (m->sessions.count >= lim->max_stream_sessions &&
			    session_by_client(m, j->data + j->len,
			    j->owner_len) == NULL) {
				out->session_limited = true;
				break;
			}
			sess = session_open(m, j->data + j->len, j->owner_len,
			    now, &d);
			if (sess == NULL) {
				if (out->n == 0)
					rc = RELAY_E_NOMEM;
				break;
			}
			memcpy(rj->session_id, sess->id, sizeof(rj->session_id));
		}
		srv->head = j->next;
		if (srv->head == NULL)
			srv->tail = NULL;
		srv->qlen--;
		m->queued--;
		m->freed += job_size(j);
		rj->blob.data = j->data;
		rj->blob.len = j->len;
		rj->blob.mem = j;
		rj->stream = j->stream;
		bytes = j->len < max_bytes - bytes ? bytes + j->len : max_bytes;
		out->n++;
	}
	if (out->n == 0) {
		free(out->jobs);
		out->jobs = NULL;
	} else if (lim->server_busy_ttl_ms > lim->server_ttl_ms) {
		/*
		 * A legacy node is silent while it runs inference and for
		 * its poll interval after; evicting it then would drop the
		 * jobs queued behind the one it is working on.
		 */
		server_refresh(m, srv, now, lim->server_busy_ttl_ms);
	}
out:
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_enqueue(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const struct relay_job_in *in, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc;
	struct server *srv;
	struct job *j;
	size_t owner_len = in->stream ? in->owner_len : 0;

	if (in->len > UINT32_MAX || owner_len > UINT32_MAX)
		return RELAY_E_NOMEM;
	j = malloc(offsetof(struct job, data) + in->len + owner_len);
	if (j == NULL)
		return RELAY_E_NOMEM;
	j->next = NULL;
	j->len = (uint32_t)in->len;
	j->owner_len = (uint32_t)owner_len;
	j->stream = in->stream;
	memcpy(j->data, in->data, in->len);
	if (owner_len > 0)
		memcpy(j->data + in->len, in->owner, owner_len);

	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	srv = server_get(m, key, key_len);
	if (srv == NULL)
		rc = RELAY_E_UNKNOWN_SERVER;
	else if (srv->qlen >= lim->queue_per_server)
		rc = RELAY_E_QUEUE_FULL;
	else if (m->queued >= lim->queue_total)
		rc = RELAY_E_QUEUE_TOTAL;
	else {
		if (srv->tail != NULL)
			srv->tail->next = j;
		else
			srv->head = j;
		srv->tail = j;
		srv->qlen++;
		m->queued++;
		j = NULL;
		rc = RELAY_OK;
	}
	pthread_mutex_unlock(&m->mu);
	free(j);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_pick_server(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, struct relay_blob *out, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_OK;
	struct server *srv;
	uint64_t r, limit;
	char *copy;

	(void)lim;	/* server expiry is kept per server */

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	if (m->npick == 0) {
		rc = RELAY_E_NO_SERVERS;
		goto out;
	}
	/* Rejection sampling keeps the choice exactly uniform. */
	limit = UINT64_MAX - UINT64_MAX % m->npick;
	do {
		if (relay_random_bytes(&r, sizeof(r)) != 0) {
			rc = RELAY_E_NOMEM;
			goto out;
		}
	} while (r >= limit);
	srv = m->pick[r % m->npick];
	copy = malloc(srv->key_len + 1);
	if (copy == NULL) {
		rc = RELAY_E_NOMEM;
		goto out;
	}
	memcpy(copy, srv->key, srv->key_len);
	copy[srv->key_len] = '\0';
	out->data = copy;
	out->len = srv->key_len;
	out->mem = copy;
out:
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_unregister(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, bool *removed,
    struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	struct server *srv;

	(void)lim;	/* server expiry is kept per server */
	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	srv = server_get(m, key, key_len);
	*removed = srv != NULL;
	if (srv != NULL)
		server_remove(m, srv, &d);
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	return RELAY_OK;
}

static enum relay_status
mem_put_response(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, const char *data,
    size_t len, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_OK;
	struct response *r, *old = NULL;
	struct relay_hnode *n;

	r = malloc(sizeof(*r) + key_len + len);
	if (r == NULL)
		return RELAY_E_NOMEM;
	r->key_len = key_len;
	r->len = len;
	memcpy(r->bytes, key, key_len);
	memcpy(r->bytes + key_len, data, len);
	r->stored = now;

	pthread_mutex_lock(&m->mu);
	expire_responses(m, lim, now, &d);
	if ((n = relay_hashtab_get(&m->responses, key, key_len)) != NULL) {
		old = container_of(n, struct response, h);
		response_unlink(m, old);
		d.replaced_responses++;
	} else if (m->responses.count >= lim->max_responses) {
		rc = RELAY_E_RESPONSES_FULL;
	}
	if (rc == RELAY_OK) {
		relay_hashtab_put(&m->responses, &r->h);
		dl_push_tail(&m->response_lru, &r->lru);
		r = NULL;
	}
	pthread_mutex_unlock(&m->mu);
	free(old);
	free(r);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_take_response(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, struct relay_blob *out,
    struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_E_NO_RESPONSE;
	struct relay_hnode *n;
	struct response *r;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	expire_responses(m, lim, now, &d);
	if ((n = relay_hashtab_get(&m->responses, key, key_len)) != NULL) {
		r = container_of(n, struct response, h);
		response_unlink(m, r);
		out->data = r->bytes + r->key_len;
		out->len = r->len;
		out->mem = r;
		rc = RELAY_OK;
	}
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_stream_append(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *id, size_t id_len, const char *data, size_t len,
    bool final, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_OK;
	struct relay_hnode *n;
	struct session *s;
	struct chunk *c;

	c = malloc(sizeof(*c) + len);
	if (c == NULL)
		return RELAY_E_NOMEM;
	c->next = NULL;
	c->len = len;
	memcpy(c->data, data, len);

	pthread_mutex_lock(&m->mu);
	expire_sessions(m, lim, now, &d);
	n = relay_hashtab_get(&m->sessions, id, id_len);
	if (n == NULL) {
		rc = RELAY_E_UNKNOWN_SESSION;
		goto out;
	}
	s = container_of(n, struct session, by_id);
	if (s->nchunks >= lim->max_stream_chunks) {
		rc = RELAY_E_CHUNKS_FULL;
		goto out;
	}
	if (s->tail != NULL)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
	s->nchunks++;
	m->chunks++;
	c = NULL;
	if (final)
		s->closed = true;
	session_touch(m, s, now);
out:
	pthread_mutex_unlock(&m->mu);
	free(c);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_stream_drain(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, const char *client, size_t client_len,
    struct relay_drain_result *out, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_OK;
	struct session *s;
	struct chunk *c;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	expire_sessions(m, lim, now, &d);
	s = session_by_client(m, client, client_len);
	if (s == NULL) {
		rc = RELAY_E_NO_STREAM;
		goto out;
	}
	if (s->nchunks > 0) {
		out->chunks = calloc((size_t)s->nchunks, sizeof(*out->chunks));
		if (out->chunks == NULL) {
			rc = RELAY_E_NOMEM;
			goto out;
		}
		for (c = s->head; c != NULL; c = c->next) {
			out->chunks[out->n].data = c->data;
			out->chunks[out->n].len = c->len;
			out->chunks[out->n].mem = c;
			m->freed += sizeof(*c) + c->len;
			out->n++;
		}
		m->chunks -= s->nchunks;
		s->head = s->tail = NULL;
		s->nchunks = 0;
	}
	memcpy(out->session_id, s->id, sizeof(out->session_id));
	if (s->closed) {
		session_remove(m, s);
		out->final = true;
	} else
		session_touch(m, s, now);
out:
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	return rc;
}

static enum relay_status
mem_sweep(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	bool trim;

	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	expire_responses(m, lim, now, &d);
	expire_sessions(m, lim, now, &d);
	trim = m->freed >= TRIM_AFTER_BYTES;
	if (trim)
		m->freed = 0;
	pthread_mutex_unlock(&m->mu);
#if defined(__GLIBC__)
	/*
	 * glibc keeps freed chunks inside its arenas; after a burst has
	 * drained, hand whole free pages back so RSS follows the queue.
	 */
	if (trim)
		(void)malloc_trim(0);
#endif
	fx_add(fx, &d);
	return RELAY_OK;
}

static enum relay_status
mem_list_servers(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, size_t max, bool keys, struct relay_server_list *out,
    struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	enum relay_status rc = RELAY_OK;
	size_t cap;

	(void)lim;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	out->total = m->npick;
	cap = m->npick < max ? m->npick : max;
	if (cap > 0) {
		out->servers = calloc(cap, sizeof(out->servers[0]));
		if (out->servers == NULL)
			rc = RELAY_E_NOMEM;
	}
	for (size_t i = 0; rc == RELAY_OK && i < cap; i++) {
		const struct server *srv = m->pick[i];
		struct relay_server_info *info = &out->servers[out->n++];

		info->age_ms = now > srv->last_seen ? now - srv->last_seen : 0;
		info->queued = srv->qlen;
		if (keys) {
			info->key = malloc(srv->key_len + 1);
			if (info->key == NULL) {
				rc = RELAY_E_NOMEM;
				break;
			}
			memcpy(info->key, srv->key, srv->key_len);
			info->key[srv->key_len] = '\0';
			info->key_len = srv->key_len;
		}
	}
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	if (rc != RELAY_OK)
		relay_server_list_free(out);
	return rc;
}

static enum relay_status
mem_stats(struct relay_store *st, const struct relay_store_limits *lim,
    int64_t now, struct relay_store_stats *out, struct relay_store_effects *fx)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };

	pthread_mutex_lock(&m->mu);
	evict_stale(m, now, &d);
	expire_responses(m, lim, now, &d);
	expire_sessions(m, lim, now, &d);
	out->servers = m->servers.count;
	out->queued = m->queued;
	out->responses = m->responses.count;
	out->sessions = m->sessions.count;
	out->chunks = m->chunks;
	pthread_mutex_unlock(&m->mu);
	fx_add(fx, &d);
	return RELAY_OK;
}

static void
mem_destroy(struct relay_store *st)
{
	struct mem *m = M(st);
	struct relay_store_effects d = { 0 };
	struct response *r;

	while (m->npick > 0)
		server_remove(m, m->pick[m->npick - 1], &d);
	while (m->response_lru.next != &m->response_lru) {
		r = container_of(m->response_lru.next, struct response, lru);
		response_unlink(m, r);
		free(r);
	}
	while (m->session_lru.next != &m->session_lru)
		session_remove(m, container_of(m->session_lru.next,
		    struct session, lru));
	relay_hashtab_destroy(&m->servers);
	relay_hashtab_destroy(&m->responses);
	relay_hashtab_destroy(&m->sessions);
	relay_hashtab_destroy(&m->by_client);
	free(m->pick);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static const struct relay_store_ops mem_ops = {
	.name = "memory",
	.poll = mem_poll,
	.enqueue = mem_enqueue,
	.pick_server = mem_pick_server,
	.unregister = mem_unregister,
	.put_response = mem_put_response,
	.take_response = mem_take_response,
	.stream_append = mem_stream_append,
	.stream_drain = mem_stream_drain,
	.sweep = mem_sweep,
	.list_servers = mem_list_servers,
	.stats = mem_stats,
	.destroy = mem_destroy,
};

struct relay_store *
relay_store_memory_new(void)
{
	struct mem *m;
	uint64_t k[8];

	if (relay_random_bytes(k, sizeof(k)) != 0)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	if (relay_hashtab_init(&m->servers, server_key, k[0], k[1]) != 0 ||
	    relay_hashtab_init(&m->responses, response_key, k[2], k[3]) != 0 ||
	    relay_hashtab_init(&m->sessions, session_id_key, k[4], k[5]) != 0 ||
	    relay_hashtab_init(&m->by_client, session_client_key, k[6], k[7]) != 0) {
		relay_hashtab_destroy(&m->servers);
		relay_hashtab_destroy(&m->responses);
		relay_hashtab_destroy(&m->sessions);
		relay_hashtab_destroy(&m->by_client);
		pthread_mutex_destroy(&m->mu);
		free(m);
		return NULL;
	}
	dl_init(&m->server_lru);
	dl_init(&m->response_lru);
	dl_init(&m->session_lru);
	m->pub.ops = &mem_ops;
	m->pub.state = m;
	return &m->pub;
}
