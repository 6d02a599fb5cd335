/*
 * metrics.c -- the tp_metrics registry: validating and registering
 * families, finding or creating a family's children (per-family rwlock,
 * open-addressing table) and the lock-free updates of a child (C11
 * atomics). Rendering is in metrics_render.c, the process collectors in
 * metrics_process.c; the structs they share in metrics_internal.h.
 *
 * docs/internals/metrics.md describes the design.
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L	/* pthread_rwlock_t */
#endif

#include "metrics_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define TABLE_MIN_SLOTS 16
#define REPLACEMENT_CHAR "\xef\xbf\xbd"	/* U+FFFD in UTF-8 */

/* ---- doubles in atomic 64-bit words ------------------------------------ */

static void
atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(p, &old,
	    dbl_bits(bits_dbl(old) + v), memory_order_relaxed,
	    memory_order_relaxed))
		;
}

/* ---- names and label values -------------------------------------------- */

static bool
valid_metric_name(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (size_t i = 0; s[i] != '\0'; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || c == ':';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool
valid_label_name(const char *s)
{
	if (s == NULL || *s == '\0' || strncmp(s, "__", 2) == 0)
		return false;
	for (size_t i = 0; s[i] != '\0'; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * Prometheus rejects a whole scrape over one invalid UTF-8 label value, and
 * label values often come from requests. So every string that reaches the
 * output is made valid UTF-8 (each bad byte becomes U+FFFD) and cut to
 * `max` bytes on a character boundary. Sets *out to s itself when it is
 * already fine (the common case, no allocation), else to a malloc'd copy
 * also stored in *owned. Returns -1 when out of memory.
 */
static int
text_normalize(const char *s, size_t max, const char **out, char **owned)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, o = 0, n;
	char *buf;

	*owned = NULL;
	while (i < len && (n = tp_utf8_decode(p + i, len - i, NULL)) != 0 && i + n <= max)
		i += n;
	if (i == len) {
		*out = s;
		return 0;
	}
	if ((buf = malloc(max + 1)) == NULL)
		return -1;
	for (i = 0; i < len; i += n) {
		const char *src = s + i;
		size_t srclen;

		if ((n = tp_utf8_decode(p + i, len - i, NULL)) == 0) {
			n = 1;
			src = REPLACEMENT_CHAR;
		}
		srclen = src == s + i ? n : strlen(REPLACEMENT_CHAR);
		if (o + srclen > max)
			break;
		memcpy(buf + o, src, srclen);
		o += srclen;
	}
	buf[o] = '\0';
	*out = *owned = buf;
	return 0;
}

static char *
text_dup(const char *s, size_t max)
{
	const char *norm;
	char *owned, *dup;

	if (text_normalize(s, max, &norm, &owned) != 0)
		return NULL;
	if (owned != NULL)
		return owned;
	if ((dup = malloc(strlen(norm) + 1)) != NULL)
		memcpy(dup, norm, strlen(norm) + 1);
	return dup;
}

/* FNV-1a over the values, each closed by 0xff, a byte UTF-8 never uses. */
static uint64_t
hash_values(const char *const *values, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i];
		    *p != '\0'; p++) {
			h ^= *p;
			h *= 0x100000001b3ULL;
		}
		h ^= 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* ---- families ---------------------------------------------------------- */

static const char *const hist_suffixes[] = { "", "_bucket", "_sum", "_count" };

/* How many of hist_suffixes a family of `kind` writes after its name. */
static size_t
nsuffixes(enum fam_kind kind)
{
	return kind == FAM_HISTOGRAM ? 4 : 1;
}

/* Whether the strings a||b and c||d are equal, without building them. */
static bool
concat_equal(const char *a, const char *b, const char *c, const char *d)
{
	for (;;) {
		if (*a == '\0')
			a = b, b = "";
		if (*c == '\0')
			c = d, d = "";
		if (*a == '\0' || *c == '\0')
			return *a == *c;
		if (*a++ != *c++)
			return false;
	}
}

/* See metrics_internal.h. */
bool
tp_metrics_name_taken(const struct tp_metrics_registry *reg, const char *name,
    enum fam_kind kind)
{
	for (size_t i = 0; i < nsuffixes(kind); i++) {
		if (concat_equal(name, hist_suffixes[i], TP_METRICS_DROPPED_NAME,
		    ""))
			return true;
		for (const struct family *f = reg->first; f != NULL;
		    f = f->next) {
			for (size_t j = 0; j < nsuffixes(f->kind); j++) {
				if (concat_equal(name, hist_suffixes[i], f->name,
				    hist_suffixes[j]))
					return true;
			}
		}
	}
	return false;
}

static void
child_free(struct child *c, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++)
		free(c->values[i]);
	free(c);
}

static void
family_free(struct family *f)
{
	struct child *c, *next;

	for (c = f->first; c != NULL; c = next) {
		next = c->next;
		child_free(c, f->nlabels);
	}
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->label_names[i]);
	free(f->slots);
	free(f->name);
	free(f->help);
	rwlock_destroy(&f->lock);
	free(f);
}

/* Builds a child holding copies of the (already normalized) values. */
static struct child *
child_new(const struct family *f, const char *const *values, uint64_t hash)
{
	size_t size = f->kind == FAM_HISTOGRAM ?
	    sizeof(struct tp_histogram_child) +
	    (f->nbounds + 1) * sizeof(_Atomic uint64_t) :
	    sizeof(struct child);
	struct child *c = calloc(1, size);

	if (c == NULL)
		return NULL;
	c->hash = hash;
	atomic_init(&c->bits, dbl_bits(0.0));
	atomic_init(&c->count, 0);
	if (f->kind == FAM_HISTOGRAM) {
		struct tp_histogram_child *hc = (struct tp_histogram_child *)c;

		hc->fam = f;
		for (size_t i = 0; i <= f->nbounds; i++)
			atomic_init(&hc->buckets[i], 0);
	}
	for (size_t i = 0; i < f->nlabels; i++) {
		size_t n = strlen(values[i]) + 1;

		if ((c->values[i] = malloc(n)) == NULL) {
			child_free(c, i);
			return NULL;
		}
		memcpy(c->values[i], values[i], n);
	}
	return c;
}

static void
family_append(struct family *f, struct child *c)
{
	if (f->last != NULL)
		f->last->next = c;
	else
		f->first = c;
	f->last = c;
	f->nchildren++;
}

/*
 * Common part of every *_new(): validates, allocates and links the family.
 * Returns NULL on invalid input, duplicate name or out of memory.
 */
static struct family *
family_new(struct tp_metrics_registry *reg, enum fam_kind kind,
    const char *name, const char *help, size_t nlabels,
    const char *const *label_names)
{
	struct family *f;

	if (reg == NULL || !valid_metric_name(name) ||
	    nlabels > TP_METRICS_MAX_LABELS ||
	    (nlabels > 0 && label_names == NULL))
		return NULL;
	if ((kind == FAM_COUNTER || kind == FAM_COUNTER_FN) &&
	    !ends_with(name, "_total"))
		return NULL;
	for (size_t i = 0; i < nlabels; i++) {
		if (!valid_label_name(label_names[i]))
			return NULL;
		if (kind == FAM_HISTOGRAM && strcmp(label_names[i], "le") == 0)
			return NULL;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(label_names[i], label_names[j]) == 0)
				return NULL;
		}
	}
	if (tp_metrics_name_taken(reg, name, kind))
		return NULL;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if (rwlock_init(&f->lock) != 0) {
		free(f);
		return NULL;
	}
	f->kind = kind;
	f->nlabels = nlabels;
	atomic_init(&f->max_children, (size_t)TP_METRICS_DEFAULT_MAX_CHILDREN);
	atomic_init(&f->dropped, 0);
	if ((f->name = text_dup(name, SIZE_MAX)) == NULL ||
	    (f->help = text_dup(help != NULL ? help : "", SIZE_MAX)) == NULL)
		goto fail;
	for (size_t i = 0; i < nlabels; i++) {
		if ((f->label_names[i] = text_dup(label_names[i], SIZE_MAX)) ==
		    NULL)
			goto fail;
	}
	return f;
fail:
	family_free(f);
	return NULL;
}

/* Links a finished family into the registry (last step of *_new()). */
static int
family_commit(struct tp_metrics_registry *reg, struct family *f)
{
	if (f->nlabels == 0 && f->kind != FAM_COUNTER_FN &&
	    f->kind != FAM_GAUGE_FN) {
		/* The one series exists from the start, as in prometheus_client. */
		if ((f->solo = child_new(f, NULL, 0)) == NULL) {
			family_free(f);
			return -1;
		}
		family_append(f, f->solo);
	}
	if (reg->last != NULL)
		reg->last->next = f;
	else
		reg->first = f;
	reg->last = f;
	return 0;
}

static struct child *
table_find(const struct family *f, uint64_t hash, const char *const *values)
{
	size_t mask = f->nslots - 1;

	if (f->nslots == 0)
		return NULL;
	for (size_t i = (size_t)hash & mask; f->slots[i] != NULL;
	    i = (i + 1) & mask) {
		struct child *c = f->slots[i];
		size_t k;

		if (c->hash != hash)
			continue;
		for (k = 0; k < f->nlabels; k++) {
			if (strcmp(c->values[k], values[k]) != 0)
				break;
		}
		if (k == f->nlabels)
			return c;
	}
	return NULL;
}

static void
table_put(struct child **slots, size_t nslots, struct child *c)
{
	size_t i;

	for (i = (size_t)c->hash & (nslots - 1); slots[i] != NULL;
	    i = (i + 1) & (nslots - 1))
		;
	slots[i] = c;
}

/* Keeps the table at most half full. Caller holds the write lock. */
static int
table_reserve(struct family *f, size_t n)
{
	size_t nslots = f->nslots ? f->nslots : TABLE_MIN_SLOTS;
	struct child **slots;

	while (nslots / 2 < n)
		nslots *= 2;
	if (nslots == f->nslots)
		return 0;
	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		return -1;
	for (struct child *c = f->first; c != NULL; c = c->next)
		table_put(slots, nslots, c);
	free(f->slots);
	f->slots = slots;
	f->nslots = nslots;
	return 0;
}

/*
 * Finds or creates the child for `values`. Returns NULL (and counts a drop)
 * at the child cap or when out of memory; NULL without counting for a NULL
 * family or missing values, which are programming errors.
 */
static struct child *
family_child(struct family *f, const char *const *values)
{
	const char *norm[TP_METRICS_MAX_LABELS];
	char *owned[TP_METRICS_MAX_LABELS] = { NULL };
	struct child *c = NULL;
	uint64_t hash;
	size_t i;

	if (f == NULL)
		return NULL;
	if (f->nlabels == 0)
		return f->solo;
	if (values == NULL)
		return NULL;
	for (i = 0; i < f->nlabels; i++) {
		if (values[i] == NULL)
			goto out;
		if (text_normalize(values[i], TP_METRICS_MAX_LABEL_VALUE_LEN,
		    &norm[i], &owned[i]) != 0)
			goto drop;
	}
	hash = hash_values(norm, f->nlabels);

	rwlock_rdlock(&f->lock);
	c = table_find(f, hash, norm);
	rwlock_rdunlock(&f->lock);
	if (c != NULL)
		goto out;

	rwlock_wrlock(&f->lock);
	/* Another thread may have created it between the two locks. */
	if ((c = table_find(f, hash, norm)) == NULL &&
	    f->nchildren < atomic_load(&f->max_children) &&
	    table_reserve(f, f->nchildren + 1) == 0 &&
	    (c = child_new(f, norm, hash)) != NULL) {
		table_put(f->slots, f->nslots, c);
		family_append(f, c);
	}
	rwlock_wrunlock(&f->lock);
drop:
	if (c == NULL)
		atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
out:
	for (i = 0; i < f->nlabels; i++)
		free(owned[i]);
	return c;
}

static void
family_set_max_children(struct family *f, size_t max)
{
	if (f != NULL)
		atomic_store(&f->max_children,
		    max != 0 ? max : (size_t)TP_METRICS_DEFAULT_MAX_CHILDREN);
}

/* ---- public: registry and registration --------------------------------- */

struct tp_metrics_registry *
tp_metrics_registry_new(void)
{
	return calloc(1, sizeof(struct tp_metrics_registry));
}

void
tp_metrics_registry_free(struct tp_metrics_registry *reg)
{
	struct family *f, *next;

	if (reg == NULL)
		return;
	for (f = reg->first; f != NULL; f = next) {
		next = f->next;
		family_free(f);
	}
	free(reg);
}

struct tp_counter *
tp_counter_new(struct tp_metrics_registry *reg, const char *name,
    const char *help, size_t nlabels, const char *const *label_names)
{
	struct family *f = family_new(reg, FAM_COUNTER, name, help, nlabels,
	    label_names);

	if (f == NULL || family_commit(reg, f) != 0)
		return NULL;
	return (struct tp_counter *)(void *)f;
}

struct tp_gauge *
tp_gauge_new(struct tp_metrics_registry *reg, const char *name,
    const char *help, size_t nlabels, const char *const *label_names)
{
	struct family *f = family_new(reg, FAM_GAUGE, name, help, nlabels,
	    label_names);

	if (f == NULL || family_commit(reg, f) != 0)
		return NULL;
	return (struct tp_gauge *)(void *)f;
}

struct tp_histogram *
tp_histogram_new(struct tp_metrics_registry *reg, const char *name,
    const char *help, size_t nlabels, const char *const *label_names,
    size_t nbounds, const double *bounds)
{
	struct family *f;

	if (nbounds > TP_METRICS_MAX_BUCKETS || (nbounds > 0 && bounds == NULL))
		return NULL;
	for (size_t i = 0; i < nbounds; i++) {
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			return NULL;
	}
	f = family_new(reg, FAM_HISTOGRAM, name, help, nlabels, label_names);
	if (f == NULL)
		return NULL;
	f->nbounds = nbounds;
	for (size_t i = 0; i < nbounds; i++)
		f->bounds[i] = bounds[i];
	if (family_commit(reg, f) != 0)
		return NULL;
	return (struct tp_histogram *)(void *)f;
}

/* See metrics_internal.h. */
int
tp_metrics_fn_family_new(struct tp_metrics_registry *reg, enum fam_kind kind,
    const char *name, const char *help, double (*fn)(void *), void *arg)
{
	struct family *f;

	if (fn == NULL)
		return -1;
	if ((f = family_new(reg, kind, name, help, 0, NULL)) == NULL)
		return -1;
	f->fn = fn;
	f->fn_arg = arg;
	return family_commit(reg, f);
}

int
tp_gauge_fn_new(struct tp_metrics_registry *reg, const char *name,
    const char *help, double (*fn)(void *arg), void *arg)
{
	return tp_metrics_fn_family_new(reg, FAM_GAUGE_FN, name, help, fn, arg);
}

void
tp_counter_set_max_children(struct tp_counter *c, size_t max)
{
	family_set_max_children(c != NULL ? &c->f : NULL, max);
}

void
tp_gauge_set_max_children(struct tp_gauge *g, size_t max)
{
	family_set_max_children(g != NULL ? &g->f : NULL, max);
}

void
tp_histogram_set_max_children(struct tp_histogram *h, size_t max)
{
	family_set_max_children(h != NULL ? &h->f : NULL, max);
}

/* ---- public: children and updates -------------------------------------- */

struct tp_counter_child *
tp_counter_child(struct tp_counter *c, const char *const *values)
{
	return (struct tp_counter_child *)(void *)family_child(
	    c != NULL ? &c->f : NULL, values);
}

struct tp_gauge_child *
tp_gauge_child(struct tp_gauge *g, const char *const *values)
{
	return (struct tp_gauge_child *)(void *)family_child(
	    g != NULL ? &g->f : NULL, values);
}

struct tp_histogram_child *
tp_histogram_child(struct tp_histogram *h, const char *const *values)
{
	return (struct tp_histogram_child *)(void *)family_child(
	    h != NULL ? &h->f : NULL, values);
}

void
tp_counter_child_add(struct tp_counter_child *ch, double v)
{
	if (ch == NULL || !(v >= 0.0))
		return;
	/* Whole increments (the usual +1) take the wait-free integer path. */
	if (v <= 9007199254740992.0 && floor(v) >= v)
		atomic_fetch_add_explicit(&ch->c.count, (uint64_t)v,
		    memory_order_relaxed);
	else
		atomic_add_double(&ch->c.bits, v);
}

void
tp_gauge_child_set(struct tp_gauge_child *ch, double v)
{
	if (ch != NULL)
		atomic_store_explicit(&ch->c.bits, dbl_bits(v),
		    memory_order_relaxed);
}

void
tp_gauge_child_add(struct tp_gauge_child *ch, double v)
{
	if (ch != NULL)
		atomic_add_double(&ch->c.bits, v);
}

void
tp_histogram_child_observe(struct tp_histogram_child *ch, double v)
{
	const struct family *f;
	size_t lo = 0, hi;

	/* NaN would turn _sum into NaN for the rest of the process. */
	if (ch == NULL || isnan(v))
		return;
	f = ch->fam;
	/* First bucket whose bound is >= v; nbounds is the +Inf bucket. */
	hi = f->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= f->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&ch->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&ch->c.bits, v);
}

void
tp_counter_add(struct tp_counter *c, const char *const *values, double v)
{
	tp_counter_child_add(tp_counter_child(c, values), v);
}

void
tp_counter_inc(struct tp_counter *c, const char *const *values)
{
	tp_counter_child_add(tp_counter_child(c, values), 1.0);
}

void
tp_gauge_set(struct tp_gauge *g, const char *const *values, double v)
{
	tp_gauge_child_set(tp_gauge_child(g, values), v);
}

void
tp_gauge_add(struct tp_gauge *g, const char *const *values, double v)
{
	tp_gauge_child_add(tp_gauge_child(g, values), v);
}

void
tp_histogram_observe(struct tp_histogram *h, const char *const *values,
    double v)
{
	tp_histogram_child_observe(tp_histogram_child(h, values), v);
}

double
tp_counter_child_value(const struct tp_counter_child *ch)
{
	return ch != NULL ? counter_value(&ch->c) : 0.0;
}

double
tp_gauge_child_value(const struct tp_gauge_child *ch)
{
	return ch != NULL ?
	    bits_dbl(atomic_load_explicit(&ch->c.bits, memory_order_relaxed)) :
	    0.0;
}
