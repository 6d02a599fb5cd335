-- v1_store_redis.lua -- the API v1 store's transitions as Redis Lua.
--
-- v1_store_redis.c registers this library once per operation, behind a
-- "#!lua" shebang and followed by "return op_<name>()", so every store
-- call is ONE script (atomic: no other client runs a command while it
-- runs). The shebang makes the server refuse a whole script up front
-- while it is out of memory, instead of failing at the first write with
-- half a transition done; the operations that take data out or expire it
-- say flags=allow-oom there (see op_allow_oom in the C file).
--
-- Calling convention (all scripts):
--   KEYS[1]   the deployment prefix with its hash tag, e.g. "{tokenplace:}";
--             every key below starts with it, so all of them hash to one
--             cluster slot.
--   ARGV[1]   now_ms (the scripts never read a clock: no TIME, no
--             math.random), ARGV[2..12] the limits (struct relay_v1_limits
--             order), ARGV[13] the backstop TTL grace (TTL_GRACE_MS in
--             v1_store_redis.c), ARGV[14..] the operation's own arguments.
--   Reply     { rc, { effects... }, results... }, rc as enum relay_v1_rc.
--
-- Keys (P = KEYS[1] .. "v1:"; <id> = 32 hex of SHA-256 of a node key,
-- <rid> = 32 hex of SHA-256 of client NUL request_id, both computed in C;
-- <tid> = sha1hex(<id> NUL request_id)):
--   P.gen P.selseq P.regseq P.rseq   counters (INCR, no TTL: never go back;
--               gen starts at now_ms * 1000, see next_generation)
--   P.sweep:due  when the next cluster-wide sweep may run
--   P.nodes     zset <id> -> stale-at (first ms at which the node is stale)
--   P.byreg     zset <id> -> registration sequence (list_nodes's order)
--   P.n:<id>    hash: key digest tier ctx conc nmodels models last_seen
--               polling_until last_selected reg mx (sha1 of the models
--               filed in P.mods)
--   P.nq:<id>   list of <rid> queued, oldest first (<= max_concurrency)
--   P.nc:<id>   zset <rid> -> claim lease expiry (in flight)
--   P.nr:<id>   zset reservation -> expiry
--   P.ni:<id>   hash request_id -> <rid> for the node's live requests
--   P.mh:<sha1hex(model)> set of <id> serving the model (schema 2; a
--               store still at schema 1 uses P.m:<model>, see mkey)
--   P.mods      zset (all scores 0, so in byte order) of the models some
--               node serves: the model list reads it, never the nodes
--   P.r:<rid>   hash: client id owner oid state(q/f/r/t) admitted deadline
--               claimed_at claim_expires until generation cancel work body
--               t_status t_reason
--   P.live (deadline) P.queued (admitted) P.inflight (claimed_at)
--   P.claims (claim expiry) P.ready (response expiry) P.term (record
--   expiry) P.resv (reservation expiry): zsets of <rid> / reservations,
--   the due-time indexes that keep every call's work bounded.
--   P.rdl       zset <rid> -> until when a delivered ('t' completed)
--               record still holds its body for a retrying client
--   P.t:<tid> / P.tombs   control tombstones and their expiry index
--   P.nt:<id> / P.ntombs  node tombstones ("recently unregistered")
-- Every key but the counters carries a TTL backstop: its logical lifetime
-- plus GRACE, so a relay that dies mid-way leaves nothing for ever.

local P = KEYS[1] .. 'v1:'
local now = tonumber(ARGV[1])
local L = {
	lease = tonumber(ARGV[2]), inflight = tonumber(ARGV[3]),
	tomb = tonumber(ARGV[4]), ntomb = tonumber(ARGV[5]),
	term = tonumber(ARGV[6]), resp = tonumber(ARGV[7]),
	resv = tonumber(ARGV[8]), max_nodes = tonumber(ARGV[9]),
	max_req = tonumber(ARGV[10]), max_term = tonumber(ARGV[11]),
	max_tombs = tonumber(ARGV[12]),
}
local GRACE = tonumber(ARGV[13])
local A = 14
local BATCH = 128

-- enum relay_v1_rc
local OK, E_UNKNOWN_NODE, E_NODES_FULL, E_FORBIDDEN = 0, 3, 4, 5
local E_NO_NODES, E_NO_MATCH, E_NO_CAPACITY, E_REQUESTS_FULL = 6, 7, 8, 9
local E_CONFLICT, E_GONE, E_NOT_ACTIVE, E_EXPIRED = 10, 11, 12, 13
-- struct relay_v1_effects, in order
local FX_COMPLETED, FX_CANCELLED, FX_EXPIRED = 1, 2, 3
local FX_EVICTED, FX_UNREGISTERED, FX_EXPIRED_RESP = 4, 5, 6
local FX_DROPPED_TERM, FX_DROPPED_TOMBS, FX_RENEWALS, FX_ACKED = 7, 8, 9, 10
local FX_REDELIVERED = 11
local fx = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

local function call(...) return redis.call(...) end

local function tomap(flat)
	if #flat == 0 then return nil end
	local t = {}
	for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
	return t
end

local function num(v) return tonumber(v) or 0 end

-- Raises a key's TTL to at least ms (index keys: they live as long as
-- their longest member, and a later member must never shorten that).
local function expire_at_least(key, ms)
	local t = call('PTTL', key)
	if t >= 0 and t < ms then call('PEXPIRE', key, ms)
	elseif t == -1 then call('PEXPIRE', key, ms) end
end

local function life(until_ms) -- remaining logical life + grace
	local d = until_ms - now
	if d < 0 then d = 0 end
	return d + GRACE
end

-- Byte-exact comparison of SHA-256 digests. Constant time is moot here:
-- the script runs inside Redis, whose timing a client cannot observe
-- apart from the whole round trip, and Lua offers no constant-time
-- primitive; what reaches the store is a digest, never the secret.
local function digest_ok(given, stored)
	return given ~= nil and given ~= '' and stored ~= nil and given == stored
end

local function nkey(id) return P .. 'n:' .. id end

-- The set of a model's nodes. No key name is built from a string a client
-- or node chose (docs/store-redis.md, "Key names"): under schema 2 the
-- model id becomes its SHA-1 (fixed length; every node found there is
-- checked against the models in its own record, see serves). A store
-- still at schema 1 keeps P.m:<model>, which the replicas of the previous
-- release read, until `tokenplace-relay --state-upgrade` moves the sets.
local L2 = call('GET', KEYS[1] .. 'schema') == '2'
local function mkey(m)
	if L2 then return P .. 'mh:' .. redis.sha1hex(m) end
	return P .. 'm:' .. m
end

local function models_of(packed)
	local out = {}
	if packed == nil or packed == '' then return out end
	for m in string.gmatch(packed, '([^%z]+)') do out[#out + 1] = m end
	return out
end

-- Whether the packed model list of a node record holds model exactly.
local function serves(packed, model)
	for _, m in ipairs(models_of(packed)) do
		if m == model then return true end
	end
	return false
end

-- ---- nodes ---------------------------------------------------------------

-- Files node id's models in P.mods when they changed since it was last
-- done (field mx), so a node registered or changed by an older relay,
-- which knows no P.mods, joins the model list at its next call here.
local function models_indexed(id, n, ttl)
	local mx = redis.sha1hex(n.models or '')
	if n.mx ~= mx then
		for _, m in ipairs(models_of(n.models)) do
			call('ZADD', P .. 'mods', 0, m)
		end
		call('HSET', nkey(id), 'mx', mx)
	end
	expire_at_least(P .. 'mods', ttl)
end

-- The first ms at which node id is stale: silent past its lease, not in a
-- long poll, and no claim with a live lease.
local function stale_at(id, n)
	local s = num(n.last_seen) + L.lease + 1
	local pu = num(n.polling_until)
	if pu > s then s = pu end
	local top = call('ZREVRANGE', P .. 'nc:' .. id, 0, 0, 'WITHSCORES')
	if top[2] ~= nil and tonumber(top[2]) > s then s = tonumber(top[2]) end
	return s
end

-- Re-files the node under its stale-at time and refreshes the backstops
-- of its keys; call after any change to last_seen, polling_until, claims.
local function rescore(id)
	local nk = nkey(id)
	local n = tomap(call('HGETALL', nk))
	if n == nil then
		call('ZREM', P .. 'nodes', id)
		return
	end
	local s = stale_at(id, n)
	local ttl = life(s) + L.ntomb
	call('ZADD', P .. 'nodes', s, id)
	expire_at_least(P .. 'nodes', ttl)
	-- NX: a node filed by an older relay (no byreg yet) joins the order
	call('ZADD', P .. 'byreg', 'NX', num(n.reg), id)
	expire_at_least(P .. 'byreg', ttl)
	for _, k in ipairs({ nk, P .. 'nq:' .. id, P .. 'nc:' .. id,
	    P .. 'nr:' .. id, P .. 'ni:' .. id }) do
		call('PEXPIRE', k, ttl)
	end
	for _, m in ipairs(models_of(n.models)) do
		expire_at_least(mkey(m), ttl)
	end
	models_indexed(id, n, ttl)
end

local function set_models(id, old, new, ttl)
	for _, m in ipairs(models_of(old)) do call('SREM', mkey(m), id) end
	for _, m in ipairs(models_of(new)) do
		call('SADD', mkey(m), id)
		expire_at_least(mkey(m), ttl)
	end
	-- a model nobody serves any more leaves the model list (after the
	-- adds: a node that keeps a model never takes it out)
	for _, m in ipairs(models_of(old)) do
		if call('EXISTS', mkey(m)) == 0 then call('ZREM', P .. 'mods', m) end
	end
end

-- ---- tombstones ------------------------------------------------------------

local function tid_of(id, request_id)
	return redis.sha1hex(id .. '\0' .. request_id)
end

local function tomb_free(tid)
	call('DEL', P .. 't:' .. tid)
	call('ZREM', P .. 'tombs', tid)
end

local function tomb_find(id, request_id)
	local tid = tid_of(id, request_id)
	local t = tomap(call('HGETALL', P .. 't:' .. tid))
	if t == nil then
		call('ZREM', P .. 'tombs', tid)
		return nil, tid
	end
	if num(t.expires) <= now then
		tomb_free(tid)
		return nil, tid
	end
	return t, tid
end

-- Drops the oldest entries of index zset `idx` beyond max (never `keep`,
-- the one just added), deleting each one's record under `rec`.
local function trim(idx, rec, max, keep, fxi)
	local over = call('ZCARD', idx) - max
	if over <= 0 then return end
	local old = call('ZRANGE', idx, 0, over)
	for _, m in ipairs(old) do
		if over <= 0 then break end
		if m ~= keep then
			call('DEL', rec .. m)
			call('ZREM', idx, m)
			fx[fxi] = fx[fxi] + 1
			over = over - 1
		end
	end
end

-- Leaves word for the owner (node id, its digest) of a request taken
-- away from it.
local function tomb_add(id, digest, request_id, status, deadline)
	local tid = tid_of(id, request_id)
	local tk = P .. 't:' .. tid
	local exp = now + L.tomb
	call('HSET', tk, 'expires', exp, 'deadline', deadline, 'status', status,
	    'digest', digest or '')
	call('PEXPIRE', tk, L.tomb + GRACE)
	call('ZADD', P .. 'tombs', exp, tid)
	expire_at_least(P .. 'tombs', L.tomb + GRACE)
	trim(P .. 'tombs', P .. 't:', L.max_tombs, tid, FX_DROPPED_TOMBS)
end

local function ntomb_find(id)
	local t = tomap(call('HGETALL', P .. 'nt:' .. id))
	if t == nil then return nil end
	if num(t.expires) <= now then
		call('DEL', P .. 'nt:' .. id)
		call('ZREM', P .. 'ntombs', id)
		return nil
	end
	return t
end

-- ---- requests --------------------------------------------------------------

local function rkey(rid) return P .. 'r:' .. rid end

-- Takes r out of the indexes of its current state.
local function unindex(rid, r)
	local st = r.state
	if st == 'q' or st == 'f' then
		local oid = r.oid
		if st == 'q' then
			call('LREM', P .. 'nq:' .. oid, 1, rid)
			call('ZREM', P .. 'queued', rid)
		else
			call('ZREM', P .. 'nc:' .. oid, rid)
			call('ZREM', P .. 'claims', rid)
			call('ZREM', P .. 'inflight', rid)
		end
		call('ZREM', P .. 'live', rid)
		if call('HGET', P .. 'ni:' .. oid, r.id) == rid then
			call('HDEL', P .. 'ni:' .. oid, r.id)
		end
	elseif st == 'r' then
		call('ZREM', P .. 'ready', rid)
	elseif st == 't' then
		call('ZREM', P .. 'term', rid)
	end
end

-- Moves r to TERMINAL, counting outcome fxi unless nil.
local function terminalize(rid, r, status, reason, fxi)
	local was = r.state
	unindex(rid, r)
	local u = now + L.term
	local rk = rkey(rid)
	call('HDEL', rk, 'work', 'body')
	call('HSET', rk, 'state', 't', 't_status', status, 't_reason', reason,
	    'until', u)
	call('PEXPIRE', rk, L.term + GRACE)
	r.state, r.t_status, r.t_reason, r['until'] = 't', status, reason, u
	r.work, r.body = nil, nil
	call('ZADD', P .. 'term', u, rid)
	expire_at_least(P .. 'term', L.term + GRACE)
	if fxi ~= nil then fx[fxi] = fx[fxi] + 1 end
	-- r is the newest record, so with max_terminal >= 1 it stays.
	local max = L.max_term
	if max < 1 then max = 1 end
	trim(P .. 'term', P .. 'r:', max, rid, FX_DROPPED_TERM)
	if was == 'f' then rescore(r.oid) end
end

-- A claimed request past its deadline: terminal, owner told by tombstone.
local function expire_claim(rid, r)
	tomb_add(r.oid, call('HGET', nkey(r.oid), 'digest'), r.id, 'expired',
	    r.deadline)
	terminalize(rid, r, 'expired', 'provider_timeout', FX_EXPIRED)
end

-- Applies r's expiries; returns r, or nil when the record is gone.
local function req_expire(rid, r)
	local st = r.state
	if st == 'q' then
		if num(r.deadline) <= now then
			terminalize(rid, r, 'expired', 'provider_timeout', FX_EXPIRED)
		end
	elseif st == 'f' then
		if num(r.deadline) <= now then expire_claim(rid, r) end
	elseif st == 'r' then
		if num(r['until']) <= now then
			terminalize(rid, r, 'expired', 'response_ttl_exceeded', nil)
			fx[FX_EXPIRED_RESP] = fx[FX_EXPIRED_RESP] + 1
		end
	elseif st == 't' then
		if num(r['until']) <= now then
			call('DEL', rkey(rid))
			call('ZREM', P .. 'term', rid)
			return nil
		end
	end
	return r
end

local function req_get(rid)
	return tomap(call('HGETALL', rkey(rid)))
end

local function req_find(rid)
	local r = req_get(rid)
	if r == nil then return nil end
	return req_expire(rid, r)
end

-- ---- nodes, continued -------------------------------------------------------

local function ntomb_add(id, digest)
	local k = P .. 'nt:' .. id
	local exp = now + L.ntomb
	call('HSET', k, 'expires', exp, 'digest', digest)
	call('PEXPIRE', k, L.ntomb + GRACE)
	call('ZADD', P .. 'ntombs', exp, id)
	expire_at_least(P .. 'ntombs', L.ntomb + GRACE)
end

-- Unregisters or evicts node id: its work becomes terminal, owners told.
local function node_remove(id, n, evicted)
	local q = call('LRANGE', P .. 'nq:' .. id, 0, -1)
	for _, rid in ipairs(q) do
		local r = req_get(rid)
		if r ~= nil and r.state == 'q' then
			terminalize(rid, r, 'cancelled', 'server_unregistered',
			    FX_CANCELLED)
		end
	end
	local c = call('ZRANGE', P .. 'nc:' .. id, 0, -1)
	for _, rid in ipairs(c) do
		local r = req_get(rid)
		if r ~= nil and r.state == 'f' then
			tomb_add(id, n.digest, r.id, 'cancelled', r.deadline)
			terminalize(rid, r, 'cancelled', 'server_unregistered',
			    FX_CANCELLED)
		end
	end
	ntomb_add(id, n.digest)
	set_models(id, n.models, nil, 0)
	local res = call('ZRANGE', P .. 'nr:' .. id, 0, -1)
	for _, m in ipairs(res) do call('ZREM', P .. 'resv', m) end
	call('DEL', nkey(id), P .. 'nq:' .. id, P .. 'nc:' .. id,
	    P .. 'nr:' .. id, P .. 'ni:' .. id)
	call('ZREM', P .. 'nodes', id)
	call('ZREM', P .. 'byreg', id)
	if evicted then
		fx[FX_EVICTED] = fx[FX_EVICTED] + 1
	else
		fx[FX_UNREGISTERED] = fx[FX_UNREGISTERED] + 1
	end
end

local function node_stale(id, n)
	return now >= stale_at(id, n)
end

-- The registered node id with this key, evicting it first if its lease
-- lapsed. A record under id with another key (a 128-bit hash collision)
-- is reported as `clash`.
local function node_get(id, key)
	local n = tomap(call('HGETALL', nkey(id)))
	if n == nil then
		call('ZREM', P .. 'nodes', id)
		return nil
	end
	if n.key ~= key then return nil, true end
	if node_stale(id, n) then
		node_remove(id, n, true)
		return nil
	end
	return n
end

local function node_auth(id, n, digest)
	if n ~= nil then return digest_ok(digest, n.digest) end
	local t = ntomb_find(id)
	return t ~= nil and digest_ok(digest, t.digest)
end

local function prune_res(id)
	local k = P .. 'nr:' .. id
	local gone = call('ZRANGEBYSCORE', k, '-inf', now)
	for _, m in ipairs(gone) do call('ZREM', P .. 'resv', m) end
	if #gone > 0 then call('ZREMRANGEBYSCORE', k, '-inf', now) end
	return call('ZCARD', k)
end

local function live_claims(id)
	return call('ZCOUNT', P .. 'nc:' .. id, '(' .. now, '+inf')
end

-- Capacity in use: queued + live claims + live reservations.
local function node_used(id)
	return call('LLEN', P .. 'nq:' .. id) + live_claims(id) + prune_res(id)
end

-- Bounded sweep of stale nodes (used when a limit is reached, so that a
-- node nobody swept yet never holds a place).
local function evict_due(max)
	local ids = call('ZRANGEBYSCORE', P .. 'nodes', '-inf', now, 'LIMIT', 0, max)
	for _, id in ipairs(ids) do
		local n = tomap(call('HGETALL', nkey(id)))
		if n == nil then
			call('ZREM', P .. 'nodes', id)
		elseif node_stale(id, n) then
			node_remove(id, n, true)
		else
			rescore(id)
		end
	end
	return #ids
end

local function expire_due(idx, max)
	local rids = call('ZRANGEBYSCORE', P .. idx, '-inf', now, 'LIMIT', 0, max)
	for _, rid in ipairs(rids) do
		local r = req_get(rid)
		if r == nil then
			call('ZREM', P .. idx, rid)
		else
			req_expire(rid, r)
		end
	end
	return #rids
end

local function caps_fields(k, base)
	return 'tier', ARGV[base], 'ctx', ARGV[base + 1], 'conc', ARGV[base + 2],
	    'nmodels', ARGV[base + 3], 'models', ARGV[base + 4]
end

-- Claim generations increase for ever, across a restart of a server that
-- kept nothing too: an absent counter starts at now_ms * 1000, above
-- every generation handed out before (that would take more than 1000
-- claims per millisecond since the first one). Formatted with %d: the
-- values pass 10^14, where Lua's default number format loses digits.
local function next_generation()
	if call('EXISTS', P .. 'gen') == 0 then
		call('SET', P .. 'gen', string.format('%d', now * 1000), 'NX')
	end
	return call('INCR', P .. 'gen')
end

local function reply(rc, ...)
	return { rc, fx, ... }
end

-- ---- operations -------------------------------------------------------------

-- ARGV: id key digest tier ctx conc nmodels models
local function op_register()
	local id, key, digest = ARGV[A], ARGV[A + 1], ARGV[A + 2]
	local n, clash = node_get(id, key)
	if clash then return reply(E_NODES_FULL, 0) end
	if n ~= nil then
		call('HSET', nkey(id), caps_fields(nkey(id), A + 3))
		call('HSET', nkey(id), 'last_seen', now)
		set_models(id, n.models, ARGV[A + 7], GRACE)
		rescore(id)
		return reply(OK, 0)
	end
	if call('ZCARD', P .. 'nodes') >= L.max_nodes then
		evict_due(BATCH)
		if call('ZCARD', P .. 'nodes') >= L.max_nodes then
			return reply(E_NODES_FULL, 0)
		end
	end
	call('HSET', nkey(id), 'key', key, 'digest', digest, 'last_seen', now,
	    'polling_until', 0, 'last_selected', 0,
	    'reg', call('INCR', P .. 'regseq'))
	call('HSET', nkey(id), caps_fields(nkey(id), A + 3))
	set_models(id, nil, ARGV[A + 7], GRACE)
	call('DEL', P .. 'nt:' .. id)
	call('ZREM', P .. 'ntombs', id)
	rescore(id)
	return reply(OK, 1)
end

-- ARGV: id key has_caps tier ctx conc nmodels models polling_until
-- Reply: rc fx has_work work deadline generation
local function op_poll()
	local id, key = ARGV[A], ARGV[A + 1]
	local n = node_get(id, key)
	if n == nil then return reply(E_UNKNOWN_NODE, 0) end
	local nk = nkey(id)
	if ARGV[A + 2] == '1' then
		call('HSET', nk, caps_fields(nk, A + 3))
		set_models(id, n.models, ARGV[A + 7], GRACE)
	end
	call('HSET', nk, 'last_seen', now)
	local pu = tonumber(ARGV[A + 8])
	if pu > num(n.polling_until) then call('HSET', nk, 'polling_until', pu) end
	local out = { 0, '', 0, 0 }
	while true do
		local rid = call('LINDEX', P .. 'nq:' .. id, 0)
		if not rid then break end
		local r = req_get(rid)
		if r == nil or r.state ~= 'q' then
			call('LPOP', P .. 'nq:' .. id)
		elseif num(r.deadline) <= now then
			terminalize(rid, r, 'expired', 'provider_timeout', FX_EXPIRED)
		else
			local dl = num(r.deadline)
			local ce = now + L.inflight
			if dl < ce then ce = dl end
			local gen = next_generation()
			call('LPOP', P .. 'nq:' .. id)
			call('ZREM', P .. 'queued', rid)
			call('ZADD', P .. 'nc:' .. id, ce, rid)
			call('ZADD', P .. 'claims', ce, rid)
			call('ZADD', P .. 'inflight', now, rid)
			expire_at_least(P .. 'claims', life(dl))
			expire_at_least(P .. 'inflight', life(dl))
			call('HSET', rkey(rid), 'state', 'f', 'claimed_at', now,
			    'claim_expires', ce, 'generation', string.format('%d', gen))
			call('HDEL', rkey(rid), 'work')
			out = { 1, r.work or '', dl, gen }
			break
		end
	end
	rescore(id)
	return reply(OK, out[1], out[2], out[3], out[4])
end

-- ARGV: model tier tier_tokens reserve
-- Reply: rc fx key models nmodels tier ctx queued claims used conc
--        eligible per_tier_0 per_tier_1
local function op_select()
	local model, tier, tokens = ARGV[A], tonumber(ARGV[A + 1]),
	    tonumber(ARGV[A + 2])
	local reserve = ARGV[A + 3] == '1'
	local per = { 0, 0 }
	local matching = 0
	local best, bn, bload, bused = nil, nil, 0, 0
	local ids = call('SMEMBERS', mkey(model))
	for _, id in ipairs(ids) do
		local n = tomap(call('HGETALL', nkey(id)))
		if n == nil then
			call('SREM', mkey(model), id)
		elseif not serves(n.models, model) then
			-- listed under this model's name by another model id (a
			-- digest collision): not a node for this model
		elseif node_stale(id, n) then
			node_remove(id, n, true)
		elseif num(n.tier) >= tier and num(n.ctx) >= tokens then
			matching = matching + 1
			local t = num(n.tier) + 1
			per[t] = (per[t] or 0) + 1
			local used = node_used(id)
			local conc = num(n.conc)
			if used < conc then
				local load = used / conc
				local better = false
				if best == nil then
					better = true
				elseif num(n.tier) ~= num(bn.tier) then
					better = num(n.tier) < num(bn.tier)
				elseif load ~= bload then
					better = load < bload
				elseif num(n.last_selected) ~= num(bn.last_selected) then
					better = num(n.last_selected) < num(bn.last_selected)
				else
					better = num(n.reg) < num(bn.reg)
				end
				if better then
					best, bn, bload, bused = id, n, load, used
				end
			end
		end
	end
	if best == nil then
		local rc = E_NO_CAPACITY
		if call('ZCOUNT', P .. 'nodes', '(' .. now, '+inf') == 0 then
			rc = E_NO_NODES
		elseif matching == 0 then
			rc = E_NO_MATCH
		end
		return reply(rc, '', '', 0, 0, 0, 0, 0, 0, 0, matching, per[1], per[2])
	end
	local conc = num(bn.conc)
	call('HSET', nkey(best), 'last_selected', call('INCR', P .. 'selseq'))
	if reserve and L.resv > 0 and bused < conc and
	    call('ZCARD', P .. 'nr:' .. best) < 128 then
		local m = best .. ':' .. call('INCR', P .. 'rseq')
		local exp = now + L.resv
		call('ZADD', P .. 'nr:' .. best, exp, m)
		call('ZADD', P .. 'resv', exp, m)
		expire_at_least(P .. 'resv', L.resv + GRACE)
		rescore(best)
	end
	return reply(OK, bn.key, bn.models or '', num(bn.nmodels), num(bn.tier),
	    num(bn.ctx), call('LLEN', P .. 'nq:' .. best), live_claims(best),
	    bused, conc, matching, per[1], per[2])
end

-- ARGV: id node_key rid client request_id work cancel_digest deadline
-- Reply: rc fx duplicate deadline
local function op_enqueue()
	local id, key, rid = ARGV[A], ARGV[A + 1], ARGV[A + 2]
	local client, request_id = ARGV[A + 3], ARGV[A + 4]
	local deadline = tonumber(ARGV[A + 7])
	local n = node_get(id, key)
	if n == nil then return reply(E_UNKNOWN_NODE, 0, deadline) end
	local old = req_find(rid)
	if old ~= nil then
		-- A retry of the same live request is answered, not queued twice.
		if (old.state == 'q' or old.state == 'f') and old.owner == key then
			return reply(OK, 1, num(old.deadline))
		end
		return reply(E_CONFLICT, 0, deadline)
	end
	if call('HEXISTS', P .. 'ni:' .. id, request_id) == 1 then
		return reply(E_CONFLICT, 0, deadline)
	end
	if call('ZCARD', P .. 'live') + call('ZCARD', P .. 'ready') >= L.max_req then
		expire_due('live', BATCH)
		expire_due('ready', BATCH)
		if call('ZCARD', P .. 'live') + call('ZCARD', P .. 'ready') >=
		    L.max_req then
			return reply(E_REQUESTS_FULL, 0, deadline)
		end
	end
	-- Reservation and enqueue are one step: capacity can never overflow.
	if prune_res(id) > 0 then
		local first = call('ZRANGE', P .. 'nr:' .. id, 0, 0)[1]
		call('ZREM', P .. 'nr:' .. id, first)
		call('ZREM', P .. 'resv', first)
	elseif node_used(id) >= num(n.conc) then
		return reply(E_NO_CAPACITY, 0, deadline)
	end
	local rk = rkey(rid)
	call('HSET', rk, 'client', client, 'id', request_id, 'owner', key,
	    'oid', id, 'state', 'q', 'admitted', now, 'deadline', deadline,
	    'claimed_at', 0, 'claim_expires', 0, 'generation', 0,
	    'work', ARGV[A + 5])
	if ARGV[A + 6] ~= '' then call('HSET', rk, 'cancel', ARGV[A + 6]) end
	local ttl = life(deadline) + L.resp + L.term
	call('PEXPIRE', rk, ttl)
	call('RPUSH', P .. 'nq:' .. id, rid)
	call('HSET', P .. 'ni:' .. id, request_id, rid)
	call('ZADD', P .. 'live', deadline, rid)
	call('ZADD', P .. 'queued', now, rid)
	expire_at_least(P .. 'live', ttl)
	expire_at_least(P .. 'queued', ttl)
	rescore(id)
	-- pcall: the writes are done; a refused PUBLISH (ACL) must not turn
	-- the queued request into an error (a poll waiting on another
	-- replica then finds it at its next look)
	redis.pcall('PUBLISH', KEYS[1] .. 'wake:' .. id, '1')
	return reply(OK, 0, deadline)
end

-- ARGV: id key digest request_id ack
-- Reply: rc fx state deadline   (state: enum relay_v1_control_state)
local function op_control()
	local id, key, digest, request_id = ARGV[A], ARGV[A + 1], ARGV[A + 2],
	    ARGV[A + 3]
	local ack = ARGV[A + 4] == '1'
	local CTL_ACTIVE, CTL_CANCELLED, CTL_EXPIRED, CTL_COMPLETED = 0, 1, 2, 3
	local n = node_get(id, key)
	if not node_auth(id, n, digest) then
		return reply(E_FORBIDDEN, CTL_COMPLETED, 0)
	end
	if n ~= nil then
		local rid = call('HGET', P .. 'ni:' .. id, request_id)
		local r = rid and req_get(rid)
		if r and r.state == 'f' and r.oid == id then
			local dl = num(r.deadline)
			if dl <= now then
				if not ack then
					tomb_add(id, n.digest, request_id, 'expired', dl)
				end
				terminalize(rid, r, 'expired', 'provider_timeout',
				    FX_EXPIRED)
				return reply(OK, CTL_EXPIRED, dl)
			end
			local ce = now + L.inflight
			if dl < ce then ce = dl end
			call('HSET', rkey(rid), 'claim_expires', ce)
			call('ZADD', P .. 'nc:' .. id, ce, rid)
			call('ZADD', P .. 'claims', ce, rid)
			call('HSET', nkey(id), 'last_seen', now)
			rescore(id)
			fx[FX_RENEWALS] = fx[FX_RENEWALS] + 1
			return reply(OK, CTL_ACTIVE, dl)
		end
	end
	local t, tid = tomb_find(id, request_id)
	if t == nil and n == nil then
		-- a gone node has nothing to learn but its tombstones
		return reply(E_FORBIDDEN, CTL_COMPLETED, 0)
	end
	local state, dl = CTL_COMPLETED, 0
	if t ~= nil then
		state = CTL_CANCELLED
		if t.status == 'expired' then state = CTL_EXPIRED end
		dl = num(t.deadline)
		if ack then
			tomb_free(tid)
			fx[FX_ACKED] = fx[FX_ACKED] + 1
		end
	end
	if n ~= nil then
		call('HSET', nkey(id), 'last_seen', now)
		rescore(id)
	end
	return reply(OK, state, dl)
end

-- ARGV: rid digest status reason outcome(2 cancelled, 3 expired)
-- Reply: rc fx removed
local function op_cancel()
	local rid, digest, status, reason = ARGV[A], ARGV[A + 1], ARGV[A + 2],
	    ARGV[A + 3]
	local r = req_find(rid)
	if r == nil or (r.state ~= 'q' and r.state ~= 'f') or
	    not digest_ok(digest, r.cancel) then
		return reply(E_FORBIDDEN, 0)
	end
	local removed = 0
	if r.state == 'q' then
		removed = 1
	else
		tomb_add(r.oid, call('HGET', nkey(r.oid), 'digest'), r.id, status,
		    r.deadline)
	end
	terminalize(rid, r, status, reason, tonumber(ARGV[A + 4]))
	return reply(OK, removed)
end

-- ARGV: rid response has_node id key digest
-- Reply: rc fx duplicate gone
local function op_accept_response()
	local rid, body = ARGV[A], ARGV[A + 1]
	local has_node = ARGV[A + 2] == '1'
	local key = ARGV[A + 4]
	if has_node then
		local n = node_get(ARGV[A + 3], key)
		if not node_auth(ARGV[A + 3], n, ARGV[A + 5]) then
			return reply(E_FORBIDDEN, 0, '')
		end
	end
	local r = req_find(rid)
	if r == nil then return reply(E_GONE, 0, 'gone') end
	if has_node and r.owner ~= key then return reply(E_FORBIDDEN, 0, '') end
	if r.state == 't' then return reply(E_GONE, 0, r.t_status) end
	if r.state == 'r' then return reply(OK, 1, '') end
	local oid = r.oid
	unindex(rid, r)
	-- The node just answered: it is alive (PROTOCOL.md 4.8b).
	if call('EXISTS', nkey(oid)) == 1 then
		call('HSET', nkey(oid), 'last_seen', now)
		rescore(oid)
	end
	local u = now + L.resp
	local rk = rkey(rid)
	call('HDEL', rk, 'work')
	call('HSET', rk, 'state', 'r', 'body', body, 'until', u)
	call('PEXPIRE', rk, L.resp + L.term + GRACE)
	call('ZADD', P .. 'ready', u, rid)
	expire_at_least(P .. 'ready', L.resp + GRACE)
	fx[FX_COMPLETED] = fx[FX_COMPLETED] + 1
	return reply(OK, 0, '')
end

-- ARGV: id key digest rid envelope
local function op_progress()
	local id, key, digest, rid = ARGV[A], ARGV[A + 1], ARGV[A + 2], ARGV[A + 3]
	local n = node_get(id, key)
	if n == nil or not digest_ok(digest, n.digest) then
		return reply(E_FORBIDDEN)
	end
	local r = req_get(rid)
	if r ~= nil and r.state == 'f' and r.oid == id then
		if num(r.deadline) <= now then
			expire_claim(rid, r)
			return reply(E_EXPIRED)
		end
		call('HSET', rkey(rid), 'body', ARGV[A + 4])
		call('HSET', nkey(id), 'last_seen', now)
		rescore(id)
		return reply(OK)
	end
	if r ~= nil and r.state == 't' and r.t_reason == 'provider_timeout' and
	    r.owner == key then
		return reply(E_EXPIRED)
	end
	return reply(E_NOT_ACTIVE)
end

-- ARGV: rid
-- Reply: rc fx kind body deadline status reason
--   kind: 0 unknown, 1 response, 2 pending, 3 terminal
-- ARGV: rid redeliver_ms
-- A delivered response stays in its completed record, for redeliver_ms,
-- for a client whose copy was lost on the way (P.rdl drops it after).
local function op_retrieve()
	local rid, window = ARGV[A], tonumber(ARGV[A + 1])
	local r = req_find(rid)
	if r == nil then return reply(OK, 0, '', 0, '', '') end
	if r.state == 't' then
		if r.t_status == 'completed' then
			if r.body ~= nil and num(r.rdl) > now then
				fx[FX_REDELIVERED] = fx[FX_REDELIVERED] + 1
				return reply(OK, 1, r.body, 0, '', '')
			end
			return reply(OK, 0, '', 0, '', '') -- delivered before
		end
		return reply(OK, 3, '', 0, r.t_status, r.t_reason)
	elseif r.state == 'r' then
		local body = r.body or ''
		terminalize(rid, r, 'completed', 'delivered', nil)
		if window > 0 then
			local u = now + window
			call('HSET', rkey(rid), 'body', body, 'rdl', u)
			call('ZADD', P .. 'rdl', u, rid)
			expire_at_least(P .. 'rdl', window + GRACE)
		end
		return reply(OK, 1, body, 0, '', '')
	end
	local body = r.body
	if body ~= nil then call('HDEL', rkey(rid), 'body') end
	return reply(OK, 2, body or '', num(r.deadline), body and '1' or '', '')
end

-- ARGV: id key digest
-- Reply: rc fx removed
local function op_unregister()
	local id, key, digest = ARGV[A], ARGV[A + 1], ARGV[A + 2]
	local n = tomap(call('HGETALL', nkey(id)))
	if n == nil or n.key ~= key then return reply(OK, 0) end
	if not digest_ok(digest, n.digest) then return reply(E_FORBIDDEN, 0) end
	node_remove(id, n, false)
	redis.pcall('PUBLISH', KEYS[1] .. 'wake:' .. id, '1')	-- as in enqueue
	return reply(OK, 1)
end

-- ARGV: id key. Reply: rc fx exists (no side effects)
local function op_node_exists()
	local k = call('HGET', nkey(ARGV[A]), 'key')
	return reply(OK, (k and k == ARGV[A + 1]) and 1 or 0)
end

local function sweep_batch()
	local more = 0
	if evict_due(BATCH) >= BATCH then more = 1 end
	if expire_due('live', BATCH) >= BATCH then more = 1 end
	if expire_due('ready', BATCH) >= BATCH then more = 1 end
	if expire_due('term', BATCH) >= BATCH then more = 1 end
	local rdl = call('ZRANGEBYSCORE', P .. 'rdl', '-inf', now, 'LIMIT', 0,
	    BATCH)
	for _, rid in ipairs(rdl) do
		call('HDEL', rkey(rid), 'body', 'rdl')
		call('ZREM', P .. 'rdl', rid)
	end
	if #rdl >= BATCH then more = 1 end
	local tids = call('ZRANGEBYSCORE', P .. 'tombs', '-inf', now, 'LIMIT', 0,
	    BATCH)
	for _, tid in ipairs(tids) do tomb_free(tid) end
	if #tids >= BATCH then more = 1 end
	local nts = call('ZRANGEBYSCORE', P .. 'ntombs', '-inf', now, 'LIMIT', 0,
	    BATCH)
	for _, id in ipairs(nts) do
		call('DEL', P .. 'nt:' .. id)
		call('ZREM', P .. 'ntombs', id)
	end
	if #nts >= BATCH then more = 1 end
	-- reservations of live nodes lapse on their own: the global index
	-- only needs its lapsed members dropped
	call('ZREMRANGEBYSCORE', P .. 'resv', '-inf', now)
	return more
end

-- ARGV: interval continuing
-- Reply: rc fx more (1 = a batch was full: call again with continuing=1)
-- One replica per interval sweeps (sweep:due holds, in the shared time
-- base, when the next sweep may start); the others return at once. A
-- skipped sweep delays nothing that matters: every operation applies the
-- expiries of what it touches, and the counts come from stats, which
-- always runs a batch.
local function op_sweep()
	local every, cont = tonumber(ARGV[A]), ARGV[A + 1] == '1'
	if not cont then
		local due = tonumber(call('GET', P .. 'sweep:due') or '0')
		if due > now then return reply(OK, 0) end
		call('SET', P .. 'sweep:due', now + every, 'PX', every + GRACE)
	end
	return reply(OK, sweep_batch())
end

-- ARGV: max keys
-- Reply: rc fx total n, then per node: key age queued in_flight reserved
--        conc tier ctx nmodels models
-- Registration order from P.byreg; the walk stops after max live nodes
-- (plus the stale or orphaned entries met on the way, which it drops), so
-- a listing costs O(max). key is '' unless keys is '1': a node's key
-- leaves the server only for a caller that asked for it.
local function op_list_nodes()
	local max = tonumber(ARGV[A])
	local keys = ARGV[A + 1] == '1'
	evict_due(BATCH)
	local total = call('ZCOUNT', P .. 'nodes', '(' .. now, '+inf')
	local out, n, from = {}, 0, 0
	local page = math.min(math.max(max, 16), 1024)
	while n < max do
		local ids = call('ZRANGE', P .. 'byreg', from, from + page - 1)
		if #ids == 0 then break end
		from = from + #ids
		for _, id in ipairs(ids) do
			local nd = tomap(call('HGETALL', nkey(id)))
			if nd == nil then
				call('ZREM', P .. 'byreg', id)
				from = from - 1
			elseif node_stale(id, nd) then
				node_remove(id, nd, true)
				from = from - 1
			elseif n < max then
				n = n + 1
				local age = now - num(nd.last_seen)
				if age < 0 then age = 0 end
				out[#out + 1] = keys and nd.key or ''
				out[#out + 1] = age
				out[#out + 1] = call('LLEN', P .. 'nq:' .. id)
				out[#out + 1] = live_claims(id)
				out[#out + 1] = prune_res(id)
				out[#out + 1] = num(nd.conc)
				out[#out + 1] = num(nd.tier)
				out[#out + 1] = num(nd.ctx)
				out[#out + 1] = num(nd.nmodels)
				out[#out + 1] = nd.models or ''
			end
		end
	end
	if n < max then total = n end
	-- built by hand: unpack() of a long listing would overflow Lua's stack
	local r = { OK, fx, total, n }
	for i = 1, #out do r[#r + 1] = out[i] end
	return r
end

-- Is model m served by a live node? Reads the members of P.m:<m> until
-- the first live one (stale-at in P.nodes ahead of now): one look-up
-- while the first member is live. A member whose lease lapsed is evicted
-- on the way, one whose record is gone dropped.
local function model_served(m)
	local k = mkey(m)
	local cursor = '0'
	repeat
		local page = call('SSCAN', k, cursor, 'COUNT', 16)
		cursor = page[1]
		for _, id in ipairs(page[2]) do
			local s = call('ZSCORE', P .. 'nodes', id)
			if s and tonumber(s) > now then return true end
			local n = tomap(call('HGETALL', nkey(id)))
			if n == nil then
				call('SREM', k, id)
			elseif node_stale(id, n) then
				node_remove(id, n, true)
			else
				rescore(id)
				return true
			end
		end
	until cursor == '0'
	return false
end

-- ARGV: max only
-- Reply: rc fx more n, then n model ids in byte order
-- From P.mods (ZRANGEBYLEX pages), never from the nodes: O(models
-- listed) while no node is stale, where walking the nodes cost O(nodes x
-- models) and moved every node's key. With only ~= '' the answer is that
-- id alone when served (max does not apply). A model nobody serves any
-- more is dropped from P.mods on the way.
local function op_list_models()
	local max, only = tonumber(ARGV[A]), ARGV[A + 1]
	local out, more, from = {}, 0, '-'
	evict_due(BATCH)
	if only ~= '' then
		if model_served(only) then out[1] = only end
	else
		while more == 0 do
			local ms = call('ZRANGEBYLEX', P .. 'mods', from, '+', 'LIMIT', 0,
			    BATCH)
			if #ms == 0 then break end
			for _, m in ipairs(ms) do
				if model_served(m) then
					if #out >= max then
						more = 1
						break
					end
					out[#out + 1] = m
				elseif call('EXISTS', mkey(m)) == 0 then
					call('ZREM', P .. 'mods', m)
				end
			end
			from = '(' .. ms[#ms]
		end
	end
	local r = { OK, fx, more, #out }
	for i = 1, #out do r[#r + 1] = out[i] end
	return r
end

-- Reply: rc fx more nodes queued in_flight responses reservations terminal
--        tombstones oldest_queued_ms oldest_in_flight_ms
local function op_stats()
	local more = sweep_batch()
	local oq, of = 0, 0
	local first = call('ZRANGE', P .. 'queued', 0, 0, 'WITHSCORES')
	if first[2] ~= nil then oq = now - tonumber(first[2]) end
	-- the oldest claim whose lease is live (a bounded look from the oldest)
	local f = call('ZRANGE', P .. 'inflight', 0, BATCH - 1, 'WITHSCORES')
	for i = 1, #f, 2 do
		local ce = call('ZSCORE', P .. 'claims', f[i])
		if ce and tonumber(ce) > now then
			of = now - tonumber(f[i + 1])
			break
		end
	end
	if oq < 0 then oq = 0 end
	if of < 0 then of = 0 end
	return reply(OK, more,
	    call('ZCOUNT', P .. 'nodes', '(' .. now, '+inf'),
	    call('ZCARD', P .. 'queued'),
	    call('ZCOUNT', P .. 'claims', '(' .. now, '+inf'),
	    call('ZCARD', P .. 'ready'),
	    call('ZCOUNT', P .. 'resv', '(' .. now, '+inf'),
	    call('ZCARD', P .. 'term'),
	    call('ZCARD', P .. 'tombs'), oq, of)
end
