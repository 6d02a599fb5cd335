/*
 * handlers_forward.c -- the forwarded OpenAI-style API (/api/v1/..., /v1/...).
 *
 * Thin on purpose: the route brings any path under RELAY_FORWARD_PREFIXES
 * here, and forward.c does the forwarding, streaming and error mapping.
 */
#include "app.h"
#include "upstream/handlers.h"
#include "upstream/upstream.h"

void
relay_handle_forward(struct relay_app *app, struct relay_request *req,
    struct relay_response *resp)
{
	if (app->upstream == NULL) {
		relay_response_error_shaped(resp, RELAY_ERR_OPENAI, 503,
		    "upstream_unavailable", "Forwarding is not configured");
		resp->error_kind = "upstream_not_configured";
		return;
	}
	relay_upstream_forward(app->upstream, req, resp);
}
