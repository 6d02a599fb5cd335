/*
 * The browser page and the routes it reads, for the route table.
 */
#ifndef RELAY_WEB_HANDLERS_H
#define RELAY_WEB_HANDLERS_H

#include "http/http.h"

/* handlers_web.c: the browser page and the routes it reads (docs/web.md) */
void relay_handle_web_index(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_web_static(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_diagnostics(struct relay_app *, struct relay_request *, struct relay_response *);
void relay_handle_models(struct relay_app *, struct relay_request *, struct relay_response *);

#endif /* RELAY_WEB_HANDLERS_H */
