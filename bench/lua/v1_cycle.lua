-- v1_cycle.lua: the API v1 relay cycle for wrk (bench/v1.py).
--
-- Every wrk connection plays one compute node and one client with keys of
-- its own and runs the routes in protocol order, one request at a time on
-- a keep-alive connection (no pipelining). Each connection first registers
-- its node, then loops:
--
--   /api/v1/relay/requests            client admits a request for its node
--   /api/v1/relay/servers/poll        the node claims exactly that request
--   /api/v1/relay/responses           the node answers it
--   /api/v1/relay/responses/retrieve  the client takes the answer
--
-- so every route does its real work (admission with its capacity check,
-- claim, accept with outcome counting, one-shot pickup) and no poll ever
-- waits. request_id changes every cycle (the relay remembers delivered
-- ids). wrk's Lua API cannot tell which connection asks next, so
-- bench/v1.py runs one connection per thread (-tN -cN); each thread's Lua
-- state is one connection's state machine. A surprise (wrong status or
-- body) is counted and the connection registers again.
--
-- Sizes are those of real peers: keys are base64 of an RSA-2048 PEM (604
-- characters), cipherkey base64 of a 256-byte block (344), iv 24,
-- ciphertext ~1 KiB. Arguments after "--": <nonce>.

local threads = {}
local counter = 0

function setup(thread)
	thread:set("id", counter)
	counter = counter + 1
	table.insert(threads, thread)
end

local function b64ish(seed, n)
	local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	local t = {}
	local x = seed
	for i = 1, n do
		x = (x * 1103515245 + 12345) % 2147483648
		local k = math.floor(x / 65536) % 64 + 1
		t[i] = alphabet:sub(k, k)
	end
	return table.concat(t)
end

local function key(kind, nonce, n)
	local head = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K" .. kind .. nonce ..
	    "x" .. n .. "x"
	return head .. b64ish(n * 7 + #kind, 604 - #head)
end

-- Globals, so that done() can read them with thread:get().
state = 0
surprises = 0
cycles = 0
seq = 0		-- request_id counter (cycles + surprises)

local json = { ["Content-Type"] = "application/json" }
local P = "/api/v1/relay"
local server, client, cipherkey, iv, ask, answer, register, poll

function init(args)
	local nonce = args[1] or "0"
	local n = id or 0
	server = key("Srv", nonce, n)
	client = key("Cli", nonce, n)
	cipherkey = b64ish(n + 11, 344)
	iv = b64ish(n + 13, 22) .. "=="
	ask = b64ish(n + 17, 1024)
	answer = b64ish(n + 19, 1024)
	register = wrk.format("POST", P .. "/servers/register", json,
	    '{"server_public_key":"' .. server .. '","capabilities":' ..
	    '{"supported_model_ids":["qwen3-8b-instruct"],"max_concurrency":1}}')
	poll = wrk.format("POST", P .. "/servers/poll", json,
	    '{"server_public_key":"' .. server .. '"}')
end

local function rid()
	return "bench-" .. (id or 0) .. "-" .. seq
end

function request()
	if state == 0 then
		return register
	elseif state == 1 then
		return wrk.format("POST", P .. "/requests", json,
		    '{"server_public_key":"' .. server .. '","client_public_key":"' ..
		    client .. '","ciphertext":"' .. ask .. '","cipherkey":"' ..
		    cipherkey .. '","iv":"' .. iv .. '","request_id":"' .. rid() ..
		    '","protocol":"tokenplace_api_v1_relay_e2ee","version":1,' ..
		    '"cancel_token":"' .. rid() .. '-tok"}')
	elseif state == 2 then
		return poll
	elseif state == 3 then
		return wrk.format("POST", P .. "/responses", json,
		    '{"client_public_key":"' .. client .. '","request_id":"' .. rid() ..
		    '","chat_history":"' .. answer .. '","cipherkey":"' .. cipherkey ..
		    '","iv":"' .. iv .. '","protocol":"tokenplace_api_v1_relay_e2ee",' ..
		    '"version":1}')
	end
	return wrk.format("POST", P .. "/responses/retrieve", json,
	    '{"client_public_key":"' .. client .. '","request_id":"' .. rid() ..
	    '"}')
end

function response(status, headers, body)
	local ok
	if state == 0 then
		ok = status == 200
	elseif state == 1 then
		ok = status == 200 and body:find('"Request received"', 1, true)
	elseif state == 2 then
		ok = status == 200 and body:find('"request_id":"' .. rid() .. '"', 1, true)
	elseif state == 3 then
		ok = status == 200 and body:find('queued for client', 1, true)
	else
		ok = status == 200 and body:find('"chat_history":"' .. answer, 1, true)
	end
	if not ok then
		surprises = surprises + 1
		seq = seq + 1		-- a fresh request_id for the retry
		state = 0
	elseif state == 4 then
		cycles = cycles + 1
		seq = seq + 1
		state = 1
	else
		state = state + 1
	end
end

function done(summary, latency, requests)
	local c, s, lo, hi, idle = 0, 0, nil, 0, 0
	for _, t in ipairs(threads) do
		local n = t:get("cycles") or 0
		c = c + n
		s = s + (t:get("surprises") or 0)
		if lo == nil or n < lo then lo = n end
		if n > hi then hi = n end
		if n == 0 then idle = idle + 1 end
	end
	io.write(string.format(
	    "CYCLE cycles=%d surprises=%d min=%d max=%d starved=%d\n",
	    c, s, lo or 0, hi, idle))
end
