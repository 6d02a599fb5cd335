/*
 * relay_auth: the compute-node registration token(s).
 *
 * Accepted tokens come from TOKEN_PLACE_RELAY_SERVER_TOKEN and the comma
 * or newline separated TOKEN_PLACE_RELAY_SERVER_TOKENS, each
 * whitespace-stripped; empty entries are ignored. With no token at all the
 * node routes are open and the header is ignored, as in the Python relay.
 * Immutable after creation, so it is shared by all threads without locks.
 */
#ifndef RELAY_AUTH_H
#define RELAY_AUTH_H

#include <stdbool.h>

#define RELAY_AUTH_HEADER "X-Relay-Server-Token"

struct relay_auth;

/* Builds the token list; NULL arguments mean none. NULL when out of memory. */
struct relay_auth *relay_auth_new(const char *token, const char *tokens);

void relay_auth_free(struct relay_auth *a);

/* True when at least one token is configured. */
bool relay_auth_required(const struct relay_auth *a);

/*
 * True when no token is configured, or when `header` (the raw header
 * value, NULL when absent) stripped of surrounding whitespace equals one
 * of the tokens. Compares in time independent of where the bytes differ
 * and of which token matched.
 */
bool relay_auth_check(const struct relay_auth *a, const char *header);

#endif /* RELAY_AUTH_H */
