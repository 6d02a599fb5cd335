/*
 * worker.h -- worker mode: the child the supervisor starts. It loads
 * CPython from the venv, runs the script as __main__ in the checkout and
 * obeys "stop"/"escalate" commands from the control channel. Its exit
 * status is the script's, or one of the codes below when it never got
 * that far (each with a message on stderr, which the supervisor logs).
 */
#ifndef GPUHOST_WORKER_H
#define GPUHOST_WORKER_H

#define GPUHOST_WORKER_EXIT_CONFIG 70	/* config file unreadable/invalid */
#define GPUHOST_WORKER_EXIT_VENV 71	/* venv or pyvenv.cfg or interpreter missing */
#define GPUHOST_WORKER_EXIT_CHDIR 72	/* checkout directory unusable */
#define GPUHOST_WORKER_EXIT_LIBRARY 73	/* libpython / pythonXY.dll not loadable */
#define GPUHOST_WORKER_EXIT_SCRIPT 74	/* script missing */
#define GPUHOST_WORKER_EXIT_ARGS 75	/* bad python.args / python.options */

/* Returns true for the codes above. */
int gpuhost_worker_setup_failure(long code);

/* Runs the worker; returns the process exit status. */
int gpuhost_worker_main(const char *config_path, const char *control);

#endif
