/*
 * log.c -- JSON-lines logger.
 *
 * A line is built in a private heap buffer and handed to the OS in one
 * write under a mutex, so concurrent lines never interleave even when
 * stdout is a pipe and a line is longer than PIPE_BUF.
 */
#include "tokenplace/log.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compat.h"
#include "utf8.h"

#define TP_LOG_NAME_MAX 64

static tp_mutex log_mutex = TP_MUTEX_INIT;
static char log_name[TP_LOG_NAME_MAX] = "tokenplace";
static _Atomic int log_level = TP_LOG_INFO;
static _Atomic int log_fd = 1;

void
tp_log_init(const char *logger, enum tp_log_level level, int fd)
{
	tp_mutex_lock(&log_mutex);
	if (logger != NULL) {
		strncpy(log_name, logger, sizeof(log_name) - 1);
		log_name[sizeof(log_name) - 1] = '\0';
	}
	tp_mutex_unlock(&log_mutex);
	atomic_store(&log_level, (int)level);
	atomic_store(&log_fd, fd);
}

void
tp_log_set_level(enum tp_log_level level)
{
	atomic_store(&log_level, (int)level);
}

bool
tp_log_enabled(enum tp_log_level level)
{
	return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

static const struct {
	const char *name;
	enum tp_log_level level;
} level_names[] = {
	{ "DEBUG", TP_LOG_DEBUG },
	{ "INFO", TP_LOG_INFO },
	{ "WARNING", TP_LOG_WARNING },
	{ "WARN", TP_LOG_WARNING },
	{ "ERROR", TP_LOG_ERROR },
	{ "CRITICAL", TP_LOG_CRITICAL },
};

int
tp_log_level_parse(const char *name, enum tp_log_level *out)
{
	size_t len;

	if (name == NULL)
		return -1;
	while (isspace((unsigned char)*name))
		name++;
	len = strlen(name);
	while (len > 0 && isspace((unsigned char)name[len - 1]))
		len--;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strlen(level_names[i].name) == len &&
		    strncasecmp(level_names[i].name, name, len) == 0) {
			*out = level_names[i].level;
			return 0;
		}
	}
	return -1;
}

const char *
tp_log_level_name(enum tp_log_level level)
{
	switch (level) {
	case TP_LOG_DEBUG:
		return "DEBUG";
	case TP_LOG_INFO:
		return "INFO";
	case TP_LOG_WARNING:
		return "WARNING";
	case TP_LOG_ERROR:
		return "ERROR";
	case TP_LOG_CRITICAL:
		return "CRITICAL";
	}
	return "INFO";
}

static int
buf_reserve(char **buf, size_t *cap, size_t need)
{
	size_t ncap;
	char *nbuf;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 256;
	while (ncap < need)
		ncap *= 2;
	nbuf = realloc(*buf, ncap);
	if (nbuf == NULL)
		return -1;
	*buf = nbuf;
	*cap = ncap;
	return 0;
}

static int
buf_append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (buf_reserve(buf, cap, *len + n + 1) != 0)
		return -1;
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

int
tp_json_append_string(char **buf, size_t *len, size_t *cap, const char *s,
    size_t slen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	char esc[8];

	if (buf_append(buf, len, cap, "\"", 1) != 0)
		return -1;
	while (i < slen) {
		unsigned char c = p[i];
		size_t run = i;

		/* Copy the longest run that needs no escaping in one go. */
		while (run < slen && p[run] >= 0x20 && p[run] < 0x7f &&
		    p[run] != '"' && p[run] != '\\')
			run++;
		if (run > i) {
			if (buf_append(buf, len, cap, s + i, run - i) != 0)
				return -1;
			i = run;
			continue;
		}
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			if (buf_append(buf, len, cap, esc, 2) != 0)
				return -1;
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			const char *short_esc = NULL;

			switch (c) {
			case '\n': short_esc = "\\n"; break;
			case '\r': short_esc = "\\r"; break;
			case '\t': short_esc = "\\t"; break;
			case '\b': short_esc = "\\b"; break;
			case '\f': short_esc = "\\f"; break;
			default: break;
			}
			if (short_esc != NULL) {
				if (buf_append(buf, len, cap, short_esc, 2) != 0)
					return -1;
			} else {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				if (buf_append(buf, len, cap, esc, 6) != 0)
					return -1;
			}
			i++;
		} else {
			size_t n = tp_utf8_decode(p + i, slen - i, NULL);

			if (n == 0) {
				if (buf_append(buf, len, cap, "\\ufffd", 6) != 0)
					return -1;
				i++;
			} else {
				if (buf_append(buf, len, cap, s + i, n) != 0)
					return -1;
				i += n;
			}
		}
	}
	return buf_append(buf, len, cap, "\"", 1);
}

static int
append_timestamp(char **buf, size_t *len, size_t *cap)
{
	struct timespec ts;
	struct tm tm;
	char stamp[40];
	int n;

	tp_compat_wallclock(&ts);
	if (tp_compat_gmtime(ts.tv_sec, &tm) != 0)
		memset(&tm, 0, sizeof(tm));
	n = snprintf(stamp, sizeof(stamp),
	    "\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (long)(ts.tv_nsec / 1000000));
	if (n < 0)
		return -1;
	return buf_append(buf, len, cap, stamp, (size_t)n);
}

static int
append_field(char **buf, size_t *len, size_t *cap, const struct tp_log_field *f)
{
	char num[64];
	int n;

	if (buf_append(buf, len, cap, ",", 1) != 0 ||
	    tp_json_append_string(buf, len, cap, f->key ? f->key : "",
	    f->key ? strlen(f->key) : 0) != 0 ||
	    buf_append(buf, len, cap, ":", 1) != 0)
		return -1;
	switch (f->type) {
	case TP_LF_STR:
		if (f->v.s == NULL)
			return buf_append(buf, len, cap, "null", 4);
		return tp_json_append_string(buf, len, cap, f->v.s, strlen(f->v.s));
	case TP_LF_STRN:
		if (f->v.s == NULL)
			return buf_append(buf, len, cap, "null", 4);
		return tp_json_append_string(buf, len, cap, f->v.s, f->len);
	case TP_LF_INT:
		n = snprintf(num, sizeof(num), "%lld", (long long)f->v.i);
		break;
	case TP_LF_UINT:
		n = snprintf(num, sizeof(num), "%llu", (unsigned long long)f->v.u);
		break;
	case TP_LF_DOUBLE:
		if (!isfinite(f->v.d))
			return buf_append(buf, len, cap, "null", 4);
		n = snprintf(num, sizeof(num), "%.3f", f->v.d);
		/* Trim trailing zeros so 12.5 logs as 12.5, 3.0 as 3.0. */
		while (n > 3 && num[n - 1] == '0' && num[n - 2] != '.')
			num[--n] = '\0';
		break;
	case TP_LF_BOOL:
		return f->v.b ? buf_append(buf, len, cap, "true", 4) :
		    buf_append(buf, len, cap, "false", 5);
	case TP_LF_RAW:
		if (f->v.s == NULL)
			return buf_append(buf, len, cap, "null", 4);
		return buf_append(buf, len, cap, f->v.s, strlen(f->v.s));
	default:
		return buf_append(buf, len, cap, "null", 4);
	}
	if (n < 0)
		return -1;
	return buf_append(buf, len, cap, num, (size_t)n);
}

char *
tp_log_format(enum tp_log_level level, const char *message,
    const struct tp_log_field *fields, size_t nfields)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char name[TP_LOG_NAME_MAX];
	const char *lvl = tp_log_level_name(level);

	tp_mutex_lock(&log_mutex);
	memcpy(name, log_name, sizeof(name));
	tp_mutex_unlock(&log_mutex);

	if (buf_append(&buf, &len, &cap, "{\"timestamp\":", 13) != 0 ||
	    append_timestamp(&buf, &len, &cap) != 0 ||
	    buf_append(&buf, &len, &cap, ",\"level\":", 9) != 0 ||
	    tp_json_append_string(&buf, &len, &cap, lvl, strlen(lvl)) != 0 ||
	    buf_append(&buf, &len, &cap, ",\"logger\":", 10) != 0 ||
	    tp_json_append_string(&buf, &len, &cap, name, strlen(name)) != 0 ||
	    buf_append(&buf, &len, &cap, ",\"message\":", 11) != 0 ||
	    tp_json_append_string(&buf, &len, &cap, message ? message : "",
	    message ? strlen(message) : 0) != 0)
		goto fail;
	for (size_t i = 0; i < nfields; i++) {
		if (append_field(&buf, &len, &cap, &fields[i]) != 0)
			goto fail;
	}
	if (buf_append(&buf, &len, &cap, "}\n", 2) != 0)
		goto fail;
	return buf;
fail:
	free(buf);
	return NULL;
}

void
tp_log(enum tp_log_level level, const char *message,
    const struct tp_log_field *fields, size_t nfields)
{
	static const char oom_line[] =
	    "{\"level\":\"ERROR\",\"message\":\"log.line_dropped\"}\n";
	char *line;
	int fd;

	if (!tp_log_enabled(level))
		return;
	line = tp_log_format(level, message, fields, nfields);
	fd = atomic_load(&log_fd);
	tp_mutex_lock(&log_mutex);
	if (line != NULL)
		(void)tp_compat_write_all(fd, line, strlen(line));
	else
		(void)tp_compat_write_all(fd, oom_line, sizeof(oom_line) - 1);
	tp_mutex_unlock(&log_mutex);
	free(line);
}
