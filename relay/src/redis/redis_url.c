/*
 * redis_url.c -- RELAY_STATE_URL parsing and the glob escaping of the
 * Pub/Sub pattern for the Redis adapter (see redis.h). Plain string work:
 * no hiredis here.
 */
#include "redis/redis_url.h"

#include <stdio.h>
#include <string.h>

#include "core/percent.h"
#include "tokenplace/url.h"

/* ---- URL --------------------------------------------------------------- */

/* Copies [s, s+n) percent-decoded into out; -1 when it does not fit. */
static int
decode_into(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;
	int b;

	for (i = 0; i < n; i++) {
		if (o + 1 >= outlen)
			return -1;
		if (s[i] == '%') {
			if ((b = relay_percent_byte(s + i)) <= 0)
				return -1;
			out[o++] = (char)b;
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return 0;
}

static int
parse_uint(const char *s, size_t n, long max, long *out)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > 9)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int
url_fail(char *err, size_t errlen, const char *reason)
{
	snprintf(err, errlen, "%s", reason);
	return -1;
}

int
relay_redis_url_parse(const char *url, struct relay_redis_config *out,
    char *err, size_t errlen)
{
	struct tp_url u;
	const char *p, *end, *colon, *q;
	long v;
	size_t i;
	int rc;

	if (url == NULL)
		return url_fail(err, errlen, "no URL");
	for (i = 0; url[i] != '\0'; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			return url_fail(err, errlen,
			    "URL contains whitespace or a control character");
	/* The scheme is case-insensitive (RFC 3986), as for every URL. */
	rc = tp_url_split(url, &u);
	if (rc == TP_URL_ENOSCHEME || (!tp_url_scheme_is(&u, "redis") &&
	    !tp_url_scheme_is(&u, "rediss") && !tp_url_scheme_is(&u, "unix")))
		return url_fail(err, errlen, "not a redis://, unix:// or "
		    "memory:// URL");
	if (tp_url_scheme_is(&u, "rediss"))
		return url_fail(err, errlen, "rediss:// (TLS) is not supported: "
		    "Debian 12's hiredis 0.14 has no TLS; reach Redis/Valkey over "
		    "a private network or a unix socket, or put a TLS tunnel "
		    "(stunnel, a service mesh) in front of it");
	if (tp_url_scheme_is(&u, "unix")) {
		/* A path, no authority: "unix:///path" (the host is empty). */
		p = url + u.scheme_len + 3;
		if (p[0] != '/')
			return url_fail(err, errlen, "unix:// needs an absolute "
			    "socket path, e.g. unix:///run/redis/redis.sock");
		q = strchr(p, '?');
		end = q ? q : p + strlen(p);
		if ((size_t)(end - p) >= sizeof(out->unix_path))
			return url_fail(err, errlen, "unix socket path too long "
			    "(at most 107 bytes)");
		if (decode_into(p, (size_t)(end - p), out->unix_path,
		    sizeof(out->unix_path)) != 0)
			return url_fail(err, errlen, "bad percent-escape in the "
			    "socket path");
		out->host[0] = '\0';
		out->port = 0;
		out->db = 0;
		out->user[0] = '\0';
		if (q != NULL) {
			if (strncmp(q, "?db=", 4) != 0 ||
			    parse_uint(q + 4, strlen(q + 4), 1000000, &v) != 0)
				return url_fail(err, errlen, "the only unix:// "
				    "query is ?db=N (a database number)");
			out->db = (int)v;
		}
		return 0;
	}
	if (strpbrk(url, "?#") != NULL)
		return url_fail(err, errlen, "redis:// URLs take no query or "
		    "fragment");
	if (rc == TP_URL_EBRACKET)
		return url_fail(err, errlen, "unterminated [IPv6] host");
	if (rc == TP_URL_EJUNK)
		return url_fail(err, errlen, "junk after [IPv6] host");
	out->user[0] = '\0';
	if (u.userinfo != NULL) {
		colon = memchr(u.userinfo, ':', u.userinfo_len);
		if (colon == NULL)
			return url_fail(err, errlen, "userinfo without ':' (use "
			    "redis://:password@host or redis://user:password@host)");
		if (decode_into(u.userinfo, (size_t)(colon - u.userinfo),
		    out->user, sizeof(out->user)) != 0 ||
		    decode_into(colon + 1, (size_t)(u.userinfo +
		    u.userinfo_len - colon - 1), out->password,
		    sizeof(out->password)) != 0)
			return url_fail(err, errlen, "user or password too long "
			    "or badly percent-escaped");
	}
	if (u.host_len == 0)
		return url_fail(err, errlen, u.host_ipv6 ?
		    "unterminated [IPv6] host" : "no host");
	if (u.host_len >= sizeof(out->host))
		return url_fail(err, errlen, "host too long");
	memcpy(out->host, u.host, u.host_len);
	out->host[u.host_len] = '\0';
	out->port = 6379;
	if (u.port != NULL) {
		if (parse_uint(u.port, u.port_len, 65535, &v) != 0 || v == 0)
			return url_fail(err, errlen, "port is not 1-65535");
		out->port = (int)v;
	}
	out->db = 0;
	/* No '?' or '#' here, so the rest is "" or "/db". */
	if (u.rest[0] == '/' && u.rest[1] != '\0') {
		if (parse_uint(u.rest + 1, strlen(u.rest + 1), 1000000, &v) != 0)
			return url_fail(err, errlen, "the path is a database "
			    "number, e.g. redis://host:6379/0");
		out->db = (int)v;
	}
	out->unix_path[0] = '\0';
	return 0;
}

size_t
relay_redis_glob_escape(const char *s, char *out, size_t outlen)
{
	size_t need = 0, o = 0, n;
	bool cut = outlen == 0;

	for (; *s != '\0'; s++) {
		n = strchr("*?[]\\", *s) != NULL ? 2 : 1;
		if (!cut && o + n < outlen) {
			if (n == 2)
				out[o++] = '\\';
			out[o++] = *s;
		} else
			cut = true;	/* nothing after a character that did not fit */
		need += n;
	}
	if (outlen > 0)
		out[o] = '\0';
	return need;
}
