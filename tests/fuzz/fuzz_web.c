/*
 * fuzz_web.c -- libFuzzer target for the request-facing parsers of
 * relay/src/web/web.c: the /static/ path rules, the HTTP date and the
 * If-None-Match list. Properties checked on every input:
 *   - a path relay_web_normalize() accepts has only plain segments: none
 *     empty, none starting with '.', no '\\', no control byte;
 *   - a date relay_web_parse_http_date() accepts makes a file of that
 *     second not modified and a file one second newer modified;
 *   - the conditional verdict never reads past the given strings (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_plain(const char *out)
{
	const char *seg = out;

	for (const char *p = out;; p++) {
		if (*p == '/' || *p == '\0') {
			if (p == seg || *seg == '.')
				abort();
			if (*p == '\0')
				break;
			seg = p + 1;
			continue;
		}
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char out[RELAY_WEB_MAX_NAME + 1];
	struct relay_web_file f;
	time_t t;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (relay_web_normalize(s, out, sizeof(out)) == 0)
		check_plain(out);
	if (relay_web_parse_http_date(s, &t) == 0) {
		struct relay_web_file g;

		memset(&g, 0, sizeof(g));
		g.mtime = t;
		/* Same second: not modified; one second earlier: modified. */
		if (!relay_web_not_modified(&g, NULL, s))
			abort();
		g.mtime = t + 1;
		if (relay_web_not_modified(&g, NULL, s))
			abort();
	}
	memset(&f, 0, sizeof(f));
	memcpy(f.etag, "\"0123456789abcdef0123456789abcdef\"", 35);
	f.mtime = 784111777;
	(void)relay_web_not_modified(&f, s, NULL);
	(void)relay_web_not_modified(&f, NULL, s);
	free(s);
	return 0;
}
