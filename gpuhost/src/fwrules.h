/*
 * fwrules.h -- the firewall decisions as pure functions, so they are unit
 * tested on Linux while the data comes from INetFwPolicy2 on Windows (or
 * ufw's output on Linux).
 */
#ifndef GPUHOST_FWRULES_H
#define GPUHOST_FWRULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* NET_FW_PROFILE2_* values. */
#define GPUHOST_FW_DOMAIN 0x1L
#define GPUHOST_FW_PRIVATE 0x2L
#define GPUHOST_FW_PUBLIC 0x4L
#define GPUHOST_FW_ALL 0x7fffffffL

#define GPUHOST_FW_PROTO_TCP 6L
#define GPUHOST_FW_PROTO_ANY 256L	/* NET_FW_IP_PROTOCOL_ANY, missing from mingw */

struct gpuhost_fwrule {
	const char *name;
	bool enabled;
	bool inbound;
	bool allow;		/* false: block */
	long protocol;		/* 6 TCP, 17 UDP, 256 any */
	const char *local_ports;	/* "*", "8000", "80,443,8000-8100", keywords */
	long profiles;		/* mask of GPUHOST_FW_* */
	const char *application;	/* full path, "" or NULL = any program */
};

enum gpuhost_fw_verdict {
	GPUHOST_FW_ALLOWED = 0,
	GPUHOST_FW_BLOCKED,	/* a matching block rule: block wins */
	GPUHOST_FW_NO_RULE,	/* nothing allows it: default inbound block applies */
};

/*
 * Whether a LocalPorts string covers port: 1 yes, 0 no, -1 malformed.
 * Keywords such as RPC or IPHTTPS never match a plain port.
 */
int gpuhost_ports_contain(const char *list, uint16_t port);

/*
 * Decides for one profile: block rules that match win over allow rules.
 * A rule matches when enabled, inbound, TCP or any protocol, covering the
 * port, active in `profile`, and for any program or for `exe` (compared
 * case-insensitively). *which (may be NULL) receives the deciding rule's
 * index or (size_t)-1.
 */
enum gpuhost_fw_verdict gpuhost_fw_evaluate(const struct gpuhost_fwrule *rules,
    size_t n, uint16_t port, long profile, const char *exe, size_t *which);

/* "domain,private" -> mask; "all" or "*" -> all. 0 or -1 on unknown names. */
int gpuhost_fw_profiles_parse(const char *s, long *mask);

/* "domain", "private", "public". */
const char *gpuhost_fw_profile_name(long bit);

/*
 * Reads `ufw status` output: 1 when inactive or a rule allows port/tcp
 * from anywhere (IPv4), 0 when active and nothing allows it or a DENY /
 * REJECT rule matches first, -1 when the text is not understood.
 */
int gpuhost_ufw_allows(const char *text, uint16_t port);

#endif
