/* eventlog.c -- Windows Event Log source; see eventlog.h. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

#include "eventlog.h"
#include "../wstr.h"

#define EVENTLOG_KEY L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\"

static HANDLE source_handle;

static wchar_t *
key_for(const char *source)
{
	wchar_t *ws = gpuhost_to_wide(source), *k;
	size_t n;

	if (ws == NULL)
		return NULL;
	n = wcslen(EVENTLOG_KEY) + wcslen(ws) + 1;
	k = calloc(n, sizeof(*k));
	if (k != NULL)
		swprintf(k, n, L"%ls%ls", EVENTLOG_KEY, ws);
	free(ws);
	return k;
}

int
gpuhost_eventlog_register(const char *source, const char *exe, char *err,
    size_t errlen)
{
	wchar_t *key = key_for(source), *wexe = gpuhost_to_wide(exe);
	HKEY h = NULL;
	DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE |
	    EVENTLOG_INFORMATION_TYPE;
	LSTATUS rc = ERROR_OUTOFMEMORY;

	if (key != NULL && wexe != NULL) {
		rc = RegCreateKeyExW(HKEY_LOCAL_MACHINE, key, 0, NULL, 0,
		    KEY_SET_VALUE, NULL, &h, NULL);
		if (rc == ERROR_SUCCESS)
			rc = RegSetValueExW(h, L"EventMessageFile", 0, REG_EXPAND_SZ,
			    (const BYTE *)wexe,
			    (DWORD)((wcslen(wexe) + 1) * sizeof(wchar_t)));
		if (rc == ERROR_SUCCESS)
			rc = RegSetValueExW(h, L"TypesSupported", 0, REG_DWORD,
			    (const BYTE *)&types, sizeof(types));
		if (h != NULL)
			RegCloseKey(h);
	}
	free(key);
	free(wexe);
	if (rc != ERROR_SUCCESS) {
		gpuhost_win_error((unsigned long)rc, err, errlen);
		return -1;
	}
	return 0;
}

int
gpuhost_eventlog_unregister(const char *source)
{
	wchar_t *key = key_for(source);
	LSTATUS rc = key != NULL ? RegDeleteKeyW(HKEY_LOCAL_MACHINE, key) :
	    ERROR_OUTOFMEMORY;

	free(key);
	return rc == ERROR_SUCCESS || rc == ERROR_FILE_NOT_FOUND ? 0 : -1;
}

void
gpuhost_eventlog_open(const char *source)
{
	wchar_t *ws = gpuhost_to_wide(source);

	if (ws != NULL && source_handle == NULL)
		source_handle = RegisterEventSourceW(NULL, ws);
	free(ws);
}

void
gpuhost_eventlog_close(void)
{
	if (source_handle != NULL)
		DeregisterEventSource(source_handle);
	source_handle = NULL;
}

void
gpuhost_eventlog_sink(enum tp_log_level level, const char *event,
    const char *line)
{
	wchar_t *w;
	LPCWSTR strs[1];
	WORD type = EVENTLOG_INFORMATION_TYPE;
	DWORD id = 1;

	(void)event;
	if (source_handle == NULL)
		return;
	if (level >= TP_LOG_ERROR) {
		type = EVENTLOG_ERROR_TYPE;
		id = 3;
	} else if (level >= TP_LOG_WARNING) {
		type = EVENTLOG_WARNING_TYPE;
		id = 2;
	}
	if ((w = gpuhost_to_wide(line)) == NULL)
		return;
	strs[0] = w;
	(void)ReportEventW(source_handle, type, 0, id, NULL, 1, 0, strs, NULL);
	free(w);
}
