-- legacy_cycle.lua: the full legacy relay cycle for wrk (bench/legacy.py).
--
-- Every wrk connection plays one compute node and one client with keys
-- of its own and runs the four routes in protocol order, one request at
-- a time on a keep-alive connection, as the real peers do (no pipelining).
-- A node is known to the relay only after its first /sink, so each
-- connection starts with one registering /sink (an empty poll), then loops:
--
--   /faucet  client enqueues a job for its node (job: chat_history etc.)
--   /sink    the node polls, pops exactly that job (its queue held one)
--   /source  the node posts the encrypted answer for the client
--   /retrieve the client takes the answer (the slot is deleted)
--
-- so each route does its real work (enqueue, dequeue, store, take) and the
-- queues stay as short as in a healthy deployment. wrk's Lua API cannot
-- tell which connection asks for the next request, so bench/legacy.py runs
-- wrk with one connection per thread (-tN -cN): each thread's Lua state is
-- one connection's state machine. request() only reads the state (wrk
-- calls it once more while verifying the script); response() advances it,
-- after checking that the reply is the one the protocol promises. A
-- surprise (wrong status, no job popped, no answer waiting) is counted and
-- the connection registers again and restarts its cycle.
--
-- Sizes are those of real peers: keys are base64 of an RSA-2048 PEM
-- (604 characters), cipherkey is base64 of a 256-byte RSA block (344),
-- iv base64 of 16 bytes (24), chat_history ~1 KiB of base64 ciphertext.
-- Node routes carry X-Relay-Server-Token (the relay is started with one).
--
-- Arguments after "--", or the global bench_args set by a wrapper script
-- that dofile()s this one: <nonce> <token>. The nonce keeps keys of one
-- run apart from those of an earlier run against the same relay.

local threads = {}
local counter = 0

function setup(thread)
	thread:set("id", counter)
	counter = counter + 1
	table.insert(threads, thread)
end

local function b64ish(seed, n)
	-- Deterministic base64-alphabet filler of length n.
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
	-- "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K" is base64 of the PEM header.
	local head = "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K" .. kind .. nonce ..
	    "x" .. n .. "x"
	return head .. b64ish(n * 7 + #kind, 604 - #head)
end

-- Globals, so that done() can read them with thread:get().
reqs = {}
state = 0
surprises = 0
cycles = 0

function init(args)
	if #args == 0 and bench_args then
		args = bench_args
	end
	local nonce = args[1] or "0"
	local token = args[2] or ""
	local n = id or 0
	local server = key("Srv", nonce, n)
	local client = key("Cli", nonce, n)
	local cipherkey = b64ish(n + 11, 344)
	local iv = b64ish(n + 13, 22) .. "=="
	local ask = b64ish(n + 17, 1024)
	local answer = b64ish(n + 19, 1024)
	local json = { ["Content-Type"] = "application/json" }
	local node = { ["Content-Type"] = "application/json",
	    ["X-Relay-Server-Token"] = token }
	reqs[0] = wrk.format("POST", "/sink", node,
	    '{"server_public_key":"' .. server .. '"}')
	reqs[1] = wrk.format("POST", "/faucet", json,
	    '{"server_public_key":"' .. server .. '","chat_history":"' .. ask ..
	    '","cipherkey":"' .. cipherkey .. '","iv":"' .. iv ..
	    '","client_public_key":"' .. client .. '"}')
	reqs[2] = wrk.format("POST", "/sink", node,
	    '{"server_public_key":"' .. server .. '"}')
	reqs[3] = wrk.format("POST", "/source", node,
	    '{"client_public_key":"' .. client .. '","chat_history":"' .. answer ..
	    '","cipherkey":"' .. cipherkey .. '","iv":"' .. iv .. '"}')
	reqs[4] = wrk.format("POST", "/retrieve", json,
	    '{"client_public_key":"' .. client .. '"}')
	-- What each reply must contain for the step to have done its work.
	expect = { [0] = '"next_ping_in_x_seconds":10',
	    '"message":"Request received"', '"chat_history":"' ..
	    ask .. '"', '"message":"Response received', '"chat_history":"' ..
	    answer .. '"' }
end

function request()
	return reqs[state]
end

function response(status, headers, body)
	if status == 200 and body:find(expect[state], 1, true) then
		if state == 4 then
			cycles = cycles + 1
			state = 1
		else
			state = state + 1
		end
	else
		surprises = surprises + 1
		state = 0
	end
end

function done(summary, latency, requests)
	-- Per-connection spread shows whether the relay served every
	-- connection or let some starve (min 0 = a connection never cycled).
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
