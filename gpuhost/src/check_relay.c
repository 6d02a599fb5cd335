/*
 * check_relay.c -- the `relay` check: which relay server.py will poll,
 * and whether this machine reaches it now (it may only later: a failure
 * is a warning by default, never a reason to keep the node down).
 */
#include <stdio.h>
#include <string.h>

#include "checks.h"
#include "os.h"
#include "probe.h"

/* Probed in order; the first one that answers 200 decides. */
static const char *const relay_paths[] = { "/livez", "/healthz" };

void
gpuhost_check_relay(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_jbuf j = { 0 };
	enum gpuhost_outcome raw = GPUHOST_FAIL;
	char url[GPUHOST_RELAY_HOST_MAX + 64], err[256] = "", num[64];
	const char *path = NULL;
	long status = 0;
	unsigned mode;
	int priv;

	gpuhost_jbuf_raw(&j, "{\"url\":");
	if (!cfg->relay_set) {
		gpuhost_jbuf_raw(&j, "null");
		gpuhost_check_msg(c, "relay.url is not set: server.py will poll "
		    "its own default relay (token.place's public one), not "
		    "yours; set [relay] url\n");
		goto token;
	}
	gpuhost_jbuf_str(&j, cfg->relay.base);
	snprintf(num, sizeof(num), ",\"port\":%u", cfg->relay.port);
	gpuhost_jbuf_raw(&j, num);
	for (size_t i = 0; i < sizeof(relay_paths) / sizeof(relay_paths[0]);
	    i++) {
		snprintf(url, sizeof(url), "%s:%u%s", cfg->relay.base,
		    cfg->relay.port, relay_paths[i]);
		path = relay_paths[i];
		if (gpuhost_probe_url(url, (int)(cfg->relay_timeout * 1000),
		    &status, err, sizeof(err)) != 0) {
			status = 0;
			break;	/* no answer at all: the next path cannot help */
		}
		if (status == 200) {
			raw = GPUHOST_PASS;
			break;
		}
		snprintf(err, sizeof(err), "HTTP %ld", status);
	}
	gpuhost_jbuf_raw(&j, ",\"probe\":");
	gpuhost_jbuf_str(&j, path);
	snprintf(num, sizeof(num), ",\"status\":%ld,\"reachable\":%s", status,
	    raw == GPUHOST_PASS ? "true" : "false");
	gpuhost_jbuf_raw(&j, num);
	if (raw == GPUHOST_PASS)
		gpuhost_check_msg(c, "relay %s:%u is reachable (GET %s: 200); "
		    "server.py gets --relay_url %s --relay_port %u\n",
		    cfg->relay.base, cfg->relay.port, path, cfg->relay.base,
		    cfg->relay.port);
	else {
		gpuhost_check_msg(c, "relay %s:%u is not reachable from here "
		    "(GET %s: %s); it may be only later, server.py keeps "
		    "polling\n", cfg->relay.base, cfg->relay.port, path, err);
		gpuhost_jbuf_raw(&j, ",\"error\":");
		gpuhost_jbuf_str(&j, err);
	}
token:
	gpuhost_jbuf_raw(&j, cfg->relay_token[0] != '\0' ?
	    ",\"token\":\"set\"" : ",\"token\":\"unset\"");
	if (cfg->relay_token[0] != '\0' &&
	    (priv = gpuhost_file_private(cfg->config_path, &mode)) == 0) {
		gpuhost_check_msg(c, "%s holds relay.token but other users can "
		    "read it (mode %03o): chmod 600 it\n", cfg->config_path, mode);
		raw = GPUHOST_FAIL;
	}
	gpuhost_jbuf_raw(&j, "}");
	c->details = gpuhost_jbuf_take(&j);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
}
