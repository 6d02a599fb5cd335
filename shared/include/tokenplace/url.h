/*
 * url.h -- one splitter for "scheme://authority/rest" URLs, shared by the
 * relay's upstream, probe, Redis and settings checks and by the GPU host's
 * relay.url. It only splits: which schemes are welcome, whether userinfo
 * is allowed, the default ports and the meaning of the path stay with each
 * caller. Plain C, no allocation: part of tokenplace_core (builds with
 * mingw-w64).
 */
#ifndef TOKENPLACE_URL_H
#define TOKENPLACE_URL_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why tp_url_split() refused a URL. */
enum tp_url_error {
	TP_URL_OK = 0,
	TP_URL_ENOSCHEME = -1,	/* no "scheme://", or a bad scheme name */
	TP_URL_EBRACKET = -2,	/* '[' without a closing ']' in the authority */
	TP_URL_EJUNK = -3	/* something other than ':' right after ']' */
};

/*
 * The parts of one URL. Every pointer points into the string given to
 * tp_url_split() (nothing is copied or percent-decoded), with a length,
 * because the parts are not NUL-terminated.
 */
struct tp_url {
	const char	*scheme;	/* before "://"; compare with tp_url_scheme_is() */
	size_t		 scheme_len;
	const char	*userinfo;	/* before the '@'; NULL when there is no '@' */
	size_t		 userinfo_len;
	const char	*host;		/* IPv6 without its brackets; may be empty */
	size_t		 host_len;
	bool		 host_ipv6;	/* the host was written "[...]" */
	const char	*port;		/* after the ':'; NULL when no ':', may be empty */
	size_t		 port_len;
	const char	*rest;		/* from the first '/', '?' or '#' after the
					 * host to the end; "" when none */
};

/*
 * Splits url ("scheme://[userinfo@]host[:port][/path][?query][#fragment]")
 * into *out. The rules, the same for every caller:
 *  - scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) before "://";
 *    case-insensitive (RFC 3986 3.1), so compare it with tp_url_scheme_is().
 *  - userinfo: up to the LAST '@' before the first '?' or '#', so a
 *    password may hold '/' or '@' (the rule tp_config_redact_url() masks
 *    by). A path holding '@' therefore reads as userinfo.
 *  - host: "[...]" (IPv6, returned without brackets; only ':' may follow
 *    the ']'), or up to the first ':', '/', '?' or '#'. Not checked for
 *    characters: the caller decides what a host may hold.
 *  - port: the characters after that ':' up to '/', '?', '#' or the end,
 *    unchecked (an empty port is the caller's call).
 * Returns TP_URL_OK (0) and fills *out, or a negative enum tp_url_error.
 * After TP_URL_EBRACKET or TP_URL_EJUNK the scheme, the userinfo and the
 * rest are filled (so a caller may check those first, in its own order);
 * after TP_URL_ENOSCHEME nothing is. url and out must not be NULL.
 */
int tp_url_split(const char *url, struct tp_url *out);

/*
 * True when u's scheme is `scheme` (lower-case, no "://"), ignoring ASCII
 * case: "HTTP://h" is an http URL.
 */
bool tp_url_scheme_is(const struct tp_url *u, const char *scheme);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_URL_H */
