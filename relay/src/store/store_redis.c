/*
 * store_redis.c -- the legacy relay_store on Redis/Valkey, shared by every
 * replica that points at the same server and prefix.
 *
 * Each operation of store.h is one Lua script (registered with the
 * adapter, redis.c, and run with EVALSHA), so every sentence of store.h's
 * contract holds across replicas as it does under the memory store's
 * mutex: a transition is atomic, time comes in as now_ms (scripts never
 * read a clock), limits come in with the call, and an operation removes
 * what expired among the entries it counts or looks up before it acts.
 *
 * Two key layouts, chosen per call by the stored schema version (each
 * script checks it first and answers SR_NOT_L1/SR_NOT_L2, having done
 * nothing, when the store is on the other one; run() then runs the other
 * layout's script and remembers the switch):
 *   - schema 2 (store_redis.lua): no key name is built from a client's or
 *     node's string; keys are named by relay_keyname() digests and the
 *     full key is kept in the record and compared on every lookup;
 *   - schema 1 (the scripts below): raw keys in key names, kept for the
 *     replicas of the previous release during a rolling upgrade, with the
 *     one colliding value refused (client "exp": "resp:exp" is the index).
 * docs/store-redis.md ("Key names", "Start-up and compatibility").
 *
 * Layout 1 (P is the prefix with its hash tag, e.g. "{tokenplace:}", so
 * all keys of one deployment hash to one cluster slot):
 *
 *   P srv:exp         zset  server key -> expiry (ms); live: score >= now
 *   P srv:seen        hash  server key -> time of its last poll (listing)
 *   P q:<server>      list  queued jobs, oldest first ("n"<data> or
 *                           "s"<owner length>":"<owner><data>)
 *   P queued          int   jobs in all queues (queue_total)
 *   P resp:exp        zset  client key -> time stored
 *   P resp:<client>   str   the waiting response
 *   P sess:exp        zset  session id -> last activity
 *   P s:<id>          hash  c = owner client key, x = 1 once closed
 *   P sc:<id>         list  undrained chunks
 *   P sby:<client>    str   the client's current session id
 *   P chunks          int   undrained chunks in all sessions
 *   P sweep:due       str   when the next cluster-wide sweep may run
 *
 * Counts that a limit needs are O(log n): ZCOUNT over the live score range
 * (so entries that expired but are still stored never count), LLEN, or a
 * counter; an entry a call looks up is checked for expiry on its own. So
 * no call's work grows with the number of nodes, and one replica's call
 * cannot stall the others past their command timeout. Removal of what
 * expired happens in bounded batches: up to EXPIRE_BATCH stale servers in
 * enqueue (queue_total counts their jobs until they go), pick_server and
 * stats, and up to SWEEP_BATCH of each kind in the sweep that one replica
 * per second runs for the whole cluster. Every key also gets a Redis TTL
 * (its longest logical lifetime plus TTL_GRACE_MS) as a backstop against a
 * relay that dies between calls; the counters get the TTL of what they
 * count, and a count that would go below zero (its key expired before
 * what it counted) is removed instead.
 *
 * Out of memory (maxmemory reached; docs require noeviction): the scripts
 * that add data (enqueue, put_response, stream_append) have no flags, so
 * the server refuses them before they run (OOM: 503, nothing half done);
 * the ones that take data out or expire it carry allow-oom, so nodes can
 * still drain queues and clients collect answers, which frees memory.
 *
 * Session ids: 128 bits from the kernel's CSPRNG in C (a seed per call),
 * spread over the stream jobs of one poll with SHA-1 inside the script;
 * next-server choice: a random number from C, reduced modulo the number
 * of live servers (bias below 2^-32 for up to a million servers).
 */
#include "store/store.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keyname.h"
#include "core/random.h"
#include "redis/redis.h"
#include "redis/redis_args.h"
#include "tokenplace/log.h"

#define EXPIRE_BATCH 64		/* per kind, in enqueue/pick/stats */
#define SWEEP_BATCH 2048	/* per kind, in the cluster-wide sweep */
#define TTL_GRACE_MS 3600000LL	/* backstop TTL beyond the logical lifetime */
#define NFX 6

/*
 * Shared by every script. KEYS[1] is the prefix itself (a key in the
 * deployment's slot); ARGV[1] is now, ARGV[#ARGV - 1] TTL_GRACE_MS and
 * ARGV[#ARGV] the expiry batch size (both added by run()). Effects
 * accumulate in fx:
 * evicted servers, dropped jobs, expired responses, expired sessions,
 * replaced responses, replaced sessions.
 */
#define PRELUDE \
"local P = KEYS[1]\n" \
"local sv = redis.call('GET', P .. 'schema')\n" \
"if sv and sv ~= '1' then return {99} end\n" \
"local now = tonumber(ARGV[1])\n" \
"local fx = {0, 0, 0, 0, 0, 0}\n" \
"local BATCH = tonumber(ARGV[#ARGV])\n" \
"local GRACE = tonumber(ARGV[#ARGV - 1])\n" \
"local function num(x) return string.format('%.0f', x) end\n" \
"local function ret(rc, ...)\n" \
"  return {rc, fx[1], fx[2], fx[3], fx[4], fx[5], fx[6], ...}\n" \
"end\n" \
"local function ret_list(rc, head, list)\n" \
"  local r = {rc, fx[1], fx[2], fx[3], fx[4], fx[5], fx[6]}\n" \
"  for i = 1, #head do r[#r + 1] = head[i] end\n" \
"  for i = 1, #list do r[#r + 1] = list[i] end\n" \
"  return r\n" \
"end\n" \
"local function count_down(key, n)\n" \
"  if redis.call('DECRBY', key, n) < 0 then redis.call('DEL', key) end\n" \
"end\n" \
"local function srv_remove(k)\n" \
"  local q = P .. 'q:' .. k\n" \
"  local n = redis.call('LLEN', q)\n" \
"  if n > 0 then\n" \
"    redis.call('DEL', q)\n" \
"    count_down(P .. 'queued', n)\n" \
"  end\n" \
"  redis.call('ZREM', P .. 'srv:exp', k)\n" \
"  redis.call('HDEL', P .. 'srv:seen', k)\n" \
"  return n\n" \
"end\n" \
"local function evict_stale()\n" \
"  local ks = redis.call('ZRANGEBYSCORE', P .. 'srv:exp', '-inf',\n" \
"    '(' .. num(now), 'LIMIT', 0, BATCH)\n" \
"  for _, k in ipairs(ks) do\n" \
"    fx[2] = fx[2] + srv_remove(k)\n" \
"    fx[1] = fx[1] + 1\n" \
"  end\n" \
"end\n" \
"local function srv_live(k)\n" \
"  local e = redis.call('ZSCORE', P .. 'srv:exp', k)\n" \
"  if not e then return false end\n" \
"  if tonumber(e) < now then\n" \
"    fx[2] = fx[2] + srv_remove(k)\n" \
"    fx[1] = fx[1] + 1\n" \
"    return false\n" \
"  end\n" \
"  return true\n" \
"end\n" \
"local function resp_remove(k)\n" \
"  redis.call('DEL', P .. 'resp:' .. k)\n" \
"  redis.call('ZREM', P .. 'resp:exp', k)\n" \
"end\n" \
"local function expire_responses(ttl)\n" \
"  local ks = redis.call('ZRANGEBYSCORE', P .. 'resp:exp', '-inf',\n" \
"    '(' .. num(now - ttl), 'LIMIT', 0, BATCH)\n" \
"  for _, k in ipairs(ks) do\n" \
"    resp_remove(k)\n" \
"    fx[3] = fx[3] + 1\n" \
"  end\n" \
"end\n" \
"local function resp_live(k, ttl)\n" \
"  local s = redis.call('ZSCORE', P .. 'resp:exp', k)\n" \
"  if not s then return false end\n" \
"  if tonumber(s) < now - ttl then\n" \
"    resp_remove(k)\n" \
"    fx[3] = fx[3] + 1\n" \
"    return false\n" \
"  end\n" \
"  return true\n" \
"end\n" \
"local function sess_remove(id)\n" \
"  local owner = redis.call('HGET', P .. 's:' .. id, 'c')\n" \
"  local n = redis.call('LLEN', P .. 'sc:' .. id)\n" \
"  if n > 0 then count_down(P .. 'chunks', n) end\n" \
"  redis.call('DEL', P .. 's:' .. id, P .. 'sc:' .. id)\n" \
"  if owner and redis.call('GET', P .. 'sby:' .. owner) == id then\n" \
"    redis.call('DEL', P .. 'sby:' .. owner)\n" \
"  end\n" \
"  redis.call('ZREM', P .. 'sess:exp', id)\n" \
"end\n" \
"local function expire_sessions(ttl)\n" \
"  local ids = redis.call('ZRANGEBYSCORE', P .. 'sess:exp', '-inf',\n" \
"    '(' .. num(now - ttl), 'LIMIT', 0, BATCH)\n" \
"  for _, id in ipairs(ids) do\n" \
"    sess_remove(id)\n" \
"    fx[4] = fx[4] + 1\n" \
"  end\n" \
"end\n" \
"local function sess_live(id, ttl)\n" \
"  local s = redis.call('ZSCORE', P .. 'sess:exp', id)\n" \
"  if not s then return false end\n" \
"  if tonumber(s) < now - ttl then\n" \
"    sess_remove(id)\n" \
"    fx[4] = fx[4] + 1\n" \
"    return false\n" \
"  end\n" \
"  return true\n" \
"end\n" \
"local function sess_ttl(id, owner, ttl)\n" \
"  local px = ttl + GRACE\n" \
"  redis.call('PEXPIRE', P .. 's:' .. id, px)\n" \
"  redis.call('PEXPIRE', P .. 'sc:' .. id, px)\n" \
"  redis.call('PEXPIRE', P .. 'sby:' .. owner, px)\n" \
"  redis.call('PEXPIRE', P .. 'sess:exp', px)\n" \
"  redis.call('PEXPIRE', P .. 'chunks', px)\n" \
"end\n"

/* Status codes scripts return (their first element). */
enum {
	SR_OK = 0,
	SR_NO_SERVERS,
	SR_UNKNOWN_SERVER,
	SR_SERVERS_FULL,
	SR_QUEUE_FULL,
	SR_QUEUE_TOTAL,
	SR_RESPONSES_FULL,
	SR_NO_RESPONSE,
	SR_UNKNOWN_SESSION,
	SR_CHUNKS_FULL,
	SR_NO_STREAM,
};

/*
 * poll: ARGV now, server_ttl, busy_ttl, max_servers, max_jobs, max_bytes,
 * session_ttl, max_sessions, seed, key. Returns rc, fx..., registered,
 * session_limited, n, then per job: stream, data, session id.
 */
static const char LUA_POLL[] = "#!lua flags=allow-oom\n" PRELUDE
"local ttl, busy = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"local max_servers, max_jobs = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
"local max_bytes = tonumber(ARGV[6])\n"
"local sttl, max_sess = tonumber(ARGV[7]), tonumber(ARGV[8])\n"
"local seed, k = ARGV[9], ARGV[10]\n"
"local keep = math.max(ttl, busy) + GRACE\n"
"local registered = 0\n"
"if not srv_live(k) then\n"
"  if redis.call('ZCOUNT', P .. 'srv:exp', ARGV[1], '+inf') >= max_servers then\n"
"    return ret(3)\n"
"  end\n"
"  registered = 1\n"
"end\n"
"local q = P .. 'q:' .. k\n"
"local out, n, bytes, limited, swept, seq = {}, 0, 0, 0, false, 0\n"
"local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'\n"
"local function new_id()\n"
"  for _ = 1, 8 do\n"
"    seq = seq + 1\n"
"    local h = string.sub(redis.sha1hex(seed .. ':' .. seq), 1, 32) .. '0'\n"
"    local id = {}\n"
"    for i = 1, 33, 3 do\n"
"      local v = tonumber(string.sub(h, i, i + 2), 16)\n"
"      local a, b = math.floor(v / 64), v % 64\n"
"      id[#id + 1] = string.sub(B64, a + 1, a + 1)\n"
"      id[#id + 1] = string.sub(B64, b + 1, b + 1)\n"
"    end\n"
"    local s = table.concat(id)\n"
"    if redis.call('EXISTS', P .. 's:' .. s) == 0 then return s end\n"
"  end\n"
"  return nil\n"
"end\n"
"while n < max_jobs do\n"
"  local j = redis.call('LINDEX', q, 0)\n"
"  if not j then break end\n"
"  local data, owner\n"
"  if string.byte(j, 1) == 115 then\n"
"    local c = string.find(j, ':', 2, true)\n"
"    local olen = tonumber(string.sub(j, 2, c - 1))\n"
"    owner = string.sub(j, c + 1, c + olen)\n"
"    data = string.sub(j, c + olen + 1)\n"
"  else\n"
"    data = string.sub(j, 2)\n"
"  end\n"
"  if n > 0 and #data > max_bytes - bytes then break end\n"
"  local sid = ''\n"
"  if owner then\n"
"    if not swept then expire_sessions(sttl); swept = true end\n"
"    local cur = redis.call('GET', P .. 'sby:' .. owner)\n"
"    if cur and not sess_live(cur, sttl) then cur = nil end\n"
"    if not cur and redis.call('ZCOUNT', P .. 'sess:exp', num(now - sttl),\n"
"        '+inf') >= max_sess then\n"
"      limited = 1\n"
"      break\n"
"    end\n"
"    sid = new_id()\n"
"    if not sid then break end\n"
"    if cur then\n"
"      sess_remove(cur)\n"
"      fx[6] = fx[6] + 1\n"
"    end\n"
"    redis.call('HSET', P .. 's:' .. sid, 'c', owner, 'x', '0')\n"
"    redis.call('SET', P .. 'sby:' .. owner, sid)\n"
"    redis.call('ZADD', P .. 'sess:exp', num(now), sid)\n"
"    sess_ttl(sid, owner, sttl)\n"
"  end\n"
"  redis.call('LPOP', q)\n"
"  count_down(P .. 'queued', 1)\n"
"  n = n + 1\n"
"  out[#out + 1] = owner and 1 or 0\n"
"  out[#out + 1] = data\n"
"  out[#out + 1] = sid\n"
"  if #data < max_bytes - bytes then bytes = bytes + #data else bytes = max_bytes end\n"
"end\n"
/* Heard from now; a node that took work may stay silent for busy_ttl. */
"local quiet = ttl\n"
"if n > 0 and busy > ttl then quiet = busy end\n"
"redis.call('ZADD', P .. 'srv:exp', num(now + quiet), k)\n"
"redis.call('PEXPIRE', P .. 'srv:exp', keep)\n"
"redis.call('HSET', P .. 'srv:seen', k, num(now))\n"
"redis.call('PEXPIRE', P .. 'srv:seen', keep)\n"
/* The queue lives as long as its server's entry may. */
"redis.call('PEXPIRE', q, keep)\n"
"if n > 0 then redis.call('PEXPIRE', P .. 'queued', keep) end\n"
"return ret_list(0, {registered, limited, n}, out)\n";

/* enqueue: ARGV now, queue_per_server, queue_total, keep_ms, key, stream, owner, data. */
static const char LUA_ENQUEUE[] = "#!lua\n" PRELUDE
"local qps, qtotal = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"local keep, k = tonumber(ARGV[4]), ARGV[5]\n"
"evict_stale()\n"
"if not srv_live(k) then return ret(2) end\n"
"local q = P .. 'q:' .. k\n"
"if redis.call('LLEN', q) >= qps then return ret(4) end\n"
"if tonumber(redis.call('GET', P .. 'queued') or '0') >= qtotal then\n"
"  return ret(5)\n"
"end\n"
"if ARGV[6] == '1' then\n"
"  redis.call('RPUSH', q, 's' .. #ARGV[7] .. ':' .. ARGV[7] .. ARGV[8])\n"
"else\n"
"  redis.call('RPUSH', q, 'n' .. ARGV[8])\n"
"end\n"
"redis.call('INCR', P .. 'queued')\n"
"redis.call('PEXPIRE', q, keep)\n"
"redis.call('PEXPIRE', P .. 'queued', keep)\n"
"return ret(0)\n";

/* pick_server: ARGV now, random. Returns rc, fx..., key. */
static const char LUA_PICK[] = "#!lua flags=allow-oom\n" PRELUDE
"local r = tonumber(ARGV[2])\n"
"evict_stale()\n"
"local n = redis.call('ZCOUNT', P .. 'srv:exp', num(now), '+inf')\n"
"if n == 0 then return ret(1) end\n"
/* Live servers are the n highest scores: ranks total-n .. total-1. */
"local total = redis.call('ZCARD', P .. 'srv:exp')\n"
"local rank = total - n + (r % n)\n"
"local k = redis.call('ZRANGE', P .. 'srv:exp', rank, rank)[1]\n"
"return ret(0, k)\n";

/* unregister: ARGV now, key. Returns rc, fx..., removed. */
static const char LUA_UNREGISTER[] = "#!lua flags=allow-oom\n" PRELUDE
"if not srv_live(ARGV[2]) then return ret(0, 0) end\n"
"fx[2] = fx[2] + srv_remove(ARGV[2])\n"
"return ret(0, 1)\n";

/* put_response: ARGV now, ttl, max, key, data. */
static const char LUA_PUT_RESPONSE[] = "#!lua\n" PRELUDE
"local ttl, max, k = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
/* resp:exp is the index itself: that client cannot be served here. */
"if k == 'exp' then return ret(6) end\n"
"if resp_live(k, ttl) then\n"
"  fx[5] = fx[5] + 1\n"
"elseif redis.call('ZCOUNT', P .. 'resp:exp', num(now - ttl), '+inf') >= max then\n"
"  return ret(6)\n"
"end\n"
"redis.call('SET', P .. 'resp:' .. k, ARGV[5], 'PX', ttl + GRACE)\n"
"redis.call('ZADD', P .. 'resp:exp', num(now), k)\n"
"redis.call('PEXPIRE', P .. 'resp:exp', ttl + GRACE)\n"
"return ret(0)\n";

/* take_response: ARGV now, ttl, key. Returns rc, fx..., data. */
static const char LUA_TAKE_RESPONSE[] = "#!lua flags=allow-oom\n" PRELUDE
"local ttl, k = tonumber(ARGV[2]), ARGV[3]\n"
"if k == 'exp' or not resp_live(k, ttl) then return ret(7) end\n"
"local v = redis.call('GET', P .. 'resp:' .. k)\n"
"resp_remove(k)\n"
"if not v then return ret(7) end\n"
"return ret(0, v)\n";

/* stream_append: ARGV now, ttl, max_chunks, id, data, final. */
static const char LUA_STREAM_APPEND[] = "#!lua\n" PRELUDE
"local ttl, max, id = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
"if not sess_live(id, ttl) then return ret(8) end\n"
"local sc = P .. 'sc:' .. id\n"
"if redis.call('LLEN', sc) >= max then return ret(9) end\n"
"redis.call('RPUSH', sc, ARGV[5])\n"
"redis.call('INCR', P .. 'chunks')\n"
"if ARGV[6] == '1' then redis.call('HSET', P .. 's:' .. id, 'x', '1') end\n"
"redis.call('ZADD', P .. 'sess:exp', num(now), id)\n"
"sess_ttl(id, redis.call('HGET', P .. 's:' .. id, 'c') or '', ttl)\n"
"return ret(0)\n";

/* stream_drain: ARGV now, ttl, client. Returns rc, fx..., id, final, chunks... */
static const char LUA_STREAM_DRAIN[] = "#!lua flags=allow-oom\n" PRELUDE
"local ttl, client = tonumber(ARGV[2]), ARGV[3]\n"
"local id = redis.call('GET', P .. 'sby:' .. client)\n"
"if not id or not sess_live(id, ttl) then return ret(10) end\n"
"local sc = P .. 'sc:' .. id\n"
"local chunks = redis.call('LRANGE', sc, 0, -1)\n"
"if #chunks > 0 then\n"
"  redis.call('DEL', sc)\n"
"  count_down(P .. 'chunks', #chunks)\n"
"end\n"
"local final = 0\n"
"if redis.call('HGET', P .. 's:' .. id, 'x') == '1' then\n"
"  sess_remove(id)\n"
"  final = 1\n"
"else\n"
"  redis.call('ZADD', P .. 'sess:exp', num(now), id)\n"
"  sess_ttl(id, client, ttl)\n"
"end\n"
"return ret_list(0, {id, final}, chunks)\n";

/*
 * sweep: ARGV now, response_ttl, session_ttl, interval. One replica per
 * interval (sweep:due holds when the next may run, in the shared time
 * base); the others return at once. Counters with nothing left to count
 * are reset, so a backstop TTL that removed a queue cannot leave a count
 * behind for ever.
 */
static const char LUA_SWEEP[] = "#!lua flags=allow-oom\n" PRELUDE
"local rttl, sttl, every = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
"local due = tonumber(redis.call('GET', P .. 'sweep:due') or '0')\n"
"if due > now then return ret(0, 0) end\n"
"redis.call('SET', P .. 'sweep:due', num(now + every), 'PX', every + GRACE)\n"
"evict_stale()\n"
"expire_responses(rttl)\n"
"expire_sessions(sttl)\n"
"if redis.call('ZCARD', P .. 'srv:exp') == 0 then redis.call('DEL', P .. 'queued') end\n"
"if redis.call('ZCARD', P .. 'sess:exp') == 0 then redis.call('DEL', P .. 'chunks') end\n"
"return ret(0, 1)\n";

/* stats: ARGV now, response_ttl, session_ttl. Returns rc, fx..., 5 counts. */
static const char LUA_STATS[] = "#!lua flags=allow-oom\n" PRELUDE
"local rttl, sttl = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"evict_stale()\n"
"expire_responses(rttl)\n"
"expire_sessions(sttl)\n"
"return ret(0,\n"
"  redis.call('ZCOUNT', P .. 'srv:exp', num(now), '+inf'),\n"
"  tonumber(redis.call('GET', P .. 'queued') or '0'),\n"
"  redis.call('ZCOUNT', P .. 'resp:exp', num(now - rttl), '+inf'),\n"
"  redis.call('ZCOUNT', P .. 'sess:exp', num(now - sttl), '+inf'),\n"
"  tonumber(redis.call('GET', P .. 'chunks') or '0'))\n";

/*
 * list_servers: ARGV now, max. Returns rc, fx..., total, n, then per
 * server: key, last poll, queue length. Work is bounded by max.
 */
static const char LUA_LIST_SERVERS[] = "#!lua flags=allow-oom\n" PRELUDE
"local max = tonumber(ARGV[2])\n"
"evict_stale()\n"
"local total = redis.call('ZCOUNT', P .. 'srv:exp', num(now), '+inf')\n"
"local out = {}\n"
"if max > 0 and total > 0 then\n"
"  local ks = redis.call('ZRANGEBYSCORE', P .. 'srv:exp', num(now), '+inf',\n"
"    'LIMIT', 0, max)\n"
"  for _, k in ipairs(ks) do\n"
"    out[#out + 1] = k\n"
"    out[#out + 1] = tonumber(redis.call('HGET', P .. 'srv:seen', k) or ARGV[1])\n"
"    out[#out + 1] = redis.call('LLEN', P .. 'q:' .. k)\n"
"  end\n"
"end\n"
"return ret_list(0, {total, #out / 3}, out)\n";

enum {
	S_POLL, S_ENQUEUE, S_PICK, S_UNREGISTER, S_PUT_RESPONSE,
	S_TAKE_RESPONSE, S_STREAM_APPEND, S_STREAM_DRAIN, S_SWEEP, S_STATS,
	S_LIST_SERVERS, S_COUNT
};

static const struct {
	const char *name;
	const char *lua;
} scripts[S_COUNT] = {
	[S_POLL] = { "legacy_poll", LUA_POLL },
	[S_ENQUEUE] = { "legacy_enqueue", LUA_ENQUEUE },
	[S_PICK] = { "legacy_pick_server", LUA_PICK },
	[S_UNREGISTER] = { "legacy_unregister", LUA_UNREGISTER },
	[S_PUT_RESPONSE] = { "legacy_put_response", LUA_PUT_RESPONSE },
	[S_TAKE_RESPONSE] = { "legacy_take_response", LUA_TAKE_RESPONSE },
	[S_STREAM_APPEND] = { "legacy_stream_append", LUA_STREAM_APPEND },
	[S_STREAM_DRAIN] = { "legacy_stream_drain", LUA_STREAM_DRAIN },
	[S_SWEEP] = { "legacy_sweep", LUA_SWEEP },
	[S_STATS] = { "legacy_stats", LUA_STATS },
	[S_LIST_SERVERS] = { "legacy_list_servers", LUA_LIST_SERVERS },
};

/* The layout-2 library (store_redis.lua), embedded by CMake. */
extern const char relay_store_redis_lua[];

static const char *const l2_ops[S_COUNT] = {
	[S_POLL] = "poll", [S_ENQUEUE] = "enqueue",
	[S_PICK] = "pick_server", [S_UNREGISTER] = "unregister",
	[S_PUT_RESPONSE] = "put_response",
	[S_TAKE_RESPONSE] = "take_response",
	[S_STREAM_APPEND] = "stream_append",
	[S_STREAM_DRAIN] = "stream_drain", [S_SWEEP] = "sweep",
	[S_STATS] = "stats", [S_LIST_SERVERS] = "list_servers",
};

/* The verdicts of a script that found the other layout's version. */
#define SR_NOT_L1 99
#define SR_NOT_L2 98

struct rstore {
	struct relay_store pub;
	struct relay_redis *r;		/* borrowed */
	int id[S_COUNT];		/* layout 1 (schema 1) */
	int id2[S_COUNT];		/* layout 2 (schema 2) */
	atomic_bool l2;			/* the layout to try first */
};

/*
 * A client or server key's two layout-2 arguments: its name (relay_keyname,
 * into name, which must outlive the call) and whether layout-1 leftovers
 * may be looked up under it: not for "exp", whose layout-1 name
 * "resp:exp" is that layout's response index.
 */
static void
arg_name(struct relay_redis_args *a, char name[RELAY_KEYNAME_LEN + 1], const char *key,
    size_t len)
{
	bool l1_ok = !(len == 3 && memcmp(key, "exp", 3) == 0);

	relay_keyname(key, len, name);
	relay_redis_args_bytes(a, name, RELAY_KEYNAME_LEN);
	relay_redis_args_bytes(a, l1_ok ? "1" : "0", 1);
}

/* A session id this store can have made: 22 characters of base64url. */
static bool
session_id_ok(const char *id, size_t len)
{
	size_t i;

	if (len != RELAY_SESSION_ID_LEN)
		return false;
	for (i = 0; i < len; i++) {
		char c = id[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static struct rstore *
R(struct relay_store *s)
{
	return s->state;
}

static enum relay_status
map_rc(enum relay_redis_rc rc)
{
	switch (rc) {
	case RELAY_REDIS_OK:
		return RELAY_OK;
	case RELAY_REDIS_E_NOMEM:
		return RELAY_E_NOMEM;
	default:
		/* Down, out of memory (noeviction), a script bug: 503. */
		return RELAY_E_UNAVAILABLE;
	}
}

static enum relay_status
map_sr(long long sr)
{
	switch (sr) {
	case SR_OK:		return RELAY_OK;
	case SR_NO_SERVERS:	return RELAY_E_NO_SERVERS;
	case SR_UNKNOWN_SERVER:	return RELAY_E_UNKNOWN_SERVER;
	case SR_SERVERS_FULL:	return RELAY_E_SERVERS_FULL;
	case SR_QUEUE_FULL:	return RELAY_E_QUEUE_FULL;
	case SR_QUEUE_TOTAL:	return RELAY_E_QUEUE_TOTAL;
	case SR_RESPONSES_FULL:	return RELAY_E_RESPONSES_FULL;
	case SR_NO_RESPONSE:	return RELAY_E_NO_RESPONSE;
	case SR_UNKNOWN_SESSION: return RELAY_E_UNKNOWN_SESSION;
	case SR_CHUNKS_FULL:	return RELAY_E_CHUNKS_FULL;
	case SR_NO_STREAM:	return RELAY_E_NO_STREAM;
	default:		return RELAY_E_UNAVAILABLE;
	}
}

/*
 * Runs a script; on RELAY_OK the effects are added to *fx, *status holds
 * the script's own verdict and, when that is RELAY_OK too, the reply has
 * at least 1 + NFX + extra elements.
 */
static enum relay_status
run(struct rstore *st, int which, struct relay_redis_args *a, size_t extra,
    struct relay_redis_reply *rep, struct relay_store_effects *fx,
    enum relay_status *status)
{
	const char *key = relay_redis_prefix(st->r);
	size_t keylen = strlen(key), i;
	enum relay_redis_rc rc;
	long long v[NFX];

	bool l2 = atomic_load(&st->l2);
	int tries;

	/*
	 * Every script reads the backstop TTL grace from its last argument
	 * but one and its expiry batch size from its last.
	 */
	relay_redis_args_int(a, TTL_GRACE_MS);
	relay_redis_args_int(a, which == S_SWEEP ? SWEEP_BATCH : EXPIRE_BATCH);
	if (!relay_redis_args_ok(a))
		return RELAY_E_UNAVAILABLE;	/* unreachable: no op has 32 */
	/*
	 * Each script checks the stored schema version before it does
	 * anything and answers SR_NOT_L1/SR_NOT_L2 alone when it is the other
	 * layout's: then the other layout's script runs (nothing was done, so
	 * this is no re-send) and this process remembers the switch.
	 */
	for (tries = 0;; tries++) {
		rc = relay_redis_eval(st->r, l2 ? st->id2[which] : st->id[which],
		    1, &key, &keylen, a->n, a->v, a->len, rep);
		if (rc != RELAY_REDIS_OK)
			return map_rc(rc);
		if (rep->type != RELAY_REDIS_ARRAY || rep->n != 1 ||
		    rep->elem[0].type != RELAY_REDIS_INT ||
		    rep->elem[0].integer != (l2 ? SR_NOT_L2 : SR_NOT_L1))
			break;
		relay_redis_reply_free(rep);
		if (tries == 1)
			return RELAY_E_UNAVAILABLE;	/* neither: no schema */
		l2 = !l2;
		/* One line per change of this process's layout (not per call). */
		if (atomic_exchange(&st->l2, l2) != l2)
			TP_LOG(TP_LOG_INFO, "relay.state_layout",
			    TP_LSTR("prefix", key), TP_LINT("layout", l2 ? 2 : 1),
			    TP_LSTR("generation", "legacy"));
	}
	if (rep->type != RELAY_REDIS_ARRAY || rep->n < 1 + NFX)
		goto bad;
	for (i = 0; i < 1 + NFX; i++)
		if (rep->elem[i].type != RELAY_REDIS_INT)
			goto bad;
	for (i = 0; i < NFX; i++)
		v[i] = rep->elem[1 + i].integer < 0 ? 0 :
		    rep->elem[1 + i].integer;
	if (fx != NULL) {
		fx->evicted_servers += (uint64_t)v[0];
		fx->dropped_jobs += (uint64_t)v[1];
		fx->expired_responses += (uint64_t)v[2];
		fx->expired_sessions += (uint64_t)v[3];
		fx->replaced_responses += (uint64_t)v[4];
		fx->replaced_sessions += (uint64_t)v[5];
	}
	*status = map_sr(rep->elem[0].integer);
	/* A refusal carries nothing else; a success its `extra` fields. */
	if (*status == RELAY_OK && rep->n < 1 + NFX + extra)
		goto bad;
	return RELAY_OK;
bad:
	relay_redis_reply_free(rep);
	return RELAY_E_UNAVAILABLE;
}

/* Runs a script whose answer is its verdict alone. */
static enum relay_status
run_status(struct rstore *st, int which, struct relay_redis_args *a,
    struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;

	rc = run(st, which, a, 0, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	relay_redis_reply_free(&rep);
	return status;
}

/* Moves a reply string into a blob (the caller frees the blob). */
static void
take_str(struct relay_redis_reply *e, struct relay_blob *b)
{
	b->data = e->str;
	b->len = e->len;
	b->mem = e->str;
	e->str = NULL;
	e->len = 0;
}

/*
 * The string a successful script returns after its effects, moved into
 * *out; `missing` when there is none. Frees the reply.
 */
static enum relay_status
reply_str(struct relay_redis_reply *rep, enum relay_status status,
    struct relay_blob *out, enum relay_status missing)
{
	if (status == RELAY_OK) {
		if (rep->n > 1 + NFX && rep->elem[1 + NFX].type == RELAY_REDIS_STR)
			take_str(&rep->elem[1 + NFX], out);
		else
			status = missing;
	}
	relay_redis_reply_free(rep);
	return status;
}

static int64_t
keep_ms(const struct relay_store_limits *lim)
{
	int64_t t = lim->server_ttl_ms > lim->server_busy_ttl_ms ?
	    lim->server_ttl_ms : lim->server_busy_ttl_ms;

	return t + TTL_GRACE_MS;
}

/* ---- operations --------------------------------------------------------- */

static enum relay_status
r_poll(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, size_t max_jobs,
    size_t max_bytes, struct relay_poll_result *out,
    struct relay_store_effects *fx)
{
	struct rstore *st = R(s);
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	unsigned char seed[16];
	char hex[33], name[RELAY_KEYNAME_LEN + 1];
	struct relay_redis_args a = { .n = 0 };
	size_t i, n;

	memset(out, 0, sizeof(*out));
	if (relay_random_bytes(seed, sizeof(seed)) != 0)
		return RELAY_E_NOMEM;
	for (i = 0; i < sizeof(seed); i++)
		snprintf(hex + 2 * i, 3, "%02x", seed[i]);
	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->server_ttl_ms);
	relay_redis_args_int(&a, lim->server_busy_ttl_ms);
	relay_redis_args_uint(&a, lim->max_servers);
	relay_redis_args_uint(&a, max_jobs);
	relay_redis_args_uint(&a, max_bytes);
	relay_redis_args_int(&a, lim->session_ttl_ms);
	relay_redis_args_uint(&a, lim->max_stream_sessions);
	relay_redis_args_bytes(&a, hex, 32);
	relay_redis_args_bytes(&a, key, key_len);
	arg_name(&a, name, key, key_len);
	rc = run(st, S_POLL, &a, 3, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	if (status != RELAY_OK)
		goto out;
	out->registered = rep.elem[7].integer != 0;
	out->session_limited = rep.elem[8].integer != 0;
	n = rep.elem[9].integer > 0 ? (size_t)rep.elem[9].integer : 0;
	if (n == 0)
		goto out;
	if (rep.n != 10 + 3 * n) {
		status = RELAY_E_UNAVAILABLE;
		goto out;
	}
	out->jobs = calloc(n, sizeof(*out->jobs));
	if (out->jobs == NULL) {
		/* Popped already: lost like a reply the node never read. */
		status = RELAY_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct relay_redis_reply *e = &rep.elem[10 + 3 * i];
		struct relay_job *j = &out->jobs[i];

		j->stream = e[0].type == RELAY_REDIS_INT && e[0].integer != 0;
		if (e[1].type == RELAY_REDIS_STR)
			take_str(&e[1], &j->blob);
		if (e[2].type == RELAY_REDIS_STR &&
		    e[2].len == RELAY_SESSION_ID_LEN)
			memcpy(j->session_id, e[2].str, RELAY_SESSION_ID_LEN + 1);
		if (j->blob.mem == NULL) {
			/* An empty job: hand out an owned empty string. */
			j->blob.mem = calloc(1, 1);
			j->blob.data = j->blob.mem;
			if (j->blob.mem == NULL) {
				out->n = i;
				relay_poll_result_free(out);
				status = RELAY_E_NOMEM;
				goto out;
			}
		}
	}
	out->n = n;
out:
	relay_redis_reply_free(&rep);
	return status;
}

static enum relay_status
r_enqueue(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len,
    const struct relay_job_in *in, struct relay_store_effects *fx)
{
	struct relay_redis_args a = { .n = 0 };
	char name[RELAY_KEYNAME_LEN + 1];

	relay_redis_args_int(&a, now);
	relay_redis_args_uint(&a, lim->queue_per_server);
	relay_redis_args_uint(&a, lim->queue_total);
	relay_redis_args_int(&a, keep_ms(lim));
	relay_redis_args_bytes(&a, key, key_len);
	relay_redis_args_bytes(&a, in->stream ? "1" : "0", 1);
	relay_redis_args_bytes(&a, in->stream && in->owner ? in->owner : "",
	    in->stream && in->owner ? in->owner_len : 0);
	relay_redis_args_bytes(&a, in->data, in->len);
	arg_name(&a, name, key, key_len);
	return run_status(R(s), S_ENQUEUE, &a, fx);
}

static enum relay_status
r_pick_server(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, struct relay_blob *out, struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	struct relay_redis_args a = { .n = 0 };
	uint64_t r;

	(void)lim;
	memset(out, 0, sizeof(*out));
	if (relay_random_bytes(&r, sizeof(r)) != 0)
		return RELAY_E_NOMEM;
	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, (int64_t)(r >> 12));	/* 52 bits: exact in a double */
	rc = run(R(s), S_PICK, &a, 0, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	return reply_str(&rep, status, out, RELAY_E_NO_SERVERS);
}

static enum relay_status
r_unregister(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, bool *removed,
    struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	struct relay_redis_args a = { .n = 0 };

	(void)lim;
	char name[RELAY_KEYNAME_LEN + 1];

	*removed = false;
	relay_redis_args_int(&a, now);
	relay_redis_args_bytes(&a, key, key_len);
	arg_name(&a, name, key, key_len);
	rc = run(R(s), S_UNREGISTER, &a, 1, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	*removed = rep.elem[7].type == RELAY_REDIS_INT &&
	    rep.elem[7].integer != 0;
	relay_redis_reply_free(&rep);
	return status;
}

static enum relay_status
r_put_response(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, const char *data,
    size_t len, struct relay_store_effects *fx)
{
	struct relay_redis_args a = { .n = 0 };
	char name[RELAY_KEYNAME_LEN + 1];

	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->response_ttl_ms);
	relay_redis_args_uint(&a, lim->max_responses);
	relay_redis_args_bytes(&a, key, key_len);
	relay_redis_args_bytes(&a, data, len);
	arg_name(&a, name, key, key_len);
	return run_status(R(s), S_PUT_RESPONSE, &a, fx);
}

static enum relay_status
r_take_response(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *key, size_t key_len, struct relay_blob *out,
    struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	struct relay_redis_args a = { .n = 0 };
	char name[RELAY_KEYNAME_LEN + 1];

	memset(out, 0, sizeof(*out));
	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->response_ttl_ms);
	relay_redis_args_bytes(&a, key, key_len);
	arg_name(&a, name, key, key_len);
	rc = run(R(s), S_TAKE_RESPONSE, &a, 0, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	return reply_str(&rep, status, out, RELAY_E_NO_RESPONSE);
}

static enum relay_status
r_stream_append(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *id, size_t id_len, const char *data, size_t len,
    bool final, struct relay_store_effects *fx)
{
	struct relay_redis_args a = { .n = 0 };

	/* Only an id this store made can name a session's keys. */
	if (!session_id_ok(id, id_len))
		return RELAY_E_UNKNOWN_SESSION;
	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->session_ttl_ms);
	relay_redis_args_uint(&a, lim->max_stream_chunks);
	relay_redis_args_bytes(&a, id, id_len);
	relay_redis_args_bytes(&a, data, len);
	relay_redis_args_bytes(&a, final ? "1" : "0", 1);
	return run_status(R(s), S_STREAM_APPEND, &a, fx);
}

static enum relay_status
r_stream_drain(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, const char *client, size_t client_len,
    struct relay_drain_result *out, struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	struct relay_redis_args a = { .n = 0 };
	size_t i, n;

	memset(out, 0, sizeof(*out));
	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->session_ttl_ms);
	relay_redis_args_bytes(&a, client, client_len);
	rc = run(R(s), S_STREAM_DRAIN, &a, 0, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	if (status != RELAY_OK)
		goto out;
	if (rep.n < 9 || rep.elem[7].type != RELAY_REDIS_STR ||
	    rep.elem[7].len != RELAY_SESSION_ID_LEN) {
		status = RELAY_E_UNAVAILABLE;
		goto out;
	}
	memcpy(out->session_id, rep.elem[7].str, RELAY_SESSION_ID_LEN + 1);
	out->final = rep.elem[8].type == RELAY_REDIS_INT &&
	    rep.elem[8].integer != 0;
	n = rep.n - 9;
	if (n > 0) {
		out->chunks = calloc(n, sizeof(*out->chunks));
		if (out->chunks == NULL) {
			status = RELAY_E_NOMEM;
			goto out;
		}
		for (i = 0; i < n; i++) {
			if (rep.elem[9 + i].type == RELAY_REDIS_STR)
				take_str(&rep.elem[9 + i], &out->chunks[i]);
			if (out->chunks[i].mem == NULL) {
				out->chunks[i].mem = calloc(1, 1);
				out->chunks[i].data = out->chunks[i].mem;
			}
			out->n++;
			if (out->chunks[i].mem == NULL) {
				relay_drain_result_free(out);
				status = RELAY_E_NOMEM;
				goto out;
			}
		}
	}
out:
	relay_redis_reply_free(&rep);
	return status;
}

static enum relay_status
r_sweep(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, struct relay_store_effects *fx)
{
	struct relay_redis_args a = { .n = 0 };

	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->response_ttl_ms);
	relay_redis_args_int(&a, lim->session_ttl_ms);
	relay_redis_args_int(&a, RELAY_STORE_SWEEP_INTERVAL_MS);
	return run_status(R(s), S_SWEEP, &a, fx);
}

static uint64_t
count_at(const struct relay_redis_reply *rep, size_t i)
{
	return rep->elem[i].type == RELAY_REDIS_INT && rep->elem[i].integer > 0 ?
	    (uint64_t)rep->elem[i].integer : 0;
}

static enum relay_status
r_stats(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, struct relay_store_stats *out, struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	struct relay_redis_args a = { .n = 0 };

	memset(out, 0, sizeof(*out));
	relay_redis_args_int(&a, now);
	relay_redis_args_int(&a, lim->response_ttl_ms);
	relay_redis_args_int(&a, lim->session_ttl_ms);
	rc = run(R(s), S_STATS, &a, 5, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	out->servers = count_at(&rep, 7);
	out->queued = count_at(&rep, 8);
	out->responses = count_at(&rep, 9);
	out->sessions = count_at(&rep, 10);
	out->chunks = count_at(&rep, 11);
	relay_redis_reply_free(&rep);
	return status;
}

static enum relay_status
r_list_servers(struct relay_store *s, const struct relay_store_limits *lim,
    int64_t now, size_t max, bool keys, struct relay_server_list *out,
    struct relay_store_effects *fx)
{
	struct relay_redis_reply rep;
	enum relay_status rc, status;
	struct relay_redis_args a = { .n = 0 };
	size_t i, n;

	(void)lim;
	memset(out, 0, sizeof(*out));
	relay_redis_args_int(&a, now);
	relay_redis_args_uint(&a, max);
	rc = run(R(s), S_LIST_SERVERS, &a, 2, &rep, fx, &status);
	if (rc != RELAY_OK)
		return rc;
	if (status != RELAY_OK)
		goto out;
	out->total = count_at(&rep, 7);
	n = (size_t)count_at(&rep, 8);
	if (n > max || rep.n != 9 + 3 * n) {
		status = RELAY_E_UNAVAILABLE;
		goto out;
	}
	if (n > 0) {
		out->servers = calloc(n, sizeof(out->servers[0]));
		if (out->servers == NULL) {
			status = RELAY_E_NOMEM;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		struct relay_redis_reply *e = &rep.elem[9 + 3 * i];
		struct relay_server_info *info = &out->servers[out->n++];
		int64_t seen = e[1].type == RELAY_REDIS_INT ? e[1].integer : now;

		info->age_ms = now > seen ? now - seen : 0;
		info->queued = count_at(&rep, 9 + 3 * i + 2);
		if (keys && e[0].type == RELAY_REDIS_STR) {
			info->key_len = e[0].len;
			info->key = e[0].str;	/* NUL-ended by the adapter */
			e[0].str = NULL;
		}
	}
out:
	relay_redis_reply_free(&rep);
	if (status != RELAY_OK)
		relay_server_list_free(out);
	return status;
}

static void
r_destroy(struct relay_store *s)
{
	/* The adapter is the caller's (both generations share it). */
	free(R(s));
}

static const struct relay_store_ops redis_ops = {
	.name = "redis",
	.poll = r_poll,
	.enqueue = r_enqueue,
	.pick_server = r_pick_server,
	.unregister = r_unregister,
	.put_response = r_put_response,
	.take_response = r_take_response,
	.stream_append = r_stream_append,
	.stream_drain = r_stream_drain,
	.sweep = r_sweep,
	.stats = r_stats,
	.list_servers = r_list_servers,
	.destroy = r_destroy,
};

struct relay_store *
relay_store_redis_new(struct relay_redis *r)
{
	struct rstore *st;
	size_t i, lib = strlen(relay_store_redis_lua);

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->r = r;
	atomic_init(&st->l2, true);
	for (i = 0; i < S_COUNT; i++) {
		size_t n = lib + 64;
		char *text;

		st->id[i] = relay_redis_script(r, scripts[i].name,
		    scripts[i].lua);
		text = malloc(n);
		if (st->id[i] < 0 || text == NULL) {
			free(text);
			free(st);
			return NULL;
		}
		/* The same flags as layout 1's; the same metric label. */
		snprintf(text, n, "#!lua%s\n%s\nreturn op_%s()\n",
		    strncmp(scripts[i].lua, "#!lua flags=allow-oom\n", 22) == 0 ?
		    " flags=allow-oom" : "", relay_store_redis_lua, l2_ops[i]);
		st->id2[i] = relay_redis_script(r, scripts[i].name, text);
		free(text);
		if (st->id2[i] < 0) {
			free(st);
			return NULL;
		}
	}
	st->pub.ops = &redis_ops;
	st->pub.state = st;
	return &st->pub;
}
