/* glog.c -- fan-out of gpuhost's log lines; see glog.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glog.h"
#include "logfile.h"

static struct gpuhost_logfile *glog_file;
static bool glog_console = true;
static void (*glog_event)(enum tp_log_level, const char *, const char *);

void
gpuhost_glog_open(struct gpuhost_logfile *file, bool console,
    void (*event_sink)(enum tp_log_level, const char *, const char *))
{
	glog_file = file;
	glog_console = console;
	glog_event = event_sink;
}

void
gpuhost_glog_close(void)
{
	glog_file = NULL;
	glog_console = true;
	glog_event = NULL;
}

void
gpuhost_glog(enum tp_log_level level, const char *event,
    const struct tp_log_field *fields, size_t nfields)
{
	char *line = tp_log_format(level, event, fields, nfields);
	size_t n;

	if (line == NULL)
		return;
	n = strlen(line);
	if (glog_file != NULL)
		(void)gpuhost_logfile_write(glog_file, line, n);
	if (glog_console || glog_file == NULL) {
		(void)fwrite(line, 1, n, stdout);
		(void)fflush(stdout);
	}
	if (glog_event != NULL && level >= TP_LOG_WARNING)
		glog_event(level, event, line);
	free(line);
}
