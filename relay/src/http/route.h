/*
 * relay_route_match: which row of a route table answers a request. The
 * table itself (paths, handlers) is the top level's (routes.c); the HTTP
 * adapter gets it from relay_http_start() and only matches.
 */
#ifndef RELAY_HTTP_ROUTE_H
#define RELAY_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

struct relay_route_table {
	const struct relay_route *routes;
	size_t n;
	unsigned skip_flags;		/* rows carrying any of these are skipped */
	/* Matched after the rows when fallback_matches(path); may be NULL. */
	const struct relay_route *fallback;
	bool (*fallback_matches)(const char *path);
};

enum relay_route_result {
	RELAY_ROUTE_FOUND,
	RELAY_ROUTE_NOT_FOUND,
	RELAY_ROUTE_BAD_METHOD,	/* path known, method not: *allow is set */
};

/*
 * Finds the route of table t for method+path. On BAD_METHOD writes the
 * Allow header value ("GET, HEAD, OPTIONS") into allow. *route is set on
 * FOUND and on BAD_METHOD (the path's route, for its error shape), NULL
 * on NOT_FOUND.
 */
enum relay_route_result relay_route_match(const struct relay_route_table *t,
    const char *method, const char *path, const struct relay_route **route,
    char *allow, size_t allowlen);

/* 1 when `method` is listed in the route's methods (HEAD counts as GET). */
int relay_route_allows(const struct relay_route *route, const char *method);

/* Writes the route's Allow header value (OPTIONS always, HEAD with GET). */
void relay_route_allow_header(const struct relay_route *route, char *allow,
    size_t allowlen);

#endif /* RELAY_HTTP_ROUTE_H */
