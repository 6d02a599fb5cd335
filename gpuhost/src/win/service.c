/*
 * service.c -- Windows Service Control Manager side: install (description,
 * delayed auto-start, failure actions with the non-crash flag, pre-shutdown
 * timeout, Event Log source), uninstall, start, stop, status, and the
 * service entry point that runs the supervisor and reports each step
 * (stop-pending with wait hints and rising checkpoints).
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "../glog.h"
#include "../gpu.h"
#include "../os.h"
#include "../probe.h"
#include "../service.h"
#include "../status.h"
#include "../supervisor.h"
#include "tokenplace/netcheck.h"
#include "eventlog.h"
#include "../wstr.h"

#define START_WAIT_MS 60000
#define STOP_MARGIN_MS 30000
#define FAILURE_RESET_S 86400

static const char *
state_name(DWORD s)
{
	switch (s) {
	case SERVICE_STOPPED:
		return "stopped";
	case SERVICE_START_PENDING:
		return "start-pending";
	case SERVICE_STOP_PENDING:
		return "stop-pending";
	case SERVICE_RUNNING:
		return "running";
	case SERVICE_CONTINUE_PENDING:
		return "continue-pending";
	case SERVICE_PAUSE_PENDING:
		return "pause-pending";
	case SERVICE_PAUSED:
		return "paused";
	}
	return "unknown";
}

/* ---------------------------------------------------------- foreground */

static BOOL WINAPI
console_handler(DWORD type)
{
	(void)type;
	gpuhost_supervisor_request_stop();
	return TRUE;
}

int
gpuhost_run_foreground(const struct gpuhost_config *cfg, const char *exe)
{
	SetConsoleCtrlHandler(console_handler, TRUE);
	(void)gpuhost_probe_global_init();
	return gpuhost_supervisor_run(cfg, exe, NULL);
}

/* ------------------------------------------------------------- helpers */

static SC_HANDLE
open_scm(DWORD access)
{
	SC_HANDLE scm = OpenSCManagerW(NULL, NULL, access);
	char e[256];

	if (scm == NULL)
		fprintf(stderr, "tokenplace-gpuhost: cannot open the Service Control "
		    "Manager: %s%s\n", gpuhost_win_error(GetLastError(), e, sizeof(e)),
		    GetLastError() == ERROR_ACCESS_DENIED ?
		    " (run from an elevated prompt)" : "");
	return scm;
}

static SC_HANDLE
open_svc(SC_HANDLE scm, const char *name, DWORD access, bool quiet)
{
	wchar_t *w = gpuhost_to_wide(name);
	SC_HANDLE s = w != NULL ? OpenServiceW(scm, w, access) : NULL;
	char e[256];

	if (s == NULL && !quiet)
		fprintf(stderr, "tokenplace-gpuhost: service %s: %s\n", name,
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	free(w);
	return s;
}

static bool
query(SC_HANDLE s, SERVICE_STATUS_PROCESS *ss)
{
	DWORD n;

	return QueryServiceStatusEx(s, SC_STATUS_PROCESS_INFO, (LPBYTE)ss,
	    sizeof(*ss), &n) != 0;
}

/* Waits until the state is `want` or not pending any more. */
static DWORD
wait_state(SC_HANDLE s, DWORD want, int64_t timeout_ms,
    SERVICE_STATUS_PROCESS *ss)
{
	int64_t deadline = gpuhost_now_ms() + timeout_ms;

	while (query(s, ss)) {
		if (ss->dwCurrentState == want)
			return want;
		if (ss->dwCurrentState != SERVICE_START_PENDING &&
		    ss->dwCurrentState != SERVICE_STOP_PENDING)
			return ss->dwCurrentState;
		if (gpuhost_now_ms() > deadline)
			break;
		gpuhost_sleep_ms(100);
	}
	return ss->dwCurrentState;
}

/* ------------------------------------------------------------- install */

int
gpuhost_service_install(const struct gpuhost_config *cfg, const char *exe,
    const struct gpuhost_svc_opts *o)
{
	SC_HANDLE scm = NULL, svc = NULL;
	wchar_t *wname = NULL, *wdisp = NULL, *wbin = NULL, *wdesc = NULL;
	wchar_t *wacct = NULL, *wpass = NULL;
	char bin[3 * GPUHOST_PATH_MAX], desc[512], e[256];
	const char *account = o->account ? o->account : cfg->account;
	SERVICE_DESCRIPTIONW sd;
	SERVICE_DELAYED_AUTO_START_INFO da = { TRUE };
	SC_ACTION actions[3] = {
		{ SC_ACTION_RESTART, 5000 },
		{ SC_ACTION_RESTART, 15000 },
		{ SC_ACTION_RESTART, 60000 },
	};
	SERVICE_FAILURE_ACTIONSW fa;
	SERVICE_FAILURE_ACTIONS_FLAG ff = { TRUE };
	SERVICE_PRESHUTDOWN_INFO pi;
	int rc = 2;

	snprintf(bin, sizeof(bin), "\"%s\" service --config \"%s\"", exe,
	    cfg->config_path);
	snprintf(desc, sizeof(desc), "Runs the token.place server (%s) in an "
	    "embedded CPython from %s on port %lld.", cfg->script_path,
	    cfg->venv_path, (long long)cfg->port);
	wname = gpuhost_to_wide(cfg->service_name);
	wdisp = gpuhost_to_wide(cfg->display_name);
	wbin = gpuhost_to_wide(bin);
	wdesc = gpuhost_to_wide(desc);
	if (account != NULL && account[0] != '\0' &&
	    _stricmp(account, "LocalSystem") != 0)
		wacct = gpuhost_to_wide(account);
	if (o->password != NULL)
		wpass = gpuhost_to_wide(o->password);
	if (wname == NULL || wdisp == NULL || wbin == NULL || wdesc == NULL)
		goto out;
	if ((scm = open_scm(SC_MANAGER_CREATE_SERVICE | SC_MANAGER_CONNECT)) == NULL)
		goto out;
	svc = CreateServiceW(scm, wname, wdisp, SERVICE_ALL_ACCESS,
	    SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL,
	    wbin, NULL, NULL, NULL, wacct, wpass);
	if (svc == NULL) {
		fprintf(stderr, "tokenplace-gpuhost: CreateService %s: %s\n",
		    cfg->service_name, gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	printf("installed service %s\n  command: %s\n  account: %s\n",
	    cfg->service_name, bin, wacct ? account : "LocalSystem");
	sd.lpDescription = wdesc;
	if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &sd))
		printf("  warning: description not set: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_DELAYED_AUTO_START_INFO, &da))
		printf("  start: automatic (delayed)\n");
	else
		printf("  warning: delayed auto-start not set: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	memset(&fa, 0, sizeof(fa));
	fa.dwResetPeriod = FAILURE_RESET_S;
	fa.cActions = 3;
	fa.lpsaActions = actions;
	if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa))
		printf("  recovery: restart after 5 s, 15 s, 60 s (reset after 1 day)\n");
	else
		printf("  warning: failure actions not set: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	/* So a non-zero service exit code (not only a crash) triggers them. */
	if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &ff))
		printf("  recovery also on non-crash failures\n");
	else
		printf("  warning: failure-actions flag not set: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	pi.dwPreshutdownTimeout = (DWORD)(cfg->preshutdown_timeout * 1000);
	if (ChangeServiceConfig2W(svc, SERVICE_CONFIG_PRESHUTDOWN_INFO, &pi))
		printf("  pre-shutdown timeout: %.0f s\n", cfg->preshutdown_timeout);
	else
		printf("  warning: pre-shutdown timeout not set: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	if (gpuhost_eventlog_register(cfg->service_name, exe, e, sizeof(e)) == 0)
		printf("  Event Log source: Application/%s\n", cfg->service_name);
	else
		printf("  warning: Event Log source not registered: %s\n", e);
	rc = 0;
out:
	if (svc != NULL)
		CloseServiceHandle(svc);
	if (scm != NULL)
		CloseServiceHandle(scm);
	free(wname);
	free(wdisp);
	free(wbin);
	free(wdesc);
	free(wacct);
	free(wpass);
	return rc;
}

int
gpuhost_service_uninstall(const struct gpuhost_config *cfg,
    const struct gpuhost_svc_opts *o)
{
	SC_HANDLE scm, svc;
	SERVICE_STATUS_PROCESS ss;
	SERVICE_STATUS st;
	char e[256];
	int rc = 2;

	(void)o;
	if ((scm = open_scm(SC_MANAGER_CONNECT)) == NULL)
		return 2;
	svc = open_svc(scm, cfg->service_name, SERVICE_STOP | DELETE |
	    SERVICE_QUERY_STATUS, true);
	if (svc == NULL) {
		printf("%s is not installed\n", cfg->service_name);
		CloseServiceHandle(scm);
		(void)gpuhost_eventlog_unregister(cfg->service_name);
		return 0;
	}
	if (query(svc, &ss) && ss.dwCurrentState != SERVICE_STOPPED) {
		printf("stopping %s\n", cfg->service_name);
		(void)ControlService(svc, SERVICE_CONTROL_STOP, &st);
		(void)wait_state(svc, SERVICE_STOPPED,
		    (int64_t)(cfg->stop_grace * 1000) + STOP_MARGIN_MS, &ss);
	}
	if (DeleteService(svc)) {
		printf("removed service %s\n", cfg->service_name);
		rc = 0;
	} else
		fprintf(stderr, "tokenplace-gpuhost: DeleteService: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
	(void)gpuhost_eventlog_unregister(cfg->service_name);
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return rc;
}

int
gpuhost_service_start(const struct gpuhost_config *cfg, const char *exe)
{
	SC_HANDLE scm, svc;
	SERVICE_STATUS_PROCESS ss;
	DWORD state;
	char e[256];
	int rc = 2;

	(void)exe;
	if ((scm = open_scm(SC_MANAGER_CONNECT)) == NULL)
		return 2;
	if ((svc = open_svc(scm, cfg->service_name, SERVICE_START |
	    SERVICE_QUERY_STATUS, false)) == NULL) {
		CloseServiceHandle(scm);
		return 2;
	}
	if (!StartServiceW(svc, 0, NULL) &&
	    GetLastError() != ERROR_SERVICE_ALREADY_RUNNING) {
		fprintf(stderr, "tokenplace-gpuhost: StartService: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	state = wait_state(svc, SERVICE_RUNNING, START_WAIT_MS +
	    (int64_t)(cfg->dns_wait * 1000), &ss);
	if (state == SERVICE_RUNNING) {
		printf("%s running (pid %lu); logs in %s\n", cfg->service_name,
		    (unsigned long)ss.dwProcessId, cfg->log_path);
		rc = 0;
	} else
		fprintf(stderr, "%s is %s (exit code %lu, service-specific %lu); "
		    "see %s\\gpuhost.log\n", cfg->service_name, state_name(state),
		    (unsigned long)ss.dwWin32ExitCode,
		    (unsigned long)ss.dwServiceSpecificExitCode, cfg->log_path);
out:
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return rc;
}

int
gpuhost_service_stop(const struct gpuhost_config *cfg)
{
	SC_HANDLE scm, svc;
	SERVICE_STATUS_PROCESS ss;
	SERVICE_STATUS st;
	int64_t t0 = gpuhost_now_ms();
	char e[256];
	int rc = 2;

	if ((scm = open_scm(SC_MANAGER_CONNECT)) == NULL)
		return 2;
	if ((svc = open_svc(scm, cfg->service_name, SERVICE_STOP |
	    SERVICE_QUERY_STATUS, false)) == NULL) {
		CloseServiceHandle(scm);
		return 2;
	}
	if (query(svc, &ss) && ss.dwCurrentState == SERVICE_STOPPED) {
		printf("%s is not running\n", cfg->service_name);
		rc = 0;
		goto out;
	}
	if (!ControlService(svc, SERVICE_CONTROL_STOP, &st) &&
	    GetLastError() != ERROR_SERVICE_NOT_ACTIVE) {
		fprintf(stderr, "tokenplace-gpuhost: stop: %s\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	if (wait_state(svc, SERVICE_STOPPED, (int64_t)(cfg->stop_grace * 1000) +
	    STOP_MARGIN_MS, &ss) == SERVICE_STOPPED) {
		printf("%s stopped in %.1f s\n", cfg->service_name,
		    (double)(gpuhost_now_ms() - t0) / 1000.0);
		rc = 0;
	} else
		fprintf(stderr, "%s did not stop in time (%s)\n", cfg->service_name,
		    state_name(ss.dwCurrentState));
out:
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return rc;
}

int
gpuhost_service_status(const struct gpuhost_config *cfg)
{
	SC_HANDLE scm, svc;
	SERVICE_STATUS_PROCESS ss;
	struct gpuhost_status st;
	char spath[GPUHOST_PATH_MAX], err[300];
	int rc = 4;

	if ((scm = open_scm(SC_MANAGER_CONNECT)) == NULL)
		return 4;
	svc = open_svc(scm, cfg->service_name, SERVICE_QUERY_STATUS, true);
	if (svc == NULL) {
		printf("service:    %s is not installed\n", cfg->service_name);
		gpuhost_gpu_status_print(cfg->nvml_library, stdout);
		CloseServiceHandle(scm);
		return 4;
	}
	if (query(svc, &ss)) {
		printf("service:    %s %s", cfg->service_name,
		    state_name(ss.dwCurrentState));
		if (ss.dwProcessId != 0)
			printf(" (pid %lu)", (unsigned long)ss.dwProcessId);
		if (ss.dwCurrentState == SERVICE_STOPPED && ss.dwWin32ExitCode != 0)
			printf(" exit code %lu/%lu", (unsigned long)ss.dwWin32ExitCode,
			    (unsigned long)ss.dwServiceSpecificExitCode);
		printf("\n");
		rc = ss.dwCurrentState == SERVICE_RUNNING ? 0 : 3;
	}
	if (gpuhost_status_path(cfg, spath, sizeof(spath)) == 0 &&
	    gpuhost_status_read(spath, &st, err, sizeof(err)) == 0)
		gpuhost_status_print(&st, stdout);
	gpuhost_gpu_status_print(cfg->nvml_library, stdout);
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	return rc;
}

/* ------------------------------------------------------- service entry */

static SERVICE_STATUS_HANDLE status_handle;
static SERVICE_STATUS svc_status;
static const char *svc_config_path;
static SRWLOCK status_lock = SRWLOCK_INIT;

static void
report(DWORD state, DWORD exit_code, DWORD specific, DWORD wait_hint)
{
	AcquireSRWLockExclusive(&status_lock);
	svc_status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	svc_status.dwCurrentState = state;
	svc_status.dwWin32ExitCode = exit_code;
	svc_status.dwServiceSpecificExitCode = specific;
	svc_status.dwWaitHint = wait_hint;
	svc_status.dwControlsAccepted = state == SERVICE_RUNNING ?
	    SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN |
	    SERVICE_ACCEPT_PRESHUTDOWN : 0;
	if (state == SERVICE_RUNNING || state == SERVICE_STOPPED)
		svc_status.dwCheckPoint = 0;
	else
		svc_status.dwCheckPoint++;
	(void)SetServiceStatus(status_handle, &svc_status);
	ReleaseSRWLockExclusive(&status_lock);
}

static DWORD WINAPI
handler(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
	(void)type;
	(void)data;
	(void)ctx;
	switch (control) {
	case SERVICE_CONTROL_STOP:
	case SERVICE_CONTROL_SHUTDOWN:
	case SERVICE_CONTROL_PRESHUTDOWN:
		report(SERVICE_STOP_PENDING, NO_ERROR, 0, 5000);
		gpuhost_supervisor_request_stop();
		return NO_ERROR;
	case SERVICE_CONTROL_INTERROGATE:
		return NO_ERROR;
	}
	return ERROR_CALL_NOT_IMPLEMENTED;
}

static void
hook_running(void *arg)
{
	(void)arg;
	report(SERVICE_RUNNING, NO_ERROR, 0, 0);
}

static void
hook_stopping(void *arg, int64_t remaining_ms)
{
	(void)arg;
	/* A rising checkpoint within the hint keeps the SCM waiting. */
	report(SERVICE_STOP_PENDING, NO_ERROR, 0,
	    (DWORD)(remaining_ms < 2000 ? 2000 : remaining_ms));
}

static void WINAPI
service_main(DWORD argc, LPWSTR *argv)
{
	struct gpuhost_config cfg, run;
	struct gpuhost_config_errors errs;
	struct gpuhost_sup_hooks hooks;
	char exe[GPUHOST_PATH_MAX];
	enum tp_log_level lvl;
	int rc;

	(void)argc;
	status_handle = RegisterServiceCtrlHandlerExW(argv[0], handler, NULL);
	if (status_handle == NULL)
		return;
	report(SERVICE_START_PENDING, NO_ERROR, 0, 30000);
	if (gpuhost_config_load(svc_config_path, &cfg, &errs) != 0) {
		gpuhost_eventlog_open("tokenplace-gpuhost");
		for (size_t i = 0; i < errs.n && i < GPUHOST_CONFIG_MAX_ERRORS; i++)
			gpuhost_eventlog_sink(TP_LOG_ERROR, "config", errs.msg[i]);
		gpuhost_config_free(&cfg);
		report(SERVICE_STOPPED, ERROR_SERVICE_SPECIFIC_ERROR,
		    GPUHOST_EXIT_INTERNAL, 0);
		return;
	}
	gpuhost_eventlog_open(cfg.service_name);
	if (tp_log_level_parse(cfg.log_level, &lvl) != 0)
		lvl = TP_LOG_INFO;
	tp_log_init("tokenplace-gpuhost", lvl, 1);
	(void)tp_netcheck_init();
	(void)gpuhost_probe_global_init();
	/* A service has no console: logs go to files and the Event Log. */
	run = cfg;
	run.log_console = false;
	hooks.arg = NULL;
	hooks.running = hook_running;
	hooks.stopping = hook_stopping;
	hooks.event = gpuhost_eventlog_sink;
	if (gpuhost_exe_path(exe, sizeof(exe)) != 0)
		rc = GPUHOST_EXIT_INTERNAL;
	else {
		/* Pre-flight: DNS retries, the script's --help, the relay. */
		report(SERVICE_START_PENDING, NO_ERROR, 0,
		    30000 + (DWORD)((cfg.dns_wait + cfg.args_timeout +
		    2 * cfg.relay_timeout) * 1000));
		rc = gpuhost_supervisor_run(&run, exe, &hooks);
	}
	gpuhost_eventlog_close();
	gpuhost_config_free(&cfg);
	if (rc == GPUHOST_EXIT_OK)
		report(SERVICE_STOPPED, NO_ERROR, 0, 0);
	else
		report(SERVICE_STOPPED, ERROR_SERVICE_SPECIFIC_ERROR, (DWORD)rc, 0);
}

int
gpuhost_service_dispatch(const char *config_path)
{
	static wchar_t name[] = L"tokenplace-gpuhost";
	SERVICE_TABLE_ENTRYW table[] = {
		{ name, service_main },
		{ NULL, NULL },
	};
	char e[256];

	svc_config_path = config_path;
	if (!StartServiceCtrlDispatcherW(table)) {
		fprintf(stderr, "tokenplace-gpuhost: `service` is started by the "
		    "Service Control Manager (%s); use `run` in a console\n",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		return 64;
	}
	return 0;
}
