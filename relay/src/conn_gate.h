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
 *  - accept: the adapter sees every accepted socket first (http_server.c
 *    wraps accept() for civetweb's listening thread). relay_gate_admit()
 *    counts the connection against its peer address and refuses it when
 *    that address already holds per_client_max connections;
 *  - a watchdog thread: a connection whose first request head has not
 *    arrived head_timeout_ms after accept is answered 408 and shut down
 *    (shutdown(2) both ways: civetweb's blocked read returns at once and
 *    its worker is free again).
 *
 * States of one connection: HEAD (accepted, first head awaited; deadline
 * armed) -> OPEN (a head arrived: no deadline; keep-alive heads after the
 * first are bounded by civetweb's keep_alive_timeout_ms) -> gone
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
	RELAY_GATE_TABLE_FULL,		/* refused: no free slot */
	RELAY_GATE_HEAD_TIMEOUT,	/* cut: first head not complete in time */
};

struct relay_gate_config {
	size_t slots;			/* connections tracked at once */
	size_t per_client_max;		/* 0 = no per-address limit */
	int64_t head_timeout_ms;	/* > 0 */
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
 * refused (the caller closes fd; on_cut has been told why).
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
 * The connection is being closed: forget it (before its fd is closed).
 * Unknown connections (refused, never tracked) are ignored.
 */
void relay_gate_closed(struct relay_gate *g, uint32_t addr, uint16_t port);

/* Connections tracked now, and those from addr. */
size_t relay_gate_open(struct relay_gate *g);
size_t relay_gate_open_from(struct relay_gate *g, uint32_t addr);

/* Short label for the metric ("per_client_limit", "head_timeout", ...). */
const char *relay_gate_cut_reason(enum relay_gate_cut why);

#endif /* RELAY_CONN_GATE_H */
