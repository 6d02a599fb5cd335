/*
 * relay_framing: the RFC 9112 message-framing rules civetweb 1.15 does not
 * enforce itself, checked over a request's parsed header list before any
 * byte of its body is read.
 *
 * civetweb 1.15 reads a request that carries both Content-Length and
 * Transfer-Encoding: chunked as chunked and keeps the connection open, uses
 * the first of several Content-Length headers, and parses Content-Length
 * with strtoll() (so "+5", "5abc", "0x10" and out-of-range values pass).
 * A front proxy that reads the same bytes by the other rule sees a
 * different request boundary: request smuggling. These checks refuse all
 * of them (RFC 9112 sections 6.1 and 6.3); the adapter answers 400 and
 * closes the connection, because where the body ends is in doubt.
 *
 * What civetweb already refuses before any callback runs (a negative or
 * empty Content-Length: 411; a Transfer-Encoding other than chunked or
 * identity: 400; control characters in a header value: 400) reaches the
 * adapter's http_error callback instead (docs/hardening.md).
 *
 * Usage: zero a struct relay_framing, relay_framing_add() every header,
 * then relay_framing_verdict(). No allocation, no locks.
 */
#ifndef RELAY_FRAMING_H
#define RELAY_FRAMING_H

#include <stdbool.h>

enum relay_framing_verdict {
	RELAY_FRAMING_OK = 0,
	RELAY_FRAMING_CL_WITH_TE,	/* Content-Length and Transfer-Encoding */
	RELAY_FRAMING_CL_REPEATED,	/* more than one Content-Length */
	RELAY_FRAMING_CL_INVALID,	/* not 1*DIGIT, or above INT64_MAX */
	RELAY_FRAMING_TE_UNSUPPORTED,	/* anything but one "chunked" */
};

struct relay_framing {
	unsigned cl_count;
	unsigned te_count;
	bool cl_invalid;
	bool te_invalid;
};

/* Notes one request header (name compared case-insensitively). */
void relay_framing_add(struct relay_framing *f, const char *name,
    const char *value);

/* The first rule the headers added so far break, or RELAY_FRAMING_OK. */
enum relay_framing_verdict relay_framing_verdict(const struct relay_framing *f);

/*
 * Short kind for logs and the metric label ("framing_cl_with_te", ...),
 * and a sentence for the client. Static strings; NULL for OK.
 */
const char *relay_framing_kind(enum relay_framing_verdict v);
const char *relay_framing_message(enum relay_framing_verdict v);

#endif /* RELAY_FRAMING_H */
