/*
 * framing.c -- RFC 9112 framing rules over a parsed header list.
 */
#include "http/framing.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Optional whitespace (RFC 9110 OWS) around a field value. */
static void
trim_ows(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* Content-Length = 1*DIGIT, and it must fit an int64_t. */
static bool
content_length_valid(const char *v)
{
	size_t len = strlen(v);
	uint64_t n = 0;

	trim_ows(&v, &len);
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (v[i] < '0' || v[i] > '9')
			return false;
		d = (unsigned)(v[i] - '0');
		if (n > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	return true;
}

/*
 * The only transfer coding the relay reads is chunked alone (names are
 * case-insensitive, RFC 9112 section 7). A list ("gzip, chunked"),
 * "identity" or anything else would need a decoder the relay does not
 * have, and would frame the body differently from a proxy that has one.
 */
static bool
transfer_encoding_valid(const char *v)
{
	size_t len = strlen(v);

	trim_ows(&v, &len);
	return len == 7 && strncasecmp(v, "chunked", 7) == 0;
}

void
relay_framing_add(struct relay_framing *f, const char *name, const char *value)
{
	f->headers++;
	if (name == NULL)
		return;
	if (value == NULL)
		value = "";
	if (strcasecmp(name, "Content-Length") == 0) {
		f->cl_count++;
		if (!content_length_valid(value))
			f->cl_invalid = true;
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		f->te_count++;
		if (!transfer_encoding_valid(value))
			f->te_invalid = true;
	}
}

enum relay_framing_verdict
relay_framing_verdict(const struct relay_framing *f)
{
	/* first: the framing headers may be among the lines never parsed */
	if (f->max_headers > 0 && f->headers > f->max_headers)
		return RELAY_FRAMING_TOO_MANY_HEADERS;
	if (f->cl_count > 0 && f->te_count > 0)
		return RELAY_FRAMING_CL_WITH_TE;
	if (f->cl_count > 1)
		return RELAY_FRAMING_CL_REPEATED;
	if (f->cl_invalid)
		return RELAY_FRAMING_CL_INVALID;
	if (f->te_count > 1 || f->te_invalid)
		return RELAY_FRAMING_TE_UNSUPPORTED;
	return RELAY_FRAMING_OK;
}

int
relay_framing_status(enum relay_framing_verdict v)
{
	return v == RELAY_FRAMING_TOO_MANY_HEADERS ? 431 : 400;
}

const char *
relay_framing_kind(enum relay_framing_verdict v)
{
	switch (v) {
	case RELAY_FRAMING_OK:
		return NULL;
	case RELAY_FRAMING_CL_WITH_TE:
		return "framing_cl_with_te";
	case RELAY_FRAMING_CL_REPEATED:
		return "framing_cl_repeated";
	case RELAY_FRAMING_CL_INVALID:
		return "framing_cl_invalid";
	case RELAY_FRAMING_TE_UNSUPPORTED:
		return "framing_te_unsupported";
	case RELAY_FRAMING_TOO_MANY_HEADERS:
		return "too_many_headers";
	}
	return "framing_invalid";
}

const char *
relay_framing_message(enum relay_framing_verdict v)
{
	switch (v) {
	case RELAY_FRAMING_OK:
		return NULL;
	case RELAY_FRAMING_CL_WITH_TE:
		return "Request has both Content-Length and Transfer-Encoding";
	case RELAY_FRAMING_CL_REPEATED:
		return "Request has more than one Content-Length";
	case RELAY_FRAMING_CL_INVALID:
		return "Request Content-Length is not a decimal length";
	case RELAY_FRAMING_TE_UNSUPPORTED:
		return "Request Transfer-Encoding is not exactly chunked";
	case RELAY_FRAMING_TOO_MANY_HEADERS:
		return "Request has more header lines than the relay accepts";
	}
	return "Request framing is invalid";
}
