/*
 * metrics_internal.h -- what the three parts of tp_metrics share (private
 * to libtokenplace): the registry, family and child structs, the
 * reader-writer lock and the double-in-a-64-bit-word helpers.
 *
 *   metrics.c          the registry: registration, finding or creating
 *                      children, the lock-free updates
 *   metrics_render.c   the Prometheus text exposition of a registry
 *   metrics_process.c  the process_* collectors
 *
 * A family keeps its children twice: in an open-addressing hash table
 * (lookup by label values) and in a singly linked list in creation order
 * (rendering). Both only grow, under the family's write lock; children are
 * freed with the registry, so a child pointer handed out stays valid and
 * updates need no lock at all.
 *
 * Every .c that includes this defines _POSIX_C_SOURCE first (outside
 * Windows), since pthread_rwlock_t needs it.
 *
 * docs/internals/metrics.md describes the design.
 */
#ifndef TOKENPLACE_METRICS_INTERNAL_H
#define TOKENPLACE_METRICS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenplace/metrics.h"

#include "compat.h"	/* windows.h or pthread.h */

/* The registry's own family, which no other family may shadow. */
#define TP_METRICS_DROPPED_NAME "tp_metrics_dropped_total"

/*
 * Reader-writer lock. Lookups of existing children are the common case and
 * must not serialise against each other.
 */
#ifdef _WIN32
typedef SRWLOCK tp_rwlock;

static inline int
rwlock_init(tp_rwlock *l)
{
	InitializeSRWLock(l);
	return 0;
}
static inline void rwlock_destroy(tp_rwlock *l) { (void)l; }
static inline void rwlock_rdlock(tp_rwlock *l) { AcquireSRWLockShared(l); }
static inline void rwlock_rdunlock(tp_rwlock *l) { ReleaseSRWLockShared(l); }
static inline void rwlock_wrlock(tp_rwlock *l) { AcquireSRWLockExclusive(l); }
static inline void rwlock_wrunlock(tp_rwlock *l) { ReleaseSRWLockExclusive(l); }
#else
typedef pthread_rwlock_t tp_rwlock;

static inline int
rwlock_init(tp_rwlock *l)
{
	return pthread_rwlock_init(l, NULL) == 0 ? 0 : -1;
}
static inline void
rwlock_destroy(tp_rwlock *l)
{
	(void)pthread_rwlock_destroy(l);
}
static inline void
rwlock_rdlock(tp_rwlock *l)
{
	(void)pthread_rwlock_rdlock(l);
}
static inline void
rwlock_rdunlock(tp_rwlock *l)
{
	(void)pthread_rwlock_unlock(l);
}
static inline void
rwlock_wrlock(tp_rwlock *l)
{
	(void)pthread_rwlock_wrlock(l);
}
static inline void
rwlock_wrunlock(tp_rwlock *l)
{
	(void)pthread_rwlock_unlock(l);
}
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

static inline uint64_t
dbl_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static inline double
bits_dbl(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* A counter child's value: its whole and its fractional increments. */
static inline double
counter_value(const struct child *c)
{
	return (double)atomic_load_explicit(&c->count, memory_order_relaxed) +
	    bits_dbl(atomic_load_explicit(&c->bits, memory_order_relaxed));
}

/* ---- shared by metrics.c and metrics_process.c ------------------------- */

/*
 * True when a family `name` of `kind` would write a sample name that an
 * existing family (or the registry itself) already writes.
 */
bool tp_metrics_name_taken(const struct tp_metrics_registry *reg,
    const char *name, enum fam_kind kind);

/*
 * Registers a label-less family whose value fn(arg) computes at render
 * time (kind FAM_COUNTER_FN or FAM_GAUGE_FN). Returns 0, or -1 on invalid
 * input, a name clash or out of memory (nothing registered).
 */
int tp_metrics_fn_family_new(struct tp_metrics_registry *reg,
    enum fam_kind kind, const char *name, const char *help,
    double (*fn)(void *), void *arg);

#endif /* TOKENPLACE_METRICS_INTERNAL_H */
