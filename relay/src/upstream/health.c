/*
 * health.c -- the background health check of the GPU host: a thread that
 * checks on an interval (a plain socket for http://, libcurl for
 * https://), reports to the readiness check, and drives the circuit
 * breaker (circuit.c) and the health gauges; and what /healthz shows.
 */
#include "upstream/upstream_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/clock.h"
#include "settings.h"
#include "tokenplace/health.h"
#include "tokenplace/log.h"
#include "tokenplace/metrics.h"

#define HEALTH_BODY_MAX		65536	/* a health answer is read and dropped */
#define HEALTH_SLICE_MS		200

static int64_t
unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t
health_sink(char *buf, size_t size, size_t nitems, void *arg)
{
	size_t *got = arg;

	(void)buf;
	*got += size * nitems;
	return *got > HEALTH_BODY_MAX ? 0 : size * nitems;
}

/*
 * The check of an https:// upstream: libcurl does the TLS. Returns true
 * when healthy.
 */
static bool
health_probe_tls(struct relay_upstream *u, char *reason, size_t len)
{
	CURL *e;
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode rc = CURLE_OK;
	CURLMsg *msg;
	size_t got = 0;
	long status = 0;
	int left, running = 1;

	if (!relay_libcurl_ready()) {
		snprintf(reason, len, "cannot check https://: %.120s",
		    relay_libcurl_error());
		return false;
	}
	if (u->hmulti == NULL) {
		u->hmulti = relay_libcurl.multi_init();
		u->heasy = relay_libcurl.easy_init();
		if (u->hmulti == NULL || u->heasy == NULL) {
			snprintf(reason, len, "cannot start a health check");
			return false;
		}
	}
	e = u->heasy;
	relay_libcurl.easy_reset(e);
	relay_upstream_common_options(u, e, errbuf);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_URL, u->health_url);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    (long)u->s->upstream_health_timeout_ms);
	if (u->s->upstream_health_timeout_ms < u->s->upstream_connect_timeout_ms)
		(void)relay_libcurl.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)u->s->upstream_health_timeout_ms);
	/* Resolve the GPU host's name afresh on every check. */
	(void)relay_libcurl.easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_WRITEFUNCTION, health_sink);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_WRITEDATA, &got);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_USERAGENT,
	    "tokenplace-relay-health");
	if (u->host_line[0] != '\0')
		hdrs = relay_libcurl.slist_append(NULL, u->host_line);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	if (relay_libcurl.multi_add_handle(u->hmulti, e) != CURLM_OK) {
		snprintf(reason, len, "cannot start a health check");
		relay_libcurl.slist_free_all(hdrs);
		return false;
	}
	while (running > 0 && !atomic_load(&u->stop)) {
		if (relay_libcurl.multi_perform(u->hmulti, &running) != CURLM_OK)
			break;
		if (running > 0)
			(void)relay_libcurl.multi_poll(u->hmulti, NULL, 0,
			    HEALTH_SLICE_MS, NULL);
	}
	if (running > 0)
		rc = CURLE_ABORTED_BY_CALLBACK;
	while ((msg = relay_libcurl.multi_info_read(u->hmulti, &left)) != NULL) {
		if (msg->msg == CURLMSG_DONE)
			rc = msg->data.result;
	}
	(void)relay_libcurl.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	(void)relay_libcurl.multi_remove_handle(u->hmulti, e);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
	(void)relay_libcurl.easy_setopt(e, CURLOPT_HTTPHEADER,
	    (struct curl_slist *)NULL);
	relay_libcurl.slist_free_all(hdrs);

	if (rc == CURLE_COULDNT_RESOLVE_HOST) {
		/* After "https://" and any userinfo, which the reason never shows. */
		const char *host = u->base_shown + 8;
		const char *at = strchr(host, '@');

		if (at != NULL && at < host + strcspn(host, "/"))
			host = at + 1;

		snprintf(reason, len, "%.*s does not resolve",
		    (int)strcspn(host, "/"), host);
		return false;
	}
	if (rc != CURLE_OK) {
		snprintf(reason, len, "GET %.40s: %.110s", u->s->upstream_health_path,
		    errbuf[0] ? errbuf : relay_libcurl.easy_strerror(rc));
		return false;
	}
	if (status < 200 || status > 299) {
		snprintf(reason, len, "GET %.40s answered %ld",
		    u->s->upstream_health_path, status);
		return false;
	}
	reason[0] = '\0';
	return true;
}

/* One health check: resolve + GET. Returns true when healthy. */
static bool
health_probe(struct relay_upstream *u, char *reason, size_t len)
{
	const struct relay_settings *s = u->s;
	struct relay_probe_opts o;
	int status = 0;

	if (u->probe_url.host[0] == '\0')
		return health_probe_tls(u, reason, len);
	memset(&o, 0, sizeof(o));
	o.timeout_ms = (long)s->upstream_health_timeout_ms;
	o.connect_timeout_ms = (long)s->upstream_connect_timeout_ms;
	o.host_header = s->upstream_host_header != NULL &&
	    s->upstream_host_header[0] != '\0' ? s->upstream_host_header : NULL;
	o.user_agent = "tokenplace-relay-health";
	/* Only the status line and headers are read. */
	o.max_response_bytes = (size_t)s->upstream_max_header_bytes;
	o.stop = &u->stop;
	o.max_lookups = (unsigned)s->upstream_health_max_lookups;
	switch (relay_http_probe(&u->probe_url, &o, &status, reason, len)) {
	case RELAY_PROBE_OK:
		reason[0] = '\0';
		return true;
	case RELAY_PROBE_STATUS:
		snprintf(reason, len, "GET %.40s answered %d",
		    s->upstream_health_path, status);
		return false;
	case RELAY_PROBE_RESOLVE:
		/* The reason already says "<host> does not resolve". */
		return false;
	case RELAY_PROBE_LOOKUPS_BUSY:
		relay_app_count_limit(u->app, "upstream_health_lookups");
		return false;
	default:
		break;
	}
	/* Kept short: the reason ends up in /healthz and the logs. */
	if (reason[0] != '\0') {
		char detail[TP_HEALTH_REASON_MAX];

		snprintf(detail, sizeof(detail), "%s", reason);
		snprintf(reason, len, "GET %.40s: %.110s",
		    s->upstream_health_path, detail);
	}
	return false;
}

static enum tp_check_outcome
health_outcome(struct relay_upstream *u, struct tp_health_check_status *out)
{
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	size_t n = tp_health_snapshot(u->app->health, st, TP_HEALTH_MAX_CHECKS);

	if (u->health_idx < 0 || (size_t)u->health_idx >= n ||
	    u->health_idx >= TP_HEALTH_MAX_CHECKS) {
		memset(out, 0, sizeof(*out));
		return TP_CHECK_UNKNOWN;
	}
	*out = st[u->health_idx];
	return out->outcome;
}

static int
health_state_index(enum tp_check_outcome o)
{
	if (o == TP_CHECK_OK || o == TP_CHECK_WARN)
		return 0;
	if (o == TP_CHECK_FAIL)
		return 1;
	return 2;
}

const char *const relay_upstream_health_state_names[3] = { "up", "down",
    "unknown" };

static void
health_check_once(struct relay_upstream *u)
{
	struct tp_health_check_status st;
	char reason[TP_HEALTH_REASON_MAX];
	enum tp_check_outcome now_state;
	bool ok, changed;
	int idx;

	ok = health_probe(u, reason, sizeof(reason));
	if (atomic_load(&u->stop))
		return;		/* interrupted: no verdict */
	changed = tp_health_report(u->app->health, u->health_idx,
	    ok ? TP_CHECK_OK : TP_CHECK_FAIL, reason);
	now_state = health_outcome(u, &st);
	idx = health_state_index(now_state);
	tp_counter_child_add(ok ? u->m.checks_ok : u->m.checks_fail, 1);

	pthread_mutex_lock(&u->lock);
	u->last_check_unix_ms = unix_ms();
	if (!ok) {
		snprintf(u->last_error, sizeof(u->last_error), "%s", reason);
		u->last_error_unix_ms = u->last_check_unix_ms;
	}
	if (!ok && now_state == TP_CHECK_FAIL)
		relay_circuit_health(&u->circuit, false, relay_mono_ms());
	else if (changed && idx == 0)
		relay_circuit_health(&u->circuit, true, relay_mono_ms());
	relay_upstream_circuit_changed(u);
	for (int i = 0; i < 3; i++)
		tp_gauge_child_set(u->m.health[i], i == idx ? 1.0 : 0.0);
	pthread_mutex_unlock(&u->lock);

	if (changed)
		TP_LOG(idx == 0 ? TP_LOG_INFO : TP_LOG_WARNING,
		    "upstream.health_changed",
		    TP_LSTR("state", relay_upstream_health_state_names[idx]),
		    TP_LSTR("url", u->health_url_shown),
		    TP_LSTR("reason", reason),
		    TP_LINT("consecutive_failures", st.consecutive_failures));
}

static void *
health_main(void *arg)
{
	struct relay_upstream *u = arg;
	long interval_ms = (long)u->s->upstream_health_interval_ms;

	for (;;) {
		struct timespec until;

		health_check_once(u);
		pthread_mutex_lock(&u->lock);
		u->first_done = true;
		pthread_cond_broadcast(&u->cond);
		until = relay_mono_timespec(relay_mono_ms() + interval_ms);
		while (!atomic_load(&u->stop) &&
		    pthread_cond_timedwait(&u->cond, &u->lock, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&u->lock);
		if (atomic_load(&u->stop))
			break;
	}
	return NULL;
}

int
relay_upstream_start(struct relay_upstream *u)
{
	if (pthread_create(&u->thread, NULL, health_main, u) != 0)
		return -1;
	u->thread_started = true;
	return 0;
}

bool
relay_upstream_wait_first_check(struct relay_upstream *u, long timeout_ms)
{
	struct timespec until;
	bool done;

	until = relay_mono_timespec(relay_mono_ms() + timeout_ms);
	pthread_mutex_lock(&u->lock);
	while (!u->first_done && u->thread_started &&
	    pthread_cond_timedwait(&u->cond, &u->lock, &until) != ETIMEDOUT)
		;
	done = u->first_done;
	pthread_mutex_unlock(&u->lock);
	return done;
}

void
relay_upstream_get_status(struct relay_upstream *u,
    struct relay_upstream_status *out)
{
	struct tp_health_check_status st;
	enum tp_check_outcome o = health_outcome(u, &st);

	memset(out, 0, sizeof(*out));
	out->state = relay_upstream_health_state_names[health_state_index(o)];
	out->since_unix_ms = st.since_unix_ms;
	out->consecutive_failures = st.consecutive_failures;
	snprintf(out->health_url, sizeof(out->health_url), "%s",
	    u->health_url_shown);
	pthread_mutex_lock(&u->lock);
	out->circuit = u->circuit.enabled ?
	    relay_circuit_state_name(u->circuit.state) : "disabled";
	out->last_check_unix_ms = u->last_check_unix_ms;
	out->last_error_unix_ms = u->last_error_unix_ms;
	snprintf(out->last_error, sizeof(out->last_error), "%s", u->last_error);
	pthread_mutex_unlock(&u->lock);
}

void
relay_upstream_health_stop(struct relay_upstream *u)
{
	if (u->thread_started) {
		pthread_mutex_lock(&u->lock);
		atomic_store(&u->stop, true);
		pthread_cond_broadcast(&u->cond);
		pthread_mutex_unlock(&u->lock);
		if (u->hmulti != NULL)
			(void)relay_libcurl.multi_wakeup(u->hmulti);
		pthread_join(u->thread, NULL);
		u->thread_started = false;
	}
	if (u->heasy != NULL)
		relay_libcurl.easy_cleanup(u->heasy);
	if (u->hmulti != NULL)
		relay_libcurl.multi_cleanup(u->hmulti);
	u->heasy = NULL;
	u->hmulti = NULL;
}
