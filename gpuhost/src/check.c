/*
 * check.c -- what every pre-flight check shares; see check.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

const char *
gpuhost_outcome_name(enum gpuhost_outcome o)
{
	switch (o) {
	case GPUHOST_PASS:
		return "pass";
	case GPUHOST_UNKNOWN:
		return "unknown";
	case GPUHOST_SKIP:
		return "skip";
	case GPUHOST_WARN:
		return "warn";
	case GPUHOST_FAIL:
		return "fail";
	}
	return "unknown";
}

enum gpuhost_outcome
gpuhost_apply_mode(enum gpuhost_check_mode mode, enum gpuhost_outcome raw)
{
	if (mode == GPUHOST_CHECK_OFF)
		return GPUHOST_SKIP;
	if ((raw == GPUHOST_FAIL || raw == GPUHOST_WARN) &&
	    mode == GPUHOST_CHECK_WARN)
		return GPUHOST_WARN;
	return raw;
}

void
gpuhost_check_msg(struct gpuhost_check *c, const char *fmt, ...)
{
	size_t off = strlen(c->message);
	va_list ap;

	if (off >= sizeof(c->message) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(c->message + off, sizeof(c->message) - off, fmt, ap);
	va_end(ap);
}
