/*
 * model_list.c -- the model list, rendered once per cache period
 * (model_list.h).
 *
 * A build reads the store once and renders the whole body; the result
 * (body, ids for look-ups, "more") is an immutable snapshot replaced as a
 * whole. Two locks: `mu` guards the snapshot pointer and is held only to
 * copy a body or search the ids (microseconds); `build_mu` lets one thread
 * at a time read the store, so when the snapshot goes stale under load
 * the store is read once, not once per waiting worker. Lock order:
 * build_mu, then mu.
 *
 * Freshness is measured from when a build STARTED (before the store was
 * read) against when the request arrived: a snapshot serves a request if
 * started >= arrival - ttl. So a waiter that queued behind a build takes
 * its result only if that build began after the waiter arrived minus the
 * TTL, and with a TTL of 0 every answer reflects the store as it was
 * after the request arrived. A failed build is shared the same way with
 * the waiters that arrived before it started (they would have failed
 * alike), never kept for later requests.
 */
#include "v1/model_list.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenplace/metrics.h"
#include "tokenplace/proto_v1.h"

struct snap {
	char *body;
	size_t len;
	struct relay_v1_model_list ids;
	const char **idx;		/* ids.n pointers into ids.ids, sorted */
	int64_t started_ns;
};

struct relay_model_list {
	pthread_mutex_t mu;		/* snap and the failure record */
	pthread_mutex_t build_mu;	/* one store read at a time */
	relay_model_fetch_fn fetch;
	void *arg;
	int64_t ttl_ns;
	size_t max;
	struct tp_counter *reads;
	struct snap *snap;
	bool failed;			/* the last build failed */
	enum relay_v1_rc fail_rc;
	int64_t fail_started_ns;
	_Atomic uint64_t fetches;
};

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
snap_free(struct snap *s)
{
	if (s == NULL)
		return;
	free(s->body);
	free(s->idx);
	relay_v1_model_list_free(&s->ids);
	free(s);
}

static enum relay_v1_rc
fetch(struct relay_model_list *ml, size_t max, const char *only,
    size_t only_len, struct relay_v1_model_list *out)
{
	atomic_fetch_add(&ml->fetches, 1);
	if (ml->reads != NULL)
		tp_counter_inc(ml->reads, NULL);
	return ml->fetch(ml->arg, max, only, only_len, out);
}

/* An OpenAI model object, as token.place's /api/v1/models writes it. */
static cJSON *
model_object(const char *id, double created)
{
	char perm_id[TP_V1_MAX_MODEL_ID + 32];
	cJSON *o = cJSON_CreateObject(), *perms, *p;

	if (o == NULL)
		return NULL;
	snprintf(perm_id, sizeof(perm_id), "modelperm-%s", id);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "object", "model");
	cJSON_AddNumberToObject(o, "created", created);
	cJSON_AddStringToObject(o, "owned_by", "token.place");
	perms = cJSON_AddArrayToObject(o, "permission");
	p = cJSON_CreateObject();
	if (perms != NULL && p != NULL) {
		cJSON_AddStringToObject(p, "id", perm_id);
		cJSON_AddStringToObject(p, "object", "model_permission");
		cJSON_AddNumberToObject(p, "created", created);
		cJSON_AddBoolToObject(p, "allow_create_engine", 0);
		cJSON_AddBoolToObject(p, "allow_sampling", 1);
		cJSON_AddBoolToObject(p, "allow_logprobs", 1);
		cJSON_AddBoolToObject(p, "allow_search_indices", 0);
		cJSON_AddBoolToObject(p, "allow_view", 1);
		cJSON_AddBoolToObject(p, "allow_fine_tuning", 0);
		cJSON_AddStringToObject(p, "organization", "*");
		cJSON_AddNullToObject(p, "group");
		cJSON_AddBoolToObject(p, "is_blocking", 0);
		cJSON_AddItemToArray(perms, p);
	} else {
		cJSON_Delete(p);
	}
	cJSON_AddStringToObject(o, "root", id);
	cJSON_AddNullToObject(o, "parent");
	return o;
}

char *
relay_model_object_json(const char *id, double created)
{
	cJSON *o = model_object(id, created);
	char *text = o != NULL ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	return text;
}

/* The body of a list; NULL when out of memory. */
static char *
render(const struct relay_v1_model_list *l, double created)
{
	cJSON *root = cJSON_CreateObject(), *data;
	const char *p = l->ids;
	char *text = NULL;

	if (root == NULL)
		return NULL;
	if (cJSON_AddStringToObject(root, "object", "list") == NULL ||
	    (data = cJSON_AddArrayToObject(root, "data")) == NULL)
		goto out;
	for (size_t i = 0; i < l->n; i++) {
		cJSON *o = model_object(p, created);

		if (o == NULL || !cJSON_AddItemToArray(data, o)) {
			cJSON_Delete(o);
			goto out;
		}
		p += strlen(p) + 1;
	}
	if (l->more && cJSON_AddTrueToObject(root, "has_more") == NULL)
		goto out;
	text = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return text;
}

/* Reads the store and renders; *rc says why when NULL is returned. */
static struct snap *
build(struct relay_model_list *ml, int64_t started, enum relay_v1_rc *rc)
{
	struct snap *s = calloc(1, sizeof(*s));
	const char *p;

	if (s == NULL) {
		*rc = V1_E_NOMEM;
		return NULL;
	}
	s->started_ns = started;
	*rc = fetch(ml, ml->max, NULL, 0, &s->ids);
	if (*rc != V1_OK)
		goto fail;
	*rc = V1_E_NOMEM;
	if (s->ids.n > 0 &&
	    (s->idx = calloc(s->ids.n, sizeof(*s->idx))) == NULL)
		goto fail;
	p = s->ids.ids;
	for (size_t i = 0; i < s->ids.n; i++) {
		s->idx[i] = p;
		p += strlen(p) + 1;
	}
	s->body = render(&s->ids, (double)time(NULL));
	if (s->body == NULL)
		goto fail;
	s->len = strlen(s->body);
	*rc = V1_OK;
	return s;
fail:
	snap_free(s);
	return NULL;
}

static bool
usable(const struct snap *s, int64_t arrival, int64_t ttl)
{
	return s != NULL && s->started_ns >= arrival - ttl;
}

/*
 * A snapshot that may answer a request that arrived at `arrival`: on
 * V1_OK ml->mu is held and ml->snap is it; on failure nothing is held.
 */
static enum relay_v1_rc
current(struct relay_model_list *ml, int64_t arrival)
{
	struct snap *s;
	enum relay_v1_rc rc;
	int64_t started;

	pthread_mutex_lock(&ml->mu);
	if (usable(ml->snap, arrival, ml->ttl_ns))
		return V1_OK;
	pthread_mutex_unlock(&ml->mu);
	pthread_mutex_lock(&ml->build_mu);
	pthread_mutex_lock(&ml->mu);
	if (usable(ml->snap, arrival, ml->ttl_ns)) {
		/* built while this thread waited */
		pthread_mutex_unlock(&ml->build_mu);
		return V1_OK;
	}
	if (ml->failed && ml->fail_started_ns >= arrival) {
		rc = ml->fail_rc;
		pthread_mutex_unlock(&ml->mu);
		pthread_mutex_unlock(&ml->build_mu);
		return rc;
	}
	pthread_mutex_unlock(&ml->mu);
	started = mono_ns();
	s = build(ml, started, &rc);
	pthread_mutex_lock(&ml->mu);
	if (s != NULL) {
		snap_free(ml->snap);
		ml->snap = s;
		ml->failed = false;
	} else {
		ml->failed = true;
		ml->fail_rc = rc;
		ml->fail_started_ns = started;
	}
	pthread_mutex_unlock(&ml->build_mu);
	if (s == NULL) {
		pthread_mutex_unlock(&ml->mu);
		return rc;
	}
	return V1_OK;
}

struct relay_model_list *
relay_model_list_new(relay_model_fetch_fn fetch_fn, void *arg, int64_t ttl_ms,
    size_t max, struct tp_counter *reads)
{
	struct relay_model_list *ml = calloc(1, sizeof(*ml));

	if (ml == NULL)
		return NULL;
	pthread_mutex_init(&ml->mu, NULL);
	pthread_mutex_init(&ml->build_mu, NULL);
	ml->fetch = fetch_fn;
	ml->arg = arg;
	ml->ttl_ns = (ttl_ms > 0 ? ttl_ms : 0) * 1000000;
	ml->max = max > 0 ? max : 1;
	ml->reads = reads;
	atomic_init(&ml->fetches, 0);
	return ml;
}

void
relay_model_list_free(struct relay_model_list *ml)
{
	if (ml == NULL)
		return;
	snap_free(ml->snap);
	pthread_mutex_destroy(&ml->mu);
	pthread_mutex_destroy(&ml->build_mu);
	free(ml);
}

enum relay_v1_rc
relay_model_list_body(struct relay_model_list *ml, char **body, size_t *len,
    bool *cut)
{
	enum relay_v1_rc rc;

	*body = NULL;
	*len = 0;
	*cut = false;
	rc = current(ml, mono_ns());
	if (rc != V1_OK)
		return rc;
	*body = malloc(ml->snap->len + 1);
	if (*body != NULL) {
		memcpy(*body, ml->snap->body, ml->snap->len + 1);
		*len = ml->snap->len;
		*cut = ml->snap->ids.more;
	}
	pthread_mutex_unlock(&ml->mu);
	return *body != NULL ? V1_OK : V1_E_NOMEM;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum relay_v1_rc
relay_model_list_find(struct relay_model_list *ml, const char *id,
    bool *found)
{
	struct relay_v1_model_list one = { 0 };
	enum relay_v1_rc rc;
	bool complete;

	*found = false;
	if (id[0] == '\0')
		return V1_OK;		/* no model has an empty id */
	rc = current(ml, mono_ns());
	if (rc != V1_OK)
		return rc;
	*found = ml->snap->ids.n > 0 && bsearch(&id, ml->snap->idx,
	    ml->snap->ids.n, sizeof(*ml->snap->idx), cmp_str) != NULL;
	complete = !ml->snap->ids.more;
	pthread_mutex_unlock(&ml->mu);
	if (*found || complete)
		return V1_OK;
	/* Past the listed ones: ask for this id alone (not kept). */
	rc = fetch(ml, 1, id, strlen(id), &one);
	*found = rc == V1_OK && one.n == 1;
	relay_v1_model_list_free(&one);
	return rc;
}

uint64_t
relay_model_list_fetches(struct relay_model_list *ml)
{
	return atomic_load(&ml->fetches);
}
