/*
 * tp_metrics_dump -- fills a registry with every kind of metric and prints
 * tp_metrics_render()'s output, for tests/integration/test_metrics_parse.py
 * to parse back with prometheus_client.
 *
 *   tp_metrics_dump        apply a built-in list of hostile updates
 *   tp_metrics_dump -      read updates from stdin instead
 *
 * One update per line, fields separated by one space. Strings are hex
 * encoded so that any byte (newline, quote, invalid UTF-8) survives;
 * numbers are the 16 hex digits of the IEEE-754 bit pattern, so the
 * caller knows the exact double that went in:
 *
 *   c <method> <path> <v>   dump_requests_total{method,path} += v
 *   g <room> <v>            dump_temperature_celsius{room} = v (cap 50)
 *   a <room> <v>            dump_temperature_celsius{room} += v
 *   h <route> <v>           dump_request_duration_seconds{route} observe v
 *   C <v>                   dump_events_total += v
 *   G <v>                   dump_queue_depth = v
 *   H <v>                   dump_payload_bytes observe v
 *   F <v>                   value returned by the gauge_fn dump_callback_value
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/metrics.h"

#define LINE_MAX_BYTES 65536

/* Python's default buckets (prometheus_client.Histogram.DEFAULT_BUCKETS). */
static const double default_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
	7.5, 10.0,
};

/* Bounds that exercise every layout of the value formatter. */
static const double payload_buckets[] = {
	1e-05, 0.0001, 0.5, 1000.0, 100000.0, 1e6, 1234567.0, 1e15, 1e16,
	1.5e17,
};

static double callback_value;

static double
callback(void *arg)
{
	return *(const double *)arg;
}

struct dump {
	struct tp_metrics_registry *reg;
	struct tp_counter *requests;
	struct tp_gauge *temperature;
	struct tp_histogram *duration;
	struct tp_counter *events;
	struct tp_gauge *depth;
	struct tp_histogram *payload;
};

static int
dump_setup(struct dump *d)
{
	static const char *const req_labels[] = { "method", "path" };
	static const char *const room_labels[] = { "room" };
	static const char *const route_labels[] = { "route" };

	if ((d->reg = tp_metrics_registry_new()) == NULL)
		return -1;
	d->requests = tp_counter_new(d->reg, "dump_requests_total",
	    "Requests by \"method\" and path, C:\\dir\nsecond line \xc3\xa9\xe2\x82\xac.",
	    2, req_labels);
	d->temperature = tp_gauge_new(d->reg, "dump_temperature_celsius",
	    "Temperature per room.", 1, room_labels);
	d->duration = tp_histogram_new(d->reg, "dump_request_duration_seconds",
	    "Request duration with the Python client's default buckets.", 1,
	    route_labels, sizeof(default_buckets) / sizeof(default_buckets[0]),
	    default_buckets);
	d->events = tp_counter_new(d->reg, "dump_events_total", "", 0, NULL);
	d->depth = tp_gauge_new(d->reg, "dump_queue_depth",
	    "Backslash at the end \\", 0, NULL);
	d->payload = tp_histogram_new(d->reg, "dump_payload_bytes",
	    "Payload sizes.", 0, NULL,
	    sizeof(payload_buckets) / sizeof(payload_buckets[0]),
	    payload_buckets);
	if (d->requests == NULL || d->temperature == NULL ||
	    d->duration == NULL || d->events == NULL || d->depth == NULL ||
	    d->payload == NULL ||
	    tp_gauge_fn_new(d->reg, "dump_callback_value",
	    "Computed at render time.", callback, &callback_value) != 0 ||
	    tp_metrics_register_process(d->reg) != 0)
		return -1;
	tp_gauge_set_max_children(d->temperature, 50);
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex text in place; "-" stands for the empty string. */
static int
unhex(char *s)
{
	size_t n = strlen(s), i;

	if (strcmp(s, "-") == 0) {
		s[0] = '\0';
		return 0;
	}
	if (n % 2 != 0)
		return -1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		s[i] = (char)(hi * 16 + lo);
	}
	s[i] = '\0';
	return 0;
}

static int
parse_bits(const char *s, double *out)
{
	char *end;
	unsigned long long u = strtoull(s, &end, 16);
	uint64_t bits = (uint64_t)u;

	if (end == s || *end != '\0' || strlen(s) != 16)
		return -1;
	memcpy(out, &bits, sizeof(*out));
	return 0;
}

/* Applies one update line; -1 on a malformed line. */
static int
apply(struct dump *d, char *line)
{
	char *f[4];
	size_t nf = 0;
	double v;

	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0')
		return 0;
	for (char *tok = strtok(line, " "); tok != NULL && nf < 4;
	    tok = strtok(NULL, " "))
		f[nf++] = tok;
	if (nf < 2 || strlen(f[0]) != 1 || parse_bits(f[nf - 1], &v) != 0)
		return -1;
	for (size_t i = 1; i + 1 < nf; i++) {
		if (unhex(f[i]) != 0)
			return -1;
	}
	switch (f[0][0]) {
	case 'c':
		if (nf != 4)
			return -1;
		tp_counter_add(d->requests, (const char *const[]){ f[1], f[2] },
		    v);
		return 0;
	case 'g':
	case 'a':
	case 'h':
		if (nf != 3)
			return -1;
		if (f[0][0] == 'g')
			tp_gauge_set(d->temperature, (const char *const[]){ f[1] },
			    v);
		else if (f[0][0] == 'a')
			tp_gauge_add(d->temperature, (const char *const[]){ f[1] },
			    v);
		else
			tp_histogram_observe(d->duration,
			    (const char *const[]){ f[1] }, v);
		return 0;
	case 'C':
	case 'G':
	case 'H':
	case 'F':
		if (nf != 2)
			return -1;
		if (f[0][0] == 'C')
			tp_counter_add(d->events, NULL, v);
		else if (f[0][0] == 'G')
			tp_gauge_set(d->depth, NULL, v);
		else if (f[0][0] == 'H')
			tp_histogram_observe(d->payload, NULL, v);
		else
			callback_value = v;
		return 0;
	default:
		return -1;
	}
}

/* Hostile label values and awkward numbers, in the stdin format. */
static const char *const builtin_ops[] = {
	/* GET / three times */
	"c 474554 2f 3ff0000000000000",
	"c 474554 2f 3ff0000000000000",
	"c 474554 2f 3ff0000000000000",
	/* POST, path = a"b\c<newline>d */
	"c 504f5354 6122625c630a64 3ff8000000000000",
	/* path = UTF-8 "é€😀" */
	"c 474554 c3a9e282acf09f9880 4000000000000000",
	/* path = invalid UTF-8: ff, lone continuation 80 */
	"c 474554 41ff4280 3ff0000000000000",
	/* path = "le", braces, comma, equals: le="x",a="}" */
	"c 474554 6c653d2278222c613d227d22 3ff0000000000000",
	/* empty method */
	"c - 2f 3ff0000000000000",
	/* gauge: NaN, +Inf, -Inf, -0.0, smallest subnormal, 0.1+0.2 */
	"g 6e616e 7ff8000000000000",
	"g 696e66 7ff0000000000000",
	"g 2d696e66 fff0000000000000",
	"g 6d696e75737a65726f 8000000000000000",
	"g 7375626e6f726d616c 0000000000000001",
	"g 7468697264 3fd3333333333334",
	/* 1234567.0 and 1e15: the Python client's exponent layouts */
	"g 6d696c6c696f6e 4132d68700000000",
	"g 6531350a 430c6bf526340000",
	/* histogram: exactly on a bound (inclusive), below all, above all */
	"h 2f617069 3f747ae147ae147b",
	"h 2f617069 bff0000000000000",
	"h 2f617069 4059000000000000",
	"h 2f617069 3fb999999999999a",
	"C 4014000000000000",
	"C 3fe0000000000000",
	"G c000000000000000",
	"H 4014000000000000",
	"H 412e848000000000",
	"F 4045000000000000",
};

int
main(int argc, char **argv)
{
	struct dump d;
	char *line = NULL, *out;
	size_t len;
	int rc = 1;

	if (dump_setup(&d) != 0) {
		fprintf(stderr, "tp_metrics_dump: setup failed\n");
		goto out;
	}
	if (argc > 1 && strcmp(argv[1], "-") == 0) {
		if ((line = malloc(LINE_MAX_BYTES)) == NULL)
			goto out;
		while (fgets(line, LINE_MAX_BYTES, stdin) != NULL) {
			if (apply(&d, line) != 0) {
				fprintf(stderr, "tp_metrics_dump: bad line\n");
				goto out;
			}
		}
	} else {
		if ((line = malloc(LINE_MAX_BYTES)) == NULL)
			goto out;
		for (size_t i = 0; i < sizeof(builtin_ops) / sizeof(builtin_ops[0]);
		    i++) {
			snprintf(line, LINE_MAX_BYTES, "%s", builtin_ops[i]);
			if (apply(&d, line) != 0) {
				fprintf(stderr, "tp_metrics_dump: bad builtin %zu\n",
				    i);
				goto out;
			}
		}
	}
	if ((out = tp_metrics_render(d.reg, &len)) == NULL)
		goto out;
	rc = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
	free(out);
out:
	free(line);
	tp_metrics_registry_free(d.reg);
	return rc;
}
