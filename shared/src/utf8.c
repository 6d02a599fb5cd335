/* utf8.c -- strict UTF-8 decoding (RFC 3629). */
#include "utf8.h"

size_t
tp_utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned char c = s[0];
	uint32_t v;
	size_t n;

	if (c < 0x80) {
		if (cp != NULL)
			*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, v = c & 0x1fu;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, v = c & 0x0fu;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, v = c & 0x07u;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3fu);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) ||
	    (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff)
		return 0;
	if (cp != NULL)
		*cp = v;
	return n;
}
