/*
 * buf.h -- the growable text buffer libtokenplace's encoders write into
 * (internal). After the first failed allocation every append is a no-op,
 * and tp_buf_finish() reports the failure, so callers append freely and
 * check once.
 */
#ifndef TP_BUF_H
#define TP_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct tp_buf {
	char	*p;		/* NUL-terminated once anything was added */
	size_t	 len;
	size_t	 cap;
	bool	 oom;
};

#define TP_BUF_INIT	{ NULL, 0, 0, false }

/* Makes room for more bytes plus a NUL. Returns 0, or -1 (and sets oom). */
int tp_buf_reserve(struct tp_buf *b, size_t more);

/* Appends n bytes of s. */
void tp_buf_add(struct tp_buf *b, const char *s, size_t n);

/* Appends the string s. */
void tp_buf_puts(struct tp_buf *b, const char *s);

/*
 * Hands the NUL-terminated text (the caller frees it) over, with its length
 * in *len when len is not NULL; an empty buffer gives "". After a failed
 * allocation it frees the buffer, sets *len to 0 and returns NULL.
 */
char *tp_buf_finish(struct tp_buf *b, size_t *len);

#endif /* TP_BUF_H */
