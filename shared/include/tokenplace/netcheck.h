/*
 * tp_netcheck: the network facts a GPU host checks before it starts.
 *
 * Resolve a DNS name to its A/AAAA addresses, list the unicast addresses
 * of this host's interfaces, decide whether the name points at this host,
 * find out whether a TCP port can be bound (and, where the OS can tell,
 * who holds it), and probe whether something accepts connections on a
 * port. POSIX (getaddrinfo, getifaddrs, /proc) and Win32 (GetAddrInfoW,
 * GetAdaptersAddresses, GetExtendedTcpTable) implementations; no
 * allocation is visible to callers: results go into caller-owned structs.
 * On Windows the caller must have called WSAStartup (tp_netcheck_init()
 * does it and is a no-op elsewhere).
 */
#ifndef TOKENPLACE_NETCHECK_H
#define TOKENPLACE_NETCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_NETCHECK_MAX_ADDRS 64
#define TP_NETCHECK_ADDRSTR 64	/* fits an IPv6 literal with a %scope */
#define TP_NETCHECK_IFNAME 64

enum tp_netaddr_family {
	TP_NETADDR_V4 = 4,
	TP_NETADDR_V6 = 6,
};

struct tp_netaddr {
	enum tp_netaddr_family family;
	unsigned char bytes[16];	/* 4 or 16 significant bytes */
	char text[TP_NETCHECK_ADDRSTR];	/* numeric form, no scope */
	char ifname[TP_NETCHECK_IFNAME];	/* local addresses: interface name, else "" */
};

struct tp_netaddr_list {
	size_t n;			/* entries in a[] */
	size_t truncated;		/* addresses dropped because a[] was full */
	struct tp_netaddr a[TP_NETCHECK_MAX_ADDRS];
};

/* What the name-to-host comparison concluded, best outcome first. */
enum tp_dns_verdict {
	TP_DNS_MATCH = 0,	/* a resolved address is a routable address of this host */
	TP_DNS_MATCH_LINKLOCAL,	/* only link-local (169.254/16, fe80::/10) matches */
	TP_DNS_MATCH_LOOPBACK,	/* only loopback (127/8, ::1) matches */
	TP_DNS_NO_MATCH,	/* resolved, but to none of this host's addresses */
	TP_DNS_UNRESOLVED,	/* the name did not resolve */
};

enum tp_port_state {
	TP_PORT_FREE = 0,	/* bind() succeeded */
	TP_PORT_IN_USE,		/* EADDRINUSE / WSAEADDRINUSE */
	TP_PORT_ERROR,		/* any other failure; see the error text */
};

/* Who listens on a port, when the OS can tell. pid 0 = unknown. */
struct tp_port_owner {
	long pid;
	char name[256];		/* executable name or path, "" if unknown */
};

/* Starts the socket library (WSAStartup) on Windows; 0 or -1. */
int tp_netcheck_init(void);

/* Parses a numeric IPv4/IPv6 literal into *out. 0, or -1 if not one. */
int tp_netaddr_parse(const char *text, struct tp_netaddr *out);

/* True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
bool tp_netaddr_is_loopback(const struct tp_netaddr *a);

/* True for 169.254.0.0/16 and fe80::/10. */
bool tp_netaddr_is_linklocal(const struct tp_netaddr *a);

/* True when family and significant bytes are equal (text/ifname ignored). */
bool tp_netaddr_equal(const struct tp_netaddr *a, const struct tp_netaddr *b);

/*
 * Resolves `name` (A and AAAA, duplicates removed) into *out. Returns 0,
 * or -1 with a reason in err (the resolver's message, e.g. "Name or
 * service not known"); *out is then empty.
 */
int tp_netcheck_resolve(const char *name, struct tp_netaddr_list *out,
    char *err, size_t errlen);

/*
 * Lists the unicast addresses of this host's interfaces that are up
 * (loopback included, with their interface names). Returns 0, or -1 with
 * a reason in err.
 */
int tp_netcheck_local_addrs(struct tp_netaddr_list *out, char *err,
    size_t errlen);

/*
 * Compares resolved addresses with local ones. A resolved loopback
 * address counts as a loopback match even if the interface list does not
 * show it (Debian maps the host name to 127.0.1.1). *match (may be NULL)
 * receives the index in `resolved` of the address behind the verdict, or
 * (size_t)-1. Pure function.
 */
enum tp_dns_verdict tp_netcheck_compare(const struct tp_netaddr_list *resolved,
    const struct tp_netaddr_list *local, size_t *match);

/* "match", "match-link-local", "match-loopback-only", "no-match", "unresolved". */
const char *tp_dns_verdict_name(enum tp_dns_verdict v);

/*
 * Tries to bind TCP `port` on `host` (a numeric address; NULL or "" means
 * 0.0.0.0) the way a server would (SO_REUSEADDR on POSIX, exclusive on
 * Windows), then closes the socket. Returns the state; on TP_PORT_ERROR a
 * reason is written to err.
 */
enum tp_port_state tp_netcheck_port_bindable(const char *host, uint16_t port,
    char *err, size_t errlen);

/*
 * Finds the process listening on TCP `port` (any address). Returns 0 with
 * *owner filled (pid may still be 0 when only the socket was found), or
 * -1 when nothing was found or the OS cannot tell.
 */
int tp_netcheck_port_owner(uint16_t port, struct tp_port_owner *owner);

/*
 * Connects to host:port (numeric address) with a timeout. Returns 0 when
 * the connection was accepted, -1 otherwise (reason in err).
 */
int tp_netcheck_tcp_connect(const char *host, uint16_t port, int timeout_ms,
    char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_NETCHECK_H */
