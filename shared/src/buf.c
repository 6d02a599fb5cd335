/*
 * buf.c -- the growable text buffer of libtokenplace's encoders; see
 * tokenplace/buf.h.
 */
#include "tokenplace/buf.h"
#include "tokenplace/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int
tp_buf_reserve(struct tp_buf *b, size_t more)
{
	size_t ncap;
	char *np;

	if (b->oom)
		return -1;
	if (b->p != NULL && more < b->cap - b->len)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap - b->len <= more) {
		if (ncap > SIZE_MAX / 2) {
			b->oom = true;
			return -1;
		}
		ncap *= 2;
	}
	np = realloc(b->p, ncap);
	if (np == NULL) {
		b->oom = true;
		return -1;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

void
tp_buf_add(struct tp_buf *b, const char *s, size_t n)
{
	if (tp_buf_reserve(b, n) != 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
tp_buf_puts(struct tp_buf *b, const char *s)
{
	tp_buf_add(b, s, strlen(s));
}

void
tp_buf_json_str(struct tp_buf *b, const char *s)
{
	if (b->oom)
		return;
	if (s == NULL) {
		tp_buf_puts(b, "null");
		return;
	}
	if (tp_json_append_string(&b->p, &b->len, &b->cap, s, strlen(s)) != 0)
		b->oom = true;
}

char *
tp_buf_finish(struct tp_buf *b, size_t *len)
{
	if (tp_buf_reserve(b, 0) != 0) {
		free(b->p);
		b->p = NULL;
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	b->p[b->len] = '\0';
	if (len != NULL)
		*len = b->len;
	return b->p;
}
