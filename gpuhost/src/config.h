/*
 * config.h -- gpuhost.ini loaded into one immutable struct.
 *
 * Every key is a row of a tp_setting table (name "section.key", type,
 * default, bounds, help); unknown keys are errors so typos are caught.
 * [environment] is free-form: each key = value is exported to the Python
 * worker. Relative paths are resolved against the directory holding the
 * config file (checkout, log dir) or the checkout (venv, script).
 */
#ifndef GPUHOST_CONFIG_H
#define GPUHOST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tokenplace/config.h"

#include "relayurl.h"

#define GPUHOST_PATH_MAX 1024
#define GPUHOST_MAX_ENV 64

/* The variable token.place's server.py reads the registration token from. */
#define GPUHOST_TOKEN_ENV "TOKEN_PLACE_RELAY_SERVER_TOKEN"

/*
 * token.place's config.py reads its environment from TOKEN_PLACE_ENV and
 * defaults to "development", where server.py runs Flask with debug=True
 * (the Werkzeug debugger). gpuhost sets "production" unless [environment]
 * names another value.
 */
#define GPUHOST_TP_ENV_VAR "TOKEN_PLACE_ENV"
#define GPUHOST_TP_ENV_DEFAULT "production"

/*
 * token.place's config.py merges the JSON file named by this variable
 * over its defaults; gpuhost writes one for data.dir (paths.models_dir).
 */
#define GPUHOST_TP_CONFIG_VAR "TOKEN_PLACE_CONFIG"

/*
 * Default python.args: token.place's server.py options (it has no --host
 * or --port). Without relay.url the script polls its own default relay.
 */
#define GPUHOST_ARGS_RELAY \
	"--server_host {host} --server_port {port} " \
	"--relay_url {relay_url} --relay_port {relay_port}"
#define GPUHOST_ARGS_NO_RELAY "--server_host {host} --server_port {port}"

enum gpuhost_check_mode {
	GPUHOST_CHECK_OFF = 0,
	GPUHOST_CHECK_WARN,
	GPUHOST_CHECK_FAIL,
};

struct gpuhost_env_var {
	char *name;
	char *value;
};

struct gpuhost_config {
	/* [python] */
	char *checkout;
	char *venv;
	char *script;
	char *args;
	char *options;
	char *library;
	/* [network] */
	char *host;
	int64_t port;
	char *dns_name;
	char *health_path;
	/* [relay] */
	char *relay_url;	/* as written; see `relay` below */
	char *relay_token;	/* secret: never printed or logged */
	/* [checks] */
	char *check_python;
	char *check_port;
	char *check_dns;
	char *check_firewall;
	char *check_args;
	char *check_relay;
	char *check_environment;
	char *check_gpu;
	char *check_model;
	double dns_wait;
	double args_timeout;
	double relay_timeout;
	double gpu_timeout;
	/* [gpu] */
	char *nvml_library;
	/* [data] */
	char *data_dir;
	/* [metrics] */
	char *metrics_listen;
	int64_t metrics_max_request;
	double metrics_read_timeout;
	double metrics_write_timeout;
	/* [service] */
	char *service_name;
	char *display_name;
	char *account;
	double stop_grace;
	double escalate_after;
	double preshutdown_timeout;
	double backoff_initial;
	double backoff_max;
	double stable_after;
	/* [health] */
	double health_interval;
	double health_timeout;
	int64_t health_failures;
	/* [log] */
	char *log_dir;
	int64_t log_max_bytes;
	int64_t log_keep;
	char *log_level;
	bool log_console;
	/* [firewall] */
	char *fw_profiles;
	char *fw_rule_name;

	/* Derived after loading (absolute paths). */
	char config_path[GPUHOST_PATH_MAX];
	char checkout_path[GPUHOST_PATH_MAX];
	char venv_path[GPUHOST_PATH_MAX];
	char script_path[GPUHOST_PATH_MAX];
	char log_path[GPUHOST_PATH_MAX];
	enum gpuhost_check_mode mode_python, mode_port, mode_dns, mode_firewall;
	enum gpuhost_check_mode mode_args, mode_relay, mode_environment;
	enum gpuhost_check_mode mode_gpu, mode_model;
	char data_path[GPUHOST_PATH_MAX];	/* data.dir resolved, or "" */
	bool relay_set;			/* relay.url given (and valid) */
	struct gpuhost_relay_url relay;	/* its parts, when relay_set */
	bool args_default;		/* python.args not in the file */
	size_t nenv;
	struct gpuhost_env_var env[GPUHOST_MAX_ENV];
	struct tp_config_report report;	/* where each value came from */
};

#define GPUHOST_CONFIG_MAX_ERRORS 16

struct gpuhost_config_errors {
	size_t n;
	char msg[GPUHOST_CONFIG_MAX_ERRORS][256];
};

/* The settings table and its length (for printing and docs). */
extern const struct tp_setting gpuhost_settings[];
extern const size_t gpuhost_nsettings;

/*
 * Loads `path` into *cfg (zeroed first). Returns 0 when the file parsed
 * and every value is valid; -1 otherwise with each problem in *errs
 * (cfg then holds defaults for the bad values and must still be freed).
 */
int gpuhost_config_load(const char *path, struct gpuhost_config *cfg,
    struct gpuhost_config_errors *errs);

/*
 * As gpuhost_config_load() but from text in memory; `path` is only used
 * for resolving relative paths and messages.
 */
int gpuhost_config_parse(const char *text, size_t len, const char *path,
    struct gpuhost_config *cfg, struct gpuhost_config_errors *errs);

/* Frees what a load allocated. */
void gpuhost_config_free(struct gpuhost_config *cfg);

/*
 * The default config path: next to the executable on Windows
 * (gpuhost.ini), /etc/tokenplace/gpuhost.ini elsewhere. Returns 0 or -1.
 */
int gpuhost_config_default_path(char *buf, size_t len);

/*
 * Splits "host:port" / "[v6]:port" (port 1..65535) into host (without
 * brackets) and *port. Returns 0, or -1 for anything else.
 */
int gpuhost_listen_parse(const char *s, char *host, size_t hostlen,
    unsigned *port);

/* Parses "fail", "warn", "off" (any case); 0 or -1. */
int gpuhost_check_mode_parse(const char *s, enum gpuhost_check_mode *out);
const char *gpuhost_check_mode_name(enum gpuhost_check_mode m);

/*
 * Expands {host}, {port}, {relay_url} (scheme://host) and {relay_port} in
 * cfg->args into buf. Returns 0, or -1 when the result does not fit.
 * (Loading refuses relay placeholders when relay.url is not set.)
 */
int gpuhost_config_expand_args(const struct gpuhost_config *cfg, char *buf,
    size_t len);

/*
 * The TOKEN_PLACE_ENV server.py gets: the [environment] value when the
 * file names one (any case of the key), else "production".
 */
const char *gpuhost_config_tp_env(const struct gpuhost_config *cfg);

/* The [environment] value of name (case-insensitive), or NULL. */
const char *gpuhost_config_env(const struct gpuhost_config *cfg,
    const char *name);

/*
 * Writes the effective settings to fp: relay.token as <set>/<unset>, and
 * [environment] values whose names contain TOKEN, SECRET, PASSWORD or KEY
 * masked the same way.
 */
void gpuhost_config_print(const struct gpuhost_config *cfg, FILE *fp);

#endif
