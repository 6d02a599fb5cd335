/*
 * checks.h -- pre-flight checks (`check`, and before every start).
 *
 * Each check has a mode from the config (fail|warn|off). A raw failure
 * becomes FAIL or WARN by that mode; `off` becomes SKIP. UNKNOWN (the OS
 * could not tell, e.g. the Linux firewall) never fails. The report
 * renders for people and as JSON; the exit code is 0 pass, 1 warn, 2 fail.
 */
#ifndef GPUHOST_CHECKS_H
#define GPUHOST_CHECKS_H

#include <stdio.h>

#include "config.h"

enum gpuhost_outcome {
	GPUHOST_PASS = 0,
	GPUHOST_UNKNOWN,
	GPUHOST_SKIP,
	GPUHOST_WARN,
	GPUHOST_FAIL,
};

#define GPUHOST_MAX_CHECKS 12	/* python, port, dns, firewall, args, relay, env, gpu, model */
#define GPUHOST_CHECK_MSG 2048

struct gpuhost_check {
	const char *name;
	enum gpuhost_check_mode mode;
	enum gpuhost_outcome outcome;
	char message[GPUHOST_CHECK_MSG];	/* one or more lines for people */
	char *details;				/* JSON object text (malloc'd) or NULL */
};

struct gpuhost_report {
	size_t n;
	struct gpuhost_check c[GPUHOST_MAX_CHECKS];
	enum gpuhost_outcome overall;	/* worst of PASS/WARN/FAIL */
};

/* Flags for gpuhost_checks_run(). */
#define GPUHOST_CHECKS_NO_PORT 0x1u	/* the server is ours and running */

/* Runs every check; free the report with gpuhost_report_free(). */
void gpuhost_checks_run(const struct gpuhost_config *cfg, unsigned flags,
    struct gpuhost_report *r);

/*
 * As above, only the named check ("python", "port", "dns", "firewall",
 * "args", "relay", "env", "gpu", "model"); r->n is 0 for an
 * unknown name.
 */
void gpuhost_checks_run_one(const struct gpuhost_config *cfg,
    const char *name, struct gpuhost_report *r);

void gpuhost_report_print(const struct gpuhost_report *r, FILE *fp);

/* Returns malloc'd JSON ({"result":..,"checks":[..]}) or NULL. */
char *gpuhost_report_json(const struct gpuhost_report *r);

/* 0 pass, 1 warn, 2 fail. */
int gpuhost_report_exit_code(const struct gpuhost_report *r);

const char *gpuhost_outcome_name(enum gpuhost_outcome o);

void gpuhost_report_free(struct gpuhost_report *r);

/* Applies the mode to a raw outcome (pure). */
enum gpuhost_outcome gpuhost_apply_mode(enum gpuhost_check_mode mode,
    enum gpuhost_outcome raw);

/* Small growable buffer for JSON building, shared with the firewall code. */
struct gpuhost_jbuf {
	char *s;
	size_t len, cap;
	int oom;
};
void gpuhost_jbuf_raw(struct gpuhost_jbuf *b, const char *s);
void gpuhost_jbuf_str(struct gpuhost_jbuf *b, const char *s);
/* Returns the string (caller frees) or NULL if memory ran out. */
char *gpuhost_jbuf_take(struct gpuhost_jbuf *b);

/* Appends printf-style text to c->message (cut when full). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void gpuhost_check_msg(struct gpuhost_check *c, const char *fmt, ...);

/*
 * The `args` check (check_args.c): runs the script with --help in the
 * venv, in a worker process (so with the same Python, options and
 * [environment] as the service, but without relay.token), bounded by
 * checks.args_timeout, output captured and never logged, in its own
 * network namespace where Linux allows it. Every --option in the
 * expanded python.args must appear in that help: a missing one is FAIL
 * (mode applied) naming it and listing what the script offers. No usable
 * help (non-zero exit, timeout, no options printed) is WARN.
 */
void gpuhost_check_args(const struct gpuhost_config *cfg,
    struct gpuhost_check *c);

/*
 * The `relay` check (check_relay.c): without relay.url, FAIL (mode
 * applied; warn by default) saying server.py polls its own default
 * relay; with it, GET <relay>/livez (then /healthz) within
 * checks.relay_timeout, FAIL when neither answers 200. Also notes a
 * relay.token in a config file that other users can read.
 */
void gpuhost_check_relay(const struct gpuhost_config *cfg,
    struct gpuhost_check *c);

/*
 * The `env` check (check_env.c): TOKEN_PLACE_ENV (production
 * unless [environment] names another) against the --server_host of
 * python.args (network.host without one). Not production and not
 * loopback: FAIL (mode applied), since token.place then runs Flask's
 * debugger on the network; not production on loopback: WARN.
 */
void gpuhost_check_environment(const struct gpuhost_config *cfg,
    struct gpuhost_check *c);

/*
 * Platform firewall inspection (posix/firewall.c, win/firewall.c): sets
 * the raw outcome, a message and optional JSON details.
 */
void gpuhost_firewall_check(const struct gpuhost_config *cfg,
    enum gpuhost_outcome *raw, char *msg, size_t msglen, char **details);

#endif
