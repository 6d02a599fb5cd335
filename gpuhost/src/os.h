/*
 * os.h -- the few OS services gpuhost needs, with one POSIX and one Win32
 * implementation (posix/os.c, win/os.c). Paths are UTF-8 everywhere; the
 * Windows side converts to UTF-16 at the API boundary.
 */
#ifndef GPUHOST_OS_H
#define GPUHOST_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef _WIN32
#define GPUHOST_PATHSEP '\\'
#define GPUHOST_PATHSEP_STR "\\"
#else
#define GPUHOST_PATHSEP '/'
#define GPUHOST_PATHSEP_STR "/"
#endif

/* Milliseconds from a monotonic clock. */
int64_t gpuhost_now_ms(void);

/* Sleeps about `ms` milliseconds. */
void gpuhost_sleep_ms(int ms);

/* Milliseconds since the Unix epoch (wall clock). */
int64_t gpuhost_wall_ms(void);

struct gpuhost_thread;

/* Starts fn(arg) on a new thread. Returns 0 and *out, or -1. */
int gpuhost_thread_start(struct gpuhost_thread **out, void (*fn)(void *),
    void *arg);

/* Waits for the thread to end and frees it. NULL is accepted. */
void gpuhost_thread_join(struct gpuhost_thread *t);

struct gpuhost_mutex;

/* Returns a new mutex or NULL. */
struct gpuhost_mutex *gpuhost_mutex_new(void);
void gpuhost_mutex_free(struct gpuhost_mutex *m);
void gpuhost_mutex_lock(struct gpuhost_mutex *m);
void gpuhost_mutex_unlock(struct gpuhost_mutex *m);

/* Absolute path of the running executable into buf; 0 or -1. */
int gpuhost_exe_path(char *buf, size_t len);

bool gpuhost_is_dir(const char *path);
bool gpuhost_is_file(const char *path);

/* True for "/x", "C:\x", "\\server\x". */
bool gpuhost_path_is_absolute(const char *path);

/*
 * Joins dir and name with one separator into buf (name absolute: name
 * alone). Returns 0, or -1 when it does not fit.
 */
int gpuhost_path_join(char *buf, size_t len, const char *dir,
    const char *name);

/* Writes the directory part of path into buf ("." if none); 0 or -1. */
int gpuhost_path_dirname(char *buf, size_t len, const char *path);

/* Creates dir and missing parents; 0 or -1 (errno-style text in err). */
int gpuhost_mkdirs(const char *path, char *err, size_t errlen);

/* fopen() with a UTF-8 path. */
FILE *gpuhost_fopen(const char *path, const char *mode);

/* Renames, replacing `to` if it exists; 0 or -1. */
int gpuhost_rename(const char *from, const char *to);

/* Removes a file; 0 or -1. Missing files count as removed. */
int gpuhost_unlink(const char *path);

/* Sets (value non-NULL) or removes an environment variable; 0 or -1. */
int gpuhost_setenv(const char *name, const char *value);

/* Current working directory into buf; 0 or -1. */
int gpuhost_getcwd(char *buf, size_t len);

/* Changes the working directory; 0 or -1. */
int gpuhost_chdir(const char *path);

/* Current process id. */
long gpuhost_getpid(void);

/* True when process `pid` exists. */
bool gpuhost_pid_alive(long pid);

/*
 * Moves this process into a network namespace of its own, with nothing
 * but a loopback interface that is down (Linux, an unprivileged user
 * namespace when not root). Call before any thread starts. Returns 0, or
 * -1 with the reason in err (other systems; a kernel that forbids it).
 */
int gpuhost_isolate_network(char *err, size_t errlen);

/*
 * 1 when only the owner (and possibly the owner's group, read-only) can
 * read path (POSIX mode 0600 or 0640), 0 when others can, -1 unknown
 * (unreadable; Windows, where install.ps1 sets the ACL and it is not read
 * back). *mode gets the permission bits (0 when unknown).
 */
int gpuhost_file_private(const char *path, unsigned *mode);

/* Text for the last OS error (errno / GetLastError) into buf; returns buf. */
char *gpuhost_last_error(char *buf, size_t len);

#endif
