/*
 * test_relay_conn_gate.c -- the connection gate (relay/src/http/conn_gate.c)
 * on real loopback TCP connections: the per-address limit, the table
 * bound, the head deadline cut by the watchdog, and stale
 * entries forgotten. Deadlines are tens of milliseconds; every wait polls
 * with a generous deadline, nothing sleeps a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "http/conn_gate.h"

struct pair {
	int client;
	int server;
	uint32_t addr;		/* the client's address, network order */
	uint16_t port;		/* the client's port, network order */
};

static int listener = -1;
static struct sockaddr_in listen_sa;

static int
setup(void **state)
{
	socklen_t len = sizeof(listen_sa);

	(void)state;
	listener = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(listener >= 0);
	memset(&listen_sa, 0, sizeof(listen_sa));
	listen_sa.sin_family = AF_INET;
	listen_sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(listener, (struct sockaddr *)&listen_sa,
	    sizeof(listen_sa)), 0);
	assert_int_equal(listen(listener, 64), 0);
	assert_int_equal(getsockname(listener, (struct sockaddr *)&listen_sa,
	    &len), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	close(listener);
	return 0;
}

/* A connection from 127.0.0.<host> to the listener, both ends. */
static struct pair
connect_from(int host)
{
	struct pair p;
	struct sockaddr_in src, peer;
	socklen_t len = sizeof(peer);

	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)host);
	p.client = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p.client >= 0);
	assert_int_equal(bind(p.client, (struct sockaddr *)&src, sizeof(src)), 0);
	assert_int_equal(connect(p.client, (struct sockaddr *)&listen_sa,
	    sizeof(listen_sa)), 0);
	p.server = accept(listener, (struct sockaddr *)&peer, &len);
	assert_true(p.server >= 0);
	p.addr = peer.sin_addr.s_addr;
	p.port = peer.sin_port;
	return p;
}

static void
close_pair(struct pair *p)
{
	if (p->client >= 0)
		close(p->client);
	if (p->server >= 0)
		close(p->server);
	p->client = p->server = -1;
}

/* Everything the client end receives until EOF (10 s at most). */
static size_t
read_to_eof(int fd, char *buf, size_t cap)
{
	int64_t deadline = relay_mono_ms() + 10000;
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_true(relay_mono_ms() < deadline);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

struct cuts {
	_Atomic int n[4];
	_Atomic uint32_t last_addr;
};

static void
on_cut(void *arg, enum relay_gate_cut why, uint32_t addr)
{
	struct cuts *c = arg;

	atomic_fetch_add(&c->n[why], 1);
	atomic_store(&c->last_addr, addr);
}

static struct relay_gate *
gate(struct cuts *c, size_t slots, size_t per_client, int64_t head_ms,
    _Atomic long *gauge)
{
	struct relay_gate_config cfg;
	struct relay_gate *g;

	memset(&cfg, 0, sizeof(cfg));
	cfg.slots = slots;
	cfg.per_client_max = per_client;
	cfg.head_timeout_ms = head_ms;
	cfg.peek_bytes = 16384;
	cfg.on_cut = on_cut;
	cfg.arg = c;
	cfg.open_gauge = gauge;
	g = relay_gate_new(&cfg);
	assert_non_null(g);
	return g;
}

static void
test_per_client_limit_refuses_one_more(void **state)
{
	struct cuts c;
	_Atomic long gauge = 0;
	struct relay_gate *g;
	struct pair a[3], other;
	char buf[1024];

	(void)state;
	memset(&c, 0, sizeof(c));
	g = gate(&c, 16, 2, 60000, &gauge);
	for (int i = 0; i < 3; i++)
		a[i] = connect_from(2);
	other = connect_from(3);
	assert_true(relay_gate_admit(g, a[0].server, a[0].addr, a[0].port));
	assert_true(relay_gate_admit(g, a[1].server, a[1].addr, a[1].port));
	assert_false(relay_gate_admit(g, a[2].server, a[2].addr, a[2].port));
	assert_int_equal(atomic_load(&c.n[RELAY_GATE_PER_CLIENT]), 1);
	assert_int_equal(atomic_load(&c.last_addr), a[2].addr);
	/* the caller closes a refused socket; the client read a JSON 429 */
	close(a[2].server);
	a[2].server = -1;
	read_to_eof(a[2].client, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 429 "));
	assert_non_null(strstr(buf, "Retry-After: 1\r\n"));
	assert_non_null(strstr(buf, "\"code\":429"));
	/* another address is not affected */
	assert_true(relay_gate_admit(g, other.server, other.addr, other.port));
	assert_int_equal(relay_gate_open(g), 3);
	assert_int_equal(relay_gate_open_from(g, a[0].addr), 2);
	assert_int_equal(atomic_load(&gauge), 3);
	/* a closed connection frees its place */
	relay_gate_closed(g, a[0].addr, a[0].port);
	assert_int_equal(relay_gate_open_from(g, a[0].addr), 1);
	assert_int_equal(atomic_load(&gauge), 2);
	relay_gate_free(g);
	for (int i = 0; i < 3; i++)
		close_pair(&a[i]);
	close_pair(&other);
}

static void
test_full_table_refuses(void **state)
{
	struct cuts c;
	struct relay_gate *g;
	struct pair a[3];

	(void)state;
	memset(&c, 0, sizeof(c));
	g = gate(&c, 2, 0, 60000, NULL);
	for (int i = 0; i < 3; i++)
		a[i] = connect_from(4 + i);
	assert_true(relay_gate_admit(g, a[0].server, a[0].addr, a[0].port));
	assert_true(relay_gate_admit(g, a[1].server, a[1].addr, a[1].port));
	assert_false(relay_gate_admit(g, a[2].server, a[2].addr, a[2].port));
	assert_int_equal(atomic_load(&c.n[RELAY_GATE_TABLE_FULL]), 1);
	relay_gate_free(g);
	for (int i = 0; i < 3; i++)
		close_pair(&a[i]);
}

/* Waits (10 s at most) until n cuts of kind `why` were reported. */
static void
wait_count(struct cuts *c, enum relay_gate_cut why, int n)
{
	int64_t deadline = relay_mono_ms() + 10000;

	while (atomic_load(&c->n[why]) < n) {
		assert_true(relay_mono_ms() < deadline);
		(void)poll(NULL, 0, 1);
	}
	assert_int_equal(atomic_load(&c->n[why]), n);
}

static void
test_slow_head_is_cut_with_408(void **state)
{
	struct cuts c;
	struct relay_gate *g;
	struct pair slow, served;
	char buf[1024];
	char b;

	(void)state;
	memset(&c, 0, sizeof(c));
	g = gate(&c, 8, 0, 50, NULL);
	served = connect_from(8);
	slow = connect_from(9);
	assert_true(relay_gate_admit(g, served.server, served.addr, served.port));
	assert_true(relay_gate_head_done(g, served.addr, served.port));
	assert_true(relay_gate_admit(g, slow.server, slow.addr, slow.port));
	/* the deadline runs from the first read by a worker */
	relay_gate_reading(g, slow.server);
	/* half a head, then silence: the watchdog answers 408 and cuts */
	assert_int_equal(send(slow.client, "GET / HTTP/1.1\r\n", 16, 0), 16);
	read_to_eof(slow.client, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 408 "));
	assert_non_null(strstr(buf, "\"code\":408"));
	/*
	 * The watchdog reports a cut after it released its lock, so the
	 * count may follow the EOF the client already saw: wait for it.
	 */
	wait_count(&c, RELAY_GATE_HEAD_TIMEOUT, 1);
	/*
	 * The server side reads what had arrived, then EOF without
	 * waiting: a worker blocked in that read would be free again.
	 */
	{
		char rest[64];
		ssize_t n;

		do {
			n = recv(slow.server, rest, sizeof(rest), MSG_DONTWAIT);
		} while (n > 0);
		assert_int_equal(n, 0);
	}
	/* a head that arrives after the cut is not served */
	assert_false(relay_gate_head_done(g, slow.addr, slow.port));
	/* the connection whose head arrived was left alone all along */
	assert_int_equal(recv(served.client, &b, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	relay_gate_closed(g, slow.addr, slow.port);
	assert_int_equal(relay_gate_open(g), 1);
	relay_gate_free(g);
	close_pair(&slow);
	close_pair(&served);
}

static void
test_connection_closed_unseen_is_forgotten(void **state)
{
	struct cuts c;
	struct relay_gate *g;
	struct pair a, b;

	(void)state;
	memset(&c, 0, sizeof(c));
	g = gate(&c, 8, 1, 60000, NULL);
	a = connect_from(11);
	assert_true(relay_gate_admit(g, a.server, a.addr, a.port));
	/* closed without relay_gate_closed(): the fd no longer names a */
	close_pair(&a);
	b = connect_from(11);
	assert_true(relay_gate_admit(g, b.server, b.addr, b.port));
	assert_int_equal(relay_gate_open_from(g, b.addr), 1);
	assert_int_equal(atomic_load(&c.n[RELAY_GATE_PER_CLIENT]), 0);
	relay_gate_free(g);
	close_pair(&b);
}

/* Unfinished heads are capped per address; finished ones do not count. */
static void
test_pending_heads_limit(void **state)
{
	struct cuts c;
	struct relay_gate_config cfg;
	struct relay_gate *g;
	struct pair a[4];
	char buf[1024];

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&cfg, 0, sizeof(cfg));
	cfg.slots = 16;
	cfg.pending_max = 2;
	cfg.head_timeout_ms = 60000;
	cfg.peek_bytes = 16384;
	cfg.on_cut = on_cut;
	cfg.arg = &c;
	g = relay_gate_new(&cfg);
	assert_non_null(g);
	for (int i = 0; i < 4; i++)
		a[i] = connect_from(12);
	assert_true(relay_gate_admit(g, a[0].server, a[0].addr, a[0].port));
	assert_true(relay_gate_admit(g, a[1].server, a[1].addr, a[1].port));
	assert_false(relay_gate_admit(g, a[2].server, a[2].addr, a[2].port));
	assert_int_equal(atomic_load(&c.n[RELAY_GATE_PENDING_HEADS]), 1);
	close(a[2].server);
	a[2].server = -1;
	read_to_eof(a[2].client, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 429 "));
	assert_non_null(strstr(buf, "\"code\":429"));
	/* a whole head waiting in the queue is not a slow head */
	{
		static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

		assert_int_equal(send(a[0].client, head, sizeof(head) - 1, 0),
		    (ssize_t)sizeof(head) - 1);
	}
	{
		int64_t deadline = relay_mono_ms() + 10000;
		bool admitted = false;

		/* the bytes reach the server end at once on loopback */
		while (!(admitted = relay_gate_admit(g, a[3].server, a[3].addr,
		    a[3].port))) {
			assert_true(relay_mono_ms() < deadline);
			(void)poll(NULL, 0, 1);
		}
	}
	/* a head read by civetweb: the connection is established */
	assert_true(relay_gate_head_done(g, a[0].addr, a[0].port));
	assert_int_equal(relay_gate_open_from(g, a[0].addr), 3);
	relay_gate_free(g);
	for (int i = 0; i < 4; i++)
		close_pair(&a[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_client_limit_refuses_one_more),
		cmocka_unit_test(test_full_table_refuses),
		cmocka_unit_test(test_slow_head_is_cut_with_408),
		cmocka_unit_test(test_connection_closed_unseen_is_forgotten),
		cmocka_unit_test(test_pending_heads_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
