/*
 * firewall.c -- Linux firewall inspection, best effort: ufw, then
 * firewalld, then nftables. Reading rules usually needs root; anything
 * that cannot be read is reported as unknown, never as a failure.
 */
#define _GNU_SOURCE 1
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checks.h"
#include "../fwrules.h"

#define FW_OUTPUT_MAX 65536

/* Runs a fixed command line; returns its exit status or -1, output in buf. */
static int
run(const char *cmd, char *buf, size_t len)
{
	FILE *fp = popen(cmd, "r");
	size_t n = 0;
	int st;

	buf[0] = '\0';
	if (fp == NULL)
		return -1;
	while (n + 1 < len) {
		size_t r = fread(buf + n, 1, len - n - 1, fp);

		if (r == 0)
			break;
		n += r;
	}
	buf[n] = '\0';
	st = pclose(fp);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

void
gpuhost_firewall_check(const struct gpuhost_config *cfg,
    enum gpuhost_outcome *raw, char *msg, size_t msglen, char **details)
{
	char *out = malloc(FW_OUTPUT_MAX), cmd[256];
	uint16_t port = (uint16_t)cfg->port;
	const char *tool = "none";
	int rc;

	*details = NULL;
	*raw = GPUHOST_UNKNOWN;
	if (out == NULL) {
		snprintf(msg, msglen, "out of memory\n");
		return;
	}
	rc = run("ufw status 2>/dev/null", out, FW_OUTPUT_MAX);
	if (rc == 0 && strstr(out, "Status:") != NULL) {
		tool = "ufw";
		switch (gpuhost_ufw_allows(out, port)) {
		case 1:
			*raw = GPUHOST_PASS;
			snprintf(msg, msglen, "ufw lets TCP %u in\n", port);
			break;
		case 0:
			*raw = GPUHOST_FAIL;
			snprintf(msg, msglen, "ufw is active and does not allow "
			    "TCP %u (ufw allow %u/tcp)\n", port, port);
			break;
		default:
			snprintf(msg, msglen, "ufw output not understood\n");
		}
		goto out;
	}
	rc = run("firewall-cmd --state 2>/dev/null", out, FW_OUTPUT_MAX);
	if (rc == 0 && strncmp(out, "running", 7) == 0) {
		tool = "firewalld";
		snprintf(cmd, sizeof(cmd),
		    "firewall-cmd --query-port=%u/tcp 2>/dev/null", port);
		rc = run(cmd, out, FW_OUTPUT_MAX);
		if (rc == 0) {
			*raw = GPUHOST_PASS;
			snprintf(msg, msglen, "firewalld allows TCP %u\n", port);
		} else if (rc == 1) {
			*raw = GPUHOST_FAIL;
			snprintf(msg, msglen, "firewalld does not allow TCP %u "
			    "(firewall-cmd --permanent --add-port=%u/tcp)\n", port,
			    port);
		} else
			snprintf(msg, msglen, "firewalld query failed\n");
		goto out;
	}
	rc = run("nft list ruleset 2>/dev/null", out, FW_OUTPUT_MAX);
	if (rc == 0) {
		tool = "nftables";
		if (strstr(out, "hook input") == NULL) {
			*raw = GPUHOST_PASS;
			snprintf(msg, msglen, "nftables has no input chain: "
			    "nothing filters inbound TCP %u\n", port);
		} else
			snprintf(msg, msglen, "nftables has input rules; whether "
			    "they allow TCP %u is not analysed\n", port);
		goto out;
	}
	snprintf(msg, msglen, "no readable firewall (ufw, firewalld, nftables); "
	    "state of inbound TCP %u unknown\n", port);
out:
	{
		struct gpuhost_jbuf j = { 0 };

		gpuhost_jbuf_raw(&j, "{\"tool\":");
		gpuhost_jbuf_str(&j, tool);
		gpuhost_jbuf_raw(&j, "}");
		*details = gpuhost_jbuf_take(&j);
	}
	free(out);
}
