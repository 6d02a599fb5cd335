/*
 * test_relay_conn_linger.c -- graceful closes (relay/src/http/conn_linger.c) on
 * real loopback TCP connections: an answer written before the close
 * reaches a client that still sends and reads late, and each way a linger
 * ends (the client's EOF, the deadline, the drain budget, eviction) is
 * reported once and closes the socket. Every wait polls with a deadline.
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
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "http/conn_linger.h"

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
	assert_int_equal(listen(listener, 16), 0);
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

/* A connected pair: [0] the client end, [1] the server end. */
static void
pair(int fds[2])
{
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fds[0] >= 0);
	assert_int_equal(connect(fds[0], (struct sockaddr *)&listen_sa,
	    sizeof(listen_sa)), 0);
	fds[1] = accept(listener, NULL, NULL);
	assert_true(fds[1] >= 0);
}

struct ends {
	_Atomic int n[RELAY_LINGER_END_COUNT];
};

static void
on_end(void *arg, enum relay_linger_end why)
{
	struct ends *e = arg;

	atomic_fetch_add(&e->n[why], 1);
}

static struct relay_linger *
linger(struct ends *e, size_t capacity, int64_t ms, int64_t max_drain,
    _Atomic long *gauge)
{
	struct relay_linger_config cfg;
	struct relay_linger *l;

	memset(&cfg, 0, sizeof(cfg));
	cfg.capacity = capacity;
	cfg.linger_ms = ms;
	cfg.max_drain_bytes = max_drain;
	cfg.on_end = on_end;
	cfg.arg = e;
	cfg.gauge = gauge;
	l = relay_linger_new(&cfg);
	assert_non_null(l);
	return l;
}

/* Waits (10 s at most) until n ends of kind `why` were reported. */
static void
wait_end(struct ends *e, enum relay_linger_end why, int n)
{
	int64_t deadline = relay_mono_ms() + 10000;

	while (atomic_load(&e->n[why]) < n) {
		assert_true(relay_mono_ms() < deadline);
		(void)poll(NULL, 0, 1);
	}
	assert_int_equal(atomic_load(&e->n[why]), n);
}

/*
 * Reads until EOF (10 s at most); returns the byte count, or -1 when the
 * connection was reset.
 */
static long
read_all(int fd)
{
	int64_t deadline = relay_mono_ms() + 10000;
	char buf[16384];
	long total = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_true(relay_mono_ms() < deadline);
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0)
			return errno == ECONNRESET ? -1 : -2;
		if (n == 0)
			return total;
		total += n;
	}
}

static void
test_answer_survives_unread_input(void **state)
{
	static char answer[65536];
	struct ends e;
	_Atomic long gauge = 0;
	struct relay_linger *l;
	int fds[2];
	char junk[4096];

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(answer, 'a', sizeof(answer));
	memset(junk, 'j', sizeof(junk));
	l = linger(&e, 4, 10000, 1 << 20, &gauge);
	pair(fds);
	/* the client sends what the server never reads (a pipelined request) */
	assert_int_equal(send(fds[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	assert_int_equal(send(fds[1], answer, sizeof(answer), 0),
	    (ssize_t)sizeof(answer));
	relay_linger_close(l, fds[1]);
	/* and more after the close; then it reads: all of it, then EOF */
	assert_int_equal(send(fds[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	assert_int_equal(read_all(fds[0]), (long)sizeof(answer));
	close(fds[0]);
	wait_end(&e, RELAY_LINGER_EOF, 1);
	assert_int_equal(atomic_load(&gauge), 0);
	assert_int_equal(relay_linger_count(l), 0);
	relay_linger_free(l);
}

static void
test_deadline_drain_budget_and_eviction(void **state)
{
	struct ends e;
	struct relay_linger *l;
	int a[2], b[2], c[2];
	char junk[8192];

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(junk, 'j', sizeof(junk));
	/* a client that stays: closed at the deadline, without a reset */
	l = linger(&e, 4, 50, 4096, NULL);
	pair(a);
	relay_linger_close(l, a[1]);
	wait_end(&e, RELAY_LINGER_TIMEOUT, 1);
	assert_int_equal(read_all(a[0]), 0);
	close(a[0]);
	/* a client that keeps sending past the budget */
	pair(b);
	relay_linger_close(l, b[1]);
	assert_int_equal(send(b[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	wait_end(&e, RELAY_LINGER_BYTES, 1);
	close(b[0]);
	relay_linger_free(l);

	/* a full table closes the socket lingering longest */
	memset(&e, 0, sizeof(e));
	l = linger(&e, 1, 60000, 4096, NULL);
	pair(a);
	pair(c);
	relay_linger_close(l, a[1]);
	relay_linger_close(l, c[1]);
	wait_end(&e, RELAY_LINGER_EVICTED, 1);
	assert_int_equal(read_all(a[0]), 0);
	assert_int_equal(relay_linger_count(l), 1);
	close(a[0]);
	close(c[0]);
	wait_end(&e, RELAY_LINGER_EOF, 1);
	relay_linger_free(l);
}

static void
test_no_linger_closes_at_once(void **state)
{
	struct ends e;
	struct relay_linger *l;
	int a[2];

	(void)state;
	memset(&e, 0, sizeof(e));
	l = linger(&e, 4, 0, 4096, NULL);
	pair(a);
	assert_int_equal(send(a[1], "ok", 2, 0), 2);
	relay_linger_close(l, a[1]);
	assert_int_equal(atomic_load(&e.n[RELAY_LINGER_TIMEOUT]), 1);
	assert_int_equal(read_all(a[0]), 2);
	close(a[0]);
	relay_linger_free(l);
	assert_string_equal(relay_linger_end_name(RELAY_LINGER_BYTES),
	    "drain_bytes");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_survives_unread_input),
		cmocka_unit_test(test_deadline_drain_budget_and_eviction),
		cmocka_unit_test(test_no_linger_closes_at_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
