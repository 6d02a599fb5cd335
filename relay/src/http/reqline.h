/*
 * relay_reqline: the request line of a request civetweb refused, as far as
 * its error callback may read it.
 *
 * civetweb 1.15 calls the error callback with struct mg_request_info in
 * whatever state the failed parse left it (docs/hardening.md, "What the
 * error path reads"): request_method and request_uri are NULL or point
 * into the current head, which is NUL-terminated, but a parse that failed
 * half way leaves them holding the rest of a line (CR, LF, spaces, bytes
 * of other fields); local_uri_raw, local_uri and query_string are not set
 * for a refused request at all and may point into the worker's reused
 * buffer. The adapter therefore hands only request_method and request_uri
 * to relay_reqline_copy(), which reads each up to a bound and keeps it
 * only when it has the shape of a method token or an origin-form path.
 *
 * No allocation, no locks, no civetweb: tests/unit and tests/fuzz call it
 * directly.
 */
#ifndef RELAY_REQLINE_H
#define RELAY_REQLINE_H

#include <stdbool.h>

/* Longest method and path kept; longer ones are logged as "-". */
#define RELAY_REQLINE_METHOD_MAX 16
#define RELAY_REQLINE_PATH_MAX 512

struct relay_reqline {
	char method[RELAY_REQLINE_METHOD_MAX + 1];	/* "" when not valid */
	char path[RELAY_REQLINE_PATH_MAX + 1];		/* "" when not valid */
};

/*
 * Fills out from a method and a request target, each NULL or a string
 * that is NUL-terminated somewhere: neither is read past its first NUL
 * nor past its bound plus one byte. The method is kept when it is 1 to
 * RELAY_REQLINE_METHOD_MAX RFC 9110 token characters; the path (the
 * target up to '?' or '#') when it starts with '/' and is 1 to
 * RELAY_REQLINE_PATH_MAX visible ASCII characters (0x21-0x7e); what is
 * not kept is left "". Returns true when both were kept: only then may a
 * route be matched with them.
 */
bool relay_reqline_copy(struct relay_reqline *out, const char *method,
    const char *target);

/* The field for a log line: s itself, or "-" when it is empty. */
const char *relay_reqline_or_dash(const char *s);

#endif /* RELAY_REQLINE_H */
