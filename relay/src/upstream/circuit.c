/*
 * circuit.c -- the circuit breaker state machine (see circuit.h).
 */
#include "upstream/circuit.h"

void
relay_circuit_init(struct relay_circuit *c, bool enabled, unsigned threshold,
    int64_t open_ms)
{
	c->enabled = enabled;
	c->threshold = threshold;
	c->open_ms = open_ms > 0 ? open_ms : 1;
	c->state = RELAY_CIRCUIT_CLOSED;
	c->failures = 0;
	c->opened_at = 0;
	c->probe_in_flight = false;
	c->opened_count = 0;
}

static void
trip(struct relay_circuit *c, int64_t now)
{
	if (c->state != RELAY_CIRCUIT_OPEN)
		c->opened_count++;
	c->state = RELAY_CIRCUIT_OPEN;
	c->opened_at = now;
	c->failures = 0;
}

static void
reset(struct relay_circuit *c)
{
	c->state = RELAY_CIRCUIT_CLOSED;
	c->failures = 0;
}

enum relay_circuit_verdict
relay_circuit_admit(struct relay_circuit *c, int64_t now,
    int64_t *retry_after_ms)
{
	int64_t wait;

	if (!c->enabled)
		return RELAY_CIRCUIT_ALLOW;
	switch (c->state) {
	case RELAY_CIRCUIT_CLOSED:
		return RELAY_CIRCUIT_ALLOW;
	case RELAY_CIRCUIT_OPEN:
		wait = c->opened_at + c->open_ms - now;
		if (wait > 0) {
			*retry_after_ms = wait;
			return RELAY_CIRCUIT_REJECT;
		}
		c->state = RELAY_CIRCUIT_HALF_OPEN;
		/* FALLTHROUGH */
	case RELAY_CIRCUIT_HALF_OPEN:
		if (c->probe_in_flight) {
			/* The probe decides soon; ask for a retry after it. */
			*retry_after_ms = 1000;
			return RELAY_CIRCUIT_REJECT;
		}
		c->probe_in_flight = true;
		return RELAY_CIRCUIT_PROBE;
	}
	return RELAY_CIRCUIT_ALLOW;
}

void
relay_circuit_result(struct relay_circuit *c, enum relay_circuit_verdict how,
    enum relay_circuit_outcome outcome, int64_t now)
{
	if (!c->enabled || how == RELAY_CIRCUIT_REJECT)
		return;
	if (how == RELAY_CIRCUIT_PROBE) {
		c->probe_in_flight = false;
		/* The health check may have decided meanwhile; it wins. */
		if (c->state != RELAY_CIRCUIT_HALF_OPEN)
			return;
		if (outcome == RELAY_CIRCUIT_SUCCESS)
			reset(c);
		else if (outcome == RELAY_CIRCUIT_FAILURE)
			trip(c, now);
		return;
	}
	if (c->state != RELAY_CIRCUIT_CLOSED)
		return;
	if (outcome == RELAY_CIRCUIT_SUCCESS) {
		c->failures = 0;
	} else if (outcome == RELAY_CIRCUIT_FAILURE) {
		c->failures++;
		if (c->threshold > 0 && c->failures >= c->threshold)
			trip(c, now);
	}
}

void
relay_circuit_health(struct relay_circuit *c, bool up, int64_t now)
{
	if (!c->enabled)
		return;
	if (up) {
		reset(c);
		return;
	}
	if (c->state == RELAY_CIRCUIT_CLOSED)
		trip(c, now);
}

const char *
relay_circuit_state_name(enum relay_circuit_state s)
{
	switch (s) {
	case RELAY_CIRCUIT_CLOSED:
		return "closed";
	case RELAY_CIRCUIT_OPEN:
		return "open";
	case RELAY_CIRCUIT_HALF_OPEN:
		break;
	}
	return "half_open";
}
