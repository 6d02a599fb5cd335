/*
 * state_upgrade.c -- `tokenplace-relay --state-upgrade` (state_upgrade.h):
 * schema 1 -> 2 of the shared state, in one script.
 */
#include "state_upgrade.h"

#include <stdio.h>
#include <string.h>

#include "redis/redis.h"
#include "settings.h"
#include "state_redis.h"

/*
 * {0, moved}: written now; {1, '2'}: it was 2 already; {2, v}: a version
 * this relay does not know (nothing done). The API v1 model sets move from
 * P.m:<model> to P.mh:<sha1hex(model)> (v1_store_redis.lua, mkey): the
 * nodes are those of P.nodes (every node record is filed there), their
 * models come from their own records, and each new set lives at least as
 * long as its node's record. Bounded by the API v1 node limit times the
 * models per node; it runs once per deployment.
 */
static const char LUA_UPGRADE[] =
    "#!lua\n"
    "local P = KEYS[1]\n"
    "local V = P .. 'v1:'\n"
    "local v = redis.call('GET', P .. 'schema')\n"
    "if v == '2' then return {1, v} end\n"
    "if v and v ~= '1' then return {2, v} end\n"
    "local old, moved = {}, 0\n"
    "for _, id in ipairs(redis.call('ZRANGE', V .. 'nodes', 0, -1)) do\n"
    "  local nk = V .. 'n:' .. id\n"
    "  local packed = redis.call('HGET', nk, 'models')\n"
    "  local ttl = redis.call('PTTL', nk)\n"
    "  if packed and ttl > 0 then\n"
    "    for m in string.gmatch(packed, '([^%z]+)') do\n"
    "      local new = V .. 'mh:' .. redis.sha1hex(m)\n"
    "      if redis.call('EXISTS', new) == 0 then moved = moved + 1 end\n"
    "      redis.call('SADD', new, id)\n"
    "      if redis.call('PTTL', new) < ttl then\n"
    "        redis.call('PEXPIRE', new, ttl)\n"
    "      end\n"
    "      old[m] = true\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* m:<model> holds only model sets: nothing else can be deleted. */
    "for m in pairs(old) do redis.call('DEL', V .. 'm:' .. m) end\n"
    "redis.call('SET', P .. 'schema', '2')\n"
    "return {0, moved}\n";

int
relay_state_upgrade(const struct relay_settings *s, char *msg, size_t msglen)
{
	struct relay_redis_config cfg;
	struct relay_redis *r = NULL;
	struct relay_redis_reply rep;
	enum relay_redis_rc rc;
	const char *key;
	size_t keylen;
	char why[200];
	int id, out = 2;

	memset(&rep, 0, sizeof(rep));
	if (!relay_settings_state_shared(s)) {
		snprintf(msg, msglen, "RELAY_STATE_URL names no Redis/Valkey "
		    "store: nothing to upgrade");
		return 2;
	}
	if (relay_settings_redis_config(s, &cfg, why, sizeof(why)) != 0) {
		snprintf(msg, msglen, "RELAY_STATE_URL: %s", why);
		goto out;
	}
	r = relay_redis_new(&cfg, NULL, why, sizeof(why));
	memset(&cfg, 0, sizeof(cfg));
	if (r == NULL) {
		snprintf(msg, msglen, "%s", why);
		goto out;
	}
	id = relay_redis_script(r, "state_upgrade", LUA_UPGRADE);
	if (id < 0) {
		snprintf(msg, msglen, "out of memory");
		goto out;
	}
	key = relay_redis_prefix(r);
	keylen = strlen(key);
	rc = relay_redis_eval(r, id, 1, &key, &keylen, 0, NULL, NULL, &rep);
	if (rc != RELAY_REDIS_OK) {
		if (relay_redis_up(r, why, sizeof(why)) || why[0] == '\0')
			snprintf(why, sizeof(why), "the script failed (error %d)",
			    (int)rc);
		snprintf(msg, msglen, "cannot upgrade %sschema: %s", key, why);
		goto out;
	}
	if (rep.type != RELAY_REDIS_ARRAY || rep.n != 2 ||
	    rep.elem[0].type != RELAY_REDIS_INT) {
		snprintf(msg, msglen, "unexpected reply from the upgrade script");
		goto out;
	}
	switch (rep.elem[0].integer) {
	case 0:
		snprintf(msg, msglen, "key %sschema: version 1 -> %d; %lld API "
		    "v1 model sets moved; every replica of this release now "
		    "uses layout %d", key, RELAY_STATE_SCHEMA,
		    rep.elem[1].type == RELAY_REDIS_INT ?
		    rep.elem[1].integer : 0LL, RELAY_STATE_SCHEMA);
		out = 0;
		break;
	case 1:
		snprintf(msg, msglen, "key %sschema: version %d already; "
		    "nothing to do", key, RELAY_STATE_SCHEMA);
		out = 0;
		break;
	default:
		snprintf(msg, msglen, "key %sschema holds version '%.20s', "
		    "which this relay does not know: nothing done", key,
		    rep.elem[1].type == RELAY_REDIS_STR ? rep.elem[1].str : "?");
		break;
	}
out:
	relay_redis_reply_free(&rep);
	relay_redis_free(r);
	return out;
}
