/*
 * status.h -- the supervisor's state, written atomically to
 * <log dir>/gpuhost.status (INI format, [status] section) at every
 * transition, read back by `tokenplace-gpuhost status`.
 */
#ifndef GPUHOST_STATUS_H
#define GPUHOST_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/*
 * The supervisor's state. The names are what the status file, `status`
 * and the tokenplace_gpuhost_state metric show (docs/ name them too).
 */
enum gpuhost_state {
	GPUHOST_STATE_STARTING = 0,	/* pre-flight checks, first start */
	GPUHOST_STATE_RUNNING,		/* the worker runs */
	GPUHOST_STATE_BACKOFF,		/* waiting to restart it */
	GPUHOST_STATE_STOPPING,		/* stop requested, the worker ends */
	GPUHOST_STATE_STOPPED,		/* stopped on request */
	GPUHOST_STATE_FAILED,		/* gave up; the message says why */
	GPUHOST_STATE_COUNT,
};

/* The server's health as the supervisor's probes see it. */
enum gpuhost_health {
	GPUHOST_HEALTH_STARTING = 0,	/* no probe answered since the start */
	GPUHOST_HEALTH_READY,
	GPUHOST_HEALTH_UNHEALTHY,	/* health.failures probes in a row failed */
	GPUHOST_HEALTH_STOPPED,		/* no worker and none will start */
	GPUHOST_HEALTH_COUNT,
};

/* The name tables, indexed by the enums ("starting", "running", ...). */
extern const char *const gpuhost_state_names[GPUHOST_STATE_COUNT];
extern const char *const gpuhost_health_names[GPUHOST_HEALTH_COUNT];

/* The name of s or h (static string); "unknown" out of range. */
const char *gpuhost_state_name(enum gpuhost_state s);
const char *gpuhost_health_name(enum gpuhost_health h);

/*
 * What the status file holds. state and health are names, not enums: the
 * file may come from another version of gpuhost.
 */
struct gpuhost_status {
	long pid;			/* supervisor */
	char state[24];			/* a gpuhost_state name */
	long worker_pid;		/* 0 when none */
	char health[24];		/* a gpuhost_health name */
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

/* True when st's state is the name of state. */
bool gpuhost_status_is(const struct gpuhost_status *st,
    enum gpuhost_state state);

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
