/* url.c -- the URL splitter; see tokenplace/url.h for the contract. */
#include "tokenplace/url.h"

#include <string.h>

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ASCII only: tolower() would follow the locale. */
static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int
tp_url_split(const char *url, struct tp_url *out)
{
	const char *p, *auth, *end, *at = NULL, *hend, *q;

	memset(out, 0, sizeof(*out));
	if (!is_alpha(url[0]))
		return TP_URL_ENOSCHEME;
	for (p = url + 1; is_alpha(*p) || (*p >= '0' && *p <= '9') ||
	    *p == '+' || *p == '-' || *p == '.'; p++)
		;
	if (strncmp(p, "://", 3) != 0)
		return TP_URL_ENOSCHEME;
	out->scheme = url;
	out->scheme_len = (size_t)(p - url);
	auth = p + 3;

	/* The userinfo ends at the last '@' before the query or fragment. */
	end = auth + strcspn(auth, "?#");
	for (q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		out->userinfo = auth;
		out->userinfo_len = (size_t)(at - auth);
		auth = at + 1;
	}
	end = auth + strcspn(auth, "/?#");
	out->rest = end;

	if (*auth == '[') {
		q = memchr(auth, ']', (size_t)(end - auth));
		if (q == NULL)
			return TP_URL_EBRACKET;
		out->host = auth + 1;
		out->host_len = (size_t)(q - auth - 1);
		out->host_ipv6 = true;
		hend = q + 1;
		if (hend < end && *hend != ':')
			return TP_URL_EJUNK;
	} else {
		hend = memchr(auth, ':', (size_t)(end - auth));
		if (hend == NULL)
			hend = end;
		out->host = auth;
		out->host_len = (size_t)(hend - auth);
	}
	if (hend < end) {	/* *hend == ':' */
		out->port = hend + 1;
		out->port_len = (size_t)(end - hend - 1);
	}
	return TP_URL_OK;
}

bool
tp_url_scheme_is(const struct tp_url *u, const char *scheme)
{
	size_t i, n = strlen(scheme);

	if (u->scheme == NULL || u->scheme_len != n)
		return false;
	for (i = 0; i < n; i++)
		if (lower(u->scheme[i]) != lower(scheme[i]))
			return false;
	return true;
}
