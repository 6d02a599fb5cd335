/*
 * reqline.c -- bounded, validated copies of a refused request's line.
 */
#include "http/reqline.h"

#include <stddef.h>
#include <string.h>

/* RFC 9110 section 5.6.2: tchar. */
static bool
is_tchar(unsigned char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * Copies the method when it is a token of at most the bound. Reads at
 * most RELAY_REQLINE_METHOD_MAX + 1 bytes, stopping at the first NUL.
 */
static bool
copy_method(char *dst, const char *m)
{
	size_t n = 0;

	dst[0] = '\0';
	if (m == NULL)
		return false;
	for (; m[n] != '\0'; n++) {
		if (n >= RELAY_REQLINE_METHOD_MAX || !is_tchar((unsigned char)m[n]))
			return false;
	}
	if (n == 0)
		return false;
	memcpy(dst, m, n);
	dst[n] = '\0';
	return true;
}

/*
 * Copies the path part of an origin-form target ("/a/b?q" gives "/a/b").
 * Reads at most RELAY_REQLINE_PATH_MAX + 1 bytes, stopping at the first
 * NUL, '?' or '#'; anything after those is not looked at.
 */
static bool
copy_path(char *dst, const char *t)
{
	size_t n = 0;

	dst[0] = '\0';
	if (t == NULL || t[0] != '/')
		return false;
	for (; t[n] != '\0' && t[n] != '?' && t[n] != '#'; n++) {
		unsigned char c = (unsigned char)t[n];

		if (n >= RELAY_REQLINE_PATH_MAX || c < 0x21 || c > 0x7e)
			return false;
	}
	memcpy(dst, t, n);
	dst[n] = '\0';
	return true;
}

bool
relay_reqline_copy(struct relay_reqline *out, const char *method,
    const char *target)
{
	bool m = copy_method(out->method, method);
	bool p = copy_path(out->path, target);

	return m && p;
}

const char *
relay_reqline_or_dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}
