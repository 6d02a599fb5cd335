/*
 * The legacy relay routes and their gates, for the route table. Each is
 * thin: body -> tp_proto struct -> broker call -> reply.
 */
#ifndef RELAY_LEGACY_HANDLERS_H
#define RELAY_LEGACY_HANDLERS_H

#include "http/http.h"

/* handlers_legacy.c: PROTOCOL.md section 1.4 */
void relay_handle_next_server(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_faucet(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_sink(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_source(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_retrieve(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_stream_source(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_stream_retrieve(struct relay_app *, struct relay_request *, struct relay_response *);
/* Gates of the legacy routes, run before the body is read. */
void relay_gate_legacy(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_gate_legacy_node(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_gate_node(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_gate_faucet(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_unregister_legacy(struct relay_app *, struct relay_request *, struct relay_response *);

#endif /* RELAY_LEGACY_HANDLERS_H */
