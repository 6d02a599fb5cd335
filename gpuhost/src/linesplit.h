/*
 * linesplit.h -- turns a byte stream into lines for a gpuhost_line_fn,
 * splitting lines longer than GPUHOST_LINE_MAX and dropping '\r' before
 * '\n'. Used by the pipe reader threads on both platforms.
 */
#ifndef GPUHOST_LINESPLIT_H
#define GPUHOST_LINESPLIT_H

#include <stddef.h>

#include "proc.h"

struct gpuhost_linesplit {
	gpuhost_line_fn sink;
	void *arg;
	int stream;
	size_t n;
	char buf[GPUHOST_LINE_MAX];
};

/* Feeds len bytes; complete lines go to the sink. */
void gpuhost_linesplit_feed(struct gpuhost_linesplit *ls, const char *data,
    size_t len);

/* Hands over a last unterminated line, if any. */
void gpuhost_linesplit_flush(struct gpuhost_linesplit *ls);

#endif
