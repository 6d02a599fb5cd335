/*
 * relay_linger: graceful close of client connections, off the worker
 * threads.
 *
 * Closing a TCP socket while input the relay never read is still queued
 * (or arrives later) makes the kernel reset the connection and throw away
 * whatever of the answer it had not delivered yet; a client that reads
 * slowly, or that sent a body or a pipelined request the relay did not
 * read, then loses the end of its answer. So a connection is not simply
 * closed: relay_linger_close() shuts down its write side at once (the
 * client gets every byte already written, then EOF) and hands the socket
 * to one thread that reads and drops whatever the client still sends
 * until the client closes too, until `linger_ms` have passed or until
 * `max_drain_bytes` were dropped; only then is it closed. Once nothing
 * unread is left a close no longer resets: bytes still in flight are
 * delivered by the kernel.
 *
 * The worker thread that served the connection is free at once: a slow
 * reader costs one descriptor and one table entry here, never a worker.
 * Bounds: at most `capacity` sockets linger; when a new one arrives and
 * the table is full, the one lingering longest is closed early
 * (end "evicted"). All functions are thread safe.
 */
#ifndef RELAY_CONN_LINGER_H
#define RELAY_CONN_LINGER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct relay_linger;

enum relay_linger_end {
	RELAY_LINGER_EOF,	/* the client closed: the normal end */
	RELAY_LINGER_TIMEOUT,	/* linger_ms passed with the client still there */
	RELAY_LINGER_BYTES,	/* the client sent more than max_drain_bytes */
	RELAY_LINGER_RESET,	/* the client reset the connection */
	RELAY_LINGER_EVICTED,	/* closed early: the table was full */
	RELAY_LINGER_END_COUNT,
};

struct relay_linger_config {
	size_t capacity;		/* sockets lingering at once, > 0 */
	int64_t linger_ms;		/* >= 0; 0: drain what is queued, close */
	int64_t max_drain_bytes;	/* >= 0 */
	/* Told about every socket closed (from the linger thread). May be NULL. */
	void (*on_end)(void *arg, enum relay_linger_end why);
	void *arg;
	_Atomic long *gauge;		/* kept equal to the lingering count; may be NULL */
};

/*
 * Creates the table and starts its thread. Returns NULL when out of
 * memory, when capacity is 0 or when the thread cannot start.
 */
struct relay_linger *relay_linger_new(const struct relay_linger_config *cfg);

/*
 * Stops the thread and closes every socket still lingering (the kernel
 * still delivers what was written). NULL is accepted.
 */
void relay_linger_free(struct relay_linger *l);

/*
 * Takes ownership of the connected socket fd: shuts down its write side
 * now and closes it gracefully later, as described above. fd must not be
 * used by the caller afterwards. With l NULL the socket is shut down,
 * what is already queued is drained and it is closed at once.
 */
void relay_linger_close(struct relay_linger *l, int fd);

/* Sockets lingering now. */
size_t relay_linger_count(struct relay_linger *l);

/* Short label for the metric ("eof", "timeout", ...). */
const char *relay_linger_end_name(enum relay_linger_end why);

#endif /* RELAY_CONN_LINGER_H */
