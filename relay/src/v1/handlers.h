/*
 * The API v1 relay routes and their gate, for the route table.
 */
#ifndef RELAY_V1_HANDLERS_H
#define RELAY_V1_HANDLERS_H

#include "http/http.h"

/* handlers_v1.c: API v1 relay-blind E2EE protocol, PROTOCOL.md section 4.3 */
void relay_gate_v1_node(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_register(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_poll(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_control(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_unregister(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_next_server(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_requests(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_cancel(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_responses(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_progress(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_retrieve(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_v1_meta(struct relay_app *, struct relay_request *, struct relay_response *);

/*
 * The release metadata /api/v1/meta answers (environment, label, version,
 * ref); also rendered into the page. NULL when out of memory.
 */
struct relay_settings;
struct cJSON *relay_release_metadata(const struct relay_settings *s);

#endif /* RELAY_V1_HANDLERS_H */
