/*
 * conn_gate.c -- per-address connection limit and the head and close
 * deadlines civetweb 1.15 cannot enforce itself (see conn_gate.h).
 */
#include "http/conn_gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"

enum slot_state {
	SLOT_FREE = 0,
	SLOT_QUEUED,		/* accepted, no worker reads it yet: no deadline */
	SLOT_HEAD,		/* a worker awaits the first head, deadline armed */
	SLOT_OPEN,		/* serving; no deadline */
	SLOT_CUT,		/* shut down by the watchdog, not yet closed */
};

struct slot {
	enum slot_state state;
	int fd;
	uint32_t addr;		/* network byte order */
	uint16_t port;		/* network byte order */
	int64_t deadline_ms;	/* relay_mono_ms(); HEAD (and CUT: look again) */
};

struct relay_gate {
	struct relay_gate_config cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* CLOCK_MONOTONIC; wakes the watchdog */
	pthread_t watchdog;
	bool stop;
	size_t open;
	struct slot *slots;
	char *peek;		/* peek_bytes, used with the lock held */
};

/*
 * The JSON answers written straight to a socket the gate refuses or cuts.
 * A client over its own address's limit is told 429 (it may retry once
 * one of its connections is done); a full table is the relay's limit, 503.
 */
static const char refuse_429[] =
    "HTTP/1.1 429 Too Many Requests\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 81\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n\r\n"
    "{\"error\":{\"code\":429,\"message\":\"Too many connections from this client address\"}}\n";
static const char refuse_429_heads[] =
    "HTTP/1.1 429 Too Many Requests\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 89\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n\r\n"
    "{\"error\":{\"code\":429,\"message\":\"Too many unfinished requests from this client address\"}}\n";
static const char refuse_503[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 69\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n\r\n"
    "{\"error\":{\"code\":503,\"message\":\"Too many connections to the relay\"}}\n";
static const char cut_408[] =
    "HTTP/1.1 408 Request Timeout\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 69\r\n"
    "Connection: close\r\n\r\n"
    "{\"error\":{\"code\":408,\"message\":\"Request head not received in time\"}}\n";

const char *
relay_gate_cut_reason(enum relay_gate_cut why)
{
	switch (why) {
	case RELAY_GATE_PER_CLIENT:
		return "per_client_limit";
	case RELAY_GATE_PENDING_HEADS:
		return "pending_heads_limit";
	case RELAY_GATE_TABLE_FULL:
		return "connection_table_full";
	case RELAY_GATE_HEAD_TIMEOUT:
		return "head_timeout";
	}
	return "unknown";
}

/*
 * A best-effort answer on a socket nobody else writes to yet: never
 * blocks (a fresh socket's send buffer is empty) and never raises SIGPIPE.
 */
static void
write_best_effort(int fd, const char *msg, size_t len)
{
	ssize_t n;

	do {
		n = send(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
}

/* True when fd is still the socket connected to addr:port. */
static bool
fd_is_peer(int fd, uint32_t addr, uint16_t port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
	    sa.sin_family != AF_INET)
		return false;
	return sa.sin_addr.s_addr == addr && sa.sin_port == port;
}

/*
 * True when the end of a request head (an empty line; civetweb also takes
 * a bare LF as a line end) is already in fd's receive queue: the client
 * sent its head and only no worker has read it yet. Looks at most
 * peek_bytes. Called with the lock held (g->peek is shared).
 */
static bool
head_queued(struct relay_gate *g, int fd)
{
	ssize_t n;

	do {
		n = recv(fd, g->peek, g->cfg.peek_bytes, MSG_PEEK | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return false;
	return memmem(g->peek, (size_t)n, "\n\r\n", 3) != NULL ||
	    memmem(g->peek, (size_t)n, "\n\n", 2) != NULL;
}

/* Called with the lock held. */
static void
set_open(struct relay_gate *g, size_t n)
{
	g->open = n;
	if (g->cfg.open_gauge != NULL)
		atomic_store(g->cfg.open_gauge, (long)n);
}

static struct slot *
find(struct relay_gate *g, uint32_t addr, uint16_t port)
{
	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];

		if (s->state != SLOT_FREE && s->addr == addr && s->port == port)
			return s;
	}
	return NULL;
}

static void
report(struct relay_gate *g, enum relay_gate_cut why, uint32_t addr)
{
	if (g->cfg.on_cut != NULL)
		g->cfg.on_cut(g->cfg.arg, why, addr);
}

/* A cut to report once the lock is released. */
struct cut_note {
	enum relay_gate_cut why;
	uint32_t addr;
};

/*
 * Cuts every connection past its deadline; returns the earliest deadline
 * still armed (INT64_MAX when none). Called with the lock held; the
 * reports are collected and made by the caller after unlocking. A cut
 * connection keeps its slot until civetweb closes it; should that close
 * never be reported, the slot is freed once its descriptor no longer
 * names the peer.
 */
static int64_t
sweep(struct relay_gate *g, int64_t now, struct cut_note *notes,
    size_t max_notes, size_t *nnotes)
{
	int64_t next = INT64_MAX;

	*nnotes = 0;
	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];
		enum relay_gate_cut why;

		if (s->state != SLOT_HEAD && s->state != SLOT_CUT)
			continue;
		if (s->deadline_ms > now) {
			if (s->deadline_ms < next)
				next = s->deadline_ms;
			continue;
		}
		if (s->state == SLOT_CUT) {
			/* civetweb has not closed it yet: look again later */
			if (!fd_is_peer(s->fd, s->addr, s->port)) {
				s->state = SLOT_FREE;
				set_open(g, g->open - 1);
				continue;
			}
			(void)shutdown(s->fd, SHUT_RDWR);
			s->deadline_ms = now + g->cfg.head_timeout_ms;
			if (s->deadline_ms < next)
				next = s->deadline_ms;
			continue;
		}
		if (*nnotes == max_notes) {
			next = now;	/* the rest on the next round */
			break;
		}
		/*
		 * The client sent its whole head in time; its worker has not
		 * read it yet (a busy machine): no 408, look again later.
		 */
		if (head_queued(g, s->fd)) {
			s->deadline_ms = now + g->cfg.head_timeout_ms;
			if (s->deadline_ms < next)
				next = s->deadline_ms;
			continue;
		}
		why = RELAY_GATE_HEAD_TIMEOUT;
		/*
		 * civetweb forgets a connection (relay_gate_closed) before it
		 * closes the descriptor, so fd is still this connection's;
		 * the peer check guards against a close the gate missed.
		 */
		if (fd_is_peer(s->fd, s->addr, s->port)) {
			write_best_effort(s->fd, cut_408, sizeof(cut_408) - 1);
			(void)shutdown(s->fd, SHUT_RDWR);
			s->state = SLOT_CUT;
			s->deadline_ms = now + g->cfg.head_timeout_ms;
			if (s->deadline_ms < next)
				next = s->deadline_ms;
		} else {
			s->state = SLOT_FREE;
			set_open(g, g->open - 1);
		}
		notes[*nnotes].why = why;
		notes[*nnotes].addr = s->addr;
		(*nnotes)++;
	}
	return next;
}

static void *
watchdog_main(void *arg)
{
	struct relay_gate *g = arg;
	struct cut_note notes[64];
	size_t n;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		int64_t now = relay_mono_ms();
		int64_t next = sweep(g, now, notes,
		    sizeof(notes) / sizeof(notes[0]), &n);

		if (n > 0) {
			pthread_mutex_unlock(&g->mu);
			for (size_t i = 0; i < n; i++)
				report(g, notes[i].why, notes[i].addr);
			pthread_mutex_lock(&g->mu);
			continue;
		}
		if (next == INT64_MAX) {
			pthread_cond_wait(&g->cv, &g->mu);
		} else {
			struct timespec ts = relay_mono_timespec(next);

			(void)pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		}
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

struct relay_gate *
relay_gate_new(const struct relay_gate_config *cfg)
{
	struct relay_gate *g;
	pthread_condattr_t ca;

	if (cfg->slots == 0 || cfg->head_timeout_ms <= 0 || cfg->peek_bytes == 0)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->cfg = *cfg;
	g->slots = calloc(cfg->slots, sizeof(*g->slots));
	g->peek = malloc(cfg->peek_bytes);
	if (g->slots == NULL || g->peek == NULL)
		goto fail_slots;
	if (pthread_mutex_init(&g->mu, NULL) != 0)
		goto fail_mutex;
	if (pthread_condattr_init(&ca) != 0)
		goto fail_cond;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&g->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		goto fail_cond;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0)
		goto fail_thread;
	return g;
fail_thread:
	pthread_cond_destroy(&g->cv);
fail_cond:
	pthread_mutex_destroy(&g->mu);
fail_mutex:
fail_slots:
	free(g->peek);
	free(g->slots);
	free(g);
	return NULL;
}

void
relay_gate_free(struct relay_gate *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->watchdog, NULL);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g->peek);
	free(g->slots);
	free(g);
}

static void
count_slots(struct relay_gate *g, uint32_t addr, struct slot **free_slot,
    size_t *from_addr)
{
	*free_slot = NULL;
	*from_addr = 0;
	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];

		if (s->state == SLOT_FREE) {
			if (*free_slot == NULL)
				*free_slot = s;
		} else if (s->addr == addr) {
			(*from_addr)++;
		}
	}
}

/*
 * Connections from addr whose first head is still awaited and not yet
 * complete in their receive queue (the slow-head shape). The queue is
 * looked at only while the count is at the limit, so the common case
 * costs no system call.
 */
static size_t
count_pending(struct relay_gate *g, uint32_t addr)
{
	size_t n = 0;

	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];

		if (s->addr == addr &&
		    (s->state == SLOT_QUEUED || s->state == SLOT_HEAD))
			n++;
	}
	if (n < g->cfg.pending_max)
		return n;
	n = 0;
	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];

		if (s->addr == addr &&
		    (s->state == SLOT_QUEUED || s->state == SLOT_HEAD) &&
		    !head_queued(g, s->fd))
			n++;
	}
	return n;
}

/*
 * Frees the slots (of addr, or all when addr is 0) whose descriptor no
 * longer names their peer: a close the gate was not told about must not
 * count against an address for ever. Returns how many were freed.
 */
static size_t
reap_stale(struct relay_gate *g, uint32_t addr)
{
	size_t n = 0;

	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];

		if (s->state == SLOT_FREE || (addr != 0 && s->addr != addr))
			continue;
		if (!fd_is_peer(s->fd, s->addr, s->port)) {
			s->state = SLOT_FREE;
			set_open(g, g->open - 1);
			n++;
		}
	}
	return n;
}

bool
relay_gate_admit(struct relay_gate *g, int fd, uint32_t addr, uint16_t port)
{
	struct slot *free_slot = NULL;
	size_t from_addr = 0;
	enum relay_gate_cut why;

	pthread_mutex_lock(&g->mu);
	count_slots(g, addr, &free_slot, &from_addr);
	if ((g->cfg.per_client_max > 0 && from_addr >= g->cfg.per_client_max) ||
	    free_slot == NULL) {
		/* Before refusing, forget connections closed behind our back. */
		if (reap_stale(g, free_slot == NULL ? 0 : addr) > 0)
			count_slots(g, addr, &free_slot, &from_addr);
	}
	if (g->cfg.per_client_max > 0 && from_addr >= g->cfg.per_client_max) {
		why = RELAY_GATE_PER_CLIENT;
		goto refuse;
	}
	if (g->cfg.pending_max > 0 &&
	    count_pending(g, addr) >= g->cfg.pending_max &&
	    (reap_stale(g, addr) == 0 ||
	    count_pending(g, addr) >= g->cfg.pending_max)) {
		why = RELAY_GATE_PENDING_HEADS;
		goto refuse;
	}
	if (free_slot == NULL) {
		why = RELAY_GATE_TABLE_FULL;
		goto refuse;
	}
	/* No deadline yet: it starts when a worker reads (relay_gate_reading). */
	free_slot->state = SLOT_QUEUED;
	free_slot->fd = fd;
	free_slot->addr = addr;
	free_slot->port = port;
	free_slot->deadline_ms = INT64_MAX;
	set_open(g, g->open + 1);
	pthread_mutex_unlock(&g->mu);
	return true;
refuse:
	pthread_mutex_unlock(&g->mu);
	if (why == RELAY_GATE_TABLE_FULL)
		write_best_effort(fd, refuse_503, sizeof(refuse_503) - 1);
	else if (why == RELAY_GATE_PER_CLIENT)
		write_best_effort(fd, refuse_429, sizeof(refuse_429) - 1);
	else
		write_best_effort(fd, refuse_429_heads,
		    sizeof(refuse_429_heads) - 1);
	report(g, why, addr);
	return false;
}

void
relay_gate_reading(struct relay_gate *g, int fd)
{
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->cfg.slots; i++) {
		struct slot *s = &g->slots[i];

		if (s->state != SLOT_QUEUED || s->fd != fd ||
		    !fd_is_peer(fd, s->addr, s->port))
			continue;
		s->state = SLOT_HEAD;
		s->deadline_ms = relay_mono_ms() + g->cfg.head_timeout_ms;
		pthread_cond_signal(&g->cv);
		break;
	}
	pthread_mutex_unlock(&g->mu);
}

bool
relay_gate_head_done(struct relay_gate *g, uint32_t addr, uint16_t port)
{
	struct slot *s;
	bool cut;

	pthread_mutex_lock(&g->mu);
	s = find(g, addr, port);
	cut = s != NULL && s->state == SLOT_CUT;
	if (s != NULL && !cut)
		s->state = SLOT_OPEN;
	pthread_mutex_unlock(&g->mu);
	return !cut;
}

int
relay_gate_closed(struct relay_gate *g, uint32_t addr, uint16_t port)
{
	struct slot *s;
	int fd = -1;

	pthread_mutex_lock(&g->mu);
	s = find(g, addr, port);
	if (s != NULL) {
		fd = s->fd;
		s->state = SLOT_FREE;
		set_open(g, g->open - 1);
	}
	pthread_mutex_unlock(&g->mu);
	return fd;
}

size_t
relay_gate_open(struct relay_gate *g)
{
	size_t n;

	pthread_mutex_lock(&g->mu);
	n = g->open;
	pthread_mutex_unlock(&g->mu);
	return n;
}

size_t
relay_gate_open_from(struct relay_gate *g, uint32_t addr)
{
	size_t n = 0;

	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < g->cfg.slots; i++) {
		if (g->slots[i].state != SLOT_FREE && g->slots[i].addr == addr)
			n++;
	}
	pthread_mutex_unlock(&g->mu);
	return n;
}
