/*
 * tp_config: settings described by a table, loaded into one struct.
 *
 * Each row names a setting, the environment variable(s) it is read from,
 * its type, textual default and bounds, and where in the caller's settings
 * struct the parsed value goes (offsetof). tp_config_load() fills the whole
 * struct: every setting gets either its parsed value or, when the value is
 * missing or invalid, its default; each invalid value is reported by name
 * with a reason. The struct is meant to be treated as immutable afterwards.
 * Field types in the target struct: INT -> int64_t, DOUBLE -> double,
 * BOOL -> bool, STRING -> char * (heap, freed by tp_config_free()).
 */
#ifndef TOKENPLACE_CONFIG_H
#define TOKENPLACE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tp_setting_type {
	TP_SETTING_INT,
	TP_SETTING_DOUBLE,
	TP_SETTING_BOOL,
	TP_SETTING_STRING,
};

/* Flags for struct tp_setting.flags. */
#define TP_SETTING_SECRET	0x1u	/* value never printed */
#define TP_SETTING_EMPTY_OK	0x2u	/* STRING: an empty value is kept, not defaulted */
#define TP_SETTING_REDACT_URL	0x4u	/* STRING: a URL whose password is printed as *** */

/*
 * Optional extra check after type and bounds. `value` points at the parsed
 * value in the target struct. Return 0 if fine, else write a reason.
 */
typedef int (*tp_setting_validator)(const void *value, char *reason,
    size_t reason_len);

struct tp_setting {
	const char *name;		/* short name, e.g. "port" */
	const char *env;		/* primary environment variable */
	const char *env_fallback;	/* older variable read if env is unset, or NULL */
	enum tp_setting_type type;
	const char *default_value;	/* textual default, parsed like input; NULL = "" */
	double min, max;		/* INT/DOUBLE: value bounds; STRING: length bounds */
	size_t offset;			/* offsetof() of the field in the target struct */
	tp_setting_validator validate;	/* or NULL */
	unsigned flags;
	const char *help;		/* one line for --check-config and docs */
};

/* Looks up a variable; returns NULL when unset. getenv() is the default. */
typedef const char *(*tp_config_lookup_fn)(void *ctx, const char *name);

/* A value given on the command line; wins over the environment. */
struct tp_config_override {
	const char *name;	/* setting name */
	const char *value;
};

#define TP_CONFIG_MAX_ERRORS 32
#define TP_CONFIG_MAX_SETTINGS 96

struct tp_config_error {
	const char *setting;	/* points into the table */
	const char *source;	/* env var or "--flag" the bad value came from */
	char reason[200];
};

enum tp_config_source {
	TP_CONFIG_SRC_DEFAULT = 0,
	TP_CONFIG_SRC_ENV,
	TP_CONFIG_SRC_ENV_FALLBACK,
	TP_CONFIG_SRC_FLAG,
};

struct tp_config_report {
	size_t nerrors;		/* may exceed TP_CONFIG_MAX_ERRORS; only the first are kept */
	struct tp_config_error errors[TP_CONFIG_MAX_ERRORS];
	enum tp_config_source sources[TP_CONFIG_MAX_SETTINGS];
};

/*
 * Loads every setting of `table` (n rows, at most TP_CONFIG_MAX_SETTINGS)
 * into `out`. `lookup` NULL means getenv(). Returns 0 when all values were
 * valid, -1 when at least one was not (see report; `out` is still fully
 * populated with defaults in place of the bad values), -2 when memory ran
 * out or the table itself is broken (out is then freed and zeroed).
 */
int tp_config_load(const struct tp_setting *table, size_t n, void *out,
    tp_config_lookup_fn lookup, void *ctx,
    const struct tp_config_override *overrides, size_t noverrides,
    struct tp_config_report *report);

/* Frees the STRING fields of `out` and zeroes them. */
void tp_config_free(const struct tp_setting *table, size_t n, void *out);

/*
 * Writes the effective settings, one per line
 * ("name  ENV  value  (source)"), secrets masked, then the errors.
 */
void tp_config_print(const struct tp_setting *table, size_t n,
    const void *cfg, const struct tp_config_report *report, FILE *fp);

/*
 * Writes the table itself (not loaded values) to fp, one JSON object per
 * setting and line, for tools that check the documentation against the
 * binary (`--list-settings`):
 *   {"name":"port","env":"RELAY_PORT","env_fallback":null,"type":"int",
 *    "default":"5010","min":0,"max":65535,"secret":false,
 *    "empty_ok":false,"validated":false,"help":"..."}
 * type is int, double, bool or string; min/max are value bounds for int
 * and double, length bounds in bytes for string, null for bool; default is
 * the textual default ("" for none); validated says a format check runs
 * after the type and bounds. Returns 0, or -1 when memory ran out or
 * writing failed.
 */
int tp_config_list(const struct tp_setting *table, size_t n, FILE *fp);

/*
 * Renders the value of one setting as text into buf (secrets masked as
 * "<set>" or "<unset>"). Returns buf.
 */
char *tp_config_format_value(const struct tp_setting *s, const void *cfg,
    char *buf, size_t len);

/*
 * Copies `url` into buf with the password of its userinfo
 * ("scheme://user:password@host...") replaced by "***" (the whole userinfo
 * when it has no ':', a bare token), so a URL can be printed, logged or
 * shown in /healthz. The userinfo ends at the last '@' before '?' or '#',
 * the rule of the relay's URL parsers, so a password holding '/' or '@' is
 * masked whole. Other URLs are copied as they are; a URL longer than len
 * is cut, never the mask. Returns buf.
 */
char *tp_config_redact_url(const char *url, char *buf, size_t len);

/*
 * Parses a boolean the way the token.place deployments spell them:
 * 1/true/yes/on and 0/false/no/off, any case, blanks trimmed.
 * Returns 0 and sets *out, or -1.
 */
int tp_config_parse_bool(const char *s, bool *out);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_CONFIG_H */
