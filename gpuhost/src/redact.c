/* redact.c -- secret removal from output lines; see redact.h. */
#include <stdlib.h>
#include <string.h>

#include "redact.h"

/* memmem() is not in C11 nor in the Windows CRT. */
static const char *
find(const char *h, size_t hlen, const char *n, size_t nlen)
{
	for (size_t i = 0; nlen <= hlen && i <= hlen - nlen; i++) {
		if (h[i] == n[0] && memcmp(h + i, n, nlen) == 0)
			return h + i;
	}
	return NULL;
}

char *
gpuhost_redact(const char *line, size_t len, const char *secret,
    size_t *outlen)
{
	size_t slen = secret != NULL ? strlen(secret) : 0;
	size_t rlen = strlen(GPUHOST_REDACTED), hits = 0, o = 0;
	const char *p = line, *q;
	char *out;

	if (slen > 0) {
		while ((q = find(p, len - (size_t)(p - line), secret, slen)) != NULL) {
			hits++;
			p = q + slen;
		}
	}
	out = malloc(len + hits * rlen + 1);
	if (out == NULL)
		return NULL;
	p = line;
	while (hits > 0 &&
	    (q = find(p, len - (size_t)(p - line), secret, slen)) != NULL) {
		memcpy(out + o, p, (size_t)(q - p));
		o += (size_t)(q - p);
		memcpy(out + o, GPUHOST_REDACTED, rlen);
		o += rlen;
		p = q + slen;
	}
	memcpy(out + o, p, len - (size_t)(p - line));
	o += len - (size_t)(p - line);
	out[o] = '\0';
	*outlen = o;
	return out;
}
