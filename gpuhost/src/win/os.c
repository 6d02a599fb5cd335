/* os.c -- Win32 side of os.h. */
#include <windows.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "../os.h"
#include "../wstr.h"

int64_t
gpuhost_now_ms(void)
{
	return (int64_t)GetTickCount64();
}

int64_t
gpuhost_wall_ms(void)
{
	FILETIME ft;
	uint64_t t;

	GetSystemTimeAsFileTime(&ft);
	t = (uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime;
	return (int64_t)((t - 116444736000000000ull) / 10000u);
}

void
gpuhost_sleep_ms(int ms)
{
	if (ms > 0)
		Sleep((DWORD)ms);
}

struct gpuhost_thread {
	HANDLE h;
	void (*fn)(void *);
	void *arg;
};

static DWORD WINAPI
thread_main(LPVOID p)
{
	struct gpuhost_thread *t = p;

	t->fn(t->arg);
	return 0;
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
	t->h = CreateThread(NULL, 0, thread_main, t, 0, NULL);
	if (t->h == NULL) {
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
	WaitForSingleObject(t->h, INFINITE);
	CloseHandle(t->h);
	free(t);
}

struct gpuhost_mutex {
	SRWLOCK l;
};

struct gpuhost_mutex *
gpuhost_mutex_new(void)
{
	struct gpuhost_mutex *m = calloc(1, sizeof(*m));

	if (m != NULL)
		InitializeSRWLock(&m->l);
	return m;
}

void
gpuhost_mutex_free(struct gpuhost_mutex *m)
{
	free(m);
}

void
gpuhost_mutex_lock(struct gpuhost_mutex *m)
{
	AcquireSRWLockExclusive(&m->l);
}

void
gpuhost_mutex_unlock(struct gpuhost_mutex *m)
{
	ReleaseSRWLockExclusive(&m->l);
}

int
gpuhost_exe_path(char *buf, size_t len)
{
	wchar_t w[MAX_PATH * 4];
	DWORD n = GetModuleFileNameW(NULL, w, (DWORD)(sizeof(w) / sizeof(w[0])));

	if (n == 0 || n >= sizeof(w) / sizeof(w[0]))
		return -1;
	return gpuhost_to_utf8(w, buf, len);
}

static DWORD
attrs(const char *path)
{
	wchar_t *w = gpuhost_to_wide(path);
	DWORD a;

	if (w == NULL)
		return INVALID_FILE_ATTRIBUTES;
	a = GetFileAttributesW(w);
	free(w);
	return a;
}

bool
gpuhost_is_dir(const char *path)
{
	DWORD a = attrs(path);

	return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

bool
gpuhost_is_file(const char *path)
{
	DWORD a = attrs(path);

	return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

int
gpuhost_mkdirs(const char *path, char *err, size_t errlen)
{
	char buf[4096], e[200];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		snprintf(err, errlen, "bad directory name");
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		wchar_t *w;
		BOOL ok;

		if (buf[i] != '\\' && buf[i] != '/' && buf[i] != '\0')
			continue;
		if (i == 2 && buf[1] == ':')
			continue;
		buf[i] = '\0';
		if (!gpuhost_is_dir(buf)) {
			w = gpuhost_to_wide(buf);
			ok = w != NULL && CreateDirectoryW(w, NULL);
			free(w);
			if (!ok && GetLastError() != ERROR_ALREADY_EXISTS) {
				snprintf(err, errlen, "mkdir %s: %s", buf,
				    gpuhost_last_error(e, sizeof(e)));
				return -1;
			}
		}
		if (i < n)
			buf[i] = path[i];
	}
	return 0;
}

FILE *
gpuhost_fopen(const char *path, const char *mode)
{
	wchar_t *wp = gpuhost_to_wide(path), *wm = gpuhost_to_wide(mode);
	FILE *fp = NULL;

	if (wp != NULL && wm != NULL)
		fp = _wfopen(wp, wm);
	free(wp);
	free(wm);
	return fp;
}

int
gpuhost_rename(const char *from, const char *to)
{
	wchar_t *wf = gpuhost_to_wide(from), *wt = gpuhost_to_wide(to);
	BOOL ok = wf != NULL && wt != NULL &&
	    MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING);

	free(wf);
	free(wt);
	return ok ? 0 : -1;
}

int
gpuhost_unlink(const char *path)
{
	wchar_t *w = gpuhost_to_wide(path);
	BOOL ok = w != NULL && DeleteFileW(w);

	free(w);
	return ok || GetLastError() == ERROR_FILE_NOT_FOUND ? 0 : -1;
}

int
gpuhost_setenv(const char *name, const char *value)
{
	wchar_t *wn = gpuhost_to_wide(name);
	wchar_t *wv = value != NULL ? gpuhost_to_wide(value) : NULL;
	BOOL ok = wn != NULL && (value == NULL || wv != NULL) &&
	    SetEnvironmentVariableW(wn, wv);

	free(wn);
	free(wv);
	return ok ? 0 : -1;
}

int
gpuhost_getcwd(char *buf, size_t len)
{
	wchar_t w[MAX_PATH * 4];
	DWORD n = GetCurrentDirectoryW((DWORD)(sizeof(w) / sizeof(w[0])), w);

	if (n == 0 || n >= sizeof(w) / sizeof(w[0]))
		return -1;
	return gpuhost_to_utf8(w, buf, len);
}

int
gpuhost_chdir(const char *path)
{
	wchar_t *w = gpuhost_to_wide(path);
	BOOL ok = w != NULL && SetCurrentDirectoryW(w);

	free(w);
	return ok ? 0 : -1;
}

long
gpuhost_getpid(void)
{
	return (long)GetCurrentProcessId();
}

bool
gpuhost_pid_alive(long pid)
{
	HANDLE h;
	DWORD code = 0;
	bool alive;

	if (pid <= 0)
		return false;
	h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
	if (h == NULL)
		return GetLastError() == ERROR_ACCESS_DENIED;
	alive = GetExitCodeProcess(h, &code) && code == STILL_ACTIVE;
	CloseHandle(h);
	return alive;
}

char *
gpuhost_last_error(char *buf, size_t len)
{
	gpuhost_win_error(GetLastError(), buf, len);
	return buf;
}

int
gpuhost_isolate_network(char *err, size_t errlen)
{
	/* --help parses the command line before a script connects anywhere. */
	snprintf(err, errlen, "not available on Windows");
	return -1;
}

int
gpuhost_file_private(const char *path, unsigned *mode)
{
	/* install.ps1 sets the ACL; the DACL is not read back here. */
	(void)path;
	*mode = 0;
	return -1;
}
