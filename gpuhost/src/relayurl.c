/* relayurl.c -- relay.url split for server.py; see relayurl.h. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "relayurl.h"

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
	const char *p, *host, *hend, *end;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(url, "https://", 8) == 0) {
		out->https = true;
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		snprintf(err, errlen, "must start with http:// or https://");
		return -1;
	}
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)) != NULL) {
		snprintf(err, errlen, "user:password@ is not allowed; the "
		    "registration token goes in relay.token");
		return -1;
	}
	/* server.py appends ":<port>/sink": a path here would be dropped. */
	if (*end != '\0' && strcmp(end, "/") != 0) {
		snprintf(err, errlen, "must be scheme://host[:port] only: "
		    "server.py adds the paths (/sink, /api/v1/...) itself");
		return -1;
	}
	host = p;
	if (*host == '[') {
		hend = memchr(host, ']', (size_t)(end - host));
		if (hend == NULL || hend == host + 1) {
			snprintf(err, errlen, "unterminated or empty [IPv6] host");
			return -1;
		}
		for (const char *c = host + 1; c < hend; c++) {
			if (!ipv6_char(*c)) {
				snprintf(err, errlen, "bad character in the "
				    "[IPv6] host");
				return -1;
			}
		}
		hend++;
	} else {
		hend = host;
		while (hend < end && *hend != ':') {
			if (!host_char(*hend)) {
				snprintf(err, errlen, "bad character in the host "
				    "name");
				return -1;
			}
			hend++;
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
