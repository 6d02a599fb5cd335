/*
 * main.c -- tokenplace-relay: settings, start-up, signals, shutdown.
 *
 * The main thread owns the lifecycle. Worker threads (civetweb's) never
 * see signals: SIGTERM and SIGINT are blocked before the server starts and
 * collected here with sigwait(); during the drain, sigtimedwait() notices a
 * second one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <strings.h>

#include "app.h"
#include "core/clock.h"
#include "http/http_server.h"
#include "routes.h"
#include "settings.h"
#include "state_redis.h"
#include "state_upgrade.h"
#include "tokenplace/log.h"
#include "upstream/upstream.h"
#include "v1/handlers.h"
#include "v1/model_list.h"
#include "v1/v1_broker.h"
#include "web/web.h"

/*
 * sysexits.h's EX_CONFIG: the exit status of a configuration the relay
 * cannot run with (a state setting, the page, the state store's answers).
 */
#define RELAY_EXIT_CONFIG 78

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tokenplace-relay [--host ADDR] [--port PORT] [--check-config]\n"
	    "                        [--state-upgrade] [--list-settings]\n"
	    "                        [--version] [--help]\n"
	    "\n"
	    "Runs the token.place relay. Settings come from the environment\n"
	    "(see docs/configuration.md); --host and --port override RELAY_HOST\n"
	    "and RELAY_PORT. --check-config prints the effective settings and\n"
	    "exits 0 when they are valid, 2 when they are not. --list-settings\n"
	    "prints the settings table (name, variable, type, default, bounds)\n"
	    "as JSON lines and exits. --state-upgrade raises the schema of the\n"
	    "Redis/Valkey state (RELAY_STATE_*) to this release's once no\n"
	    "replica of the previous release is left (docs/store-redis.md),\n"
	    "then exits 0, or 2 when it cannot.\n");
}

static void
log_config_errors(const struct tp_config_report *rep)
{
	for (size_t i = 0; i < rep->nerrors && i < TP_CONFIG_MAX_ERRORS; i++) {
		TP_LOG(TP_LOG_ERROR, "relay.config_invalid",
		    TP_LSTR("setting", rep->errors[i].setting),
		    TP_LSTR("source", rep->errors[i].source),
		    TP_LSTR("reason", rep->errors[i].reason));
	}
}

static void
set_upstream_url(struct relay_app *app)
{
	const struct relay_settings *s = app->settings;
	size_t n;

	if (s->upstream_url != NULL && s->upstream_url[0] != '\0')
		snprintf(app->upstream_url, sizeof(app->upstream_url), "%s",
		    s->upstream_url);
	else
		snprintf(app->upstream_url, sizeof(app->upstream_url),
		    "http://%s:%lld", s->gpu_host, (long long)s->gpu_port);
	n = strlen(app->upstream_url);
	while (n > 0 && app->upstream_url[n - 1] == '/')
		app->upstream_url[--n] = '\0';
	(void)tp_config_redact_url(app->upstream_url, app->upstream_url_shown,
	    sizeof(app->upstream_url_shown));
}

static void
log_startup(const struct relay_app *app, int port)
{
	const struct relay_settings *s = app->settings;
	char state_url[RELAY_URL_SHOWN_MAX];

	TP_LOG(TP_LOG_INFO, "relay.startup",
	    TP_LSTR("host", s->host),
	    TP_LINT("port", port),
	    TP_LSTR("upstream", app->upstream_url_shown),
	    TP_LINT("threads", s->threads),
	    TP_LINT("workers", s->workers),
	    TP_LINT("timeout_s", s->timeout_s),
	    TP_LINT("graceful_timeout_s", s->graceful_timeout_s),
	    TP_LINT("max_body_bytes", s->max_body_bytes),
	    TP_LSTR("state_url", tp_config_redact_url(s->state_url, state_url,
	    sizeof(state_url))),
	    TP_LBOOL("forward", s->forward),
	    TP_LSTR("state_prefix", relay_settings_state_shared(s) ?
	    s->state_prefix : ""),
	    TP_LBOOL("legacy_routes", s->legacy_routes),
	    TP_LBOOL("require_upstream_health", s->require_upstream_health),
	    TP_LBOOL("config_ok", app->config_ok),
	    TP_LSTR("version", TP_VERSION),
	    TP_LSTR("revision", TP_REVISION));
}

static double
web_files_value(void *arg)
{
	struct relay_web_stats st;

	relay_web_get_stats(arg, &st);
	return (double)st.files;
}

static double
web_bytes_value(void *arg)
{
	struct relay_web_stats st;

	relay_web_get_stats(arg, &st);
	return (double)st.bytes;
}

/*
 * Reads RELAY_WEB_DIR into memory (unset: no page). Returns 0, or -1 with
 * the reason logged and printed: the relay then refuses to start, since a
 * relay that silently serves no page (or half of one) behind an ingress
 * is worse than one that does not come up.
 */
/* The model list reads the API v1 store through the broker. */
static enum relay_v1_rc
model_list_fetch(void *arg, size_t max, const char *only, size_t only_len,
    struct relay_v1_model_list *out)
{
	return relay_v1_list_models(arg, max, only, only_len, out);
}

/*
 * The model list of /api/v1/models (docs/web.md): RELAY_MODELS_MAX ids,
 * rebuilt at most once per RELAY_MODELS_CACHE_MS. Returns 0 or -1.
 */
static int
start_model_list(struct relay_app *app, struct relay_v1 *v1)
{
	struct tp_counter *reads = tp_counter_new(app->metrics,
	    "tokenplace_relay_models_list_reads_total",
	    "Model list reads from the relay state (at most one per "
	    "RELAY_MODELS_CACHE_MS per process, however many requests)", 0,
	    NULL);

	if (reads == NULL)
		return -1;
	app->models = relay_model_list_new(model_list_fetch, v1,
	    app->settings->models_cache_ms, (size_t)app->settings->models_max,
	    reads);
	return app->models != NULL ? 0 : -1;
}

static int
load_web(struct relay_app *app)
{
	const struct relay_settings *s = app->settings;
	struct relay_web_config cfg;
	struct relay_web_stats st;
	cJSON *meta, *label;
	char *json = NULL, err[512];

	if (s->web_dir == NULL || s->web_dir[0] == '\0')
		return 0;
	meta = relay_release_metadata(s);
	label = meta ? cJSON_GetObjectItemCaseSensitive(meta, "label") : NULL;
	json = meta ? cJSON_PrintUnformatted(meta) : NULL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.dir = s->web_dir;
	cfg.max_bytes = (uint64_t)s->web_max_bytes;
	cfg.max_files = (uint64_t)s->web_max_files;
	cfg.development = strcasecmp(s->frontend_mode, "production") != 0;
	cfg.release_json = json;
	cfg.release_label = cJSON_IsString(label) ? label->valuestring : "";
	if (json == NULL)
		snprintf(err, sizeof(err), "out of memory");
	else
		app->web = relay_web_load(&cfg, err, sizeof(err));
	free(json);
	cJSON_Delete(meta);
	if (app->web == NULL) {
		TP_LOG(TP_LOG_CRITICAL, "relay.web_load_failed",
		    TP_LSTR("dir", s->web_dir), TP_LSTR("reason", err));
		fprintf(stderr, "tokenplace-relay: %s\n", err);
		return -1;
	}
	relay_web_get_stats(app->web, &st);
	TP_LOG(TP_LOG_INFO, "relay.web_loaded", TP_LSTR("dir", s->web_dir),
	    TP_LINT("files", (long long)st.files),
	    TP_LINT("bytes", (long long)st.bytes),
	    TP_LINT("skipped", (long long)st.skipped),
	    TP_LSTR("asset_version", relay_web_asset_version(app->web)),
	    TP_LSTR("frontend_mode", cfg.development ? "development" :
	    "production"));
	if (tp_gauge_fn_new(app->metrics, "tokenplace_relay_web_files",
	    "Files of RELAY_WEB_DIR held in memory", web_files_value,
	    app->web) != 0 ||
	    tp_gauge_fn_new(app->metrics, "tokenplace_relay_web_bytes",
	    "Bytes of RELAY_WEB_DIR held in memory (RELAY_WEB_MAX_BYTES caps them)",
	    web_bytes_value, app->web) != 0) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.out_of_memory");
		return -1;
	}
	return 0;
}

/*
 * Waits for in-flight requests to finish, up to the graceful timeout. A
 * second SIGTERM/SIGINT ends the process at once. Returns the number of
 * requests still running when it gave up.
 */
static long
drain(struct relay_app *app, const sigset_t *sigs)
{
	double deadline = relay_mono_s() +
	    (double)app->settings->graceful_timeout_s;
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	long left;

	while ((left = atomic_load(&app->in_flight)) > 0 &&
	    relay_mono_s() < deadline) {
		int sig = sigtimedwait(sigs, NULL, &tick);

		if (sig > 0) {
			TP_LOG(TP_LOG_WARNING, "relay.shutdown_forced",
			    TP_LINT("signal", sig), TP_LINT("in_flight", left));
			_exit(128 + sig);
		}
	}
	return left;
}

/* The command line: --host/--port become setting overrides. */
struct relay_args {
	struct tp_config_override overrides[4];
	size_t noverrides;
	bool check_only;
	bool state_upgrade;
};

/*
 * Reads argv into *a. Returns -1 when the relay is to go on, or the exit
 * status when the command is done (--help, --version, --list-settings: 0;
 * an unknown argument: 2, with the usage on stderr).
 */
static int
parse_args(int argc, char **argv, struct relay_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("tokenplace-relay %s (%s)\n", TP_VERSION, TP_REVISION);
			return 0;
		} else if (strcmp(argv[i], "--list-settings") == 0) {
			/* The table, not the environment: for docs checks. */
			return tp_config_list(relay_setting_table,
			    relay_setting_count, stdout) == 0 ? 0 : 1;
		} else if (strcmp(argv[i], "--check-config") == 0) {
			a->check_only = true;
		} else if (strcmp(argv[i], "--state-upgrade") == 0) {
			a->state_upgrade = true;
		} else if ((strcmp(argv[i], "--host") == 0 ||
		    strcmp(argv[i], "--port") == 0) && i + 1 < argc &&
		    a->noverrides < sizeof(a->overrides) / sizeof(a->overrides[0])) {
			a->overrides[a->noverrides].name = argv[i] + 2;
			a->overrides[a->noverrides].value = argv[i + 1];
			a->noverrides++;
			i++;
		} else {
			fprintf(stderr, "tokenplace-relay: unknown argument '%s'\n",
			    argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct relay_settings settings;
	struct tp_config_report report;
	struct relay_args args;
	struct relay_app app;
	enum tp_log_level level = TP_LOG_INFO;
	sigset_t sigs;
	char err[256];
	int rc, sig, exit_code = 1;
	long left;

	rc = parse_args(argc, argv, &args);
	if (rc >= 0)
		return rc;
	rc = relay_settings_load(&settings, args.overrides, args.noverrides,
	    &report);
	if (rc == -2) {
		fprintf(stderr, "tokenplace-relay: out of memory loading settings\n");
		return 1;
	}
	if (args.check_only) {
		tp_config_print(relay_setting_table, relay_setting_count,
		    &settings, &report, stdout);
		relay_settings_free(&settings);
		return rc == 0 ? 0 : 2;
	}
	if (args.state_upgrade) {
		char msg[512];
		int up = 2;

		if (rc == 0)
			up = relay_state_upgrade(&settings, msg, sizeof(msg));
		else
			snprintf(msg, sizeof(msg), "invalid settings "
			    "(--check-config names them)");
		fprintf(up == 0 ? stdout : stderr, "tokenplace-relay: %s\n",
		    msg);
		relay_settings_free(&settings);
		return up;
	}

	(void)tp_log_level_parse(settings.log_level, &level);
	tp_log_init("tokenplace.relay", level, STDOUT_FILENO);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Block before any thread exists (the API v1 sweeper, the upstream
	 * checker, civetweb's pool) so every thread inherits the mask: a
	 * SIGTERM taken by a thread that does not block it would kill the
	 * process without a drain.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	memset(&app, 0, sizeof(app));
	app.settings = &settings;
	app.config_ok = rc == 0;
	app.config_report = &report;
	set_upstream_url(&app);
	if (!app.config_ok) {
		log_config_errors(&report);
		/*
		 * Serving without the state the operator asked for would split
		 * the replicas' view without a sign: a bad state setting stops
		 * the start instead of degrading it.
		 */
		for (size_t i = 0; i < report.nerrors &&
		    i < TP_CONFIG_MAX_ERRORS; i++) {
			if (strncmp(report.errors[i].setting, "state_", 6) != 0)
				continue;
			TP_LOG(TP_LOG_CRITICAL, "relay.state_config_invalid",
			    TP_LSTR("setting", report.errors[i].source),
			    TP_LSTR("reason", report.errors[i].reason));
			relay_settings_free(&settings);
			return RELAY_EXIT_CONFIG;
		}
	}
	if (settings.workers > 1)
		TP_LOG(TP_LOG_WARNING, "relay.workers_ignored",
		    TP_LINT("workers", settings.workers),
		    TP_LSTR("reason", "state lives in one process; "
		    "RELAY_THREADS sets the concurrency"));

	app.health = tp_health_new();
	if (app.health == NULL ||
	    relay_app_init_metrics(&app, TP_VERSION, TP_REVISION) != 0) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.out_of_memory");
		goto out;
	}
	/* The page is read before anything listens (docs/web.md). */
	if (app.config_ok && load_web(&app) != 0) {
		exit_code = RELAY_EXIT_CONFIG;
		goto out;
	}
	/*
	 * Relay state for both generations (state_redis.h): the embedded
	 * stores, or one Redis/Valkey adapter shared by both stores.
	 */
	switch (relay_state_open(&app)) {
	case RELAY_STATE_OPENED:
		break;
	case RELAY_STATE_CONFIG:
		exit_code = RELAY_EXIT_CONFIG;
		goto out;
	case RELAY_STATE_FAILED:
	default:
		goto out;
	}
	if (start_model_list(&app, app.v1) != 0) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.out_of_memory");
		goto out;
	}
	/* Also registers the "upstream" readiness check and its metrics. */
	app.upstream = relay_upstream_new(&app, err, sizeof(err));
	if (app.upstream == NULL) {
		TP_LOG(TP_LOG_CRITICAL, "relay.upstream_init_failed",
		    TP_LSTR("reason", err));
		goto out;
	}

	relay_settings_warn(&settings);
	/* RELAY_MODELS_SOURCE: who answers the model list. */
	app.http = relay_http_start(&app, relay_route_table(
	    strcasecmp(settings.models_source, "upstream") != 0), err,
	    sizeof(err));
	if (app.http == NULL) {
		TP_LOG(TP_LOG_CRITICAL, "relay.listen_failed",
		    TP_LSTR("reason", err));
		goto out;
	}
	log_startup(&app, relay_http_port(app.http));
	if (relay_upstream_start(app.upstream) != 0) {
		TP_LOG0(TP_LOG_CRITICAL, "relay.upstream_thread_failed");
		goto out;
	}
	/* As before: when required, the first verdict is known before ready. */
	if (settings.require_upstream_health)
		(void)relay_upstream_wait_first_check(app.upstream,
		    (long)(settings.upstream_health_timeout_ms + 1000));
	tp_health_transition(app.health, TP_LIFECYCLE_READY);

	/* Readiness inputs are pushed by their own threads; wait for a signal. */
	while (sigwait(&sigs, &sig) != 0)
		;

	TP_LOG(TP_LOG_INFO, "relay.shutdown_signal", TP_LINT("signal", sig),
	    TP_LINT("in_flight", atomic_load(&app.in_flight)),
	    TP_LINT("graceful_timeout_s", settings.graceful_timeout_s));
	tp_health_transition(app.health, TP_LIFECYCLE_DRAINING);
	if (app.v1 != NULL)
		relay_v1_drain(app.v1);	/* waiting long polls answer now */
	left = drain(&app, &sigs);
	tp_health_transition(app.health, TP_LIFECYCLE_STOPPED);
	if (left > 0) {
		/*
		 * Stopping the server would wait for those requests forever;
		 * the grace period is over, so leave without them.
		 */
		TP_LOG(TP_LOG_WARNING, "relay.drain_timeout",
		    TP_LINT("in_flight", left));
		TP_LOG(TP_LOG_INFO, "relay.shutdown", TP_LINT("signal", sig),
		    TP_LINT("abandoned_requests", left));
		_exit(0);
	}
	relay_http_stop(app.http);	/* before the log line, as always */
	app.http = NULL;
	TP_LOG(TP_LOG_INFO, "relay.shutdown", TP_LINT("signal", sig),
	    TP_LINT("abandoned_requests", left));
	exit_code = 0;
out:
	relay_app_free(&app);
	relay_upstream_global_cleanup();
	relay_settings_free(&settings);
	return exit_code;
}
