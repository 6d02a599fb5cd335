/*
 * supervisor.h -- runs the worker until asked to stop.
 *
 * Pre-flight checks, then the worker; its output goes to
 * <log dir>/server.log (rotated; copied to stderr when log.console);
 * unexpected exits restart it after an exponential back-off; /health is
 * probed and ready / unhealthy / recovered transitions are logged and
 * written to the status file. A stop request sends "stop" (the worker
 * calls PyErr_SetInterrupt), then "escalate" after
 * service.escalate_after, then kills the process group / job at
 * service.stop_grace.
 */
#ifndef GPUHOST_SUPERVISOR_H
#define GPUHOST_SUPERVISOR_H

#include <stdint.h>

#include "tokenplace/log.h"

#include "config.h"

/* Exit statuses of gpuhost_supervisor_run() (and of `run`). */
#define GPUHOST_EXIT_OK 0		/* stopped on request */
#define GPUHOST_EXIT_PREFLIGHT 10	/* a check in fail mode failed at first start */
#define GPUHOST_EXIT_SETUP 11		/* the worker cannot load Python / venv / script */
#define GPUHOST_EXIT_INTERNAL 12	/* logs, pipes, processes could not be set up */

struct gpuhost_sup_hooks {
	void *arg;
	/* The first worker is up (Windows: report SERVICE_RUNNING). */
	void (*running)(void *arg);
	/* Stopping; called about every 500 ms with the time left. */
	void (*stopping)(void *arg, int64_t remaining_ms);
	/* Windows Event Log sink for warnings and errors, or NULL. */
	void (*event)(enum tp_log_level level, const char *event,
	    const char *line);
};

/*
 * Runs until gpuhost_supervisor_request_stop() and the worker is gone.
 * `exe` is this program (started again in worker mode). Returns one of
 * the GPUHOST_EXIT_* codes.
 */
int gpuhost_supervisor_run(const struct gpuhost_config *cfg, const char *exe,
    const struct gpuhost_sup_hooks *hooks);

/* Asks the running supervisor to stop. Async-signal-safe. */
void gpuhost_supervisor_request_stop(void);

/* Path of the status file for cfg into buf; 0 or -1. */
int gpuhost_status_path(const struct gpuhost_config *cfg, char *buf,
    size_t len);

#endif
