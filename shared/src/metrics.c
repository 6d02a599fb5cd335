/*
 * metrics.c -- Prometheus counters, gauges and histograms.
 *
 * A family keeps its children twice: in an open-addressing hash table
 * (lookup by label values) and in a singly linked list in creation order
 * (rendering). Both only grow, under the family's write lock; children are
 * freed with the registry, so a child pointer handed out stays valid and
 * updates need no lock at all. The renderer takes the read lock only long
 * enough to snapshot the list head and length: every node up to that length
 * was published before the snapshot, and new nodes are only ever appended.
 *
 * docs/internals/metrics.md describes the design.
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L	/* pthread_rwlock_t, dirfd, O_CLOEXEC */
#endif

#include "tokenplace/metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "compat.h"
#include "utf8.h"

#ifdef __linux__
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#endif

#define DROPPED_NAME "tp_metrics_dropped_total"
#define DROPPED_HELP \
	"Label sets refused because their metric family was at its child cap."
#define TABLE_MIN_SLOTS 16
#define REPLACEMENT_CHAR "\xef\xbf\xbd"	/* U+FFFD in UTF-8 */

/*
 * Reader-writer lock. Lookups of existing children are the common case and
 * must not serialise against each other.
 */
#ifdef _WIN32
typedef SRWLOCK tp_rwlock;

static int
rwlock_init(tp_rwlock *l)
{
	InitializeSRWLock(l);
	return 0;
}
static void rwlock_destroy(tp_rwlock *l) { (void)l; }
static void rwlock_rdlock(tp_rwlock *l) { AcquireSRWLockShared(l); }
static void rwlock_rdunlock(tp_rwlock *l) { ReleaseSRWLockShared(l); }
static void rwlock_wrlock(tp_rwlock *l) { AcquireSRWLockExclusive(l); }
static void rwlock_wrunlock(tp_rwlock *l) { ReleaseSRWLockExclusive(l); }
#else
typedef pthread_rwlock_t tp_rwlock;

static int
rwlock_init(tp_rwlock *l)
{
	return pthread_rwlock_init(l, NULL) == 0 ? 0 : -1;
}
static void rwlock_destroy(tp_rwlock *l) { (void)pthread_rwlock_destroy(l); }
static void rwlock_rdlock(tp_rwlock *l) { (void)pthread_rwlock_rdlock(l); }
static void rwlock_rdunlock(tp_rwlock *l) { (void)pthread_rwlock_unlock(l); }
static void rwlock_wrlock(tp_rwlock *l) { (void)pthread_rwlock_wrlock(l); }
static void rwlock_wrunlock(tp_rwlock *l) { (void)pthread_rwlock_unlock(l); }
#endif

enum fam_kind {
	FAM_COUNTER,
	FAM_GAUGE,
	FAM_HISTOGRAM,
	FAM_COUNTER_FN,		/* process_cpu_seconds_total */
	FAM_GAUGE_FN,
};

struct child {
	struct child	*next;		/* creation order */
	uint64_t	 hash;
	char		*values[TP_METRICS_MAX_LABELS];
	/*
	 * Counter: fractional increments (double bits); gauge: the value;
	 * histogram: the sum.
	 */
	_Atomic uint64_t bits;
	/* Counter: whole-number increments, so inc() is one fetch_add. */
	_Atomic uint64_t count;
};

struct tp_counter_child {
	struct child	 c;
};

struct tp_gauge_child {
	struct child	 c;
};

struct tp_histogram_child {
	struct child	 c;
	const struct family *fam;	/* bounds are immutable once registered */
	/* Per-bucket (not cumulative) counts, nbounds + 1 with +Inf last. */
	_Atomic uint64_t buckets[];
};

struct family {
	struct family	*next;		/* registration order */
	enum fam_kind	 kind;
	char		*name;
	char		*help;
	size_t		 nlabels;
	char		*label_names[TP_METRICS_MAX_LABELS];
	size_t		 nbounds;
	double		 bounds[TP_METRICS_MAX_BUCKETS];
	double		(*fn)(void *);
	void		*fn_arg;

	tp_rwlock	 lock;
	struct child	**slots;	/* hash table, nslots a power of 2 */
	size_t		 nslots;
	struct child	*first;
	struct child	*last;
	size_t		 nchildren;
	struct child	*solo;		/* the only child of a label-less family */
	_Atomic size_t	 max_children;
	_Atomic uint64_t dropped;
};

struct tp_counter {
	struct family	 f;
};

struct tp_gauge {
	struct family	 f;
};

struct tp_histogram {
	struct family	 f;
};

struct tp_metrics_registry {
	struct family	*first;
	struct family	*last;
};

/* ---- doubles in atomic 64-bit words ------------------------------------ */

static uint64_t
dbl_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double
bits_dbl(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

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

/*
 * True when a family `name` of `kind` would write a sample name that an
 * existing family (or the registry itself) already writes.
 */
static bool
name_taken(const struct tp_metrics_registry *reg, const char *name,
    enum fam_kind kind)
{
	for (size_t i = 0; i < nsuffixes(kind); i++) {
		if (concat_equal(name, hist_suffixes[i], DROPPED_NAME, ""))
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
	if (name_taken(reg, name, kind))
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

static int
fn_family_new(struct tp_metrics_registry *reg, enum fam_kind kind,
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
	return fn_family_new(reg, FAM_GAUGE_FN, name, help, fn, arg);
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

static double
counter_value(const struct child *c)
{
	return (double)atomic_load_explicit(&c->count, memory_order_relaxed) +
	    bits_dbl(atomic_load_explicit(&c->bits, memory_order_relaxed));
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

/* ---- rendering --------------------------------------------------------- */

#define VALUE_MAX 40	/* longest formatted double plus NUL */

/*
 * Formats v exactly as prometheus_client's floatToGoString() does, so le
 * labels (and values) are byte-identical to the Python exporter's: the
 * shortest digits that parse back to v, laid out as Python's repr()
 * ("1.0", "0.005", exponent form below 1e-4 and from 1e16), except that a
 * positive number with more than six integer digits is written as the
 * client's Go-like exponent form ("1.234567e+06"; the client's quirk of
 * "1e+015" for 1e15 is kept on purpose). +Inf, -Inf and NaN as Prometheus
 * spells them.
 */
static void
format_value(double v, char out[VALUE_MAX])
{
	char tmp[VALUE_MAX], digits[24], *e, *dot;
	size_t nd = 0, o = 0;
	long exp10;
	int prec, decpt;

	if (isnan(v)) {
		memcpy(out, "NaN", 4);
		return;
	}
	if (isinf(v)) {
		memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
		return;
	}
	/* Shortest %e precision that round-trips; 17 digits always do. */
	for (prec = 0; prec < 16; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	if (prec == 16)
		snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
	/* Digits and exponent, skipping sign and the locale's radix char. */
	e = strchr(tmp, 'e');
	for (const char *p = tmp; p < e && nd < sizeof(digits); p++) {
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	}
	exp10 = strtol(e + 1, NULL, 10);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	decpt = (int)exp10 + 1;

	if (signbit(v))
		out[o++] = '-';
	if (decpt <= -4 || decpt > 16) {
		out[o++] = digits[0];
		if (nd > 1) {
			out[o++] = '.';
			memcpy(out + o, digits + 1, nd - 1);
			o += nd - 1;
		}
		snprintf(out + o, VALUE_MAX - o, "e%c%02ld",
		    exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
	} else if (decpt <= 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (int i = decpt; i < 0; i++)
			out[o++] = '0';
		memcpy(out + o, digits, nd);
		out[o + nd] = '\0';
	} else if ((size_t)decpt >= nd) {
		memcpy(out + o, digits, nd);
		o += nd;
		for (size_t i = nd; i < (size_t)decpt; i++)
			out[o++] = '0';
		memcpy(out + o, ".0", 3);
	} else {
		memcpy(out + o, digits, (size_t)decpt);
		o += (size_t)decpt;
		out[o++] = '.';
		memcpy(out + o, digits + decpt, nd - (size_t)decpt);
		out[o + nd - (size_t)decpt] = '\0';
	}

	/* The client's Go-like rewrite of positive numbers >= 1e6. */
	if (v > 0 && (dot = strchr(out, '.')) != NULL && dot - out > 6) {
		size_t intdigits = (size_t)(dot - out), m = 0;
		char mant[VALUE_MAX];

		mant[m++] = out[0];
		mant[m++] = '.';
		memcpy(mant + m, out + 1, intdigits - 1);
		m += intdigits - 1;
		for (const char *p = dot + 1; *p != '\0'; p++)
			mant[m++] = *p;
		while (m > 0 && (mant[m - 1] == '0' || mant[m - 1] == '.'))
			m--;
		/* intdigits is 7..16 here (larger values took the branch above). */
		memcpy(mant + m, "e+0", 3);
		m += 3;
		if (intdigits - 1 >= 10)
			mant[m++] = (char)('0' + (intdigits - 1) / 10);
		mant[m++] = (char)('0' + (intdigits - 1) % 10);
		mant[m] = '\0';
		memcpy(out, mant, m + 1);
	}
}

/*
 * Appends s escaped: backslash and newline always, the double quote too
 * inside label values (HELP text keeps quotes as they are).
 */
static void
rb_escaped(struct tp_buf *b, const char *s, bool label_value)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && label_value)
			esc = "\\\"";
		if (esc == NULL)
			continue;
		tp_buf_add(b, run, (size_t)(s - run));
		tp_buf_add(b, esc, 2);
		run = s + 1;
	}
	tp_buf_add(b, run, (size_t)(s - run));
}

static void
rb_header(struct tp_buf *b, const char *name, const char *help,
    const char *type)
{
	tp_buf_puts(b, "# HELP ");
	tp_buf_puts(b, name);
	tp_buf_puts(b, " ");
	rb_escaped(b, help, false);
	tp_buf_puts(b, "\n# TYPE ");
	tp_buf_puts(b, name);
	tp_buf_puts(b, " ");
	tp_buf_puts(b, type);
	tp_buf_puts(b, "\n");
}

/* One sample line; `c` NULL for a label-less function family. */
static void
rb_sample(struct tp_buf *b, const struct family *f, const char *suffix,
    const struct child *c, const char *le, double v)
{
	char num[VALUE_MAX];
	size_t nlabels = c != NULL ? f->nlabels : 0;

	tp_buf_puts(b, f->name);
	tp_buf_puts(b, suffix);
	if (nlabels > 0 || le != NULL) {
		tp_buf_puts(b, "{");
		for (size_t i = 0; i < nlabels; i++) {
			if (i > 0)
				tp_buf_puts(b, ",");
			tp_buf_puts(b, f->label_names[i]);
			tp_buf_puts(b, "=\"");
			rb_escaped(b, c->values[i], true);
			tp_buf_puts(b, "\"");
		}
		if (le != NULL) {
			tp_buf_puts(b, nlabels > 0 ? ",le=\"" : "le=\"");
			tp_buf_puts(b, le);
			tp_buf_puts(b, "\"");
		}
		tp_buf_puts(b, "}");
	}
	format_value(v, num);
	tp_buf_puts(b, " ");
	tp_buf_puts(b, num);
	tp_buf_puts(b, "\n");
}

static void
render_histogram_child(struct tp_buf *b, const struct family *f,
    const struct child *c)
{
	const struct tp_histogram_child *hc =
	    (const struct tp_histogram_child *)(const void *)c;
	char le[VALUE_MAX];
	uint64_t cum = 0;

	/*
	 * _count is the +Inf bucket as read here, so the two always agree
	 * even while observations race with the scrape.
	 */
	for (size_t i = 0; i <= f->nbounds; i++) {
		cum += atomic_load_explicit(&hc->buckets[i],
		    memory_order_relaxed);
		if (i < f->nbounds)
			format_value(f->bounds[i], le);
		else
			memcpy(le, "+Inf", 5);
		rb_sample(b, f, "_bucket", c, le, (double)cum);
	}
	rb_sample(b, f, "_sum", c, NULL,
	    bits_dbl(atomic_load_explicit(&c->bits, memory_order_relaxed)));
	rb_sample(b, f, "_count", c, NULL, (double)cum);
}

static void
render_family(struct tp_buf *b, struct family *f)
{
	static const char *const types[] = {
		[FAM_COUNTER] = "counter",
		[FAM_GAUGE] = "gauge",
		[FAM_HISTOGRAM] = "histogram",
		[FAM_COUNTER_FN] = "counter",
		[FAM_GAUGE_FN] = "gauge",
	};
	const struct child *c;
	size_t n;

	rb_header(b, f->name, f->help, types[f->kind]);
	if (f->kind == FAM_COUNTER_FN || f->kind == FAM_GAUGE_FN) {
		rb_sample(b, f, "", NULL, NULL, f->fn(f->fn_arg));
		return;
	}
	/*
	 * The first n children were published before this snapshot and are
	 * never moved or freed, so the walk needs no lock. The last node's
	 * next pointer may be written concurrently and is never read.
	 */
	rwlock_rdlock(&f->lock);
	c = f->first;
	n = f->nchildren;
	rwlock_rdunlock(&f->lock);
	for (size_t i = 0; i < n; i++) {
		switch (f->kind) {
		case FAM_COUNTER:
			rb_sample(b, f, "", c, NULL, counter_value(c));
			break;
		case FAM_GAUGE:
			rb_sample(b, f, "", c, NULL, bits_dbl(
			    atomic_load_explicit(&c->bits,
			    memory_order_relaxed)));
			break;
		case FAM_HISTOGRAM:
			render_histogram_child(b, f, c);
			break;
		case FAM_COUNTER_FN:
		case FAM_GAUGE_FN:
			break;
		}
		if (i + 1 < n)
			c = c->next;
	}
}

/* tp_metrics_dropped_total{metric="<family>"} for every labelled family. */
static void
render_dropped(struct tp_buf *b, const struct tp_metrics_registry *reg)
{
	char num[VALUE_MAX];
	bool header = false;

	for (const struct family *f = reg->first; f != NULL; f = f->next) {
		if (f->nlabels == 0)
			continue;
		if (!header) {
			rb_header(b, DROPPED_NAME, DROPPED_HELP, "counter");
			header = true;
		}
		tp_buf_puts(b, DROPPED_NAME "{metric=\"");
		rb_escaped(b, f->name, true);
		tp_buf_puts(b, "\"} ");
		format_value((double)atomic_load_explicit(&f->dropped,
		    memory_order_relaxed), num);
		tp_buf_puts(b, num);
		tp_buf_puts(b, "\n");
	}
}

char *
tp_metrics_render(struct tp_metrics_registry *reg, size_t *len)
{
	struct tp_buf b = TP_BUF_INIT;

	if (reg == NULL)
		return NULL;
	for (struct family *f = reg->first; f != NULL; f = f->next)
		render_family(&b, f);
	render_dropped(&b, reg);
	return tp_buf_finish(&b, len);
}

/* ---- process collectors ------------------------------------------------ */

#ifdef __linux__
/* Reads a small file whole into buf (NUL-terminated). 0 or -1. */
static int
read_small_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (len + 1 < size) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	buf[len] = '\0';
	return len > 0 ? 0 : -1;
}

/* Field `field` of /proc/self/stat, numbered from 1 as in proc(5). */
static double
proc_stat_field(int field)
{
	char buf[4096], *p, *end;

	if (read_small_file("/proc/self/stat", buf, sizeof(buf)) != 0 ||
	    (p = strrchr(buf, ')')) == NULL)
		return (double)NAN;
	/* The command name may hold spaces and ')': count from its end. */
	p++;
	for (int i = 3; i <= field; i++) {
		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			return (double)NAN;
		if (i == field) {
			double v = strtod(p, &end);

			return end != p ? v : (double)NAN;
		}
		while (*p != ' ' && *p != '\0')
			p++;
	}
	return (double)NAN;
}

static double
clock_ticks(void)
{
	long t = sysconf(_SC_CLK_TCK);

	return t > 0 ? (double)t : 100.0;
}

static double
proc_virtual_memory(void *arg)
{
	(void)arg;
	return proc_stat_field(23);
}

static double
proc_resident_memory(void *arg)
{
	long page = sysconf(_SC_PAGESIZE);

	(void)arg;
	return proc_stat_field(24) * (double)(page > 0 ? page : 4096);
}

/* Boot time from the "btime" line of /proc/stat, which may be long. */
static double
boot_time(void)
{
	char line[256];
	bool at_line_start = true;
	double bt = (double)NAN;
	FILE *fp;

	if ((fp = fopen("/proc/stat", "re")) == NULL)
		return (double)NAN;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (at_line_start && strncmp(line, "btime ", 6) == 0) {
			bt = strtod(line + 6, NULL);
			break;
		}
		at_line_start = strchr(line, '\n') != NULL;
	}
	(void)fclose(fp);
	return bt;
}

static double
proc_start_time(void *arg)
{
	(void)arg;
	return proc_stat_field(22) / clock_ticks() + boot_time();
}

static double
proc_cpu_seconds(void *arg)
{
	(void)arg;
	return (proc_stat_field(14) + proc_stat_field(15)) / clock_ticks();
}

static double
proc_open_fds(void *arg)
{
	struct dirent *de;
	double n = 0;
	DIR *d;
	int self;

	(void)arg;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return (double)NAN;
	self = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		/* Skip ".", ".." and the descriptor this listing holds. */
		if (de->d_name[0] == '.' || strtol(de->d_name, NULL, 10) == self)
			continue;
		n++;
	}
	(void)closedir(d);
	return n;
}

static double
proc_max_fds(void *arg)
{
	char buf[4096], *p, *end;
	double v;

	(void)arg;
	if (read_small_file("/proc/self/limits", buf, sizeof(buf)) != 0 ||
	    (p = strstr(buf, "\nMax open files")) == NULL)
		return (double)NAN;
	p += strlen("\nMax open files");
	while (*p == ' ')
		p++;
	if (strncmp(p, "unlimited", 9) == 0)
		return (double)INFINITY;
	v = strtod(p, &end);
	return end != p ? v : (double)NAN;
}

static const struct {
	const char *name;
	const char *help;
	enum fam_kind kind;
	double (*fn)(void *);
} process_collectors[] = {
	/* Names, help and order as prometheus_client's ProcessCollector. */
	{ "process_virtual_memory_bytes", "Virtual memory size in bytes.",
	    FAM_GAUGE_FN, proc_virtual_memory },
	{ "process_resident_memory_bytes", "Resident memory size in bytes.",
	    FAM_GAUGE_FN, proc_resident_memory },
	{ "process_start_time_seconds",
	    "Start time of the process since unix epoch in seconds.",
	    FAM_GAUGE_FN, proc_start_time },
	{ "process_cpu_seconds_total",
	    "Total user and system CPU time spent in seconds.",
	    FAM_COUNTER_FN, proc_cpu_seconds },
	{ "process_open_fds", "Number of open file descriptors.",
	    FAM_GAUGE_FN, proc_open_fds },
	{ "process_max_fds", "Maximum number of open file descriptors.",
	    FAM_GAUGE_FN, proc_max_fds },
};
#define NPROCESS (sizeof(process_collectors) / sizeof(process_collectors[0]))
#endif /* __linux__ */

int
tp_metrics_register_process(struct tp_metrics_registry *reg)
{
	if (reg == NULL)
		return -1;
#ifdef __linux__
	/* All or nothing for name clashes; only out of memory leaves a part. */
	for (size_t i = 0; i < NPROCESS; i++) {
		if (name_taken(reg, process_collectors[i].name,
		    process_collectors[i].kind))
			return -1;
	}
	for (size_t i = 0; i < NPROCESS; i++) {
		if (fn_family_new(reg, process_collectors[i].kind,
		    process_collectors[i].name, process_collectors[i].help,
		    process_collectors[i].fn, NULL) != 0)
			return -1;
	}
#endif
	return 0;
}
