/*
 * config.c -- gpuhost.ini -> struct gpuhost_config through a tp_setting
 * table. The table's `env` column holds "section.key"; the lookup
 * function answers from the parsed INI instead of the environment.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "ini.h"
#include "os.h"

#define OFF(f) offsetof(struct gpuhost_config, f)
#define S(name, field, def, help) \
	{ name, name, NULL, TP_SETTING_STRING, def, 0, 4096, OFF(field), NULL, 0, help }
#define SE(name, field, def, help) \
	{ name, name, NULL, TP_SETTING_STRING, def, 0, 4096, OFF(field), NULL, TP_SETTING_EMPTY_OK, help }
#define SV(name, field, def, v, help) \
	{ name, name, NULL, TP_SETTING_STRING, def, 0, 4096, OFF(field), v, 0, help }
#define SEV(name, field, v, help) \
	{ name, name, NULL, TP_SETTING_STRING, "", 0, 4096, OFF(field), v, TP_SETTING_EMPTY_OK, help }
#define I(name, field, def, lo, hi, help) \
	{ name, name, NULL, TP_SETTING_INT, def, lo, hi, OFF(field), NULL, 0, help }
#define D(name, field, def, lo, hi, help) \
	{ name, name, NULL, TP_SETTING_DOUBLE, def, lo, hi, OFF(field), NULL, 0, help }
#define SECRET(name, field, v, help) \
	{ name, name, NULL, TP_SETTING_STRING, "", 0, 4096, OFF(field), v, \
	  TP_SETTING_SECRET | TP_SETTING_EMPTY_OK, help }
#define B(name, field, def, help) \
	{ name, name, NULL, TP_SETTING_BOOL, def, 0, 0, OFF(field), NULL, 0, help }

static int
validate_mode(const void *value, char *reason, size_t len)
{
	const char *const *s = value;
	enum gpuhost_check_mode m;

	if (gpuhost_check_mode_parse(*s, &m) == 0)
		return 0;
	snprintf(reason, len, "must be fail, warn or off");
	return -1;
}

static int
validate_level(const void *value, char *reason, size_t len)
{
	const char *const *s = value;
	static const char *const ok[] = { "debug", "info", "warning", "warn",
	    "error", "critical" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (strcasecmp(*s, ok[i]) == 0)
			return 0;
	}
	snprintf(reason, len, "must be debug, info, warning, error or critical");
	return -1;
}

static int
validate_path(const void *value, char *reason, size_t len)
{
	const char *const *s = value;

	if (strlen(*s) < GPUHOST_PATH_MAX / 2)
		return 0;
	snprintf(reason, len, "path longer than %d bytes", GPUHOST_PATH_MAX / 2);
	return -1;
}

static int
validate_relay_url(const void *value, char *reason, size_t len)
{
	const char *const *s = value;
	struct gpuhost_relay_url u;

	if ((*s)[0] == '\0')
		return 0;
	return gpuhost_relay_url_parse(*s, &u, reason, len);
}

int
gpuhost_listen_parse(const char *s, char *host, size_t hostlen,
    unsigned *port)
{
	const char *colon, *h = s, *he;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (he == NULL || he[1] != ':')
			return -1;
		h = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		he = colon;
	}
	if (he == h || (size_t)(he - h) >= hostlen)
		return -1;
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p < 1 || p > 65535)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = (unsigned)p;
	return 0;
}

/* An IP address literal (no names: the endpoint binds without DNS). */
static bool
ip_literal(const char *h)
{
	unsigned a, b, c, d;
	char tail;

	if (strchr(h, ':') != NULL)
		return strspn(h, "0123456789abcdefABCDEF:.") == strlen(h);
	return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 &&
	    a < 256 && b < 256 && c < 256 && d < 256;
}

static int
validate_listen(const void *value, char *reason, size_t len)
{
	const char *const *s = value;
	char host[256];
	unsigned port;

	if ((*s)[0] == '\0' || (gpuhost_listen_parse(*s, host, sizeof(host),
	    &port) == 0 && ip_literal(host)))
		return 0;
	snprintf(reason, len, "must be IP-ADDRESS:PORT (127.0.0.1:9108, "
	    "[::1]:9108, 0.0.0.0:9108), port 1-65535");
	return -1;
}

/* It travels in an environment variable and an HTTP header. */
static int
validate_token(const void *value, char *reason, size_t len)
{
	const char *const *s = value;

	for (const unsigned char *c = (const unsigned char *)*s; *c; c++) {
		if (*c < 0x20 || *c == 0x7f) {
			snprintf(reason, len, "contains a control character "
			    "(value not shown)");
			return -1;
		}
	}
	return 0;
}

const struct tp_setting gpuhost_settings[] = {
	SV("python.checkout", checkout, ".", validate_path,
	    "directory of the token.place checkout (working directory of server.py)"),
	SV("python.venv", venv, ".venv", validate_path,
	    "virtual environment, relative to the checkout"),
	SV("python.script", script, "server.py", validate_path,
	    "script run as __main__, relative to the checkout"),
	SE("python.args", args, GPUHOST_ARGS_NO_RELAY,
	    "script arguments; {host}, {port}, {relay_url}, {relay_port} expand; "
	    "default: token.place's server.py options (with the --relay_ ones "
	    "when relay.url is set)"),
	SE("python.options", options, "-X utf8 -u",
	    "interpreter options placed before the script"),
	SE("python.library", library, "",
	    "explicit path of libpython/pythonXY.dll (empty: from pyvenv.cfg)"),
	S("network.host", host, "0.0.0.0", "address server.py listens on"),
	I("network.port", port, "8000", 1, 65535, "TCP port server.py listens on"),
	SE("network.dns_name", dns_name, "",
	    "DNS name that must resolve to this host (empty: no DNS check)"),
	S("network.health_path", health_path, "/health",
	    "path probed on 127.0.0.1:port"),
	SEV("relay.url", relay_url, validate_relay_url,
	    "relay server.py polls: http(s)://host[:port] (empty: the "
	    "script's own default relay)"),
	SECRET("relay.token", relay_token, validate_token,
	    "registration token, given to server.py as "
	    GPUHOST_TOKEN_ENV " only (empty: none)"),
	SV("checks.python", check_python, "fail", validate_mode,
	    "venv, Python library and script present: fail|warn|off"),
	SV("checks.port", check_port, "fail", validate_mode,
	    "port free before start: fail|warn|off"),
	SV("checks.dns", check_dns, "warn", validate_mode,
	    "dns_name resolves to this host: fail|warn|off"),
	SV("checks.firewall", check_firewall, "warn", validate_mode,
	    "inbound TCP on the port allowed: fail|warn|off"),
	SV("checks.args", check_args, "fail", validate_mode,
	    "every --option in python.args is in the script's --help: "
	    "fail|warn|off"),
	SV("checks.relay", check_relay, "warn", validate_mode,
	    "relay.url set and its /livez reachable: fail|warn|off"),
	SV("checks.env", check_environment, "fail", validate_mode,
	    "TOKEN_PLACE_ENV is production whenever server.py listens beyond "
	    "loopback (else Flask's debugger runs): fail|warn|off"),
	SV("checks.gpu", check_gpu, "fail", validate_mode,
	    "NVIDIA driver visible through NVML and the venv's llama_cpp able "
	    "to offload to it: fail|warn|off"),
	SV("checks.model", check_model, "warn", validate_mode,
	    "the model file token.place loads is already there (else the "
	    "first start downloads it): fail|warn|off"),
	D("checks.dns_wait", dns_wait, "0", 0, 600,
	    "seconds to keep retrying a failing DNS check before start (boot)"),
	D("checks.args_timeout", args_timeout, "30", 1, 600,
	    "seconds the script's --help may take (imports included)"),
	D("checks.relay_timeout", relay_timeout, "5", 0.1, 120,
	    "timeout of the relay /livez probe, seconds"),
	D("checks.gpu_timeout", gpu_timeout, "60", 1, 600,
	    "seconds the venv's `import llama_cpp` may take in the gpu check"),
	SEV("gpu.nvml_library", nvml_library, validate_path,
	    "NVML library to load (empty: nvml.dll / libnvidia-ml.so.1 from "
	    "the system; a test and diagnostic setting)"),
	SEV("data.dir", data_dir, validate_path,
	    "directory token.place keeps its models in (paths.models_dir, "
	    "given through TOKEN_PLACE_CONFIG; empty: token.place's own "
	    "default in the service account's profile)"),
	SEV("metrics.listen", metrics_listen, validate_listen,
	    "address:port of the Prometheus endpoint (empty: off; "
	    "e.g. 127.0.0.1:9108)"),
	I("metrics.max_request", metrics_max_request, "4096", 256, 65536,
	    "bytes of request head the metrics endpoint reads (else 431)"),
	D("metrics.read_timeout", metrics_read_timeout, "2", 0.1, 60,
	    "seconds a client has to send its request head"),
	D("metrics.write_timeout", metrics_write_timeout, "5", 0.1, 60,
	    "seconds the metrics answer may take to write"),
	S("service.name", service_name, "tokenplace-gpuhost",
	    "service name (Windows SCM / systemd unit)"),
	S("service.display_name", display_name, "token.place GPU host",
	    "display name in the Services console"),
	S("service.account", account, "LocalSystem",
	    "Windows service account: LocalSystem, NT AUTHORITY\\LocalService, "
	    "NT SERVICE\\<name> or a user"),
	D("service.stop_grace", stop_grace, "15", 0.1, 3600,
	    "seconds from the stop request until the worker is killed"),
	D("service.escalate_after", escalate_after, "10", 0.05, 3600,
	    "seconds after the interrupt before SystemExit is raised"),
	D("service.preshutdown_timeout", preshutdown_timeout, "30", 1, 3600,
	    "Windows pre-shutdown time the SCM grants, seconds"),
	D("service.restart_backoff_initial", backoff_initial, "1", 0.01, 3600,
	    "first restart delay after an unexpected exit, seconds"),
	D("service.restart_backoff_max", backoff_max, "60", 0.01, 86400,
	    "restart delay cap, seconds (doubles per consecutive failure)"),
	D("service.restart_reset_after", stable_after, "60", 0.1, 86400,
	    "a worker running this long resets the back-off, seconds"),
	D("health.interval", health_interval, "5", 0.05, 3600,
	    "seconds between /health probes"),
	D("health.timeout", health_timeout, "2", 0.05, 600,
	    "timeout of one probe, seconds"),
	I("health.failures", health_failures, "3", 1, 1000,
	    "consecutive failed probes before the server counts as unhealthy"),
	SE("log.dir", log_dir, "",
	    "log directory (empty: logs/ next to the config on Windows, "
	    "/var/log/tokenplace-gpuhost elsewhere)"),
	I("log.max_size", log_max_bytes, "10485760", 4096, 1099511627776.0,
	    "bytes per log file before it rotates"),
	I("log.keep", log_keep, "8", 1, 1000, "rotated files kept per log"),
	SV("log.level", log_level, "info", validate_level,
	    "gpuhost's own log level"),
	B("log.console", log_console, "true",
	    "also copy logs to stdout/stderr (journald on Linux)"),
	S("firewall.profiles", fw_profiles, "domain,private",
	    "Windows profiles `firewall add` opens: domain,private,public"),
	S("firewall.rule_name", fw_rule_name, "token.place GPU host (TCP {port})",
	    "name of the inbound rule `firewall add` creates"),
};
const size_t gpuhost_nsettings = sizeof(gpuhost_settings) /
    sizeof(gpuhost_settings[0]);

int
gpuhost_check_mode_parse(const char *s, enum gpuhost_check_mode *out)
{
	if (s == NULL)
		return -1;
	if (strcasecmp(s, "fail") == 0)
		*out = GPUHOST_CHECK_FAIL;
	else if (strcasecmp(s, "warn") == 0)
		*out = GPUHOST_CHECK_WARN;
	else if (strcasecmp(s, "off") == 0)
		*out = GPUHOST_CHECK_OFF;
	else
		return -1;
	return 0;
}

const char *
gpuhost_check_mode_name(enum gpuhost_check_mode m)
{
	switch (m) {
	case GPUHOST_CHECK_OFF:
		return "off";
	case GPUHOST_CHECK_WARN:
		return "warn";
	case GPUHOST_CHECK_FAIL:
		return "fail";
	}
	return "off";
}

static const char *
ini_lookup(void *ctx, const char *name)
{
	const struct gpuhost_ini *ini = ctx;
	const struct gpuhost_ini_entry *e;
	char section[64];
	const char *dot = strchr(name, '.');

	if (dot == NULL || (size_t)(dot - name) >= sizeof(section))
		return NULL;
	memcpy(section, name, (size_t)(dot - name));
	section[dot - name] = '\0';
	e = gpuhost_ini_find(ini, section, dot + 1);
	return e != NULL ? e->value : NULL;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
add_err(struct gpuhost_config_errors *errs, const char *fmt, ...)
{
	va_list ap;

	if (errs->n < GPUHOST_CONFIG_MAX_ERRORS) {
		va_start(ap, fmt);
		vsnprintf(errs->msg[errs->n], sizeof(errs->msg[0]), fmt, ap);
		va_end(ap);
	}
	errs->n++;
}

static bool
known_key(const char *section, const char *key)
{
	for (size_t i = 0; i < gpuhost_nsettings; i++) {
		const char *n = gpuhost_settings[i].name;
		const char *dot = strchr(n, '.');
		size_t sl = (size_t)(dot - n);

		if (strlen(section) == sl && strncasecmp(section, n, sl) == 0 &&
		    strcasecmp(key, dot + 1) == 0)
			return true;
	}
	return false;
}

static size_t
setting_index(const char *name)
{
	for (size_t i = 0; i < gpuhost_nsettings; i++) {
		if (strcmp(gpuhost_settings[i].name, name) == 0)
			return i;
	}
	return gpuhost_nsettings;
}

/*
 * relay.url -> its parts; the default python.args follows it; relay
 * placeholders need it; the token has one place only.
 */
static int
derive_relay(struct gpuhost_config *cfg, struct gpuhost_config_errors *errs)
{
	char why[200];
	size_t ai = setting_index("python.args");
	int rc = 0;

	cfg->relay_set = cfg->relay_url[0] != '\0' &&
	    gpuhost_relay_url_parse(cfg->relay_url, &cfg->relay, why,
	    sizeof(why)) == 0;
	cfg->args_default = ai < gpuhost_nsettings &&
	    cfg->report.sources[ai] == TP_CONFIG_SRC_DEFAULT;
	if (cfg->args_default && cfg->relay_set) {
		char *a = strdup(GPUHOST_ARGS_RELAY);

		if (a == NULL) {
			add_err(errs, "out of memory");
			return -1;
		}
		free(cfg->args);
		cfg->args = a;
	}
	if (!cfg->relay_set && cfg->relay_url[0] == '\0' &&
	    (strstr(cfg->args, "{relay_url}") != NULL ||
	    strstr(cfg->args, "{relay_port}") != NULL)) {
		add_err(errs, "python.args uses {relay_url}/{relay_port} but "
		    "[relay] url is not set");
		rc = -1;
	}
	for (size_t i = 0; i < cfg->nenv; i++) {
		if (cfg->data_dir[0] != '\0' &&
		    strcasecmp(cfg->env[i].name, GPUHOST_TP_CONFIG_VAR) == 0) {
			add_err(errs, "[environment] %s and data.dir both set: "
			    "gpuhost writes %s for data.dir; keep one",
			    GPUHOST_TP_CONFIG_VAR, GPUHOST_TP_CONFIG_VAR);
			rc = -1;
		}
		if (strcasecmp(cfg->env[i].name, GPUHOST_TOKEN_ENV) == 0) {
			add_err(errs, "[environment] %s: set the registration "
			    "token as [relay] token instead (it is kept out of "
			    "config output and logs there)", GPUHOST_TOKEN_ENV);
			rc = -1;
		}
	}
	return rc;
}

static int
derive(struct gpuhost_config *cfg, struct gpuhost_config_errors *errs)
{
	char base[GPUHOST_PATH_MAX];
	int rc = 0;

	if (gpuhost_path_dirname(base, sizeof(base), cfg->config_path) != 0)
		snprintf(base, sizeof(base), ".");
	if (gpuhost_path_join(cfg->checkout_path, sizeof(cfg->checkout_path),
	    base, cfg->checkout) != 0 ||
	    gpuhost_path_join(cfg->venv_path, sizeof(cfg->venv_path),
	    cfg->checkout_path, cfg->venv) != 0 ||
	    gpuhost_path_join(cfg->script_path, sizeof(cfg->script_path),
	    cfg->checkout_path, cfg->script) != 0) {
		add_err(errs, "python: paths too long");
		rc = -1;
	}
	if (cfg->log_dir[0] != '\0') {
		if (gpuhost_path_join(cfg->log_path, sizeof(cfg->log_path), base,
		    cfg->log_dir) != 0) {
			add_err(errs, "log.dir: path too long");
			rc = -1;
		}
	} else {
#ifdef _WIN32
		(void)gpuhost_path_join(cfg->log_path, sizeof(cfg->log_path),
		    base, "logs");
#else
		snprintf(cfg->log_path, sizeof(cfg->log_path),
		    "/var/log/tokenplace-gpuhost");
#endif
	}
	(void)gpuhost_check_mode_parse(cfg->check_python, &cfg->mode_python);
	(void)gpuhost_check_mode_parse(cfg->check_port, &cfg->mode_port);
	(void)gpuhost_check_mode_parse(cfg->check_dns, &cfg->mode_dns);
	(void)gpuhost_check_mode_parse(cfg->check_firewall, &cfg->mode_firewall);
	(void)gpuhost_check_mode_parse(cfg->check_args, &cfg->mode_args);
	(void)gpuhost_check_mode_parse(cfg->check_relay, &cfg->mode_relay);
	(void)gpuhost_check_mode_parse(cfg->check_environment,
	    &cfg->mode_environment);
	(void)gpuhost_check_mode_parse(cfg->check_gpu, &cfg->mode_gpu);
	(void)gpuhost_check_mode_parse(cfg->check_model, &cfg->mode_model);
	if (cfg->data_dir[0] != '\0' &&
	    gpuhost_path_join(cfg->data_path, sizeof(cfg->data_path), base,
	    cfg->data_dir) != 0) {
		add_err(errs, "data.dir: path too long");
		rc = -1;
	}
	if (derive_relay(cfg, errs) != 0)
		rc = -1;
	if (cfg->escalate_after >= cfg->stop_grace) {
		add_err(errs, "service.escalate_after (%g) must be below "
		    "service.stop_grace (%g)", cfg->escalate_after,
		    cfg->stop_grace);
		rc = -1;
	}
	if (cfg->backoff_max < cfg->backoff_initial) {
		add_err(errs, "service.restart_backoff_max (%g) is below "
		    "service.restart_backoff_initial (%g)", cfg->backoff_max,
		    cfg->backoff_initial);
		rc = -1;
	}
	if (cfg->health_path[0] != '/') {
		add_err(errs, "network.health_path must start with '/'");
		rc = -1;
	}
	return rc;
}

int
gpuhost_config_parse(const char *text, size_t len, const char *path,
    struct gpuhost_config *cfg, struct gpuhost_config_errors *errs)
{
	struct gpuhost_ini ini;
	char err[300];
	int rc = 0, prc;

	memset(cfg, 0, sizeof(*cfg));
	memset(errs, 0, sizeof(*errs));
	snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
	prc = gpuhost_ini_parse(text, len, &ini, err, sizeof(err));
	if (prc != 0) {
		add_err(errs, "%s: %s", path, err);
		gpuhost_ini_free(&ini);
		memset(&ini, 0, sizeof(ini));
		rc = -1;
	}
	for (size_t i = 0; i < ini.n; i++) {
		const struct gpuhost_ini_entry *e = &ini.e[i];

		if (strcasecmp(e->section, "environment") == 0) {
			if (cfg->nenv == GPUHOST_MAX_ENV) {
				add_err(errs, "line %u: more than %d [environment] "
				    "variables", e->line, GPUHOST_MAX_ENV);
				rc = -1;
				continue;
			}
			cfg->env[cfg->nenv].name = strdup(e->key);
			cfg->env[cfg->nenv].value = strdup(e->value);
			cfg->nenv++;
			continue;
		}
		if (!known_key(e->section, e->key)) {
			add_err(errs, "line %u: unknown setting [%s] %s", e->line,
			    e->section, e->key);
			rc = -1;
		}
	}
	prc = tp_config_load(gpuhost_settings, gpuhost_nsettings, cfg,
	    ini_lookup, &ini, NULL, 0, &cfg->report);
	if (prc == -2) {
		add_err(errs, "out of memory");
		gpuhost_ini_free(&ini);
		return -1;
	}
	for (size_t i = 0; i < cfg->report.nerrors &&
	    i < TP_CONFIG_MAX_ERRORS; i++) {
		const struct tp_config_error *ce = &cfg->report.errors[i];
		const struct gpuhost_ini_entry *e = NULL;
		const char *dot = strchr(ce->setting, '.');
		char section[64];

		if (dot != NULL && (size_t)(dot - ce->setting) < sizeof(section)) {
			memcpy(section, ce->setting, (size_t)(dot - ce->setting));
			section[dot - ce->setting] = '\0';
			e = gpuhost_ini_find(&ini, section, dot + 1);
		}
		add_err(errs, "line %u: %s: %s", e ? e->line : 0, ce->setting,
		    ce->reason);
		rc = -1;
	}
	gpuhost_ini_free(&ini);
	if (derive(cfg, errs) != 0)
		rc = -1;
	return rc;
}

int
gpuhost_config_load(const char *path, struct gpuhost_config *cfg,
    struct gpuhost_config_errors *errs)
{
	FILE *fp;
	char *buf, e[200];
	size_t n;
	int rc;

	fp = gpuhost_fopen(path, "rb");
	if (fp == NULL) {
		memset(cfg, 0, sizeof(*cfg));
		memset(errs, 0, sizeof(*errs));
		add_err(errs, "cannot open config %s: %s", path,
		    gpuhost_last_error(e, sizeof(e)));
		(void)tp_config_load(gpuhost_settings, gpuhost_nsettings, cfg,
		    ini_lookup, &(struct gpuhost_ini){ 0 }, NULL, 0, &cfg->report);
		return -1;
	}
	buf = malloc(GPUHOST_INI_MAX_BYTES + 1);
	if (buf == NULL) {
		fclose(fp);
		memset(cfg, 0, sizeof(*cfg));
		memset(errs, 0, sizeof(*errs));
		add_err(errs, "out of memory");
		return -1;
	}
	n = fread(buf, 1, GPUHOST_INI_MAX_BYTES + 1, fp);
	fclose(fp);
	if (n > GPUHOST_INI_MAX_BYTES) {
		free(buf);
		memset(cfg, 0, sizeof(*cfg));
		memset(errs, 0, sizeof(*errs));
		add_err(errs, "%s is larger than %d bytes", path,
		    GPUHOST_INI_MAX_BYTES);
		return -1;
	}
	rc = gpuhost_config_parse(buf, n, path, cfg, errs);
	free(buf);
	return rc;
}

void
gpuhost_config_free(struct gpuhost_config *cfg)
{
	tp_config_free(gpuhost_settings, gpuhost_nsettings, cfg);
	for (size_t i = 0; i < cfg->nenv; i++) {
		free(cfg->env[i].name);
		free(cfg->env[i].value);
		cfg->env[i].name = cfg->env[i].value = NULL;
	}
	cfg->nenv = 0;
}

int
gpuhost_config_default_path(char *buf, size_t len)
{
#ifdef _WIN32
	char exe[GPUHOST_PATH_MAX], dir[GPUHOST_PATH_MAX];

	if (gpuhost_exe_path(exe, sizeof(exe)) != 0 ||
	    gpuhost_path_dirname(dir, sizeof(dir), exe) != 0)
		return -1;
	return gpuhost_path_join(buf, len, dir, "gpuhost.ini");
#else
	int n = snprintf(buf, len, "/etc/tokenplace/gpuhost.ini");

	return n < 0 || (size_t)n >= len ? -1 : 0;
#endif
}

int
gpuhost_config_expand_args(const struct gpuhost_config *cfg, char *buf,
    size_t len)
{
	const char *p = cfg->args;
	size_t o = 0;

	while (*p != '\0') {
		char tmp[32];
		const char *ins = NULL;
		size_t skip = 1, n;

		if (strncmp(p, "{host}", 6) == 0) {
			ins = cfg->host;
			skip = 6;
		} else if (strncmp(p, "{port}", 6) == 0) {
			snprintf(tmp, sizeof(tmp), "%lld", (long long)cfg->port);
			ins = tmp;
			skip = 6;
		} else if (strncmp(p, "{relay_url}", 11) == 0 && cfg->relay_set) {
			ins = cfg->relay.base;
			skip = 11;
		} else if (strncmp(p, "{relay_port}", 12) == 0 &&
		    cfg->relay_set) {
			snprintf(tmp, sizeof(tmp), "%u", cfg->relay.port);
			ins = tmp;
			skip = 12;
		}
		if (ins == NULL) {
			if (o + 1 >= len)
				return -1;
			buf[o++] = *p;
		} else {
			n = strlen(ins);
			if (o + n >= len)
				return -1;
			memcpy(buf + o, ins, n);
			o += n;
		}
		p += skip;
	}
	if (o >= len)
		return -1;
	buf[o] = '\0';
	return 0;
}

const char *
gpuhost_config_env(const struct gpuhost_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nenv; i++) {
		if (strcasecmp(cfg->env[i].name, name) == 0)
			return cfg->env[i].value;
	}
	return NULL;
}

const char *
gpuhost_config_tp_env(const struct gpuhost_config *cfg)
{
	const char *v = gpuhost_config_env(cfg, GPUHOST_TP_ENV_VAR);

	return v != NULL ? v : GPUHOST_TP_ENV_DEFAULT;
}

/* Names that usually hold credentials (HF_TOKEN, API_KEY, ...). */
static bool
secret_name(const char *name)
{
	static const char *const words[] = { "TOKEN", "SECRET", "PASSWORD",
	    "KEY" };
	char up[256];
	size_t n = 0;

	for (; name[n] != '\0' && n < sizeof(up) - 1; n++)
		up[n] = (char)toupper((unsigned char)name[n]);
	up[n] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strstr(up, words[i]) != NULL)
			return true;
	}
	return false;
}

void
gpuhost_config_print(const struct gpuhost_config *cfg, FILE *fp)
{
	char buf[GPUHOST_PATH_MAX];

	fprintf(fp, "# %s\n", cfg->config_path);
	for (size_t i = 0; i < gpuhost_nsettings; i++) {
		const struct tp_setting *s = &gpuhost_settings[i];

		fprintf(fp, "%-32s = %-30s ; %s\n", s->name,
		    tp_config_format_value(s, cfg, buf, sizeof(buf)),
		    cfg->report.sources[i] == TP_CONFIG_SRC_DEFAULT ? "default" :
		    "config file");
	}
	for (size_t i = 0; i < cfg->nenv; i++)
		fprintf(fp, "environment.%-20s = %s\n", cfg->env[i].name,
		    secret_name(cfg->env[i].name) ? (cfg->env[i].value[0] ?
		    "<set>" : "<unset>") : cfg->env[i].value);
	fprintf(fp, "# server.py gets %s=%s%s\n", GPUHOST_TP_ENV_VAR,
	    gpuhost_config_tp_env(cfg), gpuhost_config_env(cfg,
	    GPUHOST_TP_ENV_VAR) != NULL ? " ([environment])" :
	    " (gpuhost's default)");
	if (cfg->data_path[0] != '\0')
		fprintf(fp, "# server.py gets %s=%s%cgpuhost-token.place.json "
		    "(paths.models_dir = data.dir)\n", GPUHOST_TP_CONFIG_VAR,
		    cfg->data_path,
#ifdef _WIN32
		    '\\'
#else
		    '/'
#endif
		    );
	if (cfg->relay_set)
		fprintf(fp, "# relay: --relay_url %s --relay_port %u%s\n",
		    cfg->relay.base, cfg->relay.port,
		    cfg->relay.port_given ? "" : " (the scheme's default)");
	fprintf(fp, "# resolved: checkout %s, venv %s, script %s, logs %s\n",
	    cfg->checkout_path, cfg->venv_path, cfg->script_path, cfg->log_path);
}
