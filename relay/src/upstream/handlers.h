/*
 * The forwarding route, for the route table.
 */
#ifndef RELAY_UPSTREAM_HANDLERS_H
#define RELAY_UPSTREAM_HANDLERS_H

#include "http/http.h"

/* handlers_forward.c: the OpenAI-style API, forwarded to the GPU host */
void relay_handle_forward(struct relay_app *, struct relay_request *, struct relay_response *);

#endif /* RELAY_UPSTREAM_HANDLERS_H */
