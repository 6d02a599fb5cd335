/*
 * service.c -- POSIX service side: a systemd unit for `install`, and for
 * hosts without systemd a daemonised `run` tracked by a pidfile in the
 * log directory for `start`, `stop` and `status`.
 */
#define _GNU_SOURCE 1
#include <sys/stat.h>
#include <sys/types.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../glog.h"
#include "../gpu.h"
#include "../os.h"
#include "../probe.h"
#include "../service.h"
#include "../status.h"
#include "../supervisor.h"

#define START_WAIT_MS 30000	/* start: until the status file says running */
#define STOP_MARGIN_MS 15000	/* stop: beyond service.stop_grace */

static void
on_signal(int sig)
{
	(void)sig;
	gpuhost_supervisor_request_stop();
}

int
gpuhost_run_foreground(const struct gpuhost_config *cfg, const char *exe)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	if (gpuhost_probe_global_init() != 0) {
		fprintf(stderr, "tokenplace-gpuhost: libcurl init failed\n");
		return GPUHOST_EXIT_INTERNAL;
	}
	return gpuhost_supervisor_run(cfg, exe, NULL);
}

static int
unit_path(const struct gpuhost_config *cfg, const struct gpuhost_svc_opts *o,
    char *buf, size_t len)
{
	char name[300];

	snprintf(name, sizeof(name), "%s.service", cfg->service_name);
	return gpuhost_path_join(buf, len, o->unit_dir ? o->unit_dir :
	    "/etc/systemd/system", name);
}

static void
write_unit(FILE *fp, const struct gpuhost_config *cfg, const char *exe)
{
	fprintf(fp,
	    "# Written by tokenplace-gpuhost install.\n"
	    "[Unit]\n"
	    "Description=%s (%s)\n"
	    "Wants=network-online.target\n"
	    "After=network-online.target\n"
	    "\n"
	    "[Service]\n"
	    "Type=exec\n"
	    "ExecStart=\"%s\" run --config \"%s\"\n"
	    "Restart=on-failure\n"
	    "RestartSec=5\n"
	    "KillMode=mixed\n"
	    "TimeoutStopSec=%d\n"
	    "\n"
	    "[Install]\n"
	    "WantedBy=multi-user.target\n",
	    cfg->display_name, cfg->service_name, exe, cfg->config_path,
	    (int)cfg->stop_grace + STOP_MARGIN_MS / 1000);
}

/*
 * A config holding relay.token must be readable by root (the service)
 * only: owner root, mode 0600 (0640 is kept). Returns 0, or -1 after
 * saying what the operator has to do.
 */
static int
protect_config(const struct gpuhost_config *cfg)
{
	struct stat st;
	char e[200];

	if (cfg->relay_token[0] == '\0')
		return 0;
	if (stat(cfg->config_path, &st) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: %s: %s\n", cfg->config_path,
		    gpuhost_last_error(e, sizeof(e)));
		return -1;
	}
	if (st.st_uid == 0 && (st.st_mode & 0137) == 0)
		return 0;
	if (geteuid() != 0) {
		fprintf(stderr, "tokenplace-gpuhost: %s holds relay.token: "
		    "make it root's and private: sudo chown root: %s && "
		    "sudo chmod 600 %s\n", cfg->config_path, cfg->config_path,
		    cfg->config_path);
		return -1;
	}
	if ((st.st_uid != 0 && chown(cfg->config_path, 0, (gid_t)-1) != 0) ||
	    ((st.st_mode & 0137) != 0 && chmod(cfg->config_path, 0600) != 0)) {
		fprintf(stderr, "tokenplace-gpuhost: cannot protect %s: %s\n",
		    cfg->config_path, gpuhost_last_error(e, sizeof(e)));
		return -1;
	}
	printf("%s holds relay.token: now owned by root, mode %s\n",
	    cfg->config_path, (st.st_mode & 0137) != 0 ? "0600" : "unchanged");
	return 0;
}

int
gpuhost_service_install(const struct gpuhost_config *cfg, const char *exe,
    const struct gpuhost_svc_opts *o)
{
	char path[GPUHOST_PATH_MAX], e[200];
	FILE *fp;

	if (o->print) {
		write_unit(stdout, cfg, exe);
		if (cfg->relay_token[0] != '\0')
			fprintf(stderr, "note: %s holds relay.token; keep it "
			    "owned by root, mode 0600\n", cfg->config_path);
		return 0;
	}
	if (protect_config(cfg) != 0)
		return 2;
	if (unit_path(cfg, o, path, sizeof(path)) != 0 ||
	    (fp = gpuhost_fopen(path, "w")) == NULL) {
		fprintf(stderr, "tokenplace-gpuhost: cannot write %s: %s\n"
		    "(run as root, or use `install --print > FILE`)\n", path,
		    gpuhost_last_error(e, sizeof(e)));
		return 2;
	}
	write_unit(fp, cfg, exe);
	if (fclose(fp) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: writing %s failed\n", path);
		return 2;
	}
	printf("wrote %s\nnext: systemctl daemon-reload && systemctl enable "
	    "--now %s\n", path, cfg->service_name);
	return 0;
}

int
gpuhost_service_uninstall(const struct gpuhost_config *cfg,
    const struct gpuhost_svc_opts *o)
{
	char path[GPUHOST_PATH_MAX], e[200];

	if (unit_path(cfg, o, path, sizeof(path)) != 0)
		return 2;
	if (!gpuhost_is_file(path)) {
		printf("%s is not installed (%s missing)\n", cfg->service_name,
		    path);
		return 0;
	}
	if (gpuhost_unlink(path) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: cannot remove %s: %s\n", path,
		    gpuhost_last_error(e, sizeof(e)));
		return 2;
	}
	printf("removed %s\nnext: systemctl daemon-reload\n", path);
	return 0;
}

static int
pid_path(const struct gpuhost_config *cfg, char *buf, size_t len)
{
	return gpuhost_path_join(buf, len, cfg->log_path, "gpuhost.pid");
}

static long
read_pid(const struct gpuhost_config *cfg)
{
	char path[GPUHOST_PATH_MAX], buf[32] = "";
	FILE *fp;
	long pid;

	if (pid_path(cfg, path, sizeof(path)) != 0 ||
	    (fp = gpuhost_fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	pid = strtol(buf, NULL, 10);
	return pid > 0 ? pid : 0;
}

/* Alive and not a zombie nobody has reaped yet. */
static bool
running(long pid)
{
	char path[64], buf[256];
	FILE *fp;
	const char *p;

	if (!gpuhost_pid_alive(pid))
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return true;
	p = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return true;
	return p[1] != ' ' || p[2] != 'Z';
}

int
gpuhost_service_start(const struct gpuhost_config *cfg, const char *exe)
{
	char path[GPUHOST_PATH_MAX], spath[GPUHOST_PATH_MAX], err[300];
	struct gpuhost_status st;
	long pid = read_pid(cfg);
	int64_t deadline;
	pid_t child;
	FILE *fp;

	if (pid > 0 && running(pid)) {
		printf("%s is already running (pid %ld)\n", cfg->service_name, pid);
		return 0;
	}
	if (gpuhost_mkdirs(cfg->log_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: %s\n", err);
		return 2;
	}
	if (pid_path(cfg, path, sizeof(path)) != 0 ||
	    gpuhost_status_path(cfg, spath, sizeof(spath)) != 0)
		return 2;
	(void)gpuhost_unlink(spath);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "tokenplace-gpuhost: fork: %s\n", strerror(errno));
		return 2;
	}
	if (child == 0) {
		int fd = open("/dev/null", O_RDWR);

		(void)setsid();
		if (fd >= 0) {
			(void)dup2(fd, 0);
			(void)dup2(fd, 1);
			(void)dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		execl(exe, exe, "run", "--config", cfg->config_path, (char *)NULL);
		_exit(127);
	}
	if ((fp = gpuhost_fopen(path, "w")) != NULL) {
		fprintf(fp, "%ld\n", (long)child);
		fclose(fp);
	}
	deadline = gpuhost_now_ms() + START_WAIT_MS +
	    (int64_t)(cfg->dns_wait * 1000);
	while (gpuhost_now_ms() < deadline) {
		if (gpuhost_status_read(spath, &st, err, sizeof(err)) == 0 &&
		    st.pid == (long)child) {
			if (gpuhost_status_is(&st, GPUHOST_STATE_RUNNING)) {
				printf("%s started (pid %ld, worker %ld); logs in %s\n",
				    cfg->service_name, (long)child, st.worker_pid,
				    cfg->log_path);
				return 0;
			}
			if (gpuhost_status_is(&st, GPUHOST_STATE_FAILED)) {
				fprintf(stderr, "%s failed to start: %s\n",
				    cfg->service_name, st.message);
				return 2;
			}
		}
		if (!running((long)child)) {
			fprintf(stderr, "%s exited during start; see %s/gpuhost.log\n",
			    cfg->service_name, cfg->log_path);
			return 2;
		}
		gpuhost_sleep_ms(50);
	}
	fprintf(stderr, "%s did not report running within %d s\n",
	    cfg->service_name, START_WAIT_MS / 1000);
	return 2;
}

int
gpuhost_service_stop(const struct gpuhost_config *cfg)
{
	char path[GPUHOST_PATH_MAX];
	long pid = read_pid(cfg);
	int64_t t0 = gpuhost_now_ms();
	int64_t deadline = t0 + (int64_t)(cfg->stop_grace * 1000) + STOP_MARGIN_MS;

	if (pid <= 0 || !running(pid)) {
		printf("%s is not running\n", cfg->service_name);
		return 0;
	}
	if (kill((pid_t)pid, SIGTERM) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: kill %ld: %s\n", pid,
		    strerror(errno));
		return 2;
	}
	while (running(pid)) {
		if (gpuhost_now_ms() > deadline) {
			fprintf(stderr, "%s (pid %ld) did not stop in time\n",
			    cfg->service_name, pid);
			return 2;
		}
		gpuhost_sleep_ms(50);
	}
	if (pid_path(cfg, path, sizeof(path)) == 0)
		(void)gpuhost_unlink(path);
	printf("%s stopped in %.1f s\n", cfg->service_name,
	    (double)(gpuhost_now_ms() - t0) / 1000.0);
	return 0;
}

int
gpuhost_service_status(const struct gpuhost_config *cfg)
{
	char spath[GPUHOST_PATH_MAX], err[300];
	struct gpuhost_status st;
	bool alive;

	if (gpuhost_status_path(cfg, spath, sizeof(spath)) != 0 ||
	    gpuhost_status_read(spath, &st, err, sizeof(err)) != 0) {
		printf("%s: no status (%s); never started here?\n",
		    cfg->service_name, spath);
		gpuhost_gpu_status_print(cfg->nvml_library, stdout);
		return 4;
	}
	alive = running(st.pid);
	printf("service:    %s\n", cfg->service_name);
	if (!alive && !gpuhost_status_is(&st, GPUHOST_STATE_STOPPED) &&
	    !gpuhost_status_is(&st, GPUHOST_STATE_FAILED))
		printf("note:       supervisor pid %ld is gone (last state below)\n",
		    st.pid);
	gpuhost_status_print(&st, stdout);
	gpuhost_gpu_status_print(cfg->nvml_library, stdout);
	return alive && !gpuhost_status_is(&st, GPUHOST_STATE_STOPPED) ? 0 : 3;
}

int
gpuhost_service_dispatch(const char *config_path)
{
	(void)config_path;
	fprintf(stderr, "tokenplace-gpuhost: `service` is for the Windows "
	    "Service Control Manager; use `run` under systemd\n");
	return 64;
}

int
gpuhost_firewall_command(const struct gpuhost_config *cfg, const char *exe,
    const char *action)
{
	(void)exe;
	(void)action;
	fprintf(stderr, "tokenplace-gpuhost: `firewall` manages Windows "
	    "Firewall; on Linux open TCP %lld with ufw/firewalld/nftables\n",
	    (long long)cfg->port);
	return 64;
}
