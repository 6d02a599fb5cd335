/*
 * redis_server.h -- a throw-away redis-server for CMocka tests (Debian's
 * redis-server package): started on a unix socket in a fresh temporary
 * directory (no TCP port at all, so nothing can collide with another test
 * run), persistence off, and stopped by the test.
 *
 * Shared by every test of a Redis-backed store (legacy and API v1).
 */
#ifndef TEST_REDIS_SERVER_H
#define TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include "redis/redis.h"

struct test_redis {
	pid_t pid;
	char dir[64];		/* mkdtemp() directory holding the socket */
	char sock[96];		/* <dir>/redis.sock */
};

/*
 * Starts redis-server (REDIS_SERVER in the environment, or redis-server
 * from PATH) and waits, polling with a 10 s deadline, until it answers.
 * Returns 0, or -1 (with a message on stderr).
 */
int test_redis_start(struct test_redis *t);

/* Stops it (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
void test_redis_stop(struct test_redis *t);

/* SIGKILLs the server (a crash); test_redis_restart() brings it back. */
void test_redis_kill(struct test_redis *t);

/* Starts the server again on the same socket. Returns 0 or -1. */
int test_redis_restart(struct test_redis *t);

/*
 * An adapter configuration for t: its socket, command timeout 2 s,
 * connect timeout 1 s, pool of 8, and a key prefix unique to this call
 * (so the tests of one binary never see each other's keys).
 */
void test_redis_config(const struct test_redis *t,
    struct relay_redis_config *cfg);

/*
 * The "redis" group of a test binary that runs one suite against both
 * stores: the group setup starts test_redis_group and sets
 * test_redis_active (so a fixture builds the Redis store), the teardown
 * stops the server and clears the flag. Both have CMocka's group
 * signature; the setup fails the group when redis-server cannot start.
 */
extern struct test_redis test_redis_group;
extern bool test_redis_active;
int test_redis_group_setup(void **state);
int test_redis_group_teardown(void **state);

#endif
