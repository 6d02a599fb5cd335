/*
 * check_net.c -- the `port` and `dns` checks, on libtokenplace's
 * tp_netcheck: can the server bind its port, and does the public name
 * point at this host.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tokenplace/buf.h"
#include "tokenplace/netcheck.h"

#include "check.h"

void
gpuhost_check_port(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct tp_buf j = TP_BUF_INIT;
	struct tp_port_owner owner;
	enum tp_port_state st;
	char err[256], num[64];
	uint16_t port = (uint16_t)cfg->port;

	st = tp_netcheck_port_bindable(cfg->host, port, err, sizeof(err));
	tp_buf_puts(&j, "{\"host\":");
	tp_buf_json_str(&j, cfg->host);
	snprintf(num, sizeof(num), ",\"port\":%u,\"state\":", (unsigned)port);
	tp_buf_puts(&j, num);
	tp_buf_json_str(&j, st == TP_PORT_FREE ? "free" :
	    st == TP_PORT_IN_USE ? "in-use" : "error");
	if (st == TP_PORT_FREE) {
		gpuhost_check_msg(c, "TCP %s:%u is free\n", cfg->host, (unsigned)port);
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_PASS);
	} else if (st == TP_PORT_IN_USE) {
		if (tp_netcheck_port_owner(port, &owner) == 0 && owner.pid > 0) {
			gpuhost_check_msg(c, "TCP %s:%u is already in use by pid %ld (%s)\n",
			    cfg->host, (unsigned)port, owner.pid,
			    owner.name[0] ? owner.name : "unknown program");
			snprintf(num, sizeof(num), ",\"owner_pid\":%ld", owner.pid);
			tp_buf_puts(&j, num);
			tp_buf_puts(&j, ",\"owner\":");
			tp_buf_json_str(&j, owner.name);
		} else
			gpuhost_check_msg(c, "TCP %s:%u is already in use (the OS does not say "
			    "by whom)\n", cfg->host, (unsigned)port);
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
	} else {
		gpuhost_check_msg(c, "cannot test TCP %s:%u: %s\n", cfg->host, (unsigned)port,
		    err);
		tp_buf_puts(&j, ",\"error\":");
		tp_buf_json_str(&j, err);
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
	}
	tp_buf_puts(&j, "}");
	c->details = tp_buf_finish(&j, NULL);
}

static void
list_json(struct tp_buf *j, const struct tp_netaddr_list *l, bool ifs)
{
	tp_buf_puts(j, "[");
	for (size_t i = 0; i < l->n; i++) {
		if (i > 0)
			tp_buf_puts(j, ",");
		if (ifs) {
			tp_buf_puts(j, "{\"address\":");
			tp_buf_json_str(j, l->a[i].text);
			tp_buf_puts(j, ",\"interface\":");
			tp_buf_json_str(j, l->a[i].ifname);
			tp_buf_puts(j, "}");
		} else
			tp_buf_json_str(j, l->a[i].text);
	}
	tp_buf_puts(j, "]");
}

static void
list_text(struct gpuhost_check *c, const char *title,
    const struct tp_netaddr_list *l, bool ifs)
{
	gpuhost_check_msg(c, "  %s:", title);
	if (l->n == 0)
		gpuhost_check_msg(c, " (none)");
	for (size_t i = 0; i < l->n; i++) {
		if (ifs && l->a[i].ifname[0] != '\0')
			gpuhost_check_msg(c, " %s (%s)", l->a[i].text, l->a[i].ifname);
		else
			gpuhost_check_msg(c, " %s", l->a[i].text);
	}
	gpuhost_check_msg(c, "\n");
}

void
gpuhost_check_dns(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct tp_netaddr_list *res = calloc(1, sizeof(*res));
	struct tp_netaddr_list *loc = calloc(1, sizeof(*loc));
	struct tp_buf j = TP_BUF_INIT;
	enum tp_dns_verdict v;
	enum gpuhost_outcome raw;
	char rerr[256] = "", lerr[256] = "";
	size_t m;

	if (res == NULL || loc == NULL) {
		gpuhost_check_msg(c, "out of memory\n");
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
		goto out;
	}
	if (cfg->dns_name[0] == '\0') {
		gpuhost_check_msg(c, "no network.dns_name configured\n");
		c->outcome = GPUHOST_SKIP;
		goto out;
	}
	(void)tp_netcheck_resolve(cfg->dns_name, res, rerr, sizeof(rerr));
	if (tp_netcheck_local_addrs(loc, lerr, sizeof(lerr)) != 0)
		gpuhost_check_msg(c, "cannot list local addresses: %s\n", lerr);
	v = tp_netcheck_compare(res, loc, &m);
	switch (v) {
	case TP_DNS_MATCH:
		gpuhost_check_msg(c, "%s resolves to %s, an address of this host\n",
		    cfg->dns_name, res->a[m].text);
		raw = GPUHOST_PASS;
		break;
	case TP_DNS_MATCH_LINKLOCAL:
		gpuhost_check_msg(c, "%s resolves only to link-local %s: other machines on "
		    "other links cannot reach it\n", cfg->dns_name,
		    res->a[m].text);
		raw = GPUHOST_WARN;
		break;
	case TP_DNS_MATCH_LOOPBACK:
		gpuhost_check_msg(c, "%s resolves only to loopback %s (a hosts-file entry?): "
		    "useless to remote clients\n", cfg->dns_name, res->a[m].text);
		raw = GPUHOST_WARN;
		break;
	case TP_DNS_NO_MATCH:
		gpuhost_check_msg(c, "%s does not resolve to this host\n", cfg->dns_name);
		raw = GPUHOST_FAIL;
		break;
	case TP_DNS_UNRESOLVED:
	default:
		gpuhost_check_msg(c, "%s does not resolve: %s\n", cfg->dns_name, rerr);
		raw = GPUHOST_FAIL;
		break;
	}
	list_text(c, "resolved", res, false);
	list_text(c, "this host", loc, true);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
	tp_buf_puts(&j, "{\"name\":");
	tp_buf_json_str(&j, cfg->dns_name);
	tp_buf_puts(&j, ",\"verdict\":");
	tp_buf_json_str(&j, tp_dns_verdict_name(v));
	if (v == TP_DNS_UNRESOLVED) {
		tp_buf_puts(&j, ",\"error\":");
		tp_buf_json_str(&j, rerr);
	}
	tp_buf_puts(&j, ",\"resolved\":");
	list_json(&j, res, false);
	tp_buf_puts(&j, ",\"local\":");
	list_json(&j, loc, true);
	tp_buf_puts(&j, "}");
	c->details = tp_buf_finish(&j, NULL);
out:
	free(res);
	free(loc);
}
