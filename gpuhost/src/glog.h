/*
 * glog.h -- gpuhost's own log: tp_log lines (JSON) sent to a rotated
 * file, the console and, on Windows, the Event Log for warnings and
 * errors. Until gpuhost_glog_open() is called lines go to stderr.
 */
#ifndef GPUHOST_GLOG_H
#define GPUHOST_GLOG_H

#include <stdbool.h>

#include "tokenplace/log.h"

struct gpuhost_logfile;

/* Where lines go. Any may be NULL/false. The file is borrowed. */
void gpuhost_glog_open(struct gpuhost_logfile *file, bool console,
    void (*event_sink)(enum tp_log_level, const char *event,
    const char *line));

/* Back to stderr only (before the file is closed). */
void gpuhost_glog_close(void);

/* Logs one line; same arguments as tp_log(). */
void gpuhost_glog(enum tp_log_level level, const char *event,
    const struct tp_log_field *fields, size_t nfields);

#define GLOG(level, msg, ...) do {						\
	if (tp_log_enabled(level)) {						\
		const struct tp_log_field glog_f_[] = { TP_LSTR(NULL, NULL), __VA_ARGS__ }; \
		gpuhost_glog((level), (msg), glog_f_ + 1,			\
		    sizeof(glog_f_) / sizeof(glog_f_[0]) - 1);			\
	}									\
} while (0)
#define GLOG0(level, msg) do {							\
	if (tp_log_enabled(level))						\
		gpuhost_glog((level), (msg), NULL, 0);				\
} while (0)

#endif
