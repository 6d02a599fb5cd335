/*
 * redis.c -- the one file that includes hiredis (Debian 12: 0.14, blocking
 * API, no TLS). Everything the two Redis stores and the time base need
 * from a Redis/Valkey server goes through here.
 *
 * Connections. Command connections live in a small pool: a caller borrows
 * one for exactly one command and gives it back at once, so a long poll
 * that waits never holds one. At most pool_size are open; a caller that
 * finds none idle waits for one up to the command timeout. Each has the
 * command timeout as its socket send/receive timeout, TCP keepalive, and
 * AUTH/SELECT done at connect.
 *
 * Availability (the state behind /healthz checks.state):
 *
 *   up --(connection lost, timeout)--> down, next dial allowed at once
 *   down --(dial fails)--> down, next dial after a back-off (100 ms
 *                           doubling to 2 s); callers meanwhile fail at
 *                           once with RELAY_REDIS_E_UNAVAILABLE
 *   down --(dial or command succeeds)--> up
 *
 * Only one thread dials while the server is down (the others fail fast),
 * so no request thread ever waits longer than the connect timeout, and a
 * command never longer than the command timeout. Each transition is logged
 * once (relay.state_store_down / relay.state_store_up), never per request.
 * When the server closes a connection, every idle connection older than
 * that loss is dropped too (it would fail the same way on its next use),
 * so a restart costs the commands in flight, not one per pooled socket.
 *
 * Scripts. A script is loaded with SCRIPT LOAD the first time it runs and
 * then called with EVALSHA. NOSCRIPT (a restarted or flushed server) means
 * the script did not run: it is loaded again and called once more, the
 * only retry there is. A script whose connection broke or timed out is
 * never re-sent: it may have run, and a write script run twice could
 * enqueue twice or lose popped jobs.
 *
 * Pub/Sub. One subscriber thread per adapter (started by
 * relay_redis_subscribe) on its own connection, subscribed to the pattern
 * "<prefix>wake:*". It reconnects with the same back-off, and calls
 * on_subscribed after every (re)subscribe so that waiters re-check.
 */
#include "redis/redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/percent.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define MAX_ARGS 64		/* keys + args of one script call */
#define SUB_POLL_MS 1000	/* subscriber wakes to check for stop */

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
	ERR_NKINDS
};

static const char *const err_kind_name[ERR_NKINDS] = {
	"connect", "timeout", "connection_lost", "oom", "auth", "script",
	"protocol", "busy", "pool_exhausted",
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
	uint64_t epoch;		/* r->epoch when it was opened */
};

struct relay_redis {
	struct relay_redis_config cfg;
	char prefix[sizeof(((struct relay_redis_config *)0)->prefix) + 2];

	pthread_mutex_t mu;
	pthread_cond_t cv;		/* an idle connection or a free slot */
	struct pooled *idle;
	size_t nidle;
	unsigned open;			/* idle + borrowed + dialing */
	uint64_t epoch;			/* bumped when a connection is lost */
	bool up;
	bool dialing;			/* one dial at a time while down */
	char why[160];
	int64_t next_dial_ms;
	int64_t backoff_ms;

	struct script *scripts;
	size_t nscripts;

	/* subscriber */
	pthread_t sub;
	bool sub_started;
	_Atomic bool stop;
	int stop_pipe[2];
	relay_redis_message_fn on_message;
	relay_redis_subscribed_fn on_subscribed;
	void *sub_arg;
	_Atomic bool sub_connected;

	/* metrics (NULL without a registry) */
	struct tp_counter_child *errors[ERR_NKINDS];
	struct tp_counter_child *reconnects;
	struct tp_counter_child *wakeups;
	struct tp_histogram *latency;
	struct tp_histogram_child *time_latency;
};

/* A reason into a caller's buffer; cut short when it does not fit. */
static void __attribute__((format(printf, 3, 4)))
set_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* ---- URL --------------------------------------------------------------- */

/* Copies [s, s+n) percent-decoded into out; -1 when it does not fit. */
static int
decode_into(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;
	int b;

	for (i = 0; i < n; i++) {
		if (o + 1 >= outlen)
			return -1;
		if (s[i] == '%') {
			if ((b = relay_percent_byte(s + i)) <= 0)
				return -1;
			out[o++] = (char)b;
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return 0;
}

static int
parse_uint(const char *s, size_t n, long max, long *out)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > 9)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int
url_fail(char *err, size_t errlen, const char *reason)
{
	snprintf(err, errlen, "%s", reason);
	return -1;
}

int
relay_redis_url_parse(const char *url, struct relay_redis_config *out,
    char *err, size_t errlen)
{
	const char *p, *end, *at, *colon, *slash, *hostend, *q;
	long v;
	size_t i;

	if (url == NULL)
		return url_fail(err, errlen, "no URL");
	for (i = 0; url[i] != '\0'; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			return url_fail(err, errlen,
			    "URL contains whitespace or a control character");
	if (strncmp(url, "rediss://", 9) == 0)
		return url_fail(err, errlen, "rediss:// (TLS) is not supported: "
		    "Debian 12's hiredis 0.14 has no TLS; reach Redis/Valkey over "
		    "a private network or a unix socket, or put a TLS tunnel "
		    "(stunnel, a service mesh) in front of it");
	if (strncmp(url, "unix://", 7) == 0) {
		p = url + 7;
		if (p[0] != '/')
			return url_fail(err, errlen, "unix:// needs an absolute "
			    "socket path, e.g. unix:///run/redis/redis.sock");
		q = strchr(p, '?');
		end = q ? q : p + strlen(p);
		if ((size_t)(end - p) >= sizeof(out->unix_path))
			return url_fail(err, errlen, "unix socket path too long "
			    "(at most 107 bytes)");
		if (decode_into(p, (size_t)(end - p), out->unix_path,
		    sizeof(out->unix_path)) != 0)
			return url_fail(err, errlen, "bad percent-escape in the "
			    "socket path");
		out->host[0] = '\0';
		out->port = 0;
		out->db = 0;
		out->user[0] = '\0';
		if (q != NULL) {
			if (strncmp(q, "?db=", 4) != 0 ||
			    parse_uint(q + 4, strlen(q + 4), 1000000, &v) != 0)
				return url_fail(err, errlen, "the only unix:// "
				    "query is ?db=N (a database number)");
			out->db = (int)v;
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return url_fail(err, errlen, "not a redis://, unix:// or "
		    "memory:// URL");
	p = url + 8;
	end = p + strlen(p);
	if (memchr(p, '?', (size_t)(end - p)) != NULL ||
	    memchr(p, '#', (size_t)(end - p)) != NULL)
		return url_fail(err, errlen, "redis:// URLs take no query or "
		    "fragment");
	/* userinfo ends at the last '@' (a password may contain '@'). */
	at = NULL;
	for (q = p; q < end; q++)
		if (*q == '@')
			at = q;
	out->user[0] = '\0';
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon == NULL)
			return url_fail(err, errlen, "userinfo without ':' (use "
			    "redis://:password@host or redis://user:password@host)");
		if (decode_into(p, (size_t)(colon - p), out->user,
		    sizeof(out->user)) != 0 ||
		    decode_into(colon + 1, (size_t)(at - colon - 1),
		    out->password, sizeof(out->password)) != 0)
			return url_fail(err, errlen, "user or password too long "
			    "or badly percent-escaped");
		p = at + 1;
	}
	slash = memchr(p, '/', (size_t)(end - p));
	hostend = slash ? slash : end;
	if (p < hostend && *p == '[') {
		q = memchr(p, ']', (size_t)(hostend - p));
		if (q == NULL || q == p + 1)
			return url_fail(err, errlen, "unterminated [IPv6] host");
		if ((size_t)(q - p - 1) >= sizeof(out->host))
			return url_fail(err, errlen, "host too long");
		memcpy(out->host, p + 1, (size_t)(q - p - 1));
		out->host[q - p - 1] = '\0';
		colon = q + 1 < hostend ? q + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return url_fail(err, errlen, "junk after [IPv6] host");
	} else {
		colon = memchr(p, ':', (size_t)(hostend - p));
		q = colon ? colon : hostend;
		if (q == p)
			return url_fail(err, errlen, "no host");
		if ((size_t)(q - p) >= sizeof(out->host))
			return url_fail(err, errlen, "host too long");
		memcpy(out->host, p, (size_t)(q - p));
		out->host[q - p] = '\0';
	}
	out->port = 6379;
	if (colon != NULL) {
		if (parse_uint(colon + 1, (size_t)(hostend - colon - 1), 65535,
		    &v) != 0 || v == 0)
			return url_fail(err, errlen, "port is not 1-65535");
		out->port = (int)v;
	}
	out->db = 0;
	if (slash != NULL && slash + 1 < end) {
		if (parse_uint(slash + 1, (size_t)(end - slash - 1), 1000000,
		    &v) != 0)
			return url_fail(err, errlen, "the path is a database "
			    "number, e.g. redis://host:6379/0");
		out->db = (int)v;
	}
	out->unix_path[0] = '\0';
	return 0;
}

/* ---- replies ----------------------------------------------------------- */

static void
reply_clear(struct relay_redis_reply *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		reply_clear(&r->elem[i]);
	free(r->elem);
	free(r->str);
	memset(r, 0, sizeof(*r));
}

void
relay_redis_reply_free(struct relay_redis_reply *r)
{
	if (r != NULL)
		reply_clear(r);
}

/* Converts a hiredis reply (no error inside) into *out. */
static enum relay_redis_rc
reply_copy(const redisReply *in, struct relay_redis_reply *out, int depth)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	switch (in->type) {
	case REDIS_REPLY_NIL:
		out->type = RELAY_REDIS_NIL;
		return RELAY_REDIS_OK;
	case REDIS_REPLY_INTEGER:
		out->type = RELAY_REDIS_INT;
		out->integer = in->integer;
		return RELAY_REDIS_OK;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		out->type = RELAY_REDIS_STR;
		out->str = malloc((size_t)in->len + 1);
		if (out->str == NULL)
			return RELAY_REDIS_E_NOMEM;
		memcpy(out->str, in->str, (size_t)in->len);
		out->str[in->len] = '\0';
		out->len = (size_t)in->len;
		return RELAY_REDIS_OK;
	case REDIS_REPLY_ARRAY:
		out->type = RELAY_REDIS_ARRAY;
		if (depth > 8)
			return RELAY_REDIS_E_PROTOCOL;
		if (in->elements == 0)
			return RELAY_REDIS_OK;
		out->elem = calloc(in->elements, sizeof(*out->elem));
		if (out->elem == NULL)
			return RELAY_REDIS_E_NOMEM;
		out->n = in->elements;
		for (i = 0; i < in->elements; i++) {
			enum relay_redis_rc rc = reply_copy(in->element[i],
			    &out->elem[i], depth + 1);

			if (rc != RELAY_REDIS_OK)
				return rc;
		}
		return RELAY_REDIS_OK;
	default:
		return RELAY_REDIS_E_PROTOCOL;
	}
}

/* ---- availability ------------------------------------------------------ */

static void
count_error(struct relay_redis *r, enum err_kind k)
{
	tp_counter_child_add(r->errors[k], 1);
}

/* Under mu. */
static void
mark_down(struct relay_redis *r, const char *why, bool dial_failed)
{
	int64_t now = relay_mono_ms();

	if (dial_failed) {
		r->next_dial_ms = now + r->backoff_ms;
		r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ?
		    BACKOFF_MAX_MS : r->backoff_ms * 2;
	} else
		r->next_dial_ms = now;
	snprintf(r->why, sizeof(r->why), "%s", why);
	if (r->up) {
		r->up = false;
		TP_LOG(TP_LOG_ERROR, "relay.state_store_down",
		    TP_LSTR("reason", r->why),
		    TP_LSTR("setting", "RELAY_STATE_URL"));
	}
}

/* Under mu. */
static void
mark_up(struct relay_redis *r)
{
	r->backoff_ms = BACKOFF_MIN_MS;
	if (!r->up) {
		r->up = true;
		r->why[0] = '\0';
		TP_LOG0(TP_LOG_INFO, "relay.state_store_up");
	}
}

bool
relay_redis_up(const struct relay_redis *r, char *why, size_t whylen)
{
	struct relay_redis *m = (struct relay_redis *)(uintptr_t)r;
	bool up;

	pthread_mutex_lock(&m->mu);
	up = m->up;
	if (why != NULL && whylen > 0)
		set_why(why, whylen, "%s", up ? "" : m->why);
	pthread_mutex_unlock(&m->mu);
	return up;
}

/* ---- connections ------------------------------------------------------- */

static struct timeval
tv_ms(int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* Sends one command on a fresh connection; the reply goes to *out. */
static int
simple(redisContext *c, int argc, const char **argv, const size_t *lens,
    redisReply **out)
{
	*out = redisCommandArgv(c, argc, argv, lens);
	return *out == NULL ? -1 : 0;
}

/*
 * Opens, authenticates and selects. Returns NULL with *rc and a reason
 * (never the password) in why.
 */
static redisContext *
dial(const struct relay_redis_config *cfg, enum relay_redis_rc *rc, char *why,
    size_t whylen)
{
	redisContext *c;
	redisReply *rep = NULL;
	const char *argv[3];
	size_t lens[3];
	char db[16];
	int argc;

	if (cfg->unix_path[0] != '\0')
		c = redisConnectUnixWithTimeout(cfg->unix_path,
		    tv_ms(cfg->connect_timeout_ms));
	else
		c = redisConnectWithTimeout(cfg->host, cfg->port,
		    tv_ms(cfg->connect_timeout_ms));
	if (c == NULL) {
		*rc = RELAY_REDIS_E_NOMEM;
		set_why(why, whylen, "out of memory");
		return NULL;
	}
	if (c->err != 0) {
		*rc = RELAY_REDIS_E_UNAVAILABLE;
		if (cfg->unix_path[0] != '\0')
			set_why(why, whylen, "cannot connect to %.100s: %s",
			    cfg->unix_path, c->errstr);
		else
			set_why(why, whylen, "cannot connect to %.100s:%d: %s",
			    cfg->host, cfg->port, c->errstr);
		goto fail;
	}
	if (redisSetTimeout(c, tv_ms(cfg->command_timeout_ms)) != REDIS_OK ||
	    (cfg->unix_path[0] == '\0' && redisEnableKeepAlive(c) != REDIS_OK)) {
		*rc = RELAY_REDIS_E_UNAVAILABLE;
		set_why(why, whylen, "socket options: %s", c->errstr);
		goto fail;
	}
	if (cfg->password[0] != '\0') {
		argc = 0;
		argv[argc] = "AUTH";
		lens[argc++] = 4;
		if (cfg->user[0] != '\0') {
			argv[argc] = cfg->user;
			lens[argc++] = strlen(cfg->user);
		}
		argv[argc] = cfg->password;
		lens[argc++] = strlen(cfg->password);
		if (simple(c, argc, argv, lens, &rep) != 0)
			goto io;
		if (rep->type == REDIS_REPLY_ERROR) {
			*rc = RELAY_REDIS_E_AUTH;
			/* The server's message names no password. */
			set_why(why, whylen, "AUTH refused: %.100s", rep->str);
			goto fail;
		}
		freeReplyObject(rep);
		rep = NULL;
	}
	if (cfg->db != 0) {
		snprintf(db, sizeof(db), "%d", cfg->db);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = db;
		lens[1] = strlen(db);
		if (simple(c, 2, argv, lens, &rep) != 0)
			goto io;
		if (rep->type == REDIS_REPLY_ERROR) {
			*rc = strncmp(rep->str, "NOAUTH", 6) == 0 ?
			    RELAY_REDIS_E_AUTH : RELAY_REDIS_E_CONFIG;
			set_why(why, whylen, "SELECT %d refused: %.100s",
			    cfg->db, rep->str);
			goto fail;
		}
		freeReplyObject(rep);
		rep = NULL;
	}
	return c;
io:
	*rc = RELAY_REDIS_E_UNAVAILABLE;
	set_why(why, whylen, "connection lost during set-up: %s", c->errstr);
fail:
	if (rep != NULL)
		freeReplyObject(rep);
	redisFree(c);
	return NULL;
}

/*
 * Borrows a connection for one command. Fails at once while the server is
 * known down and the back-off has not passed, or while another thread is
 * already dialing it; waits at most the command timeout for a free slot.
 */
static enum relay_redis_rc
borrow(struct relay_redis *r, struct pooled *out, char *why, size_t whylen)
{
	int64_t deadline = relay_mono_ms() + r->cfg.command_timeout_ms;
	struct timespec ts;
	enum relay_redis_rc rc;
	redisContext *c;
	uint64_t epoch;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->nidle > 0) {
			*out = r->idle[--r->nidle];
			if (out->epoch == r->epoch) {
				pthread_mutex_unlock(&r->mu);
				return RELAY_REDIS_OK;
			}
			/* Opened before a connection loss: assume it shares it. */
			redisFree(out->c);
			r->open--;
		}
		if (r->open < r->cfg.pool_size) {
			if (!r->up && (r->dialing ||
			    relay_mono_ms() < r->next_dial_ms)) {
				set_why(why, whylen, "%s", r->why);
				pthread_mutex_unlock(&r->mu);
				count_error(r, ERR_CONNECT);
				return RELAY_REDIS_E_UNAVAILABLE;
			}
			r->open++;
			r->dialing = true;
			epoch = r->epoch;
			pthread_mutex_unlock(&r->mu);
			c = dial(&r->cfg, &rc, why, whylen);
			pthread_mutex_lock(&r->mu);
			r->dialing = false;
			if (c == NULL) {
				r->open--;
				if (rc == RELAY_REDIS_E_UNAVAILABLE ||
				    rc == RELAY_REDIS_E_AUTH ||
				    rc == RELAY_REDIS_E_CONFIG)
					mark_down(r, why, true);
				pthread_cond_signal(&r->cv);
				pthread_mutex_unlock(&r->mu);
				count_error(r, rc == RELAY_REDIS_E_AUTH ?
				    ERR_AUTH : ERR_CONNECT);
				tp_counter_child_add(r->reconnects, 1);
				return rc;
			}
			if (!r->up)
				tp_counter_child_add(r->reconnects, 1);
			mark_up(r);
			pthread_mutex_unlock(&r->mu);
			out->c = c;
			out->epoch = epoch;
			return RELAY_REDIS_OK;
		}
		if (!r->up) {
			set_why(why, whylen, "%s", r->why);
			pthread_mutex_unlock(&r->mu);
			count_error(r, ERR_CONNECT);
			return RELAY_REDIS_E_UNAVAILABLE;
		}
		ts = relay_mono_timespec(deadline);
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT &&
		    r->nidle == 0 && r->open >= r->cfg.pool_size) {
			pthread_mutex_unlock(&r->mu);
			set_why(why, whylen, "all %u connections busy for "
			    "the command timeout", r->cfg.pool_size);
			count_error(r, ERR_POOL);
			return RELAY_REDIS_E_UNAVAILABLE;
		}
	}
}

/*
 * The command timeout is one budget per call: when waiting for a pooled
 * connection used part of it, this command's socket timeout is what is
 * left (put back by restore_timeout() before the connection is returned).
 */
static bool
shrink_timeout(struct relay_redis *r, struct pooled *p, int64_t started)
{
	int64_t waited = relay_mono_ms() - started;
	int64_t left = r->cfg.command_timeout_ms - waited;

	if (waited < 2)
		return false;
	(void)redisSetTimeout(p->c, tv_ms(left < 1 ? 1 : left));
	return true;
}

static void
restore_timeout(struct relay_redis *r, struct pooled *p, bool shrunk)
{
	if (shrunk && p->c != NULL)
		(void)redisSetTimeout(p->c, tv_ms(r->cfg.command_timeout_ms));
}

/* Gives a healthy connection back. */
static void
give_back(struct relay_redis *r, struct pooled *p)
{
	pthread_mutex_lock(&r->mu);
	if (p->epoch != r->epoch) {
		/*
		 * Opened before the last known loss: its answer may have left
		 * the server before that loss, so it proves nothing about now
		 * (marking up here made a down/up/down flap on a restart).
		 */
		redisFree(p->c);
		r->open--;
	} else {
		r->idle[r->nidle++] = *p;
		mark_up(r);
	}
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/*
 * Drops a connection whose command failed on the socket. A timeout costs
 * that connection only; a closed connection also retires every idle one
 * opened before it (the server probably restarted).
 */
static void
drop(struct relay_redis *r, struct pooled *p, char *why, size_t whylen)
{
	bool timeout = p->c->err == REDIS_ERR_IO &&
	    (errno == EAGAIN || errno == EWOULDBLOCK);

	set_why(why, whylen, "%s: %s", timeout ? "command timed out" :
	    "connection lost", p->c->errstr);
	count_error(r, timeout ? ERR_TIMEOUT : ERR_CONNECTION_LOST);
	redisFree(p->c);
	p->c = NULL;
	pthread_mutex_lock(&r->mu);
	r->open--;
	/*
	 * A connection opened before the last known loss says nothing new:
	 * the server may be back already, so it must not mark it down again.
	 */
	if (p->epoch == r->epoch) {
		if (!timeout)
			r->epoch++;
		mark_down(r, why, false);
	}
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Maps an error reply to a code; logs script bugs. */
static enum relay_redis_rc
classify_error(struct relay_redis *r, const char *op, const redisReply *rep)
{
	const char *s = rep->str;

	if (strncmp(s, "OOM", 3) == 0 || strstr(s, "OOM command") != NULL) {
		count_error(r, ERR_OOM);
		return RELAY_REDIS_E_OOM;
	}
	if (strncmp(s, "NOAUTH", 6) == 0 || strncmp(s, "WRONGPASS", 9) == 0 ||
	    strncmp(s, "NOPERM", 6) == 0) {
		count_error(r, ERR_AUTH);
		return RELAY_REDIS_E_AUTH;
	}
	if (strncmp(s, "BUSY", 4) == 0 || strncmp(s, "LOADING", 7) == 0 ||
	    strncmp(s, "READONLY", 8) == 0 || strncmp(s, "MASTERDOWN", 10) == 0 ||
	    strncmp(s, "TRYAGAIN", 8) == 0 || strncmp(s, "CLUSTERDOWN", 11) == 0) {
		count_error(r, ERR_BUSY);
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	count_error(r, ERR_SCRIPT);
	TP_LOG(TP_LOG_ERROR, "relay.state_script_error", TP_LSTR("operation", op),
	    TP_LSTRN("reason", s, rep->len < 300 ? (size_t)rep->len : 300));
	return RELAY_REDIS_E_SCRIPT;
}

/* ---- life cycle -------------------------------------------------------- */

static int
register_metrics(struct relay_redis *r, struct tp_metrics_registry *reg)
{
	static const double bounds[] = { 0.0001, 0.00025, 0.0005, 0.001,
	    0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
	static const char *const kind[] = { "kind" };
	static const char *const op[] = { "operation" };
	struct tp_counter *errors, *reconnects, *wakeups;
	size_t i;

	errors = tp_counter_new(reg, "tokenplace_relay_state_errors_total",
	    "State store (Redis) command failures by kind", 1, kind);
	reconnects = tp_counter_new(reg,
	    "tokenplace_relay_state_reconnects_total",
	    "Connections (re)opened to the state store after a failure", 0,
	    NULL);
	wakeups = tp_counter_new(reg, "tokenplace_relay_state_wakeups_total",
	    "Pub/Sub wake-ups received from the state store", 0, NULL);
	r->latency = tp_histogram_new(reg,
	    "tokenplace_relay_state_command_seconds",
	    "State store command round trip by operation (script)", 1, op,
	    sizeof(bounds) / sizeof(bounds[0]), bounds);
	if (errors == NULL || reconnects == NULL || wakeups == NULL ||
	    r->latency == NULL)
		return -1;
	for (i = 0; i < ERR_NKINDS; i++) {
		const char *v[1] = { err_kind_name[i] };

		r->errors[i] = tp_counter_child(errors, v);
	}
	r->reconnects = tp_counter_child(reconnects, NULL);
	r->wakeups = tp_counter_child(wakeups, NULL);
	r->time_latency = tp_histogram_child(r->latency,
	    (const char *const[]){ "time" });
	return 0;
}

static double
g_connections(void *arg)
{
	struct relay_redis *r = arg;
	unsigned n;

	pthread_mutex_lock(&r->mu);
	n = r->open;
	pthread_mutex_unlock(&r->mu);
	return (double)n + (atomic_load(&r->sub_connected) ? 1.0 : 0.0);
}

static double
g_up(void *arg)
{
	return relay_redis_up(arg, NULL, 0) ? 1.0 : 0.0;
}

struct relay_redis *
relay_redis_new(const struct relay_redis_config *cfg,
    struct tp_metrics_registry *metrics, char *err, size_t errlen)
{
	struct relay_redis *r;
	pthread_condattr_t ca;
	enum relay_redis_rc rc;
	redisContext *c;
	struct sigaction sa;
	char why[200];

	/*
	 * hiredis writes with write(2): a server that closed the socket
	 * would kill the process with SIGPIPE instead of failing the call.
	 */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->cfg = *cfg;
	if (r->cfg.pool_size < 1)
		r->cfg.pool_size = 1;
	if (r->cfg.connect_timeout_ms < 1)
		r->cfg.connect_timeout_ms = 1;
	if (r->cfg.command_timeout_ms < 1)
		r->cfg.command_timeout_ms = 1;
	snprintf(r->prefix, sizeof(r->prefix), "{%s}", cfg->prefix);
	r->stop_pipe[0] = r->stop_pipe[1] = -1;
	r->backoff_ms = BACKOFF_MIN_MS;
	r->up = true;		/* so that a first failure logs "down" once */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&r->mu, NULL) != 0 ||
	    pthread_cond_init(&r->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		free(r);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	r->idle = calloc(r->cfg.pool_size, sizeof(*r->idle));
	if (r->idle == NULL || pipe2(r->stop_pipe, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "out of memory or descriptors");
		goto fail;
	}
	if (metrics != NULL && (register_metrics(r, metrics) != 0 ||
	    tp_gauge_fn_new(metrics, "tokenplace_relay_state_connections",
	    "Connections open to the state store (pool + subscriber)",
	    g_connections, r) != 0 ||
	    tp_gauge_fn_new(metrics, "tokenplace_relay_state_up",
	    "1 while the state store answers, 0 while it cannot be reached",
	    g_up, r) != 0)) {
		snprintf(err, errlen, "cannot register the state store metrics");
		goto fail;
	}

	/* One connection now: a bad password or db is a configuration error. */
	c = dial(&r->cfg, &rc, why, sizeof(why));
	if (c == NULL) {
		if (rc != RELAY_REDIS_E_UNAVAILABLE) {
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
		pthread_mutex_lock(&r->mu);
		mark_down(r, why, true);
		pthread_mutex_unlock(&r->mu);
	} else {
		r->idle[r->nidle].c = c;
		r->idle[r->nidle++].epoch = 0;
		r->open = 1;
	}
	return r;
fail:
	relay_redis_free(r);
	return NULL;
}

void
relay_redis_free(struct relay_redis *r)
{
	size_t i;

	if (r == NULL)
		return;
	if (r->sub_started) {
		atomic_store(&r->stop, true);
		(void)!write(r->stop_pipe[1], "x", 1);
		pthread_join(r->sub, NULL);
	}
	for (i = 0; i < r->nidle; i++)
		redisFree(r->idle[i].c);
	free(r->idle);
	for (i = 0; i < r->nscripts; i++) {
		free(r->scripts[i].name);
		free(r->scripts[i].lua);
	}
	free(r->scripts);
	if (r->stop_pipe[0] >= 0)
		close(r->stop_pipe[0]);
	if (r->stop_pipe[1] >= 0)
		close(r->stop_pipe[1]);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

const char *
relay_redis_prefix(const struct relay_redis *r)
{
	return r->prefix;
}

int
relay_redis_script(struct relay_redis *r, const char *name, const char *lua)
{
	struct script *ns, *s;

	ns = realloc(r->scripts, (r->nscripts + 1) * sizeof(*ns));
	if (ns == NULL)
		return -1;
	r->scripts = ns;
	s = &ns[r->nscripts];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	s->lua = strdup(lua);
	if (s->name == NULL || s->lua == NULL) {
		free(s->name);
		free(s->lua);
		return -1;
	}
	s->len = strlen(lua);
	s->latency = tp_histogram_child(r->latency,
	    (const char *const[]){ name });
	return (int)r->nscripts++;
}

/* SCRIPT LOAD on c; stores the sha. */
static enum relay_redis_rc
load_script(struct relay_redis *r, struct pooled *p, struct script *s,
    char *why, size_t whylen)
{
	const char *argv[3] = { "SCRIPT", "LOAD", s->lua };
	size_t lens[3] = { 6, 4, s->len };
	redisReply *rep;
	enum relay_redis_rc rc;

	rep = redisCommandArgv(p->c, 3, argv, lens);
	if (rep == NULL) {
		drop(r, p, why, whylen);
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	if (rep->type == REDIS_REPLY_ERROR)
		rc = classify_error(r, s->name, rep);
	else if (rep->type != REDIS_REPLY_STRING || rep->len != 40)
		rc = RELAY_REDIS_E_PROTOCOL;
	else {
		pthread_mutex_lock(&r->mu);
		memcpy(s->sha, rep->str, 40);
		s->sha[40] = '\0';
		pthread_mutex_unlock(&r->mu);
		rc = RELAY_REDIS_OK;
	}
	freeReplyObject(rep);
	return rc;
}

enum relay_redis_rc
relay_redis_eval(struct relay_redis *r, int id, size_t nkeys,
    const char *const *keys, const size_t *keylens, size_t nargs,
    const char *const *args, const size_t *arglens,
    struct relay_redis_reply *out)
{
	const char *argv[MAX_ARGS + 3];
	size_t lens[MAX_ARGS + 3];
	struct script *s;
	struct pooled p;
	redisReply *rep = NULL;
	enum relay_redis_rc rc;
	char sha[41], nk[24], why[200];
	int64_t t0;
	size_t i;
	int attempt;
	bool shrunk;

	memset(out, 0, sizeof(*out));
	if (id < 0 || (size_t)id >= r->nscripts || nkeys + nargs > MAX_ARGS)
		return RELAY_REDIS_E_PROTOCOL;
	s = &r->scripts[id];
	t0 = relay_mono_ms();
	rc = borrow(r, &p, why, sizeof(why));
	if (rc != RELAY_REDIS_OK)
		return rc;
	shrunk = shrink_timeout(r, &p, t0);
	snprintf(nk, sizeof(nk), "%zu", nkeys);
	for (attempt = 0; ; attempt++) {
		pthread_mutex_lock(&r->mu);
		memcpy(sha, s->sha, sizeof(sha));
		pthread_mutex_unlock(&r->mu);
		if (sha[0] == '\0') {
			rc = load_script(r, &p, s, why, sizeof(why));
			if (rc != RELAY_REDIS_OK)
				goto out;
			continue;
		}
		argv[0] = "EVALSHA";
		lens[0] = 7;
		argv[1] = sha;
		lens[1] = 40;
		argv[2] = nk;
		lens[2] = strlen(nk);
		for (i = 0; i < nkeys; i++) {
			argv[3 + i] = keys[i];
			lens[3 + i] = keylens[i];
		}
		for (i = 0; i < nargs; i++) {
			argv[3 + nkeys + i] = args[i];
			lens[3 + nkeys + i] = arglens[i];
		}
		rep = redisCommandArgv(p.c, (int)(3 + nkeys + nargs), argv,
		    lens);
		if (rep == NULL) {
			/* It may have run: never sent again. */
			drop(r, &p, why, sizeof(why));
			rc = RELAY_REDIS_E_UNAVAILABLE;
			goto out;
		}
		if (rep->type == REDIS_REPLY_ERROR && attempt == 0 &&
		    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
			/* Not run: load it again (a restarted server). */
			freeReplyObject(rep);
			rep = NULL;
			pthread_mutex_lock(&r->mu);
			s->sha[0] = '\0';
			pthread_mutex_unlock(&r->mu);
			continue;
		}
		break;
	}
	if (rep->type == REDIS_REPLY_ERROR)
		rc = classify_error(r, s->name, rep);
	else if ((rc = reply_copy(rep, out, 0)) != RELAY_REDIS_OK) {
		reply_clear(out);
		if (rc == RELAY_REDIS_E_PROTOCOL)
			count_error(r, ERR_PROTOCOL);
	}
	freeReplyObject(rep);
	tp_histogram_child_observe(s->latency,
	    (double)(relay_mono_ms() - t0) / 1000.0);
	restore_timeout(r, &p, shrunk);
	give_back(r, &p);
	return rc;
out:
	if (p.c != NULL) {
		restore_timeout(r, &p, shrunk);
		give_back(r, &p);
	}
	return rc;
}

enum relay_redis_rc
relay_redis_time_ms(struct relay_redis *r, int64_t *ms)
{
	const char *argv[1] = { "TIME" };
	size_t lens[1] = { 4 };
	struct pooled p;
	redisReply *rep;
	enum relay_redis_rc rc;
	char why[200];
	int64_t t0;
	bool shrunk;

	t0 = relay_mono_ms();
	rc = borrow(r, &p, why, sizeof(why));
	if (rc != RELAY_REDIS_OK)
		return rc;
	shrunk = shrink_timeout(r, &p, t0);
	rep = redisCommandArgv(p.c, 1, argv, lens);
	if (rep == NULL) {
		drop(r, &p, why, sizeof(why));
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	tp_histogram_child_observe(r->time_latency,
	    (double)(relay_mono_ms() - t0) / 1000.0);
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    rep->element[1]->type == REDIS_REPLY_STRING) {
		*ms = strtoll(rep->element[0]->str, NULL, 10) * 1000 +
		    strtoll(rep->element[1]->str, NULL, 10) / 1000;
		rc = RELAY_REDIS_OK;
	} else if (rep->type == REDIS_REPLY_ERROR)
		rc = classify_error(r, "time", rep);
	else {
		count_error(r, ERR_PROTOCOL);
		rc = RELAY_REDIS_E_PROTOCOL;
	}
	freeReplyObject(rep);
	restore_timeout(r, &p, shrunk);
	give_back(r, &p);
	return rc;
}

void
relay_redis_wakeups_add(struct relay_redis *r, uint64_t n)
{
	tp_counter_child_add(r->wakeups, (double)n);
}

/* ---- Pub/Sub ----------------------------------------------------------- */

/* Waits up to ms for the subscriber's socket; false when stopping. */
static bool
sub_wait(struct relay_redis *r, int fd, int ms, bool *readable)
{
	struct pollfd pfd[2];

	pfd[0].fd = r->stop_pipe[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = fd;
	pfd[1].events = POLLIN;
	*readable = false;
	if (poll(pfd, fd >= 0 ? 2 : 1, ms) < 0 && errno != EINTR)
		return !atomic_load(&r->stop);
	if (atomic_load(&r->stop) || (pfd[0].revents & POLLIN))
		return false;
	*readable = fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR));
	return true;
}

static void
sub_message(struct relay_redis *r, const redisReply *m)
{
	size_t plen = strlen(r->prefix) + 5;	/* "<prefix>wake:" */
	const redisReply *ch;

	if (m->type != REDIS_REPLY_ARRAY || m->elements != 4 ||
	    m->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(m->element[0]->str, "pmessage") != 0)
		return;
	ch = m->element[2];
	if (ch->type != REDIS_REPLY_STRING || (size_t)ch->len < plen)
		return;
	r->on_message(r->sub_arg, ch->str + plen, (size_t)ch->len - plen);
}

/* One subscribed session: returns when the connection fails or on stop. */
static void
sub_session(struct relay_redis *r, redisContext *c)
{
	char pattern[sizeof(r->prefix) + 8];
	const char *argv[2] = { "PSUBSCRIBE", pattern };
	size_t lens[2];
	void *rep;
	bool readable, subscribed = false;
	int done = 0;

	snprintf(pattern, sizeof(pattern), "%swake:*", r->prefix);
	lens[0] = 10;
	lens[1] = strlen(pattern);
	if (redisAppendCommandArgv(c, 2, argv, lens) != REDIS_OK)
		return;
	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return;
	for (;;) {
		if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
			return;
		if (rep != NULL) {
			if (!subscribed) {
				subscribed = true;
				atomic_store(&r->sub_connected, true);
				if (r->on_subscribed != NULL)
					r->on_subscribed(r->sub_arg);
			} else
				sub_message(r, rep);
			freeReplyObject(rep);
			continue;
		}
		if (!sub_wait(r, c->fd, SUB_POLL_MS, &readable))
			return;
		if (readable && redisBufferRead(c) != REDIS_OK)
			return;
	}
}

static void *
sub_main(void *arg)
{
	struct relay_redis *r = arg;
	int64_t backoff = BACKOFF_MIN_MS;
	enum relay_redis_rc rc;
	redisContext *c;
	bool readable;
	char why[200];

	while (!atomic_load(&r->stop)) {
		c = dial(&r->cfg, &rc, why, sizeof(why));
		if (c == NULL) {
			if (!sub_wait(r, -1, (int)backoff, &readable))
				break;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
			    backoff * 2;
			continue;
		}
		backoff = BACKOFF_MIN_MS;
		sub_session(r, c);
		atomic_store(&r->sub_connected, false);
		redisFree(c);
		if (!atomic_load(&r->stop))
			tp_counter_child_add(r->reconnects, 1);
	}
	return NULL;
}

enum relay_redis_rc
relay_redis_subscribe(struct relay_redis *r,
    relay_redis_message_fn on_message, relay_redis_subscribed_fn on_subscribed,
    void *arg)
{
	if (r->sub_started)
		return RELAY_REDIS_E_PROTOCOL;
	r->on_message = on_message;
	r->on_subscribed = on_subscribed;
	r->sub_arg = arg;
	if (pthread_create(&r->sub, NULL, sub_main, r) != 0)
		return RELAY_REDIS_E_NOMEM;
	r->sub_started = true;
	return RELAY_REDIS_OK;
}
