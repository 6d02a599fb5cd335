/*
 * The ops routes (/livez, /healthz, /metrics), for the route table.
 */
#ifndef RELAY_HANDLERS_OPS_H
#define RELAY_HANDLERS_OPS_H

#include "http/http.h"

/* handlers_ops.c: probes and metrics */
void relay_handle_livez(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_healthz(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_metrics(struct relay_app *, struct relay_request *, struct relay_response *);

#endif /* RELAY_HANDLERS_OPS_H */
