/*
 * fuzz_reqline.c -- libFuzzer target for what the relay reads of a request
 * civetweb refused (relay/src/http/reqline.c) and for the header count rule of
 * relay/src/http/framing.c. The input is split at its first two NUL bytes into
 * a method, a target and header lines (one per LF); method and target are
 * each copied to a heap block of exactly their length plus the NUL, so
 * ASan catches any read past the NUL (civetweb's strings end at the end
 * of a head; a 0xfe first byte passes a NULL method, as after a reset).
 * Properties checked on every input:
 *   - a kept method is 1-16 token characters and a prefix of the input;
 *   - a kept path starts with '/', is 1-512 bytes of 0x21-0x7e without
 *     '?' or '#', and is a prefix of the target;
 *   - the answer is true exactly when both were kept;
 *   - no read past either string's NUL (ASan);
 *   - the header count verdict is TOO_MANY exactly above max_headers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/framing.h"
#include "http/reqline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
dup_exact(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void
check_method(const char *kept, const char *in)
{
	size_t n = strlen(kept);

	if (n == 0)
		return;
	if (n > RELAY_REQLINE_METHOD_MAX || strncmp(kept, in, n) != 0 ||
	    in[n] != '\0')
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)kept[i];

		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
			abort();
	}
}

static void
check_path(const char *kept, const char *in)
{
	size_t n = strlen(kept);

	if (n == 0)
		return;
	if (kept[0] != '/' || n > RELAY_REQLINE_PATH_MAX ||
	    strncmp(kept, in, n) != 0 ||
	    (in[n] != '\0' && in[n] != '?' && in[n] != '#'))
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)kept[i];

		if (c < 0x21 || c > 0x7e || c == '?' || c == '#')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;
	const uint8_t *z1 = memchr(data, 0, size);
	const uint8_t *t = z1 ? z1 + 1 : end;
	const uint8_t *z2 = memchr(t, 0, (size_t)(end - t));
	const uint8_t *h = z2 ? z2 + 1 : end;
	char *method = dup_exact(data, (size_t)((z1 ? z1 : end) - data));
	char *target = dup_exact(t, (size_t)((z2 ? z2 : end) - t));
	struct relay_reqline rl;
	struct relay_framing f;
	bool both;
	unsigned lines = 0;

	both = relay_reqline_copy(&rl, size > 0 && data[0] == 0xfe ? NULL :
	    method, target);
	check_method(rl.method, method);
	check_path(rl.path, target);
	if (both != (rl.method[0] != '\0' && rl.path[0] != '\0'))
		abort();
	if (strcmp(relay_reqline_or_dash(rl.path), rl.path[0] ? rl.path : "-"))
		abort();

	/* one header per LF in the rest; the limit from the first byte */
	memset(&f, 0, sizeof(f));
	f.max_headers = size > 0 ? data[0] % (RELAY_FRAMING_MAX_HEADERS + 1) : 0;
	for (const uint8_t *p = h; p < end; p++) {
		if (*p == '\n') {
			relay_framing_add(&f, "X-H", "v");
			lines++;
		}
	}
	if ((relay_framing_verdict(&f) == RELAY_FRAMING_TOO_MANY_HEADERS) !=
	    (f.max_headers > 0 && lines > f.max_headers))
		abort();
	free(method);
	free(target);
	return 0;
}
