-- store_redis.lua -- the legacy store's transitions on the key layout of
-- schema version 2 (docs/store-redis.md, "Legacy scripts").
--
-- store_redis.c registers this library once per operation, behind a
-- "#!lua" shebang and followed by "return op_<name>()", so every store
-- call is ONE script. The layout of schema 1 (raw client and server keys
-- in key names) stays in store_redis.c for the replicas of a rolling
-- upgrade; which one runs is decided by the stored version, read inside
-- every script (see guard()), so all replicas switch at the same instant.
--
-- Calling convention:
--   KEYS[1]   the prefix with its hash tag, e.g. "{tokenplace:}"
--   ARGV[1]   now (ms, the shared time base); the operation's arguments
--             follow; a client or server key comes as three arguments:
--             the key, its name (relay_keyname(): 32 hex of SHA-256) and
--             '1' when the key may still be looked up in the layout-1
--             leftovers (it is not "exp", the one value whose layout-1
--             name is a structure: "resp:exp");
--   ARGV[#ARGV - 1] the backstop TTL grace (TTL_GRACE_MS in
--             store_redis.c);
--   ARGV[#ARGV] the expiry batch size.
--   Reply     { rc, fx[1..6], results... }; rc 98 alone: the stored
--             schema is not 2 (nothing was done; the C side runs the
--             layout-1 script instead).
--
-- Rule: no key name is built from a string a client or a node chose.
-- Keys (L = KEYS[1] .. "l2:"; <d> = the name of a server or client key,
-- computed in C; <id> = a session id this store made):
--   L srv        zset <d> -> expiry (ms); live: score >= now
--   L seen       hash <d> -> time of its last poll
--   L key        hash <d> -> the server's full key (compared on lookup)
--   L q:<d>      list  queued jobs, oldest first ("n"<data> or
--                      "s"<owner length>":"<owner><data>)
--   L queued     int   jobs in all queues
--   L resp       zset <d> -> time stored
--   L r:<d>      hash  c = the client's full key (compared), v = response
--   L sess       zset <id> -> last activity
--   L s:<id>     hash  c = owner client key, x = 1 once closed
--   L sc:<id>    list  undrained chunks
--   L by         hash  owner client key -> its current session id
--   L chunks     int   undrained chunks in all sessions
--   L sweep:due  str   when the next cluster-wide sweep may run
-- Layout-1 leftovers (P srv:exp, P q:<key>, P resp:<key>, ...) written
-- before the switch are still read where a cycle depends on them: a node
-- known only there can be picked and sent jobs, its old queue is drained
-- at its next poll (which moves it here), and a waiting response is
-- still handed over. They expire by their own backstop TTLs.

local P = KEYS[1]
local L = P .. 'l2:'
local call = redis.call
local now = tonumber(ARGV[1])
local BATCH = tonumber(ARGV[#ARGV])
local GRACE = tonumber(ARGV[#ARGV - 1])
local fx = { 0, 0, 0, 0, 0, 0 }

local function num(x) return string.format('%.0f', x) end

local function ret(rc, ...)
	return { rc, fx[1], fx[2], fx[3], fx[4], fx[5], fx[6], ... }
end

local function ret_list(rc, head, list)
	local r = { rc, fx[1], fx[2], fx[3], fx[4], fx[5], fx[6] }
	for i = 1, #head do r[#r + 1] = head[i] end
	for i = 1, #list do r[#r + 1] = list[i] end
	return r
end

local function guard() return call('GET', P .. 'schema') == '2' end

local function count_down(key, n)
	if call('DECRBY', key, n) < 0 then call('DEL', key) end
end

local function is_type(key, t) return call('TYPE', key).ok == t end

-- ---- servers -----------------------------------------------------------

local function srv_remove(d)
	local q = L .. 'q:' .. d
	local n = call('LLEN', q)
	if n > 0 then
		call('DEL', q)
		count_down(L .. 'queued', n)
	end
	call('ZREM', L .. 'srv', d)
	call('HDEL', L .. 'seen', d)
	call('HDEL', L .. 'key', d)
	return n
end

local function evict_stale()
	local ds = call('ZRANGEBYSCORE', L .. 'srv', '-inf', '(' .. num(now),
	    'LIMIT', 0, BATCH)
	for _, d in ipairs(ds) do
		fx[2] = fx[2] + srv_remove(d)
		fx[1] = fx[1] + 1
	end
end

-- 'live' (live and k's), 'other' (live, another key with the same name),
-- or nil (absent; an expired entry is removed on the way).
local function srv_state(d, k)
	local e = call('ZSCORE', L .. 'srv', d)
	if not e then return nil end
	if tonumber(e) < now then
		fx[2] = fx[2] + srv_remove(d)
		fx[1] = fx[1] + 1
		return nil
	end
	if call('HGET', L .. 'key', d) ~= k then return 'other' end
	return 'live'
end

-- Layout 1: is k live there (a node that last polled before the switch)?
local function old_srv_live(k, old)
	if old ~= '1' then return false end
	local e = call('ZSCORE', P .. 'srv:exp', k)
	return e ~= false and e ~= nil and tonumber(e) >= now
end

-- ---- responses -----------------------------------------------------------

local function resp_remove(d)
	call('DEL', L .. 'r:' .. d)
	call('ZREM', L .. 'resp', d)
end

local function expire_responses(ttl)
	local ds = call('ZRANGEBYSCORE', L .. 'resp', '-inf',
	    '(' .. num(now - ttl), 'LIMIT', 0, BATCH)
	for _, d in ipairs(ds) do
		resp_remove(d)
		fx[3] = fx[3] + 1
	end
end

local function resp_live(d, ttl)
	local s = call('ZSCORE', L .. 'resp', d)
	if not s then return false end
	if tonumber(s) < now - ttl then
		resp_remove(d)
		fx[3] = fx[3] + 1
		return false
	end
	return true
end

-- ---- stream sessions -----------------------------------------------------

local function sess_remove(id)
	local sk = L .. 's:' .. id
	local owner = call('HGET', sk, 'c')
	local n = call('LLEN', L .. 'sc:' .. id)
	if n > 0 then count_down(L .. 'chunks', n) end
	call('DEL', sk, L .. 'sc:' .. id)
	if owner and call('HGET', L .. 'by', owner) == id then
		call('HDEL', L .. 'by', owner)
	end
	call('ZREM', L .. 'sess', id)
end

local function expire_sessions(ttl)
	local ids = call('ZRANGEBYSCORE', L .. 'sess', '-inf',
	    '(' .. num(now - ttl), 'LIMIT', 0, BATCH)
	for _, id in ipairs(ids) do
		sess_remove(id)
		fx[4] = fx[4] + 1
	end
end

local function sess_live(id, ttl)
	local s = call('ZSCORE', L .. 'sess', id)
	if not s then return false end
	if tonumber(s) < now - ttl then
		sess_remove(id)
		fx[4] = fx[4] + 1
		return false
	end
	return true
end

local function sess_ttl(id, ttl)
	local px = ttl + GRACE
	for _, k in ipairs({ L .. 's:' .. id, L .. 'sc:' .. id, L .. 'by',
	    L .. 'sess', L .. 'chunks' }) do
		call('PEXPIRE', k, px)
	end
end

-- ---- operations ----------------------------------------------------------

-- poll: now, server_ttl, busy_ttl, max_servers, max_jobs, max_bytes,
-- session_ttl, max_sessions, seed, key, name, old. Returns rc, fx...,
-- registered, session_limited, n, then per job: stream, data, session id.
local function op_poll()
	if not guard() then return { 98 } end
	local ttl, busy = tonumber(ARGV[2]), tonumber(ARGV[3])
	local max_servers, max_jobs = tonumber(ARGV[4]), tonumber(ARGV[5])
	local max_bytes = tonumber(ARGV[6])
	local sttl, max_sess = tonumber(ARGV[7]), tonumber(ARGV[8])
	local seed, k, d, old = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
	local keep = math.max(ttl, busy) + GRACE
	local registered = 0
	local st = srv_state(d, k)
	if st == 'other' then return ret(3) end
	if not st then
		if call('ZCOUNT', L .. 'srv', ARGV[1], '+inf') >= max_servers then
			return ret(3)
		end
		registered = 1
	end
	local q = L .. 'q:' .. d
	-- its layout-1 queue first (older jobs), then its own
	local queues = {}
	local was_old = old_srv_live(k, old)
	if was_old and is_type(P .. 'q:' .. k, 'list') then
		queues[1] = { P .. 'q:' .. k, P .. 'queued' }
	end
	queues[#queues + 1] = { q, L .. 'queued' }
	local out, n, bytes, limited, swept, seq = {}, 0, 0, 0, false, 0
	local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
	local function new_id()
		for _ = 1, 8 do
			seq = seq + 1
			local h = string.sub(redis.sha1hex(seed .. ':' .. seq), 1, 32) .. '0'
			local id = {}
			for i = 1, 33, 3 do
				local v = tonumber(string.sub(h, i, i + 2), 16)
				local a, b = math.floor(v / 64), v % 64
				id[#id + 1] = string.sub(B64, a + 1, a + 1)
				id[#id + 1] = string.sub(B64, b + 1, b + 1)
			end
			local s = table.concat(id)
			if call('EXISTS', L .. 's:' .. s) == 0 then return s end
		end
		return nil
	end
	local stop = false
	for _, qc in ipairs(queues) do
		while not stop and n < max_jobs do
			local j = call('LINDEX', qc[1], 0)
			if not j then break end
			local data, owner
			if string.byte(j, 1) == 115 then
				local c = string.find(j, ':', 2, true)
				local olen = tonumber(string.sub(j, 2, c - 1))
				owner = string.sub(j, c + 1, c + olen)
				data = string.sub(j, c + olen + 1)
			else
				data = string.sub(j, 2)
			end
			if n > 0 and #data > max_bytes - bytes then stop = true; break end
			local sid = ''
			if owner then
				if not swept then expire_sessions(sttl); swept = true end
				local cur = call('HGET', L .. 'by', owner)
				if cur and not sess_live(cur, sttl) then cur = nil end
				if not cur and call('ZCOUNT', L .. 'sess', num(now - sttl),
				    '+inf') >= max_sess then
					limited = 1
					stop = true
					break
				end
				sid = new_id()
				if not sid then stop = true; break end
				if cur then
					sess_remove(cur)
					fx[6] = fx[6] + 1
				end
				call('HSET', L .. 's:' .. sid, 'c', owner, 'x', '0')
				call('HSET', L .. 'by', owner, sid)
				call('ZADD', L .. 'sess', num(now), sid)
				sess_ttl(sid, sttl)
			end
			call('LPOP', qc[1])
			count_down(qc[2], 1)
			n = n + 1
			out[#out + 1] = owner and 1 or 0
			out[#out + 1] = data
			out[#out + 1] = sid
			if #data < max_bytes - bytes then bytes = bytes + #data
			else bytes = max_bytes end
		end
		if stop then break end
	end
	-- a node that polled a layout-1 relay lives here from now on, once
	-- its old queue is empty
	if was_old and not is_type(P .. 'q:' .. k, 'list') then
		call('ZREM', P .. 'srv:exp', k)
		call('HDEL', P .. 'srv:seen', k)
	end
	-- heard from now; a node that took work may stay silent for busy_ttl
	local quiet = ttl
	if n > 0 and busy > ttl then quiet = busy end
	call('ZADD', L .. 'srv', num(now + quiet), d)
	call('HSET', L .. 'seen', d, num(now))
	call('HSET', L .. 'key', d, k)
	for _, key in ipairs({ L .. 'srv', L .. 'seen', L .. 'key', q }) do
		call('PEXPIRE', key, keep)
	end
	if n > 0 then call('PEXPIRE', L .. 'queued', keep) end
	return ret_list(0, { registered, limited, n }, out)
end

-- enqueue: now, queue_per_server, queue_total, keep_ms, key, stream,
-- owner, data, name, old.
local function op_enqueue()
	if not guard() then return { 98 } end
	local qps, qtotal = tonumber(ARGV[2]), tonumber(ARGV[3])
	local keep, k, d, old = tonumber(ARGV[4]), ARGV[5], ARGV[9], ARGV[10]
	evict_stale()
	local q, ctr
	local st = srv_state(d, k)
	if st == 'live' then
		q, ctr = L .. 'q:' .. d, L .. 'queued'
	elseif st == nil and old_srv_live(k, old) then
		q, ctr = P .. 'q:' .. k, P .. 'queued'
	else
		return ret(2)
	end
	if call('LLEN', q) >= qps then return ret(4) end
	if tonumber(call('GET', L .. 'queued') or '0') +
	    tonumber(call('GET', P .. 'queued') or '0') >= qtotal then
		return ret(5)
	end
	if ARGV[6] == '1' then
		call('RPUSH', q, 's' .. #ARGV[7] .. ':' .. ARGV[7] .. ARGV[8])
	else
		call('RPUSH', q, 'n' .. ARGV[8])
	end
	call('INCR', ctr)
	call('PEXPIRE', q, keep)
	call('PEXPIRE', ctr, keep)
	return ret(0)
end

-- pick_server: now, random. Returns rc, fx..., key. Uniform over the live
-- servers of both layouts: until every node has polled since the switch,
-- some are still known only in layout 1 (a node whose old queue is not
-- drained yet is in both, and counts twice for that moment).
local function op_pick_server()
	if not guard() then return { 98 } end
	local r = tonumber(ARGV[2])
	evict_stale()
	local old = P .. 'srv:exp'
	local n2 = call('ZCOUNT', L .. 'srv', num(now), '+inf')
	local n1 = call('ZCOUNT', old, num(now), '+inf')
	if n1 + n2 == 0 then return ret(1) end
	local i = r % (n1 + n2)
	-- live servers are the n highest scores: ranks total-n .. total-1
	local z, n = L .. 'srv', n2
	if i >= n2 then z, n, i = old, n1, i - n2 end
	local rank = call('ZCARD', z) - n + i
	local m = call('ZRANGE', z, rank, rank)[1]
	if z == old then return ret(0, m) end
	local k = call('HGET', L .. 'key', m)
	if k then return ret(0, k) end
	return ret(1)
end

-- unregister: now, key, name, old. Returns rc, fx..., removed.
local function op_unregister()
	if not guard() then return { 98 } end
	local k, d, old = ARGV[2], ARGV[3], ARGV[4]
	local removed = 0
	if srv_state(d, k) == 'live' then
		fx[2] = fx[2] + srv_remove(d)
		removed = 1
	end
	if old_srv_live(k, old) then
		local q = P .. 'q:' .. k
		local n = is_type(q, 'list') and call('LLEN', q) or 0
		if n > 0 then
			call('DEL', q)
			count_down(P .. 'queued', n)
			fx[2] = fx[2] + n
		end
		call('ZREM', P .. 'srv:exp', k)
		call('HDEL', P .. 'srv:seen', k)
		removed = 1
	end
	return ret(0, removed)
end

-- put_response: now, ttl, max, key, data, name, old.
local function op_put_response()
	if not guard() then return { 98 } end
	local ttl, max, k, d = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
	    ARGV[6]
	local rk = L .. 'r:' .. d
	if resp_live(d, ttl) then
		-- the same name, another client: never replace its response
		if call('HGET', rk, 'c') ~= k then return ret(6) end
		fx[5] = fx[5] + 1
	elseif call('ZCOUNT', L .. 'resp', num(now - ttl), '+inf') >= max then
		return ret(6)
	end
	call('DEL', rk)
	call('HSET', rk, 'c', k, 'v', ARGV[5])
	call('PEXPIRE', rk, ttl + GRACE)
	call('ZADD', L .. 'resp', num(now), d)
	call('PEXPIRE', L .. 'resp', ttl + GRACE)
	return ret(0)
end

-- take_response: now, ttl, key, name, old. Returns rc, fx..., data.
local function op_take_response()
	if not guard() then return { 98 } end
	local ttl, k, d, old = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
	if resp_live(d, ttl) then
		local r = call('HMGET', L .. 'r:' .. d, 'c', 'v')
		if r[1] == k then
			resp_remove(d)
			if r[2] then return ret(0, r[2]) end
			return ret(7)
		end
	end
	-- a response a layout-1 relay stored before the switch
	if old == '1' and is_type(P .. 'resp:exp', 'zset') then
		local s = call('ZSCORE', P .. 'resp:exp', k)
		if s then
			local v
			if tonumber(s) >= now - ttl and
			    is_type(P .. 'resp:' .. k, 'string') then
				v = call('GET', P .. 'resp:' .. k)
			end
			call('DEL', P .. 'resp:' .. k)
			call('ZREM', P .. 'resp:exp', k)
			if v then return ret(0, v) end
		end
	end
	return ret(7)
end

-- stream_append: now, ttl, max_chunks, id, data, final.
local function op_stream_append()
	if not guard() then return { 98 } end
	local ttl, max, id = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
	if not sess_live(id, ttl) then return ret(8) end
	local sc = L .. 'sc:' .. id
	if call('LLEN', sc) >= max then return ret(9) end
	call('RPUSH', sc, ARGV[5])
	call('INCR', L .. 'chunks')
	if ARGV[6] == '1' then call('HSET', L .. 's:' .. id, 'x', '1') end
	call('ZADD', L .. 'sess', num(now), id)
	sess_ttl(id, ttl)
	return ret(0)
end

-- stream_drain: now, ttl, client. Returns rc, fx..., id, final, chunks...
local function op_stream_drain()
	if not guard() then return { 98 } end
	local ttl, client = tonumber(ARGV[2]), ARGV[3]
	local id = call('HGET', L .. 'by', client)
	if not id or not sess_live(id, ttl) or
	    call('HGET', L .. 's:' .. id, 'c') ~= client then
		return ret(10)
	end
	local sc = L .. 'sc:' .. id
	local chunks = call('LRANGE', sc, 0, -1)
	if #chunks > 0 then
		call('DEL', sc)
		count_down(L .. 'chunks', #chunks)
	end
	local final = 0
	if call('HGET', L .. 's:' .. id, 'x') == '1' then
		sess_remove(id)
		final = 1
	else
		call('ZADD', L .. 'sess', num(now), id)
		sess_ttl(id, ttl)
	end
	return ret_list(0, { id, final }, chunks)
end

-- sweep: now, response_ttl, session_ttl, interval. One replica per
-- interval; counters with nothing left to count are reset.
local function op_sweep()
	if not guard() then return { 98 } end
	local rttl, sttl, every = tonumber(ARGV[2]), tonumber(ARGV[3]),
	    tonumber(ARGV[4])
	local due = tonumber(call('GET', L .. 'sweep:due') or '0')
	if due > now then return ret(0, 0) end
	call('SET', L .. 'sweep:due', num(now + every), 'PX', every + GRACE)
	evict_stale()
	expire_responses(rttl)
	expire_sessions(sttl)
	if call('ZCARD', L .. 'srv') == 0 then call('DEL', L .. 'queued') end
	if call('ZCARD', L .. 'sess') == 0 then call('DEL', L .. 'chunks') end
	return ret(0, 1)
end

-- stats: now, response_ttl, session_ttl. Returns rc, fx..., 5 counts
-- (servers and jobs still in the layout-1 leftovers count too).
local function op_stats()
	if not guard() then return { 98 } end
	local rttl, sttl = tonumber(ARGV[2]), tonumber(ARGV[3])
	evict_stale()
	expire_responses(rttl)
	expire_sessions(sttl)
	return ret(0,
	    call('ZCOUNT', L .. 'srv', num(now), '+inf') +
	    call('ZCOUNT', P .. 'srv:exp', num(now), '+inf'),
	    tonumber(call('GET', L .. 'queued') or '0') +
	    tonumber(call('GET', P .. 'queued') or '0'),
	    call('ZCOUNT', L .. 'resp', num(now - rttl), '+inf'),
	    call('ZCOUNT', L .. 'sess', num(now - sttl), '+inf'),
	    tonumber(call('GET', L .. 'chunks') or '0'))
end

-- list_servers: now, max. Returns rc, fx..., total, n, then per server:
-- key, last poll, queue length. Work is bounded by max.
local function op_list_servers()
	if not guard() then return { 98 } end
	local max = tonumber(ARGV[2])
	evict_stale()
	local total = call('ZCOUNT', L .. 'srv', num(now), '+inf')
	local out = {}
	if max > 0 and total > 0 then
		local ds = call('ZRANGEBYSCORE', L .. 'srv', num(now), '+inf',
		    'LIMIT', 0, max)
		for _, d in ipairs(ds) do
			out[#out + 1] = call('HGET', L .. 'key', d) or ''
			out[#out + 1] = tonumber(call('HGET', L .. 'seen', d) or ARGV[1])
			out[#out + 1] = call('LLEN', L .. 'q:' .. d)
		end
	end
	return ret_list(0, { total, #out / 3 }, out)
end
