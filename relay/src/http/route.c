/*
 * route.c -- matching a request against a route table (route.h).
 */
#include "http/route.h"

#include <stdio.h>
#include <string.h>

int
relay_route_allows(const struct relay_route *route, const char *method)
{
	const char *p = route->methods;
	size_t mlen = strlen(method);

	if (strcmp(method, "HEAD") == 0)
		return relay_route_allows(route, "GET");
	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		if (n == mlen && strncmp(p, method, n) == 0)
			return 1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

void
relay_route_allow_header(const struct relay_route *route, char *allow,
    size_t allowlen)
{
	const char *p = route->methods;
	size_t used = 0;

	allow[0] = '\0';
	while (*p != '\0' && used < allowlen) {
		size_t n = strcspn(p, ",");
		int w = snprintf(allow + used, allowlen - used, "%s%.*s",
		    used ? ", " : "", (int)n, p);

		if (w < 0)
			break;
		used += (size_t)w;
		if (n == 3 && strncmp(p, "GET", 3) == 0 && used < allowlen) {
			w = snprintf(allow + used, allowlen - used, ", HEAD");
			if (w > 0)
				used += (size_t)w;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (used < allowlen)
		snprintf(allow + used, allowlen - used, "%sOPTIONS",
		    used ? ", " : "");
}

static int
path_matches(const struct relay_route *r, const char *path)
{
	if (r->flags & RELAY_ROUTE_PREFIX)
		return strncmp(path, r->path, strlen(r->path)) == 0;
	return strcmp(path, r->path) == 0;
}

enum relay_route_result
relay_route_match(const struct relay_route_table *t, const char *method,
    const char *path, const struct relay_route **route, char *allow,
    size_t allowlen)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct relay_route *r = &t->routes[i];

		if (!path_matches(r, path) || (r->flags & t->skip_flags))
			continue;
		*route = r;
		if (relay_route_allows(r, method))
			return RELAY_ROUTE_FOUND;
		relay_route_allow_header(r, allow, allowlen);
		return RELAY_ROUTE_BAD_METHOD;
	}
	if (t->fallback != NULL && t->fallback_matches(path)) {
		*route = t->fallback;
		if (relay_route_allows(t->fallback, method))
			return RELAY_ROUTE_FOUND;
		relay_route_allow_header(t->fallback, allow, allowlen);
		return RELAY_ROUTE_BAD_METHOD;
	}
	*route = NULL;
	return RELAY_ROUTE_NOT_FOUND;
}
