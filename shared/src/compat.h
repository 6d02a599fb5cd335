/*
 * Private portability shims for libtokenplace: a mutex, monotonic and wall
 * clocks, and a whole-buffer write. POSIX and Win32 only.
 */
#ifndef TOKENPLACE_COMPAT_H
#define TOKENPLACE_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef _WIN32
#include <windows.h>
typedef SRWLOCK tp_mutex;
#define TP_MUTEX_INIT SRWLOCK_INIT
static inline void tp_mutex_lock(tp_mutex *m) { AcquireSRWLockExclusive(m); }
static inline void tp_mutex_unlock(tp_mutex *m) { ReleaseSRWLockExclusive(m); }
#else
#include <pthread.h>
typedef pthread_mutex_t tp_mutex;
#define TP_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
static inline void tp_mutex_lock(tp_mutex *m) { (void)pthread_mutex_lock(m); }
static inline void tp_mutex_unlock(tp_mutex *m) { (void)pthread_mutex_unlock(m); }
#endif

/* Wall clock as seconds + nanoseconds since the Unix epoch. */
void tp_compat_wallclock(struct timespec *ts);

/* Broken-down UTC time; returns 0 on success. */
int tp_compat_gmtime(time_t t, struct tm *out);

/* Writes all of buf to fd, retrying on EINTR and short writes. 0 or -1. */
int tp_compat_write_all(int fd, const char *buf, size_t len);

#endif
