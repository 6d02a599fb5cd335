/*
 * proc.c -- Windows worker process: CreateProcessW with an explicit
 * handle list (only the pipes are inherited), inside a Job object that
 * kills the whole tree when closed.
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "../linesplit.h"
#include "../os.h"
#include "../proc.h"
#include "../wstr.h"

struct reader {
	HANDLE h;
	struct gpuhost_linesplit ls;
	struct gpuhost_thread *thread;
};

struct gpuhost_proc {
	HANDLE process;
	HANDLE job;
	DWORD pid;
	HANDLE control;
	bool exited;
	struct gpuhost_exit ex;
	struct reader out, err;
};

static void
reader_main(void *p)
{
	struct reader *r = p;
	char buf[4096];
	DWORD n;

	while (ReadFile(r->h, buf, sizeof(buf), &n, NULL) && n > 0)
		gpuhost_linesplit_feed(&r->ls, buf, n);
	gpuhost_linesplit_flush(&r->ls);
}

/* Appends arg to the command line with CommandLineToArgvW quoting. */
static int
append_arg(wchar_t *cmd, size_t cap, const char *arg)
{
	wchar_t *w = gpuhost_to_wide(arg);
	size_t o = wcslen(cmd);

	if (w == NULL)
		return -1;
	if (o > 0 && o + 1 < cap)
		cmd[o++] = L' ';
	if (o + 1 < cap)
		cmd[o++] = L'"';
	for (const wchar_t *s = w; *s != L'\0'; s++) {
		size_t bs = 0;

		while (*s == L'\\') {
			bs++;
			s++;
		}
		if (*s == L'\0')
			bs *= 2;
		else if (*s == L'"')
			bs = bs * 2 + 1;
		for (size_t i = 0; i < bs && o + 1 < cap; i++)
			cmd[o++] = L'\\';
		if (*s == L'\0')
			break;
		if (o + 1 < cap)
			cmd[o++] = *s;
	}
	if (o + 1 < cap)
		cmd[o++] = L'"';
	if (o >= cap) {
		free(w);
		return -1;
	}
	cmd[o] = L'\0';
	free(w);
	return 0;
}

int
gpuhost_proc_spawn(const char *exe, const char *config_path,
    const char *flag, gpuhost_line_fn sink, void *arg,
    struct gpuhost_proc **out, char *err, size_t errlen)
{
	struct gpuhost_proc *p;
	SECURITY_ATTRIBUTES sa = { sizeof(sa), NULL, TRUE };
	HANDLE or_ = NULL, ow = NULL, er = NULL, ew = NULL, cr = NULL, cw = NULL;
	HANDLE nul = INVALID_HANDLE_VALUE, inherit[4];
	STARTUPINFOEXW si;
	PROCESS_INFORMATION pi;
	JOBOBJECT_EXTENDED_LIMIT_INFORMATION jl;
	LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
	SIZE_T asize = 0;
	wchar_t *cmd = NULL, *wexe = NULL;
	char ctl[32], e[256];
	size_t cap = 8192;
	int rc = -1;

	p = calloc(1, sizeof(*p));
	cmd = calloc(cap, sizeof(*cmd));
	wexe = gpuhost_to_wide(exe);
	if (p == NULL || cmd == NULL || wexe == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (!CreatePipe(&or_, &ow, &sa, 0) || !CreatePipe(&er, &ew, &sa, 0) ||
	    !CreatePipe(&cr, &cw, &sa, 0)) {
		snprintf(err, errlen, "CreatePipe: %s",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	/* Our ends must not leak into the worker. */
	SetHandleInformation(or_, HANDLE_FLAG_INHERIT, 0);
	SetHandleInformation(er, HANDLE_FLAG_INHERIT, 0);
	SetHandleInformation(cw, HANDLE_FLAG_INHERIT, 0);
	nul = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ |
	    FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, NULL);
	if (nul == INVALID_HANDLE_VALUE) {
		snprintf(err, errlen, "open NUL: %s",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	snprintf(ctl, sizeof(ctl), "%llu",
	    (unsigned long long)(uintptr_t)cr);
	if (append_arg(cmd, cap, exe) != 0 || append_arg(cmd, cap, "worker") != 0 ||
	    append_arg(cmd, cap, "--config") != 0 ||
	    append_arg(cmd, cap, config_path) != 0 ||
	    append_arg(cmd, cap, "--control") != 0 ||
	    append_arg(cmd, cap, ctl) != 0 ||
	    (flag != NULL && append_arg(cmd, cap, flag) != 0)) {
		snprintf(err, errlen, "command line too long");
		goto out;
	}
	inherit[0] = nul;
	inherit[1] = ow;
	inherit[2] = ew;
	inherit[3] = cr;
	(void)InitializeProcThreadAttributeList(NULL, 1, 0, &asize);
	attrs = malloc(asize);
	if (attrs == NULL || !InitializeProcThreadAttributeList(attrs, 1, 0,
	    &asize) || !UpdateProcThreadAttribute(attrs, 0,
	    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit, sizeof(inherit), NULL,
	    NULL)) {
		snprintf(err, errlen, "handle list: %s",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		free(attrs);
		attrs = NULL;
		goto out;
	}
	memset(&si, 0, sizeof(si));
	si.StartupInfo.cb = sizeof(si);
	si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
	si.StartupInfo.hStdInput = nul;
	si.StartupInfo.hStdOutput = ow;
	si.StartupInfo.hStdError = ew;
	si.lpAttributeList = attrs;
	p->job = CreateJobObjectW(NULL, NULL);
	if (p->job != NULL) {
		memset(&jl, 0, sizeof(jl));
		jl.BasicLimitInformation.LimitFlags =
		    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
		(void)SetInformationJobObject(p->job,
		    JobObjectExtendedLimitInformation, &jl, sizeof(jl));
	}
	if (!CreateProcessW(wexe, cmd, NULL, NULL, TRUE, CREATE_SUSPENDED |
	    CREATE_NO_WINDOW | EXTENDED_STARTUPINFO_PRESENT, NULL, NULL,
	    &si.StartupInfo, &pi)) {
		snprintf(err, errlen, "CreateProcess %s: %s", exe,
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	/* Before it runs, so every child it starts is in the job too. */
	if (p->job != NULL && !AssignProcessToJobObject(p->job, pi.hProcess)) {
		CloseHandle(p->job);
		p->job = NULL;
	}
	ResumeThread(pi.hThread);
	CloseHandle(pi.hThread);
	p->process = pi.hProcess;
	p->pid = pi.dwProcessId;
	p->control = cw;
	cw = NULL;
	p->out.h = or_;
	p->err.h = er;
	or_ = er = NULL;
	p->out.ls.sink = p->err.ls.sink = sink;
	p->out.ls.arg = p->err.ls.arg = arg;
	p->out.ls.stream = 1;
	p->err.ls.stream = 2;
	CloseHandle(ow);
	CloseHandle(ew);
	CloseHandle(cr);
	ow = ew = cr = NULL;
	if (gpuhost_thread_start(&p->out.thread, reader_main, &p->out) != 0 ||
	    gpuhost_thread_start(&p->err.thread, reader_main, &p->err) != 0) {
		gpuhost_proc_kill(p);
		WaitForSingleObject(p->process, INFINITE);
		p->exited = true;
		gpuhost_proc_free(p);
		p = NULL;
		snprintf(err, errlen, "cannot start reader threads");
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	if (attrs != NULL) {
		DeleteProcThreadAttributeList(attrs);
		free(attrs);
	}
	if (nul != INVALID_HANDLE_VALUE)
		CloseHandle(nul);
	HANDLE hs[6] = { or_, ow, er, ew, cr, cw };
	for (int i = 0; i < 6; i++) {
		if (hs[i] != NULL)
			CloseHandle(hs[i]);
	}
	if (p != NULL) {
		if (p->job != NULL)
			CloseHandle(p->job);
		free(p);
	}
	free(cmd);
	free(wexe);
	return rc;
}

long
gpuhost_proc_pid(const struct gpuhost_proc *p)
{
	return (long)p->pid;
}

int
gpuhost_proc_send(struct gpuhost_proc *p, const char *cmd)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);
	DWORD w = 0;

	if (p->control == NULL || n <= 0 || (size_t)n >= sizeof(line))
		return -1;
	return WriteFile(p->control, line, (DWORD)n, &w, NULL) && w == (DWORD)n ?
	    0 : -1;
}

bool
gpuhost_proc_poll(struct gpuhost_proc *p, struct gpuhost_exit *ex)
{
	DWORD code = 0;

	if (!p->exited) {
		if (WaitForSingleObject(p->process, 0) != WAIT_OBJECT_0)
			return false;
		p->exited = true;
		p->ex.signaled = false;
		p->ex.code = GetExitCodeProcess(p->process, &code) ?
		    (long)code : -1;
	}
	*ex = p->ex;
	return true;
}

void
gpuhost_proc_kill(struct gpuhost_proc *p)
{
	if (p->job != NULL)
		TerminateJobObject(p->job, 1);
	if (p->process != NULL)
		TerminateProcess(p->process, 1);
}

void
gpuhost_proc_free(struct gpuhost_proc *p)
{
	if (p == NULL)
		return;
	if (p->job != NULL)
		TerminateJobObject(p->job, 1);
	gpuhost_thread_join(p->out.thread);
	gpuhost_thread_join(p->err.thread);
	if (p->out.h != NULL)
		CloseHandle(p->out.h);
	if (p->err.h != NULL)
		CloseHandle(p->err.h);
	if (p->control != NULL)
		CloseHandle(p->control);
	if (p->process != NULL)
		CloseHandle(p->process);
	if (p->job != NULL)
		CloseHandle(p->job);
	free(p);
}

char *
gpuhost_exit_describe(const struct gpuhost_exit *ex, char *buf, size_t len)
{
	unsigned long c = (unsigned long)ex->code;

	if (c == 0xC000013Aul)
		snprintf(buf, len, "exit code 0xC000013A (interrupted, Ctrl-C)");
	else if (c >= 0xC0000000ul)
		snprintf(buf, len, "exit code 0x%08lX (crash)", c);
	else
		snprintf(buf, len, "exit code %lu", c);
	return buf;
}

int
gpuhost_control_read(const char *spec, char *buf, size_t len)
{
	HANDLE h = (HANDLE)(uintptr_t)strtoull(spec, NULL, 10);
	size_t n = 0;

	while (n + 1 < len) {
		char c;
		DWORD r = 0;

		if (!ReadFile(h, &c, 1, &r, NULL) || r == 0)
			break;
		if (c == '\r')
			continue;
		if (c == '\n') {
			if (n == 0)
				continue;
			break;
		}
		buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
}
