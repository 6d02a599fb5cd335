/*
 * redis_pubsub.c -- the Redis adapter's Pub/Sub side (see redis.h): the
 * subscriber thread on its own connection, subscribed to
 * "<prefix>wake:*" with the prefix's glob characters escaped, which
 * checks that the answer to PSUBSCRIBE is a subscription, calls
 * on_subscribed after every (re)subscription and reconnects with the
 * pool's back-off; and the start-up check that the ACL user may PUBLISH
 * and PSUBSCRIBE on the deployment's channels.
 */
#include "redis/redis_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

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
	if (ch->type != REDIS_REPLY_STRING || (size_t)ch->len < plen ||
	    memcmp(ch->str, r->prefix, plen - 5) != 0 ||
	    memcmp(ch->str + plen - 5, "wake:", 5) != 0)
		return;
	r->on_message(r->sub_arg, ch->str + plen, (size_t)ch->len - plen);
}

/* Whether rep is the confirmation of PSUBSCRIBE to pattern. */
static bool
is_subscription(const redisReply *rep, const char *pattern)
{
	return rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(rep->element[0]->str, "psubscribe") == 0 &&
	    rep->element[1]->type == REDIS_REPLY_STRING &&
	    strcmp(rep->element[1]->str, pattern) == 0 &&
	    rep->element[2]->type == REDIS_REPLY_INTEGER;
}

/*
 * The first answer to PSUBSCRIBE was not a subscription: NOPERM (an ACL
 * user without the channels) or anything else is logged once per run of
 * refusals and counted every time; a server that cannot serve yet
 * (LOADING, a replica, full) is counted only (the pool logs its state).
 */
static void
sub_refused(struct relay_redis *r, const redisReply *rep, bool *logged)
{
	bool err = rep->type == REDIS_REPLY_ERROR;

	if (err && relay_redis_cannot_serve(rep->str)) {
		relay_redis_count(r, ERR_FAILOVER);
		return;
	}
	relay_redis_count(r, err && strncmp(rep->str, "NOPERM", 6) == 0 ?
	    ERR_NOPERM : ERR_PROTOCOL);
	if (*logged)
		return;
	*logged = true;
	TP_LOG(TP_LOG_ERROR, "relay.state_subscribe_refused",
	    TP_LSTR("pattern", r->pattern),
	    TP_LSTRN("reason", err ? rep->str : "not a subscription",
	    err ? (rep->len < 200 ? (size_t)rep->len : 200) : 18),
	    TP_LSTR("setting", "RELAY_STATE_URL"));
}

/*
 * One session: returns when the connection fails, the subscription is
 * refused, or on stop; true when it was subscribed.
 */
static bool
sub_session(struct relay_redis *r, redisContext *c, bool *refused_logged)
{
	const char *argv[2] = { "PSUBSCRIBE", r->pattern };
	size_t lens[2];
	void *rep;
	bool readable, subscribed = false;
	int done = 0;

	lens[0] = 10;
	lens[1] = strlen(r->pattern);
	if (redisAppendCommandArgv(c, 2, argv, lens) != REDIS_OK)
		return false;
	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return false;
	for (;;) {
		if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
			return subscribed;
		if (rep != NULL) {
			if (subscribed)
				sub_message(r, rep);
			else if (is_subscription(rep, r->pattern)) {
				subscribed = true;
				*refused_logged = false;
				atomic_store(&r->sub_connected, true);
				if (r->on_subscribed != NULL)
					r->on_subscribed(r->sub_arg);
			} else {
				sub_refused(r, rep, refused_logged);
				freeReplyObject(rep);
				return false;
			}
			freeReplyObject(rep);
			continue;
		}
		if (!sub_wait(r, c->fd, SUB_POLL_MS, &readable))
			return subscribed;
		if (readable && redisBufferRead(c) != REDIS_OK)
			return subscribed;
	}
}

static void *
sub_main(void *arg)
{
	struct relay_redis *r = arg;
	int64_t backoff = BACKOFF_MIN_MS;
	enum relay_redis_rc rc;
	redisContext *c;
	bool readable, refused_logged = false, subscribed;
	char why[200];

	while (!atomic_load(&r->stop)) {
		c = relay_redis_dial(&r->cfg, &rc, why, sizeof(why));
		subscribed = false;
		if (c != NULL) {
			subscribed = sub_session(r, c, &refused_logged);
			atomic_store(&r->sub_connected, false);
			redisFree(c);
			if (atomic_load(&r->stop))
				break;
			tp_counter_child_add(r->reconnects, 1);
		}
		if (subscribed) {
			/* Lost after it worked: redial at once. */
			backoff = BACKOFF_MIN_MS;
			continue;
		}
		/* Not reached, or refused: back off before trying again. */
		if (!sub_wait(r, -1, (int)backoff, &readable))
			break;
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
		    backoff * 2;
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

/* ---- start-up checks ---------------------------------------------------- */

/* One command on c; NULL when the connection failed (why set). */
static redisReply *
command(redisContext *c, int argc, const char **argv, const size_t *lens,
    char *why, size_t whylen)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, lens);

	if (rep == NULL)
		relay_redis_why(why, whylen, "connection lost: %s", c->errstr);
	return rep;
}

/* Maps a refusal of the channel check; why names what is missing. */
static enum relay_redis_rc
channel_refused(struct relay_redis *r, const redisReply *rep,
    const char *what, char *why, size_t whylen)
{
	const char *user = r->cfg.user[0] != '\0' ? r->cfg.user : "default";

	if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOPERM", 6) == 0) {
		relay_redis_count(r, ERR_NOPERM);
		relay_redis_why(why, whylen, "the Redis user '%.60s' lacks the ACL "
		    "permission to %s %.140s (%.80s): grant it with ACL SETUSER "
		    "%.60s &%.140s", user, what, r->pattern, rep->str, user,
		    r->pattern);
		return RELAY_REDIS_E_NOPERM;
	}
	if (rep->type == REDIS_REPLY_ERROR && relay_redis_cannot_serve(rep->str)) {
		relay_redis_why(why, whylen, "the server cannot serve: %.100s", rep->str);
		return RELAY_REDIS_E_UNAVAILABLE;
	}
	relay_redis_count(r, ERR_PROTOCOL);
	relay_redis_why(why, whylen, "unexpected answer to %s %.140s%s%.80s", what,
	    r->pattern, rep->type == REDIS_REPLY_ERROR ? ": " : "",
	    rep->type == REDIS_REPLY_ERROR ? rep->str : "");
	return RELAY_REDIS_E_PROTOCOL;
}

enum relay_redis_rc
relay_redis_check_channels(struct relay_redis *r, char *why, size_t whylen)
{
	char channel[sizeof(r->prefix) + 8];
	const char *argv[3];
	size_t lens[3];
	redisContext *c;
	redisReply *rep;
	enum relay_redis_rc rc;

	/* A connection of its own: neither the pool nor the up/down state. */
	c = relay_redis_dial(&r->cfg, &rc, why, whylen);
	if (c == NULL)
		return rc;
	/*
	 * What the API v1 scripts do after their writes. "-" is never a node
	 * id (those are hex), so no poll anywhere wakes for it.
	 */
	snprintf(channel, sizeof(channel), "%swake:-", r->prefix);
	argv[0] = "PUBLISH";
	lens[0] = 7;
	argv[1] = channel;
	lens[1] = strlen(channel);
	argv[2] = "";
	lens[2] = 0;
	if ((rep = command(c, 3, argv, lens, why, whylen)) == NULL) {
		rc = RELAY_REDIS_E_UNAVAILABLE;
		goto out;
	}
	rc = rep->type == REDIS_REPLY_INTEGER ? RELAY_REDIS_OK :
	    channel_refused(r, rep, "PUBLISH to", why, whylen);
	freeReplyObject(rep);
	if (rc != RELAY_REDIS_OK)
		goto out;
	/* What the subscriber does: the answer must be a subscription. */
	argv[0] = "PSUBSCRIBE";
	lens[0] = 10;
	argv[1] = r->pattern;
	lens[1] = strlen(r->pattern);
	if ((rep = command(c, 2, argv, lens, why, whylen)) == NULL) {
		rc = RELAY_REDIS_E_UNAVAILABLE;
		goto out;
	}
	rc = is_subscription(rep, r->pattern) ? RELAY_REDIS_OK :
	    channel_refused(r, rep, "PSUBSCRIBE to", why, whylen);
	freeReplyObject(rep);
out:
	redisFree(c);		/* closing it ends the subscription */
	return rc;
}
