/*
 * worker.c -- worker mode. Runs Python on the process's main thread (so
 * signal handlers and asyncio work as in python itself); a control
 * thread turns supervisor commands into PyErr_SetInterrupt and, later,
 * SystemExit. If the control channel closes, the supervisor is gone and
 * the worker stops itself the same way.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"

#include "cmdline.h"
#include "gpu.h"
#include "config.h"
#include "os.h"
#include "proc.h"
#include "pyembed.h"
#include "venv.h"
#include "worker.h"

/*
 * CPython does not free everything at exit (by design), and sys.exit() in
 * a script ends the process through exit(). Those are not our leaks: in
 * sanitizer builds, LeakSanitizer is off once Python has run.
 */
static volatile int python_ran;
#if defined(__SANITIZE_ADDRESS__)
int __lsan_is_turned_off(void);

int
__lsan_is_turned_off(void)
{
	return python_ran;
}
#endif

struct control {
	const char *spec;
	struct gpuhost_py *py;
	double escalate_after, grace;
};

int
gpuhost_worker_setup_failure(long code)
{
	return code >= GPUHOST_WORKER_EXIT_CONFIG &&
	    code <= GPUHOST_WORKER_EXIT_ARGS;
}

/* Interrupts once the runtime is up; it may still be initialising. */
static void
interrupt_when_ready(struct gpuhost_py *py, int wait_ms)
{
	int64_t deadline = gpuhost_now_ms() + wait_ms;

	while (!gpuhost_py_interrupt(py) && gpuhost_now_ms() < deadline)
		gpuhost_sleep_ms(20);
}

static void
control_main(void *arg)
{
	struct control *c = arg;
	char cmd[64];
	int n;

	while ((n = gpuhost_control_read(c->spec, cmd, sizeof(cmd))) > 0) {
		if (strcmp(cmd, "stop") == 0) {
			fprintf(stderr, "gpuhost-worker: stop requested, "
			    "interrupting Python\n");
			interrupt_when_ready(c->py, 2000);
		} else if (strcmp(cmd, "escalate") == 0) {
			fprintf(stderr, "gpuhost-worker: still running, "
			    "raising SystemExit\n");
			(void)gpuhost_py_escalate(c->py);
		}
		fflush(stderr);
	}
	/* The supervisor is gone: stop as it would have asked. */
	fprintf(stderr, "gpuhost-worker: control channel closed, stopping\n");
	fflush(stderr);
	interrupt_when_ready(c->py, 2000);
	gpuhost_sleep_ms((int)(c->escalate_after * 1000));
	(void)gpuhost_py_escalate(c->py);
	gpuhost_sleep_ms((int)((c->grace - c->escalate_after) * 1000));
	fprintf(stderr, "gpuhost-worker: exiting without the supervisor\n");
	fflush(stderr);
	_Exit(1);
}

/* The script's argument vector: python.args, or "--help" for the check. */
static int
script_args(const struct gpuhost_config *cfg, bool args_help,
    struct gpuhost_argv *av, char *err, size_t errlen)
{
	char expanded[4096];

	if (args_help)
		return gpuhost_argv_push(av, "--help");
	if (gpuhost_config_expand_args(cfg, expanded, sizeof(expanded)) != 0) {
		snprintf(err, errlen, "python.args too long");
		return -1;
	}
	return gpuhost_argv_split(av, expanded, err, errlen);
}

int
gpuhost_write_tp_config(const struct gpuhost_config *cfg, char *buf,
    size_t len, char *err, size_t errlen)
{
	struct tp_buf j = TP_BUF_INIT;
	char *json, tmp[GPUHOST_PATH_MAX + 32];
	FILE *fp;
	int ok;

	if (cfg->data_path[0] == '\0')
		return 1;
	if (gpuhost_mkdirs(cfg->data_path, err, errlen) != 0)
		return -1;
	if (gpuhost_path_join(buf, len, cfg->data_path,
	    "gpuhost-token.place.json") != 0) {
		snprintf(err, errlen, "data.dir: path too long");
		return -1;
	}
	/* Only the key gpuhost owns: the rest stays token.place's default. */
	tp_buf_puts(&j, "{\"paths\": {\"models_dir\": ");
	tp_buf_json_str(&j, cfg->data_path);
	tp_buf_puts(&j, "}}\n");
	if ((json = tp_buf_finish(&j, NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/*
	 * Written aside and renamed: a `check` run while the service starts
	 * must never let token.place read half a file.
	 */
	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", buf, gpuhost_getpid()) >=
	    (int)sizeof(tmp)) {
		snprintf(err, errlen, "data.dir: path too long");
		free(json);
		return -1;
	}
	if ((fp = gpuhost_fopen(tmp, "wb")) == NULL) {
		char why[256];

		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    gpuhost_last_error(why, sizeof(why)));
		free(json);
		return -1;
	}
	ok = fputs(json, fp) >= 0;
	ok = (fclose(fp) == 0) && ok;
	free(json);
	if (!ok || gpuhost_rename(tmp, buf) != 0) {
		snprintf(err, errlen, "cannot write %s", buf);
		(void)gpuhost_unlink(tmp);
		return -1;
	}
	return 0;
}

/* What every mode of the worker gets in its environment. */
static void
set_environment(const struct gpuhost_config *cfg, bool with_token)
{
	char path[GPUHOST_PATH_MAX], err[512];
	int w;

	/* Before [environment], which may name another value. */
	if (gpuhost_setenv(GPUHOST_TP_ENV_VAR, GPUHOST_TP_ENV_DEFAULT) != 0)
		fprintf(stderr, "gpuhost-worker: cannot set %s\n",
		    GPUHOST_TP_ENV_VAR);
	w = gpuhost_write_tp_config(cfg, path, sizeof(path), err, sizeof(err));
	if (w == 0) {
		if (gpuhost_setenv(GPUHOST_TP_CONFIG_VAR, path) != 0)
			fprintf(stderr, "gpuhost-worker: cannot set %s\n",
			    GPUHOST_TP_CONFIG_VAR);
	} else if (w < 0)
		fprintf(stderr, "gpuhost-worker: data.dir: %s\n", err);
	for (size_t i = 0; i < cfg->nenv; i++) {
		if (gpuhost_setenv(cfg->env[i].name, cfg->env[i].value) != 0)
			fprintf(stderr, "gpuhost-worker: cannot set %s\n",
			    cfg->env[i].name);
	}
	/* Only in server.py's environment, never on a command line. */
	if (with_token && cfg->relay_token[0] != '\0') {
		if (gpuhost_setenv(GPUHOST_TOKEN_ENV, cfg->relay_token) != 0)
			fprintf(stderr, "gpuhost-worker: cannot set %s\n",
			    GPUHOST_TOKEN_ENV);
	} else if (!with_token)
		(void)gpuhost_setenv(GPUHOST_TOKEN_ENV, NULL);
}

int
gpuhost_worker_main(const char *config_path, const char *control,
    enum gpuhost_worker_mode mode)
{
	bool args_help = mode == GPUHOST_WORKER_ARGS_HELP;
	bool isolated = mode != GPUHOST_WORKER_RUN;
	struct gpuhost_config cfg;
	struct gpuhost_config_errors errs;
	struct gpuhost_venv venv;
	struct gpuhost_argv av = { 0 };
	struct gpuhost_py *py = NULL;
	struct gpuhost_thread *thread = NULL;
	struct control ctl;
	const char *cands[GPUHOST_VENV_MAX_CANDIDATES];
	char err[4096];
	int rc;

	if (gpuhost_config_load(config_path, &cfg, &errs) != 0) {
		for (size_t i = 0; i < errs.n && i < GPUHOST_CONFIG_MAX_ERRORS; i++)
			fprintf(stderr, "gpuhost-worker: config: %s\n", errs.msg[i]);
		gpuhost_config_free(&cfg);
		return GPUHOST_WORKER_EXIT_CONFIG;
	}
	/* Before any thread exists: Linux refuses new namespaces after. */
	if (isolated) {
		if (gpuhost_isolate_network(err, sizeof(err)) == 0)
			fprintf(stderr, GPUHOST_WORKER_PREFIX "network: isolated\n");
		else
			fprintf(stderr, GPUHOST_WORKER_PREFIX "network: not "
			    "isolated (%s)\n", err);
	}
	set_environment(&cfg, !isolated);
	if (gpuhost_venv_load(cfg.venv_path, cfg.library, &venv, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "gpuhost-worker: %s\n", err);
		rc = GPUHOST_WORKER_EXIT_VENV;
		goto out;
	}
	if (mode != GPUHOST_WORKER_PROBE && !gpuhost_is_file(cfg.script_path)) {
		fprintf(stderr, "gpuhost-worker: script %s does not exist\n",
		    cfg.script_path);
		rc = GPUHOST_WORKER_EXIT_SCRIPT;
		goto out;
	}
	if (gpuhost_chdir(cfg.checkout_path) != 0) {
		fprintf(stderr, "gpuhost-worker: cannot enter %s: %s\n",
		    cfg.checkout_path, gpuhost_last_error(err, sizeof(err)));
		rc = GPUHOST_WORKER_EXIT_CHDIR;
		goto out;
	}
	for (size_t i = 0; i < venv.ncandidates; i++)
		cands[i] = venv.candidates[i];
	if (gpuhost_py_open(cands, venv.ncandidates, &py, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "gpuhost-worker: %s\n", err);
		rc = GPUHOST_WORKER_EXIT_LIBRARY;
		goto out;
	}
	if (mode == GPUHOST_WORKER_PROBE) {
		if (gpuhost_argv_push(&av, venv.interpreter) != 0 ||
		    gpuhost_argv_split(&av, cfg.options, err, sizeof(err)) != 0 ||
		    gpuhost_argv_push(&av, "-c") != 0 ||
		    gpuhost_argv_push(&av, gpuhost_probe_code) != 0) {
			fprintf(stderr, "gpuhost-worker: bad python.options\n");
			rc = GPUHOST_WORKER_EXIT_ARGS;
			goto out;
		}
	} else if (gpuhost_argv_push(&av, venv.interpreter) != 0 ||
	    gpuhost_argv_split(&av, cfg.options, err, sizeof(err)) != 0 ||
	    gpuhost_argv_push(&av, cfg.script_path) != 0 ||
	    script_args(&cfg, args_help, &av, err, sizeof(err)) != 0) {
		fprintf(stderr, "gpuhost-worker: bad python.options/args\n");
		rc = GPUHOST_WORKER_EXIT_ARGS;
		goto out;
	}
	fprintf(stderr, "gpuhost-worker: Python %s from %s, running %s in %s%s\n",
	    gpuhost_py_version(py), gpuhost_py_path(py), cfg.script_path,
	    cfg.checkout_path, args_help ? " with --help" :
	    mode == GPUHOST_WORKER_PROBE ? " (runtime probe)" : "");
	fflush(stderr);
	if (control != NULL && mode == GPUHOST_WORKER_RUN) {
		ctl.spec = control;
		ctl.py = py;
		ctl.escalate_after = cfg.escalate_after;
		ctl.grace = cfg.stop_grace;
		if (gpuhost_thread_start(&thread, control_main, &ctl) != 0)
			fprintf(stderr, "gpuhost-worker: no control thread\n");
	}
	python_ran = 1;
	rc = gpuhost_py_main(py, av.argc, av.argv);
	fflush(stdout);
	fflush(stderr);
	/* The control thread blocks on the pipe; exiting ends it. */
	gpuhost_argv_free(&av);
	gpuhost_config_free(&cfg);
	_Exit(rc);
out:
	gpuhost_argv_free(&av);
	gpuhost_py_close(py);
	gpuhost_config_free(&cfg);
	return rc;
}
