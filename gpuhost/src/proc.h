/*
 * proc.h -- the worker process as seen from the supervisor.
 *
 * gpuhost_proc_spawn() starts "<exe> worker --config <path> --control <h>"
 * with stdin on the null device, stdout and stderr on pipes read by two
 * threads that hand over whole lines, and a control pipe the worker reads
 * commands from ("stop", "escalate"). The worker leads a new process
 * group (POSIX) or runs in a Job object that kills everything in it when
 * closed (Windows), so Python's own children go with it.
 */
#ifndef GPUHOST_PROC_H
#define GPUHOST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GPUHOST_LINE_MAX 16384	/* longer output lines are split */

/* stream: 1 = stdout, 2 = stderr. `line` has no newline, len bytes. */
typedef void (*gpuhost_line_fn)(void *arg, int stream, const char *line,
    size_t len);

struct gpuhost_exit {
	bool signaled;		/* POSIX: killed by signal `code` */
	long code;		/* exit status or signal number */
};

struct gpuhost_proc;

/*
 * Starts the worker. `flag` (NULL or e.g. "--args-help") is appended to
 * its command line. `sink` is called from reader threads (serialise in
 * it). Returns 0 and *out, or -1 with a reason in err.
 */
int gpuhost_proc_spawn(const char *exe, const char *config_path,
    const char *flag, gpuhost_line_fn sink, void *arg,
    struct gpuhost_proc **out, char *err, size_t errlen);

long gpuhost_proc_pid(const struct gpuhost_proc *p);

/* Writes "cmd\n" to the control pipe; 0 or -1 (worker gone). */
int gpuhost_proc_send(struct gpuhost_proc *p, const char *cmd);

/* Returns true and fills *ex once the worker has exited (no blocking). */
bool gpuhost_proc_poll(struct gpuhost_proc *p, struct gpuhost_exit *ex);

/* Kills the worker and everything it started. */
void gpuhost_proc_kill(struct gpuhost_proc *p);

/*
 * Kills what is left of the group/job, waits for the reader threads to
 * drain the pipes and frees p. Call after gpuhost_proc_poll() said exited.
 */
void gpuhost_proc_free(struct gpuhost_proc *p);

/* "exit code 3", "signal 9 (Killed)", "exit code 0xC000013A (Ctrl-C)". */
char *gpuhost_exit_describe(const struct gpuhost_exit *ex, char *buf,
    size_t len);

/*
 * Worker side: reads one command line from the control channel named by
 * `spec` (the --control argument) into buf without the newline. Returns
 * its length, 0 at end of file (the supervisor is gone), -1 on error.
 */
int gpuhost_control_read(const char *spec, char *buf, size_t len);

#endif
