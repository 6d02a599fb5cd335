/*
 * conn_linger.c -- graceful close of client connections on one thread
 * (see conn_linger.h).
 */
#include "http/conn_linger.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"

#define DRAIN_CHUNK 16384

struct entry {
	int fd;
	int64_t deadline_ms;
	int64_t drained;
};

struct relay_linger {
	struct relay_linger_config cfg;
	int wake;			/* eventfd: new sockets, or stop */
	pthread_t thread;
	_Atomic bool stop;

	/* Sockets handed over, not yet taken by the thread. */
	pthread_mutex_t mu;
	int *incoming;
	size_t nincoming;

	/* Owned by the thread alone. */
	struct entry *entries;
	size_t nentries;
	struct pollfd *pfds;		/* capacity + 1 */
	_Atomic size_t count;		/* entries + incoming, for readers */
};

const char *
relay_linger_end_name(enum relay_linger_end why)
{
	switch (why) {
	case RELAY_LINGER_EOF:
		return "eof";
	case RELAY_LINGER_TIMEOUT:
		return "timeout";
	case RELAY_LINGER_BYTES:
		return "drain_bytes";
	case RELAY_LINGER_RESET:
		return "reset";
	case RELAY_LINGER_EVICTED:
		return "evicted";
	case RELAY_LINGER_END_COUNT:
		break;
	}
	return "unknown";
}

static void
set_count(struct relay_linger *l, size_t n)
{
	atomic_store(&l->count, n);
	if (l->cfg.gauge != NULL)
		atomic_store(l->cfg.gauge, (long)n);
}

static void
ended(struct relay_linger *l, enum relay_linger_end why)
{
	if (l != NULL && l->cfg.on_end != NULL)
		l->cfg.on_end(l->cfg.arg, why);
}

/*
 * Reads and drops what the client has sent so far, without waiting.
 * Returns true when the socket is finished (*why says how), false when
 * the client may still send more.
 */
static bool
drain(int fd, int64_t *drained, int64_t max, enum relay_linger_end *why)
{
	char buf[DRAIN_CHUNK];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			*drained += n;
			if (*drained > max) {
				*why = RELAY_LINGER_BYTES;
				return true;
			}
			continue;
		}
		if (n == 0) {
			*why = RELAY_LINGER_EOF;
			return true;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return false;
		*why = RELAY_LINGER_RESET;
		return true;
	}
}

/* Closes at once, after dropping what is already queued. */
static enum relay_linger_end
close_now(int fd, int64_t drained, int64_t max, enum relay_linger_end why)
{
	enum relay_linger_end got;

	if (drain(fd, &drained, max, &got))
		why = got;
	close(fd);
	return why;
}

/* Moves handed-over sockets into the table, evicting the oldest if full. */
static void
take_incoming(struct relay_linger *l)
{
	int64_t deadline = relay_mono_ms() + l->cfg.linger_ms;

	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < l->nincoming; i++) {
		if (l->nentries == l->cfg.capacity) {
			/* entries are in arrival order: [0] is the oldest */
			struct entry *old = &l->entries[0];

			ended(l, close_now(old->fd, old->drained,
			    l->cfg.max_drain_bytes, RELAY_LINGER_EVICTED));
			memmove(&l->entries[0], &l->entries[1],
			    (l->nentries - 1) * sizeof(l->entries[0]));
			l->nentries--;
		}
		l->entries[l->nentries].fd = l->incoming[i];
		l->entries[l->nentries].deadline_ms = deadline;
		l->entries[l->nentries].drained = 0;
		l->nentries++;
	}
	l->nincoming = 0;
	set_count(l, l->nentries);
	pthread_mutex_unlock(&l->mu);
}

static void *
linger_main(void *arg)
{
	struct relay_linger *l = arg;

	while (!atomic_load(&l->stop)) {
		int64_t now = relay_mono_ms(), next = INT64_MAX;
		size_t keep = 0;
		int timeout;
		uint64_t v;

		take_incoming(l);
		l->pfds[0].fd = l->wake;
		l->pfds[0].events = POLLIN;
		for (size_t i = 0; i < l->nentries; i++) {
			l->pfds[i + 1].fd = l->entries[i].fd;
			l->pfds[i + 1].events = POLLIN;
			l->pfds[i + 1].revents = 0;
			if (l->entries[i].deadline_ms < next)
				next = l->entries[i].deadline_ms;
		}
		timeout = next == INT64_MAX ? -1 : next <= now ? 0 :
		    next - now > 60000 ? 60000 : (int)(next - now);
		if (poll(l->pfds, l->nentries + 1, timeout) < 0 &&
		    errno != EINTR)
			continue;
		if (l->pfds[0].revents & POLLIN)
			(void)read(l->wake, &v, sizeof(v));
		now = relay_mono_ms();
		/* Finished sockets are closed; the rest keep their order. */
		for (size_t i = 0; i < l->nentries; i++) {
			struct entry *e = &l->entries[i];
			enum relay_linger_end why = RELAY_LINGER_TIMEOUT;
			bool done = false;

			if (l->pfds[i + 1].revents != 0)
				done = drain(e->fd, &e->drained,
				    l->cfg.max_drain_bytes, &why);
			if (done) {
				close(e->fd);
				ended(l, why);
			} else if (e->deadline_ms <= now) {
				ended(l, close_now(e->fd, e->drained,
				    l->cfg.max_drain_bytes, RELAY_LINGER_TIMEOUT));
			} else {
				l->entries[keep++] = *e;
			}
		}
		pthread_mutex_lock(&l->mu);
		l->nentries = keep;
		set_count(l, l->nentries + l->nincoming);
		pthread_mutex_unlock(&l->mu);
	}
	return NULL;
}

struct relay_linger *
relay_linger_new(const struct relay_linger_config *cfg)
{
	struct relay_linger *l;

	if (cfg->capacity == 0 || cfg->linger_ms < 0 || cfg->max_drain_bytes < 0)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->cfg = *cfg;
	l->wake = -1;
	l->incoming = calloc(cfg->capacity, sizeof(*l->incoming));
	l->entries = calloc(cfg->capacity, sizeof(*l->entries));
	l->pfds = calloc(cfg->capacity + 1, sizeof(*l->pfds));
	if (l->incoming == NULL || l->entries == NULL || l->pfds == NULL)
		goto fail;
	l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake < 0)
		goto fail;
	if (pthread_mutex_init(&l->mu, NULL) != 0)
		goto fail;
	if (pthread_create(&l->thread, NULL, linger_main, l) != 0) {
		pthread_mutex_destroy(&l->mu);
		goto fail;
	}
	return l;
fail:
	if (l->wake >= 0)
		close(l->wake);
	free(l->pfds);
	free(l->entries);
	free(l->incoming);
	free(l);
	return NULL;
}

void
relay_linger_free(struct relay_linger *l)
{
	uint64_t one = 1;

	if (l == NULL)
		return;
	atomic_store(&l->stop, true);
	(void)write(l->wake, &one, sizeof(one));
	pthread_join(l->thread, NULL);
	for (size_t i = 0; i < l->nentries; i++)
		close(l->entries[i].fd);
	for (size_t i = 0; i < l->nincoming; i++)
		close(l->incoming[i]);
	set_count(l, 0);
	pthread_mutex_destroy(&l->mu);
	close(l->wake);
	free(l->pfds);
	free(l->entries);
	free(l->incoming);
	free(l);
}

void
relay_linger_close(struct relay_linger *l, int fd)
{
	uint64_t one = 1;
	bool queued = false;

	if (fd < 0)
		return;
	/* The FIN goes out now, after every byte already written. */
	(void)shutdown(fd, SHUT_WR);
	if (l != NULL && l->cfg.linger_ms > 0) {
		pthread_mutex_lock(&l->mu);
		if (l->nincoming < l->cfg.capacity) {
			l->incoming[l->nincoming++] = fd;
			set_count(l, atomic_load(&l->count) + 1);
			queued = true;
		}
		pthread_mutex_unlock(&l->mu);
	}
	if (queued) {
		(void)write(l->wake, &one, sizeof(one));
		return;
	}
	/* No linger, or more handed over than the thread has taken yet. */
	ended(l, close_now(fd, 0, l != NULL ? l->cfg.max_drain_bytes : 0,
	    l != NULL && l->cfg.linger_ms > 0 ? RELAY_LINGER_EVICTED :
	    RELAY_LINGER_TIMEOUT));
}

size_t
relay_linger_count(struct relay_linger *l)
{
	return l != NULL ? atomic_load(&l->count) : 0;
}
