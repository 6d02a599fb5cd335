/*
 * netcheck.c -- DNS name vs local addresses, port bindability and owner,
 * TCP connect probe. One file, two OS back ends: the comparison logic is
 * shared and pure, only the gathering differs.
 */
#ifdef _WIN32
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0601
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <iphlpapi.h>
#include <windows.h>
#else
#define _GNU_SOURCE 1	/* getifaddrs, NI_MAXHOST, strcasestr-free */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/netcheck.h"

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
tp_netaddr_parse(const char *text, struct tp_netaddr *out)
{
	struct in_addr v4;
	struct in6_addr v6;

	memset(out, 0, sizeof(*out));
	if (text == NULL)
		return -1;
	if (inet_pton(AF_INET, text, &v4) == 1) {
		out->family = TP_NETADDR_V4;
		memcpy(out->bytes, &v4, 4);
	} else if (inet_pton(AF_INET6, text, &v6) == 1) {
		out->family = TP_NETADDR_V6;
		memcpy(out->bytes, &v6, 16);
	} else
		return -1;
	snprintf(out->text, sizeof(out->text), "%s", text);
	return 0;
}

static const unsigned char v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

bool
tp_netaddr_is_loopback(const struct tp_netaddr *a)
{
	static const unsigned char v6lo[16] = { [15] = 1 };

	if (a->family == TP_NETADDR_V4)
		return a->bytes[0] == 127;
	if (memcmp(a->bytes, v6lo, 16) == 0)
		return true;
	return memcmp(a->bytes, v4mapped_prefix, 12) == 0 && a->bytes[12] == 127;
}

bool
tp_netaddr_is_linklocal(const struct tp_netaddr *a)
{
	if (a->family == TP_NETADDR_V4)
		return a->bytes[0] == 169 && a->bytes[1] == 254;
	return a->bytes[0] == 0xfe && (a->bytes[1] & 0xc0) == 0x80;
}

bool
tp_netaddr_equal(const struct tp_netaddr *a, const struct tp_netaddr *b)
{
	size_t n = a->family == TP_NETADDR_V4 ? 4 : 16;

	return a->family == b->family && memcmp(a->bytes, b->bytes, n) == 0;
}

/* Appends unless already present; counts what does not fit. */
static void
list_add(struct tp_netaddr_list *l, const struct tp_netaddr *a)
{
	for (size_t i = 0; i < l->n; i++) {
		if (tp_netaddr_equal(&l->a[i], a) &&
		    strcmp(l->a[i].ifname, a->ifname) == 0)
			return;
	}
	if (l->n == TP_NETCHECK_MAX_ADDRS) {
		l->truncated++;
		return;
	}
	l->a[l->n++] = *a;
}

/* Fills a tp_netaddr from a sockaddr; -1 for families we ignore. */
static int
from_sockaddr(const struct sockaddr *sa, struct tp_netaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		out->family = TP_NETADDR_V4;
		memcpy(out->bytes, &sin->sin_addr, 4);
		if (inet_ntop(AF_INET, &sin->sin_addr, out->text,
		    sizeof(out->text)) == NULL)
			return -1;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		out->family = TP_NETADDR_V6;
		memcpy(out->bytes, &sin6->sin6_addr, 16);
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, out->text,
		    sizeof(out->text)) == NULL)
			return -1;
		return 0;
	}
	return -1;
}

enum tp_dns_verdict
tp_netcheck_compare(const struct tp_netaddr_list *resolved,
    const struct tp_netaddr_list *local, size_t *match)
{
	enum tp_dns_verdict best = TP_DNS_NO_MATCH;
	size_t best_i = (size_t)-1;

	if (resolved->n == 0) {
		if (match != NULL)
			*match = best_i;
		return TP_DNS_UNRESOLVED;
	}
	for (size_t i = 0; i < resolved->n; i++) {
		const struct tp_netaddr *r = &resolved->a[i];
		enum tp_dns_verdict v = TP_DNS_NO_MATCH;

		if (tp_netaddr_is_loopback(r))
			v = TP_DNS_MATCH_LOOPBACK;
		else {
			for (size_t k = 0; k < local->n; k++) {
				if (!tp_netaddr_equal(r, &local->a[k]))
					continue;
				v = tp_netaddr_is_linklocal(r) ?
				    TP_DNS_MATCH_LINKLOCAL : TP_DNS_MATCH;
				break;
			}
		}
		if (v < best) {
			best = v;
			best_i = i;
		}
	}
	if (match != NULL)
		*match = best_i;
	return best;
}

const char *
tp_dns_verdict_name(enum tp_dns_verdict v)
{
	switch (v) {
	case TP_DNS_MATCH:
		return "match";
	case TP_DNS_MATCH_LINKLOCAL:
		return "match-link-local";
	case TP_DNS_MATCH_LOOPBACK:
		return "match-loopback-only";
	case TP_DNS_NO_MATCH:
		return "no-match";
	case TP_DNS_UNRESOLVED:
		return "unresolved";
	}
	return "unresolved";
}

/* Builds a sockaddr for a numeric host (NULL/"" = any IPv4) and port. */
static int
make_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct tp_netaddr a;

	memset(ss, 0, sizeof(*ss));
	if (host == NULL || host[0] == '\0')
		host = "0.0.0.0";
	if (tp_netaddr_parse(host, &a) != 0)
		return -1;
	if (a.family == TP_NETADDR_V4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a.bytes, 4);
		*sslen = (socklen_t)sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a.bytes, 16);
		*sslen = (socklen_t)sizeof(*sin6);
	}
	return 0;
}

#ifdef _WIN32
/* ------------------------------------------------------------------ Win32 */

int
tp_netcheck_init(void)
{
	WSADATA wsa;

	return WSAStartup(MAKEWORD(2, 2), &wsa) == 0 ? 0 : -1;
}

static void
wide_to_utf8(const wchar_t *w, char *out, size_t outlen)
{
	int n;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (w == NULL)
		return;
	n = WideCharToMultiByte(CP_UTF8, 0, w, -1, out,
	    outlen > 0x7fffffff ? 0x7fffffff : (int)outlen, NULL, NULL);
	if (n <= 0)
		out[0] = '\0';
	out[outlen - 1] = '\0';
}

static void
win_errtext(DWORD code, char *buf, size_t len)
{
	wchar_t wbuf[256];
	DWORD n;

	n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM |
	    FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, wbuf,
	    (DWORD)(sizeof(wbuf) / sizeof(wbuf[0])), NULL);
	while (n > 0 && (wbuf[n - 1] == L'\r' || wbuf[n - 1] == L'\n' ||
	    wbuf[n - 1] == L' ' || wbuf[n - 1] == L'.'))
		wbuf[--n] = L'\0';
	if (n == 0)
		snprintf(buf, len, "error %lu", (unsigned long)code);
	else
		wide_to_utf8(wbuf, buf, len);
}

int
tp_netcheck_resolve(const char *name, struct tp_netaddr_list *out, char *err,
    size_t errlen)
{
	ADDRINFOW hints, *res = NULL;
	wchar_t wname[512];
	char reason[200];
	int rc;

	memset(out, 0, sizeof(*out));
	if (name == NULL || name[0] == '\0' ||
	    MultiByteToWideChar(CP_UTF8, 0, name, -1, wname,
	    (int)(sizeof(wname) / sizeof(wname[0]))) == 0) {
		seterr(err, errlen, "invalid name");
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = GetAddrInfoW(wname, NULL, &hints, &res);
	if (rc != 0) {
		win_errtext((DWORD)rc, reason, sizeof(reason));
		seterr(err, errlen, "%s (%d)", reason, rc);
		return -1;
	}
	for (ADDRINFOW *ai = res; ai != NULL; ai = ai->ai_next) {
		struct tp_netaddr a;

		if (from_sockaddr(ai->ai_addr, &a) == 0)
			list_add(out, &a);
	}
	FreeAddrInfoW(res);
	if (out->n == 0) {
		seterr(err, errlen, "no IPv4/IPv6 address for %s", name);
		return -1;
	}
	return 0;
}

int
tp_netcheck_local_addrs(struct tp_netaddr_list *out, char *err, size_t errlen)
{
	IP_ADAPTER_ADDRESSES *aa = NULL, *p;
	ULONG len = 16384, rc = ERROR_BUFFER_OVERFLOW;
	char reason[200];

	memset(out, 0, sizeof(*out));
	for (int tries = 0; tries < 4 && rc == ERROR_BUFFER_OVERFLOW; tries++) {
		free(aa);
		aa = malloc(len);
		if (aa == NULL) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
		rc = GetAdaptersAddresses(AF_UNSPEC, GAA_FLAG_SKIP_ANYCAST |
		    GAA_FLAG_SKIP_MULTICAST | GAA_FLAG_SKIP_DNS_SERVER, NULL, aa,
		    &len);
	}
	if (rc != NO_ERROR) {
		free(aa);
		win_errtext(rc, reason, sizeof(reason));
		seterr(err, errlen, "GetAdaptersAddresses: %s (%ld)", reason,
		    (long)rc);
		return -1;
	}
	for (p = aa; p != NULL; p = p->Next) {
		char ifname[TP_NETCHECK_IFNAME];

		if (p->OperStatus != IfOperStatusUp)
			continue;
		wide_to_utf8(p->FriendlyName, ifname, sizeof(ifname));
		if (ifname[0] == '\0')
			snprintf(ifname, sizeof(ifname), "%s",
			    p->AdapterName ? p->AdapterName : "");
		for (IP_ADAPTER_UNICAST_ADDRESS *u = p->FirstUnicastAddress;
		    u != NULL; u = u->Next) {
			struct tp_netaddr a;

			if (from_sockaddr(u->Address.lpSockaddr, &a) != 0)
				continue;
			snprintf(a.ifname, sizeof(a.ifname), "%s", ifname);
			list_add(out, &a);
		}
	}
	free(aa);
	return 0;
}

enum tp_port_state
tp_netcheck_port_bindable(const char *host, uint16_t port, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	SOCKET s;
	BOOL on = TRUE;
	int rc, e;
	char reason[200];

	if (make_sockaddr(host, port, &ss, &sslen) != 0) {
		seterr(err, errlen, "not a numeric address: %s", host ? host : "");
		return TP_PORT_ERROR;
	}
	s = socket(ss.ss_family, SOCK_STREAM, IPPROTO_TCP);
	if (s == INVALID_SOCKET) {
		e = WSAGetLastError();
		win_errtext((DWORD)e, reason, sizeof(reason));
		seterr(err, errlen, "socket: %s (%d)", reason, e);
		return TP_PORT_ERROR;
	}
	/* Exclusive, so a listener with SO_REUSEADDR cannot hide from us. */
	(void)setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
	    (const char *)&on, (int)sizeof(on));
	rc = bind(s, (struct sockaddr *)&ss, sslen);
	e = rc == 0 ? 0 : WSAGetLastError();
	if (rc == 0)
		rc = listen(s, 1);
	closesocket(s);
	if (e == 0 && rc == 0)
		return TP_PORT_FREE;
	if (e == WSAEADDRINUSE || e == WSAEACCES)
		return TP_PORT_IN_USE;
	win_errtext((DWORD)e, reason, sizeof(reason));
	seterr(err, errlen, "bind: %s (%d)", reason, e);
	return TP_PORT_ERROR;
}

static void
owner_name(DWORD pid, struct tp_port_owner *owner)
{
	HANDLE h;
	wchar_t path[MAX_PATH];
	DWORD n = MAX_PATH;

	owner->name[0] = '\0';
	h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
	if (h == NULL)
		return;
	if (QueryFullProcessImageNameW(h, 0, path, &n))
		wide_to_utf8(path, owner->name, sizeof(owner->name));
	CloseHandle(h);
}

int
tp_netcheck_port_owner(uint16_t port, struct tp_port_owner *owner)
{
	static const ULONG families[2] = { AF_INET, AF_INET6 };

	memset(owner, 0, sizeof(*owner));
	for (size_t f = 0; f < 2; f++) {
		void *tab = NULL;
		DWORD size = 0, rc, found = 0;
		bool hit = false;

		rc = GetExtendedTcpTable(NULL, &size, FALSE, families[f],
		    TCP_TABLE_OWNER_PID_LISTENER, 0);
		if (rc != ERROR_INSUFFICIENT_BUFFER || size == 0)
			continue;
		size += 1024;
		tab = malloc(size);
		if (tab == NULL)
			return -1;
		rc = GetExtendedTcpTable(tab, &size, FALSE, families[f],
		    TCP_TABLE_OWNER_PID_LISTENER, 0);
		if (rc == NO_ERROR && families[f] == AF_INET) {
			MIB_TCPTABLE_OWNER_PID *t = tab;

			for (DWORD i = 0; i < t->dwNumEntries && !hit; i++) {
				if (ntohs((u_short)t->table[i].dwLocalPort) == port) {
					found = t->table[i].dwOwningPid;
					hit = true;
				}
			}
		} else if (rc == NO_ERROR) {
			MIB_TCP6TABLE_OWNER_PID *t = tab;

			for (DWORD i = 0; i < t->dwNumEntries && !hit; i++) {
				if (ntohs((u_short)t->table[i].dwLocalPort) == port) {
					found = t->table[i].dwOwningPid;
					hit = true;
				}
			}
		}
		free(tab);
		if (hit) {
			owner->pid = (long)found;
			owner_name(found, owner);
			return 0;
		}
	}
	return -1;
}

int
tp_netcheck_tcp_connect(const char *host, uint16_t port, int timeout_ms,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	SOCKET s;
	u_long nb = 1;
	fd_set wfds, efds;
	struct timeval tv;
	int rc, e = 0, elen = (int)sizeof(e);
	char reason[200];

	if (make_sockaddr(host, port, &ss, &sslen) != 0) {
		seterr(err, errlen, "not a numeric address: %s", host ? host : "");
		return -1;
	}
	s = socket(ss.ss_family, SOCK_STREAM, IPPROTO_TCP);
	if (s == INVALID_SOCKET) {
		seterr(err, errlen, "socket failed (%d)",
		    WSAGetLastError());
		return -1;
	}
	(void)ioctlsocket(s, (long)FIONBIO, &nb);
	rc = connect(s, (struct sockaddr *)&ss, sslen);
	if (rc != 0 && WSAGetLastError() != WSAEWOULDBLOCK) {
		e = WSAGetLastError();
		goto fail;
	}
	if (rc != 0) {
		FD_ZERO(&wfds);
		FD_ZERO(&efds);
		FD_SET(s, &wfds);
		FD_SET(s, &efds);
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		rc = select(0, NULL, &wfds, &efds, &tv);
		if (rc == 0) {
			closesocket(s);
			seterr(err, errlen, "connect timed out after %d ms",
			    timeout_ms);
			return -1;
		}
		if (rc < 0 || FD_ISSET(s, &efds)) {
			(void)getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&e, &elen);
			if (e == 0)
				e = WSAECONNREFUSED;
			goto fail;
		}
	}
	closesocket(s);
	return 0;
fail:
	closesocket(s);
	win_errtext((DWORD)e, reason, sizeof(reason));
	seterr(err, errlen, "connect: %s (%d)", reason, e);
	return -1;
}

#else
/* ------------------------------------------------------------------ POSIX */

int
tp_netcheck_init(void)
{
	return 0;
}

int
tp_netcheck_resolve(const char *name, struct tp_netaddr_list *out, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (name == NULL || name[0] == '\0') {
		seterr(err, errlen, "empty name");
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc != 0) {
		seterr(err, errlen, "%s (%d)", rc == EAI_SYSTEM ?
		    strerror(errno) : gai_strerror(rc), rc);
		return -1;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		struct tp_netaddr a;

		if (from_sockaddr(ai->ai_addr, &a) == 0)
			list_add(out, &a);
	}
	freeaddrinfo(res);
	if (out->n == 0) {
		seterr(err, errlen, "no IPv4/IPv6 address for %s", name);
		return -1;
	}
	return 0;
}

int
tp_netcheck_local_addrs(struct tp_netaddr_list *out, char *err, size_t errlen)
{
	struct ifaddrs *ifa = NULL;

	memset(out, 0, sizeof(*out));
	if (getifaddrs(&ifa) != 0) {
		seterr(err, errlen, "getifaddrs: %s", strerror(errno));
		return -1;
	}
	for (struct ifaddrs *p = ifa; p != NULL; p = p->ifa_next) {
		struct tp_netaddr a;

		if ((p->ifa_flags & IFF_UP) == 0)
			continue;
		if (from_sockaddr(p->ifa_addr, &a) != 0)
			continue;
		snprintf(a.ifname, sizeof(a.ifname), "%s",
		    p->ifa_name ? p->ifa_name : "");
		list_add(out, &a);
	}
	freeifaddrs(ifa);
	return 0;
}

enum tp_port_state
tp_netcheck_port_bindable(const char *host, uint16_t port, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int s, on = 1, rc, e = 0;

	if (make_sockaddr(host, port, &ss, &sslen) != 0) {
		seterr(err, errlen, "not a numeric address: %s",
		    host ? host : "");
		return TP_PORT_ERROR;
	}
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		seterr(err, errlen, "socket: %s", strerror(errno));
		return TP_PORT_ERROR;
	}
	/* As Python's socketserver does: TIME_WAIT leftovers do not count. */
	(void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	rc = bind(s, (struct sockaddr *)&ss, sslen);
	if (rc != 0)
		e = errno;
	else if ((rc = listen(s, 1)) != 0)
		e = errno;
	close(s);
	if (rc == 0)
		return TP_PORT_FREE;
	if (e == EADDRINUSE)
		return TP_PORT_IN_USE;
	seterr(err, errlen, "bind: %s", strerror(e));
	return TP_PORT_ERROR;
}

/* Inode of a socket listening on `port`, from /proc/net/tcp{,6}; 0 if none. */
static unsigned long
listen_inode(const char *path, uint16_t port)
{
	FILE *fp = fopen(path, "re");
	char line[512];
	unsigned long inode = 0;

	if (fp == NULL)
		return 0;
	if (fgets(line, sizeof(line), fp) == NULL) {	/* header */
		fclose(fp);
		return 0;
	}
	while (inode == 0 && fgets(line, sizeof(line), fp) != NULL) {
		char local[128], remote[128];
		unsigned int st, lport;
		unsigned long ino;
		const char *colon;

		if (sscanf(line, " %*u: %127s %127s %x %*s %*s %*s %*u %*u %lu",
		    local, remote, &st, &ino) != 4)
			continue;
		colon = strrchr(local, ':');
		if (colon == NULL || sscanf(colon + 1, "%x", &lport) != 1)
			continue;
		if (st == 0x0a && lport == port)
			inode = ino;
	}
	fclose(fp);
	return inode;
}

int
tp_netcheck_port_owner(uint16_t port, struct tp_port_owner *owner)
{
	unsigned long inode;
	char want[64];
	DIR *proc;
	struct dirent *de;

	memset(owner, 0, sizeof(*owner));
	inode = listen_inode("/proc/net/tcp", port);
	if (inode == 0)
		inode = listen_inode("/proc/net/tcp6", port);
	if (inode == 0)
		return -1;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	proc = opendir("/proc");
	if (proc == NULL)
		return 0;
	while ((de = readdir(proc)) != NULL && owner->pid == 0) {
		char path[300], link[64];
		DIR *fds;
		struct dirent *fe;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		if ((fds = opendir(path)) == NULL)
			continue;
		while ((fe = readdir(fds)) != NULL) {
			char fdpath[600];
			ssize_t n;

			snprintf(fdpath, sizeof(fdpath), "%s/%s", path, fe->d_name);
			n = readlink(fdpath, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				owner->pid = pid;
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	if (owner->pid != 0) {
		char path[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%ld/exe", owner->pid);
		n = readlink(path, owner->name, sizeof(owner->name) - 1);
		owner->name[n > 0 ? n : 0] = '\0';
		if (n <= 0) {
			FILE *fp;

			snprintf(path, sizeof(path), "/proc/%ld/comm", owner->pid);
			if ((fp = fopen(path, "re")) != NULL) {
				if (fgets(owner->name, sizeof(owner->name), fp) == NULL)
					owner->name[0] = '\0';
				owner->name[strcspn(owner->name, "\n")] = '\0';
				fclose(fp);
			}
		}
	}
	return 0;
}

int
tp_netcheck_tcp_connect(const char *host, uint16_t port, int timeout_ms,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen, elen;
	struct pollfd pfd;
	int s, rc, e = 0;

	if (make_sockaddr(host, port, &ss, &sslen) != 0) {
		seterr(err, errlen, "not a numeric address: %s",
		    host ? host : "");
		return -1;
	}
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		seterr(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(s, (struct sockaddr *)&ss, sslen);
	if (rc != 0 && errno != EINPROGRESS) {
		e = errno;
		goto fail;
	}
	if (rc != 0) {
		pfd.fd = s;
		pfd.events = POLLOUT;
		do
			rc = poll(&pfd, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			close(s);
			seterr(err, errlen, "connect timed out after %d ms",
			    timeout_ms);
			return -1;
		}
		elen = (socklen_t)sizeof(e);
		if (rc < 0)
			e = errno;
		else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
			e = errno;
		if (e != 0)
			goto fail;
	}
	close(s);
	return 0;
fail:
	close(s);
	seterr(err, errlen, "connect: %s", strerror(e));
	return -1;
}
#endif
