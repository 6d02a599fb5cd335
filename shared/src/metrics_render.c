/*
 * metrics_render.c -- tp_metrics_render(): a registry as Prometheus text
 * exposition format 0.0.4, numbers laid out as prometheus_client does.
 *
 * The renderer takes a family's read lock only long enough to snapshot the
 * list head and length: every node up to that length was published before
 * the snapshot, and new nodes are only ever appended (metrics_internal.h).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"

#define DROPPED_HELP \
	"Label sets refused because their metric family was at its child cap."

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
			rb_header(b, TP_METRICS_DROPPED_NAME, DROPPED_HELP, "counter");
			header = true;
		}
		tp_buf_puts(b, TP_METRICS_DROPPED_NAME "{metric=\"");
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
