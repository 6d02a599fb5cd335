/*
 * redis_server.c -- see redis_server.h.
 */
#include "redis_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* True once something accepts connections on the socket. */
static bool
answers(const char *path)
{
	struct sockaddr_un sa;
	int fd, ok;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int
spawn(struct test_redis *t)
{
	const char *bin = getenv("REDIS_SERVER");
	int64_t deadline;
	int status, devnull;

	if (bin == NULL || bin[0] == '\0')
		bin = "redis-server";
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		/* Never outlive a test that crashed or was killed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, STDOUT_FILENO);
			close(devnull);
		}
		execlp(bin, bin, "--port", "0", "--unixsocket", t->sock,
		    "--unixsocketperm", "700", "--dir", t->dir, "--save", "",
		    "--appendonly", "no", "--daemonize", "no",
		    "--maxmemory-policy", "noeviction", (char *)NULL);
		_exit(127);
	}
	deadline = now_ms() + 10000;
	while (now_ms() < deadline) {
		if (answers(t->sock))
			return 0;
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			fprintf(stderr, "redis-server exited (status %d); is "
			    "Debian's redis-server installed?\n", status);
			t->pid = -1;
			return -1;
		}
		nap_ms(10);
	}
	fprintf(stderr, "redis-server did not answer within 10 s\n");
	kill(t->pid, SIGKILL);
	waitpid(t->pid, &status, 0);
	t->pid = -1;
	return -1;
}

int
test_redis_start(struct test_redis *t)
{
	memset(t, 0, sizeof(*t));
	t->pid = -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/tp-redis-XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(t->sock, sizeof(t->sock), "%s/redis.sock", t->dir);
	return spawn(t);
}

static void
reap(struct test_redis *t, int sig, long grace_ms)
{
	int64_t deadline = now_ms() + grace_ms;
	int status;

	if (t->pid <= 0)
		return;
	kill(t->pid, sig);
	while (waitpid(t->pid, &status, WNOHANG) == 0) {
		if (now_ms() >= deadline) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &status, 0);
			break;
		}
		nap_ms(5);
	}
	t->pid = -1;
}

void
test_redis_kill(struct test_redis *t)
{
	reap(t, SIGKILL, 5000);
	unlink(t->sock);
}

int
test_redis_restart(struct test_redis *t)
{
	if (t->pid > 0)
		test_redis_kill(t);
	return spawn(t);
}

void
test_redis_stop(struct test_redis *t)
{
	char path[256];

	reap(t, SIGTERM, 5000);
	unlink(t->sock);
	snprintf(path, sizeof(path), "%s/dump.rdb", t->dir);
	unlink(path);
	rmdir(t->dir);
}

void
test_redis_config(const struct test_redis *t, struct relay_redis_config *cfg)
{
	static unsigned seq;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->unix_path, sizeof(cfg->unix_path), "%s", t->sock);
	snprintf(cfg->prefix, sizeof(cfg->prefix), "test%d-%u:", (int)getpid(),
	    __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	cfg->connect_timeout_ms = 1000;
	cfg->command_timeout_ms = 2000;
	cfg->pool_size = 8;
}

struct test_redis test_redis_group;
bool test_redis_active;

int
test_redis_group_setup(void **state)
{
	(void)state;
	if (test_redis_start(&test_redis_group) != 0)
		return -1;
	test_redis_active = true;
	return 0;
}

int
test_redis_group_teardown(void **state)
{
	(void)state;
	test_redis_stop(&test_redis_group);
	test_redis_active = false;
	return 0;
}
