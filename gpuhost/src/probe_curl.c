/* probe_curl.c -- health probe with libcurl; see probe.h. */
#include <curl/curl.h>
#include <stdio.h>

#include "probe.h"

int
gpuhost_probe_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* The body is not needed: discard it. */
static size_t
discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

int
gpuhost_probe_url(const char *url, int timeout_ms, long *status, char *err,
    size_t errlen)
{
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (c == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	(void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		curl_easy_cleanup(c);
		return -1;
	}
	*status = 0;
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	return 0;
}

int
gpuhost_probe_http(const char *host, uint16_t port, const char *path,
    int timeout_ms, long *status, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	char url[512];
	CURLcode rc;

	if (c == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	if (snprintf(url, sizeof(url), "http://%s:%u%s", host, (unsigned)port,
	    path) >= (int)sizeof(url)) {
		curl_easy_cleanup(c);
		snprintf(err, errlen, "URL too long");
		return -1;
	}
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	(void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	(void)curl_easy_setopt(c, CURLOPT_PROXY, "");
	(void)curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		curl_easy_cleanup(c);
		return -1;
	}
	*status = 0;
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	return 0;
}
