/*
 * checks.c -- the pre-flight checks as a whole: the table of checks (in
 * the order they run and report), the run and the report. Each check
 * lives in a file of its own behind the gpuhost_check_fn of check.h.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/buf.h"

#include "checks.h"
#include "gpu.h"

/* One row per check: its name, where its mode is in the config, its code. */
struct check_entry {
	const char *name;
	size_t mode_offset;		/* offsetof(struct gpuhost_config, mode_*) */
	gpuhost_check_fn *run;
	unsigned skip_flags;		/* GPUHOST_CHECKS_* that leave it out */
};

#define MODE(field)	offsetof(struct gpuhost_config, field)

static const struct check_entry checks[] = {
	{ "python", MODE(mode_python), gpuhost_check_python, 0 },
	{ "port", MODE(mode_port), gpuhost_check_port, GPUHOST_CHECKS_NO_PORT },
	{ "dns", MODE(mode_dns), gpuhost_check_dns, 0 },
	{ "firewall", MODE(mode_firewall), gpuhost_check_firewall, 0 },
	{ "args", MODE(mode_args), gpuhost_check_args, 0 },
	{ "relay", MODE(mode_relay), gpuhost_check_relay, 0 },
	{ "env", MODE(mode_environment), gpuhost_check_environment, 0 },
	{ "gpu", MODE(mode_gpu), gpuhost_check_gpu, 0 },
	{ "model", MODE(mode_model), gpuhost_check_model, 0 },
};

#define NCHECKS (sizeof(checks) / sizeof(checks[0]))

_Static_assert(NCHECKS <= GPUHOST_MAX_CHECKS,
    "struct gpuhost_report has room for every check");

/* Runs one row into the next slot of r; `off` skips the code. */
static void
run_entry(const struct gpuhost_config *cfg, const struct check_entry *e,
    struct gpuhost_report *r)
{
	struct gpuhost_check *c = &r->c[r->n++];

	memset(c, 0, sizeof(*c));
	c->name = e->name;
	memcpy(&c->mode, (const char *)cfg + e->mode_offset, sizeof(c->mode));
	if (c->mode == GPUHOST_CHECK_OFF)
		c->outcome = GPUHOST_SKIP;
	else
		e->run(cfg, c);
}

static void
finish(struct gpuhost_report *r)
{
	r->overall = GPUHOST_PASS;
	for (size_t i = 0; i < r->n; i++) {
		if (r->c[i].outcome == GPUHOST_FAIL)
			r->overall = GPUHOST_FAIL;
		else if (r->c[i].outcome == GPUHOST_WARN &&
		    r->overall != GPUHOST_FAIL)
			r->overall = GPUHOST_WARN;
	}
}

void
gpuhost_checks_run(const struct gpuhost_config *cfg, unsigned flags,
    struct gpuhost_report *r)
{
	memset(r, 0, sizeof(*r));
	gpuhost_gpu_probe_forget();
	for (size_t i = 0; i < NCHECKS; i++) {
		if ((checks[i].skip_flags & flags) == 0)
			run_entry(cfg, &checks[i], r);
	}
	finish(r);
}

void
gpuhost_checks_run_one(const struct gpuhost_config *cfg, const char *name,
    struct gpuhost_report *r)
{
	memset(r, 0, sizeof(*r));
	gpuhost_gpu_probe_forget();
	for (size_t i = 0; i < NCHECKS; i++) {
		if (strcmp(checks[i].name, name) == 0) {
			run_entry(cfg, &checks[i], r);
			break;
		}
	}
	finish(r);
}

void
gpuhost_report_print(const struct gpuhost_report *r, FILE *fp)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct gpuhost_check *c = &r->c[i];
		const char *p = c->message;
		bool first = true;

		fprintf(fp, "[%-7s] %-8s ", gpuhost_outcome_name(c->outcome),
		    c->name);
		if (*p == '\0')
			fprintf(fp, "(mode %s)\n", gpuhost_check_mode_name(c->mode));
		while (*p != '\0') {
			const char *nl = strchr(p, '\n');
			int n = nl ? (int)(nl - p) : (int)strlen(p);

			fprintf(fp, "%s%.*s\n", first ? "" : "                   ",
			    n, p);
			first = false;
			p += n + (nl ? 1 : 0);
		}
	}
	fprintf(fp, "result: %s\n", gpuhost_outcome_name(r->overall));
}

char *
gpuhost_report_json(const struct gpuhost_report *r)
{
	struct tp_buf j = TP_BUF_INIT;

	tp_buf_puts(&j, "{\"result\":");
	tp_buf_json_str(&j, gpuhost_outcome_name(r->overall));
	tp_buf_puts(&j, ",\"checks\":[");
	for (size_t i = 0; i < r->n; i++) {
		const struct gpuhost_check *c = &r->c[i];
		size_t n = strlen(c->message);
		char *m = malloc(n + 1);

		if (m != NULL) {
			memcpy(m, c->message, n + 1);
			while (n > 0 && m[n - 1] == '\n')
				m[--n] = '\0';
		}
		tp_buf_puts(&j, i ? ",{\"name\":" : "{\"name\":");
		tp_buf_json_str(&j, c->name);
		tp_buf_puts(&j, ",\"mode\":");
		tp_buf_json_str(&j, gpuhost_check_mode_name(c->mode));
		tp_buf_puts(&j, ",\"outcome\":");
		tp_buf_json_str(&j, gpuhost_outcome_name(c->outcome));
		tp_buf_puts(&j, ",\"message\":");
		tp_buf_json_str(&j, m != NULL ? m : "");
		free(m);
		tp_buf_puts(&j, ",\"details\":");
		tp_buf_puts(&j, c->details != NULL ? c->details : "null");
		tp_buf_puts(&j, "}");
	}
	tp_buf_puts(&j, "]}\n");
	return tp_buf_finish(&j, NULL);
}

int
gpuhost_report_exit_code(const struct gpuhost_report *r)
{
	return r->overall == GPUHOST_FAIL ? 2 : r->overall == GPUHOST_WARN ? 1 : 0;
}

void
gpuhost_report_free(struct gpuhost_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->c[i].details);
		r->c[i].details = NULL;
	}
	r->n = 0;
}
