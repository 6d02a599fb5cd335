/*
 * relay_http_server: the civetweb adapter. The only file that includes
 * civetweb.h is http_server.c.
 */
#ifndef RELAY_HTTP_SERVER_H
#define RELAY_HTTP_SERVER_H

#include <stddef.h>

struct relay_app;
struct relay_http_server;

/*
 * Stack of each civetweb worker thread, in bytes. civetweb 1.15 has no
 * run-time option for it: Debian's libcivetweb1 is built with
 * USE_STACK_SIZE=102400, and every request (parsing its JSON body too)
 * runs on such a thread. The JSON depth limit (TP_JSON_MAX_DEPTH) is
 * tested against this size (tests/unit/test_tp_json.c, tests/fuzz), and
 * the relay measures its workers' real stacks at start-up: a smaller one
 * is logged as an error and shows in tokenplace_relay_worker_stack_bytes.
 */
#define RELAY_WORKER_STACK_BYTES 102400

struct relay_route_table;

/*
 * Starts listening on the app's host:port with its thread pool, answering
 * requests by `routes` (static storage: it must outlive the server).
 * Returns the server, or NULL with a reason in err (e.g. port in use).
 */
struct relay_http_server *relay_http_start(struct relay_app *app,
    const struct relay_route_table *routes, char *err, size_t errlen);

/* The port actually bound (useful when the setting was 0). */
int relay_http_port(const struct relay_http_server *srv);

/*
 * Stops accepting, waits for every worker thread to finish its request,
 * and frees the server. NULL is accepted.
 */
void relay_http_stop(struct relay_http_server *srv);

#endif /* RELAY_HTTP_SERVER_H */
