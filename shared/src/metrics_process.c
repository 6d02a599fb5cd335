/*
 * metrics_process.c -- tp_metrics_register_process(): the process_*
 * collectors, label-less function families read at render time from
 * /proc on Linux. Other systems (the Windows gpuhost among them) register
 * nothing.
 *
 * docs/internals/metrics.md describes the design.
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L	/* pthread_rwlock_t, dirfd, O_CLOEXEC */
#endif

#include "metrics_internal.h"

#ifdef __linux__
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a small file whole into buf (NUL-terminated). 0 or -1. */
static int
read_small_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (len + 1 < size) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	return len > 0 ? 0 : -1;
}

/* Field `field` of /proc/self/stat, numbered from 1 as in proc(5). */
static double
proc_stat_field(int field)
{
	char buf[4096], *p, *end;

	if (read_small_file("/proc/self/stat", buf, sizeof(buf)) != 0 ||
	    (p = strrchr(buf, ')')) == NULL)
		return (double)NAN;
	/* The command name may hold spaces and ')': count from its end. */
	p++;
	for (int i = 3; i <= field; i++) {
		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			return (double)NAN;
		if (i == field) {
			double v = strtod(p, &end);

			return end != p ? v : (double)NAN;
		}
		while (*p != ' ' && *p != '\0')
			p++;
	}
	return (double)NAN;
}

static double
clock_ticks(void)
{
	long t = sysconf(_SC_CLK_TCK);

	return t > 0 ? (double)t : 100.0;
}

static double
proc_virtual_memory(void *arg)
{
	(void)arg;
	return proc_stat_field(23);
}

static double
proc_resident_memory(void *arg)
{
	long page = sysconf(_SC_PAGESIZE);

	(void)arg;
	return proc_stat_field(24) * (double)(page > 0 ? page : 4096);
}

/* Boot time from the "btime" line of /proc/stat, which may be long. */
static double
boot_time(void)
{
	char line[256];
	bool at_line_start = true;
	double bt = (double)NAN;
	FILE *fp;

	if ((fp = fopen("/proc/stat", "re")) == NULL)
		return (double)NAN;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (at_line_start && strncmp(line, "btime ", 6) == 0) {
			bt = strtod(line + 6, NULL);
			break;
		}
		at_line_start = strchr(line, '\n') != NULL;
	}
	(void)fclose(fp);
	return bt;
}

static double
proc_start_time(void *arg)
{
	(void)arg;
	return proc_stat_field(22) / clock_ticks() + boot_time();
}

static double
proc_cpu_seconds(void *arg)
{
	(void)arg;
	return (proc_stat_field(14) + proc_stat_field(15)) / clock_ticks();
}

static double
proc_open_fds(void *arg)
{
	struct dirent *de;
	double n = 0;
	DIR *d;
	int self;

	(void)arg;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return (double)NAN;
	self = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		/* Skip ".", ".." and the descriptor this listing holds. */
		if (de->d_name[0] == '.' || strtol(de->d_name, NULL, 10) == self)
			continue;
		n++;
	}
	(void)closedir(d);
	return n;
}

static double
proc_max_fds(void *arg)
{
	char buf[4096], *p, *end;
	double v;

	(void)arg;
	if (read_small_file("/proc/self/limits", buf, sizeof(buf)) != 0 ||
	    (p = strstr(buf, "\nMax open files")) == NULL)
		return (double)NAN;
	p += strlen("\nMax open files");
	while (*p == ' ')
		p++;
	if (strncmp(p, "unlimited", 9) == 0)
		return (double)INFINITY;
	v = strtod(p, &end);
	return end != p ? v : (double)NAN;
}

static const struct {
	const char *name;
	const char *help;
	enum fam_kind kind;
	double (*fn)(void *);
} process_collectors[] = {
	/* Names, help and order as prometheus_client's ProcessCollector. */
	{ "process_virtual_memory_bytes", "Virtual memory size in bytes.",
	    FAM_GAUGE_FN, proc_virtual_memory },
	{ "process_resident_memory_bytes", "Resident memory size in bytes.",
	    FAM_GAUGE_FN, proc_resident_memory },
	{ "process_start_time_seconds",
	    "Start time of the process since unix epoch in seconds.",
	    FAM_GAUGE_FN, proc_start_time },
	{ "process_cpu_seconds_total",
	    "Total user and system CPU time spent in seconds.",
	    FAM_COUNTER_FN, proc_cpu_seconds },
	{ "process_open_fds", "Number of open file descriptors.",
	    FAM_GAUGE_FN, proc_open_fds },
	{ "process_max_fds", "Maximum number of open file descriptors.",
	    FAM_GAUGE_FN, proc_max_fds },
};
#define NPROCESS (sizeof(process_collectors) / sizeof(process_collectors[0]))
#endif /* __linux__ */

int
tp_metrics_register_process(struct tp_metrics_registry *reg)
{
	if (reg == NULL)
		return -1;
#ifdef __linux__
	/* All or nothing for name clashes; only out of memory leaves a part. */
	for (size_t i = 0; i < NPROCESS; i++) {
		if (tp_metrics_name_taken(reg, process_collectors[i].name,
		    process_collectors[i].kind))
			return -1;
	}
	for (size_t i = 0; i < NPROCESS; i++) {
		if (tp_metrics_fn_family_new(reg, process_collectors[i].kind,
		    process_collectors[i].name, process_collectors[i].help,
		    process_collectors[i].fn, NULL) != 0)
			return -1;
	}
#endif
	return 0;
}
