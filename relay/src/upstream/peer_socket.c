/*
 * peer_socket.c -- locate and watch the client's socket (see peer_socket.h).
 *
 * The 4-tuple of a live TCP connection is unique, and the thread serving
 * a connection is the only one that can close it, so once found the
 * descriptor stays ours for the rest of the request even while other
 * threads open and close descriptors.
 */
#include "upstream/peer_socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static _Thread_local int cached_fd = -1;

static bool
socket_is(int fd, int local_port, const struct in_addr *peer, int peer_port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0 ||
	    a.sin_family != AF_INET || ntohs(a.sin_port) != local_port)
		return false;
	alen = sizeof(a);
	if (getpeername(fd, (struct sockaddr *)&a, &alen) != 0 ||
	    a.sin_family != AF_INET)
		return false;
	return ntohs(a.sin_port) == peer_port &&
	    a.sin_addr.s_addr == peer->s_addr;
}

int
relay_peer_socket_find(int local_port, const char *peer_addr, int peer_port)
{
	struct in_addr peer;
	struct dirent *de;
	DIR *d;
	int found = -1;

	if (peer_addr == NULL || inet_pton(AF_INET, peer_addr, &peer) != 1 ||
	    local_port <= 0 || peer_port <= 0)
		return -1;
	if (cached_fd >= 0 && socket_is(cached_fd, local_port, &peer, peer_port))
		return cached_fd;
	cached_fd = -1;
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long v;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		errno = 0;
		v = strtol(de->d_name, &end, 10);
		if (errno != 0 || *end != '\0' || v < 0 || v > 0x7fffffff ||
		    v == dirfd(d))
			continue;
		if (socket_is((int)v, local_port, &peer, peer_port)) {
			found = (int)v;
			break;
		}
	}
	closedir(d);
	cached_fd = found;
	return found;
}

enum relay_peer_state
relay_peer_socket_state(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return RELAY_PEER_DATA;
	if (n == 0)
		return RELAY_PEER_GONE;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return RELAY_PEER_QUIET;
	return RELAY_PEER_GONE;
}
