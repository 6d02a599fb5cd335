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

#include "tokenplace/buf.h"

#include "../check.h"
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
gpuhost_check_firewall(const struct gpuhost_config *cfg,
    struct gpuhost_check *c)
{
	char *out = malloc(FW_OUTPUT_MAX), cmd[256];
	uint16_t port = (uint16_t)cfg->port;
	const char *tool = "none";
	enum gpuhost_outcome raw = GPUHOST_UNKNOWN;
	int rc;

	if (out == NULL) {
		gpuhost_check_msg(c, "out of memory\n");
		c->outcome = gpuhost_apply_mode(c->mode, raw);
		return;
	}
	rc = run("ufw status 2>/dev/null", out, FW_OUTPUT_MAX);
	if (rc == 0 && strstr(out, "Status:") != NULL) {
		tool = "ufw";
		switch (gpuhost_ufw_allows(out, port)) {
		case 1:
			raw = GPUHOST_PASS;
			gpuhost_check_msg(c, "ufw lets TCP %u in\n", port);
			break;
		case 0:
			raw = GPUHOST_FAIL;
			gpuhost_check_msg(c, "ufw is active and does not allow "
			    "TCP %u (ufw allow %u/tcp)\n", port, port);
			break;
		default:
			gpuhost_check_msg(c, "ufw output not understood\n");
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
			raw = GPUHOST_PASS;
			gpuhost_check_msg(c, "firewalld allows TCP %u\n", port);
		} else if (rc == 1) {
			raw = GPUHOST_FAIL;
			gpuhost_check_msg(c, "firewalld does not allow TCP %u "
			    "(firewall-cmd --permanent --add-port=%u/tcp)\n", port,
			    port);
		} else
			gpuhost_check_msg(c, "firewalld query failed\n");
		goto out;
	}
	rc = run("nft list ruleset 2>/dev/null", out, FW_OUTPUT_MAX);
	if (rc == 0) {
		tool = "nftables";
		if (strstr(out, "hook input") == NULL) {
			raw = GPUHOST_PASS;
			gpuhost_check_msg(c, "nftables has no input chain: "
			    "nothing filters inbound TCP %u\n", port);
		} else
			gpuhost_check_msg(c, "nftables has input rules; whether "
			    "they allow TCP %u is not analysed\n", port);
		goto out;
	}
	gpuhost_check_msg(c, "no readable firewall (ufw, firewalld, nftables); "
	    "state of inbound TCP %u unknown\n", port);
out:
	{
		struct tp_buf j = TP_BUF_INIT;

		tp_buf_puts(&j, "{\"tool\":");
		tp_buf_json_str(&j, tool);
		tp_buf_puts(&j, "}");
		c->details = tp_buf_finish(&j, NULL);
	}
	c->outcome = gpuhost_apply_mode(c->mode, raw);
	free(out);
}
