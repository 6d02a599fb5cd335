/*
 * request_id: the X-Request-Id of every request, the client's when it is
 * acceptable, otherwise a fresh one.
 */
#ifndef RELAY_REQUEST_ID_H
#define RELAY_REQUEST_ID_H

#include <stdbool.h>

#define RELAY_REQUEST_ID_MAX 128	/* longest inbound id kept */
#define RELAY_REQUEST_ID_GENERATED 16	/* hex digits of a generated id */

/*
 * True when an inbound id may be kept: 1 to RELAY_REQUEST_ID_MAX printable
 * ASCII characters, no spaces. NULL is not acceptable.
 */
bool relay_request_id_acceptable(const char *id);

/*
 * Writes a fresh id (RELAY_REQUEST_ID_GENERATED lowercase hex digits and a
 * NUL) to out. Unique, not secret; never fails. Any thread.
 */
void relay_request_id_generate(char out[RELAY_REQUEST_ID_GENERATED + 1]);

#endif /* RELAY_REQUEST_ID_H */
