/*
 * upstream_internal.h -- what the files of upstream/ share and nothing
 * outside upstream/ may include: the forwarder's struct, the libcurl
 * function table (libcurl.c), and the calls between the four files
 * (upstream.c: new/free/metrics and the options of every transfer;
 * libcurl.c: loading; forward.c: one forwarded request; health.c: the
 * background check). curl/curl.h reaches no file outside upstream/.
 */
#ifndef RELAY_UPSTREAM_INTERNAL_H
#define RELAY_UPSTREAM_INTERNAL_H

/* Calls go through the table below, not through curl.h's setopt macros. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "upstream/circuit.h"
#include "upstream/http_probe.h"
#include "upstream/upstream.h"
#include "upstream/upstream_rules.h"

struct relay_fwd_handle;		/* a pooled transfer (forward.c) */

/* The upstream metric families (upstream.c registers them). */
struct relay_upstream_metrics {
	struct tp_counter *requests;		/* {route,status} */
	struct tp_counter *errors;		/* {kind} */
	struct tp_histogram *duration;		/* {route} */
	struct tp_histogram *first_byte;	/* {route} */
	struct tp_counter_child *bytes_sent;
	struct tp_counter_child *bytes_received;
	struct tp_counter_child *conns_opened;
	struct tp_counter_child *circuit_opens;
	struct tp_counter_child *checks_ok;
	struct tp_counter_child *checks_fail;
	struct tp_gauge_child *circuit[3];	/* closed, open, half_open */
	struct tp_gauge_child *health[3];	/* up, down, unknown */
};

/* The forwarder: one per relay, shared by every worker thread. */
struct relay_upstream {
	struct relay_app *app;
	const struct relay_settings *s;
	struct relay_fwd_prefixes prefixes;
	char base[RELAY_UPSTREAM_URL_SIZE];
	char health_url[RELAY_HEALTH_URL_SIZE];
	/* The two above as logs and /healthz show them (no password). */
	char base_shown[RELAY_UPSTREAM_URL_SHOWN_SIZE];
	char health_url_shown[RELAY_HEALTH_URL_SHOWN_SIZE];
	char host_line[300];		/* "Host: ..." or "" */
	int health_idx;

	pthread_mutex_t pool_lock;
	struct relay_fwd_handle *pool;	/* forward.c's */

	_Atomic long open_conns;
	_Atomic long in_flight;

	/* lock guards the circuit and the status fields below */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct relay_circuit circuit;
	uint64_t circuit_opens_seen;
	/*
	 * Closed with no failure counted (or disabled): a request's admission
	 * and its success change nothing, so they skip the lock.
	 */
	_Atomic bool circuit_quiet;
	bool first_done;
	int64_t last_check_unix_ms;
	int64_t last_error_unix_ms;
	char last_error[TP_HEALTH_REASON_MAX];	/* a health check's reason */

	_Atomic bool stop;
	pthread_t thread;
	bool thread_started;
	struct relay_probe_url probe_url;	/* host "" for https:// */
	CURLM *hmulti;			/* https:// checks only, made at first use */
	CURL *heasy;

	struct relay_upstream_metrics m;
};

/* ---- libcurl.c ---------------------------------------------------------- */

/* The libcurl functions upstream/ calls, resolved from RELAY_LIBCURL. */
struct relay_libcurl_api {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int,
	    int, int *);
	CURLMcode (*multi_wakeup)(CURLM *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
};

/* Valid only after relay_libcurl_ready() returned true. */
extern struct relay_libcurl_api relay_libcurl;

/*
 * Loads libcurl on first use (thread-safe, once). Returns false, logged
 * once, when it cannot be had; relay_libcurl_error() then says why.
 */
bool relay_libcurl_ready(void);

/* Why loading failed ("" before a failed load); static storage. */
const char *relay_libcurl_error(void);

/*
 * The library to load (RELAY_LIBCURL), instead of "libcurl.so.4". The
 * string must outlive the process's forwarding; call it before any
 * thread forwards (relay_upstream_new() does).
 */
void relay_libcurl_set_name(const char *name);

/* ---- upstream.c --------------------------------------------------------- */

/*
 * Options every transfer to u shares (forwarded or health check): no
 * signals, HTTP/1.1, http/https only, no proxy, counted sockets, u's
 * connect timeout. errbuf (CURL_ERROR_SIZE) may be NULL.
 */
void relay_upstream_common_options(struct relay_upstream *u, CURL *e,
    char *errbuf);

/*
 * Publishes the circuit's state in the gauges and the quiet flag, counts
 * and logs an opening. Called with u->lock held after anything that may
 * move the circuit.
 */
void relay_upstream_circuit_changed(struct relay_upstream *u);

/* ---- forward.c ---------------------------------------------------------- */

/* Frees every pooled transfer; no request may be forwarding. */
void relay_upstream_pool_free(struct relay_upstream *u);

/* ---- health.c ----------------------------------------------------------- */

/* "up", "down", "unknown": the health gauge's states, in its order. */
extern const char *const relay_upstream_health_state_names[3];

/*
 * Stops the health thread if it runs (interrupting a check), waits for
 * it, and frees the https:// check's handles.
 */
void relay_upstream_health_stop(struct relay_upstream *u);

#endif /* RELAY_UPSTREAM_INTERNAL_H */
