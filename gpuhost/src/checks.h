/*
 * checks.h -- the pre-flight checks as a whole (`check`, and before every
 * start): which run, in which order, and their report. One check alone
 * is check.h.
 *
 * The report renders for people and as JSON; the exit code is 0 pass,
 * 1 warn, 2 fail.
 */
#ifndef GPUHOST_CHECKS_H
#define GPUHOST_CHECKS_H

#include <stddef.h>
#include <stdio.h>

#include "check.h"
#include "config.h"

#define GPUHOST_MAX_CHECKS 12	/* python, port, dns, firewall, args, relay, env, gpu, model */

struct gpuhost_report {
	size_t n;
	struct gpuhost_check c[GPUHOST_MAX_CHECKS];
	enum gpuhost_outcome overall;	/* worst of PASS/WARN/FAIL */
};

/* Flags for gpuhost_checks_run(). */
#define GPUHOST_CHECKS_NO_PORT 0x1u	/* the server is ours and running */

/* Runs every check; free the report with gpuhost_report_free(). */
void gpuhost_checks_run(const struct gpuhost_config *cfg, unsigned flags,
    struct gpuhost_report *r);

/*
 * As above, only the named check ("python", "port", "dns", "firewall",
 * "args", "relay", "env", "gpu", "model"); r->n is 0 for an
 * unknown name.
 */
void gpuhost_checks_run_one(const struct gpuhost_config *cfg,
    const char *name, struct gpuhost_report *r);

void gpuhost_report_print(const struct gpuhost_report *r, FILE *fp);

/* Returns malloc'd JSON ({"result":..,"checks":[..]}) or NULL. */
char *gpuhost_report_json(const struct gpuhost_report *r);

/* 0 pass, 1 warn, 2 fail. */
int gpuhost_report_exit_code(const struct gpuhost_report *r);

void gpuhost_report_free(struct gpuhost_report *r);

#endif
