/* probe_winhttp.c -- health probe with WinHTTP; see probe.h. */
#include <windows.h>
#include <winhttp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../probe.h"
#include "../wstr.h"

int
gpuhost_probe_global_init(void)
{
	return 0;
}

/* One GET on an open session; 0 with *status, or -1 with err. */
static int
get_status(const wchar_t *host, INTERNET_PORT port, const wchar_t *path,
    bool secure, DWORD access, int timeout_ms, long *status, char *err,
    size_t errlen)
{
	HINTERNET s = NULL, c = NULL, r = NULL;
	DWORD code = 0, len = sizeof(code);
	char e[256];
	int rc = -1;

	s = WinHttpOpen(L"tokenplace-gpuhost", access, WINHTTP_NO_PROXY_NAME,
	    WINHTTP_NO_PROXY_BYPASS, 0);
	if (s == NULL)
		goto winerr;
	(void)WinHttpSetTimeouts(s, timeout_ms, timeout_ms, timeout_ms,
	    timeout_ms);
	c = WinHttpConnect(s, host, port, 0);
	if (c == NULL)
		goto winerr;
	r = WinHttpOpenRequest(c, L"GET", path, NULL, WINHTTP_NO_REFERER,
	    WINHTTP_DEFAULT_ACCEPT_TYPES, secure ? WINHTTP_FLAG_SECURE : 0);
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
	return rc;
}

int
gpuhost_probe_http(const char *host, uint16_t port, const char *path,
    int timeout_ms, long *status, char *err, size_t errlen)
{
	wchar_t *whost = gpuhost_to_wide(host), *wpath = gpuhost_to_wide(path);
	int rc = -1;

	if (whost == NULL || wpath == NULL)
		snprintf(err, errlen, "bad host or path");
	else
		rc = get_status(whost, port, wpath, false,
		    WINHTTP_ACCESS_TYPE_NO_PROXY, timeout_ms, status, err,
		    errlen);
	free(whost);
	free(wpath);
	return rc;
}

int
gpuhost_probe_url(const char *url, int timeout_ms, long *status, char *err,
    size_t errlen)
{
	wchar_t *wurl = gpuhost_to_wide(url), *host = NULL;
	URL_COMPONENTS uc;
	char e[256];
	int rc = -1;

	if (wurl == NULL) {
		snprintf(err, errlen, "bad URL");
		return -1;
	}
	memset(&uc, 0, sizeof(uc));
	uc.dwStructSize = sizeof(uc);
	uc.dwHostNameLength = (DWORD)-1;
	uc.dwUrlPathLength = (DWORD)-1;
	uc.dwSchemeLength = (DWORD)-1;
	if (!WinHttpCrackUrl(wurl, 0, 0, &uc)) {
		snprintf(err, errlen, "bad URL: %s",
		    gpuhost_win_error(GetLastError(), e, sizeof(e)));
		goto out;
	}
	host = calloc(uc.dwHostNameLength + 1, sizeof(*host));
	if (host == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(host, uc.lpszHostName, uc.dwHostNameLength * sizeof(*host));
	/* The path runs to the end of the URL (no query is ever added). */
	rc = get_status(host, uc.nPort, uc.dwUrlPathLength > 0 ?
	    uc.lpszUrlPath : L"/", uc.nScheme == INTERNET_SCHEME_HTTPS,
	    WINHTTP_ACCESS_TYPE_DEFAULT_PROXY, timeout_ms, status, err, errlen);
out:
	free(host);
	free(wurl);
	return rc;
}
