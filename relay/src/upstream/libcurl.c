/*
 * libcurl.c -- loading libcurl: dlopen() of the library at its first use
 * and the table of the functions upstream/ calls through.
 *
 * libcurl is not linked: it is loaded with dlopen() by the first forwarded
 * request (or the first check of an https:// upstream). Linking it maps
 * its whole dependency tree (OpenSSL, GnuTLS, Kerberos, LDAP, ssh2...) into
 * every relay, about 7.5 MiB of resident pages, although a relay that only
 * serves the relay protocol never forwards anything; the health check of an
 * http:// upstream uses a plain socket (http_probe.c) for the same reason.
 */
#include "upstream/upstream_internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "tokenplace/log.h"

struct relay_libcurl_api relay_libcurl;
static pthread_once_t libcurl_once = PTHREAD_ONCE_INIT;
static bool libcurl_loaded;		/* written once, under libcurl_once */
static char libcurl_error[256];
/* RELAY_LIBCURL, set by relay_upstream_new() before any thread forwards. */
static const char *libcurl_name = "libcurl.so.4";

#define LIBCURL_SYM(field, name) \
	{ #name, offsetof(struct relay_libcurl_api, field) }

static const struct {
	const char *name;
	size_t offset;
} libcurl_symbols[] = {
	LIBCURL_SYM(global_init, curl_global_init),
	LIBCURL_SYM(global_cleanup, curl_global_cleanup),
	LIBCURL_SYM(easy_init, curl_easy_init),
	LIBCURL_SYM(easy_cleanup, curl_easy_cleanup),
	LIBCURL_SYM(easy_reset, curl_easy_reset),
	LIBCURL_SYM(easy_setopt, curl_easy_setopt),
	LIBCURL_SYM(easy_getinfo, curl_easy_getinfo),
	LIBCURL_SYM(easy_strerror, curl_easy_strerror),
	LIBCURL_SYM(multi_init, curl_multi_init),
	LIBCURL_SYM(multi_cleanup, curl_multi_cleanup),
	LIBCURL_SYM(multi_add_handle, curl_multi_add_handle),
	LIBCURL_SYM(multi_remove_handle, curl_multi_remove_handle),
	LIBCURL_SYM(multi_perform, curl_multi_perform),
	LIBCURL_SYM(multi_poll, curl_multi_poll),
	LIBCURL_SYM(multi_wakeup, curl_multi_wakeup),
	LIBCURL_SYM(multi_info_read, curl_multi_info_read),
	LIBCURL_SYM(slist_append, curl_slist_append),
	LIBCURL_SYM(slist_free_all, curl_slist_free_all),
};

/*
 * Never dlclose()d: OpenSSL and friends register exit handlers that must
 * still find their code at exit.
 */
static void
libcurl_load_once(void)
{
	double t0 = relay_mono_s();
	void *dl = dlopen(libcurl_name, RTLD_NOW | RTLD_LOCAL);

	if (dl == NULL) {
		snprintf(libcurl_error, sizeof(libcurl_error), "%s", dlerror());
		goto fail;
	}
	for (size_t i = 0; i < sizeof(libcurl_symbols) /
	    sizeof(libcurl_symbols[0]); i++) {
		void *fn = dlsym(dl, libcurl_symbols[i].name);

		if (fn == NULL) {
			snprintf(libcurl_error, sizeof(libcurl_error),
			    "%s lacks %s", libcurl_name,
			    libcurl_symbols[i].name);
			goto fail;
		}
		/* POSIX makes dlsym()'s object pointer usable as a function. */
		memcpy((char *)&relay_libcurl + libcurl_symbols[i].offset, &fn,
		    sizeof(fn));
	}
	/*
	 * Worker threads run by now: libcurl >= 7.84 built with atomics
	 * (Debian's is) has a thread-safe global init, and pthread_once
	 * keeps it to one call anyway.
	 */
	if (relay_libcurl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(libcurl_error, sizeof(libcurl_error),
		    "curl_global_init failed");
		goto fail;
	}
	libcurl_loaded = true;
	TP_LOG(TP_LOG_INFO, "upstream.libcurl_loaded",
	    TP_LSTR("library", libcurl_name),
	    TP_LDBL("load_ms", (relay_mono_s() - t0) * 1000.0));
	return;
fail:
	memset(&relay_libcurl, 0, sizeof(relay_libcurl));
	TP_LOG(TP_LOG_ERROR, "upstream.libcurl_unavailable",
	    TP_LSTR("library", libcurl_name),
	    TP_LSTR("reason", libcurl_error));
}

bool
relay_libcurl_ready(void)
{
	(void)pthread_once(&libcurl_once, libcurl_load_once);
	return libcurl_loaded;
}

const char *
relay_libcurl_error(void)
{
	return libcurl_error;
}

void
relay_libcurl_set_name(const char *name)
{
	libcurl_name = name;
}

void
relay_upstream_global_cleanup(void)
{
	if (libcurl_loaded)
		relay_libcurl.global_cleanup();
}
