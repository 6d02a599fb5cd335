/*
 * relay_request_id: the X-Request-Id of each request, taken from the client
 * when it is acceptable, generated otherwise. No allocation, no locks (the
 * generator's state is per thread).
 */
#ifndef RELAY_REQUEST_ID_H
#define RELAY_REQUEST_ID_H

#include <stdbool.h>

/* Longest inbound id kept. */
#define RELAY_REQUEST_ID_MAX 128

/* True when id is 1 to RELAY_REQUEST_ID_MAX printable ASCII characters. */
bool relay_request_id_acceptable(const char *id);

/* Writes a fresh 16-hex-digit id and its NUL to out. */
void relay_request_id_generate(char out[17]);

#endif /* RELAY_REQUEST_ID_H */
