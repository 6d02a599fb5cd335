/*
 * redis_args: the arguments of one script call (relay_redis_eval) and
 * accessors for the elements of its array reply, shared by the two Redis
 * stores (store/store_redis.c, store/v1_store_redis.c).
 *
 * The builder is bounded: it holds at most RELAY_REDIS_ARGS_MAX arguments
 * and never writes past them; an argument beyond that is dropped and the
 * call marked, so the store refuses to send it (relay_redis_args_ok()).
 * Numbers are formatted into the builder itself, so a builder must outlive
 * the eval that uses it; byte arguments are borrowed, not copied.
 */
#ifndef RELAY_REDIS_ARGS_H
#define RELAY_REDIS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/redis.h"

#define RELAY_REDIS_ARGS_MAX 32		/* arguments of one script call */
#define RELAY_REDIS_ARGS_NUM_LEN 24	/* "-9223372036854775808" + NUL */

/*
 * The largest count or limit passed to a script: Lua numbers are IEEE
 * doubles, exact up to 2^53. A limit above it means "no limit" (no count
 * gets near it), so relay_redis_args_uint() sends 2^53 instead: exact in
 * the script, and still above every count it is compared with.
 */
#define RELAY_REDIS_LUA_INT_MAX ((uint64_t)1 << 53)

struct relay_redis_args {
	const char *v[RELAY_REDIS_ARGS_MAX];
	size_t len[RELAY_REDIS_ARGS_MAX];
	char num[RELAY_REDIS_ARGS_MAX][RELAY_REDIS_ARGS_NUM_LEN];
	size_t n;
	bool overflow;		/* an argument was dropped: do not send */
};

/* Empties a (n = 0, no overflow). */
void relay_redis_args_reset(struct relay_redis_args *a);

/*
 * Appends len bytes at p (borrowed: they must outlive the call; p NULL
 * appends the empty string). Past RELAY_REDIS_ARGS_MAX nothing is
 * appended and a is marked overflowed.
 */
void relay_redis_args_bytes(struct relay_redis_args *a, const void *p,
    size_t len);

/* Appends the NUL-terminated s (borrowed), as relay_redis_args_bytes(). */
void relay_redis_args_str(struct relay_redis_args *a, const char *s);

/* Appends v in decimal (formatted into a), as relay_redis_args_bytes(). */
void relay_redis_args_int(struct relay_redis_args *a, int64_t v);

/*
 * Appends a count or limit in decimal, clamped to RELAY_REDIS_LUA_INT_MAX
 * (see there), as relay_redis_args_bytes().
 */
void relay_redis_args_uint(struct relay_redis_args *a, uint64_t v);

/* v clamped to RELAY_REDIS_LUA_INT_MAX: what relay_redis_args_uint sends. */
int64_t relay_redis_lua_clamp(uint64_t v);

/* True when every argument appended since the reset is in a. */
bool relay_redis_args_ok(const struct relay_redis_args *a);

/*
 * Element i of an array reply as an integer: an integer element, or a
 * string element read in decimal (Lua numbers may come back as either);
 * 0 when i is out of range or the element is neither.
 */
long long relay_redis_reply_int(const struct relay_redis_reply *rep,
    size_t i);

/*
 * Element i of an array reply when it is a string (borrowed from rep);
 * NULL when i is out of range or the element is not a string.
 */
const struct relay_redis_reply *relay_redis_reply_str(
    const struct relay_redis_reply *rep, size_t i);

/* True when element i of rep is a string equal to the NUL-terminated s. */
bool relay_redis_reply_is(const struct relay_redis_reply *rep, size_t i,
    const char *s);

#endif
