/*
 * relay_routes: the route table and its matcher.
 */
#ifndef RELAY_ROUTES_H
#define RELAY_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

enum relay_route_result {
	RELAY_ROUTE_FOUND,
	RELAY_ROUTE_NOT_FOUND,
	RELAY_ROUTE_BAD_METHOD,	/* path known, method not: *allow is set */
};

/*
 * Finds the route for method+path. On BAD_METHOD writes the Allow header
 * value ("GET, HEAD, OPTIONS") into allow. *route is set on FOUND and on
 * BAD_METHOD (the path's route, for its error shape).
 */
enum relay_route_result relay_route_match(const char *method,
    const char *path, const struct relay_route **route, char *allow,
    size_t allowlen);

/* True when `method` is listed in the route's methods (HEAD counts as GET). */
int relay_route_allows(const struct relay_route *route, const char *method);

/* Writes the route's Allow header value. */
void relay_route_allow_header(const struct relay_route *route, char *allow,
    size_t allowlen);

/*
 * Whether the relay answers the model-list rows (RELAY_ROUTE_MODELS) of
 * the table itself (true, the default: RELAY_MODELS_SOURCE=nodes) or lets
 * those paths fall through to the forwarding route exactly as before
 * (false: upstream). Set once at start-up, before the server threads
 * exist; read without locks afterwards.
 */
void relay_routes_set_local_models(bool local);

/* The route table, for tests. */
extern const struct relay_route relay_routes[];
extern const size_t relay_route_count;

/* The forwarding route, matched after the table (see routes.c). */
extern const struct relay_route relay_forward_route;

#endif /* RELAY_ROUTES_H */
