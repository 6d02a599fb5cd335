/*
 * redis.c -- the Redis adapter over hiredis (Debian 12: 0.14, blocking
 * API, no TLS); with redis_pubsub.c (the subscriber thread and the
 * channel check) the only code that includes hiredis. Everything the two
 * Redis stores and the time base need from a Redis/Valkey server goes
 * through here.
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
 *   up --(a call fails: connection lost, timeout, or an answer that says
 *         this server cannot serve: READONLY, MASTERDOWN, LOADING, "max
 *         number of clients reached")--> down
 *   down --(a dial fails, or the probe's call fails)--> down, next dial
 *           after a back-off (100 ms doubling to 2 s); callers meanwhile
 *           fail at once with RELAY_REDIS_E_UNAVAILABLE
 *   down --(a call answered on a connection opened after the last
 *           loss)--> up
 *
 * The epoch is bumped on every loss, and a connection remembers the epoch
 * at which its dial started. Only an answer on a connection of the
 * current epoch marks the store up: a dial alone proves nothing (a dying
 * server's socket may still accept), and an answer that left the server
 * before a loss another thread saw may be read after it. Every connection
 * of an older epoch is retired when it comes back, and its failure changes
 * nothing. While down, one thread at a time dials and runs its call as
 * the probe (the others fail fast), so no request thread waits longer
 * than the connect timeout, and a command never longer than the command
 * timeout. Each transition is logged once (relay.state_store_down /
 * relay.state_store_up), never per request, and handed to the state hook
 * (relay_redis_on_state) under the same lock, so readiness follows in
 * the same order at once.
 *
 * Every call is a script that may write (the server's TIME too): a
 * replica left behind by a failover answers READONLY to each of them, so
 * it can never look usable.
 *
 * Scripts. A script is loaded with SCRIPT LOAD the first time it runs and
 * then called with EVALSHA. NOSCRIPT (a restarted or flushed server) means
 * the script did not run: it is loaded again and called once more, the
 * only retry there is. A script whose connection broke or timed out is
 * never re-sent: it may have run, and a write script run twice could
 * enqueue twice or lose popped jobs.
 *
 * Pub/Sub: redis_pubsub.c. URL parsing: redis_url.c.
 */
#include "redis/redis_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

static const char *const err_kind_name[ERR_NKINDS] = {
	"connect", "timeout", "connection_lost", "oom", "auth", "script",
	"protocol", "busy", "pool_exhausted", "failover", "noperm",
};

/*
 * The server's TIME, from a script that may write (no "no-writes" flag):
 * a replica refuses it with READONLY like every other call, so the
 * monitor's samples cannot mark a demoted server up. allow-oom: a full
 * server still tells the time.
 */
static const char LUA_TIME[] =
    "#!lua flags=allow-oom\n"
    "return redis.call('TIME')\n";

/* A reason into a caller's buffer; cut short when it does not fit. */
void
relay_redis_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, len, fmt, ap);
	va_end(ap);
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

void
relay_redis_count(struct relay_redis *r, enum err_kind k)
{
	tp_counter_child_add(r->errors[k], 1);
}

/*
 * Under mu. Every loss bumps the epoch: the connections opened before it
 * are retired, and only a call on a newer one can mark the store up.
 * `backoff`: the next dial waits (a failed dial or probe, or a server
 * that answered that it cannot serve); otherwise the next caller may dial
 * at once (a restart is usually quick).
 */
static void
mark_down(struct relay_redis *r, const char *why, bool backoff)
{
	int64_t now = relay_mono_ms();

	r->epoch++;
	if (backoff) {
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
		if (r->on_state != NULL)
			r->on_state(r->state_arg, false, r->why);
	}
}

/* Under mu: a call on a connection of the current epoch was answered. */
static void
mark_up(struct relay_redis *r)
{
	r->backoff_ms = BACKOFF_MIN_MS;
	if (!r->up) {
		r->up = true;
		r->why[0] = '\0';
		TP_LOG0(TP_LOG_INFO, "relay.state_store_up");
		if (r->on_state != NULL)
			r->on_state(r->state_arg, true, "");
	}
}

void
relay_redis_on_state(struct relay_redis *r, relay_redis_state_fn fn,
    void *arg)
{
	pthread_mutex_lock(&r->mu);
	r->on_state = fn;
	r->state_arg = arg;
	if (fn != NULL)
		fn(arg, r->up, r->up ? "" : r->why);
	pthread_mutex_unlock(&r->mu);
}

bool
relay_redis_up(const struct relay_redis *r, char *why, size_t whylen)
{
	struct relay_redis *m = (struct relay_redis *)(uintptr_t)r;
	bool up;

	pthread_mutex_lock(&m->mu);
	up = m->up;
	if (why != NULL && whylen > 0)
		relay_redis_why(why, whylen, "%s", up ? "" : m->why);
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
 * An error answer that says this server cannot serve now, whatever the
 * command: a replica left behind by a failover (READONLY), a replica cut
 * off from its master (MASTERDOWN), a server loading its data (LOADING),
 * or one that accepted the connection only to refuse it ("max number of
 * clients reached"). Not a configuration error, and not a script bug: the
 * connection is dropped and the store is down until a probe is answered.
 */
bool
relay_redis_cannot_serve(const char *s)
{
	return strncmp(s, "READONLY", 8) == 0 ||
	    strncmp(s, "MASTERDOWN", 10) == 0 ||
	    strncmp(s, "LOADING", 7) == 0 ||
	    strstr(s, "max number of clients reached") != NULL;
}

/*
 * Opens, authenticates and selects. Returns NULL with *rc and a reason
 * (never the password) in why.
 */
redisContext *
relay_redis_dial(const struct relay_redis_config *cfg, enum relay_redis_rc *rc, char *why,
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
		relay_redis_why(why, whylen, "out of memory");
		return NULL;
	}
	if (c->err != 0) {
		*rc = RELAY_REDIS_E_UNAVAILABLE;
		if (cfg->unix_path[0] != '\0')
			relay_redis_why(why, whylen, "cannot connect to %.100s: %s",
			    cfg->unix_path, c->errstr);
		else
			relay_redis_why(why, whylen, "cannot connect to %.100s:%d: %s",
			    cfg->host, cfg->port, c->errstr);
		goto fail;
	}
	if (redisSetTimeout(c, tv_ms(cfg->command_timeout_ms)) != REDIS_OK ||
	    (cfg->unix_path[0] == '\0' && redisEnableKeepAlive(c) != REDIS_OK)) {
		*rc = RELAY_REDIS_E_UNAVAILABLE;
		relay_redis_why(why, whylen, "socket options: %s", c->errstr);
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
		if (rep->type == REDIS_REPLY_ERROR && (relay_redis_cannot_serve(rep->str) ||
		    strncmp(rep->str, "BUSY", 4) == 0)) {
			/* A busy server, not a wrong password: retry later. */
			*rc = RELAY_REDIS_E_UNAVAILABLE;
			relay_redis_why(why, whylen, "the server cannot serve yet: "
			    "%.100s", rep->str);
			goto fail;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			*rc = RELAY_REDIS_E_AUTH;
			/* The server's message names no password. */
			relay_redis_why(why, whylen, "AUTH refused: %.100s", rep->str);
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
		if (rep->type == REDIS_REPLY_ERROR && (relay_redis_cannot_serve(rep->str) ||
		    strncmp(rep->str, "BUSY", 4) == 0)) {
			*rc = RELAY_REDIS_E_UNAVAILABLE;
			relay_redis_why(why, whylen, "the server cannot serve yet: "
			    "%.100s", rep->str);
			goto fail;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			*rc = strncmp(rep->str, "NOAUTH", 6) == 0 ?
			    RELAY_REDIS_E_AUTH : RELAY_REDIS_E_CONFIG;
			relay_redis_why(why, whylen, "SELECT %d refused: %.100s",
			    cfg->db, rep->str);
			goto fail;
		}
		freeReplyObject(rep);
		rep = NULL;
	}
	return c;
io:
	*rc = RELAY_REDIS_E_UNAVAILABLE;
	relay_redis_why(why, whylen, "connection lost during set-up: %s", c->errstr);
fail:
	if (rep != NULL)
		freeReplyObject(rep);
	redisFree(c);
	return NULL;
}

/*
 * Borrows a connection for one command. Fails at once while the server is
 * known down and the back-off has not passed, or while another thread's
 * probe is out; waits at most the command timeout for a free slot. A
 * connection dialed while down is the probe: the store stays down until
 * its call is answered (give_back), and no other thread dials meanwhile.
 */
static enum relay_redis_rc
borrow(struct relay_redis *r, struct pooled *out, char *why, size_t whylen)
{
	int64_t deadline = relay_mono_ms() + r->cfg.command_timeout_ms;
	struct timespec ts;
	enum relay_redis_rc rc;
	redisContext *c;
	uint64_t epoch;
	bool probe;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->nidle > 0) {
			*out = r->idle[--r->nidle];
			if (out->epoch == r->epoch) {
				pthread_mutex_unlock(&r->mu);
				return RELAY_REDIS_OK;
			}
			/* Opened before a loss: assume it shares it. */
			redisFree(out->c);
			r->open--;
		}
		if (!r->up && (r->dialing ||
		    relay_mono_ms() < r->next_dial_ms)) {
			relay_redis_why(why, whylen, "%s", r->why);
			pthread_mutex_unlock(&r->mu);
			relay_redis_count(r, ERR_CONNECT);
			return RELAY_REDIS_E_UNAVAILABLE;
		}
		if (r->open < r->cfg.pool_size) {
			r->open++;
			probe = !r->up;
			if (probe)
				r->dialing = true;
			epoch = r->epoch;
			pthread_mutex_unlock(&r->mu);
			c = relay_redis_dial(&r->cfg, &rc, why, whylen);
			pthread_mutex_lock(&r->mu);
			if (c == NULL) {
				r->open--;
				if (probe)
					r->dialing = false;
				if (rc == RELAY_REDIS_E_UNAVAILABLE ||
				    rc == RELAY_REDIS_E_AUTH ||
				    rc == RELAY_REDIS_E_CONFIG)
					mark_down(r, why, true);
				pthread_cond_signal(&r->cv);
				pthread_mutex_unlock(&r->mu);
				relay_redis_count(r, rc == RELAY_REDIS_E_AUTH ?
				    ERR_AUTH : ERR_CONNECT);
				tp_counter_child_add(r->reconnects, 1);
				return rc;
			}
			/* A probe: still down, its call decides (give_back/retire). */
			if (probe)
				tp_counter_child_add(r->reconnects, 1);
			pthread_mutex_unlock(&r->mu);
			out->c = c;
			out->epoch = epoch;
			out->probe = probe;
			return RELAY_REDIS_OK;
		}
		if (!r->up) {
			relay_redis_why(why, whylen, "%s", r->why);
			pthread_mutex_unlock(&r->mu);
			relay_redis_count(r, ERR_CONNECT);
			return RELAY_REDIS_E_UNAVAILABLE;
		}
		ts = relay_mono_timespec(deadline);
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT &&
		    r->nidle == 0 && r->open >= r->cfg.pool_size) {
			pthread_mutex_unlock(&r->mu);
			relay_redis_why(why, whylen, "all %u connections busy for "
			    "the command timeout", r->cfg.pool_size);
			relay_redis_count(r, ERR_POOL);
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

/*
 * Gives a connection back after its call was answered. An answer on a
 * connection of the current epoch marks the store up; one opened before
 * the last loss proves nothing about now (its answer may have left the
 * server before that loss) and is retired.
 */
static void
give_back(struct relay_redis *r, struct pooled *p)
{
	pthread_mutex_lock(&r->mu);
	if (p->probe)
		r->dialing = false;
	if (p->epoch != r->epoch) {
		redisFree(p->c);
		r->open--;
	} else {
		p->probe = false;
		r->idle[r->nidle++] = *p;
		mark_up(r);
	}
	p->c = NULL;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/*
 * Retires a connection whose call failed: lost, timed out (errno from
 * hiredis), or answered that the server cannot serve (kind
 * ERR_FAILOVER/ERR_CONNECT with why already set). On a connection of the
 * current epoch that is a loss: the store is down and every connection
 * opened before is retired. A failed probe, or a server that answered,
 * backs off before the next dial.
 */
static void
retire(struct relay_redis *r, struct pooled *p, enum err_kind kind,
    const char *why)
{
	redisFree(p->c);
	p->c = NULL;
	relay_redis_count(r, kind);
	pthread_mutex_lock(&r->mu);
	r->open--;
	if (p->probe)
		r->dialing = false;
	if (p->epoch == r->epoch)
		mark_down(r, why, p->probe || kind == ERR_FAILOVER ||
		    kind == ERR_CONNECT);
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* A call failed on the socket (hiredis returned no reply). */
static void
drop(struct relay_redis *r, struct pooled *p, char *why, size_t whylen)
{
	bool timeout = p->c->err == REDIS_ERR_IO &&
	    (errno == EAGAIN || errno == EWOULDBLOCK);

	relay_redis_why(why, whylen, "%s: %s", timeout ? "command timed out" :
	    "connection lost", p->c->errstr);
	retire(r, p, timeout ? ERR_TIMEOUT : ERR_CONNECTION_LOST, why);
}

/*
 * Maps an error answer to a code; logs script bugs. *lost: the answer
 * says this server cannot serve (relay_redis_cannot_serve()): the caller retires the
 * connection with retire(r, p, *kind, why).
 */
static enum relay_redis_rc
classify_error(struct relay_redis *r, const char *op, const redisReply *rep,
    bool *lost, enum err_kind *kind, char *why, size_t whylen)
{
	const char *s = rep->str;

	*lost = false;
	if (relay_redis_cannot_serve(s)) {
		*lost = true;
		*kind = strncmp(s, "ERR", 3) == 0 ? ERR_CONNECT : ERR_FAILOVER;
		relay_redis_why(why, whylen, "the server cannot serve: %.100s", s);
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	if (strncmp(s, "OOM", 3) == 0 || strstr(s, "OOM command") != NULL) {
		relay_redis_count(r, ERR_OOM);
		return RELAY_REDIS_E_OOM;
	}
	if (strncmp(s, "NOPERM", 6) == 0) {
		relay_redis_count(r, ERR_NOPERM);
		TP_LOG(TP_LOG_ERROR, "relay.state_permission_denied",
		    TP_LSTR("operation", op), TP_LSTRN("reason", s,
		    rep->len < 300 ? (size_t)rep->len : 300),
		    TP_LSTR("setting", "RELAY_STATE_URL"));
		return RELAY_REDIS_E_NOPERM;
	}
	if (strncmp(s, "NOAUTH", 6) == 0 || strncmp(s, "WRONGPASS", 9) == 0) {
		relay_redis_count(r, ERR_AUTH);
		return RELAY_REDIS_E_AUTH;
	}
	if (strncmp(s, "BUSY", 4) == 0 || strncmp(s, "TRYAGAIN", 8) == 0 ||
	    strncmp(s, "CLUSTERDOWN", 11) == 0) {
		relay_redis_count(r, ERR_BUSY);
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	relay_redis_count(r, ERR_SCRIPT);
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
	size_t n;

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
	/* Glob characters in the prefix would widen the pattern (crossed
	 * deployments) or break it (an unbalanced '['): escaped. */
	n = relay_redis_glob_escape(r->prefix, r->pattern, sizeof(r->pattern));
	if (n + 7 > sizeof(r->pattern)) {
		snprintf(err, errlen, "RELAY_STATE_PREFIX too long");
		free(r);
		return NULL;
	}
	memcpy(r->pattern + n, "wake:*", 7);
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

	r->time_id = relay_redis_script(r, "time", LUA_TIME);
	if (r->time_id < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	/* One connection now: a bad password or db is a configuration error. */
	c = relay_redis_dial(&r->cfg, &rc, why, sizeof(why));
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
	for (i = 0; i < atomic_load(&r->nscripts); i++) {
		free(r->scripts[i].name);
		free(r->scripts[i].lua);
	}
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
	struct script *s;
	size_t n;
	int id = -1;

	/*
	 * Other threads may be running scripts already (the monitor thread
	 * starts before the stores register theirs): the table never moves,
	 * and an entry is published (nscripts) only once it is complete.
	 */
	pthread_mutex_lock(&r->mu);
	n = atomic_load(&r->nscripts);
	if (n >= MAX_SCRIPTS)
		goto out;
	s = &r->scripts[n];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	s->lua = strdup(lua);
	if (s->name == NULL || s->lua == NULL) {
		free(s->name);
		free(s->lua);
		s->name = s->lua = NULL;
		goto out;
	}
	s->len = strlen(lua);
	s->latency = tp_histogram_child(r->latency,
	    (const char *const[]){ name });
	atomic_store(&r->nscripts, n + 1);
	id = (int)n;
out:
	pthread_mutex_unlock(&r->mu);
	return id;
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

	enum err_kind kind;
	bool lost = false;

	rep = redisCommandArgv(p->c, 3, argv, lens);
	if (rep == NULL) {
		drop(r, p, why, whylen);
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	if (rep->type == REDIS_REPLY_ERROR)
		rc = classify_error(r, s->name, rep, &lost, &kind, why, whylen);
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
	if (lost)
		retire(r, p, kind, why);
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
	enum err_kind kind;
	int64_t t0;
	size_t i;
	int attempt;
	bool shrunk, lost = false;

	memset(out, 0, sizeof(*out));
	if (id < 0 || (size_t)id >= atomic_load(&r->nscripts) ||
	    nkeys + nargs > MAX_ARGS)
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
		rc = classify_error(r, s->name, rep, &lost, &kind, why,
		    sizeof(why));
	else if ((rc = reply_copy(rep, out, 0)) != RELAY_REDIS_OK) {
		reply_clear(out);
		if (rc == RELAY_REDIS_E_PROTOCOL)
			relay_redis_count(r, ERR_PROTOCOL);
	}
	freeReplyObject(rep);
	tp_histogram_child_observe(s->latency,
	    (double)(relay_mono_ms() - t0) / 1000.0);
	if (lost) {
		/* This server cannot serve (a failover, loading, full). */
		retire(r, &p, kind, why);
		return rc;
	}
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
	struct relay_redis_reply rep;
	enum relay_redis_rc rc;

	rc = relay_redis_eval(r, r->time_id, 0, NULL, NULL, 0, NULL, NULL,
	    &rep);
	if (rc != RELAY_REDIS_OK)
		return rc;
	if (rep.type == RELAY_REDIS_ARRAY && rep.n == 2 &&
	    rep.elem[0].type == RELAY_REDIS_STR &&
	    rep.elem[1].type == RELAY_REDIS_STR) {
		*ms = strtoll(rep.elem[0].str, NULL, 10) * 1000 +
		    strtoll(rep.elem[1].str, NULL, 10) / 1000;
	} else {
		relay_redis_count(r, ERR_PROTOCOL);
		rc = RELAY_REDIS_E_PROTOCOL;
	}
	reply_clear(&rep);
	return rc;
}
