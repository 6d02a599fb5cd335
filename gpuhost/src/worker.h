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

/*
 * Runs the worker; returns the process exit status. With args_help the
 * script runs with "--help" alone instead of python.args, without the
 * relay token and, where the OS allows it, without network (the `args`
 * check); the result line "gpuhost-worker: network: ..." says which.
 */
int gpuhost_worker_main(const char *config_path, const char *control,
    bool args_help);

#endif
