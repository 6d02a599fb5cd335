/*
 * wstr.h -- UTF-8 <-> UTF-16 at the Win32 API boundary, and Win32 error
 * text. Windows only (implemented in win/wstr.c); beside os.h so that
 * portable files with a Windows branch (pyembed.c, gpu_nvml.c) include
 * it without reaching into win/.
 */
#ifndef GPUHOST_WSTR_H
#define GPUHOST_WSTR_H

#include <stddef.h>
#include <wchar.h>

/* Returns a malloc'd UTF-16 copy of s (caller frees), or NULL. */
wchar_t *gpuhost_to_wide(const char *s);

/* Converts w into buf as UTF-8; 0, or -1 when it does not fit. */
int gpuhost_to_utf8(const wchar_t *w, char *buf, size_t len);

/* Message text for a Win32 error code, "(code N)" appended; returns buf. */
char *gpuhost_win_error(unsigned long code, char *buf, size_t len);

#endif
