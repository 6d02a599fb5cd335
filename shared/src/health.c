/*
 * health.c -- lifecycle and debounced readiness checks.
 *
 * One mutex guards the check table; the lifecycle is an atomic so the hot
 * /livez and /healthz paths can read it without taking the lock.
 */
#include "tokenplace/health.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"

struct health_check {
	struct tp_health_check_status st;
	unsigned fail_threshold;
	unsigned ok_threshold;
	uint32_t consecutive_ok;
	tp_health_probe_fn probe;
	void *arg;
};

struct tp_health {
	_Atomic int lifecycle;
	tp_mutex lock;
	size_t ncheck;
	struct health_check checks[TP_HEALTH_MAX_CHECKS];
};

static int64_t
now_unix_ms(void)
{
	struct timespec ts;

	tp_compat_wallclock(&ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct tp_health *
tp_health_new(void)
{
	struct tp_health *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	atomic_init(&h->lifecycle, TP_LIFECYCLE_STARTING);
#ifdef _WIN32
	InitializeSRWLock(&h->lock);
#else
	pthread_mutex_init(&h->lock, NULL);
#endif
	return h;
}

void
tp_health_free(struct tp_health *h)
{
	if (h == NULL)
		return;
#ifndef _WIN32
	pthread_mutex_destroy(&h->lock);
#endif
	free(h);
}

bool
tp_health_transition(struct tp_health *h, enum tp_lifecycle to)
{
	int cur = atomic_load(&h->lifecycle);

	while (cur < (int)to) {
		if (atomic_compare_exchange_weak(&h->lifecycle, &cur, (int)to))
			return true;
	}
	return false;
}

enum tp_lifecycle
tp_health_lifecycle(const struct tp_health *h)
{
	return (enum tp_lifecycle)atomic_load(
	    &((struct tp_health *)(uintptr_t)h)->lifecycle);
}

const char *
tp_lifecycle_name(enum tp_lifecycle s)
{
	switch (s) {
	case TP_LIFECYCLE_STARTING:
		return "starting";
	case TP_LIFECYCLE_READY:
		return "ready";
	case TP_LIFECYCLE_DRAINING:
		return "draining";
	case TP_LIFECYCLE_STOPPED:
		return "stopped";
	}
	return "unknown";
}

const char *
tp_check_outcome_name(enum tp_check_outcome o)
{
	switch (o) {
	case TP_CHECK_OK:
		return "ok";
	case TP_CHECK_WARN:
		return "warn";
	case TP_CHECK_FAIL:
		return "fail";
	case TP_CHECK_UNKNOWN:
		break;
	}
	return "unknown";
}

int
tp_health_add_check(struct tp_health *h, const char *name, bool required,
    unsigned fail_threshold, unsigned ok_threshold, tp_health_probe_fn probe,
    void *arg)
{
	struct health_check *c;
	int idx = -1;

	if (name == NULL || strlen(name) >= TP_HEALTH_NAME_MAX)
		return -1;
	tp_mutex_lock(&h->lock);
	if (h->ncheck >= TP_HEALTH_MAX_CHECKS)
		goto out;
	for (size_t i = 0; i < h->ncheck; i++) {
		if (strcmp(h->checks[i].st.name, name) == 0)
			goto out;
	}
	c = &h->checks[h->ncheck];
	memset(c, 0, sizeof(*c));
	strcpy(c->st.name, name);
	c->st.required = required;
	c->st.outcome = TP_CHECK_UNKNOWN;
	c->st.since_unix_ms = now_unix_ms();
	c->fail_threshold = fail_threshold ? fail_threshold : 1;
	c->ok_threshold = ok_threshold ? ok_threshold : 1;
	c->probe = probe;
	c->arg = arg;
	idx = (int)h->ncheck++;
out:
	tp_mutex_unlock(&h->lock);
	return idx;
}

bool
tp_health_report(struct tp_health *h, int idx, enum tp_check_outcome raw,
    const char *reason)
{
	struct health_check *c;
	enum tp_check_outcome next;
	bool changed = false;

	tp_mutex_lock(&h->lock);
	if (idx < 0 || (size_t)idx >= h->ncheck)
		goto out;
	c = &h->checks[idx];
	next = c->st.outcome;
	if (raw == TP_CHECK_FAIL) {
		c->consecutive_ok = 0;
		c->st.consecutive_failures++;
		/* An unknown check takes its first verdict at once. */
		if (c->st.consecutive_failures >= c->fail_threshold ||
		    c->st.outcome == TP_CHECK_UNKNOWN)
			next = TP_CHECK_FAIL;
	} else if (raw == TP_CHECK_OK || raw == TP_CHECK_WARN) {
		c->st.consecutive_failures = 0;
		c->consecutive_ok++;
		if (c->st.outcome != TP_CHECK_FAIL ||
		    c->consecutive_ok >= c->ok_threshold)
			next = raw;
	}
	/* The reason always describes the latest raw result. */
	strncpy(c->st.reason, reason ? reason : "", sizeof(c->st.reason) - 1);
	c->st.reason[sizeof(c->st.reason) - 1] = '\0';
	if (next != c->st.outcome) {
		c->st.outcome = next;
		c->st.since_unix_ms = now_unix_ms();
		changed = true;
	}
out:
	tp_mutex_unlock(&h->lock);
	return changed;
}

void
tp_health_run_checks(struct tp_health *h)
{
	size_t n;

	tp_mutex_lock(&h->lock);
	n = h->ncheck;
	tp_mutex_unlock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		tp_health_probe_fn probe;
		void *arg;
		char reason[TP_HEALTH_REASON_MAX] = "";
		enum tp_check_outcome raw;

		tp_mutex_lock(&h->lock);
		probe = h->checks[i].probe;
		arg = h->checks[i].arg;
		tp_mutex_unlock(&h->lock);
		if (probe == NULL)
			continue;
		raw = probe(arg, reason, sizeof(reason));
		(void)tp_health_report(h, (int)i, raw, reason);
	}
}

size_t
tp_health_snapshot(const struct tp_health *ch,
    struct tp_health_check_status *out, size_t max)
{
	struct tp_health *h = (struct tp_health *)(uintptr_t)ch;
	size_t n;

	tp_mutex_lock(&h->lock);
	n = h->ncheck;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = h->checks[i].st;
	tp_mutex_unlock(&h->lock);
	return n;
}

bool
tp_health_is_ready(const struct tp_health *ch)
{
	struct tp_health *h = (struct tp_health *)(uintptr_t)ch;
	bool ready;

	if (tp_health_lifecycle(h) != TP_LIFECYCLE_READY)
		return false;
	ready = true;
	tp_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->ncheck; i++) {
		if (h->checks[i].st.required &&
		    h->checks[i].st.outcome == TP_CHECK_FAIL)
			ready = false;
	}
	tp_mutex_unlock(&h->lock);
	return ready;
}
