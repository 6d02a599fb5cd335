/*
 * Route handlers. Each is thin: body -> tp_proto struct -> broker call ->
 * reply. The route table in routes.c maps paths to these.
 */
#ifndef RELAY_HANDLERS_H
#define RELAY_HANDLERS_H

#include "http.h"

/* handlers_ops.c: probes and metrics */
void relay_handle_livez(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_healthz(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_metrics(struct relay_app *, struct relay_request *, struct relay_response *);

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

/* handlers_web.c: the browser page and the routes it reads (docs/web.md) */
void relay_handle_web_index(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_web_static(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_diagnostics(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_models(struct relay_app *, struct relay_request *, struct relay_response *);

/* handlers_forward.c: the OpenAI-style API, forwarded to the GPU host */
void relay_handle_forward(struct relay_app *, struct relay_request *, struct relay_response *);

#endif /* RELAY_HANDLERS_H */
