/*
 * status.h -- the supervisor's state, written atomically to
 * <log dir>/gpuhost.status (INI format, [status] section) at every
 * transition, read back by `tokenplace-gpuhost status`.
 */
#ifndef GPUHOST_STATUS_H
#define GPUHOST_STATUS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

struct gpuhost_status {
	long pid;			/* supervisor */
	char state[24];			/* starting, running, backoff, stopping, stopped, failed */
	long worker_pid;		/* 0 when none */
	char health[24];		/* starting, ready, unhealthy */
	int64_t health_since_ms;	/* wall clock of the last health transition */
	char health_reason[200];
	uint64_t restarts;
	uint64_t health_failures;	/* failed probes, total */
	uint64_t log_rotations;
	char last_exit[96];
	int64_t last_exit_ms;
	char message[300];
	int64_t updated_ms;
};

/* Writes st to path (via path.tmp + rename). 0 or -1. */
int gpuhost_status_write(const char *path, const struct gpuhost_status *st);

/* Reads path into *st. 0, or -1 with a reason in err. */
int gpuhost_status_read(const char *path, struct gpuhost_status *st,
    char *err, size_t errlen);

/* Human-readable rendering of st (several lines) to fp. */
void gpuhost_status_print(const struct gpuhost_status *st, FILE *fp);

/* ISO 8601 UTC with milliseconds of a wall-clock time; returns buf. */
char *gpuhost_iso_time(int64_t wall_ms, char *buf, size_t len);

#endif
