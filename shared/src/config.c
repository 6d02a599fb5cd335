/*
 * config.c -- table-driven settings.
 *
 * Defaults go through the same parser as user input, so a broken default
 * in a table is caught by the unit tests rather than at a customer's site.
 */
#include "tokenplace/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenplace/log.h"

static const char *
default_lookup(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

int
tp_config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	size_t len;

	if (s == NULL)
		return -1;
	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	for (size_t i = 0; i < 4; i++) {
		if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) {
			*out = true;
			return 0;
		}
		if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Trims blanks into a bounded copy; returns -1 if it does not fit. */
static int
trimmed_copy(const char *s, char *buf, size_t len)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= len)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

static void *
field(void *out, const struct tp_setting *s)
{
	return (char *)out + s->offset;
}

static const void *
cfield(const void *cfg, const struct tp_setting *s)
{
	return (const char *)cfg + s->offset;
}

/*
 * Parses `text` for setting s into the target field. Returns 0, -1 with a
 * reason on a bad value, -2 when out of memory.
 */
static int
parse_value(const struct tp_setting *s, const char *text, void *out,
    char *reason, size_t rlen)
{
	char buf[64];
	char *end;

	switch (s->type) {
	case TP_SETTING_INT: {
		long long v;

		if (trimmed_copy(text, buf, sizeof(buf)) != 0 || buf[0] == '\0')
			goto not_int;
		errno = 0;
		v = strtoll(buf, &end, 10);
		if (errno != 0 || *end != '\0')
			goto not_int;
		if ((double)v < s->min || (double)v > s->max) {
			snprintf(reason, rlen, "%lld is outside %.0f..%.0f", v,
			    s->min, s->max);
			return -1;
		}
		*(int64_t *)field(out, s) = (int64_t)v;
		break;
not_int:
		snprintf(reason, rlen, "'%.40s' is not an integer", text);
		return -1;
	}
	case TP_SETTING_DOUBLE: {
		double v;

		if (trimmed_copy(text, buf, sizeof(buf)) != 0 || buf[0] == '\0')
			goto not_num;
		errno = 0;
		v = strtod(buf, &end);
		if (errno != 0 || *end != '\0' || !isfinite(v))
			goto not_num;
		if (v < s->min || v > s->max) {
			snprintf(reason, rlen, "%g is outside %g..%g", v, s->min,
			    s->max);
			return -1;
		}
		*(double *)field(out, s) = v;
		break;
not_num:
		snprintf(reason, rlen, "'%.40s' is not a number", text);
		return -1;
	}
	case TP_SETTING_BOOL: {
		bool v;

		if (tp_config_parse_bool(text, &v) != 0) {
			snprintf(reason, rlen,
			    "'%.40s' is not a boolean (true/false, 1/0, yes/no, on/off)",
			    text);
			return -1;
		}
		*(bool *)field(out, s) = v;
		break;
	}
	case TP_SETTING_STRING: {
		size_t len = strlen(text);
		char **slot = (char **)field(out, s);
		char *copy;

		if ((double)len < s->min || (double)len > s->max) {
			snprintf(reason, rlen,
			    "length %zu is outside %.0f..%.0f bytes", len, s->min,
			    s->max);
			return -1;
		}
		copy = strdup(text);
		if (copy == NULL)
			return -2;
		free(*slot);
		*slot = copy;
		break;
	}
	default:
		snprintf(reason, rlen, "unknown setting type");
		return -1;
	}
	if (s->validate != NULL && s->validate(field(out, s), reason, rlen) != 0)
		return -1;
	return 0;
}

static void
add_error(struct tp_config_report *rep, const struct tp_setting *s,
    const char *source, const char *reason)
{
	if (rep->nerrors < TP_CONFIG_MAX_ERRORS) {
		struct tp_config_error *e = &rep->errors[rep->nerrors];

		e->setting = s->name;
		e->source = source;
		snprintf(e->reason, sizeof(e->reason), "%s", reason);
	}
	rep->nerrors++;
}

/* Empty environment values count as unset: Helm often renders `value: ""`. */
static const char *
nonempty(const char *v)
{
	return (v != NULL && v[0] != '\0') ? v : NULL;
}

int
tp_config_load(const struct tp_setting *table, size_t n, void *out,
    tp_config_lookup_fn lookup, void *ctx,
    const struct tp_config_override *overrides, size_t noverrides,
    struct tp_config_report *rep)
{
	char reason[200];
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	if (n > TP_CONFIG_MAX_SETTINGS)
		return -2;
	if (lookup == NULL)
		lookup = default_lookup;

	for (size_t i = 0; i < n; i++) {
		const struct tp_setting *s = &table[i];
		const char *text = NULL, *source = NULL;
		enum tp_config_source src = TP_CONFIG_SRC_DEFAULT;
		int prc;

		/* The default first: it is the fallback for a bad value. */
		prc = parse_value(s, s->default_value ? s->default_value : "",
		    out, reason, sizeof(reason));
		if (prc != 0) {
			tp_config_free(table, n, out);
			return -2;
		}
		for (size_t k = 0; k < noverrides; k++) {
			if (strcmp(overrides[k].name, s->name) == 0) {
				text = overrides[k].value;
				src = TP_CONFIG_SRC_FLAG;
				source = s->name;
			}
		}
		if (text == NULL && s->env != NULL) {
			const char *v = lookup(ctx, s->env);

			if ((s->flags & TP_SETTING_EMPTY_OK) ? v != NULL :
			    nonempty(v) != NULL) {
				text = v;
				src = TP_CONFIG_SRC_ENV;
				source = s->env;
			}
		}
		if (text == NULL && s->env_fallback != NULL &&
		    (text = nonempty(lookup(ctx, s->env_fallback))) != NULL) {
			src = TP_CONFIG_SRC_ENV_FALLBACK;
			source = s->env_fallback;
		}
		if (text == NULL)
			continue;
		prc = parse_value(s, text, out, reason, sizeof(reason));
		if (prc == -2) {
			tp_config_free(table, n, out);
			return -2;
		}
		if (prc != 0) {
			/* Restore the default: a failed validator may have stored. */
			(void)parse_value(s, s->default_value ? s->default_value : "",
			    out, reason + 100, 100);
			add_error(rep, s, source, reason);
			rc = -1;
			continue;
		}
		rep->sources[i] = src;
	}
	return rc;
}

void
tp_config_free(const struct tp_setting *table, size_t n, void *out)
{
	for (size_t i = 0; i < n; i++) {
		if (table[i].type == TP_SETTING_STRING) {
			char **slot = (char **)field(out, &table[i]);

			free(*slot);
			*slot = NULL;
		}
	}
}

char *
tp_config_format_value(const struct tp_setting *s, const void *cfg, char *buf,
    size_t len)
{
	const void *p = cfield(cfg, s);

	if (s->flags & TP_SETTING_SECRET) {
		const char *v = s->type == TP_SETTING_STRING ?
		    *(char *const *)p : "x";

		snprintf(buf, len, "%s", (v && v[0]) ? "<set>" : "<unset>");
		return buf;
	}
	switch (s->type) {
	case TP_SETTING_INT:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)p);
		break;
	case TP_SETTING_DOUBLE:
		snprintf(buf, len, "%g", *(const double *)p);
		break;
	case TP_SETTING_BOOL:
		snprintf(buf, len, "%s", *(const bool *)p ? "true" : "false");
		break;
	case TP_SETTING_STRING: {
		const char *v = *(char *const *)p;

		if (s->flags & TP_SETTING_REDACT_URL)
			return tp_config_redact_url(v ? v : "", buf, len);
		snprintf(buf, len, "%s", v ? v : "");
		break;
	}
	default:
		snprintf(buf, len, "?");
	}
	return buf;
}

char *
tp_config_redact_url(const char *url, char *buf, size_t len)
{
	const char *auth = strstr(url, "://");
	const char *end, *at = NULL, *colon, *q;

	if (auth == NULL) {
		snprintf(buf, len, "%s", url);
		return buf;
	}
	auth += 3;
	/*
	 * The URL parsers take the userinfo to end at the last '@' before the
	 * query or fragment, so a password may hold '/' or '@': a shorter
	 * scan (to the first '/') would print the rest of such a password.
	 * Masking too much of a path that holds '@' costs nothing.
	 */
	end = auth + strcspn(auth, "?#");
	for (q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	if (at == NULL) {
		snprintf(buf, len, "%s", url);
		return buf;
	}
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL)	/* a bare token ("https://token@host") */
		snprintf(buf, len, "%.*s***%s", (int)(auth - url), url, at);
	else
		snprintf(buf, len, "%.*s***%s", (int)(colon + 1 - url), url, at);
	return buf;
}

void
tp_config_print(const struct tp_setting *table, size_t n, const void *cfg,
    const struct tp_config_report *rep, FILE *fp)
{
	static const char *const srcname[] = { "default", "env", "env", "flag" };
	char val[512];

	for (size_t i = 0; i < n; i++) {
		const struct tp_setting *s = &table[i];
		enum tp_config_source src = rep->sources[i];
		const char *from = src == TP_CONFIG_SRC_ENV_FALLBACK ?
		    s->env_fallback : s->env;

		fprintf(fp, "%-34s %-34s %s  (%s%s%s)\n", s->name,
		    s->env ? s->env : "-", tp_config_format_value(s, cfg, val,
		    sizeof(val)), srcname[src],
		    (src == TP_CONFIG_SRC_ENV || src == TP_CONFIG_SRC_ENV_FALLBACK) ? " " : "",
		    (src == TP_CONFIG_SRC_ENV || src == TP_CONFIG_SRC_ENV_FALLBACK) ? from : "");
	}
	for (size_t i = 0; i < rep->nerrors && i < TP_CONFIG_MAX_ERRORS; i++) {
		fprintf(fp, "error: %s (%s): %s\n", rep->errors[i].setting,
		    rep->errors[i].source, rep->errors[i].reason);
	}
	if (rep->nerrors > TP_CONFIG_MAX_ERRORS)
		fprintf(fp, "error: %zu more invalid settings\n",
		    rep->nerrors - TP_CONFIG_MAX_ERRORS);
}

static const char *
type_name(enum tp_setting_type t)
{
	switch (t) {
	case TP_SETTING_INT:
		return "int";
	case TP_SETTING_DOUBLE:
		return "double";
	case TP_SETTING_BOOL:
		return "bool";
	case TP_SETTING_STRING:
		return "string";
	}
	return "unknown";
}

/*
 * Appends printf-formatted text to the growing line buffer (the same
 * buffer tp_json_append_string() grows). Returns 0, or -1.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int
list_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	if (*len + (size_t)n + 1 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 512;
		char *nb;

		while (ncap < *len + (size_t)n + 1)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, tmp, (size_t)n + 1);
	*len += (size_t)n;
	return 0;
}

/* Appends ,"key": and the JSON string for value, or null. */
static int
list_string(char **buf, size_t *len, size_t *cap, const char *key,
    const char *value)
{
	if (list_printf(buf, len, cap, ",\"%s\":", key) != 0)
		return -1;
	if (value == NULL)
		return list_printf(buf, len, cap, "null");
	return tp_json_append_string(buf, len, cap, value, strlen(value));
}

/* Appends ,"key": and the bound (integral for int, exact for double). */
static int
list_bound(char **buf, size_t *len, size_t *cap, const char *key,
    const struct tp_setting *s, double v)
{
	switch (s->type) {
	case TP_SETTING_INT:
	case TP_SETTING_STRING:
		return list_printf(buf, len, cap, ",\"%s\":%.0f", key, v);
	case TP_SETTING_DOUBLE:
		return list_printf(buf, len, cap, ",\"%s\":%.17g", key, v);
	case TP_SETTING_BOOL:
		break;
	}
	return list_printf(buf, len, cap, ",\"%s\":null", key);
}

int
tp_config_list(const struct tp_setting *table, size_t n, FILE *fp)
{
	char *line = NULL;
	size_t len, cap = 0;
	int rc = -1;

	for (size_t i = 0; i < n; i++) {
		const struct tp_setting *s = &table[i];

		len = 0;
		if (list_printf(&line, &len, &cap, "{\"name\":") != 0 ||
		    tp_json_append_string(&line, &len, &cap, s->name,
		    strlen(s->name)) != 0 ||
		    list_string(&line, &len, &cap, "env", s->env) != 0 ||
		    list_string(&line, &len, &cap, "env_fallback",
		    s->env_fallback) != 0 ||
		    list_string(&line, &len, &cap, "type",
		    type_name(s->type)) != 0 ||
		    list_string(&line, &len, &cap, "default",
		    s->default_value ? s->default_value : "") != 0 ||
		    list_bound(&line, &len, &cap, "min", s, s->min) != 0 ||
		    list_bound(&line, &len, &cap, "max", s, s->max) != 0 ||
		    list_printf(&line, &len, &cap,
		    ",\"secret\":%s,\"empty_ok\":%s,\"validated\":%s",
		    (s->flags & TP_SETTING_SECRET) ? "true" : "false",
		    (s->flags & TP_SETTING_EMPTY_OK) ? "true" : "false",
		    s->validate != NULL ? "true" : "false") != 0 ||
		    list_string(&line, &len, &cap, "help", s->help) != 0 ||
		    list_printf(&line, &len, &cap, "}\n") != 0)
			goto out;
		if (fwrite(line, 1, len, fp) != len)
			goto out;
	}
	rc = fflush(fp) == 0 ? 0 : -1;
out:
	free(line);
	return rc;
}
