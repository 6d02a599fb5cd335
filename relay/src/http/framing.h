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
 * civetweb 1.15 also stops parsing headers after its 64th (MG_MAX_HEADERS)
 * without an error: a Content-Length or Transfer-Encoding after that line
 * is never seen, and the body is read as the next request. A head with
 * more than max_headers lines is therefore refused with 431 before the
 * other rules (RELAY_MAX_HEADER_COUNT, at most RELAY_FRAMING_MAX_HEADERS,
 * so that civetweb's silent cut is always above the limit).
 *
 * What civetweb already refuses before any callback runs (a negative or
 * empty Content-Length: 411; a Transfer-Encoding other than chunked or
 * identity: 400; control characters in a header value: 400) reaches the
 * adapter's http_error callback instead (docs/hardening.md).
 *
 * Usage: zero a struct relay_framing, set max_headers, relay_framing_add()
 * every header, then relay_framing_verdict(). No allocation, no locks.
 */
#ifndef RELAY_FRAMING_H
#define RELAY_FRAMING_H

#include <stdbool.h>

/*
 * Largest header count the limit may be set to: one below civetweb 1.15's
 * MG_MAX_HEADERS (64), where its parser stops without an error.
 */
#define RELAY_FRAMING_MAX_HEADERS 63

enum relay_framing_verdict {
	RELAY_FRAMING_OK = 0,
	RELAY_FRAMING_CL_WITH_TE,	/* Content-Length and Transfer-Encoding */
	RELAY_FRAMING_CL_REPEATED,	/* more than one Content-Length */
	RELAY_FRAMING_CL_INVALID,	/* not 1*DIGIT, or above INT64_MAX */
	RELAY_FRAMING_TE_UNSUPPORTED,	/* anything but one "chunked" */
	RELAY_FRAMING_TOO_MANY_HEADERS,	/* more than max_headers lines */
};

struct relay_framing {
	unsigned max_headers;	/* set by the caller; 0: no count limit */
	unsigned headers;	/* header lines added */
	unsigned cl_count;
	unsigned te_count;
	bool cl_invalid;
	bool te_invalid;
};

/* Notes one request header (name compared case-insensitively); counts it. */
void relay_framing_add(struct relay_framing *f, const char *name,
    const char *value);

/* The first rule the headers added so far break, or RELAY_FRAMING_OK. */
enum relay_framing_verdict relay_framing_verdict(const struct relay_framing *f);

/* The status of a refusal: 431 for too many headers, 400 otherwise. */
int relay_framing_status(enum relay_framing_verdict v);

/*
 * Short kind for logs and the metric label ("framing_cl_with_te", ...),
 * and a sentence for the client. Static strings; NULL for OK.
 */
const char *relay_framing_kind(enum relay_framing_verdict v);
const char *relay_framing_message(enum relay_framing_verdict v);

#endif /* RELAY_FRAMING_H */
