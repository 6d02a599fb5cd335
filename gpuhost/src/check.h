/*
 * check.h -- one pre-flight check: its record, its outcomes and the
 * helpers every check uses (check.c), and the function each check
 * implements. The bottom of the checks: check_*.c and the firewall code
 * include only this; checks.c on top holds the table, the run and the
 * report.
 *
 * Each check has a mode from the config (fail|warn|off). A raw failure
 * becomes FAIL or WARN by that mode (gpuhost_apply_mode()); `off` becomes
 * SKIP and the check does not run. UNKNOWN (the OS could not tell, e.g.
 * the Linux firewall) never fails.
 */
#ifndef GPUHOST_CHECK_H
#define GPUHOST_CHECK_H

#include <stddef.h>

#include "config.h"

enum gpuhost_outcome {
	GPUHOST_PASS = 0,
	GPUHOST_UNKNOWN,
	GPUHOST_SKIP,
	GPUHOST_WARN,
	GPUHOST_FAIL,
};

#define GPUHOST_CHECK_MSG 2048

struct gpuhost_check {
	const char *name;
	enum gpuhost_check_mode mode;
	enum gpuhost_outcome outcome;
	char message[GPUHOST_CHECK_MSG];	/* one or more lines for people */
	char *details;				/* JSON object text (malloc'd) or NULL */
};

/*
 * A check: runs against cfg and fills c (already zeroed, with name and
 * mode set, mode not off): c->message (through gpuhost_check_msg()),
 * c->details (malloc'd JSON object text or NULL; the report frees it) and
 * c->outcome, with the mode applied. Never fails as a function: trouble
 * is an outcome.
 */
typedef void gpuhost_check_fn(const struct gpuhost_config *cfg,
    struct gpuhost_check *c);

/* "pass", "unknown", "skip", "warn", "fail" (static strings). */
const char *gpuhost_outcome_name(enum gpuhost_outcome o);

/* Applies the mode to a raw outcome (pure). */
enum gpuhost_outcome gpuhost_apply_mode(enum gpuhost_check_mode mode,
    enum gpuhost_outcome raw);

/* Appends printf-style text to c->message (cut when full). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void gpuhost_check_msg(struct gpuhost_check *c, const char *fmt, ...);

/* ---- the checks, one file each ---------------------------------------- */

/*
 * The `python` check (check_python.c): the checkout and script exist, the
 * venv's pyvenv.cfg names a Python, and that libpython loads (loaded, not
 * initialised), so the version reported is the one that will run.
 */
gpuhost_check_fn gpuhost_check_python;

/*
 * The `port` check (check_net.c): network.host:network.port can be bound;
 * when taken, says by whom where the OS tells.
 */
gpuhost_check_fn gpuhost_check_port;

/*
 * The `dns` check (check_net.c): network.dns_name resolves to an address
 * of this host (SKIP without one); link-local or loopback only is WARN.
 */
gpuhost_check_fn gpuhost_check_dns;

/*
 * The `firewall` check (posix/firewall.c, win/firewall.c): whether the
 * platform firewall lets network.port in; UNKNOWN when it cannot be read.
 */
gpuhost_check_fn gpuhost_check_firewall;

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
gpuhost_check_fn gpuhost_check_args;

/*
 * The `relay` check (check_relay.c): without relay.url, FAIL (mode
 * applied; warn by default) saying server.py polls its own default
 * relay; with it, GET <relay>/livez (then /healthz) within
 * checks.relay_timeout, FAIL when neither answers 200. Also notes a
 * relay.token in a config file that other users can read.
 */
gpuhost_check_fn gpuhost_check_relay;

/*
 * The `env` check (check_env.c): TOKEN_PLACE_ENV (production
 * unless [environment] names another) against the --server_host of
 * python.args (network.host without one). Not production and not
 * loopback: FAIL (mode applied), since token.place then runs Flask's
 * debugger on the network; not production on loopback: WARN.
 */
gpuhost_check_fn gpuhost_check_environment;

/*
 * The `gpu` check (check_gpu.c): the NVML snapshot, then the probe (in a
 * worker bounded by checks.gpu_timeout) unless the mock LLM is configured.
 * No driver: WARN. A llama_cpp without GPU offload while a GPU is
 * present: FAIL (mode applied), naming token.place's CUDA install route.
 * llama_cpp absent or the mock LLM: the runtime part is skipped.
 */
gpuhost_check_fn gpuhost_check_gpu;

/*
 * The `model` check (check_gpu.c): whether the model file token.place
 * will load (its ModelManager's model_path, under data.dir when set) is
 * there and its size, or will be downloaded at the first start. Shares
 * the probe run with the `gpu` check of the same process.
 */
gpuhost_check_fn gpuhost_check_model;

#endif
