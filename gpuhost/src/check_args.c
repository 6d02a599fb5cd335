/*
 * check_args.c -- the `args` check: does the script accept python.args?
 *
 * token.place's server.py takes --server_host/--server_port, not the
 * --host/--port of the deployment guide's example line; with a wrong
 * option argparse exits at once and the service would restart it for
 * ever. So the script's own `--help` is asked, in a worker process (the
 * same Python, venv, options and [environment] as the service), and its
 * options are compared with the expanded python.args. The help output is
 * captured into memory only: it is shown by `check` and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"

#include "check.h"
#include "cmdline.h"
#include "helpopts.h"
#include "os.h"
#include "proc.h"
#include "worker.h"

#define ARGS_HELP_MAX 65536	/* bytes of --help output kept */
#define ARGS_KILL_WAIT_MS 10000	/* after the kill, for the exit */
#define ARGS_POLL_MS 20
#define ARGS_SHOWN_LINES 6	/* output lines quoted when help fails */

struct capture {
	struct gpuhost_mutex *mu;
	char *text;		/* the script's output (ARGS_HELP_MAX + 1) */
	size_t len;
	bool truncated;
	int isolated;		/* -1 unknown, 0 no, 1 yes */
	char note[256];		/* gpuhost-worker: lines (setup errors) */
};

/* Reader threads: the script's lines to text, the worker's own to note. */
static void
capture_line(void *arg, int stream, const char *line, size_t len)
{
	struct capture *c = arg;
	size_t plen = strlen(GPUHOST_WORKER_PREFIX);

	(void)stream;
	gpuhost_mutex_lock(c->mu);
	if (len >= plen && memcmp(line, GPUHOST_WORKER_PREFIX, plen) == 0) {
		const char *m = line + plen;
		size_t mlen = len - plen;

		if (mlen >= 17 && memcmp(m, "network: isolated", 17) == 0)
			c->isolated = 1;
		else if (mlen >= 21 && memcmp(m, "network: not isolated", 21) == 0)
			c->isolated = 0;
		else if (strncmp(m, "Python ", 7) != 0 && c->note[0] == '\0')
			snprintf(c->note, sizeof(c->note), "%.*s", (int)mlen, m);
		goto out;
	}
	if (c->len + len + 1 > ARGS_HELP_MAX) {
		c->truncated = true;
		goto out;
	}
	memcpy(c->text + c->len, line, len);
	c->len += len;
	c->text[c->len++] = '\n';
	c->text[c->len] = '\0';
out:
	gpuhost_mutex_unlock(c->mu);
}

/*
 * Runs "<exe> worker --args-help" to its end or the deadline. Returns 0
 * with *ex, 1 on timeout (killed), -1 when it could not start (err).
 */
static int
run_help(const struct gpuhost_config *cfg, struct capture *cap,
    struct gpuhost_exit *ex, char *err, size_t errlen)
{
	struct gpuhost_proc *p = NULL;
	char exe[GPUHOST_PATH_MAX];
	int64_t deadline, now;
	int rc = 0;

	if (gpuhost_exe_path(exe, sizeof(exe)) != 0) {
		snprintf(err, errlen, "cannot find own executable");
		return -1;
	}
	if (gpuhost_proc_spawn(exe, cfg->config_path, "--args-help",
	    capture_line, cap, &p, err, errlen) != 0)
		return -1;
	deadline = gpuhost_now_ms() + (int64_t)(cfg->args_timeout * 1000);
	while (!gpuhost_proc_poll(p, ex)) {
		now = gpuhost_now_ms();
		if (rc == 0 && now >= deadline) {
			gpuhost_proc_kill(p);
			rc = 1;
			deadline = now + ARGS_KILL_WAIT_MS;
		} else if (rc == 1 && now >= deadline)
			break;
		gpuhost_sleep_ms(ARGS_POLL_MS);
	}
	gpuhost_proc_free(p);
	return rc;
}

static void
jset(struct tp_buf *j, const char *key, const struct gpuhost_optset *s)
{
	tp_buf_puts(j, ",\"");
	tp_buf_puts(j, key);
	tp_buf_puts(j, "\":[");
	for (size_t i = 0; i < s->n; i++) {
		if (i > 0)
			tp_buf_puts(j, ",");
		tp_buf_json_str(j, s->opt[i]);
	}
	tp_buf_puts(j, "]");
}

/* The first lines of what the script printed, indented, for the report. */
static void
quote_output(struct gpuhost_check *c, const struct capture *cap)
{
	const char *p = cap->text;

	for (int i = 0; i < ARGS_SHOWN_LINES && *p != '\0'; i++) {
		size_t n = strcspn(p, "\n");

		gpuhost_check_msg(c, "  | %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static const char *
base_name(const char *path)
{
	const char *b = path;

	for (const char *p = path; *p != '\0'; p++) {
		if (*p == '/' || *p == '\\')
			b = p + 1;
	}
	return b;
}

void
gpuhost_check_args(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_argv av = { 0 };
	struct gpuhost_optset *used = calloc(1, sizeof(*used));
	struct gpuhost_optset *offered = calloc(1, sizeof(*offered));
	struct gpuhost_optset *missing = calloc(1, sizeof(*missing));
	struct capture cap = { 0 };
	struct tp_buf j = TP_BUF_INIT;
	struct gpuhost_exit ex = { 0 };
	enum gpuhost_outcome raw = GPUHOST_PASS;
	const char *script = base_name(cfg->script_path);
	char expanded[4096], err[512], list[1024], desc[96] = "";
	int run = -1;

	cap.isolated = -1;
	cap.mu = gpuhost_mutex_new();
	cap.text = malloc(ARGS_HELP_MAX + 1);
	if (used == NULL || offered == NULL || missing == NULL ||
	    cap.mu == NULL || cap.text == NULL) {
		gpuhost_check_msg(c, "out of memory\n");
		raw = GPUHOST_FAIL;
		goto out;
	}
	cap.text[0] = '\0';
	if (gpuhost_config_expand_args(cfg, expanded, sizeof(expanded)) != 0 ||
	    gpuhost_argv_split(&av, expanded, err, sizeof(err)) != 0) {
		gpuhost_check_msg(c, "python.args cannot be split into "
		    "arguments\n");
		raw = GPUHOST_FAIL;
		goto out;
	}
	gpuhost_opts_from_argv(av.argc, av.argv, used);
	run = run_help(cfg, &cap, &ex, err, sizeof(err));
	if (run == 0)
		gpuhost_exit_describe(&ex, desc, sizeof(desc));
	gpuhost_opts_from_help(cap.text, offered);
	gpuhost_opts_missing(used, offered, missing);
	if (run < 0) {
		gpuhost_check_msg(c, "cannot run %s --help: %s\n", script, err);
		raw = GPUHOST_WARN;
	} else if (run == 1) {
		gpuhost_check_msg(c, "%s --help did not finish within %g s "
		    "(checks.args_timeout); python.args not verified\n", script,
		    cfg->args_timeout);
		raw = GPUHOST_WARN;
	} else if (!ex.signaled && gpuhost_worker_setup_failure(ex.code)) {
		gpuhost_check_msg(c, "could not start Python for %s --help "
		    "(see the python check): %s\n", script,
		    cap.note[0] ? cap.note : desc);
		raw = GPUHOST_WARN;
	} else if (ex.signaled || ex.code != 0) {
		gpuhost_check_msg(c, "%s --help ended with %s: it has no "
		    "argparse help, python.args not verified\n", script, desc);
		quote_output(c, &cap);
		raw = GPUHOST_WARN;
	} else if (offered->n == 0) {
		gpuhost_check_msg(c, "%s --help printed no --options; "
		    "python.args not verified\n", script);
		quote_output(c, &cap);
		raw = GPUHOST_WARN;
	} else if (missing->n > 0) {
		gpuhost_check_msg(c, "%s does not accept %s (python.args: %s)\n",
		    script, gpuhost_optset_join(missing, list, sizeof(list)),
		    expanded);
		gpuhost_check_msg(c, "it offers: %s\n",
		    gpuhost_optset_join(offered, list, sizeof(list)));
		if (gpuhost_optset_has(offered, "--server_host"))
			gpuhost_check_msg(c, "token.place's server.py: leave "
			    "python.args unset for its default (%s)\n",
			    cfg->relay_set ? GPUHOST_ARGS_RELAY :
			    GPUHOST_ARGS_NO_RELAY);
		raw = GPUHOST_FAIL;
	} else {
		gpuhost_check_msg(c, "%s accepts every option in python.args "
		    "(%s)\n", script, used->n > 0 ?
		    gpuhost_optset_join(used, list, sizeof(list)) : "none used");
	}
out:
	tp_buf_puts(&j, "{\"args\":[");
	for (int i = 0; i < av.argc; i++) {
		if (i > 0)
			tp_buf_puts(&j, ",");
		tp_buf_json_str(&j, av.argv[i]);
	}
	tp_buf_puts(&j, "]");
	if (used != NULL && offered != NULL && missing != NULL) {
		jset(&j, "used", used);
		jset(&j, "offered", offered);
		jset(&j, "missing", missing);
	}
	tp_buf_puts(&j, ",\"help_exit\":");
	tp_buf_json_str(&j, run == 0 ? desc : NULL);
	tp_buf_puts(&j, run == 1 ? ",\"timed_out\":true" :
	    ",\"timed_out\":false");
	tp_buf_puts(&j, cap.isolated == 1 ? ",\"network_isolated\":true" :
	    cap.isolated == 0 ? ",\"network_isolated\":false" :
	    ",\"network_isolated\":null");
	tp_buf_puts(&j, ",\"help_output\":");
	tp_buf_json_str(&j, cap.text != NULL ? cap.text : "");
	tp_buf_puts(&j, cap.truncated ? ",\"help_truncated\":true}" :
	    ",\"help_truncated\":false}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
	gpuhost_argv_free(&av);
	gpuhost_mutex_free(cap.mu);
	free(cap.text);
	free(used);
	free(offered);
	free(missing);
}
