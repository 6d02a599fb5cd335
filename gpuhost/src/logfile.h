/*
 * logfile.h -- an append-only log file rotated by size.
 *
 * Before a write that would take the file past max_bytes, name.log is
 * renamed to name.log.1 (name.log.1 to .2, ...; the oldest beyond `keep`
 * is removed) and a new name.log is started. Thread safe.
 */
#ifndef GPUHOST_LOGFILE_H
#define GPUHOST_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

struct gpuhost_logfile;

/*
 * Opens (appends to) path. Returns the handle, or NULL with a reason in
 * err. Close with gpuhost_logfile_close().
 */
struct gpuhost_logfile *gpuhost_logfile_open(const char *path,
    uint64_t max_bytes, unsigned keep, char *err, size_t errlen);

/* Writes len bytes as one unit (never split across files); 0 or -1. */
int gpuhost_logfile_write(struct gpuhost_logfile *lf, const char *data,
    size_t len);

/* Number of rotations done so far. */
uint64_t gpuhost_logfile_rotations(struct gpuhost_logfile *lf);

/* Flushes and closes. NULL is accepted. */
void gpuhost_logfile_close(struct gpuhost_logfile *lf);

#endif
