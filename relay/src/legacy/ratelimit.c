/*
 * ratelimit.c -- client IP derivation behind trusted proxies and a
 * fixed-window per-IP request limiter.
 */
#include "legacy/ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashtab.h"
#include "core/random.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))
#define const_container_of(p, type, member) \
	((const type *)(const void *)((const char *)(p) - offsetof(type, member)))

static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0xff, 0xff };

int
relay_ip_parse(const char *s, size_t len, struct relay_ip *out)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in_addr a4;
	struct in6_addr a6;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memcpy(out->b, v4mapped, 12);
		memcpy(out->b + 12, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &a6) == 1) {
		memcpy(out->b, &a6, 16);
		return 0;
	}
	return -1;
}

void
relay_ip_format(const struct relay_ip *ip, char *buf, size_t len)
{
	if (memcmp(ip->b, v4mapped, 12) == 0) {
		if (inet_ntop(AF_INET, ip->b + 12, buf, (socklen_t)len) == NULL &&
		    len > 0)
			buf[0] = '\0';
	} else if (inet_ntop(AF_INET6, ip->b, buf, (socklen_t)len) == NULL &&
	    len > 0)
		buf[0] = '\0';
}

static void
mask_bits(struct relay_ip *ip, unsigned prefix)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		if (prefix >= 8 * (i + 1))
			continue;
		if (prefix <= 8 * i)
			ip->b[i] = 0;
		else
			ip->b[i] &= (unsigned char)(0xff << (8 * (i + 1) - prefix));
	}
}

static int
parse_cidr(const char *s, size_t len, struct relay_cidr *out)
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	unsigned long bits, maxbits;
	char num[8], *end;
	bool v4;

	if (relay_ip_parse(s, alen, &out->net) != 0)
		return -1;
	v4 = memcmp(out->net.b, v4mapped, 12) == 0 && memchr(s, ':', alen) == NULL;
	maxbits = v4 ? 32 : 128;
	bits = maxbits;
	if (slash != NULL) {
		size_t nlen = len - alen - 1;

		if (nlen == 0 || nlen >= sizeof(num))
			return -1;
		memcpy(num, slash + 1, nlen);
		num[nlen] = '\0';
		if (num[0] < '0' || num[0] > '9')
			return -1;
		bits = strtoul(num, &end, 10);
		if (*end != '\0' || bits > maxbits)
			return -1;
	}
	out->prefix = (unsigned)(v4 ? bits + 96 : bits);
	mask_bits(&out->net, out->prefix);
	return 0;
}

static bool
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int
relay_cidr_list_parse(const char *spec, struct relay_cidr_list *out,
    char *err, size_t errlen)
{
	const char *p = spec ? spec : "";
	size_t n = 0, cap = 0, len;
	struct relay_cidr *v = NULL, *nv;

	while (*p != '\0') {
		while (*p != '\0' && is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		for (len = 0; p[len] != '\0' && !is_sep(p[len]); len++)
			;
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				snprintf(err, errlen, "out of memory");
				free(v);
				return -1;
			}
			v = nv;
		}
		if (parse_cidr(p, len, &v[n]) != 0) {
			snprintf(err, errlen, "'%.*s' is not an IP address or CIDR",
			    (int)(len > 60 ? 60 : len), p);
			free(v);
			return -1;
		}
		n++;
		p += len;
	}
	out->v = v;
	out->n = n;
	return 0;
}

void
relay_cidr_list_free(struct relay_cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool
relay_cidr_list_contains(const struct relay_cidr_list *l,
    const struct relay_ip *ip)
{
	struct relay_ip m;
	size_t i;

	for (i = 0; i < l->n; i++) {
		m = *ip;
		mask_bits(&m, l->v[i].prefix);
		if (memcmp(m.b, l->v[i].net.b, 16) == 0)
			return true;
	}
	return false;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int
relay_client_ip(const struct relay_cidr_list *trusted, const char *remote,
    const char *xff, struct relay_ip *out)
{
	struct relay_ip hop;
	const char *end, *start, *a, *b;

	if (remote == NULL || relay_ip_parse(remote, strlen(remote), out) != 0)
		return -1;
	if (trusted->n == 0 || xff == NULL || !relay_cidr_list_contains(trusted, out))
		return 0;
	/* Walk the entries right to left; *out is the last hop believed. */
	end = xff + strlen(xff);
	while (end > xff) {
		start = end;
		while (start > xff && start[-1] != ',')
			start--;
		a = start;
		b = end;
		while (a < b && is_blank(*a))
			a++;
		while (b > a && is_blank(b[-1]))
			b--;
		if (a < b) {
			if (relay_ip_parse(a, (size_t)(b - a), &hop) != 0)
				return 0;
			*out = hop;
			if (!relay_cidr_list_contains(trusted, &hop))
				return 0;
		}
		end = start > xff ? start - 1 : xff;
	}
	return 0;
}

/* ---- limiter ------------------------------------------------------------ */

struct client {
	struct relay_hnode h;
	struct client *next_all;
	struct relay_ip ip;
	int64_t count;
};

struct relay_ratelimit {
	pthread_mutex_t mu;
	int64_t limit, window_ms, window;	/* window = index of the current one */
	size_t max_clients;
	struct relay_hashtab tab;
	struct client *all;
};

static const char *
client_key(const struct relay_hnode *n, size_t *len)
{
	const struct client *c = const_container_of(n, struct client, h);

	*len = sizeof(c->ip.b);
	return (const char *)c->ip.b;
}

static void
clear_clients(struct relay_ratelimit *rl)
{
	struct client *c, *next;

	for (c = rl->all; c != NULL; c = next) {
		next = c->next_all;
		relay_hashtab_del(&rl->tab, &c->h);
		free(c);
	}
	rl->all = NULL;
}

struct relay_ratelimit *
relay_ratelimit_new(int64_t limit, int64_t window_ms, size_t max_clients)
{
	struct relay_ratelimit *rl;
	uint64_t k[2];

	if (limit <= 0 || window_ms <= 0 || max_clients == 0)
		return NULL;
	if (relay_random_bytes(k, sizeof(k)) != 0)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return NULL;
	if (relay_hashtab_init(&rl->tab, client_key, k[0], k[1]) != 0) {
		free(rl);
		return NULL;
	}
	pthread_mutex_init(&rl->mu, NULL);
	rl->limit = limit;
	rl->window_ms = window_ms;
	rl->window = -1;
	rl->max_clients = max_clients;
	return rl;
}

void
relay_ratelimit_free(struct relay_ratelimit *rl)
{
	if (rl == NULL)
		return;
	clear_clients(rl);
	relay_hashtab_destroy(&rl->tab);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

enum relay_rate_verdict
relay_ratelimit_hit(struct relay_ratelimit *rl, const struct relay_ip *ip,
    int64_t now_ms, int64_t *retry_after_ms)
{
	enum relay_rate_verdict v = RELAY_RATE_ALLOW;
	int64_t window = now_ms / rl->window_ms;
	struct relay_hnode *n;
	struct client *c;

	*retry_after_ms = 0;
	pthread_mutex_lock(&rl->mu);
	if (window != rl->window) {
		clear_clients(rl);
		rl->window = window;
	}
	n = relay_hashtab_get(&rl->tab, (const char *)ip->b, sizeof(ip->b));
	if (n != NULL) {
		c = container_of(n, struct client, h);
		if (c->count >= rl->limit) {
			v = RELAY_RATE_DENY;
			*retry_after_ms = (window + 1) * rl->window_ms - now_ms;
		} else
			c->count++;
	} else if (rl->tab.count >= rl->max_clients ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		v = RELAY_RATE_UNTRACKED;
	} else {
		c->ip = *ip;
		c->count = 1;
		c->next_all = rl->all;
		rl->all = c;
		relay_hashtab_put(&rl->tab, &c->h);
	}
	pthread_mutex_unlock(&rl->mu);
	return v;
}

size_t
relay_ratelimit_tracked(struct relay_ratelimit *rl)
{
	size_t n;

	pthread_mutex_lock(&rl->mu);
	n = rl->tab.count;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
