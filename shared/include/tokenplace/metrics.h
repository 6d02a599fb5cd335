/*
 * tp_metrics: counters, gauges and histograms with labels, rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * A registry owns metric families; a family owns its labelled children.
 * Families are registered at start-up (not thread safe against rendering);
 * everything after that is thread safe. Updating a child is lock-free
 * (C11 atomics); finding or creating a child by label values takes the
 * family's read lock (write lock only the first time a label set is seen).
 * Hot paths should resolve a child once with tp_*_child() and keep the
 * pointer: children live as long as the registry.
 *
 * Label values are copied, made valid UTF-8 (each invalid byte becomes
 * U+FFFD, since Prometheus refuses a whole scrape over one bad label) and
 * cut to TP_METRICS_MAX_LABEL_VALUE_LEN bytes on a character boundary;
 * values that are equal after this share one child. Each family holds at
 * most `max_children` label sets (TP_METRICS_DEFAULT_MAX_CHILDREN unless
 * set); updates for further sets are dropped and counted in
 * tp_metrics_dropped_total{metric="<family>"}, so a hostile label value can
 * never grow memory without bound.
 */
#ifndef TOKENPLACE_METRICS_H
#define TOKENPLACE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TP_METRICS_MAX_LABELS 8
#define TP_METRICS_MAX_BUCKETS 32
#define TP_METRICS_DEFAULT_MAX_CHILDREN 2048
#define TP_METRICS_MAX_LABEL_VALUE_LEN 1024

struct tp_metrics_registry;
struct tp_counter;		/* a family */
struct tp_gauge;
struct tp_histogram;
struct tp_counter_child;	/* one label set of a family */
struct tp_gauge_child;
struct tp_histogram_child;

/* Returns an empty registry, or NULL when out of memory. */
struct tp_metrics_registry *tp_metrics_registry_new(void);

/* Frees the registry, its families and children. NULL is accepted. */
void tp_metrics_registry_free(struct tp_metrics_registry *reg);

/*
 * Register families. `name` must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*;
 * counter names must end in _total), label names valid
 * ([a-zA-Z_][a-zA-Z0-9_]*), distinct, not starting with "__", and not "le"
 * for histograms; help may be NULL (empty). name/help/label names are
 * copied. Returns NULL on invalid input, a name clash (any sample name the
 * family would write, e.g. a histogram's <name>_sum, already written by
 * another family, or tp_metrics_dropped_total), or out of memory.
 * A family without labels has its one series from the start (value 0).
 */
struct tp_counter *tp_counter_new(struct tp_metrics_registry *reg,
    const char *name, const char *help, size_t nlabels,
    const char *const *label_names);
struct tp_gauge *tp_gauge_new(struct tp_metrics_registry *reg,
    const char *name, const char *help, size_t nlabels,
    const char *const *label_names);
/* `bounds` strictly increasing, finite, at most TP_METRICS_MAX_BUCKETS; +Inf is implicit. */
struct tp_histogram *tp_histogram_new(struct tp_metrics_registry *reg,
    const char *name, const char *help, size_t nlabels,
    const char *const *label_names, size_t nbounds, const double *bounds);

/*
 * A gauge whose value is computed at render time by fn(arg), without
 * labels. Returns 0, or -1 on invalid input/duplicate/out of memory.
 */
int tp_gauge_fn_new(struct tp_metrics_registry *reg, const char *name,
    const char *help, double (*fn)(void *arg), void *arg);

/*
 * Caps the number of label sets (children) of a family; 0 restores
 * TP_METRICS_DEFAULT_MAX_CHILDREN. Existing children are kept. NULL is
 * accepted.
 */
void tp_counter_set_max_children(struct tp_counter *c, size_t max);
void tp_gauge_set_max_children(struct tp_gauge *g, size_t max);
void tp_histogram_set_max_children(struct tp_histogram *h, size_t max);

/*
 * Resolve (find or create) the child for `values` (exactly nlabels strings;
 * NULL when the family has no labels). Returns NULL when the family is at
 * its child cap or memory ran out (both counted in
 * tp_metrics_dropped_total), or for a NULL family or NULL values; the
 * update functions accept NULL children and do nothing.
 */
struct tp_counter_child *tp_counter_child(struct tp_counter *c,
    const char *const *values);
struct tp_gauge_child *tp_gauge_child(struct tp_gauge *g,
    const char *const *values);
struct tp_histogram_child *tp_histogram_child(struct tp_histogram *h,
    const char *const *values);

/*
 * Child updates: lock-free. Counter increments must be >= 0 (else ignored,
 * as is NaN); histogram observations of NaN are ignored too, since they
 * would make _sum NaN for good.
 */
void tp_counter_child_add(struct tp_counter_child *ch, double v);
void tp_gauge_child_set(struct tp_gauge_child *ch, double v);
void tp_gauge_child_add(struct tp_gauge_child *ch, double v);
void tp_histogram_child_observe(struct tp_histogram_child *ch, double v);

/* Convenience: resolve the child and update it in one call. */
void tp_counter_add(struct tp_counter *c, const char *const *values, double v);
void tp_counter_inc(struct tp_counter *c, const char *const *values);
void tp_gauge_set(struct tp_gauge *g, const char *const *values, double v);
void tp_gauge_add(struct tp_gauge *g, const char *const *values, double v);
void tp_histogram_observe(struct tp_histogram *h, const char *const *values,
    double v);

/* Reads a child's current value (tests, health output). 0 for NULL. */
double tp_counter_child_value(const struct tp_counter_child *ch);
double tp_gauge_child_value(const struct tp_gauge_child *ch);

/*
 * Registers the standard process collectors, computed at render time from
 * /proc/self on Linux (absent elsewhere): process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds.
 * A value that cannot be read renders as NaN. Returns 0 (also on other
 * OSes, where it registers nothing), or -1 on a name clash (nothing
 * registered) or out of memory.
 */
int tp_metrics_register_process(struct tp_metrics_registry *reg);

/*
 * Renders every family in registration order: "# HELP" and "# TYPE" once
 * per family, children in creation order, label values escaped (\\, \",
 * \n), counters as <name> (already ending in _total), histograms as
 * _bucket{...,le="..."} (cumulative, with +Inf; le last), _sum and _count,
 * then tp_metrics_dropped_total{metric=...} for every labelled family.
 * Values and le use the shortest round-trip digits laid out as
 * prometheus_client does ("1.0", "0.005", "1.5e-05", "1.234567e+06"), so
 * le labels match the Python exporter's; +Inf/-Inf/NaN spelled as
 * Prometheus does.
 * Returns a malloc'd NUL-terminated string and sets *len, or NULL when out
 * of memory. Safe to call concurrently with updates.
 */
char *tp_metrics_render(struct tp_metrics_registry *reg, size_t *len);

/* The Content-Type for tp_metrics_render() output. */
#define TP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_METRICS_H */
