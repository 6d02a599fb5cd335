/*
 * relay_routes: the route table, which handler answers which path. The
 * HTTP adapter matches requests against it (http/route.h).
 */
#ifndef RELAY_ROUTES_H
#define RELAY_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "http/route.h"

/*
 * The table the relay serves: with local_models, the model-list rows
 * (RELAY_ROUTE_MODELS) answer from live nodes (RELAY_MODELS_SOURCE=nodes);
 * without, those paths fall through to the forwarding route as any other
 * (upstream). Static storage, never NULL.
 */
const struct relay_route_table *relay_route_table(bool local_models);

/* The route table's rows, for tests. */
extern const struct relay_route relay_routes[];
extern const size_t relay_route_count;

/* The forwarding route, matched after the table (see routes.c). */
extern const struct relay_route relay_forward_route;

#endif /* RELAY_ROUTES_H */
