/*
 * sock_hooks: the two libc calls the relay's executable defines in front
 * of libc's, so that civetweb 1.15 (which offers no hook there) tells the
 * connection gate when a connection arrives and when a worker thread
 * starts reading it.
 *
 *  - accept(): on civetweb's listening thread only, every accepted socket
 *    is shown to relay_gate_admit(); a refused one is answered by the gate
 *    and closed gracefully (relay_linger_close()), and civetweb sees a
 *    failed accept (ECONNABORTED), which it ignores.
 *  - poll(): civetweb's worker reads a new connection's first head after
 *    a poll() on its socket; on a worker thread told by
 *    relay_hooks_connection_starts() that a connection begins, the next
 *    poll() names that socket to relay_gate_reading().
 *
 * Both pass straight through to the kernel (accept4, ppoll: the same
 * calls with the same semantics) on every other thread and in every other
 * case, so the rest of the process (curl, hiredis, Python) is unaffected.
 */
#ifndef RELAY_SOCK_HOOKS_H
#define RELAY_SOCK_HOOKS_H

struct relay_gate;
struct relay_linger;

/* The calling thread is the listening thread of the server using g and l. */
void relay_hooks_listener_thread(struct relay_gate *g, struct relay_linger *l);

/*
 * On a worker thread: a new connection is about to be read; the next
 * poll() on this thread is for its socket. g NULL: nothing to tell.
 */
void relay_hooks_connection_starts(struct relay_gate *g);

#endif /* RELAY_SOCK_HOOKS_H */
