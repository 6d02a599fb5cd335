/* fwrules.c -- firewall rule matching; see fwrules.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fwrules.h"

static int
parse_port(const char *s, size_t n, long *out)
{
	long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = v;
	return 0;
}

int
gpuhost_ports_contain(const char *list, uint16_t port)
{
	const char *p = list;
	int found = 0;

	if (list == NULL)
		return -1;
	while (*p != '\0') {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		const char *s = p, *dash;
		long lo, hi;

		while (n > 0 && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if ((n == 1 && s[0] == '*') || (n == 3 && strncasecmp(s, "any", 3) == 0))
			return 1;
		dash = memchr(s, '-', n);
		if (n > 0 && isalpha((unsigned char)s[0])) {
			/* RPC, RPC-EPMap, IPHTTPS, Teredo, ...: never plain ports. */
		} else if (dash != NULL) {
			if (parse_port(s, (size_t)(dash - s), &lo) != 0 ||
			    parse_port(dash + 1, n - (size_t)(dash - s) - 1, &hi) != 0 ||
			    lo > hi)
				return -1;
			if (port >= lo && port <= hi)
				found = 1;
		} else if (n > 0) {
			if (parse_port(s, n, &lo) != 0)
				return -1;
			if (lo == port)
				found = 1;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return found;
}

static bool
app_matches(const char *rule_app, const char *exe)
{
	if (rule_app == NULL || rule_app[0] == '\0' || strcmp(rule_app, "*") == 0)
		return true;
	return exe != NULL && strcasecmp(rule_app, exe) == 0;
}

enum gpuhost_fw_verdict
gpuhost_fw_evaluate(const struct gpuhost_fwrule *rules, size_t n,
    uint16_t port, long profile, const char *exe, size_t *which)
{
	size_t allow = (size_t)-1;

	for (size_t i = 0; i < n; i++) {
		const struct gpuhost_fwrule *r = &rules[i];

		if (!r->enabled || !r->inbound)
			continue;
		if (r->protocol != GPUHOST_FW_PROTO_TCP &&
		    r->protocol != GPUHOST_FW_PROTO_ANY)
			continue;
		if ((r->profiles & profile) == 0)
			continue;
		if (gpuhost_ports_contain(r->local_ports ? r->local_ports : "*",
		    port) != 1)
			continue;
		if (!app_matches(r->application, exe))
			continue;
		if (!r->allow) {
			if (which != NULL)
				*which = i;
			return GPUHOST_FW_BLOCKED;
		}
		if (allow == (size_t)-1)
			allow = i;
	}
	if (which != NULL)
		*which = allow;
	return allow != (size_t)-1 ? GPUHOST_FW_ALLOWED : GPUHOST_FW_NO_RULE;
}

int
gpuhost_fw_profiles_parse(const char *s, long *mask)
{
	long m = 0;

	while (*s != '\0') {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		while (n > 0 && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if (n == 6 && strncasecmp(s, "domain", 6) == 0)
			m |= GPUHOST_FW_DOMAIN;
		else if (n == 7 && strncasecmp(s, "private", 7) == 0)
			m |= GPUHOST_FW_PRIVATE;
		else if (n == 6 && strncasecmp(s, "public", 6) == 0)
			m |= GPUHOST_FW_PUBLIC;
		else if ((n == 3 && strncasecmp(s, "all", 3) == 0) ||
		    (n == 1 && s[0] == '*'))
			m |= GPUHOST_FW_ALL;
		else if (n != 0)
			return -1;
		if (e == NULL)
			break;
		s = e + 1;
	}
	if (m == 0)
		return -1;
	*mask = m;
	return 0;
}

const char *
gpuhost_fw_profile_name(long bit)
{
	switch (bit) {
	case GPUHOST_FW_DOMAIN:
		return "domain";
	case GPUHOST_FW_PRIVATE:
		return "private";
	case GPUHOST_FW_PUBLIC:
		return "public";
	default:
		return "?";
	}
}

/* Does a ufw "To" column cover port/tcp? */
static bool
ufw_to_matches(const char *to, uint16_t port)
{
	char buf[128];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", to);
	slash = strchr(buf, '/');
	if (slash != NULL) {
		if (strcasecmp(slash + 1, "tcp") != 0)
			return false;
		*slash = '\0';
	}
	/* ufw writes ranges as 8000:8010. */
	for (char *c = buf; *c != '\0'; c++) {
		if (*c == ':')
			*c = '-';
	}
	if (strcasecmp(buf, "anywhere") == 0)
		return true;
	return gpuhost_ports_contain(buf, port) == 1;
}

int
gpuhost_ufw_allows(const char *text, uint16_t port)
{
	const char *p = text;
	int active = -1;

	while (*p != '\0') {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		char line[512], to[128], action[32], from[128];

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = '\0';
		if (strncmp(line, "Status: active", 14) == 0)
			active = 1;
		else if (strncmp(line, "Status: inactive", 16) == 0)
			return 1;
		else if (active == 1 && strstr(line, "(v6)") == NULL &&
		    sscanf(line, "%127s %31s %*s %127s", to, action, from) >= 2) {
			/* "8000/tcp  ALLOW IN  Anywhere" or "8000/tcp ALLOW Anywhere" */
			if (strcmp(action, "ALLOW") == 0 ||
			    strcmp(action, "DENY") == 0 ||
			    strcmp(action, "REJECT") == 0 ||
			    strcmp(action, "LIMIT") == 0) {
				if (ufw_to_matches(to, port) &&
				    strstr(line, "Anywhere") != NULL)
					return strcmp(action, "ALLOW") == 0 ||
					    strcmp(action, "LIMIT") == 0 ? 1 : 0;
			}
		}
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return active == 1 ? 0 : -1;
}
