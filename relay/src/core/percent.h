/*
 * percent.h -- the relay's one decoder of URL percent-escapes ("%XY",
 * RFC 3986 section 2.1), shared by query parsing and the forwarded-path
 * check.
 */
#ifndef RELAY_PERCENT_H
#define RELAY_PERCENT_H

/* The value of hex digit c, or -1 when c is not one. */
static inline int
relay_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The byte the escape at p stands for, or -1 when p does not start one.
 * Reads p[1] only after p[0] is '%' and p[2] only after p[1] is a hex
 * digit, so a NUL-terminated string may end anywhere.
 */
static inline int
relay_percent_byte(const char *p)
{
	int hi, lo;

	if (p[0] != '%' || (hi = relay_hex_digit(p[1])) < 0 ||
	    (lo = relay_hex_digit(p[2])) < 0)
		return -1;
	return hi * 16 + lo;
}

#endif /* RELAY_PERCENT_H */
