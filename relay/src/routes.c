/*
 * routes.c -- which handler answers which path.
 *
 * Endpoint names are the Python relay's Flask endpoint names, so
 * tokenplace_relay_requests_total keeps the label values dashboards use.
 */
#include "routes.h"

#include <stdio.h>
#include <string.h>

#include "handlers_ops.h"
#include "legacy/handlers.h"
#include "tokenplace/proto.h"
#include "tokenplace/proto_v1.h"
#include "upstream/handlers.h"
#include "upstream/upstream_rules.h"
#include "v1/handlers.h"
#include "web/handlers.h"

#define JSONB	RELAY_ROUTE_JSON_BODY
#define PROBE	(RELAY_ROUTE_NO_LOG | RELAY_ROUTE_ALWAYS | RELAY_ROUTE_DRAIN_OK)

const struct relay_route relay_routes[] = {
	{ "/livez", "GET", "livez", relay_handle_livez, PROBE, RELAY_ERR_OBJECT, 0, NULL, NULL },
	{ "/healthz", "GET", "healthz", relay_handle_healthz, PROBE, RELAY_ERR_OBJECT, 0, NULL, NULL },
	{ "/metrics", "GET", "prometheus_metrics", relay_handle_metrics,
	  RELAY_ROUTE_NO_LOG | RELAY_ROUTE_ALWAYS | RELAY_ROUTE_DRAIN_OK,
	  RELAY_ERR_OBJECT, 0, NULL, NULL },

	/* legacy relay protocol (PROTOCOL.md section 1.4) */
	{ "/next_server", "GET", "next_server", relay_handle_next_server, 0,
	  RELAY_ERR_OBJECT, 0, relay_gate_legacy, NULL },
	{ "/faucet", "POST", "faucet", relay_handle_faucet, JSONB,
	  RELAY_ERR_OBJECT, 0, relay_gate_faucet, tp_faucet_key_fields },
	{ "/sink", "POST", "sink", relay_handle_sink, JSONB, RELAY_ERR_STRING, 0,
	  relay_gate_legacy_node, tp_sink_key_fields },
	{ "/source", "POST", "source", relay_handle_source, JSONB,
	  RELAY_ERR_STRING, 0, relay_gate_legacy_node, tp_source_key_fields },
	{ "/retrieve", "POST", "retrieve", relay_handle_retrieve, JSONB,
	  RELAY_ERR_STRING, 0, relay_gate_legacy, tp_retrieve_key_fields },
	{ "/stream/source", "POST", "stream_source", relay_handle_stream_source,
	  JSONB, RELAY_ERR_STRING, 0, relay_gate_node, tp_stream_source_key_fields },
	{ "/stream/retrieve", "POST", "stream_retrieve",
	  relay_handle_stream_retrieve, JSONB, RELAY_ERR_STRING, 0, NULL,
	  tp_retrieve_key_fields },
	{ "/unregister", "POST", "unregister", relay_handle_unregister_legacy,
	  JSONB, RELAY_ERR_STRING, 0, relay_gate_node, tp_unregister_key_fields },

	/* API v1 relay-blind E2EE protocol (PROTOCOL.md section 4.3) */
	{ "/api/v1/relay/servers/register", "POST", "v1_relay_register",
	  relay_handle_v1_register, JSONB, RELAY_ERR_V1, 0,
	  relay_gate_v1_node, tp_v1_node_key_fields },
	{ "/api/v1/relay/servers/poll", "POST", "v1_relay_poll",
	  relay_handle_v1_poll, JSONB, RELAY_ERR_V1, 0,
	  relay_gate_v1_node, tp_v1_node_key_fields },
	{ "/api/v1/relay/servers/control", "POST", "v1_relay_control",
	  relay_handle_v1_control, JSONB, RELAY_ERR_V1, 0,
	  relay_gate_v1_node, tp_v1_control_key_fields },
	{ "/api/v1/relay/servers/unregister", "POST", "v1_relay_unregister",
	  relay_handle_v1_unregister, JSONB, RELAY_ERR_V1, 0,
	  relay_gate_v1_node, tp_v1_unregister_key_fields },
	{ "/api/v1/relay/servers/next", "GET", "v1_relay_next_server",
	  relay_handle_v1_next_server, RELAY_ROUTE_CORS, RELAY_ERR_V1, 0, NULL,
	  NULL },
	{ "/api/v1/relay/requests", "POST", "v1_relay_requests",
	  relay_handle_v1_requests, JSONB | RELAY_ROUTE_CORS, RELAY_ERR_V1, 0, NULL,
	  tp_v1_request_key_fields },
	{ "/api/v1/relay/requests/cancel", "POST", "v1_relay_cancel",
	  relay_handle_v1_cancel, JSONB | RELAY_ROUTE_CORS, RELAY_ERR_V1, 0, NULL,
	  tp_v1_cancel_key_fields },
	{ "/api/v1/relay/responses", "POST", "v1_relay_responses",
	  relay_handle_v1_responses, JSONB, RELAY_ERR_V1, 0,
	  relay_gate_v1_node, tp_v1_response_key_fields },
	{ "/api/v1/relay/progress", "POST", "v1_relay_progress",
	  relay_handle_v1_progress, JSONB, RELAY_ERR_V1,
	  TP_V1_PROGRESS_MAX_BYTES, relay_gate_v1_node, tp_v1_progress_key_fields },
	{ "/api/v1/relay/responses/retrieve", "POST", "v1_relay_retrieve",
	  relay_handle_v1_retrieve, JSONB | RELAY_ROUTE_CORS, RELAY_ERR_V1, 0, NULL,
	  tp_v1_retrieve_key_fields },
	/*
	 * The browser page and what it reads (docs/web.md). The model paths
	 * sit in this table, so they are matched before the forwarding
	 * route below sees them; with RELAY_MODELS_SOURCE=upstream they are
	 * skipped (relay_routes_set_local_models) and forwarded as before.
	 */
	{ "/", "GET", "index", relay_handle_web_index, 0, RELAY_ERR_OBJECT, 0,
	  NULL, NULL },
	{ "/static/", "GET", "static", relay_handle_web_static,
	  RELAY_ROUTE_PREFIX, RELAY_ERR_OBJECT, 0, NULL, NULL },
	{ "/relay/diagnostics", "GET", "relay_diagnostics",
	  relay_handle_diagnostics, 0, RELAY_ERR_OBJECT, 0, NULL, NULL },
	{ "/api/v1/models", "GET", "list_models", relay_handle_models,
	  RELAY_ROUTE_CORS | RELAY_ROUTE_MODELS,
	  RELAY_ERR_OPENAI, 0, NULL, NULL },
	{ "/api/v1/models/", "GET", "get_model", relay_handle_models,
	  RELAY_ROUTE_PREFIX | RELAY_ROUTE_CORS | RELAY_ROUTE_MODELS,
	  RELAY_ERR_OPENAI, 0, NULL, NULL },
	{ "/v1/models", "GET", "list_models", relay_handle_models,
	  RELAY_ROUTE_CORS | RELAY_ROUTE_MODELS,
	  RELAY_ERR_OPENAI, 0, NULL, NULL },
	{ "/v1/models/", "GET", "get_model", relay_handle_models,
	  RELAY_ROUTE_PREFIX | RELAY_ROUTE_CORS | RELAY_ROUTE_MODELS,
	  RELAY_ERR_OPENAI, 0, NULL, NULL },

	{ "/api/v1/meta", "GET", "v1_meta", relay_handle_v1_meta, 0,
	  RELAY_ERR_V1, 0, NULL, NULL },
	{ "/api/v1/version", "GET", "v1_version", relay_handle_v1_meta, 0,
	  RELAY_ERR_V1, 0, NULL, NULL },
};

const size_t relay_route_count = sizeof(relay_routes) / sizeof(relay_routes[0]);

/*
 * Paths no route above claims (the table always wins, model paths
 * included) but RELAY_FORWARD_PREFIXES covers go to the GPU host (upstream_rules.c decides; the relay's own /api/v1/relay/...,
 * /api/v1/meta and /api/v1/version never do). Bodies stream: no JSONB.
 */
const struct relay_route relay_forward_route = {
	"/", "GET,POST,PUT,PATCH,DELETE", "forward", relay_handle_forward,
	RELAY_ROUTE_PREFIX, RELAY_ERR_OPENAI, 0, NULL, NULL
};

static const struct relay_route_table tables[2] = {
	{ relay_routes, sizeof(relay_routes) / sizeof(relay_routes[0]),
	  RELAY_ROUTE_MODELS, &relay_forward_route, relay_fwd_route_path },
	{ relay_routes, sizeof(relay_routes) / sizeof(relay_routes[0]),
	  0, &relay_forward_route, relay_fwd_route_path },
};

const struct relay_route_table *
relay_route_table(bool local_models)
{
	return &tables[local_models ? 1 : 0];
}
