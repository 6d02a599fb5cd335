/*
 * tp_health: process lifecycle and readiness checks.
 *
 * The lifecycle only moves forward: starting -> ready -> draining ->
 * stopped. Readiness checks are named; each holds its last debounced
 * outcome, which changes to FAIL only after `fail_threshold` consecutive
 * failures and back to OK only after `ok_threshold` consecutive successes.
 * Results arrive either from a probe function run by tp_health_run_checks()
 * or pushed with tp_health_report(). All functions are thread safe.
 */
#ifndef TOKENPLACE_HEALTH_H
#define TOKENPLACE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tp_lifecycle {
	TP_LIFECYCLE_STARTING = 0,
	TP_LIFECYCLE_READY,
	TP_LIFECYCLE_DRAINING,
	TP_LIFECYCLE_STOPPED,
};

enum tp_check_outcome {
	TP_CHECK_UNKNOWN = 0,	/* never run yet */
	TP_CHECK_OK,
	TP_CHECK_WARN,		/* reported, never makes the service unready */
	TP_CHECK_FAIL,
};

#define TP_HEALTH_MAX_CHECKS 16
#define TP_HEALTH_NAME_MAX 48
#define TP_HEALTH_REASON_MAX 160

/*
 * A probe writes a short reason (NUL-terminated, may be empty) and returns
 * its raw outcome; tp_health applies the debounce.
 */
typedef enum tp_check_outcome (*tp_health_probe_fn)(void *arg, char *reason,
    size_t reason_len);

struct tp_health_check_status {
	char name[TP_HEALTH_NAME_MAX];
	enum tp_check_outcome outcome;	/* debounced */
	bool required;			/* FAIL makes the service unready */
	char reason[TP_HEALTH_REASON_MAX];
	int64_t since_unix_ms;		/* when the debounced outcome last changed */
	uint32_t consecutive_failures;
};

struct tp_health;

/* Returns a new health state in STARTING, or NULL when out of memory. */
struct tp_health *tp_health_new(void);

/* Frees h. Probes must no longer be running. NULL is accepted. */
void tp_health_free(struct tp_health *h);

/*
 * Moves the lifecycle to `to` if that is a step forward; returns true when
 * the state changed, false when `to` is not after the current state.
 */
bool tp_health_transition(struct tp_health *h, enum tp_lifecycle to);

enum tp_lifecycle tp_health_lifecycle(const struct tp_health *h);

/* Lower-case name: "starting", "ready", "draining", "stopped". */
const char *tp_lifecycle_name(enum tp_lifecycle s);

/* "unknown", "ok", "warn", "fail". */
const char *tp_check_outcome_name(enum tp_check_outcome o);

/*
 * Registers a check. `probe` may be NULL for pushed checks. A check that is
 * not `required` never makes the service unready. Thresholds below 1 are
 * treated as 1. Returns the check index (>= 0), or -1 when the table is
 * full or the name is taken.
 */
int tp_health_add_check(struct tp_health *h, const char *name, bool required,
    unsigned fail_threshold, unsigned ok_threshold, tp_health_probe_fn probe,
    void *arg);

/*
 * Feeds one raw result for check `idx`. Returns true when the debounced
 * outcome changed (callers log transitions).
 */
bool tp_health_report(struct tp_health *h, int idx, enum tp_check_outcome raw,
    const char *reason);

/* Runs every registered probe once (outside the lock) and reports it. */
void tp_health_run_checks(struct tp_health *h);

/*
 * Copies the status of up to `max` checks into out; returns how many exist.
 */
size_t tp_health_snapshot(const struct tp_health *h,
    struct tp_health_check_status *out, size_t max);

/*
 * Returns true when the service should receive traffic: lifecycle READY and
 * no required check debounced to FAIL.
 */
bool tp_health_is_ready(const struct tp_health *h);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPLACE_HEALTH_H */
