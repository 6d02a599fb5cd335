/*
 * check_relay.c -- the `relay` check: which relay server.py will poll,
 * and whether this machine reaches it now (it may only later: a failure
 * is a warning by default, never a reason to keep the node down).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"

#include "check.h"
#include "cmdline.h"
#include "helpopts.h"
#include "os.h"
#include "probe.h"

/* Probed in order; the first one that answers 200 decides. */
static const char *const relay_paths[] = { "/livez", "/healthz" };

/*
 * Without relay.url, python.args may still name the relay itself
 * (--relay_url/--relay_port, as a hand-written command line does): the
 * relay server.py polls is then read from there. Returns 1 with *r
 * filled, 0 when the args name no relay (the script's default), -1 when
 * they name one gpuhost cannot use (reason in why).
 */
static int
relay_from_args(const struct gpuhost_config *cfg, struct gpuhost_relay_url *r,
    char *why, size_t whylen)
{
	struct gpuhost_argv av = { 0 };
	char expanded[4096], err[128], url[GPUHOST_RELAY_HOST_MAX + 16],
	    port[16], full[GPUHOST_RELAY_HOST_MAX + 40], *end;
	unsigned long p = 0;
	int has_url, has_port, rc = 0;

	if (gpuhost_config_expand_args(cfg, expanded, sizeof(expanded)) != 0 ||
	    gpuhost_argv_split(&av, expanded, err, sizeof(err)) != 0) {
		gpuhost_argv_free(&av);
		return 0;
	}
	has_url = gpuhost_argv_option_value(av.argc, av.argv, "--relay_url",
	    url, sizeof(url));
	has_port = gpuhost_argv_option_value(av.argc, av.argv, "--relay_port",
	    port, sizeof(port));
	gpuhost_argv_free(&av);
	if (!has_url)
		return 0;
	if (has_port) {
		p = strtoul(port, &end, 10);
		if (port[0] == '\0' || *end != '\0' || p < 1 || p > 65535) {
			snprintf(why, whylen, "python.args: --relay_port %s is "
			    "not a port", port);
			return -1;
		}
	}
	/* server.py appends ":<relay_port>" to --relay_url itself. */
	snprintf(full, sizeof(full), "%s", url);
	if (gpuhost_relay_url_parse(full, r, why, whylen) != 0)
		rc = -1;
	else if (r->port_given) {
		snprintf(why, whylen, "python.args: --relay_url %.160s carries a "
		    "port; server.py appends --relay_port to it", url);
		rc = -1;
	} else if (has_port)
		r->port = (unsigned)p;
	else {
		snprintf(why, whylen, "python.args gives --relay_url without "
		    "--relay_port: server.py then uses its default port");
		rc = -1;
	}
	return rc < 0 ? -1 : 1;
}

void
gpuhost_check_relay(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_relay_url from_args;
	const struct gpuhost_relay_url *relay = &cfg->relay;
	struct tp_buf j = TP_BUF_INIT;
	char why[300] = "";
	int fa = 0;
	enum gpuhost_outcome raw = GPUHOST_FAIL;
	char url[GPUHOST_RELAY_HOST_MAX + 64], err[256] = "", num[64];
	const char *path = NULL;
	long status = 0;
	unsigned mode;
	int priv;

	tp_buf_puts(&j, "{\"url\":");
	if (!cfg->relay_set &&
	    (fa = relay_from_args(cfg, &from_args, why, sizeof(why))) == 0) {
		tp_buf_puts(&j, "null");
		gpuhost_check_msg(c, "relay.url is not set: server.py will poll "
		    "its own default relay (token.place's public one), not "
		    "yours; set [relay] url\n");
		goto token;
	}
	if (fa < 0) {
		tp_buf_puts(&j, "null,\"source\":\"python.args\"");
		gpuhost_check_msg(c, "%s\n", why);
		goto token;
	}
	if (fa > 0) {
		relay = &from_args;
		gpuhost_check_msg(c, "relay named by python.args "
		    "(--relay_url/--relay_port)\n");
	}
	tp_buf_json_str(&j, relay->base);
	tp_buf_puts(&j, fa > 0 ? ",\"source\":\"python.args\"" :
	    ",\"source\":\"relay.url\"");
	snprintf(num, sizeof(num), ",\"port\":%u", relay->port);
	tp_buf_puts(&j, num);
	for (size_t i = 0; i < sizeof(relay_paths) / sizeof(relay_paths[0]);
	    i++) {
		snprintf(url, sizeof(url), "%s:%u%s", relay->base,
		    relay->port, relay_paths[i]);
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
	tp_buf_puts(&j, ",\"probe\":");
	tp_buf_json_str(&j, path);
	snprintf(num, sizeof(num), ",\"status\":%ld,\"reachable\":%s", status,
	    raw == GPUHOST_PASS ? "true" : "false");
	tp_buf_puts(&j, num);
	if (raw == GPUHOST_PASS)
		gpuhost_check_msg(c, "relay %s:%u is reachable (GET %s: 200); "
		    "server.py gets --relay_url %s --relay_port %u\n",
		    relay->base, relay->port, path, relay->base,
		    relay->port);
	else {
		gpuhost_check_msg(c, "relay %s:%u is not reachable from here "
		    "(GET %s: %s); it may be only later, server.py keeps "
		    "polling\n", relay->base, relay->port, path, err);
		tp_buf_puts(&j, ",\"error\":");
		tp_buf_json_str(&j, err);
	}
token:
	tp_buf_puts(&j, cfg->relay_token[0] != '\0' ?
	    ",\"token\":\"set\"" : ",\"token\":\"unset\"");
	if (cfg->relay_token[0] != '\0' &&
	    (priv = gpuhost_file_private(cfg->config_path, &mode)) == 0) {
		gpuhost_check_msg(c, "%s holds relay.token but other users can "
		    "read it (mode %03o): chmod 600 it\n", cfg->config_path, mode);
		raw = GPUHOST_FAIL;
	}
	tp_buf_puts(&j, "}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
}
