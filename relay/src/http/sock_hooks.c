/*
 * sock_hooks.c -- accept() and poll() in front of libc's for civetweb's
 * threads (see sock_hooks.h).
 */
#include "http/sock_hooks.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/conn_gate.h"
#include "http/conn_linger.h"

/*
 * The gate of the server whose listening thread this is: the only thread
 * of the process that accepts on the relay's port.
 */
static _Thread_local struct relay_gate *listening_gate;
static _Thread_local struct relay_linger *listening_linger;
/* Set on a worker thread between a connection's start and its first poll(). */
static _Thread_local struct relay_gate *starting_gate;

void
relay_hooks_listener_thread(struct relay_gate *g, struct relay_linger *l)
{
	listening_gate = g;
	listening_linger = l;
}

void
relay_hooks_connection_starts(struct relay_gate *g)
{
	starting_gate = g;
}

/*
 * The executable's symbol comes before libc's for libcivetweb's call.
 * Every other caller of accept() in the process is passed straight
 * through.
 */
int
accept(int fd, __SOCKADDR_ARG addr, socklen_t *__restrict addrlen)
{
	struct relay_gate *g = listening_gate;
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int s = accept4(fd, addr, addrlen, 0);

	if (s < 0 || g == NULL)
		return s;
	if (getpeername(s, (struct sockaddr *)&peer, &plen) != 0 ||
	    peer.sin_family != AF_INET)
		return s;
	if (relay_gate_admit(g, s, peer.sin_addr.s_addr, peer.sin_port))
		return s;
	/* The client's request is unread: a plain close() would reset. */
	relay_linger_close(listening_linger, s);
	errno = ECONNABORTED;
	return -1;
}

int
poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct timespec ts, *tsp = NULL;

	if (starting_gate != NULL && nfds >= 1 && fds != NULL) {
		struct relay_gate *g = starting_gate;

		starting_gate = NULL;
		/*
		 * glibc declares poll()'s array write-only (for fortify
		 * checks); it is read here as the kernel reads it.
		 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
		relay_gate_reading(g, fds[0].fd);
#pragma GCC diagnostic pop
	}
	if (timeout >= 0) {
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
		tsp = &ts;
	}
	return ppoll(fds, nfds, tsp, NULL);
}
