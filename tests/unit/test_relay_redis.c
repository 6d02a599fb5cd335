/*
 * test_relay_redis.c -- the hiredis adapter against a real redis-server:
 * URL parsing (and that no error names the password), scripts through
 * EVALSHA with the reload after NOSCRIPT, binary-safe keys and replies,
 * the server's TIME, a server that goes away (fast 503-class failures,
 * one down/up transition) and comes back without a new adapter, a wrong
 * password or database at start, and Pub/Sub wake-ups with the
 * re-subscribe callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "redis/redis.h"
#include "redis/timebase.h"
#include "redis_server.h"
#include "settings.h"
#include "state_redis.h"
#include "tokenplace/health.h"
#include "tokenplace/metrics.h"

static struct test_redis srv;

static int
group_setup(void **state)
{
	(void)state;
	return test_redis_start(&srv);
}

static int
group_teardown(void **state)
{
	(void)state;
	test_redis_stop(&srv);
	return 0;
}

static struct relay_redis *
adapter(void)
{
	struct relay_redis_config cfg;
	struct relay_redis *r;
	char err[256];

	test_redis_config(&srv, &cfg);
	r = relay_redis_new(&cfg, NULL, err, sizeof(err));
	if (r == NULL)
		fail_msg("relay_redis_new: %s", err);
	return r;
}

static void
test_url_parse(void **state)
{
	struct relay_redis_config c;
	char err[256];

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse("redis://127.0.0.1:6380/3", &c,
	    err, sizeof(err)), 0);
	assert_string_equal(c.host, "127.0.0.1");
	assert_int_equal(c.port, 6380);
	assert_int_equal(c.db, 3);
	assert_string_equal(c.password, "");

	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse("redis://valkey", &c, err,
	    sizeof(err)), 0);
	assert_string_equal(c.host, "valkey");
	assert_int_equal(c.port, 6379);
	assert_int_equal(c.db, 0);

	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse(
	    "redis://app:p%40ss@w@[::1]:7000/1", &c, err, sizeof(err)), 0);
	assert_string_equal(c.user, "app");
	assert_string_equal(c.password, "p@ss@w");
	assert_string_equal(c.host, "::1");
	assert_int_equal(c.port, 7000);

	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse(
	    "redis://:secret@127.0.0.1", &c, err, sizeof(err)), 0);
	assert_string_equal(c.user, "");
	assert_string_equal(c.password, "secret");

	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse(
	    "unix:///run/redis/redis.sock?db=2", &c, err, sizeof(err)), 0);
	assert_string_equal(c.unix_path, "/run/redis/redis.sock");
	assert_int_equal(c.db, 2);
	assert_string_equal(c.host, "");

	/* The scheme is case-insensitive (RFC 3986), as in every URL parser. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse("REDIS://Valkey:6380/4", &c, err,
	    sizeof(err)), 0);
	assert_string_equal(c.host, "Valkey");
	assert_int_equal(c.port, 6380);
	assert_int_equal(c.db, 4);
	memset(&c, 0, sizeof(c));
	assert_int_equal(relay_redis_url_parse("Unix:///s.sock", &c, err,
	    sizeof(err)), 0);
	assert_string_equal(c.unix_path, "/s.sock");
	assert_int_equal(relay_redis_url_parse("RediSS://h", &c, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "TLS"));

	static const char *const bad[] = {
		"rediss://127.0.0.1", "redis://", "redis://h:0", "redis://h:99999",
		"redis://h:12x", "redis://h/db", "redis://h/1?x=1", "unix://rel.sock",
		"unix:///s?db=x", "http://h", "redis://user@h", "redis://h /0",
		"redis://[::1", "redis://:pw%zz@h", "redis://[]", "redis://[::1]x",
		"redis://:p@", "redis://h:", "redis:/h", "memory://x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (relay_redis_url_parse(bad[i], &c, err, sizeof(err)) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(relay_redis_url_parse("rediss://:hunter2@h", &c, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "TLS"));
	assert_null(strstr(err, "hunter2"));
	assert_int_equal(relay_redis_url_parse("redis://:hunter2@h:0", &c, err,
	    sizeof(err)), -1);
	assert_null(strstr(err, "hunter2"));
}

static const char *const ECHO_LUA =
    "#!lua\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return {redis.call('GET', KEYS[1]), 42, false, {ARGV[2]}}\n";

static void
test_eval_binary_safe_and_noscript_reload(void **state)
{
	struct relay_redis *r = adapter();
	struct relay_redis_reply rep;
	const char key[] = { 'k', '\0', 'y' };
	const char val[] = { 'v', '\0', '\xff' };
	const char *keys[1] = { key };
	size_t klens[1] = { sizeof(key) };
	const char *args[2] = { val, "x" };
	size_t alens[2] = { sizeof(val), 1 };
	int id;

	(void)state;
	id = relay_redis_script(r, "echo", ECHO_LUA);
	assert_true(id >= 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(relay_redis_eval(r, id, 1, keys, klens, 2, args,
		    alens, &rep), RELAY_REDIS_OK);
		assert_int_equal(rep.type, RELAY_REDIS_ARRAY);
		assert_int_equal(rep.n, 4);
		assert_int_equal(rep.elem[0].type, RELAY_REDIS_STR);
		assert_int_equal(rep.elem[0].len, sizeof(val));
		assert_memory_equal(rep.elem[0].str, val, sizeof(val));
		assert_int_equal(rep.elem[1].type, RELAY_REDIS_INT);
		assert_int_equal(rep.elem[1].integer, 42);
		assert_int_equal(rep.elem[2].type, RELAY_REDIS_NIL);
		assert_int_equal(rep.elem[3].type, RELAY_REDIS_ARRAY);
		assert_string_equal(rep.elem[3].elem[0].str, "x");
		relay_redis_reply_free(&rep);
		if (round == 0) {
			/*
			 * A restarted server has an empty script cache: the
			 * next call meets NOSCRIPT and loads the script again.
			 */
			test_redis_kill(&srv);
			assert_int_equal(test_redis_restart(&srv), 0);
			/* The first call after a restart fails on the dead socket... */
			enum relay_redis_rc rc = relay_redis_eval(r, id, 1, keys,
			    klens, 2, args, alens, &rep);
			relay_redis_reply_free(&rep);
			if (rc == RELAY_REDIS_OK)
				continue;	/* the pool was already refreshed */
			assert_int_equal(rc, RELAY_REDIS_E_UNAVAILABLE);
		}
	}
	relay_redis_free(r);
}

static void
test_script_error_is_reported(void **state)
{
	struct relay_redis *r = adapter();
	struct relay_redis_reply rep;
	int id;

	(void)state;
	id = relay_redis_script(r, "broken", "#!lua\nreturn error('boom')\n");
	assert_int_equal(relay_redis_eval(r, id, 0, NULL, NULL, 0, NULL, NULL,
	    &rep), RELAY_REDIS_E_SCRIPT);
	relay_redis_reply_free(&rep);
	/* The connection stays usable. */
	int64_t ms = 0;
	assert_int_equal(relay_redis_time_ms(r, &ms), RELAY_REDIS_OK);
	relay_redis_free(r);
}

static void
test_time_is_the_servers(void **state)
{
	struct relay_redis *r = adapter();
	struct timespec ts;
	int64_t ms = 0, wall;

	(void)state;
	assert_int_equal(relay_redis_time_ms(r, &ms), RELAY_REDIS_OK);
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	/* Same host: the server's clock is ours, give or take a minute. */
	assert_true(ms > wall - 60000 && ms < wall + 60000);
	relay_redis_free(r);
}

static void
test_down_fails_fast_and_resumes(void **state)
{
	struct relay_redis *r = adapter();
	char why[200];
	int64_t ms, deadline;
	enum relay_redis_rc rc;
	int i;

	(void)state;
	assert_true(relay_redis_up(r, why, sizeof(why)));
	test_redis_kill(&srv);
	/* The first command finds the connection closed... */
	(void)relay_redis_time_ms(r, &ms);
	/* ...every later one fails with UNAVAILABLE. */
	for (i = 0; i < 50; i++)
		assert_int_equal(relay_redis_time_ms(r, &ms),
		    RELAY_REDIS_E_UNAVAILABLE);
	assert_false(relay_redis_up(r, why, sizeof(why)));
	assert_true(why[0] != '\0');
	assert_int_equal(test_redis_restart(&srv), 0);
	/* Back within the back-off (at most 2 s), with the same adapter. */
	deadline = relay_mono_ms() + 15000;
	do {
		rc = relay_redis_time_ms(r, &ms);
		if (rc == RELAY_REDIS_OK)
			break;
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	} while (relay_mono_ms() < deadline);
	assert_int_equal(rc, RELAY_REDIS_OK);
	assert_true(relay_redis_up(r, why, sizeof(why)));
	relay_redis_free(r);
}

static void
test_unreachable_at_start_is_not_an_error(void **state)
{
	struct relay_redis_config cfg;
	struct relay_redis *r;
	char err[256], why[200];
	int64_t ms;

	(void)state;
	test_redis_config(&srv, &cfg);
	snprintf(cfg.unix_path, sizeof(cfg.unix_path), "%s/nothing.sock",
	    srv.dir);
	r = relay_redis_new(&cfg, NULL, err, sizeof(err));
	assert_non_null(r);
	assert_false(relay_redis_up(r, why, sizeof(why)));
	assert_non_null(strstr(why, "nothing.sock"));
	assert_int_equal(relay_redis_time_ms(r, &ms), RELAY_REDIS_E_UNAVAILABLE);
	relay_redis_free(r);
}

static void
test_wrong_password_and_db_refused_at_start(void **state)
{
	struct relay_redis_config cfg;
	char err[256];

	(void)state;
	test_redis_config(&srv, &cfg);
	snprintf(cfg.password, sizeof(cfg.password), "hunter2");
	assert_null(relay_redis_new(&cfg, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "AUTH"));
	assert_null(strstr(err, "hunter2"));

	test_redis_config(&srv, &cfg);
	cfg.db = 999;
	assert_null(relay_redis_new(&cfg, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "SELECT"));
}

struct sub_seen {
	pthread_mutex_t mu;
	char last[64];
	_Atomic int messages;
	_Atomic int subscribed;
};

static void
on_msg(void *arg, const char *suffix, size_t len)
{
	struct sub_seen *s = arg;

	pthread_mutex_lock(&s->mu);
	snprintf(s->last, sizeof(s->last), "%.*s", (int)len, suffix);
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&s->messages, 1);
}

static void
on_sub(void *arg)
{
	struct sub_seen *s = arg;

	atomic_fetch_add(&s->subscribed, 1);
}

static bool
wait_for(_Atomic int *v, int at_least)
{
	int64_t deadline = relay_mono_ms() + 15000;

	while (atomic_load(v) < at_least) {
		if (relay_mono_ms() > deadline)
			return false;
		struct timespec nap = { 0, 5 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	}
	return true;
}

static void
test_pubsub_wakeups_and_resubscribe(void **state)
{
	struct relay_redis *r = adapter();
	struct sub_seen seen = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct relay_redis_reply rep;
	const char *args[1];
	size_t alens[1];
	char ch[256];
	int pub;
	int64_t deadline;

	(void)state;
	pub = relay_redis_script(r, "publish",
	    "#!lua\nreturn redis.call('PUBLISH', ARGV[1], 'x')\n");
	assert_int_equal(relay_redis_subscribe(r, on_msg, on_sub, &seen),
	    RELAY_REDIS_OK);
	assert_true(wait_for(&seen.subscribed, 1));
	snprintf(ch, sizeof(ch), "%swake:node-7", relay_redis_prefix(r));
	args[0] = ch;
	alens[0] = strlen(ch);
	assert_int_equal(relay_redis_eval(r, pub, 0, NULL, NULL, 1, args, alens,
	    &rep), RELAY_REDIS_OK);
	relay_redis_reply_free(&rep);
	assert_true(wait_for(&seen.messages, 1));
	pthread_mutex_lock(&seen.mu);
	assert_string_equal(seen.last, "node-7");
	pthread_mutex_unlock(&seen.mu);

	/* Another deployment's prefix is not heard. */
	snprintf(ch, sizeof(ch), "{other:}wake:node-7");
	alens[0] = strlen(ch);
	assert_int_equal(relay_redis_eval(r, pub, 0, NULL, NULL, 1, args, alens,
	    &rep), RELAY_REDIS_OK);
	relay_redis_reply_free(&rep);

	/* After a restart the subscriber comes back and says so. */
	test_redis_kill(&srv);
	assert_int_equal(test_redis_restart(&srv), 0);
	assert_true(wait_for(&seen.subscribed, 2));
	snprintf(ch, sizeof(ch), "%swake:node-8", relay_redis_prefix(r));
	alens[0] = strlen(ch);
	deadline = relay_mono_ms() + 15000;
	while (relay_redis_eval(r, pub, 0, NULL, NULL, 1, args, alens, &rep) !=
	    RELAY_REDIS_OK && relay_mono_ms() < deadline) {
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	}
	relay_redis_reply_free(&rep);
	assert_true(wait_for(&seen.messages, 2));
	pthread_mutex_lock(&seen.mu);
	assert_string_equal(seen.last, "node-8");
	pthread_mutex_unlock(&seen.mu);
	assert_int_equal(atomic_load(&seen.messages), 2);
	relay_redis_free(r);
}

static void
test_glob_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(relay_redis_glob_escape("{a*b?[c]\\:}", out,
	    sizeof(out)), 16);
	assert_string_equal(out, "{a\\*b\\?\\[c\\]\\\\:}");
	assert_int_equal(relay_redis_glob_escape("plain:", out, sizeof(out)),
	    6);
	assert_string_equal(out, "plain:");
	/* Cut short: never half an escape, always terminated. */
	assert_int_equal(relay_redis_glob_escape("ab*", out, 4), 4);
	assert_string_equal(out, "ab");
}

struct states {
	pthread_mutex_t mu;
	bool seen[16];
	char why[16][160];
	int n;
};

static void
on_state(void *arg, bool up, const char *why)
{
	struct states *s = arg;

	pthread_mutex_lock(&s->mu);
	if (s->n < 16) {
		s->seen[s->n] = up;
		snprintf(s->why[s->n], sizeof(s->why[0]), "%s", why);
		s->n++;
	}
	pthread_mutex_unlock(&s->mu);
}

/*
 * The state hook sees the current state at once, then each transition
 * once, in order: down at the first failed call, up at the first call
 * answered after the restart; the many calls that fail fast meanwhile
 * change nothing.
 */
static void
test_state_hook_follows_each_transition_once(void **state)
{
	struct relay_redis *r = adapter();
	struct states st = { .mu = PTHREAD_MUTEX_INITIALIZER };
	int64_t ms, deadline;
	int i;

	(void)state;
	relay_redis_on_state(r, on_state, &st);
	test_redis_kill(&srv);
	for (i = 0; i < 20; i++)
		(void)relay_redis_time_ms(r, &ms);
	assert_int_equal(test_redis_restart(&srv), 0);
	deadline = relay_mono_ms() + 15000;
	while (relay_redis_time_ms(r, &ms) != RELAY_REDIS_OK &&
	    relay_mono_ms() < deadline) {
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	}
	for (i = 0; i < 20; i++)
		assert_int_equal(relay_redis_time_ms(r, &ms), RELAY_REDIS_OK);
	relay_redis_on_state(r, NULL, NULL);
	pthread_mutex_lock(&st.mu);
	assert_int_equal(st.n, 3);
	assert_true(st.seen[0]);
	assert_false(st.seen[1]);
	assert_true(st.why[1][0] != '\0');
	assert_true(st.seen[2]);
	pthread_mutex_unlock(&st.mu);
	relay_redis_free(r);
}

struct runner {
	struct relay_redis *r;
	_Atomic bool stop;
	_Atomic int ok;
};

static void *
runner_main(void *arg)
{
	struct runner *t = arg;
	int64_t ms;

	while (!atomic_load(&t->stop))
		if (relay_redis_time_ms(t->r, &ms) == RELAY_REDIS_OK)
			atomic_fetch_add(&t->ok, 1);
	return NULL;
}

/*
 * Scripts registered while another thread runs scripts (the monitor
 * thread starts before the stores register theirs): the table never
 * moves (ThreadSanitizer checks the rest), every id works, and a full
 * table says so.
 */
static void
test_scripts_registered_while_others_run(void **state)
{
	struct runner t = { .r = adapter() };
	struct relay_redis_reply rep;
	char name[32], lua[96];
	int ids[80], n = 0, id;
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, runner_main, &t), 0);
	/* Register only once the other thread is running scripts. */
	assert_true(wait_for(&t.ok, 1));
	for (;;) {
		snprintf(name, sizeof(name), "s%d", n);
		snprintf(lua, sizeof(lua), "#!lua\nreturn %d\n", n);
		id = relay_redis_script(t.r, name, lua);
		if (id < 0)
			break;
		ids[n++] = id;
		assert_true(n < 80);
	}
	/* 64 in all, one of them the adapter's own TIME script */
	assert_int_equal(n, 63);
	for (int i = 0; i < n; i++) {
		assert_int_equal(relay_redis_eval(t.r, ids[i], 0, NULL, NULL, 0,
		    NULL, NULL, &rep), RELAY_REDIS_OK);
		assert_int_equal(rep.integer, i);
		relay_redis_reply_free(&rep);
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	relay_redis_free(t.r);
}

/*
 * A prefix with glob characters: the subscriber's pattern matches its own
 * channels literally, so another deployment's wake-ups ("{gx:}" would
 * match an unescaped "{g*:}") are not heard, and an unbalanced '[' does
 * not lose its own.
 */
static void
test_pubsub_prefix_with_glob_characters(void **state)
{
	static const char *const prefixes[] = { "g*:", "h[1]?\\:" };
	static const char *const foreign[] = { "{gx:}", "{h1x\\:}" };
	struct relay_redis_config cfg;
	struct relay_redis_reply rep;
	struct relay_redis *r;
	const char *args[1];
	size_t alens[1];
	char ch[256], err[256];
	int pub;

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct sub_seen seen = { .mu = PTHREAD_MUTEX_INITIALIZER };

		test_redis_config(&srv, &cfg);
		snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", prefixes[i]);
		r = relay_redis_new(&cfg, NULL, err, sizeof(err));
		assert_non_null(r);
		pub = relay_redis_script(r, "publish",
		    "#!lua\nreturn redis.call('PUBLISH', ARGV[1], 'x')\n");
		assert_int_equal(relay_redis_check_channels(r, err, sizeof(err)),
		    RELAY_REDIS_OK);
		assert_int_equal(relay_redis_subscribe(r, on_msg, on_sub, &seen),
		    RELAY_REDIS_OK);
		assert_true(wait_for(&seen.subscribed, 1));
		args[0] = ch;
		snprintf(ch, sizeof(ch), "%swake:theirs", foreign[i]);
		alens[0] = strlen(ch);
		assert_int_equal(relay_redis_eval(r, pub, 0, NULL, NULL, 1, args,
		    alens, &rep), RELAY_REDIS_OK);
		relay_redis_reply_free(&rep);
		snprintf(ch, sizeof(ch), "%swake:ours", relay_redis_prefix(r));
		alens[0] = strlen(ch);
		assert_int_equal(relay_redis_eval(r, pub, 0, NULL, NULL, 1, args,
		    alens, &rep), RELAY_REDIS_OK);
		assert_int_equal(rep.integer, 1);	/* our subscriber heard it */
		relay_redis_reply_free(&rep);
		/* Messages arrive in publish order: "theirs" would be first. */
		assert_true(wait_for(&seen.messages, 1));
		relay_redis_free(r);
		assert_int_equal(atomic_load(&seen.messages), 1);
		pthread_mutex_lock(&seen.mu);
		assert_string_equal(seen.last, "ours");
		pthread_mutex_unlock(&seen.mu);
	}
}

struct hammer {
	struct relay_redis *r;
	int id;
	int ok;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct relay_redis_reply rep;
	const char *keys[1] = { "ctr" };
	size_t klens[1] = { 3 };

	for (int i = 0; i < 200; i++) {
		if (relay_redis_eval(h->r, h->id, 1, keys, klens, 0, NULL, NULL,
		    &rep) == RELAY_REDIS_OK)
			h->ok++;
		relay_redis_reply_free(&rep);
	}
	return NULL;
}

static void
test_pool_shared_by_threads(void **state)
{
	struct relay_redis *r = adapter();
	struct hammer h[16];
	pthread_t t[16];
	struct relay_redis_reply rep;
	const char *keys[1] = { "ctr" };
	size_t klens[1] = { 3 };
	int id, get;

	(void)state;
	id = relay_redis_script(r, "incr",
	    "#!lua\nreturn redis.call('INCR', KEYS[1])\n");
	get = relay_redis_script(r, "get",
	    "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])\n");
	for (int i = 0; i < 16; i++) {
		h[i].r = r;
		h[i].id = id;
		h[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]),
		    0);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].ok, 200);
	}
	assert_int_equal(relay_redis_eval(r, get, 1, keys, klens, 0, NULL, NULL,
	    &rep), RELAY_REDIS_OK);
	assert_string_equal(rep.str, "3200");
	relay_redis_reply_free(&rep);
	relay_redis_free(r);
}

struct tb_reader {
	struct relay_timebase *tb;
	_Atomic bool stop;
	_Atomic int backwards;
};

static void *
tb_read_main(void *arg)
{
	struct tb_reader *t = arg;
	int64_t last = 0, v;

	while (!atomic_load(&t->stop)) {
		v = relay_timebase_now(t->tb);
		if (v < last)
			atomic_fetch_add(&t->backwards, 1);
		last = v;
	}
	return NULL;
}

/*
 * The shared time base follows the server's TIME (plus local time since
 * the sample), starts from the wall clock, and never goes back, also
 * while samples move it and other threads read it.
 */
static void
test_timebase_follows_server_never_backwards(void **state)
{
	struct relay_timebase *tb = relay_timebase_new();
	struct tb_reader rd = { .tb = NULL };
	struct relay_redis *r = adapter();
	pthread_t th[4];
	struct timespec ts;
	int64_t wall, v, t0, t1, ms;

	(void)state;
	assert_non_null(tb);
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	v = relay_timebase_now(tb);
	assert_true(v >= wall - 1000 && v <= wall + 1000);

	rd.tb = tb;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, tb_read_main, &rd),
		    0);
	/* The server is 10 minutes ahead: the clock jumps forward with it. */
	t0 = relay_mono_ms();
	relay_timebase_sample(tb, wall + 600000, t0, t0);
	v = relay_timebase_now(tb);
	assert_true(v >= wall + 600000 && v < wall + 600000 + 60000);
	/* A sample 5 s behind holds the clock still rather than going back. */
	relay_timebase_sample(tb, v - 5000, relay_mono_ms(), relay_mono_ms());
	assert_true(relay_timebase_now(tb) >= v);
	/* A real sample from the server. */
	t0 = relay_mono_ms();
	assert_int_equal(relay_redis_time_ms(r, &ms), RELAY_REDIS_OK);
	t1 = relay_mono_ms();
	relay_timebase_sample(tb, ms, t0, t1);
	assert_true(relay_timebase_now(tb) >= v);
	atomic_store(&rd.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&rd.backwards), 0);
	relay_timebase_free(tb);
	relay_redis_free(r);
}

static void
state_settings(struct relay_settings *s, char *url, size_t urllen,
    char *prefix)
{
	memset(s, 0, sizeof(*s));
	snprintf(url, urllen, "unix://%s", srv.sock);
	s->state_url = url;
	s->state_password = "";
	s->state_prefix = prefix;
	s->state_connect_timeout_ms = 1000;
	s->state_command_timeout_ms = 2000;
	s->state_pool_size = 4;
	s->state_time_sample_ms = 100;
}

static bool
state_check(struct tp_health *h, char *reason, size_t len)
{
	struct tp_health_check_status st[TP_HEALTH_MAX_CHECKS];
	size_t n = tp_health_snapshot(h, st, TP_HEALTH_MAX_CHECKS);

	for (size_t i = 0; i < n; i++) {
		if (strcmp(st[i].name, "state") == 0) {
			snprintf(reason, len, "%s", st[i].reason);
			return st[i].outcome == TP_CHECK_OK;
		}
	}
	fail_msg("no state check");
	return false;
}

/*
 * state_redis: an empty store gets the schema version and the relay is
 * ready; the time base follows the server; metrics are registered; a
 * store written by a newer relay is refused with the setting to change.
 */
static void
test_state_start_schema_readiness(void **state)
{
	struct relay_settings s;
	struct relay_state_redis *st;
	struct tp_health *h = tp_health_new();
	struct tp_metrics_registry *reg = tp_metrics_registry_new();
	struct relay_redis_reply rep;
	char url[200], prefix[64], err[256], reason[200];
	const char *setting = NULL, *key;
	size_t keylen;
	struct timespec ts;
	int64_t now, wall;
	int id;
	char *text;
	size_t len;

	(void)state;
	assert_non_null(h);
	assert_non_null(reg);
	snprintf(prefix, sizeof(prefix), "state%d:", (int)getpid());
	state_settings(&s, url, sizeof(url), prefix);
	st = relay_state_redis_start(&s, h, reg, err, sizeof(err), &setting);
	if (st == NULL)
		fail_msg("start: %s (%s)", err, setting);
	tp_health_transition(h, TP_LIFECYCLE_READY);
	assert_true(state_check(h, reason, sizeof(reason)));
	assert_true(tp_health_is_ready(h));
	now = relay_timebase_now(relay_state_redis_timebase(st));
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_true(now > wall - 60000 && now < wall + 60000);
	text = tp_metrics_render(reg, &len);
	assert_non_null(text);
	assert_non_null(strstr(text, "tokenplace_relay_state_up 1"));
	assert_non_null(strstr(text, "tokenplace_relay_state_command_seconds_count{operation=\"schema\"} 1"));
	free(text);

	/* The version it wrote; then pretend a newer relay rewrote it. */
	id = relay_redis_script(relay_state_redis_adapter(st), "bump",
	    "#!lua\nlocal v = redis.call('GET', KEYS[1] .. 'schema')\n"
	    "redis.call('SET', KEYS[1] .. 'schema', '99')\nreturn v\n");
	key = relay_redis_prefix(relay_state_redis_adapter(st));
	keylen = strlen(key);
	assert_int_equal(relay_redis_eval(relay_state_redis_adapter(st), id, 1,
	    &key, &keylen, 0, NULL, NULL, &rep), RELAY_REDIS_OK);
	assert_int_equal(strtol(rep.str, NULL, 10), RELAY_STATE_SCHEMA);
	relay_redis_reply_free(&rep);
	relay_state_redis_stop(st);
	tp_metrics_registry_free(reg);
	tp_health_free(h);

	h = tp_health_new();
	assert_null(relay_state_redis_start(&s, h, NULL, err, sizeof(err),
	    &setting));
	assert_string_equal(setting, "RELAY_STATE_PREFIX");
	assert_non_null(strstr(err, "'99'"));
	tp_health_free(h);

	/* A malformed URL names RELAY_STATE_URL. */
	h = tp_health_new();
	s.state_url = "redis://h:0";
	assert_null(relay_state_redis_start(&s, h, NULL, err, sizeof(err),
	    &setting));
	assert_string_equal(setting, "RELAY_STATE_URL");
	tp_health_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_glob_escape),
		cmocka_unit_test(test_scripts_registered_while_others_run),
		cmocka_unit_test(test_pubsub_prefix_with_glob_characters),
		cmocka_unit_test(test_eval_binary_safe_and_noscript_reload),
		cmocka_unit_test(test_script_error_is_reported),
		cmocka_unit_test(test_time_is_the_servers),
		cmocka_unit_test(test_timebase_follows_server_never_backwards),
		cmocka_unit_test(test_pool_shared_by_threads),
		cmocka_unit_test(test_unreachable_at_start_is_not_an_error),
		cmocka_unit_test(test_wrong_password_and_db_refused_at_start),
		cmocka_unit_test(test_state_start_schema_readiness),
		cmocka_unit_test(test_down_fails_fast_and_resumes),
		cmocka_unit_test(test_state_hook_follows_each_transition_once),
		cmocka_unit_test(test_pubsub_wakeups_and_resubscribe),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
