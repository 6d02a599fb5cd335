/*
 * test_relay_app.c -- the app's one teardown (relay_app_free()) and the
 * state start-up's open/close (state_redis.h) on the embedded stores:
 * NULL-safe, idempotent, every pointer cleared; and the API v1 counts
 * /healthz formats (relay_v1_health_stats()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app.h"
#include "legacy/broker.h"
#include "settings.h"
#include "state_redis.h"
#include "tokenplace/health.h"
#include "v1/v1_broker.h"

struct fixture {
	struct relay_settings settings;
	struct tp_config_report report;
	struct relay_app app;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	setenv("RELAY_STATE_URL", "memory://", 1);
	if (relay_settings_load(&f->settings, NULL, 0, &f->report) != 0) {
		free(f);
		return -1;
	}
	f->app.settings = &f->settings;
	f->app.config_ok = true;
	f->app.config_report = &f->report;
	f->app.health = tp_health_new();
	if (f->app.health == NULL ||
	    relay_app_init_metrics(&f->app, "test", "test") != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	relay_app_free(&f->app);
	relay_settings_free(&f->settings);
	free(f);
	return 0;
}

static void
free_null_is_a_no_op(void **state)
{
	struct relay_app empty;

	(void)state;
	relay_app_free(NULL);
	memset(&empty, 0, sizeof(empty));
	relay_app_free(&empty);		/* nothing built yet */
	relay_state_close(&empty);
	assert_null(empty.metrics);
	assert_null(empty.state);
}

static void
open_close_memory_state(void **state)
{
	struct fixture *f = *state;
	struct relay_store_stats st;

	assert_int_equal(relay_state_open(&f->app), RELAY_STATE_OPENED);
	assert_non_null(f->app.state);
	assert_non_null(f->app.broker);
	assert_non_null(f->app.v1);
	assert_int_equal(relay_broker_stats(f->app.broker, &st), RELAY_OK);
	assert_int_equal(st.servers, 0);
	relay_state_close(&f->app);
	assert_null(f->app.state);
	assert_null(f->app.broker);
	assert_null(f->app.v1);
	relay_state_close(&f->app);	/* a second close does nothing */
}

static void
free_twice(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(relay_state_open(&f->app), RELAY_STATE_OPENED);
	relay_app_free(&f->app);
	assert_null(f->app.state);
	assert_null(f->app.broker);
	assert_null(f->app.v1);
	assert_null(f->app.metrics);
	assert_null(f->app.health);
	relay_app_free(&f->app);	/* idempotent */
	assert_null(f->app.metrics);
}

static void
v1_health_counts(void **state)
{
	struct fixture *f = *state;
	struct relay_v1_config cfg;
	struct relay_v1_health h;

	assert_int_equal(relay_state_open(&f->app), RELAY_STATE_OPENED);
	relay_v1_config_from_settings(&f->settings, &cfg);
	assert_int_equal(relay_v1_health_stats(f->app.v1, &h), V1_OK);
	assert_int_equal(h.counts.nodes, 0);
	assert_int_equal(h.counts.queued, 0);
	assert_int_equal(h.counts.in_flight, 0);
	assert_int_equal(h.counts.responses, 0);
	assert_int_equal(h.long_polls, 0);
	assert_true(h.max_long_polls > 0);
	assert_int_equal(h.max_long_polls, cfg.max_long_polls);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(free_null_is_a_no_op),
		cmocka_unit_test_setup_teardown(open_close_memory_state, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(free_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(v1_health_counts, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
