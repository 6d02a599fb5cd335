/* os.c -- POSIX side of os.h. */
#define _GNU_SOURCE 1
#include <sys/stat.h>
#include <sys/types.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __linux__
#include <sched.h>
#endif
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../os.h"

int64_t
gpuhost_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
gpuhost_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
gpuhost_sleep_ms(int ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

struct gpuhost_thread {
	pthread_t tid;
	void (*fn)(void *);
	void *arg;
};

static void *
thread_main(void *p)
{
	struct gpuhost_thread *t = p;

	t->fn(t->arg);
	return NULL;
}

int
gpuhost_thread_start(struct gpuhost_thread **out, void (*fn)(void *),
    void *arg)
{
	struct gpuhost_thread *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->fn = fn;
	t->arg = arg;
	if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
		free(t);
		return -1;
	}
	*out = t;
	return 0;
}

void
gpuhost_thread_join(struct gpuhost_thread *t)
{
	if (t == NULL)
		return;
	(void)pthread_join(t->tid, NULL);
	free(t);
}

struct gpuhost_mutex {
	pthread_mutex_t m;
};

struct gpuhost_mutex *
gpuhost_mutex_new(void)
{
	struct gpuhost_mutex *m = calloc(1, sizeof(*m));

	if (m != NULL && pthread_mutex_init(&m->m, NULL) != 0) {
		free(m);
		m = NULL;
	}
	return m;
}

void
gpuhost_mutex_free(struct gpuhost_mutex *m)
{
	if (m == NULL)
		return;
	(void)pthread_mutex_destroy(&m->m);
	free(m);
}

void
gpuhost_mutex_lock(struct gpuhost_mutex *m)
{
	(void)pthread_mutex_lock(&m->m);
}

void
gpuhost_mutex_unlock(struct gpuhost_mutex *m)
{
	(void)pthread_mutex_unlock(&m->m);
}

int
gpuhost_exe_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n <= 0 || (size_t)n >= len - 1)
		return -1;
	buf[n] = '\0';
	return 0;
}

bool
gpuhost_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool
gpuhost_is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
gpuhost_mkdirs(const char *path, char *err, size_t errlen)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		snprintf(err, errlen, "bad directory name");
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", buf, strerror(errno));
			return -1;
		}
		if (i < n)
			buf[i] = '/';
	}
	if (!gpuhost_is_dir(path)) {
		snprintf(err, errlen, "%s exists and is not a directory", path);
		return -1;
	}
	return 0;
}

FILE *
gpuhost_fopen(const char *path, const char *mode)
{
	return fopen(path, mode);
}

int
gpuhost_rename(const char *from, const char *to)
{
	return rename(from, to) == 0 ? 0 : -1;
}

int
gpuhost_unlink(const char *path)
{
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int
gpuhost_setenv(const char *name, const char *value)
{
	if (value == NULL)
		return unsetenv(name) == 0 ? 0 : -1;
	return setenv(name, value, 1) == 0 ? 0 : -1;
}

int
gpuhost_getcwd(char *buf, size_t len)
{
	return getcwd(buf, len) != NULL ? 0 : -1;
}

int
gpuhost_chdir(const char *path)
{
	return chdir(path) == 0 ? 0 : -1;
}

long
gpuhost_getpid(void)
{
	return (long)getpid();
}

bool
gpuhost_pid_alive(long pid)
{
	if (pid <= 0)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

char *
gpuhost_last_error(char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(errno));
	return buf;
}

#ifdef __linux__
/* Writes text to a /proc file; 0 or -1. */
static int
write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(text);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, text, n);
	close(fd);
	return w == (ssize_t)n ? 0 : -1;
}
#endif

int
gpuhost_isolate_network(char *err, size_t errlen)
{
#ifdef __linux__
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];

	/* A user namespace lets a non-root user own the network namespace. */
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0 &&
	    unshare(CLONE_NEWNET) != 0) {
		snprintf(err, errlen, "unshare: %s", strerror(errno));
		return -1;
	}
	/* Same ids inside, so files look as they do outside (best effort). */
	snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)uid,
	    (unsigned long)uid);
	(void)write_proc("/proc/self/setgroups", "deny");
	(void)write_proc("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "%lu %lu 1\n", (unsigned long)gid,
	    (unsigned long)gid);
	(void)write_proc("/proc/self/gid_map", map);
	return 0;
#else
	snprintf(err, errlen, "no network namespaces on this system");
	return -1;
#endif
}

int
gpuhost_file_private(const char *path, unsigned *mode)
{
	struct stat st;

	*mode = 0;
	if (stat(path, &st) != 0)
		return -1;
	*mode = (unsigned)(st.st_mode & 07777);
	return (st.st_mode & 0137) == 0 ? 1 : 0;
}
