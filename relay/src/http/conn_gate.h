/*
 * relay_gate: per-connection bookkeeping in front of civetweb's worker
 * pool, so that slow or numerous clients cannot hold every worker.
 *
 * civetweb 1.15 gives each accepted connection a worker thread and reads
 * the request head on it before any callback sees the request; it offers
 * no hook that knows the peer address before that read (init_connection
 * gets no request info and must return 0), and its one read timeout
 * (request_timeout_ms) covers the head, each body read and each send
 * alike. The gate therefore works at the two points the relay does own:
 *
 *  - accept: the adapter sees every accepted socket first (sock_hooks.c
 *    wraps accept() for civetweb's listening thread). relay_gate_admit()
 *    counts the connection against its peer address and refuses it (429)
 *    when that address already holds per_client_max connections, or
 *    pending_max connections whose first request head is not complete
 *    (the slow-head shape; a head already complete in the socket's
 *    receive queue does not count, so a burst of clients that send whole
 *    requests is never refused by it);
 *  - the first read: a worker thread starting to read the connection
 *    (relay_gate_reading(), from the adapter's poll() hook) arms the head
 *    deadline, so time spent waiting in civetweb's queue for a busy pool
 *    is not counted against the client;
 *  - a watchdog thread: a connection whose first request head has not
 *    arrived head_timeout_ms after a worker started reading it is answered
 *    408 and shut down (shutdown(2) both ways: civetweb's blocked read
 *    returns at once and its worker is free again), unless the whole head
 *    is already in its receive queue (then it is looked at again later).
 *
 * States of one connection: QUEUED (accepted, no worker yet; no deadline)
 * -> HEAD (a worker reads; deadline armed) -> OPEN (a head arrived: no
 * deadline; keep-alive heads after the first are bounded by civetweb's
 * keep_alive_timeout_ms) -> gone
 * (relay_gate_closed(), called by
 * civetweb's connection_close callback before it closes the socket, so the
 * watchdog never touches a descriptor number that was reused). A
 * descriptor whose peer is no longer the recorded one is never shut down.
 *
 * Bounds: the table holds `slots` connections (civetweb holds at most
 * num_threads + connection_queue accepted sockets, the adapter sizes it
 * above that); when it is full a new connection is refused. All functions
 * are thread safe; the table is one mutex, searched linearly (a few
 * hundred slots, a few microseconds per connection).
 */
#ifndef RELAY_CONN_GATE_H
#define RELAY_CONN_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_gate;

enum relay_gate_cut {
	RELAY_GATE_PER_CLIENT,		/* refused: address over its limit */
	RELAY_GATE_PENDING_HEADS,	/* refused: too many unfinished heads */
	RELAY_GATE_TABLE_FULL,		/* refused: no free slot */
	RELAY_GATE_HEAD_TIMEOUT,	/* cut: first head not complete in time */
};

struct relay_gate_config {
	size_t slots;			/* connections tracked at once */
	size_t per_client_max;		/* 0 = no per-address limit */
	size_t pending_max;		/* unfinished first heads per address, 0 = no limit */
	int64_t head_timeout_ms;	/* > 0 */
	size_t peek_bytes;		/* > 0: how far a queued head is looked for */
	/*
	 * Told about every refusal and cut, from the accepting thread or
	 * the watchdog (never with the gate's lock held). May be NULL.
	 */
	void (*on_cut)(void *arg, enum relay_gate_cut why, uint32_t addr);
	void *arg;
	_Atomic long *open_gauge;	/* kept equal to the tracked count; may be NULL */
};

/*
 * Creates the gate and starts its watchdog thread. Returns NULL when out
 * of memory or when the thread cannot start.
 */
struct relay_gate *relay_gate_new(const struct relay_gate_config *cfg);

/* Stops the watchdog and frees the gate. NULL is accepted. */
void relay_gate_free(struct relay_gate *g);

/*
 * A connection was accepted on descriptor fd from addr:port (network byte
 * order). Returns true when it is admitted and tracked; false when it is
 * refused: the JSON refusal has been written, the caller closes fd
 * (gracefully: the client's request is still unread) and on_cut has been
 * told why.
 */
bool relay_gate_admit(struct relay_gate *g, int fd, uint32_t addr,
    uint16_t port);

/*
 * The connection's request head arrived (or civetweb refused it): no
 * deadline while it is served. Returns false when the watchdog already cut
 * the connection (nothing more should be written to it).
 */
bool relay_gate_head_done(struct relay_gate *g, uint32_t addr, uint16_t port);

/*
 * A worker thread starts reading the connection on fd (its first head):
 * the head deadline starts now. Unknown descriptors are ignored.
 */
void relay_gate_reading(struct relay_gate *g, int fd);

/*
 * The connection is being closed: forget it (before its fd is closed).
 * Returns its descriptor (still open, the caller does not own it), or -1
 * for unknown connections (refused, never tracked).
 */
int relay_gate_closed(struct relay_gate *g, uint32_t addr, uint16_t port);

/* Connections tracked now, and those from addr. */
size_t relay_gate_open(struct relay_gate *g);
size_t relay_gate_open_from(struct relay_gate *g, uint32_t addr);

/* Short label for the metric ("per_client_limit", "head_timeout", ...). */
const char *relay_gate_cut_reason(enum relay_gate_cut why);

#endif /* RELAY_CONN_GATE_H */
