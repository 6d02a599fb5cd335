/* linesplit.c -- byte stream to lines; see linesplit.h. */
#include <string.h>

#include "linesplit.h"

static void
emit(struct gpuhost_linesplit *ls)
{
	size_t n = ls->n;

	if (n > 0 && ls->buf[n - 1] == '\r')
		n--;
	ls->sink(ls->arg, ls->stream, ls->buf, n);
	ls->n = 0;
}

void
gpuhost_linesplit_feed(struct gpuhost_linesplit *ls, const char *data,
    size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			emit(ls);
			continue;
		}
		if (ls->n == sizeof(ls->buf))
			emit(ls);
		ls->buf[ls->n++] = data[i];
	}
}

void
gpuhost_linesplit_flush(struct gpuhost_linesplit *ls)
{
	if (ls->n > 0)
		emit(ls);
}
