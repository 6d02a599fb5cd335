/*
 * service.h -- the service-manager side, one implementation per platform
 * (posix/service.c: systemd unit + a pidfile daemon for start/stop/status;
 * win/service.c: the Service Control Manager).
 */
#ifndef GPUHOST_SERVICE_H
#define GPUHOST_SERVICE_H

#include <stdbool.h>

#include "config.h"

struct gpuhost_svc_opts {
	bool print;		/* Linux install: print the unit, write nothing */
	const char *unit_dir;	/* Linux install/uninstall: instead of /etc/systemd/system */
	const char *account;	/* Windows install: overrides service.account */
	const char *password;	/* Windows install: for a user account */
};

/* Each returns a process exit status and prints what it did. */
int gpuhost_service_install(const struct gpuhost_config *cfg, const char *exe,
    const struct gpuhost_svc_opts *o);
int gpuhost_service_uninstall(const struct gpuhost_config *cfg,
    const struct gpuhost_svc_opts *o);
int gpuhost_service_start(const struct gpuhost_config *cfg, const char *exe);
int gpuhost_service_stop(const struct gpuhost_config *cfg);
/* 0 running, 3 not running (LSB status codes), 4 unknown. */
int gpuhost_service_status(const struct gpuhost_config *cfg);

/* `run`: the supervisor in the foreground until Ctrl-C / SIGTERM. */
int gpuhost_run_foreground(const struct gpuhost_config *cfg, const char *exe);

/* Windows `service` verb (started by the SCM). Elsewhere an error. */
int gpuhost_service_dispatch(const char *config_path);

/* Windows `firewall add|remove`. Elsewhere an error. */
int gpuhost_firewall_command(const struct gpuhost_config *cfg, const char *exe,
    const char *action);

#endif
