/* compat.c -- the few OS calls that differ between POSIX and Win32. */
#include "compat.h"

#include <errno.h>

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>
#endif

void
tp_compat_wallclock(struct timespec *ts)
{
#if defined(_WIN32) && !defined(_UCRT)
	/* mingw-w64 against msvcrt.dll has no timespec_get(). */
	FILETIME ft;
	uint64_t t;

	GetSystemTimePreciseAsFileTime(&ft);
	t = ((uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime) -
	    116444736000000000ull;	/* 100 ns ticks from 1601 to 1970 */
	ts->tv_sec = (time_t)(t / 10000000u);
	ts->tv_nsec = (long)(t % 10000000u) * 100;
#else
	if (timespec_get(ts, TIME_UTC) != TIME_UTC) {
		ts->tv_sec = time(NULL);
		ts->tv_nsec = 0;
	}
#endif
}

int
tp_compat_gmtime(time_t t, struct tm *out)
{
#ifdef _WIN32
	return gmtime_s(out, &t) == 0 ? 0 : -1;
#else
	return gmtime_r(&t, out) != NULL ? 0 : -1;
#endif
}

int
tp_compat_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
#ifdef _WIN32
		int n = _write(fd, buf, len > 0x7fffffff ? 0x7fffffffu : (unsigned)len);
#else
		ssize_t n = write(fd, buf, len);
#endif
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}
