/*
 * tp_log: JSON-lines logger.
 *
 * Each call writes exactly one line to the log fd (stdout by default) with
 * one write(2):
 *   {"timestamp":"2026-11-27T03:07:51.123Z","level":"INFO","logger":"...",
 *    "message":"<event>", <fields in call order>}
 * Strings are escaped so that any byte sequence yields valid JSON: control
 * characters become \uXXXX, invalid UTF-8 bytes become U+FFFD.
 * All functions are thread safe; the logger name and level are set once at
 * start-up with tp_log_init() and may be changed later with
 * tp_log_set_level().
 */
#ifndef TOKENPLACE_LOG_H
#define TOKENPLACE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tp_log_level {
	TP_LOG_DEBUG = 10,
	TP_LOG_INFO = 20,
	TP_LOG_WARNING = 30,
	TP_LOG_ERROR = 40,
	TP_LOG_CRITICAL = 50,
};

enum tp_log_field_type {
	TP_LF_STR,	/* NUL-terminated string, NULL logs as null */
	TP_LF_STRN,	/* byte string with explicit length */
	TP_LF_INT,
	TP_LF_UINT,
	TP_LF_DOUBLE,	/* rendered with up to 3 decimals; NaN/inf as null */
	TP_LF_BOOL,
	TP_LF_RAW,	/* pre-rendered JSON value, inserted verbatim */
};

struct tp_log_field {
	const char *key;
	enum tp_log_field_type type;
	union {
		const char *s;
		int64_t i;
		uint64_t u;
		double d;
		bool b;
	} v;
	size_t len;	/* TP_LF_STRN only */
};

/* Field constructors, for use in the variadic-free tp_log() call below. */
#define TP_LSTR(k, x)	((struct tp_log_field){ .key = (k), .type = TP_LF_STR, .v.s = (x) })
#define TP_LSTRN(k, x, n) ((struct tp_log_field){ .key = (k), .type = TP_LF_STRN, .v.s = (x), .len = (n) })
#define TP_LINT(k, x)	((struct tp_log_field){ .key = (k), .type = TP_LF_INT, .v.i = (int64_t)(x) })
#define TP_LUINT(k, x)	((struct tp_log_field){ .key = (k), .type = TP_LF_UINT, .v.u = (uint64_t)(x) })
#define TP_LDBL(k, x)	((struct tp_log_field){ .key = (k), .type = TP_LF_DOUBLE, .v.d = (double)(x) })
#define TP_LBOOL(k, x)	((struct tp_log_field){ .key = (k), .type = TP_LF_BOOL, .v.b = (x) })
#define TP_LRAW(k, x)	((struct tp_log_field){ .key = (k), .type = TP_LF_RAW, .v.s = (x) })

/*
 * Sets the logger name (copied, at most 63 bytes kept), the minimum level
 * and the fd lines go to (usually STDOUT_FILENO). Safe to call again.
 */
void tp_log_init(const char *logger, enum tp_log_level level, int fd);

/* Changes the minimum level; lines below it are dropped cheaply. */
void tp_log_set_level(enum tp_log_level level);

/* Returns true when a line at `level` would be written. */
bool tp_log_enabled(enum tp_log_level level);

/*
 * Parses a level name (DEBUG, INFO, WARNING/WARN, ERROR, CRITICAL; any case,
 * surrounding blanks ignored). Returns 0 and sets *out, or -1 if unknown.
 */
int tp_log_level_parse(const char *name, enum tp_log_level *out);

/* Returns the upper-case name of a level ("INFO"). */
const char *tp_log_level_name(enum tp_log_level level);

/*
 * Writes one line with the event name `message` and `nfields` fields.
 * Never fails visibly: if the line cannot be built it is replaced by a
 * minimal line saying so; if write(2) fails the line is lost.
 */
void tp_log(enum tp_log_level level, const char *message,
    const struct tp_log_field *fields, size_t nfields);

/*
 * Renders the line tp_log() would write into a malloc'd NUL-terminated
 * buffer (including the trailing newline), for tests and for callers that
 * send lines elsewhere. Returns NULL on allocation failure; caller frees.
 */
char *tp_log_format(enum tp_log_level level, const char *message,
    const struct tp_log_field *fields, size_t nfields);

/*
 * Appends the JSON string literal for `s` (quotes included) to the dynamic
 * buffer *buf of length *len and capacity *cap, growing it with realloc.
 * Returns 0, or -1 on allocation failure (the buffer is left valid).
 */
int tp_json_append_string(char **buf, size_t *len, size_t *cap,
    const char *s, size_t slen);

/* Convenience: log with a compound-literal field list. */
#define TP_LOG(level, msg, ...) do {						\
	if (tp_log_enabled(level)) {						\
		const struct tp_log_field tp_log_f_[] = { TP_LSTR(NULL, NULL), __VA_ARGS__ }; \
		tp_log((level), (msg), tp_log_f_ + 1,				\
		    sizeof(tp_log_f_) / sizeof(tp_log_f_[0]) - 1);		\
	}									\
} while (0)
#define TP_LOG0(level, msg) do {						\
	if (tp_log_enabled(level))						\
		tp_log((level), (msg), NULL, 0);				\
} while (0)

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_LOG_H */
