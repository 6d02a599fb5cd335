/*
 * supervisor.c -- the service's main loop; see supervisor.h.
 *
 * One thread runs the loop and polls at SUP_TICK_MS: worker exit, the
 * stop flag, restart and probe deadlines. Reader threads (proc.c) only
 * write output lines to the server log.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/log.h"

#include "backoff.h"
#include "checks.h"
#include "glog.h"
#include "logfile.h"
#include "metrics.h"
#include "os.h"
#include "probe.h"
#include "proc.h"
#include "redact.h"
#include "status.h"
#include "supervisor.h"
#include "worker.h"

#define SUP_TICK_MS 25
#define SUP_KILL_WAIT_MS 10000	/* after SIGKILL/TerminateJobObject */
#define SUP_PROGRESS_MS 500

static volatile sig_atomic_t stop_flag;

void
gpuhost_supervisor_request_stop(void)
{
	stop_flag = 1;
}

struct sup {
	const struct gpuhost_config *cfg;
	const struct gpuhost_sup_hooks *hooks;
	struct gpuhost_logfile *glog, *slog;
	struct gpuhost_status st;
	char status_path[GPUHOST_PATH_MAX];
	char probe_host[64];
	enum gpuhost_health health;
	unsigned probe_fails;
	char last_probe_err[200];
	/* For the metrics endpoint ([metrics] listen), NULL when off. */
	struct gpuhost_metrics *metrics;
	struct gpuhost_metrics_server *msrv;
	int64_t worker_started;		/* gpuhost_now_ms(), 0: no worker */
	uint64_t probes_ok;
};

int
gpuhost_status_path(const struct gpuhost_config *cfg, char *buf, size_t len)
{
	return gpuhost_path_join(buf, len, cfg->log_path, "gpuhost.status");
}

static void
save(struct sup *s)
{
	if (s->status_path[0] == '\0')
		return;
	s->st.updated_ms = gpuhost_wall_ms();
	if (s->slog != NULL)
		s->st.log_rotations = gpuhost_logfile_rotations(s->slog);
	(void)gpuhost_status_write(s->status_path, &s->st);
	gpuhost_metrics_publish(s->metrics, &s->st, s->worker_started,
	    s->probes_ok, s->st.health_failures);
}

/* Copies src into a fixed status field, cut to fit (the field is a summary). */
static void
copy_field(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
set_state(struct sup *s, enum gpuhost_state state, const char *message)
{
	copy_field(s->st.state, sizeof(s->st.state), gpuhost_state_name(state));
	copy_field(s->st.message, sizeof(s->st.message), message);
	save(s);
}

static void
set_health(struct sup *s, enum gpuhost_health h, const char *reason)
{
	s->health = h;
	snprintf(s->st.health, sizeof(s->st.health), "%s",
	    gpuhost_health_name(h));
	snprintf(s->st.health_reason, sizeof(s->st.health_reason), "%s", reason);
	s->st.health_since_ms = gpuhost_wall_ms();
	save(s);
}

/*
 * Output of the worker: one line at a time from the reader threads. The
 * relay token never reaches a log, whatever the script prints.
 */
static void
worker_line(void *arg, int stream, const char *line, size_t len)
{
	struct sup *s = arg;
	size_t n;
	char *buf = gpuhost_redact(line, len, s->cfg->relay_token, &n);

	if (buf == NULL)
		return;
	buf[n] = '\n';
	(void)gpuhost_logfile_write(s->slog, buf, n + 1);
	if (s->cfg->log_console) {
		(void)fwrite(buf, 1, n + 1, stream == 1 ? stdout : stderr);
		(void)fflush(stream == 1 ? stdout : stderr);
	}
	free(buf);
}

static void
probe(struct sup *s, int64_t started_ms)
{
	char err[200];
	long code = 0;
	int rc;

	rc = gpuhost_probe_http(s->probe_host, (uint16_t)s->cfg->port,
	    s->cfg->health_path, (int)(s->cfg->health_timeout * 1000), &code,
	    err, sizeof(err));
	if (rc == 0 && (code < 200 || code > 299)) {
		snprintf(err, sizeof(err), "HTTP %ld", code);
		rc = -1;
	}
	if (rc == 0) {
		if (s->health == GPUHOST_HEALTH_STARTING) {
			GLOG(TP_LOG_INFO, "server_ready",
			    TP_LINT("port", s->cfg->port),
			    TP_LINT("after_ms", gpuhost_now_ms() - started_ms));
			set_health(s, GPUHOST_HEALTH_READY, "");
		} else if (s->health == GPUHOST_HEALTH_UNHEALTHY) {
			GLOG(TP_LOG_WARNING, "server_recovered",
			    TP_LUINT("failed_probes", s->probe_fails));
			set_health(s, GPUHOST_HEALTH_READY, "recovered");
		}
		s->probe_fails = 0;
		s->probes_ok++;
		gpuhost_metrics_publish(s->metrics, &s->st, s->worker_started,
		    s->probes_ok, s->st.health_failures);
		return;
	}
	s->st.health_failures++;
	gpuhost_metrics_publish(s->metrics, &s->st, s->worker_started,
	    s->probes_ok, s->st.health_failures);
	s->probe_fails++;
	snprintf(s->last_probe_err, sizeof(s->last_probe_err), "%s", err);
	if (s->health == GPUHOST_HEALTH_READY &&
	    s->probe_fails >= (unsigned)s->cfg->health_failures) {
		GLOG(TP_LOG_ERROR, "server_unhealthy", TP_LSTR("reason", err),
		    TP_LUINT("failed_probes", s->probe_fails));
		set_health(s, GPUHOST_HEALTH_UNHEALTHY, err);
	}
}

/* Pre-flight; returns true when the worker may start. */
static bool
preflight(struct sup *s)
{
	struct gpuhost_report r;
	int64_t deadline = gpuhost_now_ms() + (int64_t)(s->cfg->dns_wait * 1000);
	bool ok;

	for (;;) {
		gpuhost_checks_run(s->cfg, 0, &r);
		for (size_t i = 0; i < r.n; i++) {
			const struct gpuhost_check *c = &r.c[i];
			enum tp_log_level lvl = c->outcome == GPUHOST_FAIL ?
			    TP_LOG_ERROR : c->outcome == GPUHOST_WARN ?
			    TP_LOG_WARNING : TP_LOG_INFO;

			GLOG(lvl, "check", TP_LSTR("check", c->name),
			    TP_LSTR("outcome", gpuhost_outcome_name(c->outcome)),
			    TP_LSTR("detail", c->message));
		}
		ok = r.overall != GPUHOST_FAIL;
		/* At boot the name may resolve only once the network is up. */
		if (!ok && r.n > 0 && gpuhost_now_ms() < deadline && !stop_flag) {
			bool only_dns = true;

			for (size_t i = 0; i < r.n; i++) {
				if (r.c[i].outcome == GPUHOST_FAIL &&
				    strcmp(r.c[i].name, "dns") != 0)
					only_dns = false;
			}
			if (only_dns) {
				gpuhost_report_free(&r);
				gpuhost_sleep_ms(1000);
				continue;
			}
		}
		break;
	}
	gpuhost_report_free(&r);
	return ok;
}

static int
open_logs(struct sup *s)
{
	char path[GPUHOST_PATH_MAX], err[300];
	const struct gpuhost_config *cfg = s->cfg;

	if (gpuhost_mkdirs(cfg->log_path, err, sizeof(err)) != 0) {
		GLOG(TP_LOG_CRITICAL, "log_dir_failed", TP_LSTR("error", err));
		return -1;
	}
	if (gpuhost_path_join(path, sizeof(path), cfg->log_path,
	    "gpuhost.log") != 0 ||
	    (s->glog = gpuhost_logfile_open(path, (uint64_t)cfg->log_max_bytes,
	    (unsigned)cfg->log_keep, err, sizeof(err))) == NULL) {
		GLOG(TP_LOG_CRITICAL, "log_open_failed", TP_LSTR("error", err));
		return -1;
	}
	if (gpuhost_path_join(path, sizeof(path), cfg->log_path,
	    "server.log") != 0 ||
	    (s->slog = gpuhost_logfile_open(path, (uint64_t)cfg->log_max_bytes,
	    (unsigned)cfg->log_keep, err, sizeof(err))) == NULL) {
		GLOG(TP_LOG_CRITICAL, "log_open_failed", TP_LSTR("error", err));
		return -1;
	}
	gpuhost_glog_open(s->glog, cfg->log_console,
	    s->hooks != NULL ? s->hooks->event : NULL);
	return gpuhost_status_path(cfg, s->status_path, sizeof(s->status_path));
}

/* Stops the worker: stop, escalate, kill. */
static void
stop_worker(struct sup *s, struct gpuhost_proc *p)
{
	const struct gpuhost_config *cfg = s->cfg;
	int64_t t0 = gpuhost_now_ms(), next_progress = t0, now;
	int64_t esc_ms = (int64_t)(cfg->escalate_after * 1000);
	int64_t grace_ms = (int64_t)(cfg->stop_grace * 1000);
	struct gpuhost_exit ex;
	bool escalated = false, killed = false;
	char desc[96];

	set_state(s, GPUHOST_STATE_STOPPING, "stop requested");
	GLOG(TP_LOG_INFO, "worker_stopping", TP_LINT("pid", gpuhost_proc_pid(p)),
	    TP_LINT("grace_ms", grace_ms));
	(void)gpuhost_proc_send(p, "stop");
	while (!gpuhost_proc_poll(p, &ex)) {
		now = gpuhost_now_ms();
		if (!escalated && now - t0 >= esc_ms) {
			GLOG(TP_LOG_WARNING, "worker_escalate",
			    TP_LINT("after_ms", now - t0));
			(void)gpuhost_proc_send(p, "escalate");
			escalated = true;
		}
		if (!killed && now - t0 >= grace_ms) {
			GLOG(TP_LOG_ERROR, "worker_kill",
			    TP_LINT("after_ms", now - t0));
			gpuhost_proc_kill(p);
			killed = true;
		}
		if (killed && now - t0 >= grace_ms + SUP_KILL_WAIT_MS) {
			GLOG(TP_LOG_CRITICAL, "worker_unkillable",
			    TP_LINT("pid", gpuhost_proc_pid(p)));
			break;
		}
		if (s->hooks != NULL && s->hooks->stopping != NULL &&
		    now >= next_progress) {
			int64_t left = grace_ms - (now - t0);

			s->hooks->stopping(s->hooks->arg,
			    (left > 0 ? left : 0) + SUP_KILL_WAIT_MS);
			next_progress = now + SUP_PROGRESS_MS;
		}
		gpuhost_sleep_ms(SUP_TICK_MS / 2);
	}
	if (gpuhost_proc_poll(p, &ex)) {
		gpuhost_exit_describe(&ex, desc, sizeof(desc));
		GLOG(TP_LOG_INFO, "worker_stopped", TP_LSTR("exit", desc),
		    TP_LINT("after_ms", gpuhost_now_ms() - t0),
		    TP_LBOOL("escalated", escalated), TP_LBOOL("killed", killed));
		if (snprintf(s->st.last_exit, sizeof(s->st.last_exit), "%s%s",
		    desc, killed ? " (killed after the grace period)" : "") < 0)
			s->st.last_exit[0] = '\0';
		s->st.last_exit_ms = gpuhost_wall_ms();
	}
	gpuhost_proc_free(p);
	s->st.worker_pid = 0;
	s->worker_started = 0;
}

int
gpuhost_supervisor_run(const struct gpuhost_config *cfg, const char *exe,
    const struct gpuhost_sup_hooks *hooks)
{
	struct sup s;
	struct gpuhost_proc *p = NULL;
	struct gpuhost_backoff bo;
	int64_t next_start = 0, started = 0, next_probe = 0;
	bool first = true;
	int rc = GPUHOST_EXIT_OK;
	char err[512];

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.hooks = hooks;
	s.st.pid = gpuhost_getpid();
	if (strcmp(cfg->host, "0.0.0.0") == 0 || cfg->host[0] == '\0')
		snprintf(s.probe_host, sizeof(s.probe_host), "127.0.0.1");
	else if (strcmp(cfg->host, "::") == 0)
		snprintf(s.probe_host, sizeof(s.probe_host), "[::1]");
	else if (strchr(cfg->host, ':') != NULL)
		snprintf(s.probe_host, sizeof(s.probe_host), "[%s]", cfg->host);
	else
		snprintf(s.probe_host, sizeof(s.probe_host), "%s", cfg->host);
	bo.initial_ms = (int64_t)(cfg->backoff_initial * 1000);
	bo.max_ms = (int64_t)(cfg->backoff_max * 1000);
	bo.stable_ms = (int64_t)(cfg->stable_after * 1000);
	bo.failures = 0;
	if (open_logs(&s) != 0) {
		rc = GPUHOST_EXIT_INTERNAL;
		goto out;
	}
	if (cfg->metrics_listen[0] != '\0') {
		s.metrics = gpuhost_metrics_new(cfg);
		if (s.metrics == NULL || gpuhost_metrics_server_start(cfg,
		    s.metrics, &s.msrv, err, sizeof(err)) != 0) {
			GLOG(TP_LOG_CRITICAL, "metrics_failed", TP_LSTR("error",
			    s.metrics == NULL ? "out of memory" : err));
			rc = GPUHOST_EXIT_INTERNAL;
			goto out;
		}
		GLOG(TP_LOG_INFO, "metrics_listening", TP_LSTR("address",
		    gpuhost_metrics_server_addr(s.msrv)));
	}
	snprintf(s.st.health, sizeof(s.st.health), "%s",
	    gpuhost_health_name(GPUHOST_HEALTH_STARTING));
	set_state(&s, GPUHOST_STATE_STARTING, "pre-flight checks");
	GLOG(TP_LOG_INFO, "supervisor_start", TP_LSTR("config", cfg->config_path),
	    TP_LSTR("script", cfg->script_path), TP_LINT("port", cfg->port),
	    TP_LSTR("log_dir", cfg->log_path));
	while (!stop_flag) {
		int64_t now = gpuhost_now_ms();
		struct gpuhost_exit ex;

		if (p == NULL) {
			if (now < next_start) {
				gpuhost_sleep_ms(SUP_TICK_MS);
				continue;
			}
			if (!preflight(&s)) {
				if (first) {
					GLOG0(TP_LOG_CRITICAL, "preflight_failed");
					set_state(&s, GPUHOST_STATE_FAILED,
					    "pre-flight checks failed (see gpuhost.log or "
					    "run `check`)");
					rc = GPUHOST_EXIT_PREFLIGHT;
					goto out;
				}
				next_start = now + gpuhost_backoff_next(&bo, 0);
				set_state(&s, GPUHOST_STATE_BACKOFF,
				    "pre-flight checks failed");
				continue;
			}
			if (stop_flag)
				break;
			if (gpuhost_proc_spawn(exe, cfg->config_path, NULL,
			    worker_line, &s, &p, err, sizeof(err)) != 0) {
				GLOG(TP_LOG_CRITICAL, "worker_spawn_failed",
				    TP_LSTR("error", err));
				set_state(&s, GPUHOST_STATE_FAILED, err);
				rc = GPUHOST_EXIT_INTERNAL;
				goto out;
			}
			started = gpuhost_now_ms();
			s.worker_started = started;
			next_probe = started;
			s.probe_fails = 0;
			s.st.worker_pid = gpuhost_proc_pid(p);
			GLOG(TP_LOG_INFO, "worker_started",
			    TP_LINT("pid", gpuhost_proc_pid(p)),
			    TP_LUINT("restarts", s.st.restarts));
			set_health(&s, GPUHOST_HEALTH_STARTING, "");
			set_state(&s, GPUHOST_STATE_RUNNING, "");
			if (first && hooks != NULL && hooks->running != NULL)
				hooks->running(hooks->arg);
			first = false;
			continue;
		}
		if (gpuhost_proc_poll(p, &ex)) {
			char desc[96];
			int64_t ran = now - started, delay;

			gpuhost_proc_free(p);
			p = NULL;
			s.st.worker_pid = 0;
			s.worker_started = 0;
			gpuhost_exit_describe(&ex, desc, sizeof(desc));
			snprintf(s.st.last_exit, sizeof(s.st.last_exit), "%s", desc);
			s.st.last_exit_ms = gpuhost_wall_ms();
			if (!ex.signaled && gpuhost_worker_setup_failure(ex.code)) {
				GLOG(TP_LOG_CRITICAL, "worker_setup_failed",
				    TP_LSTR("exit", desc),
				    TP_LSTR("hint", "see server.log for the reason"));
				set_health(&s, GPUHOST_HEALTH_STOPPED, "");
				set_state(&s, GPUHOST_STATE_FAILED, "the worker could "
				    "not start Python (see server.log)");
				rc = GPUHOST_EXIT_SETUP;
				goto out;
			}
			delay = gpuhost_backoff_next(&bo, ran);
			s.st.restarts++;
			GLOG(TP_LOG_ERROR, "worker_exited", TP_LSTR("exit", desc),
			    TP_LSTR("reason", "the script exited on its own"),
			    TP_LINT("ran_ms", ran), TP_LINT("restart_in_ms", delay),
			    TP_LUINT("consecutive_failures", bo.failures));
			next_start = now + delay;
			set_health(&s, GPUHOST_HEALTH_STARTING, "worker exited");
			set_state(&s, GPUHOST_STATE_BACKOFF, desc);
			continue;
		}
		if (now >= next_probe) {
			probe(&s, started);
			next_probe = gpuhost_now_ms() +
			    (int64_t)(cfg->health_interval * 1000);
		}
		gpuhost_sleep_ms(SUP_TICK_MS);
	}
	if (p != NULL) {
		stop_worker(&s, p);
		p = NULL;
	}
	GLOG0(TP_LOG_INFO, "supervisor_stopped");
	set_state(&s, GPUHOST_STATE_STOPPED, "stopped on request");
out:
	if (p != NULL) {
		gpuhost_proc_kill(p);
		gpuhost_proc_free(p);
	}
	gpuhost_metrics_server_stop(s.msrv);
	gpuhost_metrics_free(s.metrics);
	gpuhost_glog_close();
	gpuhost_logfile_close(s.glog);
	gpuhost_logfile_close(s.slog);
	return rc;
}
