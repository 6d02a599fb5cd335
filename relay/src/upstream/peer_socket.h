/*
 * relay_peer_socket: finds the socket of the client connection a worker
 * thread is serving, so a long upstream wait can notice the client
 * leaving. civetweb does not expose the descriptor; a TCP connection is
 * identified by its local port and peer address, which it does expose.
 */
#ifndef RELAY_PEER_SOCKET_H
#define RELAY_PEER_SOCKET_H

#include <stdbool.h>

/*
 * Returns the descriptor of the TCP socket whose local port is local_port
 * and whose peer is peer_addr:peer_port (IPv4 dotted quad), or -1. The
 * caller does not own it (never closes it). A per-thread cache makes the
 * lookup a two-syscall check on kept-alive connections; otherwise it scans
 * /proc/self/fd.
 */
int relay_peer_socket_find(int local_port, const char *peer_addr,
    int peer_port);

enum relay_peer_state {
	RELAY_PEER_QUIET,	/* nothing to read: still there */
	RELAY_PEER_DATA,	/* bytes waiting (a pipelined request) */
	RELAY_PEER_GONE,	/* end of stream or reset */
};

/* Looks at the socket without consuming anything (MSG_PEEK, non-blocking). */
enum relay_peer_state relay_peer_socket_state(int fd);

#endif /* RELAY_PEER_SOCKET_H */
