/*
 * proc.c -- POSIX worker process: fork/exec into a new process group,
 * pipes for stdout/stderr/control, waitpid polling, group kill.
 */
#define _GNU_SOURCE 1
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../linesplit.h"
#include "../os.h"
#include "../proc.h"

#define CONTROL_FD 3

struct reader {
	int fd;
	struct gpuhost_linesplit ls;
	struct gpuhost_thread *thread;
};

struct gpuhost_proc {
	pid_t pid;
	int control;		/* write end */
	bool exited;
	struct gpuhost_exit ex;
	struct reader out, err;
};

static void
reader_main(void *p)
{
	struct reader *r = p;
	char buf[4096];

	for (;;) {
		ssize_t n = read(r->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		gpuhost_linesplit_feed(&r->ls, buf, (size_t)n);
	}
	gpuhost_linesplit_flush(&r->ls);
	close(r->fd);
	r->fd = -1;
}

int
gpuhost_proc_spawn(const char *exe, const char *config_path,
    const char *flag, gpuhost_line_fn sink, void *arg,
    struct gpuhost_proc **out, char *err, size_t errlen)
{
	struct gpuhost_proc *p;
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, pc[2] = { -1, -1 };
	int devnull = -1;
	char ctl[16];
	char *argv[8];
	pid_t pid;

	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
	    pipe2(pc, O_CLOEXEC) != 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	snprintf(ctl, sizeof(ctl), "%d", CONTROL_FD);
	argv[0] = (char *)(uintptr_t)exe;
	argv[1] = (char *)(uintptr_t)"worker";
	argv[2] = (char *)(uintptr_t)"--config";
	argv[3] = (char *)(uintptr_t)config_path;
	argv[4] = (char *)(uintptr_t)"--control";
	argv[5] = ctl;
	argv[6] = (char *)(uintptr_t)flag;
	argv[7] = NULL;
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		sigset_t none;

		/* Only async-signal-safe calls between fork and exec. */
		(void)setpgid(0, 0);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)signal(SIGPIPE, SIG_DFL);
		if (dup2(devnull, 0) < 0 || dup2(po[1], 1) < 0 ||
		    dup2(pe[1], 2) < 0)
			_exit(127);
		if (pc[0] == CONTROL_FD) {
			if (fcntl(CONTROL_FD, F_SETFD, 0) != 0)
				_exit(127);
		} else if (dup2(pc[0], CONTROL_FD) < 0)
			_exit(127);
		execv(exe, argv);
		_exit(127);
	}
	/* Both sides, so neither races the other's exec/kill. */
	(void)setpgid(pid, pid);
	close(po[1]);
	close(pe[1]);
	close(pc[0]);
	close(devnull);
	p->pid = pid;
	p->control = pc[1];
	p->out.fd = po[0];
	p->err.fd = pe[0];
	p->out.ls.sink = p->err.ls.sink = sink;
	p->out.ls.arg = p->err.ls.arg = arg;
	p->out.ls.stream = 1;
	p->err.ls.stream = 2;
	if (gpuhost_thread_start(&p->out.thread, reader_main, &p->out) != 0 ||
	    gpuhost_thread_start(&p->err.thread, reader_main, &p->err) != 0) {
		/* Without readers the worker would block on a full pipe. */
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		p->exited = true;
		gpuhost_proc_free(p);
		snprintf(err, errlen, "cannot start reader threads");
		return -1;
	}
	*out = p;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
		if (pc[i] >= 0)
			close(pc[i]);
	}
	if (devnull >= 0)
		close(devnull);
	free(p);
	return -1;
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
	ssize_t w;

	if (p->control < 0 || n <= 0 || (size_t)n >= sizeof(line))
		return -1;
	/* MSG_NOSIGNAL does not exist for pipes; SIGPIPE is ignored. */
	do
		w = write(p->control, line, (size_t)n);
	while (w < 0 && errno == EINTR);
	return w == n ? 0 : -1;
}

bool
gpuhost_proc_poll(struct gpuhost_proc *p, struct gpuhost_exit *ex)
{
	int st;
	pid_t r;

	if (!p->exited) {
		do
			r = waitpid(p->pid, &st, WNOHANG);
		while (r < 0 && errno == EINTR);
		if (r == 0)
			return false;
		p->exited = true;
		if (r < 0) {
			p->ex.signaled = false;
			p->ex.code = -1;
		} else if (WIFSIGNALED(st)) {
			p->ex.signaled = true;
			p->ex.code = WTERMSIG(st);
		} else {
			p->ex.signaled = false;
			p->ex.code = WEXITSTATUS(st);
		}
	}
	*ex = p->ex;
	return true;
}

void
gpuhost_proc_kill(struct gpuhost_proc *p)
{
	if (p->pid > 0)
		(void)kill(-p->pid, SIGKILL);
}

void
gpuhost_proc_free(struct gpuhost_proc *p)
{
	if (p == NULL)
		return;
	/* Leftover children of the group would keep the pipes open. */
	if (p->pid > 0)
		(void)kill(-p->pid, SIGKILL);
	gpuhost_thread_join(p->out.thread);
	gpuhost_thread_join(p->err.thread);
	if (p->out.thread == NULL && p->out.fd >= 0)
		close(p->out.fd);
	if (p->err.thread == NULL && p->err.fd >= 0)
		close(p->err.fd);
	if (p->control >= 0)
		close(p->control);
	free(p);
}

char *
gpuhost_exit_describe(const struct gpuhost_exit *ex, char *buf, size_t len)
{
	if (ex->signaled)
		snprintf(buf, len, "signal %ld (%s)", ex->code,
		    strsignal((int)ex->code));
	else
		snprintf(buf, len, "exit code %ld", ex->code);
	return buf;
}

int
gpuhost_control_read(const char *spec, char *buf, size_t len)
{
	int fd = atoi(spec);
	size_t n = 0;

	while (n + 1 < len) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (c == '\n') {
			buf[n] = '\0';
			return n == 0 ? gpuhost_control_read(spec, buf, len) :
			    (int)n;
		}
		buf[n++] = c;
	}
	buf[n] = '\0';
	return (int)n;
}
