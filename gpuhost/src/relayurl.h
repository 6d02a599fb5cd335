/*
 * relayurl.h -- the relay's address as token.place's server.py wants it.
 *
 * server.py takes the relay as two options: --relay_url, scheme and host
 * only (it appends ":<relay_port>/sink" itself), and --relay_port. The
 * operator writes one URL (relay.url = https://relay.example.org or
 * http://10.0.0.5:5010); this module splits it. Anything server.py could
 * not use is refused with a reason instead of being passed on: another
 * scheme, a path, a query, user:password@ (the token has its own setting).
 */
#ifndef GPUHOST_RELAYURL_H
#define GPUHOST_RELAYURL_H

#include <stdbool.h>
#include <stddef.h>

#define GPUHOST_RELAY_HOST_MAX 256	/* bytes of the host part, brackets included */

struct gpuhost_relay_url {
	bool https;
	bool port_given;			/* false: the scheme's default */
	unsigned port;				/* 1..65535 */
	char host[GPUHOST_RELAY_HOST_MAX];	/* "relay.example.org", "[::1]" */
	char base[GPUHOST_RELAY_HOST_MAX + 16];	/* "https://relay.example.org" */
};

/*
 * Parses url into *out. The scheme is http or https (any case); the host
 * is a DNS name, an IPv4 address or a bracketed IPv6 address; the port is
 * optional (80 or 443 by default); nothing may follow but one "/".
 * Returns 0, or -1 with a reason in err (the URL is not repeated in it).
 */
int gpuhost_relay_url_parse(const char *url, struct gpuhost_relay_url *out,
    char *err, size_t errlen);

#endif
