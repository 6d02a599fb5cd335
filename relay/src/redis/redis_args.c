/*
 * redis_args.c -- the bounded argument builder and reply accessors of the
 * Redis stores' script calls (contract in redis_args.h).
 */
#include "redis/redis_args.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
relay_redis_args_reset(struct relay_redis_args *a)
{
	a->n = 0;
	a->overflow = false;
}

void
relay_redis_args_bytes(struct relay_redis_args *a, const void *p, size_t len)
{
	if (a->n >= RELAY_REDIS_ARGS_MAX) {
		a->overflow = true;
		return;
	}
	a->v[a->n] = p != NULL ? p : "";
	a->len[a->n] = p != NULL ? len : 0;
	a->n++;
}

void
relay_redis_args_str(struct relay_redis_args *a, const char *s)
{
	relay_redis_args_bytes(a, s, strlen(s));
}

void
relay_redis_args_int(struct relay_redis_args *a, int64_t v)
{
	int n;

	if (a->n >= RELAY_REDIS_ARGS_MAX) {
		a->overflow = true;
		return;
	}
	n = snprintf(a->num[a->n], RELAY_REDIS_ARGS_NUM_LEN, "%" PRId64, v);
	relay_redis_args_bytes(a, a->num[a->n], (size_t)n);
}

int64_t
relay_redis_lua_clamp(uint64_t v)
{
	return (int64_t)(v > RELAY_REDIS_LUA_INT_MAX ? RELAY_REDIS_LUA_INT_MAX :
	    v);
}

void
relay_redis_args_uint(struct relay_redis_args *a, uint64_t v)
{
	relay_redis_args_int(a, relay_redis_lua_clamp(v));
}

bool
relay_redis_args_ok(const struct relay_redis_args *a)
{
	return !a->overflow;
}

long long
relay_redis_reply_int(const struct relay_redis_reply *rep, size_t i)
{
	if (i >= rep->n)
		return 0;
	if (rep->elem[i].type == RELAY_REDIS_INT)
		return rep->elem[i].integer;
	if (rep->elem[i].type == RELAY_REDIS_STR)
		return strtoll(rep->elem[i].str, NULL, 10);
	return 0;
}

const struct relay_redis_reply *
relay_redis_reply_str(const struct relay_redis_reply *rep, size_t i)
{
	if (i >= rep->n || rep->elem[i].type != RELAY_REDIS_STR)
		return NULL;
	return &rep->elem[i];
}

bool
relay_redis_reply_is(const struct relay_redis_reply *rep, size_t i,
    const char *s)
{
	const struct relay_redis_reply *e = relay_redis_reply_str(rep, i);

	return e != NULL && e->len == strlen(s) &&
	    memcmp(e->str, s, e->len) == 0;
}
