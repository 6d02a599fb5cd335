/* wstr.c -- UTF-8 <-> UTF-16 conversions and Win32 error text. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

#include "../wstr.h"

wchar_t *
gpuhost_to_wide(const char *s)
{
	int n;
	wchar_t *w;

	if (s == NULL)
		return NULL;
	n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
	if (n <= 0)
		return NULL;
	w = calloc((size_t)n, sizeof(*w));
	if (w == NULL)
		return NULL;
	if (MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) != n) {
		free(w);
		return NULL;
	}
	return w;
}

int
gpuhost_to_utf8(const wchar_t *w, char *buf, size_t len)
{
	int n;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if (w == NULL)
		return 0;
	n = WideCharToMultiByte(CP_UTF8, 0, w, -1, buf,
	    len > 0x7fffffff ? 0x7fffffff : (int)len, NULL, NULL);
	if (n <= 0) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

char *
gpuhost_win_error(unsigned long code, char *buf, size_t len)
{
	wchar_t w[256];
	char text[400];
	DWORD n;

	n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM |
	    FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)code, 0, w,
	    (DWORD)(sizeof(w) / sizeof(w[0])), NULL);
	while (n > 0 && (w[n - 1] == L'\r' || w[n - 1] == L'\n' ||
	    w[n - 1] == L' ' || w[n - 1] == L'.'))
		w[--n] = L'\0';
	if (n == 0 || gpuhost_to_utf8(w, text, sizeof(text)) != 0)
		snprintf(buf, len, "Windows error %lu", code);
	else
		snprintf(buf, len, "%s (code %lu)", text, code);
	return buf;
}
