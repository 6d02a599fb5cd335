/*
 * check_env.c -- the `env` check: server.py never runs Flask's
 * debugger where the network reaches it.
 *
 * token.place's server.py runs Flask with debug=not config.is_production,
 * and its config.py takes the environment from TOKEN_PLACE_ENV, default
 * "development". The Werkzeug debugger runs Python code for whoever can
 * reach it (its PIN is the only guard), so gpuhost sets production unless
 * [environment] names another value, and this check fails when another
 * value meets a --server_host beyond loopback.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tokenplace/buf.h"

#include "check.h"
#include "cmdline.h"
#include "helpopts.h"

/* 127.0.0.0/8, ::1 and localhost: only this machine reaches them. */
static bool
host_is_loopback(const char *h)
{
	if (strcasecmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 ||
	    strcmp(h, "[::1]") == 0)
		return true;
	return strncmp(h, "127.", 4) == 0;
}

void
gpuhost_check_environment(const struct gpuhost_config *cfg,
    struct gpuhost_check *c)
{
	struct gpuhost_argv av = { 0 };
	struct tp_buf j = TP_BUF_INIT;
	enum gpuhost_outcome raw = GPUHOST_PASS;
	const char *env = gpuhost_config_tp_env(cfg);
	bool from_config = gpuhost_config_env(cfg, GPUHOST_TP_ENV_VAR) != NULL;
	char expanded[4096], err[128], host[256];
	bool loopback;

	/* The host server.py really binds: --server_host of python.args. */
	snprintf(host, sizeof(host), "%s", cfg->host);
	if (gpuhost_config_expand_args(cfg, expanded, sizeof(expanded)) == 0 &&
	    gpuhost_argv_split(&av, expanded, err, sizeof(err)) == 0)
		(void)gpuhost_argv_option_value(av.argc, av.argv,
		    "--server_host", host, sizeof(host));
	gpuhost_argv_free(&av);
	loopback = host_is_loopback(host);
	if (strcmp(env, "production") == 0)
		gpuhost_check_msg(c, "server.py runs with %s=production%s: "
		    "Flask's debugger is off\n", GPUHOST_TP_ENV_VAR,
		    from_config ? " ([environment])" : " (gpuhost's default)");
	else if (!loopback) {
		gpuhost_check_msg(c, "%s=%s ([environment]) makes token.place "
		    "run Flask in debug mode, and server.py listens on %s: "
		    "the Werkzeug debugger runs code for anyone who reaches "
		    "it\n", GPUHOST_TP_ENV_VAR, env, host);
		gpuhost_check_msg(c, "remove %s from [environment] (gpuhost "
		    "then sets production) or listen on 127.0.0.1\n",
		    GPUHOST_TP_ENV_VAR);
		raw = GPUHOST_FAIL;
	} else {
		gpuhost_check_msg(c, "%s=%s ([environment]): Flask's debugger "
		    "is on, reachable from this machine only (%s)\n",
		    GPUHOST_TP_ENV_VAR, env, host);
		raw = GPUHOST_WARN;
	}
	tp_buf_puts(&j, "{\"token_place_env\":");
	tp_buf_json_str(&j, env);
	tp_buf_puts(&j, from_config ? ",\"source\":\"environment\"" :
	    ",\"source\":\"default\"");
	tp_buf_puts(&j, ",\"server_host\":");
	tp_buf_json_str(&j, host);
	tp_buf_puts(&j, loopback ? ",\"loopback\":true}" :
	    ",\"loopback\":false}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
}
