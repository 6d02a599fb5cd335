/*
 * checks.c -- pre-flight checks and their report. Python is looked at by
 * loading (not initialising) the library the worker would load, so the
 * version printed is the one that will run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenplace/log.h"
#include "tokenplace/netcheck.h"

#include "checks.h"
#include "gpu.h"
#include "os.h"
#include "pyembed.h"
#include "venv.h"

void
gpuhost_jbuf_raw(struct gpuhost_jbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		char *ns;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((ns = realloc(b->s, ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->s = ns;
		b->cap = ncap;
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

void
gpuhost_jbuf_str(struct gpuhost_jbuf *b, const char *s)
{
	if (b->oom)
		return;
	if (s == NULL) {
		gpuhost_jbuf_raw(b, "null");
		return;
	}
	if (tp_json_append_string(&b->s, &b->len, &b->cap, s, strlen(s)) != 0)
		b->oom = 1;
}

char *
gpuhost_jbuf_take(struct gpuhost_jbuf *b)
{
	char *s = b->s;

	if (b->oom) {
		free(s);
		s = NULL;
	}
	memset(b, 0, sizeof(*b));
	return s;
}

const char *
gpuhost_outcome_name(enum gpuhost_outcome o)
{
	switch (o) {
	case GPUHOST_PASS:
		return "pass";
	case GPUHOST_UNKNOWN:
		return "unknown";
	case GPUHOST_SKIP:
		return "skip";
	case GPUHOST_WARN:
		return "warn";
	case GPUHOST_FAIL:
		return "fail";
	}
	return "unknown";
}

enum gpuhost_outcome
gpuhost_apply_mode(enum gpuhost_check_mode mode, enum gpuhost_outcome raw)
{
	if (mode == GPUHOST_CHECK_OFF)
		return GPUHOST_SKIP;
	if ((raw == GPUHOST_FAIL || raw == GPUHOST_WARN) &&
	    mode == GPUHOST_CHECK_WARN)
		return GPUHOST_WARN;
	return raw;
}

void
gpuhost_check_msg(struct gpuhost_check *c, const char *fmt, ...)
{
	size_t off = strlen(c->message);
	va_list ap;

	if (off >= sizeof(c->message) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(c->message + off, sizeof(c->message) - off, fmt, ap);
	va_end(ap);
}

static struct gpuhost_check *
add(struct gpuhost_report *r, const char *name, enum gpuhost_check_mode mode)
{
	struct gpuhost_check *c = &r->c[r->n++];

	memset(c, 0, sizeof(*c));
	c->name = name;
	c->mode = mode;
	return c;
}

static void
check_python(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_venv v;
	struct gpuhost_py *py = NULL;
	struct gpuhost_jbuf j = { 0 };
	const char *cands[GPUHOST_VENV_MAX_CANDIDATES];
	char err[4096];
	enum gpuhost_outcome raw = GPUHOST_PASS;

	gpuhost_jbuf_raw(&j, "{\"venv\":");
	gpuhost_jbuf_str(&j, cfg->venv_path);
	gpuhost_jbuf_raw(&j, ",\"script\":");
	gpuhost_jbuf_str(&j, cfg->script_path);
	if (!gpuhost_is_dir(cfg->checkout_path)) {
		gpuhost_check_msg(c, "checkout directory %s does not exist\n",
		    cfg->checkout_path);
		raw = GPUHOST_FAIL;
	}
	if (!gpuhost_is_file(cfg->script_path)) {
		gpuhost_check_msg(c, "script %s does not exist\n", cfg->script_path);
		raw = GPUHOST_FAIL;
	}
	if (gpuhost_venv_load(cfg->venv_path, cfg->library, &v, err,
	    sizeof(err)) != 0) {
		gpuhost_check_msg(c, "%s\n", err);
		raw = GPUHOST_FAIL;
		goto out;
	}
	gpuhost_jbuf_raw(&j, ",\"interpreter\":");
	gpuhost_jbuf_str(&j, v.interpreter);
	gpuhost_jbuf_raw(&j, ",\"home\":");
	gpuhost_jbuf_str(&j, v.home);
	gpuhost_jbuf_raw(&j, ",\"pyvenv_version\":");
	gpuhost_jbuf_str(&j, v.version);
	for (size_t i = 0; i < v.ncandidates; i++)
		cands[i] = v.candidates[i];
	if (gpuhost_py_open(cands, v.ncandidates, &py, err, sizeof(err)) != 0) {
		gpuhost_check_msg(c, "%s\n", err);
		raw = GPUHOST_FAIL;
		goto out;
	}
	gpuhost_jbuf_raw(&j, ",\"library\":");
	gpuhost_jbuf_str(&j, gpuhost_py_path(py));
	gpuhost_jbuf_raw(&j, ",\"version\":");
	gpuhost_jbuf_str(&j, gpuhost_py_version(py));
	if (raw == GPUHOST_PASS)
		gpuhost_check_msg(c, "Python %.*s from %s; venv %s; script %s\n",
		    (int)strcspn(gpuhost_py_version(py), " "),
		    gpuhost_py_version(py), gpuhost_py_path(py), cfg->venv_path,
		    cfg->script_path);
	gpuhost_py_close(py);
out:
	gpuhost_jbuf_raw(&j, "}");
	c->details = gpuhost_jbuf_take(&j);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
}

static void
check_port(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_jbuf j = { 0 };
	struct tp_port_owner owner;
	enum tp_port_state st;
	char err[256], num[64];
	uint16_t port = (uint16_t)cfg->port;

	st = tp_netcheck_port_bindable(cfg->host, port, err, sizeof(err));
	gpuhost_jbuf_raw(&j, "{\"host\":");
	gpuhost_jbuf_str(&j, cfg->host);
	snprintf(num, sizeof(num), ",\"port\":%u,\"state\":", (unsigned)port);
	gpuhost_jbuf_raw(&j, num);
	gpuhost_jbuf_str(&j, st == TP_PORT_FREE ? "free" :
	    st == TP_PORT_IN_USE ? "in-use" : "error");
	if (st == TP_PORT_FREE) {
		gpuhost_check_msg(c, "TCP %s:%u is free\n", cfg->host, (unsigned)port);
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_PASS);
	} else if (st == TP_PORT_IN_USE) {
		if (tp_netcheck_port_owner(port, &owner) == 0 && owner.pid > 0) {
			gpuhost_check_msg(c, "TCP %s:%u is already in use by pid %ld (%s)\n",
			    cfg->host, (unsigned)port, owner.pid,
			    owner.name[0] ? owner.name : "unknown program");
			snprintf(num, sizeof(num), ",\"owner_pid\":%ld", owner.pid);
			gpuhost_jbuf_raw(&j, num);
			gpuhost_jbuf_raw(&j, ",\"owner\":");
			gpuhost_jbuf_str(&j, owner.name);
		} else
			gpuhost_check_msg(c, "TCP %s:%u is already in use (the OS does not say "
			    "by whom)\n", cfg->host, (unsigned)port);
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
	} else {
		gpuhost_check_msg(c, "cannot test TCP %s:%u: %s\n", cfg->host, (unsigned)port,
		    err);
		gpuhost_jbuf_raw(&j, ",\"error\":");
		gpuhost_jbuf_str(&j, err);
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
	}
	gpuhost_jbuf_raw(&j, "}");
	c->details = gpuhost_jbuf_take(&j);
}

static void
list_json(struct gpuhost_jbuf *j, const struct tp_netaddr_list *l, bool ifs)
{
	gpuhost_jbuf_raw(j, "[");
	for (size_t i = 0; i < l->n; i++) {
		if (i > 0)
			gpuhost_jbuf_raw(j, ",");
		if (ifs) {
			gpuhost_jbuf_raw(j, "{\"address\":");
			gpuhost_jbuf_str(j, l->a[i].text);
			gpuhost_jbuf_raw(j, ",\"interface\":");
			gpuhost_jbuf_str(j, l->a[i].ifname);
			gpuhost_jbuf_raw(j, "}");
		} else
			gpuhost_jbuf_str(j, l->a[i].text);
	}
	gpuhost_jbuf_raw(j, "]");
}

static void
list_text(struct gpuhost_check *c, const char *title,
    const struct tp_netaddr_list *l, bool ifs)
{
	gpuhost_check_msg(c, "  %s:", title);
	if (l->n == 0)
		gpuhost_check_msg(c, " (none)");
	for (size_t i = 0; i < l->n; i++) {
		if (ifs && l->a[i].ifname[0] != '\0')
			gpuhost_check_msg(c, " %s (%s)", l->a[i].text, l->a[i].ifname);
		else
			gpuhost_check_msg(c, " %s", l->a[i].text);
	}
	gpuhost_check_msg(c, "\n");
}

static void
check_dns(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct tp_netaddr_list *res = calloc(1, sizeof(*res));
	struct tp_netaddr_list *loc = calloc(1, sizeof(*loc));
	struct gpuhost_jbuf j = { 0 };
	enum tp_dns_verdict v;
	enum gpuhost_outcome raw;
	char rerr[256] = "", lerr[256] = "";
	size_t m;

	if (res == NULL || loc == NULL) {
		gpuhost_check_msg(c, "out of memory\n");
		c->outcome = gpuhost_apply_mode(c->mode, GPUHOST_FAIL);
		goto out;
	}
	if (cfg->dns_name[0] == '\0') {
		gpuhost_check_msg(c, "no network.dns_name configured\n");
		c->outcome = GPUHOST_SKIP;
		goto out;
	}
	(void)tp_netcheck_resolve(cfg->dns_name, res, rerr, sizeof(rerr));
	if (tp_netcheck_local_addrs(loc, lerr, sizeof(lerr)) != 0)
		gpuhost_check_msg(c, "cannot list local addresses: %s\n", lerr);
	v = tp_netcheck_compare(res, loc, &m);
	switch (v) {
	case TP_DNS_MATCH:
		gpuhost_check_msg(c, "%s resolves to %s, an address of this host\n",
		    cfg->dns_name, res->a[m].text);
		raw = GPUHOST_PASS;
		break;
	case TP_DNS_MATCH_LINKLOCAL:
		gpuhost_check_msg(c, "%s resolves only to link-local %s: other machines on "
		    "other links cannot reach it\n", cfg->dns_name,
		    res->a[m].text);
		raw = GPUHOST_WARN;
		break;
	case TP_DNS_MATCH_LOOPBACK:
		gpuhost_check_msg(c, "%s resolves only to loopback %s (a hosts-file entry?): "
		    "useless to remote clients\n", cfg->dns_name, res->a[m].text);
		raw = GPUHOST_WARN;
		break;
	case TP_DNS_NO_MATCH:
		gpuhost_check_msg(c, "%s does not resolve to this host\n", cfg->dns_name);
		raw = GPUHOST_FAIL;
		break;
	case TP_DNS_UNRESOLVED:
	default:
		gpuhost_check_msg(c, "%s does not resolve: %s\n", cfg->dns_name, rerr);
		raw = GPUHOST_FAIL;
		break;
	}
	list_text(c, "resolved", res, false);
	list_text(c, "this host", loc, true);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
	gpuhost_jbuf_raw(&j, "{\"name\":");
	gpuhost_jbuf_str(&j, cfg->dns_name);
	gpuhost_jbuf_raw(&j, ",\"verdict\":");
	gpuhost_jbuf_str(&j, tp_dns_verdict_name(v));
	if (v == TP_DNS_UNRESOLVED) {
		gpuhost_jbuf_raw(&j, ",\"error\":");
		gpuhost_jbuf_str(&j, rerr);
	}
	gpuhost_jbuf_raw(&j, ",\"resolved\":");
	list_json(&j, res, false);
	gpuhost_jbuf_raw(&j, ",\"local\":");
	list_json(&j, loc, true);
	gpuhost_jbuf_raw(&j, "}");
	c->details = gpuhost_jbuf_take(&j);
out:
	free(res);
	free(loc);
}

static void
check_firewall(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	enum gpuhost_outcome raw = GPUHOST_UNKNOWN;

	gpuhost_firewall_check(cfg, &raw, c->message, sizeof(c->message),
	    &c->details);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
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

static void
run_named(const struct gpuhost_config *cfg, const char *name,
    struct gpuhost_report *r)
{
	struct gpuhost_check *c;

	if (strcmp(name, "python") == 0) {
		c = add(r, "python", cfg->mode_python);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			check_python(cfg, c);
	} else if (strcmp(name, "port") == 0) {
		c = add(r, "port", cfg->mode_port);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			check_port(cfg, c);
	} else if (strcmp(name, "dns") == 0) {
		c = add(r, "dns", cfg->mode_dns);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			check_dns(cfg, c);
	} else if (strcmp(name, "firewall") == 0) {
		c = add(r, "firewall", cfg->mode_firewall);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			check_firewall(cfg, c);
	} else if (strcmp(name, "args") == 0) {
		c = add(r, "args", cfg->mode_args);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			gpuhost_check_args(cfg, c);
	} else if (strcmp(name, "env") == 0) {
		c = add(r, "env", cfg->mode_environment);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			gpuhost_check_environment(cfg, c);
	} else if (strcmp(name, "gpu") == 0) {
		c = add(r, "gpu", cfg->mode_gpu);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			gpuhost_check_gpu(cfg, c);
	} else if (strcmp(name, "model") == 0) {
		c = add(r, "model", cfg->mode_model);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			gpuhost_check_model(cfg, c);
	} else if (strcmp(name, "relay") == 0) {
		c = add(r, "relay", cfg->mode_relay);
		if (c->mode == GPUHOST_CHECK_OFF)
			c->outcome = GPUHOST_SKIP;
		else
			gpuhost_check_relay(cfg, c);
	}
}

void
gpuhost_checks_run(const struct gpuhost_config *cfg, unsigned flags,
    struct gpuhost_report *r)
{
	memset(r, 0, sizeof(*r));
	gpuhost_gpu_probe_forget();
	run_named(cfg, "python", r);
	if ((flags & GPUHOST_CHECKS_NO_PORT) == 0)
		run_named(cfg, "port", r);
	run_named(cfg, "dns", r);
	run_named(cfg, "firewall", r);
	run_named(cfg, "args", r);
	run_named(cfg, "relay", r);
	run_named(cfg, "env", r);
	run_named(cfg, "gpu", r);
	run_named(cfg, "model", r);
	finish(r);
}

void
gpuhost_checks_run_one(const struct gpuhost_config *cfg, const char *name,
    struct gpuhost_report *r)
{
	memset(r, 0, sizeof(*r));
	gpuhost_gpu_probe_forget();
	run_named(cfg, name, r);
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
	struct gpuhost_jbuf j = { 0 };

	gpuhost_jbuf_raw(&j, "{\"result\":");
	gpuhost_jbuf_str(&j, gpuhost_outcome_name(r->overall));
	gpuhost_jbuf_raw(&j, ",\"checks\":[");
	for (size_t i = 0; i < r->n; i++) {
		const struct gpuhost_check *c = &r->c[i];
		size_t n = strlen(c->message);
		char *m = malloc(n + 1);

		if (m != NULL) {
			memcpy(m, c->message, n + 1);
			while (n > 0 && m[n - 1] == '\n')
				m[--n] = '\0';
		}
		gpuhost_jbuf_raw(&j, i ? ",{\"name\":" : "{\"name\":");
		gpuhost_jbuf_str(&j, c->name);
		gpuhost_jbuf_raw(&j, ",\"mode\":");
		gpuhost_jbuf_str(&j, gpuhost_check_mode_name(c->mode));
		gpuhost_jbuf_raw(&j, ",\"outcome\":");
		gpuhost_jbuf_str(&j, gpuhost_outcome_name(c->outcome));
		gpuhost_jbuf_raw(&j, ",\"message\":");
		gpuhost_jbuf_str(&j, m != NULL ? m : "");
		free(m);
		gpuhost_jbuf_raw(&j, ",\"details\":");
		gpuhost_jbuf_raw(&j, c->details != NULL ? c->details : "null");
		gpuhost_jbuf_raw(&j, "}");
	}
	gpuhost_jbuf_raw(&j, "]}\n");
	return gpuhost_jbuf_take(&j);
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
