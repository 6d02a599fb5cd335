/* Unit tests for tp_health: lifecycle order, debounce, readiness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tokenplace/health.h"

static void
test_lifecycle_moves_forward_only(void **state)
{
	struct tp_health *h = tp_health_new();

	(void)state;
	assert_non_null(h);
	assert_int_equal(tp_health_lifecycle(h), TP_LIFECYCLE_STARTING);
	assert_false(tp_health_is_ready(h));
	assert_true(tp_health_transition(h, TP_LIFECYCLE_READY));
	assert_true(tp_health_is_ready(h));
	assert_false(tp_health_transition(h, TP_LIFECYCLE_READY));
	assert_true(tp_health_transition(h, TP_LIFECYCLE_DRAINING));
	assert_false(tp_health_transition(h, TP_LIFECYCLE_READY));
	assert_int_equal(tp_health_lifecycle(h), TP_LIFECYCLE_DRAINING);
	assert_false(tp_health_is_ready(h));
	assert_true(tp_health_transition(h, TP_LIFECYCLE_STOPPED));
	assert_string_equal(tp_lifecycle_name(TP_LIFECYCLE_STOPPED), "stopped");
	tp_health_free(h);
}

static void
test_debounce(void **state)
{
	struct tp_health *h = tp_health_new();
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	int idx;

	(void)state;
	tp_health_transition(h, TP_LIFECYCLE_READY);
	idx = tp_health_add_check(h, "upstream", true, 3, 2, NULL, NULL);
	assert_int_equal(idx, 0);
	assert_int_equal(tp_health_add_check(h, "upstream", true, 1, 1, NULL,
	    NULL), -1);

	/* first verdict is taken at once */
	assert_true(tp_health_report(h, idx, TP_CHECK_OK, ""));
	assert_true(tp_health_is_ready(h));
	/* two failures are not enough */
	assert_false(tp_health_report(h, idx, TP_CHECK_FAIL, "refused"));
	assert_false(tp_health_report(h, idx, TP_CHECK_FAIL, "refused"));
	assert_true(tp_health_is_ready(h));
	/* the third is */
	assert_true(tp_health_report(h, idx, TP_CHECK_FAIL, "timeout"));
	assert_false(tp_health_is_ready(h));
	assert_int_equal(tp_health_snapshot(h, st, TP_HEALTH_MAX_CHECKS), 1);
	assert_int_equal(st[0].outcome, TP_CHECK_FAIL);
	assert_string_equal(st[0].reason, "timeout");
	assert_int_equal(st[0].consecutive_failures, 3);
	/* one success does not bring it back, two do */
	assert_false(tp_health_report(h, idx, TP_CHECK_OK, ""));
	assert_false(tp_health_is_ready(h));
	assert_true(tp_health_report(h, idx, TP_CHECK_OK, ""));
	assert_true(tp_health_is_ready(h));
	tp_health_free(h);
}

static void
test_optional_check_never_blocks(void **state)
{
	struct tp_health *h = tp_health_new();
	int idx;

	(void)state;
	tp_health_transition(h, TP_LIFECYCLE_READY);
	idx = tp_health_add_check(h, "dns", false, 1, 1, NULL, NULL);
	assert_true(tp_health_report(h, idx, TP_CHECK_FAIL, "nxdomain"));
	assert_true(tp_health_is_ready(h));
	assert_false(tp_health_report(h, 7, TP_CHECK_FAIL, "bad index"));
	tp_health_free(h);
}

static int probe_calls;

static enum tp_check_outcome
probe(void *arg, char *reason, size_t len)
{
	probe_calls++;
	snprintf(reason, len, "probe %s", (const char *)arg);
	return probe_calls < 2 ? TP_CHECK_FAIL : TP_CHECK_OK;
}

static void
test_probes_run(void **state)
{
	struct tp_health *h = tp_health_new();
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	char name[TP_HEALTH_NAME_MAX];

	(void)state;
	tp_health_transition(h, TP_LIFECYCLE_READY);
	assert_int_equal(tp_health_add_check(h, "p", true, 1, 1, probe, "x"), 0);
	tp_health_run_checks(h);
	assert_false(tp_health_is_ready(h));
	tp_health_snapshot(h, st, TP_HEALTH_MAX_CHECKS);
	assert_string_equal(st[0].reason, "probe x");
	tp_health_run_checks(h);
	assert_true(tp_health_is_ready(h));
	assert_int_equal(probe_calls, 2);
	/* the table is bounded */
	for (int i = 1; i < TP_HEALTH_MAX_CHECKS; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		assert_int_equal(tp_health_add_check(h, name, false, 1, 1, NULL,
		    NULL), i);
	}
	assert_int_equal(tp_health_add_check(h, "overflow", false, 1, 1, NULL,
	    NULL), -1);
	tp_health_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_moves_forward_only),
		cmocka_unit_test(test_debounce),
		cmocka_unit_test(test_optional_check_never_blocks),
		cmocka_unit_test(test_probes_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
