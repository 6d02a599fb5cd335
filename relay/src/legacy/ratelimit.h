/*
 * relay_ratelimit: per-client-IP request budgets, and the IP/CIDR parsing
 * that decides who the client is behind trusted proxies.
 *
 * Addresses are held as 16 bytes (IPv4 as ::ffff:a.b.c.d), so a proxy may
 * forward IPv4 or IPv6 clients although the relay itself listens on IPv4.
 *
 * The limiter counts in fixed windows aligned to multiples of the window
 * length (like Flask-Limiter's fixed-window strategy): at most `limit`
 * requests per client per window. It tracks at most `max_clients` clients
 * per window; a client beyond that is let through untracked (counted by
 * the caller), because refusing strangers when the table is full would let
 * one address-rich client lock everybody out. Thread safe.
 */
#ifndef RELAY_RATELIMIT_H
#define RELAY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_ip {
	unsigned char b[16];
};

struct relay_cidr {
	struct relay_ip net;	/* host bits cleared */
	unsigned prefix;	/* 0..128 over the 16-byte form */
};

struct relay_cidr_list {
	struct relay_cidr *v;
	size_t n;
};

/*
 * Parses an IPv4 or IPv6 address (len bytes, no blanks). Returns 0, or -1
 * when it is not an address.
 */
int relay_ip_parse(const char *s, size_t len, struct relay_ip *out);

/* Writes the address in its usual text form (IPv4 dotted) into buf. */
void relay_ip_format(const struct relay_ip *ip, char *buf, size_t len);

/*
 * Parses a list of addresses and CIDRs separated by commas and/or blanks
 * ("10.0.0.0/8, 192.168.1.7 fd00::/8"). An empty spec gives an empty list.
 * Returns 0 and fills *out (free with relay_cidr_list_free), or -1 and a
 * reason in err (nothing allocated).
 */
int relay_cidr_list_parse(const char *spec, struct relay_cidr_list *out,
    char *err, size_t errlen);

void relay_cidr_list_free(struct relay_cidr_list *l);

bool relay_cidr_list_contains(const struct relay_cidr_list *l,
    const struct relay_ip *ip);

/*
 * The client's address: `remote` (the socket peer) unless it is a trusted
 * proxy; then X-Forwarded-For is read from the right, skipping trusted
 * proxies, and the first other address is the client. If every entry is
 * trusted the left-most one is used; an entry that does not parse stops
 * the walk at the hop that appended it. Returns 0, or -1 when `remote`
 * itself does not parse.
 */
int relay_client_ip(const struct relay_cidr_list *trusted, const char *remote,
    const char *xff, struct relay_ip *out);

enum relay_rate_verdict {
	RELAY_RATE_ALLOW = 0,
	RELAY_RATE_DENY,
	RELAY_RATE_UNTRACKED,	/* allowed: the client table was full */
};

struct relay_ratelimit;

/*
 * A limiter allowing `limit` requests per `window_ms` per client, tracking
 * up to max_clients clients. Returns NULL when out of memory or when an
 * argument is not positive.
 */
struct relay_ratelimit *relay_ratelimit_new(int64_t limit, int64_t window_ms,
    size_t max_clients);

void relay_ratelimit_free(struct relay_ratelimit *rl);

/*
 * Counts one request from `ip` at now_ms. On RELAY_RATE_DENY,
 * *retry_after_ms is the time until the window ends.
 */
enum relay_rate_verdict relay_ratelimit_hit(struct relay_ratelimit *rl,
    const struct relay_ip *ip, int64_t now_ms, int64_t *retry_after_ms);

/* Clients tracked in the current window (tests, metrics). */
size_t relay_ratelimit_tracked(struct relay_ratelimit *rl);

#endif /* RELAY_RATELIMIT_H */
