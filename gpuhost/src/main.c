/*
 * main.c -- tokenplace-gpuhost command line.
 *
 *   tokenplace-gpuhost [--config FILE] COMMAND [options]
 *
 * Commands dispatch to checks, supervisor, service and worker modules;
 * this file only parses arguments and loads the config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/log.h"
#include "tokenplace/netcheck.h"

#include "checks.h"
#include "config.h"
#include "os.h"
#include "service.h"
#include "worker.h"

#ifndef GPUHOST_VERSION
#define GPUHOST_VERSION "0.0.0"
#endif
#ifndef GPUHOST_REVISION
#define GPUHOST_REVISION "unknown"
#endif

#define EXIT_USAGE 64
#define EXIT_CONFIG 78

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tokenplace-gpuhost [--config FILE] COMMAND [options]\n"
	    "\n"
	    "Runs the token.place server.py in an embedded CPython from its venv,\n"
	    "supervised, with firewall and DNS checks.\n"
	    "\n"
	    "commands:\n"
	    "  run                    run in the foreground; Ctrl-C stops\n"
	    "  check [--json] [--only NAME]\n"
	    "                         pre-flight checks (python, port, dns, firewall,\n"
	    "                         args, relay, env, gpu, model); exit 0 pass,\n"
	    "                         1 warn, 2 fail\n"
	    "  install [--print] [--unit-dir DIR] [--account NAME] [--password PW]\n"
	    "                         register the service (Windows SCM / systemd unit)\n"
	    "  uninstall              remove it\n"
	    "  start | stop | status  control the installed service\n"
	    "  firewall add|remove    Windows Firewall inbound rule for the port\n"
	    "  config                 print the effective settings (secrets masked)\n"
	    "  --version, --help\n"
	    "\n"
	    "config: %s unless --config is given\n",
#ifdef _WIN32
	    "gpuhost.ini next to the executable"
#else
	    "/etc/tokenplace/gpuhost.ini"
#endif
	    );
}

static int
load(const char *path, struct gpuhost_config *cfg, bool quiet_ok)
{
	struct gpuhost_config_errors errs;

	if (gpuhost_config_load(path, cfg, &errs) == 0)
		return 0;
	for (size_t i = 0; i < errs.n && i < GPUHOST_CONFIG_MAX_ERRORS; i++)
		fprintf(stderr, "tokenplace-gpuhost: config: %s\n", errs.msg[i]);
	if (errs.n > GPUHOST_CONFIG_MAX_ERRORS)
		fprintf(stderr, "tokenplace-gpuhost: config: ... %zu more\n",
		    errs.n - GPUHOST_CONFIG_MAX_ERRORS);
	(void)quiet_ok;
	return -1;
}

static int
cmd_check(const struct gpuhost_config *cfg, bool json, const char *only)
{
	struct gpuhost_report r;
	int rc;

	if (only != NULL)
		gpuhost_checks_run_one(cfg, only, &r);
	else
		gpuhost_checks_run(cfg, 0, &r);
	if (r.n == 0) {
		fprintf(stderr, "tokenplace-gpuhost: unknown check %s (python, "
		    "port, dns, firewall, args, relay, env, gpu, model)\n",
		    only);
		return EXIT_USAGE;
	}
	if (json) {
		char *s = gpuhost_report_json(&r);

		if (s != NULL)
			fputs(s, stdout);
		free(s);
	} else
		gpuhost_report_print(&r, stdout);
	rc = gpuhost_report_exit_code(&r);
	gpuhost_report_free(&r);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *config = NULL, *command = NULL, *only = NULL;
	const char *control = NULL, *sub = NULL;
	struct gpuhost_svc_opts so = { 0 };
	struct gpuhost_config cfg;
	char defpath[GPUHOST_PATH_MAX], exe[GPUHOST_PATH_MAX];
	char abspath[GPUHOST_PATH_MAX];
	bool json = false;
	enum gpuhost_worker_mode wmode = GPUHOST_WORKER_RUN;
	enum tp_log_level lvl;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("tokenplace-gpuhost %s (%s)\n", GPUHOST_VERSION,
			    GPUHOST_REVISION);
			return 0;
		} else if ((strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) &&
		    has) {
			config = argv[++i];
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "--only") == 0 && has) {
			only = argv[++i];
		} else if (strcmp(a, "--control") == 0 && has) {
			control = argv[++i];
		} else if (strcmp(a, "--args-help") == 0) {
			wmode = GPUHOST_WORKER_ARGS_HELP;
		} else if (strcmp(a, "--probe") == 0) {
			wmode = GPUHOST_WORKER_PROBE;
		} else if (strcmp(a, "--print") == 0) {
			so.print = true;
		} else if (strcmp(a, "--unit-dir") == 0 && has) {
			so.unit_dir = argv[++i];
		} else if (strcmp(a, "--account") == 0 && has) {
			so.account = argv[++i];
		} else if (strcmp(a, "--password") == 0 && has) {
			so.password = argv[++i];
		} else if (a[0] == '-') {
			fprintf(stderr, "tokenplace-gpuhost: unknown option %s\n", a);
			usage(stderr);
			return EXIT_USAGE;
		} else if (command == NULL) {
			command = a;
		} else if (sub == NULL) {
			sub = a;
		} else {
			fprintf(stderr, "tokenplace-gpuhost: unexpected %s\n", a);
			return EXIT_USAGE;
		}
	}
	if (command == NULL) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (config == NULL) {
		if (gpuhost_config_default_path(defpath, sizeof(defpath)) != 0) {
			fprintf(stderr, "tokenplace-gpuhost: no default config path\n");
			return EXIT_CONFIG;
		}
		config = defpath;
	}
	/* Workers, daemons and services do not share our working directory. */
	if (!gpuhost_path_is_absolute(config)) {
		char cwd[GPUHOST_PATH_MAX];

		if (gpuhost_getcwd(cwd, sizeof(cwd)) != 0 ||
		    gpuhost_path_join(abspath, sizeof(abspath), cwd, config) != 0) {
			fprintf(stderr, "tokenplace-gpuhost: config path too long\n");
			return EXIT_CONFIG;
		}
		config = abspath;
	}
	if (strcmp(command, "worker") == 0)
		return gpuhost_worker_main(config, control, wmode);
	if (strcmp(command, "service") == 0)
		return gpuhost_service_dispatch(config);
	if (gpuhost_exe_path(exe, sizeof(exe)) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: cannot find own executable\n");
		return EXIT_CONFIG;
	}
	if (tp_netcheck_init() != 0) {
		fprintf(stderr, "tokenplace-gpuhost: socket library init failed\n");
		return EXIT_CONFIG;
	}
	if (load(config, &cfg, false) != 0) {
		gpuhost_config_free(&cfg);
		return EXIT_CONFIG;
	}
	if (tp_log_level_parse(cfg.log_level, &lvl) != 0)
		lvl = TP_LOG_INFO;
	tp_log_init("tokenplace-gpuhost", lvl, 1);
	if (strcmp(command, "run") == 0)
		rc = gpuhost_run_foreground(&cfg, exe);
	else if (strcmp(command, "check") == 0)
		rc = cmd_check(&cfg, json, only);
	else if (strcmp(command, "install") == 0)
		rc = gpuhost_service_install(&cfg, exe, &so);
	else if (strcmp(command, "uninstall") == 0)
		rc = gpuhost_service_uninstall(&cfg, &so);
	else if (strcmp(command, "start") == 0)
		rc = gpuhost_service_start(&cfg, exe);
	else if (strcmp(command, "stop") == 0)
		rc = gpuhost_service_stop(&cfg);
	else if (strcmp(command, "status") == 0)
		rc = gpuhost_service_status(&cfg);
	else if (strcmp(command, "firewall") == 0) {
		if (sub == NULL || (strcmp(sub, "add") != 0 &&
		    strcmp(sub, "remove") != 0)) {
			fprintf(stderr, "usage: tokenplace-gpuhost firewall "
			    "add|remove\n");
			rc = EXIT_USAGE;
		} else
			rc = gpuhost_firewall_command(&cfg, exe, sub);
	} else if (strcmp(command, "config") == 0) {
		gpuhost_config_print(&cfg, stdout);
		rc = 0;
	} else {
		fprintf(stderr, "tokenplace-gpuhost: unknown command %s\n", command);
		usage(stderr);
		rc = EXIT_USAGE;
	}
	gpuhost_config_free(&cfg);
	return rc;
}
