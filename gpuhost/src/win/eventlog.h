/*
 * eventlog.h -- Windows Event Log: the source is registered at install
 * (EventMessageFile = this exe, whose message table has one "%1"
 * message per severity) and used by the service for warnings and errors.
 */
#ifndef GPUHOST_EVENTLOG_H
#define GPUHOST_EVENTLOG_H

#include "tokenplace/log.h"

/* Registers `source` under ...\EventLog\Application; 0 or -1 (reason in err). */
int gpuhost_eventlog_register(const char *source, const char *exe, char *err,
    size_t errlen);

/* Removes the registration; 0 or -1. */
int gpuhost_eventlog_unregister(const char *source);

/* Opens the source for gpuhost_eventlog_sink(). */
void gpuhost_eventlog_open(const char *source);
void gpuhost_eventlog_close(void);

/* A glog event sink: one Event Log entry per warning/error line. */
void gpuhost_eventlog_sink(enum tp_log_level level, const char *event,
    const char *line);

#endif
