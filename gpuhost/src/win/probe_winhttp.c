/* probe_winhttp.c -- health probe with WinHTTP; see probe.h. */
#include <windows.h>
#include <winhttp.h>
#include <stdio.h>
#include <stdlib.h>

#include "../probe.h"
#include "wstr.h"

int
gpuhost_probe_global_init(void)
{
	return 0;
}

int
gpuhost_probe_http(const char *host, uint16_t port, const char *path,
    int timeout_ms, long *status, char *err, size_t errlen)
{
	HINTERNET s = NULL, c = NULL, r = NULL;
	wchar_t *whost = gpuhost_to_wide(host), *wpath = gpuhost_to_wide(path);
	DWORD code = 0, len = sizeof(code);
	char e[256];
	int rc = -1;

	if (whost == NULL || wpath == NULL) {
		snprintf(err, errlen, "bad host or path");
		goto out;
	}
	s = WinHttpOpen(L"tokenplace-gpuhost", WINHTTP_ACCESS_TYPE_NO_PROXY,
	    WINHTTP_NO_PROXY_NAME, WINHTTP_NO_PROXY_BYPASS, 0);
	if (s == NULL)
		goto winerr;
	(void)WinHttpSetTimeouts(s, timeout_ms, timeout_ms, timeout_ms,
	    timeout_ms);
	c = WinHttpConnect(s, whost, port, 0);
	if (c == NULL)
		goto winerr;
	r = WinHttpOpenRequest(c, L"GET", wpath, NULL, WINHTTP_NO_REFERER,
	    WINHTTP_DEFAULT_ACCEPT_TYPES, 0);
	if (r == NULL)
		goto winerr;
	if (!WinHttpSendRequest(r, WINHTTP_NO_ADDITIONAL_HEADERS, 0,
	    WINHTTP_NO_REQUEST_DATA, 0, 0, 0) ||
	    !WinHttpReceiveResponse(r, NULL))
		goto winerr;
	if (!WinHttpQueryHeaders(r, WINHTTP_QUERY_STATUS_CODE |
	    WINHTTP_QUERY_FLAG_NUMBER, WINHTTP_HEADER_NAME_BY_INDEX, &code,
	    &len, WINHTTP_NO_HEADER_INDEX))
		goto winerr;
	*status = (long)code;
	rc = 0;
	goto out;
winerr:
	snprintf(err, errlen, "%s", gpuhost_win_error(GetLastError(), e,
	    sizeof(e)));
out:
	if (r != NULL)
		WinHttpCloseHandle(r);
	if (c != NULL)
		WinHttpCloseHandle(c);
	if (s != NULL)
		WinHttpCloseHandle(s);
	free(whost);
	free(wpath);
	return rc;
}
