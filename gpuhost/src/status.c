/* status.c -- status file; see status.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ini.h"
#include "os.h"
#include "status.h"

const char *const gpuhost_state_names[GPUHOST_STATE_COUNT] = {
	[GPUHOST_STATE_STARTING] = "starting",
	[GPUHOST_STATE_RUNNING] = "running",
	[GPUHOST_STATE_BACKOFF] = "backoff",
	[GPUHOST_STATE_STOPPING] = "stopping",
	[GPUHOST_STATE_STOPPED] = "stopped",
	[GPUHOST_STATE_FAILED] = "failed",
};

const char *const gpuhost_health_names[GPUHOST_HEALTH_COUNT] = {
	[GPUHOST_HEALTH_STARTING] = "starting",
	[GPUHOST_HEALTH_READY] = "ready",
	[GPUHOST_HEALTH_UNHEALTHY] = "unhealthy",
	[GPUHOST_HEALTH_STOPPED] = "stopped",
};

const char *
gpuhost_state_name(enum gpuhost_state s)
{
	return (unsigned)s < GPUHOST_STATE_COUNT ? gpuhost_state_names[s] :
	    "unknown";
}

const char *
gpuhost_health_name(enum gpuhost_health h)
{
	return (unsigned)h < GPUHOST_HEALTH_COUNT ? gpuhost_health_names[h] :
	    "unknown";
}

bool
gpuhost_status_is(const struct gpuhost_status *st, enum gpuhost_state state)
{
	return strcmp(st->state, gpuhost_state_name(state)) == 0;
}

char *
gpuhost_iso_time(int64_t wall_ms, char *buf, size_t len)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	int n;

#ifdef _WIN32
	if (gmtime_s(&tm, &t) != 0)
#else
	if (gmtime_r(&t, &tm) == NULL)
#endif
	{
		snprintf(buf, len, "-");
		return buf;
	}
	n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)(wall_ms % 1000));
	if (n < 0 || (size_t)n >= len)
		snprintf(buf, len, "-");
	return buf;
}

/* Newlines would break the file format. */
static void
put(FILE *fp, const char *k, const char *v)
{
	fprintf(fp, "%s = ", k);
	for (; *v != '\0'; v++)
		fputc(*v == '\n' || *v == '\r' ? ' ' : *v, fp);
	fputc('\n', fp);
}

int
gpuhost_status_write(const char *path, const struct gpuhost_status *st)
{
	char tmp[1100];
	FILE *fp;
	int ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	if ((fp = gpuhost_fopen(tmp, "wb")) == NULL)
		return -1;
	fprintf(fp, "[status]\n");
	fprintf(fp, "pid = %ld\n", st->pid);
	put(fp, "state", st->state);
	fprintf(fp, "worker_pid = %ld\n", st->worker_pid);
	put(fp, "health", st->health);
	fprintf(fp, "health_since_ms = %" PRId64 "\n", st->health_since_ms);
	put(fp, "health_reason", st->health_reason);
	fprintf(fp, "restarts = %" PRIu64 "\n", st->restarts);
	fprintf(fp, "health_failures = %" PRIu64 "\n", st->health_failures);
	fprintf(fp, "log_rotations = %" PRIu64 "\n", st->log_rotations);
	put(fp, "last_exit", st->last_exit);
	fprintf(fp, "last_exit_ms = %" PRId64 "\n", st->last_exit_ms);
	put(fp, "message", st->message);
	fprintf(fp, "updated_ms = %" PRId64 "\n", st->updated_ms);
	ok = fflush(fp) == 0;
	ok = (fclose(fp) == 0) && ok;
	if (!ok || gpuhost_rename(tmp, path) != 0) {
		(void)gpuhost_unlink(tmp);
		return -1;
	}
	return 0;
}

static const char *
get(const struct gpuhost_ini *ini, const char *k)
{
	const struct gpuhost_ini_entry *e = gpuhost_ini_find(ini, "status", k);

	return e != NULL ? e->value : "";
}

int
gpuhost_status_read(const char *path, struct gpuhost_status *st, char *err,
    size_t errlen)
{
	struct gpuhost_ini ini;

	memset(st, 0, sizeof(*st));
	if (gpuhost_ini_load(path, &ini, err, errlen) != 0) {
		gpuhost_ini_free(&ini);
		return -1;
	}
	st->pid = strtol(get(&ini, "pid"), NULL, 10);
	snprintf(st->state, sizeof(st->state), "%s", get(&ini, "state"));
	st->worker_pid = strtol(get(&ini, "worker_pid"), NULL, 10);
	snprintf(st->health, sizeof(st->health), "%s", get(&ini, "health"));
	st->health_since_ms = strtoll(get(&ini, "health_since_ms"), NULL, 10);
	snprintf(st->health_reason, sizeof(st->health_reason), "%s",
	    get(&ini, "health_reason"));
	st->restarts = strtoull(get(&ini, "restarts"), NULL, 10);
	st->health_failures = strtoull(get(&ini, "health_failures"), NULL, 10);
	st->log_rotations = strtoull(get(&ini, "log_rotations"), NULL, 10);
	snprintf(st->last_exit, sizeof(st->last_exit), "%s",
	    get(&ini, "last_exit"));
	st->last_exit_ms = strtoll(get(&ini, "last_exit_ms"), NULL, 10);
	snprintf(st->message, sizeof(st->message), "%s", get(&ini, "message"));
	st->updated_ms = strtoll(get(&ini, "updated_ms"), NULL, 10);
	gpuhost_ini_free(&ini);
	return 0;
}

void
gpuhost_status_print(const struct gpuhost_status *st, FILE *fp)
{
	char t[40];

	fprintf(fp, "state:      %s (supervisor pid %ld)\n", st->state, st->pid);
	if (st->worker_pid > 0)
		fprintf(fp, "worker:     pid %ld\n", st->worker_pid);
	fprintf(fp, "health:     %s since %s%s%s\n", st->health,
	    gpuhost_iso_time(st->health_since_ms, t, sizeof(t)),
	    st->health_reason[0] ? " - " : "", st->health_reason);
	fprintf(fp, "restarts:   %llu\n", (unsigned long long)st->restarts);
	fprintf(fp, "probes failed: %llu, log rotations: %llu\n",
	    (unsigned long long)st->health_failures,
	    (unsigned long long)st->log_rotations);
	if (st->last_exit[0] != '\0')
		fprintf(fp, "last exit:  %s at %s\n", st->last_exit,
		    gpuhost_iso_time(st->last_exit_ms, t, sizeof(t)));
	if (st->message[0] != '\0')
		fprintf(fp, "message:    %s\n", st->message);
	fprintf(fp, "updated:    %s\n",
	    gpuhost_iso_time(st->updated_ms, t, sizeof(t)));
}
