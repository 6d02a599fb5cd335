/*
 * probe.h -- one HTTP GET of the script's health endpoint. libcurl on
 * POSIX (probe_curl.c, the only curl user in gpuhost), WinHTTP on Windows
 * (win/probe_winhttp.c).
 */
#ifndef GPUHOST_PROBE_H
#define GPUHOST_PROBE_H

#include <stddef.h>
#include <stdint.h>

/* Once per process, before threads start; 0 or -1. */
int gpuhost_probe_global_init(void);

/*
 * GETs http://host:port/path with a total timeout. Returns 0 when any
 * HTTP status arrived (*status set; 2xx counts as healthy for callers),
 * -1 when none did (reason in err).
 */
int gpuhost_probe_http(const char *host, uint16_t port, const char *path,
    int timeout_ms, long *status, char *err, size_t errlen);

/*
 * GETs an http:// or https:// URL (TLS verified, the system's proxy
 * settings apply) with a total timeout; same results as above. For the
 * relay, which may be anywhere; the health probe above is loopback only.
 */
int gpuhost_probe_url(const char *url, int timeout_ms, long *status,
    char *err, size_t errlen);

#endif
