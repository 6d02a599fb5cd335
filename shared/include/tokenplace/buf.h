/*
 * tp_buf: the growable text buffer libtokenplace's encoders (legacy and
 * API v1 JSON, the metrics renderer) and gpuhost's JSON builders write
 * into. Part of tokenplace_core: C library only, no cJSON, so it builds
 * with mingw-w64 too.
 *
 * The out-of-memory latch: after the first failed allocation every append
 * is a no-op and tp_buf_finish() reports the failure, so callers append
 * freely and check once. A zeroed struct (TP_BUF_INIT) is an empty buffer.
 * Not thread safe: one buffer, one writer.
 */
#ifndef TOKENPLACE_BUF_H
#define TOKENPLACE_BUF_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tp_buf {
	char	*p;		/* NUL-terminated once anything was added */
	size_t	 len;		/* bytes written, without the NUL */
	size_t	 cap;		/* bytes allocated at p */
	bool	 oom;		/* an allocation failed: appends do nothing */
};

#define TP_BUF_INIT	{ NULL, 0, 0, false }

/*
 * Makes room for `more` bytes plus a NUL. Returns 0, or -1 when the
 * allocation fails or the size would overflow (and sets oom; the text so
 * far stays allocated until tp_buf_finish()).
 */
int tp_buf_reserve(struct tp_buf *b, size_t more);

/* Appends n bytes of s (which need not be NUL-terminated). */
void tp_buf_add(struct tp_buf *b, const char *s, size_t n);

/* Appends the NUL-terminated string s. */
void tp_buf_puts(struct tp_buf *b, const char *s);

/*
 * Appends s as a JSON string literal, quotes included (tp_json_append_string
 * in tokenplace/log.h: control characters escaped, invalid UTF-8 replaced
 * by U+FFFD), or the literal null when s is NULL.
 */
void tp_buf_json_str(struct tp_buf *b, const char *s);

/*
 * Hands the NUL-terminated text over (the caller frees it), with its length
 * in *len when len is not NULL; an empty buffer gives "". After a failed
 * allocation it frees the text, sets *len to 0 and returns NULL. Either
 * way *b must not be used again before it is reset to TP_BUF_INIT.
 */
char *tp_buf_finish(struct tp_buf *b, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_BUF_H */
