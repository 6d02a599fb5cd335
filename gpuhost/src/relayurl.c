/* relayurl.c -- relay.url split for server.py; see relayurl.h. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "relayurl.h"
#include "tokenplace/url.h"

static bool
host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

static bool
ipv6_char(char c)
{
	return isxdigit((unsigned char)c) || c == ':' || c == '.';
}

int
gpuhost_relay_url_parse(const char *url, struct gpuhost_relay_url *out,
    char *err, size_t errlen)
{
	struct tp_url u;
	const char *host, *hend, *end;
	size_t hlen;
	int rc;

	memset(out, 0, sizeof(*out));
	/* The scheme is case-insensitive (RFC 3986), as for every URL. */
	rc = tp_url_split(url, &u);
	if (rc != TP_URL_ENOSCHEME && tp_url_scheme_is(&u, "https"))
		out->https = true;
	else if (rc == TP_URL_ENOSCHEME || !tp_url_scheme_is(&u, "http")) {
		snprintf(err, errlen, "must start with http:// or https://");
		return -1;
	}
	if (u.userinfo != NULL) {
		snprintf(err, errlen, "user:password@ is not allowed; the "
		    "registration token goes in relay.token");
		return -1;
	}
	/* server.py appends ":<port>/sink": a path here would be dropped. */
	if (*u.rest != '\0' && strcmp(u.rest, "/") != 0) {
		snprintf(err, errlen, "must be scheme://host[:port] only: "
		    "server.py adds the paths (/sink, /api/v1/...) itself");
		return -1;
	}
	if (rc == TP_URL_EBRACKET || (rc == TP_URL_OK && u.host_ipv6 &&
	    u.host_len == 0)) {
		snprintf(err, errlen, "unterminated or empty [IPv6] host");
		return -1;
	}
	if (rc == TP_URL_EJUNK) {
		snprintf(err, errlen, "bad port");
		return -1;
	}
	end = u.rest;
	if (u.host_ipv6) {
		/* host keeps its brackets: server.py takes it as written. */
		host = u.host - 1;
		hend = u.host + u.host_len + 1;
		for (const char *c = u.host; c < u.host + u.host_len; c++) {
			if (!ipv6_char(*c)) {
				snprintf(err, errlen, "bad character in the "
				    "[IPv6] host");
				return -1;
			}
		}
	} else {
		host = u.host;
		hend = u.host + u.host_len;
		for (const char *c = host; c < hend; c++) {
			if (!host_char(*c)) {
				snprintf(err, errlen, "bad character in the host "
				    "name");
				return -1;
			}
		}
		if (hend == host) {
			snprintf(err, errlen, "has no host");
			return -1;
		}
	}
	hlen = (size_t)(hend - host);
	if (hlen >= sizeof(out->host)) {
		snprintf(err, errlen, "host longer than %d bytes",
		    GPUHOST_RELAY_HOST_MAX - 1);
		return -1;
	}
	if (hend < end) {
		unsigned long port = 0;
		const char *d = hend + 1;

		if (*hend != ':' || d == end) {
			snprintf(err, errlen, "bad port");
			return -1;
		}
		for (; d < end; d++) {
			if (!isdigit((unsigned char)*d) || port > 65535) {
				snprintf(err, errlen, "bad port");
				return -1;
			}
			port = port * 10 + (unsigned long)(*d - '0');
		}
		if (port < 1 || port > 65535) {
			snprintf(err, errlen, "port must be 1..65535");
			return -1;
		}
		out->port = (unsigned)port;
		out->port_given = true;
	} else
		out->port = out->https ? 443 : 80;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	snprintf(out->base, sizeof(out->base), "%s://%s",
	    out->https ? "https" : "http", out->host);
	return 0;
}
