/*
 * worker.h -- worker mode: the child the supervisor starts. It loads
 * CPython from the venv, runs the script as __main__ in the checkout and
 * obeys "stop"/"escalate" commands from the control channel. Its exit
 * status is the script's, or one of the codes below when it never got
 * that far (each with a message on stderr, which the supervisor logs).
 */
#ifndef GPUHOST_WORKER_H
#define GPUHOST_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define GPUHOST_WORKER_EXIT_CONFIG 70	/* config file unreadable/invalid */
#define GPUHOST_WORKER_EXIT_VENV 71	/* venv or pyvenv.cfg or interpreter missing */
#define GPUHOST_WORKER_EXIT_CHDIR 72	/* checkout directory unusable */
#define GPUHOST_WORKER_EXIT_LIBRARY 73	/* libpython / pythonXY.dll not loadable */
#define GPUHOST_WORKER_EXIT_SCRIPT 74	/* script missing */
#define GPUHOST_WORKER_EXIT_ARGS 75	/* bad python.args / python.options */

/* Returns true for the codes above. */
int gpuhost_worker_setup_failure(long code);

/*
 * Marks the worker lines that are gpuhost's own, not the script's (the
 * `args` check tells them apart from the help text this way).
 */
#define GPUHOST_WORKER_PREFIX "gpuhost-worker: "

enum gpuhost_worker_mode {
	GPUHOST_WORKER_RUN = 0,		/* the script with python.args */
	GPUHOST_WORKER_ARGS_HELP,	/* the script with --help (args check) */
	GPUHOST_WORKER_PROBE,		/* gpuhost's runtime probe (gpu check) */
};

/*
 * Runs the worker; returns the process exit status. Every mode gets the
 * [environment], TOKEN_PLACE_ENV (production unless [environment] names
 * another) and, with data.dir, TOKEN_PLACE_CONFIG. ARGS_HELP runs the
 * script with "--help" alone instead of python.args; PROBE runs the
 * probe_code (Python source, "-c") in the checkout instead of the
 * script. Both run without the relay token and, where the OS allows it,
 * without network; the line "gpuhost-worker: network: ..." says which.
 */
int gpuhost_worker_main(const char *config_path, const char *control,
    enum gpuhost_worker_mode mode);

/*
 * Writes the TOKEN_PLACE_CONFIG file for data.dir
 * (<data.dir>/gpuhost-token.place.json: {"paths":{"models_dir":...}}),
 * creating data.dir. Returns 0 (path in buf) or -1 with err; 1 when
 * data.dir is not set (nothing written).
 */
int gpuhost_write_tp_config(const struct gpuhost_config *cfg, char *buf,
    size_t len, char *err, size_t errlen);

#endif
