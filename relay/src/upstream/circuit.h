/*
 * relay_circuit: the circuit breaker in front of the GPU host, as a plain
 * state machine. Time is passed in (milliseconds on any monotonic clock),
 * nothing locks: the caller serialises calls (forward.c and health.c hold
 * the upstream's mutex).
 *
 *   closed    requests pass; `threshold` consecutive upstream failures, or
 *             the health check finding the upstream down, open it.
 *   open      requests are refused at once (503 + Retry-After) until
 *             `open_ms` have passed since it opened.
 *   half_open one request passes as a probe, the others are refused; the
 *             probe's success closes the circuit, its failure re-opens it.
 *
 * The health check finding the upstream up again closes it from any state.
 */
#ifndef RELAY_CIRCUIT_H
#define RELAY_CIRCUIT_H

#include <stdbool.h>
#include <stdint.h>

enum relay_circuit_state {
	RELAY_CIRCUIT_CLOSED = 0,
	RELAY_CIRCUIT_OPEN,
	RELAY_CIRCUIT_HALF_OPEN,
};

enum relay_circuit_verdict {
	RELAY_CIRCUIT_ALLOW,	/* send it */
	RELAY_CIRCUIT_PROBE,	/* send it as the half-open probe */
	RELAY_CIRCUIT_REJECT,	/* fail fast */
};

enum relay_circuit_outcome {
	RELAY_CIRCUIT_SUCCESS,	/* the upstream answered (any HTTP status) */
	RELAY_CIRCUIT_FAILURE,	/* unreachable, hung, broke the protocol */
	RELAY_CIRCUIT_NEUTRAL,	/* says nothing about the upstream (client left) */
};

struct relay_circuit {
	bool enabled;
	unsigned threshold;		/* 0: only the health check opens it */
	int64_t open_ms;
	enum relay_circuit_state state;
	unsigned failures;		/* consecutive, while closed */
	int64_t opened_at;
	bool probe_in_flight;
	uint64_t opened_count;		/* times it opened */
};

/* Initialises a closed circuit. A disabled circuit admits everything. */
void relay_circuit_init(struct relay_circuit *c, bool enabled,
    unsigned threshold, int64_t open_ms);

/*
 * Decides about one request at `now`. On REJECT sets *retry_after_ms to
 * the time until a probe may pass (at least 1). A PROBE verdict must be
 * followed by relay_circuit_result() with how == RELAY_CIRCUIT_PROBE.
 */
enum relay_circuit_verdict relay_circuit_admit(struct relay_circuit *c,
    int64_t now, int64_t *retry_after_ms);

/* Records the outcome of a request admitted with verdict `how`. */
void relay_circuit_result(struct relay_circuit *c,
    enum relay_circuit_verdict how, enum relay_circuit_outcome outcome,
    int64_t now);

/*
 * Feeds the background health check: `down` (the check failed and the
 * upstream is known down) opens a closed circuit; `up` (the check's
 * debounced state turned up) closes it.
 */
void relay_circuit_health(struct relay_circuit *c, bool up, int64_t now);

/* "closed", "open", "half_open". */
const char *relay_circuit_state_name(enum relay_circuit_state s);

#endif /* RELAY_CIRCUIT_H */
